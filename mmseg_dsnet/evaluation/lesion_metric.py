"""Binary skin-lesion segmentation metric computing every figure at once.

Reported in one pass: pooled lesion IoU / DSC / accuracy / sensitivity /
specificity at a fixed low resolution (the lightweight-literature protocol)
and at the original mask resolution, per-image mean IoU / DSC, the ISIC
challenge's thresholded Jaccard, and MMSegmentation's 2-class mIoU / mDice.
"""
import logging
import os
import os.path as osp
from collections import Counter, OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from prettytable import PrettyTable

from mmseg.registry import METRICS

from ..models.utils.lesion_logit import stored_lesion_probability
from ..utils.errors import SIZE_MISMATCH_FIX, SizeMismatchError, UserError
from ..utils.messages import counted, first_few
# Here before they moved to utils.percent (the tables use them too).
from ..utils.percent import percent, percent_text  # noqa: F401

# Keys of one per-image record in ``self.results``.
_ORIG = 'counts_orig'
_LOW = 'counts_low'
_IMAGE = 'image'

#: The table of per-image figures ``LesionMetric(output_dir=...)`` writes.
PER_IMAGE_FILE = 'per_image.csv'

_POOLED_NAMES = ('IoU', 'DSC', 'Acc', 'Sen', 'Spe')

#: The names of the figures :meth:`LesionMetric.compute_metrics` returns,
#: in order (a ``prefix`` goes before each as ``prefix/name``).
METRIC_NAMES = _POOLED_NAMES + tuple(f'{name}_orig' for name in
                                     _POOLED_NAMES) + (
    'mIoU_img', 'mDSC_img', 'TJ', 'mIoU', 'mDice')


class IncompleteEvaluationError(UserError, ValueError):
    """The figures would be of part of the evaluated images, or of no
    pixel at all (every ratio then reads 100 %)."""


def _ratio(numerator: float, denominator: float) -> float:
    """Return ``numerator / denominator`` with ``0 / 0`` defined as 1.0.

    Every ratio used here has a numerator that cannot exceed its denominator,
    so a zero denominator means a zero numerator as well: there was nothing
    in the ratio's scope that could be got wrong, which counts as perfect.
    """
    if denominator == 0:
        return 1.0
    return numerator / denominator


def confusion_to_scores(tp: float, fp: float, fn: float,
                        tn: float) -> Dict[str, float]:
    """Lesion-class scores (fractions in [0, 1]) from a confusion matrix.

    Args:
        tp (float): Lesion pixels predicted as lesion.
        fp (float): Background pixels predicted as lesion.
        fn (float): Lesion pixels predicted as background.
        tn (float): Background pixels predicted as background.

    Returns:
        dict[str, float]: ``IoU = TP / (TP + FP + FN)``,
        ``DSC = 2 TP / (2 TP + FP + FN)``,
        ``Acc = (TP + TN) / (TP + FP + FN + TN)``, ``Sen = TP / (TP + FN)``
        and ``Spe = TN / (TN + FP)``; a zero denominator gives 1.0.
    """
    return {
        'IoU': _ratio(tp, tp + fp + fn),
        'DSC': _ratio(2 * tp, 2 * tp + fp + fn),
        'Acc': _ratio(tp + tn, tp + fp + fn + tn),
        'Sen': _ratio(tp, tp + fn),
        'Spe': _ratio(tn, tn + fp),
    }


