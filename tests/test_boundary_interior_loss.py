"""Boundary-interior correction loss and its morphology maps."""
import pytest
import torch
from mmseg.registry import MODELS

from mmseg_dsnet.models.losses import (BoundaryInteriorLoss,
                                       boundary_interior_maps)

torch.manual_seed(0)


def square_mask(size=11, start=2, side=7):
    mask = torch.zeros(1, size, size)
    mask[:, start:start + side, start:start + side] = 1
    return mask


def test_maps_of_a_square_are_exact():
    boundary, interior = boundary_interior_maps(square_mask(), width=1)
    expected_interior = torch.zeros(1, 11, 11)
    expected_interior[:, 3:8, 3:8] = 1  # eroded 7x7 -> 5x5
    dilated = torch.zeros(1, 11, 11)
    dilated[:, 1:10, 1:10] = 1  # dilated 7x7 -> 9x9
    assert torch.equal(interior, expected_interior)
    assert torch.equal(boundary, dilated - expected_interior)
    assert boundary.sum() == 81 - 25

    boundary, interior = boundary_interior_maps(square_mask(), width=2)
    assert interior.sum() == 9  # 3x3 core
    assert interior[0, 4:7, 4:7].all()
    assert boundary.sum() == 11 * 11 - 9  # 11x11 dilation fills the image
    # Width 0 would be a band of no pixel at all.
    with pytest.raises(ValueError, match='width must be >= 1, got 0'):
        boundary_interior_maps(square_mask(), width=0)


def test_image_border_and_ignored_pixels_make_no_boundary():
    # A lesion filling the left half: its only real contour is column 4|5.
    mask = torch.zeros(1, 8, 10)
    mask[:, :, :5] = 1
    boundary, interior = boundary_interior_maps(mask, width=1)
    assert torch.equal(boundary.sum(1), torch.tensor([[0., 0., 0., 0., 8.,
                                                       8., 0., 0., 0., 0.]]))
    assert interior[0, :, :4].all() and interior.sum() == 32

    # Ignore the top two rows: no band along that edge of the lesion.
    valid = torch.ones(1, 8, 10, dtype=torch.bool)
    valid[:, :2] = False
    boundary, interior = boundary_interior_maps(mask * valid, 1, valid)
    assert boundary[:, :2].sum() == 0 and interior[:, :2].sum() == 0
    assert interior[0, 2, :4].all()  # row next to the ignored area
    assert boundary[0, 2:].sum(0)[4:6].tolist() == [6., 6.]


@pytest.mark.parametrize('width', [1, 2, 3, 4, 7, 12])
def test_maps_equal_max_pool_morphology_at_any_size(width):
    """The maps come from separable running maxima; they equal the
    definition by square max-pools, also where the window is larger than
    the picture and around ignored pixels."""
    import torch.nn.functional as F

    def square_max(x):
        return F.max_pool2d(x[:, None], 2 * width + 1, 1, width)[:, 0]

    generator = torch.Generator().manual_seed(width)
    for height, columns in ((1, 1), (3, 17), (16, 5), (40, 64)):
        shape = (2, height, columns)
        mask = (torch.rand(shape, generator=generator) > 0.6).float()
        valid = torch.rand(shape, generator=generator) > 0.1
        mask = mask * valid
        dilated = square_max(mask)
        eroded = 1 - square_max(1 - torch.maximum(mask, (~valid).float()))
        boundary, interior = boundary_interior_maps(mask, width, valid)
        assert torch.equal(boundary, (dilated - eroded).clamp(min=0) * valid)
        assert torch.equal(interior, eroded * mask * valid)


def perfect_logits(mask, margin=8.0):
    return (mask * 2 - 1)[:, None] * margin


def test_perfect_prediction_has_the_smallest_loss():
    loss = BoundaryInteriorLoss()
    mask = square_mask(16, 4, 7).repeat(2, 1, 1)
    label = mask.long()
    perfect = loss(perfect_logits(mask), label)
    blurred = perfect_logits(mask) * 0.2
    holes = perfect_logits(mask).clone()
    holes[:, :, 7, 7] = -8.0
    shifted = perfect_logits(torch.roll(mask, 1, dims=2))
    for worse in (blurred, holes, shifted,
                  perfect_logits(mask) + torch.randn(2, 1, 16, 16) * 4):
        assert loss(worse, label) > perfect
    assert perfect < 0.01


