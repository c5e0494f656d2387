"""Recompute the BatchNorm statistics after the last training epoch."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from mmseg_dsnet.utils.messages import counted
from ..batch_norm_recalibration import recalibrate_batch_norm


@HOOKS.register_module()
class BatchNormRecalibrationHook(Hook):
    """After the last training epoch, replace the BatchNorm running
    statistics by their average over one pass of the training loader with
    the final weights (:func:`recalibrate_batch_norm`).

    It runs before the last checkpoint is saved and before the last
    validation, so both hold the recalibrated statistics. Earlier epochs,
    and so the training itself, are unchanged.

    Args:
        max_batches (int, optional): Batches to average. Defaults to None
            (one whole pass).
    """

    # Before CheckpointHook (VERY_LOW) writes the last epoch.
    priority = 'ABOVE_NORMAL'

    def __init__(self, max_batches=None):
        if max_batches is not None and (not isinstance(max_batches, int)
                                        or max_batches < 1):
            raise ValueError('BatchNormRecalibrationHook max_batches must be '
                             f'a positive integer, got {max_batches!r}')
        self.max_batches = max_batches

    def after_train_epoch(self, runner):
        if not self.is_last_train_epoch(runner):
            return
        batches = recalibrate_batch_norm(runner.model,
                                         runner.train_dataloader,
                                         self.max_batches)
        if batches:
            batches = counted(batches, 'training batch', 'training batches')
            print_log(f'BatchNorm statistics recomputed over {batches} '
                      'with the final weights',
                      logger='current')
