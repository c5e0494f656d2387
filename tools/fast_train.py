"""Train one or several configs fast on one GPU (or, slowly, on the CPU).

The config's own model, loss, optimizer and schedule; the data path is
replaced: the training split is decoded once into device memory, flips and
rotation run batched on the device, and on CUDA the whole step (forward,
loss, backward, optimizer) is captured in a CUDA graph. Several configs /
seeds train together, one CUDA stream each. Work dirs look like those of
``tools/train.py``, so ``tools/test.py`` and ``leaderboard.py collect`` read
them unchanged.

Examples::

    python tools/fast_train.py configs/dsnet/dsnet_isic2017.py --test
    # three DSNet seeds and two baselines together, then test each
    python tools/fast_train.py configs/dsnet/dsnet_isic2017.py@0,1,2 \\
        configs/egeunet/egeunet_isic2017.py configs/malunet/malunet_isic2017.py \\
        --work-dir work_dirs/fast --test
"""
import argparse
import contextlib
import os.path as osp
import subprocess
import sys

# First, so that a Ctrl-C while the libraries load ends in one line;
# it registers the components and turns on safe loading.
import mmseg_dsnet  # noqa: F401
from mmengine.config import Config

from mmseg_dsnet.engine import (check_no_earlier_run, check_work_dir,
                                run_reporting_user_errors)
from mmseg_dsnet.engine.fast_training import (FastTrainer, FastTrainingError,
                                              RunSpec, check_cfg_options,
                                              check_fast_run_config,
                                              last_checkpoint_of,
                                              shared_training_setup,
                                              training_device)
from mmseg_dsnet.engine.preflight import (ConfigOptionsAction,
                                          apply_cfg_options,
                                          check_images_scored_once,
                                          check_input_file,
                                          training_work_dir_lock,
                                          validates_on_images_of)
from mmseg_dsnet.datasets.split_files import leaf_datasets, split_file
from mmseg_dsnet.utils.cli import check_at_least, check_positive, check_seed
from mmseg_dsnet.utils.messages import counted

TOOLS = osp.dirname(osp.abspath(__file__))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train configs fast: decoded-image cache, device '
        'augmentation, CUDA-graph step, several runs at once')
    parser.add_argument(
        'configs', nargs='+', metavar='CONFIG[@SEEDS]',
        help='config files, most important first; "@0,1,2" trains that '
        'config once per seed')
    parser.add_argument('--work-dir', help='the dir to save logs and models '
                        '(one sub-folder <config>_seed<k> per run when '
                        'there are several)')
    parser.add_argument('--seed', type=int, default=None,
                        help='seed of configs given without @SEEDS '
                        "(default: the config's randomness.seed, else 0)")
    parser.add_argument('--device', default=None,
                        help='cuda or cpu (default: cuda when available)')
    parser.add_argument('--no-cuda-graph', action='store_true',
                        help='run the step eagerly (for profiling)')
    parser.add_argument('--channels-last', dest='channels_last',
                        action='store_true', default=None,
                        help='feed channels-last inputs (default on CUDA)')
    parser.add_argument('--no-channels-last', dest='channels_last',
                        action='store_false',
                        help='feed contiguous (NCHW) inputs (default on the '
                        'CPU)')
    parser.add_argument('--amp', action='store_true',
                        help='bfloat16 autocast (did not help DSNet)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the networks (slow start)')
    parser.add_argument('--no-fused-optimizer', action='store_true',
                        help="use torch's foreach Adam(W) instead of fused")
    parser.add_argument('--warmup-iters', type=int, default=3,
                        help='eager steps before the graph is captured '
                        '(default: 3)')
    parser.add_argument('--time-limit', type=float,
                        help='seconds the loop may take: runs are stopped '
                        'from the last one while the projection is above')
    parser.add_argument('--checkpoint-interval', type=int, default=0,
                        help='also save every N epochs (default: at the end)')
    parser.add_argument('--val-interval', type=int, default=0,
                        help="validate on the config's val split every N "
                        'epochs and keep the best checkpoint (the official '
                        "protocol's model selection; default: none)")
    parser.add_argument('--resume', action='store_true',
                        help='continue every run from the last checkpoint '
                        'of its work dir')
    parser.add_argument('--workers', type=int,
                        help='image-decoding threads (default: the CPU '
                        'count, at most 16)')
    parser.add_argument('--test', action='store_true',
                        help='run tools/test.py on every finished run')
    parser.add_argument(
        '--cfg-options', nargs='+', action=ConfigOptionsAction,
        help='override settings of every config, key=value')
    return parser.parse_args(argv)