def test_boundary_and_interior_terms_target_their_regions():
    mask = square_mask(16, 4, 7)
    label = mask.long()
    hole = perfect_logits(mask).clone()
    hole[:, :, 7, 7] = -8.0  # deep inside: only the interior term sees it
    only_interior = BoundaryInteriorLoss(
        bce_weight=0, dice_weight=0, boundary_weight=0, interior_weight=1)
    only_boundary = BoundaryInteriorLoss(
        bce_weight=0, dice_weight=0, boundary_weight=1, interior_weight=0)
    assert only_interior(hole, label) > 10 * only_interior(
        perfect_logits(mask), label)
    assert torch.isclose(
        only_boundary(hole, label), only_boundary(perfect_logits(mask),
                                                  label))
    shifted = perfect_logits(torch.roll(mask, 1, dims=2))
    assert only_boundary(shifted, label) > 10 * only_boundary(
        perfect_logits(mask), label)


@pytest.mark.parametrize('region_loss', ['bce', 'dice'])
def test_ignored_pixels_change_nothing(region_loss):
    loss = BoundaryInteriorLoss(region_loss=region_loss)
    mask = square_mask(16, 3, 7).repeat(2, 1, 1)
    label = mask.long()
    label[0, 2:6, 2:6] = 255  # overlaps the lesion corner
    label[1, 12:, :] = 255
    logits = torch.randn(2, 1, 16, 16, requires_grad=True)
    value = loss(logits, label)
    value.backward()
    ignored = label == 255
    assert logits.grad[:, 0][ignored].abs().max() == 0
    assert logits.grad[:, 0][~ignored].abs().max() > 0

    changed = logits.detach().clone()
    changed[:, 0][ignored] = torch.randn(int(ignored.sum())) * 100
    assert torch.equal(loss(changed, label), value.detach())
    changed[:, 0][ignored] = float('inf')
    assert torch.equal(loss(changed, label), value.detach())


def test_one_and_two_channel_logits_agree():
    loss = BoundaryInteriorLoss(region_loss='dice')
    label = square_mask(12, 2, 7).repeat(3, 1, 1).long()
    label[2, :3] = 255
    single = torch.randn(3, 1, 12, 12)
    background = torch.randn(3, 1, 12, 12)
    pair = torch.cat([background, background + single], 1)
    torch.testing.assert_close(loss(pair, label), loss(single, label))
    # Two-channel BCE is the softmax cross-entropy.
    bce_only = BoundaryInteriorLoss(
        dice_weight=0, boundary_weight=0, interior_weight=0)
    expected = torch.nn.functional.cross_entropy(pair, label,
                                                 ignore_index=255)
    torch.testing.assert_close(bce_only(pair, label), expected)
    with pytest.raises(ValueError, match='expects 1 or 2 channels, got 3'):
        loss(torch.randn(3, 3, 12, 12), label)
    with pytest.raises(ValueError, match='expects 1 channel, got 2'):
        BoundaryInteriorLoss(use_sigmoid=True)(pair, label)
    with pytest.raises(ValueError, match='expects 2 channels, got 1'):
        BoundaryInteriorLoss(use_sigmoid=False)(single, label)


def test_registered_with_loss_weight_name_and_pixel_weight():
    loss = MODELS.build(
        dict(
            type='BoundaryInteriorLoss', loss_weight=2.0,
            loss_name='loss_edge'))
    assert loss.loss_name == 'loss_edge'
    label = square_mask(10, 2, 5).long()
    logits = torch.randn(1, 1, 10, 10)
    plain = BoundaryInteriorLoss()
    torch.testing.assert_close(loss(logits, label), 2 * plain(logits, label))
    bce_only = BoundaryInteriorLoss(
        dice_weight=0, boundary_weight=0, interior_weight=0)
    doubled = bce_only(logits, label, weight=torch.full((1, 10, 10), 2.0))
    torch.testing.assert_close(doubled, 2 * bce_only(logits, label))
    with pytest.raises(ValueError, match='loss_name must start with "loss_", '
                       "got 'bic'"):
        BoundaryInteriorLoss(loss_name='bic')


def test_empty_lesion_is_finite_and_rewards_background():
    loss = BoundaryInteriorLoss()
    label = torch.zeros(2, 8, 8, dtype=torch.long)
    good = loss(torch.full((2, 1, 8, 8), -8.0), label)
    bad = loss(torch.full((2, 1, 8, 8), 8.0), label)
    assert torch.isfinite(good) and good < 0.05 < 1 < bad


