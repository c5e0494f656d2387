"""The ISIC converter: layout, splits, checks of every pair, atomic output."""
import errno
import json
import os
import shutil
import subprocess
import sys
import unicodedata
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import CONVERTER, SHARED_ISIC2017, run_converter, tree_hashes
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
    # A stand-in for a real download (no SYNTHETIC.txt).
    kwargs.setdefault('mark_synthetic', False)
    synthetic.generate(
        root,
        year=year,
        num_train=num_train,
        num_val=num_val,
        num_test=num_test,
        size=size,
        **kwargs)
    return root


def _pooled_without_validation(result, out, missing):
    """Check a conversion of the 6 training pairs of :func:`_make_raw`
    without its validation split: warned of as ``missing``, an empty
    ``official_val`` and a lightweight split of the training pairs alone.

    Returns:
        Path: ``out``.
    """
    assert f'WARNING: {missing}: lightweight_train/test' in result.stdout
    assert _split(out, 'official_val') == []
    assert len(
        _split(out, 'lightweight_train') +
        _split(out, 'lightweight_test')) == 6
    return out


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
    # meta.json counts the lines of each split file.
    assert summary['counts'] == {
        'official_train': 18, 'official_val': 2, 'official_test': 3,
        'lightweight_train': 14, 'lightweight_test': 6,
        'lightweight_design_train': 13,  # round(0.1 * 14) = 1 held out
        'lightweight_design_val': 1}
    assert json.loads((out / 'meta.json').read_text())['counts'] == \
        summary['counts']
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
    # A test pair leaves the lightweight split as it is; the official test
    # split is no longer the download's.
    assert 'lightweight_train/test' not in lenient.output
    assert ('WARNING: 1 test pair skipped: splits/official_test.txt is not '
            'the complete test split of the download' in lenient.output)
    # A train pair does: every lightweight list is reshuffled.
    (raw / TRAIN_MASKS / 'ISIC_0000000_segmentation.png').unlink()
    pooled = run_converter(raw, tmp_path / 'pooled', '--workers', '1')
    assert pooled.returncode == 0, pooled.output
    assert ('WARNING: 1 train/val pair skipped: lightweight_train/test'
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
    _pooled_without_validation(lenient, tmp_path / 'out', missing)
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
    out = _pooled_without_validation(lenient, tmp_path / 'out', missing)
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
    assert ('WARNING: 2 train/val pairs skipped: lightweight_train/test'
            in result.stdout)
    strict = run_converter(raw, tmp_path / 'strict', '--strict', '--workers',
                           '1')
    assert strict.returncode == 2
    assert strict.stderr.splitlines()[-1] == \
        'ERROR: --strict: 2 pairs skipped; nothing written'


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


def _zip_folder(raw, folder, replace=None):
    """Write ``folder`` as ``folder.zip`` beside it (members under
    ``folder/``); ``replace`` maps a file name to the bytes stored instead."""
    replace = replace or {}
    with zipfile.ZipFile(raw / f'{folder}.zip', 'w') as archive:
        for path in sorted((raw / folder).iterdir()):
            arcname = f'{folder}/{path.name}'
            if path.name in replace:
                archive.writestr(arcname, replace[path.name])
            else:
                archive.write(path, arcname=arcname)


def test_duplicate_ids_keep_the_first_copy(tmp_path):
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=2, num_test=2)
    # The training folders also present as zips (same ids), one image of
    # the zip with other content, and one validation pair copied into the
    # test folders.
    other = (raw / TRAIN_IMAGES / 'ISIC_0000002.jpg').read_bytes()
    _zip_folder(raw, TRAIN_IMAGES, {'ISIC_0000001.jpg': other})
    _zip_folder(raw, TRAIN_MASKS)
    shutil.copy(raw / VAL_IMAGES / 'ISIC_0000003.jpg', raw / TEST_IMAGES)
    shutil.copy(raw / VAL_MASKS / 'ISIC_0000003_segmentation.png',
                raw / TEST_MASKS)

    result = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert result.returncode == 0, result.output
    meta = json.loads((tmp_path / 'out' / 'meta.json').read_text())
    # Identical copies in a folder and its zip are one file; the id in two
    # splits is a skipped duplicate; the zip's other ISIC_0000001.jpg is an
    # ignored file of a pair still written.
    assert meta['skipped_by_reason'] == {'duplicate id': 1}
    assert [(r['id'], r['reason']) for r in meta['duplicate_files']] == [
        ('ISIC_0000001', 'duplicate file')]
    assert ('note: split train: 5 files are both in an official folder '
            'and in the zip of the same name, with the same content'
            in result.stdout)
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


def test_an_id_in_two_official_splits_is_in_one_split_and_said_so(
        tmp_path, capsys):
    """An id in the training and in the test folders (the same photo, or
    another one) is converted in training alone, so that no image is in
    both; each skipped test pair names the photo it shares the id with,
    and a warning says that the test split is no longer the download's."""
    raw = _make_raw(tmp_path / 'raw', num_train=4, num_val=2, num_test=2,
                    size=(16, 12))
    for source, copy in (('ISIC_0000000', 'ISIC_0000000'),
                         ('ISIC_0000001', 'ISIC_0000002')):
        shutil.copy(raw / TRAIN_IMAGES / f'{source}.jpg',
                    raw / TEST_IMAGES / f'{copy}.jpg')
        shutil.copy(raw / TRAIN_MASKS / f'{source}_segmentation.png',
                    raw / TEST_MASKS / f'{copy}_segmentation.png')
    summary = isic.convert(raw, tmp_path / 'out', workers=1)
    printed = capsys.readouterr().out
    details = {r['id']: r['detail'] for r in summary['skipped']
               if r['reason'] == 'duplicate id'}
    assert details == {
        'ISIC_0000000': 'id also in split train, with the same photo, '
        'byte for byte; the pair of train is converted, this one is not, '
        'so that the id is in one split only',
        'ISIC_0000002': 'id also in split train, with another photo; the '
        'pair of train is converted, this one is not, so that the id is in '
        'one split only'}
    assert ('WARNING: 2 test pairs skipped: splits/official_test.txt is '
            'not the complete test split of the download') in printed
    out = tmp_path / 'out'
    trained = set(_split(out, 'official_train') + _split(out, 'official_val'))
    assert trained & set(_split(out, 'official_test')) == set()
    assert set(_split(out, 'lightweight_train')) & set(
        _split(out, 'lightweight_test')) == set()
    with pytest.raises(isic.StrictModeError, match='2 pairs skipped'):
        isic.convert(raw, tmp_path / 'strict', strict=True, workers=1,
                     verbose=False)
    assert not (tmp_path / 'strict').exists()


def test_an_id_whose_earlier_pair_is_skipped_converts_from_a_later_split(
        tmp_path, capsys):
    """An id whose training pair is skipped (an unreadable photo, no mask)
    is converted from the next official split that holds a valid pair of
    it; only the splits after that one skip theirs, so the id is still in
    one split and the valid pair is not lost with the broken one. A second
    training file of the id, ignored, is not said to leave it
    unconverted."""
    raw = _make_raw(tmp_path / 'raw', num_train=4, num_val=2, num_test=2,
                    size=(16, 12))
    pairs = {split: (raw / images, raw / masks) for split, images, masks in (
        ('train', TRAIN_IMAGES, TRAIN_MASKS), ('val', VAL_IMAGES, VAL_MASKS),
        ('test', TEST_IMAGES, TEST_MASKS))}

    def copy(image_id, split):
        images, masks = pairs[split]
        shutil.copy(raw / TRAIN_IMAGES / f'{image_id}.jpg', images)
        shutil.copy(raw / TRAIN_MASKS / f'{image_id}_segmentation.png', masks)

    copy('ISIC_0000000', 'test')
    copy('ISIC_0000001', 'val')
    copy('ISIC_0000001', 'test')
    broken = raw / TRAIN_IMAGES / 'ISIC_0000000.jpg'
    Image.open(broken).transpose(Image.FLIP_LEFT_RIGHT).save(
        broken.with_suffix('.png'))
    broken.write_bytes(broken.read_bytes()[:40])
    (raw / TRAIN_MASKS / 'ISIC_0000001_segmentation.png').unlink()

    summary = isic.convert(raw, tmp_path / 'out', workers=1)
    printed = capsys.readouterr().out
    out = tmp_path / 'out'
    assert 'ISIC_0000000' in _split(out, 'official_test')
    assert 'ISIC_0000001' in _split(out, 'official_val')
    assert 'ISIC_0000001' not in _split(out, 'official_test')
    for image_id in ('ISIC_0000000', 'ISIC_0000001'):
        assert image_id not in _split(out, 'official_train')
    assert (out / 'images' / 'ISIC_0000000.jpg').read_bytes() == (
        raw / TEST_IMAGES / 'ISIC_0000000.jpg').read_bytes()
    records = {(r['split'], r['id']): r for r in summary['skipped']}
    assert set(records) == {('train', 'ISIC_0000000'),
                            ('train', 'ISIC_0000001'),
                            ('test', 'ISIC_0000001')}
    first = records[('train', 'ISIC_0000000')]
    assert first['reason'] == 'unreadable image'
    assert first['detail'].endswith(
        '; the pair of split test (the id is also there) is converted '
        'instead')
    assert records[('train', 'ISIC_0000001')]['reason'] == 'missing mask'
    assert records[('train', 'ISIC_0000001')]['detail'].endswith(
        'the pair of split val (the id is also there) is converted instead')
    assert records[('test', 'ISIC_0000001')]['detail'] == (
        'id also in split val, with the same photo, byte for byte; the pair '
        'of val is converted, this one is not, so that the id is in one '
        'split only')
    [ignored] = summary['duplicate_files']
    assert ignored['detail'] == (
        f'ignored; {TRAIN_IMAGES}/ISIC_0000000.jpg, the file used for this '
        'id, was skipped with its pair (see skipped); the id is converted '
        'from its pair of split test')
    assert 'no file of that id was converted' not in printed
    assert ('WARNING: 1 file ignored: each has the id of another file with '
            'other content, the first one found, whose pair was skipped (see '
            'skipped above); the id is converted from its pair of another '
            'split') in printed


def test_an_image_too_small_to_resize_is_named_and_strict_refuses(
        tmp_path, capsys):
    """A 1x1 photo with a 1x1 mask (or any side below MIN_IMAGE_SIDE) is
    converted as given, named with its size in a warning and in meta.json,
    and refused by --strict; a side of MIN_IMAGE_SIDE is not named."""
    raw = _make_raw(tmp_path / 'raw', num_train=4, num_val=2, num_test=2,
                    size=(16, 12))
    side = isic.MIN_IMAGE_SIDE
    for folders, image_id, (width, height) in (
            ((TRAIN_IMAGES, TRAIN_MASKS), 'ISIC_0000000', (1, 1)),
            ((TRAIN_IMAGES, TRAIN_MASKS), 'ISIC_0000001', (side, side)),
            ((TEST_IMAGES, TEST_MASKS), 'ISIC_0000006', (side - 1, 20))):
        Image.new('RGB', (width, height), (200, 120, 90)).save(
            raw / folders[0] / f'{image_id}.jpg')
        Image.new('L', (width, height), 255).save(
            raw / folders[1] / f'{image_id}_segmentation.png')

    summary = isic.convert(raw, tmp_path / 'out', workers=1)
    printed = capsys.readouterr().out
    small = [(r['split'], r['id'], r['size']) for r in
             summary['small_images']]
    assert small == [('train', 'ISIC_0000000', [1, 1]),
                     ('test', 'ISIC_0000006', [side - 1, 20])]
    assert (f'WARNING: 2 images smaller than {side} pixels a side: '
            f'{TRAIN_IMAGES}/ISIC_0000000.jpg (train, 1x1), '
            f'{TEST_IMAGES}/ISIC_0000006.jpg (test, {side - 1}x20): resized '
            'to the 256x256 input') in printed
    out = tmp_path / 'out'
    assert 'ISIC_0000006' in _split(out, 'official_test')
    assert _mask(out / 'masks' / 'ISIC_0000000.png').tolist() == [[1]]
    with pytest.raises(isic.StrictModeError,
                       match=f'2 images smaller than {side} pixels a side'):
        isic.convert(raw, tmp_path / 'strict', strict=True, workers=1,
                     verbose=False)
    assert not (tmp_path / 'strict').exists()


