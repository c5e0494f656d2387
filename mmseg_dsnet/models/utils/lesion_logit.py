"""The lesion logit of a binary segmentation output, the one way.

Our heads give either one channel (sigmoid: the lesion logit itself) or two
(softmax over background and lesion). For two channels the softmax lesion
probability is ``sigmoid(l_lesion - l_background)``, so both cases reduce to
one lesion logit; losses, the metric, parity checks and mask writing all
use it. Works on numpy arrays and torch tensors alike.
"""
import math

from ...utils.errors import ModelArgumentError, UserError


class ThresholdError(UserError, ValueError):
    """A lesion probability threshold that is not a number in (0, 1); the
    message names the value. Also a ``ValueError``."""


def check_threshold(threshold, what: str = 'threshold') -> float:
    """Refuse a lesion probability threshold that is not in (0, 1).

    Args:
        threshold (float): The threshold given.
        what (str): Its name in the message. Default: ``'threshold'``.

    Returns:
        float: ``threshold`` as a float.

    Raises:
        ThresholdError: A bool, a value that is not a number, or one
            outside (0, 1) (NaN included).
    """
    # A bool is an int to Python: True would read as 1.0.
    if not isinstance(threshold, bool):
        try:
            value = float(threshold)
        except (TypeError, ValueError):
            value = None
        # NaN compares False with everything, so it fails this test too.
        if value is not None and 0.0 < value < 1.0:
            return value
    raise ThresholdError(f'{what} must be a lesion probability in (0, 1), '
                         f'got {threshold!r}')


def threshold_text(threshold: float) -> str:
    """``threshold`` as messages and records show it: short (``0.5``), but
    never rounded to another value (``:g`` showed 0.4999999 as 0.5, so
    two thresholds a refusal told apart read the same)."""
    short = f'{float(threshold):g}'
    return short if float(short) == float(threshold) else repr(
        float(threshold))


def check_head_threshold(head: str, out_channels: int, threshold) -> None:
    """Refuse a decode head ``threshold`` that its masks would not use.

    With one output channel mmseg's masks are ``sigmoid > threshold``, so
    the threshold must be a probability in (0, 1) (1.5 gave all-background
    masks, 0 all-lesion ones). With two, mmseg takes the ``argmax`` and
    ignores ``threshold``, while ``LesionInferencer`` (``tools/infer.py``)
    reads it as the model's own: the two tools' masks differed.

    Args:
        head (str): The head's name, for the message.
        out_channels (int): The head's output channels.
        threshold (float | None): The head's threshold (after mmseg's
            default of 0.3 for one channel).

    Raises:
        ThresholdError: One channel and a threshold outside (0, 1).
        ModelArgumentError: Two channels and a threshold other than 0.5.
    """
    if out_channels == 1:
        check_threshold(threshold, f'{head} threshold')
    elif threshold is not None and threshold != 0.5:
        raise ModelArgumentError(
            f'{head}: threshold={threshold!r} has no effect with '
            f'out_channels={out_channels}: the masks are the argmax of the '
            'channels (lesion probability above 0.5); set out_channels=1 to '
            'threshold the sigmoid, or leave threshold unset')


def lesion_logit(logits, dim: int = 1, lesion_index: int = 1):
    """The lesion logit of 1- or 2-channel outputs (channels on ``dim``).

    Args:
        logits (Tensor | np.ndarray): Logits with 1 or 2 channels on
            ``dim``.
        dim (int): The channel axis, e.g. 1 for ``(N, C, H, W)``, 0 for
            ``(C, H, W)``. Default: 1.
        lesion_index (int): Lesion channel of 2-channel logits (the other
            is the background). Default: 1.

    Returns:
        Tensor | np.ndarray: ``logits`` without the channel axis:
        ``l[0]`` for 1 channel, ``l[lesion] - l[background]`` for 2. The
        lesion probability is its sigmoid in both cases.

    Raises:
        ValueError: Another number of channels, or ``lesion_index`` not 0
            or 1 for 2 channels.
    """
    dim = dim % len(logits.shape)
    channels = logits.shape[dim]

    def channel(index):
        return logits[(slice(None), ) * dim + (index, )]

    if channels == 1:
        return channel(0)
    if channels == 2:
        if lesion_index not in (0, 1):
            raise ValueError(f'lesion_index must be 0 or 1 for 2-channel '
                             f'logits, got {lesion_index}')
        return channel(lesion_index) - channel(1 - lesion_index)
    raise ValueError('lesion outputs have 1 (sigmoid) or 2 (softmax) '
                     f'channels, got {channels}')


