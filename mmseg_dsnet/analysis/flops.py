"""Count a model's FLOPs and parameters.

mmseg 1.2.2's ``get_flops.py`` passes both ``input_shape`` and ``inputs`` and
always fails on mmengine 0.10.7; :func:`get_flops` replaces it.

Counting convention: mmengine's ``FlopAnalyzer`` counts ONE fused
multiply-add as ONE FLOP (the thop/fvcore convention of the lesion
segmentation literature, i.e. these "FLOPs" are MACs). Convolutions,
linear/matmul, normalisation layers, upsampling and adaptive pooling are
counted; element-wise activations, additions and multiplications are not.
The network is counted from the input tensor to the decode head's logits
(``EncoderDecoder._forward``), in eval mode, at batch 1.

A second figure, ``flops_weight_layers``, keeps only convolutions, linear
layers and matrix products: the count the lightweight-lesion papers quote
(thop ignores GroupNorm/LayerNorm and resizes), so published budgets of
EGE-UNet and MALUNet compare with it. DSNet's budget (0.287 G) is checked
against the full count.
"""
import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.print_helper import complexity_stats_table
from mmseg.registry import MODELS

from ..engine.preflight import build_scope, check_config_sets, load_config
from ..models.utils import reparameterize_model
from ..utils.errors import UserError
from ..utils.messages import config_name
from ..utils.memory import (check_forward_memory, is_out_of_memory,
                            reporting_out_of_memory)

CONVENTION = ('1 multiply-add = 1 FLOP (mmengine FlopAnalyzer, as thop); '
              'convs, linear, norms, upsampling counted; element-wise ops not')
# Operators of weight layers and matrix products (the papers' thop count).
WEIGHT_LAYER_OPS = ('conv', 'linear', 'matmul', 'bmm', 'einsum', 'addmm')


# The size every shipped config runs at; a --shape the model refuses is told
# from a model that fails at any size by a second try at it.
PROBE_SHAPE = (256, 256)


def _runs_at(model, shape):
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, *shape))
    except Exception:  # noqa: BLE001  (any failure: the model does not run)
        return False
    return True


def count(model, shape, show_table=False, shape_source=None):
    """FLOPs and params of ``model`` (eval mode) at input ``(1, 3, *shape)``.

    Args:
        shape_source (str, optional): Where ``shape`` came from, for the
            message of a size the model refuses. Default: None
            (``--shape H W``).

    Raises:
        UserError: The model cannot take a ``shape`` input (e.g. mmseg's UNet
            asserts a size divisible by its downsampling rate) but runs at
            :data:`PROBE_SHAPE`; a model that fails there too keeps its
            traceback (a bug, not the size). The count ran out of memory
            (:func:`~mmseg_dsnet.utils.memory.reporting_out_of_memory`):
            that is no size the model refuses.
    """
    with reporting_out_of_memory(shape, source=shape_source):
        return _count(model, shape, show_table, shape_source)


