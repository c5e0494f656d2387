"""Building the model of a config, in its scope, and its trainable form."""
import contextlib

from mmseg_dsnet.utils.errors import ModelArgumentError
from mmseg_dsnet.utils.messages import config_name, did_you_mean


def check_model_builds(cfg):
    """Build ``cfg.model`` once and drop it, so that a model argument out of
    range or a misspelt type is refused before the runner makes its
    ``<work_dir>/<timestamp>/`` folder (log, dumped config): a refused run
    leaves nothing that looks like a run. The runner re-seeds before it
    builds the model, so this build does not change the run.

    Args:
        cfg (Config): The merged config, with ``model`` and optionally
            ``default_scope``.

    Returns:
        nn.Module: The model built (its initial weights not yet set).
    """
    from mmengine.registry import MODELS, DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        return MODELS.build(cfg.model)


def check_pretrained_checkpoints(cfg, model=None):
    """Refuse a ``Pretrained`` ``init_cfg`` checkpoint (or a backbone's
    ``pretrained``) that is missing or does not fit its module, before the
    run's folder is made, and log how much of a module a partial one loads
    (:func:`~mmseg_dsnet.engine.checkpoint_match.check_pretrained_inits`).

    Args:
        cfg (Config): The merged config.
        model (nn.Module, optional): ``cfg.model`` built (as
            :func:`check_model_builds` returns it); built when not given.
    """
    from mmengine.logging import print_log
    from ..checkpoint_match import check_pretrained_inits
    if model is None:
        model = check_model_builds(cfg)
    for note in check_pretrained_inits(model, getattr(cfg, 'filename', None)):
        print_log(note, logger='current')


def check_load_from(cfg, model=None):
    """Refuse the ``load_from`` checkpoint a new run starts from when it
    does not fit the model (as the Runner's ``StrictCheckpointHook``
    would) or, loaded strictly, was trained in another network
    (:func:`~mmseg_dsnet.apis.released_model.check_trained_model`: a
    dilation differs), before the runner makes the run's log folder and
    dumps its config. A resumed run is checked by ``--resume``'s own
    check; ``load_from_strict=False`` keeps the partial-load rule only.

    Args:
        cfg (Config): The merged config.
        model (nn.Module, optional): ``cfg.model`` built (as
            :func:`check_model_builds` returns it); built when not given.
    """
    filename = cfg.get('load_from')
    if not filename or cfg.get('resume'):
        return
    from mmengine.runner.checkpoint import _load_checkpoint

    from ...apis.released_model import check_trained_model
    from ..checkpoint_match import check_checkpoint_matches
    if model is None:
        model = check_model_builds(cfg)
    config = config_name(cfg)
    strict = bool(cfg.get('load_from_strict', True))
    checkpoint = _load_checkpoint(filename, map_location='cpu')
    check_checkpoint_matches(model, checkpoint, config, filename, strict)
    if strict:
        check_trained_model(
            cfg, config, filename,
            'give the config it was trained with (to start a training from '
            'these weights in this network on purpose, pass '
            '--partial-checkpoint or set load_from_strict=False)',
            loaded=checkpoint)


@contextlib.contextmanager
def build_scope(cfg=None):
    """mmseg's registries (with ours) as mmengine's default scope for the
    builds inside the ``with`` block only.

    ``register_all_modules(init_default_scope=True)`` set the scope for
    the whole process: a Python caller's later builds by name (another
    OpenMMLab library's, or with no scope) then looked in mmseg's
    registries first. The package's functions build under this instead;
    command lines may still set the scope for their whole run.

    Args:
        cfg (Config, optional): A config whose ``default_scope`` is used;
            ``'mmseg'`` without one.
    """
    from mmengine.registry import DefaultScope
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    scope = (cfg.get('default_scope') if cfg is not None else None)
    with DefaultScope.overwrite_default_scope(scope or 'mmseg'):
        yield


