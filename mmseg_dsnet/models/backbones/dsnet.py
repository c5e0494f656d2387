"""DSNet encoder: a stem and stages of DESDConv blocks."""
from typing import Optional, Sequence, Tuple

import torch
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor, nn

from ...utils.errors import ModelArgumentError
from ..layers import DESDConv, ImageContext
from ..layers.desd_conv import folds_into_conv
from ..utils.strict_loading import StrictLoadingMixin


def per_stage(name: str,
              values: Optional[Sequence],
              default,
              num_stages: int,
              entry: str = '',
              minimum: Optional[int] = None) -> tuple:
    """A per-stage option as a tuple: ``default`` for every stage when
    ``values`` is None.

    Args:
        entry (str): What an entry is, for the error (e.g.
            ``' (True or False)'``). Default: ``' >= minimum'`` if
            ``minimum`` is given, else nothing.
        minimum (int, optional): The smallest entry allowed.

    Raises:
        ModelArgumentError: if it has not one entry per stage, or an entry
            below ``minimum``.
    """
    values = tuple([default] * num_stages if values is None else values)
    if minimum is not None and not entry:
        entry = f' >= {minimum}'
    if len(values) != num_stages or (minimum is not None
                                     and min(values) < minimum):
        raise ModelArgumentError(
            f'{name} needs one entry{entry} per stage, got {values}')
    return values


