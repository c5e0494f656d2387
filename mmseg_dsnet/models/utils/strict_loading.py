"""Weights that do not fit are refused by the model itself.

mmengine's ``load_checkpoint`` (and so mmseg's ``init_model`` and
``MMSegInferencer``, which call it) loads with ``strict=False``: a
checkpoint of another model, or of another form of this one (v1, an
ablation, the re-parameterised deploy form), leaves the layers it does not
fit randomly initialised behind a warning, and the masks are wrong without
an error. Our tools check every checkpoint first
(:mod:`mmseg_dsnet.engine.checkpoint_match`); these APIs are mmseg's, so
the check is in our modules instead: :class:`StrictLoadingMixin` compares
the weights given for a module with the module before any of them is
copied, whoever loads them. Nothing of mmseg or mmengine is patched.

Weights that fit a module may still have been trained in another network:
one that differs in a setting holding no weights (a dilation, an
activation, a padding mode). Where a checkpoint names its training config
(``meta['cfg']``, or the metafile entry of released weights), mmengine's
loader (:mod:`mmseg_dsnet.compat`) hands each module's training settings to
it in the state dict's ``_metadata`` (:func:`carry_training_settings`), and
the module compares them with the settings it was built with, as the tools
do (:func:`~mmseg_dsnet.apis.released_model.check_trained_model`).

A partial load on purpose (``tools/train.py --partial-checkpoint``,
``load_from_strict=False``, ``load_checkpoint_strictly(strict=False)``) is
checked by those tools with their own rule and marked
(:func:`mark_checked`), so the modules do not refuse it.
"""
import functools
import inspect
from collections import OrderedDict

#: The key :func:`mark_checked` sets in a state dict's ``_metadata`` for
#: each :class:`StrictLoadingMixin` module of the model.
CHECKED_KEY = 'mmseg_dsnet.checked'
#: The key :func:`carry_training_settings` sets there: ``(settings,
#: source)``, the module's config in the checkpoint's training config and
#: where that config was read.
TRAINED_KEY = 'mmseg_dsnet.trained_settings'
#: The key :func:`carry_checkpoint_form` sets there: ``(meta, filename)``,
#: the checkpoint's ``meta`` and its file, which say which form of the
#: network (as trained, or re-parameterised) its weights are.
FORM_KEY = 'mmseg_dsnet.checkpoint_form'


