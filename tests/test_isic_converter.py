"""The ISIC converter: layout, splits, checks of every pair, atomic output."""
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_ISIC2017, run_converter, tree_hashes
from PIL import Image

from mmseg_dsnet.datasets.converters import isic
from mmseg_dsnet.datasets.converters import synthetic_isic as synthetic

TRAIN_IMAGES = 'ISIC-2017_Training_Data'
TRAIN_MASKS = 'ISIC-2017_Training_Part1_GroundTruth'
VAL_IMAGES = 'ISIC-2017_Validation_Data'
VAL_MASKS = 'ISIC-2017_Validation_Part1_GroundTruth'
TEST_IMAGES = 'ISIC-2017_Test_v2_Data'
TEST_MASKS = 'ISIC-2017_Test_v2_Part1_GroundTruth'


def _make_raw(root,
              year=2017,
              num_train=6,
              num_val=2,
              num_test=3,
              size=(32, 24),
              **kwargs):
    synthetic.generate(
        root,
        year=year,
        num_train=num_train,
        num_val=num_val,
        num_test=num_test,
        size=size,
        **kwargs)
    return root






def _split(root, name):
    return (Path(root) / 'splits' / f'{name}.txt').read_text().split()


def _mask(path):
    return np.asarray(Image.open(path))


def _leftovers(folder):
    return [
        p.name for p in Path(folder).iterdir()
        if '.tmp-' in p.name or '.old-' in p.name
    ]


def test_converts_official_folders(tmp_path):
    raw = _make_raw(tmp_path / 'raw')
    out = tmp_path / 'out'
    result = run_converter(raw, out, '--workers', '1')
    assert result.returncode == 0, result.output
    assert 'pairs written: train 6, val 2, test 3' in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        'images', 'masks', 'meta.json', 'splits'
    ]

    expected = {
        'official_train':
        sorted(p.stem for p in (raw / TRAIN_IMAGES).glob('ISIC_???????.jpg')),
        'official_val':
        sorted(p.stem for p in (raw / VAL_IMAGES).glob('ISIC_???????.jpg')),
        'official_test':
        sorted(p.stem for p in (raw / TEST_IMAGES).glob('ISIC_???????.jpg')),
    }
    for name, ids in expected.items():
        assert _split(out, name) == ids
    all_ids = sorted(i for ids in expected.values() for i in ids)
    assert sorted(p.stem for p in (out / 'images').iterdir()) == all_ids
    assert sorted(p.stem for p in (out / 'masks').iterdir()) == all_ids

    for image_id in all_ids:
        split_folder = next(f for f, n in ((TRAIN_IMAGES, 'official_train'),
                                           (VAL_IMAGES, 'official_val'),
                                           (TEST_IMAGES, 'official_test'))
                            if image_id in expected[n])
        # Valid RGB JPEGs are copied byte for byte.
        assert (out / 'images' / f'{image_id}.jpg').read_bytes() == \
            (raw / split_folder / f'{image_id}.jpg').read_bytes()
        mask_folder = split_folder.replace('_Data', '_Part1_GroundTruth')
        source_mask = _mask(raw / mask_folder / f'{image_id}_segmentation.png')
        mask = _mask(out / 'masks' / f'{image_id}.png')
        assert mask.dtype == np.uint8 and mask.ndim == 2
        assert set(np.unique(mask).tolist()) == {0, 1}
        assert np.array_equal(mask, source_mask // 255)

    train = _split(out, 'lightweight_train')
    test = _split(out, 'lightweight_test')
    assert (len(train), len(test)) == (6, 2)  # round(0.7 * 8) = 6
    assert train == sorted(train) and test == sorted(test)
    assert not set(train) & set(test)
    assert set(train) | set(test) == set(expected['official_train'] +
                                         expected['official_val'])

    meta = json.loads((out / 'meta.json').read_text())
    assert (meta['year'], meta['seed'], meta['train_ratio']) == (2017, 0, 0.7)
    assert meta['counts'] == {
        'official_train': 6,
        'official_val': 2,
        'official_test': 3,
        'lightweight_train': 6,
        'lightweight_test': 2,
        'lightweight_design_train': 5,
        'lightweight_design_val': 1
    }
    assert 'round(0.7 * 8) = 6' in meta['lightweight_rule']
    assert 'round(0.1 * 6)' in meta['design_split_rule']
    # The design hold-out splits lightweight_train and nothing else.
    design_train = _split(out, 'lightweight_design_train')
    design_val = _split(out, 'lightweight_design_val')
    assert sorted(design_train + design_val) == train
    assert not set(design_val) & set(test)
    assert meta['fixed'] == [] and meta['skipped'] == []
    # 2017 ships superpixel PNGs and metadata CSVs next to the images.
    assert meta['ignored'] == {
        'total': 14,
        'by_kind': {
            'metadata csv': 3,
            'superpixels': 11
        }
    }


def test_zips_convert_like_folders_and_year_is_detected(tmp_path):
    kwargs = dict(year=2018, num_train=5, num_val=2, num_test=2)
    folders = _make_raw(tmp_path / 'folders', **kwargs)
    zips = _make_raw(tmp_path / 'zips', as_zip=True, **kwargs)
    assert all(p.suffix == '.zip' for p in zips.iterdir())
    from_folders = isic.convert(
        folders, tmp_path / 'a', workers=1, verbose=False)
    from_zips = isic.convert(zips, tmp_path / 'b', workers=1, verbose=False)
    assert from_zips['year'] == 2018
    assert from_zips['counts'] == from_folders['counts'] == {
        'official_train': 5,
        'official_val': 2,
        'official_test': 2,
        'lightweight_train': 5,
        'lightweight_test': 2,
        'lightweight_design_train': 4,
        'lightweight_design_val': 1
    }
    assert from_zips['ignored']['by_kind'] == {'ATTRIBUTION': 6, 'LICENSE': 6}
    first, second = tree_hashes(tmp_path / 'a'), tree_hashes(tmp_path / 'b')
    first.pop('meta.json'), second.pop('meta.json')  # they name their sources
    assert first == second


def test_zip_members_without_top_folder(tmp_path):
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=1, num_test=1)
    flat = tmp_path / 'flat'
    flat.mkdir()
    for folder in sorted(raw.iterdir()):
        with zipfile.ZipFile(flat / f'{folder.name}.zip', 'w') as archive:
            for path in sorted(folder.iterdir()):
                archive.write(path, arcname=path.name)
    summary = isic.convert(flat, tmp_path / 'out', workers=1, verbose=False)
    assert summary['counts']['official_train'] == 3
    assert summary['counts']['official_val'] == 1
    assert summary['counts']['official_test'] == 1
    assert summary['skipped'] == []


