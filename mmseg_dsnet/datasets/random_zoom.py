"""A zoom into a random window of the picture, relative to its size."""
import math
import numbers

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ..utils.errors import UserError


@TRANSFORMS.register_module()
class RandomZoom(BaseTransform):
    """Crop a random window of the image and its label maps and resize it
    back to the size they had.

    The window's side is the picture's divided by a zoom factor drawn
    uniformly from ``[1, max_zoom]``; its place is drawn uniformly. Unlike
    ``RandomResize`` with ``RandomCrop``, nothing here is in pixels, so the
    step works unchanged at any input size (``check_real_data.py
    --crop-size`` resizes only the pipeline's ``Resize``). Lesions grow and
    are cut by the picture's edge, as in dermoscopy photos taken close up.

    Required keys: ``img``, ``seg_fields`` and the maps they name.
    Modified keys: ``img``, the maps named by ``seg_fields``.

    Args:
        prob (float): Probability of zooming. Defaults to 0.5.
        max_zoom (float): The largest zoom factor, at least 1.
            Defaults to 1.5.

    Raises:
        UserError: ``prob`` outside [0, 1], ``max_zoom`` below 1, infinite
            or nan, or either not a number: a config value, reported as one
            ERROR line by the tools.
    """

    def __init__(self, prob: float = 0.5, max_zoom: float = 1.5) -> None:
        super().__init__()
        for name, value in (('prob', prob), ('max_zoom', max_zoom)):
            # A string or None was a TypeError traceback (not a config
            # error the tools name).
            if isinstance(value, bool) or not isinstance(value,
                                                         numbers.Real):
                raise UserError(f'RandomZoom {name} must be a number, got '
                                f'{value!r}')
        if not 0 <= prob <= 1:
            raise UserError(f'RandomZoom prob must lie in [0, 1], got {prob}')
        if not max_zoom >= 1:
            raise UserError(
                f'RandomZoom max_zoom must be at least 1, got {max_zoom}')
        # inf passed here and failed in the first zoomed sample of training
        # (numpy's OverflowError).
        if not math.isfinite(max_zoom):
            raise UserError(
                f'RandomZoom max_zoom must be finite, got {max_zoom}')
        self.prob = prob
        self.max_zoom = max_zoom

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        height, width = results['img'].shape[:2]
        zoom = np.random.uniform(1.0, self.max_zoom)
        crop_h = max(1, int(round(height / zoom)))
        crop_w = max(1, int(round(width / zoom)))
        top = np.random.randint(0, height - crop_h + 1)
        left = np.random.randint(0, width - crop_w + 1)
        window = (slice(top, top + crop_h), slice(left, left + crop_w))
        results['img'] = mmcv.imresize(
            results['img'][window], (width, height), interpolation='bilinear')
        # Labels stay labels (0, 1 and the ignore index): nearest neighbour.
        for key in results.get('seg_fields', []):
            results[key] = mmcv.imresize(
                results[key][window], (width, height),
                interpolation='nearest')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'max_zoom={self.max_zoom})')