def deploy_form_parts(model_cfg, path='model'):
    """Dotted paths of the parts of a model config set to ``deploy=True``
    (the re-parameterised form), e.g. ``['model.backbone.deploy']``.

    Args:
        model_cfg (dict | list): A model config, or a part of one.
        path (str): Its dotted path, for the result. Default: ``'model'``.
    """
    found = []
    if isinstance(model_cfg, dict):
        for key, value in model_cfg.items():
            if key == 'deploy' and value is True:
                found.append(f'{path}.deploy')
            else:
                found += deploy_form_parts(value, f'{path}.{key}')
    elif isinstance(model_cfg, (list, tuple)):
        for index, value in enumerate(model_cfg):
            found += deploy_form_parts(value, f'{path}[{index}]')
    return found


def check_trainable_model(cfg, config=None, action='train'):
    """Refuse to train the re-parameterised form of a model (a deploy config
    written by ``tools/deployment/reparameterize.py``, or ``deploy=True``
    given by hand): it has no BatchNorm, one plain kernel instead of the
    difference branches and no deep-supervision classifiers, so training it
    trains another network than the config's, without an error.

    Args:
        cfg (Config | dict): The merged config.
        config (str, optional): Its file, named first in the message.
        action (str): What the calling tool does with a training config,
            as the verb of the advice (``'train'``, ``'profile'``), so
            that a profiler is not told to "train the training config".
            Default: ``'train'``.

    Raises:
        ModelArgumentError: A part of ``cfg.model`` has ``deploy=True``.
    """
    parts = deploy_form_parts(cfg.get('model') or {})
    if parts:
        # Re-parameterising follows training only.
        then = (' and re-parameterise its checkpoint with '
                'tools/deployment/reparameterize.py'
                if action == 'train' else '')
        raise ModelArgumentError(
            (f'{config}: ' if config else '') +
            f'{", ".join(p + "=True" for p in parts)}: this config builds '
            'the re-parameterised (inference) form of the model, without '
            'its BatchNorms, difference branches and deep-supervision '
            'classifiers, which cannot be trained as the model; '
            f'{action} the training config (deploy=False){then}')


def _positive_pair(value):
    """Whether ``value`` is two whole numbers of at least 1."""
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1
        for v in value)


def check_inference_mode(model, config=None):
    """Refuse a ``model.test_cfg`` mmseg's ``EncoderDecoder`` cannot score
    with: a ``mode`` other than ``'whole'`` or ``'slide'`` (``'slid'``), no
    ``test_cfg``, or ``'slide'`` without a ``crop_size`` and a ``stride``
    of two whole numbers each, or with a stride longer than the window
    (pixels no window covers). mmseg asserts these only when it scores
    the first image: ``train.py`` would train until its first
    validation, then stop with a traceback.

    Args:
        model (nn.Module): The built model (a TTA model's ``module`` is
            checked); other segmentors than ``EncoderDecoder`` pass.
        config (str, optional): The config file, named first in the
            message.

    Raises:
        ModelArgumentError: Naming the setting and what to set.
    """
    from mmseg.models import EncoderDecoder
    model = getattr(model, 'module', model)
    if not isinstance(model, EncoderDecoder):
        return
    where = f'{config}: ' if config else ''
    test_cfg = model.test_cfg
    mode = test_cfg.get('mode', 'whole') if test_cfg is not None else None
    problem = None
    if test_cfg is None:
        problem = 'model.test_cfg is None'
    elif mode not in ('whole', 'slide'):
        problem = (f'model.test_cfg.mode={mode!r} is neither '
                   "'whole' nor 'slide'")
    elif mode == 'slide':
        crop, stride = test_cfg.get('crop_size'), test_cfg.get('stride')
        if not (_positive_pair(crop) and _positive_pair(stride)):
            problem = (f"model.test_cfg.mode='slide' needs crop_size and "
                       'stride of two whole numbers of at least 1 each '
                       f'(window and step, height and width), got '
                       f'crop_size={crop!r} stride={stride!r}')
        elif stride[0] > crop[0] or stride[1] > crop[1]:
            problem = (f'model.test_cfg.stride={tuple(stride)} is longer '
                       f'than crop_size={tuple(crop)}: pixels between the '
                       'windows would be scored by none')
    if problem:
        raise ModelArgumentError(
            f'{where}{problem}; mmseg scores images whole '
            "(model.test_cfg=dict(mode='whole')) or in overlapping windows "
            "(mode='slide' with crop_size and stride), and would stop at "
            'the first image it validates or tests')