def parse_run(text, default_seed):
    """``path`` or ``path@0,1,2`` -> (path, [seeds]).

    A config given without ``@SEEDS`` trains ``default_seed`` (``--seed``);
    when that is None, the config file's own ``randomness.seed`` (else 0),
    as ``tools/train.py`` would: a file's seed 42 trained seed 0, recorded
    and dumped as seed 0, exit 0.
    """
    path, at, seeds = text.partition('@')
    check_input_file(path, 'config file')
    try:
        seed_list = [int(s) for s in seeds.split(',')] if at else \
            [default_seed]
    except ValueError:
        raise FastTrainingError(
            f'{text}: seeds after @ must be integers, e.g. '
            f'{path}@0,1,2') from None
    name = f'the seed of {text}' if at else '--seed'
    if seed_list == [None]:
        randomness = Config.fromfile(path).get('randomness') or {}
        seed = randomness.get('seed') if isinstance(randomness, dict) \
            else None
        seed_list = [0 if seed is None else seed]
        name = f'randomness.seed of {path}'
    for seed in seed_list:
        check_seed(seed, name)
    return path, seed_list


def build_specs(args):
    runs = []
    for text in args.configs:
        path, seeds = parse_run(text, args.seed)
        runs.extend((path, seed) for seed in seeds)
    keys = [(osp.realpath(p), s) for p, s in runs]
    for key in set(keys):
        if keys.count(key) > 1:
            raise FastTrainingError(
                f'the same config and seed twice: {key[0]} with seed '
                f'{key[1]}')
    names = [f'{osp.splitext(osp.basename(p))[0]}_seed{s}' for p, s in runs]
    for name in set(names):
        if names.count(name) > 1:
            clash = [p for (p, s), n in zip(runs, names) if n == name]
            raise FastTrainingError(
                f'{" and ".join(clash)} share a file name; runs and their '
                'work dirs are named after it, so rename one')
    specs = []
    for (path, seed), name in zip(runs, names):
        cfg = apply_cfg_options(Config.fromfile(path), args.cfg_options)
        check_fast_run_config(cfg, path, validate=bool(args.val_interval),
                              test=args.test)
        if args.work_dir is None:
            work_dir = osp.join('work_dirs', 'fast_train', name)
        elif len(runs) == 1:
            work_dir = args.work_dir
        else:
            work_dir = osp.join(args.work_dir, name)
        data_root = cfg.train_dataloader.dataset.get('data_root', '')
        if data_root and not osp.isdir(data_root):
            raise FastTrainingError(
                f'{path}: data_root {data_root} does not exist (convert the '
                'data with tools/dataset_converters/isic.py, or set '
                '--cfg-options train_dataloader.dataset.data_root=...)')
        # An image given twice by the validation (test) loader weighed
        # twice in its figures (the test's were refused after training).
        check_images_scored_once(cfg, tuple(
            loader for loader, runs in (('val_dataloader', args.val_interval),
                                        ('test_dataloader', args.test))
            if runs))
        if args.resume:
            # Before check_work_dir makes the folder: a run that cannot
            # resume leaves nothing behind.
            last_checkpoint_of(work_dir)
        else:
            check_no_earlier_run(work_dir)
        specs.append(RunSpec(cfg, path, seed, work_dir))
    # The loop, data, batch size and epochs the runs share: refused here
    # (an iteration-based loop, runs that differ), not after the work dirs
    # are made, which were left empty.
    shared_training_setup(specs)
    # Once every run has passed its checks, so that a refused second run
    # leaves no work dir of the first.
    for spec in specs:
        check_work_dir(spec.work_dir)
    return specs


