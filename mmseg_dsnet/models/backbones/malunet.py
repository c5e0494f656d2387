"""MALUNet (Ruan et al., BIBM 2022) as one MMSegmentation backbone.

"MALUNet: A Multi-Attention and Light-weight UNet for Skin Lesion
Segmentation". Written from the paper's description of its four modules
(DGA, IEA, CAB, SAB) and its six-stage U shape; no code was taken from the
official repository. Details the paper leaves open are chosen here and
marked "choice" below. The paper's final 1x1 classifier is left to
:class:`LightweightClsHead` (its ``conv_seg``), so backbone + head together
are the whole network.

Budget at 1x3x256x256, backbone + the 8->1 head (172,023 parameters):

* published (thop): 0.175 M parameters, 0.083 GFLOPs;
* conv / linear multiply-adds only (thop's convention): 0.0861 GFLOPs;
* mmengine's ``get_model_complexity_info`` (our ``get_flops.py``):
  0.0928 GFLOPs. It also counts one multiply-add as one FLOP, but adds the
  normalisation layers (5 FLOPs per element with affine: GroupNorm 4.95 M,
  LayerNorm 0.60 M), bilinear resizes (0.92 M) and global pooling
  (0.23 M), which thop leaves out.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS
from .egeunet import ChannelLayerNorm
from ..utils.strict_loading import StrictLoadingMixin


class GatedAttention(nn.Module):
    """Gated attention (GA): a gate branch modulates a content branch.

    A 1x1 conv expands to twice the width and splits into a gate (GELU) and a
    content part (depthwise 3x3 conv for local context); their element-wise
    product is projected back by a 1x1 conv. (choice: GLU-style gating.)

    Args:
        channels (int): Input and output channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(channels, 2 * channels, 1)
        self.content_dw = nn.Conv2d(
            channels, channels, 3, padding=1, groups=channels)
        self.project = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        gate, content = self.expand(x).chunk(2, dim=1)
        return self.project(F.gelu(gate) * self.content_dw(content))


class DilatedGatedAttention(nn.Module):
    """Dilated Gated Attention (DGA).

    The channels are split into four groups, each processed by a
    depthwise-separable 3x3 conv with dilation 1, 2, 5 or 7 (local to global
    receptive fields); the concatenated result goes through gated attention.

    Args:
        channels (int): Input and output channels (divisible by 4).
        dilations (Sequence[int]): One dilation per group.
            Default: (1, 2, 5, 7).
    """

    def __init__(self,
                 channels: int,
                 dilations: Sequence[int] = (1, 2, 5, 7)) -> None:
        super().__init__()
        assert channels % len(dilations) == 0
        group = channels // len(dilations)
        self.group_convs = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(
                    group,
                    group,
                    3,
                    padding=d,
                    dilation=d,
                    groups=group), nn.Conv2d(group, group, 1))
            for d in dilations
        ])
        self.gated_attention = GatedAttention(channels)

    def forward(self, x: Tensor) -> Tensor:
        groups = torch.chunk(x, len(self.group_convs), dim=1)
        x = torch.cat(
            [conv(g) for conv, g in zip(self.group_convs, groups)], dim=1)
        return self.gated_attention(x)


