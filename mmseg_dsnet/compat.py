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
   global.
"""
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
    """
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message names the global the file asked for; keep it.
        detail = str(err).strip().splitlines()
        detail = next((line for line in detail if 'GLOBAL' in line or
                       'Unsupported' in line), detail[0] if detail else '')
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename!s}: it contains a pickled '
            f'object outside the allow-list of mmseg-dsnet ({detail}). '
            'Unpickling it could execute arbitrary code. Load only '
            'checkpoints you trust; if this is a genuine mmengine checkpoint '
            'holding a new harmless type, add that type to '
            'mmseg_dsnet.compat.SAFE_GLOBALS.') from None


def _load_from_local(filename, map_location):
    """mmengine's local-file scheme, but loading through
    :func:`safe_torch_load` (used by ``load_from``, ``--resume`` and
    ``load_checkpoint``)."""
    import os.path as osp
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location)


_applied = False


def apply():
    """Apply every patch once; safe to call repeatedly."""
    global _applied
    if _applied:
        return
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
    CheckpointLoader.register_scheme(
        prefixes='', loader=_load_from_local, force=True)
    _applied = True