def test_lightweight_split_is_seeded(tmp_path):
    raw = _make_raw(
        tmp_path / 'raw', num_train=16, num_val=4, num_test=1, size=(16, 12))
    runs = {}
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        isic.convert(raw, tmp_path / name, seed=seed, workers=1, verbose=False)
        runs[name] = {
            s: _split(tmp_path / name, s)
            for s in ('official_train', 'lightweight_train',
                      'lightweight_test')
        }
    assert runs['a'] == runs['b']
    assert runs['c']['official_train'] == runs['a']['official_train']
    assert runs['c']['lightweight_train'] != runs['a']['lightweight_train']
    assert len(runs['c']['lightweight_train']) == 14  # round(0.7 * 20)
    assert json.loads((tmp_path / 'c' / 'meta.json').read_text())['seed'] == 1


def test_split_counts_follow_the_literature():

    def written(n_train, n_val, n_test):
        return {
            'train': [f'a{i:05d}' for i in range(n_train)],
            'val': [f'b{i:05d}' for i in range(n_val)],
            'test': [f'c{i:05d}' for i in range(n_test)]
        }

    splits, _, rule, _ = isic._make_splits(2017, written(2000, 150, 600), 0,
                                           0.7)
    assert (len(splits['lightweight_train']),
            len(splits['lightweight_test'])) == (1500, 650)
    assert '1500/650' in rule
    # About 10 % of the training split held out for design choices, seeded.
    design_val = splits['lightweight_design_val']
    assert (len(splits['lightweight_design_train']), len(design_val)) == \
        (1350, 150)
    assert set(design_val) < set(splits['lightweight_train'])
    again, _, _, _ = isic._make_splits(2017, written(2000, 150, 600), 0, 0.7)
    assert again == splits
    other_seed, _, _, _ = isic._make_splits(2017, written(2000, 150, 600), 1,
                                            0.7)
    assert other_seed['lightweight_design_val'] != design_val
    splits, _, _, _ = isic._make_splits(2017, written(2000, 150, 600), 0, 0.8)
    assert len(splits['lightweight_train']) == 1720
    splits, _, _, _ = isic._make_splits(2018, written(2594, 100, 1000), 0, 0.7)
    assert (len(splits['lightweight_train']),
            len(splits['lightweight_test'])) == (1886, 808)
    assert len(splits['official_test']) == 1000