def write_per_image_table(results: list, path: str) -> None:
    """Write the figures of each scored image at its original size, in
    the order scored, as a CSV table: the image, its lesion pixels, the
    pixels predicted lesion and those of them that are lesion, and its IoU,
    DSC and sensitivity in percent (the values ``mIoU_img`` and
    ``mDSC_img`` average; empty for an image with no
    counted pixel, which they leave out). Which pictures a model fails on
    is then one sort away.

    Args:
        results (list[dict]): :class:`LesionMetric`'s per-image records.
        path (str): The CSV file, written atomically.
    """
    import csv
    import io

    from ..utils.fileio import atomic_write
    text = io.StringIO()
    table = csv.writer(text, lineterminator='\n')
    table.writerow(['image', 'lesion_pixels', 'predicted_pixels',
                    'overlap_pixels', 'IoU', 'DSC', 'Sen'])
    for record in results:
        tp, fp, fn, tn = (int(count) for count in record[_ORIG])
        scores = confusion_to_scores(tp, fp, fn, tn)
        counted_any = tp + fp + fn + tn > 0
        table.writerow(
            [osp.basename(record.get(_IMAGE) or ''), tp + fn, tp + fp, tp] +
            [f'{percent(scores[name], 2):.2f}' if counted_any else ''
             for name in ('IoU', 'DSC', 'Sen')])
    atomic_write(text.getvalue(), path)


def mask_file_name(img_path: str) -> str:
    """The name of the mask ``LesionMetric(output_dir=...)`` writes for
    ``img_path``: its stem with ``.png``."""
    return osp.splitext(osp.basename(img_path))[0] + '.png'


def check_unique_mask_names(img_paths: Sequence[str]) -> None:
    """Refuse, before any mask is written, images whose masks would have
    one name: the run would otherwise stop at the second of them and leave
    the masks scored before it behind.

    Args:
        img_paths (Sequence[str]): The images to be scored, in order.

    Raises:
        UserError: Naming the first two images that clash.
    """
    first = {}
    for img_path in img_paths:
        name = mask_file_name(img_path)
        if name not in first:
            first[name] = img_path
            continue
        clash = (f'{img_path} is listed twice' if first[name] == img_path
                 else f'{first[name]} and {img_path} share the stem '
                 f'{osp.splitext(name)[0]}')
        raise UserError(
            f'{clash}, so both masks would be {name}; nothing was scored. '
            'Give each image its own file name and list it once.')


def check_each_image_once(img_paths: Sequence[str],
                          loader: str = 'test_dataloader') -> None:
    """Refuse an evaluation that would score one image file more than once:
    a ``RepeatDataset``, or a ``ConcatDataset`` of splits that share images
    (``official_val`` and ``lightweight_test``), scored each copy, so the
    image weighed that many times in the pooled figures and the record
    counted it each time, exit 0.

    Args:
        img_paths (Sequence[str]): The images to be scored, in order.
        loader (str): The loader, for the message.

    Raises:
        UserError: Naming the most repeated images and their counts.
    """
    counts = Counter(osp.realpath(path) for path in img_paths)
    repeated = sorted(((n, path) for path, n in counts.items() if n > 1),
                      key=lambda item: (-item[0], item[1]))
    if not repeated:
        return
    shown = first_few([f'{path} ({n} times)' for n, path in repeated], 3)
    raise UserError(
        f'{loader} would score {counted(len(repeated), "image")} more '
        'than once '
        f'({sum(counts.values())} samples of '
        f'{counted(len(counts), "image")}: '
        f'{shown}), a RepeatDataset or a ConcatDataset of splits that share '
        'images; each would weigh that many times in the pooled figures. '
        'Score each image once; nothing was scored.')


class MetricArgumentError(UserError, ValueError):
    """A :class:`LesionMetric` argument that would make its figures
    meaningless (also a ``ValueError``)."""


