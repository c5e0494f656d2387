"""EGE-UNet (Ruan et al., MICCAI 2023) as one MMSegmentation backbone.

"EGE-UNet: an Efficient Group Enhanced UNet for skin lesion segmentation".
Written from the paper's description; no code was taken from the official
repository. The whole U-shaped encoder-decoder lives here because the
paper's skip fusion (GAB) consumes the decoder's own per-stage mask
predictions, so encoder and decoder cannot be split into backbone and head
without cutting that loop. The paper's final 1x1 classifier is left to
:class:`LightweightClsHead` (its ``conv_seg``), so backbone + head together
form the whole network. Details the paper leaves open are marked "choice".

Budget at 1x3x256x256, backbone + the 8->1 head (53,374 parameters):

* published (thop): 0.053 M parameters, 0.072 GFLOPs;
* conv multiply-adds only (thop's convention): 0.0721 GFLOPs;
* mmengine's ``get_model_complexity_info`` (our ``get_flops.py``):
  0.0850 GFLOPs. It also counts one multiply-add as one FLOP, but adds the
  normalisation layers (5 FLOPs per element with affine: GroupNorm 4.95 M,
  LayerNorm 6.03 M) and bilinear resizes (4 per output element: 1.89 M),
  which thop leaves out. The architecture is kept as published rather
  than trimmed to fit that counter.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS
from ..utils.strict_loading import StrictLoadingMixin


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor.

    Args:
        num_channels (int): Number of channels normalised together.
        eps (float): Numerical stability term. Default: 1e-6.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(num_channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        # channels-last for F.layer_norm, then back
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def depthwise_separable(in_channels: int,
                        out_channels: int,
                        kernel_size: int = 3,
                        dilation: int = 1) -> nn.Sequential:
    """Depthwise kxk conv -> GELU -> pointwise 1x1 conv ("DW" in the paper)."""
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            in_channels,
            kernel_size,
            padding=padding,
            dilation=dilation,
            groups=in_channels), nn.GELU(),
        nn.Conv2d(in_channels, out_channels, 1))


class AxisHadamardAttention(nn.Module):
    """Hadamard product attention (HPA) on one pair of axes.

    A small learnable memory tensor is resized (bilinear) to the pair of axes
    it covers, refined by a depthwise-separable convolution along those axes,
    and multiplied element-wise with the features (broadcast along the third
    axis). Linear in the number of pixels, unlike self-attention. The
    memories start at 1 (choice).

    Args:
        channels (int): Channels of the group this attention sees.
        axes (str): ``'hw'`` (height-width plane, broadcast over channels),
            ``'ch'`` (channel-height, broadcast over width) or ``'cw'``
            (channel-width, broadcast over height).
        memory_size (int): Side of the learnable memory before resizing.
            Default: 8.
    """

    def __init__(self, channels: int, axes: str, memory_size: int = 8) -> None:
        super().__init__()
        assert axes in ('hw', 'ch', 'cw'), f'unknown axes {axes!r}'
        self.axes = axes
        if axes == 'hw':
            self.memory = nn.Parameter(
                torch.ones(1, channels, memory_size, memory_size))
            self.refine = depthwise_separable(channels, channels)
        else:
            # one spatial axis: the memory is a (channels x length) signal
            self.memory = nn.Parameter(torch.ones(1, channels, memory_size))
            self.refine = nn.Sequential(
                nn.Conv1d(channels, channels, 3, padding=1, groups=channels),
                nn.GELU(), nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        if self.axes == 'hw':
            weight = F.interpolate(
                self.memory,
                size=(height, width),
                mode='bilinear',
                align_corners=True)
            return x * self.refine(weight)
        length = height if self.axes == 'ch' else width
        # resize the 1-D memory along its length only
        weight = F.interpolate(
            self.memory.unsqueeze(2),
            size=(1, length),
            mode='bilinear',
            align_corners=True).squeeze(2)
        weight = self.refine(weight)
        if self.axes == 'ch':
            return x * weight.unsqueeze(-1)
        return x * weight.unsqueeze(-2)


class GHPA(nn.Module):
    """Group multi-axis Hadamard Product Attention block.

    The input is layer-normalised and split into four equal channel groups:
    HPA on the height-width, channel-height and channel-width axes for the
    first three, a depthwise-separable conv for the fourth. The groups are
    concatenated, normalised again and mixed by a depthwise-separable conv
    that also maps ``in_channels`` to ``out_channels``. All kernels are 3.

    Args:
        in_channels (int): Input channels (divisible by 4).
        out_channels (int): Output channels.
        memory_size (int): Side of each learnable HPA memory. Default: 8.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 memory_size: int = 8) -> None:
        super().__init__()
        assert in_channels % 4 == 0, 'GHPA needs in_channels divisible by 4'
        group = in_channels // 4
        self.norm_in = ChannelLayerNorm(in_channels)
        self.group_ops = nn.ModuleList([
            AxisHadamardAttention(group, 'hw', memory_size),
            AxisHadamardAttention(group, 'ch', memory_size),
            AxisHadamardAttention(group, 'cw', memory_size),
            depthwise_separable(group, group),
        ])
        self.norm_out = ChannelLayerNorm(in_channels)
        self.mix = depthwise_separable(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        groups = torch.chunk(self.norm_in(x), 4, dim=1)
        x = torch.cat([op(g) for op, g in zip(self.group_ops, groups)], dim=1)
        return self.mix(self.norm_out(x))


class GroupAggregationBridge(nn.Module):
    """Group Aggregation Bridge (GAB) between encoder and decoder.

    The high-level feature is projected (1x1) to the low-level width and
    resized to its resolution. Both are split into four channel groups; each
    pair of groups is concatenated with the decoder's mask prediction of this
    stage, layer-normalised and passed through a depthwise 3x3 conv with
    dilation 1, 2, 5 or 7 (four receptive fields). The four results are
    concatenated, normalised and fused by a 1x1 conv. The mask enters as
    raw logits (choice).

    Args:
        high_channels (int): Channels of the high-level (coarser) input.
        low_channels (int): Channels of the low-level (encoder) input and of
            the output; divisible by 4.
        dilations (Sequence[int]): One dilation per group.
            Default: (1, 2, 5, 7).
    """

    def __init__(self,
                 high_channels: int,
                 low_channels: int,
                 dilations: Sequence[int] = (1, 2, 5, 7)) -> None:
        super().__init__()
        assert low_channels % len(dilations) == 0
        self.num_groups = len(dilations)
        group_width = 2 * low_channels // self.num_groups + 1  # high+low+mask
        self.project_high = nn.Conv2d(high_channels, low_channels, 1)
        self.group_convs = nn.ModuleList()
        for dilation in dilations:
            self.group_convs.append(
                nn.Sequential(
                    ChannelLayerNorm(group_width),
                    nn.Conv2d(
                        group_width,
                        group_width,
                        3,
                        padding=dilation,
                        dilation=dilation,
                        groups=group_width)))
        fused = group_width * self.num_groups
        self.fuse = nn.Sequential(
            ChannelLayerNorm(fused), nn.Conv2d(fused, low_channels, 1))

    def forward(self, high: Tensor, low: Tensor, mask: Tensor) -> Tensor:
        high = self.project_high(high)
        if high.shape[-2:] != low.shape[-2:]:
            high = F.interpolate(
                high, size=low.shape[-2:], mode='bilinear', align_corners=True)
        highs = torch.chunk(high, self.num_groups, dim=1)
        lows = torch.chunk(low, self.num_groups, dim=1)
        outs = [
            conv(torch.cat([h, l, mask], dim=1))
            for conv, h, l in zip(self.group_convs, highs, lows)
        ]
        return self.fuse(torch.cat(outs, dim=1))


@MODELS.register_module()
class EGEUNet(StrictLoadingMixin, BaseModule):
    """EGE-UNet encoder-decoder (everything but the final 1x1 classifier).

    Encoder: six stages of widths ``channels``; stages 1-3 are plain 3x3
    convs, stages 4-6 are GHPA blocks. Stages 1-5 are followed by
    GroupNorm(4), 2x2 max-pooling and GELU; stage 6 by GELU only.
    Decoder: five stages mirroring the encoder (GHPA for the three deepest,
    3x3 convs for the two shallowest), each followed by GroupNorm(4),
    2x upsampling (except the deepest) and GELU. After every decoder stage a
    1x1 conv predicts a 1-channel mask (deep supervision); the GAB of that
    stage fuses the previous bridge output (or encoder stage 6), the encoder
    feature of the same resolution and this mask, and its output is added
    to the decoder feature.

    The deepest resolution is 1/32 of the input, so input sides should be
    multiples of 32 (other sizes work but are resized internally).

    Args:
        in_channels (int): Image channels. Default: 3.
        channels (Sequence[int]): Six stage widths, the last four divisible
            by 4. Default: (8, 16, 24, 32, 48, 64) as in the paper.
        memory_size (int): Side of the HPA learnable memories. Default: 8.
        dilations (Sequence[int]): GAB dilations. Default: (1, 2, 5, 7).
        init_cfg (dict | list[dict], optional): Initialization config.

    Returns (from ``forward``):
        tuple[Tensor]: ``(feature, mask_1, ..., mask_5)``: the last decoder
        feature, ``channels[0]`` wide at 1/2 input resolution (the paper
        applies its 1x1 classifier there and upsamples the logits 2x), then
        the five deep-supervision mask logits from fine (1/2) to coarse
        (1/32).
    """

    def __init__(self,
                 in_channels: int = 3,
                 channels: Sequence[int] = (8, 16, 24, 32, 48, 64),
                 memory_size: int = 8,
                 dilations: Sequence[int] = (1, 2, 5, 7),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        assert len(channels) == 6, 'EGE-UNet has exactly six stages'
        c = list(channels)
        self.channels = c

        def conv3x3(cin, cout):
            return nn.Conv2d(cin, cout, 3, padding=1)

        def group_norm(ch):
            return nn.GroupNorm(4, ch)

        self.encoder_stages = nn.ModuleList([
            conv3x3(in_channels, c[0]),
            conv3x3(c[0], c[1]),
            conv3x3(c[1], c[2]),
            GHPA(c[2], c[3], memory_size),
            GHPA(c[3], c[4], memory_size),
            GHPA(c[4], c[5], memory_size),
        ])
        self.encoder_norms = nn.ModuleList([group_norm(ch) for ch in c[:5]])
        # decoder stage k maps c[5-k] -> c[4-k], deepest first
        self.decoder_stages = nn.ModuleList([
            GHPA(c[5], c[4], memory_size),
            GHPA(c[4], c[3], memory_size),
            GHPA(c[3], c[2], memory_size),
            conv3x3(c[2], c[1]),
            conv3x3(c[1], c[0]),
        ])
        self.decoder_norms = nn.ModuleList(
            [group_norm(c[4 - k]) for k in range(5)])
        self.mask_convs = nn.ModuleList(
            [nn.Conv2d(c[4 - k], 1, 1) for k in range(5)])
        self.bridges = nn.ModuleList([
            GroupAggregationBridge(c[5 - k], c[4 - k], dilations)
            for k in range(5)
        ])

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        skips: List[Tensor] = []
        for idx, stage in enumerate(self.encoder_stages):
            x = stage(x)
            if idx < 5:
                x = F.gelu(F.max_pool2d(self.encoder_norms[idx](x), 2))
                skips.append(x)
            else:
                x = F.gelu(x)
        high = x  # encoder stage 6 feeds the first bridge
        masks: List[Tensor] = []
        for k, stage in enumerate(self.decoder_stages):
            x = self.decoder_norms[k](stage(x))
            low = skips[4 - k]
            if x.shape[-2:] != low.shape[-2:]:
                x = F.interpolate(
                    x, size=low.shape[-2:], mode='bilinear',
                    align_corners=True)
            x = F.gelu(x)
            mask = self.mask_convs[k](x)
            high = self.bridges[k](high, low, mask)
            x = x + high
            masks.append(mask)
        return (x, *reversed(masks))