def test_2016_holds_out_a_seeded_validation_set(tmp_path):
    raw = _make_raw(
        tmp_path / 'raw',
        year=2016,
        num_train=20,
        num_val=0,
        num_test=3,
        size=(16, 12))
    summary = isic.convert(raw, tmp_path / 'out', workers=1, verbose=False)
    out = tmp_path / 'out'
    train, val = _split(out, 'official_train'), _split(out, 'official_val')
    raw_train = sorted(
        p.stem for p in (raw / 'ISBI2016_ISIC_Part1_Training_Data').iterdir())
    assert (len(train), len(val)) == (18, 2)
    assert not set(train) & set(val) and sorted(train + val) == raw_train
    assert len(_split(out, 'official_test')) == 3
    assert 'held out' in summary['official_val_rule']
    assert summary['counts']['lightweight_train'] == 14  # round(0.7 * 20)
    val_mask = _mask(out / 'masks' / f'{val[0]}.png')
    assert set(np.unique(val_mask).tolist()) <= {0, 1}


def _save_png(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path, format='PNG')


def test_every_bad_input_is_reported_fixed_or_skipped(tmp_path):
    raw = _make_raw(tmp_path / 'raw', num_train=12, num_val=2, num_test=3)
    ids = [f'ISIC_{i:07d}' for i in range(17)]

    def image(i, folder=TRAIN_IMAGES):
        return raw / folder / f'{ids[i]}.jpg'

    def mask(i, folder=TRAIN_MASKS):
        return raw / folder / f'{ids[i]}_segmentation.png'

    rgb = np.asarray(Image.open(image(8)))
    # One defect per pair.
    mask(0).unlink()
    image(1).unlink()
    _save_png(mask(2), np.zeros((12, 16), np.uint8))
    jpeg = image(3).read_bytes()
    image(3).write_bytes(jpeg[:len(jpeg) * 2 // 3])
    mask(4).write_bytes(b'not a png at all')
    soft = _mask(mask(5)).copy()  # JPEG-style values near 0 and 255
    soft[soft == 255] = 250
    soft[:2, :3] = 3
    soft[5, 5] = 140
    _save_png(mask(5), soft)
    changed = int(np.isin(soft, [0, 255], invert=True).sum())
    _save_png(mask(6), (_mask(mask(6)) // 255) * 2)  # a {0, 2} label map
    gray_rgb = np.repeat(_mask(mask(7))[..., None], 3, axis=-1)
    _save_png(mask(7), gray_rgb)
    Image.fromarray(rgb[..., 0]).save(image(8), format='JPEG')
    alpha = np.full((24, 32, 1), 200, np.uint8)
    rgba = np.concatenate([np.asarray(Image.open(image(9))), alpha], -1)
    _save_png(image(9), rgba)  # PNG bytes behind a .jpg name
    gray = np.asarray(Image.open(image(10)).convert('L'))
    Image.fromarray(gray.astype(np.uint16) * 257).save(image(10), 'PNG')
    Image.open(image(11)).convert('P').save(image(11), format='PNG')
    colour = np.stack([_mask(mask(12, VAL_MASKS))] * 3, axis=-1).copy()
    colour[..., 1] = 0
    _save_png(mask(12, VAL_MASKS), colour)
    # Stray files are ignored silently.
    (raw / VAL_IMAGES / 'LICENSE.txt').write_text('licence')
    (raw / VAL_IMAGES / 'ATTRIBUTION.txt').write_text('attribution')
    (raw / TEST_MASKS / '.DS_Store').write_bytes(b'\0\1')
    (raw / TEST_IMAGES / '__MACOSX').mkdir()
    (raw / TEST_IMAGES / '__MACOSX' / '._ISIC_0000014.jpg').write_bytes(b'\0')

    before = tree_hashes(raw)
    result = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert result.returncode == 0, result.output
    assert tree_hashes(raw) == before  # the input is never modified

    meta = json.loads((tmp_path / 'out' / 'meta.json').read_text())
    assert meta['skipped_by_reason'] == {
        'missing mask': 1,
        'missing image': 1,
        'size mismatch': 1,
        'unreadable image': 1,
        'unreadable mask': 1,
        'mask values not binary': 1,
        'colour mask': 1
    }
    assert meta['fixed_by_reason'] == {
        'soft mask re-binarised at 128': 1,
        'mask converted to one channel': 1,
        'image converted to RGB': 4
    }
    named = {r['id']: r for r in meta['skipped'] + meta['fixed']}
    expected_files = {
        0: 'ISIC_0000000.jpg',
        1: 'ISIC_0000001_segmentation.png',
        2: 'ISIC_0000002_segmentation.png',
        3: 'ISIC_0000003.jpg',
        4: 'ISIC_0000004_segmentation.png',
        5: 'ISIC_0000005_segmentation.png',
        6: 'ISIC_0000006_segmentation.png',
        7: 'ISIC_0000007_segmentation.png',
        8: 'ISIC_0000008.jpg',
        9: 'ISIC_0000009.jpg',
        10: 'ISIC_0000010.jpg',
        11: 'ISIC_0000011.jpg',
        12: 'ISIC_0000012_segmentation.png'
    }
    for index, file_name in expected_files.items():
        assert file_name in result.stdout, file_name
        assert named[ids[index]]['file'].endswith(file_name)
    assert 'truncated' in named[ids[3]]['detail']
    assert 'not a recognised image' in named[ids[4]]['detail']
    details = {index: named[ids[index]]['detail'] for index in expected_files}
    assert 'mask is 16x12' in details[2]
    assert 'grayscale' in details[8] and 'RGBA' in details[9]
    assert '16-bit' in details[10] and 'palette' in details[11]
    soft_record = next(r for r in meta['fixed'] if r['id'] == ids[5])
    assert soft_record['changed_pixels'] == changed > 0
    assert meta['ignored']['by_kind'] == {
        'ATTRIBUTION': 1,
        'LICENSE': 1,
        'macOS metadata': 2,
        'metadata csv': 3,
        'superpixels': 17
    }
    assert meta['counts']['official_train'] == 6
    assert meta['counts']['official_val'] == 1

    out = tmp_path / 'out'
    skipped_ids = {ids[i] for i in (0, 1, 2, 3, 4, 6, 12)}
    written = {p.stem for p in (out / 'images').iterdir()}
    assert written == set(ids) - skipped_ids
    for split_file in (out / 'splits').iterdir():
        assert not skipped_ids & set(split_file.read_text().split())
    assert np.array_equal(_mask(out / 'masks' / f'{ids[5]}.png'),
                          (soft >= 128).astype(np.uint8))
    assert np.array_equal(_mask(out / 'masks' / f'{ids[7]}.png'),
                          gray_rgb[..., 0] // 255)
    for index in (8, 9, 10, 11):
        converted = Image.open(out / 'images' / f'{ids[index]}.jpg')
        assert converted.format == 'JPEG' and converted.mode == 'RGB'
        assert converted.size == (32, 24)
    for path in (out / 'masks').iterdir():
        assert set(np.unique(_mask(path)).tolist()) <= {0, 1}


def test_strict_fails_on_a_skip_and_writes_nothing(tmp_path):
    raw = _make_raw(tmp_path / 'raw')
    (raw / TEST_MASKS / 'ISIC_0000009_segmentation.png').unlink()
    strict = run_converter(raw, tmp_path / 'out', '--strict', '--workers', '1')
    assert strict.returncode == 2
    assert 'ISIC_0000009.jpg' in strict.output and '--strict' in strict.stderr
    assert not (tmp_path / 'out').exists() and _leftovers(tmp_path) == []
    lenient = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert lenient.returncode == 0, lenient.output
    assert len(_split(tmp_path / 'out', 'official_test')) == 2
    # A test pair does not touch the lightweight split: no warning.
    assert 'WARNING' not in lenient.output
    # A train pair does: every lightweight list is reshuffled.
    (raw / TRAIN_MASKS / 'ISIC_0000000_segmentation.png').unlink()
    pooled = run_converter(raw, tmp_path / 'pooled', '--workers', '1')
    assert pooled.returncode == 0, pooled.output
    assert ('WARNING: 1 train/val pair(s) skipped: lightweight_train/test'
            in pooled.output)


@pytest.mark.parametrize('how', ['renamed', 'absent'])
def test_a_missing_validation_split_is_not_comparable(tmp_path, how):
    # Both validation folders renamed (a second download) or absent: the
    # split was read as not there at all, the lightweight split drawn from
    # the training pairs alone without a word, even with --strict.
    raw = _make_raw(tmp_path / 'raw')
    for folder in (VAL_IMAGES, VAL_MASKS):
        if how == 'renamed':
            (raw / folder).rename(raw / f'{folder} (1)')
        else:
            shutil.rmtree(raw / folder)
    missing = (f'official split val missing (no {VAL_IMAGES} or {VAL_MASKS} '
               f'folder or zip in {raw.resolve()})')
    strict = run_converter(raw, tmp_path / 'out', '--strict', '--workers', '1')
    assert strict.returncode == 2, strict.output
    assert strict.stderr.splitlines()[-1] == \
        f'ERROR: --strict: {missing}; nothing written'
    assert not (tmp_path / 'out').exists() and _leftovers(tmp_path) == []
    renamed = [
        f'note: ignored {folder} (1) (not an official ISIC 2017 '
        'folder or zip name)' for folder in (VAL_IMAGES, VAL_MASKS)
    ]
    for note in renamed:
        assert (note in strict.stdout) == (how == 'renamed'), strict.stdout

    lenient = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert lenient.returncode == 0, lenient.output
    assert f'WARNING: {missing}: lightweight_train/test' in lenient.stdout
    out = tmp_path / 'out'
    assert _split(out, 'official_val') == []
    assert len(
        _split(out, 'lightweight_train') +
        _split(out, 'lightweight_test')) == 6
    (raw / 'README.txt').write_text('notes')
    noted = run_converter(raw, tmp_path / 'noted', '--workers', '1')
    assert 'note: ignored README.txt' in noted.stdout


def _empty_folder(raw, folder, stray=None):
    """Replace an official folder by an empty one (holding ``stray``, a
    file that is neither an image nor a mask, if given)."""
    shutil.rmtree(raw / folder)
    (raw / folder).mkdir()
    if stray is not None:
        (raw / folder / stray).write_text('not an image')


def _converted_only_without_strict(raw, tmp_path, missing):
    """Convert ``raw`` to ``tmp_path/out`` with ``--strict`` (refused:
    exit 2, an ERROR line naming ``missing``, nothing left behind), then
    without it (exit 0).

    Returns:
        The run without ``--strict``.
    """
    strict = run_converter(raw, tmp_path / 'out', '--strict', '--workers', '1')
    assert strict.returncode == 2, strict.output
    assert strict.stderr.splitlines()[-1] == \
        f'ERROR: --strict: {missing}; nothing written'
    assert not (tmp_path / 'out').exists() and _leftovers(tmp_path) == []
    lenient = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert lenient.returncode == 0, lenient.output
    return lenient


@pytest.mark.parametrize('stray', [None, 'notes.txt'])
def test_an_empty_validation_split_is_missing(tmp_path, stray):
    # Both validation folders there but empty (or holding other files
    # only): the split counted as present, and the lightweight split was
    # drawn from the training pairs alone without a word, even with
    # --strict.
    raw = _make_raw(tmp_path / 'raw')
    for folder in (VAL_IMAGES, VAL_MASKS):
        _empty_folder(raw, folder, stray)
    missing = (f'official split val missing (in {raw.resolve()}: '
               f'{VAL_IMAGES} holds no .jpg, .jpeg or .png image; '
               f'{VAL_MASKS} holds no <id>_segmentation.png mask)')
    lenient = _converted_only_without_strict(raw, tmp_path, missing)
    assert f'WARNING: {missing}: lightweight_train/test' in lenient.stdout
    out = tmp_path / 'out'
    assert _split(out, 'official_val') == []
    assert len(
        _split(out, 'lightweight_train') +
        _split(out, 'lightweight_test')) == 6
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['official_splits_present'] == ['train', 'test']


@pytest.mark.parametrize('emptied', [VAL_MASKS, VAL_IMAGES])
def test_an_empty_mask_or_image_folder_is_named(tmp_path, emptied):
    # One folder of a pair empty: each partner is skipped; the folder that
    # caused it is named once, before the skipped pairs.
    raw = _make_raw(tmp_path / 'raw')
    _empty_folder(raw, emptied)
    result = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert result.returncode == 0, result.output
    if emptied == VAL_MASKS:
        warning = (f'warning: split val: {VAL_MASKS} holds no '
                   '<id>_segmentation.png mask; its images are skipped as '
                   '"missing mask"')
    else:
        warning = (f'warning: split val: {VAL_IMAGES} holds no .jpg, .jpeg '
                   'or .png image; its masks are skipped as "missing image"')
    assert warning in result.stdout.splitlines()
    assert ('WARNING: 2 train/val pair(s) skipped: lightweight_train/test'
            in result.stdout)
    strict = run_converter(raw, tmp_path / 'strict', '--strict', '--workers',
                           '1')
    assert strict.returncode == 2
    assert strict.stderr.splitlines()[-1] == \
        'ERROR: --strict: 2 pair(s) skipped; nothing written'


@pytest.mark.parametrize('how', ['absent', 'empty'])
def test_a_missing_test_split_is_named(tmp_path, how):
    # No test folders (or empty ones): official_test.txt was written empty
    # without a word, exit 0 even with --strict, and tools/test.py on an
    # official-protocol config then stopped with "no samples".
    raw = _make_raw(tmp_path / 'raw')
    for folder in (TEST_IMAGES, TEST_MASKS):
        if how == 'absent':
            shutil.rmtree(raw / folder)
        else:
            _empty_folder(raw, folder)
    if how == 'absent':
        missing = (f'official split test missing (no {TEST_IMAGES} or '
                   f'{TEST_MASKS} folder or zip in {raw.resolve()})')
    else:
        missing = (f'official split test missing (in {raw.resolve()}: '
                   f'{TEST_IMAGES} holds no .jpg, .jpeg or .png image; '
                   f'{TEST_MASKS} holds no <id>_segmentation.png mask)')
    lenient = _converted_only_without_strict(raw, tmp_path, missing)
    assert (f'WARNING: {missing}: splits/official_test.txt is empty, so the '
            'official protocol has no test images (tools/test.py on an '
            'official-protocol config stops with "no samples"; --strict '
            'refuses to write such a set)') in lenient.stdout
    out = tmp_path / 'out'
    assert _split(out, 'official_test') == []
    # The lightweight split does not use the test split: it is unchanged.
    assert len(
        _split(out, 'lightweight_train') +
        _split(out, 'lightweight_test')) == 8


def test_duplicate_ids_keep_the_first_copy(tmp_path):
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=2, num_test=2)
    # The training folders also present as zips (same ids), and one validation
    # pair copied into the test folders.
    for folder in (TRAIN_IMAGES, TRAIN_MASKS):
        with zipfile.ZipFile(raw / f'{folder}.zip', 'w') as archive:
            for path in sorted((raw / folder).iterdir()):
                archive.write(path, arcname=f'{folder}/{path.name}')
    shutil.copy(raw / VAL_IMAGES / 'ISIC_0000003.jpg', raw / TEST_IMAGES)
    shutil.copy(raw / VAL_MASKS / 'ISIC_0000003_segmentation.png',
                raw / TEST_MASKS)

    result = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert result.returncode == 0, result.output
    meta = json.loads((tmp_path / 'out' / 'meta.json').read_text())
    assert meta['skipped_by_reason'] == {'duplicate id': 4}
    zipped = f'{TRAIN_IMAGES}.zip:{TRAIN_IMAGES}/ISIC_0000001.jpg'
    assert zipped in result.stdout
    assert f'{TEST_IMAGES}/ISIC_0000003.jpg' in result.stdout
    cross = next(r for r in meta['skipped'] if r['split'] == 'test')
    assert cross['id'] == 'ISIC_0000003' and 'val' in cross['detail']
    assert meta['counts']['official_train'] == 3
    assert 'ISIC_0000003' in _split(tmp_path / 'out', 'official_val')
    test_ids = _split(tmp_path / 'out', 'official_test')
    assert test_ids == ['ISIC_0000005', 'ISIC_0000006']
    strict = run_converter(raw, tmp_path / 'strict', '--strict', '--workers', '1')
    assert strict.returncode == 2


def test_empty_unrecognised_or_ambiguous_input_errors(tmp_path):
    empty = tmp_path / 'empty'
    for folder in (TRAIN_IMAGES, TRAIN_MASKS):
        (empty / folder).mkdir(parents=True)
    (empty / TRAIN_IMAGES / 'LICENSE.txt').write_text('licence')
    result = run_converter(empty, tmp_path / 'out')
    assert result.returncode == 2 and 'no image/mask pairs' in result.stderr

    unrelated = tmp_path / 'unrelated'
    (unrelated / 'photos').mkdir(parents=True)
    result = run_converter(unrelated, tmp_path / 'out')
    assert result.returncode == 2 and 'no official ISIC' in result.stderr

    both = _make_raw(
        tmp_path / 'both', num_train=2, num_val=1, num_test=1, size=(16, 12))
    (both / 'ISIC2018_Task1-2_Training_Input').mkdir()
    result = run_converter(both, tmp_path / 'out')
    assert result.returncode == 2 and '--year' in result.stderr
    assert not (tmp_path / 'out').exists()
    with pytest.raises(isic.ConversionError, match='no ISIC 2016'):
        isic.convert(both, tmp_path / 'out', year=2016, verbose=False)
    # Zero workers used to run as one without a word.
    with pytest.raises(isic.ConversionError, match='workers must be at least'):
        isic.convert(both, tmp_path / 'out', workers=0, verbose=False)
    assert not (tmp_path / 'out').exists()
    summary = isic.convert(
        both, tmp_path / 'out', year=2017, workers=1, verbose=False)
    assert summary['counts']['official_train'] == 2


def test_existing_out_is_refused_unless_overwrite(tmp_path):
    raw = _make_raw(
        tmp_path / 'raw', num_train=2, num_val=1, num_test=1, size=(16, 12))
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'keep.txt').write_text('precious')
    result = run_converter(raw, out)
    assert result.returncode == 2 and 'not empty' in result.stderr
    assert (out / 'keep.txt').read_text() == 'precious'
    assert sorted(p.name for p in out.iterdir()) == ['keep.txt']

    result = run_converter(raw, out, '--overwrite')
    assert result.returncode == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        'images', 'masks', 'meta.json', 'splits'
    ]
    assert _leftovers(tmp_path) == []

    empty = tmp_path / 'empty_out'
    empty.mkdir()
    assert run_converter(raw, empty).returncode == 0
    assert (empty / 'meta.json').is_file()

    with pytest.raises(isic.ConversionError, match='must not contain'):
        isic.convert(raw, raw / 'converted', verbose=False)
    assert not (raw / 'converted').exists()


@pytest.mark.parametrize('error', [RuntimeError, KeyboardInterrupt])
def test_failure_mid_run_leaves_no_output(tmp_path, monkeypatch, error):
    raw = _make_raw(tmp_path / 'raw')
    real_write = isic._write_pair
    calls = []

    def failing_write(*args):
        calls.append(args[1])
        if len(calls) > 3:
            raise error('injected failure')
        real_write(*args)

    monkeypatch.setattr(isic, '_write_pair', failing_write)
    with pytest.raises(error, match='injected'):
        isic.convert(raw, tmp_path / 'out', workers=1, verbose=False)
    assert len(calls) == 4
    assert not (tmp_path / 'out').exists()
    assert _leftovers(tmp_path) == []


def test_worker_pool_gives_the_same_output(tmp_path):
    n_train = isic.MIN_PAIRS_FOR_POOL
    raw = _make_raw(
        tmp_path / 'raw',
        num_train=n_train,
        num_val=2,
        num_test=2,
        size=(16, 12))
    pooled = run_converter(raw, tmp_path / 'pooled', '--workers', '2')
    serial = run_converter(raw, tmp_path / 'serial', '--workers', '1')
    assert pooled.returncode == 0, pooled.output
    assert serial.returncode == 0, serial.output
    assert f'train {n_train}, val 2, test 2' in pooled.stdout
    pooled_files = tree_hashes(tmp_path / 'pooled')
    assert pooled_files == tree_hashes(tmp_path / 'serial')


@pytest.mark.skipif(
    not SHARED_ISIC2017.is_dir(), reason='shared ISIC 2017 data not present')
def test_real_isic2017_sample_converts(tmp_path):
    # A few real pairs per split in the official layout; the full set is
    # converted separately (it takes seconds, too long for a unit test).
    sample = tmp_path / 'sample'
    for image_folder, mask_folder in synthetic.OFFICIAL_FOLDERS[2017].values():
        (sample / image_folder).mkdir(parents=True)
        (sample / mask_folder).mkdir(parents=True)
        for path in sorted((SHARED_ISIC2017 / image_folder).glob('*.jpg'))[:3]:
            shutil.copy(path, sample / image_folder)
            shutil.copy(
                SHARED_ISIC2017 / mask_folder /
                f'{path.stem}_segmentation.png', sample / mask_folder)
    summary = isic.convert(sample, tmp_path / 'out', workers=1, verbose=False)
    assert summary['year'] == 2017
    assert summary['skipped'] == [] and summary['fixed'] == []
    counts = summary['counts']
    assert counts['official_train'] == counts['official_val'] == 3
    assert counts['official_test'] == 3
    out = tmp_path / 'out'
    val_images, val_masks = synthetic.OFFICIAL_FOLDERS[2017]['val']
    for image_id in _split(out, 'official_val'):
        source_jpeg = SHARED_ISIC2017 / val_images / f'{image_id}.jpg'
        assert (out / 'images' / f'{image_id}.jpg').read_bytes() == \
            source_jpeg.read_bytes()
        source = _mask(SHARED_ISIC2017 / val_masks /
                       f'{image_id}_segmentation.png')
        assert np.array_equal(
            _mask(out / 'masks' / f'{image_id}.png'), source // 255)


def test_a_seed_or_ratio_it_cannot_use_is_refused(tmp_path):
    """``--seed -1`` was numpy's traceback after every pair was checked; a
    ``--train-ratio`` that leaves a lightweight split empty wrote the empty
    split file, exit 0."""
    raw = _make_raw(tmp_path / 'raw')  # 6 + 2 train+val pairs
    out = tmp_path / 'out'
    result = run_converter(raw, out, '--seed', '-1', '--workers', '1')
    assert result.returncode == 2 and result.stderr == (
        'ERROR: --seed must be an integer from 0 to 2**32 - 1, got -1\n')
    for ratio, train, empty in (('0.05', 0, 'lightweight_train'),
                                ('0.97', 8, 'lightweight_test')):
        result = run_converter(raw, out, '--train-ratio', ratio,
                               '--workers', '1')
        assert result.returncode == 2, result.output
        assert result.stderr.splitlines()[-1] == (
            f'ERROR: train ratio {ratio} puts {train} of the 8 train+val '
            f'pairs into lightweight_train, so {empty} would be empty; '
            'choose a ratio that leaves at least one pair in each')
    assert not out.exists() and _leftovers(tmp_path) == []
