"""A local file backend that writes atomically.

mmengine's ``LocalBackend`` writes a file by opening the final path and
writing into it: a run killed (or out of disk) while saving a checkpoint
leaves a truncated ``epoch_N.pth`` under the real name.
:class:`AtomicLocalBackend` writes through
:func:`mmseg_dsnet.utils.fileio.atomic_write` instead (a hidden temporary
file in the same folder, renamed over the target once complete).

It is registered in mmengine's file-backend registry under
:data:`ATOMIC_BACKEND` by :func:`register_atomic_backend`, which
:class:`~mmseg_dsnet.engine.hooks.AtomicCheckpointHook` calls when it is
built; importing :mod:`mmseg_dsnet` registers nothing there. Use it
elsewhere with ``backend_args=dict(backend='atomic_local')`` after calling
:func:`register_atomic_backend`.
"""
from mmengine.fileio import LocalBackend, register_backend
from mmengine.fileio.backends import backends

from ..utils.fileio import atomic_write

#: The name the backend is registered under (``backend_args['backend']``).
ATOMIC_BACKEND = 'atomic_local'


class AtomicLocalBackend(LocalBackend):
    """mmengine's :class:`~mmengine.fileio.LocalBackend` whose ``put`` and
    ``put_text`` replace the target atomically: the file with the real name
    is always either the old one or the complete new one."""

    def put(self, obj: bytes, filepath) -> None:
        """Write bytes ``obj`` to ``filepath`` atomically (its folder is
        created)."""
        atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        """Write text ``obj`` to ``filepath`` atomically (its folder is
        created)."""
        atomic_write(obj.encode(encoding), filepath)


def register_atomic_backend() -> str:
    """Register :class:`AtomicLocalBackend` as ``'atomic_local'`` with
    mmengine's public ``register_backend`` (once; no prefix is claimed, so
    paths without ``backend_args`` still use mmengine's ``LocalBackend``).

    Returns:
        str: The backend name, for ``backend_args=dict(backend=...)``.
    """
    if backends.get(ATOMIC_BACKEND) is not AtomicLocalBackend:
        register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)
    return ATOMIC_BACKEND
