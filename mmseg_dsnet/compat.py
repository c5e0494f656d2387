"""The few patches the pinned stack (torch 2.13, mmengine 0.10.7, mmcv 2.1.0,
mmsegmentation 1.2.2) needs, in one place.

Applied once by ``import mmseg_dsnet`` (every config of ours imports it through
``custom_imports``) and by our tools.

1. Safe checkpoint loading. torch >= 2.6 unpickles with ``weights_only=True``;
   checkpoints written by mmengine 0.10.7 also hold a few plain objects (the
   message hub's ``HistoryBuffer``, numpy arrays and scalars), so ``load_from``,
   ``--resume`` and inference would fail. We allow-list exactly those types with
   ``torch.serialization.add_safe_globals`` (``getattr`` only in the one
   form ``HistoryBuffer`` needs) and keep ``weights_only=True``:
   a checkpoint that asks to run anything else is refused with
   :class:`UnsafeCheckpointError`, which names the file and the offending
   global. Every other scheme mmengine loads from (``http://``, ``s3://`` ...)
   already unpickles with torch's ``weights_only=True`` default; we only wrap
   it so that a refusal reads the same. A truncated or empty checkpoint raises
   :class:`CorruptCheckpointError` naming the file.

2. Crash-safe checkpoints. mmengine writes a checkpoint by opening the final
   file and writing into it, and the ``CheckpointHook`` deletes the oldest
   checkpoint *before* it writes the new one: a run killed (or out of disk)
   while saving leaves a truncated ``epoch_N.pth`` and, with
   ``max_keep_ckpts=1``, no good checkpoint at all. Local writes now go to a
   hidden temporary file in the same folder that replaces the target with
   ``os.replace`` once complete (atomic on POSIX), and old checkpoints are
   deleted only after the new one is on disk.

3. Distributed runs on CPU-only hosts. mmengine's ``pytorch`` launcher calls
   ``torch.cuda.set_device`` and wraps the model in DDP with
   ``device_ids=[LOCAL_RANK]``, both of which fail without CUDA; there we
   skip the first, use the ``gloo`` backend instead of ``nccl`` and wrap
   without device ids (how DDP runs on CPU).
"""
import os
import os.path as osp
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside the allow-list."""


def _numpy_globals():
    """numpy objects that mmengine checkpoints contain (arrays, scalars and
    their dtypes), under both module paths numpy pickles them with (numpy 1.x:
    ``numpy.core``, numpy 2.x: ``numpy._core``), so a checkpoint written with
    either loads with either."""
    major = int(np.__version__.split('.')[0])
    multiarray = np._core.multiarray if major >= 2 else np.core.multiarray
    found = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        obj = getattr(multiarray, name)
        found += [(obj, f'numpy.core.multiarray.{name}'),
                  (obj, f'numpy._core.multiarray.{name}')]
    # Concrete dtype classes (``numpy.dtypes.Float64DType`` ...) are pickled
    # when a dtype object is stored.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return found


def history_buffer_getattr(obj, name):
    """Stands in for ``builtins.getattr`` while unpickling.

    mmengine's ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. Allowing the real ``getattr`` would
    let a crafted file walk from any allowed object to ``eval``, so only
    that one lookup is permitted.
    """
    if obj is HistoryBuffer and (name in HistoryBuffer._statistics_methods
                                 or name in ('min', 'max', 'current',
                                             'mean')):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'GLOBAL getattr({obj!r}, {name!r}) is not allowed')


SAFE_GLOBALS = [HistoryBuffer, (history_buffer_getattr, 'builtins.getattr')
                ] + _numpy_globals()


def _unsafe_message(filename, err):
    # torch's message names the global the file asked for; keep that line.
    detail = str(err).strip().splitlines()
    detail = next((line for line in detail
                   if 'GLOBAL' in line or 'Unsupported' in line),
                  detail[0] if detail else '')
    return (f'Refusing to load checkpoint {filename!s}: it contains a pickled '
            f'object outside the allow-list of mmseg-dsnet ({detail}). '
            'Unpickling it could execute arbitrary code. Load only '
            'checkpoints you trust; if this is a genuine mmengine checkpoint '
            'holding a new harmless type, add that type to '
            'mmseg_dsnet.compat.SAFE_GLOBALS.')


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is empty, truncated or otherwise unreadable."""


class NotACheckpointError(CorruptCheckpointError):
    """The file given as a checkpoint is something else: a Git LFS pointer,
    an HTML page, a text file."""


