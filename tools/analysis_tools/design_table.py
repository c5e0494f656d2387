"""Markdown table of the design runs (``tools/check_real_data.py --split
design``): every candidate's metrics on the design hold-out, mean and
spread over seeds, best first.

    python tools/analysis_tools/design_table.py [results/design/*.json]
"""
import argparse
import glob
import os.path as osp
import sys

from mmseg_dsnet.leaderboard.design import DESIGN_DIR, design_table


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('records', nargs='*',
                        help='design records (default: results/design/*)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    paths = args.records or sorted(glob.glob(osp.join(DESIGN_DIR, '*.json')))
    if not paths:
        print('ERROR: no design records (run tools/check_real_data.py '
              '--split design first)', file=sys.stderr)
        return 2
    try:
        table = design_table(paths)
    except (OSError, ValueError, KeyError) as err:
        print(f'ERROR: {err}', file=sys.stderr)
        return 2
    print(table, end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
