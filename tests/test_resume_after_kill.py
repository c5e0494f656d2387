"""A training run killed with SIGKILL -- in the middle of an epoch, or in the
middle of writing a checkpoint -- and restarted with ``--resume`` ends with
exactly the weights and metrics of an uninterrupted run; an interrupted
checkpoint write never replaces (or deletes) the last good checkpoint."""
import errno
import json
import os
import signal
import subprocess
import sys
from collections import deque

import pytest
import torch
from conftest import REPO, write_tiny_config

PY = sys.executable

# Imported by the training subprocesses (config ``custom_imports``); the
# fault is chosen with MMSEG_DSNET_FAULT:
#   kill@E.I            SIGKILL before iteration I of epoch E (1-based)
#   killwrite@NAME      SIGKILL when half of checkpoint NAME is written
FAULT_PLUGIN = '''
import os
import signal

from mmengine.runner import EpochBasedTrainLoop

from mmseg_dsnet.utils import fileio

kind, _, where = os.environ.get('MMSEG_DSNET_FAULT', '').partition('@')
if kind == 'kill':
    epoch, iteration = map(int, where.split('.'))
    run_iter = EpochBasedTrainLoop.run_iter

    def killing_run_iter(self, idx, data_batch):
        if self._epoch + 1 == epoch and idx + 1 == iteration:
            os.kill(os.getpid(), signal.SIGKILL)
        return run_iter(self, idx, data_batch)

    EpochBasedTrainLoop.run_iter = killing_run_iter
elif kind == 'killwrite':
    write_chunks = fileio._write_chunks

    def killing_write(fileobj, data, *args, **kwargs):
        if os.path.basename(fileobj.name).startswith(f'.{where}.part-'):
            fileobj.write(memoryview(data)[:len(data) // 2])
            fileobj.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return write_chunks(fileobj, data, *args, **kwargs)

    fileio._write_chunks = killing_write
'''

DETERMINISTIC = '''
custom_imports = dict(imports=['mmseg_dsnet', 'fault_plugin'],
                      allow_failed_imports=False)
randomness = dict(seed=0, deterministic=True)
'''


def start_training(cfg, work_dir, *extra, fault=None):
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=str(cfg.parent) + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    env.pop('MMSEG_DSNET_FAULT', None)
    if fault:
        env['MMSEG_DSNET_FAULT'] = fault
    # Output goes to a file: a full pipe would block a concurrent run.
    log = cfg.parent / f'{work_dir.name}_{fault or "plain"}.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen(
            [PY, 'tools/train.py', str(cfg), '--work-dir', str(work_dir),
             '--no-synthetic-fallback', *extra],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def finish(proc):
    proc.wait(timeout=600)
    return proc.returncode, proc.log.read_text()


def val_metrics(work_dir):
    """The last validation record of the newest run in ``work_dir``."""
    logs = sorted(work_dir.glob('*/vis_data/scalars.json'))
    records = [json.loads(line) for line in logs[-1].read_text().splitlines()]
    return [r for r in records if 'IoU' in r][-1]


def load(path):
    from mmseg_dsnet.compat import safe_torch_load
    return safe_torch_load(str(path), map_location='cpu')


@pytest.fixture(scope='module')
def runs(tiny_isic, tmp_path_factory):
    """An uninterrupted 2-epoch run, and the same run interrupted twice:
    killed while writing epoch_2.pth (keeping one checkpoint only), resumed
    and killed at iteration 2 of epoch 2, resumed again to the end."""
    tmp = tmp_path_factory.mktemp('resume')
    (tmp / 'fault_plugin.py').write_text(FAULT_PLUGIN)
    cfg = write_tiny_config(tmp / 'tiny_resume.py', tiny_isic, epochs=2)
    cfg.write_text(cfg.read_text() + DETERMINISTIC)
    clean, broken = tmp / 'clean', tmp / 'broken'
    keep_one = ('--cfg-options', 'default_hooks.checkpoint.max_keep_ckpts=1')
    # The uninterrupted run and the first interrupted one are independent.
    clean_proc = start_training(cfg, clean)
    stage = {}
    stage['write'] = finish(start_training(
        cfg, broken, *keep_one, fault='killwrite@epoch_2.pth'))
    stage['after_write'] = dict(
        files=sorted(p.name for p in broken.iterdir()),
        last=(broken / 'last_checkpoint').read_text().strip())
    stage['clean'] = finish(clean_proc)
    stage['mid_epoch'] = finish(start_training(
        cfg, broken, '--resume', *keep_one, fault='kill@2.2'))
    stage['after_mid_epoch'] = sorted(p.name for p in broken.iterdir())
    stage['final'] = finish(start_training(cfg, broken, '--resume',
                                           *keep_one))
    return clean, broken, stage


