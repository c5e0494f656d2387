"""The README's main job, on the embedded default (no download, no GPU).

1. makes a synthetic ISIC-like set in the official ISIC 2018 layout and
   converts it with the real converter
   (:mod:`mmseg_dsnet.datasets.converters.isic`);
2. trains DSNet on it with a short CPU schedule;
3. evaluates it (LesionMetric) and compares with trivial guesses;
4. draws prediction overlays and prints where everything went.
"""
import argparse
import os.path as osp
import time

# First, so that a Ctrl-C while the libraries load ends in one line;
# it registers the components and turns on safe loading.
import mmseg_dsnet  # noqa: F401
import numpy as np
from mmengine.device import get_device

from mmseg_dsnet.datasets.split_files import dataset_leaves
from mmseg_dsnet.datasets.synthetic_fallback import (check_synthetic_target,
                                                     prepare_synthetic)
from mmseg_dsnet.engine.cli_errors import (UserError,
                                          run_reporting_user_errors)
from mmseg_dsnet.engine.final_checkpoint import evaluate_final_checkpoint
from mmseg_dsnet.engine.log_dir import (build_runner, claim_log_dir,
                                        runner_class)
from mmseg_dsnet.engine.preflight import (check_checkpoint_hook_keys,
                                          check_config_not_dumped_over,
                                          check_config_sets,
                                          check_env_cfg_keys,
                                          check_inference_mode,
                                          check_input_file,
                                          check_model_builds,
                                          check_no_earlier_run,
                                          check_pipelines_build,
                                          check_work_dir, load_config,
                                          training_work_dir_lock)
from mmseg_dsnet.engine.preflight.work_dir import (WorkDirError,
                                                   check_work_dir_outside)
from mmseg_dsnet.utils.cli import check_at_least, check_seed
from mmseg_dsnet.utils.messages import counted
from mmseg_dsnet.utils.paths import REPO_ROOT

DEFAULT_CONFIG = osp.join(REPO_ROOT, 'configs/demo/dsnet_synthetic_cpu.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
#: What the demo reads of its config (and the runner needs to train).
CONFIG_KEYS = ('model', 'train_dataloader.dataset', 'test_dataloader.dataset',
               'optim_wrapper', 'train_cfg', 'default_hooks.checkpoint')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--config',
        default=DEFAULT_CONFIG,
        help='the training config; the synthetic set is made in its '
        'data_root (default: configs/demo/dsnet_synthetic_cpu.py)')
    parser.add_argument(
        '--work-dir',
        help='where the run writes; a folder of its own under '
        'work_dirs/demo/ by default, named by the time it starts')
    parser.add_argument('--epochs', type=int, default=None,
                        help='override the number of training epochs '
                        "(default: the config's)")
    parser.add_argument(
        '--seed',
        type=int,
        default=None,
        help="the training's seed (default: the config's randomness.seed, "
        '0 for the demo config)')
    return parser.parse_args(argv)


def new_run_dir(parent='work_dirs/demo'):
    """Make a folder under ``parent`` for a new run, named by the time it
    starts (``20261204_191502``, with ``_1``, ``_2`` ... after a name
    taken), so that running the demo again never meets an earlier run.

    The folder is made here, in one step that fails when it exists
    (:func:`~mmseg_dsnet.engine.log_dir.claim_log_dir`): two demos started
    in the same second were both given the same new name, trained into one
    folder, and the one that finished first named a checkpoint that the
    other then replaced.

    Args:
        parent (str): Where the runs' folders are. Default:
            ``'work_dirs/demo'``.

    Returns:
        str: The new, empty folder.
    """
    stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime())
    check_work_dir(parent)  # a file in the way is named
    return osp.join(parent, claim_log_dir(parent, stamp))


def use_synthetic_root(cfg, config):
    """Point every loader of ``cfg`` at the synthetic set's absolute
    folder and return it. A relative ``data_root`` is of the repository
    root, where the set is made; read as it was from another working
    folder, training found no split file.

    Args:
        cfg (Config): The demo's config; its loaders are changed.
        config (str): Its file, for the message.

    Returns:
        str: The absolute folder of the synthetic set.

    Raises:
        UserError: The loaders name different folders; the demo makes,
            trains and tests on one set.
    """
    # The datasets a wrapper (RepeatDataset, ConcatDataset) holds too: the
    # wrapper has no data_root (an AttributeError traceback).
    leaves = {}
    for name in LOADERS:
        if cfg.get(name) is not None:
            for path, dataset in dataset_leaves(cfg[name].get('dataset'),
                                                f'{name}.dataset'):
                leaves[name if path == f'{name}.dataset' else path] = dataset
    roots = {
        where: osp.normpath(
            osp.join(REPO_ROOT, dataset.get('data_root', '') or ''))
        for where, dataset in leaves.items()
    }
    if len(set(roots.values())) > 1:
        raise UserError(
            f'config file {config}: the demo makes one synthetic set and '
            'tests on it, but the loaders read different folders (' +
            ', '.join(f'{name} {root}' for name, root in roots.items()) +
            '); give them one data_root')
    root = next(iter(roots.values()))
    for dataset in leaves.values():
        dataset.data_root = root
    return root


