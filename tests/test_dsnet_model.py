"""DSNet backbone, head, DGA bridge, re-parameterisation and budget."""
import copy
from pathlib import Path

import pytest
import torch
from conftest import lesion_data_samples
from mmengine.config import Config
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import mmseg_dsnet.models  # noqa: F401  (registers DSNet components)
from mmseg_dsnet.models.layers import DESDConv, DynamicGateAttention
from mmseg_dsnet.models.utils import reparameterize_model

register_all_modules()
torch.manual_seed(0)

CONFIG = Path(__file__).parents[1] / 'configs/_base_/models/dsnet.py'
V1_CONFIG = Path(__file__).parents[1] / 'configs/_base_/models/dsnet-v1.py'
PREPROCESSOR = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    size=(256, 256))
# The paper's budget and our tolerance (params +-3 %, FLOPs +-5 %).
PARAMS_WINDOW = (0.291e6 * 0.97, 0.291e6 * 1.03)
FLOPS_WINDOW = (0.287e9 * 0.95, 0.287e9 * 1.05)


def model_cfg(config=CONFIG, **head_overrides):
    cfg = Config.fromfile(str(config)).model
    cfg.data_preprocessor = copy.deepcopy(PREPROCESSOR)
    cfg.decode_head.update(head_overrides)
    return cfg


def deploy_cfg(cfg):
    cfg = copy.deepcopy(cfg)
    cfg.backbone.deploy = True
    cfg.decode_head.deploy = True
    return cfg


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def warm_up(model, size=64, steps=3):
    """Non-trivial BatchNorm statistics and affine parameters."""
    for norm in model.modules():
        if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm):
            norm.momentum = 0.5
            with torch.no_grad():
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.uniform_(-0.3, 0.3)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(2, 3, size, size))
    return model.eval()


def assert_folds_exactly(model, cfg, x, expected):
    """Re-parameterise ``model`` in place; it and the deploy form of
    ``cfg`` loaded with its weights (strictly) still give ``expected``."""
    reparameterize_model(model)
    with torch.no_grad():
        assert (model(x) - expected).abs().max() <= 1e-5
    plain = MODELS.build(deploy_cfg(cfg)).eval()
    plain.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert (plain(x) - expected).abs().max() <= 1e-5
    return plain


