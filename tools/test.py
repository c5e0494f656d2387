"""Test (evaluate) a checkpoint, with mmseg's tools/test.py flags. Metrics
are also written as JSON (``--metrics-out``, default
``<work_dir>/test_metrics.json``) for the leaderboard tool, with the data
they were computed on: ``data_root``, ``split_file``, ``images`` and
``synthetic``, and the ``--cfg-options`` given. A file there from an earlier
test is replaced, and the line that reports the new one says what it held;
any other file is refused."""
import argparse
import contextlib
import os
import os.path as osp

# First, so that a Ctrl-C while the libraries load ends in one line;
# it registers the components and turns on safe loading.
import mmseg_dsnet  # noqa: F401
from mmengine.config import Config
from mmengine.dist import get_rank

from mmseg_dsnet.analysis.threshold_sweep import \
    check_not_tested_on_training_images
from mmseg_dsnet.datasets.flip_tta_pipeline import flip_tta_pipeline
from mmseg_dsnet.datasets.synthetic_fallback import (ensure_data, names_data,
                                                     synthetic_figures_note)
from mmseg_dsnet.engine import (check_config_keys, check_dataset_classes,
                                check_decision_thresholds,
                                check_evaluation_loaders, check_launched,
                                check_lesion_metrics,
                                check_model_builds, check_empty_output_dir,
                                check_pipelines_build,
                                check_output_file,
                                check_work_dir, finish_distributed,
                                run_reporting_user_errors,
                                setup_cpu_distributed)
from mmseg_dsnet.apis.released_model import check_trained_model
from mmseg_dsnet.engine.checkpoint_match import add_strict_checkpoint_hook
from mmseg_dsnet.engine.cli_errors import UserError
from mmseg_dsnet.engine.log_dir import (build_runner,
                                      log_dirs_removed_on_refusal,
                                      runner_class)
from mmseg_dsnet.engine.preflight import (ConfigOptionsAction,
                                          check_config_not_dumped_over,
                                          check_inference_mode,
                                          check_input_file, check_tta_model,
                                          load_tool_config, set_work_dir)
from mmseg_dsnet.engine.visualization import (check_can_show,
                                              check_paintings,
                                              check_saves_paintings,
                                              report_paintings)
from mmseg_dsnet.evaluation.lesion_metric import (check_each_image_once,
                                                  check_unique_mask_names)
from mmseg_dsnet.leaderboard.records import (metrics_record,
                                             previous_metrics_source,
                                             write_json)