def test_a_mask_without_lesion_or_background_is_named_and_strict_refuses(
        tmp_path, capsys):
    """A blank mask (no lesion pixel: a placeholder) or one of lesion alone
    is converted as given, named in a warning and in meta.json, and
    refused by --strict; the masks of the official downloads each outline
    a lesion on its background."""
    raw = _make_raw(tmp_path / 'raw', num_train=4, num_val=2, num_test=2,
                    size=(16, 12))
    for folder, image_id, value in ((TEST_MASKS, 'ISIC_0000006', 0),
                                    (TRAIN_MASKS, 'ISIC_0000002', 255)):
        Image.new('L', (16, 12), value).save(
            raw / folder / f'{image_id}_segmentation.png')

    summary = isic.convert(raw, tmp_path / 'out', workers=1)
    printed = capsys.readouterr().out
    assert [(r['split'], r['id'], r['detail'])
            for r in summary['uniform_masks']] == [
        ('train', 'ISIC_0000002', 'no background pixel'),
        ('test', 'ISIC_0000006', 'no lesion pixel')]
    assert ('WARNING: 2 masks of one value (no lesion pixel, or no '
            f'background pixel): {TRAIN_MASKS}/ISIC_0000002_segmentation.png '
            '(train, no background pixel), '
            f'{TEST_MASKS}/ISIC_0000006_segmentation.png (test, no lesion '
            'pixel): each ISIC Task 1 mask outlines a lesion') in printed
    out = tmp_path / 'out'
    assert not _mask(out / 'masks' / 'ISIC_0000006.png').any()
    assert 'ISIC_0000006' in _split(out, 'official_test')
    with pytest.raises(isic.StrictModeError, match='2 masks of one value'):
        isic.convert(raw, tmp_path / 'strict', strict=True, workers=1,
                     verbose=False)
    assert not (tmp_path / 'strict').exists()


def test_the_progress_lines_count_every_pair_checked(tmp_path):
    """``checking N pairs`` counts the first pair of each id; each later
    round (pairs of ids whose earlier pair was skipped) says how many it
    checks, so the lines add up to the pairs checked."""
    raw = _make_raw(tmp_path / 'raw', num_train=5, num_val=1, num_test=1,
                    size=(16, 12))
    for image_id in ('ISIC_0000000', 'ISIC_0000001'):
        # In train broken, in test whole: the test pair is checked later.
        shutil.copy(raw / TRAIN_IMAGES / f'{image_id}.jpg', raw / TEST_IMAGES)
        shutil.copy(raw / TRAIN_MASKS / f'{image_id}_segmentation.png',
                    raw / TEST_MASKS)
        broken = raw / TRAIN_IMAGES / f'{image_id}.jpg'
        broken.write_bytes(broken.read_bytes()[:40])
    result = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f'ISIC 2017: checking 7 pairs from {raw}'
    assert lines[1] == ('  checking 2 more pairs: of ids whose pair in an '
                        'earlier split or spelling was skipped')
    assert json.loads((tmp_path / 'out' / 'meta.json').read_text())[
        'counts']['official_test'] == 3


def test_ids_that_differ_in_letter_case_alone_are_one_file(tmp_path):
    """ISIC_x and isic_x are one file name on Windows and macOS, where one
    pair overwrote the other (listed under both ids): the first valid pair
    of the two is converted, the other skipped naming it, in one split or
    across splits."""
    raw = _make_raw(tmp_path / 'raw', num_train=4, num_val=2, num_test=2,
                    size=(16, 12))
    for (images, masks), source, spelled in (
            ((TEST_IMAGES, TEST_MASKS), 'ISIC_0000002', 'isic_0000001'),
            ((TRAIN_IMAGES, TRAIN_MASKS), 'ISIC_0000003', 'isic_0000003')):
        shutil.copy(raw / TRAIN_IMAGES / f'{source}.jpg',
                    raw / images / f'{spelled}.jpg')
        shutil.copy(raw / TRAIN_MASKS / f'{source}_segmentation.png',
                    raw / masks / f'{spelled}_segmentation.png')
    broken = raw / TRAIN_IMAGES / 'ISIC_0000003.jpg'
    broken.write_bytes(broken.read_bytes()[:40])

    summary = isic.convert(raw, tmp_path / 'out', workers=1, verbose=False)
    out = tmp_path / 'out'
    for folder in ('images', 'masks'):
        names = [path.name.casefold() for path in (out / folder).iterdir()]
        assert len(names) == len(set(names))
    listed = [i.casefold() for name in ('official_train', 'official_val',
                                        'official_test')
              for i in _split(out, name)]
    assert len(listed) == len(set(listed))
    assert 'isic_0000003' in _split(out, 'official_train')
    records = {(r['split'], r['id']): r for r in summary['skipped']}
    assert set(records) == {('train', 'ISIC_0000003'),
                            ('test', 'isic_0000001')}
    assert records[('test', 'isic_0000001')]['detail'] == (
        'id ISIC_0000001 of split train, with another photo, differs from '
        'this one in letter case alone, one file name on Windows and macOS, '
        'where one pair would overwrite the other; the pair of train is '
        'converted, this one is not; rename one of them to convert both')
    assert records[('train', 'ISIC_0000003')]['detail'].endswith(
        '; the pair of train spelled isic_0000003 (one file name on Windows '
        'and macOS) is converted instead')


def test_ids_of_one_name_on_macos_or_no_name_on_windows(tmp_path):
    """An id in NFC and the same id in NFD (``café``: one file name on
    macOS, where one pair would be written over the other) are one id,
    as ids that differ in letter case are; an id that is a Windows device
    name (``CON``, ``lpt1.v2``, any letter case and extension), which
    Windows cannot write as ``images/CON.jpg``, is an unsafe id."""
    raw = _make_raw(tmp_path / 'raw', num_train=5, num_val=2, num_test=2,
                    size=(16, 12))
    nfc = unicodedata.normalize('NFC', 'ISIC_caf\u00e9')
    nfd = unicodedata.normalize('NFD', nfc)
    for (images, masks), source, new in (
            ((TRAIN_IMAGES, TRAIN_MASKS), 'ISIC_0000001', nfc),
            ((TEST_IMAGES, TEST_MASKS), 'ISIC_0000007', nfd),
            ((TRAIN_IMAGES, TRAIN_MASKS), 'ISIC_0000002', 'CON'),
            ((TRAIN_IMAGES, TRAIN_MASKS), 'ISIC_0000003', 'lpt1.v2')):
        (raw / images / f'{source}.jpg').rename(raw / images / f'{new}.jpg')
        (raw / masks / f'{source}_segmentation.png').rename(
            raw / masks / f'{new}_segmentation.png')

    summary = isic.convert(raw, tmp_path / 'out', workers=1, verbose=False)
    out = tmp_path / 'out'
    written = [unicodedata.normalize('NFC', path.stem)
               for path in (out / 'images').iterdir()]
    assert written.count(nfc) == 1 and 'CON' not in written
    assert nfc in _split(out, 'official_train')
    assert nfd not in _split(out, 'official_test')
    records = {(r['split'], r['id']): r for r in summary['skipped']}
    assert set(records) == {('test', nfd), ('train', 'CON'),
                            ('train', 'lpt1.v2')}
    assert records[('test', nfd)]['detail'] == (
        f'id {nfc} of split train, with another photo, differs from this '
        'one in Unicode normalisation (NFC, NFD) alone, one file name on '
        'macOS, where one pair would overwrite the other; the pair of '
        'train is converted, this one is not; rename one of them to '
        'convert both')
    for image_id, device in (('CON', 'CON'), ('lpt1.v2', 'LPT1')):
        record = records[('train', image_id)]
        assert record['reason'] == 'unsafe id'
        assert record['detail'] == (
            f'{device} is a Windows device name (CON, PRN, AUX, NUL, '
            'COM1-9, LPT1-9), which no file on Windows may be named, with '
            f'any extension: {ascii(image_id)}; rename the image and its '
            'mask')


def test_an_id_as_jpg_and_png_is_one_pair_with_an_ignored_file(tmp_path):
    """ISIC_x.jpg and ISIC_x.png of one id: the pair was written (from the
    .jpg) but also counted as a skipped pair, with the warning that the
    lightweight split is not the complete download's. Now the pair counts
    as written and meta.json names the file used and the one ignored."""
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=2, num_test=2)
    jpg = raw / TRAIN_IMAGES / 'ISIC_0000001.jpg'
    Image.open(jpg).transpose(Image.FLIP_LEFT_RIGHT).save(
        jpg.with_suffix('.png'))

    result = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert result.returncode == 0, result.output
    out = tmp_path / 'out'
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['skipped'] == []
    assert meta['skipped_by_reason'] == {}
    assert meta['counts']['official_train'] == 3
    assert 'ISIC_0000001' in _split(out, 'official_train')
    assert len(_split(out, 'lightweight_train') +
               _split(out, 'lightweight_test')) == 5
    [record] = meta['duplicate_files']
    assert record['split'] == 'train' and record['id'] == 'ISIC_0000001'
    assert record['reason'] == 'duplicate file'
    assert record['file'].endswith(f'{TRAIN_IMAGES}/ISIC_0000001.png')
    assert (f'{TRAIN_IMAGES}/ISIC_0000001.jpg is the file used for this id'
            in record['detail'])
    assert 'skipped: 0' in result.stdout
    assert 'duplicate files ignored: 1 (duplicate file: 1)' in result.stdout
    assert 'pair skipped' not in result.stdout
    assert 'pairs skipped' not in result.stdout
    assert 'WARNING: 1 file ignored' in result.stdout
    # The pair is the .jpg's (converted byte for byte).
    assert (out / 'images' / 'ISIC_0000001.jpg').read_bytes() == \
        jpg.read_bytes()
    # --strict still refuses an id with two different files.
    strict = run_converter(raw, tmp_path / 'strict', '--strict')
    assert strict.returncode == 2
    assert ('1 duplicate file with other content than the file used for '
            'their id') in strict.output
    assert not (tmp_path / 'strict').exists()


def test_an_ignored_duplicate_of_a_skipped_first_file_is_not_said_converted(
        tmp_path):
    """ISIC_x.jpg unreadable beside a different ISIC_x.png: the pair was
    skipped, yet the .png's record said the .jpg "is the file used for this
    id" and the warning that "the first one found was converted"."""
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=2, num_test=2)
    jpg = raw / TRAIN_IMAGES / 'ISIC_0000001.jpg'
    Image.open(jpg).transpose(Image.FLIP_LEFT_RIGHT).save(
        jpg.with_suffix('.png'))
    jpg.write_bytes(jpg.read_bytes()[:40])  # truncated: unreadable

    result = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert result.returncode == 0, result.output
    meta = json.loads((tmp_path / 'out' / 'meta.json').read_text())
    assert [(r['id'], r['reason']) for r in meta['skipped']] == [
        ('ISIC_0000001', 'unreadable image')]
    [record] = meta['duplicate_files']
    assert record['file'].endswith(f'{TRAIN_IMAGES}/ISIC_0000001.png')
    assert record['detail'].endswith(
        f'{TRAIN_IMAGES}/ISIC_0000001.jpg, the file used for this id, was '
        'skipped with its pair (see skipped): no file of this id was '
        'converted')
    assert 'was converted' not in result.stdout.replace(
        'no file of this id was converted', '').replace(
        'no file of that id was converted', '')
    assert ('WARNING: 1 file ignored: each has the id of another file '
            'with other content, the first one found, whose pair was '
            'skipped (see skipped above): no file of that id was converted'
            in result.stdout)


