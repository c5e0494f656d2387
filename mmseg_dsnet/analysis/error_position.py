"""Where a lesion segmentor errs: missed lesion and false lesion by the
distance from the image centre, and how much of the error a few images
hold.

Dermoscopy centres the lesion, so a model can learn that the middle of a
picture is lesion and its rim is not; this analysis shows whether it did.
Distances are those of the DSNet stem's radial channel
(:meth:`~mmseg_dsnet.models.backbones.DSNet.radial_map`: 0 at the centre,
1 in the corners).
"""
import math
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..evaluation.lesion_metric import (_LOW, LesionMetric,
                                        confusion_to_scores, percent)
from ..models.backbones import DSNet
from ..utils.errors import SIZE_MISMATCH_FIX, SizeMismatchError, UserError
from ..utils.messages import counted
from .threshold_sweep import lesion_metric_args


def evaluator_metric(evaluator_cfg,
                     config: str = 'the config') -> LesionMetric:
    """The ``LesionMetric`` of a config's ``test_evaluator``, whose
    threshold, ``lesion_index``, ``ignore_index`` and ``low_res_size`` the
    errors are counted with, so that they are of the pixels
    ``tools/test.py`` scores.

    Args:
        evaluator_cfg (dict): The config's ``test_evaluator``.
        config (str): The config file, for the error message.

    Raises:
        UserError: The evaluator is not one LesionMetric (its figures
            could not be matched), or it refuses its arguments.
    """
    # Its masks are not written here; the folder would only be made.
    if isinstance(evaluator_cfg, dict):
        evaluator_cfg = {**evaluator_cfg, 'output_dir': None}
    try:
        args = lesion_metric_args(evaluator_cfg)
        return LesionMetric(
            threshold=evaluator_cfg.get('threshold', 0.5), **args)
    except (TypeError, ValueError) as error:
        raise UserError(f'{config}: test_evaluator: {error}; the errors are '
                        'counted with its settings') from None


def scored_iou(metric: LesionMetric) -> Dict:
    """The pooled IoU of the images ``metric`` processed at its
    ``low_res_size``: the ``IoU`` ``tools/test.py`` reports (percent,
    rounded as it rounds)."""
    scores = confusion_to_scores(*LesionMetric._pooled(metric.results, _LOW))
    return dict(low_res_size=list(metric.low_res_size),
                iou_low_res=percent(scores['IoU']))


class ErrorByPosition:
    """Accumulates pixel counts per ring of distance from the centre and the
    errors of each image.

    Args:
        rings (int): Rings of equal width between the centre and the
            corners. Default: 5.
    """

    def __init__(self, rings: int = 5):
        if rings < 1:
            raise ValueError(f'rings must be >= 1, got {rings}')
        self.edges = np.linspace(0.0, 1.0, rings + 1)
        zeros = np.zeros(rings, dtype=np.int64)
        self.counts = dict(lesion=zeros.copy(), missed=zeros.copy(),
                           background=zeros.copy(), false=zeros.copy())
        self.images: List[Dict] = []

    def ring_index(self, height: int, width: int) -> np.ndarray:
        """``(H, W)`` ring of each pixel."""
        radius = DSNet.radial_map(torch.zeros(1, 1, height, width))[0, 0]
        inner = np.searchsorted(self.edges, radius.numpy(), side='right') - 1
        return np.clip(inner, 0, len(self.edges) - 2)

    def update(self, pred: np.ndarray, gt: np.ndarray,
               valid: Optional[np.ndarray] = None, name: str = '') -> None:
        """Add one image.

        Args:
            pred (np.ndarray): ``(H, W)`` bool, predicted lesion.
            gt (np.ndarray): ``(H, W)`` bool, true lesion.
            valid (np.ndarray, optional): ``(H, W)`` bool, pixels that
                count (not ignored). Default: all.
            name (str): The image, for the per-image errors.
        """
        if pred.shape != gt.shape:
            raise SizeMismatchError(
                f'{name or "image"}: prediction {pred.shape} and ground '
                f'truth {gt.shape} differ in size; {SIZE_MISMATCH_FIX}')
        valid = np.ones_like(gt, bool) if valid is None else valid
        rings = self.ring_index(*gt.shape)
        lesion, background = gt & valid, ~gt & valid
        missed, false = lesion & ~pred, background & pred
        size = len(self.edges) - 1
        for key, mask in (('lesion', lesion), ('missed', missed),
                          ('background', background), ('false', false)):
            self.counts[key] += np.bincount(rings[mask], minlength=size)
        self.images.append(
            dict(name=name, lesion=int(lesion.sum()), pixels=int(valid.sum()),
                 missed=int(missed.sum()), false=int(false.sum()),
                 hit=int((lesion & pred).sum())))

    def summary(self, worst: int = 10) -> Dict:
        """Rates per ring, the pooled IoU and the share of all wrong pixels
        in the ``worst`` images with the most of them."""
        if not self.images:
            raise ValueError('no images were added')
        c = {k: v.astype(float) for k, v in self.counts.items()}
        with np.errstate(divide='ignore', invalid='ignore'):
            rings = [
                dict(inner=float(lo), outer=float(hi),
                     lesion_share=float(c['lesion'][i] / c['lesion'].sum()),
                     missed_rate=float(c['missed'][i] / c['lesion'][i]),
                     false_rate=float(c['false'][i] / c['background'][i]))
                for i, (lo, hi) in enumerate(
                    zip(self.edges[:-1], self.edges[1:]))
            ]
        hit = sum(i['hit'] for i in self.images)
        wrong = sorted((i['missed'] + i['false'] for i in self.images),
                       reverse=True)
        total = sum(wrong)
        return dict(
            images=len(self.images), rings=rings,
            iou=100 * hit / (hit + total) if hit + total else float('nan'),
            missed_share=sum(i['missed'] for i in self.images) / total
            if total else float('nan'),
            worst=min(worst, len(wrong)),
            worst_share=sum(wrong[:worst]) / total if total else float('nan'),
            per_image=self.images)


