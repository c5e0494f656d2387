"""A classifier-only decode head for backbones that hold a whole U-Net."""
from typing import Sequence

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, SampleList
from torch import Tensor

from ...utils.errors import ModelArgumentError
from ..losses.loss_arguments import check_head_losses, check_loss_weights
from ..utils.lesion_logit import check_head_threshold
from ..utils.strict_loading import StrictLoadingMixin


@MODELS.register_module()
class LightweightClsHead(StrictLoadingMixin, BaseDecodeHead):
    """Only ``cls_seg`` (a 1x1 conv) on one backbone output.

    Used with :class:`EGEUNet` and :class:`MALUNet`, whose backbones already
    contain the whole encoder-decoder: the head adds nothing but the paper's
    final 1x1 classifier, so backbone + head have exactly the paper's
    parameters. During training it can also supervise mask logits the
    backbone already predicts (deep supervision), each with the same
    ``loss_decode`` after bilinear resizing to the label size, scaled by a
    weight.

    Args:
        in_channels (int): Channels of the selected input (``in_index``).
        channels (int, optional): Must equal ``in_channels`` (``cls_seg``
            reads ``channels``); defaults to it.
        aux_in_index (Sequence[int]): Backbone outputs that are already mask
            logits with ``out_channels`` channels, supervised in training.
            Default: () (none).
        aux_loss_weights (Sequence[float]): One weight per ``aux_in_index``.
            Default: ().
        **kwargs: Passed to ``BaseDecodeHead`` (``num_classes``,
            ``out_channels``, ``threshold``, ``loss_decode``, ``in_index``
            (default 0), ``dropout_ratio`` (default 0: the papers use none),
            ...).
    """

    def __init__(self,
                 in_channels: int,
                 channels: int = None,
                 aux_in_index: Sequence[int] = (),
                 aux_loss_weights: Sequence[float] = (),
                 **kwargs) -> None:
        kwargs.setdefault('in_index', 0)
        kwargs.setdefault('dropout_ratio', 0.0)
        channels = in_channels if channels is None else channels
        if channels != in_channels:
            raise ModelArgumentError(
                'LightweightClsHead applies cls_seg directly to its input, '
                f'so channels ({channels}) must equal in_channels '
                f'({in_channels})')
        super().__init__(in_channels, channels, **kwargs)
        check_head_threshold('LightweightClsHead', self.out_channels,
                             self.threshold)
        check_head_losses('LightweightClsHead', self.loss_decode,
                          self.ignore_index)
        if len(aux_in_index) != len(aux_loss_weights):
            raise ModelArgumentError(
                'LightweightClsHead: give one aux_loss_weights entry per '
                f'aux_in_index, got {list(aux_loss_weights)} for '
                f'{list(aux_in_index)}')
        # A repeated output was scored twice under one loss key, so the
        # last weight silently replaced the others.
        if (any(isinstance(i, bool) or not isinstance(i, int) or i < 0
                for i in aux_in_index)
                or len(set(aux_in_index)) != len(aux_in_index)
                or self.in_index in aux_in_index):
            raise ModelArgumentError(
                'LightweightClsHead: aux_in_index must name distinct '
                'backbone outputs by index >= 0, other than in_index '
                f'({self.in_index}), got {list(aux_in_index)}')
        check_loss_weights(
            'LightweightClsHead', **{
                f'aux_loss_weights[{i}]': weight
                for i, weight in enumerate(aux_loss_weights)
            })
        self.aux_in_index = list(aux_in_index)
        self.aux_loss_weights = list(aux_loss_weights)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Apply the 1x1 classifier to the selected backbone output."""
        return self.cls_seg(self._transform_inputs(inputs))

    def loss(self, inputs: Sequence[Tensor], batch_data_samples: SampleList,
             train_cfg: ConfigType) -> dict:
        """Main loss plus the weighted deep-supervision losses.

        Auxiliary entries are named ``aux<index>.loss_<name>``; mmengine
        sums every key containing ``loss``.
        """
        losses = self.loss_by_feat(self.forward(inputs), batch_data_samples)
        for index, weight in zip(self.aux_in_index, self.aux_loss_weights):
            if index >= len(inputs):
                raise ModelArgumentError(
                    f'LightweightClsHead: aux_in_index {index} names no '
                    f'backbone output: the backbone gives {len(inputs)} '
                    f'(0 to {len(inputs) - 1})')
            aux_logits = inputs[index]
            if aux_logits.shape[1] != self.out_channels:
                raise ModelArgumentError(
                    f'LightweightClsHead: backbone output {index} '
                    f'(aux_in_index) has {aux_logits.shape[1]} channels, '
                    f'but the head predicts out_channels={self.out_channels}'
                    ': its side outputs cannot be scored with loss_decode')
            aux_losses = self.loss_by_feat(aux_logits, batch_data_samples)
            for name, value in aux_losses.items():
                if 'loss' in name:
                    losses[f'aux{index}.{name}'] = value * weight
        return losses