def test_a_zip_kept_beside_its_extracted_folder_converts_strictly(tmp_path):
    """The zips kept beside their extracted folders counted every pair as a
    skipped duplicate: a warning that the split is not the complete
    download's, and --strict refused the set, though every pair was
    written. Identical copies are now one file."""
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=2, num_test=2)
    alone = run_converter(raw, tmp_path / 'alone', '--strict')
    assert alone.returncode == 0, alone.output
    for folder in (TRAIN_IMAGES, TRAIN_MASKS, VAL_IMAGES, VAL_MASKS):
        _zip_folder(raw, folder)
    both = run_converter(raw, tmp_path / 'both', '--strict')
    assert both.returncode == 0, both.output
    assert 'WARNING' not in both.output
    meta = json.loads((tmp_path / 'both' / 'meta.json').read_text())
    assert meta['skipped'] == []
    for folder in ('images', 'masks', 'splits'):
        assert tree_hashes(tmp_path / 'both' / folder) == tree_hashes(
            tmp_path / 'alone' / folder)


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


def test_a_download_of_another_year_than_year_asked_is_named(
        tmp_path, capsys):
    """An ISIC 2018 download given with year 2017 is refused naming the
    year its folders are of, and each folder is noted as that year's."""
    raw = _make_raw(tmp_path / 'raw', year=2018, num_train=2, num_val=1,
                    num_test=1, size=(16, 12))
    with pytest.raises(isic.ConversionError) as refused:
        isic.convert(raw, tmp_path / 'out', year=2017, workers=1)
    assert str(refused.value).endswith(
        '; it holds official ISIC 2018 folders or zips: give that year '
        'with --year, or leave --year out to have the year recognised')
    printed = capsys.readouterr().out
    assert ('note: ignored ISIC2018_Task1_Training_GroundTruth (an '
            'official ISIC 2018 folder or zip name, not one of ISIC 2017)'
            in printed)
    assert not (tmp_path / 'out').exists()


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

    # --overwrite replaces an earlier conversion only: a folder of other
    # files (a raw download, photos) was deleted without a word, exit 0.
    result = run_converter(raw, out, '--overwrite')
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f'ERROR: {out} is not an earlier conversion (it has no meta.json '
        'written by tools/dataset_converters/isic.py); --overwrite replaces '
        'only an earlier conversion: give OUT a new or empty folder; nothing '
        'was replaced')
    assert sorted(p.name for p in out.iterdir()) == ['keep.txt']
    assert _leftovers(tmp_path) == []
    # Another raw download as OUT (arguments mixed up) is kept too.
    other_raw = _make_raw(
        tmp_path / 'raw2', num_train=2, num_val=1, num_test=1, size=(16, 12))
    before = tree_hashes(other_raw)
    result = run_converter(raw, other_raw, '--overwrite')
    assert result.returncode == 2 and 'not an earlier conversion' in \
        result.stderr
    assert tree_hashes(other_raw) == before

    (out / 'keep.txt').unlink()
    assert run_converter(raw, out).returncode == 0
    result = run_converter(raw, out, '--overwrite', '--seed', '4')
    assert result.returncode == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        'images', 'masks', 'meta.json', 'splits'
    ]
    assert json.loads((out / 'meta.json').read_text())['seed'] == 4
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


def _without_meta(folder):
    """SHA-256 of the converted files, less meta.json (it names SRC)."""
    files = tree_hashes(folder)
    files.pop('meta.json')
    return files


def test_linked_subfolders_are_read_once(tmp_path):
    # Pairs kept elsewhere behind links inside the official folders were
    # not read (os.walk does not follow links): dropped without a word,
    # exit 0 even with --strict.
    plain = _make_raw(tmp_path / 'plain')
    raw = _make_raw(tmp_path / 'raw')
    elsewhere = tmp_path / 'elsewhere'
    for folder, pattern in ((TRAIN_IMAGES, 'ISIC_000000[34].*'),
                            (TRAIN_MASKS, 'ISIC_000000[34]_*')):
        (elsewhere / folder).mkdir(parents=True)
        for path in (raw / folder).glob(pattern):
            path.rename(elsewhere / folder / path.name)
        (raw / folder / 'more').symlink_to(elsewhere / folder)
    # A loop and a second link to a folder read already add nothing.
    (raw / TRAIN_IMAGES / 'again').symlink_to('.')
    (raw / TRAIN_MASKS / 'more2').symlink_to(elsewhere / TRAIN_MASKS)
    result = run_converter(raw, tmp_path / 'out', '--strict', '--workers',
                           '1')
    assert result.returncode == 0, result.output
    assert 'pairs written: train 6, val 2, test 3' in result.stdout
    for note in (
            f'note: ignored folder {TRAIN_IMAGES}/again: the same folder as '
            f'{TRAIN_IMAGES} (through a link), already read',
            f'note: ignored folder {TRAIN_MASKS}/more2: the same folder as '
            f'{TRAIN_MASKS}/more (through a link), already read'):
        assert note in result.stdout.splitlines()
    assert run_converter(plain, tmp_path / 'plain_out', '--workers',
                         '1').returncode == 0
    assert _without_meta(tmp_path / 'out') == \
        _without_meta(tmp_path / 'plain_out')


def test_a_folder_that_cannot_be_listed_is_named(tmp_path, monkeypatch):
    # os.walk passed over a folder it could not list (no permission)
    # without a word: its pairs were dropped, exit 0 even with --strict.
    raw = _make_raw(tmp_path / 'raw')
    for folder, name in ((TRAIN_IMAGES, 'ISIC_0000001.jpg'),
                         (TRAIN_MASKS, 'ISIC_0000001_segmentation.png')):
        (raw / folder / 'sub').mkdir()
        (raw / folder / name).rename(raw / folder / 'sub' / name)
    real_scandir = os.scandir

    def scandir(path='.'):
        # The machine runs as root, where chmod cannot deny a listing.
        if isinstance(path, (str, os.PathLike)) and Path(path).name == 'sub':
            raise PermissionError(errno.EACCES, 'Permission denied',
                                  os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, 'scandir', scandir)
    unread = [f'{TRAIN_IMAGES}/sub: Permission denied',
              f'{TRAIN_MASKS}/sub: Permission denied']
    text = f'2 folders could not be read ({", ".join(unread)})'
    lenient = _converted_only_without_strict(raw, tmp_path, text)
    lines = lenient.stdout.splitlines()
    for folder in unread:
        assert (f'warning: split train: cannot read folder {folder}; the '
                'files in it are not converted') in lines
    assert (f'  WARNING: {text}: the pairs in them are in no split, so the '
            'splits are not those of the complete download (--strict '
            'refuses to write such a set)') in lines
    meta = json.loads((tmp_path / 'out' / 'meta.json').read_text())
    assert meta['unread_folders'] == unread
    assert meta['counts']['official_train'] == 5


@pytest.mark.parametrize('num_train,num_val', [(5, 1), (3, 1)])
def test_2016_holds_out_a_validation_pair_of_few(tmp_path, num_train,
                                                 num_val):
    # round(0.1 * n) is 0 up to 5 pairs: official_val.txt was written
    # empty without a word, exit 0. (Fewer than 3 train pairs are refused:
    # test_too_few_train_val_pairs_for_the_splits_are_refused.)
    raw = _make_raw(
        tmp_path / 'raw',
        year=2016,
        num_train=num_train,
        num_val=0,
        num_test=1,
        size=(16, 12))
    result = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert result.returncode == 0, result.output
    out = tmp_path / 'out'
    train, val = _split(out, 'official_train'), _split(out, 'official_val')
    assert (len(train), len(val)) == (num_train - num_val, num_val)
    assert sorted(train + val) == [f'ISIC_{i:07d}' for i in range(num_train)]
    meta = json.loads((out / 'meta.json').read_text())
    assert (f'{num_val} of the {num_train} official train pairs '
            f'(round(0.1 * {num_train}) = 0, raised to 1) held out'
            ) in meta['official_val_rule']
    # A real download (900 pairs) is split as before, its rule unchanged.
    ids = {'train': [f'ISIC_{i:07d}' for i in range(900)]}
    splits, val_rule, _, _ = isic._make_splits(2016, ids, 0, 0.7)
    order = np.random.default_rng(0).permutation(900)
    assert splits['official_val'] == sorted(ids['train'][i]
                                            for i in order[:90])
    assert '90 of the 900 official train pairs (round(0.1 * 900)) held ' \
        'out' in val_rule


def test_zip_members_named_with_backslashes(tmp_path):
    # Old Windows tools wrote "Folder\ISIC_x.jpg": every pair was skipped
    # as "unsafe id ... path separator; rename the image and its mask".
    kwargs = dict(num_train=3, num_val=1, num_test=1, as_zip=True)
    slashes = _make_raw(tmp_path / 'slashes', **kwargs)
    raw = _make_raw(tmp_path / 'raw', **kwargs)
    for archive_path in sorted(raw.glob('*.zip')):
        with zipfile.ZipFile(archive_path) as archive:
            entries = [(info.filename, archive.read(info))
                       for info in archive.infolist()]
        with zipfile.ZipFile(archive_path, 'w') as archive:
            archive.writestr(f'{archive_path.stem}\\', b'')  # a folder
            for name, data in entries:
                archive.writestr(name.replace('/', '\\'), data)
    result = run_converter(raw, tmp_path / 'out', '--strict', '--workers',
                           '1')
    assert result.returncode == 0, result.output
    assert run_converter(slashes, tmp_path / 'slashes_out', '--workers',
                         '1').returncode == 0
    assert _without_meta(tmp_path / 'out') == \
        _without_meta(tmp_path / 'slashes_out')
    # ".." parts reach nothing: members are never extracted, and the id is
    # the last part.
    dotted = shutil.copytree(raw, tmp_path / 'dotted')
    for archive_path, suffix in ((dotted / f'{TRAIN_IMAGES}.zip', '.jpg'),
                                 (dotted / f'{TRAIN_MASKS}.zip',
                                  '_segmentation.png')):
        with zipfile.ZipFile(archive_path, 'a') as archive:
            data = archive.read(f'{archive_path.stem}\\ISIC_0000000{suffix}')
            archive.writestr(f'..\\..\\ISIC_0000009{suffix}', data)
    result = run_converter(dotted, tmp_path / 'dots', '--workers', '1')
    assert result.returncode == 0, result.output
    assert 'pairs written: train 4, val 1, test 1' in result.stdout
    dots = tmp_path / 'dots'
    for name in ('images/ISIC_0000009.jpg', 'masks/ISIC_0000009.png'):
        assert (dots / name).read_bytes() == \
            (dots / name.replace('09.', '00.')).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'dots', 'dotted', 'out', 'raw', 'slashes', 'slashes_out'
    ]


