"""The fast-training path (``mmseg_dsnet.engine.fast_training`` and
``tools/fast_train.py``) on the CPU: the sync-free loss helpers against
mmseg's, the batched augmentation against torch / mmseg transforms, the
decoded-image cache against the config's own loading transforms, the
learning-rate table against the closed-form schedule, one training step
against mmengine's ``train_step``, and the tool end to end on the tiny
synthetic set. (The CUDA-graph step is tested in
``test_fast_training_cuda.py``.)"""
import json
import math
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import (REPO, WRAPPED_DATASETS, load_tool, run_cli,
                      write_tiny_config, write_wrapped_config)
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_dsnet  # noqa: F401  (registration)
from mmseg_dsnet.datasets.sample_checks import BadSampleError
from mmseg_dsnet.engine.fast_training import (BatchedSegAugmentation,
                                              DecodedImageCache,
                                              FastTrainingError, TrainingRun,
                                              graph_safe_losses,
                                              learning_rate_table,
                                              masked_accuracy,
                                              masked_binary_cross_entropy,
                                              split_train_pipeline)
from mmseg_dsnet.utils.errors import UserError

DATASET_CFG = REPO / 'configs' / '_base_' / 'datasets' / 'isic_256x256.py'
SCHEDULE_CFG = (REPO / 'configs' / '_base_' / 'schedules' /
                'schedule_300e_adamw_cosine.py')
DSNET_CFG = REPO / 'configs' / 'dsnet' / 'dsnet_isic2017.py'


@pytest.fixture(autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


def rotate_cfg(degree, prob=1.0, pad_val=0, seg_pad_val=255):
    return dict(type='RandomRotate', prob=prob, degree=degree,
                pad_val=pad_val, seg_pad_val=seg_pad_val)


def random_batch(n, h, w, seed=0):
    """Float pixel images (N, 3, H, W) and uint8 0/1 labels with some
    255 (ignore) pixels."""
    g = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 256, (n, 3, h, w), generator=g).float()
    seg = (torch.rand(n, h, w, generator=g) > 0.5).to(torch.uint8)
    seg[torch.rand(n, h, w, generator=g) > 0.9] = 255
    return img, seg


# --------------------------------------------------------------- 1. losses
@pytest.mark.parametrize('channels', [1, 2])
@pytest.mark.parametrize('ignore_index', [255, None])
def test_masked_accuracy_equals_mmseg_accuracy(channels, ignore_index):
    from mmseg.models.losses import accuracy
    g = torch.Generator().manual_seed(channels)
    pred = torch.randn(3, channels, 16, 20, generator=g)
    target = torch.randint(0, 2, (3, 16, 20), generator=g)
    target[torch.rand(3, 16, 20, generator=g) > 0.8] = 255
    expected = accuracy(pred, target, topk=1, ignore_index=ignore_index)
    got = masked_accuracy(pred, target, topk=1, ignore_index=ignore_index)
    assert got.shape == expected.shape == (1, )
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-5)


def test_masked_accuracy_all_ignored_matches_mmseg():
    from mmseg.models.losses import accuracy
    pred = torch.randn(2, 2, 4, 4)
    target = torch.full((2, 4, 4), 255)
    torch.testing.assert_close(
        masked_accuracy(pred, target, ignore_index=255),
        accuracy(pred, target, ignore_index=255))


@pytest.mark.parametrize('avg_non_ignore', [True, False])
@pytest.mark.parametrize('with_weight', [True, False])
@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
def test_masked_bce_equals_mmseg_binary_cross_entropy(avg_non_ignore,
                                                      with_weight,
                                                      reduction):
    from mmseg.models.losses.cross_entropy_loss import binary_cross_entropy
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(2, 1, 12, 10, generator=g) * 3
    label = torch.randint(0, 2, (2, 12, 10), generator=g)
    label[torch.rand(2, 12, 10, generator=g) > 0.7] = 255
    weight = torch.rand(2, 12, 10, generator=g) if with_weight else None
    kwargs = dict(weight=weight, reduction=reduction, ignore_index=255,
                  avg_non_ignore=avg_non_ignore)
    expected = binary_cross_entropy(pred, label, **kwargs)
    got = masked_binary_cross_entropy(pred, label, **kwargs)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_masked_bce_gradient_equals_mmseg():
    from mmseg.models.losses.cross_entropy_loss import binary_cross_entropy
    pred = torch.randn(2, 1, 8, 8)
    label = torch.randint(0, 2, (2, 8, 8))
    label[0, :2] = 255
    grads = []
    for fn in (binary_cross_entropy, masked_binary_cross_entropy):
        p = pred.clone().requires_grad_()
        fn(p, label, ignore_index=255, avg_non_ignore=True).backward()
        grads.append(p.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-6, atol=1e-7)


class _TwoLossModel(torch.nn.Module):

    def __init__(self):
        super().__init__()
        from mmseg.models.losses import CrossEntropyLoss
        self.sigmoid_ce = CrossEntropyLoss(use_sigmoid=True)
        self.softmax_ce = CrossEntropyLoss(use_sigmoid=False)


def test_graph_safe_losses_swaps_and_restores():
    from mmseg.models.decode_heads import decode_head
    model = _TwoLossModel()
    accuracy = decode_head.accuracy
    sigmoid_criterion = model.sigmoid_ce.cls_criterion
    softmax_criterion = model.softmax_ce.cls_criterion
    with graph_safe_losses(model):
        assert decode_head.accuracy is masked_accuracy
        assert model.sigmoid_ce.cls_criterion is masked_binary_cross_entropy
        # The softmax CE has no sync to remove: left alone.
        assert model.softmax_ce.cls_criterion is softmax_criterion
        # And the swapped-in criterion is what the loss module uses.
        pred = torch.randn(2, 1, 4, 4)
        label = torch.randint(0, 2, (2, 4, 4))
        loss = model.sigmoid_ce(pred, label, ignore_index=255)
        assert torch.isfinite(loss)
    assert decode_head.accuracy is accuracy
    assert model.sigmoid_ce.cls_criterion is sigmoid_criterion
    assert model.softmax_ce.cls_criterion is softmax_criterion


def test_graph_safe_losses_restores_when_the_body_raises():
    from mmseg.models.decode_heads import decode_head
    model = _TwoLossModel()
    accuracy = decode_head.accuracy
    sigmoid_criterion = model.sigmoid_ce.cls_criterion
    with pytest.raises(RuntimeError, match='boom'):
        with graph_safe_losses(model):
            assert decode_head.accuracy is masked_accuracy
            raise RuntimeError('boom')
    assert decode_head.accuracy is accuracy
    assert model.sigmoid_ce.cls_criterion is sigmoid_criterion


# ----------------------------------------------------------- 2. augmentation
def test_probability_zero_returns_the_input_exactly():
    # Non-square, as after a (W, H) resize; labels with ignore pixels.
    img, seg = random_batch(4, 48, 64)
    aug = BatchedSegAugmentation([
        dict(type='RandomFlip', prob=0.0, direction='horizontal'),
        dict(type='RandomFlip', prob=0.0, direction='vertical'),
        rotate_cfg(180, prob=0.0),
        dict(type='PackSegInputs')
    ])
    out_img, out_seg = aug(img.clone(), seg.clone())
    assert out_seg.dtype == torch.long
    assert torch.equal(out_seg, seg.long())
    assert torch.equal(out_img, img), (
        'an image that is not rotated changed by up to '
        f'{(out_img - img).abs().max().item():.2e}')


@pytest.mark.parametrize('direction,dims', [('horizontal', [-1]),
                                            ('vertical', [-2]),
                                            ('diagonal', [-2, -1])])
def test_probability_one_flip_equals_torch_flip(direction, dims):
    img, seg = random_batch(3, 24, 32)
    aug = BatchedSegAugmentation(
        [dict(type='RandomFlip', prob=1.0, direction=direction)])
    out_img, out_seg = aug(img, seg)
    assert torch.equal(out_img, img.flip(dims))
    assert torch.equal(out_seg, seg.long().flip(dims))


def test_rotation_by_90_degrees_equals_rot90():
    img, seg = random_batch(2, 32, 32)
    aug = BatchedSegAugmentation([rotate_cfg((90, 90))])
    out_img, out_seg = aug(img, seg)
    matches = []
    for k in (1, -1):
        if torch.equal(out_seg, torch.rot90(seg.long(), k, (-2, -1))):
            # Pixel values 0..255: 1e-2 is 4e-5 of the range.
            torch.testing.assert_close(
                out_img, torch.rot90(img, k, (-2, -1)), rtol=0, atol=1e-2)
            matches.append(k)
    assert len(matches) == 1


@pytest.mark.parametrize('size,angle', [((48, 48), 90), ((48, 64), 30)])
def test_rotation_matches_mmseg_random_rotate(size, angle):
    """Same angle, same direction as mmseg's RandomRotate (mmcv.imrotate:
    positive angles turn clockwise), so asymmetric degree ranges mean the
    same on the device as on the CPU."""
    from mmseg.registry import TRANSFORMS
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 3, y * 4, (x + y) * 2], -1).clip(0, 255).astype(
        np.uint8)
    seg = (((x - w / 2) / (w / 3))**2 + ((y - h / 2) /
                                         (h / 4))**2 < 1).astype(np.uint8)
    cfg = rotate_cfg((angle, angle), pad_val=0, seg_pad_val=255)
    cpu = TRANSFORMS.build(cfg)(
        dict(img=img.copy(), gt_seg_map=seg.copy(),
             seg_fields=['gt_seg_map']))
    out_img, out_seg = BatchedSegAugmentation([cfg])(
        torch.from_numpy(img).permute(2, 0, 1)[None].float(),
        torch.from_numpy(seg)[None])
    agree = np.mean(out_seg[0].numpy() == cpu['gt_seg_map'])
    assert agree == 1, f'labels agree on {agree:.0%} of the pixels only'
    # OpenCV interpolates with 5-bit fixed-point weights.
    diff = np.abs(out_img[0].permute(1, 2, 0).numpy() - cpu['img'])
    assert diff.max() < 4 and diff.mean() < 0.5


@pytest.mark.parametrize('angle', [90, 30])
def test_rotation_of_labels_twice_the_image_matches_mmseg(angle):
    """Labels at twice the image's side (ResizeLabels) turn on their own
    grid about the same centre, as mmseg's RandomRotate turns each map."""
    from mmseg.registry import TRANSFORMS
    h, w = 24, 32
    y, x = np.mgrid[0:2 * h, 0:2 * w]
    seg = (((x - w) / (w / 1.5))**2 + ((y - h) /
                                       (h / 2))**2 < 1).astype(np.uint8)
    img = np.zeros((h, w, 3), np.uint8)
    cfg = rotate_cfg((angle, angle), pad_val=0, seg_pad_val=255)
    cpu = TRANSFORMS.build(cfg)(
        dict(img=img.copy(), gt_seg_map=seg.copy(),
             seg_fields=['gt_seg_map']))
    _, out_seg = BatchedSegAugmentation([cfg])(
        torch.from_numpy(img).permute(2, 0, 1)[None].float(),
        torch.from_numpy(seg)[None])
    assert out_seg.shape == (1, 2 * h, 2 * w)
    agree = np.mean(out_seg[0].numpy() == cpu['gt_seg_map'])
    assert agree > 0.995, f'labels agree on {agree:.2%} of the pixels only'


def test_rotation_pads_with_pad_val_and_seg_pad_val():
    n, size = 2, 32
    img = torch.full((n, 3, size, size), 100.0)
    seg = torch.ones(n, size, size, dtype=torch.uint8)
    aug = BatchedSegAugmentation(
        [rotate_cfg((45, 45), pad_val=7, seg_pad_val=255)])
    out_img, out_seg = aug(img, seg)
    for row, col in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert torch.all(out_img[:, :, row, col] == 7.0)
        assert torch.all(out_seg[:, row, col] == 255)
    centre = slice(size // 2 - 4, size // 2 + 4)
    torch.testing.assert_close(out_img[:, :, centre, centre],
                               torch.full((n, 3, 8, 8), 100.0))
    assert torch.all(out_seg[:, centre, centre] == 1)
    # Wherever the image is pure padding, the label is ignore (the label
    # may also be ignore on the border, where bilinear still reaches in).
    padded = (out_img == 7.0).all(1)
    assert padded.any() and torch.all(out_seg[padded] == 255)
    assert torch.all((out_seg == 255) | (out_seg == 1))
    assert 0 < (out_seg == 255).float().mean() < 0.5


def test_each_sample_draws_its_own_flip():
    torch.manual_seed(0)
    one_img, one_seg = random_batch(1, 16, 16)
    img, seg = one_img.expand(64, -1, -1, -1), one_seg.expand(64, -1, -1)
    aug = BatchedSegAugmentation(
        [dict(type='RandomFlip', prob=0.5, direction='horizontal')])
    out_img, out_seg = aug(img, seg)
    flipped = []
    for i in range(64):
        if torch.equal(out_img[i], one_img[0]):
            assert torch.equal(out_seg[i], one_seg[0].long())
            flipped.append(False)
        else:
            # Image and labels of a sample are flipped together.
            assert torch.equal(out_img[i], one_img[0].flip(-1))
            assert torch.equal(out_seg[i], one_seg[0].long().flip(-1))
            flipped.append(True)
    assert 0 < sum(flipped) < 64, sum(flipped)


def test_each_sample_draws_its_own_rotation():
    torch.manual_seed(1)
    one_img, one_seg = random_batch(1, 16, 16)
    img, seg = one_img.expand(64, -1, -1, -1), one_seg.expand(64, -1, -1)
    aug = BatchedSegAugmentation([rotate_cfg((90, 90), prob=0.5)])
    _, out_seg = aug(img, seg)
    rotated = [not torch.equal(out_seg[i], one_seg[0].long())
               for i in range(64)]
    assert 0 < sum(rotated) < 64


def test_explicit_draws_pick_each_transform_and_the_angle():
    """Column j of ``draws`` decides flip j; the rotation reads the next
    two columns: first whether (below ``prob``), then where in ``degree``
    the angle lies. Four samples, one outcome each, against torch's own
    flips and quarter turns (mmcv: a positive angle turns clockwise, which
    is ``rot90`` with k=-1 over (H, W))."""
    img, seg = random_batch(5, 16, 16)
    aug = BatchedSegAugmentation([
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='RandomFlip', prob=0.5, direction='vertical'),
        rotate_cfg((0, 180), prob=0.5)])
    assert aug.num_draws == 4
    draws = torch.tensor([
        [0.2, 0.9, 0.9, 0.5],   # horizontal flip only
        [0.9, 0.2, 0.9, 0.5],   # vertical flip only
        [0.9, 0.9, 0.2, 0.5],   # rotation by 0 + 180 * 0.5 = 90 degrees
        [0.9, 0.9, 0.2, 0.0],   # rotation by 0 degrees
        [0.9, 0.9, 0.9, 0.2],   # nothing (the angle draw is below prob)
    ])
    out_img, out_seg = aug(img, seg, draws)
    seg = seg.long()
    expected = [(img[0].flip(-1), seg[0].flip(-1)),
                (img[1].flip(-2), seg[1].flip(-2)),
                (torch.rot90(img[2], -1, (-2, -1)),
                 torch.rot90(seg[2], -1, (-2, -1))),
                (img[3], seg[3]), (img[4], seg[4])]
    for i, (want_img, want_seg) in enumerate(expected):
        assert torch.equal(out_seg[i], want_seg), f'sample {i}'
        torch.testing.assert_close(out_img[i], want_img, rtol=0, atol=1e-2)


