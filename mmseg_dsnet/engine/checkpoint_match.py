"""Strict checkpoint loading: the keys and shapes of a checkpoint must be
those of the model, or the load is refused naming the config, the checkpoint
and the first differing keys.

mmengine loads ``load_from``, ``--resume`` and ``load_checkpoint`` with
``strict=False``: a checkpoint of another model leaves a randomly initialised
network behind a warning among hundreds of log lines. Every tool and API of
this project goes through :func:`check_checkpoint_matches` instead (the
Runner through :class:`~mmseg_dsnet.engine.hooks.StrictCheckpointHook`).
"""
import os.path as osp
import re
from collections import OrderedDict

from mmengine.model import is_model_wrapper

from mmseg_dsnet.utils.config_diff import UNREAD
from mmseg_dsnet.utils.messages import first_few

#: Key revisions mmengine applies before loading (DDP's ``module.`` prefix).
REVISE_KEYS = ((r'^module\.', ''), )

#: How many keys of each kind an error message names.
SHOWN_KEYS = 5

#: How to load a partial checkpoint on purpose, for the error message.
PARTIAL_HINT = ('To load a partial checkpoint on purpose (e.g. backbone '
                'only), set load_from_strict=False in the config (or pass '
                '--partial-checkpoint to tools/train.py).')


#: What to do about a checkpoint trained in another network than the
#: config builds, for the message.
TRAINED_CONFIG_HINT = ('give the config it was trained with (the one its '
                       'training dumped into its work dir)')


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's weights do not fit the model of the config."""


class TrainedNetworkError(CheckpointMismatchError):
    """A checkpoint's weights fit the model, but were trained in a network
    that differs in a setting holding no weights (a dilation)."""


class NonFiniteCheckpointError(CheckpointMismatchError):
    """A checkpoint whose weights hold NaN or infinite values (a diverged
    training, a damaged file): no model computes anything with them."""


def state_dict_of(checkpoint, revise_keys=REVISE_KEYS):
    """The weights of a loaded checkpoint with mmengine's key revisions.

    Args:
        checkpoint (dict): A loaded checkpoint: ``{'state_dict': ...}`` as
            mmengine writes it, or a bare state dict.
        revise_keys (Sequence[tuple[str, str]]): ``(pattern, replacement)``
            regular expressions applied to every key.

    Returns:
        OrderedDict | None: The state dict, or None if the checkpoint holds
        none.
    """
    if not isinstance(checkpoint, dict):
        return None
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        return None
    revised = OrderedDict()
    for key, value in state.items():
        for pattern, replacement in revise_keys:
            key = re.sub(pattern, replacement, key)
        revised[key] = value
    return revised


def compare_state_dicts(expected, given):
    """Keys missing from ``given``, unexpected in it, and of another shape.

    BatchNorm's ``num_batches_tracked`` may be absent (torch fills it in for
    checkpoints written before it existed).

    Args:
        expected (dict): The model's ``state_dict()``.
        given (dict): The checkpoint's state dict.

    Returns:
        tuple[list[str], list[str], list[str]]: Missing keys, unexpected keys,
        and ``'key: checkpoint (shape), model (shape)'`` for shape
        mismatches, each in the model's (or checkpoint's) order.
    """
    missing = [
        k for k in expected
        if k not in given and not k.endswith('num_batches_tracked')
    ]
    unexpected = [k for k in given if k not in expected]
    mismatched = []
    for key, value in expected.items():
        other = given.get(key)
        shape = tuple(getattr(value, 'shape', ()))
        other_shape = tuple(getattr(other, 'shape', ()))
        if other is not None and other_shape != shape:
            mismatched.append(f'{key}: checkpoint {other_shape}, model '
                              f'{shape}')
    return missing, unexpected, mismatched


