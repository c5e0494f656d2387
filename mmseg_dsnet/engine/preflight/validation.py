"""Validation during training: its keys, its best checkpoint and its split."""
import difflib
import os.path as osp

from mmseg_dsnet.utils.errors import UserError

from .evaluation import LESION_METRIC_TYPES


def check_save_best(cfg, validates=None):
    """Refuse a ``default_hooks.checkpoint.save_best`` that names no figure
    of the validation: mmengine's hook looks it up only after the first
    validation, and stops the run there with ``KeyError: 'iou'``. Checked
    when every validation evaluator is a ``LesionMetric`` (whose figures
    are known); ``'auto'`` (the first figure) passes. A ``save_best`` in a
    run that never validates (no ``val_cfg``, or ``train_cfg.val_begin``
    beyond the last epoch or iteration) is refused too: the hook keeps a
    best checkpoint only after a validation, so the run ended without one,
    exit 0.

    Args:
        cfg (Config | dict): The merged config.
        validates (bool, optional): True when the tool validates by its
            own options (``fast_train.py --val-interval``, which reads
            neither ``val_cfg`` nor ``val_begin``): only the key is
            checked. Default: None (mmengine's loop, from the config).

    Raises:
        UserError: Naming the key, the figures and the closest one; or
            the ``save_best`` and why the run never validates.
    """
    from mmseg_dsnet.evaluation.lesion_metric import METRIC_NAMES
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    save_best = hook.get('save_best') if isinstance(hook, dict) else None
    never = None if validates else _never_validates(cfg)
    if save_best and never:
        # Without val_cfg, mmengine's Runner also refuses a val_dataloader
        # or val_evaluator left set (a ValueError traceback): name them.
        unset = 'default_hooks.checkpoint.save_best=None' + ''.join(
            f' {key}=None' for key in _VAL_KEYS[::2]
            if not cfg.get('val_cfg') and cfg.get(key) is not None)
        raise UserError(
            f'default_hooks.checkpoint.save_best={save_best!r} keeps the '
            f'checkpoint that validates best, but {never}, so the run '
            f'would never validate and save no best checkpoint; set {unset} '
            'to train without one, or let the run validate')
    evaluators = cfg.get('val_evaluator')
    if not save_best or not (validates or cfg.get('val_cfg')) or \
            not evaluators:
        return
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    if not all(isinstance(e, dict) and e.get('type') in LESION_METRIC_TYPES
               for e in evaluators):
        return
    known = [f'{e["prefix"]}/{name}' if e.get('prefix') else name
             for e in evaluators for name in METRIC_NAMES]
    for key in ([save_best] if isinstance(save_best, str) else save_best):
        if key == 'auto' or key in known:
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


#: The keys mmengine's Runner takes all set or all None.
_VAL_KEYS = ('val_dataloader', 'val_cfg', 'val_evaluator')


def check_val_keys_together(cfg):
    """Refuse a config with some of ``val_dataloader``, ``val_cfg`` and
    ``val_evaluator`` set and others None (``--cfg-options val_cfg=None``
    to train without validation): mmengine's Runner raised a ValueError
    traceback for it once the model was built.

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
    if not cfg.get('val_cfg'):
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


def validates_on(cfg, split_names):
    """The file name of the split ``cfg``'s ``val_dataloader`` reads when it
    is one of ``split_names`` (file names, e.g. the test split's), else
    None: a checkpoint chosen on it is chosen on those images.

    Args:
        cfg (Config | dict): The config.
        split_names (Iterable[str]): Split file names (no folder).
    """
    val = (cfg.get('val_dataloader') or {}).get('dataset') or {}
    name = osp.basename(str(val.get('ann_file') or ''))
    return name if name and name in set(split_names) else None
