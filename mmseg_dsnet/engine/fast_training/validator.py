"""Validation during fast training, as mmengine's ValLoop computes it."""
from typing import Dict

import torch
from mmengine.evaluator import Evaluator
from mmengine.runner import Runner

from mmseg_dsnet.engine.hooks.bad_sample_summary_hook import (
    replaced_validation_error, skipped_paths)


class Validator:
    """Run a config's ``val_dataloader`` / ``val_evaluator`` on a model.

    The same data pipeline, ``model.val_step`` and metric as the ValLoop of
    ``tools/train.py``, so a fast run can select its checkpoint on the
    validation split (the official protocol) exactly as the CheckpointHook's
    ``save_best`` would.

    Args:
        cfg (Config): The run's config.
    """

    def __init__(self, cfg):
        self.dataloader = Runner.build_dataloader(cfg.val_dataloader)
        self.evaluator = Evaluator(cfg.val_evaluator)
        self.evaluator.dataset_meta = self.dataloader.dataset.metainfo

    def __len__(self) -> int:
        return len(self.dataloader.dataset)

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module,
                 epoch: int = 0) -> Dict[str, float]:
        """Evaluate ``model`` (left in training mode afterwards).

        Args:
            model (torch.nn.Module): The network to evaluate.
            epoch (int): The epoch just trained, for the messages.

        Raises:
            UserError: A bad sample was replaced by another
                (``on_bad_sample='skip'``): the figures, not over the whole
                split, would choose the best checkpoint (as
                ``BadSampleSummaryHook`` refuses in ``tools/train.py``).
        """
        model.eval()
        replaced = []
        try:
            for data_batch in self.dataloader:
                replaced += skipped_paths(data_batch)
                outputs = model.val_step(data_batch)
                self.evaluator.process(data_samples=outputs,
                                       data_batch=data_batch)
            if replaced:
                raise replaced_validation_error(f'after epoch {epoch}',
                                                replaced)
            return self.evaluator.evaluate(len(self.dataloader.dataset))
        finally:
            model.train()