def non_finite_tensors(state, keys=None):
    """``'key (n of m values)'`` for every floating tensor of ``state``
    (among ``keys``, when given) that holds NaN or infinite values.

    Args:
        state (dict): A state dict.
        keys (Container[str], optional): The keys to look at (those that
            are loaded). Default: all.

    Returns:
        list[str]: One entry per such tensor, in ``state``'s order.
    """
    import torch
    found = []
    for key, value in state.items():
        if keys is not None and key not in keys:
            continue
        if not isinstance(value, torch.Tensor) or \
                not value.is_floating_point():
            continue
        bad = int(value.numel() - torch.isfinite(value).sum())
        if bad:
            found.append(f'{key} ({bad} of {value.numel()} values)')
    return found


def _first(items, what):
    """``'<count> <what> (<first few>, ... (<n> more))'``; ``what`` is
    ``(singular, plural)``."""
    noun = what[0] if len(items) == 1 else what[1]
    return f'{len(items)} {noun} ({first_few(items, SHOWN_KEYS)})'


def loaded_segmentor(model):
    """The segmentor inside ``model``: a DDP wrapper and a test-time
    augmentation model are unwrapped, also both (``dist_test.sh --tta``:
    DDP around the TTA model, whose keys would be compared with the
    checkpoint's as ``module.backbone...`` and every one refused).

    Args:
        model (nn.Module): The runner's model.

    Returns:
        nn.Module: The model whose state dict a checkpoint holds.
    """
    from mmengine.model import BaseTTAModel
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def loadable_keys(expected, given):
    """The keys of ``expected`` that ``given`` holds with the same shape:
    what a non-strict load copies (BatchNorm's ``num_batches_tracked`` left
    out, as it is no weight).

    Args:
        expected (dict): The model's ``state_dict()``.
        given (dict): The checkpoint's state dict.

    Returns:
        tuple[list[str], int]: Those keys, and the number of the model's
        keys they are counted against.
    """
    keys = [k for k in expected if not k.endswith('num_batches_tracked')]
    loaded = [
        k for k in keys if k in given and tuple(
            getattr(given[k], 'shape', ())) == tuple(
                getattr(expected[k], 'shape', ()))
    ]
    return loaded, len(keys)


def other_form_note(model, checkpoint, filename=None, deploy_refused=None):
    """What to give instead when a checkpoint and a model that do not match
    are of the two forms of a network: a deploy checkpoint
    (``meta['deploy']``, as ``reparameterize.py`` writes it) for a model
    as trained, or any other checkpoint for a deploy model
    (``deploy=True``); None otherwise.

    Args:
        model (nn.Module): The model (unwrapped).
        checkpoint (dict): The loaded checkpoint.
        filename (str, optional): The checkpoint file, whose deploy config
            ``reparameterize.py`` writes beside it (its name with ``.py``).
        deploy_refused (str, optional): Why the caller cannot use the
            deploy form (``'the deploy form has no BatchNorm layers'``);
            the note then offers the trained form only. Default: None (both
            forms are offered).
    """
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    deploy_checkpoint = isinstance(meta, dict) and meta.get('deploy') is True
    deploy_model = any(getattr(module, 'deploy', False) is True
                       for module in model.modules())
    if deploy_checkpoint and not deploy_model:
        source = meta.get('source_checkpoint')
        origin = ('It is a deploy checkpoint (re-parameterised by '
                  'tools/deployment/reparameterize.py'
                  + (f' from {source}' if source else '') + ')')
        if deploy_refused:
            return (f'{origin}, and {deploy_refused}: give the trained '
                    'checkpoint ' + (source or 'it was re-parameterised '
                                     'from') + ' with this config.')
        written = f'{osp.splitext(filename)[0]}.py' if filename else None
        config = (written if written and osp.isfile(written) else
                  # Moved or never copied with the checkpoint.
                  f'written beside it as {written}, not found there'
                  if written else 'the .py written beside it')
        return (f'{origin}, which loads only into its deploy config '
                f'({config}): give it with that config, or give the trained '
                'checkpoint' + (f' {source}' if source else '')
                + ' with this config.')
    if deploy_model and not deploy_checkpoint and deploy_refused:
        return ('The config builds the deploy (re-parameterised) form '
                f'(deploy=True), and {deploy_refused}: give this checkpoint '
                'with the training config it was trained with.')
    if deploy_model and not deploy_checkpoint:
        return ('The config builds the deploy (re-parameterised) form '
                '(deploy=True), which loads only a deploy checkpoint '
                'written by tools/deployment/reparameterize.py with it: '
                'give that checkpoint, or give this one with the training '
                'config it was trained with.')
    return None


