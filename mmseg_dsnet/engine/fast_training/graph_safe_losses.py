"""Sync-free stand-ins for the two mmseg loss helpers that read the GPU.

mmseg's ``accuracy`` (logged as ``acc_seg``) selects valid pixels by boolean
indexing, and ``binary_cross_entropy`` asserts on ``label.max()`` and takes
``.item()`` for ``avg_non_ignore``. Each of these waits for the GPU, which
is not allowed inside a CUDA graph. The functions here compute the same
values with masks instead; :func:`graph_safe_losses` swaps them in for the
duration of a training run.
"""
import contextlib
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_EPS = torch.finfo(torch.float32).eps


def masked_accuracy(pred: Tensor,
                    target: Tensor,
                    topk=1,
                    thresh: Optional[float] = None,
                    ignore_index: Optional[int] = None) -> Tensor:
    """Top-1 pixel accuracy in percent over non-ignored pixels.

    Same value as ``mmseg.models.losses.accuracy(pred, target, topk=1)``
    without boolean indexing.
    """
    if topk not in (1, (1, )):
        raise ValueError('masked_accuracy supports topk=1 only')
    value, label = pred.max(dim=1)
    correct = label == target
    if thresh is not None:
        correct = correct & (value > thresh)
    valid = torch.ones_like(correct) if ignore_index is None else \
        target != ignore_index
    correct = (correct & valid).float().sum().reshape(1) + _EPS
    return correct * 100.0 / (valid.float().sum() + _EPS)


def masked_binary_cross_entropy(pred: Tensor,
                                label: Tensor,
                                weight: Optional[Tensor] = None,
                                reduction: str = 'mean',
                                avg_factor=None,
                                class_weight=None,
                                ignore_index: int = -100,
                                avg_non_ignore: bool = False,
                                **kwargs) -> Tensor:
    """Sigmoid BCE of a one-channel ``(N, 1, H, W)`` logit map.

    Same value as mmseg's ``binary_cross_entropy`` for that shape: pixels
    with ``label < 0`` or ``label == ignore_index`` get zero weight; the mean
    is over all pixels, or over the valid ones with ``avg_non_ignore``. The
    label check (``label <= 1``) is left to the CPU pipeline.
    """
    if pred.dim() != 4 or pred.shape[1] != 1 or label.dim() != 3:
        raise ValueError('masked_binary_cross_entropy expects (N, 1, H, W) '
                         f'logits and (N, H, W) labels, got '
                         f'{tuple(pred.shape)} and {tuple(label.shape)}')
    pred = pred[:, 0]
    valid = ((label >= 0) & (label != ignore_index)).float()
    weight = valid if weight is None else weight.float() * valid
    loss = F.binary_cross_entropy_with_logits(
        pred, label.float(), pos_weight=class_weight, reduction='none')
    loss = loss * weight
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    if avg_factor is None and avg_non_ignore:
        avg_factor = valid.sum()
    if avg_factor is None:
        return loss.mean()
    return loss.sum() / (avg_factor + _EPS)


@contextlib.contextmanager
def graph_safe_losses(model: nn.Module) -> Iterator[None]:
    """Use the sync-free helpers in ``model`` while the context is open.

    Replaces the ``accuracy`` used by mmseg's decode heads and the
    ``cls_criterion`` of every sigmoid ``CrossEntropyLoss`` module; both are
    restored on exit.
    """
    from mmseg.models.decode_heads import decode_head
    from mmseg.models.losses import CrossEntropyLoss

    patched = []
    for module in model.modules():
        if isinstance(module, CrossEntropyLoss) and module.use_sigmoid:
            patched.append((module, module.cls_criterion))
            module.cls_criterion = masked_binary_cross_entropy
    original_accuracy = decode_head.accuracy
    decode_head.accuracy = masked_accuracy
    try:
        yield
    finally:
        decode_head.accuracy = original_accuracy
        for module, criterion in patched:
            module.cls_criterion = criterion