def test_defaults_are_those_of_mmseg_transforms():
    """Arguments left out mean what they mean to mmseg: a flip is
    horizontal; a scalar ``degree`` d is the range (-d, d); the image is
    padded with 0 and the label with 255 (ignore)."""
    img, seg = random_batch(1, 16, 16)
    out_img, out_seg = BatchedSegAugmentation(
        [dict(type='RandomFlip', prob=1.0)])(img, seg)
    assert torch.equal(out_img, img.flip(-1))
    assert torch.equal(out_seg, seg.long().flip(-1))
    rotate = BatchedSegAugmentation(
        [dict(type='RandomRotate', prob=1.0, degree=90)])
    # Draw 0 is the low end, -90: a quarter turn anticlockwise (k=1).
    out_img, out_seg = rotate(img, seg, torch.tensor([[0.0, 0.0]]))
    assert torch.equal(out_seg, torch.rot90(seg.long(), 1, (-2, -1)))
    torch.testing.assert_close(out_img, torch.rot90(img, 1, (-2, -1)),
                               rtol=0, atol=1e-2)
    # 45 degrees of a flat image: the corners are rotated in.
    flat = torch.full((1, 3, 16, 16), 100.0)
    ones = torch.ones(1, 16, 16, dtype=torch.uint8)
    out_img, out_seg = BatchedSegAugmentation(
        [dict(type='RandomRotate', prob=1.0, degree=(45, 45))])(flat, ones)
    assert torch.all(out_img[..., 0, 0] == 0.0)
    assert out_seg[0, 0, 0] == 255 and out_seg[0, 8, 8] == 1


@pytest.mark.parametrize('transform', [
    dict(type='RandomCrop', crop_size=(32, 32)),
    dict(type='PhotoMetricDistortion'),
])
def test_unsupported_transform_is_named(transform):
    with pytest.raises(ValueError, match=transform['type']):
        BatchedSegAugmentation(
            [dict(type='RandomFlip', prob=0.5), transform])



@pytest.mark.parametrize('transform,unread', [
    (dict(type='RandomFlip', prob=0.5, swap_seg_labels=[(0, 1)]),
     'swap_seg_labels=[(0, 1)]'),
    (dict(type='RandomRotate', prob=0.5, degree=20, interpolation='nearest'),
     "interpolation='nearest'"),
    (dict(type='RandomFlip', prob=0.5, direciton='vertical'),
     "direciton='vertical'"),
])
def test_an_argument_the_augmentation_does_not_read_is_named(transform,
                                                             unread):
    """It was left out: a misspelt ``direction`` flipped horizontally, a
    ``swap_seg_labels`` swapped nothing, and training went on, exit 0."""
    with pytest.raises(ValueError, match=re.escape(
            f"{transform['type']} {unread}: fast training reads only ")):
        BatchedSegAugmentation([transform])
    # Arguments left at their defaults (None) are not refused.
    BatchedSegAugmentation([dict(type='RandomFlip', prob=0.5,
                                 swap_seg_labels=None)])


# --------------------------------------------------------- 3. pipeline split
def test_split_of_the_repo_train_pipeline():
    pipeline = Config.fromfile(str(DATASET_CFG)).train_pipeline
    prefix, rest = split_train_pipeline(pipeline)
    assert [t['type'] for t in prefix] == [
        'LoadImageFromFile', 'LoadAnnotations', 'Resize'
    ]
    assert [t['type'] for t in rest] == [
        'RandomFlip', 'RandomFlip', 'RandomRotate', 'PackSegInputs'
    ]
    # ... and the rest is what the device augmentation understands.
    aug = BatchedSegAugmentation(rest)
    assert aug.flips == [(0.5, 'horizontal'), (0.5, 'vertical')]
    assert aug.rotation['degree'] == (-180.0, 180.0)


def test_split_caches_labels_at_twice_the_input():
    """The fine-labels candidate's labels are resized once, into the
    cache; the device moves both after it."""
    cfg = Config.fromfile(str(
        REPO / 'configs/dsnet/design/'
        'dsnet-design-deeper-eighth-fine-labels_isic2017.py'))
    prefix, rest = split_train_pipeline(cfg.train_dataloader.dataset.pipeline)
    assert [t['type'] for t in prefix] == [
        'LoadImageFromFile', 'Resize', 'LoadAnnotations', 'ResizeLabels']
    assert [t['type'] for t in rest] == [
        'RandomFlip', 'RandomFlip', 'RandomRotate', 'PackSegInputs']
    images = torch.zeros(2, 3, 8, 12, dtype=torch.uint8)
    files = ['a.jpg', 'b.jpg']
    cache = DecodedImageCache(
        images, torch.zeros(2, 16, 24, dtype=torch.uint8), files)
    assert cache.labels.shape == (2, 16, 24)
    for shape in ((2, 16, 12), (2, 12, 18), (2, 4, 6), (2, 17, 24)):
        with pytest.raises(ValueError, match='do not match'):
            DecodedImageCache(images, torch.zeros(shape, dtype=torch.uint8),
                              files)


def test_split_refuses_keep_ratio_and_late_resize():
    load = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
    with pytest.raises(ValueError, match='keep_ratio'):
        split_train_pipeline(
            load + [dict(type='Resize', scale=(64, 64), keep_ratio=True)])
    with pytest.raises(ValueError, match='Resize after a random'):
        split_train_pipeline(load + [
            dict(type='RandomFlip', prob=0.5),
            dict(type='Resize', scale=(64, 64), keep_ratio=False)
        ])


# ------------------------------------------------------------------ 4. cache
@pytest.fixture(scope='module')
def tiny_cfg(tiny_isic, tmp_path_factory):
    path = write_tiny_config(
        tmp_path_factory.mktemp('fast_cfg') / 'tiny_fast.py', tiny_isic,
        epochs=2)
    return path


def test_cache_equals_the_config_loading_transforms(tiny_cfg):
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(str(tiny_cfg))
    prefix, _ = split_train_pipeline(cfg.train_dataloader.dataset.pipeline)
    cache = DecodedImageCache.from_dataset_cfg(
        cfg.train_dataloader.dataset, prefix, workers=2, progress=False)
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset,
                                  pipeline=prefix))
    assert len(cache) == len(dataset) == 11
    assert cache.images.dtype == torch.uint8
    assert cache.labels.dtype == torch.uint8
    assert cache.images.shape == (11, 3, 64, 64)
    assert cache.labels.shape == (11, 64, 64)
    for i in range(len(dataset)):
        sample = dataset[i]
        assert cache.files[i] == sample['img_path']
        assert np.array_equal(cache.images[i].permute(1, 2, 0).numpy(),
                              sample['img'])
        assert np.array_equal(cache.labels[i].numpy(), sample['gt_seg_map'])
    assert set(cache.labels.unique().tolist()) == {0, 1}
    assert not torch.equal(cache.images[0], cache.images[1])


@pytest.mark.parametrize('damage', ['truncated', 'garbage'])
def test_cache_names_a_broken_image(tiny_isic, tiny_cfg, tmp_path, damage):
    root = tmp_path / 'data'
    shutil.copytree(tiny_isic, root)
    name = (root / 'splits' / 'lightweight_train.txt').read_text().split()[5]
    bad = root / 'images' / f'{name}.jpg'
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2] if damage == 'truncated' else
                    b'this is not a JPEG' * 20)
    cfg = Config.fromfile(str(tiny_cfg))
    dataset_cfg = dict(cfg.train_dataloader.dataset, data_root=str(root))
    prefix, _ = split_train_pipeline(dataset_cfg['pipeline'])
    # The dataset's own check, not whatever the decoder raised (which may
    # name the file too, as a traceback).
    with pytest.raises(BadSampleError,
                       match=f'^Bad image file {re.escape(str(bad))}: '
                       'truncated or corrupt'):
        DecodedImageCache.from_dataset_cfg(dataset_cfg, prefix, workers=2,
                                           progress=False)


def test_cache_does_not_advise_the_skip_it_ignores(tiny_isic, tiny_cfg,
                                                  tmp_path):
    """``on_bad_sample='skip'`` on the training set: the cache stopped at a
    truncated image with the dataset's advice to "set on_bad_sample='skip'",
    the setting given. Now it says fast training does not follow it."""
    root = tmp_path / 'data'
    shutil.copytree(tiny_isic, root)
    name = (root / 'splits' / 'lightweight_train.txt').read_text().split()[5]
    bad = root / 'images' / f'{name}.jpg'
    bad.write_bytes(bad.read_bytes()[:300])
    cfg = Config.fromfile(str(tiny_cfg))
    dataset_cfg = dict(cfg.train_dataloader.dataset, data_root=str(root),
                       on_bad_sample='skip')
    prefix, _ = split_train_pipeline(dataset_cfg['pipeline'])
    with pytest.raises(FastTrainingError) as info:
        DecodedImageCache.from_dataset_cfg(dataset_cfg, prefix, workers=2,
                                           progress=False)
    assert str(info.value) == (
        f'Bad image file {bad}: truncated or corrupt. '
        "train_dataloader.dataset.on_bad_sample='skip' is not followed by "
        'fast training, which decodes every training image once; fix or '
        'remove the file (and its line in the split file), or train with '
        'tools/train.py, which skips it')


# ---------------------------------------------------------- 5. lr schedule
def _wrapper(optim_cfg):
    from mmengine.optim import build_optim_wrapper
    return build_optim_wrapper(torch.nn.Linear(2, 2), optim_cfg)


def test_lr_table_is_the_closed_form_cosine_of_the_repo_schedule():
    cfg = Config.fromfile(str(SCHEDULE_CFG))
    wrapper = _wrapper(cfg.optim_wrapper)
    iters = 3
    table = learning_rate_table(wrapper, cfg.param_scheduler, iters, 50)
    assert table.shape == (50 * iters, 1)
    assert table.dtype == torch.float64
    for epoch in range(50):
        expected = 1e-5 + (1e-3 - 1e-5) * (
            1 + math.cos(math.pi * epoch / 50)) / 2
        rows = table[epoch * iters:(epoch + 1) * iters, 0].tolist()
        assert rows == pytest.approx([expected] * iters, rel=1e-9), epoch
    # The optimizer is left as it was.
    group = wrapper.optimizer.param_groups[0]
    assert group['lr'] == 1e-3
    assert 'initial_lr' not in group


def test_lr_table_steps_iteration_based_schedulers_every_iteration():
    cfg = Config.fromfile(str(SCHEDULE_CFG))
    wrapper = _wrapper(cfg.optim_wrapper)
    schedulers = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=10)
    ]
    table = learning_rate_table(wrapper, schedulers, 4, 4)[:, 0].tolist()
    assert len(table) == 16
    # mmengine's LinearLR reaches the base rate at step end - begin - 1.
    expected = [1e-3 * (0.1 + 0.9 * min(i, 9) / 9) for i in range(16)]
    assert table == pytest.approx(expected, rel=1e-9)
    assert len(set(round(v, 12) for v in table[:10])) == 10



def test_lr_table_takes_one_scheduler_given_as_a_dict():
    """mmengine's runner takes ``param_scheduler = dict(...)``; the table
    iterated the dict's keys (``AttributeError: 'str' object has no
    attribute 'pop'`` once the images were decoded and the work dir
    made)."""
    cfg = Config.fromfile(str(SCHEDULE_CFG))
    one = dict(cfg.param_scheduler[0])
    table = learning_rate_table(_wrapper(cfg.optim_wrapper), one, 3, 50)
    expected = learning_rate_table(_wrapper(cfg.optim_wrapper), [one], 3, 50)
    assert torch.equal(table, expected)


