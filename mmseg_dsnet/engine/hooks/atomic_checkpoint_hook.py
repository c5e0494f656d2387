"""Checkpoints that survive a kill or a full disk while they are saved."""
from contextlib import contextmanager

from mmengine.hooks import CheckpointHook
from mmseg.registry import HOOKS

from ..atomic_file_backend import register_atomic_backend


class _RemovalsAfterSave:
    """Stands in for a file backend while checkpoints are saved: ``remove``
    and ``rmtree`` are queued and run by :meth:`run`; everything else goes
    to the real backend."""

    def __init__(self, backend):
        self.backend = backend
        self.queued = []

    def remove(self, filepath):
        self.queued.append(filepath)

    def rmtree(self, dir_path):
        self.queued.append(dir_path)

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def run(self, keep=()):
        """Run the queued removals, except of the paths in ``keep`` (the
        checkpoints just saved, should one have an old one's name)."""
        for path in self.queued:
            if path in keep:
                continue
            if self.backend.isfile(path):
                self.backend.remove(path)
            elif self.backend.isdir(path):
                self.backend.rmtree(path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's :class:`~mmengine.hooks.CheckpointHook` (same arguments),
    made crash-safe.

    * **Atomic writes.** With a local ``out_dir`` (the default, the work
      dir) and neither ``backend_args`` nor ``file_client_args`` given,
      checkpoints are written through
      :class:`~mmseg_dsnet.engine.atomic_file_backend.AtomicLocalBackend`
      (``backend_args=dict(backend='atomic_local')``): to a hidden
      ``.epoch_N.pth.part-<pid>`` file that replaces ``epoch_N.pth`` once
      complete, so a kill or a full disk never leaves a truncated file under
      the real name. Given ``backend_args`` are used as they are.
    * **Deletions after the save.** mmengine's hook deletes the oldest
      checkpoint (beyond ``max_keep_ckpts``) and the previous best one
      *before* it writes the new one; with ``max_keep_ckpts=1`` a failed
      write would leave no checkpoint at all. Here those deletions run only
      once the new checkpoint (and, after a validation, the best one) was
      saved; if saving fails they do not run.

    ``configs/_base_/default_runtime.py`` selects it
    (``default_hooks.checkpoint.type``); ``type='CheckpointHook'`` restores
    mmengine's behaviour.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        local = self.out_dir is None or '://' not in str(self.out_dir)
        if self.backend_args is None and self.file_client_args is None \
                and local:
            self.backend_args = dict(backend=register_atomic_backend())

    @contextmanager
    def _removals_after_save(self):
        backend = getattr(self, 'file_backend', None)
        if backend is None or isinstance(backend, _RemovalsAfterSave):
            yield
            return
        queue = _RemovalsAfterSave(backend)
        self.file_backend = queue
        try:
            yield
        finally:
            self.file_backend = backend
        # Reached only when saving succeeded.
        best = getattr(self, 'best_ckpt_path_dict', None) or {}
        saved = {self.last_ckpt, getattr(self, 'best_ckpt_path', None),
                 *best.values()}
        queue.run(keep=saved)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        with self._removals_after_save():
            super().after_train_iter(runner, batch_idx, data_batch, outputs)

    def after_train_epoch(self, runner) -> None:
        with self._removals_after_save():
            super().after_train_epoch(runner)

    def after_val_epoch(self, runner, metrics) -> None:
        with self._removals_after_save():
            super().after_val_epoch(runner, metrics)
