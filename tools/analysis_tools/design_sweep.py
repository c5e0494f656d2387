"""Run design candidates on the design hold-out, several seeds each, a few
runs at a time (one ``tools/check_real_data.py --split design`` process per
run; each writes its record to ``--record-dir``).

    python tools/analysis_tools/design_sweep.py \\
        configs/dsnet/design/dsnet-design-e_isic2017.py egeunet \\
        --seeds 0 1 2 --parallel 2 --threads 1

A sweep cut short (a session's end, Ctrl-C) goes on with the same command
and ``--resume``: the runs with a record are done, each other run continues
from the newest checkpoint in its folder (one each epoch) or starts anew.

With ``--fast`` every run trains in this process with the fast trainer of
``tools/fast_train.py`` (one GPU, one CUDA stream and graph per run) and is
judged once after its last epoch; its records say ``(fast_train)`` in
``device`` and are compared only with each other:

    python tools/analysis_tools/design_sweep.py CONFIG_A CONFIG_B \\
        --seeds 0 1 2 3 4 5 6 7 --epochs 30 --fast --time-limit 300
"""
import argparse
import os.path as osp
import signal
import sys

from mmseg_dsnet.engine.cli_errors import exit_cleanly_on_sigterm
from mmseg_dsnet.leaderboard.design import DESIGN_DIR
from mmseg_dsnet.leaderboard.real_data_check import (DEFAULT_SRC,
                                                check_design_data_root,
                                                check_short_schedule,
                                                check_subset_sizes)
from mmseg_dsnet.leaderboard.sweep import (check_cpu_share,
                                           check_sweep_outputs, run_sweep,
                                           sweep_jobs)
from mmseg_dsnet.utils.cli import check_at_least, check_positive, check_seed
from mmseg_dsnet.utils.errors import UserError
from mmseg_dsnet.utils.paths import REPO_ROOT


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('candidates', nargs='+',
                        help='config files or model names of '
                        'check_real_data.py --models')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0],
                        help='the seeds each candidate runs (default: 0)')
    parser.add_argument('--parallel', type=int, default=None,
                        help='runs at a time (default: 2, fewer when the '
                        'CPUs hold fewer)')
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads per run (default: 1)')
    parser.add_argument('--epochs', type=int, default=15,
                        help='epochs of each run (default: 15)')
    parser.add_argument('--crop-size', type=int, default=128,
                        help='train and predict at this square size '
                        '(default: 128)')
    parser.add_argument('--train-images', type=int, default=None,
                        help='train on the first N design-train images '
                        '(default: all of them)')
    parser.add_argument('--src', default=None,
                        help='the real ISIC 2017 set (official layout; '
                        f'default: {DEFAULT_SRC})')
    parser.add_argument('--data-root', default='data/isic2017',
                        help='the converted set (default: data/isic2017)')
    parser.add_argument('--record-dir', default=DESIGN_DIR,
                        help='where each run writes its record (default: '
                        f'{osp.relpath(DESIGN_DIR, REPO_ROOT)})')
    parser.add_argument('--work-dir', default='work_dirs/design_sweep',
                        help='one folder per run is made in it (default: '
                        'work_dirs/design_sweep)')
    parser.add_argument('--start-before', type=float, default=None,
                        help='start no run later than this many seconds '
                        'after the sweep began (default: no limit)')
    parser.add_argument('--resume', action='store_true', default=None,
                        help='go on with a sweep cut short: skip the runs '
                        'with a record, continue the others from their '
                        'newest checkpoint')
    parser.add_argument('--fast', action='store_true',
                        help='train every run together in this process with '
                        "tools/fast_train.py's trainer (a GPU)")
    parser.add_argument('--device', default=None,
                        help='with --fast: cuda or cpu (default: cuda when '
                        'available)')
    parser.add_argument('--time-limit', type=float, default=None,
                        help='with --fast: seconds the training loop may '
                        'take; runs are stopped from the last seed '
                        '(default: no limit)')
    return parser.parse_args(argv)


#: Options of one way of running only, with what they belong to.
PROCESS_OPTIONS = ('--parallel', '--threads', '--start-before', '--src',
                   '--resume')
FAST_OPTIONS = ('--device', '--time-limit')


def check_options_of_the_mode(args):
    """Refuse an option the chosen way of running would drop."""
    given = {option: getattr(args, option[2:].replace('-', '_')) is not None
             for option in (*PROCESS_OPTIONS, *FAST_OPTIONS)}
    dropped = [o for o in (PROCESS_OPTIONS if args.fast else FAST_OPTIONS)
               if given[o]]
    if dropped:
        raise UserError(
            f'{", ".join(dropped)} {"is" if len(dropped) == 1 else "are"} '
            + ('not used with --fast (all runs train together in this '
               'process on --data-root)' if args.fast else
               'used only with --fast'))


