"""Validation during training: its keys, its best checkpoint and its split."""
import difflib
import os.path as osp

from mmseg_dsnet.utils.errors import UserError
from mmseg_dsnet.utils.messages import did_you_mean

from .evaluation import LESION_METRIC_TYPES


def has_val_loop(cfg):
    """Whether mmengine's Runner builds a validation loop for the training
    of ``cfg``, which its epoch and iteration loops then run: from any
    ``val_cfg`` but None, ``dict()`` included (a plain ``ValLoop``). The
    Runner refuses ``val_dataloader`` and ``val_evaluator`` set with
    ``val_cfg`` None, or None with it set
    (:func:`check_val_keys_together`), and a ``val_cfg`` it cannot build
    a loop from (:func:`check_val_cfg`).

    Args:
        cfg (Config | dict): The training config.

    Returns:
        bool: False only when ``val_cfg`` is None or not set.
    """
    return cfg.get('val_cfg') is not None


def check_val_cfg(cfg):
    """Refuse a ``val_cfg`` that is neither None, a dict nor a loop object
    (``'ValLoop'``, ``True``): mmengine's Runner refuses it with a
    TypeError only when the training starts, after the work dir is made.

    Args:
        cfg (Config | dict): The training config.

    Raises:
        UserError: Naming the value and what to set.
    """
    val_cfg = cfg.get('val_cfg')
    if val_cfg is None or isinstance(val_cfg, dict):
        return
    from mmengine.runner import BaseLoop
    if isinstance(val_cfg, BaseLoop):
        return
    source = getattr(cfg, 'filename', None)
    raise UserError(
        f'{source + ": " if source else ""}val_cfg={val_cfg!r} is a '
        f'{type(val_cfg).__name__}, but mmengine builds the validation '
        "loop from a dict: set val_cfg = dict(type='ValLoop') (or dict(), "
        'the same loop) to validate, or val_cfg = None, with '
        'val_dataloader and val_evaluator None, to train without '
        'validation')


def check_save_best(cfg, validates=None):
    """Refuse a ``default_hooks.checkpoint.save_best`` that names no figure
    of the validation: mmengine's hook looks it up only after the first
    validation, and stops the run there with ``KeyError: 'iou'``. Checked
    when every validation evaluator is a ``LesionMetric`` (whose figures
    are known); ``'auto'`` (the first figure) passes. A ``save_best`` in a
    run that never validates (``val_cfg`` None, :func:`has_val_loop`, or
    ``train_cfg.val_begin`` beyond the last epoch or iteration) is
    refused too: the hook keeps a best checkpoint only after a validation,
    so the run would end without one, exit 0.

    Args:
        cfg (Config | dict): The merged config.
        validates (bool, optional): True when the tool validates by its
            own options (``fast_train.py --val-interval``, which reads
            neither ``val_cfg`` nor ``val_begin``): only the key is
            checked. Default: None (mmengine's loop, from the config).

    Raises:
        UserError: Naming the key, the figures and the closest one; or
            the ``save_best`` and why the run never validates; or a key
            without the rule it needs (:func:`save_best_rule`).
    """
    from mmseg_dsnet.evaluation.lesion_metric import METRIC_NAMES
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    save_best = hook.get('save_best') if isinstance(hook, dict) else None
    # mmengine's Runner's default scope.
    scope = cfg.get('default_scope', 'mmengine')
    never = None if validates else _never_validates(cfg)
    if save_best and never:
        # Without val_cfg, mmengine's Runner also refuses a val_dataloader
        # or val_evaluator left set (a ValueError traceback): name them.
        unset = 'default_hooks.checkpoint.save_best=None' + ''.join(
            f' {key}=None' for key in _VAL_KEYS[::2]
            if not has_val_loop(cfg) and cfg.get(key) is not None)
        raise UserError(
            f'default_hooks.checkpoint.save_best={save_best!r} keeps the '
            f'checkpoint that validates best, but {never}, so the run '
            f'would never validate and save no best checkpoint; set {unset} '
            'to train without one, or let the run validate')
    evaluators = cfg.get('val_evaluator')
    if not save_best or not (validates or has_val_loop(cfg)) or \
            not evaluators:
        return
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    keys = [save_best] if isinstance(save_best, str) else save_best
    if not all(isinstance(e, dict) and e.get('type') in LESION_METRIC_TYPES
               for e in evaluators):
        # Figures not known here: the rule of each key named; 'auto' is
        # the fast trainer's to judge at its first validation.
        for key in keys:
            if key != 'auto':
                save_best_rule(hook, key, scope)
        return
    known = [f'{e["prefix"]}/{name}' if e.get('prefix') else name
             for e in evaluators for name in METRIC_NAMES]
    for key in keys:
        if key == 'auto' or key in known:
            # 'auto' is the first figure the evaluator returns.
            save_best_rule(hook, known[0] if key == 'auto' else key, scope)
            continue
        # Another case, or the figure without (or with another) prefix.
        name = str(key).rsplit('/', 1)[-1].lower()
        close = next((k for k in known if k.rsplit('/', 1)[-1].lower()
                      == name), None) or next(iter(
                          difflib.get_close_matches(str(key), known, n=1)),
                          None)
        hint = f"; did you mean {close!r}?" if close else ''
        raise UserError(
            f'default_hooks.checkpoint.save_best={key!r} is not a figure of '
            f'the validation, which reports {", ".join(known)}{hint} (the '
            'run would stop at its first validation)')


