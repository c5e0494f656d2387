"""DESDConv: difference kernels, their fusion, re-parameterisation."""
import pytest
import torch
import torch.nn.functional as F

from mmseg_dsnet.models.layers import DESDConv, DifferenceKernels
from mmseg_dsnet.models.utils import reparameterize_model

torch.manual_seed(0)


def depthwise(x, kernel):
    return F.conv2d(x, kernel, padding=1, groups=x.shape[1])


def neighbourhoods(x):
    """``(N, C, 9, H, W)``: the 3x3 neighbourhood, positions 0..8 row-major."""
    n, c, h, w = x.shape
    return F.unfold(x, 3, padding=1).reshape(n, c, 9, h, w)


def interior(t):
    """Drop the 1-pixel frame where zero padding interferes."""
    return t[..., 1:-1, 1:-1]


@pytest.fixture
def kernels():
    return DifferenceKernels(4)


def test_central_difference_vanishes_on_constant_image(kernels):
    x = torch.full((2, 4, 9, 9), 3.7)
    out = depthwise(x, kernels.central_kernel())
    assert interior(out).abs().max() < 1e-5
    # ... and equals sum_k w_k (x_k - x_centre) on a random image.
    x = torch.randn(2, 4, 9, 9)
    patches = neighbourhoods(x)
    w = kernels.central_weight.reshape(1, 4, 9, 1, 1)
    expected = (w * (patches - patches[:, :, 4:5])).sum(2)
    torch.testing.assert_close(
        interior(depthwise(x, kernels.central_kernel())), interior(expected))


def test_horizontal_difference_is_a_horizontal_gradient(kernels):
    rows = torch.randn(9).reshape(1, 1, 9, 1)
    varies_vertically = rows.expand(2, 4, 9, 9)  # constant along each row
    out = depthwise(varies_vertically, kernels.horizontal_kernel())
    assert interior(out).abs().max() < 1e-5
    cols = torch.randn(9).reshape(1, 1, 1, 9)
    varies_horizontally = cols.expand(2, 4, 9, 9)
    out = depthwise(varies_horizontally, kernels.horizontal_kernel())
    assert interior(out).abs().max() > 1e-2
    kernel = kernels.horizontal_kernel()
    h = kernels.horizontal_weight[:, 0]
    torch.testing.assert_close(kernel[:, 0, :, 0], h)
    torch.testing.assert_close(kernel[:, 0, :, 2], -h)
    assert kernel[:, 0, :, 1].abs().max() == 0


def test_vertical_difference_is_a_vertical_gradient(kernels):
    cols = torch.randn(9).reshape(1, 1, 1, 9)
    varies_horizontally = cols.expand(2, 4, 9, 9)  # constant along columns
    out = depthwise(varies_horizontally, kernels.vertical_kernel())
    assert interior(out).abs().max() < 1e-5
    rows = torch.randn(9).reshape(1, 1, 9, 1)
    out = depthwise(rows.expand(2, 4, 9, 9), kernels.vertical_kernel())
    assert interior(out).abs().max() > 1e-2
    kernel = kernels.vertical_kernel()
    v = kernels.vertical_weight[:, 0]
    torch.testing.assert_close(kernel[:, 0, 0], v)
    torch.testing.assert_close(kernel[:, 0, 2], -v)
    assert kernel[:, 0, 1].abs().max() == 0


