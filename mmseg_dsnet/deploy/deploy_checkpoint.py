"""A deploy checkpoint (and config) of a re-parameterisable model.

Every DESDConv's five training branches become one plain depthwise 3x3 conv
and BatchNorm is folded into the convolutions (``reparameterize_model``).
The deploy config builds that plain form directly (``deploy=True``), so the
deploy checkpoint loads strictly into it.
"""
import copy
import io
import math
import os.path as osp

import torch
from mmseg.registry import MODELS

from ..compat import checkpoint_meta, resolve_checkpoint
from ..engine.checkpoint_match import load_checkpoint_strictly
from ..engine.cli_errors import UserError
from ..engine.preflight import (build_scope, check_input_file,
                                check_output_file, load_config)
from ..models.utils import reparameterize_model
from ..utils.fileio import (CHECKPOINT_SUFFIXES, atomic_write_together,
                            refuse_folder,
                            refuse_other_suffix, refuse_same_file)
from ..utils.memory import check_forward_memory, reporting_out_of_memory
from ..utils.messages import counted, first_few
from .parity import convolutions_not_seen, within


def deploy_config(cfg):
    """The config with ``deploy=True`` on every part that takes it."""
    cfg = copy.deepcopy(cfg)
    for part in ('backbone', 'decode_head'):
        if part in cfg.model:
            cfg.model[part]['deploy'] = True
    return cfg


def is_deploy_config(cfg) -> bool:
    """Whether a config builds the re-parameterised form (``deploy=True``
    on a part of its model, as :func:`deploy_config` writes it)."""
    model = cfg.get('model') or {}
    return any(
        isinstance(model.get(part), dict) and model[part].get('deploy')
        for part in ('backbone', 'decode_head'))


def check_whole_deploy_form(cfg, model, config: str) -> None:
    """Refuse a deploy config that re-parameterises only part of its model
    (``--cfg-options model.backbone.deploy=True`` alone): the other parts
    are as trained, so its figures are of neither form, while
    ``deploy=True`` labelled them as the re-parameterised model's
    (``get_flops.py``: 0.259 M, 0.277 G against the deployed 0.242 M,
    0.273 G).

    Args:
        cfg (Config): A config with ``deploy=True`` on some part
            (:func:`is_deploy_config`).
        model (nn.Module): The model it built.
        config (str): Its file, for the message.

    Raises:
        UserError: Re-parameterisation would still change ``model``.
    """
    from ..engine.preflight import deploy_form_parts
    from ..models.utils import reparameterization_changes
    if not reparameterization_changes(model):
        return
    parts = deploy_form_parts(cfg.get('model') or {})
    rest = [f'model.{part}' for part in ('backbone', 'decode_head')
            if isinstance(cfg.model.get(part), dict)
            and f'model.{part}.deploy' not in parts]
    raise UserError(
        f'{config}: {", ".join(parts)}=True re-parameterises only part of '
        'the model (' + (', '.join(rest) + ' as trained' if rest else
                         'other modules still fold') + '), so the figures '
        'would be of neither the trained nor the re-parameterised model; '
        'set deploy=True on ' + ' and '.join(
            f'model.{p}' for p in ('backbone', 'decode_head')
            if isinstance(cfg.model.get(p), dict)) + ' (as reparameterize.py '
        'writes it), or leave deploy unset (get_flops.py counts both forms '
        'of a training config; benchmark.py --deploy times the '
        're-parameterised one)')


def refuse_deploy_config(cfg, config: str) -> None:
    """Refuse a deploy config as the config to re-parameterise.

    With it and its deploy checkpoint, the checkpoint was "re-parameterised"
    again: the parity check compared the plain model with itself (0
    difference, ``Params: 241873 -> 241873``), and the new file's
    ``source_checkpoint`` named the deploy checkpoint, not the trained one,
    exit 0.

    Raises:
        UserError: ``cfg`` sets ``deploy=True``.
    """
    if is_deploy_config(cfg):
        raise UserError(
            f'{config} is a deploy config (deploy=True): its model is '
            're-parameterised already, so there is nothing to fold; a deploy '
            'checkpoint and its config are used as they are. To write one, '
            'give the training config and the trained checkpoint')


class ParityError(RuntimeError):
    """The re-parameterised model does not reproduce the trained one."""


def _difference(diff: float) -> str:
    """A logit difference for a message; a non-finite one says why."""
    text = f'{diff:.3g}'
    return text if math.isfinite(diff) else f'{text} (NaN or inf logits)'


