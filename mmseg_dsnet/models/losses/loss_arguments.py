"""Checks of the arguments every loss of a decode head must satisfy."""
import math

import torch
from torch import nn

from ...utils.errors import ModelArgumentError


def check_loss_name(owner: str, name) -> None:
    """Refuse a loss name the runner would not train.

    mmseg stores each loss under its ``loss_name`` and mmengine adds to the
    total only the entries whose key contains ``loss``; DSNet's deep
    supervision copies those that start with ``loss``. A loss named
    ``'dice'`` was logged every iteration but never trained.

    Args:
        owner (str): Who has the loss, for the message.
        name (str): The loss name.

    Raises:
        ModelArgumentError: ``name`` does not start with ``loss_``.
    """
    if not isinstance(name, str) or not name.startswith('loss_'):
        raise ModelArgumentError(
            f'{owner}: loss_name must start with "loss_", got {name!r}: '
            'the runner trains only the losses named so (another name is '
            'logged but never trained)')


def check_loss_weights(owner: str, **weights) -> None:
    """Refuse a loss weight that is negative or not a finite number (a
    negative weight makes training maximise its term).

    Args:
        owner (str): Who has the weights, for the message.
        **weights: The weights by argument name.

    Raises:
        ModelArgumentError: Naming the first bad weight.
    """
    for name, value in weights.items():
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value < 0):
            raise ModelArgumentError(
                f'{owner}: {name} must be a finite number >= 0, '
                f'got {value!r}')


def check_head_losses(owner: str, losses, ignore_index=None) -> None:
    """:func:`check_loss_name` for every loss of a decode head's
    ``loss_decode``, mmseg's own (``CrossEntropyLoss``, ``DiceLoss``) too,
    and :func:`loss_ignore_index` for this package's losses.

    Args:
        owner (str): The head, for the message.
        losses (nn.Module | Iterable[nn.Module]): Its built losses.
        ignore_index (int, optional): The head's ``ignore_index``, which
            it passes to every loss.
    """
    if not isinstance(losses, (list, tuple, nn.ModuleList)):
        losses = [losses]
    for loss in losses:
        name = f'{owner} loss_decode {type(loss).__name__}'
        check_loss_name(name, getattr(loss, 'loss_name', None))
        # mmseg's DiceLoss reads its own ignore_index as a channel to drop.
        if ignore_index is not None and \
                type(loss).__module__.startswith('mmseg_dsnet.'):
            loss_ignore_index(name, getattr(loss, 'ignore_index', None),
                              ignore_index)


def loss_ignore_index(owner: str, own, given, default: int = 255) -> int:
    """The label a loss ignores: its own ``ignore_index`` or the one its
    caller passes (a decode head passes its own to every loss).

    A loss given ``ignore_index=0`` in a config whose head passes 255
    ignored 255 while the config read as ignoring 0.

    Args:
        owner (str): The loss, for the message.
        own (int, optional): The loss's ``ignore_index`` (None: not set).
        given (int, optional): The caller's.
        default (int): When neither is set. Default: 255.

    Returns:
        int: The label to ignore.

    Raises:
        ModelArgumentError: Both are set and differ.
    """
    if own is not None and given is not None and own != given:
        raise ModelArgumentError(
            f'{owner}: ignore_index={own!r} was given to the loss, but its '
            f'caller (the decode head) passes ignore_index={given!r}, '
            'which the loss would otherwise use: set the decode head\'s '
            'ignore_index, which it passes to every loss, and leave the '
            'loss\'s out')
    for value in (given, own):
        if value is not None:
            return value
    return default


