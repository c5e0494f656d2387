"""The training split decoded once into two device tensors."""
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import List, Sequence, Tuple

import numpy as np
import torch
from mmseg.registry import DATASETS

from ...datasets.sample_checks import BadSampleError
from ...progress import progress_bar
from .errors import FastTrainingError

# Transforms that give the same result every epoch: their output is cached.
DETERMINISTIC_TRANSFORMS = ('LoadImageFromFile', 'LoadAnnotations', 'Resize',
                            'ResizeLabels')


def config_type_name(part: dict, default=None):
    """The ``type`` of a config part as a name (a config may give the
    class itself), ``default`` when it sets none."""
    kind = part.get('type', default)
    return getattr(kind, '__name__', kind)


def check_plain_dataset(dataset_cfg, config_path: str,
                        tool: str = 'fast training') -> None:
    """Refuse a training dataset that wraps other datasets (mmengine's
    ``RepeatDataset``, ``ConcatDataset``, mmseg's ``MultiImageMixDataset``):
    the fast trainer decodes one plain dataset through its own pipeline, so
    it would not train on what mmengine's loop trains on (a
    ``RepeatDataset``'s several passes per epoch, the images of every
    dataset of a ``ConcatDataset``, a mixing pipeline), and would fail
    with an ``AttributeError`` traceback once the work dir is made.

    Args:
        dataset_cfg (dict | None): ``train_dataloader.dataset`` of a config;
            None or a non-dict passes (left to the checks of what a config
            sets).
        config_path (str): Its file, for the message.
        tool (str): What cannot use the wrapper, for the message.
            Default: 'fast training'.

    Raises:
        FastTrainingError: Naming the config and the wrapper.
    """
    if not isinstance(dataset_cfg, dict):
        return
    inner = [key for key in ('dataset', 'datasets') if key in dataset_cfg]
    if not inner:
        return
    kind = config_type_name(dataset_cfg)
    times = dataset_cfg.get('times')
    wraps = f'{inner[0]}' + (f', times={times}' if times is not None else '')
    raise FastTrainingError(
        f'{config_path}: train_dataloader.dataset is a {kind} ({wraps}), a '
        f'wrapper of other datasets, which {tool} does not read: it takes '
        'one plain dataset and its pipeline, and would not train on what '
        "mmengine's loop does (the passes per epoch, every wrapped dataset, "
        'the mixing); train this config with tools/train.py, or give the '
        'dataset itself as train_dataloader.dataset')


def split_train_pipeline(pipeline: Sequence[dict]
                         ) -> Tuple[List[dict], List[dict]]:
    """Split a train pipeline into its cacheable prefix and the rest.

    The prefix is every transform up to the first one that is not in
    ``DETERMINISTIC_TRANSFORMS`` (loading and a fixed resize); what follows
    runs on the device each iteration.

    Raises:
        FastTrainingError: A deterministic transform after a random one (its
            result could not be cached), or a resize that keeps the aspect
            ratio (images of different sizes cannot share one tensor).
    """
    prefix, rest = [], []
    for transform in pipeline:
        kind = transform['type']
        if not rest and kind in DETERMINISTIC_TRANSFORMS:
            if kind == 'Resize' and transform.get('keep_ratio', False):
                raise FastTrainingError(
                    'fast training caches resized images in one tensor: '
                    'Resize needs keep_ratio=False')
            prefix.append(transform)
        elif rest and kind in DETERMINISTIC_TRANSFORMS:
            raise FastTrainingError(
                f'{kind} after a random transform cannot be '
                             'cached; put loading and resizing first')
        else:
            rest.append(transform)
    return prefix, rest