# --------------------------------------------------- 6. step == mmengine's
@pytest.mark.parametrize('channels', [
    dict(),  # the config's: bgr_to_rgb=True
    # Only bgr_to_rgb was read: rgb_to_bgr=True trained on the other
    # channel order than mmseg's preprocessor gives.
    dict(bgr_to_rgb=False, rgb_to_bgr=True),
])
def test_eager_step_equals_mmseg_train_step(channels):
    from mmengine.optim import OptimWrapper
    from mmengine.runner import set_random_seed
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    cfg = Config.fromfile(str(DSNET_CFG))
    h = w = 64
    n, batch = 4, 2
    # The cache holds images at the crop size; the preprocessor pads to it.
    cfg.model.data_preprocessor.size = (h, w)
    cfg.model.data_preprocessor.update(channels)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, h, w), generator=g,
                           dtype=torch.uint8)
    labels = (torch.rand(n, h, w, generator=g) > 0.6).to(torch.uint8)
    labels[0, :6, :6] = 255
    labels[3, -5:] = 255
    cache = DecodedImageCache(images, labels, [f'img{i}' for i in range(n)])

    set_random_seed(0)
    run = TrainingRun(cfg, cache, BatchedSegAugmentation([]), batch, 2, 1,
                      torch.device('cpu'))
    reference = MODELS.build(cfg.model)
    reference.load_state_dict(run.model.state_dict())
    reference.train()
    opt = cfg.optim_wrapper.optimizer
    wrapper = OptimWrapper(
        torch.optim.AdamW(reference.parameters(), lr=opt.lr,
                          betas=opt.betas, weight_decay=opt.weight_decay))

    for iteration, index in enumerate(([0, 1], [3, 2])):
        run.batch_index.copy_(torch.tensor(index))
        run.step(iteration)
        fast = run.scalars()
        samples = []
        for i in index:
            sample = SegDataSample(
                metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
            sample.gt_sem_seg = PixelData(data=labels[i][None].long())
            samples.append(sample)
        data = dict(inputs=[images[i] for i in index], data_samples=samples)
        log_vars = reference.train_step(data, wrapper)
        assert fast['lr'] == pytest.approx(1e-3)
        assert set(log_vars) <= set(fast)
        for key, value in log_vars.items():
            assert fast[key] == pytest.approx(float(value), rel=1e-5,
                                              abs=1e-6), (iteration, key)
        for (name, a), b in zip(run.model.state_dict().items(),
                                reference.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6,
                                       msg=f'{name} after step {iteration}')
    # The parameters did move.
    assert any(not torch.equal(a, b) for a, b in zip(
        run.model.state_dict().values(),
        MODELS.build(cfg.model).state_dict().values()))


def test_a_run_scales_its_learning_rate_as_the_runner_does():
    """A config's enabled ``auto_scale_lr`` was left out: the fast trainer
    trained at the config's rate, ``tools/train.py`` (mmengine's
    ``Runner.scale_lr``) at ``rate * batch_size / base_batch_size``."""
    from types import SimpleNamespace

    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmengine.runner import Runner
    from mmseg.registry import MODELS

    cfg = Config.fromfile(str(DSNET_CFG))
    cfg.model.data_preprocessor.size = (32, 32)
    cfg.auto_scale_lr = dict(enable=True, base_batch_size=16)
    batch, iters, epochs = 2, 2, 3
    cache = DecodedImageCache(torch.zeros(4, 3, 32, 32, dtype=torch.uint8),
                              torch.zeros(4, 32, 32, dtype=torch.uint8),
                              ['img'] * 4)
    run = TrainingRun(cfg, cache, BatchedSegAugmentation([]), batch, iters,
                      epochs, torch.device('cpu'))
    # What the runner does: build the optimizer, scale, then schedule.
    wrapper = build_optim_wrapper(MODELS.build(cfg.model), cfg.optim_wrapper)
    runner = SimpleNamespace(
        _train_dataloader=dict(batch_size=batch), world_size=1,
        logger=MMLogger.get_current_instance(), param_schedulers=None)
    Runner.scale_lr(runner, wrapper, cfg.auto_scale_lr)
    assert wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(
        cfg.optim_wrapper.optimizer.lr * batch / 16)
    expected = learning_rate_table(wrapper, cfg.param_scheduler, iters,
                                   epochs)
    torch.testing.assert_close(run.lr_table, expected)
    assert run.lr_scale == batch / 16


@pytest.mark.parametrize('height, width, divisor', [(64, 64, 24),
                                                    (64, 48, 32)])
def test_a_run_refuses_a_size_divisor_it_would_not_pad(height, width,
                                                       divisor):
    """With ``data_preprocessor.size_divisor`` (and no ``size``), mmseg pads
    each batch to a multiple of it; the fast trainer, which does not pad,
    trained on the unpadded images (64x64 where tools/train.py trains at
    72x72; 64x48 with 32, where mmseg pads the width only), exit 0."""
    cfg = Config.fromfile(str(DSNET_CFG))
    cfg.model.data_preprocessor.size = None
    cfg.model.data_preprocessor.size_divisor = divisor
    cache = DecodedImageCache(
        torch.zeros(4, 3, height, width, dtype=torch.uint8),
        torch.zeros(4, height, width, dtype=torch.uint8), ['img'] * 4)
    with pytest.raises(FastTrainingError,
                       match=rf'^data_preprocessor.size_divisor {divisor} '
                       rf'pads the cached image size \({height}, {width}\)'):
        TrainingRun(cfg, cache, BatchedSegAugmentation([]), 2, 2, 1,
                    torch.device('cpu'))
    # A size it divides needs no padding: trained as mmseg trains it.
    cfg.model.data_preprocessor.size_divisor = 16
    TrainingRun(cfg, cache, BatchedSegAugmentation([]), 2, 2, 1,
                torch.device('cpu'))


# ---------------------------------------------------------- 7. the tool
def _run_fast_train(*args):
    proc = subprocess.run(
        [sys.executable, 'tools/fast_train.py', *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    return proc


@pytest.fixture(scope='module')
def fast_trained(tiny_isic, tmp_path_factory):
    """DSNet and EGE-UNet (sigmoid CE: the swapped criterion) trained
    together for 2 epochs on the tiny set."""
    tmp = tmp_path_factory.mktemp('fast_train')
    dsnet = write_tiny_config(tmp / 'tiny_dsnet.py', tiny_isic, epochs=2)
    egeunet = write_tiny_config(tmp / 'tiny_egeunet.py', tiny_isic,
                                base='configs/egeunet/egeunet_isic2018.py',
                                epochs=2)
    work = tmp / 'work'
    proc = _run_fast_train(dsnet, f'{egeunet}@3', '--work-dir', work,
                           '--device', 'cpu')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work, proc


@pytest.mark.slow
@pytest.mark.parametrize('name,config,seed', [
    ('tiny_dsnet_seed0', 'tiny_dsnet.py', 0),
    ('tiny_egeunet_seed3', 'tiny_egeunet.py', 3),
])
def test_fast_train_work_dir_layout(fast_trained, name, config, seed):
    from mmseg_dsnet.compat import safe_torch_load
    work, proc = fast_trained
    run_dir = work / name
    assert f'{name}: 2 epochs' in proc.stdout
    dumped = Config.fromfile(str(run_dir / config))
    assert dumped.randomness.seed == seed
    assert dumped.work_dir == str(run_dir)
    logs = list(run_dir.glob('*/*.log'))
    assert len(logs) == 1
    timestamp = logs[0].parent.name
    assert logs[0].name == f'{timestamp}.log'
    text = logs[0].read_text()
    assert 'Checkpoints will be saved to' in text
    assert text.count('Epoch(train)') == 2
    scalars = [json.loads(line) for line in (
        run_dir / timestamp / 'vis_data' /
        'scalars.json').read_text().splitlines()]
    assert [s['epoch'] for s in scalars] == [1, 2]
    assert all(math.isfinite(s['loss']) for s in scalars)
    assert scalars[0]['lr'] == pytest.approx(1e-3)
    assert scalars[1]['lr'] < scalars[0]['lr']  # cosine over 2 epochs
    checkpoint = run_dir / 'epoch_2.pth'
    assert (run_dir / 'last_checkpoint').read_text().strip() == str(
        checkpoint)
    ckpt = safe_torch_load(str(checkpoint))
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['seed'] == seed
    assert ckpt['state_dict']
    from mmseg.registry import MODELS
    model = MODELS.build(dumped.model)
    model.load_state_dict(ckpt['state_dict'])  # strict: every key
    summary = json.loads((run_dir / 'fast_train.json').read_text())
    assert summary['completed'] is True and summary['epochs'] == 2
    assert summary['seed'] == seed and summary['runs_together'] == 2
    assert summary['checkpoint'] == str(checkpoint)
    # Fused Adam(W) exists on CUDA only; this CPU run used foreach.
    assert summary['fused_optimizer'] is False
    # The summary names the data it trained on.
    train = dumped.train_dataloader.dataset
    data = summary['trained_data']
    assert data['data_root'] == os.path.abspath(train.data_root)
    assert data['split_file'] == os.path.join(data['data_root'],
                                              train.ann_file)
    assert data['images'] == summary['train_images'] == len(
        open(data['split_file']).read().split())
    assert data['synthetic'] is False  # a converted set without the marker


@pytest.mark.slow
def test_collect_records_the_device_fast_train_ran_on(fast_trained,
                                                      tmp_path):
    """``fast_train.py --device cpu`` on a GPU machine: its log says CUDA
    was there, and leaderboard.py collect recorded the run as one on that
    GPU, exit 0. A run resumed on another device summed both devices'
    times under the last one's name."""
    from mmseg_dsnet.leaderboard.work_dir import (find_runs, parse_log,
                                                  training_device)
    work = tmp_path / 'run'
    shutil.copytree(fast_trained[0] / 'tiny_dsnet_seed0', work)
    log, = work.glob('*/*.log')
    text = log.read_text()
    assert '    device: CPU\n' in text
    # The environment of a GPU machine.
    log.write_text(text.replace(
        '    CUDA available: False',
        '    CUDA available: True\n    GPU 0: NVIDIA H200'))
    facts = json.loads((work / 'fast_train.json').read_text())

    def device():
        runs = find_runs(str(work))[0]
        infos = [parse_log(run['log']) for run in runs]
        return training_device(str(work), runs, infos, facts)

    assert device() == 'CPU'
    # Resumed on the GPU (a later log that says so).
    resumed = work / '29990101_000000'
    resumed.mkdir()
    (resumed / '29990101_000000.log').write_text(log.read_text().replace(
        '    device: CPU\n', '    device: NVIDIA H200\n'))
    with pytest.raises(UserError) as error:
        device()
    assert str(error.value) == (
        f'{work}: its training ran on different devices: '
        f'{log.parent.name}/{log.name}: CPU; '
        '29990101_000000/29990101_000000.log: NVIDIA H200; the record\'s '
        'training time and device would mix them. Collect runs that '
        'trained on one device (train again, or resume on the device the '
        'run started on)')
    shutil.rmtree(resumed)
    # A log of an earlier fast_train.py, without its device line.
    log.write_text(log.read_text().replace('    device: CPU\n', ''))
    assert device() == 'CPU'
    # mmengine's runs name their processes: four on one GPU model each.
    log.write_text(log.read_text().replace(
        'Runtime environment:\n', 'Runtime environment:\n'
        '    GPU number: 4\n    device: NVIDIA H200\n'))
    assert device() == '4 x NVIDIA H200'


@pytest.fixture(scope='module')
def fast_train_tool():
    return load_tool('fast_train.py')


@pytest.fixture
def images_never_decoded(monkeypatch):
    """Fail the test where the tool decodes the training images: its
    refusal must come before that work."""
    def decode(*args, **kwargs):
        pytest.fail('the training images were decoded first')

    monkeypatch.setattr(DecodedImageCache, 'from_dataset_cfg', decode)


def _cli_error(tool, argv, capsys):
    """Run the tool's ``main`` as its command line does. Returns the text
    the user sees, ``ERROR: ...`` (exit status 2); fails the test on a
    traceback (any other exception) or on no error at all."""
    from mmseg_dsnet.engine import run_reporting_user_errors
    capsys.readouterr()
    try:
        run_reporting_user_errors(lambda: tool.main([str(a) for a in argv]))
    except SystemExit as exc:
        assert exc.code == 2
        err = capsys.readouterr().err
        assert err.startswith('ERROR: ')
        return err
    except Exception as exc:  # noqa: BLE001  (raised: a traceback)
        pytest.fail(f'{argv} ended in a traceback, not an ERROR: line: '
                    f'{type(exc).__name__}: {exc}')
    pytest.fail(f'{argv} did not fail')


def test_fast_train_missing_config(fast_train_tool, tmp_path, capsys):
    missing = tmp_path / 'no_such_config.py'
    text = _cli_error(fast_train_tool,
                      [missing, '--work-dir', tmp_path / 'w', '--device',
                       'cpu'], capsys)
    assert f'config file {missing} does not exist' in text
    text = _cli_error(fast_train_tool,
                      [tmp_path, '--work-dir', tmp_path / 'w', '--device',
                       'cpu'], capsys)
    assert f'config file {tmp_path} is a folder, not a file' in text


def test_fast_train_bad_seeds(fast_train_tool, tiny_cfg, tmp_path, capsys):
    text = _cli_error(fast_train_tool,
                      [f'{tiny_cfg}@x', '--work-dir', tmp_path / 'w',
                       '--device', 'cpu'], capsys)
    assert 'seeds after @ must be integers' in text and '@x' in text
    # An empty list after @ trained the default seed.
    text = _cli_error(fast_train_tool,
                      [f'{tiny_cfg}@', '--work-dir', tmp_path / 'w',
                       '--device', 'cpu'], capsys)
    assert 'seeds after @ must be integers' in text
    # numpy refused a negative seed with a traceback, once training began.
    text = _cli_error(fast_train_tool,
                      [f'{tiny_cfg}@0,-1', '--work-dir', tmp_path / 'w',
                       '--device', 'cpu'], capsys)
    assert f'the seed of {tiny_cfg}@0,-1 must be an integer from 0 to ' \
        '2**32 - 1, got -1' in text
    text = _cli_error(fast_train_tool,
                      [str(tiny_cfg), '--seed', '-2', '--work-dir',
                       tmp_path / 'w', '--device', 'cpu'], capsys)
    assert '--seed must be an integer from 0 to 2**32 - 1' in text
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('option,value,message', [
    ('--time-limit', '0', '--time-limit must be positive, got 0'),
    ('--time-limit', 'nan', '--time-limit must be positive, got nan'),
    ('--val-interval', '-1', '--val-interval must be at least 0'),
    ('--checkpoint-interval', '-1', '--checkpoint-interval must be at least'),
    ('--workers', '0', '--workers must be at least 1'),
    ('--warmup-iters', '-1', '--warmup-iters must be at least 0'),
])
def test_fast_train_refuses_settings_it_would_not_follow(
        fast_train_tool, tiny_cfg, tmp_path, capsys, option, value, message):
    """Each used to start training anyway (``--workers -1`` failed later
    with a traceback, while decoding the images)."""
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, option, value, '--work-dir', tmp_path / 'w',
                       '--device', 'cpu'], capsys)
    assert message in text
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('option,message', [
    ('model.backbone.stem_stride=3', 'stem_stride must be 1 or 2, got 3'),
    ('model.decode_head.num_classes=3',
     'model.decode_head.num_classes=3 but the training dataset'),
])
def test_fast_train_refuses_a_model_it_cannot_train(
        fast_train_tool, tiny_cfg, tmp_path, capsys, option, message):
    """Refused from the config, before any image is decoded or folder
    made."""
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', tmp_path / 'w', '--device',
                       'cpu', '--cfg-options', option], capsys)
    assert message in text, text
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('wrapper', sorted(WRAPPED_DATASETS))
def test_fast_train_refuses_a_wrapped_training_dataset(
        fast_train_tool, tiny_cfg, tmp_path, capsys, wrapper):
    """The trainer read ``train_dataloader.dataset.pipeline`` and built the
    dataset with it: each wrapper ended in an ``AttributeError`` traceback
    (``'ConfigDict' object has no attribute 'pipeline'``, a
    ``MultiImageMixDataset`` has no ``prepare_data``), exit 1, after the
    work dir was made."""
    config = write_wrapped_config(tmp_path / 'wrapped.py', tiny_cfg, wrapper)
    text = _cli_error(fast_train_tool,
                      [config, '--work-dir', tmp_path / 'w', '--device',
                       'cpu'], capsys)
    assert text.startswith(
        f'ERROR: {config}: train_dataloader.dataset is a {wrapper} ('), text
    assert 'a wrapper of other datasets, which fast training does not ' \
        'read' in text
    assert text.count('\n') == 1
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('config,argv,missing', [
    ('configs/_base_/models/dsnet.py', [],
     'train_dataloader.dataset.pipeline, optim_wrapper, train_cfg'),
    ('configs/_base_/datasets/isic_256x256.py', [],
     'model, optim_wrapper, train_cfg'),
    ('{tiny}', ['--val-interval', '1', '--cfg-options',
                'val_dataloader=None'], 'val_dataloader.dataset'),
    ('{tiny}', ['--test', '--cfg-options', 'test_dataloader=None'],
     'test_dataloader.dataset'),
])
def test_fast_train_names_what_a_config_lacks(fast_train_tool, tiny_cfg,
                                              tmp_path, capsys, config,
                                              argv, missing):
    """A model base config gave ``EncoderDecoder is not in the
    mmengine::model registry``, a dataset base config an
    ``AttributeError`` traceback (``no attribute 'model'``); a config
    without a val_dataloader, with ``--val-interval``, decoded the images,
    made the run's log folder, then failed with a traceback; one without a
    test_dataloader, with ``--test``, trained all its epochs and then
    failed with a traceback (``'NoneType' object has no attribute
    'dataset'``), exit 1."""
    config = config.format(tiny=tiny_cfg)
    text = _cli_error(fast_train_tool,
                      [config, '--work-dir', tmp_path / 'w', '--device',
                       'cpu'] + argv, capsys)
    assert text.startswith(f'ERROR: config file {config} sets no {missing}: '
                           "fast training trains the config's model"), text
    assert text.rstrip().endswith('give a training config such as '
                                  'configs/dsnet/dsnet_isic2017.py')
    assert not (tmp_path / 'w').exists()


def test_fast_train_refuses_a_load_from_it_would_not_load(
        fast_train_tool, tiny_cfg, tmp_path, capsys):
    """A config's ``load_from`` (fine-tuning from a checkpoint) was left
    out: the run trained from the model's own initialisation and was
    recorded as the config's, exit 0."""
    checkpoint = tmp_path / 'pretrained.pth'
    checkpoint.write_bytes(b'weights')
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', tmp_path / 'w', '--device',
                       'cpu', '--cfg-options', f'load_from={checkpoint}'],
                      capsys)
    assert text == (
        f'ERROR: {tiny_cfg}: load_from={checkpoint} is set, and fast '
        "training does not load it (it trains from the model's own "
        'initialisation); train this config with tools/train.py, or set '
        '--cfg-options load_from=None to train from scratch\n')
    assert not (tmp_path / 'w').exists()


def test_fast_train_refuses_a_learning_rate_scale_without_a_base(
        fast_train_tool, tiny_cfg, tmp_path, capsys):
    """``auto_scale_lr`` is now applied; enabled without the batch size the
    rate is set for, mmengine's runner fails with an ``AssertionError``
    once training starts, and the fast trainer would have had no ratio."""
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', tmp_path / 'w', '--device',
                       'cpu', '--cfg-options', 'auto_scale_lr.enable=True'],
                      capsys)
    assert text == (
        f'ERROR: {tiny_cfg}: auto_scale_lr is enabled with '
        'base_batch_size=None; give the batch size the learning rate is set '
        'for (a positive integer), or set auto_scale_lr.enable=False\n')
    assert not (tmp_path / 'w').exists()
    # A key mmengine does not read: the rate was left unscaled, exit 0.
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', tmp_path / 'w', '--device',
                       'cpu', '--cfg-options', 'auto_scale_lr.enabled=True',
                       'auto_scale_lr.base_batch_size=2'], capsys)
    assert text == (
        f'ERROR: {tiny_cfg}: auto_scale_lr.enabled is not read by mmengine, '
        "which takes only enable and base_batch_size; did you mean 'enable'? "
        '(the learning rate would not be scaled as meant)\n')
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('option,message', [
    ('randomness.seed=5', "--cfg-options randomness.seed=5: fast_train.py "
     "sets each run's randomness itself, with only the seed of --seed or "
     'CONFIG@SEEDS, so this would be dropped; give --seed 5'),
    ('work_dir={out}', '--cfg-options work_dir={out}: fast_train.py puts '
     'each run in --work-dir (one sub-folder per run when there are '
     'several), so this would be dropped; give --work-dir {out}'),
    # Trained 2 epochs with no validation and only epoch_2.pth, exit 0.
    ('train_cfg.val_interval=1', '--cfg-options train_cfg.val_interval=1: '
     'fast_train.py validates only with --val-interval N (every N epochs '
     'and after the last), so this would be dropped; give --val-interval '
     'instead'),
    ('default_hooks.checkpoint.interval=1', '--cfg-options '
     'default_hooks.checkpoint.interval=1: fast_train.py saves its '
     'checkpoints itself (the last epoch, every --checkpoint-interval '
     'epochs keeping the newest only, and with --val-interval the best by '
     "the checkpoint hook's save_best and rule, which are all it reads of "
     'it), so this would be dropped; give --checkpoint-interval N'),
    ('default_hooks.checkpoint.max_keep_ckpts=5', '--cfg-options '
     'default_hooks.checkpoint.max_keep_ckpts=5: fast_train.py saves its '
     'checkpoints itself (the last epoch, every --checkpoint-interval '
     'epochs keeping the newest only, and with --val-interval the best by '
     "the checkpoint hook's save_best and rule, which are all it reads of "
     'it), so this would be dropped'),
    ('resume=True', '--cfg-options resume=True: fast_train.py continues a '
     'run only with --resume, so this would be dropped; give --resume'),
])
def test_fast_train_refuses_cfg_options_it_would_drop(
        fast_train_tool, tiny_cfg, tmp_path, capsys, option, message):
    """The trainer sets every run's randomness and work dir itself:
    ``randomness.seed=5`` trained, dumped and recorded seed 0
    (``tiny_fast_seed0``), ``work_dir=X`` wrote the run into --work-dir and
    left X empty, exit 0. Its loop and checkpoints follow its flags:
    ``train_cfg.val_interval=1`` or ``default_hooks.checkpoint.interval=1``
    trained without a validation or the checkpoints asked for, exit 0."""
    out = tmp_path / 'elsewhere'
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', tmp_path / 'w', '--device',
                       'cpu', '--cfg-options', option.format(out=out)],
                      capsys)
    assert text == f'ERROR: {message.format(out=out)}\n'
    assert not (tmp_path / 'w').exists() and not out.exists()