class InvertedExternalAttention(nn.Module):
    """Inverted External Attention (IEA).

    External attention with two learnable memory units shared by the whole
    dataset, implemented as bias-free 1x1 convs: a key memory maps C to
    ``expansion * C`` "memory slots" (inverted: wider than the input), the
    attention is double-normalised (softmax over pixels, then L1 over
    slots), and a value memory maps back to C.

    Args:
        channels (int): Input and output channels.
        expansion (int): Memory slots per channel. Default: 4.
    """

    def __init__(self, channels: int, expansion: int = 4) -> None:
        super().__init__()
        self.key_memory = nn.Conv1d(
            channels, expansion * channels, 1, bias=False)
        self.value_memory = nn.Conv1d(
            expansion * channels, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        attn = self.key_memory(x.flatten(2))
        attn = attn.softmax(dim=-1)
        attn = attn / (attn.sum(dim=1, keepdim=True) + 1e-9)
        out = self.value_memory(attn)
        return out.view(batch, channels, height, width)


class AttentionStage(nn.Module):
    """One deep MALUNet stage: width change, then DGA and IEA.

    ``x = conv1x1(x); x = x + DGA(LN(x)); x = x + IEA(LN(x))``
    (choice: pre-norm residual units, width changed first by a 1x1 conv.)

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels (divisible by 4).
        dilations (Sequence[int]): DGA dilations. Default: (1, 2, 5, 7).
        expansion (int): IEA memory expansion. Default: 4.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 dilations: Sequence[int] = (1, 2, 5, 7),
                 expansion: int = 4) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_channels, out_channels, 1)
        self.norm_dga = ChannelLayerNorm(out_channels)
        self.dga = DilatedGatedAttention(out_channels, dilations)
        self.norm_iea = ChannelLayerNorm(out_channels)
        self.iea = InvertedExternalAttention(out_channels, expansion)

    def forward(self, x: Tensor) -> Tensor:
        x = self.project(x)
        x = x + self.dga(self.norm_dga(x))
        return x + self.iea(self.norm_iea(x))


class SpatialAttentionBridge(nn.Module):
    """Spatial Attention Bridge (SAB).

    For every skip feature, channel-wise mean and max maps go through ONE
    shared 7x7 conv with dilation 3 and a sigmoid; the map re-weights the
    feature (residually: ``x + a * x``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.shared_conv = nn.Conv2d(2, 1, 7, padding=9, dilation=3)

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        outs = []
        for x in feats:
            pooled = torch.cat(
                [x.mean(dim=1, keepdim=True),
                 x.amax(dim=1, keepdim=True)],
                dim=1)
            outs.append(x + torch.sigmoid(self.shared_conv(pooled)) * x)
        return outs


class ChannelAttentionBridge(nn.Module):
    """Channel Attention Bridge (CAB).

    Globally average-pooled descriptors of all skip stages are concatenated,
    mixed locally by a 1-D conv (kernel 3) along the concatenated channel
    axis, and mapped by one fully connected layer per stage to that stage's
    channel attention (sigmoid), applied residually: ``x + a * x``.

    Args:
        channels (Sequence[int]): Widths of the skip features.
        kernel_size (int): 1-D conv kernel. Default: 3.
    """

    def __init__(self, channels: Sequence[int], kernel_size: int = 3) -> None:
        super().__init__()
        total = sum(channels)
        self.local_mix = nn.Conv1d(
            1, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.stage_fcs = nn.ModuleList(
            [nn.Linear(total, ch) for ch in channels])

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        pooled = torch.cat(
            [F.adaptive_avg_pool2d(x, 1).flatten(1) for x in feats], dim=1)
        mixed = self.local_mix(pooled.unsqueeze(1)).squeeze(1)
        outs = []
        for x, fc in zip(feats, self.stage_fcs):
            attn = torch.sigmoid(fc(mixed))[:, :, None, None]
            outs.append(x + attn * x)
        return outs


@MODELS.register_module()
class MALUNet(StrictLoadingMixin, BaseModule):
    """MALUNet encoder-decoder (everything but the final 1x1 classifier).

    Encoder: six stages of widths ``channels``; stages 1-3 are plain 3x3
    convs, stages 4-6 are DGA+IEA attention stages. Stages 1-5 are followed
    by GroupNorm(4), 2x2 max-pooling and GELU; stage 6 by GELU only. The five
    pooled encoder features pass through SAB then CAB and are added to the
    decoder features of the same resolution (choice: this order, and
    addition rather than concatenation, which keeps the decoder thin).
    Decoder: five stages mirroring the encoder (attention stages for the
    three deepest, 3x3 convs for the two shallowest), each followed by
    GroupNorm(4), 2x upsampling (except the deepest) and GELU.

    Args:
        in_channels (int): Image channels. Default: 3.
        channels (Sequence[int]): Six stage widths, the last four divisible
            by 4. Default: (8, 16, 24, 32, 48, 64) as in the paper.
        dilations (Sequence[int]): DGA dilations. Default: (1, 2, 5, 7).
        expansion (int): IEA memory expansion. Default: 4.
        init_cfg (dict | list[dict], optional): Initialization config.

    Returns (from ``forward``):
        tuple[Tensor]: ``(feature,)``: the last decoder feature,
        ``channels[0]`` wide at 1/2 input resolution (the classifier is
        applied there and its logits upsampled 2x).
    """

    def __init__(self,
                 in_channels: int = 3,
                 channels: Sequence[int] = (8, 16, 24, 32, 48, 64),
                 dilations: Sequence[int] = (1, 2, 5, 7),
                 expansion: int = 4,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        assert len(channels) == 6, 'MALUNet has exactly six stages'
        c = list(channels)
        self.channels = c

        def conv3x3(cin, cout):
            return nn.Conv2d(cin, cout, 3, padding=1)

        def attention(cin, cout):
            return AttentionStage(cin, cout, dilations, expansion)

        self.encoder_stages = nn.ModuleList([
            conv3x3(in_channels, c[0]),
            conv3x3(c[0], c[1]),
            conv3x3(c[1], c[2]),
            attention(c[2], c[3]),
            attention(c[3], c[4]),
            attention(c[4], c[5]),
        ])
        self.encoder_norms = nn.ModuleList(
            [nn.GroupNorm(4, ch) for ch in c[:5]])
        self.spatial_bridge = SpatialAttentionBridge()
        self.channel_bridge = ChannelAttentionBridge(c[:5])
        self.decoder_stages = nn.ModuleList([
            attention(c[5], c[4]),
            attention(c[4], c[3]),
            attention(c[3], c[2]),
            conv3x3(c[2], c[1]),
            conv3x3(c[1], c[0]),
        ])
        self.decoder_norms = nn.ModuleList(
            [nn.GroupNorm(4, c[4 - k]) for k in range(5)])

    def forward(self, x: Tensor) -> Tuple[Tensor]:
        skips: List[Tensor] = []
        for idx, stage in enumerate(self.encoder_stages):
            x = stage(x)
            if idx < 5:
                x = F.gelu(F.max_pool2d(self.encoder_norms[idx](x), 2))
                skips.append(x)
            else:
                x = F.gelu(x)
        skips = self.channel_bridge(self.spatial_bridge(skips))
        for k, stage in enumerate(self.decoder_stages):
            x = self.decoder_norms[k](stage(x))
            low = skips[4 - k]
            if x.shape[-2:] != low.shape[-2:]:
                x = F.interpolate(
                    x, size=low.shape[-2:], mode='bilinear',
                    align_corners=True)
            x = F.gelu(x) + low
        return (x, )