def deploy_checkpoint_meta(source, checkpoint) -> dict:
    """The ``meta`` of a deploy checkpoint: the trained checkpoint's
    (``dataset_meta``: class names and palette) with ``deploy=True``,
    ``source_checkpoint`` and the training config (released weights: their
    metafile entry's), which the checks of network, input size and
    training split read.

    Args:
        source (dict): The loaded trained checkpoint.
        checkpoint (str): Its file.
    """
    meta = dict(checkpoint_meta(source), deploy=True,
                source_checkpoint=osp.abspath(checkpoint))
    from ..apis.released_model import training_config_text
    cfg_text = training_config_text(source, checkpoint)
    if cfg_text is not None:
        meta['cfg'] = cfg_text
    return meta


def write_deploy_checkpoint(config, checkpoint, out, shape=(256, 256),
                            atol=1e-5, overwrite=False):
    """Re-parameterise a trained checkpoint, verify it and write the deploy
    checkpoint ``out`` and its config (``out`` with ``.py``), atomically
    with the user's umask.

    The fold is checked on seeded random input: max abs logit difference
    <= ``atol`` in float64, where the fold is exact; in float32 the folded
    model's logits within four times the trained model's own float32
    rounding noise (or ``atol``) of their float64 values. The deploy config
    (``deploy=True``) must rebuild the same model.

    Args:
        config (str): The training config.
        checkpoint (str): The trained checkpoint (loaded strictly).
        out (str): The deploy checkpoint (``.pth``, ``.pt`` or ``.ckpt``).
        shape (tuple[int, int]): ``(H, W)`` of the check input.
        atol (float): Allowed float64 difference.
        overwrite (bool): Replace existing outputs.

    Returns:
        dict: The differences, parameter counts and written files.

    Raises:
        UserError: A ``shape`` too small to check every weight
            (:func:`~.parity.convolutions_not_seen`), or whose check does
            not fit in the memory left (:func:`~mmseg_dsnet.utils.memory.
            check_forward_memory`) or runs out of it, a missing config or
            checkpoint, ``out`` or its ``.py`` being an input or each
            other, ``out`` not named as a
            checkpoint (``.pth``, ``.pt``, ``.ckpt``), a deploy config
            (``deploy=True``: nothing to fold), a model without a
            ``deploy=True`` form, or a checkpoint trained at another input
            size than ``config`` sets (its ``meta['cfg']``).
        FileExistsError: An output exists and ``overwrite`` is False.
        UserError: An output is a folder.
        ParityError: The check failed; nothing is written.
    """
    out_cfg = osp.splitext(out)[0] + '.py'
    # A URL stands for the file it names (downloaded once, cached).
    checkpoint = resolve_checkpoint(checkpoint)
    check_input_file(config, 'config file')
    check_input_file(checkpoint, 'checkpoint')
    # OUT named like the config (``x.py``), the checkpoint itself, or an
    # OUT.py that is the training config: one write would replace the
    # other file, even with ``overwrite``.
    refuse_same_file(
        (('the training config', config), ('the trained checkpoint',
                                           checkpoint),
         ('the deploy checkpoint', out),
         ('the deploy config written beside it (its name with .py)',
          out_cfg)),
        hint='give the deploy checkpoint a new name ending in .pth')
    # The checkpoint is a PyTorch file whatever its name: OUT ``x.onnx``
    # would be read by infer.py as a broken ONNX model.
    # After the check above, which names the checkpoint given as OUT.
    refuse_other_suffix(out, CHECKPOINT_SUFFIXES, 'OUT',
                        'the deploy checkpoint is written in PyTorch format')
    for path in (out, out_cfg):
        refuse_folder(path)
        if osp.exists(path) and not overwrite:
            raise FileExistsError(
                f'{path} exists; pass --overwrite to replace it.')
        # A path through a file failed (a traceback) only when written,
        # after the parity check.
        check_output_file(path, 'OUT')
    cfg = load_config(config)
    refuse_deploy_config(cfg, config)
    # Built first: a model without a deploy form (EGE-UNet, UNet ...) was
    # refused only after the parity check, as a misspelt config key.
    dep_cfg = deploy_config(cfg)
    try:
        # The scope is set for the build only (so below): the caller's
        # default scope is left as it was.
        with build_scope(cfg):
            plain = MODELS.build(dep_cfg.model)
    except TypeError as err:
        if "argument 'deploy'" not in str(err):
            raise
        raise UserError(
            f'{config} builds a model without a re-parameterised form '
            f'({err}); reparameterize.py is for DSNet models: use its '
            'trained checkpoint as it is') from None
    with build_scope(cfg):
        model = MODELS.build(cfg.model)
    # Before any input is made: the float64 parity check's batch of 2 at
    # ``shape`` (its largest pass, of the model as trained) too large for
    # the memory left fails in the allocator or gets the process killed.
    check_forward_memory(model.eval(), shape, images=2,
                         dtype=torch.float64)
    # On a small input some weights meet only the zero padding: a fold
    # that broke them would pass the check (7e-16 on 2x2).
    plain.eval()
    from .deployable import input_size_of, refusing_input_size
    with reporting_out_of_memory(shape), \
            refusing_input_size(shape, config, input_size_of(cfg)):
        unseen = convolutions_not_seen(plain, torch.zeros(1, 3, *shape))
    if unseen:
        raise UserError(
            f'--shape {shape[0]} {shape[1]} is too small for the parity '
            'check: on it, weights of '
            f'{counted(len(unseen), "convolution")} '
            f'({first_few(unseen, 3)}) meet only the zero padding, so a '
            'wrong re-parameterisation of them would pass; give a larger '
            '--shape (the default 256 256 meets them all)')
    # The deploy config is this config: weights trained at another input
    # size would be written beside a config that runs them at this one.
    from ..apis.released_model import (check_trained_input_size,
                                       check_trained_model)
    check_trained_input_size(
        cfg, config, checkpoint,
        advice='give the training config it was trained with')
    # So would weights trained in another network (other dilations): they
    # load strictly, and the parity check compares that network with its
    # own fold.
    check_trained_model(
        cfg, config, checkpoint,
        advice='give the training config it was trained with')
    # Strictly, into the training-mode model of ``config``: weights that do
    # not fit would pass the parity check below as a wrong model.
    source = load_checkpoint_strictly(
        model, checkpoint, config,
        hint='Give the training config the checkpoint was trained with.')
    model.eval()
    params_before = sum(p.numel() for p in model.parameters())
    # The fold is done in float64 (then stored as float32), and checked in
    # float64, where it must be exact up to ``atol``. In float32 a trained
    # network's own rounding noise (float32 vs float64 logits) can exceed
    # 1e-5, and the folded and the trained network each round their own
    # way: their float32 difference reached twice that noise floor on
    # random inputs of a correct fold. So the folded network's float32
    # logits are judged against its own float64 ones, up to four times the
    # trained network's noise floor (and always up to ``atol``), and the
    # float32 difference between the two networks is reported. The inputs
    # are seeded: one command always gives one verdict, and the caller's
    # random state is left as it was.
    inputs = torch.randn(2, 3, *shape, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(0))
    # Out of memory all the same (the estimate counts tensors alone): said
    # in one line, nothing written.
    with torch.no_grad(), reporting_out_of_memory(shape):
        model64 = copy.deepcopy(model).double()
        ref64 = model64(inputs, mode='tensor')
        ref32 = model(inputs.float(), mode='tensor')
        deployed64 = reparameterize_model(model64)
        dep64 = deployed64(inputs, mode='tensor')
        exact_diff = float((dep64 - ref64).abs().max())
        deployed = deployed64.float()
        dep32 = deployed(inputs.float(), mode='tensor')
    fp32_diff = float((dep32 - ref32).abs().max())
    fold_rounding = float((dep32.double() - dep64).abs().max())
    noise_floor = float((ref32.double() - ref64).abs().max())
    # within(): a NaN difference is never above a tolerance, and a fold
    # that made NaN or inf logits must not pass.
    if not within(exact_diff, atol):
        raise ParityError(f'Re-parameterised logits differ by '
                          f'{_difference(exact_diff)}, more than {atol:g}, '
                          f'in float64; not writing {out}.')
    if not within(fold_rounding, max(atol, 4 * noise_floor)):
        raise ParityError(f'Re-parameterised float32 logits differ from '
                          f'their float64 form by '
                          f'{_difference(fold_rounding)}, more than four '
                          f'times the trained network\'s float32 noise '
                          f'floor {noise_floor:.3g}; not writing {out}.')
    plain.load_state_dict(deployed.state_dict(), strict=True)
    plain.eval()
    with torch.no_grad(), reporting_out_of_memory(shape):
        plain_diff = float(
            (plain(inputs.float(), mode='tensor') - dep32).abs().max())
    if not within(plain_diff, atol):
        raise ParityError(f'The deploy config does not reproduce the model '
                          f'(max diff {_difference(plain_diff)}).')
    buffer = io.BytesIO()
    torch.save(dict(state_dict=deployed.state_dict(),
                    meta=deploy_checkpoint_meta(source, checkpoint)), buffer)
    # Both or neither: a failure between two writes left the new weights
    # beside the previous run's config under --overwrite.
    # Without ``overwrite``, checked again at the rename (a second run with
    # the same outputs).
    atomic_write_together([(buffer.getvalue(), out),
                           (dep_cfg.dump(), out_cfg)],  # the config's text
                          overwrite)
    return dict(
        max_abs_diff=fp32_diff, max_abs_diff_float64=exact_diff,
        float32_noise_floor=noise_floor,
        deploy_config_max_abs_diff=plain_diff,
        params=params_before,
        params_deployed=sum(p.numel() for p in deployed.parameters()),
        checkpoint=out, config=out_cfg)
