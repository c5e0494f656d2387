"""Write a deploy checkpoint (and config) of a re-parameterisable model.

    python tools/deployment/reparameterize.py CONFIG CHECKPOINT OUT.pth

Every DESDConv's five training branches become one plain depthwise 3x3 conv
and BatchNorm is folded into the convolutions (``reparameterize_model``).
The deploy config (``OUT.py``) builds that plain form directly
(``deploy=True``), so the deploy checkpoint loads strictly into it. The tool
checks that both forms give the same logits on seeded random input — max abs
difference <= 1e-5 (``--atol``) in float64, where the fold is exact; in float32
the folded model's logits within four times the trained model's own float32
rounding noise (or ``--atol``) of their float64 values — and prints the
figures and the parameter counts.

Outputs are written atomically with the user's umask. Exit status: 0 when
written; 2, after one ``ERROR:`` line, for a user error (a missing config
or checkpoint, a ``--shape`` so small that some weights of a kernel meet
only the zero padding, where the check could not see them, an OUT not
named ``.pth``, ``.pt`` or ``.ckpt``, an existing output without
``--overwrite`` or one under a path through a file, an unsafe or corrupt
checkpoint, one trained at another input size than the config); 1, after
one ``ERROR:`` line, when the parity check fails (nothing is written).
"""
import argparse
import sys

from mmseg_dsnet.deploy.deploy_checkpoint import (ParityError,
                                                  write_deploy_checkpoint)
from mmseg_dsnet.engine.cli_errors import run_reporting_user_errors
from mmseg_dsnet.utils.cli import check_positive, input_shape


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Re-parameterise a trained model for deployment')
    parser.add_argument('config', help='training config')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('out', help='deploy checkpoint to write (.pth, .pt '
                        'or .ckpt); the deploy config goes next to it (.py)')
    parser.add_argument('--shape', type=int, nargs='+', default=[256, 256],
                        help='input H W of the parity check, or one number '
                        'for a square (default: 256 256)')
    parser.add_argument('--atol', type=float, default=1e-5,
                        help='largest logit difference the parity check '
                        'passes in float64 (default: 1e-5)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace OUT and its .py if they exist')
    return parser.parse_args(argv)


def main(argv=None):
    """Returns the figures of :func:`write_deploy_checkpoint`, or exit
    status 1 when its parity check fails; user errors are raised (reported
    by ``run_reporting_user_errors`` on the command line)."""
    args = parse_args(argv)
    # 0x0 failed inside the network with a traceback. The parity check
    # runs a float64 batch of 2 images.
    shape = input_shape(args.shape, images=2, value_bytes=8)
    # A nan tolerance passed "<= 0" and then every parity test.
    check_positive(('--atol', args.atol))
    try:
        result = write_deploy_checkpoint(args.config, args.checkpoint,
                                         args.out, shape,
                                         args.atol, args.overwrite)
    except ParityError as err:
        print(f'ERROR: {err}', file=sys.stderr)
        return 1
    print(f'Max abs logit difference, float64: '
          f'{result["max_abs_diff_float64"]:.3g}; float32: '
          f'{result["max_abs_diff"]:.3g} (float32 noise floor of the trained '
          f'model: {result["float32_noise_floor"]:.3g}; deploy config: '
          f'{result["deploy_config_max_abs_diff"]:.3g})\n'
          f'Params: {result["params"]} -> {result["params_deployed"]}\n'
          f'Deploy checkpoint: {result["checkpoint"]}\n'
          f'Deploy config:     {result["config"]}')
    return result


if __name__ == '__main__':
    status = run_reporting_user_errors(main)
    sys.exit(status if isinstance(status, int) else 0)
