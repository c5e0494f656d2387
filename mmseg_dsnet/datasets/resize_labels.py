"""Label maps kept finer than the network's input."""
import numbers

import cv2
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ..utils.errors import UserError


@TRANSFORMS.register_module()
class ResizeLabels(BaseTransform):
    """Resize the label maps to ``scale_factor`` times the image's size.

    Put after the ``Resize`` of the input and a ``LoadAnnotations`` that
    follows it, as in the test pipeline: the labels then come from the
    mask file, not from a mask already shrunk to the input with nearest
    neighbour, which moves the rim by up to half an input pixel. The
    segmentor's loss resizes the logits to the labels, so the rim is
    scored at the finer size. Relative to the image, so the step works at
    any input size (``check_real_data.py --crop-size`` resizes only the
    pipeline's ``Resize``); flips and rotations after it move image and
    labels alike.

    Required keys: ``img``, ``seg_fields`` and the maps they name.
    Modified keys: the maps named by ``seg_fields``.

    Args:
        scale_factor (int): Label side over image side, at least 1.
            Defaults to 2.

    Raises:
        UserError: ``scale_factor`` not an integer of at least 1: a
            config value, reported as one ERROR line by the tools.
    """

    def __init__(self, scale_factor: int = 2) -> None:
        super().__init__()
        if isinstance(scale_factor, bool) or not isinstance(
                scale_factor, numbers.Integral) or scale_factor < 1:
            raise UserError('ResizeLabels scale_factor must be an integer '
                            f'of at least 1, got {scale_factor!r}')
        self.scale_factor = int(scale_factor)

    def transform(self, results: dict) -> dict:
        height, width = results['img'].shape[:2]
        size = (width * self.scale_factor, height * self.scale_factor)
        # Labels stay labels (0, 1 and the ignore index): nearest neighbour,
        # pixel centre to pixel centre (mmcv's 'nearest' reads the top-left
        # source pixel, a third of a pixel off from 192 to 256 rows).
        for key in results.get('seg_fields', []):
            results[key] = cv2.resize(
                results[key], size, interpolation=cv2.INTER_NEAREST_EXACT)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(scale_factor={self.scale_factor})'
