"""Checks the train/test tools run before building a runner, so that a
config typo, an unwritable work dir or a broken checkpoint is reported in
one clear line instead of a traceback hours into a run."""
import contextlib
import difflib
import os
import os.path as osp
import re
import tempfile
import zipfile

from mmengine.logging import print_log

from mmseg_dsnet.utils.errors import ModelArgumentError, UserError
from mmseg_dsnet.utils.fileio import refuse_existing, refuse_unexpanded_home
from mmseg_dsnet.utils.messages import first_few

#: Top-level config keys that mmengine's Runner, mmseg's tools or our tools
#: read. A config key that is not one of them but is spelt almost like one
#: is almost certainly a typo that would be silently ignored.
RUNNER_KEYS = (
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name',
    'custom_imports', 'model_wrapper_cfg', 'find_unused_parameters',
    'sync_bn', 'tta_model', 'tta_pipeline', 'runner_type', 'compile',
    'strategy', 'vis_backends', 'load_from_strict')

#: Common config variables that are legitimately close to a runner key.
COMMON_VARIABLES = ('train_pipeline', 'val_pipeline', 'test_pipeline')


class ConfigKeyError(KeyError):
    """A config key looks like a misspelt runner key."""

    def __str__(self):
        return str(self.args[0])


class MissingInputError(FileNotFoundError):
    """A config or checkpoint file given to a tool does not exist."""


class WorkDirError(OSError):
    """The work dir (or another output location) cannot be created or
    written to."""


class ConfigFileError(UserError, ValueError):
    """A file given as a config cannot be read as one."""


class ThresholdMismatchError(UserError, ValueError):
    """The model and its evaluator call lesion at different probabilities."""


def check_config_keys(cfg, known=RUNNER_KEYS, cutoff=0.85):
    """Raise :class:`ConfigKeyError` for a top-level key that is not used but
    is spelt almost like one that is (``train_dataloadr``, ``optim_wraper``).

    Args:
        cfg (Config | dict): The merged config.
        known (Sequence[str]): The keys that are read.
        cutoff (float): Similarity (0..1) above which a key is a typo.
    """
    for key in cfg.keys():
        if key in known or key in COMMON_VARIABLES or key.startswith('_'):
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=cutoff)
        if close:
            raise ConfigKeyError(
                f'Config key {key!r} is not used by the runner and would be '
                f'silently ignored; did you mean {close[0]!r}?')


class ConfigOptionError(UserError, ValueError):
    """A ``--cfg-options`` key that would change nothing."""


def _paths_holding(node, value, path=''):
    """Dotted paths below ``node`` whose value equals ``value``."""
    found = []
    if isinstance(node, dict):
        for key, item in node.items():
            found += _paths_holding(item, value, f'{path}.{key}'.lstrip('.'))
    elif isinstance(node, (list, tuple)) and node != value:
        for index, item in enumerate(node):
            found += _paths_holding(item, value, f'{path}.{index}')
    elif node == value and path:
        found.append(path)
    return found


def _config_value(cfg, key):
    """The value at a dotted ``--cfg-options`` key (list items by index),
    or ``_MISSING`` when the config holds none there."""
    node = cfg
    for part in key.split('.'):
        # A Config is no dict, but reads like one.
        if hasattr(node, 'items') and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


_MISSING = object()


def _check_option_type(cfg, key, value):
    """Refuse a ``--cfg-options`` value of another kind than the one it
    replaces: a word for a number or a switch (``train_cfg.max_epochs=abc``,
    ``train_dataloader.batch_size=two``), or anything but a dict (or None)
    for a dict (``train_cfg=[1,2]``; ``key="dict(a=1)"``, which
    ``DictAction`` keeps as a string). mmengine met them only once the
    runner built that part, after the work dir and its log were made, with
    a traceback (``ValueError: invalid literal for int()``, ``TypeError``).
    """
    old = _config_value(cfg, key)
    if old is _MISSING or old is None or value is None:
        return
    if isinstance(old, (int, float)):
        wanted = isinstance(value, str) and (
            'True or False' if isinstance(old, bool) else 'a number')
    elif isinstance(old, dict):
        wanted = (f'a dict (set its keys one by one: {key}.KEY=VALUE)'
                  if not isinstance(value, dict) else None)
    else:
        wanted = None
    if wanted:
        raise ConfigOptionError(
            f'--cfg-options {key}={value} gives {type(value).__name__} '
            f'{value!r}, but the config holds {old!r} there; give {wanted}')


