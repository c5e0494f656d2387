"""Train a segmentor (mmseg's tools/train.py flags, plus a synthetic-data
fallback when no data location is given and the config's default dataset is
absent; a data root given in the config or with ``--cfg-options`` is used as
given, and a missing one is an error).

Before the runner is built the config is checked for misspelt top-level keys,
the model and the pipelines' transforms are built once (a bad argument leaves
no run folder) and the work dir is checked for being writable. ``--resume``
continues from the newest *complete* checkpoint (a file cut short by a kill is
passed over), only with the config its run was started with. Faults the
user can fix (bad data, NaN loss, unsafe checkpoint ...) end the run with one
``ERROR:`` line; see docs/reliability.md."""
import argparse
import contextlib
import logging
import os
import os.path as osp

# First, so that a Ctrl-C while the libraries load ends in one line;
# it registers the components and turns on safe loading.
import mmseg_dsnet  # noqa: F401
from mmengine.logging import print_log

from mmseg_dsnet.datasets.synthetic_fallback import ensure_data, names_data
from mmseg_dsnet.engine import (check_config_keys, check_dataset_classes,
                                check_decision_thresholds,
                                check_evaluation_loaders, check_launched,
                                check_lesion_metrics, check_save_best,
                                check_val_keys_together,
                                check_model_builds, check_pipelines_build,
                                check_no_earlier_run, check_work_dir,
                                finish_distributed,
                                pick_resume_checkpoint,
                                run_reporting_user_errors,
                                setup_cpu_distributed)
from mmseg_dsnet.engine.checkpoint_match import add_strict_checkpoint_hook
from mmseg_dsnet.engine.cli_errors import TRAINING_STOP_HINT
from mmseg_dsnet.engine.log_dir import (build_runner,
                                         log_dirs_removed_on_refusal,
                                         runner_class)
from mmseg_dsnet.engine.preflight import (ConfigOptionsAction,
                                          check_auto_scale_lr,
                                          check_checkpoint_hook_keys,
                                          check_config_not_dumped_over,
                                          check_env_cfg_keys,
                                          check_held_out_images,
                                          check_inference_mode,
                                          check_images_scored_once,
                                          check_input_file,
                                          check_load_from,
                                          check_optimizer_builds,
                                          check_pretrained_checkpoints,
                                          check_trainable_model,
                                          check_training_batches,
                                          check_training_schedule,
                                          check_val_cfg, has_val_loop,
                                          load_tool_config, set_work_dir,
                                          training_work_dir_lock)
from mmseg_dsnet.engine.resume_check import (check_resume_checkpoint,
                                             resume_checkpoint)