def test_fast_train_refuses_a_save_best_the_validation_lacks(
        fast_train_tool, tiny_cfg, tmp_path, capsys, images_never_decoded):
    """``--val-interval 2 --cfg-options
    default_hooks.checkpoint.save_best=iou``: the run decoded the images,
    trained until its first validation and then stopped (``ERROR: save_best
    key 'iou' is not among the validation metrics``), leaving a log folder
    and a dumped config. Refused before anything is decoded or made."""
    work = tmp_path / 'w'

    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', work, '--device', 'cpu',
                       '--val-interval', '2', '--cfg-options',
                       'default_hooks.checkpoint.save_best=iou'], capsys)
    assert text.startswith(
        "ERROR: default_hooks.checkpoint.save_best='iou' is not a figure of "
        "the validation, which reports IoU, "), text
    assert "did you mean 'IoU'?" in text
    assert not work.exists()


def test_fast_train_refuses_a_validation_split_before_decoding(
        fast_train_tool, tiny_cfg, tmp_path, capsys, images_never_decoded):
    """A validation split that cannot be read (``--val-interval`` with a
    wrong ``val_dataloader.dataset.data_root``) was refused only after
    every training image was decoded and the run's log folder and dumped
    config were made."""
    work = tmp_path / 'w'
    missing = tmp_path / 'no_data'

    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', work, '--device', 'cpu',
                       '--val-interval', '1', '--cfg-options',
                       f'val_dataloader.dataset.data_root={missing}'],
                      capsys)
    assert text.startswith(f'ERROR: ISIC2018Dataset: split file {missing}/'
                           'splits/lightweight_test.txt does not exist'), text
    # Refused before the work dir is made.
    assert not work.exists()


@pytest.mark.slow
def test_a_validation_over_a_replaced_sample_stops_a_fast_run(
        fast_train_tool, tiny_isic, tmp_path, capsys):
    """``--val-interval 1`` with ``on_bad_sample='skip'`` on a validation
    split holding a truncated image: the image was replaced by the next
    one, the figures logged as the epoch's and ``best_IoU_epoch_2.pth``
    chosen from them, exit 0 (as in ``tools/train.py``). Now the run stops
    at that validation, before any figure is recorded or best kept."""
    data = shutil.copytree(tiny_isic, tmp_path / 'data')
    cfg = write_tiny_config(tmp_path / 'tiny.py', data)
    name = (data / 'splits' / 'lightweight_test.txt').read_text().split()[2]
    image = data / 'images' / f'{name}.jpg'
    image.write_bytes(image.read_bytes()[:300])
    work = tmp_path / 'w'
    text = _cli_error(fast_train_tool,
                      [cfg, '--work-dir', work, '--device', 'cpu',
                       '--val-interval', '1', '--cfg-options',
                       'val_dataloader.dataset.on_bad_sample=skip'], capsys)
    assert text.splitlines()[-1] == (
        'ERROR: Validation after epoch 1: 1 bad sample was replaced by '
        f"another sample (on_bad_sample='skip'): {image}. Its figures are "
        'therefore not over the whole validation split; they were not '
        'recorded and chose no best checkpoint. Fix or remove the file '
        '(and its line in the split file), then train again or --resume '
        '(the checkpoints saved so far are kept)'), text
    assert not list(work.rglob('*.pth'))
    assert not (work / 'fast_train.json').exists()
    assert all('IoU' not in path.read_text()
               for path in work.rglob('scalars.json'))


def test_fast_train_different_batch_sizes(fast_train_tool, tiny_isic,
                                          tmp_path, capsys):
    first = write_tiny_config(tmp_path / 'first.py', tiny_isic)
    second = tmp_path / 'second.py'
    second.write_text(f"_base_ = '{first}'\n"
                      'train_dataloader = dict(batch_size=2)\n')
    text = _cli_error(fast_train_tool,
                      [first, second, '--work-dir', tmp_path / 'w',
                       '--device', 'cpu'], capsys)
    assert str(second) in text and 'batch_size' in text
    # Refused before the work dirs are made (they were left empty).
    assert not (tmp_path / 'w').exists()


def test_fast_train_refuses_an_iteration_loop_before_the_work_dir(
        fast_train_tool, tiny_cfg, tmp_path, capsys):
    """An ``IterBasedTrainLoop`` was refused once the work dir was made
    (left empty)."""
    config = tmp_path / 'iters.py'
    config.write_text(f"_base_ = '{tiny_cfg}'\n"
                      "train_cfg = dict(_delete_=True, "
                      "type='IterBasedTrainLoop', max_iters=4)\n")
    text = _cli_error(fast_train_tool,
                      [config, '--work-dir', tmp_path / 'w', '--device',
                       'cpu'], capsys)
    assert text == (f'ERROR: {config}: fast training needs an epoch-based '
                    'train_cfg with max_epochs\n')
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('argv,seed', [([], 42), (['--seed', '3'], 3),
                                       (['@1'], 1)])
def test_fast_train_trains_the_config_files_seed(fast_train_tool, tiny_cfg,
                                                  tmp_path, argv, seed):
    """A config file's ``randomness.seed=42`` trained seed 0 (--seed's
    default), dumped and recorded as seed 0, exit 0; now the file's seed is
    the default, as in tools/train.py (--seed or CONFIG@SEEDS still
    choose)."""
    config = tmp_path / 'mine.py'
    config.write_text(f"_base_ = '{tiny_cfg}'\nrandomness = dict(seed=42)\n")
    runs = [f'{config}{argv[0]}'] if argv[:1] == ['@1'] else \
        [str(config)] + argv
    args = fast_train_tool.parse_args(runs + ['--work-dir',
                                              str(tmp_path / 'w')])
    (spec, ) = fast_train_tool.build_specs(args)
    assert spec.seed == seed and spec.name == f'mine_seed{seed}'


def test_fast_train_refuses_a_bad_seed_in_the_config_file(
        fast_train_tool, tiny_cfg, tmp_path, capsys):
    config = tmp_path / 'mine.py'
    config.write_text(f"_base_ = '{tiny_cfg}'\nrandomness = dict(seed=-1)\n")
    text = _cli_error(fast_train_tool,
                      [config, '--work-dir', tmp_path / 'w', '--device',
                       'cpu'], capsys)
    assert text == (f'ERROR: randomness.seed of {config} must be an integer '
                    'from 0 to 2**32 - 1, got -1\n')
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('runs', [['{cfg}', '{cfg}'], ['{cfg}@1,1'],
                                  ['{cfg}@0', '{cfg}']])
def test_fast_train_same_config_and_seed_twice(fast_train_tool, tiny_cfg,
                                               tmp_path, capsys, runs):
    argv = [r.format(cfg=tiny_cfg) for r in runs]
    text = _cli_error(fast_train_tool,
                      argv + ['--work-dir', tmp_path / 'w', '--device',
                              'cpu'], capsys)
    assert 'the same config and seed twice' in text


@pytest.mark.slow
def test_a_run_does_not_depend_on_the_runs_beside_it(tiny_cfg, tmp_path):
    """Seed 0 of a config trains the same model whether it trains alone or
    together with other runs (as its shuffling, from a per-run generator,
    already does)."""
    from mmseg_dsnet.compat import safe_torch_load
    from mmseg_dsnet.engine.fast_training import FastTrainer, RunSpec

    def train(name, seeds):
        specs = []
        for seed in seeds:
            cfg = Config.fromfile(str(tiny_cfg))
            cfg.train_cfg.max_epochs = 1
            specs.append(RunSpec(cfg, str(tiny_cfg), seed,
                                 str(tmp_path / name / f'seed{seed}')))
        FastTrainer(specs, device='cpu', workers=2, progress=False).train()
        return safe_torch_load(
            str(tmp_path / name / 'seed0' / 'epoch_1.pth'))['state_dict']

    alone = train('alone', [0])
    again = train('again', [0])
    together = train('together', [0, 1])
    for key, value in alone.items():
        assert torch.equal(value, again[key]), key  # deterministic
    differ = [k for k, v in alone.items()
              if v.is_floating_point() and not torch.equal(v, together[k])]
    assert not differ, (
        f'{len(differ)} of {len(alone)} tensors differ, e.g. {differ[0]}')


def test_a_run_started_in_the_second_of_another_gets_its_own_log_folder(
        tiny_cfg, tmp_path):
    """A run into a work dir whose log folder of its start second another
    run holds (a quick resume, a test started then) wrote its log over
    that run's and mixed its scalars into the other's vis_data."""
    from mmseg_dsnet.engine.fast_training import FastTrainer, RunSpec
    cfg = Config.fromfile(str(tiny_cfg))
    cfg.train_cfg.max_epochs = 1
    work = tmp_path / 'seed0'
    trainer = FastTrainer([RunSpec(cfg, str(tiny_cfg), 0, str(work))],
                          device='cpu', workers=2, progress=False)
    stamp = trainer.timestamp
    (work / stamp).mkdir(parents=True)
    (work / stamp / f'{stamp}.log').write_text("the other run's log\n")
    trainer.train()
    assert (work / stamp / f'{stamp}.log').read_text() == \
        "the other run's log\n"
    assert os.listdir(work / stamp) == [f'{stamp}.log']
    log = (work / f'{stamp}_1' / f'{stamp}_1.log').read_text()
    assert log.count('Epoch(train)') == 1
    assert (work / f'{stamp}_1' / 'vis_data' / 'scalars.json').is_file()


@pytest.mark.parametrize('asked', [False, True])
def test_fast_training_sets_cudnn_benchmark_as_the_config_asks(
        tiny_cfg, tmp_path, monkeypatch, asked):
    """``env_cfg.cudnn_benchmark=False`` trained with cuDNN's benchmark on
    (its kernels picked by timing, not by torch's heuristics), exit 0;
    the trainer sets the flag from the config as mmengine's runner does,
    on any device."""
    from mmseg_dsnet.engine.fast_training import (FastTrainer, RunSpec,
                                                  TrainingRun)
    monkeypatch.setattr(torch.backends.cudnn, 'benchmark', not asked)
    seen = []
    step = TrainingRun.step

    def noting_step(self, iteration):
        seen.append(torch.backends.cudnn.benchmark)
        return step(self, iteration)

    monkeypatch.setattr(TrainingRun, 'step', noting_step)
    cfg = Config.fromfile(str(tiny_cfg))
    cfg.train_cfg.max_epochs = 1
    cfg.env_cfg.cudnn_benchmark = asked
    FastTrainer([RunSpec(cfg, str(tiny_cfg), 0, str(tmp_path / 'w'))],
                device='cpu', workers=2, progress=False).train()
    assert seen and set(seen) == {asked}


def test_fast_train_configs_sharing_a_file_name(fast_train_tool, tiny_cfg,
                                                tmp_path, capsys):
    """Runs are named after the config file, so two different configs with
    one name are refused before anything is written."""
    other = tmp_path / 'elsewhere' / osp.basename(str(tiny_cfg))
    other.parent.mkdir()
    other.write_text(f"_base_ = '{tiny_cfg}'\n")
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, other, '--work-dir', tmp_path / 'w',
                       '--device', 'cpu'], capsys)
    assert 'share a file name' in text and str(other) in text
    assert not (tmp_path / 'w').exists() or not list(
        (tmp_path / 'w').glob('*/*.log'))


@pytest.mark.slow
def test_fast_train_validates_and_tests_the_best_checkpoint(
        fast_train_tool, tiny_cfg, tmp_path, capsys):
    """--val-interval validates like mmengine's ValLoop, keeps the best
    checkpoint by the config's save_best key and --test evaluates it,
    unless it was chosen on the test split itself."""
    work = tmp_path / 'val_run'
    code = fast_train_tool.main([
        str(tiny_cfg), '--work-dir', str(work), '--device', 'cpu',
        '--val-interval', '1', '--test', '--cfg-options',
        # The design hold-out is held out of lightweight_train.
        'train_dataloader.dataset.ann_file='
        'splits/lightweight_design_train.txt',
        'val_dataloader.dataset.ann_file=splits/lightweight_design_val.txt'
    ])
    assert code == 0
    # The training log (tools/test.py --test writes a second one).
    log, = [p for p in work.glob('*/*.log')
            if 'Epoch(train)' in p.read_text()]
    scalars = [json.loads(line) for line in (
        log.parent / 'vis_data' / 'scalars.json').read_text().splitlines()]
    val = [s for s in scalars if 'IoU' in s]
    assert [s['step'] for s in val] == [1, 2]
    assert log.read_text().count('Epoch(val)') == 2
    best = max(val, key=lambda s: s['IoU'])
    best_file = work / f'best_IoU_epoch_{best["step"]}.pth'
    assert best_file.is_file()
    assert len(list(work.glob('best_*.pth'))) == 1
    record = json.loads((work / 'fast_train.json').read_text())
    assert record['best']['score'] == pytest.approx(best['IoU'])
    tested = json.loads((work / 'test_metrics.json').read_text())
    assert tested['checkpoint'] == str(best_file)
    # The tiny config validates on its test split (as the lightweight
    # protocols do): the last checkpoint is tested instead, and a line
    # says why.
    on_test = tmp_path / 'val_on_test'
    capsys.readouterr()
    assert fast_train_tool.main([
        str(tiny_cfg), '--work-dir', str(on_test), '--device', 'cpu',
        '--val-interval', '1', '--test']) == 0
    assert ('chosen by validating on lightweight_test.txt, the split it is '
            'tested on') in capsys.readouterr().out
    assert list(on_test.glob('best_*.pth'))
    tested = json.loads((on_test / 'test_metrics.json').read_text())
    assert os.path.basename(tested['checkpoint']) == 'epoch_2.pth'


@pytest.mark.slow
def test_fast_train_resume_continues_exactly(fast_train_tool, tiny_cfg,
                                             tmp_path):
    """Two epochs in one go and one epoch + --resume for the second give
    the same weights (optimizer state, sampling order and augmentation
    generators are restored), and the log tells the resumed story."""
    from mmseg_dsnet.compat import safe_torch_load
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    base = ['--device', 'cpu', '--seed', '3']
    assert fast_train_tool.main(
        [str(tiny_cfg), '--work-dir', str(straight)] + base) == 0
    assert fast_train_tool.main(
        [str(tiny_cfg), '--work-dir', str(split)] + base +
        ['--cfg-options', 'train_cfg.max_epochs=1']) == 0
    assert fast_train_tool.main(
        [str(tiny_cfg), '--work-dir', str(split), '--resume'] + base) == 0
    a = safe_torch_load(str(straight / 'epoch_2.pth'))
    b = safe_torch_load(str(split / 'epoch_2.pth'))
    assert a['meta']['epoch'] == b['meta']['epoch'] == 2
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), key
    assert not (split / 'epoch_1.pth').exists()  # newest kept only
    record = json.loads((split / 'fast_train.json').read_text())
    assert record['resumed_from_epoch'] == 1 and record['epochs'] == 2
    logs = sorted(split.glob('*/*.log'))
    assert len(logs) == 2 and 'resumed from' in logs[1].read_text()


