"""The lesion logit of a binary segmentation output, the one way.

Our heads give either one channel (sigmoid: the lesion logit itself) or two
(softmax over background and lesion). For two channels the softmax lesion
probability is ``sigmoid(l_lesion - l_background)``, so both cases reduce to
one lesion logit; losses, the metric, parity checks and mask writing all
use it. Works on numpy arrays and torch tensors alike.
"""
import math


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
        threshold (float): Probability threshold of 1-channel (sigmoid)
            logits: lesion where ``sigmoid(logit) > threshold``. Ignored for
            2 channels, where the lesion wins the argmax (ties go to the
            background, as ``argmax`` does).
        dim (int): The channel axis. Default: 0.

    Returns:
        Tensor | np.ndarray: ``logit - log(t / (1 - t))`` for 1 channel,
        the lesion logit for 2. Both are linear in the logits, so resizing
        the map equals resizing the logits first.
    """
    logit = lesion_logit(logits, dim)
    if logits.shape[dim % len(logits.shape)] == 2:
        return logit
    if not 0.0 < threshold < 1.0:
        raise ValueError(f'threshold must be in (0, 1), got {threshold}')
    return logit - math.log(threshold / (1 - threshold))
