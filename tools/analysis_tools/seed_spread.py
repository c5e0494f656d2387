"""Which images make the runs of one design differ: each image's share of
the spread of the pooled error over runs (one per seed), from the
``per_image.csv`` each run's ``tools/test.py --out DIR`` writes
(:mod:`mmseg_dsnet.analysis.seed_spread`).

    python tools/test.py W_s0/CONFIG.py W_s0/epoch_30.pth --out masks_s0
    python tools/test.py W_s1/CONFIG.py W_s1/epoch_30.pth --out masks_s1
    python tools/analysis_tools/seed_spread.py masks_s*/per_image.csv \\
        [--top 10]
"""
import argparse
import sys

from mmseg_dsnet.analysis.seed_spread import (read_tables, spread_by_image,
                                              spread_table)
from mmseg_dsnet.utils.cli import check_at_least
from mmseg_dsnet.utils.errors import UserError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Which images make runs of one design differ')
    parser.add_argument('tables', nargs='+',
                        help='per_image.csv of each run (tools/test.py '
                        '--out DIR writes DIR/per_image.csv)')
    parser.add_argument('--top', type=int, default=10,
                        help='images shown, largest share first (default: '
                        '10)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        check_at_least(('--top', args.top, 1))
        spread = spread_by_image(read_tables(args.tables))
    except UserError as err:
        print(f'ERROR: {err}', file=sys.stderr)
        return 2
    print(spread_table(spread, args.top), end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