@pytest.mark.parametrize('kind', ['empty file', 'zip without .zip'])
def test_a_file_with_an_official_folder_name_is_named(tmp_path, kind):
    # A broken download (a file where the folder goes) was noted as "not an
    # official ISIC 2017 folder or zip name", though the name is one.
    raw = _make_raw(tmp_path / 'raw')
    target = raw / VAL_IMAGES
    if kind == 'empty file':
        why = (f'a file of 0 bytes, not a folder or zip; ISIC 2017 data is '
               f'read from a folder of this name or from {VAL_IMAGES}.zip')
        shutil.rmtree(target)
        target.write_bytes(b'')
    else:
        why = (f'a zip file without the .zip ending; rename it to '
               f'{VAL_IMAGES}.zip to have it read')
        zipped = raw / 'val.zip'
        with zipfile.ZipFile(zipped, 'w') as archive:
            for path in sorted(target.iterdir()):
                archive.write(path, arcname=f'{VAL_IMAGES}/{path.name}')
        shutil.rmtree(target)
        zipped.rename(target)
    result = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert result.returncode == 0, result.output
    assert f'note: ignored {VAL_IMAGES} ({why})' in result.stdout.splitlines()
    if kind != 'empty file':
        target.rename(raw / f'{VAL_IMAGES}.zip')  # as the note advises
        renamed = run_converter(raw, tmp_path / 'renamed', '--strict',
                                '--workers', '1')
        assert renamed.returncode == 0, renamed.output
        assert 'pairs written: train 6, val 2, test 3' in renamed.stdout


def test_a_zip_changed_between_two_conversions_in_one_process_is_read_anew(
        tmp_path):
    # The zip handles of a conversion stayed open in the process: a second
    # conversion (a notebook, the API) read the zip as it was the first
    # time, though its file had been replaced since.
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=1, num_test=1,
                    as_zip=True)
    first = run_converter(raw, tmp_path / 'first', '--workers', '1')
    assert first.returncode == 0, first.output
    archive_path = raw / f'{TRAIN_IMAGES}.zip'
    with zipfile.ZipFile(archive_path) as archive:
        entries = [(info.filename, archive.read(info))
                   for info in archive.infolist()]
    names = [name for name, _ in entries if name.endswith('.jpg')]
    # The same zip written anew, its first two images swapped.
    swapped = dict(entries)
    swapped[names[0]], swapped[names[1]] = swapped[names[1]], swapped[names[0]]
    archive_path.unlink()
    with zipfile.ZipFile(archive_path, 'w') as archive:
        for name, _ in entries:
            archive.writestr(name, swapped[name])
    second = run_converter(raw, tmp_path / 'second', '--workers', '1')
    assert second.returncode == 0, second.output
    ids = [Path(name).stem for name in names[:2]]
    for this, other in (ids, ids[::-1]):
        assert (tmp_path / 'second' / 'images' / f'{this}.jpg').read_bytes() \
            == (tmp_path / 'first' / 'images' / f'{other}.jpg').read_bytes()


def test_a_0_1_mask_beside_255_is_skipped_not_inverted(tmp_path):
    """A mask of 0/1 labels with some pixels at 255 (mmseg's ignore label)
    was taken for a soft 0/255 mask and re-binarised at 128: the lesion
    (1) became background and the ignored pixels lesion, listed as
    'fixed', exit 0."""
    raw = _make_raw(tmp_path / 'raw', num_train=4, num_val=1, num_test=1)
    path = raw / TRAIN_MASKS / 'ISIC_0000000_segmentation.png'
    labels = (_mask(path) > 0).astype(np.uint8)
    assert labels.any()
    labels[0, :] = 255
    _save_png(path, labels)
    out = tmp_path / 'out'
    result = run_converter(raw, out, '--workers', '1')
    assert result.returncode == 0, result.output
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['fixed'] == []
    skip, = meta['skipped']
    assert (skip['id'], skip['reason']) == ('ISIC_0000000',
                                            'mask values not binary')
    assert '(0, 1, 255)' in skip['detail']
    assert not (out / 'masks' / 'ISIC_0000000.png').exists()
    assert 'ISIC_0000000' not in _split(out, 'official_train')
    strict = run_converter(raw, tmp_path / 'strict', '--strict')
    assert strict.returncode == 2
    assert not (tmp_path / 'strict').exists()


def test_a_mask_drawn_in_its_alpha_channel_is_skipped(tmp_path):
    """An RGBA mask whose lesion is drawn in the alpha channel (opaque
    lesion on a transparent ground, white pixels everywhere, as layers are
    often exported) lost its alpha when reduced to one channel: written as
    all lesion and listed as 'fixed', exit 0. A transparency that says
    what the gray values say is still dropped."""
    raw = _make_raw(tmp_path / 'raw', num_train=4, num_val=1, num_test=1)
    lesion = {}
    for i in (0, 1):
        path = raw / TRAIN_MASKS / f'ISIC_000000{i}_segmentation.png'
        lesion[i] = _mask(path) == 255
        assert lesion[i].any() and not lesion[i].all()
        alpha = np.where(lesion[i], 255, 0).astype(np.uint8)
        gray = np.full_like(alpha, 255) if i == 0 else alpha
        rgba = np.stack([gray, gray, gray, alpha], axis=-1)
        _save_png(path, rgba)
    out = tmp_path / 'out'
    result = run_converter(raw, out, '--workers', '1')
    assert result.returncode == 0, result.output
    meta = json.loads((out / 'meta.json').read_text())
    skip, = meta['skipped']
    assert (skip['id'], skip['reason']) == ('ISIC_0000000',
                                            'unsupported mask')
    assert 'alpha channel' in skip['detail']
    assert not (out / 'masks' / 'ISIC_0000000.png').exists()
    assert (_mask(out / 'masks' / 'ISIC_0000001.png') == lesion[1]).all()


def test_overwrite_refuses_a_folder_of_data_sets(tmp_path):
    """``isic.py RAW data --overwrite`` (OUT without its last part, as for
    data/isic2017) replaced the whole folder, every converted data set in
    it, exit 0. An earlier conversion itself is still replaced."""
    raw = _make_raw(
        tmp_path / 'raw', num_train=2, num_val=1, num_test=1, size=(16, 12))
    data = tmp_path / 'data'
    first = run_converter(raw, data / 'isic2017')
    assert first.returncode == 0, first.output
    (data / 'notes.txt').write_text('mine')
    before = tree_hashes(data)
    result = run_converter(raw, data, '--overwrite')
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f'ERROR: {data} holds converted data sets in its subfolders '
        '(isic2017); --overwrite replaces one earlier conversion, not a '
        f'folder of data sets: give OUT a folder of its own (such as '
        f'{data / "isic2017"}); nothing was replaced')
    assert tree_hashes(data) == before
    assert _leftovers(tmp_path) == []
    again = run_converter(raw, data / 'isic2017', '--overwrite', '--seed', '3')
    assert again.returncode == 0, again.output
    assert json.loads((data / 'isic2017' / 'meta.json').read_text())[
        'seed'] == 3


@pytest.mark.parametrize('num_train,num_val,empty', [
    (1, 1, 'lightweight_design_val'),
    (1, 0, 'lightweight_test, lightweight_design_val'),
])
def test_too_few_train_val_pairs_for_the_splits_are_refused(
        tmp_path, num_train, num_val, empty):
    """A download of one train pair (and one val pair) converted, exit 0,
    writing an empty lightweight_test.txt or lightweight_design_val.txt (a
    test or design run on it had nothing to score); a ratio leaving one
    pair in lightweight_train emptied the design hold-out the same way."""
    raw = _make_raw(tmp_path / 'raw', year=2018, num_train=num_train,
                    num_val=num_val, num_test=0)
    out = tmp_path / 'out'
    result = run_converter(raw, out, '--workers', '1')
    total = num_train + num_val
    assert result.returncode == 2, result.output
    assert result.stderr.splitlines()[-1] == (
        f'ERROR: only {total} train+val pair{"s" * (total > 1)} to split: '
        'lightweight train '
        f'1 / test {total - 1} (design hold-out: train 1 / val 0) leaves '
        f'{empty} empty; the lightweight split needs at least 3 train+val '
        'pairs (2 to train, with one held out for the design split, and 1 '
        'to test); give a download with more pairs; nothing written')
    assert not out.exists() and _leftovers(tmp_path) == []
    raw = _make_raw(tmp_path / 'raw5', year=2018, num_train=4, num_val=1,
                    num_test=0)
    result = run_converter(raw, out, '--train-ratio', '0.2', '--workers', '1')
    assert result.returncode == 2, result.output
    assert result.stderr.splitlines()[-1] == (
        'ERROR: train ratio 0.2 puts 1 of the 5 train+val pairs into '
        'lightweight_train (lightweight train 1 / test 4 (design hold-out: '
        'train 1 / val 0)), so lightweight_design_val would be empty; choose '
        'a --train-ratio that leaves at least 2 pairs in lightweight_train '
        'and 1 in lightweight_test')
    assert not out.exists() and _leftovers(tmp_path) == []
    # Three pairs fill every split.
    result = run_converter(raw, out, '--train-ratio', '0.4', '--workers', '1')
    assert result.returncode == 0, result.output
    assert all(_split(out, name) for name in isic.LIGHTWEIGHT_SPLIT_NAMES)


def test_two_pairs_are_refused_as_too_few_whatever_the_ratio(tmp_path):
    """Two train+val pairs with --train-ratio 0.9 were refused with
    'choose a ratio that leaves at least one pair in each', advice no ratio
    can follow (three pairs are needed)."""
    raw = _make_raw(tmp_path / 'raw', year=2018, num_train=1, num_val=1,
                    num_test=0)
    out = tmp_path / 'out'
    result = run_converter(raw, out, '--train-ratio', '0.9', '--workers', '1')
    assert result.returncode == 2, result.output
    last = result.stderr.splitlines()[-1]
    assert last.startswith('ERROR: only 2 train+val pairs to split: '
                           'lightweight train 2 / test 0 '), last
    assert 'needs at least 3 train+val pairs' in last
    assert 'choose a ratio' not in last
    assert not out.exists() and _leftovers(tmp_path) == []


def test_palette_masks_are_read_by_their_binary_indices(tmp_path):
    """A palette mask with indices 0/1 and a black and a dark red entry
    (PASCAL VOC style, as label tools save them) was read by its gray
    values (0, 38) and skipped as ``mask values not binary``, exit 0; its
    indices are the labels (mmseg's LoadAnnotations trains on them). A
    palette that draws index 0 brighter than index 1 contradicts the
    indices and is skipped as ambiguous, naming both colours."""
    raw = _make_raw(tmp_path / 'raw')
    masks = raw / TRAIN_MASKS
    ids = sorted(p.name[:-len('_segmentation.png')]
                 for p in masks.glob('*_segmentation.png'))
    kept = {}
    for index, palette in ((0, [0, 0, 0, 128, 0, 0]),
                           (1, [255, 255, 255, 0, 0, 0])):
        path = masks / f'{ids[index]}_segmentation.png'
        labels = (np.asarray(Image.open(path)) == 255).astype(np.uint8)
        kept[index] = labels
        picture = Image.fromarray(labels, mode='P')
        picture.putpalette(palette)
        picture.save(path)
    out = tmp_path / 'out'
    result = run_converter(raw, out, '--workers', '1')
    assert result.returncode == 0, result.output
    assert np.array_equal(_mask(out / 'masks' / f'{ids[0]}.png'), kept[0])
    meta = json.loads((out / 'meta.json').read_text())
    fixed = next(r for r in meta['fixed'] if r['id'] == ids[0])
    assert fixed['detail'] == ('P mask: palette indices 0/1 used as labels '
                               '(index 0, (0, 0, 0): background; index 1, '
                               '(128, 0, 0): lesion)')
    skipped = next(r for r in meta['skipped'] if r['id'] == ids[1])
    assert skipped['reason'] == 'ambiguous palette mask'
    assert skipped['detail'].startswith(
        'P mask with indices 0/1 whose palette draws index 0 (background '
        'as labels) as (255, 255, 255), not darker than index 1 (lesion), '
        '(0, 0, 0)')
    assert not (out / 'masks' / f'{ids[1]}.png').exists()


