"""The train pipeline's random flips and rotation as batched tensor ops."""
import math
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import FastTrainingError

SUPPORTED = ('RandomFlip', 'RandomRotate', 'PackSegInputs')
#: The arguments of each that the device augmentation follows (those that
#: change nothing it would do, like PackSegInputs' meta_keys, included).
ARGUMENTS = dict(
    RandomFlip=('prob', 'direction'),
    RandomRotate=('prob', 'degree', 'pad_val', 'seg_pad_val', 'center',
                  'auto_bound', 'scale'),
    PackSegInputs=('meta_keys', ))


class BatchedSegAugmentation:
    """mmseg's ``RandomFlip`` / ``RandomRotate`` applied on the device.

    Each sample of the batch gets its own flips and angle, decided by
    uniform numbers the caller draws (``draws``, shape
    ``(N, num_draws)``), so a run can use its own generator and the whole
    augmentation can live inside a captured CUDA graph that reads a static
    buffer. Same distributions as the CPU transforms: a flip happens with
    its ``prob``; a rotation with ``prob``, by an angle uniform in
    ``degree`` (positive = clockwise, as mmcv's ``imrotate``), about the
    image centre, bilinear for the image and nearest for the label, with
    ``pad_val`` / ``seg_pad_val`` where the rotated image does not reach;
    samples not rotated are returned untouched. (Rotated images stay float
    instead of being rounded back to uint8.)

    Args:
        transforms (Sequence[dict]): The non-cacheable part of a train
            pipeline; only ``RandomFlip``, ``RandomRotate`` and
            ``PackSegInputs`` are understood.

    Raises:
        FastTrainingError: An unsupported transform or option, named.
    """

    def __init__(self, transforms: Sequence[dict]):
        self.flips: List[Tuple[float, str]] = []
        self.rotation = None
        for transform in transforms:
            kind = transform['type']
            if kind not in SUPPORTED:
                raise FastTrainingError(
                    f'{kind} has no batched device implementation (fast '
                    f'training supports {", ".join(SUPPORTED)} after the '
                    'loading transforms); train with tools/train.py')
            # An argument the device version does not read (a flip's
            # swap_seg_labels, a misspelt key) would train without it.
            unread = sorted(k for k, v in transform.items() if v is not None
                            and k != 'type' and k not in ARGUMENTS[kind])
            if unread:
                raise FastTrainingError(
                    f'{kind} ' + ', '.join(
                        f'{k}={transform[k]!r}' for k in unread) +
                    ': fast training reads only ' +
                    (', '.join(ARGUMENTS[kind]) or 'no argument') +
                    f' of {kind}; train with tools/train.py')
            if kind == 'RandomFlip':
                self._add_flip(transform)
            elif kind == 'RandomRotate':
                self._set_rotation(transform)

    def _add_flip(self, transform: dict) -> None:
        prob = transform.get('prob')
        directions = transform.get('direction', 'horizontal')
        if isinstance(prob, (list, tuple)) or isinstance(
                directions, (list, tuple)):
            raise FastTrainingError('RandomFlip with lists of prob/direction is '
                             'not supported by fast training')
        if prob is None:
            raise FastTrainingError('RandomFlip needs prob')
        if directions not in ('horizontal', 'vertical', 'diagonal'):
            raise FastTrainingError(f'unknown flip direction {directions}')
        self.flips.append((float(prob), directions))

    def _set_rotation(self, transform: dict) -> None:
        if self.rotation is not None:
            raise FastTrainingError('only one RandomRotate is supported')
        for key in ('center', 'auto_bound'):
            if transform.get(key):
                raise FastTrainingError(f'RandomRotate {key} is not supported by '
                                 'fast training')
        if transform.get('scale', 1.0) != 1.0:
            raise FastTrainingError('RandomRotate scale != 1 is not supported by '
                             'fast training')
        degree = transform['degree']
        if isinstance(degree, (int, float)):
            degree = (-abs(degree), abs(degree))
        self.rotation = dict(
            prob=float(transform['prob']),
            degree=(float(min(degree)), float(max(degree))),
            pad_val=float(transform.get('pad_val', 0)),
            seg_pad_val=float(transform.get('seg_pad_val', 255)))

    @property
    def num_draws(self) -> int:
        """Uniform numbers used per sample: one per flip, two for the
        rotation (whether, and by how much)."""
        return len(self.flips) + (2 if self.rotation is not None else 0)

    def __call__(self,
                 img: Tensor,
                 seg: Tensor,
                 draws: Tensor = None) -> Tuple[Tensor, Tensor]:
        """Augment a batch.

        Args:
            img (Tensor): Float images ``(N, C, H, W)``, pixel values.
            seg (Tensor): Labels ``(N, H, W)``, any integer or float dtype;
                or a whole multiple of the images' size (``ResizeLabels``).
            draws (Tensor, optional): Uniform numbers in [0, 1),
                ``(N, num_draws)``. Default: drawn from the global generator.

        Returns:
            tuple[Tensor, Tensor]: Float images and long labels.
        """
        batch = img.shape[0]
        if draws is None:
            draws = torch.rand(batch, self.num_draws, device=img.device)
        if tuple(draws.shape) != (batch, self.num_draws):
            raise ValueError(f'draws must be ({batch}, {self.num_draws}), '
                             f'got {tuple(draws.shape)}')
        seg = seg.float()
        for column, (prob, direction) in enumerate(self.flips):
            dims = {'horizontal': [-1], 'vertical': [-2],
                    'diagonal': [-2, -1]}[direction]
            flip = draws[:, column] < prob
            img = torch.where(flip[:, None, None, None], img.flip(dims), img)
            seg = torch.where(flip[:, None, None], seg.flip(dims), seg)
        if self.rotation is not None:
            img, seg = self._rotate(img, seg, draws[:, len(self.flips):])
        return img, seg.long()

    def _rotate(self, img: Tensor, seg: Tensor,
                draws: Tensor) -> Tuple[Tensor, Tensor]:
        rot = self.rotation
        _, _, height, width = img.shape
        low, high = rot['degree']
        apply = draws[:, 0] < rot['prob']
        # mmcv turns positive angles clockwise; in grid_sample's y-down
        # coordinates that is the negative mathematical angle.
        angle = -(low + (high - low) * draws[:, 1]) * (math.pi / 180)
        cos, sin = torch.cos(angle), torch.sin(angle)
        zero = torch.zeros_like(cos)
        # Output pixel -> input pixel about the centre, in grid_sample's
        # normalised coordinates (x by width, y by height).
        theta = torch.stack([
            torch.stack([cos, -sin * height / width, zero], -1),
            torch.stack([sin * width / height, cos, zero], -1)
        ], 1)
        grid = F.affine_grid(theta, list(img.shape), align_corners=False)
        rotated = F.grid_sample(
            img - rot['pad_val'], grid, mode='bilinear',
            padding_mode='zeros', align_corners=False) + rot['pad_val']
        both = torch.stack([seg, torch.ones_like(seg)], 1)
        if both.shape[2:] != img.shape[2:]:
            # Labels finer than the image (``ResizeLabels``): the same
            # turn about the centre, on their own grid of pixels.
            grid = F.affine_grid(theta, list(both.shape),
                                 align_corners=False)
        both = F.grid_sample(
            both, grid, mode='nearest', padding_mode='zeros',
            align_corners=False)
        rotated_seg = torch.where(
            both[:, 1] > 0.5, both[:, 0],
            torch.full_like(both[:, 0], rot['seg_pad_val']))
        img = torch.where(apply[:, None, None, None], rotated, img)
        seg = torch.where(apply[:, None, None], rotated_seg, seg)
        return img, seg
