"""Re-parameterisation helpers: fold BatchNorm into convolutions."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor


def fold_batch_norm(weight: Tensor, bias: Optional[Tensor],
                    norm: nn.modules.batchnorm._BatchNorm
                    ) -> Tuple[Tensor, Tensor]:
    """Fold an eval-mode BatchNorm that follows a convolution into it.

    ``norm(conv(x; weight, bias)) == conv(x; new_weight, new_bias)`` with the
    running statistics of ``norm``.

    Args:
        weight (Tensor): Convolution kernel, ``(out_channels, ...)``.
        bias (Tensor, optional): Convolution bias or None.
        norm (_BatchNorm): The BatchNorm applied to the convolution output.

    Returns:
        tuple[Tensor, Tensor]: The folded kernel and bias.

    Raises:
        ModelArgumentError: ``norm`` keeps no running statistics.
    """
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm):
        raise TypeError('re-parameterisation needs a BatchNorm, got '
                        f'{type(norm).__name__}')
    if norm.running_var is None:
        # A user's config, not a bug: one ERROR line from the tools (it
        # was a ValueError traceback).
        from ...utils.errors import ModelArgumentError
        raise ModelArgumentError(
            'a BatchNorm without running statistics (norm_cfg '
            'track_running_stats=False) normalises each batch by its own '
            'statistics, which no convolution can hold: this model has no '
            're-parameterised (deploy) form. Train with running statistics '
            '(the default) to deploy it')
    std = torch.sqrt(norm.running_var + norm.eps)
    gamma = norm.weight if norm.weight is not None else torch.ones_like(std)
    beta = norm.bias if norm.bias is not None else torch.zeros_like(std)
    scale = gamma / std
    if bias is None:
        bias = torch.zeros_like(norm.running_mean)
    new_weight = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    new_bias = beta + (bias - norm.running_mean) * scale
    return new_weight, new_bias


def reparameterize_model(model: nn.Module) -> nn.Module:
    """Turn a trained model into its plain inference form, in place.

    Calls ``reparameterize()`` on every module that has one (DESDConv blocks
    fold their difference branches and BatchNorms; DSNetHead drops its deep
    supervision classifiers), then folds the remaining Conv2d + BatchNorm
    pairs (e.g. inside ``ConvModule``) with :func:`mmcv.cnn.fuse_conv_bn`.
    The result computes the eval-mode output of the original model.

    Args:
        model (nn.Module): A model, e.g. an mmseg ``EncoderDecoder``.

    Returns:
        nn.Module: The same model object, re-parameterised.
    """
    from mmcv.cnn import fuse_conv_bn

    # Collect first: re-parameterising replaces submodules while we walk.
    blocks = [
        module for module in model.modules()
        if callable(getattr(module, 'reparameterize', None))
    ]
    for block in blocks:
        block.reparameterize()
    return fuse_conv_bn(model)


def reparameterization_changes(model: nn.Module) -> bool:
    """Whether :func:`reparameterize_model` would change ``model``.

    Checked on a copy, with the same rules: a model without a block that
    re-parameterises itself and without a BatchNorm after a convolution
    (EGE-UNet and MALUNet normalise with GroupNorm and LayerNorm) comes out
    as it went in, so its "re-parameterised" form is the trained one.

    Args:
        model (nn.Module): A model, e.g. an mmseg ``EncoderDecoder``.

    Returns:
        bool: True when some module would be folded or replaced.
    """
    import copy

    def module_types(module):
        return [type(m) for m in module.modules()]

    before = module_types(model)
    return module_types(reparameterize_model(copy.deepcopy(model))) != before