def square_labels(batch, size):
    labels = torch.zeros(batch, size, size, dtype=torch.long)
    labels[:, size // 4:3 * size // 4, size // 3:size - 4] = 1
    return labels


# --------------------------------------------------------------- DGA bridge
def test_gate_depends_on_the_input():
    # Seeded: on some draws a gate logit passes 17 and its sigmoid rounds
    # to 1.0 in float32, so the test failed depending on the tests before.
    torch.manual_seed(0)
    bridge = DynamicGateAttention(8).eval()
    with torch.no_grad():
        for param in (bridge.channel_gate.weight, bridge.spatial_gate.weight):
            param.normal_(0, 0.5)
    enc, dec = torch.randn(2, 8, 10, 10), torch.randn(2, 8, 10, 10)
    gate = bridge.gate(enc, dec)
    assert gate.shape == enc.shape
    assert (gate > 0).all() and (gate < 1).all()
    other = bridge.gate(torch.randn_like(enc) * 3, dec)
    assert (gate - other).abs().max() > 1e-2
    # It varies per channel and per pixel, not only per image.
    assert gate.std(dim=1).mean() > 1e-3
    assert gate.flatten(2).std(dim=2).mean() > 1e-3
    # The fusion is the gated mix g * enc + (1 - g) * dec, then proj.
    with torch.no_grad():
        expected = bridge.proj(gate * enc + (1 - gate) * dec)
        torch.testing.assert_close(bridge(enc, dec), expected)



def test_gate_is_the_sigmoid_of_the_channel_and_spatial_logits():
    """The gate recomputed here from its definition (a mutation testing
    gap: the other bridge tests read ``bridge.gate`` itself, so which maps
    and pools it reads, and how it combines them, went unchecked)."""
    import torch.nn.functional as F
    bridge = DynamicGateAttention(6, spatial_kernel_size=3).eval()
    # Both gates' biases start at zero (guided weights at zero too).
    assert not bridge.channel_gate.bias.any()
    assert not bridge.spatial_gate.bias.any()
    with torch.no_grad():
        for param in (bridge.channel_gate.weight, bridge.channel_gate.bias,
                      bridge.spatial_gate.weight, bridge.spatial_gate.bias):
            param.normal_(0, 0.5)
    enc, dec = torch.randn(2, 6, 5, 7), torch.randn(2, 6, 5, 7) * 2 + 1
    # Channel logits: a 1-D conv over channels of the two image means.
    pooled = torch.stack([enc.mean((2, 3)), dec.mean((2, 3))], 1)
    channel = F.conv1d(pooled, bridge.channel_gate.weight,
                       bridge.channel_gate.bias, padding=1)
    # Spatial logits: a 3x3 conv of enc's and dec's channel mean and max.
    maps = torch.stack([
        enc.mean(1), enc.max(1).values, dec.mean(1), dec.max(1).values], 1)
    spatial = F.conv2d(maps, bridge.spatial_gate.weight,
                       bridge.spatial_gate.bias, padding=1)
    expected = torch.sigmoid(channel[:, 0, :, None, None] + spatial)
    with torch.no_grad():
        gate = bridge.gate(enc, dec)
        torch.testing.assert_close(gate, expected)
        torch.testing.assert_close(
            bridge(enc, dec),
            bridge.proj(expected * enc + (1 - expected) * dec))

def test_a_guided_gate_reads_the_guide_as_a_fifth_spatial_map():
    """The spatial gate of a guided bridge convolves the four channel maps
    and the guide itself, whose weights alone start at zero (mutation
    testing: a gate that read ``1 - guide``, or that zeroed the decoder's
    max map too, passed)."""
    import torch.nn.functional as F
    torch.manual_seed(0)
    bridge = DynamicGateAttention(6, spatial_kernel_size=3,
                                  guided=True).eval()
    weight = bridge.spatial_gate.weight
    assert not weight[:, 4].any()
    assert all(weight[:, i].abs().sum() > 0 for i in range(4))
    with torch.no_grad():
        for param in (bridge.channel_gate.weight, bridge.spatial_gate.weight,
                      bridge.spatial_gate.bias):
            param.normal_(0, 0.5)
    enc, dec = torch.randn(2, 6, 5, 7), torch.randn(2, 6, 5, 7) * 2 + 1
    guide = torch.rand(2, 1, 5, 7)
    pooled = torch.stack([enc.mean((2, 3)), dec.mean((2, 3))], 1)
    channel = F.conv1d(pooled, bridge.channel_gate.weight,
                       bridge.channel_gate.bias, padding=1)
    maps = torch.cat([enc.mean(1, keepdim=True),
                      enc.max(1, keepdim=True).values,
                      dec.mean(1, keepdim=True),
                      dec.max(1, keepdim=True).values, guide], 1)
    spatial = F.conv2d(maps, bridge.spatial_gate.weight,
                       bridge.spatial_gate.bias, padding=1)
    expected = torch.sigmoid(channel[:, 0, :, None, None] + spatial)
    with torch.no_grad():
        torch.testing.assert_close(bridge.gate(enc, dec, guide), expected)


def test_plain_skip_without_gate():
    bridge = DynamicGateAttention(8, use_gate=False).eval()
    assert not hasattr(bridge, 'channel_gate')
    enc, dec = torch.randn(1, 8, 6, 6), torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(bridge(enc, dec), bridge.proj(enc + dec))


def test_guided_gate_starts_unguided_and_then_reads_the_guide():
    bridge = DynamicGateAttention(8, guided=True).eval()
    plain = DynamicGateAttention(8).eval()
    assert bridge.spatial_gate.in_channels == 5
    with torch.no_grad():
        bridge.spatial_gate.weight[:, :4] = plain.spatial_gate.weight
        bridge.spatial_gate.bias.copy_(plain.spatial_gate.bias)
        bridge.channel_gate.load_state_dict(plain.channel_gate.state_dict())
        bridge.proj.load_state_dict(plain.proj.state_dict())
    enc, dec = torch.randn(2, 8, 10, 10), torch.randn(2, 8, 10, 10)
    guide = torch.rand(2, 1, 10, 10)
    with torch.no_grad():
        # The guide's weights start at zero: the gate of the unguided bridge.
        torch.testing.assert_close(bridge(enc, dec, guide), plain(enc, dec))
        bridge.spatial_gate.weight[:, 4:].normal_(0, 0.5)
        changed = bridge.gate(enc, dec, guide)
        assert (changed - bridge.gate(enc, dec, 1 - guide)).abs().max() > 1e-2
    with pytest.raises(ValueError, match='guide'):
        bridge(enc, dec)


# ---------------------------------------------------- backbone and the head
def test_backbone_features_and_half_resolution_logits():
    cfg = model_cfg()
    backbone = MODELS.build(cfg.backbone)
    head = MODELS.build(cfg.decode_head)
    x = torch.randn(2, 3, 64, 64)
    feats = backbone(x)
    widths = cfg.backbone.widths
    assert [f.shape[1] for f in feats] == list(widths)
    # The stride-2 stem puts stage 0 at 1/2 resolution.
    assert [f.shape[-1] for f in feats] == [32 // 2**i for i in range(5)]
    logits = head(feats)
    assert logits.shape == (2, 1, 32, 32)
    assert head.threshold == 0.5
    assert isinstance(head.up_blocks[0], DESDConv)
    assert len(head.bridges) == 4
    # The blocks that keep width and resolution are residual.
    residual = [m.shortcut for m in backbone.modules()
                if isinstance(m, DESDConv)]
    assert sum(residual) == sum(cfg.backbone.num_blocks) - 4
    # The segmentor returns logits at the input size.
    model = MODELS.build(cfg).eval()
    with torch.no_grad():
        results = model.predict(x, lesion_data_samples(square_labels(2, 64)))
    assert results[0].pred_sem_seg.data.shape == (1, 64, 64)



def test_strides_and_dilations_follow_the_config_block_by_block():
    """num_blocks=[1, 4, 4, 2, 2], dilations=[1, 1, 2, 2, 1],
    downsample='avg_pool': each later stage starts with a 2x2 mean and its
    first block has stride 1 and no dilation, the others the stage's
    dilation; the head's refine blocks [0, 1, 1, 0] have refine_dilations
    [1, 1, 2, 1]. Shapes and the budget do not show a dilation on the
    wrong block or stage (mutation testing)."""
    model = MODELS.build(model_cfg())
    stages = [['pool' if isinstance(block, torch.nn.AvgPool2d) else
               (block.stride, block.dilation) for block in stage]
              for stage in model.backbone.stages]
    assert stages == [[(1, 1)],
                      ['pool', (1, 1), (1, 1), (1, 1), (1, 1)],
                      ['pool', (1, 1), (1, 2), (1, 2), (1, 2)],
                      ['pool', (1, 1), (1, 2)],
                      ['pool', (1, 1), (1, 1)]]
    refine = [[(block.stride, block.dilation) for block in blocks]
              for blocks in model.decode_head.refine_blocks]
    assert refine == [[], [(1, 1)], [(1, 2)], []]


def test_out_indices_select_the_stages_and_default_to_all():
    """out_indices=None returns every stage, a subset only those stages
    (the configs all list them, so the default went unchecked; mutation
    testing)."""
    from mmseg_dsnet.models.backbones import DSNet
    x = torch.randn(1, 3, 32, 32)
    kwargs = dict(widths=(8, 12, 16), num_blocks=(1, 1, 1))
    with torch.no_grad():
        every = DSNet(**kwargs).eval()(x)
        some = DSNet(out_indices=(1, 2), **kwargs).eval()(x)
    assert [tuple(f.shape) for f in every] == [(1, 8, 32, 32),
                                               (1, 12, 16, 16),
                                               (1, 16, 8, 8)]
    assert [tuple(f.shape) for f in some] == [(1, 12, 16, 16),
                                              (1, 16, 8, 8)]
    # A subset without the deepest stage gives only what it names.
    with torch.no_grad():
        shallow = DSNet(out_indices=(0, 1), **kwargs).eval()(x)
    assert [tuple(f.shape) for f in shallow] == [(1, 8, 32, 32),
                                                 (1, 12, 16, 16)]

def test_first_design_stays_reachable():
    """DSNet v1: stride-1 stem, six levels, full-resolution logits."""
    cfg = model_cfg(V1_CONFIG)
    model = MODELS.build(cfg).eval()
    feats = model.backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [64 // 2**i for i in range(6)]
    assert not any(m.shortcut for m in model.modules()
                   if isinstance(m, DESDConv))
    assert isinstance(model.decode_head.final_block, DESDConv)
    with torch.no_grad():
        assert model.decode_head(feats).shape == (1, 1, 64, 64)
    params, flops = complexity(model)
    assert PARAMS_WINDOW[0] <= params <= PARAMS_WINDOW[1]
    assert FLOPS_WINDOW[0] <= flops <= FLOPS_WINDOW[1]


def test_conv_type_reaches_every_block():
    """``conv_type`` of the backbone and of the head applies to each of
    their DESDConv blocks, the head's final block included (mutation
    testing: a final block built plain passed)."""
    from mmseg_dsnet.models.layers.desd_conv import DIFFERENCE_BRANCHES
    cfg = model_cfg(V1_CONFIG)
    assert cfg.decode_head.final_block
    for conv_type, branches in (('desd', DIFFERENCE_BRANCHES),
                                ('vanilla', ('vanilla', ))):
        cfg.backbone.conv_type = cfg.decode_head.conv_type = conv_type
        model = MODELS.build(cfg)
        blocks = [m for m in model.modules() if isinstance(m, DESDConv)]
        assert model.decode_head.final_block in blocks
        assert all(b.kernels.branches == branches for b in blocks)


def test_vanilla_ablation_and_no_gate_build_and_run():
    cfg = model_cfg(use_gate=False, conv_type='vanilla')
    cfg.backbone.conv_type = 'vanilla'
    model = MODELS.build(cfg).eval()
    full = MODELS.build(model_cfg())
    assert count_params(model) < count_params(full)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1, 16, 16)


# ------------------------------------------------------ re-parameterisation
@pytest.mark.parametrize('config', [CONFIG, V1_CONFIG],
                         ids=['dsnet', 'dsnet-v1'])
def test_reparameterized_model_matches_and_deploy_config_loads_it(config):
    cfg = model_cfg(config)
    model = warm_up(MODELS.build(cfg))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    params_before = count_params(model)
    plain = assert_folds_exactly(model, cfg, x, expected)
    assert count_params(model) < params_before
    assert not any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        for m in model.modules())
    assert count_params(plain) == count_params(model)


def test_sub_pixel_classifier_gives_input_size_logits_and_folds():
    cfg = model_cfg(pixel_shuffle=2)
    model = warm_up(MODELS.build(cfg))
    head = model.decode_head
    # Four logits per 1/2-resolution position ...
    assert head.conv_seg.out_channels == 4
    assert count_params(model) - count_params(MODELS.build(model_cfg())) \
        == 3 * (head.channels + 1)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.backbone(x)
        finest = torch.randn(2, head.channels, 32, 32)
        grouped = head.conv_seg(finest)
        logits = head.cls_seg(finest)
        expected = model(x)
    # ... laid out as the 2x2 block of input pixels each position covers.
    assert logits.shape == (2, 1, 64, 64)
    assert torch.equal(logits[:, 0, 2:4, 6:8].flatten(1),
                       grouped[:, :, 1, 3])
    assert head(feats).shape == expected.shape == (2, 1, 64, 64)
    assert_folds_exactly(model, cfg, x, expected)


def test_reparameterize_drops_deep_supervision_classifiers():
    cfg = model_cfg()
    assert cfg.decode_head.deep_supervision  # on by default
    model = warm_up(MODELS.build(cfg))
    assert len(model.decode_head.aux_classifiers) == 3
    reparameterize_model(model)
    assert not hasattr(model.decode_head, 'aux_classifiers')
    plain = MODELS.build(deploy_cfg(cfg))
    plain.load_state_dict(model.state_dict(), strict=True)


def test_guided_gates_read_the_side_outputs_and_reparameterize_exactly():
    cfg = model_cfg(guided_gates=True)
    model = warm_up(MODELS.build(cfg))
    head = model.decode_head
    # Bridges at 1/2, 1/4 and 1/8 read the side outputs of 1/4, 1/8, 1/16.
    assert [bridge.guided for bridge in head.bridges] == [
        True, True, True, False]
    with torch.no_grad():
        for bridge in head.bridges[:3]:
            bridge.spatial_gate.weight[:, 4:].normal_(0, 0.5)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        # The main output depends on the side-output classifiers.
        head.aux_classifiers[0].bias += 3.0
        assert (model(x) - expected).abs().max() > 1e-3
        head.aux_classifiers[0].bias -= 3.0
    assert count_params(model) == count_params(
        MODELS.build(model_cfg())) + 3 * 49
    assert_folds_exactly(model, cfg, x, expected)
    assert len(head.aux_classifiers) == 3  # kept: the gates read them



def test_side_outputs_come_level_1_first_and_guides_are_their_probability():
    """The side logits are in level order (level 1, at 1/4 of the input,
    first: it is the one weighted 0.4 and named ``aux1``), and the guide a
    guided bridge reads is the sigmoid of the next coarser side output,
    resized bilinearly: the other tests took both from ``_decode`` itself
    (mutation testing)."""
    import torch.nn.functional as F
    cfg = model_cfg(guided_gates=True)
    model = MODELS.build(cfg).eval()
    head = model.decode_head
    guides = {}
    for level in range(3):
        head.bridges[level].register_forward_hook(
            lambda module, args, out, level=level: guides.update(
                {level: args[2]}))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.extract_feat(x)
        _, sides, _ = head._decode(list(feats), with_aux=True)
    # Stage 0 is at 1/2 (32 px): level i at 32 / 2**i.
    assert [tuple(s.shape) for s in sides] == [(2, 1, 16, 16), (2, 1, 8, 8),
                                               (2, 1, 4, 4)]
    for level in range(3):
        expected = F.interpolate(sides[level], size=feats[level].shape[2:],
                                 mode='bilinear',
                                 align_corners=False).sigmoid()
        torch.testing.assert_close(guides[level], expected)

def test_fused_side_outputs_are_the_weighted_mean_and_fold_exactly():
    cfg = model_cfg(fuse_side_outputs=True)
    model = warm_up(MODELS.build(cfg))
    head = model.decode_head
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fused = model(x)
        feats = model.extract_feat(x)
        main, sides, _ = head._decode(feats, with_aux=True)
        expected = main.clone()
        for side, weight in zip(sides, (0.4, 0.2, 0.1)):
            expected += weight * torch.nn.functional.interpolate(
                side, size=main.shape[2:], mode='bilinear',
                align_corners=False)
        expected /= 1.7
        assert fused.shape == main.shape
        assert (fused - expected).abs().max() <= 1e-6
        assert (fused - main).abs().max() > 1e-3
    # Same weights as the default (training is unchanged).
    assert count_params(model) == count_params(MODELS.build(model_cfg()))
    assert_folds_exactly(model, cfg, x, fused)
    assert len(head.aux_classifiers) == 3  # kept: the fusion reads them


def test_fused_loss_is_the_loss_of_the_fused_logits():
    torch.manual_seed(0)
    model = MODELS.build(model_cfg(fuse_side_outputs=True,
                                   fused_loss_weight=0.5))
    head = model.decode_head
    labels = square_labels(2, 64)
    x = torch.randn(2, 3, 64, 64)
    losses = model.loss(x, lesion_data_samples(labels))
    assert {'decode.fused.loss_bic', 'decode.loss_bic',
            'decode.aux1.loss_bic'} <= set(losses)
    main, sides, _ = head._decode(model.extract_feat(x), with_aux=True)
    expected = head.loss_by_feat(head._fuse(main, sides),
                                 lesion_data_samples(labels))['loss_bic'] * 0.5
    torch.testing.assert_close(losses['decode.fused.loss_bic'], expected)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(c.weight.grad is not None for c in head.aux_classifiers)


def test_no_fused_loss_without_its_weight():
    """``fuse_side_outputs`` alone changes inference only: training adds
    no ``fused.*`` loss (mutation testing: a zero-weighted fused loss,
    logged and computed every step, passed)."""
    model = MODELS.build(model_cfg(fuse_side_outputs=True)).train()
    losses = model.loss(torch.randn(2, 3, 64, 64),
                        lesion_data_samples(square_labels(2, 64)))
    assert 'decode.aux1.loss_bic' in losses
    assert not any('fused' in key for key in losses)


# ------------------------------------------------------ training / inference
def test_encoder_decoder_loss_backward_and_predict():
    model = MODELS.build(model_cfg())
    # 64 px: the deepest stage is 2x2 (at 1x1 only centre taps would act).
    labels = square_labels(2, 64)
    labels[1, :4] = 255
    inputs = torch.randn(2, 3, 64, 64)
    model.train()
    losses = model.loss(inputs, lesion_data_samples(labels))
    assert set(losses) >= {'decode.loss_bic', 'decode.acc_seg'}
    total = losses['decode.loss_bic']
    assert torch.isfinite(total) and total > 0
    total.backward()
    for block in model.modules():
        if isinstance(block, DESDConv):
            for name, param in block.kernels.named_parameters():
                assert param.grad is not None and param.grad.abs().sum(
                ) > 0, name

    model.eval()
    with torch.no_grad():
        results = model.predict(inputs, lesion_data_samples(labels))
    assert len(results) == 2
    pred = results[0].pred_sem_seg.data
    assert pred.shape == (1, 64, 64)
    assert set(pred.unique().tolist()) <= {0, 1}
    probs = results[0].seg_logits.data
    assert probs.shape == (1, 64, 64)
    # mmseg stores sigmoid probabilities for 1-channel heads; the head's
    # threshold is 0.5 (mmseg's default would be 0.3).
    assert torch.equal(pred[0].bool(), probs[0] > 0.5)


def test_deep_supervision_adds_weighted_losses():
    model = MODELS.build(model_cfg()).train()
    inputs, labels = torch.randn(2, 3, 64, 64), square_labels(2, 64)
    losses = model.loss(inputs, lesion_data_samples(labels))
    aux = sorted(k for k in losses if k.startswith('decode.aux'))
    assert aux == [f'decode.aux{i}.loss_bic' for i in (1, 2, 3)]
    assert all(torch.isfinite(losses[k]) for k in aux)
    # Each side loss is its classifier's BIC loss times its weight.
    head = model.decode_head
    feats = model.extract_feat(inputs)
    _, side_logits, _ = head._decode(list(feats), with_aux=True)
    for level, (logits, weight) in enumerate(
            zip(side_logits, head.aux_loss_weights), start=1):
        alone = head.loss_by_feat(
            logits, lesion_data_samples(labels))['loss_bic']
        torch.testing.assert_close(losses[f'decode.aux{level}.loss_bic'],
                                   alone * weight)
    without = MODELS.build(model_cfg(deep_supervision=False)).train()
    assert not any('aux' in k for k in without.loss(
        inputs, lesion_data_samples(labels)))
    # Inference never runs the auxiliary classifiers.
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1, 16, 16)