def test_image_norm_is_a_per_pixel_weight_on_the_bce():
    """``region_norm='image'`` equals the image-wide BCE with every band
    pixel weighted ``1 + boundary_weight`` and every interior pixel
    ``1 + interior_weight``, ignored pixels left out."""
    label = square_mask(16, 3, 9).repeat(2, 1, 1).long()
    label[1, :2] = 255
    logits = torch.randn(2, 1, 16, 16)
    weighted = BoundaryInteriorLoss(
        dice_weight=0, boundary_weight=4.0, interior_weight=0.5,
        region_norm='image')
    valid = label != 255
    band, interior = boundary_interior_maps((label == 1).float(), 2, valid)
    pixel_weight = 1 + 4.0 * band + 0.5 * interior
    bce_only = BoundaryInteriorLoss(
        dice_weight=0, boundary_weight=0, interior_weight=0)
    expected = bce_only(logits, label, weight=pixel_weight)
    torch.testing.assert_close(weighted(logits, label), expected)
    # Averaged over its own pixels, the band term weighs far more.
    region_mean = BoundaryInteriorLoss(
        dice_weight=0, boundary_weight=4.0, interior_weight=0.5)
    assert region_mean(logits, label) > weighted(logits, label)
    with pytest.raises(ValueError, match='region_norm'):
        BoundaryInteriorLoss(region_norm='band')
    with pytest.raises(ValueError, match='band_width must be >= 1'):
        BoundaryInteriorLoss(band_width=0)
    with pytest.raises(ValueError, match="region_loss='bce'"):
        BoundaryInteriorLoss(region_loss='dice', region_norm='image')


def test_batch_dice_is_one_dice_over_every_pixel_of_the_batch():
    """``dice_reduction='batch'`` is ``1 - 2|P.T| / (|P| + |T|)`` summed
    over the whole batch, so half a large lesion missed costs more than
    the same share of a small one; per image both cost the same."""
    large = torch.zeros(2, 16, 16)
    large[0, 2:14, 2:14] = 1            # 144 lesion pixels
    large[1, 6:8, 6:8] = 1              # 4 lesion pixels
    label = large.long()

    def half_missed(image):
        """Certain logits matching ``label`` except the lower half of the
        lesion in ``image``."""
        logits = torch.where(large.bool(), 30.0, -30.0)[:, None].clone()
        rows = large[image].nonzero()[:, 0]
        cut = int(rows.float().mean().ceil())
        logits[image, 0, cut:] = -30.0
        return logits

    dice_only = dict(bce_weight=0, boundary_weight=0, interior_weight=0,
                     smooth=0.0)
    batch = BoundaryInteriorLoss(dice_reduction='batch', **dice_only)
    image = BoundaryInteriorLoss(**dice_only)
    # Large lesion half missed: 72 + 4 = 76 of the batch's 148 found.
    torch.testing.assert_close(batch(half_missed(0), label),
                               torch.tensor(1 - 2 * 76 / (76 + 148)))
    # Small lesion half missed: 146 of 148 found.
    torch.testing.assert_close(batch(half_missed(1), label),
                               torch.tensor(1 - 2 * 146 / (146 + 148)))
    torch.testing.assert_close(image(half_missed(0), label),
                               image(half_missed(1), label))
    with pytest.raises(ValueError, match='dice_reduction'):
        BoundaryInteriorLoss(dice_reduction='pixel')


def test_labels_of_another_shape_than_the_logits_are_refused():
    """Labels with a channel axis, (N, 1, H, W), made BinaryDiceLoss score
    each image against every label of the batch (a wrong loss, no error);
    the other losses failed with a broadcasting or indexing error."""
    from mmseg_dsnet.models.losses import BinaryDiceLoss, LovaszHingeLoss
    from mmseg_dsnet.utils.errors import UserError
    logits = torch.randn(2, 1, 16, 16)
    labels = (torch.rand(2, 16, 16) > 0.5).long()
    for loss in (BoundaryInteriorLoss(), BinaryDiceLoss(), LovaszHingeLoss()):
        name = type(loss).__name__
        assert torch.isfinite(loss(logits, labels))
        with pytest.raises(UserError, match=f'{name}: the labels must be '
                           r'\(N, H, W\) = \(2, 16, 16\) to match the '
                           r'logits \(2, 1, 16, 16\), got \(2, 1, 16, 16\)'):
            loss(logits, labels[:, None])
        with pytest.raises(UserError, match=f'{name}: the labels must be '
                           r'\(N, H, W\) = \(2, 8, 8\)'):
            loss(logits[..., :8, :8], labels)
        with pytest.raises(UserError, match=f'{name}: the weight must be'):
            loss(logits, labels, weight=torch.ones(2, 1, 16, 16))


