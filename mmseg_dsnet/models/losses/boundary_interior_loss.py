"""Boundary-interior correction (BIC) loss for binary lesion segmentation."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from ...utils.errors import ModelArgumentError
from ...utils.messages import counted
from ..utils.lesion_logit import lesion_logit
from .binary_dice_loss import soft_dice
from .image_mean import mean_of_scored_images
from .loss_arguments import (check_binary_labels, check_loss_inputs,
                             check_loss_name, check_loss_options,
                             check_loss_weights)


def _running_max(x: Tensor, width: int, dim: int) -> Tensor:
    """Max over the ``2 * width + 1`` elements centred on each element of
    ``x`` along ``dim``; elements beyond the ends count as ``-inf``.

    Windows double in length by one ``torch.maximum`` of two shifted views
    each (``log2`` steps), which on CPUs is tens of times faster than
    ``max_pool2d`` with the same window, and exact.
    """
    length = x.shape[dim]
    pad = [0, 0] * (x.dim() - 1 - dim % x.dim()) + [width, width]
    out = F.pad(x, pad, value=float('-inf'))
    window, span = 2 * width + 1, 1  # out[i]: max of padded [i, i + span)
    while span < window:
        step = min(span, window - span)
        size = out.shape[dim] - step
        out = torch.maximum(out.narrow(dim, 0, size),
                            out.narrow(dim, step, size))
        span += step
    return out.narrow(dim, 0, length)


def _square_max(x: Tensor, width: int) -> Tensor:
    """``max_pool2d(x, 2 * width + 1, 1, width)`` of ``(N, H, W)`` maps, as
    two separable running maxima."""
    return _running_max(_running_max(x, width, -1), width, -2)


def boundary_interior_maps(mask: Tensor,
                           width: int = 1,
                           valid: Optional[Tensor] = None
                           ) -> Tuple[Tensor, Tensor]:
    """Boundary band and interior of binary masks, by max-pool morphology.

    ``dilate(M) = maxpool(M)`` and ``erode(M) = 1 - maxpool(1 - M)`` with a
    ``(2 * width + 1)`` square window. The band is ``dilate(M) - erode(M)``
    (``width`` pixels on each side of the contour), the interior is
    ``erode(M)``.

    Unknown pixels never create a boundary: for the erosion, pixels outside
    ``valid`` and outside the image count as lesion (they do not erode it),
    for the dilation they count as background (they do not grow it), and
    both maps are zero outside ``valid``. So a lesion that runs into an
    ignored region or the image border has no band there.

    Args:
        mask (Tensor): Binary masks, ``(N, H, W)``, values 0/1.
        width (int): Band half-width in pixels. Default: 1.
        valid (Tensor, optional): Bool ``(N, H, W)``, False where the label
            is unknown (ignore index). Default: everything valid.

    Returns:
        tuple[Tensor, Tensor]: Float ``(N, H, W)`` boundary and interior
        maps with values 0/1.
    """
    if width < 1:
        raise ValueError(f'width must be >= 1, got {width}')
    mask = mask.float()
    valid = (torch.ones_like(mask)
             if valid is None else valid.to(mask.dtype))
    # Beyond the image the maxima read -inf: the border is neutral for both.
    dilated = _square_max(mask, width)
    lesion_or_unknown = torch.maximum(mask, 1 - valid)
    eroded = 1 - _square_max(1 - lesion_or_unknown, width)
    boundary = (dilated - eroded).clamp(min=0) * valid
    interior = eroded * mask * valid
    return boundary, interior


def _soft_dice_loss(prob: Tensor, target: Tensor, region: Tensor,
                    smooth: float, per_image: bool = True) -> Tensor:
    """``1 - soft Dice`` restricted to ``region``: per image and averaged
    over the images with a pixel in the region, or (``per_image=False``)
    over all the batch's pixels at once, so that every pixel weighs the
    same whatever its lesion's size."""
    dims = (1, 2) if per_image else (0, 1, 2)
    intersection = (prob * target * region).sum(dims)
    total = (prob * region).sum(dims) + (target * region).sum(dims)
    loss = 1 - soft_dice(intersection, total, smooth)
    if not per_image:
        return loss
    return mean_of_scored_images(loss, region.flatten(1).sum(1) > 0)