# Schedulers whose span --epochs sets: the one that anneals to the end.
COSINE = ('CosineAnnealingLR', 'CosineAnnealingParamScheduler')


def set_epochs(cfg, epochs, config):
    """Train ``cfg`` for ``epochs`` epochs, its schedule included.

    The schedule must end with one cosine annealing scheduler that runs to
    the last epoch; it is made to anneal once over the epochs left from its
    ``begin`` (``T_max`` and ``end``). Schedulers before it (a warmup) must
    end by its ``begin`` and are kept as they are. Only ``param_scheduler[0]``
    was changed: a warmup first got the cosine's ``T_max`` (a TypeError
    after the set was made) and the cosine kept the config's span.

    Args:
        cfg (Config): The demo's config; changed in place.
        epochs (int): The number of training epochs (``--epochs``).
        config (str): Its file, for the message.

    Raises:
        UserError: A schedule this cannot adjust, or one whose warmup
            leaves no epoch for the cosine.
    """
    schedulers = cfg.get('param_scheduler')
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    where = (f'--epochs {epochs}: cannot adjust param_scheduler of config '
             f'file {config}')
    fix = f'; edit its schedule for {epochs} epochs and leave out --epochs'
    if not schedulers:
        raise UserError(f'{where}: it has none{fix}')
    *warmups, cosine = schedulers
    if cosine.get('type') not in COSINE:
        raise UserError(f'{where}: the last scheduler is '
                        f"{cosine.get('type')}, not one of {COSINE}{fix}")
    # Epoch spans only: iteration counts depend on the loader.
    if not all(item.get('by_epoch', True) for item in schedulers):
        raise UserError(f'{where}: a scheduler counts iterations '
                        f'(by_epoch=False){fix}')
    begin = cosine.get('begin', 0)
    end = cosine.get('end')
    if end is not None and end < cfg.train_cfg.max_epochs:
        raise UserError(f'{where}: {cosine.type} ends at epoch {end}, '
                        f'before the last ({cfg.train_cfg.max_epochs}){fix}')
    late = [item for item in warmups if item.get('end') is None
            or item.end > begin]
    if late:
        raise UserError(f'{where}: {late[0].type} does not end by epoch '
                        f'{begin}, where {cosine.type} begins{fix}')
    if begin >= epochs:
        raise UserError(f'--epochs {epochs}: the schedule of config file '
                        f'{config} anneals from epoch {begin} on (after '
                        f'its warmup); give more than {begin} epochs')
    cosine.T_max = epochs - begin
    cosine.end = epochs
    cfg.param_scheduler = [*warmups, cosine]
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = epochs
    cfg.default_hooks.checkpoint.interval = epochs


def trivial_guess_iou(data_root, split_file):
    """Pooled lesion IoU of the all-lesion guess (the all-background guess
    scores 0): the lesion share of the test pixels."""
    from PIL import Image
    lesion = total = 0
    with open(osp.join(data_root, split_file), encoding='utf-8') as f:
        for name in f.read().split():
            mask = np.asarray(Image.open(osp.join(data_root, 'masks',
                                                  name + '.png')))
            lesion += int((mask == 1).sum())
            total += int((mask != 255).sum())
    return 100.0 * lesion / max(total, 1)


def model_name(cfg):
    """The name of the model ``cfg`` trains, for what the demo prints: its
    backbone's type (``DSNet``, ``UNet``, ``EGEUNet``), else its own. The
    demo called every model DSNet.

    Args:
        cfg (Config): The demo's config.
    """
    backbone = cfg.model.get('backbone')
    if isinstance(backbone, dict) and backbone.get('type'):
        return str(backbone['type'])
    return str(cfg.model.get('type', 'the model'))


def training_device():
    """Where the runner will train, for what the demo prints: mmengine puts
    the model on a GPU when there is one, and the demo said "the CPU" there
    too."""
    device = get_device()
    return 'the CPU' if device == 'cpu' else f'the {device.upper()} device'


