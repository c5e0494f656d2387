"""The leaderboard: collect logged runs, aggregate them, render the tables,
the plot and the generated blocks of the README and the model card, and
check those blocks against them (see :mod:`mmseg_dsnet.leaderboard`).

    # one work dir -> results/runs/<model>_<data>_<protocol>_<tag>_seed<k>.json
    python tools/analysis_tools/leaderboard.py collect CONFIG WORK_DIR \\
        [--label NAME] [--schedule "2 epochs, 200 train images (CPU short)"]
    # all runs -> results/leaderboard.{json,csv,md,png} (+ the README's
    # compact table and the model card's results)
    python tools/analysis_tools/leaderboard.py build --readme README.md \\
        --model-card configs/dsnet/README.md
    # non-zero exit when a generated block disagrees with leaderboard.json
    python tools/analysis_tools/leaderboard.py check --readme README.md \\
        --model-card configs/dsnet/README.md
    # train + test + collect, one work dir per seed
    python tools/analysis_tools/leaderboard.py run CONFIG --work-dir W \\
        --seeds 0 1 2
"""
import argparse
import copy
import glob
import os.path as osp
import subprocess
import sys

from mmseg_dsnet.datasets.split_files import split_file
from mmseg_dsnet.engine.preflight import (ConfigOptionsAction,
                                          check_input_file,
                                          check_pipelines_build, load_config)
from mmseg_dsnet.leaderboard.board import (CPU_LATENCY, RUNS_DIR, build,
                                           check, check_not_chosen_on_test,
                                           check_options_keep_the_test_split,
                                           collect, result_changing_options)
from mmseg_dsnet.leaderboard.records import read_last_checkpoint
from mmseg_dsnet.utils.cli import check_at_least, check_seed, check_warmup
from mmseg_dsnet.utils.errors import ChildToolError, UserError
from mmseg_dsnet.utils.paths import REPO_ROOT

TOOLS = osp.join(REPO_ROOT, 'tools')
REPORTED = osp.join(REPO_ROOT, 'results', 'reported.json')


def _check_run_args(args):
    """Refuse seeds and options the seeds' trainings would fail on (or
    end with a wrong benchmark), before the first training starts."""
    check_input_file(args.config, 'config file')
    # One work dir per seed.
    for seed in args.seeds:
        check_seed(seed, '--seeds')
    if len(set(args.seeds)) != len(args.seeds):
        raise UserError(f'--seeds repeats a seed: {args.seeds}')
    # Read as the seeds' train.py and test.py read them.
    parser = argparse.ArgumentParser()
    parser.add_argument('--options', nargs='+', action=ConfigOptionsAction)
    options = parser.parse_args(
        ['--options', *args.cfg_options]).options if args.cfg_options else {}
    # Given to the tests too, so collect would refuse every seed's record.
    changing = result_changing_options(options)
    if changing:
        raise UserError(
            f'--cfg-options {" ".join(changing)} change the model, the test '
            f'data or the evaluator of {args.config}; a leaderboard row is '
            'a config as it is: put the change into a config of its own '
            '(_base_ = the config) and run that')
    cfg = load_config(args.config)
    test_dataset = copy.deepcopy(cfg.test_dataloader.dataset)
    cfg.merge_from_dict(options)
    check_options_keep_the_test_split(test_dataset, cfg, args.config)
    # A random step in the test pipeline: tools/test.py refuses it, but
    # only after the first training.
    check_pipelines_build(cfg, ('test_dataloader', ))
    if args.checkpoint == 'best':
        # Refused by collect anyway, but only after the trainings.
        test = cfg.test_dataloader.dataset
        check_not_chosen_on_test(
            cfg, 'best_', [split_file(test) or str(test.get('ann_file'))],
            args.config)


GPU_BATCH_SIZE, BENCH_WARMUP, BENCH_REPEAT = 32, 10, 50


def _check_collect_flags(args):
    """Refuse benchmark settings that would time nothing, or time the
    first call with its one-off costs, or that nothing would be timed
    with (they were dropped without a word: ``--gpu-json F
    --gpu-batch-size 64`` recorded F's batch); then fill in the
    defaults."""
    if args.gpu_batch_size is not None and not args.gpu_benchmark:
        raise UserError(
            f'--gpu-batch-size {args.gpu_batch_size}: it sets the batch of '
            '--gpu-benchmark, which is not asked' + (
                ' (a --gpu-json file holds the batch it was measured at: '
                'measure it with benchmark.py --batch-size)'
                if args.gpu_json else '') + '; leave it out')
    if args.no_benchmark and not args.gpu_benchmark:
        given = [f'{option} {value}' for option, value in (
            ('--bench-warmup', args.bench_warmup),
            ('--bench-repeat', args.bench_repeat)) if value is not None]
        if given:
            raise UserError(f'{", ".join(given)}: --no-benchmark times '
                            'nothing here; leave it out')
    for name, default in (('gpu_batch_size', GPU_BATCH_SIZE),
                          ('bench_warmup', BENCH_WARMUP),
                          ('bench_repeat', BENCH_REPEAT)):
        if getattr(args, name) is None:
            setattr(args, name, default)
    check_warmup(args.bench_warmup, '--bench-warmup')
    check_at_least(('--bench-repeat', args.bench_repeat, 1),
                   ('--gpu-batch-size', args.gpu_batch_size, 1))


