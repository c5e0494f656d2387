"""Safe checkpoint loading: weights_only plus a minimal allow-list; and
importing the package changes nothing else in mmengine."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO


@pytest.fixture(autouse=True)
def _enable():
    from mmseg_dsnet import compat
    compat.enable_safe_loading()
    compat.enable_safe_loading()  # idempotent


class RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker, ))


class WalksFromHistoryBuffer:
    """getattr on an allowed class towards something else than a
    statistics method: the first step of a sandbox escape."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


def test_mmengine_objects_roundtrip(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmseg_dsnet.compat import safe_torch_load
    buf = HistoryBuffer()
    for value in (1.0, 2.0, 4.0):
        buf.update(value)
    obj = dict(
        buf=buf,
        array=np.arange(6, dtype=np.float32).reshape(2, 3),
        scalar=np.float64(0.25),
        count=np.int64(3),
        dtype=np.dtype('int16'),
        weight=torch.ones(2))
    path = tmp_path / 'ok.pth'
    torch.save(obj, path)
    loaded = safe_torch_load(str(path))
    assert loaded['buf'].mean() == pytest.approx(7 / 3)
    assert loaded['buf'].max() == 4.0
    np.testing.assert_array_equal(loaded['array'], obj['array'])
    assert loaded['scalar'] == 0.25 and loaded['count'] == 3
    assert loaded['dtype'] == np.dtype('int16')
    # The allow-list is global: plain weights_only loads work too.
    assert torch.load(path, weights_only=True)['buf'].current() == 4.0


class WalksFromAnotherClass:
    """getattr with a statistics method's name on another allowed class
    than HistoryBuffer (only HistoryBuffer's own lookup is allowed)."""

    def __reduce__(self):
        return (getattr, (np.ndarray, 'max'))


@pytest.mark.parametrize(
    'payload', ['runs_code', 'getattr_escape', 'getattr_other_class'])
def test_code_executing_pickles_are_refused(tmp_path, payload):
    from mmengine.runner import CheckpointLoader, load_checkpoint
    from mmseg_dsnet.compat import UnsafeCheckpointError, safe_torch_load
    marker = tmp_path / 'code_ran'
    evil = dict(runs_code=lambda: RunsCode(str(marker)),
                getattr_escape=WalksFromHistoryBuffer,
                getattr_other_class=WalksFromAnotherClass)[payload]()
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': evil}, path)
    for load in (lambda: safe_torch_load(str(path)),
                 lambda: CheckpointLoader.load_checkpoint(str(path)),
                 lambda: load_checkpoint(torch.nn.Linear(1, 1), str(path))):
        with pytest.raises(UnsafeCheckpointError) as info:
            load()
        assert 'evil.pth' in str(info.value)
        assert 'Refusing to load checkpoint' in str(info.value)
    assert not marker.exists()


def test_missing_checkpoint_is_named(tmp_path):
    from mmengine.runner import CheckpointLoader
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'nope.pth'))


def test_checkpoint_meta_of_a_file_or_of_what_loading_it_returned(tmp_path):
    """The meta of a checkpoint given as a file name (str or pathlib.Path)
    or as what loading it returned; empty for bare weights. A Path was
    taken for a loaded checkpoint, and its meta read as empty."""
    import pathlib

    from mmseg_dsnet.compat import checkpoint_meta
    meta = dict(epoch=3, cfg='model = dict()')
    path = tmp_path / 'epoch_3.pth'
    torch.save(dict(state_dict={'w': torch.zeros(1)}, meta=meta), path)
    assert checkpoint_meta(str(path)) == meta
    assert checkpoint_meta(pathlib.Path(path)) == meta
    assert checkpoint_meta(torch.load(path, weights_only=True)) == meta
    torch.save({'w': torch.zeros(1)}, tmp_path / 'bare.pth')
    assert checkpoint_meta(tmp_path / 'bare.pth') == {}
    assert checkpoint_meta({'w': torch.zeros(1)}) == {}
    # A meta of another kind than a dict is no meta either.
    assert checkpoint_meta(dict(state_dict={}, meta='epoch 3')) == {}


def test_a_checkpoint_with_a_damaged_header_is_named_as_corrupt(tmp_path):
    """Bytes overwritten inside the archive (not at its end): torch's
    reader fails on a record's header ('PytorchStreamReader failed reading
    file ...'), which is a corrupt file too, named."""
    from mmseg_dsnet.compat import CorruptCheckpointError, safe_torch_load
    path = tmp_path / 'damaged.pth'
    torch.save(dict(state_dict={'w': torch.zeros(4096)}), path)
    data = bytearray(path.read_bytes())
    data[200:300] = bytes(100)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match=(
            r'^Checkpoint .*damaged\.pth is empty, truncated or corrupt '
            r'\(PytorchStreamReader failed reading file')):
        safe_torch_load(str(path))



