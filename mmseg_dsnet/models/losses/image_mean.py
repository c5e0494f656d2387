"""The batch mean of per-image loss values, over the images it scores."""
from torch import Tensor


def mean_of_scored_images(values: Tensor, scored: Tensor) -> Tensor:
    """Mean of per-image ``values`` over the images that have pixels to
    score.

    An image without one (all ``ignore_index``, all of pixel weight 0, or
    no pixel in a region) reads as a perfect 0 in a per-image loss;
    counted in the mean, it scaled the other images' loss and gradient
    down by the share of such images in the batch, where the pixel-wise
    terms (BCE over the labelled pixels) leave it out.

    Args:
        values (Tensor): ``(N, )`` per-image losses.
        scored (Tensor): ``(N, )`` bool, True for the images scored.

    Returns:
        Tensor: Scalar mean; 0 (still part of the graph) when no image is
        scored.
    """
    scored = scored.to(values.dtype)
    return (values * scored).sum() / scored.sum().clamp(min=1)