def test_the_splits_are_the_documented_permutations():
    """meta.json says how each lightweight list was drawn; the lists are
    exactly that: the sorted train+val ids (val ids sorting first here, so
    that an unsorted pool differs) permuted by ``default_rng(seed)``, and
    the design hold-out drawn from lightweight_train by its own stream,
    ``default_rng([seed, 1])``, not the stream of the train/test split."""
    written = {'train': [f'b{i:03d}' for i in range(30)],
               'val': [f'a{i:03d}' for i in range(10)],
               'test': ['c000']}
    splits, _, rule, design_rule = isic._make_splits(2018, written, 5, 0.7)
    pool = sorted(written['train'] + written['val'])
    order = np.random.default_rng(5).permutation(40)
    assert splits['lightweight_train'] == sorted(pool[i]
                                                 for i in order[:28])
    assert splits['lightweight_test'] == sorted(pool[i] for i in order[28:])
    assert rule == ('n_train = round(0.7 * 40) = 28; official train+val ids '
                    'sorted, shuffled with numpy.random.default_rng(5)'
                    '.permutation, first n_train -> train')
    train = splits['lightweight_train']
    held = np.random.default_rng([5, 1]).permutation(28)[:3]
    assert splits['lightweight_design_val'] == sorted(train[i] for i in held)
    assert splits['lightweight_design_train'] == sorted(
        set(train) - {train[i] for i in held})
    assert design_rule == (
        '3 of the 28 lightweight_train ids (round(0.1 * 28), at least 1) '
        'held out as lightweight_design_val with numpy.random.default_rng('
        '[5, 1]).permutation of the sorted ids; the rest is '
        'lightweight_design_train. Designs and settings are chosen on it; '
        'reported models train on all of lightweight_train')


def test_the_2016_hold_out_is_the_documented_permutation_of_its_seed():
    """official_val of ISIC 2016 is what its rule says: the sorted train
    ids permuted by ``default_rng(seed)``, the first round(0.1 * n) held
    out; another seed holds out others (the rule named the seed while the
    draw ignored it, and a mutant doing so survived)."""
    written = {'train': [f'ISIC_{i:07d}' for i in range(30, 0, -1)],
               'test': ['ISIC_1000000']}
    ids = sorted(written['train'])
    held = {}
    for seed in (0, 3):
        splits, val_rule, _, _ = isic._make_splits(2016, written, seed, 0.7)
        order = np.random.default_rng(seed).permutation(30)
        held[seed] = sorted(ids[i] for i in order[:3])
        assert splits['official_val'] == held[seed]
        assert splits['official_train'] == sorted(set(ids) - set(held[seed]))
        assert f'default_rng({seed})' in val_rule
    assert held[0] != held[3]


def test_the_literature_split_is_for_isic_2017_alone():
    """2150 train+val pairs of ISIC 2018 (or 2016) are split by the rule,
    round(0.7 * 2150) = 1505; the fixed 1500/650 is ISIC 2017's."""
    ids = [f'a{i:05d}' for i in range(2150)]
    # 2016 holds its validation pairs out of its train pairs.
    for year, written in ((2016, {'train': ids}),
                          (2018, {'train': ids[:2050], 'val': ids[2050:]})):
        splits, _, rule, _ = isic._make_splits(year, written, 0, 0.7)
        pool = len(splits['official_train']) + len(splits['official_val'])
        assert pool == 2150
        assert len(splits['lightweight_train']) == 1505
        assert 'round(0.7 * 2150) = 1505' in rule


def test_2016_with_one_train_pair_holds_none_out():
    """round(0.1 * 1) is 0 and one pair cannot fill both lists: it stays in
    official_train (the raise to one applies from two pairs)."""
    splits, val_rule, _, _ = isic._make_splits(
        2016, {'train': ['ISIC_0000000']}, 0, 0.7)
    assert (splits['official_train'], splits['official_val']) == (
        ['ISIC_0000000'], [])
    assert val_rule.startswith('ISIC 2016 has no validation set: 0 of the 1 '
                               'official train pairs (round(0.1 * 1)) held')
    splits, val_rule, _, _ = isic._make_splits(
        2016, {'train': ['ISIC_0000000', 'ISIC_0000001']}, 0, 0.7)
    assert (len(splits['official_train']), len(splits['official_val'])) == (
        1, 1)


def _pair_folders(tmp_path):
    """An output folder for ``isic._process_pair`` and a 24x32 photo
    ``tmp_path/x.jpg`` to pair with masks made beside it."""
    out = tmp_path / 'out'
    (out / 'images').mkdir(parents=True)
    (out / 'masks').mkdir()
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(
        tmp_path / 'x.jpg')
    return out


def _binary(values, mode=None):
    """``_mask_to_binary`` of a one-row mask of ``values``."""
    picture = Image.fromarray(np.asarray([values]), mode=mode)
    return isic._mask_to_binary(picture)


def test_soft_mask_thresholds_are_at_their_documented_values():
    """A soft mask is re-binarised at 128 (127 is background, 128 lesion)
    when at least 90 % of its pixels lie within 32 of 0 or 255 (0..32 and
    223..255, both ends included) and some lie near 255; 89 % is refused as
    not binary."""
    values = [32] * 45 + [223] * 45 + [127] * 5 + [128] * 5
    mask, fixes, problem, changed = _binary(np.asarray(values, np.uint8))
    assert problem is None and changed == 100
    assert mask[0].tolist() == [0] * 45 + [1] * 45 + [0] * 5 + [1] * 5
    assert fixes == [('soft mask re-binarised at 128',
                      '100 pixels were neither 0 nor 255')]
    values = [32] * 44 + [223] * 45 + [128] * 11
    mask, _, problem, _ = _binary(np.asarray(values, np.uint8))
    assert mask is None and problem[0] == 'mask values not binary'
    # One pixel is counted as one.
    _, fixes, _, changed = _binary(np.asarray([0, 255, 254], np.uint8))
    assert changed == 1 and fixes == [('soft mask re-binarised at 128',
                                       '1 pixel was neither 0 nor 255')]
    # 33 and 222 are not near either end.
    values = [33] * 45 + [222] * 45 + [0] * 5 + [255] * 5
    assert _binary(np.asarray(values, np.uint8))[0] is None


def test_a_16_bit_mask_is_rounded_to_8_bits():
    """16-bit values are scaled by 257 and rounded: 32839 (127.78 * 257)
    is 128, lesion after re-binarising; 32768 (127.502 * 257) is 128 too,
    32767 (127.498 * 257) is 127."""
    values = [0] * 60 + [65535] * 37 + [32839, 32768, 32767]
    mask, fixes, problem, _ = _binary(np.asarray(values, np.uint16))
    assert problem is None
    assert mask[0, -3:].tolist() == [1, 1, 0]
    assert mask[0, :97].tolist() == [0] * 60 + [1] * 37
    assert fixes[0] == ('16-bit mask scaled to 8-bit',
                        'I;16 mask scaled to 8-bit')


def test_mask_transparency_and_palette_boundaries():
    """A transparency that says what gray 128 and up says (opaque lesion,
    transparent background) is dropped, 128 counting as lesion; gray 127
    under an opaque alpha disagrees. A palette drawing index 0 exactly as
    bright as the lesion index is ambiguous."""
    gray = np.asarray([[128, 0]], np.uint8)
    alpha = np.asarray([[255, 0]], np.uint8)
    rgba = Image.fromarray(np.stack([gray, gray, gray, alpha], -1))
    assert isic._alpha_problem(rgba) is None
    gray = np.asarray([[127, 0]], np.uint8)
    rgba = Image.fromarray(np.stack([gray, gray, gray, alpha], -1))
    assert isic._alpha_problem(rgba)[0] == 'unsupported mask'
    picture = Image.fromarray(np.asarray([[0, 1]], np.uint8), mode='P')
    picture.putpalette([60, 60, 60, 60, 60, 60])
    mask, _, problem, _ = isic._mask_to_binary(picture)
    assert mask is None and problem[0] == 'ambiguous palette mask'
    picture.putpalette([59, 59, 59, 60, 60, 60])
    mask, _, problem, _ = isic._mask_to_binary(picture)
    assert problem is None and mask.tolist() == [[0, 1]]


def test_a_16_bit_mask_of_8_bit_values_is_not_scaled():
    """A 16-bit mask whose values stay within 0..255 (8-bit values saved
    as 16 bits) is read as those values, not divided by 257: 128 is
    lesion after re-binarising (divided, it was 0, background), and a
    gray picture of mid values is refused as not binary (divided, it
    was 0/1 labels)."""
    values = [0] * 50 + [255] * 40 + [128] * 10
    mask, fixes, problem, _ = _binary(np.asarray(values, np.uint16))
    assert problem is None
    assert mask[0].tolist() == [0] * 50 + [1] * 50
    assert [reason for reason, _ in fixes] == [
        '16-bit mask scaled to 8-bit', 'soft mask re-binarised at 128']
    mask, _, problem, _ = _binary(np.asarray([0, 100, 200, 255] * 25,
                                             np.uint16))
    assert mask is None and problem[0] == 'mask values not binary'


def test_palette_brightness_is_luma_and_a_missing_entry_is_no_contradiction():
    """Which palette entry is darker is judged by its luma (0.299 R +
    0.587 G + 0.114 B): pure blue (29.1) is darker than a dark green of
    G = 60 (35.2), so blue index 0 under green index 1 are labels (by the
    plain channel mean, 85 against 20, they were refused). Indices 0/255
    with a palette of two entries (none for 255) are labels; a third
    index (0/128/255) is no label map: read by its colours' gray values,
    so 128 drawn white is lesion."""
    picture = Image.fromarray(np.asarray([[0, 1]], np.uint8), mode='P')
    picture.putpalette([0, 0, 255, 0, 60, 0])
    mask, _, problem, _ = isic._mask_to_binary(picture)
    assert problem is None and mask.tolist() == [[0, 1]]
    picture.putpalette([0, 0, 255, 0, 58, 0])  # luma 29.1 against 34.0
    mask, _, problem, _ = isic._mask_to_binary(picture)
    assert problem is None and mask.tolist() == [[0, 1]]
    picture.putpalette([0, 0, 255, 0, 49, 0])  # 29.1 against 28.8
    mask, _, problem, _ = isic._mask_to_binary(picture)
    assert mask is None and problem[0] == 'ambiguous palette mask'
    picture = Image.fromarray(np.asarray([[0, 255]], np.uint8), mode='P')
    picture.putpalette([0, 0, 0, 255, 255, 255])
    mask, fixes, problem, _ = isic._mask_to_binary(picture)
    assert problem is None and mask.tolist() == [[0, 1]]
    assert 'index 255, absent from the palette: lesion' in fixes[0][1]
    picture = Image.fromarray(np.asarray([[0, 128, 255]], np.uint8),
                              mode='P')
    palette = [0, 0, 0] * 256
    palette[3 * 128:3 * 128 + 3] = palette[3 * 255:] = [255, 255, 255]
    picture.putpalette(palette)
    mask, fixes, problem, _ = isic._mask_to_binary(picture)
    assert problem is None and mask.tolist() == [[0, 1, 1]]
    assert fixes[0] == ('mask converted to one channel',
                        'P mask converted to grayscale')


def test_a_mask_alpha_short_of_opaque_must_agree_with_its_gray():
    """Only an alpha of 255 everywhere is dropped unseen; 254 is not
    opaque, so a background pixel (gray 0) under alpha 254 disagrees with
    its gray and the mask is refused."""
    gray = np.asarray([[255, 0]], np.uint8)
    alpha = np.asarray([[255, 254]], np.uint8)
    rgba = Image.fromarray(np.stack([gray, gray, gray, alpha], -1))
    assert isic._alpha_problem(rgba)[0] == 'unsupported mask'
    opaque = np.full_like(alpha, 255)
    rgba = Image.fromarray(np.stack([gray, gray, gray, opaque], -1))
    assert isic._alpha_problem(rgba) is None