def test_signed_distance_maps_measure_the_way_to_the_rim():
    from mmseg_dsnet.models.losses.signed_distance import \
        signed_distance_maps
    labels = torch.zeros(3, 1, 21, 31, dtype=torch.long)
    labels[0, 0, 5:16, 10:21] = 1  # an 11x11 square, centre (10, 15)
    labels[0, 0, 0, :] = 255
    labels[2] = 1
    maps = signed_distance_maps(labels)
    assert maps.shape == (3, 1, 21, 31) and maps.dtype == torch.float32
    square = maps[0, 0]
    assert square.max() == 1 and square[10, 15] == 1
    assert square.min() == -1 and square[20, 0] == -1  # farthest corner
    inside = labels[0, 0] == 1
    background = labels[0, 0] == 0
    assert (square[inside] > 0).all() and (square[background] < 0).all()
    assert (square[0] == 0).all()  # ignored: neither side
    # One pixel from the rim on either side: the smallest magnitudes.
    assert square[10, 10] == square.masked_fill(~inside, 2).min() == 1 / 6
    # Distances grow away from the rim, inside and out.
    assert square[10, 10] < square[10, 11] < square[10, 12]
    assert square[10, 9] > square[10, 8] > square[10, 7]
    assert (maps[1] == -1).all() and (maps[2] == 1).all()