def check_options_take_effect(cfg, cfg_options):
    """Refuse a ``--cfg-options`` key that sets a config variable
    (``data_root=X``, ``crop_size=...``) before it is merged.

    mmengine copies a variable's value into the sections that use it when
    it reads the file, so setting the variable afterwards changes nothing:
    ``test.py CONFIG CKPT --cfg-options data_root=other`` scored the
    config's own data set, exit 0, and ``test_metrics.json`` recorded
    ``data_root=other`` among the options it was computed with.

    Args:
        cfg (Config): The config as read, before the options are merged.
        cfg_options (dict | None): The ``--cfg-options`` (dotted keys).

    Raises:
        ConfigOptionError: Naming the option and the keys to set instead.
    """
    for key, value in (cfg_options or {}).items():
        _check_option_type(cfg, key, value)
        if '.' in key or key in RUNNER_KEYS or key not in cfg:
            continue
        old = cfg[key]
        # A variable no section holds may be read by a tool as it is.
        users = [path for path in _paths_holding(
            {k: v for k, v in cfg.items() if k != key}, old)
            if path.split('.')[0] in RUNNER_KEYS]
        if not users:
            continue
        # Keys of its name first: a value like 0.5 is held by others too.
        named = [path for path in users if path.split('.')[-1] == key]
        users = named or users
        shown = first_few([f'{path}={value}' for path in users], 4, sep=' ')
        raise ConfigOptionError(
            f'--cfg-options {key}={value} sets the config variable {key!r}, '
            'whose value was copied into the sections that use it when the '
            'config was read, so it would change nothing (they keep '
            f'{old!r}); set the keys that hold its value instead: '
            f'{shown}')


def check_model_builds(cfg):
    """Build ``cfg.model`` once and drop it, so that a model argument out of
    range or a misspelt type is refused before the runner makes its
    ``<work_dir>/<timestamp>/`` folder (log, dumped config): a refused run
    leaves nothing that looks like a run. The runner re-seeds before it
    builds the model, so this build does not change the run.

    Args:
        cfg (Config): The merged config, with ``model`` and optionally
            ``default_scope``.
    """
    from mmengine.registry import MODELS, DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        MODELS.build(cfg.model)


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


def check_trainable_model(cfg):
    """Refuse to train the re-parameterised form of a model (a deploy config
    written by ``tools/deployment/reparameterize.py``, or ``deploy=True``
    given by hand): it has no BatchNorm, one plain kernel instead of the
    difference branches and no deep-supervision classifiers, so training it
    trains another network than the config's, without an error.

    Args:
        cfg (Config | dict): The merged config.

    Raises:
        ModelArgumentError: A part of ``cfg.model`` has ``deploy=True``.
    """
    parts = deploy_form_parts(cfg.get('model') or {})
    if parts:
        raise ModelArgumentError(
            f'{", ".join(p + "=True" for p in parts)}: this config builds '
            'the re-parameterised (inference) form of the model, without '
            'its BatchNorms, difference branches and deep-supervision '
            'classifiers, which cannot be trained as the model; train the '
            'training config (deploy=False) and re-parameterise its '
            'checkpoint with tools/deployment/reparameterize.py')


class PipelineConfigError(UserError, ValueError):
    """A transform of a data pipeline refuses its arguments."""


def _dataset_pipelines(dataset_cfg, path):
    """``(dotted path, pipeline)`` of a dataset config and of the datasets a
    wrapper holds (``RepeatDataset.dataset``, ``ConcatDataset.datasets``)."""
    if not isinstance(dataset_cfg, dict):
        return
    if isinstance(dataset_cfg.get('pipeline'), (list, tuple)):
        yield f'{path}.pipeline', dataset_cfg['pipeline']
    yield from _dataset_pipelines(dataset_cfg.get('dataset'),
                                  f'{path}.dataset')
    for index, inner in enumerate(dataset_cfg.get('datasets') or []):
        yield from _dataset_pipelines(inner, f'{path}.datasets[{index}]')


