"""Detail-enhanced separable difference convolution (DESDConv)."""
import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmseg.registry import MODELS
from torch import Tensor

from ...utils.errors import ModelArgumentError
from ..utils.reparameterize import fold_batch_norm

DIFFERENCE_BRANCHES = ('vanilla', 'central', 'angular', 'horizontal',
                       'vertical')
PADDING_MODES = ('zeros', 'replicate')
#: Norm types that fold into the convolution before them.
BATCH_NORMS = ('BN', 'BN2d', 'SyncBN')


def folds_into_conv(norm_cfg: Optional[dict]) -> bool:
    """Whether the norm of ``norm_cfg`` is a BatchNorm, which
    re-parameterisation folds into the convolution before it."""
    if norm_cfg is None:
        return True
    kind = norm_cfg['type']
    if isinstance(kind, type):
        return issubclass(kind, nn.modules.batchnorm._BatchNorm)
    return kind in BATCH_NORMS

# Kernel positions are 0..8 row-major, 4 is the centre. ANGULAR_SOURCE[j] is
# the position whose weight is subtracted at position j: the angular kernel is
# ``w - w[ANGULAR_SOURCE]``, which makes every ring pixel's tap pair it with
# its clockwise neighbour (ring order 0, 1, 2, 5, 8, 7, 6, 3).
ANGULAR_SOURCE = (3, 0, 1, 6, 4, 2, 7, 8, 5)
LEFT_COLUMN, RIGHT_COLUMN = (0, 3, 6), (2, 5, 8)
TOP_ROW, BOTTOM_ROW = (0, 1, 2), (6, 7, 8)


def branch_basis(name: str) -> Tensor:
    """Constant matrix ``B`` with ``kernel_flat = weight @ B`` for a branch.

    ``weight`` has 9 taps (3 for horizontal / vertical) per channel; the
    effective row-major 3x3 kernel is a fixed linear map of them, so each
    branch is one ``(taps, 9)`` matrix and the summed kernel of all branches
    is a single matrix product.
    """
    if name in ('horizontal', 'vertical'):
        positive, negative = ((LEFT_COLUMN, RIGHT_COLUMN) if name ==
                              'horizontal' else (TOP_ROW, BOTTOM_ROW))
        basis = torch.zeros(3, 9)
        for tap, (pos, neg) in enumerate(zip(positive, negative)):
            basis[tap, pos], basis[tap, neg] = 1.0, -1.0
        return basis
    basis = torch.eye(9)
    if name == 'central':
        # kernel_j = w_j - [j == 4] * sum_k w_k
        basis[:, 4] -= 1.0
    elif name == 'angular':
        # kernel_j = w_j - w_source(j)
        for j, source in enumerate(ANGULAR_SOURCE):
            basis[source, j] -= 1.0
    elif name != 'vanilla':
        raise ModelArgumentError(f'unknown branch {name}')
    return basis