def test_signed_distance_maps_leave_ignored_pixels_out():
    """Ignored pixels (the corners ``RandomRotate`` pads with 255) are no
    background: a lesion running into them has no rim there, and the
    farthest of them does not set the scale of the labelled pixels'
    distances. Expected values by hand, on one-row images."""
    from mmseg_dsnet.models.losses.signed_distance import \
        signed_distance_maps
    labels = torch.tensor([
        [0, 0, 1, 1, 1, 1, 255, 255],
        [1, 0, 255, 255, 255, 255, 255, 255],
        [1, 1, 255, 255, 255, 255, 255, 255],
        [255] * 8,
    ])[:, None]
    maps = signed_distance_maps(labels)[:, 0, 0]
    # Lesion pixels 2..5 lie 1..4 from background pixel 1 (not 1, 2, 2, 1
    # from the ignored pixels 6 and 7); background 1 and 0 lie 1 and 2 from
    # the lesion.
    torch.testing.assert_close(
        maps[0], torch.tensor([-1, -0.5, 0.25, 0.5, 0.75, 1, 0, 0]))
    # The only background pixel is the farthest labelled one: -1 (not
    # -1/7 against the ignored pixel 7, seven away from the lesion).
    torch.testing.assert_close(maps[1], torch.tensor([1., -1] + [0] * 6))
    # Lesion on every labelled pixel: +1 there, as an all-lesion image.
    torch.testing.assert_close(maps[2], torch.tensor([1., 1] + [0] * 6))
    assert (maps[3] == 0).all()


def test_signed_distance_of_background_is_to_the_lesion_not_ignored():
    """Background distances are to the nearest lesion pixel, not to an
    ignored one: background pixels 1..4 lie 1..4 from the lesion pixel 0
    (pixel 4 lies 1 from the ignored pixel 5), so -1/4 .. -1."""
    from mmseg_dsnet.models.losses.signed_distance import \
        signed_distance_maps
    labels = torch.tensor([[1, 0, 0, 0, 0, 255, 255, 255]])[:, None]
    torch.testing.assert_close(
        signed_distance_maps(labels)[0, 0, 0],
        torch.tensor([1, -0.25, -0.5, -0.75, -1, 0, 0, 0]))