def decision_map(logits, threshold: float = 0.5, dim: int = 0):
    """A map that is positive exactly where the lesion is predicted.

    Args:
        logits (Tensor | np.ndarray): Logits with 1 or 2 channels on
            ``dim`` (default 0: one image's ``(C, H, W)``).
        threshold (float): Lesion probability above which a pixel is
            lesion: the sigmoid of 1-channel logits, the softmax lesion
            probability of 2-channel ones (as ``LesionMetric`` scores
            them; 0.5 is the argmax, ties going to the background).
        dim (int): The channel axis. Default: 0.

    Returns:
        Tensor | np.ndarray: ``lesion_logit - log(t / (1 - t))``, linear in
        the logits, so resizing the map equals resizing the logits first.

    Raises:
        ThresholdError: ``threshold`` is not in (0, 1).
    """
    threshold = check_threshold(threshold)
    return lesion_logit(logits, dim) - math.log(threshold / (1 - threshold))


def mean_probability_logits(views, dim: int = 1, eps: float = 1e-7):
    """Logits whose lesion probability is the mean of several outputs'.

    Used to merge test-time augmented views: probabilities, not logits,
    are averaged (a confident view does not outvote the others without
    bound).

    Args:
        views (Sequence[np.ndarray]): Outputs of one shape, 1 or 2
            channels on ``dim``.
        dim (int): The channel axis. Default: 1.
        eps (float): The mean is clipped to ``[eps, 1 - eps]`` so that the
            logits stay finite. Default: 1e-7.

    Returns:
        np.ndarray: Of the views' shape: the logit of the mean probability
        (1 channel), or the log-probabilities of background and lesion
        (2 channels, whose softmax is the mean).
    """
    import numpy as np
    probability = np.mean([
        1 / (1 + np.exp(-lesion_logit(view.astype(np.float64), dim)))
        for view in views
    ], axis=0).clip(eps, 1 - eps)
    if views[0].shape[dim] == 1:
        merged = np.expand_dims(np.log(probability / (1 - probability)), dim)
    else:
        merged = np.stack([np.log1p(-probability), np.log(probability)], dim)
    return merged.astype(views[0].dtype)


def mean_view_probability(probabilities):
    """The lesion probability of test-time augmented views merged: their
    mean, pixel by pixel.

    The one merge of ``tools/test.py --tta``
    (:class:`~mmseg_dsnet.models.segmentors.LesionTTAModel`) and
    ``tools/infer.py --tta`` (:func:`mmseg_dsnet.apis.masks.views_to_mask`).
    Both merge each view's probability at the size the mask is made at
    (the original image's), after its logits were resized there: the mean
    of resized probabilities is not the resized mean (the sigmoid is not
    linear), and merging at the model size first changed rim pixels of
    infer.py's masks.

    Args:
        probabilities (Sequence[Tensor]): One ``(H, W)`` probability map
            per view, all of one shape, already flipped back.

    Returns:
        Tensor: ``(H, W)`` float32 mean probability.
    """
    import torch
    return torch.stack([p.float() for p in probabilities]).mean(0)


def stored_lesion_probability(seg_logits,
                              lesion_index: int = 1,
                              single_channel_input: str = 'probability'):
    """The ``(H, W)`` lesion probability of one sample's ``seg_logits``.

    MMSegmentation 1.x stores a 1-channel output as sigmoid probabilities
    (``postprocess_result``) and more channels as logits; the metric and the
    test-time augmentation read them back through this one function.

    Args:
        seg_logits (Tensor): ``(C, H, W)``, as in ``SegDataSample``.
        lesion_index (int): The lesion channel of 2 or more channels;
            with 1 channel, the lesion label (0 or 1) of the masks: the
            channel is the probability of label 1, so lesion 0's is its
            complement. Default: 1.
        single_channel_input (str): What 1 channel holds: 'probability'
            (mmseg's segmentors) or 'logit'. Default: 'probability'.

    Returns:
        Tensor: ``(H, W)`` float32 probabilities.

    Raises:
        ValueError: Not ``(C, H, W)``; 1-channel probabilities outside
            ``[0, 1]`` (raw logits by mistake); ``lesion_index`` not a
            channel.
    """
    logits = seg_logits.float()
    if logits.dim() != 3:
        raise ValueError('seg_logits must be C x H x W, got shape '
                         f'{tuple(logits.shape)}')
    num_channels = logits.shape[0]
    if num_channels == 1:
        if lesion_index not in (0, 1):
            raise ValueError(f'lesion_index {lesion_index} is not a label '
                             'of a 1-channel (binary) output')
        if single_channel_input == 'logit':
            probability = logits[0].sigmoid()
        elif logits.min() < 0 or logits.max() > 1:
            raise ValueError(
                '1-channel seg_logits hold values outside [0, 1]; they '
                'look like raw logits: set single_channel_input="logit"')
        else:
            probability = logits[0]
        # mmseg's 1-channel output is the probability of label 1 (its
        # masks are ``p > threshold``): read as lesion 0's, a perfect
        # model scored 0 everywhere.
        return probability if lesion_index == 1 else 1 - probability
    if not 0 <= lesion_index < num_channels:
        raise ValueError(f'lesion_index {lesion_index} is not a channel of '
                         f'{num_channels}-channel seg_logits')
    if num_channels == 2:
        # The softmax lesion probability: sigmoid(l_lesion - l_other).
        return lesion_logit(logits, 0, lesion_index).sigmoid()
    return logits.softmax(dim=0)[lesion_index]
