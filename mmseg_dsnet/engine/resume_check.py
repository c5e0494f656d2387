"""Check that ``--resume`` continues the run its checkpoint belongs to.

mmengine's ``resume`` restores the weights, the optimizer (its learning
rates and weight decay included), the schedulers and the seed from the
checkpoint and takes everything else (the model's losses, the data, the
batch size) from the config it is given. A resume with a changed config or
``--cfg-options`` would train a mix of two runs while the work dir's dumped
config names the new one, and a resume of a run that trained all its epochs
would train nothing; both are refused before the runner exists, as is a
resume with another validation or best-checkpoint rule by a run that keeps
its best checkpoint (mmengine restores the best score so far and compares
the new validations with it).
``tools/fast_train.py`` compares its runs with the config it dumped in the
work dir (its checkpoints do not hold one).
"""
import os
import re

from mmseg_dsnet.utils.config_diff import (NOT_SET, config_differences,
                                           value_at)
from mmseg_dsnet.utils.errors import UserError
from mmseg_dsnet.utils.messages import config_name, counted, first_few

#: The parts of a config that decide what a training run does.
RESUMED_PARTS = ('model', 'train_dataloader', 'optim_wrapper',
                 'param_scheduler', 'train_cfg', 'randomness',
                 'auto_scale_lr')

#: Where a config's data lies.
DATA_LOCATION = re.compile(r'.*\.(data_root|data_prefix)([.\[].*)?$')

#: Differences a resumed run may have: where the data lies, how many
#: processes load it, when it validates, and a longer schedule (checked
#: against the checkpoint's progress on its own).
MAY_DIFFER = (
    DATA_LOCATION,
    re.compile(r'train_dataloader\.(num_workers|persistent_workers|'
               r'pin_memory|prefetch_factor)$'),
    re.compile(r'train_cfg\.(max_epochs|max_iters|val_interval|val_begin|'
               r'dynamic_intervals)([.\[].*)?$'))

#: What decides which checkpoint is the best one, compared when the run
#: keeps one (``default_hooks.checkpoint.save_best``): mmengine restores the
#: best score so far from the checkpoint and compares later validations
#: with it.
SELECTION_PARTS = ('val_dataloader', 'val_evaluator', 'val_cfg')

#: The keys of the checkpoint hook that choose the best checkpoint.
SELECTION_HOOK_KEYS = re.compile(
    r'default_hooks\.checkpoint\.(save_best|rule)([.\[].*)?$')

#: Differences the validation of a resumed run may have: where its data
#: lies and how many processes load it.
SELECTION_MAY_DIFFER = (
    DATA_LOCATION,
    re.compile(r'val_dataloader\.(num_workers|persistent_workers|'
               r'pin_memory|prefetch_factor)$'))

#: ``meta['trainer']`` of the fast trainer's checkpoints.
FAST_TRAINER = 'tools/fast_train.py'

#: How many differences a message names.
SHOWN = 5


class ResumeMismatchError(UserError, ValueError):
    """``--resume`` would continue a run with another config than the one
    it was trained with, or has nothing left to train."""


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _as_dict(cfg):
    return cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)


def _change(given, before, path):
    """``key=value (the checkpoint's: value)`` of one difference."""
    return (f'{path}={_short(value_at(given, path, NOT_SET))} (the '
            f"checkpoint's: {_short(value_at(before, path, NOT_SET))})")


def _save_best(cfg):
    """The ``save_best`` of a config dict's checkpoint hook, or None."""
    hooks = cfg.get('default_hooks') or {}
    hook = hooks.get('checkpoint') if isinstance(hooks, dict) else None
    return hook.get('save_best') if isinstance(hook, dict) else None


def resume_config_changes(cfg, previous, parts=RESUMED_PARTS):
    """What ``cfg`` changes in ``parts`` of ``previous``, the config the
    checkpoint's run was trained with, apart from :data:`MAY_DIFFER`.

    Args:
        cfg (Config | dict): The config of the resumed run.
        previous (Config | dict): The checkpoint's config.
        parts (Sequence[str]): The top-level keys compared. Default:
            :data:`RESUMED_PARTS`.

    Returns:
        list[str]: ``key=value (the checkpoint's: value)``.
    """
    given, before = _as_dict(cfg), _as_dict(previous)
    changes = []
    for part in parts:
        for path in config_differences(given.get(part), before.get(part),
                                       part):
            if any(p.match(path) for p in MAY_DIFFER):
                continue
            changes.append(_change(given, before, path))
    return changes