def ring_names(rings: Sequence[Dict]) -> List[str]:
    """Names of the rings of :meth:`ErrorByPosition.summary`, their inner
    and outer distance, e.g. ``'0.2-0.4'``, for the table and the plot.

    The bounds are i / n of n rings. They are written with the fewest
    decimals that give them exactly (``0.25``, ``0.125``), up to
    ``ceil(log10(n)) + 2``; bounds that need more (thirds, twelfths) are
    rounded to ``ceil(log10(n)) + 1`` decimals, which keeps each name
    apart (``0.083-0.167``, where one decimal wrote ``0.1-0.2`` and the
    next ring ``0.2-0.2``).

    Args:
        rings (Sequence[dict]): The rings, with ``inner`` and ``outer``.
    """
    edges = [rings[0]['inner']] + [ring['outer'] for ring in rings]
    most = math.ceil(math.log10(len(rings))) + 1
    decimals = next((d for d in range(1, most + 2)
                     if all(abs(round(e, d) - e) < 1e-9 for e in edges)),
                    most)
    return [f'{ring["inner"]:.{decimals}f}-{ring["outer"]:.{decimals}f}'
            for ring in rings]


def error_table(summary: Dict) -> str:
    """Markdown table of :meth:`ErrorByPosition.summary`'s rings and a line
    on the concentration of the errors."""
    lines = ['| distance from centre | share of lesion pixels | '
             'lesion missed | background called lesion |',
             '|---|---|---|---|']

    def rate(value, none):
        # A ring without lesion (background) has no such rate: say so
        # rather than print 'nan %'.
        return f'{100 * value:.1f} %' if np.isfinite(value) else none

    for name, ring in zip(ring_names(summary['rings']), summary['rings']):
        lines.append(f'| {name} | '
                     # A split without lesion pixels has no share.
                     f'{rate(ring["lesion_share"], "no lesion pixels")} | '
                     f'{rate(ring["missed_rate"], "no lesion")} | '
                     f'{rate(ring["false_rate"], "no background")} |')
    # The rings are counted at the original size; the IoU tools/test.py
    # reports first is at the evaluator's low_res_size.
    at = ' at the original size (IoU_orig of tools/test.py)'
    if 'iou_low_res' in summary:
        height, width = summary['low_res_size']
        at += f', {summary["iou_low_res"]:.2f} at {height}x{width} (its IoU)'
    if np.isfinite(summary['missed_share']):
        hold = 'holds' if summary['worst'] == 1 else 'hold'
        spread = (f'missed lesion is '
                  f'{100 * summary["missed_share"]:.0f} % of the wrong '
                  f'pixels, and the {counted(summary["worst"], "image")} '
                  f'with the most wrong pixels {hold} '
                  f'{100 * summary["worst_share"]:.0f} % of them.')
    else:
        spread = 'no pixel is wrong.'
    # No lesion pixel, true or predicted: no IoU, rather than 'nan'.
    iou = (f'pooled IoU {summary["iou"]:.2f}{at}'
           if np.isfinite(summary['iou']) else
           'no pooled IoU (no lesion pixel, true or predicted)')
    lines += ['', f'{counted(summary["images"], "image")}, {iou}; {spread}']
    return '\n'.join(lines) + '\n'
