"""The ISIC converter against hostile or unlucky input: EXIF-rotated photos,
unsafe file names, signals, stale temporary folders, a symlinked OUT and
oversized zip members (issue 13)."""
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import CONVERTER, run_converter, run_tool_process, tree_hashes
from PIL import Image

from mmseg_dsnet import rgb_reader
from mmseg_dsnet.datasets.converters import isic
from mmseg_dsnet.datasets.converters import synthetic_isic as synthetic

TRAIN_IMAGES = 'ISIC-2017_Training_Data'
TRAIN_MASKS = 'ISIC-2017_Training_Part1_GroundTruth'

# Runs the converter with every decode slowed down, so that a signal can
# be sent while the pairs are being checked (workers inherit the patch).
SLOW_CONVERTER = '''
import importlib.util, sys, time
from mmseg_dsnet.datasets.converters import isic
spec = importlib.util.spec_from_file_location('isic_tool', sys.argv[1])
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
decode = isic._decode

def slow_decode(*args, **kwargs):
    time.sleep(0.2)
    return decode(*args, **kwargs)

isic._decode = slow_decode
sys.exit(tool.main(sys.argv[2:]))
'''

needs_proc = pytest.mark.skipif(
    not Path('/proc/self/stat').exists(), reason='needs Linux /proc')


def _make_raw(root, **kwargs):
    # A stand-in for a real download (no SYNTHETIC.txt).
    options = dict(year=2017, num_train=3, num_val=1, num_test=1,
                   size=(32, 24), mark_synthetic=False)
    options.update(kwargs)
    synthetic.generate(root, **options)
    return root






def _leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir() if '.tmp-' in p.name)


def _save_mask(path, mask01):
    Image.fromarray((mask01 * 255).astype(np.uint8)).save(path)


def _exif_jpeg(path, stored, orientation):
    """Write ``stored`` (H, W, 3) as a JPEG tagged with ``orientation``."""
    exif = Image.Exif()
    exif[rgb_reader.EXIF_ORIENTATION_TAG] = orientation
    Image.fromarray(stored).save(
        path, format='JPEG', quality=95, exif=exif.tobytes())


def _state(pid):
    """A process's state letter from /proc, or None when it is gone."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return None
    return stat.rsplit(')', 1)[1].split()[0]


def _children(pid):
    kids = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / 'stat').read_text()
        except OSError:
            continue
        if int(stat.rsplit(')', 1)[1].split()[1]) == pid:
            kids.append(int(entry.name))
    return kids


def _wait_gone(pids, timeout=20):
    """PIDs still running (zombies count as gone) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        running = [pid for pid in pids if _state(pid) not in (None, 'Z')]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.1)


@pytest.fixture
def leftovers():
    """PIDs the test started; those still running at the end (a failed
    test) are killed, so no test leaves processes behind."""
    pids = []
    yield pids
    for pid in pids:
        if _state(pid) not in (None, 'Z'):
            os.kill(pid, signal.SIGKILL)