def check_pipelines_build(cfg, loaders):
    """Build every transform of the loaders' pipelines once and drop them,
    so that a transform argument out of range (``RandomZoom max_zoom=0.5``)
    or a misspelt transform is refused before the runner makes its
    ``<work_dir>/<timestamp>/`` folder; the runner builds the datasets only
    later. Building a transform reads no image.

    Args:
        cfg (Config): The merged config.
        loaders (Sequence[str]): The dataloader keys the tool runs.

    Raises:
        PipelineConfigError: Naming the config, the transform's place and
            its own message, for a transform that refuses its arguments
            (a ``UserError``, ``ValueError`` or ``AssertionError`` of its
            constructor), or for a ``RandomZoom`` before
            ``LoadAnnotations`` (the mask would not be zoomed). An unknown
            type or argument keeps mmengine's error (reported with a
            spelling hint).
    """
    from mmengine.registry import TRANSFORMS, DefaultScope

    from ..datasets.random_zoom import zoom_before_masks
    where = getattr(cfg, 'filename', None) or 'the config'
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        for loader in loaders:
            dataset = (cfg.get(loader) or {}).get('dataset')
            for path, pipeline in _dataset_pipelines(dataset,
                                                     f'{loader}.dataset'):
                for index, transform in enumerate(pipeline):
                    if not isinstance(transform, dict):
                        continue  # a callable is used as it is
                    try:
                        TRANSFORMS.build(transform)
                    except (UserError, ValueError, AssertionError) as err:
                        args = {k: v for k, v in transform.items()
                                if k != 'type'}
                        reason = str(err) or (
                            f'{transform.get("type")} refused the arguments '
                            f'{args} ({type(err).__name__})')
                        raise PipelineConfigError(
                            f'{path}[{index}] of {where}: {reason}; nothing '
                            'was started') from err
                zoom = zoom_before_masks(pipeline)
                if zoom >= 0:
                    raise PipelineConfigError(
                        f'{path}[{zoom}] of {where}: RandomZoom comes before '
                        'LoadAnnotations, so it would zoom the image but not '
                        'its mask (which keeps its size: no error, a '
                        'misaligned ground truth); put it after '
                        'LoadAnnotations. Nothing was started')


LOADER_PHASES = {'train_dataloader': 'training',
                 'val_dataloader': 'validation',
                 'test_dataloader': 'test'}


def dataset_classes(dataset_cfg):
    """``(type name, classes)`` of the dataset a config will build, read from
    its ``metainfo`` or its class's ``METAINFO`` without building it (no
    data is read); wrappers (``RepeatDataset``, ``ConcatDataset``) give their
    first inner dataset's. ``(name, None)`` when the classes are unknown.

    Args:
        dataset_cfg (dict): A dataloader's ``dataset`` config.
    """
    from mmseg.registry import DATASETS
    inner = dataset_cfg.get('dataset') or (dataset_cfg.get('datasets')
                                           or [None])[0]
    metainfo = dataset_cfg.get('metainfo') or {}
    if metainfo.get('classes'):
        return str(dataset_cfg.get('type')), metainfo['classes']
    if isinstance(inner, dict):
        return dataset_classes(inner)
    dataset_type = dataset_cfg.get('type')
    dataset_class = DATASETS.get(dataset_type) if isinstance(
        dataset_type, str) else dataset_type
    if dataset_class is None:
        return str(dataset_type), None
    return dataset_class.__name__, getattr(dataset_class, 'METAINFO',
                                           {}).get('classes')


def check_dataset_classes(cfg, loaders):
    """Raise :class:`~mmseg_dsnet.engine.hooks.num_classes_check_hook.
    NumClassesMismatchError` before the runner exists when a head of
    ``cfg.model`` does not predict the classes of a loader's dataset, so a
    refused run leaves no run folder (``NumClassesCheckHook`` checks the
    same on a built runner).

    Args:
        cfg (Config): The merged config.
        loaders (Sequence[str]): The dataloader keys the tool runs.
    """
    from .hooks.num_classes_check_hook import check_head_classes
    model = cfg.get('model') or {}
    model = model.get('module', model)
    aux = model.get('auxiliary_head')
    aux = aux if isinstance(aux, (list, tuple)) else [aux]
    named = [('decode_head', model.get('decode_head'))] + [
        (f'auxiliary_head[{i}]', head) for i, head in enumerate(aux)]
    heads = [(name, head['num_classes'], head.get('out_channels'))
             for name, head in named
             if isinstance(head, dict) and 'num_classes' in head]
    for loader in loaders:
        dataset = (cfg.get(loader) or {}).get('dataset')
        if not isinstance(dataset, dict):
            continue
        name, classes = dataset_classes(dataset)
        if classes:
            check_head_classes(heads, classes, LOADER_PHASES[loader], name)
        _check_label_mapping(dataset, loader)


def _check_label_mapping(dataset_cfg, loader):
    """Let each ISIC dataset a loader reads refuse its ``metainfo``
    classes and ``reduce_zero_label`` (which would relabel the masks)
    before the runner makes its run folder; the dataset refuses the same
    when built."""
    from mmseg.registry import DATASETS

    from ..datasets.isic import ISICDataset
    from ..datasets.synthetic_fallback import dataset_leaves
    for path, leaf in dataset_leaves(dataset_cfg, f'{loader}.dataset'):
        leaf_type = leaf.get('type')
        leaf_class = DATASETS.get(leaf_type) if isinstance(
            leaf_type, str) else leaf_type
        if not (isinstance(leaf_class, type)
                and issubclass(leaf_class, ISICDataset)):
            continue
        classes = (leaf.get('metainfo') or {}).get('classes')
        if leaf.get('reduce_zero_label'):
            raise UserError(
                f'{path}.reduce_zero_label=True does not fit the ISIC masks '
                '(0 = background, 1 = lesion): the background would be '
                'ignored and the lesion learned as class 0. Remove the '
                'option; nothing was started.')
        if classes is not None:
            leaf_class.get_label_map(classes)


