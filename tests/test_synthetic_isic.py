"""The synthetic ISIC generator: deterministic, official layout, learnable."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import run_converter, run_tool_in_process
from PIL import Image

from mmseg_dsnet.datasets.converters import synthetic_isic as synthetic
from mmseg_dsnet.datasets.converters import isic
from mmseg_dsnet.datasets.converters.isic import RUN_MARKER, SYNTHETIC_MARKER

REPO = Path(__file__).resolve().parents[1]
# The command line; the tests call the package's functions directly.
GENERATOR = REPO / 'tools' / 'dataset_converters' / 'make_synthetic_isic.py'

# Spelled out here so that a typo in the tool's table would be caught.
FOLDERS_2017 = {
    'train': ('ISIC-2017_Training_Data',
              'ISIC-2017_Training_Part1_GroundTruth'),
    'val': ('ISIC-2017_Validation_Data',
            'ISIC-2017_Validation_Part1_GroundTruth'),
    'test': ('ISIC-2017_Test_v2_Data', 'ISIC-2017_Test_v2_Part1_GroundTruth'),
}


# Runs the generator's command line, stopping it with a signal when it
# writes its 5th file.
STOPPED_MIDWAY = '''
import importlib.util, os, pathlib, signal, sys
spec = importlib.util.spec_from_file_location('generator', sys.argv[1])
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
signum = getattr(signal, sys.argv[2])
write_bytes = pathlib.Path.write_bytes
written = []

def write_then_stop(self, data):
    written.append(self)
    if len(written) == 5:
        os.kill(os.getpid(), signum)
    return write_bytes(self, data)

pathlib.Path.write_bytes = write_then_stop
sys.exit(tool.main(sys.argv[3:]))
'''
SMALL = ('--num-train', '3', '--num-val', '1', '--num-test', '1', '--size',
         '16', '12')


def _tree_bytes(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(Path(root).rglob('*')) if p.is_file()
    }


def _run_cli(*args):
    return run_tool_in_process(GENERATOR, *args)


def _pairs(root, year=2017):
    """(image array, mask array) of every pair in the official folders."""
    suffix = synthetic.MASK_SUFFIX[year]
    pairs = []
    for image_folder, mask_folder in synthetic.OFFICIAL_FOLDERS[year].values():
        images = sorted((root / image_folder).glob('ISIC_???????.jpg'))
        for image_path in images:
            mask_path = root / mask_folder / (image_path.stem + suffix)
            pairs.append((np.asarray(Image.open(image_path)),
                          np.asarray(Image.open(mask_path))))
    return pairs


def test_same_arguments_give_identical_bytes(tmp_path):
    kwargs = dict(
        year=2017, num_train=3, num_val=1, num_test=2, size=(32, 24), seed=5)
    synthetic.generate(tmp_path / 'a', **kwargs)
    synthetic.generate(tmp_path / 'b', **kwargs)
    first, second = _tree_bytes(tmp_path / 'a'), _tree_bytes(tmp_path / 'b')
    assert len(first) > 6
    assert first == second

    synthetic.generate(tmp_path / 'c', **dict(kwargs, seed=6))
    other = _tree_bytes(tmp_path / 'c')
    assert other.keys() == first.keys()
    jpgs = [k for k in first if k.endswith('.jpg')]
    assert all(first[k] != other[k] for k in jpgs)


def test_zip_output_is_deterministic_and_official(tmp_path):
    for name in ('a', 'b'):
        result = _run_cli(tmp_path / name, '--year', '2018', '--num-train',
                          '2', '--num-val', '1', '--num-test', '1', '--size',
                          '32', '24', '--zip')
        assert result.returncode == 0, result.stderr
        assert 'synthetic ISIC 2018' in result.stdout
    assert _tree_bytes(tmp_path / 'a') == _tree_bytes(tmp_path / 'b')
    zips = sorted(p.name for p in (tmp_path / 'a').iterdir())
    assert zips == sorted([SYNTHETIC_MARKER] + [
        n + '.zip' for pair in synthetic.OFFICIAL_FOLDERS[2018].values()
        for n in pair])
    gt_zip = tmp_path / 'a' / 'ISIC2018_Task1_Training_GroundTruth.zip'
    with zipfile.ZipFile(gt_zip) as archive:
        names = sorted(archive.namelist())
    assert names == [
        'ISIC2018_Task1_Training_GroundTruth/ATTRIBUTION.txt',
        'ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png',
        'ISIC2018_Task1_Training_GroundTruth/ISIC_0000001_segmentation.png',
        'ISIC2018_Task1_Training_GroundTruth/LICENSE.txt',
        f'ISIC2018_Task1_Training_GroundTruth/{SYNTHETIC_MARKER}',
    ]


def test_official_2017_layout_and_counts(tmp_path):
    summary = synthetic.generate(
        tmp_path, year=2017, num_train=4, num_val=2, num_test=3, size=(32, 24))
    assert summary['counts'] == {'train': 4, 'val': 2, 'test': 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [SYNTHETIC_MARKER] + [n for pair in FOLDERS_2017.values()
                              for n in pair])
    all_ids = []
    for split, count in summary['counts'].items():
        image_folder, mask_folder = FOLDERS_2017[split]
        images, masks = tmp_path / image_folder, tmp_path / mask_folder
        ids = sorted(p.stem for p in images.glob('ISIC_???????.jpg'))
        mask_ids = sorted(p.name[:-len('_segmentation.png')]
                          for p in masks.glob('*_segmentation.png'))
        assert len(ids) == count and ids == mask_ids
        # The stray files of the official 2017 download are there too.
        assert len(list(images.glob('*_superpixels.png'))) == count
        assert (images / f'{image_folder}_metadata.csv').is_file()
        all_ids += ids
    assert len(set(all_ids)) == 9


def test_official_2016_layout_has_capital_s_and_no_validation(tmp_path):
    synthetic.generate(
        tmp_path, year=2016, num_train=2, num_val=0, num_test=1, size=(32, 24))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [SYNTHETIC_MARKER] + [n for pair in
                              synthetic.OFFICIAL_FOLDERS[2016].values()
                              for n in pair])
    gt_folder = tmp_path / 'ISBI2016_ISIC_Part1_Training_GroundTruth'
    masks = sorted(p.name for p in gt_folder.iterdir())
    assert masks == ['ISIC_0000000_Segmentation.png',
                     'ISIC_0000001_Segmentation.png', SYNTHETIC_MARKER]
    with pytest.raises(ValueError, match='no validation'):
        synthetic.generate(tmp_path / 'x', year=2016, num_val=2)


def test_masks_are_exact_binary_and_lesions_learnable(tmp_path):
    synthetic.generate(
        tmp_path,
        year=2017,
        num_train=12,
        num_val=2,
        num_test=4,
        size=(64, 48),
        seed=1)
    pairs = _pairs(tmp_path)
    assert len(pairs) == 18
    fractions = []
    for image, mask in pairs:
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        assert mask.shape == (48, 64) and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) == {0, 255}
        lesion = mask == 255
        fractions.append(lesion.mean())
        gray = image.astype(np.float32).mean(axis=-1)
        # The lesion is clearly darker than the skin around it.
        assert gray[lesion].mean() < gray[~lesion].mean() - 20
    assert 0.08 <= min(fractions) and max(fractions) <= 0.6
    assert max(fractions) - min(fractions) > 0.1  # sizes vary


def test_render_case_is_seeded_and_varied():
    first = synthetic.render_case(np.random.default_rng(3), 40, 30)
    again = synthetic.render_case(np.random.default_rng(3), 40, 30)
    other = synthetic.render_case(np.random.default_rng(4), 40, 30)
    assert np.array_equal(first[0], again[0])
    assert np.array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_refuses_to_overwrite_existing_official_folders(tmp_path):
    synthetic.generate(
        tmp_path, num_train=1, num_val=1, num_test=1, size=(16, 12))
    before = _tree_bytes(tmp_path)
    result = _run_cli(tmp_path, '--num-train', '2', '--num-val', '1',
                      '--num-test', '1', '--size', '16', '12')
    assert result.returncode == 2
    assert 'ISIC-2017_Training_Data' in result.stderr
    assert _tree_bytes(tmp_path) == before
    # A file where the folder should go is named (it was errno 17).
    a_file = tmp_path / 'notes.txt'
    a_file.write_text('keep me')
    result = _run_cli(a_file)
    assert result.returncode == 2
    assert result.stderr == (f'ERROR: {a_file} is a file; give a new or '
                             'empty folder\n')
    assert a_file.read_text() == 'keep me'


def test_a_negative_seed_is_refused_by_name(tmp_path):
    result = _run_cli(tmp_path / 'out', '--seed', '-1')
    assert result.returncode == 2
    assert result.stderr == ('ERROR: --seed must be an integer from 0 to '
                             '2**32 - 1, got -1\n')
    assert not (tmp_path / 'out').exists()


def test_a_size_beyond_the_jpeg_limit_is_refused_by_name(tmp_path):
    """A side above OpenCV's JPEG limit ended in an AttributeError traceback
    (``'tuple' object has no attribute 'tobytes'``) after the images were
    drawn, exit 1."""
    result = _run_cli(tmp_path / 'out', '--size', '8', '65501',
                      '--num-train', '1', '--num-val', '0', '--num-test', '0')
    assert result.returncode == 2, result.output[-2000:]
    assert result.stderr == ('ERROR: --size must be at most 65500 pixels a '
                             'side (the largest JPEG OpenCV writes), got '
                             '8x65501\n')
    assert list(tmp_path.iterdir()) == []


def test_an_out_under_a_file_and_bad_counts_are_named(tmp_path):
    """An OUT below a file failed naming the temporary folder
    (``[Errno 20] Not a directory: '.../sub.tmp-PID'``); a negative count
    and a 2016 validation count named the Python arguments (``counts must
    be >= 0, got {...}``, ``pass num_val=0``), not the options."""
    a_file = tmp_path / 'notes.txt'
    a_file.write_text('keep me')
    for args, message in (
            ([a_file / 'sub' / 'out'], f'{a_file / "sub" / "out"}: {a_file} '
             'is a file, not a folder; give a new or empty folder'),
            ([tmp_path / 'out', '--num-test', '-1'],
             '--num-test must be at least 1, got -1: without pairs there the '
             'converted set has an empty official_test split'),
            ([tmp_path / 'out', '--year', '2016', '--num-val', '2'],
             '--num-val 2: ISIC 2016 has no validation set; leave out '
             '--num-val')):
        result = _run_cli(*args)
        assert result.returncode == 2, result.output[-2000:]
        assert result.stderr == f'ERROR: {message}\n'
    assert [p.name for p in tmp_path.iterdir()] == ['notes.txt']


@pytest.mark.parametrize('args,message', [
    (('--num-train', '0', '--num-val', '0', '--num-test', '0'),
     '--num-val must be at least 1 for ISIC 2017, got 0: its download has a '
     'validation set, and without pairs in it the converted set has an '
     'empty official_val split'),
    (('--num-train', '0'),
     '--num-train must be at least 1, got 0: without pairs there the '
     'converted set has an empty official_train split'),
    (('--num-test', '0'),
     '--num-test must be at least 1, got 0: without pairs there the '
     'converted set has an empty official_test split'),
    (('--year', '2018', '--num-val', '0'),
     '--num-val must be at least 1 for ISIC 2018, got 0: its download has a '
     'validation set, and without pairs in it the converted set has an '
     'empty official_val split'),
    (('--num-train', '1', '--num-val', '1'),
     '2 train+val pairs (--num-train 1 and --num-val 1): the converter '
     'needs at least 3 for its lightweight split (2 to train, 1 to test)'),
    (('--year', '2016', '--num-val', '1'),
     '--num-val 1: ISIC 2016 has no validation set; leave out --num-val'),
    (('--year', '2016', '--num-train', '2'),
     '2 train+val pairs (--num-train 2): the converter needs at least 3 '
     'for its lightweight split (2 to train, 1 to test)'),
    (('--year', '2016', '--num-train', '1'),
     '1 train+val pair (--num-train 1): the converter needs at least 3 '
     'for its lightweight split (2 to train, 1 to test)'),
])
def test_counts_that_make_no_usable_set_are_refused(tmp_path, args,
                                                    message):
    """A split of 0 pairs (all of them 0 too) wrote its official folders
    empty, and too few train+val pairs a download the converter refuses,
    exit 0: a 'download' of no pairs, or one whose conversion has an empty
    official split. Now refused before any image is drawn."""
    result = _run_cli(tmp_path / 'out', '--size', '16', '12', *args)
    assert result.returncode == 2, result.output[-2000:]
    assert result.stderr == f'ERROR: {message}\n'
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('signame', ['SIGKILL', 'SIGTERM'])
def test_a_run_stopped_midway_leaves_no_download(tmp_path, signame):
    """The files were written in place: a run killed midway left a partial
    download that the converter (and the synthetic fallback, which reuses
    an existing raw folder) took for a complete one."""
    out = tmp_path / 'raw'
    proc = subprocess.Popen(
        [sys.executable, '-c', STOPPED_MIDWAY, str(GENERATOR), signame,
         str(out), *SMALL], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    _, stderr = proc.communicate(timeout=120)
    assert not out.exists()
    left = sorted(p.name for p in tmp_path.iterdir())
    if signame == 'SIGKILL':
        assert proc.returncode == -9
        # Only the temporary folder, with the files written so far and
        # the marker that lets the next run remove it.
        assert left == [f'raw.tmp-{proc.pid}'], left
        written = _tree_bytes(tmp_path / left[0])
        assert len(written) == 5 and RUN_MARKER in written
    else:
        assert proc.returncode == 128 + 15, stderr
        assert stderr == 'ERROR: interrupted by SIGTERM; nothing written\n'
        assert left == []
    # The next run removes what a killed run left and writes the whole set.
    result = _run_cli(out, *SMALL)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['raw']
    synthetic.generate(tmp_path / 'clean', num_train=3, num_val=1,
                       num_test=1, size=(16, 12))
    assert _tree_bytes(out) == _tree_bytes(tmp_path / 'clean')


def test_a_folder_named_like_its_stale_one_is_kept(tmp_path, monkeypatch):
    """A folder beside OUT named like the one a killed run leaves
    (``OUT.tmp-N``, process N gone) but made by someone else is kept and
    named in a warning, as the converter keeps it."""
    theirs = tmp_path / 'raw.tmp-7'
    theirs.mkdir()
    (theirs / 'notes.txt').write_text('mine')
    monkeypatch.setattr(isic, 'pid_alive', lambda pid: False)
    result = _run_cli(tmp_path / 'raw', *SMALL)
    assert result.returncode == 0, result.stderr
    assert (theirs / 'notes.txt').read_text() == 'mine'
    assert (f'warning: kept {theirs}: named like a folder of an '
            'interrupted conversion (process 7 is gone), but it does not '
            f'hold {RUN_MARKER}') in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ['raw', theirs.name]


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    """A full disk midway: no OUT, no temporary folder, and no parent
    folder made for them."""
    write_bytes = Path.write_bytes
    written = []

    def write_until_full(self, data):
        written.append(self)
        if len(written) == 5:
            raise OSError(28, 'No space left on device', str(self))
        return write_bytes(self, data)

    monkeypatch.setattr(Path, 'write_bytes', write_until_full)
    with pytest.raises(OSError, match='No space left'):
        synthetic.generate(tmp_path / 'new' / 'raw', num_train=3,
                           num_val=1, num_test=1, size=(16, 12))
    assert len(written) == 5 and list(tmp_path.iterdir()) == []


def test_a_folder_holding_other_files_is_refused(tmp_path):
    """The set is renamed into place as a whole, so OUT must be new or
    empty; other files in it are named and kept."""
    (tmp_path / 'notes.txt').write_text('keep me')
    result = _run_cli(tmp_path, *SMALL)
    assert result.returncode == 2
    assert result.stderr == (f'ERROR: {tmp_path} is not empty (it holds '
                             'notes.txt); choose an empty or new folder\n')
    assert _tree_bytes(tmp_path) == {'notes.txt': b'keep me'}


def test_a_converted_synthetic_download_stays_marked_synthetic(tmp_path):
    """The documented ``make_synthetic_isic.py data/raw --zip`` then
    ``isic.py data/raw data/synthetic_isic2017``: the converted set was
    unmarked, so check_real_data.py called it real ISIC 2017 and
    ``leaderboard.py collect`` recorded its runs as real rows (exit 0)."""
    from mmseg_dsnet.datasets.synthetic_fallback import (data_provenance,
                                                         is_synthetic)
    raw, out = tmp_path / 'raw', tmp_path / 'synthetic_isic2017'
    made = _run_cli(raw, '--num-train', '3', '--num-val', '1', '--num-test',
                    '1', '--size', '32', '24', '--zip')
    assert made.returncode == 0, made.stderr
    converted = run_converter(raw, out, '--strict', '--workers', '1')
    assert converted.returncode == 0, converted.output
    assert f'synthetic: {raw} holds {SYNTHETIC_MARKER}' in converted.stdout
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['synthetic'] is True
    assert 'unread_folders' not in meta  # --strict passed too
    assert is_synthetic(str(out))
    assert data_provenance(
        dict(data_root=str(out), ann_file='splits/lightweight_test.txt'),
        1)['synthetic'] is True

    # A stand-in for a real download (no marker) converts unmarked.
    synthetic.generate(tmp_path / 'real', num_train=3, num_val=1, num_test=1,
                       size=(32, 24), mark_synthetic=False)
    run_converter(tmp_path / 'real', tmp_path / 'real_out', '--workers', '1')
    assert not (tmp_path / 'real_out' / SYNTHETIC_MARKER).exists()
    assert 'synthetic' not in json.loads(
        (tmp_path / 'real_out' / 'meta.json').read_text())


@pytest.mark.parametrize('as_zip', [False, True])
def test_its_folders_or_zips_copied_alone_stay_marked_synthetic(
        tmp_path, as_zip):
    """The official folders or zips of a synthetic download copied into
    another folder without the top-level SYNTHETIC.txt (as downloads are
    gathered) converted as real data: no marker, ``synthetic`` absent from
    meta.json, so check_real_data.py and ``leaderboard.py collect`` took
    its runs for runs on real ISIC data (exit 0)."""
    from mmseg_dsnet.datasets.synthetic_fallback import is_synthetic
    raw, gathered = tmp_path / 'raw', tmp_path / 'downloads'
    made = _run_cli(raw, '--num-train', '3', '--num-val', '1', '--num-test',
                    '1', '--size', '32', '24', *(['--zip'] if as_zip else []))
    assert made.returncode == 0, made.stderr
    gathered.mkdir()
    for entry in raw.iterdir():
        if entry.name != SYNTHETIC_MARKER:
            os.replace(entry, gathered / entry.name)
    out = tmp_path / 'isic2017'
    converted = run_converter(gathered, out, '--strict', '--workers', '1')
    assert converted.returncode == 0, converted.output
    assert (f'synthetic: the official folders or zips in {gathered} hold '
            f'{SYNTHETIC_MARKER}') in converted.stdout
    assert is_synthetic(str(out))
    assert json.loads((out / 'meta.json').read_text())['synthetic'] is True


def test_no_photo_is_given_twice_across_the_splits(tmp_path):
    """Each pair is drawn from its own seed ``[seed, split, index]``: the
    first training, validation and test images are different pictures (a
    test image that is also a training image would be trained on)."""
    synthetic.generate(tmp_path / 'raw', num_train=2, num_val=2, num_test=2,
                       size=(16, 12))
    images = sorted((tmp_path / 'raw').rglob('ISIC_*.jpg'))
    assert len(images) == 6
    assert len({path.read_bytes() for path in images}) == 6


@pytest.mark.parametrize('size', [(16, 7), (7, 16)])
def test_a_side_below_8_is_refused(size):
    with pytest.raises(ValueError) as error:
        synthetic.check_size(size)
    assert str(error.value) == (
        f'size must be at least 8x8, got {size[0]}x{size[1]}')


def test_the_current_folder_and_official_folders_in_out_are_refused(
        tmp_path, monkeypatch):
    """OUT as the (empty) current folder would be replaced by the renamed
    set; official folders already in OUT are named."""
    empty = tmp_path / 'empty'
    empty.mkdir()
    monkeypatch.chdir(empty)
    with pytest.raises(ValueError, match='is the current folder'):
        synthetic.generate('.', num_train=3, num_val=1, num_test=1,
                           size=(16, 12))
    assert list(tmp_path.iterdir()) == [empty]
    assert list(empty.iterdir()) == []
    out = tmp_path / 'out'
    synthetic.generate(out, num_train=3, num_val=1, num_test=1,
                       size=(16, 12))
    with pytest.raises(FileExistsError) as error:
        synthetic.generate(out, num_train=3, num_val=1, num_test=1,
                           size=(16, 12))
    assert str(error.value).startswith(
        f'{out} already holds ISIC-2017_Training_Data, '
        'ISIC-2017_Training_Part1_GroundTruth, ')