def _start_slow_conversion(raw, out, workers, leftovers):
    """Start a slowed conversion; return it once pairs are being written,
    with its worker PIDs."""
    proc = subprocess.Popen(
        [sys.executable, '-c', SLOW_CONVERTER, str(CONVERTER), str(raw),
         str(out), '--workers', str(workers), '--quiet'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    leftovers.append(proc.pid)
    tmp = out.parent / f'{out.name}.tmp-{proc.pid}'
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        images = tmp / 'images'
        workers_up = len(_children(proc.pid)) >= workers if workers > 1 \
            else True
        if workers_up and images.is_dir() and any(images.iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    workers_pids = _children(proc.pid) if workers > 1 else []
    leftovers.extend(workers_pids)
    assert len(workers_pids) == (workers if workers > 1 else 0)
    return proc, tmp, workers_pids


def test_exif_rotated_image_is_written_upright_and_aligned(tmp_path):
    import mmcv
    raw = _make_raw(tmp_path / 'raw')
    upright = np.full((24, 32, 3), 30, np.uint8)  # as shown: 32 wide, 24 high
    upright[:6, :10] = 230  # the lesion, top left
    lesion = (upright[..., 0] > 128).astype(np.uint8)
    # Orientation 6: shown turned 90 degrees clockwise, so stored turned
    # 90 degrees counter-clockwise, 24 wide and 32 high (transposed).
    rotated = raw / TRAIN_IMAGES / 'ISIC_0000000.jpg'
    _exif_jpeg(rotated, np.ascontiguousarray(np.rot90(upright)), 6)
    _save_mask(raw / TRAIN_MASKS / 'ISIC_0000000_segmentation.png', lesion)
    # A mask drawn on the stored pixels (32 high): misaligned once the
    # loader turns the image, so it must be refused, not written.
    unturned = raw / TRAIN_IMAGES / 'ISIC_0000001.jpg'
    _exif_jpeg(unturned, upright, 6)
    _save_mask(raw / TRAIN_MASKS / 'ISIC_0000001_segmentation.png', lesion)
    with Image.open(rotated) as stored:
        assert stored.size == (24, 32)  # raw size transposed against mask

    result = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert result.returncode == 0, result.output
    meta = json.loads((tmp_path / 'out' / 'meta.json').read_text())
    fixed = {r['id']: r for r in meta['fixed']}
    assert fixed['ISIC_0000000']['reason'] == 'EXIF orientation applied'
    assert 'ISIC_0000000.jpg' in result.stdout
    skipped = {r['id']: r for r in meta['skipped']}
    assert skipped['ISIC_0000001']['reason'] == 'size mismatch'
    assert 'EXIF orientation 6' in skipped['ISIC_0000001']['detail']
    assert not (tmp_path / 'out' / 'images' / 'ISIC_0000001.jpg').exists()

    image_file = tmp_path / 'out' / 'images' / 'ISIC_0000000.jpg'
    mask = np.asarray(Image.open(tmp_path / 'out' / 'masks' /
                                 'ISIC_0000000.png'))
    # As mmseg's LoadImageFromFile reads it (BGR) and as our reader does.
    loaded = mmcv.imfrombytes(image_file.read_bytes(), flag='color')
    ours = rgb_reader.read_rgb(image_file)
    for pixels in (loaded, ours):
        assert pixels.shape[:2] == mask.shape == (24, 32)
        gray = pixels.mean(axis=-1)
        assert gray[mask == 1].min() > 180 and gray[mask == 0].max() < 80
    with Image.open(image_file) as written:
        assert rgb_reader.exif_orientation(written) == 1


def test_an_orientation_that_keeps_the_size_is_named_as_unchecked(
        tmp_path, capsys):
    """A photo turned 180 degrees by its EXIF tag (orientation 3) has the
    same size turned or not, so a mask drawn on its stored pixels passes
    the size check and is written upside down against the photo; it was
    recorded like any other turned photo, with no warning. It is now
    named as unchecked; a 90-degree turn, which the size check does
    verify, is not."""
    raw = _make_raw(tmp_path / 'raw')
    upright = np.full((24, 32, 3), 30, np.uint8)
    upright[:6, :10] = 230
    lesion = (upright[..., 0] > 128).astype(np.uint8)
    for image_id, stored, orientation in (
            ('ISIC_0000000', np.rot90(upright, 2), 3),
            ('ISIC_0000001', np.rot90(upright), 6)):
        _exif_jpeg(raw / TRAIN_IMAGES / f'{image_id}.jpg',
                   np.ascontiguousarray(stored), orientation)
        _save_mask(raw / TRAIN_MASKS / f'{image_id}_segmentation.png',
                   lesion)
    summary = isic.convert(raw, tmp_path / 'out', workers=1)
    printed = capsys.readouterr().out
    fixed = {r['id']: r for r in summary['fixed']}
    assert {image_id: r['reason'] for image_id, r in fixed.items()} == {
        'ISIC_0000000': 'EXIF orientation applied',
        'ISIC_0000001': 'EXIF orientation applied'}
    assert fixed['ISIC_0000000']['alignment_unchecked'] is True
    assert fixed['ISIC_0000000']['detail'].endswith(
        '; the mask fits the stored pixels as well as the turned ones: '
        'alignment unchecked')
    assert 'alignment_unchecked' not in fixed['ISIC_0000001']
    assert ('WARNING: 1 image turned by an EXIF orientation that keeps its '
            'size (mirrored, turned 180 degrees, or square): ISIC_0000000; '
            'the sizes cannot tell') in printed


def test_shared_reader_applies_orientation_like_mmcv(tmp_path):
    import mmcv
    upright = np.zeros((24, 32, 3), np.uint8)
    upright[:6, :10] = (250, 20, 20)
    for orientation, stored in ((3, np.rot90(upright, 2)),
                                (6, np.rot90(upright)),
                                (8, np.rot90(upright, -1))):
        path = tmp_path / f'o{orientation}.jpg'
        _exif_jpeg(path, np.ascontiguousarray(stored), orientation)
        notes = []
        ours = rgb_reader.read_rgb(path, notes)
        theirs = mmcv.imfrombytes(path.read_bytes(), flag='color')[..., ::-1]
        assert ours.shape == theirs.shape == upright.shape
        assert np.abs(ours.astype(int) - theirs).max() <= 2
        assert np.abs(ours.astype(int) - upright).mean() < 4
        assert f'EXIF orientation {orientation} applied' in notes[0]


def test_converter_and_its_reader_need_neither_mmcv_nor_torch(tmp_path):
    raw = _make_raw(tmp_path / 'raw')
    script = (
        'import runpy, sys\n'
        "for name in ('torch', 'mmcv', 'mmengine', 'mmseg', 'cv2'):\n"
        '    sys.modules[name] = None  # importing it now fails\n'
        "sys.argv = ['isic.py'] + sys.argv[1:]\n"
        'try:\n'
        "    runpy.run_path(%r, run_name='__main__')\n"
        'finally:\n'
        "    print('models imported:', 'mmseg_dsnet.models' in sys.modules)\n"
    ) % str(CONVERTER)
    result = subprocess.run(
        [sys.executable, '-c', script, str(raw), str(tmp_path / 'out'),
         '--workers', '1'],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stdout + result.stderr
    # The package imports without the stack, registering nothing.
    assert 'models imported: False' in result.stdout
    assert (tmp_path / 'out' / 'meta.json').is_file()


def test_unsafe_ids_are_skipped_naming_the_file(tmp_path):
    raw = _make_raw(tmp_path / 'raw', num_train=5)
    renames = {
        'ISIC_0000000': 'ISIC_0000000 ',  # trailing space
        'ISIC_0000001': 'ISIC_bad\nname',  # a line break
        'ISIC_0000002': ' ISIC_0000002',  # leading space
    }
    for old, new in renames.items():
        (raw / TRAIN_IMAGES / f'{old}.jpg').rename(raw / TRAIN_IMAGES /
                                                   f'{new}.jpg')
        (raw / TRAIN_MASKS / f'{old}_segmentation.png').rename(
            raw / TRAIN_MASKS / f'{new}_segmentation.png')

    result = run_converter(raw, tmp_path / 'out', '--workers', '1')
    assert result.returncode == 0, result.output
    meta = json.loads((tmp_path / 'out' / 'meta.json').read_text())
    assert meta['skipped_by_reason'] == {'unsafe id': 3}
    lines = result.stdout.splitlines()
    for shown in ('ISIC_0000000 .jpg', 'ISIC_bad\\nname.jpg',
                  ' ISIC_0000002.jpg'):
        assert any('[unsafe id]' in line and shown in line
                   for line in lines), shown
    safe = {'ISIC_0000003', 'ISIC_0000004', 'ISIC_0000005', 'ISIC_0000006'}
    out = tmp_path / 'out'
    assert {p.stem for p in (out / 'images').iterdir()} == safe
    listed = set()
    for split_file in (out / 'splits').iterdir():
        ids = split_file.read_text().splitlines()
        assert all(i and i == i.strip() for i in ids)
        listed |= set(ids)
    assert listed == safe

    strict = run_converter(raw, tmp_path / 'strict', '--strict', '--workers', '1')
    assert strict.returncode == 2
    errors = [line for line in strict.stderr.splitlines() if line]
    assert errors[-1].startswith('ERROR: --strict') and 'Traceback' not in \
        strict.stderr


@pytest.mark.parametrize('name', [
    '', '.', '..', '.hidden', 'a/b', 'a\\b', ' a', 'a ', 'a\nb', 'a\tb',
    'a b', 'a\x00b', 'a\u2028b', 'a\xa0b', 'a\u200bb', 'CON', 'nul',
    'Aux.x', 'COM1', 'lpt9.tar', 'PRN', 'com\xb9'
])
def test_unsafe_id_rule(name):
    assert isic._id_problem(name) is not None


@pytest.mark.parametrize('name', ['ISIC_0000000', 'a.b', 'a..b', 'ä-1',
                                  'CONSOLE', 'COM10', 'ISIC_CON', 'x.con'])
def test_safe_id_rule(name):
    assert isic._id_problem(name) is None


@needs_proc
@pytest.mark.parametrize('signame,workers', [('SIGTERM', 2), ('SIGHUP', 1)])
def test_sigterm_or_sighup_cleans_up_and_stops_the_workers(
        tmp_path, signame, workers, leftovers):
    signum = getattr(signal, signame)
    raw = _make_raw(
        tmp_path / 'raw', num_train=isic.MIN_PAIRS_FOR_POOL + 6,
        size=(16, 12))
    out = tmp_path / 'out'
    proc, tmp, worker_pids = _start_slow_conversion(raw, out, workers,
                                                    leftovers)
    assert tmp.is_dir()
    proc.send_signal(signum)  # the parent only
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, stderr
    assert f'ERROR: interrupted by {signame}; nothing written' in stderr
    assert 'Traceback' not in stderr
    assert not out.exists() and _leftovers(tmp_path) == []
    assert _wait_gone(worker_pids) == []


@needs_proc
def test_stale_tmp_folder_is_removed_by_the_next_run(tmp_path, leftovers):
    raw = _make_raw(
        tmp_path / 'raw', num_train=isic.MIN_PAIRS_FOR_POOL + 6,
        size=(16, 12))
    out = tmp_path / 'out'
    proc, stale, worker_pids = _start_slow_conversion(raw, out, 2, leftovers)
    proc.kill()  # SIGKILL: the converter cannot clean up
    proc.communicate(timeout=60)
    assert stale.is_dir()
    assert _wait_gone(worker_pids) == []  # the workers died with it
    alive = tmp_path / f'out.tmp-{os.getpid()}'  # a run still going
    alive.mkdir()

    # In its own process: the folder above is this process's.
    result = run_tool_process(CONVERTER, raw, out, '--workers', '1')
    assert result.returncode == 0, result.output
    assert f'removed {stale}' in result.stdout
    assert f'process {proc.pid} is gone' in result.stdout
    assert not stale.exists() and alive.is_dir()
    assert (out / 'meta.json').is_file()


def test_an_earlier_conversion_moved_aside_by_a_killed_run_is_handled(
        tmp_path, monkeypatch):
    """An --overwrite run killed between moving the earlier conversion
    aside (``OUT.old-PID``) and moving its own in left that folder, named
    nowhere, forever. It is now named and kept while it is the only copy
    (no OUT), and removed once OUT exists again."""
    out = tmp_path / 'out'
    aside = tmp_path / 'out.old-99999'
    (aside / 'images').mkdir(parents=True)
    isic._mark_run_folder(aside, 'old', isic.CONVERTER_TOOL, 99999)
    (tmp_path / 'out.old-x').mkdir()  # not a process id: not ours
    monkeypatch.setattr(isic, 'pid_alive', lambda pid: False)
    said = []
    isic._remove_stale_tmp(out, said.append)
    assert aside.is_dir()
    assert said == [
        f'warning: kept {aside}: the earlier conversion that an interrupted '
        '--overwrite run (process 99999 is gone) moved aside before its own '
        f'reached {out}; remove it once it is not needed']
    out.mkdir()
    said.clear()
    isic._remove_stale_tmp(out, said.append)
    assert not aside.exists() and (tmp_path / 'out.old-x').is_dir()
    assert said == [
        f'note: removed {aside} (the conversion it replaced), left by an '
        'interrupted --overwrite run (process 99999 is gone)']


def test_a_folder_named_like_a_stale_one_is_removed_only_if_marked(
        tmp_path, monkeypatch):
    """A user's folder named like one an interrupted conversion leaves
    (``OUT.old-N``, ``OUT.tmp-N``, process N gone), such as a backup of
    an earlier conversion, is kept and named in a warning; only a folder
    holding the converter's marker, and nothing the converter does not
    write, is removed."""
    raw = _make_raw(tmp_path / 'raw', size=(16, 12))
    out = tmp_path / 'out'
    isic.convert(raw, out, workers=1, verbose=False)
    backup = tmp_path / 'out.old-2016'  # a backup of the conversion
    shutil.copytree(out, backup)
    theirs = tmp_path / 'out.tmp-7'  # another tool's folder
    theirs.mkdir()
    (theirs / 'notes.txt').write_text('mine')
    stale = tmp_path / 'out.tmp-99999'  # left by a killed conversion
    (stale / 'images').mkdir(parents=True)
    isic._mark_run_folder(stale, 'tmp', isic.CONVERTER_TOOL, 99999)
    (stale / 'images' / 'ISIC_1.jpg').write_bytes(b'partly written')
    added = tmp_path / 'out.old-99998'  # marked, then added to by hand
    shutil.copytree(out, added)
    isic._mark_run_folder(added, 'old', isic.CONVERTER_TOOL, 99998)
    (added / 'results.csv').write_text('mine')
    kept = {p: tree_hashes(p) for p in (backup, theirs, added)}
    monkeypatch.setattr(isic, 'pid_alive', lambda pid: False)
    result = run_converter(raw, out, '--overwrite', '--workers', '1')
    assert result.returncode == 0, result.output
    assert not stale.exists()
    assert f'note: removed {stale}, left by an interrupted conversion ' \
        '(process 99999 is gone)' in result.stdout
    assert {p: tree_hashes(p) for p in kept} == kept
    marker = isic.RUN_MARKER
    for folder, why in (
            (added, 'it holds results.csv, which the converter does not '
             'write'),
            (backup, f'it does not hold {marker}, which the converter '
             'writes into the folders it makes'),
            (theirs, f'it does not hold {marker}, which the converter '
             'writes into the folders it makes')):
        assert (f'warning: kept {folder}: named like a folder of an '
                'interrupted conversion (process '
                f'{folder.name.rpartition("-")[2]} is gone), but {why}; '
                'remove it yourself if it is not needed') in result.stdout


def test_out_reaching_into_src_through_a_symlink_is_refused(tmp_path):
    raw = _make_raw(tmp_path / 'raw')
    link = tmp_path / 'link'
    link.symlink_to(raw, target_is_directory=True)
    before = tree_hashes(raw)
    result = run_converter(raw, link / 'converted')
    assert result.returncode == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith('ERROR: OUT (')
    assert f'resolves to {raw / "converted"}' in lines[0]
    assert 'must not contain one another' in lines[0]
    assert tree_hashes(raw) == before
    assert not (raw / 'converted').exists() and _leftovers(raw) == []


def test_out_inside_a_linked_official_folder_is_refused(tmp_path):
    """An official folder that is a link to data kept elsewhere, with OUT
    inside its target: the conversion was written into the input, and the
    next conversion read its images and masks as training images."""
    raw = _make_raw(tmp_path / 'raw', size=(16, 12))
    kept = tmp_path / 'disk' / 'train'
    kept.parent.mkdir()
    (raw / TRAIN_IMAGES).rename(kept)
    (raw / TRAIN_IMAGES).symlink_to(kept, target_is_directory=True)
    before = tree_hashes(kept)
    with pytest.raises(isic.ConversionError) as refused:
        isic.convert(raw, kept / 'converted', workers=1, verbose=False)
    assert str(refused.value) == (
        f'OUT ({kept / "converted"}) and {TRAIN_IMAGES} of SRC, a link to '
        f'{kept}, must not contain one another: the input is never '
        'modified')
    assert tree_hashes(kept) == before


@pytest.mark.parametrize('where', ['more', 'a/b/more'])
@pytest.mark.parametrize('out_in_target', [True, False])
def test_out_and_a_link_deeper_in_an_official_folder_are_apart(
        tmp_path, where, out_in_target):
    """A link inside an official folder (a subfolder, or one deeper) to
    data kept elsewhere, with OUT inside its target (or holding it): the
    scan follows the link, so the conversion would be written into its
    own input. Refused as a linked official folder is, nothing
    written."""
    raw = _make_raw(tmp_path / 'raw', size=(16, 12))
    kept = tmp_path / 'disk' / 'more'
    kept.mkdir(parents=True)
    link = raw / TRAIN_IMAGES / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(kept, target_is_directory=True)
    out = kept / 'converted' if out_in_target else tmp_path / 'disk'
    before = tree_hashes(raw)
    result = run_converter(raw, out, '--workers', '1')
    assert result.returncode == 2, result.output
    assert result.stderr == (
        f'ERROR: OUT ({out}) and {TRAIN_IMAGES}/{where} of SRC, a link to '
        f'{kept}, must not contain one another: the input is never '
        'modified\n')
    assert tree_hashes(raw) == before
    assert sorted(os.listdir(tmp_path / 'disk')) == ['more']
    assert os.listdir(kept) == [] and _leftovers(tmp_path / 'disk') == []


def test_a_linked_out_is_written_where_it_points(tmp_path):
    """OUT as a link to a folder (data kept on a larger disk) was refused
    as ``exists and is not a folder``; with --overwrite the link was
    replaced by a new folder beside it and the conversion it showed was
    left as it was. The conversion now goes where the link points, the
    link stays, and a link to nothing is refused."""
    raw = _make_raw(tmp_path / 'raw', num_train=4, num_val=2, num_test=2)
    disk = tmp_path / 'disk' / 'isic2017'
    disk.mkdir(parents=True)
    (tmp_path / 'data').mkdir()
    link = tmp_path / 'data' / 'isic2017'
    link.symlink_to(disk, target_is_directory=True)
    for options in ([], ['--overwrite', '--seed', '3']):
        result = run_converter(raw, link, '--workers', '1', *options)
        assert result.returncode == 0, result.output
        assert (f'note: OUT {link} is a link; the conversion is written '
                f'where it points, {disk}') in result.stdout
        assert link.is_symlink() and os.readlink(link) == str(disk)
        assert os.listdir(tmp_path / 'data') == ['isic2017']
        assert sorted(os.listdir(tmp_path / 'disk')) == ['isic2017']
        seed = json.loads((disk / 'meta.json').read_text())['seed']
        assert seed == (3 if options else 0)
    dangling = tmp_path / 'data' / 'isic2018'
    dangling.symlink_to(tmp_path / 'unmounted' / 'isic2018')
    result = run_converter(raw, dangling, '--workers', '1')
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f'ERROR: OUT {dangling} is a link to {tmp_path}/unmounted/isic2018, '
        'which does not exist (a drive not mounted, a moved folder?); make '
        'that folder or give OUT the folder itself; nothing written')
    assert not (tmp_path / 'unmounted').exists()


def test_a_mount_point_as_out_is_refused_before_the_work(
        tmp_path, monkeypatch):
    """A mount point (a disk mounted for the data) as OUT: the conversion
    is built beside it and renamed into place, which a mount point cannot
    be, so every pair was converted before ``ERROR: [Errno 16] Device or
    resource busy``. It is refused first, with what to give instead."""
    raw = _make_raw(tmp_path / 'raw')
    mounted = tmp_path / 'disk'
    mounted.mkdir()
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, 'ismount', lambda path: str(path) == str(
        mounted) or real_ismount(path))
    monkeypatch.setattr(isic, '_run_tasks', None)  # no pair is checked
    result = run_converter(raw, mounted, '--workers', '1')
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f'ERROR: {mounted} is a mount point, which the conversion (built '
        'beside it and renamed into place) cannot replace; give a folder '
        f'inside it, such as {mounted}/isic2017; nothing written')
    assert sorted(os.listdir(tmp_path)) == ['disk', 'raw']
    assert os.listdir(mounted) == []


def test_zip_member_over_the_limit_is_skipped_naming_it(
        tmp_path, monkeypatch, capsys):
    raw = _make_raw(tmp_path / 'raw', as_zip=True)
    archive = raw / f'{TRAIN_IMAGES}.zip'
    member = f'{TRAIN_IMAGES}/ISIC_0000000.jpg'
    with zipfile.ZipFile(archive) as source:
        entries = {info.filename: source.read(info)
                   for info in source.infolist()}
    # A valid JPEG followed by 1 MB of zeros: tiny in the zip, large once
    # inflated, as a zip bomb is.
    entries[member] += bytes(2**20)
    with zipfile.ZipFile(archive, 'w', zipfile.ZIP_DEFLATED) as target:
        for name, data in entries.items():
            target.writestr(name, data)
    assert archive.stat().st_size < 2**19
    monkeypatch.setattr(isic, 'MAX_MEMBER_BYTES', 2**19)
    opened = []
    original_open = zipfile.ZipFile.open

    def recording_open(self, name, *args, **kwargs):
        opened.append(getattr(name, 'filename', name))
        return original_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, 'open', recording_open)
    summary = isic.convert(raw, tmp_path / 'out', workers=1)
    printed = capsys.readouterr().out
    skip = next(r for r in summary['skipped'] if r['id'] == 'ISIC_0000000')
    assert skip['reason'] == 'file too large'
    assert f'{TRAIN_IMAGES}.zip:{member}' in skip['detail']
    assert '0.5 MB per file' in skip['detail']
    assert f'[file too large] {TRAIN_IMAGES}.zip:{member}' in printed
    assert member not in opened  # refused from its declared size
    assert summary['counts']['official_train'] == 2