def test_float16_logits_of_a_large_lesion_give_the_float32_loss():
    """Under mixed precision (``train.py --amp``) the logits are float16:
    the per-image sums of a lesion over half a 256x256 image passed
    float16's 65504 and the BIC and Dice losses were NaN (training
    stopped), or far off (EGE-UNet's side Dice 0.5 for 0.16)."""
    from mmseg_dsnet.models.losses import BinaryDiceLoss, LovaszHingeLoss
    labels = torch.zeros(2, 256, 256, dtype=torch.long)
    labels[:, 20:236, 20:236] = 1
    torch.manual_seed(0)
    logits = (torch.where(labels[:, None] == 1, 3.0, -3.0) +
              0.1 * torch.randn(2, 1, 256, 256)).half()
    for loss in (BoundaryInteriorLoss(),
                 BoundaryInteriorLoss(dice_reduction='batch'),
                 BoundaryInteriorLoss(region_loss='dice'), BinaryDiceLoss(),
                 LovaszHingeLoss()):
        value = loss(logits, labels)
        assert value.dtype == torch.float32
        assert torch.allclose(value, loss(logits.float(), labels),
                              rtol=1e-5, atol=1e-6), type(loss).__name__


def test_default_loss_and_dice_region_terms_by_hand():
    """Logits 0 give probability 0.5 and BCE ln 2 at every pixel, so the
    terms are worked out by hand. A 6x6 lesion in a 12x12 image; at band
    width 1 the band is the 8x8 dilation less the 4x4 erosion (48 pixels,
    20 of them lesion), the interior the 4x4 erosion (2x2 at width 2)."""
    label = torch.zeros(1, 12, 12, dtype=torch.long)
    label[:, 3:9, 3:9] = 1
    logits = torch.zeros(1, 1, 12, 12)
    ln2 = torch.log(torch.tensor(2.0))
    # Image Dice: 2 * 0.5 * 36 = 36 and 0.5 * 144 + 36 = 108: 1 - 37 / 109.
    dice = 1 - 37 / 109
    # Defaults: bce 1, dice 1, boundary 1, interior 0.5 (BCE per region).
    torch.testing.assert_close(BoundaryInteriorLoss()(logits, label),
                               ln2 * (1 + 1 + 0.5) + dice)
    only = dict(bce_weight=0, dice_weight=0, band_width=1,
                region_loss='dice')
    # Band Dice: 2 * 0.5 * 20 = 20 and 0.5 * 48 + 20 = 44: 1 - 21 / 45.
    band = BoundaryInteriorLoss(boundary_weight=1, interior_weight=0, **only)
    torch.testing.assert_close(band(logits, label), torch.tensor(1 - 21 / 45))
    # Interior Dice: 2 * 0.5 * 16 = 16 and 0.5 * 16 + 16 = 24: 1 - 17 / 25.
    inner = BoundaryInteriorLoss(boundary_weight=0, interior_weight=1, **only)
    torch.testing.assert_close(inner(logits, label), torch.tensor(1 - 17 / 25))


def test_an_image_without_pixels_to_score_is_left_out_of_per_image_means():
    """Per-image losses average over the images they score: an image all
    ``ignore_index`` (or, for a region term, without a pixel in the
    region) read as a perfect 0 and halved a batch of two's loss.

    Logits 0 (probability 0.5). Image 0, labels 1 1 / 0 0: Dice
    (2 * 1 + 1) / (2 + 2 + 1) = 3/5, so a Dice loss of 2/5; every hinge
    error is 1, so the Lovasz hinge is the Jaccard loss of all four pixels
    wrong, 1. Image 1 is all ignored. For the interior term, a 3x3 lesion
    in a 5x5 image has the centre alone as interior at band width 1:
    Dice (2 * 0.5 + 1) / (0.5 + 1 + 1) = 4/5, a loss of 1/5; the second
    image has no lesion, so no interior."""
    from mmseg_dsnet.models.losses import BinaryDiceLoss, LovaszHingeLoss
    labels = torch.tensor([[[1, 1], [0, 0]], [[255, 255], [255, 255]]])
    logits = torch.zeros(2, 1, 2, 2)
    dice_only = dict(bce_weight=0.0, boundary_weight=0.0,
                     interior_weight=0.0)
    for loss, expected in (
            (BinaryDiceLoss(), 2 / 5),
            (BoundaryInteriorLoss(**dice_only), 2 / 5),
            (LovaszHingeLoss(per_image=True), 1.0)):
        assert loss(logits, labels).item() == pytest.approx(
            expected, abs=1e-6), type(loss).__name__
        # The same as the batch without that image.
        assert loss(logits, labels).item() == pytest.approx(
            loss(logits[:1], labels[:1]).item(), abs=1e-6)
    # A batch of images none of which has a pixel to score: 0, not NaN.
    assert BinaryDiceLoss()(logits[1:], labels[1:]).item() == 0
    lesion = torch.zeros(2, 5, 5, dtype=torch.long)
    lesion[0, 1:4, 1:4] = 1
    interior_only = BoundaryInteriorLoss(
        bce_weight=0.0, dice_weight=0.0, boundary_weight=0.0,
        interior_weight=1.0, band_width=1, region_loss='dice')
    assert interior_only(torch.zeros(2, 1, 5, 5), lesion).item() == \
        pytest.approx(1 / 5, abs=1e-6)


