"""From model logits to lesion masks and overlay pictures, at any size.

The model runs at a fixed size (256x256); its logits are brought back to
each image's original size by bilinear interpolation (half-pixel centres, as
``torch.nn.functional.interpolate(..., align_corners=False)`` and OpenCV's
``INTER_LINEAR``), then thresholded. Interpolation is separable and linear,
so it is done on one *decision map* (positive = lesion,
:func:`mmseg_dsnet.models.utils.decision_map`) in bands of rows:
a 10000x10000 mask never needs a 10000x10000 float array. Test-time
augmented views are resized one by one and merged as probabilities at the
output size (:func:`views_to_mask`), as ``tools/test.py --tta`` merges
them.
"""
import numbers
import os.path as osp
from typing import Sequence, Tuple

import cv2
import numpy as np

from ..utils.fileio import atomic_write

# Rows of the output interpolated at once (bounds the float buffer).
CHUNK_ROWS = 512


def _linear_taps(out_size: int, in_size: int):
    """Source indices and weights of half-pixel bilinear resampling."""
    scale = in_size / out_size
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    src = np.maximum(src, 0.0)
    low = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    weight = (src - low).astype(np.float32)
    return low, high, weight


def _check_size(size) -> Tuple[int, int]:
    """``size`` as ``(height, width)`` of two whole numbers of at least 1
    (``int()`` cut ``(10.7, 8.2)`` to 10x8 without a word)."""
    try:
        height, width = size
    except (TypeError, ValueError):
        height = width = None
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
               and v >= 1 for v in (height, width)):
        raise ValueError(f'invalid output size {size!r}: give (height, '
                         'width), two whole numbers of at least 1 (the '
                         "image's shape[:2])")
    return int(height), int(width)


def _resized_bands(maps: Sequence[np.ndarray], size: Tuple[int, int],
                   chunk_rows: int):
    """Yield ``(start, stop, bands)``: rows ``start:stop`` of each of
    ``maps`` bilinearly resized to ``size`` (float32)."""
    height, width = size
    maps = [np.asarray(item, dtype=np.float32) for item in maps]
    in_h, in_w = maps[0].shape
    col_low, col_high, col_weight = _linear_taps(width, in_w)
    # Horizontal pass on the small maps: (in_h, width).
    rows = [item[:, col_low] * (1 - col_weight) +
            item[:, col_high] * col_weight for item in maps]
    row_low, row_high, row_weight = _linear_taps(height, in_h)
    for start in range(0, height, chunk_rows):
        stop = min(start + chunk_rows, height)
        weight = row_weight[start:stop, None]
        yield start, stop, [
            item[row_low[start:stop]] * (1 - weight) +
            item[row_high[start:stop]] * weight for item in rows
        ]