def _masked_mean(values: Tensor, region: Tensor) -> Tensor:
    """Mean of ``values`` over ``region`` (0 if the region is empty)."""
    return (values * region).sum() / region.sum().clamp(min=1)


@MODELS.register_module()
class BoundaryInteriorLoss(nn.Module):
    """Boundary-interior correction loss.

    ``loss_weight * (bce_weight * BCE + dice_weight * Dice
    + boundary_weight * L(B) + interior_weight * L(I))``, where BCE and Dice
    cover every valid pixel, ``B`` is the ground-truth boundary band and
    ``I`` the eroded lesion interior (:func:`boundary_interior_maps`), and
    ``L`` is the BCE averaged over the region (``region_loss='bce'``) or a
    soft Dice restricted to it (``region_loss='dice'``). The band term
    sharpens blurred contours; the interior term punishes holes.

    With ``region_norm='region'`` a BCE region term is averaged over its
    own pixels, so the thin band (about 5 % of a dermoscopy mask's pixels
    at ``band_width=2``) weighs as much as the whole image. With
    ``region_norm='image'`` it is summed over the region and divided by
    the image's valid pixels instead: every band pixel's BCE is then
    weighted ``1 + boundary_weight`` and every interior pixel's
    ``1 + interior_weight``, a correction of the image-wide BCE rather than
    a second loss of its own size.

    The lesion probability comes from a sigmoid of the single logit
    (``out_channels=1``) or from a softmax over two logits, computed as the
    sigmoid of their difference (``out_channels=2``, lesion = channel 1), so
    BCE is exactly the 2-class cross-entropy. Pixels equal to
    ``ignore_index`` contribute nothing, whatever their logits. Label 1 is
    the lesion, 0 the background; any other value is refused
    (:class:`~mmseg_dsnet.datasets.MaskValueError`).

    Args:
        bce_weight (float): Weight of the image-wide BCE. Default: 1.0.
        dice_weight (float): Weight of the image-wide soft Dice loss.
            Default: 1.0.
        dice_reduction (str): ``'image'``: the Dice of each image,
            averaged over the batch (a small lesion weighs as much as a
            large one; an image without a labelled pixel is left out);
            ``'batch'``: one Dice over all the batch's pixels (every
            lesion pixel weighs the same, as in the pooled IoU).
            Default: ``'image'``.
        boundary_weight (float): Weight of the boundary-band term.
            Default: 1.0.
        interior_weight (float): Weight of the interior term. Default: 0.5.
        band_width (int): Band half-width in pixels. Default: 2.
        region_loss (str): ``'bce'`` or ``'dice'`` for the band and
            interior terms. Default: ``'bce'``.
        region_norm (str): What a BCE region term is averaged over:
            ``'region'`` (its own pixels) or ``'image'`` (all valid
            pixels, i.e. a per-pixel weight). Default: ``'region'``.
        use_sigmoid (bool, optional): None picks sigmoid / softmax from the
            number of channels; True or False insists on 1 or 2 channels.
        smooth (float): Dice smoothing constant; with 0, a Dice of
            ``0 / 0`` (nothing in its scope) reads 1. Default: 1.0.
        loss_weight (float): Weight of the whole loss. Default: 1.0.
        loss_name (str): Name in the loss dict; must start with ``loss_``.
            Default: ``'loss_bic'``.
    """

    def __init__(self,
                 bce_weight: float = 1.0,
                 dice_weight: float = 1.0,
                 dice_reduction: str = 'image',
                 boundary_weight: float = 1.0,
                 interior_weight: float = 0.5,
                 band_width: int = 2,
                 region_loss: str = 'bce',
                 region_norm: str = 'region',
                 use_sigmoid: Optional[bool] = None,
                 smooth: float = 1.0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_bic'):
        super().__init__()
        if region_loss not in ('bce', 'dice'):
            raise ModelArgumentError(f'region_loss must be bce or dice, '
                                     f'got {region_loss}')
        if dice_reduction not in ('image', 'batch'):
            raise ModelArgumentError(f'dice_reduction must be image or '
                                     f'batch, got {dice_reduction}')
        if region_norm not in ('region', 'image'):
            raise ModelArgumentError(f'region_norm must be region or image, '
                                     f'got {region_norm}')
        if region_norm == 'image' and region_loss != 'bce':
            raise ModelArgumentError(
                "region_norm='image' weights the BCE of the "
                "region's pixels; it needs region_loss='bce'")
        check_loss_name('BoundaryInteriorLoss', loss_name)
        check_loss_weights(
            'BoundaryInteriorLoss',
            bce_weight=bce_weight,
            dice_weight=dice_weight,
            boundary_weight=boundary_weight,
            interior_weight=interior_weight,
            smooth=smooth,
            loss_weight=loss_weight)
        if band_width < 1:
            raise ModelArgumentError('band_width must be >= 1')
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.dice_reduction = dice_reduction
        self.boundary_weight = boundary_weight
        self.interior_weight = interior_weight
        self.band_width = band_width
        self.region_loss = region_loss
        self.region_norm = region_norm
        self.use_sigmoid = use_sigmoid
        self.smooth = smooth
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def _lesion_logit(self, cls_score: Tensor) -> Tensor:
        channels = cls_score.shape[1]
        expected = {None: (1, 2), True: (1, ), False: (2, )}[self.use_sigmoid]
        if channels not in expected:
            # '1 or 2 channels', '1 channel', '2 channels'.
            choices = ' or '.join([*map(str, expected[:-1]),
                                   counted(expected[-1], 'channel')])
            raise ValueError(f'BoundaryInteriorLoss expects {choices}, '
                             f'got {channels}')
        return lesion_logit(cls_score, dim=1)

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: int = 255,
                **kwargs) -> Tensor:
        """Compute the loss.

        Args:
            cls_score (Tensor): Logits ``(N, C, H, W)``, C = 1 or 2.
            label (Tensor): Labels ``(N, H, W)``: 0, 1 or ``ignore_index``.
            weight (Tensor, optional): Per-pixel weights ``(N, H, W)`` for
                the BCE terms (mmseg passes them when a sampler is used).
            ignore_index (int): Label of unknown pixels. Default: 255.
            **kwargs: Other options mmseg's losses take; the loss is always
                its own mean, so ``reduction_override`` other than
                ``'mean'`` and ``avg_factor`` are refused.

        Returns:
            Tensor: The scalar loss.
        """
        check_loss_inputs('BoundaryInteriorLoss', cls_score, label, weight)
        check_loss_options('BoundaryInteriorLoss', kwargs)
        check_binary_labels('BoundaryInteriorLoss', label, ignore_index)
        # In float32: under mixed precision (train.py --amp) the logits
        # are float16, whose sums over an image overflow past 65504 (a
        # lesion of half a 256x256 image) and made the loss NaN.
        cls_score = cls_score.float()
        valid = label != ignore_index
        validf = valid.to(cls_score.dtype)
        target = ((label == 1) & valid).to(cls_score.dtype)
        # Ignored logits are replaced, so even inf/nan there cannot leak.
        logit = torch.where(valid, self._lesion_logit(cls_score),
                            torch.zeros((), dtype=cls_score.dtype,
                                        device=cls_score.device))
        prob = torch.sigmoid(logit) * validf
        bce_map = F.binary_cross_entropy_with_logits(
            logit, target, reduction='none')
        if weight is not None:
            bce_map = bce_map * weight

        loss = self.bce_weight * _masked_mean(bce_map, validf)
        loss = loss + self.dice_weight * _soft_dice_loss(
            prob, target, validf, self.smooth,
            per_image=self.dice_reduction == 'image')

        boundary, interior = boundary_interior_maps(target, self.band_width,
                                                    valid)
        for region, region_weight in ((boundary, self.boundary_weight),
                                      (interior, self.interior_weight)):
            if region_weight == 0:
                continue
            if self.region_norm == 'image':
                term = _masked_mean(bce_map * region, validf)
            elif self.region_loss == 'bce':
                term = _masked_mean(bce_map, region)
            else:
                term = _soft_dice_loss(prob, target, region, self.smooth)
            loss = loss + region_weight * term
        return self.loss_weight * loss

    @property
    def loss_name(self) -> str:
        """Key of this loss in the loss dict."""
        return self._loss_name
