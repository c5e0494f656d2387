"""An encoder-decoder trained to give a picture and its mirror image one
answer.

Averaging the lesion probability of an image and its flips at test time
(:class:`~mmseg_dsnet.models.segmentors.LesionTTAModel`) gains about a
point of pooled IoU on the design hold-out (docs/design_study.md): one
pass's answer changes with the picture's orientation. This segmentor trains
every batch together with a flipped copy of it and adds a term that pulls
the two answers together, for a single pass to keep part of that gain
(measured in the design study's thirty-eighth round). Inference is the plain :class:`~mmseg.models.segmentors.EncoderDecoder`'s:
the deployed network, its parameters and its FLOPs do not change.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import (ConfigType, OptConfigType, OptMultiConfig,
                         SampleList, add_prefix)
from torch import Tensor

from ...utils.errors import ModelArgumentError

#: Each flip as (reverse the rows, reverse the columns): horizontal,
#: vertical and both, the views ``tools/test.py --tta`` averages.
FLIPS = {
    'horizontal': (False, True),
    'vertical': (True, False),
    'diagonal': (True, True),
}


def mirror(x: Tensor, flip: Tensor) -> Tensor:
    """``x`` flipped along its last two dimensions as ``flip`` says.

    The choice is a tensor and both outcomes are computed, so a training
    step captured in a CUDA graph (``tools/fast_train.py``) still draws a
    new flip on every replay. Applying the same flip twice gives ``x``.

    Args:
        x (Tensor): ``(..., H, W)``.
        flip (Tensor): Two booleans: reverse the rows, reverse the columns.

    Returns:
        Tensor: The flipped ``x``.
    """
    x = torch.where(flip[0], x.flip(-2), x)
    return torch.where(flip[1], x.flip(-1), x)


def flip_data_sample(sample: SegDataSample, flip: Tensor) -> SegDataSample:
    """A copy of ``sample`` whose ground truth is flipped by :func:`mirror`.

    Args:
        sample (SegDataSample): A training sample with ``gt_sem_seg``.
        flip (Tensor): As for :func:`mirror`.

    Returns:
        SegDataSample: The flipped sample (same metainfo).
    """
    flipped = SegDataSample(metainfo=sample.metainfo)
    flipped.gt_sem_seg = PixelData(data=mirror(sample.gt_sem_seg.data, flip))
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
        backbone (dict): As for ``EncoderDecoder``.
        decode_head (dict): As for ``EncoderDecoder``.
        consistency_weight (float): Weight of the agreement term (> 0).
        flips (tuple[str]): The flips to draw from, among ``'horizontal'``,
            ``'vertical'`` and ``'diagonal'`` (both).
        neck, auxiliary_head, train_cfg, test_cfg, data_preprocessor,
            pretrained, init_cfg: As for ``EncoderDecoder``.
    """

    def __init__(self,
                 backbone: ConfigType,
                 decode_head: ConfigType,
                 consistency_weight: float = 1.0,
                 flips: Tuple[str, ...] = ('horizontal', 'vertical',
                                           'diagonal'),
                 neck: OptConfigType = None,
                 auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None):
        # Arguments spelt out (not **kwargs): a misspelt key is refused
        # under this class's name, not EncoderDecoder's.
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            neck=neck,
            auxiliary_head=auxiliary_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        if not consistency_weight > 0:
            raise ModelArgumentError(
                'FlipConsistentEncoderDecoder(consistency_weight='
                f'{consistency_weight!r}) must be above 0; use '
                "type='EncoderDecoder' to train without the term")
        unknown = [flip for flip in flips if flip not in FLIPS]
        if unknown or not flips:
            raise ModelArgumentError(
                f'FlipConsistentEncoderDecoder(flips={tuple(flips)!r}): '
                f'give one or more of {tuple(FLIPS)}')
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
        # Not saved: checkpoints stay the plain EncoderDecoder's.
        self.register_buffer(
            'flip_table',
            torch.tensor([FLIPS[flip] for flip in self.flips]),
            persistent=False)

    def _draw_flip(self, device: torch.device) -> Tensor:
        """One of ``flips``, each as likely, as :func:`mirror` reads it.
        Drawn by torch's generator of ``device``, which the run's seed
        fixes, without reading it back to the host."""
        index = torch.randint(len(self.flips), (), device=device)
        return self.flip_table[index]

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """The decode head's losses over the batch and its flipped copy,
        plus ``loss_flip_consistency``.

        Args:
            inputs (Tensor): The images, ``(N, C, H, W)``.
            data_samples (list[SegDataSample]): Their ground truth.

        Returns:
            dict[str, Tensor]: The losses, prefixed ``decode.``.
        """
        flip = self._draw_flip(inputs.device)
        both = torch.cat([inputs, mirror(inputs, flip)])
        samples = list(data_samples) + [
            flip_data_sample(sample, flip) for sample in data_samples
        ]
        seg_logits, aux_logits, feat = self.decode_head.decode_for_loss(
            self.extract_feat(both))
        losses = self.decode_head.loss_by_decoded(seg_logits, aux_logits,
                                                  feat, samples)
        losses['loss_flip_consistency'] = (
            self.consistency_weight *
            self.consistency_loss(seg_logits, flip))
        # Named as EncoderDecoder names its decode head's losses.
        return add_prefix(losses, 'decode')

    @staticmethod
    def consistency_loss(seg_logits: Tensor, flip: Tensor) -> Tensor:
        """Mean Bernoulli KL divergence of each half's lesion probability
        from the other half's, flipped back onto it (the other half
        detached): 0 where the two answers agree.

        Args:
            seg_logits (Tensor): ``(2N, 1, H, W)``: the batch, then its
                copy flipped by ``flip``.
            flip (Tensor): The flip, as for :func:`mirror`.

        Returns:
            Tensor: The term (a scalar).
        """
        plain, flipped = seg_logits.float().chunk(2)
        flipped = mirror(flipped, flip)
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
