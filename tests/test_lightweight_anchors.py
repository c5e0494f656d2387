"""EGE-UNet and MALUNet anchors: shapes, budget, training step, inference."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer, get_model_complexity_info
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

import mmseg_dsnet  # noqa: F401  (registers the anchors)
from mmseg_dsnet.models.backbones.egeunet import EGEUNet
from mmseg_dsnet.models.backbones.malunet import MALUNet
from mmseg_dsnet.models.decode_heads.lightweight_cls_head import \
    LightweightClsHead
from mmseg_dsnet.models.losses.binary_dice_loss import BinaryDiceLoss

register_all_modules()

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]

# Published budgets at 1x3x256x256 (thop: conv multiply-adds only) and what
# mmengine's analyzer (tools/analysis_tools/get_flops.py) reports for our
# implementation: it also counts norms (5 FLOPs per element), bilinear
# resizes and pooling, which thop leaves out.
BUDGETS = {
    'egeunet': dict(params=0.053e6, paper_flops=0.072e9,
                    mmengine_flops=0.08497e9),
    'malunet': dict(params=0.175e6, paper_flops=0.083e9,
                    mmengine_flops=0.09283e9),
}
# operators thop counts for these models (conv / fully connected layers)
PAPER_OPS = ('conv', 'linear')


def build_model(name, size=(256, 256)):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'models', f'{name}.py'))
    cfg.model.data_preprocessor = dict(
        type='SegDataPreProcessor',
        mean=MEAN,
        std=STD,
        bgr_to_rgb=True,
        size=size)
    return MODELS.build(cfg.model)


def make_samples(batch, height, width, seed=0):
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch):
        label = torch.zeros(1, height, width, dtype=torch.long)
        top, left = torch.randint(0, height // 2, (2, ), generator=gen)
        label[:, top:top + height // 2, left:left + width // 2] = 1
        label[:, :2, :2] = 255  # a few ignored pixels
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label)
        sample.set_metainfo(
            dict(
                img_shape=(height, width),
                ori_shape=(height, width),
                pad_shape=(height, width)))
        samples.append(sample)
    return samples


@pytest.mark.parametrize('name', ['egeunet', 'malunet'])
def test_registry_build_from_config(name):
    model = build_model(name)
    backbone_type = {'egeunet': EGEUNet, 'malunet': MALUNet}[name]
    assert type(model).__name__ == 'EncoderDecoder'
    assert isinstance(model.backbone, backbone_type)
    assert isinstance(model.decode_head, LightweightClsHead)
    assert model.decode_head.out_channels == 1
    assert model.decode_head.threshold == 0.5
    # the head is nothing but the paper's 8 -> 1 classifier
    head_params = sum(p.numel() for p in model.decode_head.parameters())
    assert head_params == 8 + 1
    loss_types = [type(m) for m in model.decode_head.loss_decode]
    assert BinaryDiceLoss in loss_types


@pytest.mark.parametrize('name,deep_sup', [('egeunet', 5), ('malunet', 0)])
@pytest.mark.parametrize('size', [(256, 256), (192, 256)])
def test_forward_shapes(name, deep_sup, size):
    model = build_model(name).eval()
    height, width = size
    with torch.no_grad():
        feats = model.backbone(torch.randn(2, 3, height, width))
        logits = model(torch.randn(2, 3, height, width))  # mode='tensor'
    assert len(feats) == 1 + deep_sup
    assert feats[0].shape == (2, 8, height // 2, width // 2)
    for level, mask in enumerate(feats[1:], start=1):
        # deep-supervision logits, fine (1/2) to coarse (1/32)
        assert mask.shape == (2, 1, height // 2**level, width // 2**level)
    assert logits.shape == (2, 1, height // 2, width // 2)


@pytest.mark.parametrize('name', ['egeunet', 'malunet'])
def test_budget_matches_paper(name):
    budget = BUDGETS[name]
    model = build_model(name).eval()
    inputs = torch.randn(1, 3, 256, 256)
    info = get_model_complexity_info(
        model, inputs=(inputs, ), show_table=False, show_arch=False)
    assert info['params'] == pytest.approx(budget['params'], rel=0.05)
    # the paper's (thop) convention: conv / linear multiply-adds only
    analyzer = FlopAnalyzer(model, (inputs, ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    by_op = analyzer.by_operator()
    paper_flops = sum(by_op.get(op, 0) for op in PAPER_OPS)
    assert paper_flops == pytest.approx(budget['paper_flops'], rel=0.05)
    # get_flops.py's number, pinned so that changes are noticed; the
    # surplus over the paper comes only from norms, resizes and pooling
    assert info['flops'] == pytest.approx(budget['mmengine_flops'], rel=0.01)
    extra_ops = set(by_op) - set(PAPER_OPS)
    assert extra_ops <= {
        'group_norm', 'layer_norm', 'upsample_bilinear2d',
        'adaptive_avg_pool2d'
    }


@pytest.mark.parametrize('name', ['egeunet', 'malunet'])
def test_training_step_gives_finite_loss_and_gradients(name):
    torch.manual_seed(0)
    model = build_model(name, size=(64, 64)).train()
    samples = make_samples(2, 64, 64)
    losses = model.loss(torch.randn(2, 3, 64, 64), samples)
    assert 'decode.loss_ce' in losses and 'decode.loss_dice' in losses
    if name == 'egeunet':
        aux = [k for k in losses if k.startswith('decode.aux')]
        assert len(aux) == 5 * 2  # five masks x (BCE, Dice)
    total, log_vars = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f'{pname} got no gradient'
        assert torch.isfinite(param.grad).all(), pname
    with_signal = [
        n for n, p in model.named_parameters() if p.grad.abs().sum() > 0
    ]
    assert len(with_signal) == len(list(model.parameters()))


@pytest.mark.parametrize('name', ['egeunet', 'malunet'])
def test_predict_gives_binary_masks_at_threshold(name):
    model = build_model(name, size=(64, 96)).eval()
    samples = make_samples(2, 64, 96)
    inputs = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        # centre the logits near sigmoid^-1(0.4) so that many pixels fall
        # between mmseg's default threshold 0.3 and ours, 0.5
        head_bias = model.decode_head.conv_seg.bias
        head_bias -= model(inputs).median() + 0.4
        results = model.predict(inputs, samples)
        # the head's raw logits at 1/2 resolution, resized like mmseg does
        logits = F.interpolate(
            model(inputs), size=(64, 96), mode='bilinear',
            align_corners=False)
    between = 0
    for idx, result in enumerate(results):
        pred = result.pred_sem_seg.data
        assert pred.shape == (1, 64, 96)
        assert set(pred.unique().tolist()) == {0, 1}
        prob = result.seg_logits.data  # mmseg stores sigmoid(logit)
        assert torch.allclose(prob, logits[idx].sigmoid(), atol=1e-5)
        assert torch.equal(pred, (prob > 0.5).to(pred.dtype))
        between += int(((prob > 0.3) & (prob <= 0.5)).sum())
    assert between > 0


def test_binary_dice_loss_scores_the_lesion_class():
    loss = BinaryDiceLoss(smooth=1.0)
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, 2:6, 2:6] = 1
    perfect = (target.float() * 40 - 20)[:, None]  # +20 lesion, -20 else
    assert loss(perfect, target) < 1e-3
    assert loss(-perfect, target) > 0.95  # inverted prediction is the worst
    # two-channel softmax with logits (0, l) equals sigmoid(l)
    two = torch.cat([torch.zeros_like(perfect), perfect * 0.1], dim=1)
    assert loss(two, target) == pytest.approx(
        loss(perfect * 0.1, target).item(), abs=1e-6)
    # and with any background logit b, (b, b + l) too: softmax(l1 - l0)
    background = torch.linspace(-3, 3, 128).reshape(2, 1, 8, 8)
    shifted = torch.cat([background, background + perfect * 0.1], dim=1)
    assert loss(shifted, target) == pytest.approx(
        loss(perfect * 0.1, target).item(), abs=1e-6)
    # ignored pixels do not count, whatever the prediction there
    ignored = target.clone()
    ignored[:, :, 6:] = 255
    wrong_there = perfect.clone()
    wrong_there[:, :, :, 6:] = 20
    assert loss(wrong_there, ignored) < 1e-3
    assert loss(wrong_there, target) > 0.1
    with pytest.raises(ValueError, match='channels, got 3'):
        loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))


def test_binary_dice_loss_by_hand():
    """Logits 0 (probability 0.5), smooth 1, the mean over the images.
    Image 0, labels 1 1 / 0 0: Dice (2 * 1 + 1) / (2 + 2 + 1) = 3/5.
    Image 1, labels 1 0 / 0 ignored: (2 * 0.5 + 1) / (1.5 + 1 + 1) = 4/7.
    A 0/1 pixel weight (an OHEM sampler's) of 0 at image 0's second lesion
    pixel leaves it out: (2 * 0.5 + 1) / (1.5 + 1 + 1) = 4/7 too."""
    loss = BinaryDiceLoss(smooth=1.0)
    target = torch.tensor([[[1, 1], [0, 0]], [[1, 0], [0, 255]]])
    logits = torch.zeros(2, 1, 2, 2)
    assert loss(logits, target).item() == pytest.approx(
        ((1 - 3 / 5) + (1 - 4 / 7)) / 2, abs=1e-6)
    # loss_weight scales the whole loss.
    assert BinaryDiceLoss(smooth=1.0, loss_weight=0.5)(
        logits, target).item() == pytest.approx(
            ((1 - 3 / 5) + (1 - 4 / 7)) / 4, abs=1e-6)
    weight = torch.ones(2, 2, 2)
    weight[0, 0, 1] = 0
    assert loss(logits, target, weight=weight).item() == pytest.approx(
        1 - 4 / 7, abs=1e-6)


def test_binary_dice_loss_counts_a_pixel_weight_once():
    """A weight of 3 at image 0's first lesion pixel (probability 0.5),
    smooth 1: overlap 3 * 0.5 + 0.5 = 2, totals 3 * 0.5 + 0.5 + 0.5 + 0.5
    = 3 and 3 + 1 = 4: Dice (2 * 2 + 1) / (3 + 4 + 1) = 5/8. Weighting the
    probabilities and the labels both counted it 9 times in the overlap
    (Dice 11/8, a negative loss)."""
    loss = BinaryDiceLoss(smooth=1.0)
    target = torch.tensor([[[1, 1], [0, 0]]])
    weight = torch.ones(1, 2, 2)
    weight[0, 0, 0] = 3
    assert loss(torch.zeros(1, 1, 2, 2), target,
                weight=weight).item() == pytest.approx(1 - 5 / 8, abs=1e-6)


def test_a_loss_ignore_index_other_than_the_heads_is_refused():
    """A decode head passes its ``ignore_index`` to every loss; a loss's
    own that differs (``ignore_index=0`` in the config, the head's 255) was
    silently replaced by the head's. Logits 0 (probability 0.5), labels
    1 0 / 0 0, smooth 1: ignoring label 0 leaves the lesion pixel alone,
    Dice (2 * 0.5 + 1) / (0.5 + 1 + 1) = 4/5."""
    from mmseg_dsnet.models.decode_heads.dsnet_head import DSNetHead
    from mmseg_dsnet.models.losses import LovaszHingeLoss
    from mmseg_dsnet.utils.errors import ModelArgumentError
    target = torch.tensor([[[1, 0], [0, 0]]])
    logits = torch.zeros(1, 1, 2, 2)
    own = BinaryDiceLoss(ignore_index=0)
    assert own(logits, target).item() == pytest.approx(1 - 4 / 5, abs=1e-6)
    assert BinaryDiceLoss()(logits, target, ignore_index=0).item() == \
        pytest.approx(1 - 4 / 5, abs=1e-6)
    assert own(logits, target, ignore_index=0).item() == pytest.approx(
        1 - 4 / 5, abs=1e-6)
    for loss in (own, LovaszHingeLoss(ignore_index=0)):
        with pytest.raises(ModelArgumentError,
                           match=r'ignore_index=0 was given to the loss, but '
                           r'its caller \(the decode head\) passes '
                           'ignore_index=255'):
            loss(logits, target, ignore_index=255)
    with pytest.raises(ModelArgumentError,
                       match='LightweightClsHead loss_decode BinaryDiceLoss: '
                       'ignore_index=0 was given'):
        LightweightClsHead(
            in_channels=8, num_classes=2, out_channels=1, threshold=0.5,
            loss_decode=dict(type='BinaryDiceLoss', ignore_index=0))
    with pytest.raises(ModelArgumentError,
                       match='DSNetHead loss_decode LovaszHingeLoss: '
                       'ignore_index=0 was given'):
        DSNetHead(in_channels=[4, 8, 16], channels=4, num_classes=2,
                  out_channels=1, threshold=0.5,
                  loss_decode=[dict(type='BinaryDiceLoss'),
                               dict(type='LovaszHingeLoss', ignore_index=0)])
    # Agreeing with the head (or leaving it to the head) builds.
    LightweightClsHead(
        in_channels=8, num_classes=2, out_channels=1, threshold=0.5,
        ignore_index=0,
        loss_decode=dict(type='BinaryDiceLoss', ignore_index=0))


def test_head_argument_checks():
    with pytest.raises(ValueError, match='must equal in_channels'):
        LightweightClsHead(
            in_channels=8, channels=16, num_classes=2, out_channels=1,
            threshold=0.5)
    with pytest.raises(ValueError, match='one aux_loss_weights entry per'):
        LightweightClsHead(
            in_channels=8, aux_in_index=(1, 2), aux_loss_weights=(0.5, ),
            num_classes=2, out_channels=1, threshold=0.5)
    head = LightweightClsHead(
        in_channels=8, num_classes=2, out_channels=1, threshold=0.5)
    out = head([torch.randn(1, 8, 5, 7), torch.randn(1, 1, 5, 7)])
    assert out.shape == (1, 1, 5, 7)


def test_side_outputs_of_another_channel_count_are_named():
    """An EGE-UNet side mask (1 channel) supervised by a 2-channel head
    failed with a bare AssertionError at the first iteration."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg_dsnet.utils.errors import UserError
    head = LightweightClsHead(
        in_channels=8, num_classes=2, out_channels=2, aux_in_index=(1, ),
        aux_loss_weights=(0.5, ),
        loss_decode=dict(type='BinaryDiceLoss'))
    sample = SegDataSample(metainfo=dict(img_shape=(5, 7)))
    sample.gt_sem_seg = PixelData(data=torch.zeros(1, 5, 7,
                                                   dtype=torch.long))
    with pytest.raises(UserError, match=r'backbone output 1 \(aux_in_index\) '
                       'has 1 channels, but the head predicts '
                       'out_channels=2'):
        head.loss([torch.randn(1, 8, 5, 7), torch.randn(1, 1, 5, 7)],
                   [sample], {})


def test_side_outputs_that_are_not_there_or_repeated_are_refused():
    """aux_in_index=(1, 1) scored one output twice under one loss key (the
    second weight silently replaced the first); an index past the
    backbone's outputs failed with a bare IndexError at the first
    iteration."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg_dsnet.utils.errors import UserError
    for index in ((1, 1), (0, 1), (-1, 1)):
        with pytest.raises(UserError, match=r'aux_in_index must name '
                           'distinct backbone outputs'):
            LightweightClsHead(
                in_channels=8, num_classes=2, out_channels=1, threshold=0.5,
                aux_in_index=index, aux_loss_weights=(0.5, 0.3))
    head = LightweightClsHead(
        in_channels=8, num_classes=2, out_channels=1, threshold=0.5,
        aux_in_index=(1, 2), aux_loss_weights=(0.5, 0.3),
        loss_decode=dict(type='BinaryDiceLoss'))
    sample = SegDataSample(metainfo=dict(img_shape=(5, 7)))
    sample.gt_sem_seg = PixelData(data=torch.zeros(1, 5, 7,
                                                   dtype=torch.long))
    inputs = [torch.randn(1, 8, 5, 7), torch.randn(1, 1, 5, 7)]
    with pytest.raises(UserError, match=r'aux_in_index 2 names no backbone '
                       r'output: the backbone gives 2 \(0 to 1\)'):
        head.loss(inputs, [sample], {})
    losses = head.loss(inputs + [torch.randn(1, 1, 5, 7)], [sample], {})
    assert {'aux1.loss_dice', 'aux2.loss_dice'} <= set(losses)


def test_side_losses_are_each_outputs_loss_times_its_weight():
    """``aux<i>.loss_*`` is the loss of backbone output ``i`` (resized to
    the label) times its own weight: the other tests checked only the keys
    and that the sum is finite, so a dropped or swapped weight passed
    (mutation testing)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    torch.manual_seed(0)
    head = LightweightClsHead(
        in_channels=8, num_classes=2, out_channels=1, threshold=0.5,
        aux_in_index=(1, 2), aux_loss_weights=(0.5, 0.3),
        loss_decode=dict(type='BinaryDiceLoss'))
    label = torch.zeros(1, 8, 10, dtype=torch.long)
    label[:, 2:6, 3:8] = 1
    sample = SegDataSample(metainfo=dict(img_shape=(8, 10)))
    sample.gt_sem_seg = PixelData(data=label)
    # Side masks at half the label's size, as a backbone's deeper ones.
    inputs = [torch.randn(1, 8, 8, 10), torch.randn(1, 1, 4, 5) * 3,
              torch.randn(1, 1, 4, 5) * 3]
    losses = head.loss(inputs, [sample], {})
    for index, weight in ((1, 0.5), (2, 0.3)):
        alone = head.loss_by_feat(inputs[index], [sample])['loss_dice']
        torch.testing.assert_close(losses[f'aux{index}.loss_dice'],
                                   alone * weight)
    torch.testing.assert_close(
        losses['loss_dice'],
        head.loss_by_feat(head(inputs), [sample])['loss_dice'])
    assert (losses['aux1.loss_dice'] / 0.5 -
            losses['aux2.loss_dice'] / 0.3).abs() > 1e-3


@pytest.mark.parametrize('name', ['egeunet', 'malunet'])
def test_every_resize_is_bilinear_with_aligned_corners(name, monkeypatch):
    """The official EGE-UNet and MALUNet code resizes decoder features,
    bridge inputs and the attention memories with ``mode='bilinear',
    align_corners=True``; shapes, budget and gradients are the same with
    False, so a changed flag passed every other test (mutation testing)."""
    import torch.nn.functional as F
    calls = []
    interpolate = F.interpolate

    def recording(*args, **kwargs):
        calls.append((kwargs.get('mode'), kwargs.get('align_corners')))
        return interpolate(*args, **kwargs)

    model = build_model(name, size=(64, 64)).eval()
    monkeypatch.setattr(F, 'interpolate', recording)
    with torch.no_grad():
        model.backbone(torch.randn(1, 3, 64, 64))
    # Decoder upsampling (4 resolutions) and, for EGE-UNet, its bridges.
    assert len(calls) >= 4
    assert set(calls) == {('bilinear', True)}
