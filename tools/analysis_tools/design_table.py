"""Markdown table of the design runs (``tools/check_real_data.py --split
design``): every candidate's metrics on the design hold-out, mean and
spread over seeds, best first; with ``--compare-to`` the per-seed comparison
of candidates with a reference under the selection rule of
docs/design_study.md; with ``--spread`` how large a difference the paired
rule can see, from the per-seed differences of pairs already run.

    python tools/analysis_tools/design_table.py [results/design/*.json]
    python tools/analysis_tools/design_table.py --compare-to REFERENCE \
        --candidates NAME [NAME ...] [--seeds 0 1 2 3] [--device cpu] \
        [--paired [--planned-seeds N]] [--metric mIoU_img] [--min-seeds 4]
    python tools/analysis_tools/design_table.py --spread REF:CAND [...] \
        [--metric mIoU_img]
"""
import argparse
import glob
import math
import os.path as osp
import sys

from mmseg_dsnet.leaderboard.design import (DESIGN_DIR, KEYS, MIN_SEEDS,
                                            comparison_table, design_table,
                                            paired_spread_table)
from mmseg_dsnet.utils.cli import check_at_least
from mmseg_dsnet.utils.errors import UserError

# The selection rule's defaults.
MIN_GAIN, SE_FACTOR = 0.3, 2.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('records', nargs='*',
                        help='design records (default: results/design/*)')
    parser.add_argument('--compare-to', metavar='REFERENCE',
                        help='record name of the reference design')
    parser.add_argument('--candidates', nargs='+', default=[],
                        help='record names to compare with the reference')
    parser.add_argument('--seeds', type=int, nargs='+', default=None,
                        help='seeds to compare (default: those all ran)')
    parser.add_argument('--device', default='cpu',
                        help="the runs' device, as in the records "
                        "(default: 'cpu')")
    parser.add_argument('--min-gain', type=float, default=MIN_GAIN,
                        help='IoU points a candidate must gain (default: '
                        f'{MIN_GAIN})')
    parser.add_argument('--se-factor', type=float, default=SE_FACTOR,
                        help='standard errors the gain must exceed '
                        f'(default: {SE_FACTOR})')
    parser.add_argument('--paired', action='store_true',
                        help='standard error of the per-seed differences '
                        '(runs of one seed share data order and '
                        'augmentation)')
    parser.add_argument('--planned-seeds', type=int, default=None,
                        help='with --paired: the seeds the comparison was '
                        'planned with; says whether each candidate can '
                        'still pass')
    parser.add_argument('--min-seeds', type=int, default=MIN_SEEDS,
                        help='seeds the rule needs to decide: a candidate '
                        'that meets it on fewer is shown as undecided '
                        f'(default {MIN_SEEDS}, docs/design_study.md)')
    parser.add_argument('--metric', choices=KEYS, default='IoU',
                        help='the figure --compare-to and --spread compare '
                        '(default: pooled IoU, the selection rule\'s)')
    parser.add_argument('--spread', nargs='+', metavar='REF:CAND',
                        default=[],
                        help='reference:candidate pairs whose per-seed '
                        'differences measure the spread of the paired rule')
    return parser.parse_args(argv)


# The options a --spread table uses.
SPREAD_OPTIONS = ('--metric', '--min-gain', '--se-factor', '--device')


def options_without_effect(args):
    """The options given that the table asked for would ignore: the full
    table compares nothing, and ``--spread`` pairs every seed both runs of
    a pair have."""
    given = {
        '--seeds': args.seeds is not None,
        '--paired': args.paired,
        '--planned-seeds': args.planned_seeds is not None,
        '--metric': args.metric != 'IoU',
        '--min-gain': args.min_gain != MIN_GAIN,
        '--se-factor': args.se_factor != SE_FACTOR,
        '--device': args.device != 'cpu',
        '--min-seeds': args.min_seeds != MIN_SEEDS,
    }
    if args.compare_to:
        return []
    return [name for name, on in given.items()
            if on and not (args.spread and name in SPREAD_OPTIONS)]


def main(argv=None):
    args = parse_args(argv)
    paths = args.records or sorted(glob.glob(osp.join(DESIGN_DIR, '*.json')))
    if not paths:
        print('ERROR: no design records (run tools/check_real_data.py '
              '--split design first)', file=sys.stderr)
        return 2
    if bool(args.compare_to) != bool(args.candidates):
        print('ERROR: --compare-to and --candidates go together',
              file=sys.stderr)
        return 2
    pairs = [tuple(pair.split(':')) for pair in args.spread]
    if any(len(pair) != 2 or not all(pair) for pair in pairs):
        print('ERROR: --spread takes REFERENCE:CANDIDATE pairs, got '
              f'{" ".join(args.spread)}', file=sys.stderr)
        return 2
    if pairs and args.compare_to:
        print('ERROR: --spread and --compare-to make two different tables; '
              'give one of them', file=sys.stderr)
        return 2
    unused = options_without_effect(args)
    if unused:
        also_spread = not pairs and set(unused) <= set(SPREAD_OPTIONS)
        print(f'ERROR: {", ".join(unused)} '
              + ('applies' if len(unused) == 1 else 'apply')
              + ' only to --compare-to'
              + (' or --spread' if also_spread else '')
              + '; this table would not use '
              + ('it' if len(unused) == 1 else 'them'), file=sys.stderr)
        return 2
    try:
        # A negative factor would pass gains below the noise (--min-gain
        # may be negative: a non-inferiority margin); a nan in either
        # failed every candidate.
        check_at_least(('--se-factor', args.se_factor, 0),
                       ('--min-gain', args.min_gain, -math.inf),
                       ('--min-seeds', args.min_seeds, 2))
        if pairs:
            table = paired_spread_table(paths, pairs, args.device,
                                        min_gain=args.min_gain,
                                        se_factor=args.se_factor,
                                        metric=args.metric)
        elif args.compare_to:
            table = comparison_table(paths, args.compare_to, args.candidates,
                                     args.device, args.seeds, args.min_gain,
                                     args.se_factor, args.paired,
                                     args.planned_seeds, args.metric,
                                     args.min_seeds)
        else:
            table = design_table(paths)
    except (OSError, ValueError, KeyError, UserError) as err:
        print(f'ERROR: {err}', file=sys.stderr)
        return 2
    print(table, end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