def check_optimizer_builds(cfg, model, config=None):
    """Build ``cfg.optim_wrapper`` over ``model`` once, and
    ``cfg.param_scheduler`` on it (:func:`check_schedulers_build`), and
    drop them, so that a value torch's optimizer refuses (``lr=-0.1``,
    ``betas=(1.5, 0.9)``, a negative ``weight_decay``), a misspelt
    argument or a scheduler mmengine refuses is reported before the
    runner makes the work dir: the runner builds both only when the
    training starts, where torch's ``ValueError`` is a traceback.

    Args:
        cfg (Config): The merged config, with ``optim_wrapper``.
        model (nn.Module): ``cfg.model`` built (as
            :func:`check_model_builds` returns it).
        config (str, optional): The config file, named first in the
            message.

    Raises:
        ModelArgumentError: Naming ``optim_wrapper`` and torch's reason,
            a ``paramwise_cfg`` key that would change nothing
            (:func:`check_paramwise_keys`) or a scheduler that cannot be
            built.
    """
    import copy
    import logging

    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    logger = MMLogger.get_current_instance()
    level = logger.level
    # mmengine logs each parameter's paramwise settings; the runner's
    # build logs them once.
    logger.setLevel(logging.WARNING)
    try:
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
            wrapper = build_optim_wrapper(model,
                                          copy.deepcopy(cfg.optim_wrapper))
    except ValueError as err:
        raise ModelArgumentError(
            f'{config + ": " if config else ""}optim_wrapper: {err}. '
            'Nothing was started.') from None
    finally:
        logger.setLevel(level)
    # An OptimWrapperDict (one optimizer per part) has no one optimizer.
    optimizer = getattr(wrapper, 'optimizer', None)
    check_paramwise_keys(cfg, model, getattr(optimizer, 'defaults', None),
                         config)
    # On this wrapper, dropped with it: the schedulers set its rates.
    check_schedulers_build(cfg, wrapper, config)


def check_schedulers_build(cfg, wrapper, config=None):
    """Build ``cfg.param_scheduler`` on ``wrapper`` (a throwaway optimizer
    wrapper: the schedulers change its rates) as mmengine's runner does,
    so that a scheduler it refuses (a misspelt ``type`` or argument,
    ``begin`` not below ``end``) is reported before the runner makes the
    work dir, not once the training starts.

    The runner gives a scheduler without ``end`` the loop's length, and
    converts epochs to iterations by the loader's length: here ``end`` is
    given only where it does not depend on that length (epochs of an
    epoch loop, iterations of an iteration loop), and an epoch counts as
    one iteration; neither changes which arguments are refused.

    Args:
        cfg (Config): The merged config.
        wrapper (OptimWrapper | OptimWrapperDict): ``cfg.optim_wrapper``
            built, not the run's.
        config (str, optional): The config file, named first in the
            message.

    Raises:
        ModelArgumentError: Naming the scheduler (its place and type)
            and mmengine's reason.
    """
    import copy

    from mmengine.optim import OptimWrapperDict
    from mmengine.registry import PARAM_SCHEDULERS, DefaultScope
    from mmengine.runner import IterBasedTrainLoop

    from .config import train_loop_class
    schedulers = cfg.get('param_scheduler')
    if schedulers is None:
        return
    train = cfg.get('train_cfg') or {}
    by_iter = train_loop_class(cfg) is IterBasedTrainLoop
    # The runner's default end: max_epochs, or max_iters.
    ends = {not by_iter: train.get('max_iters' if by_iter
                                   else 'max_epochs')}
    where = f'{config + ": " if config else ""}param_scheduler'
    if isinstance(wrapper, OptimWrapperDict):
        parts = [(f'{where}.{name}', part,
                  schedulers[name] if isinstance(schedulers, dict)
                  and 'type' not in schedulers else schedulers)
                 for name, part in wrapper.items()]
    else:
        parts = [(where, wrapper, schedulers)]
    for where, optimizer, part_schedulers in parts:
        if not isinstance(part_schedulers, (list, tuple)):
            part_schedulers = [part_schedulers]
        for index, scheduler in enumerate(part_schedulers):
            if not isinstance(scheduler, dict):
                continue
            scheduler = copy.deepcopy(scheduler)
            end = ends.get(bool(scheduler.get('by_epoch', True)))
            if end is not None:
                scheduler.setdefault('end', end)
            try:
                with DefaultScope.overwrite_default_scope(
                        cfg.get('default_scope')):
                    PARAM_SCHEDULERS.build(
                        scheduler, default_args=dict(optimizer=optimizer,
                                                     epoch_length=1))
            except (KeyError, TypeError, ValueError,
                    AssertionError) as err:
                reason = err.args[0] if isinstance(err, KeyError) and \
                    err.args else err
                raise ModelArgumentError(
                    f'{where}[{index}] ({scheduler.get("type")}): '
                    f'{reason}. Nothing was started.') from None