def test_runs(summaries):
    """tools/test.py on every completed run; returns their exit codes."""
    codes = {}
    for summary in summaries:
        if not summary['completed']:
            continue
        dumped = osp.join(summary['work_dir'],
                          osp.basename(summary['config']))
        # With validation, the test uses the checkpoint selected on it,
        # unless it validated on the test split itself (the lightweight
        # protocols): a checkpoint picked on the test images overstates
        # the model.
        best = summary.get('best') or {}
        checkpoint = best.get('path') or summary['checkpoint']
        cfg = Config.fromfile(dumped)
        # Each dataset a wrapper (Concat, Repeat ...) holds is tested.
        tested = [split_file(leaf) for leaf in
                  leaf_datasets(cfg.test_dataloader.dataset)]
        # Named as the config's loaders read it: the design configs
        # validate and test on their hold-out, not on the test split. A
        # validation split of another name holding images of the tested
        # one (a copy, a subset, a link) chose the checkpoint on them too.
        chosen_on = validates_on_images_of(cfg, tested) \
            if best.get('path') else None
        if chosen_on:
            print(f'[fast_train] {summary["name"]}: testing the last '
                  f'checkpoint, not {osp.basename(best["path"])}: it was '
                  f'chosen by validating on {chosen_on}, the split it is '
                  'tested on', flush=True)
            checkpoint = summary['checkpoint']
        cmd = [sys.executable, osp.join(TOOLS, 'test.py'), dumped,
               checkpoint, '--work-dir', summary['work_dir']]
        print('[fast_train] ' + ' '.join(cmd), flush=True)
        codes[summary['name']] = subprocess.call(cmd)
    return codes


def main(argv=None):
    args = parse_args(argv)
    # 0 means "none" for the intervals; below it, the option would be
    # dropped or fail late.
    check_at_least(('--warmup-iters', args.warmup_iters, 0),
                   ('--checkpoint-interval', args.checkpoint_interval, 0),
                   ('--val-interval', args.val_interval, 0),
                   ('--workers', args.workers, 1))
    # A nan passed "<= 0" and then never stopped the training.
    check_positive(('--time-limit', args.time_limit))
    check_cfg_options(args.cfg_options)
    import torch
    # Refused before build_specs makes the work dirs.
    device = training_device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    specs = build_specs(args)
    with contextlib.ExitStack() as hold:
        # One training at a time in a work dir (train.py's lock too).
        for spec in specs:
            hold.enter_context(training_work_dir_lock(spec.work_dir))
        trainer = FastTrainer(
            specs,
            device=device,
            cuda_graph=False if args.no_cuda_graph else None,
            channels_last=args.channels_last,
            amp=args.amp,
            compile=args.compile,
            fused_optimizer=not args.no_fused_optimizer,
            warmup_iters=args.warmup_iters,
            time_limit=args.time_limit,
            checkpoint_interval=args.checkpoint_interval,
            val_interval=args.val_interval,
            resume=args.resume,
            workers=args.workers)
        summaries = trainer.train()
    for summary in summaries:
        state = 'done' if summary['completed'] else summary['stopped']
        print(f'[fast_train] {summary["name"]}: '
              f'{counted(summary["epochs"], "epoch")}, '
              f'{summary["img_per_s"]} img/s, {state}', flush=True)
    failed = {}
    if args.test:
        failed = {name: code for name, code in test_runs(summaries).items()
                  if code}
    # One ERROR line for everything that did not finish, so that a stopped
    # run is not read as a trained one.
    problems = [f'{s["name"]} did not train all its epochs: {s["stopped"]}'
                for s in summaries if not s['completed']]
    problems += [f'tools/test.py failed for {name} (exit {code})'
                 for name, code in failed.items()]
    if problems:
        print('ERROR: ' + '; '.join(problems), file=sys.stderr)
        return 1 if failed else 2
    return 0


if __name__ == '__main__':
    code = run_reporting_user_errors(main)
    sys.exit(code or 0)