def draw_overlays(model, data_root, split_file, out_file, count=6,
                  name='DSNet', checkpoint=None):
    """Image | ground truth (green) and prediction (red) contours, for the
    first ``count`` images of ``split_file``.

    The PNG is written whole or not at all
    (:func:`~mmseg_dsnet.utils.fileio.atomic_write`): a failed write (a
    full disk, an interrupt) left a truncated ``overlays.png`` that looked
    like the run's. Drawn on a bare :class:`~matplotlib.figure.Figure`, so
    the process's matplotlib backend is left as it is.

    Args:
        model (nn.Module): The model, with its ``cfg``, as
            ``mmseg.apis.inference_model`` takes it.
        data_root (str): The converted set.
        split_file (str): Its split file the images are taken from
            (relative to ``data_root``).
        out_file (str): The PNG to write.
        count (int): How many images. Default: 6.
        name (str): The model's name, for the title. Default: 'DSNet'.
        checkpoint (str, optional): The checkpoint ``model`` holds, named
            in the title.

    Returns:
        Figure: The figure written (its title says what it shows).
    """
    import cv2
    from matplotlib.figure import Figure
    from mmseg.apis import inference_model

    from mmseg_dsnet.rgb_reader import read_rgb
    from mmseg_dsnet.utils.fileio import atomic_write
    with open(osp.join(data_root, split_file), encoding='utf-8') as f:
        image_ids = f.read().split()[:count]
    fig = Figure(figsize=(3 * len(image_ids), 3.2))
    axes = fig.subplots(1, len(image_ids))
    # The loop variable was ``name``: the title called the predictions
    # those of the last image's id, not of the model.
    for ax, image_id in zip(np.atleast_1d(axes), image_ids):
        # Upright RGB as training loaded it; mmseg's inference takes BGR.
        rgb = read_rgb(osp.join(data_root, 'images', image_id + '.jpg'))
        # Masks as mmseg loads them: unchanged (no EXIF orientation).
        gt = cv2.imread(osp.join(data_root, 'masks', image_id + '.png'),
                        cv2.IMREAD_UNCHANGED)
        pred = inference_model(model, np.ascontiguousarray(
            rgb[..., ::-1])).pred_sem_seg.data[0].cpu().numpy()
        canvas = rgb.copy()
        for mask, colour in ((gt == 1, (0, 255, 0)), (pred == 1, (255, 0, 0))):
            contours, _ = cv2.findContours(mask.astype(np.uint8),
                                           cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(canvas, contours, -1, colour, 2)
        ax.imshow(canvas)
        ax.set_title(image_id, fontsize=8)
        ax.axis('off')
    source = f'first {counted(len(image_ids), "image")} of {split_file}'
    if checkpoint is not None:
        source += f', {osp.basename(checkpoint)}'
    fig.suptitle(f'green: ground truth, red: {name} prediction\n{source}',
                 fontsize=10)
    fig.tight_layout()
    # PNG whatever the name ends with (the temporary file's does not).
    atomic_write(lambda path: fig.savefig(path, dpi=100, format='png'),
                 out_file)
    return fig


def main(argv=None):
    args = parse_args(argv)
    check_at_least(('--epochs', args.epochs, 1))
    check_seed(args.seed, '--seed')
    check_input_file(args.config, 'config file')
    start = time.time()
    cfg = load_config(args.config)
    # A base config (a model, data set or schedule alone) ended in a
    # KeyError or AttributeError traceback.
    check_config_sets(
        cfg, args.config, CONFIG_KEYS,
        "the demo trains, tests and draws with the config's model, data "
        'and schedule; give a whole training config such as '
        'configs/demo/dsnet_synthetic_cpu.py')
    # A random step (RandomFlip, PhotoMetricDistortion ...) in the test
    # pipeline: figures of random views of the images, new at each run.
    check_pipelines_build(cfg, [name for name in LOADERS if cfg.get(name)])
    # A runner_type that cannot run, before the run's folder is made.
    runner_class(cfg)
    # mmengine ignores an env_cfg key it does not read.
    check_env_cfg_keys(cfg, args.config)
    # Settings mmengine and mmseg read only at the first checkpoint or the
    # first image scored, after training.
    check_checkpoint_hook_keys(cfg)
    check_inference_mode(check_model_builds(cfg), args.config)
    if args.epochs is not None:
        set_epochs(cfg, args.epochs, args.config)
    # Only the seed: a config's own seed was replaced by 0 and its other
    # settings (deterministic=True) dropped. Seeded in any case.
    randomness = dict(cfg.get('randomness') or {})
    if args.seed is not None or randomness.get('seed') is None:
        randomness['seed'] = 0 if args.seed is None else args.seed
    check_seed(randomness['seed'], f'randomness.seed of {args.config}')
    cfg.randomness = randomness
    synthetic_root = use_synthetic_root(cfg, args.config)
    # The split the all-lesion guess and the overlays read: that of the
    # test loader's one data set.
    tested = dataset_leaves(cfg.test_dataloader.dataset)
    split = tested[0][1].get('ann_file') if len(tested) == 1 else None
    if not split:
        raise UserError(
            f'config file {args.config}: the demo scores and draws one '
            f'split file, but the test loader reads '
            f'{counted(len(tested), "data set")}'
            + (' and names no ann_file' if len(tested) == 1 else ''))
    # Before the work dir is made: a config of real data is refused, not
    # trained on as 'synthetic' (its data root would be marked so).
    check_synthetic_target(synthetic_root)
    # A second run into it left the earlier run's checkpoints beside its
    # own (epoch_20.pth beside epoch_2.pth and a dump of 2 epochs).
    if args.work_dir is None:
        args.work_dir = new_run_dir()
    # Into the set itself, the run's files went among its images.
    check_work_dir_outside(args.work_dir, synthetic_root,
                           'the synthetic set')
    # The runner's config dump would replace the config file given.
    check_config_not_dumped_over(args.config, args.work_dir)
    check_no_earlier_run(args.work_dir, resumable=False)
    overlay = check_no_earlier_overlays(args.work_dir)
    check_work_dir(args.work_dir)
    # Held while the demo writes it (as tools/train.py holds its work
    # dir): two demos into one --work-dir would write their checkpoints
    # and overlays over one another.
    with training_work_dir_lock(args.work_dir):
        # Again, held: another run may have written them meanwhile.
        check_no_earlier_run(args.work_dir, resumable=False)
        check_no_earlier_overlays(args.work_dir)
        return train_test_draw(cfg, args, synthetic_root, split, overlay,
                               start)


def check_no_earlier_overlays(work_dir):
    """Refuse a work dir holding an earlier demo's ``overlays.png``: one
    that saved its checkpoints elsewhere (``out_dir``) left only its
    overlays there, which a new run would replace without a word.

    Args:
        work_dir (str): The demo's work dir.

    Returns:
        str: The path of the overlays the demo writes.
    """
    overlay = osp.join(work_dir, 'overlays.png')
    if osp.lexists(overlay):
        raise WorkDirError(
            f'The work dir {work_dir} already holds overlays.png of an '
            'earlier demo run (its checkpoints may be in '
            'default_hooks.checkpoint.out_dir); a new run would replace it. '
            'Nothing was started; choose another --work-dir, or remove it.')
    return overlay


def train_test_draw(cfg, args, synthetic_root, split, overlay, start):
    """Make the synthetic set, train and test on it, draw the overlays
    and print the summary (the demo's work, its work dir held).

    Args:
        cfg (Config): The demo's config.
        args (Namespace): Its command line.
        synthetic_root (str): The synthetic set's folder.
        split (str): The split file tested and drawn.
        overlay (str): Where the overlays go.
        start (float): When the demo started (``time.time()``).

    Returns:
        tuple: The metrics and the all-lesion guess's IoU.
    """
    print('[1/4] Preparing the synthetic ISIC-like set in '
          f'{synthetic_root} ...', flush=True)
    prepare_synthetic(2018, synthetic_root)
    cfg.work_dir = args.work_dir
    name = model_name(cfg)
    print(f'[2/4] Training {name} on {training_device()} for '
          f'{counted(cfg.train_cfg.max_epochs, "epoch")} ...', flush=True)
    # The config's runner (runner_type), as its final test's, with a log
    # folder of its own, also beside a run started in the same second.
    runner = build_runner(cfg)
    runner.train()
    print(f'[3/4] Evaluating on {split} ...', flush=True)
    tester, metrics, checkpoint = evaluate_final_checkpoint(cfg, runner)
    guess = trivial_guess_iou(synthetic_root, split)
    print('[4/4] Drawing prediction overlays ...', flush=True)
    tester.model.cfg = cfg
    draw_overlays(tester.model, synthetic_root, split, overlay, name=name,
                  checkpoint=checkpoint)
    width = max(len(k) for k in metrics)
    # The split by its file: a config's test loader may read another one
    # than lightweight_test.txt.
    print('\n' + '=' * 50 +
          f'\n{name} on {split} of the synthetic set (percent):')
    for key, value in metrics.items():
        print(f'  {key:<{width}}  {value:7.2f}')
    # Computed on the masks as stored: compare with IoU_orig (IoU is at
    # the evaluator's low_res_size).
    print('  Trivial guesses, pooled lesion IoU at the original size (as '
          f'IoU_orig): all-background 0.00, all-lesion {guess:.2f}')
    print(f'Checkpoint: {checkpoint}\n'
          f'Logs:       {runner.log_dir}\n'
          f'Overlays:   {overlay}\n'
          f'Total time: {time.time() - start:.0f} s\n' + '=' * 50)
    return metrics, guess


if __name__ == '__main__':
    run_reporting_user_errors(main)