@pytest.mark.slow
def test_a_fast_run_checkpoint_carries_its_training_config(
        fast_train_tool, tiny_cfg, tmp_path):
    """fast_train.py's checkpoints held no training config (meta['cfg']):
    tools/test.py scored one on its own training images, or under a config
    of another network, exit 0. Now it holds the run's config, as the
    Runner's do, and only its own network on other images is tested."""
    from conftest import run_tool_in_process

    from mmseg_dsnet.compat import safe_torch_load
    work = tmp_path / 'run'
    assert fast_train_tool.main(
        [str(tiny_cfg), '--work-dir', str(work), '--device', 'cpu',
         '--cfg-options', 'train_cfg.max_epochs=1']) == 0
    checkpoint = work / 'epoch_1.pth'

    def test(out, *options):
        return run_tool_in_process(
            'tools/test.py', tiny_cfg, checkpoint, '--work-dir',
            tmp_path / out, '--cfg-options', *options)

    own = test('own', 'test_dataloader.dataset.ann_file='
               'splits/lightweight_train.txt')
    assert own.returncode == 2, own.stdout[-2000:]
    assert own.stderr.strip().startswith('ERROR: checkpoint ')
    assert re.search(r'was trained on (\d+) of the \1 images', own.stderr)
    assert not (tmp_path / 'own' / 'test_metrics.json').exists()
    other = test('other', 'model.decode_head.align_corners=True')
    assert other.returncode == 2
    assert 'model.decode_head.align_corners is False in its training ' \
        "config (meta['cfg']), True in the config" in other.stderr
    assert not (tmp_path / 'other' / 'test_metrics.json').exists()
    # The config the run trained with, --cfg-options included.
    text = safe_torch_load(str(checkpoint))['meta']['cfg']
    assert Config.fromstring(text, '.py').train_cfg.max_epochs == 1
    # Its own network on its test split is tested.
    fine = test('fine', 'test_dataloader.dataset.ann_file='
                'splits/lightweight_test.txt')
    assert fine.returncode == 0, fine.stderr[-2000:]
    assert (tmp_path / 'fine' / 'test_metrics.json').is_file()


def _one_epoch_run(fast_train_tool, tiny_cfg, work):
    """Train one epoch into ``work``; its files' bytes by path."""
    assert fast_train_tool.main(
        [str(tiny_cfg), '--work-dir', str(work), '--device', 'cpu',
         '--cfg-options', 'train_cfg.max_epochs=1']) == 0
    return {p: p.read_bytes() for p in work.rglob('*') if p.is_file()}


@pytest.fixture(scope='module')
def one_epoch_run(fast_train_tool, tiny_cfg, tmp_path_factory):
    """One epoch trained once for the tests whose ``--resume`` of it must be
    refused before anything is written: its work dir and its files' bytes
    just after training (each test checks the folder still holds exactly
    those, so a refusal that wrote there fails it, and the tests after)."""
    work = tmp_path_factory.mktemp('one_epoch') / 'work'
    return work, _one_epoch_run(fast_train_tool, tiny_cfg, work)


@pytest.mark.parametrize('options,key', [
    (['default_hooks.checkpoint.save_best=auto'], None),
    (['default_hooks.checkpoint.save_best=[IoU,DSC]',
      'default_hooks.checkpoint.rule=[greater,greater]'], 'IoU'),
])
def test_fast_train_keeps_the_best_checkpoint_the_hook_would(
        fast_train_tool, tiny_cfg, tmp_path, options, key):
    """``save_best='auto'`` (mmengine: the first metric) stopped the run
    after its first validation (``ERROR: save_best key 'auto' is not among
    the validation metrics``), exit 2; a list of rules was compared as the
    string 'greater', so every validation scoring lower than the first
    was kept as the best checkpoint, exit 0."""
    work = tmp_path / 'w'
    assert fast_train_tool.main(
        [str(tiny_cfg), '--work-dir', str(work), '--device', 'cpu',
         '--val-interval', '1', '--cfg-options', 'train_cfg.max_epochs=3']
        + options) == 0
    lines = [json.loads(line) for line in next(
        work.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    validations = [line for line in lines if 'loss' not in line]
    assert len(validations) == 3
    key = key or next(iter(validations[0]))
    scores = [line[key] for line in validations]
    assert len(set(scores)) > 1  # the choice is a real one
    best = 1 + scores.index(max(scores))
    assert [p.name for p in work.glob('best_*.pth')] == [
        f'best_{key}_epoch_{best}.pth']
    summary = json.loads((work / 'fast_train.json').read_text())
    assert summary['best']['key'] == key
    assert summary['best']['epoch'] == best


def test_fast_train_keeps_the_best_checkpoint_by_the_rule_mmengine_infers(
        fast_train_tool, tiny_cfg, tmp_path, capsys):
    """A ``save_best`` without a ``rule`` was kept by the rule 'greater'
    whatever the figure: with the hook's ``less_keys`` naming it (as for a
    loss or a distance, lower is better) mmengine's CheckpointHook keeps
    the lowest, the fast trainer kept the highest, exit 0. Now the rule is
    the one mmengine infers; a figure it cannot tell the direction of
    (``IoU``, no rule) is refused before training, as it stops
    ``tools/train.py``."""
    from mmseg_dsnet.engine.preflight import save_best_rule
    less = tmp_path / 'less.py'
    less.write_text(
        f"_base_ = '{tiny_cfg}'\n"
        "default_hooks = dict(checkpoint=dict(save_best='IoU', rule=None, "
        "less_keys=['IoU']))\n")
    work = tmp_path / 'w'
    assert fast_train_tool.main(
        [str(less), '--work-dir', str(work), '--device', 'cpu',
         '--val-interval', '1', '--cfg-options',
         'train_cfg.max_epochs=3']) == 0
    validations = [line for line in map(json.loads, next(
        work.glob('*/vis_data/scalars.json')).read_text().splitlines())
        if 'loss' not in line]
    scores = [line['IoU'] for line in validations]
    assert len(scores) == 3 and len(set(scores)) > 1
    best = 1 + scores.index(min(scores))
    assert [p.name for p in work.glob('best_*.pth')] == [
        f'best_IoU_epoch_{best}.pth']
    # mmengine's own inference, key by key.
    for key, hook, rule in (
            ('val_loss', {}, 'less'), ('mIoU', {}, 'greater'),
            ('IoU', dict(rule='less'), 'less'),
            ('DSC', dict(save_best=['IoU', 'DSC'],
                         rule=['greater', 'less']), 'less')):
        assert save_best_rule(dict(hook), key) == rule
    refused = tmp_path / 'refused'
    text = _cli_error(fast_train_tool, [
        tiny_cfg, '--work-dir', refused, '--device', 'cpu',
        '--val-interval', '1', '--cfg-options',
        'default_hooks.checkpoint.rule=None'], capsys)
    assert text == (
        "ERROR: default_hooks.checkpoint.save_best='IoU' has no rule, and "
        "mmengine's CheckpointHook cannot tell from the name whether a "
        'higher or a lower IoU is better (it would stop the run); set '
        "default_hooks.checkpoint.rule='greater' (or 'less')\n")
    assert not refused.exists()


def test_fast_train_resume_refuses_another_amp(fast_train_tool, tiny_cfg,
                                               one_epoch_run, capsys):
    """``--resume --amp`` of a run trained without it (or the reverse)
    continued it under bfloat16 autocast, exit 0, and its
    ``fast_train.json`` recorded ``"amp": true`` for the whole run."""
    work, before = one_epoch_run
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', work, '--device', 'cpu',
                       '--resume', '--amp'], capsys)
    assert text.startswith(
        f'ERROR: --resume: {work}/epoch_1.pth was trained with another '
        f"config than {tiny_cfg}: --amp (the checkpoint's run: no --amp). "
        'Resuming would mix two runs'), text
    assert {p: p.read_bytes() for p in work.rglob('*') if p.is_file()} \
        == before


def test_fast_train_resume_refuses_another_seed_or_config(
        fast_train_tool, tiny_cfg, tmp_path, capsys):
    """``--resume`` with another ``--seed`` or other options continued the
    run (its optimizer state and generators from the checkpoint, the rest
    from the new options), exit 0, and its ``fast_train.json`` and dumped
    config named the new seed and settings: a mix of two runs recorded as
    the second. Now refused before anything is written; the run's own
    settings (a longer schedule, other decoding threads) resume. A new
    run without ``--resume`` over the old one is refused too."""
    work = tmp_path / 'work'
    before = _one_epoch_run(fast_train_tool, tiny_cfg, work)
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', work, '--device', 'cpu',
                       '--resume', '--seed', '7', '--cfg-options',
                       'optim_wrapper.optimizer.weight_decay=0.5'], capsys)
    assert text == (
        f'ERROR: --resume: {work}/epoch_1.pth was trained with another '
        f"config than {tiny_cfg}: seed=7 (the checkpoint's: 0); "
        'optim_wrapper.optimizer.weight_decay=0.5 (the checkpoint\'s: '
        "0.01). Resuming would mix two runs (the optimizer's state and "
        'settings come from the checkpoint, the rest from the config); '
        'resume with the config and --cfg-options the run was started '
        'with (data locations, loader workers and a longer '
        'train_cfg.max_epochs may differ), or train the changed config in '
        'another --work-dir\n')
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', work, '--device', 'cpu',
                       '--resume', '--cfg-options',
                       'train_dataloader.batch_size=2'], capsys)
    assert "train_dataloader.batch_size=2 (the checkpoint's: 4)" in text
    # Without --resume: a new run over the old one's checkpoints.
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', work, '--device', 'cpu'],
                      capsys)
    assert text.startswith(f'ERROR: The work dir {work} already holds the '
                           'checkpoints of a run (epoch_1.pth, '
                           'last_checkpoint); a new run'), text
    after = {p: p.read_bytes() for p in work.rglob('*') if p.is_file()}
    assert after == before
    assert fast_train_tool.main(
        [str(tiny_cfg), '--work-dir', str(work), '--device', 'cpu',
         '--resume', '--workers', '2']) == 0
    record = json.loads((work / 'fast_train.json').read_text())
    assert (record['seed'], record['epochs']) == (0, 2)


def test_fast_train_resume_refuses_the_synthetic_set_for_real_images(
        fast_train_tool, tiny_cfg, one_epoch_run, tiny_isic, tmp_path,
        capsys):
    """``--resume`` of a run on real images, now reading the synthetic
    stand-in (the fallback when the data is absent, or a root naming it):
    data roots may differ on resume, so the run went on on other images,
    exit 0. Refused before anything is written."""
    import shutil

    from mmseg_dsnet.datasets.converters.isic import SYNTHETIC_MARKER
    synthetic = tmp_path / 'synthetic_isic2018'
    shutil.copytree(tiny_isic, synthetic)
    (synthetic / SYNTHETIC_MARKER).write_text('synthetic\n')
    work, before = one_epoch_run
    text = _cli_error(fast_train_tool, [
        tiny_cfg, '--work-dir', work, '--device', 'cpu', '--resume',
        '--cfg-options', f'train_dataloader.dataset.data_root={synthetic}'],
        capsys)
    assert text.startswith(
        f'ERROR: --resume: {work}/epoch_1.pth was trained on other data '
        f'than {tiny_cfg} reads: train_dataloader.dataset.data_root='
        f"'{synthetic}' (synthetic; the checkpoint's: '{tiny_isic}', not "
        'synthetic). '), text
    assert {p: p.read_bytes() for p in work.rglob('*') if p.is_file()} \
        == before


def test_train_py_refuses_to_resume_a_fast_train_run(fast_train_tool,
                                                    tiny_cfg, one_epoch_run,
                                                    capsys):
    """``tools/train.py --resume`` of a work dir the fast trainer wrote:
    mmengine's runner dumped its config over the fast trainer's (the one
    ``fast_train.py --resume`` compares with), then ended with a
    ``KeyError: 'message_hub'`` traceback. Refused before anything is
    written."""
    work, before = one_epoch_run
    text = _cli_error(load_tool('train.py'),
                      [tiny_cfg, '--work-dir', work, '--resume'], capsys)
    assert text == (
        f'ERROR: --resume: {work}/epoch_1.pth was saved by '
        'tools/fast_train.py, whose checkpoints hold none of the state '
        "mmengine's runner resumes; continue that run with "
        'tools/fast_train.py --resume (and the options it was started '
        'with), or train anew in another --work-dir\n')
    assert {p: p.read_bytes() for p in work.rglob('*') if p.is_file()} \
        == before


def test_fast_train_refuses_to_resume_a_train_py_run(fast_train_tool,
                                                    tiny_cfg, tmp_path,
                                                    capsys):
    """``fast_train.py --resume`` of a work dir ``tools/train.py`` wrote:
    the fast trainer dumped its config over the runner's and made a log
    folder, then ended with a ``KeyError: 'generators'`` traceback.
    Refused before anything is written."""
    work = tmp_path / 'work'
    code, err = run_cli(load_tool('train.py').main, [
        tiny_cfg, '--work-dir', work, '--cfg-options',
        'train_cfg.max_epochs=1'], capsys)
    assert code == 0, err
    before = {p: p.read_bytes() for p in work.rglob('*') if p.is_file()}
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', work, '--device', 'cpu',
                       '--resume'], capsys)
    assert text == (
        f'ERROR: --resume: {work}/epoch_1.pth was not saved by '
        "tools/fast_train.py (mmengine's runner, tools/train.py, saves "
        'checkpoints like it) and holds none of its data order and '
        'augmentation state; continue that run with tools/train.py '
        '--resume, or train anew in another --work-dir\n')
    assert {p: p.read_bytes() for p in work.rglob('*') if p.is_file()} \
        == before


def test_fast_train_resume_without_checkpoint(fast_train_tool, tiny_cfg,
                                              tmp_path, capsys):
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', tmp_path / 'empty',
                       '--device', 'cpu', '--resume'], capsys)
    assert 'no last_checkpoint' in text and 'empty' in text


def test_fast_train_refuses_before_writing(fast_train_tool, tiny_cfg,
                                           one_epoch_run, tmp_path, capsys,
                                           monkeypatch):
    """``--resume`` of a finished run replaced its ``fast_train.json`` with
    0 img/s and no final losses and added an empty log folder, exit 0;
    ``--device cuda`` without CUDA was a traceback after the work dir was
    made. Both are refused before anything is written."""
    work, before = one_epoch_run
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', work, '--device', 'cpu',
                       '--resume', '--cfg-options', 'train_cfg.max_epochs=1'],
                      capsys)
    assert text.startswith(f'ERROR: --resume: {work}/epoch_1.pth is at '
                           'epoch 1 and tiny_fast_seed0 trains 1 epoch: '
                           'nothing is left to train')
    after = {p: p.read_bytes() for p in work.rglob('*') if p.is_file()}
    assert after == before  # no new log folder; config and json kept
    # Without a checkpoint: no log folder, no dumped config.
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', tmp_path / 'empty',
                       '--device', 'cpu', '--resume'], capsys)
    assert 'no last_checkpoint' in text
    assert not (tmp_path / 'empty').exists()
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for device, message in (
            ('cuda', '--device cuda: CUDA is not available here; pass '
             '--device cpu'),
            ('gpu', '--device gpu: not a device; give cuda, cuda:N or cpu')):
        text = _cli_error(fast_train_tool,
                          [tiny_cfg, '--work-dir', tmp_path / 'w',
                           '--device', device], capsys)
        assert text.strip() == f'ERROR: {message}'
        assert not (tmp_path / 'w').exists()