from mmseg_dsnet.utils.cli import check_seed
from mmseg_dsnet.utils.errors import UserError
from mmseg_dsnet.utils.fileio import remove_stale_partials


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument(
        '--partial-checkpoint',
        action='store_true',
        help='allow a load_from checkpoint that fits only part of the model '
        '(e.g. backbone weights); by default every key must match')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
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
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args):
    check_launched(args.launcher, 'dist_train.sh')
    cfg = load_tool_config(
        args.config, args.cfg_options,
        ('model', 'train_dataloader.dataset', 'optim_wrapper', 'train_cfg'),
        'training runs the model on its training data with its '
        'optimizer and schedule; give a whole config such as '
        'configs/dsnet/dsnet_isic2017.py', launcher=args.launcher)
    # Before every check that asks has_val_loop: a val_cfg of no loop.
    check_val_cfg(cfg)
    set_work_dir(cfg, args.work_dir, args.config)
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.',
                      logger='current', level=logging.WARNING)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
        from mmengine.device import get_device
        if get_device() == 'cpu':
            # mmengine's AmpOptimWrapper asserts this deep in the build.
            raise UserError('mixed precision (--amp or AmpOptimWrapper) '
                            'needs a GPU, NPU or MLU; none is available here')
    # resume=True in the config or --cfg-options resumes too; dropping it
    # started a new run over the work dir's checkpoints.
    cfg.resume = args.resume or bool(cfg.get('resume'))
    if args.partial_checkpoint:
        cfg.load_from_strict = False
    if cfg.get('load_from'):
        check_input_file(cfg.load_from, 'checkpoint')
    # Refuse a load_from / resume checkpoint of another model.
    add_strict_checkpoint_hook(cfg)
    check_config_keys(cfg)
    # A runner_type that cannot run, before the work dir is made.
    runner_class(cfg)
    # mmengine ignores an env_cfg key it does not read.
    check_env_cfg_keys(cfg, args.config)
    check_auto_scale_lr(cfg, args.config)
    check_training_schedule(cfg, args.config)
    # init_cfg Pretrained loads non-strictly: weights of another network
    # would load nothing.
    model = check_model_builds(cfg)
    check_pretrained_checkpoints(cfg, model)
    if has_val_loop(cfg):
        # mmseg reads model.test_cfg only at the first validation.
        check_inference_mode(model, args.config)
    # The Runner's own check of load_from came after it had made the run's
    # log folder and dumped the config.
    check_load_from(cfg, model)
    # The runner builds the optimizer only when the training starts.
    check_optimizer_builds(cfg, model, args.config)
    del model
    check_trainable_model(cfg)
    # mmengine validates with any val_cfg but None, dict() included.
    validates = has_val_loop(cfg)
    loaders = ('train_dataloader', 'val_dataloader') if validates \
        else ('train_dataloader', )
    check_pipelines_build(cfg, loaders)
    check_dataset_classes(cfg, loaders)
    check_seed((cfg.get('randomness') or {}).get('seed'))
    check_decision_thresholds(cfg, ('val_evaluator', ))
    check_lesion_metrics(cfg, ('val_evaluator', ))
    if validates:
        check_evaluation_loaders(cfg, ('val_dataloader', ), args.config)
    check_save_best(cfg)
    check_checkpoint_hook_keys(cfg)
    check_val_keys_together(cfg)
    ensure_data(cfg, allow_synthetic=not args.no_synthetic_fallback,
                loaders=('train_dataloader', 'val_dataloader'),
                explicit=names_data(args.cfg_options))
    if validates:
        # Validation figures (and the best checkpoint) on training images.
        check_held_out_images(cfg, ('val_dataloader', ), args.config)
        # A repeated image weighed twice in the figures and the best
        # checkpoint.
        check_images_scored_once(cfg, ('val_dataloader', ))
    # Processes before mmengine starts them (slurm sets WORLD_SIZE then).
    world_size = {'pytorch': 'WORLD_SIZE', 'slurm': 'SLURM_NTASKS'}.get(
        args.launcher)
    check_training_batches(
        cfg, int(os.environ.get(world_size, '1')) if world_size else 1)
    return cfg


def prepare_work_dir(cfg, hold):
    """Check the work dir is writable, hold it for this training (until
    ``hold`` closes) and, for a new run, check it holds no other run's
    checkpoints; when resuming, drop the temporary
    files of a checkpoint write that was killed, pick the newest complete
    checkpoint and check that it is of this config's run.

    Args:
        cfg (Config): The run's config.
        hold (contextlib.ExitStack): Holds the work dir's lock.
    """
    check_config_not_dumped_over(cfg.filename, cfg.work_dir)
    check_work_dir(cfg.work_dir)
    # The processes of one distributed run share it: the first holds it.
    if int(os.environ.get('RANK', '0')) == 0:
        hold.enter_context(training_work_dir_lock(cfg.work_dir))
    if not cfg.resume:
        check_no_earlier_run(cfg.work_dir)
        return
    if int(os.environ.get('RANK', '0')) == 0:
        for path in remove_stale_partials(cfg.work_dir):
            print_log(f'Removed {path}, left by an interrupted '
                      'checkpoint write.', logger='current')
    # The config's load_from when it holds a run's state, else the work
    # dir's newest checkpoint.
    if resume_checkpoint(cfg, pick_resume_checkpoint):
        # Before the runner dumps the config over the run's own.
        check_resume_checkpoint(cfg, cfg.load_from)


def main(argv=None):
    args = parse_args(argv)
    cfg = build_cfg(args)
    with contextlib.ExitStack() as hold:
        # A run refused before its training loop starts (a hook or
        # randomness key the runner refuses) leaves no log folder, no
        # config dump and no work dir it made; from the loop's start on,
        # its files stay. Undone before the lock is let go.
        with log_dirs_removed_on_refusal(cfg.work_dir) as refusal:
            prepare_work_dir(cfg, hold)
            if cfg.filename and int(os.environ.get('RANK', '0')) == 0:
                # The runner's config dump, read with the lock held.
                refusal.put_back_on_refusal(osp.join(
                    cfg.work_dir, osp.basename(cfg.filename)))
            # No CUDA: gloo, DDP without device ids (env_cfg,
            # model_wrapper_cfg).
            setup_cpu_distributed(cfg)
            # The config's runner (runner_type) with a log folder of its
            # own, also beside a test started in the same second.
            runner = build_runner(cfg)
            runner.train()
            finish_distributed(runner)
    return runner


if __name__ == '__main__':
    run_reporting_user_errors(main, stop_hint=TRAINING_STOP_HINT)