def outer_ring_basis(kernel_size: int) -> Tensor:
    """Constant ``(taps, kernel_size**2)`` matrix that lays a kernel's outer
    ring of taps (every position outside the central 3x3, row-major) out on
    the row-major ``kernel_size x kernel_size`` grid."""
    positions = [
        row * kernel_size + col for row in range(kernel_size)
        for col in range(kernel_size)
        if max(abs(row - kernel_size // 2), abs(col - kernel_size // 2)) > 1
    ]
    basis = torch.zeros(len(positions), kernel_size**2)
    basis[torch.arange(len(positions)), positions] = 1.0
    return basis


class DifferenceKernels(nn.Module):
    """Per-channel 3x3 kernels of the five DESDConv branches.

    Every branch turns its learnable weights into an effective 3x3 depthwise
    kernel of shape ``(channels, 1, 3, 3)``; all five are summed into one
    kernel because convolution is linear in its kernel. Each branch's kernel
    is its weight times a constant basis (:func:`branch_basis`), so the sum
    is one matrix product: two small kernels per forward, no host-side
    indices (CUDA-graph safe). The branches carry no bias: a BatchNorm
    follows the convolution.

    Args:
        channels (int): Number of channels (one kernel per channel).
        branches (Sequence[str]): Which branches to learn, a subset of
            ``DIFFERENCE_BRANCHES``. ``('vanilla', )`` is a plain depthwise
            3x3 convolution (the ablation without difference convolutions).
        branch_drop (float): During training, drop each branch's kernel of
            each channel with this probability (one draw per forward pass)
            and scale the kept ones by ``1 / (1 - branch_drop)``, so the
            expected kernel is the full sum. Without it the branches only
            re-parameterise one kernel; with it they are a structured noise
            on it (a regulariser). Evaluation and :meth:`fused_kernel` use
            every branch. Default: 0.0.
    """

    def __init__(self,
                 channels: int,
                 branches: Sequence[str] = DIFFERENCE_BRANCHES,
                 branch_drop: float = 0.0):
        super().__init__()
        unknown = set(branches) - set(DIFFERENCE_BRANCHES)
        if unknown or not branches:
            raise ModelArgumentError(f'unknown or empty branches: {branches}')
        if not 0 <= branch_drop < 1 or (branch_drop and len(branches) < 2):
            raise ModelArgumentError(
                'branch_drop must be in [0, 1) and needs two '
                f'or more branches, got {branch_drop} with '
                f'{tuple(branches)}')
        self.channels = channels
        self.branches = tuple(branches)
        self.branch_drop = branch_drop
        bases = []
        for name in self.branches:
            basis = branch_basis(name)
            weight = torch.empty(channels, 1, basis.shape[0])
            # Same scale as nn.Conv2d's default init for a depthwise 3x3.
            bound = 1 / math.sqrt(9)
            nn.init.uniform_(weight, -bound, bound)
            setattr(self, f'{name}_weight', nn.Parameter(weight))
            bases.append(basis)
        # Not persistent: constants of the architecture, not weights.
        self.register_buffer('basis', torch.cat(bases), persistent=False)
        branch_of_tap = torch.cat([
            torch.full((basis.shape[0], ), index)
            for index, basis in enumerate(bases)
        ])
        self.register_buffer(
            'branch_of_tap', branch_of_tap, persistent=False)

    def _weights(self):
        return [getattr(self, f'{name}_weight') for name in self.branches]

    def _branch_kernel(self, name: str) -> Tensor:
        weight = getattr(self, f'{name}_weight')
        basis = branch_basis(name).to(weight)
        return (weight @ basis).reshape(weight.shape[0], 1, 3, 3)

    def vanilla_kernel(self) -> Tensor:
        """Plain learned kernel ``w``."""
        return self._branch_kernel('vanilla')

    def central_kernel(self) -> Tensor:
        """``w`` with the centre replaced by ``w4 - sum(w)``.

        Its response is ``sum_k w_k (x_k - x_centre)``: zero on flat regions.
        """
        return self._branch_kernel('central')

    def angular_kernel(self) -> Tensor:
        """``w - w[3, 0, 1, 6, 4, 2, 7, 8, 5]``.

        Its response is ``sum_i w_i (x_i - x_next(i))`` over the ring, where
        ``next`` is the clockwise neighbour; the centre tap is zero.
        """
        return self._branch_kernel('angular')

    def horizontal_kernel(self) -> Tensor:
        """Taps ``h`` on the left column, ``-h`` on the right, 0 in between.

        A horizontal gradient: zero on images that are constant along rows.
        """
        return self._branch_kernel('horizontal')

    def vertical_kernel(self) -> Tensor:
        """Taps ``v`` on the top row, ``-v`` on the bottom, 0 in between.

        A vertical gradient: zero on images that are constant along columns.
        """
        return self._branch_kernel('vertical')

    def branch_kernels(self) -> Dict[str, Tensor]:
        """Effective 3x3 kernel of every learned branch, by name."""
        return {
            name: getattr(self, f'{name}_kernel')()
            for name in self.branches
        }

    def stacked_kernels(self) -> Tensor:
        """Every branch's kernel of every channel, ``(channels * branches,
        1, 3, 3)``, channel-major: the weight of a depthwise convolution with
        one output per branch and channel (``groups=channels``)."""
        weights = self._weights()
        bases = self.basis.to(weights[0].dtype).split(
            [weight.shape[-1] for weight in weights])
        kernels = [weight @ basis for weight, basis in zip(weights, bases)]
        return torch.cat(kernels, dim=1).reshape(-1, 1, 3, 3)

    def fused_kernel(self) -> Tensor:
        """Sum of all branch kernels: one depthwise 3x3 kernel."""
        return self._kernel(torch.cat(self._weights(), dim=-1))

    def forward(self) -> Tensor:
        """The kernel to convolve with: :meth:`fused_kernel`, with branches
        dropped at random in training mode (``branch_drop``)."""
        if not (self.training and self.branch_drop):
            return self.fused_kernel()
        weight = torch.cat(self._weights(), dim=-1)
        keep = torch.rand(
            self.channels, 1, len(self.branches),
            device=weight.device) >= self.branch_drop
        # Every tap of a branch shares its branch's draw.
        mask = keep.index_select(-1, self.branch_of_tap).to(weight)
        return self._kernel(weight * mask / (1 - self.branch_drop))

    def _kernel(self, weight: Tensor) -> Tensor:
        return (weight @ self.basis.to(weight.dtype)).reshape(
            self.channels, 1, 3, 3)


@MODELS.register_module()
class DESDConv(nn.Module):
    """Detail-enhanced separable difference convolution.

    ``depthwise 3x3 (five difference branches summed) -> BN -> act ->
    pointwise 1x1 -> BN [-> + x] -> act``. The five branches (vanilla,
    central, angular, horizontal and vertical difference) are per-channel
    kernels as in DEA-Net's detail-enhanced convolution, made depthwise as in
    PiDiNet. Training already runs one convolution with the summed kernel.
    With ``shortcut=True`` the input is added before the last activation
    (a residual block; needs ``in_channels == out_channels`` and stride 1).

    :meth:`reparameterize` folds everything into ``depthwise`` (3x3, bias)
    and ``pointwise`` (1x1, bias) plain convolutions; the shortcut stays an
    addition (the activation between the two convolutions keeps it from
    folding). A norm other than BatchNorm (e.g. GroupNorm, whose statistics
    are each image's own) cannot fold: it stays after each plain
    convolution, which then has no bias. ``deploy=True`` builds that form
    directly so a re-parameterised checkpoint loads into it.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels (of the pointwise convolution).
        stride (int): Stride of the depthwise convolution. Default: 1.
        dilation (int): Dilation of the depthwise convolution (a wider
            receptive field at the same cost). Default: 1.
        kernel_size (int): Size of the depthwise kernel, odd and at least
            3. Beyond 3 the difference branches' 3x3 kernel is the centre of
            a larger one whose outer ring of taps is learned per kernel (and
            starts at zero, so the block starts as its 3x3 form): a wider
            view where the feature maps are small enough for the extra taps
            not to count. Re-parameterisation keeps the larger kernel.
            Default: 3.
        padding_mode (str): How the depthwise convolution pads its input:
            ``'zeros'`` or ``'replicate'`` (the border pixels repeated). On
            small feature maps most taps of a dilated kernel fall outside
            the map; zeros there read as a dark frame (and tell the network
            where the border is), repeated border pixels do not. Every
            branch sees the same padded input, so re-parameterisation stays
            exact. Default: ``'zeros'``.
        shortcut (bool): Add the input to the output (identity residual).
            Default: False.
        depth_multiplier (int): Kernels per input channel in the depthwise
            convolution (its output has ``in_channels * depth_multiplier``
            channels, each with its own difference branches). Where a
            block downsamples a narrow input, more than one kernel per
            channel keeps more of it for the pointwise convolution.
            Default: 1.
        drop_path (float): Probability of dropping the residual branch of a
            sample during training (stochastic depth; needs ``shortcut``).
            Evaluation and the re-parameterised form are unaffected.
            Default: 0.0.
        conv_type (str): ``'desd'`` (five branches) or ``'vanilla'`` (a plain
            depthwise 3x3, for ablation). Default: ``'desd'``.
        branch_drop (float): Probability of dropping a branch's kernel of a
            channel during training (:class:`DifferenceKernels`; needs
            ``conv_type='desd'``). Evaluation and the re-parameterised form
            are unaffected. Default: 0.0.
        branch_norms (bool): Give every branch its own BatchNorm in training
            (each branch convolved on its own, normalised, then summed), as
            RepVGG and MobileOne do for their branches. Without it the
            branches are one kernel written five ways; with it each
            difference response is scaled by its own statistics, so a weak
            one (the central difference is zero on flat skin) is not drowned
            by the vanilla branch. Re-parameterisation folds each norm into
            its branch's kernel and sums them: the deployed block is the
            same. Needs a BatchNorm ``norm_cfg`` and no ``branch_drop``.
            Default: False.
        norm_cfg (dict): Norm layer after each convolution. A BatchNorm
            folds into the convolution when re-parameterised; any other
            norm stays in the deployed form. Default: ``dict(type='BN')``.
        act_cfg (dict): Activation after each norm. ReLU trains well and
            exports to every runtime. Default: ``dict(type='ReLU')``.
        deploy (bool): Build the re-parameterised plain form. Default: False.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 dilation: int = 1,
                 kernel_size: int = 3,
                 padding_mode: str = 'zeros',
                 shortcut: bool = False,
                 depth_multiplier: int = 1,
                 drop_path: float = 0.0,
                 conv_type: str = 'desd',
                 branch_drop: float = 0.0,
                 branch_norms: bool = False,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 deploy: bool = False):
        super().__init__()
        if conv_type not in ('desd', 'vanilla'):
            raise ModelArgumentError(f'conv_type must be desd or vanilla, '
                                     f'got {conv_type}')
        if padding_mode not in PADDING_MODES:
            raise ModelArgumentError(
                f'padding_mode must be one of {PADDING_MODES}, got '
                f'{padding_mode!r}')
        if shortcut and (in_channels != out_channels or stride != 1):
            raise ModelArgumentError(
                'an identity shortcut needs in_channels == '
                'out_channels and stride 1, got '
                f'{in_channels}->{out_channels}, stride {stride}')
        if not 0 <= drop_path < 1 or (drop_path and not shortcut):
            raise ModelArgumentError(
                'drop_path must be in [0, 1) and needs the '
                f'identity shortcut, got {drop_path} with '
                f'shortcut={shortcut}')
        if depth_multiplier < 1:
            raise ModelArgumentError(
                f'depth_multiplier must be at least 1, got {depth_multiplier}')
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ModelArgumentError(
                f'kernel_size must be odd and at least 3, got {kernel_size}')
        if kernel_size > 3 and branch_norms:
            raise ModelArgumentError(
                'branch_norms needs kernel_size 3 (the outer ring is no '
                f'branch of its own), got {kernel_size}')
        if branch_norms and (branch_drop or not folds_into_conv(norm_cfg)):
            raise ModelArgumentError(
                'branch_norms needs a BatchNorm norm_cfg and no branch_drop, '
                f'got {norm_cfg} and branch_drop={branch_drop}')
        self.in_channels = in_channels
        # Output channels of the depthwise convolution.
        self.depthwise_channels = in_channels * depth_multiplier
        self.out_channels = out_channels
        self.stride = stride
        self.dilation = dilation
        self.kernel_size = kernel_size
        # Padding that keeps the size at stride 1, for any dilation.
        self.padding = dilation * (kernel_size // 2)
        self.padding_mode = padding_mode
        self.shortcut = shortcut
        self.conv_type = conv_type
        self.branch_norms = branch_norms
        self.deploy = deploy
        # Deployed, a norm that cannot fold stays after its convolution.
        self.keeps_norm = not folds_into_conv(norm_cfg)
        with_norm = not deploy or self.keeps_norm

        if deploy:
            self.depthwise = self._plain_depthwise()
        else:
            branches = (
                DIFFERENCE_BRANCHES if conv_type == 'desd' else ('vanilla', ))
            self.kernels = DifferenceKernels(self.depthwise_channels,
                                             branches, branch_drop)
            if kernel_size > 3:
                basis = outer_ring_basis(kernel_size)
                self.outer_ring = nn.Parameter(
                    torch.zeros(self.depthwise_channels, 1, basis.shape[0]))
                # Not persistent: a constant of the architecture.
                self.register_buffer('outer_ring_basis', basis,
                                     persistent=False)
        if with_norm:
            # With branch_norms: one channel per branch and kernel.
            norm_channels = self.depthwise_channels * (
                len(self.kernels.branches) if branch_norms else 1)
            self.depthwise_norm = build_norm_layer(norm_cfg,
                                                   norm_channels)[1]
        self.depthwise_act = self._activation(act_cfg)

        self.pointwise = nn.Conv2d(
            self.depthwise_channels,
            out_channels,
            1,
            bias=deploy and not self.keeps_norm)
        if with_norm:
            self.pointwise_norm = build_norm_layer(norm_cfg, out_channels)[1]
        self.pointwise_act = self._activation(act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()

    @staticmethod
    def _activation(act_cfg: Optional[dict]) -> nn.Module:
        return nn.Identity() if act_cfg is None else build_activation_layer(
            act_cfg)

    def _plain_depthwise(self) -> nn.Conv2d:
        return nn.Conv2d(
            self.in_channels,
            self.depthwise_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.in_channels,
            bias=not self.keeps_norm,
            padding_mode=self.padding_mode)

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        if self.deploy and self.keeps_norm:
            x = self.depthwise_act(self.depthwise_norm(self.depthwise(x)))
            x = self.pointwise_norm(self.pointwise(x))
        elif self.deploy:
            x = self.depthwise_act(self.depthwise(x))
            x = self.pointwise(x)
        else:
            padding = self.padding
            if self.padding_mode != 'zeros':
                x = F.pad(x, [self.padding] * 4, mode=self.padding_mode)
                padding = 0
            x = F.conv2d(
                x,
                self.kernels.stacked_kernels() if self.branch_norms else
                self._with_outer_ring(self.kernels()),
                stride=self.stride,
                padding=padding,
                dilation=self.dilation,
                groups=self.in_channels)
            x = self.depthwise_norm(x)
            if self.branch_norms:
                x = x.unflatten(1, (self.depthwise_channels, -1)).sum(2)
            x = self.depthwise_act(x)
            x = self.pointwise_norm(self.pointwise(x))
        if self.shortcut:
            x = self.drop_path(x) + identity
        return self.pointwise_act(x)

    def _with_outer_ring(self, kernel: Tensor) -> Tensor:
        """``kernel`` (3x3) at the centre of the ``kernel_size`` kernel whose
        outer ring is :attr:`outer_ring`; ``kernel`` itself at size 3."""
        if self.kernel_size == 3:
            return kernel
        border = (self.kernel_size - 3) // 2
        ring = (self.outer_ring @ self.outer_ring_basis).reshape(
            self.depthwise_channels, 1, self.kernel_size, self.kernel_size)
        return F.pad(kernel, [border] * 4) + ring

    def branch_kernels(self) -> Dict[str, Tensor]:
        """Effective 3x3 kernel of each branch (training form only)."""
        return self.kernels.branch_kernels()

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the branches (and BatchNorms) into two plain convolutions.

        Uses the BatchNorm running statistics, i.e. gives the eval-mode
        output; another norm is kept after its convolution. Does nothing if
        the block is already in deploy form.
        """
        if self.deploy:
            return
        kernel = (self.kernels.stacked_kernels() if self.branch_norms else
                  self._with_outer_ring(self.kernels.fused_kernel()))
        depthwise = self._plain_depthwise().to(kernel)
        pointwise = nn.Conv2d(self.depthwise_channels, self.out_channels, 1,
                              bias=not self.keeps_norm).to(kernel)
        if self.keeps_norm:
            depthwise.weight.copy_(kernel)
            pointwise.weight.copy_(self.pointwise.weight)
        else:
            weight, bias = fold_batch_norm(kernel, None, self.depthwise_norm)
            # Each branch's folded kernel and bias, summed per channel.
            depthwise.weight.copy_(
                weight.unflatten(0, (self.depthwise_channels, -1)).sum(1))
            depthwise.bias.copy_(
                bias.unflatten(0, (self.depthwise_channels, -1)).sum(1))
            weight, bias = fold_batch_norm(self.pointwise.weight, None,
                                           self.pointwise_norm)
            pointwise.weight.copy_(weight)
            pointwise.bias.copy_(bias)

        norms = (self.depthwise_norm, self.pointwise_norm)
        depthwise_act, pointwise_act = self.depthwise_act, self.pointwise_act
        del self.kernels, self.depthwise_norm, self.depthwise_act
        if self.kernel_size > 3:
            del self.outer_ring, self.outer_ring_basis
        del self.pointwise, self.pointwise_norm, self.pointwise_act
        # Register in forward order, exactly as deploy=True builds them.
        self.depthwise = depthwise
        if self.keeps_norm:
            self.depthwise_norm = norms[0]
        self.depthwise_act = depthwise_act
        self.pointwise = pointwise
        if self.keeps_norm:
            self.pointwise_norm = norms[1]
        self.pointwise_act = pointwise_act
        self.deploy = True