def test_soft_mask_counts_and_channel_checks():
    """A soft mask's record counts the pixels that were neither 0 nor 255
    (3 here: 0s and 255s are not counted); an RGB mask is gray only when
    all three channels agree (yellow, equal red and green, is a colour
    mask); a 32-bit mask with a negative value is refused (as 8 bits,
    -1 was 255: lesion); an LA mask with an opaque alpha is converted."""
    values = [0] * 50 + [255] * 47 + [20, 128, 240]
    mask, fixes, problem, changed = _binary(np.asarray(values, np.uint8))
    assert problem is None and changed == 3
    assert mask[0].tolist() == [0] * 50 + [1] * 47 + [0, 1, 1]
    assert fixes == [('soft mask re-binarised at 128',
                      '3 pixels were neither 0 nor 255')]
    yellow = np.zeros((1, 2, 3), np.uint8)
    yellow[0, 1] = (255, 255, 0)
    mask, _, problem, _ = isic._mask_to_binary(Image.fromarray(yellow))
    assert mask is None
    assert problem == ('colour mask', 'RGB mask whose channels differ')
    mask, _, problem, _ = _binary(np.asarray([0, -1], np.int32), mode='I')
    assert mask is None
    assert problem == ('unsupported mask', 'negative values in I mask')
    # A gray mask with an opaque alpha (LA) is read by its gray values.
    gray_alpha = np.asarray([[[0, 255], [255, 255]]], np.uint8)
    mask, fixes, problem, _ = isic._mask_to_binary(
        Image.fromarray(gray_alpha, mode='LA'))
    assert problem is None and mask.tolist() == [[0, 1]]
    assert fixes == [('mask converted to one channel',
                      'LA mask converted to grayscale')]


def test_an_image_is_checked_before_it_is_loaded(tmp_path):
    """The converter loaded each image before the shared reader saw it, so
    the reader's checks of what loading drops did not run: a PGM of
    maximum value 100 saved under a ``.png`` name was converted as Pillow
    stretches it (16 of 100 as 41; mmcv reads 16), and a TIFF's turn went
    unrecorded (``image converted to RGB``, no orientation). Now the PGM
    is skipped as ``unsupported image`` and the turn is recorded."""
    rng = np.random.default_rng(0)
    (tmp_path / 'out' / 'images').mkdir(parents=True)
    (tmp_path / 'out' / 'masks').mkdir()
    values = rng.integers(0, 101, (24, 32)).astype(np.uint8)
    (tmp_path / 'pgm.png').write_bytes(b'P5\n32 24\n100\n' + values.tobytes())
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(tmp_path / 'm.png')
    Image.fromarray(values).save(tmp_path / 'turned.png', format='TIFF',
                                 tiffinfo={274: 6})
    Image.fromarray(np.zeros((32, 24), np.uint8)).save(tmp_path / 'mt.png')

    def convert(name, mask):
        return isic._process_pair(
            ('train', name, (str(tmp_path), f'{name}.png', False),
             (str(tmp_path), mask, False), str(tmp_path / 'out')))

    result = convert('pgm', 'm.png')
    assert not result['written']
    assert result['skip']['reason'] == 'unsupported image'
    assert 'PGM/PPM image with maximum value 100' in result['skip']['detail']
    assert not (tmp_path / 'out' / 'images' / 'pgm.jpg').exists()
    result = convert('turned', 'mt.png')
    assert result['written'] and result['skip'] is None
    assert [fix['reason'] for fix in result['fixes']] == [
        'EXIF orientation applied']
    assert 'EXIF orientation 6 applied' in result['fixes'][0]['detail']


def test_a_black_reading_of_a_16_bit_colour_png_is_skipped(tmp_path):
    """``cv2.imwrite('x.png', rgb8.astype(np.uint16))`` given as an image:
    ``infer.py`` refuses it (read as 8 bits it is black), but the converter
    read the PNG's EXIF (which loads a PNG) before the shared reader saw
    it, so the reader missed its 16-bit layout and the pair was written
    with a black JPEG (``image re-encoded as JPEG``), exit 0. Now it is
    skipped as ``unsupported image``."""
    import cv2
    (tmp_path / 'out' / 'images').mkdir(parents=True)
    (tmp_path / 'out' / 'masks').mkdir()
    pixels = np.zeros((24, 32, 3), np.uint16)
    pixels[:] = (150, 120, 100)
    cv2.imwrite(str(tmp_path / 'low.png'), pixels)
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(tmp_path / 'm.png')
    result = isic._process_pair(
        ('train', 'low', (str(tmp_path), 'low.png', False),
         (str(tmp_path), 'm.png', False), str(tmp_path / 'out')))
    assert not result['written']
    assert result['skip']['reason'] == 'unsupported image'
    assert 'whose values all lie below 256' in result['skip']['detail']
    assert not (tmp_path / 'out' / 'images' / 'low.jpg').exists()


def test_a_turned_or_converted_image_is_written_and_recorded(tmp_path):
    """What the converter writes and records for a photo it must change:
    a JPEG with EXIF orientation 6 (stored 32x24) is written upright
    (24x32) without the tag, not copied as it came; a TIFF's size
    mismatch names the stored size (Pillow reports a TIFF's turned size);
    every note of a conversion is in the record."""
    (tmp_path / 'out' / 'images').mkdir(parents=True)
    (tmp_path / 'out' / 'masks').mkdir()
    stored = np.zeros((24, 32, 3), np.uint8)
    stored[:, :16] = 200
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / 'photo.jpg', exif=exif,
                                 quality=95)
    Image.fromarray(stored[..., 0]).save(tmp_path / 'scan.png',
                                         format='TIFF', tiffinfo={274: 6})
    Image.fromarray(np.zeros((32, 24), np.uint8)).save(tmp_path / 'up.png')
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(tmp_path / 'flat.png')
    Image.fromarray(np.full((24, 32), 200 * 257, np.uint16)).save(
        tmp_path / 'deep.png')

    def convert(name, image, mask):
        return isic._process_pair(
            ('train', name, (str(tmp_path), image, False),
             (str(tmp_path), mask, False), str(tmp_path / 'out')))

    result = convert('photo', 'photo.jpg', 'up.png')
    assert result['written'] and result['skip'] is None
    assert [fix['reason'] for fix in result['fixes']] == [
        'EXIF orientation applied']
    with Image.open(tmp_path / 'out' / 'images' / 'photo.jpg') as written:
        assert written.size == (24, 32)
        assert written.getexif().get(0x0112) is None
        # Turned a quarter clockwise: the stored left half is on top.
        pixels = np.asarray(written.convert('L'), np.int16)
    assert pixels[:14].min() > 180 and pixels[18:].max() < 20
    # Orientation 2 mirrors the photo (same size): written mirrored.
    exif[0x0112] = 2
    Image.fromarray(stored).save(tmp_path / 'mirror.jpg', exif=exif,
                                 quality=95)
    result = convert('mirror', 'mirror.jpg', 'flat.png')
    assert [fix['reason'] for fix in result['fixes']] == [
        'EXIF orientation applied']
    with Image.open(tmp_path / 'out' / 'images' / 'mirror.jpg') as written:
        pixels = np.asarray(written.convert('L'), np.int16)
    assert pixels[:, 18:].min() > 180 and pixels[:, :14].max() < 20
    result = convert('scan', 'scan.png', 'flat.png')
    assert result['skip']['reason'] == 'size mismatch'
    assert result['skip']['detail'].endswith(
        ' is 24x32 after its EXIF orientation 6 (stored 32x24), mask is '
        '32x24')
    result = convert('deep', 'deep.png', 'flat.png')
    assert result['written']
    assert [(fix['reason'], fix['detail']) for fix in result['fixes']] == [
        ('image converted to RGB', '16-bit image (I;16) scaled to 8 bits; '
         'grayscale image replicated to 3 channels')]


def test_a_16_bit_colour_png_is_recorded_as_converted(tmp_path):
    """A 16-bit colour PNG (Pillow shows it as 8-bit RGB, keeping the high
    bytes) is recorded as ``image converted to RGB`` with its note, not
    as a plain re-encoding."""
    import cv2
    (tmp_path / 'out' / 'images').mkdir(parents=True)
    (tmp_path / 'out' / 'masks').mkdir()
    pixels = np.zeros((24, 32, 3), np.uint16)
    pixels[:] = (150 * 256, 120 * 256, 100 * 256)  # BGR
    cv2.imwrite(str(tmp_path / 'deep.png'), pixels)
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(tmp_path / 'm.png')
    result = isic._process_pair(
        ('train', 'deep', (str(tmp_path), 'deep.png', False),
         (str(tmp_path), 'm.png', False), str(tmp_path / 'out')))
    assert result['written']
    assert [(fix['reason'], fix['detail']) for fix in result['fixes']] == [
        ('image converted to RGB', '16-bit image (RGB;16B) reduced to 8 '
         'bits')]
    with Image.open(tmp_path / 'out' / 'images' / 'deep.jpg') as written:
        assert np.abs(np.asarray(written, np.int16) - (100, 120, 150)
                      ).max() <= 2


def test_one_marked_official_folder_marks_the_conversion(tmp_path):
    """A download whose official folders hold one SYNTHETIC.txt (one
    synthetic split among real ones) is marked synthetic, as a download
    marked in every folder is."""
    from mmseg_dsnet.datasets.synthetic_fallback import is_synthetic
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=1, num_test=1,
                    mark_synthetic=True)
    (raw / isic.SYNTHETIC_MARKER).unlink()
    markers = sorted(raw.glob(f'*/{isic.SYNTHETIC_MARKER}'))
    assert len(markers) > 1
    for marker in markers[1:]:
        marker.unlink()
    summary = isic.convert(raw, tmp_path / 'out', workers=1, verbose=False)
    assert summary['synthetic'] is True
    assert (tmp_path / 'out' / isic.SYNTHETIC_MARKER).read_text() == \
        isic.MARKED_INSIDE_TEXT
    assert is_synthetic(str(tmp_path / 'out'))


def test_one_photo_under_two_ids_is_named(tmp_path):
    """A download holding one photo under two ids (a training image copied
    into the test folders under a new name, as the ISIC 2017 download does
    for a few images; or twice in one split) was converted without a word,
    exit 0: a test image trained on, or an image scored twice. The copies
    are named in a warning and in meta.json; the splits stay as given."""
    raw = _make_raw(tmp_path / 'raw', num_train=4, num_val=2, num_test=2)
    for image_folder, mask_folder, source, copy in (
            (TEST_IMAGES, TEST_MASKS, 'ISIC_0000001', 'ISIC_0000101'),
            (TRAIN_IMAGES, TRAIN_MASKS, 'ISIC_0000002', 'ISIC_0000102')):
        shutil.copy(raw / TRAIN_IMAGES / f'{source}.jpg',
                    raw / image_folder / f'{copy}.jpg')
        shutil.copy(raw / TRAIN_MASKS / f'{source}_segmentation.png',
                    raw / mask_folder / f'{copy}_segmentation.png')
    result = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert result.returncode == 0, result.output
    assert ('WARNING: 2 images are given under more than one id, byte '
            'for byte (1 across official splits): ISIC_0000001 (train) = '
            'ISIC_0000101 (test), ISIC_0000002 (train) = ISIC_0000102 '
            '(train); ') in result.stdout
    meta = json.loads((tmp_path / 'out' / 'meta.json').read_text())
    assert meta['identical_images'] == [
        [dict(split='train', id='ISIC_0000001'),
         dict(split='test', id='ISIC_0000101')],
        [dict(split='train', id='ISIC_0000002'),
         dict(split='train', id='ISIC_0000102')]]
    assert 'ISIC_0000101' in _split(tmp_path / 'out', 'official_test')
    assert meta['skipped'] == []
    # A download without copies records none.
    plain = _make_raw(tmp_path / 'plain', num_train=4, num_val=2, num_test=2)
    assert 'identical_images' not in isic.convert(
        plain, tmp_path / 'plain_out', workers=1, verbose=False)