from mmseg_dsnet.utils.errors import mark_every_rank
from mmseg_dsnet.utils.fileio import (new_files_removed_on_failure,
                                     restored_on_failure)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and eval) a segmentor checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='directory where logs and the metrics JSON are saved')
    parser.add_argument(
        '--out',
        type=str,
        help='new or empty folder for the scored masks (<image stem>.png: '
        '0 background, 255 lesion, at the original size) and '
        'per_image.csv (the figures of each image)')
    parser.add_argument(
        '--show', action='store_true',
        help='show prediction results in a window (needs a display; not '
        'with --show-dir: mmseg saves nothing while it shows)')
    parser.add_argument(
        '--show-dir',
        help='new or empty folder for ground truth and prediction painted '
        'side by side, '
        'in <show-dir>/vis_data/vis_image/, for every '
        'default_hooks.visualization.interval-th batch (mmseg\'s default: '
        '50; --cfg-options default_hooks.visualization.interval=1 paints '
        'all); a test that would paint none is refused, and the test says '
        'how many it painted')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='seconds each painting is shown with --show (default: 2)')
    parser.add_argument(
        '--metrics-out',
        help='JSON file for the metrics (default: <work_dir>/test_metrics.json;'
        " an earlier test's metrics there are replaced, any other file is "
        'refused)')
    parser.add_argument(
        '--no-synthetic-fallback',
        action='store_true',
        help='fail instead of using the synthetic set when the data is absent')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ConfigOptionsAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test time augmentation: average the lesion probability of '
        'each image and its horizontal and vertical flips (three passes), '
        "or of the views of the config's tta_pipeline when it sets one")
    parser.add_argument(
        '--allow-training-images',
        action='store_true',
        help='score the checkpoint on a split that shares images with the '
        "one its run trained on (its training config, meta['cfg']); "
        'refused by default: such figures favour the model')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args):
    option = '--show-dir' if args.show_dir else '--show'
    processes = int(os.environ.get('WORLD_SIZE', '1')) \
        if args.launcher != 'none' else 1
    if processes > 1:
        # mmseg's visualizer paints on rank 0 only (master_only): the
        # other processes' images would be missing from the folder.
        raise mark_every_rank(UserError(
            f'{option} paints only the images of the first of the '
            f'{processes} processes of a distributed test (mmseg draws on '
            f'rank 0 only), so the others\' images would be missing; run '
            f'tools/test.py (one process) with {option}'))
    if args.show and args.show_dir:
        # mmseg's hook drops the visualizer's backends when it shows: the
        # folder would stay empty.
        raise UserError(
            f'--show and --show-dir {args.show_dir} cannot be given together:'
            " mmseg's visualization hook saves nothing while it shows; give "
            'one of them')
    # mmseg's tools/test.py refuses this too, with a traceback.
    visualization_hook = (cfg.get('default_hooks') or {}).get('visualization')
    if not isinstance(visualization_hook, dict):
        raise UserError(
            f'{option} needs a visualization hook in default_hooks of '
            f'{args.config}; add default_hooks = dict(visualization='
            "dict(type='SegVisualizationHook')) to it")
    # Without one the runner's plain Visualizer draws nothing.
    if not isinstance(cfg.get('visualizer'), dict):
        raise UserError(
            f'{option} needs a visualizer in {args.config}; add visualizer '
            "= dict(type='SegLocalVisualizer', vis_backends=[dict(type="
            "'LocalVisBackend')]) to it")
    visualization_hook['draw'] = True
    if args.show:
        check_can_show()
        visualization_hook['show'] = True
        visualization_hook['wait_time'] = args.wait_time
    if args.show_dir:
        # Paintings of an earlier test would stay beside this one's, and an
        # image painted by both would be replaced without a word.
        check_empty_output_dir(args.show_dir, '--show-dir')
        check_saves_paintings(cfg.visualizer, args.config)
        cfg.visualizer['save_dir'] = args.show_dir
    return cfg