def test_angular_difference_pairs_ring_pixels_clockwise():
    kernels = DifferenceKernels(1)
    with torch.no_grad():
        kernels.angular_weight.zero_()
        kernels.angular_weight[0, 0, 0] = 1.0  # top-left tap only
    expected_kernel = torch.tensor([[1., -1., 0.], [0., 0., 0.], [0., 0.,
                                                                  0.]])
    torch.testing.assert_close(kernels.angular_kernel()[0, 0],
                               expected_kernel)
    # Response: top-left pixel minus its clockwise neighbour (top-middle).
    x = torch.arange(25.).reshape(1, 1, 5, 5) ** 2
    out = depthwise(x, kernels.angular_kernel())
    torch.testing.assert_close(out[0, 0, 2, 2], x[0, 0, 1, 1] - x[0, 0, 1, 2])

    # Random taps: sum over the ring of w_i (x_i - x_clockwise_next(i)).
    kernels = DifferenceKernels(3)
    ring = [0, 1, 2, 5, 8, 7, 6, 3]
    x = torch.randn(2, 3, 7, 7)
    patches = neighbourhoods(x)
    w = kernels.angular_weight.reshape(1, 3, 9, 1, 1)
    expected = sum(w[:, :, i] * (patches[:, :, i] - patches[:, :, j])
                   for i, j in zip(ring, ring[1:] + ring[:1]))
    torch.testing.assert_close(
        interior(depthwise(x, kernels.angular_kernel())), interior(expected))
    assert kernels.angular_kernel()[:, 0, 1, 1].abs().max() == 0
    # Flat image: no angular response either.
    flat = torch.ones(1, 3, 7, 7)
    assert interior(depthwise(flat, kernels.angular_kernel())).abs().max(
    ) < 1e-5


def test_vanilla_kernel_is_the_raw_weight(kernels):
    torch.testing.assert_close(kernels.vanilla_kernel().flatten(1),
                               kernels.vanilla_weight.flatten(1))


def test_summed_kernel_equals_sum_of_five_convolutions(kernels):
    x = torch.randn(2, 4, 12, 10)
    branch_kernels = kernels.branch_kernels()
    assert set(branch_kernels) == {
        'vanilla', 'central', 'angular', 'horizontal', 'vertical'
    }
    separate = sum(depthwise(x, k) for k in branch_kernels.values())
    fused = depthwise(x, kernels.fused_kernel())
    torch.testing.assert_close(fused, separate, atol=1e-5, rtol=1e-5)


def warm_up(module, make_input, steps=3):
    """Give every BatchNorm non-trivial affine parameters and statistics."""
    for norm in module.modules():
        if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm):
            norm.momentum = 0.5
            with torch.no_grad():
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.uniform_(-0.5, 0.5)
    module.train()
    with torch.no_grad():
        for _ in range(steps):
            module(make_input())
    return module.eval()


def count_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('conv_type', ['desd', 'vanilla'])
@pytest.mark.parametrize('stride', [1, 2])
def test_reparameterized_block_matches_training_form(conv_type, stride):
    block = DESDConv(6, 10, stride=stride, conv_type=conv_type)
    warm_up(block, lambda: torch.randn(4, 6, 16, 16) * 2 + 1)
    x = torch.randn(3, 6, 17, 15)
    with torch.no_grad():
        expected = block(x)
    params_before = count_params(block)
    block.reparameterize()
    assert block.deploy
    assert not hasattr(block, 'kernels')
    assert count_params(block) < params_before
    with torch.no_grad():
        out = block(x)
    assert out.shape == expected.shape
    assert (out - expected).abs().max() <= 1e-5
    # Only plain convolutions remain: one depthwise 3x3, one pointwise 1x1.
    convs = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (1, 1)]
    assert convs[0].groups == 6 and convs[0].bias is not None


@pytest.mark.parametrize('dilation', [1, 2, 3])
@pytest.mark.parametrize('shortcut', [False, True])
def test_residual_and_dilated_blocks_reparameterize_exactly(
        dilation, shortcut):
    block = DESDConv(8, 8, dilation=dilation, shortcut=shortcut)
    warm_up(block, lambda: torch.randn(4, 8, 16, 16) * 2 + 1)
    x = torch.randn(2, 8, 19, 13)
    with torch.no_grad():
        expected = block(x)
        # The shortcut adds the input before the last activation.
        block.shortcut = False
        without = block(x)
        block.shortcut = shortcut
    assert expected.shape == x.shape
    if shortcut:
        assert (expected - without).abs().max() > 1e-3
    reparameterize_model(block)
    depthwise = block.depthwise
    assert depthwise.dilation == (dilation, dilation)
    assert depthwise.padding == (dilation, dilation)
    with torch.no_grad():
        assert (block(x) - expected).abs().max() <= 1e-5
    plain = DESDConv(8, 8, dilation=dilation, shortcut=shortcut,
                     deploy=True).eval()
    plain.load_state_dict(block.state_dict(), strict=True)
    with torch.no_grad():
        assert (plain(x) - expected).abs().max() <= 1e-5


