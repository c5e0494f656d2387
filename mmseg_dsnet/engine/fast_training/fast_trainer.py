"""Train several configs / seeds at once on cached data, one stream each."""
import contextlib
import json
import logging
import math
import os
import os.path as osp
import time
from typing import List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import set_random_seed

from ...datasets.synthetic_fallback import data_provenance
from ...utils.cli import device_option
from ...utils.code_revision import LOG_PREFIX, running_code_revision
from ...utils.fileio import atomic_write, json_text
from ...utils.messages import counted
from ..preflight.validation import save_best_rule
from ..resume_check import FAST_TRAINER
from .decoded_cache import (DecodedImageCache, check_plain_dataset,
                            config_type_name, split_train_pipeline)
from .errors import FastTrainingError
from .gpu_augmentation import BatchedSegAugmentation
from .training_run import TrainingRun


def _to_cpu(value):
    """A copy of a nested state dict with every tensor on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


class RunSpec:
    """What to train: a loaded config, a seed and a work dir."""

    def __init__(self, cfg: Config, config_path: str, seed: int,
                 work_dir: str):
        self.cfg = cfg
        self.config_path = config_path
        self.seed = seed
        self.work_dir = work_dir
        self.name = f'{osp.splitext(osp.basename(config_path))[0]}' \
            f'_seed{seed}'


def shared_training_setup(specs: Sequence[RunSpec]) -> dict:
    """Data, batch size and epochs every run must share (one cache, one
    iteration count). Raises FastTrainingError naming the config that
    differs."""
    def key(cfg):
        loader = cfg.train_dataloader
        dataset = dict(loader.dataset)
        return dict(
            dataset=json.dumps(dataset, sort_keys=True, default=str),
            batch_size=loader.batch_size,
            max_epochs=cfg.train_cfg.get('max_epochs'),
            loop=cfg.train_cfg.get('type', 'EpochBasedTrainLoop'))

    first = key(specs[0].cfg)
    if first['loop'] != 'EpochBasedTrainLoop' or not first['max_epochs']:
        raise FastTrainingError(
            f'{specs[0].config_path}: fast training needs an '
                         'epoch-based train_cfg with max_epochs')
    for spec in specs[1:]:
        other = key(spec.cfg)
        for field in first:
            if other[field] != first[field]:
                raise FastTrainingError(
                    f'{spec.config_path} differs from '
                    f'{specs[0].config_path} in train {field}; runs trained '
                    'together must share data, batch size and epochs')
    return first


#: ``custom_hooks`` of ``configs/_base_/default_runtime.py``: the fast
#: trainer does their work itself (reseeding, non-finite losses, broken
#: images, class counts) or they have none in one process without loader
#: workers. Any other hook (an ``EMAHook``, say) would be left out of the
#: training without a word, so a config with one is refused.
FOLLOWED_HOOKS = ('SyncBuffersHook', 'ReseedPerEpochHook',
                  'NonFiniteLossHook', 'BadSampleSummaryHook',
                  'NumClassesCheckHook', 'StrictCheckpointHook',
                  'StopLoaderWorkersHook')


def check_fast_run_config(cfg: Config, config_path: str,
                          validate: bool = False, test: bool = False) -> None:
    """Refuse, before any image is decoded or folder made, a config the
    fast trainer could not train as ``tools/train.py`` would.

    Args:
        cfg (Config): The run's config (options merged).
        config_path (str): Its file, for the messages.
        validate (bool): Whether the run validates (its val loader is then
            checked too). Default: False.
        test (bool): Whether ``tools/test.py`` tests the run afterwards
            (``fast_train.py --test``): its test loader, loop and evaluator
            must then be set. Default: False.

    Raises:
        FastTrainingError: A custom hook the trainer would not run, a
            setting it would not follow (:func:`check_settings_followed`), a
            training dataset that wraps others (:func:`check_plain_dataset`),
            or a ``load_from`` (the trainer does not load it).
        ConfigFileError: A config that sets no model, training data,
            optimizer or schedule (a model or dataset base config), or no
            validation (test) data or evaluator when the run validates
            (is tested).
        UserError: The preflight checks' errors (unknown keys, a model or
            pipeline that does not build, a ``model.test_cfg`` mmseg
            cannot score with, class counts, thresholds, a
            validation or test loader with ``drop_last=True``, a
            ``save_best`` the validation does not report, an
            ``auto_scale_lr`` mmengine would not apply as written).
    """
    from ..preflight import (check_auto_scale_lr, check_config_keys,
                             check_config_sets,
                             check_dataset_classes,
                             check_decision_thresholds,
                             check_evaluation_loaders,
                             check_held_out_images, check_inference_mode,
                             check_loader_keys, check_loop_keys,
                             check_model_builds, check_optimizer_builds,
                             check_pipelines_build,
                             check_pretrained_checkpoints, check_save_best,
                             check_trainable_model)
    check_plain_dataset((cfg.get('train_dataloader') or {}).get('dataset'),
                        config_path)
    if cfg.get('load_from'):
        # tools/train.py starts from these weights; the fast trainer from
        # the model's own initialisation, and a run from scratch would be
        # recorded as the config's.
        raise FastTrainingError(
            f'{config_path}: load_from={cfg.load_from} is set, and fast '
            'training does not load it (it trains from the model\'s own '
            'initialisation); train this config with tools/train.py, or '
            'set --cfg-options load_from=None to train from scratch')
    check_auto_scale_lr(cfg, config_path)
    keys = ('model', 'train_dataloader.dataset.pipeline', 'optim_wrapper',
            'train_cfg')
    needs = ("fast training trains the config's model on its training "
             'data, with its optimizer and schedule')
    if validate:
        keys += ('val_dataloader.dataset', 'val_evaluator')
        needs += ', and validates on its val_dataloader with its ' \
            'val_evaluator (--val-interval)'
    if test:
        keys += ('test_dataloader.dataset', 'test_cfg', 'test_evaluator')
        needs += ', and is then tested by tools/test.py on its ' \
            'test_dataloader with its test_cfg and test_evaluator (--test)'
    check_config_sets(cfg, config_path, keys,
                      needs + '; give a training config such as '
                      'configs/dsnet/dsnet_isic2017.py')
    hooks = [h.get('type') if isinstance(h, dict) else type(h).__name__
             for h in cfg.get('custom_hooks') or []]
    other = [str(h) for h in hooks if h not in FOLLOWED_HOOKS]
    if other:
        raise FastTrainingError(
            f'{config_path}: custom_hooks {", ".join(other)} would not run '
            'in fast training (it follows only '
            f'{", ".join(FOLLOWED_HOOKS)}); train this config with '
            'tools/train.py')
    check_settings_followed(cfg, config_path)
    check_config_keys(cfg)
    # A misspelt key (max_epoch, batch_sise) would leave the config's own
    # value in force without a word.
    check_loop_keys(cfg, config_path)
    check_loader_keys(cfg, ('train_dataloader', ), config_path)
    model = check_model_builds(cfg)
    check_pretrained_checkpoints(cfg, model)
    # The optimizer and its schedulers, built only once the run has made
    # its work dir and log folder.
    check_optimizer_builds(cfg, model, config_path)
    if validate or test:
        # mmseg reads model.test_cfg only when it scores the first image.
        check_inference_mode(model, config_path)
    del model
    check_trainable_model(cfg)
    loaders = ('train_dataloader', ) + (('val_dataloader', ) if validate
                                        else ()) + (
        # tools/test.py refuses its pipeline only after the training.
        ('test_dataloader', ) if test else ())
    check_pipelines_build(cfg, loaders)
    # The fast trainer validates by --val-interval, whatever val_cfg says.
    check_dataset_classes(cfg, ('train_dataloader', 'val_dataloader')
                          if validate else ('train_dataloader', ))
    check_decision_thresholds(cfg, ('val_evaluator', ))
    # LesionMetric refuses a drop_last=True loader only once it has run:
    # after the first validation (the test, after the whole training).
    check_evaluation_loaders(cfg, loaders[1:], config_path)
    if validate:
        # A key the validation does not report would stop the run at its
        # first validation, --val-interval epochs in.
        check_save_best(cfg, validates=True)
    # Validation figures (and the best checkpoint) on training images;
    # tools/test.py refuses such a test only after the training.
    check_held_out_images(cfg, tuple(
        loader for loader, runs in (('val_dataloader', validate),
                                    ('test_dataloader', test)) if runs),
        config_path)


#: Keys of ``optim_wrapper.optimizer`` the fast step follows: torch's own
#: Adam(W) is built with the group rates and these (``foreach``, ``fused``
#: and ``capturable`` choose kernels, not numbers; the tool sets them).
FOLLOWED_OPTIMIZER_KEYS = ('type', 'lr', 'betas', 'eps', 'weight_decay',
                           'amsgrad', 'foreach', 'fused', 'capturable')


def check_settings_followed(cfg: Config, config_path: str) -> None:
    """Refuse settings of a config file that change how a model trains
    and that the fast trainer would leave out without a word: it trains
    in a loop of its own (a ``runner_type`` is not built), steps
    torch's Adam(W) itself, applies only the learning-rate schedule, feeds
    the cached images through its own device augmentation and
    normalisation, shuffles every epoch with the run's seed, and runs its
    followed custom hooks with their defaults. Each of these would train
    otherwise than ``tools/train.py`` does, exit 0; all are refused before
    any image is decoded or work dir made.

    Args:
        cfg (Config): The run's config (options merged).
        config_path (str): Its file, for the messages.

    Raises:
        FastTrainingError: Naming the setting and what to use instead.
    """
    from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
    from mmengine.registry import PARAM_SCHEDULERS

    def refuse(setting, why, instead='train this config with tools/train.py'):
        raise FastTrainingError(f'{config_path}: {setting}: {why}, so it '
                                f'would be left out; {instead}')

    def refuse_other_type(part, default, key, why):
        # The fast trainer does the work of ``default`` itself.
        kind = config_type_name(part, default)
        if kind != default:
            refuse(f'{key}.type={kind}', why)

    runner_type = cfg.get('runner_type')
    if runner_type is not None:
        name = getattr(runner_type, '__name__', runner_type)
        if name != 'Runner':
            refuse(f'runner_type={name}', 'fast training runs its own '
                   "trainer, not the config's runner class")

    optim = cfg.get('optim_wrapper') or {}
    if isinstance(optim, dict):
        refuse_other_type(optim, 'OptimWrapper', 'optim_wrapper',
                          'fast training steps a plain OptimWrapper (its '
                          '--amp is bfloat16 autocast without loss scaling)')
        if optim.get('clip_grad'):
            refuse(f'optim_wrapper.clip_grad={optim["clip_grad"]}',
                   'fast training does not clip gradients')
        if optim.get('accumulative_counts', 1) != 1:
            refuse('optim_wrapper.accumulative_counts='
                   f'{optim["accumulative_counts"]}',
                   'fast training steps the optimizer every iteration')
        optimizer = optim.get('optimizer') or {}
        kind = config_type_name(optimizer)
        from .training_run import SUPPORTED_OPTIMIZERS
        if kind not in SUPPORTED_OPTIMIZERS:
            refuse(f'optim_wrapper.optimizer.type={kind}',
                   'fast training steps only '
                   f'{" and ".join(SUPPORTED_OPTIMIZERS)}')
        other = [k for k in optimizer if k not in FOLLOWED_OPTIMIZER_KEYS]
        if other:
            refuse(', '.join(f'optim_wrapper.optimizer.{k}={optimizer[k]}'
                             for k in other),
                   f'fast training builds torch\'s {kind} with only '
                   f'{", ".join(FOLLOWED_OPTIMIZER_KEYS[1:6])}')

    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for index, scheduler in enumerate(schedulers):
        if not isinstance(scheduler, dict):
            continue
        kind = scheduler.get('type')
        cls = kind if isinstance(kind, type) else PARAM_SCHEDULERS.get(kind)
        name = getattr(cls, '__name__', kind)
        setting = f'param_scheduler[{index}] {name}'
        if cls is None:
            refuse(setting, 'no such scheduler is registered',
                   'give a registered mmengine scheduler')
        if 'Plateau' in name:
            # Stepped without metrics it counts steps and changes nothing.
            refuse(setting, 'it follows validation metrics, which the fast '
                   'training schedule (computed before training) has none of')
        if not issubclass(cls, LRSchedulerMixin) and \
                scheduler.get('param_name') != 'lr':
            refuse(setting + (f' (param_name={scheduler.get("param_name")})'
                              if 'param_name' in scheduler else ''),
                   'fast training applies only the learning-rate schedule')

    randomness = cfg.get('randomness') or {}
    if isinstance(randomness, dict) and randomness.get('deterministic'):
        refuse('randomness.deterministic=True', 'fast training does not '
               "make torch's algorithms deterministic (cudnn.deterministic, "
               "use_deterministic_algorithms) and sets each run's "
               'randomness to its seed alone')

    preprocessor = (cfg.get('model') or {}).get('data_preprocessor') or {}
    if isinstance(preprocessor, dict):
        refuse_other_type(preprocessor, 'SegDataPreProcessor',
                          'model.data_preprocessor',
                          'fast training normalises the batch itself as '
                          "mmseg's SegDataPreProcessor does")
        if preprocessor.get('batch_augments'):
            refuse('model.data_preprocessor.batch_augments',
                   'fast training does not run the data preprocessor')

    loader = cfg.get('train_dataloader') or {}
    sampler = loader.get('sampler') or {}
    if isinstance(sampler, dict) and sampler:
        refuse_other_type(sampler, 'DefaultSampler',
                          'train_dataloader.sampler',
                          'fast training reshuffles the whole training split '
                          'every epoch, as DefaultSampler(shuffle=True) does')
        if not sampler.get('shuffle', True):
            refuse('train_dataloader.sampler.shuffle=False', 'fast training '
                   'reshuffles the training split every epoch')
        if sampler.get('seed') is not None:
            refuse(f'train_dataloader.sampler.seed={sampler["seed"]}',
                   "fast training shuffles with each run's own seed",
                   'give the seed with --seed or CONFIG@SEEDS, or train '
                   'with tools/train.py')
    if loader.get('batch_sampler'):
        refuse(f'train_dataloader.batch_sampler={loader["batch_sampler"]}',
               'fast training draws its batches from one shuffled order')

    for hook in cfg.get('custom_hooks') or []:
        if not isinstance(hook, dict):
            continue
        kind = config_type_name(hook)
        options = {k: v for k, v in hook.items()
                   if k not in ('type', 'priority')}
        if kind in FOLLOWED_HOOKS and options:
            refuse(f'custom_hooks {kind}(' + ', '.join(
                f'{k}={v!r}' for k, v in options.items()) + ')',
                   'fast training does this hook\'s work itself, with its '
                   'defaults (ReseedPerEpochHook: the run\'s seed)')

    # The random transforms: those the device augmentation does not run,
    # or an argument of one it does not read.
    pipeline = (loader.get('dataset') or {}).get('pipeline')
    if isinstance(pipeline, (list, tuple)):
        try:
            _, rest = split_train_pipeline(pipeline)
            BatchedSegAugmentation(rest)
        except FastTrainingError as err:
            raise FastTrainingError(
                f'{config_path}: train_dataloader.dataset.pipeline: {err}'
            ) from None


def check_cfg_options(options) -> None:
    """Refuse ``--cfg-options`` the fast trainer would drop: it sets every
    run's ``randomness`` (the seed of ``--seed`` or ``CONFIG@SEEDS``) and
    ``work_dir`` (``--work-dir``) itself, so ``randomness.seed=5`` would
    train and record seed 0 and ``work_dir=X`` leave X empty, exit 0; it
    validates, saves and resumes by its flags (``--val-interval``,
    ``--checkpoint-interval``, ``--resume``), so ``train_cfg.val_interval``,
    ``train_cfg.val_begin``, ``resume`` and the checkpoint hook's options
    other than ``save_best`` and ``rule`` would be dropped too.

    Args:
        options (dict | None): The ``--cfg-options`` given (dotted keys).

    Raises:
        FastTrainingError: Naming the option and the one to give instead.
    """
    for key, value in (options or {}).items():
        first = key.split('.')[0]
        if first == 'randomness':
            seed = value if key == 'randomness.seed' else None
            raise FastTrainingError(
                f'--cfg-options {key}={value}: fast_train.py sets each '
                "run's randomness itself, with only the seed of --seed or "
                'CONFIG@SEEDS, so this would be dropped' + (
                    f'; give --seed {seed}' if seed is not None else ''))
        if first == 'work_dir':
            raise FastTrainingError(
                f'--cfg-options {key}={value}: fast_train.py puts each run '
                'in --work-dir (one sub-folder per run when there are '
                f'several), so this would be dropped; give --work-dir '
                f'{value}')
        # The loop and checkpoints follow the tool's own flags; of the
        # checkpoint hook only the best checkpoint's key and rule are read.
        # Taken, these options would train without the validations or
        # checkpoints they ask for.
        if key in ('train_cfg.val_interval', 'train_cfg.val_begin',
                   'train_cfg.dynamic_intervals'):
            raise FastTrainingError(
                f'--cfg-options {key}={value}: fast_train.py validates only '
                'with --val-interval N (every N epochs and after the last), '
                'so this would be dropped; give --val-interval instead')
        if key == 'resume':
            raise FastTrainingError(
                f'--cfg-options {key}={value}: fast_train.py continues a run '
                'only with --resume, so this would be dropped; give --resume')
        hook = 'default_hooks.checkpoint'
        if key == hook or (key.startswith(hook + '.') and key[len(hook) + 1:]
                           not in ('save_best', 'rule')):
            instead = '; give --checkpoint-interval N' if key == \
                f'{hook}.interval' else ''
            raise FastTrainingError(
                f'--cfg-options {key}={value}: fast_train.py saves its '
                'checkpoints itself (the last epoch, every '
                '--checkpoint-interval epochs keeping the newest only, and '
                'with --val-interval the best by the checkpoint hook\'s '
                'save_best and rule, which are all it reads of it), so this '
                f'would be dropped{instead}')


def training_device(name) -> torch.device:
    """The device to train on, refused with a
    :class:`~mmseg_dsnet.utils.errors.UserError` when this machine cannot
    train there (the tool calls it before it makes any work dir).

    Args:
        name (str | torch.device): ``'cuda'``, ``'cuda:N'`` or ``'cpu'``.

    Returns:
        torch.device: The device.
    """
    return device_option(name, task='fast training')


def last_checkpoint_of(work_dir) -> str:
    """The checkpoint ``--resume`` continues from: the one the
    ``last_checkpoint`` file of ``work_dir`` names. Nothing is created (the
    tool calls it before it makes the work dir).

    Args:
        work_dir (str): The work dir of a run.

    Returns:
        str: The checkpoint path.

    Raises:
        FastTrainingError: ``work_dir`` holds no ``last_checkpoint`` (or does
            not exist), or it names a file that does not exist, or one in
            another folder that ``work_dir`` has no copy of.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        raise FastTrainingError(f'--resume: no last_checkpoint in {work_dir}')
    with open(pointer) as f:
        path = f.read().strip()
    if path and osp.dirname(osp.realpath(path)) != osp.realpath(work_dir):
        # A copied or moved work dir still names the original's checkpoint,
        # which may have trained on since: the copy resumes from its own.
        own = osp.join(work_dir, osp.basename(path))
        if osp.isfile(own):
            return own
        raise FastTrainingError(
            f'--resume: {pointer} names {path}, a checkpoint outside the '
            f'work dir, and {work_dir} holds no {osp.basename(path)} of its '
            'own; copy the checkpoint into it to continue that run')
    if not osp.isfile(path):
        raise FastTrainingError(
            f'--resume: {pointer} names {path}, which does not exist')
    return path