def best_selection_changes(cfg, previous):
    """What ``cfg`` changes in how ``previous``, the config the
    checkpoint's run was trained with, chooses its best checkpoint: its
    validation (:data:`SELECTION_PARTS`, data locations and loader workers
    apart) and the checkpoint hook's ``save_best`` and ``rule``; nothing
    when neither config keeps a best checkpoint.

    Args:
        cfg (Config | dict): The config of the resumed run.
        previous (Config | dict): The checkpoint's config.

    Returns:
        list[str]: ``key=value (the checkpoint's: value)``.
    """
    given, before = _as_dict(cfg), _as_dict(previous)
    if not (_save_best(given) or _save_best(before)):
        return []
    changes = []
    for part in SELECTION_PARTS + ('default_hooks', ):
        for path in config_differences(given.get(part), before.get(part),
                                       part):
            if part == 'default_hooks' and \
                    not SELECTION_HOOK_KEYS.match(path):
                continue
            if any(p.match(path) for p in SELECTION_MAY_DIFFER):
                continue
            changes.append(_change(given, before, path))
    return changes


def listed(changes):
    """The first :data:`SHOWN` of ``changes``, joined, and how many more."""
    return first_few(changes, SHOWN, sep='; ')


def refuse_best_selection_changes(changes, filename, config, save_best):
    """Raise :class:`ResumeMismatchError` listing ``changes`` (the first
    :data:`SHOWN`), if there are any.

    Args:
        changes (list[str]): From :func:`best_selection_changes`.
        filename (str): The checkpoint ``--resume`` continues from.
        config (str): The config of the resumed run.
        save_best: The checkpoint's run's ``save_best``.
    """
    if not changes:
        return
    raise ResumeMismatchError(
        f'--resume: {filename} was validated with another config than '
        f'{config}: {listed(changes)}. The run keeps its '
        f'best checkpoint (default_hooks.checkpoint.save_best={save_best!r}'
        '): the best score so far comes from the checkpoint and was '
        "reached on the checkpoint's validation, so later epochs would be "
        'compared with it on another; resume with the validation the run '
        'was started with (data locations and loader workers may differ), '
        'or train the changed config in another --work-dir')


def refuse_resume_changes(changes, filename, config):
    """Raise :class:`ResumeMismatchError` listing ``changes`` (the first
    :data:`SHOWN`), if there are any.

    Args:
        changes (list[str]): From :func:`resume_config_changes`.
        filename (str): The checkpoint ``--resume`` continues from.
        config (str): The config of the resumed run.
    """
    if not changes:
        return
    raise ResumeMismatchError(
        f'--resume: {filename} was trained with another config than '
        f'{config}: {listed(changes)}. Resuming would mix '
        "two runs (the optimizer's state and settings come from the "
        'checkpoint, the rest from the config); resume with the config and '
        '--cfg-options the run was started with (data locations, loader '
        'workers and a longer train_cfg.max_epochs may differ), or train '
        'the changed config in another --work-dir')


