"""Real-data check: a short training and evaluation of DSNet and the
baselines on the converted real ISIC 2017 set, split as the lightweight
literature does (or on the design hold-out, for choosing designs). It trains
where mmengine's runner does (the GPU when one is visible) and records where.

A sanity check of the whole chain on real lesions, NOT a benchmark: the
schedule is far shorter than the protocol's 300 epochs (the numbers are said
with their schedule). The command line is ``tools/check_real_data.py``.
"""
import os.path as osp
import time

from mmseg_dsnet.leaderboard.records import metrics_record, write_json
from mmseg_dsnet.leaderboard.work_dir import (lesion_figures,
                                               time_to_last_checkpoints)
from mmseg_dsnet.utils.code_revision import running_code_revision
from mmseg_dsnet.utils.paths import REPO_ROOT
from mmseg_dsnet.utils.messages import counted
from mmseg_dsnet.utils.percent import percent_text, round_percent

#: Where the real ISIC 2017 set (official layout) is looked for by default.
DEFAULT_SRC = osp.normpath(
    osp.join(REPO_ROOT, '..', 'shared', 'data', 'isic2017_256x192'))
CONFIGS = dict(
    dsnet='configs/dsnet/dsnet_isic2017.py',
    dsnet_v1='configs/dsnet/dsnet-v1_isic2017.py',
    unet='configs/unet/unet-s5-d16_fcn_isic2017.py',
    segformer='configs/segformer/segformer_mit-b0_isic2017.py',
    egeunet='configs/egeunet/egeunet_isic2017.py',
    malunet='configs/malunet/malunet_isic2017.py',
    dsnet_no_gate='configs/dsnet/dsnet_isic2017_no-gate.py',
    dsnet_bce_dice='configs/dsnet/dsnet_isic2017_bce-dice.py',
    dsnet_vanilla_conv='configs/dsnet/dsnet_isic2017_vanilla-conv.py',
    dsnet_no_deep_supervision=(
        'configs/dsnet/dsnet_isic2017_no-deep-supervision.py'),
)
#: Train and evaluation split files of ``split='design'``.
DESIGN_SPLITS = ('splits/lightweight_design_train.txt',
                 'splits/lightweight_design_val.txt')
#: Train and evaluation split files of ``split='test'`` (the literature's).
TEST_SPLITS = ('splits/lightweight_train.txt',
               'splits/lightweight_test.txt')
#: The file in the work dir that holds the results of every run of a check.
RESULTS_FILE = 'real_check.json'
#: What :func:`short_schedule_cfg` and the runner read of a run's config.
RUN_CONFIG_KEYS = ('model', 'train_dataloader.dataset',
                   'val_dataloader.dataset', 'test_dataloader.dataset',
                   'optim_wrapper', 'train_cfg', 'visualizer',
                   'default_hooks.logger')
#: The metrics printed by :func:`results_table`.
TABLE_KEYS = ('IoU', 'DSC', 'Acc', 'Sen', 'Spe', 'mIoU_img', 'TJ', 'mIoU')


