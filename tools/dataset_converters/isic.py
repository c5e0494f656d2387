#!/usr/bin/env python
"""Convert the official ISIC 2016/2017/2018 Task 1 downloads (folders or zip
files) to images/, masks/ (0/1 PNG), splits/ and meta.json; see
:mod:`mmseg_dsnet.datasets.converters.isic` for the checks and the layout.

Needs only numpy and Pillow, so it runs before mmcv and torch are installed.
User errors print one ``ERROR: ...`` line and exit with status 2; an
interrupt (Ctrl-C, SIGTERM, SIGHUP) exits with 128 + the signal number.

Example::

    python tools/dataset_converters/isic.py /downloads/isic2018 data/isic2018
"""
import argparse
import signal
import sys

from mmseg_dsnet.datasets.converters.isic import (DEFAULT_WORKERS,
                                                  MIN_IMAGE_SIDE,
                                                  OFFICIAL_FOLDERS,
                                                  ConversionError, convert)
from mmseg_dsnet.utils.cli import (check_at_least, check_seed,
                                   escape_unencodable_output)
from mmseg_dsnet.utils.errors import UserError, print_user_error

# Exit status of every user error (bad arguments, nothing to convert, OUT in
# the way, --strict with a problem its help names), as argparse uses for
# usage errors.
USER_ERROR_EXIT = 2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert the official ISIC 2016/2017/2018 Task 1 '
        'downloads (folders or zips) to images/, masks/ (0/1 PNG), splits/ '
        'and meta.json.')
    parser.add_argument(
        'src', help='folder holding the official folders or zip files')
    parser.add_argument('out', help='output folder (created atomically)')
    parser.add_argument(
        '--year',
        type=int,
        choices=sorted(OFFICIAL_FOLDERS),
        help='ISIC year; recognised from the folder/zip names by default')
    parser.add_argument(
        '--strict',
        action='store_true',
        help='exit non-zero and write nothing if any pair is skipped, '
        'an official split (train, val, test) of the year is missing or '
        'its folders hold no image or mask, a folder cannot be read, an id '
        'has two files of other content, an image is smaller than '
        f'{MIN_IMAGE_SIDE} pixels a side, a mask has no lesion or no '
        'background pixel, or a seeded split of --seed '
        'puts one photo (under two ids) into a training list and '
        'the list scored against it')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the lightweight train/test split (default 0)')
    parser.add_argument(
        '--train-ratio',
        type=float,
        default=0.7,
        help='train share of the lightweight split (default 0.7)')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace OUT if it exists and is not empty (an earlier '
        'conversion; never a folder whose subfolders hold data sets)')
    parser.add_argument(
        '--workers',
        type=int,
        default=DEFAULT_WORKERS,
        help=f'worker processes (default {DEFAULT_WORKERS}; 1 = no pool)')
    parser.add_argument(
        '--quiet', action='store_true', help='print errors only')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        # numpy refused a negative seed with a traceback, after every pair
        # had been checked.
        check_seed(args.seed, '--seed')
        # The converter's own refusals name its arguments, not the options.
        check_at_least(('--workers', args.workers, 1))
        if not 0 < args.train_ratio < 1:
            raise UserError('--train-ratio must lie in (0, 1), got '
                            f'{args.train_ratio}')
        convert(
            args.src,
            args.out,
            year=args.year,
            strict=args.strict,
            seed=args.seed,
            train_ratio=args.train_ratio,
            overwrite=args.overwrite,
            workers=args.workers,
            verbose=not args.quiet)
    except (ConversionError, UserError) as error:
        print_user_error(error)
        return USER_ERROR_EXIT
    except OSError as error:  # disk full, no permission: named by the error
        print_user_error(error)
        return USER_ERROR_EXIT
    except KeyboardInterrupt as error:
        # Ctrl-C, SIGTERM or SIGHUP; the temporary folder is already gone.
        signum = getattr(error, 'signum', signal.SIGINT)
        print(f'ERROR: interrupted by {signal.Signals(signum).name}; nothing '
              'written', file=sys.stderr)
        return 128 + signum
    return 0


if __name__ == '__main__':
    # Folder names the console cannot show are escaped, not a traceback.
    escape_unencodable_output()
    sys.exit(main())