#: The ``paramwise_cfg`` keys mmengine's ``DefaultOptimWrapperConstructor``
#: reads; it ignores any other without a word.
PARAMWISE_KEYS = ('custom_keys', 'bias_lr_mult', 'bias_decay_mult',
                  'norm_decay_mult', 'dwconv_decay_mult', 'flat_decay_mult',
                  'bypass_duplicate', 'dcn_offset_lr_mult')


def check_paramwise_keys(cfg, model, optimizer_keys=None, config=None):
    """Refuse an ``optim_wrapper.paramwise_cfg`` key mmengine's default
    constructor does not read (``norm_decay_mul``), a ``custom_keys``
    name that is part of no parameter's name (``backbnoe``), or a
    setting of a custom key that neither mmengine nor the optimizer reads
    (``lr_mul``: torch keeps it in the parameter group unused): each is
    ignored where it is not refused, and the run would train those
    parameters at the base rate and decay without a word.

    Args:
        cfg (Config): The merged config, with ``optim_wrapper``.
        model (nn.Module): ``cfg.model`` built.
        optimizer_keys (Iterable[str], optional): The settings of a
            parameter group the optimizer reads (its ``defaults``); the
            custom keys' settings are not checked without them.
        config (str, optional): The config file, named first in the
            message.

    Raises:
        ModelArgumentError: Naming the key and the closest known one.
    """
    wrapper = cfg.get('optim_wrapper') or {}
    paramwise = wrapper.get('paramwise_cfg')
    # Another constructor reads its own keys.
    if not isinstance(paramwise, dict) or wrapper.get('constructor') not in (
            None, 'DefaultOptimWrapperConstructor'):
        return
    where = f'{config + ": " if config else ""}optim_wrapper.paramwise_cfg'
    for key in paramwise:
        if key not in PARAMWISE_KEYS:
            hint = did_you_mean(key, PARAMWISE_KEYS)
            raise ModelArgumentError(
                f'{where}.{key} is not read by mmengine\'s optimizer '
                f'constructor, which reads {", ".join(PARAMWISE_KEYS)}'
                f'{hint} (it would change nothing). Nothing was started.')
    # mmengine matches a key within '<module>.<parameter>' ('.<name>' at
    # the top level).
    names = [name if '.' in name else f'.{name}'
             for name, _ in model.named_parameters()]
    custom_keys = paramwise.get('custom_keys') or {}
    for key in custom_keys:
        if not any(key in name for name in names):
            parts = sorted({part for name in names
                            for part in name.split('.') if part})
            hint = did_you_mean(key, parts)
            raise ModelArgumentError(
                f'{where}.custom_keys {key!r} is part of the name of no '
                f'parameter of the model{hint} (its settings would apply '
                'to none). Nothing was started.')
    if optimizer_keys is None:
        return
    read = ('lr_mult', 'decay_mult', *optimizer_keys)
    for key, settings in custom_keys.items():
        for setting in settings or {}:
            if setting not in read:
                hint = did_you_mean(setting, read)
                raise ModelArgumentError(
                    f'{where}.custom_keys.{key}.{setting} is read neither '
                    "by mmengine's constructor (lr_mult, decay_mult) nor "
                    f'by the optimizer{hint} (it would change nothing). '
                    'Nothing was started.')