@MODELS.register_module()
class DSNet(StrictLoadingMixin, BaseModule):
    """The encoder half of DSNet's U shape.

    A conv-BN-act stem (3x3 unless ``stem_kernel_size`` says otherwise) with
    stride ``stem_stride``, then one stage per
    entry of ``widths``. Stage 0 keeps the stem's resolution; each later
    stage starts with a stride-2 DESDConv (the depthwise convolution
    downsamples) followed by ``num_blocks[i] - 1`` more DESDConv blocks. The
    blocks that keep width and resolution carry an identity shortcut when
    ``shortcut`` is True. Stage ``i`` runs at ``1 / (stem_stride * 2**i)``
    of the input size.

    With ``radial_channel`` the stem also reads each pixel's distance from
    the image centre (0 at the centre, 1 in the corners): dermoscopy
    centres the lesion and darkens the corners (vignetting), and a
    convolution alone hardly knows where in the image it is. The distance
    is unchanged by the flips and rotations of training.

    With ``image_norm`` each image's colour channels are standardised over
    its own pixels (zero mean, unit variance per channel) before the stem:
    dermoscopes and photographs differ in white balance and exposure, and a
    per-image cast is something a small network can fit instead of the
    lesion. The result is unchanged by any per-channel brightness or
    contrast change of the input.

    Args:
        in_channels (int): Image channels. Default: 3.
        widths (Sequence[int]): Channels of each stage.
            Default: (16, 32, 64, 128, 144, 224).
        num_blocks (Sequence[int]): DESDConv blocks per stage.
            Default: (1, 1, 1, 1, 2, 2).
        stem_stride (int): Stride of the stem, 1 (stage 0 at full
            resolution) or 2 (stage 0 at half resolution: far fewer
            memory-bound passes over full-size tensors). Default: 1.
        stem_kernel_size (int): Kernel size ``k`` of the stem, padded by
            ``(k - 1) // 2`` pixels. At stride 2 an odd size centres output
            pixel ``i`` on input pixel ``2i``, half a pixel off the
            ``2i + 0.5`` that the decoder's upsampling assumes; an even
            size (stride 2 only) centres it on ``2i + 0.5``, e.g. 4 reads
            rows ``2i - 1`` to ``2i + 2``. Default: 3.
        dilations (Sequence[int], optional): Dilation of the depthwise
            convolutions of each stage's blocks after the first (a wider
            receptive field at no extra cost). Default: None (all 1).
        padding_modes (Sequence[str], optional): How each stage's depthwise
            convolutions pad their input, ``'zeros'`` or ``'replicate'``
            (see :class:`DESDConv`). Default: None (all ``'zeros'``).
        shortcut (bool): Identity shortcuts around the blocks that keep
            width and resolution. Default: False.
        drop_path_rate (float): Stochastic depth of the residual blocks, rising
            linearly from 0 at the first to this rate at the last (a
            regulariser for long schedules; no cost at inference).
            Default: 0.0.
        zero_init_residual (bool): Start every residual block as the
            identity (the last BatchNorm's scale at 0), as mmseg's ResNet
            does. Default: False.
        radial_channel (bool): Add the distance-from-centre map to the
            stem's input. Default: False.
        image_norm (bool): Standardise each image's channels over its own
            pixels before the stem. Default: False.
        image_context_channels (int): If above 0, add a summary of the
            whole image to every pixel of the last stage's output
            (:class:`ImageContext` with this bottleneck). Default: 0.
        out_indices (Sequence[int]): Stages whose outputs are returned.
            Default: all stages.
        conv_type (str): ``'desd'`` or ``'vanilla'`` (plain depthwise 3x3
            instead of the difference branches, for ablation).
            Default: ``'desd'``.
        branch_drop (float): Probability of dropping a difference branch's
            kernel of a channel during training, in every block (see
            :class:`DifferenceKernels`; no cost at inference). Default: 0.0.
        branch_norms (Sequence[bool], optional): For each stage, whether its
            blocks give every difference branch its own BatchNorm in training
            (see :class:`DESDConv`; folded away when re-parameterised, so no
            cost at inference, but each branch is convolved on its own in
            training: five times the depthwise FLOPs). Default: None (off).
        depth_multipliers (Sequence[int], optional): For each stage, the
            kernels per channel of its first block's depthwise convolution
            (the one that downsamples): with 1, a stride-2 block passes on
            one filtered value per input channel for four input pixels.
            Default: None (all 1).
        downsample (str): How each later stage's first block halves the
            resolution: ``'stride'`` (its depthwise convolution at stride
            2: output pixel ``i`` centred on input pixel ``2i``, half a
            pixel off the ``2i + 0.5`` that the decoder's bilinear
            upsampling assumes, so each level lies half a pixel of the level
            above it off its place) or ``'avg_pool'`` (the mean of each 2x2
            block, then the block at stride 1: every level centred on the
            pixels it summarises, and no aliasing; an odd size leaves its
            last row or column to the finer levels). Default: ``'stride'``.
        kernel_sizes (Sequence[int], optional): For each stage, the
            depthwise kernel size of its blocks (odd, at least 3; beyond 3 a
            learned outer ring around the difference branches, see
            :class:`DESDConv`). Default: None (all 3).
        norm_cfg (dict): Norm layers. Default: ``dict(type='BN')``.
        stage_norm_cfgs (Sequence[dict | None], optional): A norm for each
            stage's blocks, None for ``norm_cfg``; e.g. GroupNorm where the
            feature maps are small, whose statistics are each image's own
            rather than the batch's (it stays in the deployed form, see
            :class:`DESDConv`). Default: None (``norm_cfg`` everywhere).
        act_cfg (dict): Activations. Default: ``dict(type='ReLU')``.
        stage_act_cfgs (Sequence[dict | None], optional): An activation for
            each stage's blocks, None for ``act_cfg``; e.g. GELU where the
            feature maps are small enough for its cost not to count.
            Default: None (``act_cfg`` everywhere).
        deploy (bool): Build the re-parameterised plain form. Default: False.
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int = 3,
                 widths: Sequence[int] = (16, 32, 64, 128, 144, 224),
                 num_blocks: Sequence[int] = (1, 1, 1, 1, 2, 2),
                 stem_stride: int = 1,
                 stem_kernel_size: int = 3,
                 dilations: Optional[Sequence[int]] = None,
                 padding_modes: Optional[Sequence[str]] = None,
                 shortcut: bool = False,
                 drop_path_rate: float = 0.0,
                 zero_init_residual: bool = False,
                 radial_channel: bool = False,
                 image_norm: bool = False,
                 image_context_channels: int = 0,
                 out_indices: Optional[Sequence[int]] = None,
                 conv_type: str = 'desd',
                 branch_drop: float = 0.0,
                 branch_norms: Optional[Sequence[bool]] = None,
                 depth_multipliers: Optional[Sequence[int]] = None,
                 downsample: str = 'stride',
                 kernel_sizes: Optional[Sequence[int]] = None,
                 norm_cfg: dict = dict(type='BN'),
                 stage_norm_cfgs: Optional[Sequence[Optional[dict]]] = None,
                 act_cfg: dict = dict(type='ReLU'),
                 stage_act_cfgs: Optional[Sequence[Optional[dict]]] = None,
                 deploy: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if len(widths) != len(num_blocks):
            raise ModelArgumentError(
                'widths and num_blocks need the same length')
        if min(num_blocks) < 1:
            raise ModelArgumentError('every stage needs at least one block')
        if stem_stride not in (1, 2):
            raise ModelArgumentError(
                f'stem_stride must be 1 or 2, got {stem_stride}')
        if stem_kernel_size < 1 or (stem_kernel_size % 2 == 0
                                    and stem_stride != 2):
            raise ModelArgumentError(
                'stem_kernel_size must be odd, or even with stem_stride 2, '
                f'got {stem_kernel_size} with stem_stride {stem_stride}')
        if downsample not in ('stride', 'avg_pool'):
            raise ModelArgumentError(
                "downsample must be 'stride' or 'avg_pool', got "
                f'{downsample!r}')
        num_stages = len(widths)
        dilations = per_stage('dilations', dilations, 1, num_stages,
                              minimum=1)
        padding_modes = per_stage('padding_modes', padding_modes, 'zeros',
                                  num_stages)
        branch_norms = per_stage('branch_norms', branch_norms, False,
                                 num_stages, ' (True or False)')
        depth_multipliers = per_stage('depth_multipliers', depth_multipliers,
                                      1, num_stages, minimum=1)
        # DESDConv checks that each size is odd.
        kernel_sizes = per_stage('kernel_sizes', kernel_sizes, 3, num_stages,
                                 minimum=3)
        stage_norm_cfgs = per_stage('stage_norm_cfgs', stage_norm_cfgs, None,
                                    num_stages, ' (a norm config or None)')
        stage_norm_cfgs = [cfg or norm_cfg for cfg in stage_norm_cfgs]
        stage_act_cfgs = per_stage('stage_act_cfgs', stage_act_cfgs, None,
                                   num_stages,
                                   ' (an activation config or None)')
        stage_act_cfgs = [cfg or act_cfg for cfg in stage_act_cfgs]
        # DESDConv checks the range (the last residual block gets the rate).
        if drop_path_rate and not shortcut:
            raise ModelArgumentError('drop_path_rate needs shortcut=True, got '
                                     f'{drop_path_rate}')
        if out_indices is None:
            out_indices = tuple(range(len(widths)))
        if not all(0 <= i < len(widths) for i in out_indices):
            raise ModelArgumentError(f'out_indices {out_indices} out of range')
        self.widths = tuple(widths)
        self.stem_stride = stem_stride
        self.downsample = downsample
        self.out_indices = tuple(out_indices)
        self.deploy = deploy
        self.zero_init_residual = zero_init_residual
        self.radial_channel = radial_channel
        self.image_norm = image_norm

        self.stem = ConvModule(
            in_channels + int(radial_channel),
            widths[0],
            stem_kernel_size,
            stride=stem_stride,
            # An odd kernel keeps the size at stride 1; an even one at
            # stride 2 is centred on 2i + 0.5.
            padding=(stem_kernel_size - 1) // 2,
            # Deployed, a BatchNorm is folded into the conv; another norm
            # stays, as re-parameterisation leaves it.
            norm_cfg=None if deploy and folds_into_conv(norm_cfg) else
            norm_cfg,
            act_cfg=act_cfg)
        # Every block but each later stage's first (stride 2) keeps its
        # input's shape, so it is residual when ``shortcut`` is on.
        num_residual = sum(num_blocks) - len(widths) + 1 if shortcut else 0
        drop_rates = iter(
            torch.linspace(0, drop_path_rate, num_residual).tolist())
        self.stages = nn.ModuleList()
        previous = widths[0]
        for index, (width, depth) in enumerate(zip(widths, num_blocks)):
            blocks = []
            for block_index in range(depth):
                halves = index > 0 and block_index == 0
                keeps_shape = not halves and previous == width
                stride = 2 if halves else 1
                if halves and downsample == 'avg_pool':
                    # Not ceil_mode: onnxruntime runs the floor form
                    # faster on the CPU.
                    blocks.append(nn.AvgPool2d(2))
                    stride = 1
                has_shortcut = shortcut and keeps_shape
                blocks.append(
                    DESDConv(
                        previous,
                        width,
                        stride=stride,
                        dilation=dilations[index] if block_index else 1,
                        kernel_size=kernel_sizes[index],
                        padding_mode=padding_modes[index],
                        shortcut=has_shortcut,
                        depth_multiplier=1 if block_index else
                        depth_multipliers[index],
                        drop_path=next(drop_rates) if has_shortcut else 0.0,
                        conv_type=conv_type,
                        branch_drop=branch_drop,
                        branch_norms=branch_norms[index],
                        norm_cfg=stage_norm_cfgs[index],
                        act_cfg=stage_act_cfgs[index],
                        deploy=deploy))
                previous = width
            self.stages.append(nn.Sequential(*blocks))
        self.image_context = ImageContext(
            widths[-1],
            image_context_channels) if image_context_channels else None

    def init_weights(self) -> None:
        super().init_weights()
        if self.zero_init_residual and not self.deploy:
            for block in self.modules():
                if isinstance(block, DESDConv) and block.shortcut:
                    nn.init.zeros_(block.pointwise_norm.weight)

    @staticmethod
    def radial_map(x: Tensor) -> Tensor:
        """``(N, 1, H, W)`` distance of each pixel from the image centre,
        scaled to 1 at the corners."""
        height, width = x.shape[-2:]
        rows = torch.linspace(-1, 1, height, dtype=x.dtype, device=x.device)
        cols = torch.linspace(-1, 1, width, dtype=x.dtype, device=x.device)
        radius = (rows[:, None].square() + cols[None, :].square()).sqrt()
        return (radius * 0.5**0.5).expand(x.shape[0], 1, height, width)

    @staticmethod
    def standardize(x: Tensor) -> Tensor:
        """Each image's channels at zero mean and unit variance over its
        pixels. The means are taken over rows, then over the row means:
        onnxruntime sums a whole 256x256 plane in one float32 accumulator
        and loses about 4e-5 of relative precision there."""
        def plane_mean(t):
            return t.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)

        centred = x - plane_mean(x)
        return centred * torch.rsqrt(plane_mean(centred.square()) + 1e-5)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        if self.image_norm:
            x = self.standardize(x)
        if self.radial_channel:
            x = torch.cat([x, self.radial_map(x)], dim=1)
        x = self.stem(x)
        outs = []
        last = len(self.stages) - 1
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index == last and self.image_context is not None:
                x = self.image_context(x)
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)