@pytest.mark.parametrize('loss_type', ['BoundaryInteriorLoss',
                                       'BinaryDiceLoss', 'LovaszHingeLoss'])
def test_reduction_options_the_loss_does_not_apply_are_refused(loss_type):
    """mmseg's losses take ``reduction_override`` and ``avg_factor``; ours
    took them through ``**kwargs`` and returned their mean anyway (a
    scalar for ``'none'``, the mean for ``'sum'``)."""
    from mmseg_dsnet.utils.errors import ModelArgumentError
    loss = MODELS.build(dict(type=loss_type))
    logits = torch.zeros(1, 1, 2, 2)
    labels = torch.tensor([[[1, 1], [0, 0]]])
    mean = loss(logits, labels)
    assert mean.shape == ()
    # 'mean' (and None) is what the loss computes anyway.
    assert loss(logits, labels, reduction_override='mean') == mean
    for option in (dict(reduction_override='none'),
                   dict(reduction_override='sum'), dict(avg_factor=3),
                   dict(avg_factor=0)):
        with pytest.raises(ModelArgumentError,
                           match=f'{loss_type}: '
                           f'{next(iter(option))}.* is not supported'):
            loss(logits, labels, **option)


def test_mean_of_scored_images_averages_only_the_scored_ones():
    """The mean is over the images marked scored, whatever the others'
    values: (1 + 4) / 2; no image scored gives 0 that still has a
    gradient."""
    from mmseg_dsnet.models.losses.image_mean import mean_of_scored_images
    values = torch.tensor([1.0, 2.0, 4.0], requires_grad=True)
    mean = mean_of_scored_images(values, torch.tensor([True, False, True]))
    assert mean.item() == 2.5
    none = mean_of_scored_images(values, torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0
    none.backward()
    assert values.grad is not None


def test_logits_without_a_channel_axis_are_refused():
    """(N, C, H) logits with (N, H) labels: the spatial shapes pair, but
    the logits are not (N, C, H, W)."""
    from mmseg_dsnet.models.losses import BinaryDiceLoss, LovaszHingeLoss
    from mmseg_dsnet.utils.errors import ModelArgumentError
    for loss in (BoundaryInteriorLoss(), BinaryDiceLoss(), LovaszHingeLoss()):
        name = type(loss).__name__
        with pytest.raises(ModelArgumentError,
                           match=rf'{name}: the logits must be \(N, C, H, W\), '
                           r'got shape \(2, 1, 4\)'):
            loss(torch.zeros(2, 1, 4), torch.zeros(2, 4, dtype=torch.long))


def test_labels_other_than_0_1_and_ignore_are_refused():
    """A label 2 (a mask written 0/2) was taken for background by every
    binary loss: the lesion trained as background, without an error."""
    from mmseg_dsnet.datasets import MaskValueError
    from mmseg_dsnet.models.losses import BinaryDiceLoss, LovaszHingeLoss
    logits = torch.randn(2, 1, 8, 8)
    good = square_mask(8, 2, 4).repeat(2, 1, 1).long()
    good[1, :2] = 255
    for loss in (BoundaryInteriorLoss(), BinaryDiceLoss(), LovaszHingeLoss()):
        name = type(loss).__name__
        assert torch.isfinite(loss(logits, good))
        for bad, values in ((good * 2, r'2, 510'), (good - 1, r'-1, 254')):
            with pytest.raises(MaskValueError, match=(
                    rf'^{name}: the labels hold {values} besides 0 '
                    r'\(background\), 1 \(lesion\) and 255 \(ignore_index\)')):
                loss(logits, bad)
        # The head's ignore_index is the one allowed.
        ignored = good.masked_fill(good == 255, 7)
        assert torch.isfinite(loss(logits, ignored, ignore_index=7))
        with pytest.raises(MaskValueError, match='the labels hold 255 '):
            loss(logits, good, ignore_index=7)


def test_masks_of_0_and_2_are_refused_when_their_check_is_off(
        tiny_isic, tmp_path):
    """Masks written 0/2 in a dataset with ``check_masks=False`` (which the
    load check's message offers) reached DSNet's loss and trained the
    lesion as background: a finite loss, no error."""
    import shutil

    import numpy as np
    from conftest import write_tiny_config
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    from PIL import Image

    from mmseg_dsnet.datasets import MaskValueError
    root = tmp_path / 'set'
    shutil.copytree(tiny_isic, root)
    for mask in (root / 'masks').glob('*.png'):
        Image.fromarray(np.array(Image.open(mask)) * 2).save(mask)
    cfg = Config.fromfile(write_tiny_config(tmp_path / 'cfg.py', root))
    cfg.train_dataloader.dataset.check_masks = False
    register_all_modules(init_default_scope=True)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[0], dataset[1]])
    model = MODELS.build(cfg.model)
    data = model.data_preprocessor(batch, True)
    with pytest.raises(MaskValueError, match=(
            r'^BoundaryInteriorLoss: the labels hold 2 besides 0 '
            r'\(background\), 1 \(lesion\) and 255 \(ignore_index\)')):
        model.loss(data['inputs'], data['data_samples'])


