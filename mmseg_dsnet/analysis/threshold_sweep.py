"""A segmentor's figures at several decision thresholds from one pass over
its test images: each threshold gets its own :class:`LesionMetric`, fed the
same lesion probabilities, so every figure is the one ``tools/test.py``
would report with the head and the metric set to that threshold."""
from typing import Dict, Sequence

import torch

from ..evaluation.lesion_metric import LesionMetric


def lesion_metric_args(evaluator_cfg) -> dict:
    """The :class:`LesionMetric` arguments of a config's evaluator, less
    ``type`` and ``threshold``.

    Raises:
        ValueError: The evaluator is not one LesionMetric.
    """
    if not isinstance(evaluator_cfg, dict) or \
            evaluator_cfg.get('type') not in ('LesionMetric', LesionMetric):
        raise ValueError('the config\'s test_evaluator must be one '
                         f'LesionMetric, got {evaluator_cfg!r}')
    return {key: value for key, value in evaluator_cfg.items()
            if key not in ('type', 'threshold')}


def scores_by_threshold(model, loader, thresholds: Sequence[float],
                        metric_args: dict = None,
                        progress=None) -> Dict[float, Dict[str, float]]:
    """Evaluate ``model`` on ``loader`` once, scored at every threshold.

    Args:
        model (BaseSegmentor): A segmentor in eval mode whose 1-channel head
            outputs probabilities (or a multi-channel head).
        loader (DataLoader): Test images with ground truth.
        thresholds (Sequence[float]): Lesion above this probability.
        metric_args (dict, optional): Further :class:`LesionMetric`
            arguments (``low_res_size``, ``ignore_index`` ...).
        progress (optional): A bar (:func:`~mmseg_dsnet.progress.
            progress_bar`) updated once per image.

    Returns:
        dict[float, dict[str, float]]: Threshold -> LesionMetric's figures
        (percent).
    """
    metrics = {t: LesionMetric(threshold=t, **(metric_args or {}))
               for t in thresholds}
    with torch.no_grad():
        for data in loader:
            samples = [s.to_dict() for s in model.test_step(data)]
            for metric in metrics.values():
                metric.process(data, samples)
            if progress is not None:
                for _ in samples:
                    progress.update()
    # Each LesionMetric logs its table to MMEngine's current logger.
    return {threshold: metric.compute_metrics(metric.results)
            for threshold, metric in metrics.items()}