def test_the_shortcut_is_added_before_the_last_activation():
    """``act(branch(x) + x)``: a residual block's output is the ReLU of
    the sum, never negative (mutation testing: ``act(branch(x)) + x``
    passed; the tests compared the block with its own fold only)."""
    block = warm_up(DESDConv(4, 4, shortcut=True),
                    lambda: torch.randn(4, 4, 8, 8))
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        out = block(x)
        block.shortcut = False
        block.pointwise_act = torch.nn.Identity()
        branch = block(x)
    torch.testing.assert_close(out, F.relu(branch + x))
    assert out.min() >= 0 and (out == 0).any()


@pytest.mark.parametrize('dilation,stride', [(1, 1), (2, 1), (1, 2)])
def test_replicate_padding_reparameterizes_exactly(dilation, stride):
    block = DESDConv(8, 8, stride=stride, dilation=dilation,
                     padding_mode='replicate', shortcut=stride == 1)
    warm_up(block, lambda: torch.randn(4, 8, 12, 12) * 2 + 1)
    x = torch.randn(2, 8, 9, 7)
    with torch.no_grad():
        expected = block(x)
    reparameterize_model(block)
    assert block.depthwise.padding_mode == 'replicate'
    with torch.no_grad():
        assert (block(x) - expected).abs().max() <= 1e-5
    plain = DESDConv(8, 8, stride=stride, dilation=dilation,
                     padding_mode='replicate', shortcut=stride == 1,
                     deploy=True).eval()
    plain.load_state_dict(block.state_dict(), strict=True)
    with torch.no_grad():
        assert (plain(x) - expected).abs().max() <= 1e-5


@pytest.mark.parametrize('stride', [1, 2])
def test_group_norm_stays_after_the_plain_convolutions(stride):
    gn = dict(type='GN', num_groups=2)
    block = DESDConv(8, 8, stride=stride, dilation=2 if stride == 1 else 1,
                     shortcut=stride == 1, norm_cfg=gn)
    with torch.no_grad():
        for norm in (block.depthwise_norm, block.pointwise_norm):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.3, 0.3)
    block.eval()
    x = torch.randn(2, 8, 9, 7) * 2 + 1
    with torch.no_grad():
        expected = block(x)
    reparameterize_model(block)
    # The branches fold into one kernel; the norms stay, without biases
    # before them (GroupNorm would remove them).
    assert isinstance(block.depthwise_norm, torch.nn.GroupNorm)
    assert block.depthwise.bias is None and block.pointwise.bias is None
    assert not hasattr(block, 'kernels')
    with torch.no_grad():
        assert (block(x) - expected).abs().max() <= 1e-5
    plain = DESDConv(8, 8, stride=stride, dilation=2 if stride == 1 else 1,
                     shortcut=stride == 1, norm_cfg=gn, deploy=True).eval()
    assert list(plain.state_dict()) == list(block.state_dict())
    plain.load_state_dict(block.state_dict(), strict=True)
    with torch.no_grad():
        assert (plain(x) - expected).abs().max() <= 1e-5
    # Each image is normalised by its own statistics: another image in the
    # batch changes nothing (a training-mode BatchNorm would).
    block.train()
    with torch.no_grad():
        alone = block(x[:1])
        paired = block(torch.cat([x[:1], x[1:] * 5]))[:1]
    torch.testing.assert_close(alone, paired)