def check_metric_args(threshold=0.5, lesion_index=1, ignore_index=255,
                      low_res_size=(256, 256), jaccard_threshold=0.65,
                      single_channel_input='probability') -> None:
    """Refuse :class:`LesionMetric` arguments that give figures of
    nothing: a threshold no probability passes (``1.5``: no pixel is
    lesion; ``0``: every one), a TJ threshold in percent (``65``: every TJ
    0), a lesion label a binary mask does not hold or that is ignored, a
    low-resolution size of no pixels. Checked by the metric and, before a
    run, by the tools (:func:`mmseg_dsnet.engine.preflight.
    check_lesion_metrics`).

    Args:
        threshold, lesion_index, ignore_index, low_res_size,
            jaccard_threshold, single_channel_input: As
            :class:`LesionMetric` takes them.

    Raises:
        MetricArgumentError: Naming the argument and its value.
    """
    from ..models.utils.lesion_logit import ThresholdError, check_threshold
    try:
        check_threshold(threshold)
    except ThresholdError as err:
        raise MetricArgumentError(str(err)) from None
    if single_channel_input not in ('probability', 'logit'):
        raise MetricArgumentError(
            'single_channel_input must be "probability" or "logit", got '
            f'{single_channel_input!r}')
    size = tuple(low_res_size) if isinstance(low_res_size,
                                             (list, tuple)) else ()
    if len(size) != 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0
            for n in size):
        raise MetricArgumentError(
            'low_res_size must be (height, width), two positive whole '
            f'numbers, got {low_res_size!r}')
    if isinstance(jaccard_threshold, bool) or not isinstance(
            jaccard_threshold, (int, float)) or \
            not 0 <= jaccard_threshold <= 1:
        raise MetricArgumentError(
            'jaccard_threshold must be a Jaccard index in [0, 1] (0.65 is '
            f"the ISIC challenge's), got {jaccard_threshold!r}")
    if lesion_index not in (0, 1) or isinstance(lesion_index, bool):
        raise MetricArgumentError(
            'lesion_index must be the lesion label of a binary mask, 0 or '
            f'1, got {lesion_index!r}')
    if ignore_index == lesion_index:
        raise MetricArgumentError(
            f'ignore_index {ignore_index!r} is the lesion label '
            '(lesion_index): no lesion pixel would be counted')


def lesion_free_size(results: list, low_res_size) -> Optional[str]:
    """Where the ground truth of ``results`` holds no lesion pixel: there
    the pooled IoU and DSC are 0 / 0 at the lesion (0 when any pixel is
    called lesion, 100 when none is) and the sensitivity reads 100.

    Args:
        results (list[dict]): The records of :meth:`LesionMetric.process`.
        low_res_size (tuple[int, int]): The metric's ``low_res_size``.

    Returns:
        str | None: ``'at the original size'``, else ``'at low_res_size
        HxW, where the masks are resized by nearest neighbour'`` (a lesion
        that vanishes there), else None (the ground truth holds lesion).
    """
    height, width = low_res_size
    for key, where in (
            (_ORIG, 'at the original size'),
            (_LOW, f'at low_res_size {height}x{width}, where the masks are '
             'resized by nearest neighbour')):
        # Records are [tp, fp, fn, tn]: tp + fn is the true lesion.
        if not sum(record[key][0] + record[key][2] for record in results):
            return where
    return None


def check_every_image_scored(records: int, size: int) -> None:
    """Refuse figures of fewer images than the evaluated dataset holds.

    Args:
        records (int): The images scored (padding copies included).
        size (int): The images of the dataset.

    Raises:
        IncompleteEvaluationError: Naming both counts and the usual cause.
    """
    if records >= size:
        return
    of_what = ('of no image at all (100 % everywhere)' if not records
               else 'of part of the split')
    raise IncompleteEvaluationError(
        f'LesionMetric: the evaluation loop gave results for {records} of '
        f'the {counted(size, "image")} of its dataset, so the figures '
        'would be '
        f'{of_what}; nothing is reported. A val or test dataloader with '
        'drop_last=True leaves '
        'its last incomplete batch out, as does a sampler that skips '
        'images: set drop_last=False and use a sampler that visits every '
        "image (mmengine's DefaultSampler)")