def checkpoint_hook_class(hook, scope='mmseg'):
    """The class ``default_hooks.checkpoint`` names, looked up in the
    registry as mmengine's Runner builds it (the hook itself is not built).

    Args:
        hook (dict): The config's ``default_hooks.checkpoint``.
        scope (str | None): The config's ``default_scope``.

    Returns:
        type: Its ``type`` (a class, or a name registered under ``scope``
        or mmengine); mmengine's ``CheckpointHook`` when it names none.

    Raises:
        UserError: A ``type`` name that is not registered (the Runner
            would stop with a ``KeyError``).
    """
    from mmengine.hooks import CheckpointHook
    from mmengine.registry import HOOKS
    kind = hook.get('type') or CheckpointHook
    if isinstance(kind, type):
        return kind
    with HOOKS.switch_scope_and_registry(scope) as registry:
        found = registry.get(kind)
    if found is None:
        raise UserError(
            f'default_hooks.checkpoint.type={kind!r} is not a registered '
            f'hook (default_scope {scope!r}); check its spelling, or import '
            'the module that registers it (custom_imports)')
    return found


def _named_parameters(function):
    """The names of ``function``'s arguments but ``self``, and whether it
    also takes any other keyword (``**kwargs``)."""
    import inspect
    names, takes_more = set(), False
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind == parameter.VAR_KEYWORD:
            takes_more = True
        elif parameter.kind != parameter.VAR_POSITIONAL and name != 'self':
            names.add(name)
    return names, takes_more


def check_checkpoint_hook_keys(cfg):
    """Refuse a ``default_hooks.checkpoint`` key that neither the hook nor
    the runner's ``save_checkpoint`` takes (``intervl``, ``max_keep_ckpt``,
    ``save_bset``). mmengine's ``CheckpointHook`` keeps the keys it does not
    know and passes them to ``runner.save_checkpoint`` when it saves, so
    the run would train until its first checkpoint (``interval`` epochs),
    then stop with ``unexpected keyword argument`` and save nothing.

    Args:
        cfg (Config | dict): The training config.

    Raises:
        UserError: Naming the key and the closest argument.
    """
    from mmengine.hooks import CheckpointHook

    from ..log_dir import runner_class
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if not isinstance(hook, dict):
        return
    hook_class = checkpoint_hook_class(
        hook, cfg.get('default_scope', 'mmengine'))
    taken = set()
    # Up the classes whose __init__ passes other keys on (**kwargs).
    for klass in hook_class.__mro__:
        if '__init__' not in vars(klass):
            continue
        names, takes_more = _named_parameters(klass.__init__)
        taken |= names
        if not takes_more:
            break
        if klass is CheckpointHook:
            # The rest goes to save_checkpoint, beside what the hook gives.
            names, takes_more = _named_parameters(
                runner_class(cfg).save_checkpoint)
            if takes_more:
                return
            taken |= names
            break
    else:
        return
    unknown = sorted(key for key in hook if key not in taken | {'type'})
    if not unknown:
        return
    key = unknown[0]
    hint = did_you_mean(key, sorted(taken))
    raise UserError(
        f'default_hooks.checkpoint.{key}={hook[key]!r} is no argument of '
        f'{hook_class.__name__} nor of the runner\'s save_checkpoint, to '
        f'which the hook passes it{hint} (the run would train until its '
        'first checkpoint, then stop without saving it)')