def test_replicate_padding_sees_no_frame():
    """On a constant image every output pixel is the same with repeated
    border pixels; zero padding makes the border ring differ."""
    x = torch.full((1, 4, 8, 8), 3.0)
    for mode, flat in (('replicate', True), ('zeros', False)):
        torch.manual_seed(1)
        block = DESDConv(4, 4, dilation=2, padding_mode=mode).eval()
        with torch.no_grad():
            out = block(x)
        spread = (out - out[..., 4:5, 4:5]).abs().max()
        assert (spread <= 1e-5) == flat, mode
    with pytest.raises(ValueError, match='padding_mode'):
        DESDConv(4, 4, padding_mode='reflect')


def test_dilated_block_sees_farther():
    """An impulse reaches output pixels ``dilation`` away, not nearer."""
    block = DESDConv(1, 1, dilation=2, act_cfg=None).eval()
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    with torch.no_grad():
        out = block(x) - block(torch.zeros_like(x))
    touched = out[0, 0].abs() > 1e-7
    assert touched[4, 2] and touched[2, 4] and touched[6, 6]
    assert not touched[4, 3] and not touched[3, 3]


def test_shortcut_needs_matching_shape():
    with pytest.raises(ValueError, match='identity shortcut'):
        DESDConv(4, 8, shortcut=True)
    with pytest.raises(ValueError, match='identity shortcut'):
        DESDConv(4, 4, stride=2, shortcut=True)


def test_drop_path_drops_whole_samples_in_training_only():
    block = warm_up(DESDConv(4, 4, shortcut=True, drop_path=0.5),
                    lambda: torch.randn(4, 4, 8, 8))
    block.pointwise_act = torch.nn.Identity()  # see the sum itself
    x = torch.randn(64, 4, 8, 8)
    with torch.no_grad():
        branch = DESDConv(4, 4, shortcut=True).eval()
        branch.load_state_dict(block.state_dict())
        branch.pointwise_act = torch.nn.Identity()
        kept = branch(x) - x
        block.drop_path.train()  # BatchNorm stays on its running statistics
        torch.manual_seed(1)
        out = block(x) - x
    # Each sample has its branch dropped (0) or kept and scaled by 1 / 0.5.
    dropped = out.flatten(1).abs().amax(1) == 0
    assert 10 < int(dropped.sum()) < 54
    torch.testing.assert_close(out[~dropped], kept[~dropped] * 2)
    # Evaluation and the re-parameterised form ignore it.
    block.drop_path.eval()
    with torch.no_grad():
        torch.testing.assert_close(block(x) - x, kept)
        reparameterize_model(block)
        assert (block(x) - x - kept).abs().max() <= 1e-5


def test_drop_path_needs_a_shortcut_and_a_probability():
    with pytest.raises(ValueError, match='drop_path'):
        DESDConv(4, 4, drop_path=0.1)
    with pytest.raises(ValueError, match='drop_path'):
        DESDConv(4, 4, shortcut=True, drop_path=1.0)


def test_deploy_block_loads_reparameterized_weights():
    block = warm_up(DESDConv(5, 7), lambda: torch.randn(2, 5, 8, 8))
    x = torch.randn(2, 5, 8, 8)
    with torch.no_grad():
        expected = block(x)
    reparameterize_model(block)
    plain = DESDConv(5, 7, deploy=True).eval()
    plain.load_state_dict(block.state_dict(), strict=True)
    with torch.no_grad():
        assert (plain(x) - expected).abs().max() <= 1e-5
    # A deploy block is already plain: reparameterize() is a no-op.
    plain.reparameterize()
    assert plain.state_dict().keys() == block.state_dict().keys()


def test_every_branch_receives_gradient():
    block = DESDConv(4, 4)
    x = torch.randn(2, 4, 8, 8)
    block(x).square().mean().backward()
    for name in ('vanilla', 'central', 'angular', 'horizontal', 'vertical'):
        grad = getattr(block.kernels, f'{name}_weight').grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_rejects_unknown_conv_type():
    with pytest.raises(ValueError,
                       match='conv_type must be desd or vanilla, got dense'):
        DESDConv(4, 4, conv_type='dense')