class FastTrainer:
    """Train every :class:`RunSpec` together on one device.

    The training split is decoded once into device memory
    (:class:`DecodedImageCache`); each iteration every run gathers its own
    shuffled batch, augments it on the device and takes one optimizer step,
    captured in a CUDA graph on CUDA. Runs step on their own CUDA streams,
    so small models overlap on the GPU. The last partial batch of each
    epoch is dropped (a captured step has a fixed batch size; the order is
    reshuffled every epoch, so every image is still used).

    Each run's work dir gets what ``tools/train.py`` would leave there: the
    dumped config, ``<timestamp>/<timestamp>.log`` in mmengine's format,
    ``vis_data/scalars.json``, ``epoch_<n>.pth`` and ``last_checkpoint``,
    plus ``fast_train.json`` with the timing.

    Args:
        specs (Sequence[RunSpec]): Runs, most important first (the time
            limit drops runs from the end).
        device (str): ``'cuda'`` or ``'cpu'``.
        cuda_graph (bool, optional): Capture the step; default: on CUDA.
        channels_last (bool, optional): Channels-last inputs; default: on
            CUDA (DSNet's step on an H200: 8.5 ms instead of 15.3 ms, as
            cuDNN's NCHW BatchNorm kernels are slow for few channels).
        amp (bool): bfloat16 autocast. Default: False.
        compile (bool): ``torch.compile`` the networks. Default: False.
        fused_optimizer (bool): torch's fused Adam(W) on CUDA (ignored on
            the CPU, and recorded as False there).
            Default: True.
        warmup_iters (int): Eager steps before capture. Default: 3.
        time_limit (float, optional): Seconds the training loop may take;
            after each epoch, while several runs remain and the projected
            total is above it, runs are stopped from the last one, as
            many as it takes (and reported).
        checkpoint_interval (int): Also save every this many epochs
            (0: only at the end). Default: 0.
        val_interval (int): Validate on the config's ``val_dataloader``
            every this many epochs and at the end, keeping
            ``best_<key>_epoch_<n>.pth`` by the checkpoint hook's
            ``save_best`` key and ``rule`` (0: no validation). Default: 0.
        workers (int, optional): Image-decoding threads.
        progress (bool): Console progress. Default: True.
        resume (bool): Continue every run from the ``last_checkpoint`` of
            its work dir (weights, optimizer, generators, epoch; all runs
            must stand at the same epoch). Default: False.
    """

    def __init__(self,
                 specs: Sequence[RunSpec],
                 device: str = 'cuda',
                 cuda_graph: Optional[bool] = None,
                 channels_last: Optional[bool] = None,
                 amp: bool = False,
                 compile: bool = False,
                 fused_optimizer: bool = True,
                 warmup_iters: int = 3,
                 time_limit: Optional[float] = None,
                 checkpoint_interval: int = 0,
                 val_interval: int = 0,
                 workers: Optional[int] = None,
                 progress: bool = True,
                 resume: bool = False):
        if not specs:
            raise FastTrainingError('nothing to train')
        self.specs = list(specs)
        self.device = training_device(device)
        self.cuda_graph = (self.device.type == 'cuda'
                           if cuda_graph is None else cuda_graph)
        self.channels_last = (self.device.type == 'cuda'
                              if channels_last is None else channels_last)
        self.amp = amp
        self.compile = compile
        # Fused Adam(W) kernels exist on CUDA only: the summary and the
        # leaderboard's records say what ran, not what was asked.
        self.fused_optimizer = fused_optimizer and self.device.type == 'cuda'
        self.warmup_iters = max(1, warmup_iters) if self.cuda_graph else 0
        self.time_limit = time_limit
        self.checkpoint_interval = checkpoint_interval
        self.val_interval = val_interval
        self.workers = workers
        self.progress = progress
        self.resume = resume
        self.timestamp = time.strftime('%Y%m%d_%H%M%S', time.localtime())

    # ------------------------------------------------------------------ setup
    def _prepare(self):
        from mmengine.registry import init_default_scope
        shared = shared_training_setup(self.specs)
        cfg = self.specs[0].cfg
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        # Built before the images are decoded and any run folder is made:
        # a validation split that cannot be read (a wrong data_root) is
        # refused before both. _start_run re-seeds before the model.
        self.validators = {}
        if self.val_interval:
            from .validator import Validator
            self.validators = {spec.name: Validator(spec.cfg)
                               for spec in self.specs}
        self.batch_size = shared['batch_size']
        self.max_epochs = shared['max_epochs']
        prefix, rest = split_train_pipeline(cfg.train_dataloader.dataset.
                                            pipeline)
        self.augmentation = BatchedSegAugmentation(rest)
        start = time.perf_counter()
        cache = DecodedImageCache.from_dataset_cfg(
            cfg.train_dataloader.dataset, prefix, self.workers,
            self.progress)
        self.cache = cache.to(self.device)
        self.cache_seconds = time.perf_counter() - start
        # Where the cached images came from (a synthetic stand-in says so).
        self.trained_data = data_provenance(cfg.train_dataloader.dataset,
                                            len(self.cache))
        if len(self.cache) < self.batch_size:
            raise FastTrainingError(
                f'{len(self.cache)} training images, fewer than one batch '
                f'of {self.batch_size}')
        self.iters_per_epoch = len(self.cache) // self.batch_size

    def _start_run(self, spec: RunSpec) -> dict:
        from ..log_dir import claim_log_dir
        # A run started in the same second as the previous one (a quick
        # resume) gets its own folder instead of appending to that log.
        stamp = claim_log_dir(spec.work_dir, self.timestamp)
        log_dir = osp.join(spec.work_dir, stamp)
        os.makedirs(osp.join(log_dir, 'vis_data'))
        spec.cfg.randomness = dict(seed=spec.seed)
        spec.cfg.work_dir = spec.work_dir
        spec.cfg.dump(osp.join(spec.work_dir,
                               osp.basename(spec.config_path)))
        logger = MMLogger.get_instance(
            # Unique per work dir: MMLogger returns an existing instance
            # (and its old log file) for a name it has seen.
            f'fast_train_{osp.abspath(spec.work_dir)}_{stamp}',
            logger_name='mmengine',
            log_file=osp.join(log_dir, f'{stamp}.log'),
            log_level='INFO')
        for handler in logger.handlers:
            if not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.ERROR)  # the console gets a summary
        logger.info(self._environment_text(spec))
        # As mmengine's runners here log it (log_dir.SeparateLogDirRunner).
        logger.info(LOG_PREFIX + running_code_revision())
        # Written into every checkpoint as mmengine's Runner does: the
        # checks of the network, input size and training split read it.
        cfg_text = spec.cfg.pretty_text
        logger.info(f'Config:\n{cfg_text}')
        set_random_seed(spec.seed)
        run = TrainingRun(
            spec.cfg, self.cache, self.augmentation, self.batch_size,
            self.iters_per_epoch, self.max_epochs, self.device,
            cuda_graph=self.cuda_graph, channels_last=self.channels_last,
            fused_optimizer=self.fused_optimizer, amp=self.amp,
            compile=self.compile, seed=spec.seed)
        generator = torch.Generator(self.device)
        generator.manual_seed(spec.seed)
        validator, best = None, None
        if self.val_interval:
            validator = self.validators[spec.name]
            hook = (spec.cfg.get('default_hooks') or {}).get(
                'checkpoint') or {}
            # The first of a list of keys, with its rule: the hook's, or
            # the one mmengine's CheckpointHook infers from the key (a
            # loss-like key taken as 'greater' kept the worst checkpoint).
            # 'auto' is taken at the first validation, as the hook does.
            key = hook.get('save_best') or 'IoU'
            key = key[0] if isinstance(key, (list, tuple)) else key
            rule = None if key == 'auto' else save_best_rule(
                dict(hook, save_best=key) if hook.get('save_best')
                else dict(hook, save_best=key, rule='greater'), key,
                spec.cfg.get('default_scope', 'mmengine'))
            best = dict(key=key, rule=rule,
                        score=None, path=None, epoch=None)
        return dict(spec=spec, run=run, logger=logger, log_dir=log_dir,
                    cfg_text=cfg_text,
                    validator=validator, best=best,
                    generator=generator, order=None, active=True, steps=0,
                    stopped=None, epochs=0, scalars=None, eager=False,
                    checkpoints=[], validation=None)

    def _environment_text(self, spec: RunSpec) -> str:
        from mmseg.utils import collect_env
        env = '\n    '.join(f'{k}: {v}' for k, v in collect_env().items())
        dash = '-' * 60
        return (f'\n{dash}\nSystem environment:\n    {env}\n\n'
                f'Runtime environment:\n    seed: {spec.seed}\n'
                # What trained: the environment says only whether CUDA
                # was there (leaderboard.py collect reads this line).
                f'    device: {self._device_name()}\n'
                f'    trainer: tools/fast_train.py (decoded-image cache, '
                f'device augmentation, cuda_graph={self.cuda_graph}, '
                f'channels_last={self.channels_last}, '
                f'fused_optimizer={self.fused_optimizer}, amp={self.amp}, '
                f'compile={self.compile})\n{dash}')

    def _stream(self, state):
        stream = state['run'].stream
        return torch.cuda.stream(stream) if stream is not None else \
            contextlib.nullcontext()

    # ------------------------------------------------------------------ train
    def train(self) -> List[dict]:
        """Train all runs; returns one summary dict per run."""
        self._prepare()
        # Read what to resume before anything is written: a run that cannot
        # resume must not leave a new log folder or replace its config.
        resumed = self._resume_points() if self.resume else None
        states = [self._start_run(spec) for spec in self.specs]
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
        # As mmengine's runner does (setup_env), on any device: cuDNN times
        # its kernels only where the config asks (env_cfg.cudnn_benchmark);
        # the flag is one for the process, so every run must ask.
        torch.backends.cudnn.benchmark = all(
            bool((spec.cfg.get('env_cfg') or {}).get('cudnn_benchmark'))
            for spec in self.specs)
        start_epoch = self._resume(states, resumed) if self.resume else 0
        self.start_epoch = start_epoch
        for state in states:
            state['logger'].info(
                f'Checkpoints will be saved to {state["spec"].work_dir}.')
        self._say(f'training {counted(len(states), "run")}: '
                  f'{counted(self.max_epochs, "epoch")} x '
                  f'{counted(self.iters_per_epoch, "iteration")} of batch '
                  f'{self.batch_size} on {self._device_name()}')
        start = time.perf_counter()
        previous = 0.0
        capture_seconds = 0.0
        for epoch in range(start_epoch, self.max_epochs):
            active = [s for s in states if s['active']]
            if not active:
                break
            for state in active:
                with self._stream(state):
                    order = torch.randperm(
                        len(self.cache), device=self.device,
                        generator=state['generator'])
                    state['order'] = order[:self.iters_per_epoch *
                                           self.batch_size].view(
                                               self.iters_per_epoch, -1)
            for index in range(self.iters_per_epoch):
                iteration = epoch * self.iters_per_epoch + index
                for state in active:
                    run = state['run']
                    with self._stream(state):
                        run.batch_index.copy_(state['order'][index])
                        if self.cuda_graph and run.graph is None and \
                                not state['eager'] and \
                                state['steps'] >= self.warmup_iters:
                            tick = time.perf_counter()
                            self._capture(state, iteration)
                            capture_seconds += time.perf_counter() - tick
                        run.step(iteration)
                        state['steps'] += 1
            elapsed = time.perf_counter() - start
            for state in active:
                self._end_epoch(state, epoch + 1, elapsed)
            epoch_seconds = elapsed - previous
            previous = elapsed
            self._apply_time_limit(states, epoch + 1, elapsed, epoch_seconds)
            if self.progress and ((epoch + 1) % max(1, self.max_epochs // 20)
                                  == 0 or epoch + 1 == self.max_epochs):
                done = epoch + 1 - start_epoch
                rate = done * self.iters_per_epoch * self.batch_size / elapsed
                eta = elapsed / done * (self.max_epochs - epoch - 1)
                self._say(f'epoch {epoch + 1}/{self.max_epochs}  '
                          f'{counted(len(active), "run")}  '
                          f'{rate:.0f} img/s per run  '
                          f'{elapsed:.0f} s elapsed, eta {eta:.0f} s')
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
        self.loop_seconds = time.perf_counter() - start
        self.capture_seconds = capture_seconds
        self.total_images = sum(
            s['epochs'] - start_epoch for s in states) * \
            self.iters_per_epoch * self.batch_size
        return [self._finish(state) for state in states]

    def _capture(self, state, iteration):
        """Capture the run's step; if that fails, say why and keep the run
        going eagerly (slower, same result)."""
        run = state['run']
        run.set_iteration(iteration)
        try:
            run.capture()
        except Exception as err:  # noqa: BLE001  (any capture failure)
            run.graph = None
            state['eager'] = True
            message = (f'CUDA graph capture failed ({type(err).__name__}: '
                       f'{err}); this run continues without the graph')
            state['logger'].warning(message)
            self._say(f'{state["spec"].name}: {message}')

    def _end_epoch(self, state, epoch, elapsed):
        run, logger = state['run'], state['logger']
        scalars = run.scalars()
        state['epochs'], state['scalars'] = epoch, scalars
        iteration = epoch * self.iters_per_epoch
        per_iter = elapsed / ((epoch - self.start_epoch) *
                              self.iters_per_epoch)
        text = '  '.join(f'{k}: {v:.4e}' if k == 'lr' else f'{k}: {v:.4f}'
                         for k, v in scalars.items())
        logger.info(f'Epoch(train) [{epoch}][{self.iters_per_epoch}/'
                    f'{self.iters_per_epoch}]  {text}  time: {per_iter:.4f}'
                    f'  data_time: 0.0000')
        with open(osp.join(state['log_dir'], 'vis_data', 'scalars.json'),
                  'a') as f:
            f.write(json.dumps(dict(scalars, time=per_iter, data_time=0.0,
                                    epoch=epoch, iter=iteration,
                                    step=iteration)) + '\n')
        if not all(math.isfinite(v) for v in scalars.values()):
            state['active'] = False
            state['stopped'] = (f'non-finite loss at epoch {epoch}: '
                                f'{scalars}')
            logger.error(state['stopped'])
            self._say(f'{state["spec"].name}: {state["stopped"]}')
            return
        if self.checkpoint_interval and epoch % self.checkpoint_interval \
                == 0 and epoch < self.max_epochs:
            self._save(state, epoch)
        if state['validator'] is not None and (
                epoch % self.val_interval == 0 or epoch == self.max_epochs):
            self._validate(state, epoch)

    def _validate(self, state, epoch):
        """Validate, log like mmengine's ValLoop, keep the best
        checkpoint."""
        run, best = state['run'], state['best']
        with self._stream(state):
            if run.stream is not None:
                run.stream.synchronize()
            metrics = state['validator'](run.model, epoch)
        count = len(state['validator'])
        state['validation'] = dict(epoch=epoch, metrics=metrics,
                                   images=count)
        text = '  '.join(f'{k}: {v:.4f}' for k, v in metrics.items())
        state['logger'].info(f'Epoch(val) [{epoch}][{count}/{count}]    '
                             f'{text}')
        with open(osp.join(state['log_dir'], 'vis_data', 'scalars.json'),
                  'a') as f:
            f.write(json.dumps(dict(metrics, step=epoch)) + '\n')
        if best['key'] == 'auto':
            # mmengine's CheckpointHook: the first metric the evaluator
            # returns.
            best['key'] = next(iter(metrics))
            cfg = state['spec'].cfg
            best['rule'] = save_best_rule(
                cfg.default_hooks.checkpoint, best['key'],
                cfg.get('default_scope', 'mmengine'))
        score = metrics.get(best['key'])
        if score is None:
            raise FastTrainingError(
                f'save_best key {best["key"]!r} is not among the validation '
                f'metrics {sorted(metrics)}')
        better = best['score'] is None or (
            score > best['score'] if best['rule'] == 'greater' else
            score < best['score'])
        if better:
            old = best['path']
            best.update(score=score, epoch=epoch, path=self._save(
                state, epoch, name=f'best_{best["key"]}_epoch_{epoch}.pth',
                keep_others=True))
            if old and old != best['path'] and osp.exists(old):
                os.remove(old)
            state['logger'].info(f'The best checkpoint with {score:.4f} '
                                 f'{best["key"]} at {epoch} epoch is saved '
                                 f'to {osp.basename(best["path"])}.')

    def _apply_time_limit(self, states, epochs_done, elapsed,
                          epoch_seconds):
        """Stop runs from the end of the list until the loop, continuing
        at the pace of the epoch just finished (taken as the same share of
        it for every run), would end within the time limit; the last run
        is stopped before an epoch that would pass it."""
        if self.time_limit is None or epochs_done - self.start_epoch < 2:
            return  # the first epoch holds the warm-up and the captures
        remaining = self.max_epochs - epochs_done
        if not remaining:
            return  # every run has trained all its epochs
        active = [s for s in states if s['active']]
        projected = elapsed + epoch_seconds * remaining
        if len(active) == 1 and elapsed + epoch_seconds > self.time_limit:
            # The last run is saved where it is rather than cut by a kill.
            self._stop(active[0], epochs_done, (
                f'stopped after epoch {epochs_done} of {self.max_epochs}: '
                f'another epoch would pass the time limit of '
                f'{self.time_limit:.0f} s'))
        elif len(active) > 1 and projected > self.time_limit:
            # All that must go, at once: one run an epoch sheds too little
            # when many runs were started.
            per_run = epoch_seconds / len(active) * remaining
            keep = max(1, int((self.time_limit - elapsed) // per_run))
            for state in reversed(active[keep:]):
                self._stop(state, epochs_done, (
                    f'stopped after epoch {epochs_done}: with '
                    f'{counted(len(active), "run")} the loop would take '
                    f'{projected:.0f} s, over the time limit of '
                    f'{self.time_limit:.0f} s'))

    def _stop(self, state, epochs_done, reason):
        """Take a run out of the loop, say why, and save it (resumable)."""
        state['active'] = False
        state['stopped'] = reason
        state['logger'].warning(reason)
        self._say(f'{state["spec"].name}: {reason}')
        self._save(state, epochs_done)

    # ----------------------------------------------------------------- finish
    def _save(self, state, epoch, name=None, keep_others=False):
        import io
        spec, run = state['spec'], state['run']
        if run.stream is not None:
            run.stream.synchronize()
        meta = dict(
            epoch=epoch, iter=epoch * self.iters_per_epoch, seed=spec.seed,
            experiment_name=spec.name, trainer=FAST_TRAINER,
            amp=self.amp, best=state['best'],
            dataset_meta=self.cache.metainfo, cfg=state['cfg_text'])
        state_dict = _to_cpu(run.model.state_dict())
        checkpoint = dict(meta=meta, state_dict=state_dict)
        if not keep_others:  # what --resume needs
            checkpoint['optimizer'] = _to_cpu(run.optimizer.state_dict())
            checkpoint['generators'] = dict(
                order=state['generator'].get_state(),
                augmentation=run.generator.get_state())
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        path = osp.join(spec.work_dir, name or f'epoch_{epoch}.pth')
        atomic_write(buffer.getvalue(), path)
        if keep_others:
            return path
        atomic_write(path, osp.join(spec.work_dir, 'last_checkpoint'))
        for old in state['checkpoints']:
            if old != path and osp.exists(old):
                os.remove(old)  # keep the newest only, like max_keep_ckpts
        state['checkpoints'] = [path]
        state['logger'].info(f'Saving checkpoint at {epoch} epochs')
        return path

    def _resume_points(self) -> dict:
        """Load and check every run's ``last_checkpoint`` before anything
        is written.

        Returns:
            dict: ``{run name: (checkpoint path, loaded checkpoint)}``.

        Raises:
            FastTrainingError: A run without a resumable checkpoint, one
                that already trained all ``max_epochs`` (resuming would
                train nothing and replace its ``fast_train.json``), or runs
                standing at different epochs.
            ResumeMismatchError: A run resumed with another seed or config
                than it was trained with (its checkpoint's seed, the config
                dumped in its work dir), or on the synthetic set after
                other images (or back): the result would mix two runs
                while its records name the new one.
        """
        from mmseg.registry import MODELS

        from ...compat import checkpoint_meta, safe_torch_load
        from ..checkpoint_match import check_checkpoint_matches
        from ..resume_check import (RESUMED_PARTS, refuse_resume_changes,
                                    refuse_synthetic_switches,
                                    resume_config_changes,
                                    synthetic_switches)
        points, epochs = {}, {}
        for spec in self.specs:
            path = last_checkpoint_of(spec.work_dir)
            checkpoint = safe_torch_load(path, map_location='cpu')
            if 'optimizer' not in checkpoint:
                raise FastTrainingError(
                    f'--resume: {path} holds no optimizer state')
            meta = checkpoint_meta(checkpoint)
            if meta.get('trainer') != FAST_TRAINER or \
                    'generators' not in checkpoint:
                # A KeyError traceback once the run has dumped its config
                # over the one tools/train.py --resume compares with.
                raise FastTrainingError(
                    f'--resume: {path} was not saved by {FAST_TRAINER} '
                    "(mmengine's runner, tools/train.py, saves checkpoints "
                    'like it) and holds none of its data order and '
                    'augmentation state; continue that run with '
                    'tools/train.py --resume, or train anew in another '
                    '--work-dir')
            # A short message naming the first differing keys, not torch's
            # list of every key.
            check_checkpoint_matches(MODELS.build(spec.cfg.model),
                                     checkpoint, spec.config_path, path)
            changes = []
            seed = meta.get('seed')
            if seed is not None and seed != spec.seed:
                changes.append(f"seed={spec.seed} (the checkpoint's: {seed})")
            # bfloat16 autocast changes the numbers the run trains with;
            # checkpoints saved before it was recorded are not compared.
            amp = meta.get('amp')
            if amp is not None and amp != self.amp:
                changes.append(
                    f"{'--amp' if self.amp else 'no --amp'} (the "
                    f"checkpoint's run: {'--amp' if amp else 'no --amp'})")
            dumped = osp.join(spec.work_dir, osp.basename(spec.config_path))
            switches = []
            if osp.isfile(dumped):
                dumped = Config.fromfile(dumped)
                # The seed is the run's own (the dump holds it as
                # randomness.seed).
                changes += resume_config_changes(
                    spec.cfg, dumped,
                    [p for p in RESUMED_PARTS if p != 'randomness'])
                switches = synthetic_switches(spec.cfg, dumped)
            refuse_resume_changes(changes, path, spec.config_path)
            refuse_synthetic_switches(switches, path, spec.config_path)
            epoch = meta['epoch']
            if epoch >= self.max_epochs:
                raise FastTrainingError(
                    f'--resume: {path} is at epoch {epoch} and '
                    f'{spec.name} trains {counted(self.max_epochs, "epoch")}'
                    ': nothing '
                    'is left to train; leave out --resume to train anew')
            points[spec.name], epochs[spec.name] = (path, checkpoint), epoch
        if len(set(epochs.values())) != 1:
            raise FastTrainingError(
                f'--resume: runs trained together must stand at the same '
                f'epoch, found {epochs}')
        return points

    def _resume(self, states, points) -> int:
        """Load every run's checkpoint from :meth:`_resume_points`; returns
        the epoch to continue from."""
        from ...compat import checkpoint_meta
        for state in states:
            spec, run = state['spec'], state['run']
            path, checkpoint = points[spec.name]
            run.model.load_state_dict(checkpoint['state_dict'])
            run.optimizer.load_state_dict(checkpoint['optimizer'])
            for group in run.optimizer.param_groups:
                # The step reads the rate from a tensor on the device.
                rate = float(group['lr'])
                group['lr'] = torch.tensor(rate, device=self.device) \
                    if run.cuda_graph else rate
            run._current_lr = None
            state['generator'].set_state(checkpoint['generators']['order'])
            run.generator.set_state(
                checkpoint['generators']['augmentation'])
            state['checkpoints'] = [path]
            meta = checkpoint_meta(checkpoint)
            if state['best'] is not None and meta.get('best'):
                state['best'].update(meta['best'])
            state['epochs'] = meta['epoch']
            state['logger'].info(f'resumed from {path} (epoch '
                                 f'{state["epochs"]})')
        return states[0]['epochs']

    def _finish(self, state) -> dict:
        spec = state['spec']
        if state['stopped'] is None:
            self._save(state, self.max_epochs)
        checkpoint = state['checkpoints'][-1] if state['checkpoints'] \
            else None
        images = (state['epochs'] - self.start_epoch) * \
            self.iters_per_epoch * self.batch_size
        summary = dict(
            name=spec.name, config=spec.config_path, seed=spec.seed,
            work_dir=spec.work_dir, checkpoint=checkpoint,
            completed=state['stopped'] is None, stopped=state['stopped'],
            epochs=state['epochs'], resumed_from_epoch=self.start_epoch,
            iters_per_epoch=self.iters_per_epoch,
            batch_size=self.batch_size, train_images=len(self.cache),
            trained_data=self.trained_data,
            device=self._device_name(), runs_together=len(self.specs),
            loop_seconds=round(self.loop_seconds, 2),
            img_per_s=round(images / self.loop_seconds, 1),
            img_per_s_all_runs=round(
                self.total_images / self.loop_seconds, 1),
            cache_seconds=round(self.cache_seconds, 2),
            capture_seconds=round(self.capture_seconds, 2),
            cuda_graph=self.cuda_graph, channels_last=self.channels_last,
            fused_optimizer=self.fused_optimizer, amp=self.amp,
            compile=self.compile, torch=torch.__version__,
            final_scalars=state['scalars'], best=state['best'],
            last_validation=state['validation'])
        atomic_write(json_text(summary, indent=2),
                     osp.join(spec.work_dir, 'fast_train.json'))
        state['logger'].info(
            f'fast training done: {counted(summary["epochs"], "epoch")} in '
            f'{self.loop_seconds:.1f} s ({summary["img_per_s"]} img/s for '
            f'this run, {counted(len(self.specs), "run")} together)')
        return summary

    def _device_name(self) -> str:
        if self.device.type == 'cuda':
            return torch.cuda.get_device_name(self.device)
        return 'CPU'

    def _say(self, text: str) -> None:
        if self.progress:
            print(f'[fast_train] {text}', flush=True)