def check_evaluation_loaders(cfg, loaders):
    """Refuse, before the runner exists, a validation or test dataloader
    that leaves images out: with ``drop_last=True`` the last incomplete
    batch is never scored (every image, when the batch exceeds the split),
    which ``LesionMetric`` would otherwise refuse only at the end of the
    evaluation (of the first epoch, in training).

    Args:
        cfg (Config | dict): The merged config.
        loaders (Sequence[str]): The evaluation dataloader keys the tool
            runs (``val_dataloader``, ``test_dataloader``).

    Raises:
        UserError: Naming the loader and the option.
    """
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if isinstance(loader_cfg, dict) and loader_cfg.get('drop_last'):
            raise UserError(
                f'{loader}.drop_last is True: the last incomplete batch of '
                'the split would never be scored, so the figures would be '
                'of part of it; set --cfg-options '
                f'{loader}.drop_last=False')


def check_lesion_metrics(cfg, evaluators):
    """Refuse, before the runner exists, a ``LesionMetric`` evaluator whose
    arguments would give figures of nothing
    (:func:`~mmseg_dsnet.evaluation.lesion_metric.check_metric_args`: a
    threshold outside (0, 1), a TJ threshold in percent, a lesion label
    other than 0 or 1 ...); the metric itself refuses them only when the
    evaluation starts, or (``low_res_size=(0, 0)``) at its first image.

    Args:
        cfg (Config | dict): The merged config.
        evaluators (Sequence[str]): The evaluator keys the tool runs.

    Raises:
        UserError: Naming the evaluator and the argument.
    """
    import inspect

    from mmseg_dsnet.evaluation.lesion_metric import (MetricArgumentError,
                                                      check_metric_args)
    accepted = inspect.signature(check_metric_args).parameters
    for name in evaluators:
        metrics = cfg.get(name) or []
        if isinstance(metrics, dict):
            metrics = [metrics]
        for metric in metrics:
            if not isinstance(metric, dict) or metric.get('type') not in (
                    'LesionMetric', 'mmseg.LesionMetric'):
                continue
            try:
                check_metric_args(**{k: v for k, v in metric.items()
                                     if k in accepted})
            except MetricArgumentError as err:
                raise UserError(f'{name} (LesionMetric): {err}; nothing was '
                                'started') from None
            if metric.get('single_channel_input') == 'logit':
                _check_logit_input(cfg.get('model'), name)
        check_distinct_figure_names(name, metrics)


def _check_logit_input(model, name):
    """Refuse ``single_channel_input='logit'`` for a model that stores
    its 1-channel output as probabilities: every MMSegmentation segmentor
    does (``BaseSegmentor.postprocess_result`` applies the sigmoid), so the
    metric applied a second sigmoid and every pixel (probability >= 0
    gives sigmoid >= 0.5) was lesion: Sen 100, Spe 0, exit 0.

    Args:
        model (dict): The config's ``model``.
        name (str): The evaluator key, for the message.

    Raises:
        UserError: A segmentor of MMSegmentation's post-processing with a
            1-channel decode head.
    """
    from mmseg.models.segmentors.base import BaseSegmentor
    from mmseg.registry import MODELS
    if not isinstance(model, dict):
        return
    kind = model.get('type')
    try:
        segmentor = MODELS.get(kind) if isinstance(kind, str) else kind
    except Exception:  # a scope that is not registered: not known here
        return
    if not (isinstance(segmentor, type)
            and issubclass(segmentor, BaseSegmentor)
            and segmentor.postprocess_result is
            BaseSegmentor.postprocess_result):
        return
    head = model.get('decode_head')
    head = head[-1] if isinstance(head, (list, tuple)) and head else head
    if not isinstance(head, dict) or \
            (head.get('out_channels') or head.get('num_classes')) != 1:
        return
    raise UserError(
        f"{name} (LesionMetric): single_channel_input='logit', but the "
        f'model ({segmentor.__name__}) stores its 1-channel output as '
        "sigmoid probabilities (mmseg's postprocess_result), so the sigmoid "
        'would be applied twice and every pixel scored as lesion; leave '
        "single_channel_input unset ('probability'); nothing was started")