def _run_step(command, what, seed):
    """Run one tool of a seed's run; its own output names what failed."""
    code = subprocess.run(command).returncode
    if code < 0:  # ended by a signal
        code = 128 - code
    if code:
        raise ChildToolError(f'{what} failed for seed {seed} (exit {code}; '
                             'its output is above); later seeds were not '
                             'run', code)


def run(args):
    """tools/train.py, tools/test.py and collect, once per seed."""
    from mmseg_dsnet.leaderboard.board import SyntheticDataError
    records = []
    for seed in args.seeds:
        work_dir = osp.join(args.work_dir, f'seed{seed}')
        options = [f'randomness.seed={seed}'] + (args.cfg_options or [])
        common = ['--cfg-options', *options]
        guard = [] if args.allow_synthetic else ['--no-synthetic-fallback']
        train = [sys.executable, osp.join(TOOLS, 'train.py'), args.config,
                 '--work-dir', work_dir, *guard, *common]
        _run_step(train + (['--amp'] if args.amp else []), 'tools/train.py',
                  seed)
        if args.checkpoint == 'best':
            best = glob.glob(osp.join(work_dir, 'best_*.pth'))
            if not best:
                raise UserError(
                    f'--checkpoint best: no best_*.pth in {work_dir} (the '
                    'config saves none: it does not validate with '
                    'save_best); use --checkpoint last')
            ckpt = max(best, key=osp.getmtime)
        else:
            ckpt = read_last_checkpoint(work_dir)
        _run_step([sys.executable, osp.join(TOOLS, 'test.py'), args.config,
                   ckpt, '--work-dir', work_dir, *guard, *common],
                  'tools/test.py', seed)
        try:
            records.append(collect_from_args(args, work_dir))
        except SyntheticDataError as err:
            # A synthetic dry run (--allow-synthetic) ends without a record.
            if not args.allow_synthetic:
                raise
            print(f'Not collected: {err}')
    return records


def collect_from_args(args, work_dir):
    return collect(
        args.config, work_dir, label=args.label, schedule=args.schedule,
        schedule_tag=args.schedule_tag,
        seed_from_config=args.seed_from_config,
        benchmark=not args.no_benchmark, gpu_benchmark=args.gpu_benchmark,
        runs_dir=args.runs_dir,
        metrics_file=getattr(args, 'metrics_file', None),
        warmup=args.bench_warmup, repeat=args.bench_repeat,
        gpu_batch_size=args.gpu_batch_size,
        gpu_json=getattr(args, 'gpu_json', None),
        overwrite=getattr(args, 'overwrite', False))