def describe_non_checkpoint(filename, head_size=4096):
    """What a file that failed to load as a checkpoint looks like instead.

    Only called after ``torch.load`` failed, so a genuine checkpoint is never
    judged by its first bytes.

    Args:
        filename (str | Path | file-like): The file; anything but a local
            path gives None.
        head_size (int): How many leading bytes to look at.

    Returns:
        str | None: E.g. ``'is a Git LFS pointer, not the weights ...'``, or
        None when the file is none of the known impostors (or unreadable).
    """
    if not isinstance(filename, (str, os.PathLike)):
        return None
    try:
        with open(filename, 'rb') as f:
            head = f.read(head_size)
    except OSError:
        return None
    text = head.lstrip(b'\xef\xbb\xbf \t\r\n')  # BOM, blank lines
    if not text:
        return None  # empty: reported as truncated
    if text.startswith(b'version https://git-lfs'):
        return ('is a Git LFS pointer, not the weights: run `git lfs pull` '
                '(in the repository that holds it) to fetch the file')
    lower = text[:512].lower()
    if lower.startswith((b'<!doctype html', b'<html', b'<head', b'<?xml')) \
            or b'<html' in lower:
        return ('is an HTML page, not a PyTorch checkpoint (a download error '
                'or login page?); download the weights again')
    if b'\0' in head:
        return None
    try:
        head.decode('utf-8')
    except UnicodeDecodeError as err:
        # Only a multi-byte character cut at the end of the head is text.
        if len(head) < head_size or err.start < len(head) - 3:
            return None
    return 'is a text file, not a PyTorch checkpoint'


def safe_torch_load(filename, map_location=None):
    """``torch.load`` with ``weights_only=True`` and our allow-list.

    Args:
        filename (str | Path | file-like): The checkpoint.
        map_location (str | torch.device | None): As in :func:`torch.load`.

    Returns:
        object: The loaded checkpoint.

    Raises:
        UnsafeCheckpointError: The file asks to unpickle something outside
            the allow-list (it could run code); nothing from it is executed.
        CorruptCheckpointError: The file is empty or truncated.
        NotACheckpointError: The file is a Git LFS pointer, an HTML page or
            a text file.
    """
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except Exception as err:
        # A text file fails with "Unsupported operand", an IndexError or a
        # KeyError; a refused GLOBAL means a real pickle that asks for code.
        looks_like = None if 'GLOBAL' in str(err) else \
            describe_non_checkpoint(filename)
        if looks_like:
            raise NotACheckpointError(
                f'Checkpoint {filename!s} {looks_like}.') from None
        if not isinstance(err, (pickle.UnpicklingError, EOFError,
                                RuntimeError)):
            raise
        _raise_load_error(filename, err)


def _raise_load_error(filename, err):
    """Raise the error for a checkpoint ``torch.load`` refused: unsafe
    pickles, truncated files; anything else as it was."""
    if isinstance(err, pickle.UnpicklingError):
        raise UnsafeCheckpointError(_unsafe_message(filename, err)) from None
    text = str(err)
    if isinstance(err, RuntimeError) and 'zip archive' not in text \
            and 'PytorchStreamReader' not in text:
        raise err
    raise CorruptCheckpointError(
        f'Checkpoint {filename!s} is empty, truncated or corrupt '
        f'({text.splitlines()[0] if text else "unexpected end of file"}); '
        'it was probably written by a run that was interrupted while '
        'saving or copied incompletely. Use an earlier checkpoint.') from None


