"""An encoder-decoder trained to give a picture and its mirror image one
answer.

Averaging the lesion probability of an image and its flips at test time
(:class:`~mmseg_dsnet.models.segmentors.LesionTTAModel`) gains about a
point of pooled IoU on the design hold-out (docs/design_study.md): one
pass's answer changes with the picture's orientation. This segmentor trains
every batch together with a flipped copy of it and adds a term that pulls
the two answers together, so a single pass can keep part of that gain.
Inference is the plain :class:`~mmseg.models.segmentors.EncoderDecoder`'s:
the deployed network, its parameters and its FLOPs do not change.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import SampleList, add_prefix
from torch import Tensor

from ...utils.errors import ModelArgumentError

#: The image dimensions each flip reverses (NCHW): horizontal, vertical,
#: both, the views ``tools/test.py --tta`` averages.
FLIP_DIMS = {
    'horizontal': (3, ),
    'vertical': (2, ),
    'diagonal': (2, 3),
}


def flip_data_sample(sample: SegDataSample,
                     dims: Tuple[int, ...]) -> SegDataSample:
    """A copy of ``sample`` whose ground truth is flipped along the image
    dimensions ``dims`` (those of the NCHW batch).

    Args:
        sample (SegDataSample): A training sample with ``gt_sem_seg``.
        dims (tuple[int]): 2 (height) and/or 3 (width).

    Returns:
        SegDataSample: The flipped sample (same metainfo).
    """
    flipped = SegDataSample(metainfo=sample.metainfo)
    # The mask is (1, H, W): NCHW dimension d is its dimension d - 1.
    flipped.gt_sem_seg = PixelData(
        data=sample.gt_sem_seg.data.flip([d - 1 for d in dims]))
    return flipped


@MODELS.register_module()
class FlipConsistentEncoderDecoder(EncoderDecoder):
    """:class:`~mmseg.models.segmentors.EncoderDecoder` that trains each
    batch with its flipped copy and an agreement term.

    Every training step draws one flip (horizontal, vertical or both, each
    with the same chance), runs the batch and its flipped copy through the
    network as one batch, scores both halves with the decode head's losses
    (the flipped copy against its flipped ground truth) and adds
    ``consistency_weight`` times the KL divergence of each half's lesion
    probability (main logits) from the other half's, flipped back and
    detached (averaged over pixels and the two directions). Its gradient on
    a logit is the difference of the two probabilities, as the BCE's is the
    difference to the label: weight 1 pulls toward the other view as hard
    as the BIC loss's BCE term pulls toward the ground truth. The
    step costs about twice the plain model's; inference and every exported
    or re-parameterised form are the plain model's.

    Needs a decode head with ``decode_for_loss`` and ``loss_by_decoded``
    (:class:`~mmseg_dsnet.models.decode_heads.DSNetHead`) and one output
    channel; no auxiliary head.

    Args:
        consistency_weight (float): Weight of the agreement term (> 0).
        flips (tuple[str]): The flips to draw from, among ``'horizontal'``,
            ``'vertical'`` and ``'diagonal'`` (both).
        **kwargs: :class:`~mmseg.models.segmentors.EncoderDecoder`'s
            arguments.
    """

    def __init__(self,
                 consistency_weight: float = 1.0,
                 flips: Tuple[str, ...] = ('horizontal', 'vertical',
                                           'diagonal'),
                 **kwargs):
        super().__init__(**kwargs)
        if not consistency_weight > 0:
            raise ModelArgumentError(
                'FlipConsistentEncoderDecoder(consistency_weight='
                f'{consistency_weight!r}) must be above 0; use '
                "type='EncoderDecoder' to train without the term")
        unknown = [flip for flip in flips if flip not in FLIP_DIMS]
        if unknown or not flips:
            raise ModelArgumentError(
                f'FlipConsistentEncoderDecoder(flips={tuple(flips)!r}): '
                f'give one or more of {tuple(FLIP_DIMS)}')
        head = self.decode_head
        if not (hasattr(head, 'decode_for_loss')
                and hasattr(head, 'loss_by_decoded')):
            raise ModelArgumentError(
                'FlipConsistentEncoderDecoder needs a decode head with '
                'decode_for_loss and loss_by_decoded (DSNetHead), not '
                f'{type(head).__name__}')
        if head.out_channels != 1:
            raise ModelArgumentError(
                'FlipConsistentEncoderDecoder compares one lesion '
                f'probability per pixel: the decode head has out_channels='
                f'{head.out_channels}, not 1')
        if self.with_auxiliary_head:
            raise ModelArgumentError(
                'FlipConsistentEncoderDecoder trains no auxiliary_head; '
                "use the decode head's deep supervision")
        self.consistency_weight = float(consistency_weight)
        self.flips = tuple(flips)

    def _draw_flip(self) -> Tuple[int, ...]:
        # torch's generator: the run's seed fixes the sequence of flips.
        index = int(torch.randint(len(self.flips), ()))
        return FLIP_DIMS[self.flips[index]]

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """The decode head's losses over the batch and its flipped copy,
        plus ``loss_flip_consistency``.

        Args:
            inputs (Tensor): The images, ``(N, C, H, W)``.
            data_samples (list[SegDataSample]): Their ground truth.

        Returns:
            dict[str, Tensor]: The losses, prefixed ``decode.``.
        """
        dims = self._draw_flip()
        both = torch.cat([inputs, inputs.flip(dims)])
        samples = list(data_samples) + [
            flip_data_sample(sample, dims) for sample in data_samples
        ]
        seg_logits, aux_logits, feat = self.decode_head.decode_for_loss(
            self.extract_feat(both))
        losses = self.decode_head.loss_by_decoded(seg_logits, aux_logits,
                                                  feat, samples)
        losses['loss_flip_consistency'] = (
            self.consistency_weight *
            self.consistency_loss(seg_logits, dims))
        # Named as EncoderDecoder names its decode head's losses.
        return add_prefix(losses, 'decode')

    @staticmethod
    def consistency_loss(seg_logits: Tensor, dims: Tuple[int,
                                                         ...]) -> Tensor:
        """Mean Bernoulli KL divergence of each half's lesion probability
        from the other half's, flipped back onto it (the other half
        detached): 0 where the two answers agree.

        Args:
            seg_logits (Tensor): ``(2N, 1, H, W)``: the batch, then its
                copy flipped along ``dims``.
            dims (tuple[int]): The flip.

        Returns:
            Tensor: The term (a scalar).
        """
        plain, flipped = seg_logits.float().chunk(2)
        flipped = flipped.flip(dims)
        return 0.5 * (_bernoulli_kl(plain, flipped.detach()) +
                      _bernoulli_kl(flipped, plain.detach()))


def _bernoulli_kl(logits: Tensor, target_logits: Tensor) -> Tensor:
    """Mean KL(target || prediction) of per-pixel Bernoulli distributions
    given by their logits: the BCE against the target's probability less
    the target's own entropy, so its gradient on ``logits`` is the
    difference of the two probabilities."""
    target = target_logits.sigmoid()
    return (F.binary_cross_entropy_with_logits(logits, target) -
            F.binary_cross_entropy_with_logits(target_logits, target))