@pytest.mark.slow
def test_uninterrupted_run_finishes(runs):
    clean, _, stage = runs
    code, out = stage['clean']
    assert code == 0, out[-3000:]
    assert (clean / 'epoch_2.pth').is_file()


@pytest.mark.slow
def test_kill_while_writing_a_checkpoint_keeps_the_last_good_one(runs):
    _, broken, stage = runs
    code, out = stage['write']
    assert code == -signal.SIGKILL, out[-3000:]
    files = stage['after_write']['files']
    # The new checkpoint never appeared under its name; only a hidden
    # partial file remains, and the previous epoch was not deleted even
    # with max_keep_ckpts=1.
    assert 'epoch_2.pth' not in files
    assert 'epoch_1.pth' in files
    assert any(name.startswith('.epoch_2.pth.part-') for name in files)
    assert stage['after_write']['last'].endswith('epoch_1.pth')


@pytest.mark.slow
def test_kill_mid_epoch_after_resuming(runs):
    _, _, stage = runs
    code, out = stage['mid_epoch']
    assert code == -signal.SIGKILL, out[-3000:]
    assert 'left by an interrupted checkpoint write' in out
    assert 'resumed epoch: 1' in out
    files = stage['after_mid_epoch']
    assert 'epoch_1.pth' in files and 'epoch_2.pth' not in files
    assert not any('.part-' in name for name in files)


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(runs):
    clean, broken, stage = runs
    code, out = stage['final']
    assert code == 0, out[-3000:]
    assert 'resumed epoch: 1' in out
    expected, got = load(clean / 'epoch_2.pth'), load(broken / 'epoch_2.pth')
    assert expected['meta']['epoch'] == got['meta']['epoch'] == 2
    assert expected['meta']['iter'] == got['meta']['iter']
    assert expected['state_dict'].keys() == got['state_dict'].keys()
    for name, tensor in expected['state_dict'].items():
        assert torch.equal(tensor, got['state_dict'][name]), name
    for state_a, state_b in zip(expected['optimizer']['state'].values(),
                                got['optimizer']['state'].values()):
        for key in ('exp_avg', 'exp_avg_sq'):
            assert torch.equal(state_a[key], state_b[key])
    metrics_a, metrics_b = val_metrics(clean), val_metrics(broken)
    for key in ('IoU', 'DSC', 'Acc', 'Sen', 'Spe', 'IoU_orig', 'mIoU_img'):
        assert metrics_a[key] == metrics_b[key], key
    # max_keep_ckpts=1 still applies once the new checkpoint is safe.
    assert not (broken / 'epoch_1.pth').exists()


