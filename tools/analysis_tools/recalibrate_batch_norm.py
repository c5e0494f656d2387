"""Recompute a trained checkpoint's BatchNorm statistics with its final
weights over one pass of the config's training loader ("precise BN"), and
write them as a new checkpoint that ``tools/test.py`` scores like any other.

    python tools/analysis_tools/recalibrate_batch_norm.py CONFIG CHECKPOINT \
        OUT.pth [--max-batches N] [--seed S] [--overwrite] [--cfg-options ...]

Weights are unchanged; only the running means and variances of the
BatchNorm layers are replaced (:mod:`mmseg_dsnet.engine.batch_norm_recalibration`).
Exit status 2, after one ``ERROR:`` line, for a user error (a missing or
mismatched input, an OUT not named ``.pth``, ``.pt`` or ``.ckpt``, an
existing output without ``--overwrite``, a ``--cfg-options`` key that would
change nothing (a config variable such as ``data_root``), a training
loader that reads images the checkpoint did not train on (a test split, or
a copy, subset or link of one under another name, or images outside the
training split its ``meta['cfg']`` names), a model
without BatchNorm).
"""
import argparse
import sys

from mmseg_dsnet.engine.batch_norm_recalibration import \
    write_recalibrated_checkpoint
from mmseg_dsnet.engine.cli_errors import run_reporting_user_errors
from mmseg_dsnet.engine.preflight import ConfigOptionsAction
from mmseg_dsnet.utils.cli import check_at_least, check_seed
from mmseg_dsnet.utils.messages import counted


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Recompute the BatchNorm statistics of a checkpoint')
    parser.add_argument('config', help='the config it was trained with')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('out', help='recalibrated checkpoint to write (.pth)')
    parser.add_argument('--max-batches', type=int,
                        help='average this many training batches (default: '
                        'one whole pass)')
    parser.add_argument('--seed', type=int, default=0,
                        help="seed of the loader's order and augmentation "
                        '(default: 0)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing OUT')
    parser.add_argument(
        '--cfg-options', nargs='+', action=ConfigOptionsAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_at_least(('--max-batches', args.max_batches, 1))
    check_seed(args.seed, '--seed')
    result = write_recalibrated_checkpoint(
        args.config, args.checkpoint, args.out, args.max_batches, args.seed,
        args.overwrite, args.cfg_options)
    layers = counted(result['layers'], 'layer')
    batches = counted(result['batches'], 'training batch',
                      'training batches')
    print(f'BatchNorm statistics of {layers} recomputed over {batches}\n'
          + (f'Kept as they were (not run by the forward pass, e.g. a '
             f'training-only auxiliary head): {", ".join(result["not_run"])}'
             '\n' if result['not_run'] else '') +
          f'Checkpoint: {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(run_reporting_user_errors(main))