@pytest.mark.parametrize('year', [2017, 2016])
def test_a_seed_that_splits_one_photo_into_train_and_test_is_named(
        tmp_path, capsys, year):
    """One photo under two ids in the training folders: the seeded
    lightweight shuffle may put one copy into lightweight_train and the
    other into lightweight_test (the converted ISIC 2017 set does so with
    --seed 4), and ISIC 2016's seeded hold-out one into official_train and
    the other into official_val: an image scored after being trained on.
    Only the general warning about copies was printed and --strict wrote
    the set. The seed's split is now named and --strict refuses it."""
    raw = _make_raw(tmp_path / 'raw', year=year, num_train=6,
                    num_val=2 if year == 2017 else 0, num_test=2)
    images, masks = isic.OFFICIAL_FOLDERS[year]['train']
    mask_name = '{}_Segmentation.png' if year == 2016 else \
        '{}_segmentation.png'
    shutil.copy(raw / images / 'ISIC_0000000.jpg',
                raw / images / 'ISIC_0000100.jpg')
    shutil.copy(raw / masks / mask_name.format('ISIC_0000000'),
                raw / masks / mask_name.format('ISIC_0000100'))
    written = isic.convert(raw, tmp_path / 'ids', workers=1, verbose=False)
    pool = {split: _split(tmp_path / 'ids', f'official_{split}')
            for split in ('train', 'val')}
    if year == 2016:  # the hold-out is made again from official train
        pool = {'train': pool['train'] + pool['val']}
    lightweight = [name for name in written['counts']
                   if name.startswith('lightweight')]
    # The lists of the seeded shuffle checked: ISIC 2016's hold-out too.
    shuffled = lightweight if year == 2017 else ['official_train',
                                                 'official_val']

    def apart(seed, lists):
        splits = isic._make_splits(year, pool, seed, 0.7)[0]
        holding = [{name for name in lists if copy in splits[name]}
                   for copy in ('ISIC_0000000', 'ISIC_0000100')]
        return holding[0] != holding[1]

    seed = next(seed for seed in range(40) if apart(seed, shuffled))
    kept = next(seed for seed in range(40)
                if not apart(seed, lightweight + shuffled))
    with pytest.raises(isic.StrictModeError,
                       match='1 photo under two ids in a list trained on'):
        isic.convert(raw, tmp_path / 'strict', strict=True, seed=seed,
                     workers=1, verbose=False)
    assert not (tmp_path / 'strict').exists()
    capsys.readouterr()
    summary = isic.convert(raw, tmp_path / 'out', seed=seed, workers=1)
    groups = summary['identical_images_across_lists']
    assert any({copy['list'] for copy in group} <= set(shuffled)
               for group in groups)
    for group in groups:
        assert {copy['id'] for copy in group} == {
            'ISIC_0000000', 'ISIC_0000100'}
        for copy in group:
            assert copy['id'] in _split(tmp_path / 'out', copy['list'])
    assert (f'WARNING: the seeded split (seed {seed}) puts 1 photo given '
            'under two ids into a list trained on and into the list scored '
            'against it: ') in capsys.readouterr().out
    apart = isic.convert(raw, tmp_path / 'apart', strict=True, seed=kept,
                         workers=1, verbose=False)
    assert 'identical_images_across_lists' not in apart
    assert len(apart['identical_images']) == 1


@pytest.mark.parametrize('channels', [3, 4])
def test_a_16_bit_colour_mask_of_low_values_is_skipped_not_emptied(
        tmp_path, channels):
    """``cv2.imwrite('m.png', mask.astype(np.uint16))`` of a 3- or
    4-channel 0/255 mask: Pillow reads 16-bit colour by its high bytes,
    all 0, and the pair was written with an empty mask (``mask converted
    to one channel``), exit 0. Now it is skipped as ``unsupported mask``;
    the same mask saved as 0/65535 is read (its high bytes are 0/255) and
    recorded as scaled to 8 bits."""
    import cv2
    out = _pair_folders(tmp_path)
    for high, name in ((255, 'low'), (65535, 'full')):
        mask = np.zeros((24, 32, channels), np.uint16)
        mask[4:12, 4:20, :3] = high
        if channels == 4:
            mask[..., 3] = 65535  # opaque
        cv2.imwrite(str(tmp_path / f'{name}.png'), mask)
    result = isic._process_pair(
        ('train', 'low', (str(tmp_path), 'x.jpg', False),
         (str(tmp_path), 'low.png', False), str(out)))
    assert not result['written']
    assert result['skip']['reason'] == 'unsupported mask'
    assert 'high bytes are all 0' in result['skip']['detail']
    assert not (out / 'masks' / 'low.png').exists()
    result = isic._process_pair(
        ('train', 'full', (str(tmp_path), 'x.jpg', False),
         (str(tmp_path), 'full.png', False), str(out)))
    assert result['written'] and result['skip'] is None
    expected = np.zeros((24, 32), np.uint8)
    expected[4:12, 4:20] = 1
    assert np.array_equal(_mask(out / 'masks' / 'full.png'), expected)
    assert '16-bit mask scaled to 8-bit' in [
        fix['reason'] for fix in result['fixes']]


def test_a_16_bit_gray_mask_is_read_as_gray_not_by_its_high_bytes(
        tmp_path):
    """The high-byte rule is for 16-bit colour, which Pillow reads by its
    high bytes: a 16-bit gray mask is read whole, an all-background one is
    an empty mask (not refused), and 0/255 saved as 16 bits is recorded
    once, as a gray 16-bit mask."""
    import cv2
    out = _pair_folders(tmp_path)
    for high, name in ((0, 'empty'), (255, 'low')):
        mask = np.zeros((24, 32), np.uint16)
        mask[4:12, 4:20] = high
        cv2.imwrite(str(tmp_path / f'{name}.png'), mask)
    expected = np.zeros((24, 32), np.uint8)
    for name, lesion in (('empty', 0), ('low', 1)):
        result = isic._process_pair(
            ('train', name, (str(tmp_path), 'x.jpg', False),
             (str(tmp_path), f'{name}.png', False), str(out)))
        assert result['written'] and result['skip'] is None, result
        expected[4:12, 4:20] = lesion
        assert np.array_equal(_mask(out / 'masks' / f'{name}.png'), expected)
        assert [(fix['reason'], fix['detail']) for fix in result[
            'fixes']] == [('16-bit mask scaled to 8-bit',
                           'I;16 mask scaled to 8-bit')], result['fixes']


def test_a_mask_among_the_images_or_an_image_among_the_masks_is_unexpected(
        tmp_path):
    """A ``<id>_segmentation.png`` in an image folder is neither an image
    (of id ``<id>_segmentation``) nor a mask of ``<id>``, and a photo in a
    ground-truth folder is no mask: each is an unexpected file."""
    images_dir, masks_dir = tmp_path / 'images_in', tmp_path / 'masks_in'
    images_dir.mkdir()
    masks_dir.mkdir()
    for path in (images_dir / 'ISIC_1.jpg',
                 images_dir / 'ISIC_2_Segmentation.png',
                 masks_dir / 'ISIC_1_segmentation.png',
                 masks_dir / 'ISIC_3.jpg'):
        path.write_bytes(b'')  # only the names are read here
    ignored, unexpected, unread = Counter(), [], []
    images, masks = isic._collect_files(
        [(images_dir, False)], [(masks_dir, False)], ignored, unexpected,
        unread, print)
    assert sorted(images) == ['ISIC_1'] and sorted(masks) == ['ISIC_1']
    assert dict(ignored) == {'unexpected file': 2}
    assert unexpected == ['images_in/ISIC_2_Segmentation.png',
                          'masks_in/ISIC_3.jpg']


@pytest.mark.parametrize('ratio', [0.0, 1.0])
def test_a_train_ratio_of_0_or_1_is_refused_before_reading(tmp_path, ratio):
    """The train share must lie strictly between 0 and 1: refused before
    SRC is read (here it holds no download at all)."""
    (tmp_path / 'src').mkdir()
    with pytest.raises(isic.ConversionError) as error:
        isic.convert(tmp_path / 'src', tmp_path / 'out', train_ratio=ratio,
                     verbose=False)
    assert str(error.value) == (
        f'train ratio must lie in (0, 1), got {ratio}')
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('option,value,message', [
    ('--workers', '0', '--workers must be at least 1, got 0'),
    ('--train-ratio', '1.5', '--train-ratio must lie in (0, 1), got 1.5'),
    ('--train-ratio', 'nan', '--train-ratio must lie in (0, 1), got nan')])
def test_the_command_line_names_the_option_it_refuses(tmp_path, option,
                                                      value, message):
    """``--workers 0`` was refused as ``workers must be at least 1`` (and
    ``--train-ratio 1.5`` as ``train ratio ...``), the converter's
    argument names, and only once SRC was found to hold a download."""
    result = run_converter(tmp_path / 'src', tmp_path / 'out', option, value)
    assert result.returncode == 2
    assert result.stderr == f'ERROR: {message}\n'
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('meta', [
    '{"converter": "tools/other_tool.py"}', '{"year": 2017}', 'not json'])
def test_overwrite_refuses_a_folder_with_a_meta_json_of_another_tool(
        tmp_path, meta):
    """Only a ``meta.json`` naming this converter makes OUT an earlier
    conversion that ``--overwrite`` may replace; a folder with another
    ``meta.json`` (another tool's results) is refused, and so is a
    folder holding it among its subfolders' data sets."""
    src, out = tmp_path / 'src', tmp_path / 'out'
    src.mkdir()
    out.mkdir()
    (out / 'meta.json').write_text(meta)
    (out / 'results.csv').write_text('precious')
    assert not isic._is_conversion(out)
    with pytest.raises(isic.ConversionError,
                       match='is not an earlier conversion'):
        isic._check_out(src, out, overwrite=True)
    assert isic._data_sets_in(tmp_path) == []
    (out / 'meta.json').write_text(
        '{"converter": "tools/dataset_converters/isic.py"}')
    assert isic._is_conversion(out)
    assert isic._data_sets_in(tmp_path) == ['out']


def test_a_folder_extracted_into_itself_again_converts_strictly(tmp_path):
    """The training folders unzipped a second time into themselves (each
    file also in a subfolder, byte for byte): every copy was listed as a
    duplicate file "with other content", with a WARNING to check it, and
    --strict refused the set though every pair was written from an
    identical file. Identical copies are now one file; a copy with other
    content is still an ignored duplicate that --strict refuses."""
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=2, num_test=2)
    alone = run_converter(raw, tmp_path / 'alone', '--strict')
    assert alone.returncode == 0, alone.output
    for folder in (TRAIN_IMAGES, TRAIN_MASKS):
        shutil.copytree(raw / folder, raw / f'{folder}.tmp')
        shutil.move(raw / f'{folder}.tmp', raw / folder / folder)
    both = run_converter(raw, tmp_path / 'both', '--strict')
    assert both.returncode == 0, both.output
    assert 'WARNING' not in both.output
    assert ('note: split train: 6 files are twice in one official folder '
            'or zip (a copy in a subfolder), with the same content'
            in both.stdout)
    meta = json.loads((tmp_path / 'both' / 'meta.json').read_text())
    assert 'duplicate_files' not in meta and meta['skipped'] == []
    for folder in ('images', 'masks', 'splits'):
        assert tree_hashes(tmp_path / 'both' / folder) == tree_hashes(
            tmp_path / 'alone' / folder)
    # One copy changed: an ignored file of other content, refused by
    # --strict; the pair is converted from the first file found.
    copy = raw / TRAIN_IMAGES / TRAIN_IMAGES / 'ISIC_0000001.jpg'
    copy.write_bytes((raw / TRAIN_IMAGES / 'ISIC_0000002.jpg').read_bytes())
    result = run_converter(raw, tmp_path / 'other', '--workers', '1')
    assert result.returncode == 0, result.output
    meta = json.loads((tmp_path / 'other' / 'meta.json').read_text())
    assert [(r['id'], r['file']) for r in meta['duplicate_files']] == [
        ('ISIC_0000001', f'{TRAIN_IMAGES}/{TRAIN_IMAGES}/ISIC_0000001.jpg')]
    strict = run_converter(raw, tmp_path / 'strict', '--strict')
    assert strict.returncode == 2 and not (tmp_path / 'strict').exists()