def resize_to_mask(decision: np.ndarray,
                   size: Tuple[int, int],
                   chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Bilinearly resize a decision map to ``size`` and threshold it at 0.

    Args:
        decision (np.ndarray): ``(h, w)`` decision map (positive = lesion).
        size (tuple[int, int]): ``(height, width)`` of the output.
        chunk_rows (int): Output rows computed at once.

    Returns:
        np.ndarray: ``(height, width)`` uint8 mask, 1 = lesion.
    """
    height, width = _check_size(size)
    decision = np.asarray(decision, dtype=np.float32)
    # A (1, h, w) map (one image of LesionInferencer.logits) failed with
    # "too many values to unpack" inside the resampling.
    if decision.ndim != 2 or 0 in decision.shape:
        raise ValueError(
            f'resize_to_mask: the decision map has shape {decision.shape}; '
            'it takes one (h, w) map (positive = lesion): for logits of '
            'shape (C, h, w) make it with '
            'mmseg_dsnet.models.utils.decision_map(logits, threshold), or '
            "use LesionInferencer.predict, which gives masks at the image's "
            'size')
    if decision.shape == (height, width):
        return (decision > 0).astype(np.uint8)
    mask = np.empty((height, width), dtype=np.uint8)
    for start, stop, (band, ) in _resized_bands([decision], (height, width),
                                                chunk_rows):
        np.greater(band, 0, out=mask[start:stop], casting='unsafe')
    return mask


def views_to_mask(views: Sequence[np.ndarray],
                  size: Tuple[int, int],
                  threshold: float,
                  chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """The mask of the mean lesion probability of test-time augmented
    views, at ``size``, as ``tools/test.py --tta`` makes it: each view's
    lesion logit is resized to ``size``, turned into a probability, and
    the probabilities are merged there
    (:func:`~mmseg_dsnet.models.utils.lesion_logit.mean_view_probability`,
    LesionTTAModel's merge) and thresholded. One view is
    :func:`resize_to_mask` of its decision map (the same mask).

    Args:
        views (Sequence[np.ndarray]): ``(C, h, w)`` logits of each view at
            the model size (1 or 2 channels), flipped back.
        size (tuple[int, int]): ``(height, width)`` of the output.
        threshold (float): Lesion where the mean probability is above it.
        chunk_rows (int): Output rows computed at once.

    Returns:
        np.ndarray: ``(height, width)`` uint8 mask, 1 = lesion.
    """
    import torch

    from ..models.utils.lesion_logit import (decision_map, lesion_logit,
                                             mean_view_probability)
    if len(views) == 1:
        return resize_to_mask(decision_map(views[0], threshold), size,
                              chunk_rows)
    height, width = _check_size(size)
    logits = [lesion_logit(np.asarray(view, dtype=np.float32), 0)
              for view in views]
    mask = np.empty((height, width), dtype=np.uint8)
    for start, stop, bands in _resized_bands(logits, (height, width),
                                             chunk_rows):
        # The sigmoid of torch, as mmseg's segmentor applies it.
        merged = mean_view_probability(
            [torch.from_numpy(band).sigmoid() for band in bands])
        mask[start:stop] = (merged > threshold).numpy()
    return mask


def draw_overlay(rgb: np.ndarray,
                 mask: np.ndarray,
                 max_side: int = 4096,
                 color: Tuple[int, int, int] = (255, 64, 32),
                 alpha: float = 0.35) -> np.ndarray:
    """The image with the lesion tinted and its contour drawn.

    Args:
        rgb (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        mask (np.ndarray): ``(H, W)`` integer or bool mask, nonzero =
            lesion (:meth:`LesionInferencer.predict`'s 0/1, or 0/255).
        max_side (int): Overlays of larger images are drawn downsized so
            their longer side is ``max_side`` (the mask is not affected).
        color (tuple[int, int, int]): RGB tint and contour colour.
        alpha (float): Tint opacity inside the lesion.

    Returns:
        np.ndarray: ``(h, w, 3)`` uint8 RGB overlay.

    Raises:
        ImageArrayError: ``rgb`` is not an ``(H, W, 3)`` uint8 array, or
            ``mask`` is not an ``(H, W)`` integer or bool mask of its size.
        ValueError: ``max_side`` below 1, ``alpha`` outside 0..1, or
            ``color`` not three values 0..255.
    """
    # A float image in 0..1 came back as a float overlay whose tint was in
    # 0..255 (a wrong picture, no error); a bool mask or one of another
    # size failed inside OpenCV or numpy indexing, naming neither.
    from .lesion_inferencer import ImageArrayError, check_rgb_image
    check_rgb_image(rgb, 0, where='draw_overlay: rgb')
    if not isinstance(mask, np.ndarray) or mask.dtype.kind not in 'biu' \
            or mask.shape != rgb.shape[:2]:
        what = (f'a {type(mask).__name__}' if not isinstance(
            mask, np.ndarray) else f'{mask.dtype} {mask.shape}')
        raise ImageArrayError(
            f'draw_overlay: mask is {what}; it takes an {rgb.shape[:2]} '
            'integer or bool mask (nonzero = lesion), the size of rgb '
            f'{rgb.shape}: give the mask LesionInferencer.predict made for '
            'this image (a probability map: threshold it first)')
    mask = (mask != 0).astype(np.uint8)
    # Cast to uint8 unchecked: alpha=35 (a percentage) or 1.5 wrapped the
    # tint around (255 + 1 -> 0) into other colours, color=(300, ...) too;
    # max_side=0 drew a 1x1 overlay.
    if isinstance(max_side, bool) or not isinstance(
            max_side, numbers.Integral) or max_side < 1:
        raise ValueError(f'draw_overlay: max_side must be a whole number of '
                         f'at least 1, got {max_side!r}')
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) \
            or not 0.0 <= alpha <= 1.0:
        raise ValueError(f'draw_overlay: alpha must be an opacity from 0 to '
                         f'1, got {alpha!r} (0.35 for 35 %)')
    if len(color) != 3 or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool)
            and 0 <= v <= 255 for v in color):
        raise ValueError(f'draw_overlay: color must be three whole numbers '
                         f'0..255 (R, G, B), got {color!r}')
    color = tuple(int(v) for v in color)
    height, width = mask.shape
    if max(height, width) > max_side:
        factor = max_side / max(height, width)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    overlay = rgb.copy()
    inside = mask.astype(bool)
    tint = np.array(color, dtype=np.float32)
    overlay[inside] = (overlay[inside].astype(np.float32) * (1 - alpha) +
                       tint * alpha).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    thickness = max(1, round(max(mask.shape) / 256))
    cv2.drawContours(overlay, contours, -1, color, thickness)
    return overlay


def write_image(path: str, image: np.ndarray, params=None) -> None:
    """Encode ``image`` by ``path``'s extension and write it atomically
    (:func:`~mmseg_dsnet.utils.fileio.atomic_write`): the file appears
    complete or not at all. An existing ``path`` is replaced, so callers
    check for it first.

    Args:
        path (str): Output file (``.png``, ``.jpg`` ...).
        image (np.ndarray): ``(H, W)`` or ``(H, W, 3)`` RGB uint8 image.
        params (list, optional): OpenCV encoder parameters.

    Raises:
        ImageArrayError: ``image`` is not a uint8 ``(H, W)`` or
            ``(H, W, 3)`` array; nothing is written.
    """
    # OpenCV cast a float image to 8 bits with only a warning on stderr
    # (a probability map in 0..1 was written as 0s and 1s), dropped the
    # alpha of an RGBA one, and failed on a bool mask naming no argument.
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or not (
            image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        from .lesion_inferencer import ImageArrayError
        what = (f'a {type(image).__name__}' if not isinstance(
            image, np.ndarray) else f'{image.dtype} {image.shape}')
        raise ImageArrayError(
            f'write_image: {path}: the image is {what}; it takes uint8 '
            '(H, W) or (H, W, 3) RGB arrays: a mask as mask * 255 (0/255), '
            'a probability map as (probability * 255).round().astype('
            "'uint8'); nothing written")
    ext = osp.splitext(path)[1]
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(ext, image, params or [])
    if not ok:
        raise OSError(f'{path}: could not encode a {ext} image')
    atomic_write(encoded.tobytes(), path)