def check_checkpoint_matches(model, checkpoint, config=None, filename=None,
                             strict=True, hint=PARTIAL_HINT, part=None,
                             deploy_refused=None):
    """Raise :class:`CheckpointMismatchError` when ``checkpoint`` does not
    fit ``model``.

    Args:
        model (nn.Module): The model (a DDP wrapper or a test-time
            augmentation model is unwrapped).
        checkpoint (dict): The loaded checkpoint (or bare state dict).
        config (str, optional): The config the model was built from, for
            the message.
        filename (str, optional): The checkpoint file, for the message.
        strict (bool): True: every key and shape must match. False (a
            partial checkpoint on purpose): at least one tensor must match
            by name and shape, and no key the two share may have another
            shape (mmengine skips it with a log warning, and a checkpoint of
            a network of other widths loaded nothing).
        hint (str, optional): What the user can do (a sentence), appended
            to the message of a strict check.
        part (str, optional): How the message names the model
            (``'model.backbone (UNet)'``). Default: ``'the model'``.
        deploy_refused (str, optional): Why the caller cannot use the
            deploy form, for a checkpoint of the other form
            (:func:`other_form_note`). Default: None.

    Returns:
        tuple[int, int]: How many of the model's tensors the checkpoint
        loads, and how many it has (``num_batches_tracked`` left out).

    Raises:
        CheckpointMismatchError: One line naming the config, the checkpoint,
            the counts and the first few keys of each kind.
        NonFiniteCheckpointError: The keys fit, but a loaded tensor holds
            NaN or infinite values (named with their counts).
    """
    # mmengine loads into the wrapped segmentor of both (load_state_dict).
    model = loaded_segmentor(model)
    given = state_dict_of(checkpoint)
    where = f'Checkpoint {filename or "(given)"}'
    part = part or 'the model'
    against = f'{part} of {config}' if config else part
    if given is None:
        raise CheckpointMismatchError(
            f'{where} holds no state dict (found '
            f'{type(checkpoint).__name__}); it cannot be loaded into '
            f'{against}.')
    expected = model.state_dict()
    missing, unexpected, mismatched = compare_state_dicts(expected, given)
    if strict:
        problems = [(missing, ('missing key', 'missing keys')),
                    (unexpected, ('unexpected key', 'unexpected keys')),
                    (mismatched, ('key of another shape',
                                  'keys of another shape'))]
    else:
        # A key of another shape is skipped by mmengine behind a log
        # warning: a checkpoint of another width would load nothing.
        loaded, _ = loadable_keys(expected, given)
        problems = [(mismatched, ('key of another shape',
                                  'keys of another shape')),
                    ([] if loaded or mismatched else list(given),
                     ('key, which is not in the model',
                      'keys, none of which is in the model'))]
    problems = [_first(items, what) for items, what in problems if items]
    if not problems:
        # The keys fit, but NaN weights give NaN logits, which threshold to
        # background everywhere: empty masks and a "passed" parity check
        # (NaN compares False with every tolerance).
        bad = non_finite_tensors(given, keys=expected)
        if bad:
            raise NonFiniteCheckpointError(
                f'{where} holds NaN or infinite values in '
                f'{_first(bad, ("tensor", "tensors"))}: it is the '
                'checkpoint of a diverged training or a damaged file, and '
                'the masks, figures or exports of a model with these '
                'weights would be wrong (NaN logits read as background '
                'everywhere). Use an earlier checkpoint of the run.')
        loaded, total = loadable_keys(expected, given)
        return len(loaded), total
    message = f'{where} does not match {against}: {"; ".join(problems)}. '
    form = other_form_note(model, checkpoint, filename, deploy_refused)
    if form:
        # The hint (a partial load, another training config) does not
        # apply: the two forms hold other tensors of the same network.
        raise CheckpointMismatchError(message + form)
    message += ('Is it a checkpoint of another model, or of the deploy '
                '(re-parameterised) form?')
    if strict and hint:
        message += f' {hint}'
    elif not strict and mismatched:
        message += (' A partial load copies only tensors of the model\'s '
                    'shape, so these layers would keep their initial '
                    'weights; remove those keys from the checkpoint to '
                    'load the rest.')
    raise CheckpointMismatchError(message)