class StrictLoadingMixin:
    """Refuse weights that do not fit this module and its sub-modules:
    a missing, unexpected or mis-shaped key (or a NaN or infinite value)
    raises
    :class:`~mmseg_dsnet.engine.checkpoint_match.CheckpointMismatchError`
    before anything is copied, also under mmengine's non-strict loading.

    Put it first among the bases (``class DSNet(StrictLoadingMixin,
    BaseModule)``). ``torch.nn.Module.load_state_dict(strict=False)`` is
    refused too (torch does not tell a module how it is loaded); load a
    partial state dict on purpose through
    :func:`~mmseg_dsnet.engine.checkpoint_match.load_checkpoint_strictly`
    with ``strict=False`` or :func:`mark_checked`.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get('__init__')
        if init is None:
            return

        parameters = inspect.signature(init).parameters

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            # The settings of the outermost constructor (the class the
            # registry built) are what its config gave.
            if '_built_with' not in self.__dict__:
                try:
                    bound = inspect.signature(init).bind(self, *args, **kw)
                except TypeError:
                    bound = None  # the constructor raises its own error
                settings = {}
                for name, value in list(
                        bound.arguments.items() if bound else ())[1:]:
                    kind = parameters[name].kind
                    if kind == inspect.Parameter.VAR_KEYWORD:
                        settings.update(value)
                    elif kind != inspect.Parameter.VAR_POSITIONAL:
                        settings[name] = value
                object.__setattr__(self, '_built_with', settings)
            init(self, *args, **kw)

        cls.__init__ = recording_init

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Called for this module before its children (torch and mmengine):
        # the whole subtree is compared once, here.
        if not local_metadata.get(CHECKED_KEY):
            check_module_weights(self, state_dict, prefix,
                                 local_metadata.get(FORM_KEY))
            trained = local_metadata.get(TRAINED_KEY)
            if trained is not None:
                check_trained_settings(self, trained, prefix)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)


def check_trained_settings(module, trained, prefix: str = '') -> None:
    """Raise when ``module`` was built otherwise than its weights were
    trained, in a setting that holds no weights (a dilation, an activation,
    a padding mode): they would load and give other masks without an error.
    Training-only settings (losses, drop rates, ``threshold``, ``deploy``)
    and the test-time ``fuse_side_outputs`` may differ, as in
    :func:`~mmseg_dsnet.apis.released_model.check_trained_model`.

    Args:
        module (nn.Module): A :class:`StrictLoadingMixin` module.
        trained (tuple[dict, str]): Its config in the checkpoint's training
            config and where that config was read
            (:func:`carry_training_settings`).
        prefix (str): The module's key prefix (``'backbone.'``).

    Raises:
        TrainedNetworkError: Naming the first differing setting.
    """
    from ...apis.released_model import _inference_model
    from ...engine.checkpoint_match import TrainedNetworkError
    from ...utils.config_diff import NOT_SET, config_differences, value_at
    built = getattr(module, '_built_with', None)
    settings, source = trained
    if built is None or not isinstance(settings, dict):
        return
    where = prefix[:-1] or 'model'
    settings = {k: v for k, v in settings.items() if k != 'type'}
    # Compared without training-only settings, named as written.
    given, trained = built, settings
    diff = next(config_differences(_inference_model(given),
                                   _inference_model(trained),
                                   f'model.{where}'), None)
    if diff is None:
        return
    raise TrainedNetworkError(
        f'The weights given for {where} ({type(module).__name__}) were '
        f'trained in another network: {diff} is '
        f'{value_at({"model": {where: trained}}, diff, NOT_SET)!r} in their '
        f'training config ({source}), '
        f'{value_at({"model": {where: given}}, diff, NOT_SET)!r} in this '
        'model, a setting that holds no weights, so they would load and '
        'give other masks without an error; give the config the checkpoint '
        'was trained with (to start a training from them on purpose, set '
        'load_from_strict=False).')


def carry_training_settings(checkpoint, filename=None, training_cfg=None):
    """Hand each module's settings of ``checkpoint``'s training config to
    the modules it is loaded into: ``_metadata[name][TRAINED_KEY]`` of its
    state dict for every ``model.<name>`` of the config (``backbone``,
    ``decode_head`` ...), which :class:`StrictLoadingMixin` compares. A
    checkpoint without a training config (or a bare dict without
    ``_metadata``) is returned as it is.

    Args:
        checkpoint (dict): The loaded checkpoint (or bare state dict).
        filename (str, optional): Its file, to recognise released weights
            (their metafile entry's config is their training config).
        training_cfg (dict, optional): Its training config read already
            (:func:`~mmseg_dsnet.apis.released_model.training_config_in`);
            read from ``checkpoint`` when None.

    Returns:
        The same ``checkpoint`` (its state dict's ``_metadata`` updated).
    """
    if not isinstance(checkpoint, dict):
        return checkpoint
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        return checkpoint
    from ...apis.released_model import (training_config_in,
                                        training_config_source)
    filename = filename if isinstance(filename, str) else None
    if training_cfg is None:
        training_cfg = training_config_in(checkpoint, filename)
    model = (training_cfg or {}).get('model')
    if not isinstance(model, dict):
        return checkpoint
    source = training_config_source(filename or '', checkpoint)
    checkpoint, metadata = _state_metadata(checkpoint)
    for name, settings in model.items():
        if isinstance(settings, dict) and 'type' in settings:
            metadata[name] = dict(metadata.get(name) or {},
                                  **{TRAINED_KEY: (settings, source)})
    return checkpoint


def carry_checkpoint_form(checkpoint, filename=None):
    """Hand ``checkpoint``'s ``meta`` and file to the modules it is loaded
    into (``_metadata[name][FORM_KEY]`` of its state dict for each
    top-level module its keys name: ``backbone``, ``decode_head`` ...), so
    that a module it does not fit says which form of the network it is
    (:func:`~mmseg_dsnet.engine.checkpoint_match.other_form_note`), as the
    tools do. The modules are named by the keys as mmengine loads them
    (DDP's ``module.`` prefix stripped). A checkpoint without ``meta`` is
    returned as it is.

    Args:
        checkpoint (dict): The loaded checkpoint.
        filename (str, optional): Its file (the deploy config
            ``reparameterize.py`` writes lies beside it).

    Returns:
        The same ``checkpoint`` (its state dict's ``_metadata`` updated).
    """
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    state = checkpoint.get('state_dict') if isinstance(meta, dict) else None
    if not isinstance(state, dict):
        return checkpoint
    from ...engine.checkpoint_match import state_dict_of
    filename = filename if isinstance(filename, str) else None
    checkpoint, metadata = _state_metadata(checkpoint)
    for name in {key.split('.', 1)[0] for key in state_dict_of(checkpoint)}:
        metadata[name] = dict(metadata.get(name) or {},
                              **{FORM_KEY: (meta, filename)})
    return checkpoint


def _state_metadata(checkpoint):
    """``(checkpoint, metadata)``: the ``_metadata`` of ``checkpoint``'s
    state dict, made (on a copy of the dict) where it has none."""
    state = checkpoint.get('state_dict', checkpoint)
    metadata = getattr(state, '_metadata', None)
    if not isinstance(metadata, dict):
        # Weights-only files (the released ones) hold a plain dict.
        bare = state is checkpoint
        state, metadata = OrderedDict(state), OrderedDict()
        state._metadata = metadata
        if bare:
            checkpoint = state
        else:
            checkpoint['state_dict'] = state
    return checkpoint, metadata


def check_module_weights(module, state_dict, prefix: str = '',
                         checkpoint_form=None) -> None:
    """Raise when the entries of ``state_dict`` under ``prefix`` are not
    exactly ``module``'s weights (BatchNorm's ``num_batches_tracked`` may be
    absent).

    Args:
        module (nn.Module): The module being loaded.
        state_dict (dict): The state dict given (whole, or the part under
            ``prefix``, as mmengine passes it).
        prefix (str): The module's key prefix in it (``'backbone.'``).
        checkpoint_form (tuple, optional): ``(meta, filename)`` of the
            checkpoint file (:func:`carry_checkpoint_form`), which says
            whether it is the other form of the network. Default: None
            (only the state dict is known).

    Raises:
        CheckpointMismatchError: Naming the module and the first keys of
            each kind.
        NonFiniteCheckpointError: The keys fit, but a tensor holds NaN or
            infinite values.
    """
    from ...engine.checkpoint_match import (CheckpointMismatchError,
                                            NonFiniteCheckpointError, _first,
                                            compare_state_dicts,
                                            non_finite_tensors,
                                            other_form_note)
    expected = OrderedDict(
        (prefix + key, value)
        for key, value in module.state_dict().items())
    given = OrderedDict((key, value) for key, value in state_dict.items()
                        if key.startswith(prefix))
    missing, unexpected, mismatched = compare_state_dicts(expected, given)
    problems = [
        _first(items, what) for items, what in (
            (missing, ('missing key', 'missing keys')),
            (unexpected, ('unexpected key', 'unexpected keys')),
            (mismatched, ('key of another shape', 'keys of another shape')))
        if items
    ]
    where = prefix[:-1] or 'the model'
    if not problems:
        # NaN weights give NaN logits, read as background everywhere:
        # empty masks from a diverged training's checkpoint.
        bad = non_finite_tensors(given)
        if bad:
            raise NonFiniteCheckpointError(
                f'The weights given for {where} ({type(module).__name__}) '
                f'hold NaN or infinite values in '
                f'{_first(bad, ("tensor", "tensors"))}: a checkpoint of a '
                'diverged training or a damaged file, whose masks would be '
                'wrong (NaN logits read as background everywhere). Use an '
                'earlier checkpoint of the run.')
        return
    message = (f'The weights given for {where} ({type(module).__name__}) '
               f'do not match it: {"; ".join(problems)}. ')
    form = checkpoint_form and other_form_note(
        module, dict(meta=checkpoint_form[0]), checkpoint_form[1])
    if form:
        # The file says which form it is: no question, and the advice to
        # give the training config fits neither form.
        raise CheckpointMismatchError(message + form)
    raise CheckpointMismatchError(
        message + 'Is it a checkpoint of another model, or of the deploy '
        "(re-parameterised) form? Loaded non-strictly (mmseg's init_model, "
        "MMSegInferencer, mmengine's load_checkpoint) these layers would "
        'keep their initial weights and give wrong masks without an error, '
        'so they are refused; give the config the checkpoint was trained '
        'with.')


def mark_checked(state_dict, model):
    """``state_dict`` marked as checked for every
    :class:`StrictLoadingMixin` module of ``model``, which then loads it as
    the loader says (a partial load on purpose, checked by the caller).

    Args:
        state_dict (dict): The weights about to be loaded into ``model``.
        model (nn.Module): The model they are loaded into (its module names
            are the keys mmengine and torch look the marks up by).

    Returns:
        OrderedDict: The same tensors, with ``_metadata`` carrying the
        marks (the original's metadata kept; ``state_dict`` is not changed).
    """
    marked = OrderedDict(state_dict)
    metadata = OrderedDict(getattr(state_dict, '_metadata', None) or {})
    for name, module in model.named_modules():
        if isinstance(module, StrictLoadingMixin):
            metadata[name] = dict(metadata.get(name) or {},
                                  **{CHECKED_KEY: True})
    marked._metadata = metadata
    return marked
