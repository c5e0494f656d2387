"""Lovasz hinge loss: exact at the corners it extends, ignored pixels, one-
and two-channel heads, per-image and pooled forms, and in a DSNet head."""
import pytest
import torch
from conftest import REPO
from mmseg.registry import MODELS

from mmseg_dsnet.models.losses import LovaszHingeLoss
from mmseg_dsnet.models.losses.lovasz_hinge_loss import lovasz_hinge

LOVASZ_CONFIG = str(REPO / 'configs/dsnet/design/'
                    'dsnet-design-deeper-eighth-lovasz_isic2017.py')


def jaccard_loss(prediction, label):
    """1 - IoU of the lesion, from 0/1 tensors."""
    intersection = (prediction & label).sum().item()
    union = (prediction | label).sum().item()
    return 1 - intersection / union if union else 0.0


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_equals_the_jaccard_loss_where_every_margin_is_0_or_1(seed):
    """At hinge errors of 0 or 1 the Lovasz extension is the set function
    itself: 1 - IoU of the prediction that gets the pixels of error 1
    wrong."""
    generator = torch.Generator().manual_seed(seed)
    label = torch.rand(200, generator=generator) < 0.3
    wrong = torch.rand(200, generator=generator) < 0.2
    signs = 2 * label.float() - 1
    # Error 1 - s * l is 1 where wrong (l = 0), 0 elsewhere (l = s).
    logits = signs * (~wrong).float()
    prediction = label ^ wrong
    assert lovasz_hinge(logits, label).item() == pytest.approx(
        jaccard_loss(prediction, label), abs=1e-6)


def test_margins_of_at_least_one_cost_nothing_and_errors_cost_more():
    label = torch.tensor([1, 1, 0, 0, 1]).bool()
    signs = 2 * label.float() - 1
    assert lovasz_hinge(2 * signs, label).item() == 0
    worse = 2 * signs
    worse[0] = -1.0  # a lesion pixel called background
    assert lovasz_hinge(worse, label).item() > 0
    assert lovasz_hinge(torch.zeros(0), torch.zeros(0).bool()).item() == 0


def test_ignored_and_zero_weight_pixels_change_nothing():
    loss = LovaszHingeLoss()
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 1, 8, 8, generator=generator)
    label = (torch.rand(2, 8, 8, generator=generator) < 0.4).long()
    reference = loss(logits, label)
    shuffled = logits.clone()
    shuffled[:, :, :2] = 50.0
    ignored = label.clone()
    ignored[:, :2] = 255
    # The first two rows are now unknown: the loss is that of the rest.
    expected = lovasz_hinge(logits[:, 0, 2:].flatten(),
                            label[:, 2:].flatten().bool())
    torch.testing.assert_close(loss(shuffled, ignored), expected)
    # Another ignore_index (the head's) leaves its pixels out alike.
    sevens = ignored.masked_fill(ignored == 255, 7)
    torch.testing.assert_close(loss(shuffled, sevens, ignore_index=7),
                               expected)
    weight = torch.ones(2, 8, 8)
    weight[:, :2] = 0
    torch.testing.assert_close(loss(shuffled, label, weight=weight),
                               expected)
    assert not torch.allclose(reference, expected)


def test_one_and_two_channel_logits_agree_and_forms_differ():
    generator = torch.Generator().manual_seed(4)
    single = torch.randn(3, 1, 6, 6, generator=generator)
    background = torch.randn(3, 1, 6, 6, generator=generator)
    pair = torch.cat([background, background + single], 1)
    label = (torch.rand(3, 6, 6, generator=generator) < 0.5).long()
    pooled = LovaszHingeLoss()
    torch.testing.assert_close(pooled(pair, label), pooled(single, label))
    per_image = LovaszHingeLoss(per_image=True)
    expected = torch.stack([
        lovasz_hinge(single[i, 0].flatten(), label[i].flatten().bool())
        for i in range(3)]).mean()
    torch.testing.assert_close(per_image(single, label), expected)
    assert not torch.allclose(per_image(single, label),
                              pooled(single, label))


def test_registered_with_weight_and_name_and_gradient():
    loss = MODELS.build(dict(type='LovaszHingeLoss', loss_weight=0.5,
                             loss_name='loss_iou'))
    assert loss.loss_name == 'loss_iou'
    logits = torch.randn(2, 1, 5, 5, requires_grad=True)
    label = (torch.rand(2, 5, 5) < 0.5).long()
    value = loss(logits, label)
    torch.testing.assert_close(value, 0.5 * LovaszHingeLoss()(logits, label))
    value.backward()
    # Raising a lesion pixel's logit (or lowering a background one's) while
    # its margin is below 1 lowers the loss.
    grad = logits.grad[:, 0]
    margins = (2 * label - 1) * logits.detach()[:, 0]
    active = margins < 1
    assert (grad[active & (label == 1)] <= 0).all()
    assert (grad[active & (label == 0)] >= 0).all()
    assert (grad[~active] == 0).all()
    with pytest.raises(ValueError, match='loss_weight must be a finite '
                       'number >= 0, got -1'):
        LovaszHingeLoss(loss_weight=-1)


def test_design_config_adds_it_to_the_main_and_side_losses():
    import mmseg_dsnet  # noqa: F401
    from mmengine.config import Config
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(LOVASZ_CONFIG)
    default = Config.fromfile(str(REPO / 'configs/_base_/models/dsnet.py'))
    assert cfg.model.decode_head.loss_decode[0] == \
        default.model.decode_head.loss_decode
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    label = torch.zeros(1, 64, 64, dtype=torch.long)
    label[:, 16:48, 20:44] = 1
    sample = SegDataSample(gt_sem_seg=PixelData(data=label))
    sample.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64),
                             pad_shape=(64, 64)))
    losses = model.loss(torch.randn(1, 3, 64, 64), [sample])
    names = {name for name in losses if 'lovasz' in name}
    assert names == {'decode.loss_lovasz', 'decode.aux1.loss_lovasz',
                     'decode.aux2.loss_lovasz', 'decode.aux3.loss_lovasz'}
    assert all(losses[name] > 0 for name in names)


def test_per_image_counts_an_image_with_some_pixels_ignored():
    """Per image, an image is left out only when none of its pixels is
    scored. Logits 0 except image 1's lesion pixel (1, error 0). Image 0,
    labels 1 1 / 0 0, every error 1: Jaccard loss 1. Image 1, labels
    1 255 / 0 0: errors 1, 1 (background) then 0 (lesion), P = 1, so
    J = 1 - 1/2, 1 - 1/3, 1: increments 1/2, 1/6, 1/3 and a loss of
    1/2 + 1/6 = 2/3. Mean (1 + 2/3) / 2 = 5/6."""
    logits = torch.zeros(2, 1, 2, 2)
    logits[1, 0, 0, 0] = 1.0
    labels = torch.tensor([[[1, 1], [0, 0]], [[1, 255], [0, 0]]])
    loss = LovaszHingeLoss(per_image=True)(logits, labels)
    assert loss.item() == pytest.approx(5 / 6, abs=1e-6)