def test_the_label_check_lets_the_loss_be_traced_whole():
    """The check reads its result on the host, which a CUDA graph capture
    (``fast_train.py`` on a GPU) and a ``torch.compile`` trace do not
    allow: it is skipped there (the eager steps before them check)."""
    logits = torch.randn(2, 1, 8, 8)
    label = square_mask(8, 2, 4).repeat(2, 1, 1).long()
    loss = BoundaryInteriorLoss()
    traced = torch.compile(loss, backend='eager', fullgraph=True)
    torch.testing.assert_close(traced(logits, label), loss(logits, label))


def test_smooth_0_leaves_an_image_without_pixels_to_score_out_not_nan():
    """With ``smooth=0`` (allowed, and what the batch Dice test uses) the
    Dice of an image without a pixel to score is 0 / 0: NaN, which the
    mean over the scored images multiplied by 0 and kept, so the loss and
    every gradient of the batch were NaN. Logits 0 (probability 0.5).
    Image 0, labels 1 1 / 0 0: Dice 2 * 1 / (2 + 2) = 1/2, a loss of 1/2;
    image 1 all ignored. For the interior term a 3x3 lesion in a 5x5 image
    has its centre alone as interior at band width 1: Dice 2 * 0.5 /
    (0.5 + 1) = 2/3, a loss of 1/3; the second image has no lesion, so
    no interior (nor band)."""
    from mmseg_dsnet.models.losses import BinaryDiceLoss
    labels = torch.tensor([[[1, 1], [0, 0]], [[255, 255], [255, 255]]])
    dice_only = dict(bce_weight=0.0, boundary_weight=0.0,
                     interior_weight=0.0, smooth=0.0)
    lesion = torch.zeros(2, 5, 5, dtype=torch.long)
    lesion[0, 1:4, 1:4] = 1
    interior_only = BoundaryInteriorLoss(
        bce_weight=0.0, dice_weight=0.0, boundary_weight=0.0,
        interior_weight=1.0, band_width=1, region_loss='dice', smooth=0.0)
    for loss, label, expected in (
            (BinaryDiceLoss(smooth=0.0), labels, 1 / 2),
            (BoundaryInteriorLoss(**dice_only), labels, 1 / 2),
            (interior_only, lesion, 1 / 3)):
        logits = torch.zeros(2, 1, *label.shape[1:], requires_grad=True)
        value = loss(logits, label)
        assert value.item() == pytest.approx(expected, abs=1e-6)
        value.backward()
        assert torch.isfinite(logits.grad).all()
    # One Dice over a batch without a pixel to score: 0, as per image.
    batch = BoundaryInteriorLoss(dice_reduction='batch', **dice_only)
    logits = torch.zeros(2, 1, 2, 2, requires_grad=True)
    value = batch(logits, torch.full((2, 2, 2), 255))
    assert value.item() == 0
    value.backward()
    assert torch.isfinite(logits.grad).all()