def test_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    """Disk full halfway through: the target keeps its old content, no
    partial file stays behind, the error reaches the caller (the file
    backend AtomicCheckpointHook writes checkpoints with)."""
    from mmengine.fileio import LocalBackend, get_file_backend
    from mmseg_dsnet.engine import AtomicCheckpointHook, AtomicLocalBackend
    from mmseg_dsnet.utils import fileio
    hook = AtomicCheckpointHook(interval=1)
    assert hook.backend_args == dict(backend='atomic_local')
    backend = get_file_backend(str(tmp_path), backend_args=hook.backend_args)
    assert isinstance(backend, AtomicLocalBackend)
    # Paths without backend_args keep mmengine's own backend.
    assert type(get_file_backend(str(tmp_path))) is LocalBackend
    target = tmp_path / 'epoch_1.pth'
    target.write_bytes(b'old checkpoint')

    def disk_full(fileobj, data, *args, **kwargs):
        fileobj.write(memoryview(data)[:len(data) // 2])
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(fileio, '_write_chunks', disk_full)
    with pytest.raises(OSError, match='No space left'):
        backend.put(b'new checkpoint' * 1000, str(target))
    assert target.read_bytes() == b'old checkpoint'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']
    monkeypatch.undo()
    backend.put(b'new checkpoint', str(target))
    assert target.read_bytes() == b'new checkpoint'
    backend.put_text('epoch_1.pth', str(tmp_path / 'pointer'))
    assert (tmp_path / 'pointer').read_text() == 'epoch_1.pth'


class _StubRunner:
    """Just what CheckpointHook needs to save checkpoints after epoch 2."""

    def __init__(self, work_dir, fail, **info):
        from mmengine.logging import MessageHub, MMLogger
        self.work_dir = str(work_dir)
        self.fail = fail
        self.epoch, self.iter = 1, 6  # the second epoch is ending
        self.logger = MMLogger.get_instance('stub_ckpt_runner')
        self.message_hub = MessageHub.get_instance(f'stub_hub_{work_dir}')
        for key, value in info.items():
            self.message_hub.update_info(key, value)

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        if self.fail:
            raise OSError(errno.ENOSPC, 'No space left on device')
        with open(os.path.join(out_dir, filename), 'wb') as f:
            f.write(b'new')


@pytest.mark.parametrize('fail', [True, False])
def test_old_checkpoint_is_deleted_only_after_the_new_one_is_saved(
        tmp_path, fail):
    from mmseg_dsnet.engine import AtomicCheckpointHook
    (tmp_path / 'epoch_1.pth').write_bytes(b'old')
    hook = AtomicCheckpointHook(interval=1, max_keep_ckpts=1)
    runner = _StubRunner(tmp_path, fail, keep_ckpt_ids=[1])
    hook.before_train(runner)
    assert hook.keep_ckpt_ids == deque([1])
    if fail:
        with pytest.raises(OSError, match='No space left'):
            hook.after_train_epoch(runner)
        assert (tmp_path / 'epoch_1.pth').read_bytes() == b'old'
    else:
        hook.after_train_epoch(runner)
        assert not (tmp_path / 'epoch_1.pth').exists()
        assert (tmp_path / 'epoch_2.pth').read_bytes() == b'new'
        assert (tmp_path / 'last_checkpoint').read_text().endswith(
            'epoch_2.pth')
    # The hook's own (atomic) backend is back in place.
    assert type(hook.file_backend).__name__ == 'AtomicLocalBackend'


@pytest.mark.parametrize('case', ['fail', 'ok', 'same_name'])
def test_previous_best_is_deleted_only_after_the_new_best_is_saved(
        tmp_path, case):
    from mmseg_dsnet.engine import AtomicCheckpointHook
    old_best = tmp_path / 'best_IoU_epoch_1.pth'
    old_best.write_bytes(b'old best')
    hook = AtomicCheckpointHook(interval=1, save_best='IoU', rule='greater')
    runner = _StubRunner(tmp_path, case == 'fail', best_ckpt=str(old_best),
                         best_score=0.5)
    # Validation after epoch 2 (the same name as the old best: epoch 1).
    runner.epoch = 1 if case == 'same_name' else 2
    hook.before_train(runner)
    if case == 'fail':
        with pytest.raises(OSError, match='No space left'):
            hook.after_val_epoch(runner, dict(IoU=0.9))
        assert old_best.read_bytes() == b'old best'
        return
    hook.after_val_epoch(runner, dict(IoU=0.9))
    new_best = tmp_path / f'best_IoU_epoch_{runner.epoch}.pth'
    assert new_best.read_bytes() == b'new'
    assert old_best.exists() == (case == 'same_name')


@pytest.mark.slow
def test_resume_skips_a_truncated_checkpoint(runs, tmp_path):
    """``last_checkpoint`` naming a cut-short file (a kill without our
    atomic write, a copy that failed) resumes from the newest complete
    checkpoint; loading the cut-short file names it."""
    from mmseg_dsnet.compat import CorruptCheckpointError
    from mmseg_dsnet.engine import pick_resume_checkpoint
    clean, _, _ = runs
    good = (clean / 'epoch_1.pth').read_bytes()
    (tmp_path / 'epoch_1.pth').write_bytes(good)
    (tmp_path / 'epoch_2.pth').write_bytes(good[:len(good) // 2])
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    assert pick_resume_checkpoint(str(tmp_path)) == str(tmp_path /
                                                        'epoch_1.pth')
    (tmp_path / 'last_checkpoint').write_text('')  # killed while writing it
    assert pick_resume_checkpoint(str(tmp_path)) == str(tmp_path /
                                                        'epoch_1.pth')
    with pytest.raises(CorruptCheckpointError, match='epoch_2.pth'):
        load(tmp_path / 'epoch_2.pth')
    assert pick_resume_checkpoint(str(tmp_path / 'nothing_here')) is None


@pytest.mark.slow
def test_resume_of_a_copied_work_dir_takes_its_own_checkpoint(runs,
                                                             tmp_path):
    """A copied work dir's ``last_checkpoint`` still names the original's
    checkpoint: ``--resume`` continued from the original's (which may have
    trained on since), not from the copy's own."""
    from mmseg_dsnet.engine import pick_resume_checkpoint
    from mmseg_dsnet.utils.errors import UserError
    clean, _, _ = runs
    original, copy = tmp_path / 'original', tmp_path / 'copy'
    original.mkdir()
    copy.mkdir()
    good = (clean / 'epoch_1.pth').read_bytes()
    for folder in (original, copy):
        (folder / 'epoch_1.pth').write_bytes(good)
    (original / 'epoch_2.pth').write_bytes(good)  # the original went on
    (copy / 'last_checkpoint').write_text(str(original / 'epoch_2.pth'))
    assert pick_resume_checkpoint(str(copy)) == str(copy / 'epoch_1.pth')
    (copy / 'epoch_1.pth').unlink()
    with pytest.raises(UserError, match=r'names .*original/epoch_2.pth, a '
                       'checkpoint outside the work dir'):
        pick_resume_checkpoint(str(copy))
    # The work dir's own pointer, given by another path to that folder.
    (copy / 'epoch_3.pth').write_bytes(good)
    (copy / 'last_checkpoint').write_text(
        str(tmp_path / '.' / 'copy' / 'epoch_3.pth'))
    assert pick_resume_checkpoint(str(copy)).endswith('copy/epoch_3.pth')


def _reseeded_draws(hook, seed, epoch, noise=0, loader=None):
    """Draws of Python's, NumPy's and torch's generators after ``hook``
    reseeded them for ``epoch`` of a run seeded ``seed`` (``noise`` draws
    beforehand stand for whatever ran before the epoch)."""
    import random
    from types import SimpleNamespace

    import numpy as np
    random.random(), np.random.rand(noise + 1), torch.rand(noise + 1)
    runner = SimpleNamespace(
        seed=seed, epoch=epoch, train_loop=SimpleNamespace(
            dataloader=loader if loader is not None else []))
    hook.before_train_epoch(runner)
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_an_epochs_randomness_is_its_seed_and_epoch_only():
    """What a resumed run draws in an epoch equals what the uninterrupted
    run drew there: the same (seed, epoch) gives the same draws whatever
    ran before; another epoch or seed gives others; the hook's own seed
    replaces the runner's; a runner without a seed is left alone."""
    from mmseg_dsnet.engine.hooks.reseed_per_epoch_hook import \
        ReseedPerEpochHook
    hook = ReseedPerEpochHook()
    draws = _reseeded_draws(hook, 3, 2)
    assert _reseeded_draws(hook, 3, 2, noise=7) == draws
    assert _reseeded_draws(hook, 3, 1) != draws
    assert _reseeded_draws(hook, 4, 2) != draws
    assert _reseeded_draws(ReseedPerEpochHook(seed=3), 9, 2) == draws
    torch.manual_seed(0)
    unseeded = _reseeded_draws(hook, None, 2)
    torch.manual_seed(0)
    assert _reseeded_draws(hook, None, 2, noise=7)[2] != unseeded[2]


def test_each_loader_worker_of_an_epoch_gets_its_own_seed():
    """With workers started anew each epoch, worker ``i`` of an epoch is
    seeded from that epoch's seed and ``i``: the same on a resume, another
    for the next worker and the next epoch. Persistent workers keep their
    generators, so no worker seeding is set (a warning says a resume is not
    exact)."""
    from torch.utils.data import DataLoader

    from mmseg_dsnet.engine.hooks.reseed_per_epoch_hook import \
        ReseedPerEpochHook
    hook = ReseedPerEpochHook()

    def worker_draws(epoch, worker):
        loader = DataLoader(list(range(4)), num_workers=2)
        _reseeded_draws(hook, 3, epoch, loader=loader)
        loader.worker_init_fn(worker)
        return float(torch.rand(1)), float(np.random.rand())

    import numpy as np
    first = worker_draws(1, 0)
    assert worker_draws(1, 0) == first
    assert worker_draws(1, 1) != first
    assert worker_draws(2, 0) != first
    persistent = DataLoader(list(range(4)), num_workers=2,
                            persistent_workers=True)
    _reseeded_draws(hook, 3, 1, loader=persistent)
    assert persistent.worker_init_fn is None


def test_a_local_out_dir_is_written_atomically(tmp_path):
    """A local ``out_dir`` gets the atomic backend as the work dir does; a
    remote one keeps mmengine's choice."""
    from mmseg_dsnet.engine import AtomicCheckpointHook
    hook = AtomicCheckpointHook(interval=1, out_dir=str(tmp_path))
    assert hook.backend_args == dict(backend='atomic_local')
    assert AtomicCheckpointHook(interval=1,
                                out_dir='s3://bucket/run').backend_args is None


@pytest.mark.parametrize('fail', [True, False])
def test_an_iteration_checkpoint_replaces_the_old_one_only_once_saved(
        tmp_path, fail):
    """Iteration-based saving (``by_epoch=False``) deletes the oldest
    checkpoint only after the new one is written."""
    from mmseg_dsnet.engine import AtomicCheckpointHook
    (tmp_path / 'iter_6.pth').write_bytes(b'old')
    hook = AtomicCheckpointHook(interval=1, by_epoch=False,
                                max_keep_ckpts=1)
    runner = _StubRunner(tmp_path, fail, keep_ckpt_ids=[6])
    runner.max_iters = 100
    hook.before_train(runner)
    if fail:
        with pytest.raises(OSError, match='No space left'):
            hook.after_train_iter(runner, 6)
        assert (tmp_path / 'iter_6.pth').read_bytes() == b'old'
    else:
        hook.after_train_iter(runner, 6)
        assert not (tmp_path / 'iter_6.pth').exists()
        assert (tmp_path / 'iter_7.pth').read_bytes() == b'new'


def test_a_failed_text_write_leaves_the_old_file_intact(tmp_path,
                                                        monkeypatch):
    """``put_text`` (``last_checkpoint``) is atomic like ``put``."""
    from mmengine.fileio import get_file_backend

    from mmseg_dsnet.engine.atomic_file_backend import \
        register_atomic_backend
    from mmseg_dsnet.utils import fileio
    backend = get_file_backend(
        str(tmp_path), backend_args=dict(backend=register_atomic_backend()))
    pointer = tmp_path / 'last_checkpoint'
    pointer.write_text('epoch_1.pth')

    def disk_full(fileobj, data, *args, **kwargs):
        fileobj.write(memoryview(data)[:len(data) // 2])
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(fileio, '_write_chunks', disk_full)
    with pytest.raises(OSError, match='No space left'):
        backend.put_text('epoch_2.pth' * 100, str(pointer))
    assert pointer.read_text() == 'epoch_1.pth'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['last_checkpoint']
