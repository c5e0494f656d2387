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
    ``[-1, 1]``, about 0 at the boundary. An image without lesion is -1 on
    every labelled pixel, one whose labelled pixels are all lesion +1.

    Pixels equal to ``ignore_index`` (the corners ``RandomRotate`` pads
    with ``seg_pad_val``) are neither lesion nor background: they are not
    the background a lesion's distance is measured to (a lesion running
    into them has no rim there, as the image border makes none) nor among
    the pixels whose largest distance normalises the map. They hold 0;
    callers leave them out of the loss.

    Args:
        labels (Tensor): ``(N, H, W)`` or ``(N, 1, H, W)`` integer labels,
            1 = lesion.
        ignore_index (int): The label of pixels to ignore. Default: 255.

    Returns:
        Tensor: ``(N, 1, H, W)`` float32 maps on the labels' device.
    """
    if labels.dim() == 4:
        labels = labels[:, 0]
    labels_np = labels.cpu().numpy()
    lesion = labels_np == 1
    background = ~lesion & (labels_np != ignore_index)
    maps = np.zeros(lesion.shape, dtype=np.float32)
    for index, (inside, outside) in enumerate(zip(lesion, background)):
        if not inside.any():
            maps[index][outside] = -1.0
            continue
        if not outside.any():
            maps[index][inside] = 1.0
            continue
        # Distances to the nearest zero: the labelled pixels of the other
        # side only (the image border is no zero either).
        to_background = distance_transform_edt(~outside)[inside]
        to_lesion = distance_transform_edt(~inside)[outside]
        maps[index][inside] = to_background / to_background.max()
        maps[index][outside] = -to_lesion / to_lesion.max()
    return torch.from_numpy(maps)[:, None].to(labels.device)