def set_input_size(cfg, size):
    """Train and predict at ``size`` x ``size``: every Resize of the
    loaders' pipelines, of the top-level ``train_pipeline``,
    ``test_pipeline`` and ``tta_pipeline`` (mmseg's ``inference_model``
    reads ``test_pipeline``: left at the config's size, the run's dumped
    config predicted at that size with weights trained at this one), and
    ``crop_size`` and the data preprocessor's padding size."""
    pipelines = [cfg[name].dataset.pipeline for name in
                 ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    pipelines += [cfg[name] for name in ('train_pipeline', 'test_pipeline')
                  if name in cfg]
    # The views of a TestTimeAug: a list of alternatives per step.
    pipelines += [views for step in cfg.get('tta_pipeline') or []
                  for views in step.get('transforms') or []]
    for pipeline in pipelines:
        for step in pipeline:
            if step['type'] == 'Resize':
                step['scale'] = (size, size)
    if 'crop_size' in cfg:
        cfg.crop_size = (size, size)
    cfg.model.data_preprocessor['size'] = (size, size)


def design_input_size(cfg, crop_size=None, config=None):
    """The square side a run of ``cfg`` trains and is scored at, as its
    results and design record name it: ``crop_size`` when given
    (:func:`set_input_size`), else the size of the config's own training
    and test ``Resize`` (:func:`~mmseg_dsnet.leaderboard.board.
    run_input_size`). Records said 256 px whenever ``--crop-size`` was left
    out, so a 128 px config's runs were named, shown and compared as
    256 px runs.

    Args:
        cfg (Config): The run's config (:func:`short_schedule_cfg`).
        crop_size (int, optional): ``--crop-size``.
        config (str, optional): Its file, for the message.

    Returns:
        int: The side.

    Raises:
        UserError: The config trains or tests at a size that is not
            square, at two sizes, or at none it sets (a record holds one
            side); give ``--crop-size``.
    """
    from mmseg_dsnet.utils.errors import UserError

    from .board import run_input_size
    if crop_size:
        return crop_size
    sizes = run_input_size(cfg)
    held = {tuple(size) for size in sizes.values() if size is not None}
    if len(held) == 1 and None not in sizes.values():
        height, width = held.pop()
        if height == width:
            return int(height)
    shown = ', '.join(
        f'{part} ' + ('no Resize' if size is None else
                      f'{size[0]}x{size[1]}') for part, size in sizes.items())
    raise UserError(
        f'config file {config or cfg.filename} does not run its model at '
        f'one square size ({shown}), and a run\'s record holds one side; '
        'give --crop-size')


def load_run_config(path, what='config file'):
    """Read a config file a check or sweep would run, refusing one that is
    no config or no whole one (a base config of a model, data set or
    schedule alone), before any run: each was met only when its run
    started, after the runs before it, with a traceback. Its
    ``test_evaluator`` must be ``LesionMetric``: the check reports its
    metrics, and the summary table failed with a ``KeyError`` after every
    run had trained.

    Args:
        path (str): The config file given.
        what (str): How the message names it. Default: 'config file'.

    Returns:
        Config: The config.

    Raises:
        ConfigFileError: Naming the file and what it lacks
            (:func:`~mmseg_dsnet.engine.preflight.load_config`,
            :func:`~mmseg_dsnet.engine.preflight.check_config_sets`), or
            the evaluator it tests with.
    """
    from mmseg_dsnet.engine.preflight import (ConfigFileError,
                                              check_config_sets,
                                              check_one_lesion_figure_set,
                                              load_config)
    from mmseg_dsnet.utils.errors import UserError
    cfg = load_config(path, what)
    check_config_sets(
        cfg, path, RUN_CONFIG_KEYS,
        "a run trains and tests the config's model on its data pipelines "
        'with its optimizer; give a whole training config such as '
        'configs/dsnet/dsnet_isic2017.py')
    evaluators = cfg.get('test_evaluator')
    if not isinstance(evaluators, (list, tuple)):
        evaluators = [evaluators]
    types = [e.get('type') if isinstance(e, dict) else type(e).__name__
             for e in evaluators]
    if 'LesionMetric' not in types:
        raise ConfigFileError(
            f'config file {path}: its test_evaluator is '
            f'{", ".join(map(str, types))}, not LesionMetric; the check '
            f'reports the lesion metrics ({", ".join(TABLE_KEYS)}) and only '
            'LesionMetric gives them; give a config that tests with '
            'LesionMetric, such as configs/dsnet/dsnet_isic2017.py')
    try:
        check_one_lesion_figure_set('test_evaluator', evaluators)
    except UserError as err:
        raise ConfigFileError(f'config file {path}: {err}') from None
    return cfg


def describe_data(data_root):
    """What a check's summary says it ran on: the set ``meta.json`` of
    ``data_root`` names, and whether it is the synthetic stand-in set. The
    summary said ``real ISIC 2017`` of any set, the synthetic one among
    them (``--split test`` on it is a smoke test).

    Args:
        data_root (str): The converted set the runs used.

    Returns:
        str: ``'real ISIC 2017'`` for a real set (its year from
        ``meta.json``), or ``'the SYNTHETIC stand-in set <data_root> (not
        real lesions; it holds SYNTHETIC.txt)'``.
    """
    from mmseg_dsnet.datasets.synthetic_fallback import (SYNTHETIC_MARKER,
                                                         is_synthetic)
    from mmseg_dsnet.leaderboard.records import load_json
    if is_synthetic(data_root):
        return (f'the SYNTHETIC stand-in set {data_root} (not real lesions; '
                f'it holds {SYNTHETIC_MARKER})')
    meta = osp.join(data_root, 'meta.json')
    year = load_json(meta).get('year') if osp.isfile(meta) else None
    return f'real ISIC {year or "(year unknown)"}'


def check_design_data_root(data_root, option='--data-root'):
    """Refuse design runs on the synthetic stand-in set, before any
    training: its figures say nothing about a design, and
    ``design_table.py`` refuses the records of such runs
    (:func:`~mmseg_dsnet.leaderboard.design.check_design_record`).

    Args:
        data_root (str): The converted set the runs would train on.
        option (str): The option that gave it, for the message.

    Raises:
        UserError: ``data_root`` holds the synthetic set's marker file.
    """
    from mmseg_dsnet.datasets.synthetic_fallback import (SYNTHETIC_MARKER,
                                                         is_synthetic)
    from mmseg_dsnet.utils.errors import UserError
    if is_synthetic(data_root):
        raise UserError(
            f'{option} {data_root} is the synthetic stand-in set (it holds '
            f'{SYNTHETIC_MARKER}), not the real ISIC images: a design run on '
            'it says nothing about a design, and design_table.py refuses its '
            f'record; give {option} the converted real ISIC 2017 set')


def check_data_root(data_root, option='--data-root'):
    """Refuse a data root that is neither a converted set nor a place the
    set can be converted into, before any work: the converter refused it
    only when the check came to convert, with a ``ConversionError``
    traceback that offered an ``--overwrite`` this check does not have
    (and that would have replaced the folder, the raw set given as
    ``--data-root`` among them).

    Args:
        data_root (str): The converted set, or where to convert it.
        option (str): The option that gave it, for the message.

    Raises:
        UserError: ``data_root`` is a file, or a folder with files but no
            ``meta.json`` (the converter's mark of a converted set).
    """
    import os

    from mmseg_dsnet.utils.errors import UserError
    if osp.isfile(osp.join(data_root, 'meta.json')):
        return
    what = ('a converted ISIC 2017 set (a folder with meta.json, made by '
            'tools/dataset_converters/isic.py), or a new or empty folder to '
            'convert the set into')
    if osp.exists(data_root) and not osp.isdir(data_root):
        raise UserError(f'{option} {data_root} is a file, not a folder; '
                        f'give {what}')
    if osp.isdir(data_root) and os.listdir(data_root):
        raise UserError(f'{option} {data_root} is not a converted set (it '
                        'has no meta.json) and it holds files, so the set '
                        f'cannot be converted into it; give {what}')


def check_no_earlier_check(work_dir, names, resumable=True):
    """Refuse run folders of a check's work dir that hold an earlier run,
    before any conversion or training: a second run into one overwrote
    only the files it wrote itself, so the earlier run's checkpoints
    (another schedule's ``epoch_N.pth``) stayed beside its own
    ``test_metrics.json`` and config dump.

    Args:
        work_dir (str): The check's work dir (one folder per run).
        names (Iterable[str]): The names of its runs (their folders).
        resumable (bool): Whether the tool can continue such a run
            (``--resume``); the message offers it only then.
            Default: True.

    Raises:
        WorkDirError: A run's folder holds checkpoints
            (:func:`~mmseg_dsnet.engine.preflight.check_no_earlier_run`).
    """
    from mmseg_dsnet.engine.preflight import check_no_earlier_run
    for name in names:
        check_no_earlier_run(osp.join(work_dir, name), resumable=resumable)


def earlier_results(work_dir):
    """The results of earlier checks in ``work_dir`` (its ``RESULTS_FILE``),
    which a check of other runs into it keeps beside its own: it replaced
    them. Read before the runs, so that a file that cannot be kept is
    refused before any training.

    Args:
        work_dir (str): The check's work dir.

    Returns:
        dict: Run name -> its results; empty when there is no such file.

    Raises:
        UserError: The file does not hold the results of runs.
    """
    from mmseg_dsnet.leaderboard.records import load_json
    from mmseg_dsnet.utils.errors import UserError
    path = osp.join(work_dir, RESULTS_FILE)
    if not osp.exists(path):
        return {}
    results = load_json(path)
    if not isinstance(results, dict) or not all(
            isinstance(result, dict) for result in results.values()):
        raise UserError(
            f'{path} does not hold the results of runs (run name -> '
            'results), so the results of this check could not be added to '
            'it; choose another --work-dir, or remove it')
    return results


def check_short_schedule(epochs=None, train_images=None, test_images=None,
                         lr=None, crop_size=None, seed=None):
    """Refuse settings :func:`short_schedule_cfg` would not follow (a zero
    count or size would read as "not given": all images, 256 px).

    Raises:
        UserError: naming the option and the value.
    """
    from mmseg_dsnet.utils.cli import (check_at_least, check_positive,
                                       check_seed)
    from mmseg_dsnet.utils.errors import UserError
    check_at_least(('--epochs', epochs, 1), ('--train-images', train_images, 1),
                   ('--test-images', test_images, 1))
    # A seed numpy rejects failed inside the run.
    check_seed(seed, '--seed')
    check_positive(('--lr', lr))
    # Every model here halves its input five times.
    if crop_size is not None and (crop_size < 32 or crop_size % 32):
        raise UserError('--crop-size must be a positive multiple of 32, '
                        f'got {crop_size}')


def check_subset_sizes(data_root, split='test', train_images=None,
                       test_images=None):
    """Refuse more images than the split holds (mmengine would quietly take
    all of them, and the run would not be the one asked for).

    Raises:
        UserError: Naming the option, the split file and its size.
    """
    from mmseg_dsnet.leaderboard.work_dir import split_size
    from mmseg_dsnet.utils.errors import UserError
    files = DESIGN_SPLITS if split == 'design' else TEST_SPLITS
    for option, asked, split_file in (('--train-images', train_images,
                                       files[0]),
                                      ('--test-images', test_images,
                                       files[1])):
        held = split_size(dict(data_root=data_root, ann_file=split_file))
        if asked and held is not None and asked > held:
            raise UserError(f'{option} {asked}: '
                            f'{osp.join(data_root, split_file)} holds only '
                            f'{counted(held, "image")}')


def check_design_hold_out(dataset_cfg):
    """Refuse a design hold-out that lists test images: a copy of, a subset
    of or a link to a test split written as ``lightweight_design_val.txt``
    (one made by hand for a set converted before the design splits), or
    the hold-out with test images added, has the design's file name, and
    design choices would be made on test images.

    Args:
        dataset_cfg (dict): The dataset config of the design runs'
            evaluation loader.

    Raises:
        UserError: Naming the hold-out and the test split it lists.
    """
    from mmseg_dsnet.datasets.split_files import (data_root_of, split_file,
                                                  test_images_listed)
    from mmseg_dsnet.utils.errors import UserError
    hold_out = split_file(dataset_cfg)
    if hold_out is None or not osp.isfile(hold_out):
        return
    found = test_images_listed(hold_out, [dataset_cfg.get('data_root'),
                                          data_root_of(hold_out)])
    if found:
        raise UserError(
            f'the design hold-out {hold_out} lists {found}: design choices '
            'made on it would be made on test images. Convert the set again '
            'with tools/dataset_converters/isic.py (it writes a design '
            'hold-out apart from the test split)')


def reads_the_design_splits(cfg):
    """Whether a config trains on the design-train split (its path however
    spelled, ``./splits/...`` too) or is judged on images of the design
    hold-out of its data root (a copy under another name), where its test
    split and the hold-out are found: its ``--split test`` run must not
    score the hold-out and be recorded as a test-split one.

    Args:
        cfg (Config): The config, its data roots set.
    """
    from mmseg_dsnet.datasets.split_files import split_file, split_ids
    train = cfg.train_dataloader.dataset
    if osp.normpath(str(train.get('ann_file') or '')) == \
            osp.normpath(DESIGN_SPLITS[0]):
        return True
    test = cfg.test_dataloader.dataset
    tested = split_file(test)
    hold_out = osp.join(test.get('data_root') or '', DESIGN_SPLITS[1])
    if not tested or not osp.isfile(tested) or not osp.isfile(hold_out):
        return False
    return not set(split_ids(tested)).isdisjoint(split_ids(hold_out))


def short_schedule_cfg(config, data_root, work_dir, epochs, train_images,
                       test_images, seed, lr=None, crop_size=None,
                       split='test'):
    """The config with the real data root, a short cosine schedule and
    optional subsets, reading the design hold-out for ``split='design'``
    (the literature's split for ``split='test'`` of a design config, which
    reads the design splits itself)."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    if crop_size:
        set_input_size(cfg, crop_size)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    # One visualizer per run: runners in one process would otherwise share
    # the first one's, and its vis_data would collect every run's scalars.
    cfg.visualizer.name = f'visualizer_{osp.basename(work_dir)}'
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = data_root
    splits = None
    if split == 'design':
        splits = DESIGN_SPLITS
    elif reads_the_design_splits(cfg):
        # A design config reads the design splits itself; a 'test' run of it
        # trains and is judged on the literature's split, as it says.
        splits = TEST_SPLITS
    if splits:
        cfg.train_dataloader.dataset.ann_file = splits[0]
        cfg.val_dataloader.dataset.ann_file = splits[1]
        cfg.test_dataloader.dataset.ann_file = splits[1]
    if split == 'design':
        check_design_hold_out(cfg.val_dataloader.dataset)
    if train_images:
        cfg.train_dataloader.dataset.indices = train_images
    if test_images:
        cfg.val_dataloader.dataset.indices = test_images
        cfg.test_dataloader.dataset.indices = test_images
    if lr:
        cfg.optim_wrapper.optimizer.lr = lr
    cfg.train_cfg.max_epochs = epochs
    # Evaluate once, the final checkpoint after training (mmengine would
    # also validate at the last epoch unless val_begin lies beyond it).
    cfg.train_cfg.val_begin = epochs + 1
    cfg.param_scheduler = [
        dict(type='CosineAnnealingLR', T_max=epochs, eta_min=1e-5,
             by_epoch=True, begin=0, end=epochs)
    ]
    # A checkpoint every epoch (the newest kept): a run stopped part-way
    # loses at most one epoch to --resume.
    cfg.default_hooks.checkpoint = dict(
        type='AtomicCheckpointHook', interval=1, max_keep_ckpts=1)
    cfg.default_hooks.logger.interval = 20
    return cfg


#: What torch's batch norm says when it is given one value per channel.
ONE_VALUE_PER_CHANNEL = 'Expected more than 1 value per channel'


def check_training_batches(cfg, name):
    """Refuse a run whose every epoch would end with a training batch of
    one image that its model cannot train on, before any training: batch
    norm over a 1x1 map of one image (DSNet, DSNet-v1 and SegFormer at 32
    px) has one value per channel, and the run failed at the end of its
    first epoch with a ``ValueError`` traceback.

    Only a loader that keeps a last batch of one (``images % batch_size ==
    1`` without ``drop_last``) is tried: the model is built once and takes
    one training step's loss on a batch of one image at the run's input
    size. Other failures are left to the run itself.

    Args:
        cfg (Config): The run's config (:func:`short_schedule_cfg`).
        name (str): The run's name, for the message.

    Raises:
        UserError: The model cannot train on a batch of one image.
    """
    import torch
    from mmengine.registry import MODELS, DefaultScope
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from mmseg_dsnet.leaderboard.work_dir import split_size
    from mmseg_dsnet.utils.errors import UserError
    loader = cfg.train_dataloader
    images = split_size(loader.dataset)
    batch = loader.get('batch_size', 1)
    if loader.get('drop_last') or not images or batch < 2 or \
            images % batch != 1:
        return
    height, width = cfg.model.get('data_preprocessor', {}).get(
        'size', (256, 256))
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        model = MODELS.build(cfg.model)
    model.train()
    sample = SegDataSample(gt_sem_seg=PixelData(
        data=torch.zeros(1, height, width, dtype=torch.long)))
    sample.set_metainfo(dict(img_shape=(height, width),
                             pad_shape=(height, width),
                             ori_shape=(height, width)))
    try:
        model.loss(torch.rand(1, 3, height, width), [sample])
    except ValueError as err:
        if ONE_VALUE_PER_CHANNEL not in str(err):
            return
        raise UserError(
            f'{name}: each epoch would end with a training batch of one '
            f'image ({images} training images, batch_size {batch}), and '
            f'its model cannot train on one at {height}x{width} '
            f'(ValueError: {err}); give --train-images a count that leaves '
            f'more than one image for the last batch (not {batch}k + 1) or '
            'a larger --crop-size') from None
    finally:
        del model


def check_run_config(cfg, name, config):
    """The checks ``tools/train.py`` makes before a runner exists, for one
    run of a check, so that a config fault is refused before the first run
    trains: it was met only when its run started, after the runs before it
    (an ``NoSuchBackbone is not in the mmseg::model registry`` line that
    named no file, a log folder left).

    Args:
        cfg (Config): The run's config (:func:`short_schedule_cfg`).
        name (str): The run's name.
        config (str): Its config file, for the message.

    Raises:
        UserError: ``config file <config> (run <name>): <fault>``, for a
            misspelt key, a model, optimizer or transform that cannot be
            built, a checkpoint-hook key or test mode met only after
            training (:mod:`~mmseg_dsnet.engine.preflight`), or a last training
            batch its model cannot take (:func:`check_training_batches`).
    """
    from mmseg_dsnet.engine.cli_errors import describe_user_error
    from mmseg_dsnet.engine.log_dir import runner_class
    from mmseg_dsnet.engine.preflight import (check_checkpoint_hook_keys,
                                              check_config_keys,
                                              check_env_cfg_keys,
                                              check_inference_mode,
                                              check_loader_keys,
                                              check_loop_keys,
                                              check_model_builds,
                                              check_optimizer_builds,
                                              check_pipelines_build,
                                              check_trainable_model)
    from mmseg_dsnet.utils.errors import UserError
    try:
        check_config_keys(cfg)
        runner_class(cfg)
        # Keys mmengine ignores (env_cfg) or meets only once the run
        # trains, saves or scores.
        check_env_cfg_keys(cfg)
        check_loop_keys(cfg)
        check_loader_keys(cfg, ('train_dataloader', 'test_dataloader'))
        check_checkpoint_hook_keys(cfg)
        model = check_model_builds(cfg)
        check_inference_mode(model)
        check_optimizer_builds(cfg, model)
        del model
        check_trainable_model(cfg)
        check_pipelines_build(cfg, ('train_dataloader', 'test_dataloader'))
    except Exception as err:  # noqa: BLE001  (told apart below)
        message = describe_user_error(err)
        if message is None:
            raise
        raise UserError(f'config file {config} (run {name}): '
                        f'{message}') from err
    check_training_batches(cfg, name)


def optimizer_lr(cfg):
    """The learning rate a config trains with: its optimizer's ``lr`` (the
    ``--lr`` given, else the config's own), or None when it sets none.

    Args:
        cfg (Config): The run's config (:func:`short_schedule_cfg`).
    """
    optimizer = (cfg.get('optim_wrapper') or {}).get('optimizer') or {}
    lr = optimizer.get('lr') if isinstance(optimizer, dict) else None
    return float(lr) if isinstance(lr, (int, float)) and not isinstance(
        lr, bool) else None


#: What the ``device`` of a design run trained by the fast trainer
#: (``design_sweep.py --fast``) ends with.
FAST_TRAINER_TAG = '(fast_train)'


def design_record_path(record_dir, name, input_size, epochs, seed,
                       device='cpu'):
    """Where :func:`write_design_record` puts the record of a run (unless
    one is there already).

    Args:
        record_dir (str): The records' folder.
        name (str): The candidate's record name (model name or config
            stem).
        input_size (int): The square input size.
        epochs (int): The schedule's epochs.
        seed (int): The run's seed.
        device (str): :func:`run_device` of the run. Default: 'cpu'.

    Returns:
        str: ``<name>_<size>px_<epochs>ep_seed<seed>[_cuda][_fast].json``
        in ``record_dir`` (``_fast`` for the fast trainer's runs).
    """
    fast = device.endswith(FAST_TRAINER_TAG)
    kind = device[:-len(FAST_TRAINER_TAG)].strip() if fast else device
    suffix = ('' if kind == 'cpu' else '_cuda') + ('_fast' if fast else '')
    return osp.join(record_dir, f'{name}_{input_size}px_{epochs}ep_'
                    f'seed{seed}{suffix}.json')


def design_model_config(cfg):
    """The model a design run trained, as its record keeps it (a JSON
    value, the input size aside, see
    :func:`~mmseg_dsnet.leaderboard.board.comparable_model`): a config file
    edited between the seeds of a candidate gives runs of two models under
    one name, which the design tables must not pool.

    Args:
        cfg (Config): The run's config.
    """
    import json

    from mmseg_dsnet.leaderboard.board import comparable_model
    return json.loads(json.dumps(comparable_model(cfg.model), default=str))


def write_design_record(record_dir, name, result):
    """One JSON record per design run, named by config, size, epochs, seed
    and (when not the CPU) device; an existing record is never replaced."""
    from mmseg_dsnet.utils.fileio import atomic_write, json_text
    path = design_record_path(record_dir, name, result['input_size'],
                              result['epochs'], result['seed'],
                              result['device'])
    text = json_text(dict(result, name=name), indent=2,
                     ensure_ascii=False) + '\n'
    stamp = time.strftime('%Y%m%d-%H%M%S')
    # Never onto a file there: two runs of one seed ending in one second
    # (two sweeps into one --record-dir) took one stamped name, the later
    # record silently replacing the earlier.
    for attempt in range(1000):
        try:
            atomic_write(text, path, overwrite=False)
            break
        except FileExistsError:
            path = design_record_path(
                record_dir, name, result['input_size'], result['epochs'],
                result['seed'], result['device'])[:-5] + f'_{stamp}' + (
                    f'-{attempt}' if attempt else '') + '.json'
    else:
        raise FileExistsError(f'{path}: too many records of this run')
    print(f'Design record: {path}')


def train_and_evaluate(config, data_root, work_dir, epochs, seed=0,
                       train_images=None, test_images=None, lr=None,
                       crop_size=None, split='test', resume=False):
    """Train ``config`` on the short schedule, evaluate it once and write
    ``<work_dir>/test_metrics.json`` (the record ``tools/test.py`` writes,
    for the leaderboard; it names the config as this run tested it,
    :func:`dump_tested_config`).

    With ``resume``, a run stopped part-way continues from the newest
    complete checkpoint in ``work_dir`` (after the checks of
    ``tools/train.py --resume``: the same model, config and data), as the
    uninterrupted run would have gone on; its train time adds what the
    earlier runs trained up to their last checkpoint
    (:func:`~mmseg_dsnet.leaderboard.work_dir.time_to_last_checkpoints`).
    A ``work_dir`` without a checkpoint starts anew.

    Returns:
        dict: The run's facts (config, schedule, learning rate, splits,
        image counts, train time, metrics rounded to 2 decimals, evaluated
        data).
    """
    import torch

    from mmseg_dsnet.engine.final_checkpoint import evaluate_final_checkpoint
    from mmseg_dsnet.engine.log_dir import build_runner
    cfg = short_schedule_cfg(config, data_root, work_dir, epochs,
                             train_images, test_images, seed, lr, crop_size,
                             split)
    # Before the training: a size it cannot record is refused first.
    input_size = design_input_size(cfg, crop_size, config)
    trained_before = resume_short_schedule(cfg) if resume else 0.0
    start = time.time()
    # Its own log folder, also beside a run started in the same second.
    runner = build_runner(cfg)
    runner.train()
    train_time = time.time() - start + trained_before
    # Scored as tools/test.py scores the final checkpoint (a weight
    # average, when the config keeps one, is what that checkpoint holds).
    tester, metrics, checkpoint = evaluate_final_checkpoint(cfg, runner)
    record = metrics_record(dump_tested_config(tester), checkpoint, metrics,
                            cfg.test_dataloader.dataset,
                            len(tester.test_dataloader.dataset))
    write_json(record, osp.join(cfg.work_dir, 'test_metrics.json'))
    evaluated = {k: v for k, v in record.items()
                 if k not in ('config', 'checkpoint', 'metrics')}
    return dict(
        config=config, epochs=epochs, seed=seed, split=split,
        train_split=cfg.train_dataloader.dataset.ann_file,
        eval_split=cfg.test_dataloader.dataset.ann_file,
        train_images=len(runner.train_dataloader.dataset),
        test_images=len(tester.test_dataloader.dataset),
        input_size=input_size, device=run_device(),
        # The design table keeps runs of different learning rates apart.
        **({} if optimizer_lr(cfg) is None else dict(lr=optimizer_lr(cfg))),
        threads=torch.get_num_threads(),
        model_config=design_model_config(cfg),
        # The code that trained it (its last part, if resumed).
        code_revision=running_code_revision(),
        train_time_s=round(train_time, 1),
        metrics=recorded_metrics(metrics, record['config']),
        **evaluated)


def resume_short_schedule(cfg):
    """Set ``cfg`` to continue the run in its work dir from the newest
    complete checkpoint there, as ``tools/train.py --resume`` does, or to
    start anew when there is none.

    Args:
        cfg (Config): The run's config (:func:`short_schedule_cfg`).

    Returns:
        float: Seconds the earlier runs trained up to that checkpoint
        (0.0 when the run starts anew).

    Raises:
        ResumeMismatchError: The checkpoint is of another config, data or
            schedule, or its run trained all its epochs.
        CheckpointMismatchError: The checkpoint is of another model.
    """
    from mmseg_dsnet.engine.preflight import pick_resume_checkpoint
    from mmseg_dsnet.engine.resume_check import (check_resume_checkpoint,
                                                 resume_checkpoint)
    from mmseg_dsnet.utils.fileio import remove_stale_partials
    cfg.resume = True
    if osp.isdir(cfg.work_dir):
        remove_stale_partials(cfg.work_dir)
    if not resume_checkpoint(cfg, pick_resume_checkpoint):
        return 0.0
    # More --epochs would change the cosine schedule the run began with.
    check_resume_checkpoint(cfg, cfg.load_from, extendable=False)
    return time_to_last_checkpoints(cfg.work_dir)


def recorded_metrics(metrics, path):
    """The figures a run's result (and design record) keeps of an
    evaluation: LesionMetric's, by their own names (an evaluator's prefix
    off), as the tables read them, with 2 decimals, but an imperfect figure
    never recorded as 100.0 nor a non-zero one as 0.0
    (:func:`~mmseg_dsnet.utils.percent.round_percent`).

    Args:
        metrics (dict): The evaluation's figures, in percent.
        path (str): Where they come from (the tested config), for the
            message of :func:`~mmseg_dsnet.leaderboard.work_dir.
            lesion_figures`.

    Returns:
        dict: Figure name -> rounded percentage.
    """
    return {k: round_percent(float(v), 2)
            for k, v in lesion_figures(metrics, '', path)[0].items()}


def dump_tested_config(tester):
    """Write the config a final test ran with into its run folder.

    The run changes ``config`` (input size, image subsets, data root, the
    design split), so ``test_metrics.json`` names this dump, not the file
    it started from: ``leaderboard.py collect`` compares the config it is
    given with the config the metrics are of, and records the input size
    tested at from it.

    Args:
        tester (Runner): The runner that scored the final checkpoint.

    Returns:
        str: The absolute path of ``<work_dir>/<timestamp>/tested_config.py``
        (a run folder of its own, which no later runner replaces; the
        work dir's root keeps the one dump that collect reads as the
        training config).
    """
    path = osp.abspath(osp.join(tester.log_dir, 'tested_config.py'))
    tester.cfg.dump(path)
    return path


def run_device():
    """Where mmengine's runner trains: ``'cpu'``, or ``'cuda: <name>'``
    when a GPU is visible (the runner then uses it)."""
    import torch
    if torch.cuda.is_available():
        return f'cuda: {torch.cuda.get_device_name(0)}'
    return 'cpu'


def results_table(results):
    """The results of several runs as a fixed-width text table; the
    evaluated images are named by their split (``split='design'`` runs are
    scored on the design hold-out, a validation split, not a test
    split)."""
    splits = {r.get('split') for r in results.values()}
    scored = {'design': 'val img', 'test': 'test img'}.get(
        splits.pop() if len(splits) == 1 else None, 'eval img')
    lines = [f'{"model":<10} {"train img":>9} {scored:>8} '
             f'{"time s":>7} ' + ' '.join(f'{k:>8}' for k in TABLE_KEYS)]
    for name, r in results.items():
        lines.append(f'{name:<10} {r["train_images"]:>9} '
                     f'{r["test_images"]:>8} {r["train_time_s"]:>7.0f} ' +
                     ' '.join(f'{percent_text(r["metrics"][k]):>8}'
                              for k in TABLE_KEYS))
    return '\n'.join(lines)