def test_fast_train_refusal_creates_no_work_dir(fast_train_tool, tiny_cfg,
                                                tmp_path, capsys):
    """``--resume`` with a work dir that does not exist made it (empty)
    before refusing; a refused second run left the work dir of the first.
    Both are refused before any folder is made."""
    missing = tmp_path / 'missing' / 'work'
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', missing, '--device', 'cpu',
                       '--resume'], capsys)
    assert text == f'ERROR: --resume: no last_checkpoint in {missing}\n'
    assert not (tmp_path / 'missing').exists()
    # Two runs: the second (seed 1) cannot resume either.
    work = tmp_path / 'two'
    text = _cli_error(fast_train_tool,
                      [f'{tiny_cfg}@0,1', '--work-dir', work, '--device',
                       'cpu', '--resume'], capsys)
    assert text.startswith('ERROR: --resume: no last_checkpoint in ')
    assert not work.exists()
    # Without --resume: the second config's data root is missing.
    other = tmp_path / 'other.py'
    other.write_text(f"_base_ = '{tiny_cfg}'\n"
                     "train_dataloader = dict(dataset=dict("
                     f"data_root='{tmp_path / 'no_data'}'))\n")
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, other, '--work-dir', work, '--device',
                       'cpu'], capsys)
    assert 'no_data does not exist' in text
    assert not work.exists()


def test_fast_train_refuses_a_misspelt_loop_or_loader_key(
        fast_train_tool, tiny_cfg, tmp_path, capsys, images_never_decoded):
    """``train_cfg.max_epoch=3`` or ``train_dataloader.batch_sise=4``
    would train with the config's own value; each is refused before the
    work dir is made."""
    work = tmp_path / 'work'
    for option, message in (
            ('train_cfg.max_epoch=3', 'train_cfg.max_epoch=3 is no argument '
             "of EpochBasedTrainLoop; did you mean 'max_epochs'?"),
            ('train_dataloader.batch_sise=4', 'train_dataloader.batch_sise=4 '
             "is read neither by mmengine's runner nor by torch's "
             "DataLoader; did you mean 'batch_size'?")):
        text = _cli_error(fast_train_tool,
                          [tiny_cfg, '--work-dir', work, '--device', 'cpu',
                           '--cfg-options', option], capsys)
        assert text == f'ERROR: {tiny_cfg}: {message} Nothing was started.\n'
        assert not work.exists()


def test_fast_train_refuses_a_scheduler_mmengine_refuses(
        fast_train_tool, tiny_cfg, tmp_path, capsys, images_never_decoded):
    """A misspelt scheduler argument is refused before the work dir is
    made, naming the scheduler."""
    work = tmp_path / 'work'
    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', work, '--device', 'cpu',
                       '--cfg-options', 'param_scheduler.0.eta_mn=0'],
                      capsys)
    assert text == (
        f'ERROR: {tiny_cfg}: param_scheduler[0] (CosineAnnealingLR): '
        'CosineAnnealingParamScheduler.__init__() got an unexpected keyword '
        "argument 'eta_mn'. Nothing was started.\n")
    assert not work.exists()


@pytest.mark.slow
def test_leaderboard_collects_a_fast_run_with_gpu_json(fast_trained,
                                                       tmp_path):
    """leaderboard.py collect reads a fast_train work dir like a
    tools/train.py one, notes the trainer, and takes the GPU throughput from
    a benchmark.py JSON measured elsewhere (refusing a CPU one)."""
    work, _ = fast_trained
    run_dir = work / 'tiny_dsnet_seed0'
    config = run_dir / 'tiny_dsnet.py'
    from mmseg_dsnet.leaderboard import board as lb_board
    lb = load_tool('analysis_tools/leaderboard.py')
    bench = load_tool('analysis_tools/benchmark.py')
    cpu_json = tmp_path / 'cpu.json'
    result = bench.benchmark(Config.fromfile(str(config)), None, 'cpu',
                             (256, 256), batch_size=1, warmup=1, repeat=1,
                             throughput_repeat=1)
    cpu_json.write_text(json.dumps(result))
    common = ['collect', str(config), str(run_dir), '--no-benchmark',
              '--runs-dir', str(tmp_path / 'runs'), '--metrics-file']
    metrics = tmp_path / 'metrics.json'
    metrics.write_text(json.dumps(dict(metrics=dict(IoU=1.0, DSC=2.0))))
    with pytest.raises(UserError, match='not a benchmark.py --device cuda'):
        lb.main(common + [str(metrics), '--gpu-json', str(cpu_json)])
    gpu_json = tmp_path / 'gpu.json'
    gpu = dict(result, device='cuda:0', device_name='Some GPU',
               throughput=dict(result['throughput'], img_per_s=1234.5))
    # The re-parameterised model's time, or another model's, would stand
    # for this row's model as trained.
    for wrong, message in ((dict(deploy=True), 'the re-parameterised model'),
                           (dict(channels_last=True),
                            'in the channels-last memory format'),
                           (dict(params=result['params'] + 1),
                            'it measured another model')):
        gpu_json.write_text(json.dumps(dict(gpu, **wrong)))
        with pytest.raises(UserError, match=message):
            lb.main(common + [str(metrics), '--gpu-json', str(gpu_json)])
    # A model changed by benchmark.py --cfg-options with the same
    # parameters (no gate) passed the count: its recorded model is compared.
    own = json.loads(json.dumps(lb_board.comparable_model(
        Config.fromfile(str(config)).model)))
    no_gate = json.loads(json.dumps(own))
    no_gate['decode_head']['use_gate'] = False
    gpu_json.write_text(json.dumps(dict(
        gpu, model_config=no_gate,
        cfg_options={'model.decode_head.use_gate': False})))
    with pytest.raises(UserError, match=(
            r"times another model than the run's \(model\.decode_head\."
            r"use_gate differs; measured with --cfg-options")):
        lb.main(common + [str(metrics), '--gpu-json', str(gpu_json)])
    assert not (tmp_path / 'runs').exists()
    gpu_json.write_text(json.dumps(dict(gpu, model_config=own)))
    record = lb.main(common + [str(metrics), '--gpu-json', str(gpu_json)])
    assert record['gpu_img_per_s'] == 1234.5
    assert record['gpu_benchmark']['gpu'] == 'Some GPU'
    assert record['trainer']['tool'] == 'tools/fast_train.py'
    assert record['trainer']['cuda_graph'] is False  # trained on the CPU
    # Its log names the code that trained it, as mmengine's runs' do.
    from mmseg_dsnet.utils.code_revision import running_code_revision
    assert record['code_revision'] == running_code_revision()
    assert record['epochs'] == 2 and record['seed'] == 0
    assert record['device'] == 'CPU'