def check_loss_inputs(owner: str, pred, label, weight=None) -> None:
    """Refuse logits and labels (and pixel weights) of shapes that do not
    pair pixel by pixel.

    The losses broadcast ``pred``'s lesion logit ``(N, H, W)`` against the
    labels: labels given as ``(N, 1, H, W)`` (a mask with its channel
    axis) made ``BinaryDiceLoss`` score every image against every other
    one, a wrong loss without an error; other losses failed deep inside
    with a broadcasting error.

    Args:
        owner (str): The loss, for the message.
        pred (Tensor): Logits, ``(N, C, H, W)``.
        label (Tensor): Labels, ``(N, H, W)``.
        weight (Tensor, optional): Per-pixel weights, ``(N, H, W)``.

    Raises:
        ModelArgumentError: The shapes do not fit.
    """
    if pred.dim() != 4:
        raise ModelArgumentError(
            f'{owner}: the logits must be (N, C, H, W), got shape '
            f'{tuple(pred.shape)}')
    expected = (pred.shape[0], ) + tuple(pred.shape[2:])
    for name, value in (('labels', label), ('weight', weight)):
        if value is not None and tuple(value.shape) != expected:
            raise ModelArgumentError(
                f'{owner}: the {name} must be (N, H, W) = {expected} to '
                f'match the logits {tuple(pred.shape)}, got '
                f'{tuple(value.shape)} (labels without a channel axis, '
                'at the logits\' size: resize the logits to the labels '
                'first)')


def check_binary_labels(owner: str, label, ignore_index: int) -> None:
    """Refuse labels other than 0 (background), 1 (lesion) and
    ``ignore_index``: the binary losses take every other value for
    background, so masks written as 0/2 (or 0/128) by a converter of the
    user's own trained on an all-background target without an error
    (the datasets check mask values at load, but not with
    ``check_masks=False``, nor mmseg's own dataset classes).

    A few elementwise comparisons and one ``any`` per call: nothing next
    to the loss itself. Skipped while a CUDA graph is captured or
    ``torch.compile`` traces (``fast_train.py``): reading the result
    waits for the device, which neither allows; the eager steps before
    the capture check the labels.

    Args:
        owner (str): The loss, for the message.
        label (Tensor): Labels, ``(N, H, W)``.
        ignore_index (int): The label of unknown pixels.

    Raises:
        MaskValueError: Naming the values found.
    """
    if torch.compiler.is_compiling() or (
            label.is_cuda and torch.cuda.is_current_stream_capturing()):
        return
    outside = (label != 0) & (label != 1) & (label != ignore_index)
    if not bool(outside.any()):
        return
    from ...datasets.sample_checks import MaskValueError
    from ...utils.messages import first_few
    values = label[outside].unique().tolist()
    raise MaskValueError(
        f'{owner}: the labels hold {first_few(values, 8)} besides 0 '
        f'(background), 1 (lesion) and {ignore_index} (ignore_index): '
        'each would be learned as background. The masks must hold 0 and '
        '1: tools/dataset_converters/isic.py writes them from the official '
        'download; convert masks of your own with, e.g., mask = (mask > '
        '0).astype(np.uint8), and keep the dataset\'s check_masks=True, '
        'which finds such masks when the data is loaded')


def check_loss_options(owner: str, options: dict) -> None:
    """Refuse the reduction options of mmseg's losses, which this
    package's losses take through ``**kwargs`` but do not apply: each
    returns its own scalar mean, so ``reduction_override='sum'`` (or
    ``'none'``, a per-pixel map) and ``avg_factor`` were answered with
    that mean without a word.

    Args:
        owner (str): The loss, for the message.
        options (dict): The keyword arguments the loss's ``forward`` got
            beyond its own.

    Raises:
        ModelArgumentError: ``reduction_override`` other than None or
            ``'mean'``, or an ``avg_factor``.
    """
    reduction = options.get('reduction_override')
    if reduction not in (None, 'mean'):
        raise ModelArgumentError(
            f'{owner}: reduction_override={reduction!r} is not supported: '
            'the loss is always its own mean (a scalar); leave '
            'reduction_override out')
    if options.get('avg_factor') is not None:
        raise ModelArgumentError(
            f'{owner}: avg_factor is not supported: the loss averages '
            'over its own pixels or images; leave avg_factor out')