def build_cfg(args):
    check_launched(args.launcher, 'dist_test.sh')
    check_input_file(args.config, 'config file')
    check_input_file(args.checkpoint, 'checkpoint')
    cfg = load_tool_config(
        args.config, args.cfg_options,
        ('model', 'test_dataloader.dataset', 'test_evaluator', 'test_cfg'),
        'a test runs the model on its test data and scores it '
        'with its test evaluator; give a whole config such as '
        'configs/dsnet/dsnet_isic2017.py', launcher=args.launcher)
    set_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = args.checkpoint
    # Refuse a checkpoint of another model (load_from_strict=False allows a
    # partial one).
    add_strict_checkpoint_hook(cfg)
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        check_tta_model(cfg, args.config)
        # The config's own tta_pipeline if it has one, else its test
        # pipeline with flipped views.
        cfg.test_dataloader.dataset.pipeline = cfg.get('tta_pipeline') or \
            flip_tta_pipeline(cfg.test_dataloader.dataset.pipeline)
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        check_empty_output_dir(args.out)
        cfg.test_evaluator['output_dir'] = args.out
    check_config_keys(cfg)
    # A runner_type that cannot run, before the work dir is made.
    runner_class(cfg)
    check_inference_mode(check_model_builds(cfg), args.config)
    check_pipelines_build(cfg, ('test_dataloader', ))
    check_dataset_classes(cfg, ('test_dataloader', ))
    check_decision_thresholds(cfg, ('test_evaluator', ))
    check_lesion_metrics(cfg, ('test_evaluator', ))
    check_evaluation_loaders(cfg, ('test_dataloader', ), args.config)
    ensure_data(cfg, allow_synthetic=not args.no_synthetic_fallback,
                loaders=('test_dataloader', ),
                explicit=names_data(args.cfg_options))
    if cfg.get('load_from_strict', True):
        # Its keys fit, but weights trained in another network (other
        # dilations: no weights) would be tested in this one. Another
        # input size is a data setting, accepted here. After the checks
        # of the config alone: they need no checkpoint read.
        tested = cfg.model.module if args.tta else cfg.model
        check_trained_model(Config(dict(model=tested)), args.config,
                            args.checkpoint,
                            'test it with the config it was trained with')
    if not args.allow_training_images:
        # Test figures on images the checkpoint learned from favour it.
        check_not_tested_on_training_images(
            args.checkpoint, cfg.test_dataloader.dataset, args.config)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = build_cfg(args)
    out = args.metrics_out or osp.join(cfg.work_dir, 'test_metrics.json')
    # Before the evaluation, not after it: a file other than an earlier
    # test's metrics (the checkpoint ...), or a path that cannot be written.
    previous_metrics_source(out)
    check_config_not_dumped_over(args.config, cfg.work_dir)
    # A refused test leaves no log folder (nor a work dir it made): its
    # <ts>.log, and <ts>.json after the evaluation, read as a test run. A
    # crashed or stopped test's log folder stays: no <ts>.json, so not
    # read as a run.
    with log_dirs_removed_on_refusal(cfg.work_dir):
        check_work_dir(cfg.work_dir)
        check_output_file(out)
        # No CUDA: gloo, DDP without device ids (env_cfg,
        # model_wrapper_cfg).
        setup_cpu_distributed(cfg)
        # The runner dumps this config over the work dir's root dump (a
        # training's, which leaderboard.py collect reads, or the user's own
        # file of that name): a file that was there is put back, after a
        # failed test and a passed one; the test's config stays in its log
        # folder (<ts>/vis_data/config.py).
        dump = osp.join(cfg.work_dir, osp.basename(cfg.filename))
        with restored_on_failure(dump, keep_existing=True) as dumped:
            metrics = test(args, cfg, out)
    # Only where the runner's dump differed: a file identical to this
    # test's config (an earlier such test's) is not one kept apart.
    if dumped['restored'] and get_rank() == 0:
        print(f'Kept {dump} as it was (this test\'s config is in the '
              'run\'s log folder, <timestamp>/vis_data/config.py)')
    return metrics


def test(args, cfg, out):
    """Build the runner, test, write the metrics record (see :func:`main`).
    """
    # The masks (--out) and paintings (--show-dir) of the images tested
    # before a fault (or an interrupt) would look like those of the whole
    # split: removed, with vis_data/config.py, which the runner writes when
    # it is built, and each folder the run made.
    with contextlib.ExitStack() as outputs:
        for folder in (args.out, args.show_dir):
            if folder:
                outputs.enter_context(new_files_removed_on_failure(folder))
        # The config's runner (runner_type) with a log folder of its own: a
        # run started in the same second into this work dir would share it
        # (one log over the other, one metrics .json).
        runner = build_runner(cfg)
        dataset = runner.test_dataloader.dataset
        img_paths = [dataset.get_data_info(i)['img_path']
                     for i in range(len(dataset))]
        # A wrapper that repeats images weighed them twice in the figures.
        check_each_image_once(img_paths)
        if args.out is not None:
            # Before the first mask: the metric refuses a second mask of one
            # name only when it comes, after the masks scored before it.
            check_unique_mask_names(img_paths)
        painted = check_paintings(runner, img_paths, args.show_dir) \
            if args.show or args.show_dir else None
        metrics = runner.test()
        if painted is not None:
            report_paintings(painted, len(dataset), args.show_dir)
    if runner.rank == 0:
        replaced = previous_metrics_source(out)
        record = metrics_record(args.config, args.checkpoint, metrics,
                                cfg.test_dataloader.dataset,
                                len(runner.test_dataloader.dataset),
                                test_time_augmentation=args.tta,
                                cfg_options=args.cfg_options)
        write_json(record, out)
        if record['synthetic']:
            print(synthetic_figures_note(record['data_root']))
        note = f' (replacing {replaced})' if replaced else ''
        print(f'Metrics written to {out}{note}')
    finish_distributed(runner)
    return metrics


if __name__ == '__main__':
    run_reporting_user_errors(main)