def test_every_cut_of_a_checkpoint_is_named_as_corrupt(tmp_path):
    """A file cut after its first 4 KB failed in torch's zip reader with a
    bare ``OSError: [Errno 22] Invalid argument`` (a buffer: ``ValueError:
    negative seek value``) naming no file, and one cut inside the zip
    signature (1 to 4 bytes) was called a text file; every cut length is a
    corrupt checkpoint, named."""
    import io

    from mmseg_dsnet.compat import CorruptCheckpointError, safe_torch_load
    whole = io.BytesIO()
    torch.save(dict(state_dict={f'layer{i}.weight': torch.zeros(4)
                                for i in range(40)}), whole)
    data = whole.getvalue()
    assert 9000 < len(data) < 18000, len(data)
    path = tmp_path / 'cut.pth'
    path.write_bytes(data)
    for cut in reversed(range(len(data))):  # every length, shorter and shorter
        os.truncate(path, cut)
        with pytest.raises(CorruptCheckpointError, match=(
                rf'^Checkpoint {path} is empty, truncated or corrupt ')):
            safe_torch_load(str(path))
        if cut % 61 == 0:  # a buffer (s3://), named by ``name``
            with pytest.raises(CorruptCheckpointError,
                               match=r'^Checkpoint s3://b/cut\.pth is '):
                safe_torch_load(io.BytesIO(data[:cut]), name='s3://b/cut.pth')
    # The released checkpoint cut at a few lengths.
    released = (REPO / 'checkpoints/dsnet_isic2017_256px.pth').read_bytes()
    for cut in (3, 4, 9000, 18000, len(released) // 2, len(released) - 1):
        path.write_bytes(released[:cut])
        with pytest.raises(CorruptCheckpointError, match=(
                rf'^Checkpoint {path} is empty, truncated or corrupt ')):
            safe_torch_load(str(path))
    # Missing files and folders stay what they are.
    with pytest.raises(FileNotFoundError):
        safe_torch_load(str(tmp_path / 'missing.pth'))
    with pytest.raises(IsADirectoryError):
        safe_torch_load(str(tmp_path))


class _RunsEcho:
    """Pickles as a call of ``os.system`` (never called: refused)."""

    def __reduce__(self):
        return (os.system, ('echo unpickled',))


def test_short_and_text_like_files_are_told_apart(tmp_path):
    """A buffer (``s3://``) of 1 to 3 bytes of the zip signature is a cut
    checkpoint, as a file is; 2 or 3 bytes that are not the signature's
    are a text file or no checkpoint, not a cut one; a protocol-0 pickle
    (all ASCII) that asks to run code is refused as unsafe, not called a
    text file."""
    import io
    import pickle

    from mmseg_dsnet.compat import (CorruptCheckpointError,
                                    NotACheckpointError,
                                    UnsafeCheckpointError, safe_torch_load)
    for cut in (1, 2, 3):
        with pytest.raises(CorruptCheckpointError, match=(
                rf'^Checkpoint s3://b/cut\.pth is empty, truncated or '
                rf'corrupt \(only {cut} bytes, cut inside the zip signature')):
            safe_torch_load(io.BytesIO(b'PK\x03\x04'[:cut]),
                            name='s3://b/cut.pth')
    text = tmp_path / 'abc.pth'
    text.write_bytes(b'abc')
    with pytest.raises(NotACheckpointError,
                       match=rf'^Checkpoint {text} is a text file'):
        safe_torch_load(str(text))
    binary = tmp_path / 'ff.pth'
    binary.write_bytes(b'\xff\xfe')  # not a pickle opcode, not 'PK'
    with pytest.raises(NotACheckpointError, match=(
            rf'^Checkpoint {binary} is not a PyTorch checkpoint \(neither '
            r'a zip archive nor a pickle; it starts with the bytes ff fe')):
        safe_torch_load(str(binary))
    evil = tmp_path / 'evil.pth'
    evil.write_bytes(pickle.dumps(_RunsEcho(), protocol=0))
    assert evil.read_bytes().isascii()
    with pytest.raises(UnsafeCheckpointError,
                       match=rf'^Refusing to load checkpoint {evil}: '):
        safe_torch_load(str(evil))

# Records, in a fresh interpreter, every attribute (public and private) of
# the mmengine modules our former patches touched and of the mmengine
# classes they define, before and after ``import mmseg_dsnet``: the object
# itself and, for containers, the objects they hold. Prints what differs.
SNAPSHOT = r'''
import importlib, inspect, json, types
from collections import deque

MODULES = [
    'mmengine.fileio', 'mmengine.fileio.io', 'mmengine.fileio.backends',
    'mmengine.fileio.backends.base', 'mmengine.fileio.backends.local_backend',
    'mmengine.fileio.backends.registry_utils', 'mmengine.hooks',
    'mmengine.hooks.hook', 'mmengine.hooks.checkpoint_hook', 'mmengine.dist',
    'mmengine.dist.utils', 'mmengine.dist.dist', 'mmengine.model',
    'mmengine.model.wrappers', 'mmengine.model.wrappers.distributed',
    'mmengine.runner', 'mmengine.runner.checkpoint', 'torch.serialization']
held = []  # keeps every recorded object alive, so no id is reused


def describe(value):
    held.append(value)
    if isinstance(value, dict):
        held.extend(value.values())
        return [id(value), sorted((repr(k), id(v)) for k, v in value.items())]
    if isinstance(value, (list, tuple, set, frozenset, deque)):
        items = list(value)
        held.extend(items)
        return [id(value), [id(v) for v in items]]
    return id(value)


def snapshot():
    state = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, value in list(vars(module).items()):
            if isinstance(value, types.ModuleType) and \
                    value.__name__ == f'{name}.{attr}':
                continue  # a submodule, set when something imports it
            state[f'{name}.{attr}'] = describe(value)
            if inspect.isclass(value) and \
                    value.__module__.startswith('mmengine'):
                for key, member in list(vars(value).items()):
                    state[f'{value.__module__}.{value.__qualname__}.{key}'] \
                        = describe(member)
    import torch
    for attr in ('load', 'save'):
        state[f'torch.{attr}'] = describe(getattr(torch, attr))
    return state


before = snapshot()
import mmseg_dsnet  # noqa: E402
after = snapshot()
changed = sorted(key for key in set(before) | set(after)
                 if before.get(key) != after.get(key))
from mmengine.runner.checkpoint import CheckpointLoader  # noqa: E402
print(json.dumps(dict(
    changed=changed, checked=len(before),
    schemes={prefix: [getattr(loader, '__module__', ''),
                      getattr(loader, 'wrapped_by_mmseg_dsnet', False)]
             for prefix, loader in CheckpointLoader._schemes.items()})))
'''


def test_import_changes_no_mmengine_attribute():
    """``import mmseg_dsnet`` patches nothing: crash-safe checkpoints and
    distributed runs without CUDA are components the configs and tools turn
    on. The one registration made on import is safe loading's, through
    mmengine's public ``CheckpointLoader.register_scheme``: every scheme's
    loader (the same prefixes) is ours."""
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=str(REPO) + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-c', SNAPSHOT], cwd=REPO,
                          env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['checked'] > 500  # the snapshot did look at things
    assert result['changed'] == [
        'mmengine.runner.checkpoint.CheckpointLoader._schemes'
    ]
    assert '' in result['schemes'] and 'http://' in result['schemes']
    for prefix, (module, wrapped) in result['schemes'].items():
        assert module == 'mmseg_dsnet.compat', prefix
        assert wrapped or prefix == '', prefix


def test_plain_checkpoint_hook_is_untouched(tmp_path):
    """mmengine's CheckpointHook keeps its own file backend; ours writes
    through the atomic one."""
    from mmengine.hooks import CheckpointHook
    from mmseg_dsnet.engine import AtomicCheckpointHook
    assert CheckpointHook(interval=1).backend_args is None
    assert AtomicCheckpointHook(interval=1).backend_args == dict(
        backend='atomic_local')
    # A remote out_dir or given backend_args are left as they are.
    assert AtomicCheckpointHook(
        interval=1, out_dir='s3://bucket/x').backend_args is None
    assert AtomicCheckpointHook(
        interval=1, backend_args=dict(backend='local')).backend_args == dict(
            backend='local')


def test_every_config_saves_checkpoints_atomically_and_stops_its_workers():
    from mmengine.config import Config
    configs = sorted(p for p in (REPO / 'configs').rglob('*.py')
                     if '_base_' not in p.parts)
    assert len(configs) > 10
    for path in configs:
        cfg = Config.fromfile(str(path))
        assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook', \
            path
        hooks = [hook['type'] for hook in cfg.custom_hooks]
        assert 'StopLoaderWorkersHook' in hooks, path


def test_cpu_distributed_setup_without_a_launcher_does_nothing():
    from mmengine.config import Config
    from mmseg_dsnet.engine import setup_cpu_distributed
    cfg = Config.fromfile(str(REPO / 'configs/dsnet/dsnet_isic2018.py'))
    cfg.launcher = 'none'
    assert not setup_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in cfg