def _collect_flags(parser):
    parser.add_argument('--label', help='model name (default: from the '
                        'config file name)')
    parser.add_argument('--schedule', help='schedule description, the '
                        'grouping key (default: epochs, images, batch)')
    parser.add_argument('--schedule-tag', help='short schedule tag for the '
                        'file name (default: from --schedule)')
    parser.add_argument('--seed-from-config', action='store_true',
                        help="take the seed only from the dumped config's "
                        'randomness.seed (fail when unset) instead of '
                        'falling back to the seed in the log')
    parser.add_argument('--no-benchmark', action='store_true',
                        help='skip the CPU latency measurement')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a record of the same model, protocol, '
                        'schedule tag and seed collected from another work '
                        'dir')
    parser.add_argument('--gpu-benchmark', action='store_true',
                        help='also measure GPU throughput (needs CUDA)')
    parser.add_argument('--gpu-json', help='GPU throughput from a '
                        'benchmark.py --device cuda --json file measured on '
                        'a GPU machine (instead of --gpu-benchmark)')
    # None: not given (the defaults are set by _check_collect_flags, which
    # refuses them where nothing would be timed with them).
    parser.add_argument('--gpu-batch-size', type=int, default=None,
                        help='batch of the --gpu-benchmark throughput '
                        f'(default: {GPU_BATCH_SIZE})')
    parser.add_argument('--bench-warmup', type=int, default=None,
                        help=f'untimed calls (default: {BENCH_WARMUP})')
    parser.add_argument('--bench-repeat', type=int, default=None,
                        help=f'timed calls (default: {BENCH_REPEAT})')
    parser.add_argument('--runs-dir', default=RUNS_DIR,
                        help='where the run record is written (default: '
                        f'{osp.relpath(RUNS_DIR, REPO_ROOT)})')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('collect', help='one work dir -> one run record')
    p.add_argument('config')
    p.add_argument('work_dir')
    p.add_argument('--metrics-file', help='a tools/test.py --metrics-out '
                   'file (default: <work_dir>/test_metrics.json)')
    _collect_flags(p)
    p = sub.add_parser('build', help='run records -> leaderboard files')
    p.add_argument('--runs', nargs='+', help='run records (default: '
                   'results/runs/*.json)')
    p.add_argument('--reported', help='published figures quoted beside '
                   'the runs (default: results/reported.json when present)')
    p.add_argument('--out-dir', default=osp.join(REPO_ROOT, 'results'),
                   help='where leaderboard.json, its tables and '
                   'leaderboard.png are written (default: results)')
    p.add_argument('--readme', help='README whose leaderboard block to '
                   'replace (default: none)')
    p.add_argument('--model-card', help='model card whose results block to '
                   'replace, e.g. configs/dsnet/README.md (default: none)')
    p.add_argument('--cpu-latency', help='cpu_latency.py result quoted in '
                   'the CPU ms columns (default: results/cpu_latency.json '
                   'when present)')
    p.add_argument('--no-plot', action='store_true',
                   help='write no leaderboard.png')
    p = sub.add_parser('check', help='exit 1 when a generated block '
                       'disagrees with leaderboard.json')
    p.add_argument('--readme', default=osp.join(REPO_ROOT, 'README.md'),
                   help='the README to check (default: README.md)')
    p.add_argument('--model-card', help='also check this model card, e.g. '
                   'configs/dsnet/README.md (default: none)')
    p.add_argument('--leaderboard', default=osp.join(REPO_ROOT, 'results',
                                                     'leaderboard.json'),
                   help='the records the blocks must agree with (default: '
                   'results/leaderboard.json)')
    p = sub.add_parser('run', help='train, test and collect per seed')
    p.add_argument('config')
    p.add_argument('--work-dir', required=True,
                   help='one folder per seed is made in it (seed<k>)')
    p.add_argument('--seeds', type=int, nargs='+', default=[0],
                   help='the seeds to train, test and collect (default: 0)')
    p.add_argument('--cfg-options', nargs='+', help='key=value overrides '
                   'passed to train.py and test.py')
    p.add_argument('--checkpoint', choices=['last', 'best'], default='last',
                   help="checkpoint to test ('best' = selected on the "
                   'validation split, for the official protocol; '
                   "default: 'last')")
    p.add_argument('--amp', action='store_true',
                   help='train with automatic mixed precision (train.py '
                   '--amp)')
    p.add_argument('--allow-synthetic', action='store_true',
                   help='let train/test fall back to the synthetic set (a dry '
                   'run of the pipeline: its runs are not collected)')
    _collect_flags(p)
    return parser.parse_args(argv)


def _check_named_files(paths):
    """Refuse ``(path, what)`` pairs whose path is given but not a file."""
    for path, what in paths:
        if path:
            check_input_file(path, what)


def main(argv=None):
    args = parse_args(argv)
    if args.command in ('collect', 'run'):
        _check_collect_flags(args)
    if args.command == 'collect':
        return collect_from_args(args, args.work_dir)
    if args.command == 'build':
        # A file the user named must exist: a missing one would silently
        # drop its column or block from the pages.
        _check_named_files(
            [(path, 'run record') for path in args.runs or []] +
            [(args.reported, '--reported file'),
             (args.cpu_latency, '--cpu-latency file'),
             (args.readme, '--readme file'),
             (args.model_card, '--model-card file')])
        runs = args.runs or sorted(glob.glob(osp.join(RUNS_DIR, '*.json')))
        if not runs:
            raise UserError(f'no run records in {RUNS_DIR}: collect runs '
                            'first (leaderboard.py collect CONFIG WORK_DIR)')
        return build(runs, args.reported or REPORTED, args.out_dir,
                     args.readme, not args.no_plot, args.model_card,
                     args.cpu_latency or CPU_LATENCY)
    if args.command == 'check':
        _check_named_files([(args.readme, '--readme file'),
                            (args.leaderboard, '--leaderboard file'),
                            (args.model_card, '--model-card file')])
        return check(args.readme, args.leaderboard, args.model_card)
    _check_run_args(args)
    return run(args)


if __name__ == '__main__':
    from mmseg_dsnet.engine import run_reporting_user_errors
    result = run_reporting_user_errors(main)
    sys.exit(result if isinstance(result, int) else 0)