def test_read_is_bounded_even_when_the_declared_size_lies(monkeypatch):
    reads = []

    class Stream(io.BytesIO):

        def read(self, size=-1):
            reads.append(size)
            return super().read(size)

    class Archive:

        def __init__(self, *args):
            pass

        def getinfo(self, name):
            return zipfile.ZipInfo(name)  # file_size 0: a lie

        def open(self, name):
            return Stream(bytes(4096))

    monkeypatch.setattr(isic.zipfile, 'ZipFile', Archive)
    monkeypatch.setattr(isic, '_open_zips', {})
    monkeypatch.setattr(isic, 'MAX_MEMBER_BYTES', 1000)
    with pytest.raises(isic.FileTooLargeError, match='lying.zip:big.jpg'):
        isic._read_bytes(('lying.zip', 'big.jpg', True))
    assert reads == [1001]  # never more than the limit + 1 byte


@pytest.mark.parametrize('tool', ['isic.py', 'make_synthetic_isic.py'])
def test_traceback_variable_works_in_the_data_tools(tool, tmp_path,
                                                    monkeypatch):
    """``MMSEG_DSNET_TRACEBACK=1`` (docs/reliability.md) printed nothing
    more in the converters, which report their own errors (they run before
    the stack is installed): now the traceback, then the same ERROR line
    and exit 2, as in the other tools."""
    from conftest import run_tool_in_process
    full = tmp_path / 'full'
    full.mkdir()
    (full / 'x').write_text('')
    args = [tmp_path / 'nonexistent', tmp_path / 'out'] \
        if tool == 'isic.py' else [full]
    script = CONVERTER.parent / tool
    plain = run_tool_in_process(script, *args)
    monkeypatch.setenv('MMSEG_DSNET_TRACEBACK', '1')
    traced = run_tool_in_process(script, *args)
    assert plain.returncode == traced.returncode == 2
    assert plain.stderr.startswith('ERROR: ')
    assert 'Traceback' not in plain.stderr
    assert traced.stderr.startswith('Traceback (most recent call last)')
    assert traced.stderr.endswith(plain.stderr)


def test_a_folder_name_the_console_cannot_show_is_escaped(tmp_path):
    """A download folder named in Chinese, converted with the output
    redirected on Windows (stdout in cp1252): printing its name raised
    ``UnicodeEncodeError``, a traceback and exit 1, nothing converted. Now
    the name is escaped in the output and the set is written."""
    raw = _make_raw(tmp_path / 'Praxis Müller 写真')
    out = tmp_path / 'out'
    result = subprocess.run(
        [sys.executable, str(CONVERTER), str(raw), str(out), '--workers',
         '1'], capture_output=True, timeout=120,
        env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONIOENCODING='cp1252'))
    stdout = result.stdout.decode('cp1252')
    assert result.returncode == 0, stdout + result.stderr.decode('cp1252')
    assert f'from {tmp_path}/Praxis M\xfcller \\u5199\\u771f' in stdout
    assert json.loads((out / 'meta.json').read_text(
        encoding='utf-8'))['source'] == str(raw)