def test_fused_kernel_is_the_sum_of_the_branch_kernels():
    torch.manual_seed(0)
    kernels = DifferenceKernels(6)
    expected = sum(kernels.branch_kernels().values())
    torch.testing.assert_close(kernels.fused_kernel(), expected)
    # The basis is a constant of the architecture, not a checkpoint entry.
    assert not any('basis' in key for key in kernels.state_dict())


def test_branch_drop_drops_whole_branch_kernels_in_training_only():
    torch.manual_seed(0)
    kernels = DifferenceKernels(64, branch_drop=0.5)
    branch = kernels.branch_kernels()
    full = kernels.fused_kernel()
    torch.manual_seed(3)
    dropped = kernels()  # a fresh module is in training mode
    # Each channel's kernel is 2x the sum of a subset of its branch kernels
    # (each tap of a branch kept or dropped together).
    names = list(branch)
    found_subsets = set()
    for channel in range(64):
        matches = []
        for subset in range(1 << len(names)):
            expected = 2 * sum(
                (branch[n][channel] for i, n in enumerate(names)
                 if subset >> i & 1), torch.zeros(1, 3, 3))
            if torch.allclose(dropped[channel], expected, atol=1e-6):
                matches.append(subset)
        assert matches, f'channel {channel} is no scaled branch subset'
        found_subsets.add(matches[0])
    # Draws differ between channels; neither all kept nor all dropped.
    assert len(found_subsets) > 10
    # Evaluation mode and fused_kernel use every branch.
    kernels.eval()
    torch.testing.assert_close(kernels(), full)
    torch.testing.assert_close(kernels.fused_kernel(), full)


def test_branch_drop_keeps_the_expected_kernel():
    torch.manual_seed(0)
    kernels = DifferenceKernels(8, branch_drop=0.2)
    with torch.no_grad():
        mean = torch.stack([kernels() for _ in range(4000)]).mean(0)
    torch.testing.assert_close(mean, kernels.fused_kernel(),
                               atol=0.02, rtol=0)


def test_block_with_branch_drop_reparameterizes_exactly():
    block = warm_up(DESDConv(6, 6, shortcut=True, branch_drop=0.3),
                    lambda: torch.randn(4, 6, 8, 8))
    x = torch.randn(2, 6, 8, 8)
    with torch.no_grad():
        expected = block(x)  # eval mode: every branch
        again = block(x)
    torch.testing.assert_close(expected, again, atol=0, rtol=0)
    # Re-parameterising a block left in training mode must not drop
    # branches into the plain kernel.
    block.train()
    reparameterize_model(block)
    block.eval()
    with torch.no_grad():
        assert (block(x) - expected).abs().max() <= 1e-5


def test_branch_drop_needs_branches_and_a_probability():
    with pytest.raises(ValueError, match='branch_drop'):
        DESDConv(4, 4, conv_type='vanilla', branch_drop=0.1)
    with pytest.raises(ValueError, match='branch_drop'):
        DifferenceKernels(4, branch_drop=1.0)


def test_stacked_kernels_are_the_branch_kernels_channel_by_channel(kernels):
    stacked = kernels.stacked_kernels()
    assert stacked.shape == (4 * 5, 1, 3, 3)
    for index, kernel in enumerate(kernels.branch_kernels().values()):
        # Channel c's kernel of branch b is output c * branches + b.
        torch.testing.assert_close(stacked[index::5], kernel)


def test_branch_norms_normalise_each_branch_on_its_own():
    block = DESDConv(3, 5, branch_norms=True).train()
    x = torch.randn(4, 3, 10, 9) * 3 + 2
    by_branch = [
        F.batch_norm(depthwise(x, kernel), None, None, training=True)
        for kernel in block.kernels.branch_kernels().values()
    ]
    # At initialisation (scale 1, shift 0) every branch's response is
    # standardised over the batch before the five are summed.
    expected = F.relu(sum(by_branch))
    with torch.no_grad():
        expected = block.pointwise_act(
            block.pointwise_norm(block.pointwise(expected)))
        torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)
    # One norm summed after the branches differs.
    plain = DESDConv(3, 5).train()
    plain.load_state_dict(
        {k: v for k, v in block.state_dict().items()
         if not k.startswith('depthwise_norm')}, strict=False)
    with torch.no_grad():
        assert (plain(x) - block(x)).abs().max() > 1e-2