def test_distance_regressor_trains_and_is_dropped_by_reparameterization():
    """``distance_loss_weight``: a training-only regressor of the signed
    distance adds ``loss_distance`` (the weighted L1 over labelled
    pixels); re-parameterisation removes it and the deployed model is the
    default's."""
    from mmseg_dsnet.models.losses.signed_distance import \
        signed_distance_maps
    cfg = model_cfg(distance_loss_weight=0.5)
    model = MODELS.build(cfg).train()
    head = model.decode_head
    assert count_params(model) - count_params(MODELS.build(model_cfg())) \
        == head.channels + 1
    inputs, labels = torch.randn(2, 3, 64, 64), square_labels(2, 64)
    labels[1, :8] = 255
    losses = model.loss(inputs, lesion_data_samples(labels))
    feats = model.extract_feat(inputs)
    *_, feat = head._decode(list(feats), with_aux=False)
    distance = torch.nn.functional.interpolate(
        head.distance_regressor(feat), size=(64, 64), mode='bilinear',
        align_corners=False).tanh()
    valid = (labels != 255)[:, None]
    expected = (distance - signed_distance_maps(labels))[valid].abs().mean()
    torch.testing.assert_close(losses['decode.loss_distance'],
                               0.5 * expected)
    losses['decode.loss_distance'].backward()
    assert head.distance_regressor.weight.grad.abs().sum() > 0
    assert not any('distance' in k for k in MODELS.build(
        model_cfg()).train().loss(inputs, lesion_data_samples(labels)))
    model = warm_up(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    assert_folds_exactly(model, cfg, x, expected)
    assert not hasattr(model.decode_head, 'distance_regressor')
    with pytest.raises(ValueError, match='distance_loss_weight'):
        MODELS.build(model_cfg(distance_loss_weight=-1))


# -------------------------------------------------------------------- budget
def complexity(model):
    from mmengine.analysis import get_model_complexity_info
    info = get_model_complexity_info(
        model,
        inputs=(torch.randn(1, 3, 256, 256), ),
        show_table=False,
        show_arch=False)
    return info['params'], info['flops']


def test_budget_matches_the_paper():
    model = MODELS.build(model_cfg()).eval()
    params, flops = complexity(model)
    print(f'\nDSNet as trained: {params / 1e6:.4f} M params, '
          f'{flops / 1e9:.4f} GFLOPs @1x3x256x256')
    assert PARAMS_WINDOW[0] <= params <= PARAMS_WINDOW[1]
    assert FLOPS_WINDOW[0] <= flops <= FLOPS_WINDOW[1]

    reparameterize_model(model)
    plain_params, plain_flops = complexity(model)
    print(f'DSNet re-parameterised: {plain_params / 1e6:.4f} M params, '
          f'{plain_flops / 1e9:.4f} GFLOPs')
    assert plain_params < params and plain_flops < flops


def test_radial_channel_is_the_distance_from_the_centre():
    from mmseg_dsnet.models.backbones import DSNet
    radius = DSNet.radial_map(torch.zeros(2, 3, 5, 7))
    assert radius.shape == (2, 1, 5, 7)
    assert radius[0, 0, 2, 3].abs() < 1e-6  # the centre
    torch.testing.assert_close(radius[0, 0, 0, 0], torch.tensor(1.0))
    # Unchanged by the training flips and 180-degree rotation.
    torch.testing.assert_close(radius, radius.flip(-1))
    torch.testing.assert_close(radius, radius.flip(-2))
    backbone = DSNet(widths=(8, 16), num_blocks=(1, 1), stem_stride=2,
                     radial_channel=True).eval()
    assert backbone.stem.conv.in_channels == 4
    # The stem sees where a pixel is: a constant image gives features that
    # vary with the distance from the centre.
    with torch.no_grad():
        feats = backbone(torch.ones(1, 3, 32, 32))[0]
    assert (feats[..., 8, 8] - feats[..., 0, 0]).abs().max() > 1e-4


def test_image_norm_ignores_each_images_colour_cast():
    from mmseg_dsnet.models.backbones import DSNet
    torch.manual_seed(0)
    backbone = DSNet(widths=(8, 16), num_blocks=(1, 1), stem_stride=2,
                     radial_channel=True, image_norm=True).eval()
    image = torch.randn(2, 3, 32, 32)
    # Another white balance and exposure per image and channel.
    gain = torch.rand(2, 3, 1, 1) * 2 + 0.5
    offset = torch.randn(2, 3, 1, 1)
    with torch.no_grad():
        plain = backbone(image)[-1]
        cast = backbone(image * gain + offset)[-1]
        torch.testing.assert_close(cast, plain, rtol=1e-4, atol=1e-4)
        # Without it the cast changes the features.
        backbone.image_norm = False
        assert (backbone(image * gain + offset)[-1] -
                backbone(image)[-1]).abs().max() > 1e-2


def test_the_stem_reads_the_standardised_colours_then_the_radial_map():
    """With both options the stem's input is the three colour channels,
    each standardised over its image's pixels, then the distance map as
    the fourth channel, itself not standardised (mutation testing: the
    map put first, or standardised with the colours, passed)."""
    from mmseg_dsnet.models.backbones import DSNet
    backbone = DSNet(widths=(8, 16), num_blocks=(1, 1), stem_stride=2,
                     radial_channel=True, image_norm=True).eval()
    seen = []
    backbone.stem.register_forward_pre_hook(
        lambda module, args: seen.append(args[0]))
    image = torch.rand(2, 3, 6, 5) * 200 + 20
    with torch.no_grad():
        backbone(image)
    stem_input = seen[0].double()
    assert stem_input.shape == (2, 4, 6, 5)
    colours = image.double()
    mean = colours.mean(dim=(2, 3), keepdim=True)
    var = colours.var(dim=(2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(stem_input[:, :3],
                               (colours - mean) / (var + 1e-5).sqrt(),
                               atol=1e-4, rtol=1e-4)
    # Distance from the centre, 1 in the corners, for every image.
    rows = torch.linspace(-1, 1, 6, dtype=torch.float64)[:, None]
    cols = torch.linspace(-1, 1, 5, dtype=torch.float64)[None, :]
    radius = (rows**2 + cols**2).sqrt() / 2**0.5
    for index in range(2):
        torch.testing.assert_close(stem_input[index, 3], radius)


def test_zero_init_residual_starts_blocks_as_identity():
    from mmseg_dsnet.models.backbones import DSNet
    backbone = DSNet(widths=(8, 16), num_blocks=(2, 3), stem_stride=2,
                     shortcut=True, zero_init_residual=True)
    backbone.init_weights()
    blocks = [m for m in backbone.modules() if isinstance(m, DESDConv)]
    residual = [b for b in blocks if b.shortcut]
    # Both blocks of stage 0 and the two after stage 1's stride-2 block.
    assert len(residual) == 4
    assert all(b.pointwise_norm.weight.abs().sum() == 0 for b in residual)
    assert all(b.pointwise_norm.weight.abs().sum() > 0 for b in blocks
               if not b.shortcut)
    # A residual block then passes its (non-negative) input through.
    x = torch.rand(2, 16, 8, 8)
    block = residual[-1].eval()
    with torch.no_grad():
        out = block(x)
    torch.testing.assert_close(out, torch.relu(
        x + block.pointwise_norm.bias.view(1, -1, 1, 1)))


def test_head_zero_init_residual_starts_refine_blocks_as_identity():
    cfg = model_cfg(zero_init_residual=True)
    model = MODELS.build(cfg)
    model.init_weights()
    head = model.decode_head.eval()
    blocks = [block for blocks in head.refine_blocks for block in blocks]
    assert len(blocks) == sum(cfg.decode_head.refine_blocks) > 0
    for block in blocks:
        assert not block.pointwise_norm.weight.any()
        # It passes its (non-negative, post-ReLU) input through.
        x = torch.rand(1, block.in_channels, 8, 8)
        with torch.no_grad():
            torch.testing.assert_close(block(x), torch.relu(
                x + block.pointwise_norm.bias.view(1, -1, 1, 1)))
    # Off by default: the refine blocks start as random residuals.
    default = MODELS.build(model_cfg())
    default.init_weights()
    assert all(block.pointwise_norm.weight.any()
               for blocks in default.decode_head.refine_blocks
               for block in blocks)


def test_drop_path_rate_rises_over_the_residual_blocks():
    from mmseg_dsnet.models.backbones import DSNet
    backbone = DSNet(widths=(8, 16, 24), num_blocks=(2, 3, 2),
                     stem_stride=2, shortcut=True, drop_path_rate=0.2)
    rates = [getattr(b.drop_path, 'drop_prob', 0.0)
             for b in backbone.modules() if isinstance(b, DESDConv)]
    # Stage 0's two blocks and every later block but the stride-2 firsts.
    assert rates == pytest.approx([0, 0.05, 0, 0.1, 0.15, 0, 0.2])
    with pytest.raises(ValueError, match='shortcut'):
        DSNet(widths=(8, 16), num_blocks=(1, 2), drop_path_rate=0.1)


def test_padding_modes_apply_per_stage():
    from mmseg_dsnet.models.backbones import DSNet
    backbone = DSNet(widths=(8, 16, 24), num_blocks=(1, 2, 2),
                     stem_stride=2, padding_modes=('zeros', 'replicate',
                                                   'replicate'))
    modes = [[b.padding_mode for b in stage] for stage in backbone.stages]
    assert modes == [['zeros'], ['replicate'] * 2, ['replicate'] * 2]
    with pytest.raises(ValueError, match='one entry per stage'):
        DSNet(widths=(8, 16), num_blocks=(1, 2), padding_modes=['zeros'])


def assert_design_candidate_in_budget(name):
    """The design candidate ``dsnet-design-deeper-eighth-NAME`` as trained
    is inside the paper's budget."""
    config = CONFIG.parents[2] / ('dsnet/design/dsnet-design-deeper-eighth-'
                                  f'{name}_isic2017.py')
    params, flops = complexity(MODELS.build(model_cfg(config)).eval())
    assert PARAMS_WINDOW[0] <= params <= PARAMS_WINDOW[1]
    assert FLOPS_WINDOW[0] <= flops <= FLOPS_WINDOW[1]


def test_stage_norms_apply_per_stage():
    from mmseg_dsnet.models.backbones import DSNet
    gn = dict(type='GN', num_groups=4)
    backbone = DSNet(widths=(8, 16, 24), num_blocks=(1, 2, 2),
                     stem_stride=2, stage_norm_cfgs=[None, None, gn])
    kinds = [[type(b.pointwise_norm).__name__ for b in stage]
             for stage in backbone.stages]
    assert kinds == [['BatchNorm2d'], ['BatchNorm2d'] * 2,
                     ['GroupNorm'] * 2]
    assert type(backbone.stem.norm).__name__ == 'BatchNorm2d'
    with pytest.raises(ValueError, match='one entry .* per stage'):
        DSNet(widths=(8, 16), num_blocks=(1, 2), stage_norm_cfgs=[gn])
    assert_design_candidate_in_budget('group-norm')


def test_branch_norms_apply_per_stage_inside_the_budget():
    from mmseg_dsnet.models.backbones import DSNet
    backbone = DSNet(widths=(8, 16, 24), num_blocks=(1, 2, 2),
                     stem_stride=2, branch_norms=[False, False, True])
    norm_widths = [[b.depthwise_norm.num_features for b in stage]
                   for stage in backbone.stages]
    # The first block of a stage convolves the previous stage's channels.
    assert norm_widths == [[8], [8, 16], [16 * 5, 24 * 5]]
    with pytest.raises(ValueError, match='one entry .* per stage'):
        DSNet(widths=(8, 16), num_blocks=(1, 2), branch_norms=[True])
    assert_design_candidate_in_budget('branch-norms')


def test_depth_multipliers_apply_to_each_stages_first_block():
    from mmseg_dsnet.models.backbones import DSNet
    backbone = DSNet(widths=(8, 16, 24), num_blocks=(1, 2, 2),
                     stem_stride=2, depth_multipliers=[1, 2, 1])
    depthwise = [[b.depthwise_channels for b in stage]
                 for stage in backbone.stages]
    assert depthwise == [[8], [16, 16], [16, 24]]
    feats = backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [8, 16, 24]
    with pytest.raises(ValueError, match='depth_multipliers'):
        DSNet(widths=(8, 16), num_blocks=(1, 2), depth_multipliers=[1, 0])
    assert_design_candidate_in_budget('depth-2')


def test_stage_activations_apply_per_stage_and_reparameterize_exactly():
    from mmseg_dsnet.models.backbones import DSNet
    backbone = DSNet(widths=(8, 16, 24), num_blocks=(1, 2, 2),
                     stem_stride=2, shortcut=True,
                     stage_act_cfgs=[None, None, dict(type='GELU')])
    kinds = [[type(b.pointwise_act).__name__ for b in stage]
             for stage in backbone.stages]
    assert kinds == [['ReLU'], ['ReLU'] * 2, ['GELU'] * 2]
    assert type(backbone.stages[2][1].depthwise_act).__name__ == 'GELU'
    with pytest.raises(ValueError, match='one entry .* per stage'):
        DSNet(widths=(8, 16), num_blocks=(1, 2),
              stage_act_cfgs=[dict(type='GELU')])
    warm_up(backbone)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = backbone(x)
        reparameterize_model(backbone)
        for out, ref in zip(backbone(x), expected):
            assert (out - ref).abs().max() <= 1e-5


def test_image_context_adds_the_same_summary_to_every_pixel():
    from mmseg_dsnet.models.layers import ImageContext
    context = ImageContext(6, 3)
    x = torch.rand(2, 6, 5, 7)
    # Starts as the identity.
    torch.testing.assert_close(context(x), x)
    torch.nn.init.normal_(context.expand.weight)
    with torch.no_grad():
        added = context(x) - x
        # One vector per image, the same at every pixel ...
        assert torch.allclose(added, added[..., :1, :1].expand_as(added))
        # ... that depends on the image's mean only: shuffling the pixels
        # changes nothing, changing the mean does.
        shuffled = x.flatten(2)[..., torch.randperm(35)].reshape_as(x)
        torch.testing.assert_close(context(shuffled) - shuffled, added)
        assert not torch.allclose(context(x + 1) - (x + 1), added)
    with pytest.raises(ValueError, match='hidden_channels'):
        ImageContext(6, 0)



def test_image_context_is_expand_relu_reduce_of_the_mean_by_hand():
    """``x + expand(relu(reduce(mean_hw(x))))`` recomputed here: the
    property test above holds for any pooling that ignores pixel order
    (the max too) and for a missing ReLU (mutation testing)."""
    from mmseg_dsnet.models.layers import ImageContext
    context = ImageContext(4, 3)
    with torch.no_grad():
        context.reduce.weight.normal_()
        # Hidden unit 0 is always cut by the ReLU, unit 2 always passes.
        context.reduce.bias.copy_(torch.tensor([-50.0, 0.0, 50.0]))
        context.expand.weight.normal_()
        context.expand.bias.normal_()
    x = torch.randn(2, 4, 3, 5) * 2
    mean = x.mean(dim=(2, 3))
    hidden = (mean @ context.reduce.weight[:, :, 0, 0].T +
              context.reduce.bias).clamp(min=0)
    assert (hidden[:, 0] == 0).all() and (hidden[:, 2] > 0).all()
    added = hidden @ context.expand.weight[:, :, 0, 0].T + context.expand.bias
    with torch.no_grad():
        torch.testing.assert_close(context(x), x + added[:, :, None, None])

def test_image_context_sits_on_the_deepest_feature_within_budget():
    from mmseg_dsnet.models.backbones import DSNet
    backbone = DSNet(widths=(8, 16, 24), num_blocks=(1, 2, 2),
                     stem_stride=2, image_context_channels=4)
    assert backbone.image_context.reduce.in_channels == 24
    backbone.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = backbone(x)
        # A positive bias keeps the bottleneck's ReLU open whatever the
        # random weights, so the summary cannot vanish by chance.
        backbone.image_context.reduce.bias.fill_(1.0)
        torch.nn.init.normal_(backbone.image_context.expand.weight)
        after = backbone(x)
    for shallow, shallow_after in zip(before[:-1], after[:-1]):
        torch.testing.assert_close(shallow, shallow_after)
    assert not torch.allclose(before[-1], after[-1])
    config = CONFIG.parents[2] / ('dsnet/design/dsnet-design-deeper-eighth'
                                  '-image-context_isic2017.py')
    params, flops = complexity(MODELS.build(model_cfg(config)).eval())
    assert PARAMS_WINDOW[0] <= params <= PARAMS_WINDOW[1]
    assert FLOPS_WINDOW[0] <= flops <= FLOPS_WINDOW[1]


def test_head_options_are_checked():
    cfg = model_cfg()
    head = dict(cfg.decode_head)
    head.pop('type')
    from mmseg_dsnet.models.decode_heads import DSNetHead
    with pytest.raises(ValueError, match='channels must equal'):
        DSNetHead(**dict(head, channels=32))
    with pytest.raises(ValueError, match='one per bridge'):
        DSNetHead(**dict(head, refine_blocks=[1, 1]))
    with pytest.raises(ValueError, match='pixel_shuffle must be >= 1'):
        DSNetHead(**dict(head, pixel_shuffle=0))
    with pytest.raises(ValueError, match='guided_gates needs'):
        DSNetHead(**dict(head, guided_gates=True, deep_supervision=False))
    with pytest.raises(ValueError, match='fuse_side_outputs needs'):
        DSNetHead(**dict(head, fuse_side_outputs=True,
                         deep_supervision=False))
    with pytest.raises(ValueError, match='fused_loss_weight must be'):
        DSNetHead(**dict(head, fused_loss_weight=1.0))
    with pytest.raises(ValueError, match='fused_loss_weight must be'):
        DSNetHead(**dict(head, fuse_side_outputs=True, fused_loss_weight=-1))
    with pytest.raises(ValueError, match='guided bridge needs use_gate'):
        DynamicGateAttention(8, use_gate=False, guided=True)
    # One weight per bridge level below the deepest (5 inputs: 3): a
    # fourth had no level to supervise and was dropped without a word.
    assert len(head['in_channels']) == 5
    with pytest.raises(ValueError, match='aux_loss_weights needs 1 to 3'):
        DSNetHead(**dict(head, aux_loss_weights=[0.4, 0.2, 0.1, 0.05]))
    # Refine blocks are residual DESDConvs at their level's width.
    built = DSNetHead(**head)
    refine = [(level, block) for level, blocks in enumerate(
        built.refine_blocks) for block in blocks]
    assert [level for level, _ in refine] == [
        level for level, n in enumerate(cfg.decode_head.refine_blocks)
        for _ in range(n)]
    assert all(b.shortcut and b.in_channels == cfg.decode_head.in_channels[
        level] for level, b in refine)


def test_kernel_sizes_apply_per_stage_inside_the_budget():
    from mmseg_dsnet.models.backbones import DSNet
    backbone = DSNet(widths=(8, 16, 24), num_blocks=(1, 2, 2),
                     stem_stride=2, shortcut=True, kernel_sizes=[3, 3, 5])
    sizes = [[b.kernel_size for b in stage] for stage in backbone.stages]
    assert sizes == [[3], [3, 3], [5, 5]]
    feats = backbone(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(8, 32, 32), (16, 16, 16),
                                                    (24, 8, 8)]
    with pytest.raises(ValueError, match='kernel_sizes'):
        DSNet(widths=(8, 16), num_blocks=(1, 2), kernel_sizes=[3, 1])
    assert_design_candidate_in_budget('kernel-5-small')


def test_pooled_downsampling_centres_each_level_on_its_blocks():
    """With mirror-symmetric depthwise kernels, stages that downsample by
    2x2 means give the mirror image's features as the mirror of the
    image's at every level: each level's pixel sits on the middle of the
    block it summarises, where the decoder's bilinear upsampling puts it.
    At stride 2 the output pixel ``i`` sits on input pixel ``2i``, so the
    mirror image's features land one pixel off."""
    from mmseg_dsnet.models.backbones import DSNet
    torch.manual_seed(0)
    x = torch.randn(2, 8, 32, 32)
    for downsample, centred in (('avg_pool', True), ('stride', False)):
        # The deployed form: one plain depthwise conv per block.
        backbone = DSNet(widths=(8, 16, 24), num_blocks=(1, 2, 2),
                         stem_stride=2, shortcut=True, deploy=True,
                         downsample=downsample).eval()
        with torch.no_grad():
            for conv in backbone.modules():
                if isinstance(conv, torch.nn.Conv2d) and conv.groups > 1:
                    conv.weight.copy_(torch.rand_like(conv.weight))
                    conv.weight.add_(conv.weight.flip(-1))
            feats, mirrored = [x], [x.flip(-1)]
            for stage in backbone.stages:
                feats.append(stage(feats[-1]))
                mirrored.append(stage(mirrored[-1]))
        assert [tuple(f.shape[-2:]) for f in feats] == [(32, 32), (32, 32),
                                                        (16, 16), (8, 8)]
        # float32 rounding grows with the features' scale.
        agree = [torch.allclose(m, f.flip(-1), atol=1e-6 * f.abs().max())
                 for f, m in zip(feats[2:], mirrored[2:])]
        assert agree == [centred] * 2, downsample
    with pytest.raises(ValueError, match="downsample must be 'stride' or "
                       "'avg_pool', got 'max'"):
        DSNet(widths=(8, 16), num_blocks=(1, 2), downsample='max')
    assert_design_candidate_in_budget('pooled-downsampling')


def test_an_even_stem_kernel_centres_the_stem_on_the_pixels_it_reads():
    """With a mirror-symmetric kernel, a 4x4 stem at stride 2 (one pixel of
    padding) gives the mirror image's features as the mirror of the
    image's: output pixel ``i`` reads input pixels ``2i - 1`` to ``2i + 2``,
    centred on ``2i + 0.5`` where the decoder's upsampling puts it. The 3x3
    stem centres it on ``2i`` and lands the mirror image one pixel off."""
    from mmseg_dsnet.models.backbones import DSNet
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for kernel_size, centred in ((4, True), (3, False)):
        backbone = DSNet(widths=(8, 16), num_blocks=(1, 1), stem_stride=2,
                         stem_kernel_size=kernel_size, deploy=True).eval()
        conv = backbone.stem.conv
        assert conv.kernel_size == (kernel_size, ) * 2
        with torch.no_grad():
            conv.weight.add_(conv.weight.flip(-1))
            feat, mirrored = backbone.stem(x), backbone.stem(x.flip(-1))
        assert feat.shape[-2:] == (16, 16)
        assert torch.allclose(mirrored, feat.flip(-1),
                              atol=1e-6 * feat.abs().max()) == centred
    with pytest.raises(ValueError, match='stem_kernel_size must be odd, or '
                       'even with stem_stride 2, got 4 with stem_stride 1'):
        DSNet(widths=(8, 16), num_blocks=(1, 1), stem_stride=1,
              stem_kernel_size=4)
    assert_design_candidate_in_budget('pooled-centred-stem')


@pytest.mark.parametrize('head_type', ['DSNetHead', 'LightweightClsHead'])
def test_head_threshold_the_masks_would_not_use_is_refused(head_type):
    """A threshold outside (0, 1) made all-background (1.5) or all-lesion
    (0) masks, and one given with two channels was ignored by mmseg's
    argmax but read by LesionInferencer, exit 0 either way."""
    from mmseg_dsnet.utils.errors import UserError
    if head_type == 'DSNetHead':
        head = dict(model_cfg().decode_head)
    else:
        head = dict(type='LightweightClsHead', in_channels=8,
                    num_classes=2, out_channels=1, threshold=0.5)
    for threshold in (1.5, 0.0, 1.0, -0.2, float('nan')):
        with pytest.raises(UserError, match=f'{head_type} threshold must be '
                           r'a lesion probability in \(0, 1\)'):
            MODELS.build(dict(head, threshold=threshold))
    with pytest.raises(UserError, match=r'threshold=0.3 has no effect with '
                       'out_channels=2: the masks are the argmax'):
        MODELS.build(dict(head, out_channels=2, threshold=0.3))
    # The thresholds the masks do use still build.
    assert MODELS.build(dict(head, threshold=0.3)).threshold == 0.3
    for threshold in (None, 0.5):
        assert MODELS.build(dict(head, out_channels=2,
                                 threshold=threshold)).out_channels == 2


def test_the_re_parameterised_head_refuses_to_train():
    """A deploy=True head computed a loss (its deep supervision silently
    gone, no BatchNorm to train), so a deploy model trained without an
    error."""
    from mmseg_dsnet.utils.errors import UserError
    model = MODELS.build(deploy_cfg(model_cfg())).train()
    with pytest.raises(UserError, match=r'DSNetHead\(deploy=True\) is the '
                       're-parameterised \(inference\) form and cannot be '
                       'trained'):
        model.loss(torch.randn(1, 3, 64, 64),
                   lesion_data_samples(square_labels(1, 64)))


def test_a_model_re_parameterised_in_place_refuses_to_train():
    """reparameterize_model left the head's deploy flag False, so the
    folded model (no BatchNorm, deep supervision gone) trained on in
    train() mode: only the main loss, no error."""
    from mmseg_dsnet.utils.errors import UserError
    model = MODELS.build(model_cfg()).eval()
    reparameterize_model(model)
    assert model.decode_head.deploy
    model.train()
    with pytest.raises(UserError, match=r'DSNetHead\(deploy=True\) is the '
                       're-parameterised \(inference\) form and cannot be '
                       'trained'):
        model.loss(torch.randn(2, 3, 64, 64),
                   lesion_data_samples(square_labels(2, 64)))
    # Re-parameterising again changes nothing.
    state = {k: v.clone() for k, v in model.state_dict().items()}
    reparameterize_model(model)
    assert all(torch.equal(v, model.state_dict()[k])
               for k, v in state.items())


def test_a_loss_the_runner_would_not_train_is_refused():
    """A loss_decode entry named without ``loss_`` (``'dice'``) was logged
    every iteration but left out of the trained total (and of deep
    supervision), exit 0."""
    from mmseg_dsnet.models.losses import (BinaryDiceLoss,
                                           BoundaryInteriorLoss,
                                           LovaszHingeLoss)
    from mmseg_dsnet.utils.errors import UserError
    for loss in (BinaryDiceLoss, BoundaryInteriorLoss, LovaszHingeLoss):
        with pytest.raises(UserError, match=f'{loss.__name__}: loss_name '
                           'must start with "loss_", got \'dice\''):
            loss(loss_name='dice')
    config = CONFIG.parent.parent.parent / 'dsnet/dsnet_isic2017_bce-dice.py'
    cfg = Config.fromfile(str(config)).model
    assert [loss['loss_name'] for loss in cfg.decode_head.loss_decode] == [
        'loss_bce', 'loss_dice']
    # mmseg's own losses in our heads, too.
    cfg.decode_head.loss_decode[0]['loss_name'] = 'bce'
    with pytest.raises(UserError, match='DSNetHead loss_decode '
                       'CrossEntropyLoss: loss_name must start with "loss_"'
                       ", got 'bce': the runner trains only"):
        MODELS.build(cfg)
    from mmseg_dsnet.models.decode_heads import LightweightClsHead
    with pytest.raises(UserError, match='LightweightClsHead loss_decode '
                       'CrossEntropyLoss: loss_name'):
        LightweightClsHead(in_channels=8, num_classes=2, out_channels=1,
                           threshold=0.5, loss_decode=dict(
                               type='CrossEntropyLoss', use_sigmoid=True,
                               loss_name='bce'))


def test_loss_and_head_weights_out_of_range_are_refused():
    """A negative loss or deep-supervision weight trained the model to
    maximise its term (a NaN one gave NaN losses), and a negative number
    of refine blocks built none, all without an error; a refine dilation
    of 0 failed with a RuntimeError at the first forward pass."""
    from mmseg_dsnet.models.losses import (BinaryDiceLoss,
                                           BoundaryInteriorLoss,
                                           LovaszHingeLoss)
    from mmseg_dsnet.utils.errors import UserError
    for name in ('bce_weight', 'dice_weight', 'boundary_weight',
                 'interior_weight', 'smooth', 'loss_weight'):
        for value in (-1.0, float('nan'), float('inf')):
            with pytest.raises(UserError, match=f'BoundaryInteriorLoss: '
                               f'{name} must be a finite number >= 0'):
                BoundaryInteriorLoss(**{name: value})
    with pytest.raises(UserError, match='BinaryDiceLoss: smooth must be'):
        BinaryDiceLoss(smooth=-1)
    with pytest.raises(UserError, match='LovaszHingeLoss: loss_weight must'):
        LovaszHingeLoss(loss_weight=float('nan'))
    # 0 switches a term off, as the ablations do.
    BoundaryInteriorLoss(boundary_weight=0, interior_weight=0, smooth=0)
    head = dict(model_cfg().decode_head)
    with pytest.raises(UserError, match=r'DSNetHead: aux_loss_weights\[1\] '
                       'must be a finite number >= 0, got -0.2'):
        MODELS.build(dict(head, aux_loss_weights=[0.4, -0.2, 0.1]))
    with pytest.raises(UserError, match=r'aux_loss_weights\[0\] must be'):
        MODELS.build(dict(head, aux_loss_weights=[float('nan')]))
    for refine in (dict(refine_blocks=[0, -1, 1, 0]),
                   dict(refine_dilations=[1, 0, 2, 1])):
        with pytest.raises(UserError, match='refine_blocks need entries >= '
                           '0 and refine_dilations entries >= 1'):
            MODELS.build(dict(head, **refine))
    from mmseg_dsnet.models.decode_heads import LightweightClsHead
    with pytest.raises(UserError, match=r'LightweightClsHead: '
                       r'aux_loss_weights\[0\] must be a finite number'):
        LightweightClsHead(in_channels=8, num_classes=2, out_channels=1,
                           threshold=0.5, aux_in_index=(1, ),
                           aux_loss_weights=(-0.5, ))


def test_group_norm_model_loads_into_its_deploy_form():
    """With a norm that does not fold (GroupNorm), re-parameterisation
    keeps it after the stem and the DGA projections, but the deploy form
    built them without it: the deploy checkpoint did not load into the
    deploy config (``reparameterize.py`` ended in a RuntimeError traceback
    of missing and unexpected keys)."""
    gn = dict(type='GN', num_groups=4, requires_grad=True)
    cfg = model_cfg(norm_cfg=gn)
    cfg.backbone.norm_cfg = gn
    model = warm_up(MODELS.build(cfg))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    plain = assert_folds_exactly(model, cfg, x, expected)
    assert plain.backbone.stem.norm_name == 'gn'
    assert all(bridge.proj.with_norm for bridge in plain.decode_head.bridges)
    # A BatchNorm is still folded away in the deploy form.
    default = MODELS.build(deploy_cfg(model_cfg()))
    assert not default.backbone.stem.with_norm
    assert not any(b.proj.with_norm for b in default.decode_head.bridges)


def test_backbone_outputs_the_head_does_not_expect_are_named():
    """Backbone widths or out_indices changed without the head's
    in_channels / in_index failed deep inside a convolution (RuntimeError)
    or with an IndexError, at the first iteration."""
    from mmseg_dsnet.utils.errors import UserError
    x = torch.randn(1, 3, 64, 64)
    cfg = model_cfg()
    cfg.backbone.widths = [16, 80, 96, 128, 128]
    with pytest.raises(UserError, match=r'DSNetHead in_channels=\[16, 80, '
                       r'96, 128, 160\], but the backbone outputs it reads '
                       r'have \[16, 80, 96, 128, 128\] channels'):
        MODELS.build(cfg).eval()(x)
    cfg = model_cfg()
    cfg.backbone.out_indices = (1, 2, 3, 4)
    with pytest.raises(UserError, match=r'DSNetHead reads backbone outputs '
                       r'in_index=\[0, 1, 2, 3, 4\], but the backbone gives '
                       '4'):
        MODELS.build(cfg).train().loss(
            x, lesion_data_samples(square_labels(1, 64)))
