"""Test-time augmentation for binary lesion segmentors.

MMSegmentation 1.2.2's ``SegTTAModel`` does not fit a lesion model: for a
1-channel head it applies the sigmoid to ``seg_logits`` that the segmentor
has already turned into probabilities (every pixel then lies above 0.5),
and the sample it returns keeps the ``seg_logits`` of the last augmented
view, which :class:`~mmseg_dsnet.evaluation.LesionMetric` reads. This model
averages the lesion probability over the views and stores the average in
both ``seg_logits`` and ``pred_sem_seg``.
"""
from typing import List

import torch
from mmengine.structures import PixelData
from mmseg.models.segmentors import SegTTAModel
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import SampleList

from ...utils.errors import UserError
from ..utils.lesion_logit import (mean_view_probability,
                                   stored_lesion_probability)


@MODELS.register_module()
class LesionTTAModel(SegTTAModel):
    """Average the lesion probability of augmented views (``tools/test.py
    --tta``: the flips of :func:`~mmseg_dsnet.datasets.flip_tta_pipeline.
    flip_tta_pipeline`, or a config's own ``tta_pipeline``).

    Each view's ``seg_logits`` is already flipped back and resized to the
    original image by the segmentor. A 1-channel output holds sigmoid
    probabilities there (MMSegmentation 1.x's ``postprocess_result``); a
    2-channel output holds logits, whose softmax lesion probability is
    ``sigmoid(l_lesion - l_background)``. The merged sample holds the mean
    probability in the same form (1 channel: the probability; 2 channels:
    log-probabilities, whose softmax is the mean) and the mask of the pixels
    whose mean lies above the decode head's threshold (0.5 for 2 channels).

    The merged sample keeps the ground truth of the views, which must be
    one: a ``tta_pipeline`` that loads the masks before its flips flips
    the ground truth of the flipped views, while their predictions are
    flipped back.

    Args:
        module (dict | nn.Module): The segmentor.
        data_preprocessor (dict, optional): As for ``BaseTTAModel``.
    """

    def merge_preds(self, data_samples_list: List[SampleList]) -> SampleList:
        """One sample per image: the views' mean lesion probability.

        Args:
            data_samples_list (list[list[SegDataSample]]): Per image, the
                predictions of its augmented views.

        Returns:
            list[SegDataSample]: The merged predictions.

        Raises:
            UserError: The views of an image hold different ground truths.
        """
        merged = []
        for views in data_samples_list:
            _check_one_ground_truth(views)
            channels = views[0].seg_logits.data.shape[0]
            # The merge infer.py --tta makes too (the same masks).
            probability = mean_view_probability([
                stored_lesion_probability(view.seg_logits.data)
                for view in views
            ])
            if channels == 1:
                seg_logits = probability[None]
                threshold = self.module.decode_head.threshold
            else:
                # log p is exact for the softmax: softmax(log p) = p.
                seg_logits = torch.stack([1 - probability,
                                          probability]).clamp_min(1e-12).log()
                threshold = 0.5
            sample = SegDataSample(metainfo=views[0].metainfo)
            sample.seg_logits = PixelData(data=seg_logits)
            sample.pred_sem_seg = PixelData(
                data=(probability > threshold).long()[None])
            if 'gt_sem_seg' in views[0]:
                sample.gt_sem_seg = views[0].gt_sem_seg
            merged.append(sample)
        return merged


def _check_one_ground_truth(views):
    """Refuse views whose ground truths differ: the pipeline transformed
    (flipped) the mask with the image, and the first view's would be
    scored against the merged prediction, which is at the original
    orientation (a flipped first view: the figures of a flipped mask,
    exit 0)."""
    truths = [view.gt_sem_seg.data for view in views if 'gt_sem_seg' in view]
    if all(truth.shape == truths[0].shape and torch.equal(truth, truths[0])
           for truth in truths[1:]):
        return
    raise UserError(
        f'LesionTTAModel: the augmented views of {views[0].get("img_path")} '
        'hold different ground truths: the tta_pipeline flips (or otherwise '
        'transforms) the mask it loaded before its views, while each '
        "view's prediction is turned back; put LoadAnnotations after the "
        'flips in tta_pipeline, or remove tta_pipeline from the config '
        '(tools/test.py --tta then flips its test pipeline)')