#: The figures of MMSegmentation's ``IoUMetric`` for each of its
#: ``iou_metrics`` (``aAcc`` comes with all).
_IOU_METRIC_FIGURES = {'mIoU': ('mIoU', 'mAcc'), 'mDice': ('mDice', 'mAcc'),
                       'mFscore': ('mFscore', 'mPrecision', 'mRecall')}


def _figure_names(metric):
    """The figure names an evaluator config reports (with its ``prefix``),
    or None when its type's names are not known here."""
    from mmseg_dsnet.evaluation.lesion_metric import METRIC_NAMES
    kind = metric.get('type')
    if kind in ('LesionMetric', 'mmseg.LesionMetric'):
        names = METRIC_NAMES
    elif kind in ('IoUMetric', 'mmseg.IoUMetric'):
        asked = metric.get('iou_metrics', ['mIoU'])
        asked = [asked] if isinstance(asked, str) else list(asked or [])
        names = ('aAcc', ) + tuple(
            n for key in asked for n in _IOU_METRIC_FIGURES.get(key, ()))
    else:
        return None
    prefix = metric.get('prefix')
    return [f'{prefix}/{n}' if prefix else n for n in names]


def check_distinct_figure_names(name, metrics):
    """Refuse evaluators that report a figure of one name: mmengine's
    ``Evaluator`` stops with a ``ValueError`` traceback only after the whole
    evaluation (in training, after the first epoch's). ``LesionMetric`` and
    ``IoUMetric`` both report ``mIoU``; two ``LesionMetric`` (say at two
    thresholds) report every figure twice.

    Args:
        name (str): The evaluator key (``test_evaluator`` ...).
        metrics (list): Its metric configs.

    Raises:
        UserError: Naming both metrics, the shared figures and the fix.
    """
    seen = {}
    for index, metric in enumerate(metrics):
        if not isinstance(metric, dict):
            continue
        names = _figure_names(metric)
        for other, other_names in seen.items():
            shared = [n for n in names or () if n in other_names]
            if shared:
                raise UserError(
                    f'{name}[{other}] ({metrics[other].get("type")}) and '
                    f'{name}[{index}] ({metric.get("type")}) both report '
                    f'{", ".join(shared)}: mmengine refuses figures of one '
                    'name, after the whole evaluation; give each a prefix of '
                    "its own (prefix='lesion', ...) or leave one out; nothing "
                    'was started')
        if names is not None:
            seen[index] = names


def check_one_lesion_figure_set(name, metrics):
    """Refuse evaluators whose figures a run record cannot take: it keeps
    one ``LesionMetric``'s figures (its ``IoU``, or the one prefix's
    ``prefix/IoU``), and the record of a design run or real-data check
    was refused only after the training, with none written (two prefixed
    ``LesionMetric``, or none). Evaluators of a type whose figures are not
    known here pass.

    Args:
        name (str): The evaluator key (``test_evaluator`` ...).
        metrics (dict | list): Its metric config(s).

    Raises:
        UserError: Naming the key and the ``LesionMetric`` prefixes.
    """
    metrics = [metrics] if isinstance(metrics, dict) else list(metrics or [])
    names = [_figure_names(m) if isinstance(m, dict) else None
             for m in metrics]
    if any(n is None for n in names) or \
            any('IoU' in n for n in names):
        return
    prefixes = [m.get('prefix') for m in metrics
                if m.get('type') in ('LesionMetric', 'mmseg.LesionMetric')]
    if len(prefixes) == 1:
        return
    found = (f'{len(prefixes)} LesionMetric (prefixes '
             f'{", ".join(map(repr, prefixes))})' if prefixes else
             'no LesionMetric')
    raise UserError(
        f'{name} holds {found}: the run record keeps the figures of one '
        'LesionMetric, and it would have been refused only after the '
        f'training; give {name} one LesionMetric (other metrics may stay); '
        'nothing was started')