def main(argv=None):
    args = parse_args(argv)
    try:
        # A negative seed failed inside every run; a negative
        # --start-before started none and exited 0.
        check_options_of_the_mode(args)
        # Seconds need not be whole: positive is all they must be.
        check_positive(('--time-limit', args.time_limit),
                       ('--start-before', args.start_before))
        check_at_least(('--parallel', args.parallel, 1),
                       ('--threads', args.threads, 1))
        for seed in args.seeds:
            check_seed(seed, '--seeds')
        check_short_schedule(args.epochs, args.train_images,
                             crop_size=args.crop_size)
    except UserError as err:
        print(f'ERROR: {err}', file=sys.stderr)
        return 2
    if not osp.isfile(osp.join(args.data_root, 'meta.json')):
        print(f'ERROR: {args.data_root} is not a converted ISIC set (no '
              'meta.json); convert it first with '
              'tools/dataset_converters/isic.py', file=sys.stderr)
        return 2
    try:
        # Every run refused it when it started (exit 1, the reason in the
        # logs); a --fast sweep trained and wrote records the tables refuse.
        check_design_data_root(args.data_root)
        # More images than the design-train split holds: mmengine would
        # take them all (the fast runs trained on all of them; each
        # process run refused it only when it started).
        check_subset_sizes(args.data_root, 'design', args.train_images)
    except UserError as err:
        print(f'ERROR: {err}', file=sys.stderr)
        return 2
    if args.fast:
        return fast_sweep(args)
    args.threads = args.threads or 1
    args.src = args.src or DEFAULT_SRC
    try:
        # More threads than CPUs slow every run and inflate the train times
        # its record holds.
        args.parallel = check_cpu_share(args.parallel or 2, args.threads,
                                        args.parallel is not None)
        jobs = sweep_jobs(args.candidates, args.seeds)
        to_run = check_sweep_outputs(jobs, args.work_dir, args.record_dir,
                                     args.crop_size, args.epochs,
                                     train_images=train_images_of(args),
                                     resume=bool(args.resume))
    except (OSError, ValueError, UserError) as err:
        print(f'ERROR: {err}', file=sys.stderr)
        return 2
    done_already = [job.name for job in jobs if job not in to_run]
    for name in done_already:
        print(f'{name}: done already (its record is in {args.record_dir})')
    if not to_run:
        return 0
    # The runs start in the repository root: paths are made absolute.
    check_args = ['--split', 'design', '--epochs', str(args.epochs),
                  '--crop-size', str(args.crop_size), '--src',
                  osp.abspath(args.src), '--data-root',
                  osp.abspath(args.data_root), '--record-dir',
                  osp.abspath(args.record_dir)]
    if args.train_images is not None:
        check_args += ['--train-images', str(args.train_images)]
    if args.resume:
        check_args.append('--resume')
    previous = exit_cleanly_on_sigterm()
    try:
        statuses = run_sweep(to_run, args.work_dir, check_args,
                             args.parallel, args.threads, args.start_before)
    except KeyboardInterrupt:
        print('ERROR: interrupted; the runs under way were stopped (they '
              'wrote no record) and no other was started; the same command '
              'with --resume goes on, each stopped run from its newest '
              'checkpoint', file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for name, status in statuses.items():
        print(f'{name}: {status}')
    failed = [n for n, s in statuses.items() if s.startswith('failed')]
    # Runs left out by --start-before make a partial sweep too.
    left = [n for n, s in statuses.items() if s == 'not started']
    problems = []
    if failed:
        problems.append(f'{len(failed)} of {len(jobs)} runs failed: '
                        f'{", ".join(failed)}')
    if left:
        problems.append(f'{len(left)} of {len(jobs)} runs not started '
                        f'before --start-before {args.start_before:g} s: '
                        f'{", ".join(left)}')
    if problems:
        print(f'ERROR: {"; ".join(problems)}', file=sys.stderr)
        return 1
    return 0


def train_images_of(args):
    """The images each run trains on: ``--train-images``, or the whole
    design-train split (None when its file is not readable here)."""
    from mmseg_dsnet.leaderboard.real_data_check import DESIGN_SPLITS
    from mmseg_dsnet.leaderboard.work_dir import split_size
    return split_size(dict(data_root=args.data_root,
                           ann_file=DESIGN_SPLITS[0],
                           indices=args.train_images))


def fast_sweep(args):
    """``--fast``: every run in this process, one record each."""
    import torch

    from mmseg_dsnet.engine.fast_training import (FastTrainingError,
                                                  training_device)
    from mmseg_dsnet.leaderboard.fast_design import (fast_design_specs,
                                                     fast_device_name,
                                                     run_fast_design)
    try:
        device = training_device(args.device or (
            'cuda' if torch.cuda.is_available() else 'cpu'))
        jobs = sweep_jobs(args.candidates, args.seeds)
        # The configs first: one the trainer cannot follow leaves no folder.
        specs = fast_design_specs(jobs, osp.abspath(args.data_root),
                                  args.work_dir, args.epochs, args.crop_size,
                                  args.train_images)
        check_sweep_outputs(jobs, args.work_dir, args.record_dir,
                            args.crop_size, args.epochs,
                            device=fast_device_name(device),
                            train_images=train_images_of(args),
                            resumable=False)
        statuses = run_fast_design(jobs, specs, args.record_dir, device,
                                   args.crop_size, args.time_limit)
    except (OSError, ValueError, UserError, FastTrainingError) as err:
        print(f'ERROR: {err}', file=sys.stderr)
        return 2
    for name, status in statuses.items():
        print(f'{name}: {status}')
    stopped = [n for n, s in statuses.items() if s != 'done']
    if stopped:
        print(f'ERROR: {len(stopped)} of {len(jobs)} runs did not train all '
              f'their epochs (no record): {", ".join(stopped)}',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