@pytest.mark.parametrize('stride,dilation,shortcut', [(1, 1, True),
                                                      (2, 1, False),
                                                      (1, 2, True)])
def test_block_with_branch_norms_reparameterizes_exactly(
        stride, dilation, shortcut):
    block = warm_up(
        DESDConv(6, 6, stride=stride, dilation=dilation, shortcut=shortcut,
                 branch_norms=True),
        lambda: torch.randn(4, 6, 12, 12) * 2 + 1)
    assert block.depthwise_norm.num_features == 6 * 5
    x = torch.randn(2, 6, 11, 13)
    with torch.no_grad():
        expected = block(x)
    reparameterize_model(block)
    with torch.no_grad():
        assert (block(x) - expected).abs().max() <= 1e-5
    # The deployed form is the plain block's: its checkpoint loads there.
    plain = DESDConv(6, 6, stride=stride, dilation=dilation,
                     shortcut=shortcut, deploy=True).eval()
    plain.load_state_dict(block.state_dict(), strict=True)
    with torch.no_grad():
        assert (plain(x) - expected).abs().max() <= 1e-5


def test_branch_norms_need_batch_norm_and_no_branch_drop():
    with pytest.raises(ValueError, match='branch_norms'):
        DESDConv(4, 4, branch_norms=True, branch_drop=0.1)
    with pytest.raises(ValueError, match='branch_norms'):
        DESDConv(4, 4, branch_norms=True,
                 norm_cfg=dict(type='GN', num_groups=2))


@pytest.mark.parametrize('branch_norms', [False, True])
@pytest.mark.parametrize('stride,shortcut', [(2, False), (1, True)])
def test_depth_multiplier_block_reparameterizes_exactly(
        branch_norms, stride, shortcut):
    block = warm_up(
        DESDConv(4, 4, stride=stride, shortcut=shortcut, depth_multiplier=3,
                 branch_norms=branch_norms),
        lambda: torch.randn(4, 4, 12, 12) * 2 + 1)
    # Three kernels of their own per input channel, each with five branches.
    assert block.kernels.fused_kernel().shape == (12, 1, 3, 3)
    assert block.pointwise.in_channels == 12
    x = torch.randn(2, 4, 11, 10)
    with torch.no_grad():
        expected = block(x)
        # Output k of the depthwise convolution reads input channel k // 3.
        features = F.conv2d(x, block.kernels.fused_kernel(), stride=stride,
                            padding=1, groups=4)
        torch.testing.assert_close(
            features[:, 3:6],
            F.conv2d(x[:, 1:2], block.kernels.fused_kernel()[3:6],
                     stride=stride, padding=1))
    reparameterize_model(block)
    assert block.depthwise.groups == 4 and block.depthwise.out_channels == 12
    with torch.no_grad():
        assert (block(x) - expected).abs().max() <= 1e-5
    plain = DESDConv(4, 4, stride=stride, shortcut=shortcut,
                     depth_multiplier=3, deploy=True).eval()
    plain.load_state_dict(block.state_dict(), strict=True)
    with torch.no_grad():
        assert (plain(x) - expected).abs().max() <= 1e-5


def test_depth_multiplier_must_be_positive():
    with pytest.raises(ValueError, match='depth_multiplier'):
        DESDConv(4, 4, depth_multiplier=0)


@pytest.mark.parametrize('kernel_size,dilation,stride,padding_mode', [
    (5, 1, 2, 'zeros'), (5, 2, 1, 'replicate'), (7, 1, 1, 'zeros')])