def read_checkpoint(filename, map_location='cpu'):
    """``filename`` loaded as mmengine's loader reads it here: through its
    scheme (:func:`~mmseg_dsnet.compat.enable_safe_loading`), with the
    training config's module settings carried to the modules it loads into
    (:func:`~mmseg_dsnet.models.utils.strict_loading.
    carry_training_settings`); what :func:`load_checkpoint_strictly` takes
    as ``loaded``.

    Args:
        filename (str): The checkpoint (any scheme mmengine reads).
        map_location (str): Where to put the tensors. Default: ``'cpu'``.

    Returns:
        dict: The loaded checkpoint.
    """
    from mmengine.runner.checkpoint import _load_checkpoint
    return _load_checkpoint(filename, map_location=map_location)


def read_checkpoint_and_training_config(filename, map_location='cpu'):
    """``filename`` loaded as :func:`read_checkpoint` loads it, and its
    training config, read once for the loader and the checks: the training
    config of released weights is their metafile entry's config file,
    whose reading took most of a backend's start when each check read it.

    Args:
        filename (str): The checkpoint (any scheme mmengine reads; a local
            file, or a URL downloaded to one, is read once).
        map_location (str): Where to put the tensors. Default: ``'cpu'``.

    Returns:
        tuple[dict, dict | None]: The loaded checkpoint and its training
        config (:func:`~mmseg_dsnet.apis.released_model.
        training_config_in`; None when it has none), for the ``loaded``
        and ``training_cfg`` of :func:`load_checkpoint_strictly` and the
        checks of :mod:`~mmseg_dsnet.apis.released_model`.
    """
    from ..apis.released_model import training_config_in
    from ..compat import (resolve_checkpoint, safe_torch_load,
                          with_training_settings)
    local = resolve_checkpoint(filename)
    if not (isinstance(local, str) and osp.isfile(local)):
        # Another scheme (s3://, a model-zoo name): mmengine's loader.
        loaded = read_checkpoint(filename, map_location)
        return loaded, training_config_in(loaded, filename)
    loaded = safe_torch_load(local, map_location=map_location)
    training_cfg = training_config_in(loaded, local)
    return (with_training_settings(loaded, local, training_cfg or {}),
            training_cfg)