def synthetic_switches(cfg, previous,
                       loaders=('train_dataloader', 'val_dataloader')):
    """The data roots of ``cfg``'s ``loaders`` that moved between the
    embedded synthetic set and other data since ``previous``, the config
    the checkpoint's run was trained with. A data root may differ on
    resume (the data was moved), but not to other images: the synthetic
    fallback takes over whenever the config's default root is absent
    (real data moved away, another checkout), and the run would go on
    from a checkpoint of real images on the stand-in, exit 0. A previous
    root
    that no longer exists counts as not synthetic.

    Args:
        cfg (Config | dict): The config of the resumed run.
        previous (Config | dict): The checkpoint's config.
        loaders (Sequence[str]): The loaders compared.

    Returns:
        list[str]: ``path.data_root='new' (synthetic; the checkpoint's:
        'old', not synthetic)``.
    """
    import os.path as osp

    from mmseg_dsnet.datasets.split_files import dataset_leaves
    from mmseg_dsnet.datasets.synthetic_fallback import is_synthetic
    given, before = _as_dict(cfg), _as_dict(previous)
    switches = []
    for loader in loaders:
        new = dataset_leaves((given.get(loader) or {}).get('dataset'),
                             f'{loader}.dataset')
        old = dataset_leaves((before.get(loader) or {}).get('dataset'),
                             f'{loader}.dataset')
        for (path, leaf), (_, was) in zip(new, old):
            root, was_root = leaf.get('data_root'), was.get('data_root')
            if not (isinstance(root, str) and isinstance(was_root, str)) \
                    or osp.abspath(root) == osp.abspath(was_root) or \
                    is_synthetic(root) == is_synthetic(was_root):
                continue
            kind = ('synthetic', 'not synthetic')
            if not is_synthetic(root):
                kind = kind[::-1]
            switches.append(f"{path}.data_root={root!r} ({kind[0]}; the "
                            f"checkpoint's: {was_root!r}, {kind[1]})")
    return switches


def refuse_synthetic_switches(switches, filename, config):
    """Raise :class:`ResumeMismatchError` listing ``switches`` (the first
    :data:`SHOWN`), if there are any.

    Args:
        switches (list[str]): From :func:`synthetic_switches`.
        filename (str): The checkpoint ``--resume`` continues from.
        config (str): The config of the resumed run.
    """
    if not switches:
        return
    raise ResumeMismatchError(
        f'--resume: {filename} was trained on other data than {config} '
        f'reads: {listed(switches)}. The resumed epochs would go on '
        'from it on other images (the synthetic stand-in is used when '
        "the config's data is not at its default root); give the run's "
        'data root (--cfg-options train_dataloader.dataset.data_root=... '
        'val_dataloader.dataset.data_root=...), or train anew in another '
        '--work-dir')


def holds_training_state(filename):
    """Whether the checkpoint ``filename`` can be resumed: mmengine reads
    its progress (``meta`` with ``epoch`` / ``iter``) and optimizer state;
    a weights-only file (pretrained or published weights) has neither.
    A remote checkpoint is taken to hold them (left to the loader).

    Args:
        filename (str): The checkpoint.

    Returns:
        bool: True when both are there.
    """
    from mmseg_dsnet.compat import checkpoint_meta, safe_torch_load
    if '://' in str(filename):
        return True
    checkpoint = safe_torch_load(filename, map_location='cpu')
    if not isinstance(checkpoint, dict):
        return False
    return 'iter' in checkpoint_meta(checkpoint) and \
        'optimizer' in checkpoint


def resume_checkpoint(cfg, find_latest):
    """The checkpoint ``--resume`` continues from, set as
    ``cfg.load_from``.

    mmengine resumes from ``load_from`` when it is set, else from the work
    dir's newest checkpoint (``find_latest``). A ``load_from`` without
    training state, the weights a config starts a fine-tuning from, cannot
    be resumed (``KeyError: 'meta'``); it is passed over for the newest
    checkpoint of the work dir, and when the work dir holds none the run
    starts anew from it (``cfg.resume`` False), as ``--resume`` without
    any checkpoint does.

    Args:
        cfg (Config): The merged config, ``resume`` True.
        find_latest (callable): ``work_dir -> path | None``, the newest
            complete checkpoint of the work dir.

    Returns:
        str | None: The checkpoint resumed from, None when the run starts
        anew.
    """
    from mmengine.logging import print_log
    initial = cfg.get('load_from')
    if initial and holds_training_state(initial):
        return initial
    cfg.load_from = find_latest(cfg.work_dir)
    if initial and cfg.load_from:
        print_log(f'load_from {initial} holds weights only, no training '
                  'state to resume: --resume continues the run in '
                  f'{cfg.work_dir} from {cfg.load_from}', logger='current')
    elif initial:
        cfg.load_from, cfg.resume = initial, False
        print_log(f'--resume: {cfg.work_dir} holds no checkpoint to resume '
                  f'from; the run starts anew from load_from {initial}',
                  logger='current')
    elif not cfg.load_from:
        # mmengine's runner logged "Auto resumed from the latest
        # checkpoint None." and started anew.
        cfg.resume = False
        print_log(f'--resume: {cfg.work_dir} holds no checkpoint to resume '
                  'from; the run starts anew', logger='current')
    return cfg.load_from if cfg.resume else None