@pytest.mark.slow
def test_a_run_stopped_by_the_time_limit_is_an_error(fast_train_tool,
                                                    tiny_cfg, tmp_path,
                                                    capsys):
    """A run stopped before its last epoch ended with exit 2 and no ERROR
    line (only a progress message), easy to read as a trained run."""
    capsys.readouterr()
    code = fast_train_tool.main(
        [str(tiny_cfg), '--work-dir', str(tmp_path / 'w'), '--device', 'cpu',
         '--time-limit', '0.001', '--cfg-options', 'train_cfg.max_epochs=3'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith('ERROR: tiny_fast_seed0 did not train all its '
                              'epochs: stopped after epoch 2 of 3')
    assert sum(line.startswith('ERROR:') for line in err) == 1


def test_time_limit_stops_runs_from_the_end_and_saves_them(tiny_cfg,
                                                           tmp_path):
    """Over the time limit, the last of several runs is stopped first; the
    last remaining one is stopped before an epoch that would pass the limit
    (not at the first epoch, which holds warm-up and capture). Both are
    saved where they stopped, resumable."""
    from mmseg_dsnet.compat import safe_torch_load
    from mmseg_dsnet.engine.fast_training import FastTrainer, RunSpec
    specs = []
    for seed in (0, 1):
        cfg = Config.fromfile(str(tiny_cfg))
        cfg.train_cfg.max_epochs = 4
        specs.append(RunSpec(cfg, str(tiny_cfg), seed,
                             str(tmp_path / f'seed{seed}')))
    first, second = FastTrainer(specs, device='cpu', workers=2,
                                progress=False, time_limit=1e-3).train()
    assert (second['epochs'], first['epochs']) == (2, 3)
    assert not first['completed'] and not second['completed']
    assert 'with 2 runs' in second['stopped']
    assert 'another epoch would pass' in first['stopped']
    for summary, epoch in ((first, 3), (second, 2)):
        ckpt = safe_torch_load(summary['checkpoint'])
        assert ckpt['meta']['epoch'] == epoch and 'optimizer' in ckpt


class _TimeLimitProbe:
    """The trainer's time-limit rule on made-up timings: which runs it
    stops after an epoch."""

    def __init__(self, runs, max_epochs=10, time_limit=100.0):
        from mmseg_dsnet.engine.fast_training import FastTrainer
        self.trainer = FastTrainer.__new__(FastTrainer)
        self.trainer.time_limit = time_limit
        self.trainer.start_epoch = 0
        self.trainer.max_epochs = max_epochs
        self.states = [dict(active=True, name=i) for i in range(runs)]
        self.stopped = []

        def stop(state, epochs_done, reason):
            state['active'] = False
            self.stopped.append((state['name'], reason))
        self.trainer._stop = stop

    def after_epoch(self, epochs_done, elapsed, epoch_seconds):
        self.trainer._apply_time_limit(self.states, epochs_done, elapsed,
                                       epoch_seconds)
        return sorted(name for name, _ in self.stopped)


def test_time_limit_stops_as_many_runs_as_it_takes_at_once():
    """It stopped one run an epoch: with many runs started, the loop went
    on far past the limit while it shed them."""
    # 4 runs, 2 s each per epoch, 8 epochs left, 80 s of the limit left:
    # all four fit (64 s).
    assert _TimeLimitProbe(4).after_epoch(2, 20.0, 8.0) == []
    # 5 s each: two fit (80 s), the last two stop now.
    probe = _TimeLimitProbe(4)
    assert probe.after_epoch(2, 20.0, 20.0) == [2, 3]
    assert 'with 4 runs the loop would take 180 s' in probe.stopped[0][1]
    # Never fewer than one: the last run goes on until an epoch would pass
    # the limit.
    assert _TimeLimitProbe(3).after_epoch(2, 99.0, 30.0) == [1, 2]
    assert _TimeLimitProbe(1).after_epoch(2, 90.0, 20.0) == [0]


def test_time_limit_stops_no_run_after_the_last_epoch():
    """Past the limit at the last epoch, a run that had trained all its
    epochs was stopped and reported as not finished."""
    assert _TimeLimitProbe(3, max_epochs=2).after_epoch(2, 500.0, 100.0) \
        == []


def test_time_limit_keeps_only_the_runs_the_time_left_holds():
    """The runs kept are those the time left after this epoch holds, not
    the whole limit, and a run the time left holds only in part stops."""
    # 4 runs, 5 s each per epoch, 8 epochs left: 40 s a run; 70 s of the
    # limit is left, which holds one run (two would take 80 s).
    assert _TimeLimitProbe(4).after_epoch(2, 30.0, 20.0) == [1, 2, 3]


def test_time_limit_lets_the_last_run_end_at_the_limit():
    """An epoch that ends at the limit itself does not pass it."""
    assert _TimeLimitProbe(1).after_epoch(2, 80.0, 20.0) == []
    assert _TimeLimitProbe(1).after_epoch(2, 80.5, 20.0) == [0]


def test_time_limit_spares_the_first_epoch_after_a_resume():
    """The first epoch after ``--resume`` holds the warm-up and captures
    again: its pace says nothing of the epochs after it."""
    probe = _TimeLimitProbe(1)
    probe.trainer.start_epoch = 5
    assert probe.after_epoch(6, 90.0, 20.0) == []
    assert probe.after_epoch(7, 90.0, 20.0) == [0]


def test_time_limit_reads_the_pace_of_the_last_epoch(tiny_cfg, tmp_path,
                                                     monkeypatch):
    """The time limit projects the next epoch from the one just trained,
    not from the whole loop so far, on a clock that ticks 10 s a
    reading (one reading an epoch)."""
    import types

    from mmseg_dsnet.engine.fast_training import FastTrainer, RunSpec
    from mmseg_dsnet.engine.fast_training import fast_trainer
    cfg = Config.fromfile(str(tiny_cfg))
    cfg.train_cfg.max_epochs = 4
    trainer = FastTrainer([RunSpec(cfg, str(tiny_cfg), 0,
                                   str(tmp_path / 'w'))], device='cpu',
                          workers=1, progress=False, time_limit=35.0)
    ticks = iter(range(0, 10000, 10))
    clock = types.SimpleNamespace(**vars(fast_trainer.time))
    clock.perf_counter = lambda: float(next(ticks))
    monkeypatch.setattr(fast_trainer, 'time', clock)
    # After epoch 2: 20 s, another 10 s epoch ends at 30 s; after epoch 3
    # one would end at 40 s, past 35 s.
    summary, = trainer.train()
    assert summary['epochs'] == 3 and not summary['completed']
    assert summary['stopped'].startswith('stopped after epoch 3 of 4')


def test_fast_train_refuses_a_hook_it_would_not_run(fast_train_tool,
                                                    tiny_cfg, tmp_path,
                                                    capsys):
    """An EMAHook in custom_hooks was left out of the training without a
    word: the checkpoint held the trained weights, not their average."""
    config = tmp_path / 'tiny_ema.py'
    config.write_text(
        f"_base_ = '{tiny_cfg}'\n"
        'custom_hooks = _base_.custom_hooks + [dict(type="EMAHook", '
        'momentum=0.001)]\n')
    text = _cli_error(fast_train_tool,
                      [config, '--work-dir', tmp_path / 'w', '--device',
                       'cpu'], capsys)
    assert f'{config}: custom_hooks EMAHook would not run in fast ' \
        'training' in text, text
    assert not (tmp_path / 'w').exists()
    # The default runtime's hooks are the trainer's own work: accepted.
    from mmseg_dsnet.engine.fast_training import check_fast_run_config
    check_fast_run_config(Config.fromfile(str(tiny_cfg)), str(tiny_cfg))


def test_fast_train_resume_of_a_copied_work_dir_takes_its_own_checkpoint(
        tmp_path):
    """A copied work dir's ``last_checkpoint`` still names the original's
    checkpoint: ``--resume`` continued from the original's."""
    from mmseg_dsnet.engine.fast_training import (FastTrainingError,
                                                  last_checkpoint_of)
    original, copy = tmp_path / 'original', tmp_path / 'copy'
    for folder in (original, copy):
        folder.mkdir()
        (folder / 'epoch_2.pth').write_bytes(b'x')
    (copy / 'last_checkpoint').write_text(str(original / 'epoch_2.pth'))
    assert last_checkpoint_of(str(copy)) == str(copy / 'epoch_2.pth')
    (copy / 'epoch_2.pth').unlink()
    with pytest.raises(FastTrainingError, match=r'names .*original/epoch_2'
                       r'\.pth, a checkpoint outside the work dir'):
        last_checkpoint_of(str(copy))


# Stands in for the device scripts' python: tools/fast_train.py makes one
# run that trained all its epochs and one stopped by the time limit, and
# exits 2 as fast_train.py does then; tools/test.py records what it tested.
FAKE_PROTOCOL_PYTHON = r'''#!/usr/bin/env bash
tool=$1; shift
case $tool in
  tools/fast_train.py)
    while [ "$1" != --work-dir ]; do shift; done
    work=$2
    for run in done_seed0 stopped_seed1; do
      mkdir -p "$work/$run"; touch "$work/$run/$run.py"
      echo "$work/$run/epoch_2.pth" > "$work/$run/last_checkpoint"
      touch "$work/$run/epoch_2.pth"
    done
    printf '{\n  "completed": true,\n  "stopped": null\n}' \
      > "$work/done_seed0/fast_train.json"
    printf '{\n  "completed": false,\n  "stopped": "stopped after epoch 2 of 3"\n}' \
      > "$work/stopped_seed1/fast_train.json"
    exit 2 ;;
  tools/test.py)
    echo "$2" >> "$FAKE_TESTED"
    echo 'IoU: 80.0  DSC: 88.9'
    echo '{}' > "$4/test_metrics.json" ;;
esac
'''


def test_protocol_script_tests_only_finished_runs(tmp_path):
    """tools/device/isic2017_fast_protocol.sh tested a run stopped by
    TIME_LIMIT like a finished one (its summary line an IoU beside the
    others', a test_metrics.json that leaderboard.py collect reads) and
    exited 0; a TIME_LIMIT with a decimal point failed the shell's sum,
    so nothing trained, and it exited 0 too."""
    fake = tmp_path / 'python'
    fake.write_text(FAKE_PROTOCOL_PYTHON)
    fake.chmod(0o755)
    out = tmp_path / 'out'
    env = dict(os.environ, PYTHON=str(fake), OUT=str(out), EPOCHS='3',
               CALL_LIMIT='0', FAKE_TESTED=str(tmp_path / 'tested.txt'))
    script = str(REPO / 'tools/device/isic2017_fast_protocol.sh')
    proc = subprocess.run(['bash', script], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.endswith(
        'ERROR: not every run trained all its epochs and was tested '
        '(fast_train rc=2); see summary.txt\n')
    tested = (tmp_path / 'tested.txt').read_text().split()
    assert tested == [str(out / 'runs/done_seed0/epoch_2.pth')]
    summary = (out / 'summary.txt').read_text()
    assert 'done_seed0: IoU: 80.0  DSC: 88.9' in summary
    assert ('stopped_seed1: stopped, not tested ("stopped": "stopped after '
            'epoch 2 of 3")') in summary
    assert (out / 'results.tar.gz').is_file()
    proc = subprocess.run(['bash', script], env=dict(
        env, TIME_LIMIT='0.5', OUT=str(tmp_path / 'out2')), cwd=REPO,
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == ("ERROR: TIME_LIMIT must be a whole number "
                           "(seconds or epochs), got '0.5'\n")
    assert not (tmp_path / 'out2').exists()


#: Settings of a config file that the fast trainer left out (it trained,
#: exit 0): the text added to a config inheriting the tiny one, and the
#: start of the message.
UNFOLLOWED_FILE_SETTINGS = {
    'momentum schedule': (
        "param_scheduler = [dict(type='CosineAnnealingMomentum', T_max=1, "
        "eta_min=0.5, by_epoch=True)]",
        'param_scheduler[0] CosineAnnealingMomentum: fast training applies '
        'only the learning-rate schedule'),
    'weight-decay schedule': (
        "param_scheduler = [dict(type='CosineAnnealingParamScheduler', "
        "param_name='weight_decay', T_max=1, by_epoch=True)]",
        'param_scheduler[0] CosineAnnealingParamScheduler '
        '(param_name=weight_decay): fast training applies only the '
        'learning-rate schedule'),
    'plateau': (
        "param_scheduler = [dict(type='ReduceOnPlateauLR', monitor='IoU', "
        "rule='greater', patience=0)]",
        'param_scheduler[0] ReduceOnPlateauLR: it follows validation '
        'metrics'),
    'maximize': (
        'optim_wrapper = dict(optimizer=dict(maximize=True))',
        "optim_wrapper.optimizer.maximize=True: fast training builds "
        "torch's AdamW with only lr, betas, eps, weight_decay, amsgrad"),
    'SGD': (
        "optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', "
        'lr=0.01))',
        'optim_wrapper.optimizer.type=SGD: fast training steps only AdamW '
        'and Adam'),
    'clip_grad': (
        'optim_wrapper = dict(clip_grad=dict(max_norm=0.1))',
        "optim_wrapper.clip_grad={'max_norm': 0.1}: fast training does not "
        'clip gradients'),
    'accumulation': (
        'optim_wrapper = dict(accumulative_counts=2)',
        'optim_wrapper.accumulative_counts=2: fast training steps the '
        'optimizer every iteration'),
    'AMP': (
        "optim_wrapper = dict(type='AmpOptimWrapper')",
        'optim_wrapper.type=AmpOptimWrapper: fast training steps a plain '
        'OptimWrapper'),
    'deterministic': (
        'randomness = dict(seed=0, deterministic=True)',
        'randomness.deterministic=True: fast training does not make '
        "torch's algorithms deterministic"),
    'no shuffle': (
        "train_dataloader = dict(sampler=dict(type='DefaultSampler', "
        'shuffle=False))',
        'train_dataloader.sampler.shuffle=False: fast training reshuffles'),
    'sampler seed': (
        "train_dataloader = dict(sampler=dict(type='DefaultSampler', "
        'shuffle=True, seed=3))',
        "train_dataloader.sampler.seed=3: fast training shuffles with each "
        "run's own seed, so it would be left out; give the seed with --seed"),
    'batch augments': (
        "model = dict(data_preprocessor=dict(batch_augments=[dict(type='X')"
        ']))',
        'model.data_preprocessor.batch_augments: fast training does not run '
        'the data preprocessor'),
    'hook arguments': (
        "custom_hooks = [dict(type='ReseedPerEpochHook', seed=7)]",
        'custom_hooks ReseedPerEpochHook(seed=7): fast training does this '
        "hook's work itself"),
    'runner type': (
        "runner_type = 'MyRunner'",
        "runner_type=MyRunner: fast training runs its own trainer, not the "
        "config's runner class"),
    'transform argument': (
        "train_dataloader = dict(dataset=dict(pipeline=["
        "dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), "
        "dict(type='Resize', scale=(64, 64), keep_ratio=False), "
        "dict(type='RandomFlip', prob=0.5, swap_seg_labels=[(0, 1)]), "
        "dict(type='PackSegInputs')]))",
        'train_dataloader.dataset.pipeline: RandomFlip swap_seg_labels=['
        '(0, 1)]: fast training reads only prob, direction of RandomFlip'),
}


@pytest.mark.parametrize('case', sorted(UNFOLLOWED_FILE_SETTINGS))
def test_fast_train_refuses_a_file_setting_it_would_not_follow(
        fast_train_tool, tiny_cfg, tmp_path, capsys, images_never_decoded,
        case):
    """The same settings as refused ``--cfg-options``, written in the
    config file: each trained without it (a momentum or weight-decay
    schedule, a plateau schedule, ``maximize``, ``deterministic``, an
    unshuffled or seeded sampler, batch augments, a hook's or transform's
    arguments) and was recorded as the config's run, exit 0; clip_grad,
    accumulation, another optimizer or wrapper were refused only after
    the images were decoded and the work dir made. Now refused first."""
    text, message = UNFOLLOWED_FILE_SETTINGS[case]
    config = tmp_path / 'mine.py'
    config.write_text(f"_base_ = '{tiny_cfg}'\n{text}\n")

    err = _cli_error(fast_train_tool,
                     [config, '--work-dir', tmp_path / 'w', '--device',
                      'cpu'], capsys)
    assert err.startswith(f'ERROR: {config}: {message}'), err
    assert err.count('\n') == 1 and 'tools/train.py' in err
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('text', [
    # A warm-up before the cosine, a poly schedule, parameter-wise rates,
    # a kernel choice, and defaults written out: all followed.
    "param_scheduler = [dict(type='LinearLR', start_factor=0.1, "
    'by_epoch=False, begin=0, end=4), dict(type=\'PolyLR\', eta_min=0, '
    'power=0.9, by_epoch=True, begin=0, end=2)]',
    'optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0.0), '
    'optimizer=dict(foreach=True, amsgrad=True))',
    "param_scheduler = [dict(type='CosineAnnealingParamScheduler', "
    "param_name='lr', T_max=2, by_epoch=True)]",
    "custom_hooks = [dict(type='ReseedPerEpochHook', priority='NORMAL')]",
    'randomness = dict(seed=0, deterministic=False)',
    # mmengine's own Runner, named: the one the fast trainer stands for.
    "runner_type = 'Runner'",
])
def test_fast_train_follows_these_file_settings(tiny_cfg, tmp_path, text):
    from mmseg_dsnet.engine.fast_training import check_settings_followed
    config = tmp_path / 'mine.py'
    config.write_text(f"_base_ = '{tiny_cfg}'\n{text}\n")
    check_settings_followed(Config.fromfile(str(config)), str(config))


#: Shipped configs fast training refused before this check too (a random
#: transform without a device version, an EMA hook): tools/train.py's.
TRAIN_PY_ONLY = {
    'dsnet-design-deeper-eighth-photometric_isic2017.py':
    'PhotoMetricDistortion has no batched device implementation',
    'dsnet-design-deeper-eighth-zoom_isic2017.py':
    'RandomZoom has no batched device implementation',
}


@pytest.mark.parametrize('config', sorted(
    str(p.relative_to(REPO)) for folder in ('dsnet', 'egeunet', 'malunet')
    for p in (REPO / 'configs' / folder).rglob('*.py')))
def test_shipped_configs_pass_the_followed_settings_check(config):
    """fast_train.py and design_sweep.py --fast train these (the device
    scripts): the check must let every one through as before."""
    from mmseg_dsnet.engine.fast_training import (FastTrainingError,
                                                  check_settings_followed)
    cfg = Config.fromfile(str(REPO / config))
    refused = TRAIN_PY_ONLY.get(osp.basename(config))
    if refused is None:
        check_settings_followed(cfg, config)
    else:
        with pytest.raises(FastTrainingError, match=refused):
            check_settings_followed(cfg, config)


def test_lr_table_converts_epoch_schedulers_by_the_epoch_length():
    """``convert_to_iter_based=True`` (a warm-up over 2 epochs) runs per
    iteration over 2 x iters_per_epoch iterations, not 2 x max_epochs."""
    cfg = Config.fromfile(str(SCHEDULE_CFG))
    warmup = [dict(type='LinearLR', start_factor=0.1, by_epoch=True,
                   begin=0, end=2, convert_to_iter_based=True)]
    table = learning_rate_table(_wrapper(cfg.optim_wrapper), warmup, 4,
                                3)[:, 0].tolist()
    # 8 iterations of warm-up: the base rate from iteration 7 on.
    expected = [1e-3 * (0.1 + 0.9 * min(i, 7) / 7) for i in range(12)]
    assert table == pytest.approx(expected, rel=1e-9)


def _small_run(cfg, seed=0):
    cfg.model.data_preprocessor.size = (32, 32)
    cache = DecodedImageCache(torch.zeros(4, 3, 32, 32, dtype=torch.uint8),
                              torch.zeros(4, 32, 32, dtype=torch.uint8),
                              ['img'] * 4)
    return TrainingRun(cfg, cache, BatchedSegAugmentation([]), 2, 2, 3,
                       torch.device('cpu'), seed=seed)


def test_a_run_trains_with_the_configs_optimizer_settings():
    """The step's optimizer has the config's betas, eps and weight decay
    and the parameter groups of its ``paramwise_cfg``; the config's own
    values equal torch's defaults, so their loss would go unseen."""
    cfg = Config.fromfile(str(DSNET_CFG))
    cfg.optim_wrapper.optimizer.update(lr=2e-3, betas=(0.5, 0.6), eps=1e-4,
                                       weight_decay=0.3)
    cfg.optim_wrapper.paramwise_cfg = dict(
        norm_decay_mult=0.0,
        custom_keys={'decode_head': dict(lr_mult=0.1, decay_mult=0.5)})
    run = _small_run(cfg)
    assert type(run.optimizer) is torch.optim.AdamW
    names = {id(p): n for n, p in run.model.named_parameters()}
    norms = {id(p) for m in run.model.modules()
             if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm,
                               torch.nn.GroupNorm, torch.nn.LayerNorm))
             for p in m.parameters(recurse=False)}
    assert norms
    seen = 0
    for group in run.optimizer.param_groups:
        assert group['betas'] == (0.5, 0.6) and group['eps'] == 1e-4
        for param in group['params']:
            seen += 1
            head = names[id(param)].startswith('decode_head.')
            assert group['lr'] == pytest.approx(2e-4 if head else 2e-3)
            # mmengine: a custom key's multipliers replace norm_decay_mult.
            decay = 0.15 if head else 0.0 if id(param) in norms else 0.3
            assert group['weight_decay'] == pytest.approx(decay), \
                names[id(param)]
    assert seen == len(names)
    # The logged rate is the first group's (a backbone parameter's).
    assert not names[id(run.optimizer.param_groups[0]['params'][0])] \
        .startswith('decode_head.')
    run.set_iteration(0)
    assert run.learning_rate == pytest.approx(2e-3)


def test_a_runs_augmentation_draws_come_from_its_seed():
    """Each run draws its augmentation from a generator seeded with its
    own seed (the seed was otherwise recorded for a run trained on
    another's draws)."""
    runs = [_small_run(Config.fromfile(str(DSNET_CFG)), seed)
            for seed in (7, 7, 8)]
    for run in runs:
        run.draws = torch.zeros(2, 3)
        run.draw()
    expected = torch.rand(2, 3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(runs[0].draws, expected)
    assert torch.equal(runs[1].draws, expected)
    assert not torch.equal(runs[2].draws, expected)


def test_fast_train_test_refuses_a_random_test_pipeline_before_training(
        fast_train_tool, tiny_cfg, tmp_path, capsys):
    """``fast_train.py --test`` with a test pipeline that rotates at
    random: the whole training ran first, and tools/test.py refused the
    pipeline only then. Now refused before any work dir is made."""
    config = tmp_path / 'tiny_rotated_test.py'
    config.write_text(
        f"_base_ = '{tiny_cfg}'\n"
        'test_dataloader = dict(dataset=dict(pipeline=['
        "dict(type='LoadImageFromFile'), "
        "dict(type='Resize', scale=(64, 64), keep_ratio=False), "
        "dict(type='LoadAnnotations'), "
        "dict(type='RandomRotate', prob=0.5, degree=30), "
        "dict(type='PackSegInputs')]))\n")
    text = _cli_error(fast_train_tool,
                      [config, '--test', '--work-dir', tmp_path / 'w',
                       '--device', 'cpu'], capsys)
    assert text.startswith(
        f'ERROR: test_dataloader.dataset.pipeline[3] of {config}: '
        'RandomRotate draws at random'), text
    assert not (tmp_path / 'w').exists()


def test_fast_train_test_names_the_split_the_best_was_chosen_on(
        fast_train_tool, tiny_cfg, tmp_path, capsys):
    """A run of a design config validates and tests on the design hold-out:
    --test said its best checkpoint was passed over for being 'chosen by
    validating on the test split', a split the run never read; the line
    names the split of the config's loaders."""
    work = tmp_path / 'design_run'
    work.mkdir()
    design = 'splits/lightweight_design_val.txt'
    (work / 'tiny_design.py').write_text(
        f"_base_ = '{tiny_cfg}'\n"
        f"val_dataloader = dict(dataset=dict(ann_file='{design}'))\n"
        f"test_dataloader = dict(dataset=dict(ann_file='{design}'))\n")
    # No checkpoint on disk: tools/test.py refuses it, which is not what
    # this test is about.
    codes = fast_train_tool.test_runs([dict(
        name='tiny_design', completed=True, config='tiny_design.py',
        work_dir=str(work), checkpoint=str(work / 'epoch_2.pth'),
        best=dict(path=str(work / 'best_IoU_epoch_1.pth')))])
    assert codes['tiny_design'] != 0
    assert ('[fast_train] tiny_design: testing the last checkpoint, not '
            'best_IoU_epoch_1.pth: it was chosen by validating on '
            'lightweight_design_val.txt, the split it is tested on\n'
            ) in capsys.readouterr().out


def test_fast_train_test_passes_over_a_best_chosen_on_a_renamed_test_split(
        fast_train_tool, tiny_cfg, tiny_isic, tmp_path, capsys):
    """A run validating on a link to its test split under another name
    (``held_out.txt``): by name the best checkpoint was chosen on another
    split, and --test scored the checkpoint picked on the test images."""
    import os
    work = tmp_path / 'linked_run'
    work.mkdir()
    test = tiny_isic / 'splits' / 'lightweight_test.txt'
    linked = tmp_path / 'held_out.txt'
    os.symlink(test, linked)
    (work / 'tiny_linked.py').write_text(
        f"_base_ = '{tiny_cfg}'\n"
        f"val_dataloader = dict(dataset=dict(ann_file='{linked}'))\n")
    codes = fast_train_tool.test_runs([dict(
        name='tiny_linked', completed=True, config='tiny_linked.py',
        work_dir=str(work), checkpoint=str(work / 'epoch_2.pth'),
        best=dict(path=str(work / 'best_IoU_epoch_1.pth')))])
    assert codes['tiny_linked'] != 0
    count = len(test.read_text().split())
    assert ('[fast_train] tiny_linked: testing the last checkpoint, not '
            'best_IoU_epoch_1.pth: it was chosen by validating on '
            f'held_out.txt, which lists {count} images of {test} ('
            ) in capsys.readouterr().out


def test_fast_train_test_passes_over_a_best_chosen_on_a_wrapped_test_split(
        fast_train_tool, tiny_cfg, monkeypatch, tmp_path, capsys):
    """A test loader whose dataset is a wrapper (a ConcatDataset of the
    test split) names no split file itself: the best checkpoint, chosen
    by validating on that test split, was the one --test scored."""
    import subprocess
    work = tmp_path / 'wrapped_run'
    work.mkdir()
    (work / 'tiny_wrapped.py').write_text(
        f"_base_ = '{tiny_cfg}'\n"
        "test_dataloader = dict(dataset=dict(_delete_=True, "
        "type='ConcatDataset', "
        "datasets=[{{_base_.val_dataloader.dataset}}]))\n")
    commands = []
    monkeypatch.setattr(subprocess, 'call',
                        lambda cmd: commands.append(cmd) or 0)
    last = str(work / 'epoch_2.pth')
    fast_train_tool.test_runs([dict(
        name='tiny_wrapped', completed=True, config='tiny_wrapped.py',
        work_dir=str(work), checkpoint=last,
        best=dict(path=str(work / 'best_IoU_epoch_1.pth')))])
    assert commands[0][3] == last
    assert ('[fast_train] tiny_wrapped: testing the last checkpoint, not '
            'best_IoU_epoch_1.pth: it was chosen by validating on '
            'lightweight_test.txt, the split it is tested on\n'
            ) in capsys.readouterr().out


def test_an_auto_scale_lr_without_enable_leaves_the_rate():
    """mmengine's ``Runner.scale_lr`` scales only when ``enable`` is set
    (its default is False): a config giving only ``base_batch_size``
    trains at its own rate."""
    cfg = Config.fromfile(str(DSNET_CFG))
    cfg.optim_wrapper.optimizer.lr = 2e-3
    cfg.auto_scale_lr = dict(base_batch_size=16)
    run = _small_run(cfg)
    assert run.lr_scale == 1.0
    assert run.lr_table[0, 0].item() == pytest.approx(2e-3)


def test_a_run_trains_with_the_configs_amsgrad():
    """``amsgrad`` is one of the optimizer keys the fast step follows."""
    cfg = Config.fromfile(str(DSNET_CFG))
    cfg.optim_wrapper.optimizer.amsgrad = True
    run = _small_run(cfg)
    assert run.optimizer.param_groups
    assert all(group['amsgrad'] for group in run.optimizer.param_groups)


def test_a_run_refuses_a_preprocessor_size_other_than_the_cached_one():
    """``data_preprocessor.size`` pads every batch to it in tools/train.py;
    the fast step, which does not pad, would train at the cached size."""
    cfg = Config.fromfile(str(DSNET_CFG))
    cfg.model.data_preprocessor.size = (64, 64)
    cache = DecodedImageCache(torch.zeros(4, 3, 64, 48, dtype=torch.uint8),
                              torch.zeros(4, 64, 48, dtype=torch.uint8),
                              ['img'] * 4)
    with pytest.raises(FastTrainingError,
                       match=r'^data_preprocessor.size \(64, 64\) differs '
                       r'from the cached image size \(64, 48\)'):
        TrainingRun(cfg, cache, BatchedSegAugmentation([]), 2, 2, 1,
                    torch.device('cpu'))


def test_a_run_records_the_schedule_it_trained_with(tiny_cfg, tmp_path):
    """11 images in batches of 4: 2 iterations an epoch, 3 epochs. A
    warm-up stepped every iteration (0.1 to 1 of the rate over iterations
    0-3) gives each epoch's last step the rate 4e-4, 1e-3, 1e-3 (the
    iteration counter, not the epoch's first one, picks the rate); the
    records say iterations 2, 4, 6; ``val_interval=2`` validates after
    epochs 2 and 3 (the last); ``checkpoint_interval=2`` saves epochs 2
    and 3, keeping epoch 3. The run's data order and augmentation draws
    come from generators seeded with its seed (5): three shuffles of 11
    images, and six steps of one flip draw for 4 images."""
    from mmseg_dsnet.compat import safe_torch_load
    from mmseg_dsnet.engine.fast_training import FastTrainer, RunSpec
    cfg = Config.fromfile(str(tiny_cfg))
    cfg.train_cfg.max_epochs = 3
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1,
                                by_epoch=False, begin=0, end=4)]
    work = tmp_path / 'run'
    summary, = FastTrainer([RunSpec(cfg, str(tiny_cfg), 5, str(work))],
                           device='cpu', workers=2, progress=False,
                           val_interval=2, checkpoint_interval=2).train()
    lines = [json.loads(line) for line in next(
        work.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    train = [line for line in lines if 'loss' in line]
    assert [line['epoch'] for line in train] == [1, 2, 3]
    assert [line['iter'] for line in train] == [2, 4, 6]
    assert [line['lr'] for line in train] == pytest.approx(
        [4e-4, 1e-3, 1e-3], rel=1e-9)
    assert [line['step'] for line in lines if 'loss' not in line] == [2, 3]
    assert summary['final_scalars']['lr'] == pytest.approx(1e-3)
    assert summary['last_validation']['epoch'] == 3
    log = next(work.glob('*/*.log')).read_text()
    assert re.findall(r'Saving checkpoint at (\d+) epochs', log) == ['2', '3']
    assert sorted(p.name for p in work.glob('epoch_*.pth')) == [
        'epoch_3.pth']
    checkpoint = safe_torch_load(str(work / 'epoch_3.pth'))
    meta = checkpoint['meta']
    assert (meta['epoch'], meta['iter'], meta['seed']) == (3, 6, 5)
    order, draws = torch.Generator(), torch.Generator()
    order.manual_seed(5)
    draws.manual_seed(5)
    for _ in range(3):
        torch.randperm(11, generator=order)
    for _ in range(6):
        torch.rand(4, 1, generator=draws)
    assert torch.equal(checkpoint['generators']['order'], order.get_state())
    assert torch.equal(checkpoint['generators']['augmentation'],
                       draws.get_state())


def test_validating_does_not_change_what_a_run_trains(tiny_cfg, tmp_path):
    """A run validated after each epoch ends with the weights and
    statistics of the same run never validated: the validation evaluates
    the model and hands it back in training mode (BatchNorm layers left in
    eval mode would train epoch 2 on stale running statistics)."""
    from mmseg_dsnet.compat import safe_torch_load
    from mmseg_dsnet.engine.fast_training import FastTrainer, RunSpec

    def train(name, val_interval):
        cfg = Config.fromfile(str(tiny_cfg))
        FastTrainer([RunSpec(cfg, str(tiny_cfg), 0, str(tmp_path / name))],
                    device='cpu', workers=2, progress=False,
                    val_interval=val_interval).train()
        return safe_torch_load(str(tmp_path / name / 'epoch_2.pth'))

    plain, validated = train('plain', 0), train('validated', 1)
    assert validated['meta']['best']['epoch'] in (1, 2)
    assert plain['state_dict'].keys() == validated['state_dict'].keys()
    for key, value in plain['state_dict'].items():
        assert torch.equal(value, validated['state_dict'][key]), key


class _FixedFigures:
    """Stands in for the validation of a run: the figures given, in turn."""

    def __init__(self, *scores):
        self.scores = list(scores)

    def __len__(self):
        return 4

    def __call__(self, model, epoch):
        return dict(IoU=self.scores.pop(0), DSC=0.0)


@pytest.mark.parametrize('rule,scores,best', [
    ('greater', (0.5, 0.5, 0.7, 0.6), 3),
    ('greater', (0.5, 0.5, 0.4), 1),  # a tie keeps the earlier checkpoint
    ('less', (0.5, 0.5, 0.4, 0.6), 3),
    ('less', (0.5, 0.5, 0.6), 1),
])
def test_the_best_checkpoint_follows_the_rule_as_the_hook_does(
        tiny_cfg, tmp_path, rule, scores, best):
    """mmengine's CheckpointHook keeps a new best only when the score is
    strictly better by ``rule`` (without one, the rule it infers from the
    key: test_fast_train_keeps_the_best_checkpoint_by_the_rule_mmengine_
    infers); the previous best file is removed."""
    from mmseg_dsnet.engine.fast_training import FastTrainer, RunSpec
    cfg = Config.fromfile(str(tiny_cfg))
    cfg.default_hooks.checkpoint.rule = rule
    work = tmp_path / 'run'
    trainer = FastTrainer([RunSpec(cfg, str(tiny_cfg), 0, str(work))],
                          device='cpu', workers=2, progress=False,
                          val_interval=1)
    trainer._prepare()
    trainer.start_epoch = 0
    state = trainer._start_run(trainer.specs[0])
    state['validator'] = _FixedFigures(*scores)
    for epoch in range(1, len(scores) + 1):
        trainer._validate(state, epoch)
    assert (state['best']['epoch'], state['best']['score']) == (
        best, scores[best - 1])
    assert [p.name for p in work.glob('best_*.pth')] == [
        f'best_IoU_epoch_{best}.pth']


def _train_specs(tiny_cfg, runs, **options):
    """Train ``runs`` ((work dir, seed, max_epochs), ...) together with
    :class:`FastTrainer` on the CPU; returns the summaries."""
    from mmseg_dsnet.engine.fast_training import FastTrainer, RunSpec
    specs = []
    for work, seed, epochs in runs:
        cfg = Config.fromfile(str(tiny_cfg))
        cfg.train_cfg.max_epochs = epochs
        specs.append(RunSpec(cfg, str(tiny_cfg), seed, str(work)))
    return FastTrainer(specs, device='cpu', workers=2, progress=False,
                       **options).train()


def test_a_resumed_run_keeps_the_best_checkpoint_it_had(tiny_cfg, tmp_path):
    """The best score and file of the epochs before ``--resume`` carry
    over: the best is the best of all validations, and the file of a
    beaten best is removed (one best_*.pth)."""
    work = tmp_path / 'run'
    _train_specs(tiny_cfg, [(work, 0, 1)], val_interval=1)
    assert [p.name for p in work.glob('best_*.pth')] == [
        'best_IoU_epoch_1.pth']
    summary, = _train_specs(tiny_cfg, [(work, 0, 3)], val_interval=1,
                            resume=True)
    scores = [json.loads(line)['IoU'] for path in sorted(
        work.glob('*/vis_data/scalars.json'))
        for line in path.read_text().splitlines() if 'IoU' in line]
    assert len(scores) == 3
    best = 1 + scores.index(max(scores))
    assert summary['best']['epoch'] == best
    assert [p.name for p in work.glob('best_*.pth')] == [
        f'best_IoU_epoch_{best}.pth']


def test_runs_resumed_together_must_stand_at_the_same_epoch(tiny_cfg,
                                                            tmp_path):
    """Runs step through one epoch loop: a run saved at epoch 1 resumed
    with one saved at epoch 2 is refused before anything is written."""
    first, second = tmp_path / 'first', tmp_path / 'second'
    _train_specs(tiny_cfg, [(first, 0, 1)])
    _train_specs(tiny_cfg, [(second, 1, 2)])
    before = {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()}
    with pytest.raises(FastTrainingError,
                       match=r"^--resume: runs trained together must stand "
                       r"at the same epoch, found \{'tiny_fast_seed0': 1, "
                       r"'tiny_fast_seed1': 2\}$"):
        _train_specs(tiny_cfg, [(first, 0, 3), (second, 1, 3)],
                     resume=True)
    assert {p: p.read_bytes() for p in tmp_path.rglob('*')
            if p.is_file()} == before


@pytest.mark.parametrize('option,message', [
    (dict(scale=1.5), 'RandomRotate scale != 1 is not supported'),
    (dict(auto_bound=True), 'RandomRotate auto_bound is not supported'),
    (dict(center=(10, 10)), 'RandomRotate center is not supported'),
])
def test_a_rotation_option_the_augmentation_does_not_apply_is_refused(
        option, message):
    """mmseg's RandomRotate reads these; the device rotation turns about
    the centre at scale 1 without growing the canvas, so a config setting
    them would train without them."""
    with pytest.raises(FastTrainingError, match=f'^{message} by fast '
                       'training$'):
        BatchedSegAugmentation([dict(type='RandomRotate', prob=0.5,
                                     degree=20, **option)])
    # Their defaults are what it does.
    BatchedSegAugmentation([dict(type='RandomRotate', prob=0.5, degree=20,
                                 scale=1.0, auto_bound=False, center=None)])


def test_a_second_rotation_is_refused():
    """The device augmentation holds one rotation: a second RandomRotate
    would replace the first instead of rotating twice."""
    with pytest.raises(FastTrainingError,
                       match='^only one RandomRotate is supported$'):
        BatchedSegAugmentation([rotate_cfg(10), rotate_cfg(30)])


def test_an_unknown_flip_direction_is_refused_when_built():
    """Refused with the pipeline, not as a KeyError at the first step once
    every image was decoded."""
    with pytest.raises(FastTrainingError,
                       match='^unknown flip direction sideways$'):
        BatchedSegAugmentation([dict(type='RandomFlip', prob=0.5,
                                     direction='sideways')])


def test_masked_accuracy_threshold_equals_mmseg():
    """A pixel scoring exactly the threshold is not counted correct, as in
    mmseg's ``accuracy`` (which takes a threshold for (N, C) scores
    only)."""
    from mmseg.models.losses import accuracy
    pred = torch.tensor([[0.5, 0.2], [0.9, 0.1]])
    target = torch.tensor([0, 0])
    expected = accuracy(pred, target, thresh=0.5)
    assert expected.item() == pytest.approx(50.0)
    torch.testing.assert_close(masked_accuracy(pred, target, thresh=0.5),
                               expected)


def test_masked_bce_ignores_negative_labels_as_mmseg():
    from mmseg.models.losses.cross_entropy_loss import binary_cross_entropy
    g = torch.Generator().manual_seed(2)
    pred = torch.randn(2, 1, 6, 5, generator=g)
    label = torch.randint(0, 2, (2, 6, 5), generator=g)
    label[0, :2] = -1
    kwargs = dict(ignore_index=255, avg_non_ignore=True)
    torch.testing.assert_close(
        masked_binary_cross_entropy(pred, label, **kwargs),
        binary_cross_entropy(pred, label, **kwargs))


def test_fast_train_refuses_a_test_mode_mmseg_cannot_score_with(
        fast_train_tool, tiny_cfg, tmp_path, capsys, images_never_decoded):
    """``--val-interval 1 --cfg-options model.test_cfg.mode=slid``: the
    run decoded the images and trained until its first validation, where
    mmseg asserted the mode (a traceback). Refused before anything is
    decoded or made."""
    work = tmp_path / 'w'

    text = _cli_error(fast_train_tool,
                      [tiny_cfg, '--work-dir', work, '--device', 'cpu',
                       '--val-interval', '1', '--cfg-options',
                       'model.test_cfg.mode=slid'], capsys)
    assert text.startswith(
        f"ERROR: {tiny_cfg}: model.test_cfg.mode='slid' is neither 'whole' "
        "nor 'slide'; mmseg scores images whole"), text
    assert not work.exists()


def test_fast_train_refuses_a_work_dir_another_training_holds(
        fast_train_tool, tiny_cfg, tmp_path, capsys, images_never_decoded):
    """A fast run into the work dir of a training that still runs (another
    fast_train.py or tools/train.py) trained beside it and saved its
    checkpoints over the other's, exit 0. Refused before anything is
    decoded; the work dir is left as it was."""
    from mmseg_dsnet.engine.preflight import training_work_dir_lock
    work = tmp_path / 'w'
    work.mkdir()

    with training_work_dir_lock(str(work)):
        text = _cli_error(fast_train_tool,
                          [tiny_cfg, '--work-dir', work, '--device', 'cpu'],
                          capsys)
    assert text == (
        f'ERROR: The work dir {work} is being written by another training '
        'now: two trainings at once would save their checkpoints over one '
        'another. Nothing was started; wait for it to end, or choose '
        'another --work-dir.\n')
    assert list(work.iterdir()) == []