def test_larger_kernel_block_reparameterizes_exactly(kernel_size, dilation,
                                                     stride, padding_mode):
    shortcut = stride == 1
    block = DESDConv(4, 4, stride=stride, dilation=dilation,
                     kernel_size=kernel_size, padding_mode=padding_mode,
                     shortcut=shortcut)
    # The ring starts at zero: the block starts as its 3x3 form.
    small = DESDConv(4, 4, stride=stride, dilation=dilation,
                     padding_mode=padding_mode, shortcut=shortcut)
    small.load_state_dict(
        {k: v for k, v in block.state_dict().items() if k != 'outer_ring'})
    x = torch.randn(2, 4, 11, 10)
    with torch.no_grad():
        torch.testing.assert_close(block.eval()(x), small.eval()(x))
        block.outer_ring.normal_()
    warm_up(block, lambda: torch.randn(4, 4, 12, 12) * 2 + 1)
    ring_taps = kernel_size**2 - 9
    assert block.outer_ring.shape == (4, 1, ring_taps)
    with torch.no_grad():
        kernel = block._with_outer_ring(block.kernels.fused_kernel())
        border = (kernel_size - 3) // 2
        # The centre is the difference branches' kernel, the rest the ring.
        torch.testing.assert_close(
            kernel[..., border:border + 3, border:border + 3],
            block.kernels.fused_kernel())
        assert kernel.abs().gt(0).flatten(1).sum(1).min() == kernel_size**2
        expected = block(x)
    assert expected.shape[-2:] == ((11, 10) if stride == 1 else (6, 5))
    reparameterize_model(block)
    assert block.depthwise.kernel_size == (kernel_size, kernel_size)
    assert not hasattr(block, 'outer_ring')
    with torch.no_grad():
        assert (block(x) - expected).abs().max() <= 1e-5
    plain = DESDConv(4, 4, stride=stride, dilation=dilation,
                     kernel_size=kernel_size, padding_mode=padding_mode,
                     shortcut=shortcut, deploy=True).eval()
    plain.load_state_dict(block.state_dict(), strict=True)
    with torch.no_grad():
        assert (plain(x) - expected).abs().max() <= 1e-5


@pytest.mark.parametrize('kwargs,message', [
    (dict(kernel_size=4), 'kernel_size must be odd and at least 3, got 4'),
    (dict(kernel_size=1), 'kernel_size must be odd and at least 3, got 1'),
    (dict(kernel_size=5, branch_norms=True), 'branch_norms needs kernel_size 3'),
])
def test_kernel_size_must_be_odd_and_without_branch_norms(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DESDConv(4, 4, **kwargs)


def test_fold_batch_norm_keeps_a_convolution_bias():
    """``norm(conv(x; w, b)) == conv(x; w', b')``, here with a bias and
    a BatchNorm without affine parameters: DESDConv folds bias-free
    convolutions only, so a misplaced bias went unnoticed (mutation
    testing)."""
    from mmseg_dsnet.models.utils.reparameterize import fold_batch_norm
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    for affine in (True, False):
        norm = torch.nn.BatchNorm2d(4, affine=affine, eps=0.1).eval()
        with torch.no_grad():
            conv.bias.normal_(0, 2)
            norm.running_mean.normal_(0, 2)
            norm.running_var.uniform_(0.05, 3)
            if affine:
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.normal_()
        x = torch.randn(2, 3, 6, 5)
        weight, bias = fold_batch_norm(conv.weight, conv.bias, norm)
        with torch.no_grad():
            torch.testing.assert_close(
                F.conv2d(x, weight, bias, padding=1), norm(conv(x)))


def test_a_batch_norm_without_running_statistics_is_refused_by_name():
    """``norm_cfg=dict(type='BN', track_running_stats=False)``: folding
    (``reparameterize.py``, ``get_flops.py``'s deployed count) ended in a
    ``ValueError`` traceback, exit 1; now a :class:`UserError` (one
    ``ERROR:`` line) that says why and what to do, and the block is left
    as it was."""
    from mmseg_dsnet.utils.errors import UserError
    block = DESDConv(4, 6, norm_cfg=dict(type='BN',
                                         track_running_stats=False)).eval()
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        before = block(x)
        with pytest.raises(UserError, match=r'track_running_stats=False\) '
                           'normalises each batch by its own statistics'):
            reparameterize_model(block)
        assert not block.deploy
        torch.testing.assert_close(block(x), before)