def load_checkpoint_strictly(model, filename, config=None, strict=True,
                             map_location='cpu', hint=PARTIAL_HINT,
                             cfg=None, advice=None, loaded=None,
                             deploy_refused=None, training_cfg=UNREAD):
    """Load ``filename`` into ``model`` after
    :func:`check_checkpoint_matches` (and, given ``cfg``,
    :func:`~mmseg_dsnet.apis.released_model.check_trained_model`);
    mmengine's ``load_checkpoint`` for everything else (safe unpickling,
    ``module.`` prefixes).

    Args:
        model (nn.Module): The model to load into.
        filename (str): The checkpoint (any scheme mmengine reads).
        config (str, optional): The model's config, for error messages.
        strict (bool): See :func:`check_checkpoint_matches`. Default: True.
        map_location (str): Where to put the tensors. Default: ``'cpu'``.
        hint (str, optional): What the user can do on a mismatch.
        cfg (Config, optional): The config ``model`` was built from: a
            checkpoint whose training config (``meta['cfg']``) builds
            another network in a setting without weights (a dilation) is
            refused. None skips that check.
        advice (str, optional): What to do instead, ending that refusal.
            Default: :func:`~mmseg_dsnet.apis.released_model.
            trained_config_advice` (the config the training dumped into
            its work dir; for released weights, their metafile entry's).
        loaded (dict, optional): ``filename`` loaded already as mmengine's
            loader reads it here (:func:`~mmseg_dsnet.compat.
            safe_torch_load`, then :func:`~mmseg_dsnet.models.utils.
            strict_loading.carry_training_settings`); it is read from the
            file when None.
        deploy_refused (str, optional): Why the caller cannot use the
            deploy form (:func:`other_form_note`). Default: None.
        training_cfg (dict, optional): The checkpoint's training config
            read already (:func:`read_checkpoint_and_training_config`;
            None when it has none), for the check of ``cfg``; read from
            the checkpoint when not given.

    Returns:
        dict: The loaded checkpoint (its ``meta`` for instance).

    Raises:
        CheckpointMismatchError: The checkpoint does not fit the model.
        UserError: ``cfg`` builds another network than the checkpoint
            was trained in.
    """
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    checkpoint = read_checkpoint(filename, map_location) \
        if loaded is None else loaded
    check_checkpoint_matches(model, checkpoint, config, filename, strict,
                             hint, deploy_refused=deploy_refused)
    if cfg is not None and strict:
        # The keys fit, but weights trained with other dilations (a setting
        # holding no weights) load strictly and would run in a network they
        # were not trained in: wrong masks and figures.
        from ..apis.released_model import (check_trained_model,
                                           trained_config_advice)
        name = str(config or getattr(cfg, 'filename', None) or
                   '(given as an object)')
        check_trained_model(
            cfg, name, filename,
            advice or trained_config_advice(name, filename, checkpoint),
            loaded=checkpoint, training_cfg=training_cfg)
    if is_model_wrapper(model):
        model = model.module
    if not strict:
        mark_partial_load(checkpoint, model)
    return _load_checkpoint_to_model(
        model, checkpoint, strict=strict, revise_keys=list(REVISE_KEYS))


def pretrained_inits(model):
    """Every ``init_cfg`` of type ``Pretrained`` among ``model``'s modules
    (also one set from a backbone's ``pretrained`` argument).

    Args:
        model (nn.Module): A built model.

    Yields:
        tuple[str, nn.Module, dict]: The module's name in ``model``
        (``''`` for the model itself), the module and its init config.
    """
    for name, module in model.named_modules():
        init_cfg = getattr(module, 'init_cfg', None)
        inits = init_cfg if isinstance(init_cfg, (list, tuple)) else \
            [init_cfg]
        for init in inits:
            if isinstance(init, dict) and init.get('type') in (
                    'Pretrained', 'PretrainedInit'):
                yield name, module, init


