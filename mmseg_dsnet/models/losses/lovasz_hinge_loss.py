"""Lovasz hinge loss: a convex surrogate of the lesion IoU for binary heads.

Berman, Rannen Triki and Blaschko, "The Lovasz-Softmax loss: a tractable
surrogate for the optimization of the intersection-over-union measure in
neural networks", CVPR 2018. The Jaccard loss of a set of mispredicted
pixels is submodular; its Lovasz extension, evaluated at the hinge errors
``max(0, 1 - s * l)`` (``s`` = +1 for lesion, -1 for background, ``l`` the
lesion logit), is a piecewise-linear function of the logits whose value is
the dot product of the errors sorted in decreasing order with the
increments of the Jaccard loss along that order.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from ..utils.lesion_logit import lesion_logit
from .image_mean import mean_of_scored_images
from .loss_arguments import (check_binary_labels, check_loss_inputs,
                             check_loss_name, check_loss_options,
                             check_loss_weights, loss_ignore_index)


def jaccard_increments(labels_sorted: Tensor) -> Tensor:
    """Increments of the Jaccard loss as the pixels of a sorted order are
    counted wrong one after the other.

    After the first ``k`` pixels are counted wrong, the lesion pixels among
    them are missed and the background ones are false alarms:
    ``J_k = 1 - (P - missed_k) / (P + false_k)`` with ``P`` the number of
    lesion pixels. Returned: ``J_1 - J_0, J_2 - J_1, ...`` (``J_0 = 0``).

    Args:
        labels_sorted (Tensor): 0/1 labels, 1-D, in the order of
            decreasing error.

    Returns:
        Tensor: Float increments, same length.
    """
    labels = labels_sorted.float()
    positives = labels.sum()
    missed = labels.cumsum(0)
    false_alarms = (1 - labels).cumsum(0)
    # The union is >= 1 from the first pixel on: either it is a lesion
    # pixel (P >= 1) or a false alarm.
    jaccard = 1 - (positives - missed) / (positives + false_alarms)
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def lovasz_hinge(logits: Tensor, labels: Tensor) -> Tensor:
    """The Lovasz hinge of flat lesion logits against 0/1 labels.

    Args:
        logits (Tensor): Lesion logits, 1-D.
        labels (Tensor): 0/1 labels, 1-D, same length.

    Returns:
        Tensor: Scalar loss; 0 for no pixels.
    """
    if logits.numel() == 0:
        return logits.sum()
    signs = 2 * labels.to(logits.dtype) - 1
    errors = 1 - logits * signs
    errors_sorted, order = torch.sort(errors, descending=True)
    # The increments depend only on the order, not on the logits' values.
    increments = jaccard_increments(labels[order])
    return torch.dot(F.relu(errors_sorted), increments.to(logits.dtype))


@MODELS.register_module()
class LovaszHingeLoss(nn.Module):
    """Lovasz hinge of the lesion logit, over the batch or per image.

    With ``per_image=False`` the surrogate is of the IoU pooled over the
    batch's pixels, as the leaderboard's pooled lesion IoU pools over the
    test set; with ``per_image=True`` it is the mean over the images of each
    image's own (over the images with a pixel that is not ignored). One-
    and two-channel heads are scored on the lesion logit
    (:func:`~mmseg_dsnet.models.utils.lesion_logit.lesion_logit`); pixels
    equal to ``ignore_index`` are left out.

    Args:
        per_image (bool): One surrogate per image, averaged. Default: False.
        loss_weight (float): Multiplier of the loss. Default: 1.0.
        ignore_index (int, optional): Label value to ignore. Default:
            None: the one the caller passes (a decode head passes its
            own), else 255. A value that differs from the caller's is
            refused.
        loss_name (str): Key of the loss in the loss dict; must start with
            ``loss_``. Default: ``'loss_lovasz'``.
    """

    def __init__(self,
                 per_image: bool = False,
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = None,
                 loss_name: str = 'loss_lovasz') -> None:
        super().__init__()
        check_loss_name('LovaszHingeLoss', loss_name)
        check_loss_weights('LovaszHingeLoss', loss_weight=loss_weight)
        self.per_image = per_image
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
            weight (Tensor, optional): Per-pixel weights ``(N, H, W)``;
                the Lovasz extension has none, so pixels of weight 0 are
                left out and the rest count alike.
            ignore_index (int, optional): The caller's (a decode head's);
                must equal the constructor's when both are set.
            **kwargs: Other options mmseg's losses take; the loss is always
                its own mean, so ``reduction_override`` other than
                ``'mean'`` and ``avg_factor`` are refused.

        Returns:
            Tensor: Scalar loss.
        """
        check_loss_inputs('LovaszHingeLoss', pred, target, weight)
        check_loss_options('LovaszHingeLoss', kwargs)
        # In float32, as the other losses (float16 sums overflow).
        pred = pred.float()
        ignore_index = loss_ignore_index('LovaszHingeLoss', self.ignore_index,
                                         ignore_index)
        check_binary_labels('LovaszHingeLoss', target, ignore_index)
        logits = lesion_logit(pred, dim=1)
        valid = target != ignore_index
        if weight is not None:
            valid = valid & (weight > 0)
        labels = target == 1
        if self.per_image:
            loss = mean_of_scored_images(
                torch.stack([
                    lovasz_hinge(logit[keep], label[keep])
                    for logit, label, keep in zip(logits, labels, valid)
                ]), valid.flatten(1).any(1))
        else:
            loss = lovasz_hinge(logits[valid], labels[valid])
        return self.loss_weight * loss

    @property
    def loss_name(self) -> str:
        """Key of this loss in the loss dict."""
        return self._loss_name