def check_tta_model(cfg, config):
    """Refuse a ``tta_model`` that ``tools/test.py --tta`` cannot score a
    lesion model with: none (``tta_model=None``, or a config without our
    ``default_runtime``) was an ``AttributeError`` traceback; mmseg's
    ``SegTTAModel`` (its own ``default_runtime``) keeps the last view's
    ``seg_logits``, which the metric reads, so the figures, recorded as
    test-time augmented, were of the vertically flipped view alone (exit 0).

    Args:
        cfg (Config): The merged config.
        config (str): Its file, for the message.

    Raises:
        UserError: Naming the ``tta_model`` and ``LesionTTAModel``.
    """
    from mmseg.registry import MODELS

    from mmseg_dsnet.models.segmentors import LesionTTAModel
    tta = cfg.get('tta_model')
    kind = tta.get('type') if isinstance(tta, dict) else None
    try:
        model = MODELS.get(kind) if isinstance(kind, str) else kind
    except Exception:  # an unknown scope: refused below as not ours
        model = None
    if isinstance(model, type) and issubclass(model, LesionTTAModel):
        return
    given = f'type={kind!r}' if isinstance(tta, dict) else repr(tta)
    why = ("mmseg's SegTTAModel scores a lesion model on its last view "
           'only (after a second sigmoid)' if isinstance(tta, dict) else
           'the views need a model that averages them')
    raise UserError(
        f'--tta: tta_model of {config} is {given}, not LesionTTAModel: '
        f"{why}; set tta_model = dict(type='LesionTTAModel') in it (as "
        'configs/_base_/default_runtime.py does); nothing was started')


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
    if not all(isinstance(e, dict) and e.get('type') in (
            'LesionMetric', 'mmseg.LesionMetric') for e in evaluators):
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


def mask_threshold(head):
    """The lesion probability above which the decode head config ``head``
    calls a pixel lesion in its masks: its ``threshold`` for one output
    channel (MMSegmentation's 0.3 when unset), 0.5 (``argmax``) for two."""
    out_channels = head.get('out_channels') or head.get('num_classes')
    if out_channels != 1:
        return 0.5
    threshold = head.get('threshold')
    return 0.3 if threshold is None else float(threshold)


def check_decision_thresholds(cfg, evaluators=('val_evaluator',
                                             'test_evaluator')):
    """Raise :class:`ThresholdMismatchError` when a ``LesionMetric``
    evaluator thresholds the lesion probability elsewhere than the model's
    decode head: its figures would describe masks the model never outputs
    (the metric rebuilds the mask from the probabilities).

    Args:
        cfg (Config | dict): The merged config.
        evaluators (Sequence[str]): The evaluator keys the tool runs
            (``train.py`` validates, ``test.py`` tests).
    """
    model = cfg.get('model') or {}
    head = model.get('module', model).get('decode_head')
    if not isinstance(head, dict):
        return
    expected = mask_threshold(head)
    for name in evaluators:
        metrics = cfg.get(name) or []
        if isinstance(metrics, dict):
            metrics = [metrics]
        for evaluator in metrics:
            if evaluator.get('type') != 'LesionMetric':
                continue
            threshold = float(evaluator.get('threshold', 0.5))
            if threshold != expected:
                raise ThresholdMismatchError(
                    f'the decode head calls lesion above probability '
                    f'{expected} but {name} (LesionMetric) above '
                    f'{threshold}: its figures would not describe the '
                    "model's masks; set both to one value T "
                    '(--cfg-options model.decode_head.threshold=T '
                    f'{name}.threshold=T)')


def check_input_file(path, what):
    """Raise :class:`MissingInputError` (``<what> <path> does not exist``)
    unless ``path`` is a file; a URL (``https://``, ``s3://`` ...) is left to
    the loader.

    Args:
        path (str): The config or checkpoint path the user gave.
        what (str): How the message names it (``'config file'``,
            ``'checkpoint'``).
    """
    path = str(path)
    if '://' in path or osp.isfile(path):
        return
    reason = 'is a folder, not a file' if osp.isdir(path) else \
        'does not exist'
    raise MissingInputError(f'{what} {path} {reason}')


def load_config(path, what='config file'):
    """Read the config at ``path`` (``Config.fromfile``), refusing a file
    that is not one with :class:`ConfigFileError` naming it.

    Reading a config runs it, so a checkpoint given in its place, a syntax
    error or a missing ``_base_`` file ended in a traceback from deep in
    mmengine, which did not say which file to fix.

    Args:
        path (str | Path | Config): The config path the user gave; a
            ``Config`` is returned as it is.
        what (str): How the message names it. Default: 'config file'.

    Returns:
        Config: The config.
    """
    from mmengine.config import Config
    if isinstance(path, Config):
        return path
    path = str(path)
    check_input_file(path, what)
    try:
        return Config.fromfile(path)
    except Exception as err:  # noqa: BLE001  (any fault of the file)
        first = str(err).strip().splitlines()
        reason = f'{type(err).__name__}: {first[0] if first else ""}'
        hint = ''
        if osp.splitext(path)[1] not in ('.py', '.json', '.yml', '.yaml'):
            hint = ' (configs are .py files, e.g. configs/dsnet/' \
                   'dsnet_isic2017.py; was a checkpoint given in its place?)'
        raise ConfigFileError(f'{what} {path} cannot be read as a config: '
                              f'{reason}{hint}') from err