class DecodedImageCache:
    """Every training image and label map, decoded, resized and stacked.

    Images are ``uint8 (N, 3, H, W)`` in the loader's channel order (BGR for
    ``LoadImageFromFile``), labels ``uint8 (N, H, W)`` after the dataset's
    label mapping, exactly what the config's own loading transforms return.
    On the GPU the whole ISIC 2017 training split (1500 images at 256x256)
    takes 393 MB (295 MB of images, 98 MB of labels), so no image is
    decoded twice during training.

    Args:
        images (Tensor): ``uint8 (N, 3, H, W)``.
        labels (Tensor): ``uint8 (N, H, W)``.
        files (list[str]): Image file of each entry, for messages.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor,
                 files: List[str], metainfo: dict = None):
        # Labels may be a whole multiple of the images' size
        # (``ResizeLabels``), the same on both sides.
        factors = {label / image if label % image == 0 else 0
                   for image, label in zip(images.shape[2:],
                                           labels.shape[1:])}
        if images.shape[0] != labels.shape[0] or labels.dim() != 3 or \
                len(factors) != 1 or 0 in factors:
            raise ValueError(f'images {tuple(images.shape)} and labels '
                             f'{tuple(labels.shape)} do not match')
        self.images = images
        self.labels = labels
        self.files = files
        self.metainfo = dict(metainfo or {})

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device) -> 'DecodedImageCache':
        return DecodedImageCache(
            self.images.to(device), self.labels.to(device), self.files,
            self.metainfo)

    @classmethod
    def from_dataset_cfg(cls,
                         dataset_cfg: dict,
                         prefix: Sequence[dict],
                         workers: int = None,
                         progress: bool = True) -> 'DecodedImageCache':
        """Build the dataset with only the loading transforms and decode it.

        Args:
            dataset_cfg (dict): ``train_dataloader.dataset`` of a config.
            prefix (Sequence[dict]): The cacheable transforms
                (:func:`split_train_pipeline`).
            workers (int, optional): Decoding threads. Default: CPU count,
                at most 16.
            progress (bool): Print a progress bar. Default: True.

        Raises:
            BadSampleError: A missing, truncated or undecodable image or
                mask (the dataset's own check, naming the file).
            FastTrainingError: Such a file in a dataset set to skip them
                (``on_bad_sample='skip'``), which the cache cannot follow.
            FastTrainingError: A sample without a label map after loading,
                or whose image or label has a different size or channel
                count from the first one; the message names the file.
        """
        cfg = dict(dataset_cfg)
        # The dataset runs only the loading transforms, with its own checks.
        cfg['pipeline'] = list(prefix)
        dataset = DATASETS.build(cfg)
        count = len(dataset)
        if count == 0:
            raise FastTrainingError('the training split is empty')

        skip = cfg.get('on_bad_sample') == 'skip'

        def load(index):
            try:
                results = dataset.prepare_data(index)
            except BadSampleError as exc:
                if not skip:
                    raise
                # The dataset's advice (set on_bad_sample='skip') is what
                # the user did: the cache decodes each image once and has
                # no next sample to put in a bad one's place.
                raise FastTrainingError(
                    f"{exc.problem}. train_dataloader.dataset.on_bad_sample='skip' "
                    'is not followed by fast training, which decodes every '
                    'training image once; fix or remove the file (and its '
                    'line in the split file), or train with tools/train.py, '
                    'which skips it') from None
            path = dataset.get_data_info(index).get('img_path')
            if results is None or 'gt_seg_map' not in results:
                raise FastTrainingError(
                    f'{path}: no label map after the loading transforms '
                    f'{[t["type"] for t in prefix]}')
            return path, results['img'], results['gt_seg_map']

        workers = workers or min(16, os.cpu_count() or 1)
        # On stdout, so stderr keeps only warnings and errors.
        bar = progress_bar(count, 'decoding training images', progress,
                           file=sys.stdout)
        loaded = []
        with ThreadPoolExecutor(workers) as pool:
            for item in pool.map(load, range(count)):
                loaded.append(item)
                bar.update()
        bar.close()

        first_file, first_img, first_seg = loaded[0]
        images = np.empty((count, ) + first_img.shape, np.uint8)
        labels = np.empty((count, ) + first_seg.shape, np.uint8)
        for i, (path, img, seg) in enumerate(loaded):
            if img.shape != first_img.shape or seg.shape != first_seg.shape:
                raise FastTrainingError(
                    f'{path}: image {img.shape} / label {seg.shape} after '
                    f'the loading transforms, but {first_file} gave '
                    f'{first_img.shape} / {first_seg.shape}; fast training '
                    'needs one fixed size')
            if seg.max() > 255 or seg.min() < 0:
                raise FastTrainingError(
                    f'{path}: label values outside 0..255')
            images[i] = img
            labels[i] = seg
        images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        return cls(images, torch.from_numpy(labels),
                   [item[0] for item in loaded], dataset.metainfo)