def check_pretrained_inits(model, config=None):
    """Check each ``init_cfg=dict(type='Pretrained', checkpoint=...)`` of
    ``model`` against the module it initialises, as mmengine would load it
    (with the init's ``prefix``), before any run starts.

    mmengine's ``PretrainedInit`` loads with ``strict=False``: weights of
    another network load nothing behind log warnings and the run trains
    from random weights, exit 0; a missing file is a traceback after the
    run's folder is made. Both are refused here. The rule is that of a
    partial ``load_from`` (:func:`check_checkpoint_matches` with
    ``strict=False``); a module that checks its own weights
    (:class:`~mmseg_dsnet.models.utils.strict_loading.StrictLoadingMixin`,
    which mmengine's load does not mark) must match exactly.

    Args:
        model (nn.Module): The built model (its weights are not changed).
        config (str, optional): The config it was built from, for messages.

    Returns:
        list[str]: One line per partial init: how many of the module's
        tensors the checkpoint loads.

    Raises:
        MissingInputError: The checkpoint file does not exist.
        CheckpointMismatchError: It does not fit the module (no key under
            ``prefix``, no tensor of the module, a key of another shape).
    """
    from mmengine.runner.checkpoint import _load_checkpoint
    from ..models.utils.strict_loading import StrictLoadingMixin
    from .preflight.config import MissingInputError, check_input_file
    notes = []
    for name, module, init in pretrained_inits(model):
        option = f'model.{name}.init_cfg' if name else 'model.init_cfg'
        filename = init.get('checkpoint')
        try:
            check_input_file(filename, 'checkpoint')
        except MissingInputError as err:
            raise MissingInputError(
                f'{option}: Pretrained {err}') from None
        checkpoint = _load_checkpoint(
            filename, map_location=init.get('map_location') or 'cpu')
        prefix = init.get('prefix')
        if prefix:
            # As mmengine's _load_checkpoint_with_prefix (which asserts).
            prefix += '' if prefix.endswith('.') else '.'
            state = state_dict_of(checkpoint, revise_keys=()) or {}
            checkpoint = OrderedDict(
                (k[len(prefix):], v) for k, v in state.items()
                if k.startswith(prefix))
            if not checkpoint:
                starts = sorted({k.split('.')[0] + '.' for k in state})
                ddp = any(k.startswith(f'module.{prefix}') for k in state)
                raise CheckpointMismatchError(
                    f'{option}: Pretrained checkpoint {filename} holds no '
                    f'key starting with prefix {prefix!r} (its keys start '
                    f'with {first_few(starts, SHOWN_KEYS)})' + (
                        ": its keys carry DDP's 'module.' prefix (saved "
                        'from a DistributedDataParallel-wrapped model), '
                        "which mmengine's prefix loading does not strip; "
                        f"give prefix='module.{prefix}'" if ddp else ''))
        part = f'{option[:-len(".init_cfg")]} ({type(module).__name__})'
        strict = isinstance(module, StrictLoadingMixin)
        loaded, total = check_checkpoint_matches(
            module, checkpoint, config, f'{filename} ({option} Pretrained)',
            strict=strict, hint=None, part=part)
        if loaded < total:
            rest = total - loaded
            notes.append(
                f'{option}: {loaded} of the {total} tensors of {part} '
                f'{"is" if loaded == 1 else "are"} loaded from Pretrained '
                f'checkpoint {filename}; the other {rest} '
                f'{"keeps its" if rest == 1 else "keep their"} initial '
                'weights.')
    return notes


def mark_partial_load(checkpoint, model):
    """Mark the weights of ``checkpoint`` (checked as a partial load on
    purpose) so that the model's own check
    (:class:`~mmseg_dsnet.models.utils.strict_loading.StrictLoadingMixin`)
    lets mmengine load them non-strictly.

    Args:
        checkpoint (dict): The loaded checkpoint (or bare state dict); its
            ``state_dict`` is replaced by the marked one.
        model (nn.Module): The model it is loaded into.
    """
    from ..models.utils.strict_loading import mark_checked
    if not isinstance(checkpoint, dict):
        return
    # mmengine loads into the wrapped segmentor, under its names.
    model = loaded_segmentor(model)
    if isinstance(checkpoint.get('state_dict'), dict):
        checkpoint['state_dict'] = mark_checked(checkpoint['state_dict'],
                                                model)
    else:  # a bare state dict: mmengine reads 'state_dict' first
        checkpoint['state_dict'] = mark_checked(dict(checkpoint), model)


def add_strict_checkpoint_hook(cfg):
    """Append :class:`~mmseg_dsnet.engine.hooks.StrictCheckpointHook` to
    ``cfg.custom_hooks`` unless it is there (``default_runtime.py`` has it; a
    config that replaces ``custom_hooks`` must not lose the check).

    Args:
        cfg (Config): The config the Runner will be built from.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') in ('StrictCheckpointHook',
                                 'mmseg.StrictCheckpointHook')
               for h in hooks if isinstance(h, dict)):
        hooks.append(dict(type='StrictCheckpointHook'))
        cfg.custom_hooks = hooks