def check_config_sets(cfg, config, keys, needs):
    """Refuse a config that lacks what a tool runs (a model or dataset base
    config given to a tool that needs a whole one), before any work: the
    config object raised an ``AttributeError`` traceback where the tool
    first read the key.

    Args:
        cfg (Config): The loaded config.
        config (str): Its file, for the message.
        keys (Sequence[str]): Dotted keys the tool reads (``model``,
            ``train_dataloader.dataset.pipeline``); each must hold a dict or
            a list.
        needs (str): What the tool needs them for and which config to give
            (the message's second half).

    Raises:
        ConfigFileError: ``config file <config> sets no <keys>: <needs>``,
        naming every key it lacks.
    """
    missing = []
    for key in keys:
        first, *rest = key.split('.')
        value = cfg.get(first)
        for part in rest:
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, (dict, list, tuple)):
            missing.append(key)
    if missing:
        raise ConfigFileError(f'config file {config} sets no '
                              f'{", ".join(missing)}: {needs}')


def check_work_dir(work_dir):
    """Create ``work_dir`` and prove a file can be written there.

    Raises:
        WorkDirError: With the reason, e.g. a path component that is a
            file, a read-only or full file system, missing permissions.
    """
    refuse_unexpanded_home(work_dir, 'the work dir')
    try:
        os.makedirs(work_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=work_dir) as probe:
            probe.write(b'ok')
    except OSError as err:
        reason = err.strerror or str(err)
        blocker = _file_in_path(work_dir)
        if blocker:
            reason = f'{blocker} is a file, not a folder'
        raise WorkDirError(
            f'Cannot write to the work dir {work_dir}: {reason}. Nothing was '
            'started or changed; choose a writable folder with --work-dir.'
        ) from None


def check_config_not_dumped_over(config, work_dir):
    """Refuse a work dir where the runner's config dump
    (``<work_dir>/<config file name>``) is the config file given, when
    that file is a source config (it has ``_base_``): the dump replaced
    its text with the flattened config, ``--cfg-options`` (and test.py's
    checkpoint) baked in and its inheritance gone, exit 0. A run's own
    dump given back (``work_dirs/x/x.py``) is a dump already and passes.

    Args:
        config (str): The config file given.
        work_dir (str): The run's work dir.

    Raises:
        WorkDirError: Naming the config file and the work dir.
    """
    dump = osp.join(work_dir, osp.basename(config))
    if not (osp.isfile(dump) and osp.samefile(dump, config)):
        return
    try:
        with open(config, encoding='utf-8') as f:
            source = re.search(r'^_base_\s*=', f.read(), re.M) is not None
    except (OSError, UnicodeDecodeError):
        source = True
    if source:
        raise WorkDirError(
            f'--work-dir {work_dir} holds the config file {config}: the '
            f'runner writes its config dump to {dump}, which would replace '
            "the file's text (its _base_ inheritance flattened, the "
            'options of this run baked in); nothing was started; give '
            'another --work-dir')


# The checkpoints mmengine saves every epoch (or iterations) of a run.
_PERIODIC_CHECKPOINT = re.compile(r'(epoch|iter)_(\d+)\.pth')
# What a training writes into its work dir and a later step picks up.
_RUN_CHECKPOINT = re.compile(
    rf'{_PERIODIC_CHECKPOINT.pattern}|best_.+\.pth|last_checkpoint')


def check_no_earlier_run(work_dir, resumable=True):
    """Refuse to train afresh in a work dir that holds another run's
    checkpoints.

    A new run overwrites only the checkpoints it writes itself: a shorter
    run leaves the earlier run's later ``epoch_*.pth`` and its
    ``best_*.pth`` beside its own, where testing or ranking by name would
    pick them up as the new run's.

    Args:
        work_dir (str): The run's work dir.
        resumable (bool): Whether the tool can continue the earlier run
            (``--resume``); the message offers it only then.
            Default: True.

    Raises:
        WorkDirError: Naming the files found, when there are any.
    """
    if not osp.isdir(work_dir):
        return
    found = sorted(name for name in os.listdir(work_dir)
                   if _RUN_CHECKPOINT.fullmatch(name))
    if found:
        shown = first_few(found, 4)
        raise WorkDirError(
            f'The work dir {work_dir} already holds the checkpoints of a '
            f'run ({shown}); a new run would overwrite some of them and '
            'leave the others beside its own. Nothing was started; ' +
            ('continue that run with --resume, choose another --work-dir, '
             'or remove them.' if resumable else
             'choose another --work-dir, or remove them.'))