def test_copies_are_one_file_only_when_their_bytes_are_equal(tmp_path):
    """Two files of one id in an official folder (one in a subfolder) or
    in the folder and its zip are one file when their content is equal;
    one byte changed, same size, makes them two files."""
    folder = tmp_path / TRAIN_IMAGES
    (folder / 'sub').mkdir(parents=True)
    data = bytes(range(256)) * 4
    changed = bytearray(data)
    changed[500] ^= 0xFF
    (folder / 'x.jpg').write_bytes(data)
    (folder / 'sub' / 'x.jpg').write_bytes(data)
    (folder / 'sub' / 'y.jpg').write_bytes(bytes(changed))
    with zipfile.ZipFile(tmp_path / f'{TRAIN_IMAGES}.zip', 'w') as archive:
        archive.writestr(f'{TRAIN_IMAGES}/x.jpg', data)
        archive.writestr(f'{TRAIN_IMAGES}/y.jpg', bytes(changed))
    kept = (str(folder), 'x.jpg', False)
    zipped = str(tmp_path / f'{TRAIN_IMAGES}.zip')
    copies = isic._CopyCheck()
    assert copies.same(kept, (str(folder), 'sub/x.jpg', False))
    assert not copies.same(kept, (str(folder), 'sub/y.jpg', False))
    assert copies.same(kept, (zipped, f'{TRAIN_IMAGES}/x.jpg', True))
    assert not copies.same(kept, (zipped, f'{TRAIN_IMAGES}/y.jpg', True))
    assert not copies.same(kept, (zipped, f'{TRAIN_IMAGES}/absent.jpg', True))
    # Only in the folder or zip of one name: a file of the same bytes in
    # another folder is another file.
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'x.jpg').write_bytes(data)
    assert not copies.same(kept, (str(other), 'x.jpg', False))
    # A zip that cannot be read holds no copy.
    broken = tmp_path / 'broken' / f'{TRAIN_IMAGES}.zip'
    broken.parent.mkdir()
    broken.write_bytes(b'not a zip' * 100)
    assert not isic._CopyCheck().same(
        kept, (str(broken), f'{TRAIN_IMAGES}/x.jpg', True))


def test_copies_larger_than_a_member_may_be_are_not_compared(
        tmp_path, monkeypatch):
    """Files larger than ``MAX_MEMBER_BYTES`` are not read to be
    compared: they are not taken for copies."""
    folder = tmp_path / TRAIN_IMAGES
    (folder / 'sub').mkdir(parents=True)
    data = bytes(range(256)) * 4
    (folder / 'x.jpg').write_bytes(data)
    (folder / 'sub' / 'x.jpg').write_bytes(data)
    kept, copy = (str(folder), 'x.jpg', False), (str(folder), 'sub/x.jpg',
                                                 False)
    assert isic._CopyCheck().same(kept, copy)
    monkeypatch.setattr(isic, 'MAX_MEMBER_BYTES', len(data) - 1)
    assert not isic._CopyCheck().same(kept, copy)


def test_an_out_that_appears_during_the_conversion_is_kept(tmp_path):
    """Without --overwrite, an OUT made by someone else while the pairs
    were checked is not replaced: the finished set stays in its temporary
    folder (which the caller removes) and OUT is untouched."""
    tmp, out = tmp_path / 'out.tmp-1', tmp_path / 'out'
    tmp.mkdir()
    (tmp / 'meta.json').write_text('{}')
    out.mkdir()
    (out / 'theirs.txt').write_text('keep me')
    with pytest.raises(isic.ConversionError,
                       match='appeared during the conversion; not replaced'):
        isic._move_into_place(tmp, out, overwrite=False)
    assert [p.name for p in out.iterdir()] == ['theirs.txt']
    assert (tmp / 'meta.json').is_file()
    isic._move_into_place(tmp, out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ['meta.json']
    assert not tmp.exists() and sorted(tmp_path.iterdir()) == [out]


def test_a_failed_final_rename_leaves_the_earlier_conversion(
        tmp_path, monkeypatch):
    """--overwrite moves the earlier conversion aside, then the new one in;
    a failure of that second rename (a full disk, an interrupt) must
    leave OUT holding the earlier conversion, not nothing."""
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=2, num_test=2)
    out = tmp_path / 'out'
    isic.convert(raw, out, workers=1, verbose=False)
    before = tree_hashes(out)
    real_replace = os.replace

    def failing_replace(source, target):
        if '.tmp-' in Path(source).name:  # the new conversion moving in
            raise OSError(errno.ENOSPC, 'No space left on device')
        real_replace(source, target)

    monkeypatch.setattr(os, 'replace', failing_replace)
    result = run_converter(raw, out, '--overwrite', '--seed', '3',
                           '--workers', '1')
    monkeypatch.undo()
    assert result.returncode == 2
    assert 'ERROR:' in result.stderr and 'No space left' in result.stderr
    assert tree_hashes(out) == before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize('failure', ['permission', 'interrupt'])
def test_an_earlier_conversion_that_cannot_be_removed_is_named(
        tmp_path, monkeypatch, failure):
    """--overwrite over an earlier conversion whose files cannot be
    removed (made read-only), or a Ctrl-C while they are removed: the new
    conversion was in place, yet the tool said ``ERROR: [Errno 13]
    Permission denied: OUT.old-PID/...`` (``ERROR: interrupted by SIGINT;
    nothing written``), exit 2 (130), as if nothing had been written. It
    now succeeds and names the folder left to remove."""
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=2, num_test=2)
    out = tmp_path / 'out'
    isic.convert(raw, out, workers=1, verbose=False)
    real_rmtree = shutil.rmtree

    def refusing_rmtree(path, *args, **kwargs):
        if '.old-' in Path(path).name:
            if failure == 'interrupt':
                raise KeyboardInterrupt
            raise PermissionError(errno.EACCES, 'Permission denied', path)
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, 'rmtree', refusing_rmtree)
    result = run_converter(raw, out, '--overwrite', '--seed', '3',
                           '--workers', '1')
    monkeypatch.undo()
    assert result.returncode == 0, result.output
    old = tmp_path / f'out.old-{os.getpid()}'
    why = ('KeyboardInterrupt' if failure == 'interrupt' else
           '[Errno 13] Permission denied: ')
    assert (f'warning: could not remove {old}, the conversion replaced '
            f'({why}') in result.stdout
    assert f'{out} holds the new one: remove it by hand' in result.stdout
    assert json.loads((out / 'meta.json').read_text())['seed'] == 3
    assert json.loads((old / 'meta.json').read_text())['seed'] == 0


def test_a_top_level_marker_is_copied_into_the_conversion(tmp_path):
    """The marker beside the official folders is copied as it is (its own
    text, not the one written for markers found only inside them)."""
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=1, num_test=1,
                    size=(16, 12), mark_synthetic=True)
    (raw / isic.SYNTHETIC_MARKER).write_text('made by our own generator\n')
    summary = isic.convert(raw, tmp_path / 'out', verbose=False)
    assert summary['synthetic'] is True
    assert (tmp_path / 'out' / isic.SYNTHETIC_MARKER).read_text() == \
        'made by our own generator\n'


def test_a_duplicate_of_a_skipped_pairs_file_is_not_called_used(tmp_path):
    """ISIC_x.jpg unreadable and ISIC_x.png of other content: the pair is
    skipped (its first file is the .jpg), so no file of the id is
    converted; the .png's record says the .jpg was skipped with its pair,
    not that it is the file used for this id."""
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=2, num_test=2)
    jpg = raw / TRAIN_IMAGES / 'ISIC_0000001.jpg'
    Image.open(jpg).transpose(Image.FLIP_LEFT_RIGHT).save(
        jpg.with_suffix('.png'))
    jpg.write_bytes(b'not a jpeg')
    result = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert result.returncode == 0, result.output
    out = tmp_path / 'out'
    meta = json.loads((out / 'meta.json').read_text(encoding='utf-8'))
    assert [(r['split'], r['id']) for r in meta['skipped']] == [
        ('train', 'ISIC_0000001')]
    assert 'ISIC_0000001' not in _split(out, 'official_train')
    assert not list((out / 'images').glob('ISIC_0000001.*'))
    [record] = meta['duplicate_files']
    assert record['id'] == 'ISIC_0000001'
    assert record['file'].endswith(f'{TRAIN_IMAGES}/ISIC_0000001.png')
    assert record['detail'] == (
        f'ignored; {TRAIN_IMAGES}/ISIC_0000001.jpg, the file used for this '
        'id, was skipped with its pair (see skipped): no file of this id '
        'was converted')

def test_splits_and_meta_json_are_utf_8_whatever_the_locale(tmp_path):
    """The split files and meta.json are written (and an earlier
    conversion's meta.json read) as UTF-8, which the datasets read, not in
    the locale's encoding (cp1252 on Windows: a non-ASCII id was written as
    a byte the datasets refuse as not UTF-8). Python names each text file
    opened in the locale's encoding with ``-X warn_default_encoding``."""
    raw = _make_raw(tmp_path / 'raw', num_train=3, num_val=1, num_test=1,
                    size=(16, 12))
    for folder, suffix in ((TRAIN_IMAGES, '.jpg'),
                           (TRAIN_MASKS, '_segmentation.png')):
        (raw / folder / f'ISIC_0000000{suffix}').rename(
            raw / folder / f'ISIC_é0000000{suffix}')
    out = tmp_path / 'out'
    # Both conversions (--overwrite reads meta.json) in one interpreter
    # started with the flag, each run's exit status printed after it.
    both_runs = (
        'import sys\n'
        'tool, raw, out = sys.argv[1:]\n'
        'with open(tool, encoding="utf-8") as source:\n'
        '    code = compile(source.read(), tool, "exec")\n'
        'for extra in ([], ["--overwrite"]):\n'
        '    sys.argv = [tool, raw, out, "--workers", "1", *extra]\n'
        '    try:\n'
        '        exec(code, dict(__name__="__main__", __file__=tool))\n'
        '        status = 0\n'
        '    except SystemExit as exit_:\n'
        '        status = exit_.code or 0\n'
        '    print("exit status", extra, status, file=sys.stderr)\n')
    proc = subprocess.run(
        [sys.executable, '-X', 'warn_default_encoding', '-c', both_runs,
         str(CONVERTER), str(raw), str(out)],
        cwd=Path(CONVERTER).parents[2], capture_output=True, text=True,
        env=dict(os.environ, PYTHONWARNINGS='always::EncodingWarning'))
    assert proc.returncode == 0, proc.stderr
    assert 'exit status [] 0' in proc.stderr, proc.stderr
    assert "exit status ['--overwrite'] 0" in proc.stderr, proc.stderr
    ours = [line for line in proc.stderr.splitlines()
            if 'EncodingWarning' in line and 'mmseg_dsnet' in line]
    assert ours == []
    train = (out / 'splits' / 'official_train.txt').read_bytes()
    assert 'ISIC_é0000000\n'.encode('utf-8') in train
    assert (out / 'images' / 'ISIC_é0000000.jpg').is_file()
