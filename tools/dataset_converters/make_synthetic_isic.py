#!/usr/bin/env python
"""Write a synthetic ISIC Task 1 download (official folder or zip layout,
exact masks); see :mod:`mmseg_dsnet.datasets.converters.synthetic_isic`.
It holds ``SYNTHETIC.txt``, which the converter copies into its output: the
metrics of runs on the converted set say ``synthetic`` and
``leaderboard.py collect`` refuses them.

Example::

    python tools/dataset_converters/make_synthetic_isic.py data/raw --zip
    python tools/dataset_converters/isic.py data/raw data/synthetic_isic2017
"""
import argparse
import signal
import sys

from mmseg_dsnet.datasets.converters.synthetic_isic import (MAX_SIDE,
                                                            check_counts,
                                                            check_size,
                                                            generate)
from mmseg_dsnet.utils.cli import check_seed
from mmseg_dsnet.utils.errors import UserError, print_user_error


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a synthetic ISIC Task 1 download (official '
        'folder or zip layout).')
    parser.add_argument(
        'out',
        help='new or empty output folder (written beside it, then renamed '
        'into place)')
    parser.add_argument(
        '--year', type=int, default=2017, choices=[2016, 2017, 2018],
        help='the challenge whose folder and file names are written '
        '(default: 2017)')
    parser.add_argument('--num-train', type=int, default=40,
                        help='training pairs (default: 40)')
    parser.add_argument(
        '--num-val',
        type=int,
        default=None,
        help='validation pairs (default: 8; 0 for 2016)')
    parser.add_argument('--num-test', type=int, default=16,
                        help='test pairs (default: 16)')
    parser.add_argument(
        '--size', type=int, nargs=2, default=(256, 192), metavar=('W', 'H'),
        help=f'image width and height, each 8 to {MAX_SIDE} (default: 256 '
        '192)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the drawing; equal arguments give '
                        'byte-identical files (default: 0)')
    parser.add_argument(
        '--zip', action='store_true', help='write the official zip files')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    num_val = args.num_val if args.num_val is not None else (
        0 if args.year == 2016 else 8)
    try:
        # numpy's own refusal does not name the option.
        check_seed(args.seed, '--seed')
        check_size(args.size, '--size')
        # Every split with pairs, enough for the converter's splits: a
        # count of 0 would write empty folders.
        check_counts(args.year, args.num_train, num_val, args.num_test)
        generate(
            args.out,
            year=args.year,
            num_train=args.num_train,
            num_val=num_val,
            num_test=args.num_test,
            size=tuple(args.size),
            seed=args.seed,
            as_zip=args.zip,
            verbose=True)
    except (ValueError, OSError, UserError) as error:
        # OSError: OUT in the way (FileExistsError), a full disk, no
        # permission; the temporary folder is already gone.
        print_user_error(error)
        return 2
    except KeyboardInterrupt as error:
        # Ctrl-C, SIGTERM or SIGHUP; the temporary folder is already gone.
        signum = getattr(error, 'signum', signal.SIGINT)
        print(f'ERROR: interrupted by {signal.Signals(signum).name}; nothing '
              'written', file=sys.stderr)
        return 128 + signum
    return 0


if __name__ == '__main__':
    sys.exit(main())