def check_output_file(path, option='--metrics-out'):
    """Check that ``path`` can be written later, so that a long evaluation
    does not end in a failed write. Nothing is created.

    Args:
        path (str): The output file.
        option (str): The command-line option that named it, for the
            message.

    Raises:
        WorkDirError: When ``path`` is a folder, or its parent is not a
            writable folder.
    """
    parent = osp.dirname(osp.abspath(path))
    reason = None
    if osp.isdir(path):
        reason = 'it is a folder, not a file'
    elif osp.exists(path) and not os.access(path, os.W_OK):
        reason = 'the file is not writable'
    else:
        # The parent may not exist yet (it is created before writing): the
        # nearest existing folder above it must be writable.
        existing = parent
        while not osp.exists(existing):
            existing = osp.dirname(existing)
        if not osp.isdir(existing):
            reason = f'{existing} is a file, not a folder'
        elif not os.access(existing, os.W_OK | os.X_OK):
            reason = f'{existing} is not writable'
    if reason:
        raise WorkDirError(
            f'Cannot write {option} {path}: {reason}. Nothing was started; '
            f'choose a writable file for {option}.')


def check_new_output_file(path, option, overwrite=False):
    """Before long work, refuse an output file that must not be replaced
    (:func:`~mmseg_dsnet.utils.fileio.refuse_existing`) or cannot be
    written (:func:`check_output_file`): a report written at the end would
    otherwise fail, or replace a file, only after all the work.

    Args:
        path (str): The output file.
        option (str): The command-line option that named it.
        overwrite (bool): Whether an existing file may be replaced.
            Default: False.
    """
    refuse_existing(path, overwrite)
    check_output_file(path, option)


def check_empty_output_dir(path, option='--out'):
    """Check that ``path`` is a new or empty folder, so that the files a run
    writes there are its own and none is replaced. Nothing is created.

    Args:
        path (str): The output folder.
        option (str): The command-line option that named it, for the
            message.

    Raises:
        WorkDirError: When ``path`` is a file or a folder with files.
    """
    refuse_unexpanded_home(path, option)
    reason = None
    if osp.exists(path) and not osp.isdir(path):
        reason = 'it is a file, not a folder'
    elif osp.isdir(path) and os.listdir(path):
        reason = 'the folder already holds files'
    if reason:
        raise WorkDirError(
            f'Cannot write {option} {path}: {reason}. Nothing was started; '
            f'choose a new or empty folder for {option}.')
    check_output_file(osp.join(path, 'probe'), option)


def _file_in_path(path):
    path = osp.abspath(path)
    while path and path != osp.dirname(path):
        if osp.isfile(path):
            return path
        path = osp.dirname(path)
    return None


def _is_complete(path):
    """A torch checkpoint is a zip archive; a truncated one has no central
    directory."""
    try:
        return osp.isfile(path) and zipfile.is_zipfile(path)
    except OSError:
        return False


def pick_resume_checkpoint(work_dir):
    """The checkpoint ``--resume`` should continue from.

    ``last_checkpoint`` names the newest checkpoint; if it is missing,
    empty, or names a file that is gone or incomplete (the run was killed
    while writing it), the newest complete ``epoch_*.pth`` / ``iter_*.pth``
    in ``work_dir`` is used instead, with a warning. So it is when it names
    a file in another folder (a copied or moved work dir still names the
    original's checkpoints, which may have moved on since).

    Returns:
        str | None: The checkpoint path, or None when there is none (the
        run then starts from scratch).

    Raises:
        UserError: ``last_checkpoint`` names a checkpoint in another folder
            and ``work_dir`` holds none of its own.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = None
    elsewhere = False
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip() or None
        elsewhere = bool(named) and osp.dirname(osp.realpath(named)) != \
            osp.realpath(work_dir)
        if named and not elsewhere and _is_complete(named):
            return named
    candidates = []
    if osp.isdir(work_dir):
        for name in os.listdir(work_dir):
            match = _PERIODIC_CHECKPOINT.fullmatch(name)
            if match:
                candidates.append((int(match.group(2)), name))
    for _, name in sorted(candidates, reverse=True):
        path = osp.join(work_dir, name)
        if _is_complete(path):
            if elsewhere:
                print_log(
                    f'last_checkpoint names {named!r}, outside the work dir '
                    f'{work_dir} (a copied or moved work dir); resuming '
                    f'from {path}, its own newest checkpoint, instead.',
                    logger='current', level=30)
            elif named or osp.isfile(pointer):
                print_log(
                    f'last_checkpoint names {named!r}, which is missing or '
                    f'incomplete; resuming from {path} instead.',
                    logger='current', level=30)
            return path
    if elsewhere:
        raise UserError(
            f'--resume: {pointer} names {named}, a checkpoint outside the '
            f'work dir, and {work_dir} holds no checkpoint of its own; copy '
            'the checkpoint into it (or give it with --cfg-options '
            'load_from=...) to continue that run')
    return None