def check_resume_checkpoint(cfg, filename, extendable=True):
    """Refuse to resume ``cfg`` from ``filename`` when the checkpoint does
    not fit the model (as the Runner's ``StrictCheckpointHook`` would), when
    ``tools/fast_train.py`` saved it (mmengine cannot resume it), when
    its run already trained the epochs (iterations) ``cfg`` asks for or was
    trained by another number of processes (``meta['world_size']``), when
    its run was trained with another config
    (:func:`resume_config_changes`) or on other data (the synthetic set
    for real images or back, :func:`synthetic_switches`), or when it keeps
    a best checkpoint and was validated otherwise
    (:func:`best_selection_changes`; checkpoints that do not record their
    config, ``meta['cfg']``, are not compared).

    Args:
        cfg (Config): The merged config of the resumed run.
        filename (str): The checkpoint ``--resume`` continues from.
        extendable (bool): Whether a finished run can train on with a
            longer ``max_epochs`` (not a short-schedule run, whose cosine
            spans its own epochs); the message offers it only then.
            Default: True.

    Raises:
        ResumeMismatchError: Naming the checkpoint, the config and what
            differs.
        CheckpointMismatchError: The checkpoint is of another model.
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    from mmseg_dsnet.compat import checkpoint_meta, safe_torch_load
    from .checkpoint_match import check_checkpoint_matches
    if '://' in str(filename):
        return  # a remote checkpoint is left to the loader
    config = config_name(cfg)
    checkpoint = safe_torch_load(filename, map_location='cpu')
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        model = MODELS.build(cfg.model)
    check_checkpoint_matches(model, checkpoint, config, filename,
                             bool(cfg.get('load_from_strict', True)))
    meta = checkpoint_meta(checkpoint)
    if meta.get('trainer') == FAST_TRAINER:
        # mmengine's resume needs its runner's state (message_hub): a
        # KeyError traceback once the runner has dumped its config over
        # the fast trainer's, which that trainer's --resume compares with.
        raise ResumeMismatchError(
            f'--resume: {filename} was saved by {FAST_TRAINER}, whose '
            'checkpoints hold none of the state mmengine\'s runner resumes; '
            f'continue that run with {FAST_TRAINER} --resume (and the '
            'options it was started with), or train anew in another '
            '--work-dir')
    trained_by = meta.get('world_size')
    world_size = int(os.environ.get('WORLD_SIZE', '1')) \
        if cfg.get('launcher', 'none') != 'none' else 1
    if isinstance(trained_by, int) and trained_by != world_size:
        # mmengine compares only a gpu_ids key that these configs lack.
        raise ResumeMismatchError(
            f'--resume: {filename} was trained by '
            f'{counted(trained_by, "process", "processes")} and this run has '
            f'{world_size}: with train_dataloader.batch_size images per '
            'process and step, the resumed epochs would train with another '
            'batch size and number of steps than the run did; resume with '
            f'{counted(trained_by, "process", "processes")} '
            '(tools/dist_train.sh CONFIG N, or tools/train.py for one)')
    train_cfg = cfg.get('train_cfg') or {}
    for unit, key in (('epoch', 'max_epochs'), ('iter', 'max_iters')):
        done, total = meta.get(unit), train_cfg.get(key)
        if isinstance(done, int) and isinstance(total, int) and \
                done >= total:
            raise ResumeMismatchError(
                f'--resume: {filename} has trained {counted(done, unit)} and '
                f'{config} trains {total} (train_cfg.{key}): nothing is '
                'left to train; '
                + (f'raise train_cfg.{key} to train on, or train anew in '
                   'another --work-dir' if extendable else
                   'train anew in another --work-dir'))
    if not isinstance(meta.get('cfg'), str):
        return
    previous = Config.fromstring(meta['cfg'], file_format='.py')
    refuse_resume_changes(resume_config_changes(cfg, previous), filename,
                          config)
    refuse_synthetic_switches(synthetic_switches(cfg, previous), filename,
                              config)
    refuse_best_selection_changes(best_selection_changes(cfg, previous),
                                  filename, config,
                                  _save_best(_as_dict(previous)))
