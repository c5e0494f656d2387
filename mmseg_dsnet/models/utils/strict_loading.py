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

A partial load on purpose (``tools/train.py --partial-checkpoint``,
``load_from_strict=False``, ``load_checkpoint_strictly(strict=False)``) is
checked by those tools with their own rule and marked
(:func:`mark_checked`), so the modules do not refuse it.
"""
from collections import OrderedDict

#: The key :func:`mark_checked` sets in a state dict's ``_metadata`` for
#: each :class:`StrictLoadingMixin` module of the model.
CHECKED_KEY = 'mmseg_dsnet.checked'


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

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Called for this module before its children (torch and mmengine):
        # the whole subtree is compared once, here.
        if not local_metadata.get(CHECKED_KEY):
            check_module_weights(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)


def check_module_weights(module, state_dict, prefix: str = '') -> None:
    """Raise when the entries of ``state_dict`` under ``prefix`` are not
    exactly ``module``'s weights (BatchNorm's ``num_batches_tracked`` may be
    absent).

    Args:
        module (nn.Module): The module being loaded.
        state_dict (dict): The state dict given (whole, or the part under
            ``prefix``, as mmengine passes it).
        prefix (str): The module's key prefix in it (``'backbone.'``).

    Raises:
        CheckpointMismatchError: Naming the module and the first keys of
            each kind.
        NonFiniteCheckpointError: The keys fit, but a tensor holds NaN or
            infinite values.
    """
    from ...engine.checkpoint_match import (CheckpointMismatchError,
                                            NonFiniteCheckpointError, _first,
                                            compare_state_dicts,
                                            non_finite_tensors)
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
    raise CheckpointMismatchError(
        f'The weights given for {where} ({type(module).__name__}) do not '
        f'match it: {"; ".join(problems)}. Is it a checkpoint of another '
        'model, or of the deploy (re-parameterised) form? Loaded '
        "non-strictly (mmseg's init_model, MMSegInferencer, mmengine's "
        'load_checkpoint) these layers would keep their initial weights '
        'and give wrong masks without an error, so they are refused; give '
        'the config the checkpoint was trained with.')


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
