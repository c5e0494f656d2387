"""Soft Dice loss on the lesion (foreground) class of binary heads."""
from typing import Optional

import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from ..utils.lesion_logit import lesion_logit
from .image_mean import mean_of_scored_images
from .loss_arguments import (check_binary_labels, check_loss_inputs,
                             check_loss_name, check_loss_options,
                             check_loss_weights, loss_ignore_index)


def soft_dice(intersection: Tensor, total: Tensor, smooth: float) -> Tensor:
    """``(2 * intersection + smooth) / (total + smooth)``, elementwise, with
    ``0 / 0`` (``smooth=0`` and nothing in the scope) read as 1.

    With ``smooth=0`` an image without a pixel to score (all
    ``ignore_index``, or no pixel in a region term's region) has a Dice of
    ``0 / 0``; the mean over the scored images weighs it 0, but
    ``0 * NaN`` is NaN, so a NaN there would make the loss and every
    gradient of the batch NaN.

    Args:
        intersection (Tensor): ``sum(p * t)`` per image (or for the batch).
        total (Tensor): ``sum(p) + sum(t)``, of the same shape.
        smooth (float): Additive smoothing of numerator and denominator.

    Returns:
        Tensor: The soft Dice, in [0, 1] where nothing is NaN.
    """
    # Where the denominator is 0 the numerator is too: both become 1.
    empty = (total + smooth == 0).to(total.dtype)
    return (2 * intersection + smooth + empty) / (total + smooth + empty)


@MODELS.register_module()
class BinaryDiceLoss(nn.Module):
    """``1 - soft Dice`` of the lesion probability, per image, batch mean.

    ``Dice = (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth)`` over
    the valid pixels of each image, where ``p`` is the lesion probability
    and ``t`` the 0/1 label (``0 / 0``, with ``smooth=0``, reads 1); the
    mean is over the images that have a valid pixel (of weight above 0).
    This is the Dice half of the "BceDice" loss of the lightweight
    skin-lesion literature (MALUNet, EGE-UNet), which uses ``smooth = 1``.

    Unlike mmseg's ``DiceLoss`` with a one-channel head, it always scores the
    lesion class: with ``out_channels=1`` the probability is the sigmoid of
    the logit; with two channels it is the softmax probability of channel 1.
    Pixels equal to ``ignore_index`` are left out.

    Args:
        smooth (float): Additive smoothing of numerator and denominator.
            Default: 1.0.
        loss_weight (float): Multiplier of the loss. Default: 1.0.
        ignore_index (int, optional): Label value to ignore. Default:
            None: the one the caller passes (a decode head passes its
            own), else 255. A value that differs from the caller's is
            refused.
        loss_name (str): Key of the loss in the loss dict; must start with
            ``loss_``. Default: ``'loss_dice'``.
    """

    def __init__(self,
                 smooth: float = 1.0,
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = None,
                 loss_name: str = 'loss_dice') -> None:
        super().__init__()
        check_loss_name('BinaryDiceLoss', loss_name)
        check_loss_weights('BinaryDiceLoss', smooth=smooth,
                           loss_weight=loss_weight)
        self.smooth = smooth
        self.loss_weight = loss_weight
        self.ignore_index = ignore_index
        self._loss_name = loss_name

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Tensor = None,
                ignore_index: int = None,
                **kwargs) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): Logits, ``(N, 1, H, W)`` or ``(N, 2, H, W)``.
            target (Tensor): Labels ``(N, H, W)`` with values 0, 1 or
                ``ignore_index``.
            weight (Tensor, optional): Per-pixel weights ``(N, H, W)``.
            ignore_index (int, optional): The caller's (a decode head's);
                must equal the constructor's when both are set.
            **kwargs: Other options mmseg's losses take; the loss is always
                its own mean, so ``reduction_override`` other than
                ``'mean'`` and ``avg_factor`` are refused.

        Returns:
            Tensor: Scalar loss.
        """
        check_loss_inputs('BinaryDiceLoss', pred, target, weight)
        check_loss_options('BinaryDiceLoss', kwargs)
        # In float32: float16 sums over an image overflow (a NaN loss).
        pred = pred.float()
        ignore_index = loss_ignore_index('BinaryDiceLoss', self.ignore_index,
                                         ignore_index)
        check_binary_labels('BinaryDiceLoss', target, ignore_index)
        if pred.shape[1] not in (1, 2):
            raise ValueError('BinaryDiceLoss needs 1 or 2 channels, got '
                             f'{pred.shape[1]}')
        # Softmax over 2 channels: lesion probability sigmoid(l1 - l0).
        prob = lesion_logit(pred, dim=1).sigmoid()
        valid = (target != ignore_index).to(prob.dtype)
        if weight is not None:
            valid = valid * weight.to(prob.dtype)
        label = (target == 1).to(prob.dtype)
        # Each pixel's weight counts once in the overlap, as in the totals
        # (weighting both factors made it count squared: Dice above 1).
        intersection = (prob * label * valid).flatten(1).sum(1)
        total = (prob * valid).flatten(1).sum(1) + \
            (label * valid).flatten(1).sum(1)
        dice = soft_dice(intersection, total, self.smooth)
        return self.loss_weight * mean_of_scored_images(
            1 - dice, valid.flatten(1).sum(1) > 0)

    @property
    def loss_name(self) -> str:
        """Key of this loss in the loss dict."""
        return self._loss_name