@METRICS.register_module()
class LesionMetric(BaseMetric):
    """All skin-lesion segmentation figures from one evaluation pass.

    The lesion probability map is rebuilt from ``seg_logits`` and thresholded
    here, so the figures do not depend on the decode head's own threshold
    (MMSegmentation's default for 1-channel heads is 0.3); ``train.py`` and
    ``test.py`` refuse a config whose head and metric thresholds differ
    (:func:`mmseg_dsnet.engine.check_decision_thresholds`):

    - 1 channel: MMSegmentation 1.2.2's ``postprocess_result`` already applies
      the sigmoid, so ``seg_logits`` holds probabilities; that is the default
      (``single_channel_input='probability'``). Pass ``'logit'`` when the
      maps hold raw logits, and the sigmoid is applied here.
    - 2 or more channels: softmax over channels, channel ``lesion_index``.
      With 2 channels and ``threshold=0.5`` this is the same as ``argmax``
      (a tie, probability exactly 0.5, is background in both).

    A pixel is lesion when its probability is strictly greater than
    ``threshold``: probability 0.5 is background at the default threshold.
    Ground-truth pixels equal to ``lesion_index`` are lesion, pixels equal to
    ``ignore_index`` are left out of every count, all others are background.

    Each image adds one small record to ``self.results`` (two lists of four
    ints), so MMEngine can gather them across ranks before
    :meth:`compute_metrics`; nothing else is kept between calls.

    Figures (all in percent):

    - ``IoU``, ``DSC``, ``Acc``, ``Sen``, ``Spe``: lesion class, pooled over
      all pixels of all images, at ``low_res_size``. The probability map is
      resized bilinearly (``align_corners=False``) and the ground truth by
      nearest neighbour (PyTorch's ``'nearest'``, which picks the same source
      pixel as OpenCV's ``INTER_NEAREST`` used by MMSegmentation's
      ``Resize``). This is the lightweight-literature protocol, whose models
      predict at 256x256 and are scored against 256x256 masks.
    - ``IoU_orig`` ... ``Spe_orig``: the same at the original resolution.
    - ``mIoU_img``, ``mDSC_img``: mean over images of per-image IoU and DSC
      at the original resolution.
    - ``TJ``: ISIC challenge thresholded Jaccard, the mean over images of
      per-image IoU where values below ``jaccard_threshold`` count as 0.
    - ``mIoU``, ``mDice``: MMSegmentation's 2-class (background, lesion)
      mean IoU and Dice from the pooled original-resolution confusion matrix.

    Zero denominators: a ratio ``0 / 0`` counts as 1.0 (e.g. an image with
    neither a lesion in its ground truth nor in its prediction has IoU and
    DSC 1.0). Images without any non-ignored pixel are left out of the
    per-image means (which are NaN if no image is left); an evaluation
    that counts no pixel at all (no image, or only ``ignore_index``) is
    refused, as is one of fewer images than its dataset holds
    (:class:`IncompleteEvaluationError`). ``mIoU`` and
    ``mDice`` follow MMSegmentation instead: a class absent from both
    prediction and ground truth is skipped in the mean.

    Pooled DSC and IoU come from one confusion matrix and so always satisfy
    ``DSC = 2 IoU / (1 + IoU)``; per-image means do not.

    Args:
        threshold (float): A pixel is lesion when its lesion probability is
            strictly greater than this. Defaults to 0.5.
        lesion_index (int): Lesion label in the ground truth, and the lesion
            channel of multi-channel ``seg_logits``. A 1-channel output is
            the probability of label 1 (mmseg's masks are ``p >
            threshold``), so with ``lesion_index=0`` the lesion probability
            is ``1 - p``. Defaults to 1.
        ignore_index (int): Ground-truth label left out of the evaluation.
            Defaults to 255.
        low_res_size (tuple[int, int]): ``(height, width)`` at which the
            primary pooled figures are computed. Defaults to (256, 256).
        jaccard_threshold (float): Per-image Jaccard below this counts as 0
            in ``TJ``. Defaults to 0.65.
        single_channel_input (str): What a 1-channel ``seg_logits`` holds:
            ``'probability'`` (MMSegmentation 1.x's segmentors store the
            sigmoid output) or ``'logit'``. Defaults to ``'probability'``.
        output_dir (str, optional): Also write each image's scored mask
            (0 background, 255 lesion, at the image's original size) to
            ``<output_dir>/<image stem>.png``, as ``tools/test.py --out``
            asks, and each image's figures to
            ``<output_dir>/per_image.csv`` (:func:`write_per_image_table`).
            An existing mask is never replaced: two images of one
            stem raise a :class:`UserError` naming both. A file another
            process wrote with the same mask is the padding copy of a
            distributed run and is left as it is. Defaults to None.
        collect_device (str): Device used to gather results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix added to the metric names.
            Defaults to None.
    """

    def __init__(self,
                 threshold: float = 0.5,
                 lesion_index: int = 1,
                 ignore_index: int = 255,
                 low_res_size: Sequence[int] = (256, 256),
                 jaccard_threshold: float = 0.65,
                 single_channel_input: str = 'probability',
                 output_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        check_metric_args(threshold=threshold, lesion_index=lesion_index,
                          ignore_index=ignore_index,
                          low_res_size=low_res_size,
                          jaccard_threshold=jaccard_threshold,
                          single_channel_input=single_channel_input)
        self.threshold = float(threshold)
        self.lesion_index = int(lesion_index)
        self.ignore_index = int(ignore_index)
        self.low_res_size = (int(low_res_size[0]), int(low_res_size[1]))
        self.jaccard_threshold = float(jaccard_threshold)
        self.single_channel_input = single_channel_input
        self.output_dir = output_dir
        if output_dir:
            os.makedirs(output_dir, exist_ok=True)
        # Mask file -> the image it was written for, to name both images
        # when a second one would replace it.
        self._mask_sources = {}
        self._warned_no_logits = False

    # ------------------------------------------------------------------
    # per-batch processing
    # ------------------------------------------------------------------
    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Add one record of confusion counts per image to ``self.results``.

        Args:
            data_batch (dict): A batch from the dataloader (unused).
            data_samples (Sequence[dict]): Model outputs, each with
                ``seg_logits`` (or, failing that, ``pred_sem_seg``) and
                ``gt_sem_seg`` at the original image size.
        """
        for data_sample in data_samples:
            label = data_sample['gt_sem_seg']['data'].squeeze(0)
            prob = self._lesion_probability(data_sample)
            if prob.shape != label.shape:
                raise SizeMismatchError(
                    f'{data_sample.get("img_path", "image")}: prediction of '
                    f'shape {tuple(prob.shape)} does not match ground truth '
                    f'of shape {tuple(label.shape)}; {SIZE_MISMATCH_FIX}')
            _check_finite(prob, data_sample.get('img_path', 'image'))
            label = label.to(prob.device)
            counts_orig = self._confusion(prob, label)
            if self.output_dir:
                self._write_mask(prob, data_sample['img_path'])

            low_prob = F.interpolate(
                prob[None, None],
                size=self.low_res_size,
                mode='bilinear',
                align_corners=False)[0, 0]
            low_label = F.interpolate(
                label[None, None].float(),
                size=self.low_res_size,
                mode='nearest')[0, 0]
            counts_low = self._confusion(low_prob, low_label)
            record = {_ORIG: counts_orig, _LOW: counts_low}
            if self.output_dir:
                # For the per-image table beside the masks.
                record[_IMAGE] = data_sample['img_path']
            self.results.append(record)

    def scored_masks(
        self, data_sample: dict
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The masks this metric counts for one image, at its original size:
        predicted lesion (its probability above ``threshold``), true lesion
        (``lesion_index``) and counted pixels (not ``ignore_index``).

        Args:
            data_sample (dict): A model output, as :meth:`process` takes it.

        Returns:
            tuple[Tensor, Tensor, Tensor]: Three ``(H, W)`` bool tensors;
            the true lesion is within the counted pixels.
        """
        label = data_sample['gt_sem_seg']['data'].squeeze(0)
        prob = self._lesion_probability(data_sample)
        return self._counted(prob, label.to(prob.device))

    def _write_mask(self, prob: torch.Tensor, img_path: str) -> None:
        """Write the mask the figures count (lesion where ``prob`` is above
        the threshold) as ``<output_dir>/<image stem>.png``."""
        from ..apis.masks import write_image
        path = osp.join(self.output_dir, mask_file_name(img_path))
        mask = (prob > self.threshold).to(torch.uint8).cpu().numpy() * 255
        if osp.exists(path):
            from mmengine.dist import get_world_size
            if get_world_size() > 1 and path not in self._mask_sources \
                    and _holds_mask(path, mask):
                # Another process scored this image: mmengine's sampler
                # pads a split that does not divide among the processes
                # with copies of its first images.
                return
            # Within one run only when two images share a stem (or one image
            # is scored twice); another rank's image is not known here.
            first = self._mask_sources.get(
                path, 'an image of another process or run')
            stem = osp.splitext(osp.basename(path))[0]
            clash = (f'{img_path} was scored twice' if first == img_path else
                     f'{first} and {img_path} share the stem {stem}')
            raise UserError(
                f'LesionMetric: {clash}, so both masks would be {path}; it is '
                'not replaced. Give each image its own file name and list it '
                'once.')
        write_image(path, mask)
        self._mask_sources[path] = img_path

    def _lesion_probability(self, data_sample: dict) -> torch.Tensor:
        """Lesion probability map (H, W) as float32 from one data sample."""
        if 'seg_logits' not in data_sample:
            # Hard labels only: a 0/1 map keeps the label under any threshold
            # in (0, 1), though low-res figures then resize a hard mask.
            if not self._warned_no_logits:
                print_log(
                    'LesionMetric: no seg_logits in the data samples, using '
                    'pred_sem_seg (the metric threshold has no effect).',
                    logger='current',
                    level=logging.WARNING)
                self._warned_no_logits = True
            pred = data_sample['pred_sem_seg']['data'].squeeze(0)
            return (pred == self.lesion_index).float()

        return stored_lesion_probability(data_sample['seg_logits']['data'],
                                         self.lesion_index,
                                         self.single_channel_input)

    def _counted(self, prob: torch.Tensor, label: torch.Tensor
                 ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predicted lesion, true lesion (within the counted pixels) and the
        counted pixels (not ``ignore_index``)."""
        valid = label != self.ignore_index
        return (prob > self.threshold, (label == self.lesion_index) & valid,
                valid)

    def _confusion(self, prob: torch.Tensor,
                   label: torch.Tensor) -> List[int]:
        """``[tp, fp, fn, tn]`` of the lesion class, ignore pixels excluded."""
        pred_pos, gt_pos, valid = self._counted(prob, label)
        pred_pos = pred_pos & valid
        tp = int((pred_pos & gt_pos).sum().item())
        fp = int((pred_pos & ~gt_pos).sum().item())
        fn = int((~pred_pos & gt_pos).sum().item())
        tn = int(valid.sum().item()) - tp - fp - fn
        return [tp, fp, fn, tn]

    # ------------------------------------------------------------------
    # final figures
    # ------------------------------------------------------------------
    def evaluate(self, size: int) -> dict:
        """Gather the records of all ranks and compute the figures, as
        :meth:`BaseMetric.evaluate` does, after checking that they cover
        every one of the ``size`` images.

        MMEngine cuts the padding its sampler adds but never counts what is
        missing: a loader with ``drop_last=True`` (or a sampler that skips
        images) gave the figures of part of the split, and of no image at
        all (100 % everywhere) when the batch exceeded the split.

        Args:
            size (int): The number of images of the evaluated dataset.

        Returns:
            dict[str, float]: See :meth:`compute_metrics`.

        Raises:
            IncompleteEvaluationError: On every rank, when the ranks hold
                records of fewer than ``size`` images.
        """
        from mmengine.dist import all_reduce, get_world_size
        records = torch.tensor([len(self.results)], dtype=torch.long)
        if get_world_size() > 1:
            # Every rank learns the total, so all of them stop together.
            all_reduce(records)
        try:
            check_every_image_scored(int(records.item()), size)
        except IncompleteEvaluationError:
            self.results.clear()
            raise
        return super().evaluate(size)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute every figure from the gathered per-image records.

        Args:
            results (list[dict]): One record per image, as written by
                :meth:`process` (possibly gathered from several ranks).

        Returns:
            dict[str, float]: Figures in percent, rounded to 4 decimals
            (the logged table shows 2) by :func:`percent`: only a perfect
            figure reads 100, only a null one 0.
        """
        pooled_low = self._pooled(results, _LOW)
        pooled_orig = self._pooled(results, _ORIG)
        # With nothing counted every 0 / 0 ratio reads 1.0: 100 % of
        # nothing, which must not pass for a result.
        if sum(pooled_orig) == 0 or sum(pooled_low) == 0:
            raise IncompleteEvaluationError(
                self._nothing_counted(len(results), sum(pooled_orig) == 0))

        metrics: Dict[str, float] = OrderedDict()
        for name, value in confusion_to_scores(*pooled_low).items():
            metrics[name] = value
        for name, value in confusion_to_scores(*pooled_orig).items():
            metrics[f'{name}_orig'] = value

        per_image = [
            confusion_to_scores(*record[_ORIG]) for record in results
            if sum(record[_ORIG]) > 0
        ]
        ious = [scores['IoU'] for scores in per_image]
        dscs = [scores['DSC'] for scores in per_image]
        thresholded = [
            iou if iou >= self.jaccard_threshold else 0.0 for iou in ious
        ]
        metrics['mIoU_img'] = _mean(ious)
        metrics['mDSC_img'] = _mean(dscs)
        metrics['TJ'] = _mean(thresholded)

        miou, mdice = self._mmseg_two_class(*pooled_orig)
        metrics['mIoU'] = miou
        metrics['mDice'] = mdice

        metrics = OrderedDict(
            (name, percent(value)) for name, value in metrics.items())
        self._log_table(metrics, num_images=len(results))
        if self.output_dir:
            write_per_image_table(
                results, osp.join(self.output_dir, PER_IMAGE_FILE))
        where = lesion_free_size(results, self.low_res_size)
        if where:
            print_log(
                f'LesionMetric: the ground truth of the '
                f'{counted(len(results), "scored image")} holds no lesion '
                f'pixel {where}; there the pooled IoU, DSC and '
                'sensitivity are undefined (0 / 0): IoU and DSC read 0 when '
                'any pixel is called lesion and 100 when none is, and '
                'sensitivity reads 100. Score a split whose masks hold '
                'lesions',
                logger='current',
                level=logging.WARNING)
        return metrics

    def _nothing_counted(self, num_images: int, at_original: bool) -> str:
        """The message of an evaluation that counted no pixel
        ``at_original`` size (else at ``low_res_size``)."""
        if not num_images:
            return ('LesionMetric: no image was evaluated, so every figure '
                    'would read 100 %; nothing is reported')
        if at_original:
            why = ('the ground truth holds only ignore_index '
                   f'({self.ignore_index})')
        else:
            why = (f'the pixels that are not ignore_index '
                   f'({self.ignore_index}) vanish when the masks are '
                   'resized by nearest neighbour')
        where = 'at the original size' if at_original else \
            f'at low_res_size {self.low_res_size}'
        fix = ('evaluate masks that hold lesion and background labels'
               if at_original else 'give a larger low_res_size')
        return (f'LesionMetric: no pixel was counted {where} over '
                f'{counted(num_images, "image")}: {why}, so every figure '
                'would '
                f'read 100 %; nothing is reported. To score, {fix}')

    @staticmethod
    def _pooled(results: list, key: str) -> Tuple[int, int, int, int]:
        """Sum of the ``[tp, fp, fn, tn]`` records stored under ``key``."""
        totals = [0, 0, 0, 0]
        for record in results:
            for i, count in enumerate(record[key]):
                totals[i] += int(count)
        return tuple(totals)

    @staticmethod
    def _mmseg_two_class(tp: int, fp: int, fn: int,
                         tn: int) -> Tuple[float, float]:
        """MMSegmentation's mean IoU and Dice over (background, lesion).

        For background the roles swap: its true positives are ``tn``. As in
        MMSegmentation's ``IoUMetric``, a class whose union is empty is NaN
        and is skipped by the mean.
        """
        per_class = [(tn, fn, fp), (tp, fp, fn)]  # (intersection, other two)
        ious, dices = [], []
        for intersect, wrong_a, wrong_b in per_class:
            union = intersect + wrong_a + wrong_b
            if union == 0:
                continue
            ious.append(intersect / union)
            dices.append(2 * intersect / (2 * intersect + wrong_a + wrong_b))
        return _mean(ious), _mean(dices)

    def _log_table(self, metrics: Dict[str, float], num_images: int) -> None:
        """Log the figures as two readable tables."""
        logger: MMLogger = MMLogger.get_current_instance()
        pooled = PrettyTable()
        pooled.field_names = ['pooled lesion'] + list(_POOLED_NAMES)
        low_h, low_w = self.low_res_size
        pooled.add_row([f'{low_h}x{low_w} (primary)'] +
                       [percent_text(metrics[name]) for name in _POOLED_NAMES])
        pooled.add_row(['original size'] + [
            percent_text(metrics[name + '_orig']) for name in _POOLED_NAMES
        ])
        other = PrettyTable()
        other.field_names = ['mIoU_img', 'mDSC_img', 'TJ', 'mIoU', 'mDice']
        other.add_row([percent_text(metrics[name])
                       for name in other.field_names])
        print_log(
            f'LesionMetric over {counted(num_images, "image")} (threshold '
            f'{self.threshold}, TJ threshold {self.jaccard_threshold}):\n' +
            pooled.get_string() + '\n' + other.get_string(),
            logger=logger)


class NonFiniteOutputError(UserError, ValueError):
    """A model output holding NaN: its pixels would be scored (and
    written) as background."""


def _check_finite(prob: torch.Tensor, img_path: str) -> None:
    """Refuse a lesion probability map that holds NaN.

    ``NaN > threshold`` is False, so a NaN pixel (a diverged or
    overflowing model, ``inf - inf`` in a 2-channel output) would count as
    predicted background: an all-NaN output read as IoU 0 and
    specificity 100, exit 0.

    Args:
        prob (Tensor): The ``(H, W)`` lesion probability of one image.
        img_path (str): The image, for the message.

    Raises:
        NonFiniteOutputError: Naming the image and the NaN count.
    """
    bad = int(torch.isnan(prob).sum().item())
    if bad:
        raise NonFiniteOutputError(
            f'LesionMetric: {img_path}: the model output holds {bad} NaN '
            f'values of {prob.numel()} pixels (a diverged or overflowing '
            'model), which would be scored as background; nothing is '
            'reported. Check the checkpoint and the input image')


def _holds_mask(path: str, mask) -> bool:
    """Whether the image file ``path`` holds exactly ``mask``."""
    import numpy as np

    from ..image_io import read_unchanged
    written = read_unchanged(path)
    return written is not None and written.shape == mask.shape and \
        bool(np.array_equal(written, mask))


def _mean(values: List[float]) -> float:
    """Arithmetic mean, NaN for an empty list."""
    if not values:
        return float('nan')
    return sum(values) / len(values)