def _load_from_local(filename, map_location):
    """mmengine's local-file scheme, but loading through
    :func:`safe_torch_load` (used by ``load_from``, ``--resume`` and
    ``load_checkpoint``)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location)


def _refusing_unsafe(loader):
    """Wrap one of mmengine's checkpoint schemes so that a refused pickle
    raises :class:`UnsafeCheckpointError` with our message."""

    def load(filename, map_location):
        try:
            return loader(filename, map_location)
        except UnsafeCheckpointError:
            raise
        except pickle.UnpicklingError as err:
            raise UnsafeCheckpointError(_unsafe_message(filename,
                                                        err)) from None

    load.wrapped_by_mmseg_dsnet = True
    return load


# --- crash-safe checkpoint writing -------------------------------------------

PARTIAL_MARK = '.part-'


def partial_path(filepath):
    """The hidden temporary file a write to ``filepath`` goes through:
    ``.<name>.part-<pid>`` in the same folder (same file system, so the final
    rename is atomic)."""
    folder, name = osp.split(osp.abspath(filepath))
    return osp.join(folder, f'.{name}{PARTIAL_MARK}{os.getpid()}')


def _write_chunks(fileobj, data, chunk=1 << 22):
    """Write ``data`` in 4 MiB chunks (a hook point for fault-injection
    tests)."""
    view = memoryview(data)
    for start in range(0, len(view), chunk):
        fileobj.write(view[start:start + chunk])


def atomic_write(data, filepath):
    """Write ``data`` (bytes or str) to ``filepath`` so that the file is
    either the old one or the complete new one, whatever happens meanwhile
    (kill, power loss after fsync, full disk).

    Args:
        data (bytes | str): The content; str is written as UTF-8.
        filepath (str | Path): The destination; its folder is created.
    """
    filepath = str(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode('utf-8')
    tmp = partial_path(filepath)
    try:
        with open(tmp, 'wb') as f:
            _write_chunks(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def remove_stale_partials(folder):
    """Delete temporary files left in ``folder`` by writers that were killed
    (their process no longer exists).

    Returns:
        list[str]: The removed files.
    """
    removed = []
    if not osp.isdir(folder):
        return removed
    for name in os.listdir(folder):
        if not name.startswith('.') or PARTIAL_MARK not in name:
            continue
        pid = name.rsplit(PARTIAL_MARK, 1)[1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # the writer is still alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        path = osp.join(folder, name)
        os.remove(path)
        removed.append(path)
    return removed


def _atomic_put(self, obj, filepath):
    atomic_write(obj, filepath)


def _atomic_put_text(self, obj, filepath, encoding='utf-8'):
    atomic_write(obj.encode(encoding), filepath)


def _deferring_removal(save):
    """Wrap a ``CheckpointHook`` saving method so that the checkpoints it
    deletes (the oldest one beyond ``max_keep_ckpts``, the previous best)
    are deleted only after the new checkpoint was written."""

    def wrapped(self, runner, *args, **kwargs):
        backend = getattr(self, 'file_backend', None)
        if backend is None:
            return save(self, runner, *args, **kwargs)
        deferred = []
        shadowed = vars(backend).get('remove')  # set by an enclosing call
        backend.remove = deferred.append  # shadows the method meanwhile
        try:
            result = save(self, runner, *args, **kwargs)
        finally:
            if shadowed is None:
                del backend.remove
            else:
                backend.remove = shadowed
        for path in deferred:  # reached only when the save succeeded
            if backend.isfile(path):
                backend.remove(path)
        return result

    wrapped.wrapped_by_mmseg_dsnet = True
    return wrapped


# --- distributed runs without CUDA -------------------------------------------


def _cpu_friendly_init_dist_pytorch(original):

    def init(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available() or init_backend != 'torch':
            return original(backend, init_backend=init_backend, **kwargs)
        from mmengine.logging import print_log
        if backend != 'gloo':
            print_log(
                f'No CUDA device: using the gloo backend instead of '
                f'{backend!r} for distributed CPU processes.',
                logger='current')
            backend = 'gloo'
        import torch.distributed as torch_dist
        torch_dist.init_process_group(backend=backend, **kwargs)

    init.wrapped_by_mmseg_dsnet = True
    return init


def _cpu_friendly_ddp_init(original):

    def init(self, module, *args, **kwargs):
        params = list(module.parameters())
        if kwargs.get('device_ids') and params and all(
                p.device.type == 'cpu' for p in params):
            # DDP takes no device ids for a module on the CPU.
            kwargs['device_ids'] = None
            kwargs.pop('output_device', None)
        original(self, module, *args, **kwargs)

    init.wrapped_by_mmseg_dsnet = True
    return init


_applied = False


def apply():
    """Apply every patch once; safe to call repeatedly."""
    global _applied
    if _applied:
        return
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if prefix and not getattr(loader, 'wrapped_by_mmseg_dsnet', False):
            CheckpointLoader.register_scheme(
                prefixes=prefix, loader=_refusing_unsafe(loader), force=True)
    CheckpointLoader.register_scheme(
        prefixes='', loader=_load_from_local, force=True)

    from mmengine.fileio.backends.local_backend import LocalBackend
    LocalBackend.put = _atomic_put
    LocalBackend.put_text = _atomic_put_text
    from mmengine.hooks import CheckpointHook
    for name in ('_save_checkpoint_with_step', '_save_best_checkpoint'):
        method = getattr(CheckpointHook, name)
        if not getattr(method, 'wrapped_by_mmseg_dsnet', False):
            setattr(CheckpointHook, name, _deferring_removal(method))

    import mmengine.dist.utils as dist_utils
    from mmengine.model.wrappers import MMDistributedDataParallel
    dist_utils._init_dist_pytorch = _cpu_friendly_init_dist_pytorch(
        dist_utils._init_dist_pytorch)
    MMDistributedDataParallel.__init__ = _cpu_friendly_ddp_init(
        MMDistributedDataParallel.__init__)
    _applied = True