def save_best_rule(hook, key, scope='mmseg'):
    """The rule, ``'greater'`` or ``'less'``, by which mmengine's
    ``CheckpointHook`` keeps the best checkpoint by the figure ``key``: the
    hook's ``rule`` (the one of ``key``'s place in a list of ``save_best``
    keys, or the one given for all), else the one mmengine infers from the
    name (``greater_keys``: ``mIoU``, ``mDice``, ``acc`` ...; ``less_keys``:
    ``loss``; the hook's own lists where it sets them, else those of the
    hook class its ``type`` names, :func:`checkpoint_hook_class`).
    ``fast_train.py`` keeps its best checkpoint by it, as ``train.py``'s
    hook does: a loss-like figure read as ``'greater'`` would keep the
    worst one.

    Args:
        hook (dict): The config's ``default_hooks.checkpoint``.
        key (str): A key of its ``save_best`` (for ``'auto'``, the first
            figure of the validation).
        scope (str | None): The config's ``default_scope``, under which
            the hook's ``type`` is looked up.

    Returns:
        str: ``'greater'`` or ``'less'``.

    Raises:
        UserError: A rule other than ``'greater'``, ``'less'`` or None,
            or no rule for a figure mmengine cannot tell the direction
            of (``IoU``, ``DSC``: its hook stops the run with a
            ``ValueError``), naming the rule to set.
    """
    from mmengine.hooks import CheckpointHook
    keys = hook.get('save_best')
    rules = hook.get('rule')
    if isinstance(rules, (list, tuple)):
        index = keys.index(key) if isinstance(keys, (list, tuple)) and \
            key in keys and len(rules) == len(keys) else 0
        rule = rules[index] if rules else None
    else:
        rule = rules
    if rule not in ('greater', 'less', None):
        raise UserError(
            f'default_hooks.checkpoint.rule={rules!r}: the rule of '
            f"save_best {key!r} must be 'greater', 'less' or None (None: "
            "mmengine's CheckpointHook infers it from the figure's name)")
    if rule is not None:
        return rule
    # A subclass's own defaults (mmengine's hook reads them when the config
    # gives no list): the plain hook's would infer another rule.
    hook_class = checkpoint_hook_class(hook, scope)
    greater, less = hook.get('greater_keys'), hook.get('less_keys')
    if greater is None:
        greater = getattr(hook_class, '_default_greater_keys', None)
    if less is None:
        less = getattr(hook_class, '_default_less_keys', None)
    try:
        # mmengine's own inference, so that both trainers keep the same
        # checkpoint.
        return CheckpointHook(
            interval=1, save_best=key, greater_keys=greater,
            less_keys=less).rules[0]
    except (ValueError, AssertionError):
        raise UserError(
            f'default_hooks.checkpoint.save_best={key!r} has no rule, and '
            "mmengine's CheckpointHook cannot tell from the name whether a "
            f'higher or a lower {key} is better (it would stop the run); '
            "set default_hooks.checkpoint.rule='greater' (or 'less')"
        ) from None


#: The keys mmengine's Runner takes all set or all None.
_VAL_KEYS = ('val_dataloader', 'val_cfg', 'val_evaluator')


def check_val_keys_together(cfg):
    """Refuse a config with some of ``val_dataloader``, ``val_cfg`` and
    ``val_evaluator`` set and others None (``--cfg-options val_cfg=None``
    to train without validation): mmengine's Runner raises a ValueError
    traceback for it once the model is built.

    Args:
        cfg (Config | dict): The training config.

    Raises:
        UserError: Naming the keys set and those that are None.
    """
    unset = [key for key in _VAL_KEYS if cfg.get(key) is None]
    if unset and len(unset) < len(_VAL_KEYS):
        given = [key for key in _VAL_KEYS if key not in unset]
        raise UserError(
            f'{", ".join(unset)} {"is" if len(unset) == 1 else "are"} None '
            f'but {" and ".join(given)} {"is" if len(given) == 1 else "are"} '
            'set: mmengine trains with validation only when all three are '
            'set, and without it only when all three are None; set '
            f'{" ".join(f"{key}=None" for key in given)} to train without '
            'validation, or set ' + ' and '.join(unset))