def _count(model, shape, show_table, shape_source):
    """:func:`count`'s figures; an out-of-memory failure passes."""
    inputs = torch.randn(1, 3, *shape)
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, (inputs, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        try:
            by_operator = analyzer.by_operator()
        except (AssertionError, RuntimeError, ValueError) as err:
            if is_out_of_memory(err) or tuple(shape) == PROBE_SHAPE or \
                    not _runs_at(model, PROBE_SHAPE):
                raise
            reason = (str(err).strip().splitlines() or
                      [type(err).__name__])[-1].rstrip('.')
            raise UserError(
                f'{shape_source or f"--shape {shape[0]} {shape[1]}"}: the '
                f'model cannot take a {shape[0]}x{shape[1]} input '
                f'({reason}); give another --shape (multiples of 32 suit '
                'the shipped configs)') from err
        result = dict(
            flops=int(analyzer.total()),
            flops_weight_layers=int(
                sum(by_operator.get(op, 0) for op in WEIGHT_LAYER_OPS)),
            params=int(parameter_count(model)['']),
            table=complexity_stats_table(analyzer, show_param_shapes=False)
            if show_table else '')
    return result


def build_model(cfg):
    with build_scope(cfg):
        model = MODELS.build(cfg.model)
    model.eval()
    return model


# Parts of ``cfg.model`` the count never runs: the counted input is a
# --shape tensor given straight to the network (``EncoderDecoder._forward``),
# one pass, so a key under them would change nothing while the printed
# options said it had.
NOT_COUNTED = dict(
    data_preprocessor='the data preprocessor is not counted (the network '
    'is given a --shape tensor)',
    test_cfg='the test-time settings are not counted (the figures are one '
    'forward pass of the network on a --shape tensor, whatever the '
    'inference mode: slide inference runs it once per window)',
    train_cfg='the training settings are not counted (the figures are one '
    'forward pass of the network in eval mode)')


def option_keys(cfg_options, levels=None):
    """The dotted keys of ``--cfg-options``, dict values taken apart:
    ``model=dict(test_cfg=dict(mode='slide'))`` sets what
    ``model.test_cfg.mode`` sets.

    Args:
        cfg_options (dict | None): The parsed ``--cfg-options``.
        levels (int | None): How many levels of dict values to take
            apart; None for all.

    Returns:
        list[str]: E.g. ``['model.test_cfg.mode',
        'test_dataloader.batch_size']``.
    """
    keys = []
    for key, value in (cfg_options or {}).items():
        if isinstance(value, dict) and value and levels != 0:
            keys.extend(f'{key}.{sub}' for sub in option_keys(
                value, None if levels is None else levels - 1))
        else:
            keys.append(key)
    return keys


def check_model_options(cfg_options):
    """Refuse ``--cfg-options`` keys outside ``model``: only ``cfg.model`` is
    counted, and the config's variables (``crop_size``, ``widths`` ...) were
    resolved when it was read, so such a key would change nothing and the
    figures of the unchanged model would be printed as if it had. Keys under
    the parts of the model that are not counted (:data:`NOT_COUNTED`) are
    refused alike.

    Raises:
        UserError: Naming the first such key.
    """
    for key in option_keys(cfg_options, levels=1):
        if key != 'model' and not key.startswith('model.'):
            raise UserError(
                f'--cfg-options {key}: only the model is counted, so this '
                'key would change nothing; set model.* keys (the input size '
                'is --shape)')
        part = key.split('.')[1] if '.' in key else None
        if part in NOT_COUNTED:
            raise UserError(
                f'--cfg-options {key}: {NOT_COUNTED[part]}, so this key '
                'would change nothing; give the input size with --shape')


def get_flops(config,
              shape=(256, 256),
              cfg_options=None,
              show_table=False,
              count_deployed=True):
    """Count the model as trained and, when it can be re-parameterised, as
    deployed.

    Args:
        config (str | Config): The config to count.
        shape (tuple[int, int] | None): The input ``(H, W)``; None for
            the size the config runs the model at (its test ``Resize``,
            :func:`~mmseg_dsnet.deploy.deployable.input_size_of`), refused
            for a config whose test pipeline has no ``Resize`` to a
            scale, whose test ``Resize`` keeps the aspect ratio or whose
            model slides windows. Default: (256, 256).
        cfg_options (dict, optional): ``model.*`` overrides.
        show_table (bool): Also return the per-module table.
        count_deployed (bool): Also count the re-parameterised model (a
            second trace); False where only the model's own figures are
            wanted. Default: True.

    Returns:
        dict: ``flops``, ``params`` (raw numbers), ``input_shape``,
        ``config_input_size`` (the size the config runs the model at, so
        that figures at another ``shape`` say so; None for a config that
        runs it at no one size, :func:`~mmseg_dsnet.deploy.deployable.
        no_one_input_size`), ``convention``, ``cfg_options`` (the
        overrides of the counted model,
        only when some were given) and, for re-parameterisable models,
        ``deploy`` (unless ``count_deployed`` is False) with the deployed
        model's ``flops`` and ``params``; for
        a deploy config (``deploy=True``), whose model is the deployed one,
        ``deploy_config`` True instead of ``deploy``.
    """
    check_model_options(cfg_options)
    cfg = load_config(config)
    check_config_sets(cfg, config, ('model', ),
                      'the count builds the model of the config; give a '
                      'model or training config such as '
                      'configs/dsnet/dsnet_isic2017.py')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    from ..deploy.deployable import input_size_of, no_one_input_size
    # A config that keeps the aspect ratio or slides windows runs the
    # network at no one size: its Resize scale was taken for it (mmseg's
    # DRIVE UNet counted at 565x584, which it never sees: 64x64 windows).
    why = no_one_input_size(cfg)
    own_size = None if why else tuple(input_size_of(cfg))
    if shape is None and why:
        name = config_name(cfg, str(config))
        raise UserError(f'config {name} runs its network at no one input '
                        f'size ({why}); give the size to count at with '
                        '--shape H W')
    source = None if shape is not None else (
        f"the config's input size {own_size[0]}x{own_size[1]} (its test "
        'Resize)')
    shape = own_size if shape is None else tuple(shape)
    model = build_model(cfg)
    from ..deploy.deploy_checkpoint import (check_whole_deploy_form,
                                            is_deploy_config)
    if is_deploy_config(cfg):
        check_whole_deploy_form(cfg, model, getattr(cfg, 'filename', None)
                                or str(config))
    # Before the input of the count is made: a pass too large for the
    # memory left fails in the allocator or gets the process killed.
    check_forward_memory(model, shape, source=source)
    result = count(model, shape, show_table, source)
    result.update(input_shape=list(shape),
                  config_input_size=own_size and list(own_size),
                  convention=CONVENTION)
    if cfg_options:
        result['cfg_options'] = dict(cfg_options)
    if is_deploy_config(cfg):
        # Its model is the re-parameterised one: the figures were printed
        # as the model's, above a "deployed" copy of themselves.
        result['deploy_config'] = True
    elif count_deployed and any(
            hasattr(m, 'reparameterize') for m in model.modules()):
        dep = count(reparameterize_model(model), shape, show_table)
        result['deploy'] = dep
    return result
