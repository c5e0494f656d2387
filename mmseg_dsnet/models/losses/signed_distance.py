"""Signed distance to the lesion boundary, as a training target.

A mask says only which side of the boundary a pixel lies on; its signed
distance map also says how far, so a regression onto it asks the network
for the lesion's shape as a whole (how far the rim lies from every pixel),
which the per-pixel losses leave implicit.
"""
import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from torch import Tensor


def signed_distance_maps(labels: Tensor, ignore_index: int = 255) -> Tensor:
    """Normalised signed distance of every pixel to the lesion boundary.

    Inside the lesion the value is the Euclidean distance to the nearest
    background pixel divided by its largest value in that image (so 1 at
    the lesion's most interior pixel), outside it minus the distance to the
    nearest lesion pixel divided by the largest such distance: values in
    ``[-1, 1]``, about 0 at the boundary. An image without lesion is -1
    everywhere, one that is all lesion +1. Ignored pixels count as
    background here; callers leave them out of the loss.

    Args:
        labels (Tensor): ``(N, H, W)`` or ``(N, 1, H, W)`` integer labels,
            1 = lesion.
        ignore_index (int): The label of pixels to ignore. Default: 255.

    Returns:
        Tensor: ``(N, 1, H, W)`` float32 maps on the labels' device.
    """
    if labels.dim() == 4:
        labels = labels[:, 0]
    lesion = (labels == 1).cpu().numpy()
    maps = np.empty(lesion.shape, dtype=np.float32)
    for index, mask in enumerate(lesion):
        if not mask.any():
            maps[index] = -1.0
            continue
        if mask.all():
            maps[index] = 1.0
            continue
        inside = distance_transform_edt(mask)
        outside = distance_transform_edt(~mask)
        maps[index] = inside / inside.max() - outside / outside.max()
    return torch.from_numpy(maps)[:, None].to(labels.device)