def _never_validates(cfg):
    """Why the training of ``cfg`` never validates, or None when it does
    (or when its loop is not one of mmengine's epoch or iteration loops).

    mmengine's loops validate from ``val_begin`` on (and at the last epoch
    or iteration), so a ``val_begin`` beyond the last one skips them all.
    """
    if not has_val_loop(cfg):
        return 'the config sets no val_cfg'
    train = cfg.get('train_cfg') or {}
    if not isinstance(train, dict) or train.get('type') not in (
            None, 'EpochBasedTrainLoop', 'IterBasedTrainLoop'):
        return None
    begin = train.get('val_begin', 1)
    for unit in ('epochs', 'iters'):
        last = train.get(f'max_{unit}')
        if isinstance(last, int) and isinstance(begin, int) and \
                begin > last:
            return (f'train_cfg.val_begin={begin} lies beyond its '
                    f'max_{unit}={last}')
    return None


def _val_datasets(cfg):
    """The datasets ``cfg``'s ``val_dataloader`` reads from: its dataset,
    or each one a wrapper (Concat, Repeat ...) holds."""
    from mmseg_dsnet.datasets.split_files import leaf_datasets
    return leaf_datasets((cfg.get('val_dataloader') or {}).get('dataset'))


def validates_on(cfg, split_names):
    """The file name of the split ``cfg``'s ``val_dataloader`` reads (or
    one a wrapper in it reads) when it is one of ``split_names`` (file
    names, e.g. the test split's), else None: a checkpoint chosen on it is
    chosen on those images.

    Args:
        cfg (Config | dict): The config.
        split_names (Iterable[str]): Split file names (no folder).
    """
    names = set(split_names)
    for val in _val_datasets(cfg):
        name = osp.basename(str(val.get('ann_file') or ''))
        if name and name in names:
            return name
    return None


def validates_on_images_of(cfg, test_splits):
    """The split ``cfg``'s ``val_dataloader`` reads when it holds images of
    one of ``test_splits``, else None: a checkpoint chosen on it is chosen
    on images it is then tested on. Each dataset a wrapper (Concat,
    Repeat ...) holds is judged. Judged by file name, and by content for a
    split file of another name (a copy, a subset or a link of the tested
    split), which by name alone would pass for a validation split of its
    own.

    Args:
        cfg (Config | dict): The training config.
        test_splits (Iterable[str]): The split files it is (or will be)
            tested on: paths, or file names only (judged by name).

    Returns:
        str | None: E.g. ``'lightweight_test.txt'``, or ``'val.txt, which
        lists 2 images of data/splits/lightweight_test.txt (ISIC_1,
        ISIC_2)'``.
    """
    from mmseg_dsnet.datasets.split_files import (data_root_of, ids_also_in,
                                                  split_file, split_ids)
    from mmseg_dsnet.datasets.synthetic_fallback import is_synthetic
    from mmseg_dsnet.utils.messages import counted, first_few
    tests = [str(split) for split in test_splits if split]
    name = validates_on(cfg, [osp.basename(split) for split in tests])
    if name:
        return name
    for val in _val_datasets(cfg):
        val_split = split_file(val)
        if not val_split or not osp.isfile(val_split):
            continue
        val_ids = split_ids(val_split)
        # The images are read under its data root, wherever the file lies.
        synthetic = is_synthetic(val.get('data_root')
                                 or data_root_of(val_split))
        for test in tests:
            if not osp.isfile(test):
                continue
            shared = ids_also_in(test, val_ids, synthetic)
            if shared:
                return (f'{osp.basename(val_split)}, which lists '
                        f'{counted(len(shared), "image")} of {test} '
                        f'({first_few(shared, 3)})')
    return None
