"""Dynamic gate attention (DGA): the bridge on DSNet's skip connections."""
from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmseg.registry import MODELS
from torch import Tensor

from ...utils.errors import ModelArgumentError
from .desd_conv import folds_into_conv


@MODELS.register_module()
class DynamicGateAttention(nn.Module):
    """Input-dependent gated fusion of an encoder and a decoder feature.

    A gate ``g = sigmoid(a_c + a_s)`` in (0, 1), per channel and pixel,
    decides how much encoder detail versus decoder context flows on:

    - channel logits ``a_c`` (one per channel): global average pooling of
      both inputs, stacked as a 2-row signal along the channel axis, then a
      1-D convolution across neighbouring channels (ECA-style, few weights);
    - spatial logits ``a_s`` (one per pixel): channel-wise mean and max of
      both inputs (4 maps), then a k x k convolution. A ``guided`` gate
      also reads a fifth map, the lesion probability a coarser level
      predicted (deep supervision's side output, upsampled), so that it
      can tell the lesion's edge, where encoder detail matters, from
      the regions either side of it.

    ``out = proj(g * enc + (1 - g) * dec)`` with ``proj`` a 1x1
    conv-BN-activation. ``use_gate=False`` is the plain skip used for
    ablation: ``out = proj(enc + dec)``.

    Args:
        channels (int): Channels of both inputs and of the output.
        use_gate (bool): Gate the fusion; False is the plain skip.
            Default: True.
        channel_kernel_size (int): Kernel of the 1-D channel convolution.
            Default: 3.
        spatial_kernel_size (int): Kernel of the spatial convolution.
            Default: 7.
        guided (bool): The spatial gate also reads a ``guide`` map passed
            to :meth:`forward`; its weights start at zero, so a guided
            gate starts as the unguided one. Default: False.
        norm_cfg (dict): Norm of the projection. Default: ``dict(type='BN')``.
        act_cfg (dict): Activation of the projection.
            Default: ``dict(type='ReLU')``.
        deploy (bool): Build the projection without norm (BN folded into
            its bias; another norm is kept), matching a re-parameterised
            checkpoint.
            Default: False.
    """

    def __init__(self,
                 channels: int,
                 use_gate: bool = True,
                 channel_kernel_size: int = 3,
                 spatial_kernel_size: int = 7,
                 guided: bool = False,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 deploy: bool = False):
        super().__init__()
        self.channels = channels
        self.use_gate = use_gate
        self.guided = guided
        if guided and not use_gate:
            raise ModelArgumentError('a guided bridge needs use_gate=True')
        if use_gate:
            self.channel_gate = nn.Conv1d(
                2, 1, channel_kernel_size, padding=channel_kernel_size // 2)
            self.spatial_gate = nn.Conv2d(
                5 if guided else 4,
                1,
                spatial_kernel_size,
                padding=spatial_kernel_size // 2)
            # Start at g = 0.5 everywhere: an even mix of both inputs.
            nn.init.zeros_(self.channel_gate.bias)
            nn.init.zeros_(self.spatial_gate.bias)
            if guided:
                nn.init.zeros_(self.spatial_gate.weight[:, 4:])
        self.proj = ConvModule(
            channels,
            channels,
            1,
            # Deployed, a BatchNorm is folded into the conv; another norm
            # (GroupNorm) stays, as re-parameterisation leaves it.
            norm_cfg=None if deploy and folds_into_conv(norm_cfg) else
            norm_cfg,
            act_cfg=act_cfg)

    def gate(self,
             enc: Tensor,
             dec: Tensor,
             guide: Optional[Tensor] = None) -> Tensor:
        """Gate ``g`` of shape ``(N, C, H, W)`` computed from both inputs
        (and the ``(N, 1, H, W)`` guide of a guided gate)."""
        batch, channels = enc.shape[:2]
        pooled = torch.stack([enc.mean(dim=(2, 3)), dec.mean(dim=(2, 3))], 1)
        channel_logits = self.channel_gate(pooled).reshape(
            batch, channels, 1, 1)
        maps = torch.cat([
            enc.mean(dim=1, keepdim=True),
            enc.amax(dim=1, keepdim=True),
            dec.mean(dim=1, keepdim=True),
            dec.amax(dim=1, keepdim=True)
        ] + ([guide] if self.guided else []), 1)
        spatial_logits = self.spatial_gate(maps)
        return torch.sigmoid(channel_logits + spatial_logits)

    def forward(self,
                enc: Tensor,
                dec: Tensor,
                guide: Optional[Tensor] = None) -> Tensor:
        """Fuse the encoder skip ``enc`` and the upsampled decoder ``dec``;
        a guided bridge needs ``guide``, a lesion probability map of
        ``enc``'s size."""
        if self.guided and guide is None:
            raise ValueError('a guided DynamicGateAttention needs a guide map')
        if self.use_gate:
            fused = dec + self.gate(enc, dec, guide) * (enc - dec)
        else:
            fused = enc + dec
        return self.proj(fused)
