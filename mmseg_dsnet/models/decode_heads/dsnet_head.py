"""DSNet decoder: DESDConv stages joined to the encoder by DGA bridges."""
from typing import List, Optional, Sequence, Tuple

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, SampleList
from torch import Tensor, nn

from ...utils.errors import ModelArgumentError
from ..layers import DESDConv, DynamicGateAttention
from ..losses.loss_arguments import check_head_losses, check_loss_weights
from ..losses.signed_distance import signed_distance_maps
from ..utils.lesion_logit import check_head_threshold
from ..utils.strict_loading import StrictLoadingMixin


@MODELS.register_module()
class DSNetHead(StrictLoadingMixin, BaseDecodeHead):
    """The decoder half of DSNet's U shape.

    Starting from the deepest encoder feature, every level ``i`` (deep to
    shallow) runs a DESDConv that maps ``in_channels[i + 1]`` to
    ``in_channels[i]`` channels at the coarse resolution (cheap), upsamples
    it bilinearly to the size of encoder feature ``i`` and fuses the two with
    a :class:`DynamicGateAttention` bridge, optionally followed by
    ``refine_blocks[i]`` residual DESDConv blocks at that level. With
    ``final_block`` a last DESDConv at the finest level gives ``channels``
    features for ``cls_seg``; without it ``cls_seg`` reads the finest
    bridge output (``channels`` must then equal ``in_channels[0]``). The
    logits have ``pixel_shuffle`` times the resolution of the finest encoder
    feature (the input's with a stride-1 stem, half of it with a stride-2
    stem); mmseg resizes them to the label (training) and to the image
    (prediction).

    Args:
        in_channels (Sequence[int]): Channels of the encoder features,
            shallow to deep.
        channels (int): Channels fed to ``cls_seg``.
        use_gate (bool): Gate the skip connections (DGA); False is the plain
            ``proj(enc + dec)`` skip for ablation. Default: True.
        conv_type (str): ``'desd'`` or ``'vanilla'``. Default: ``'desd'``.
        branch_drop (float): Probability of dropping a difference branch's
            kernel of a channel during training, in every DESDConv (see
            :class:`DifferenceKernels`). Default: 0.0.
        refine_blocks (Sequence[int], optional): Residual DESDConv blocks
            after the bridge of each level, finest first. Default: None
            (none).
        refine_dilations (Sequence[int], optional): Dilation of each
            level's refine blocks. Default: None (all 1).
        zero_init_residual (bool): Start every refine block as the identity
            (its last BatchNorm's scale at 0), as the backbone's
            ``zero_init_residual`` does for the encoder's residual blocks.
            Default: False.
        final_block (bool): A DESDConv from ``in_channels[0]`` to
            ``channels`` before ``cls_seg``. Default: True.
        deep_supervision (bool): During training, add 1x1 classifiers on the
            bridge outputs of levels ``1 .. len(aux_loss_weights)`` and add
            their losses (logits are resized to the label, as for the main
            output), scaled by ``aux_loss_weights``. Default: False.
        aux_loss_weights (Sequence[float]): Loss weight of each auxiliary
            classifier, level 1 first. Default: (0.4, 0.2, 0.1).
        guided_gates (bool): The bridge of each level ``i`` below
            ``len(aux_loss_weights)`` also reads the lesion probability
            that the auxiliary classifier of level ``i + 1`` predicts,
            upsampled to its size (a guided :class:`DynamicGateAttention`);
            those classifiers then stay in the deployed model. Needs
            ``deep_supervision``. Default: False.
        fuse_side_outputs (bool): At inference, return the weighted mean
            of the main logits and the deep-supervision classifiers'
            logits (resized to the main logits), weighted 1 and
            ``aux_loss_weights``: the classifiers then stay in the deployed
            model. Needs ``deep_supervision``. Default: False.
        fused_loss_weight (float): During training, also apply the loss to
            the fused logits of ``fuse_side_outputs``, with this weight
            (``fused.loss_*``). Default: 0.0 (training unchanged).
        distance_loss_weight (float): During training, a 1x1 convolution on
            the features ``cls_seg`` reads regresses the normalised signed
            distance to the lesion boundary (:func:`signed_distance_maps`,
            through a tanh, resized to the label like the logits), with an
            L1 loss of this weight (``loss_distance``); dropped by
            :meth:`reparameterize`. Default: 0.0 (none).
        pixel_shuffle (int): ``cls_seg`` predicts ``pixel_shuffle**2``
            logits per position and :class:`torch.nn.PixelShuffle` lays
            them out on a grid that many times finer: a learned upsampling
            of the logits that costs no convolution at the finer size.
            Default: 1 (logits at the finest feature's resolution).
        deploy (bool): Build the re-parameterised plain form. Default: False.
        **kwargs: Passed to ``BaseDecodeHead`` (``num_classes``,
            ``out_channels``, ``threshold``, ``loss_decode``, ...).
            ``input_transform`` is always ``'multiple_select'`` and
            ``in_index`` defaults to all inputs.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: int,
                 use_gate: bool = True,
                 conv_type: str = 'desd',
                 branch_drop: float = 0.0,
                 refine_blocks: Optional[Sequence[int]] = None,
                 refine_dilations: Optional[Sequence[int]] = None,
                 zero_init_residual: bool = False,
                 final_block: bool = True,
                 deep_supervision: bool = False,
                 aux_loss_weights: Sequence[float] = (0.4, 0.2, 0.1),
                 guided_gates: bool = False,
                 fuse_side_outputs: bool = False,
                 fused_loss_weight: float = 0.0,
                 distance_loss_weight: float = 0.0,
                 pixel_shuffle: int = 1,
                 deploy: bool = False,
                 **kwargs):
        kwargs.setdefault('in_index', list(range(len(in_channels))))
        kwargs.setdefault('norm_cfg', dict(type='BN'))
        super().__init__(
            in_channels,
            channels,
            input_transform='multiple_select',
            **kwargs)
        if len(self.in_channels) < 2:
            raise ModelArgumentError(
                'DSNetHead needs at least two input levels')
        check_head_threshold('DSNetHead', self.out_channels, self.threshold)
        check_head_losses('DSNetHead', self.loss_decode, self.ignore_index)
        if deep_supervision and not (
                0 < len(aux_loss_weights) < len(self.in_channels) - 1):
            raise ModelArgumentError('aux_loss_weights needs 1 to '
                                     f'{len(self.in_channels) - 2} entries')
        if deep_supervision:
            check_loss_weights(
                'DSNetHead', **{
                    f'aux_loss_weights[{i}]': weight
                    for i, weight in enumerate(aux_loss_weights)
                })
        if guided_gates and not (deep_supervision and use_gate):
            raise ModelArgumentError(
                'guided_gates needs deep_supervision=True and use_gate=True')
        if fuse_side_outputs and not deep_supervision:
            raise ModelArgumentError(
                'fuse_side_outputs needs deep_supervision=True')
        if fused_loss_weight < 0 or (fused_loss_weight
                                     and not fuse_side_outputs):
            raise ModelArgumentError(
                'fused_loss_weight must be >= 0 and needs '
                f'fuse_side_outputs=True, got {fused_loss_weight}')
        if distance_loss_weight < 0:
            raise ModelArgumentError('distance_loss_weight must be >= 0, '
                                     f'got {distance_loss_weight}')
        if pixel_shuffle < 1:
            raise ModelArgumentError(
                f'pixel_shuffle must be >= 1, got {pixel_shuffle}')
        self.deploy = deploy
        self.deep_supervision = deep_supervision
        self.aux_loss_weights = tuple(aux_loss_weights)
        self.guided_gates = guided_gates
        self.fuse_side_outputs = fuse_side_outputs
        self.fused_loss_weight = fused_loss_weight
        self.distance_loss_weight = distance_loss_weight
        self.zero_init_residual = zero_init_residual

        block_cfg = dict(
            conv_type=conv_type,
            branch_drop=branch_drop,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg,
            deploy=deploy)
        levels = len(self.in_channels) - 1
        # Index i is the level whose resolution the output has.
        self.up_blocks = nn.ModuleList([
            DESDConv(self.in_channels[i + 1], self.in_channels[i],
                     **block_cfg) for i in range(levels)
        ])
        self.bridges = nn.ModuleList([
            DynamicGateAttention(
                self.in_channels[i],
                use_gate=use_gate,
                guided=guided_gates and i < len(self.aux_loss_weights),
                norm_cfg=self.norm_cfg,
                act_cfg=self.act_cfg,
                deploy=deploy) for i in range(levels)
        ])
        refine_blocks = tuple(refine_blocks or [0] * levels)
        refine_dilations = tuple(refine_dilations or [1] * levels)
        if len(refine_blocks) != levels or len(refine_dilations) != levels:
            raise ModelArgumentError(
                f'refine_blocks and refine_dilations need '
                f'{levels} entries (one per bridge)')
        if min(refine_blocks) < 0 or min(refine_dilations) < 1:
            raise ModelArgumentError(
                'refine_blocks need entries >= 0 and refine_dilations '
                f'entries >= 1, got {refine_blocks} and {refine_dilations}')
        self.refine_blocks = nn.ModuleList([
            nn.Sequential(*[
                DESDConv(
                    self.in_channels[i],
                    self.in_channels[i],
                    dilation=refine_dilations[i],
                    shortcut=True,
                    **block_cfg) for _ in range(refine_blocks[i])
            ]) for i in range(levels)
        ])
        if final_block:
            self.final_block = DESDConv(self.in_channels[0], channels,
                                        **block_cfg)
        elif channels != self.in_channels[0]:
            raise ModelArgumentError(
                'without final_block, channels must equal '
                f'in_channels[0] ({self.in_channels[0]})')
        else:
            self.final_block = nn.Identity()
        if pixel_shuffle > 1:
            self.conv_seg = nn.Conv2d(channels,
                                      self.out_channels * pixel_shuffle**2, 1)
        self.shuffle = nn.PixelShuffle(pixel_shuffle)
        # Guided gates and the fusion read the side outputs at inference too.
        if deep_supervision and (guided_gates or fuse_side_outputs
                                 or not deploy):
            self.aux_classifiers = nn.ModuleList([
                nn.Conv2d(self.in_channels[level], self.out_channels, 1)
                for level in range(1,
                                    len(self.aux_loss_weights) + 1)
            ])
        if distance_loss_weight > 0 and not deploy:
            self.distance_regressor = nn.Conv2d(channels, 1, 1)

    def init_weights(self) -> None:
        super().init_weights()
        if self.zero_init_residual and not self.deploy:
            for blocks in self.refine_blocks:
                for block in blocks:
                    nn.init.zeros_(block.pointwise_norm.weight)

    def _decode(self, inputs: List[Tensor],
                with_aux: bool) -> Tuple[Tensor, List[Tensor], Tensor]:
        self._check_inputs(inputs)
        feats = self._transform_inputs(inputs)
        x = feats[-1]
        aux_logits = []
        side_logits = None
        for level in range(len(feats) - 2, -1, -1):
            x = self.up_blocks[level](x)
            x = self._resize_to(x, feats[level])
            guide = None
            if self.bridges[level].guided:
                guide = self._resize_to(side_logits, feats[level]).sigmoid()
            x = self.refine_blocks[level](self.bridges[level](feats[level],
                                                              x, guide))
            if (with_aux or self.guided_gates) and 1 <= level <= len(
                    self.aux_loss_weights):
                side_logits = self.aux_classifiers[level - 1](x)
                aux_logits.append(side_logits)
        x = self.final_block(x)
        return self.cls_seg(x), aux_logits[::-1], x

    def _check_inputs(self, inputs: List[Tensor]) -> None:
        """Refuse backbone outputs other than ``in_index`` and
        ``in_channels`` describe (a backbone whose ``widths`` or
        ``out_indices`` were changed without the head's): they failed deep
        inside a convolution with a RuntimeError or an IndexError."""
        if len(inputs) <= max(self.in_index):
            raise ModelArgumentError(
                f'DSNetHead reads backbone outputs in_index={self.in_index}, '
                f'but the backbone gives {len(inputs)}: set '
                'model.backbone.out_indices and model.decode_head.in_index '
                'to agree')
        channels = [int(inputs[i].shape[1]) for i in self.in_index]
        if channels != list(self.in_channels):
            raise ModelArgumentError(
                f'DSNetHead in_channels={list(self.in_channels)}, but the '
                f'backbone outputs it reads have {channels} channels: set '
                'model.decode_head.in_channels to the backbone\'s widths')

    def _resize_to(self, x: Tensor, like: Tensor) -> Tensor:
        return resize(
            x,
            size=like.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)

    def cls_seg(self, feat: Tensor) -> Tensor:
        """Logits of ``feat`` (``pixel_shuffle`` times its resolution)."""
        return self.shuffle(super().cls_seg(feat))

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Full-resolution logits, ``(N, out_channels, H, W)``."""
        if not self.fuse_side_outputs:
            return self._decode(inputs, with_aux=False)[0]
        logits, aux_logits, _ = self._decode(inputs, with_aux=True)
        return self._fuse(logits, aux_logits)

    def _fuse(self, logits: Tensor, aux_logits: List[Tensor]) -> Tensor:
        """The mean of ``logits`` and the side logits (resized to them),
        weighted 1 and ``aux_loss_weights``."""
        fused = logits
        for side, weight in zip(aux_logits, self.aux_loss_weights):
            fused = fused + weight * self._resize_to(side, logits)
        return fused / (1 + sum(self.aux_loss_weights))

    def loss(self, inputs: Tuple[Tensor], batch_data_samples: SampleList,
             train_cfg: ConfigType) -> dict:
        """Main loss, plus weighted deep-supervision losses if enabled."""
        return self.loss_by_decoded(*self.decode_for_loss(inputs),
                                    batch_data_samples)

    def decode_for_loss(
        self, inputs: Tuple[Tensor]
    ) -> Tuple[Tensor, List[Tensor], Tensor]:
        """What :meth:`loss` scores: the full-resolution logits, the side
        logits (shallow to deep; empty without deep supervision) and the
        features ``cls_seg`` read. A segmentor that adds a term of its own
        on the logits decodes once with this and scores with
        :meth:`loss_by_decoded`.

        Args:
            inputs (tuple[Tensor]): The backbone's outputs.

        Returns:
            tuple: ``(seg_logits, aux_logits, feat)``.
        """
        if self.deploy:
            # No BatchNorms, branches or side classifiers: another network.
            raise ModelArgumentError(
                'DSNetHead(deploy=True) is the re-parameterised (inference) '
                'form and cannot be trained; train the model built with '
                'deploy=False')
        return self._decode(inputs, hasattr(self, 'aux_classifiers'))

    def loss_by_decoded(self, seg_logits: Tensor, aux_logits: List[Tensor],
                        feat: Tensor,
                        batch_data_samples: SampleList) -> dict:
        """The losses of :meth:`loss` from the outputs of
        :meth:`decode_for_loss`.

        Args:
            seg_logits (Tensor): The full-resolution logits.
            aux_logits (list[Tensor]): The side logits.
            feat (Tensor): The features ``cls_seg`` read.
            batch_data_samples (list[SegDataSample]): The ground truth.

        Returns:
            dict[str, Tensor]: The losses.
        """
        losses = self.loss_by_feat(seg_logits, batch_data_samples)
        for level, (logits, weight) in enumerate(
                zip(aux_logits, self.aux_loss_weights), start=1):
            aux_losses = self.loss_by_feat(logits, batch_data_samples)
            for name, value in aux_losses.items():
                if name.startswith('loss'):
                    losses[f'aux{level}.{name}'] = value * weight
        if self.fused_loss_weight > 0:
            fused_losses = self.loss_by_feat(
                self._fuse(seg_logits, aux_logits), batch_data_samples)
            for name, value in fused_losses.items():
                if name.startswith('loss'):
                    losses[f'fused.{name}'] = value * self.fused_loss_weight
        if hasattr(self, 'distance_regressor'):
            losses['loss_distance'] = self.distance_loss(
                feat, batch_data_samples)
        return losses

    def distance_loss(self, feat: Tensor,
                      batch_data_samples: SampleList) -> Tensor:
        """Weighted L1 loss of the signed distance regressed from
        ``feat``, over the labelled pixels."""
        labels = self._stack_batch_gt(batch_data_samples)
        distance = resize(
            self.distance_regressor(feat),
            size=labels.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners).float().tanh()
        target = signed_distance_maps(labels, self.ignore_index)
        valid = (labels != self.ignore_index).float()
        error = (distance - target).abs() * valid
        return self.distance_loss_weight * error.sum() / valid.sum().clamp(
            min=1)

    def reparameterize(self) -> None:
        """Drop the deep-supervision classifiers unless guided gates or the
        fusion read them, and the distance regressor.

        The DESDConv blocks and bridges are folded by
        :func:`reparameterize_model`, which also calls this method.
        """
        if hasattr(self, 'aux_classifiers') and not (
                self.guided_gates or self.fuse_side_outputs):
            del self.aux_classifiers
        if hasattr(self, 'distance_regressor'):
            del self.distance_regressor
        # Now the inference form, as if built with deploy=True: without
        # this, loss() trained the folded model (no BatchNorm, its deep
        # supervision silently gone) of reparameterize_model.
        self.deploy = True
