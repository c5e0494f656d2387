"""Write a deploy checkpoint (and config) of a re-parameterisable model.

    python tools/deployment/reparameterize.py CONFIG CHECKPOINT OUT.pth

Every DESDConv's five training branches become one plain depthwise 3x3 conv
and BatchNorm is folded into the convolutions (``reparameterize_model``).
The deploy config (``OUT.py``) builds that plain form directly
(``deploy=True``), so the deploy checkpoint loads strictly into it. The tool
checks that both forms give the same logits on random input — max abs
difference <= 1e-5 (``--atol``) in float64, where the fold is exact; in float32
up to twice the trained model's own float32 rounding noise — and prints the
figures and the parameter counts.

Outputs are written atomically with the user's umask. Exit status: 0 when
written; 2, after one ``ERROR:`` line, for a user error (a missing config or
checkpoint, an existing output without ``--overwrite``, an unsafe or
corrupt checkpoint); 1, after one ``ERROR:`` line, when the parity check
fails (nothing is written).
"""
import argparse
import copy
import io
import os.path as osp
import sys

import torch
from mmengine.config import Config

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))
import mmseg_dsnet  # noqa: E402,F401
from mmseg_dsnet.compat import atomic_write  # noqa: E402
from mmseg_dsnet.engine.cli_errors import (  # noqa: E402
    UserError, run_reporting_user_errors)
from mmseg_dsnet.engine.checkpoint_match import \
    load_checkpoint_strictly  # noqa: E402
from mmseg_dsnet.models.utils import reparameterize_model  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Re-parameterise a trained model for deployment')
    parser.add_argument('config', help='training config')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('out', help='deploy checkpoint to write (.pth); the '
                        'deploy config goes next to it (.py)')
    parser.add_argument('--shape', type=int, nargs=2, default=[256, 256])
    parser.add_argument('--atol', type=float, default=1e-5)
    parser.add_argument('--overwrite', action='store_true')
    return parser.parse_args(argv)


def deploy_config(cfg):
    """The config with ``deploy=True`` on every part that takes it."""
    cfg = copy.deepcopy(cfg)
    for part in ('backbone', 'decode_head'):
        if part in cfg.model:
            cfg.model[part]['deploy'] = True
    return cfg


class ParityError(RuntimeError):
    """The re-parameterised model does not reproduce the trained one."""


def reparameterize(config, checkpoint, out, shape=(256, 256), atol=1e-5,
                   overwrite=False):
    """Re-parameterise, verify and save. Returns the figures as a dict."""
    out_cfg = osp.splitext(out)[0] + '.py'
    for path, what in ((config, 'config'), (checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise UserError(f'{what} {path} not found')
    for path in (out, out_cfg):
        if osp.exists(path) and not overwrite:
            raise FileExistsError(
                f'{path} exists; pass --overwrite to replace it.')
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    model = MODELS.build(cfg.model)
    # Strictly, into the training-mode model of ``config``: weights that do
    # not fit would pass the parity check below as a wrong model.
    source = load_checkpoint_strictly(
        model, checkpoint, config,
        hint='Give the training config the checkpoint was trained with.')
    model.eval()
    params_before = sum(p.numel() for p in model.parameters())
    # The fold is done in float64 (then stored as float32), and checked in
    # float64, where it must be exact up to ``atol``. In float32 a trained
    # network's own rounding noise (float32 vs float64 logits) can exceed
    # 1e-5; the float32 difference is accepted up to twice that noise floor
    # (and always up to ``atol``) and reported.
    inputs = torch.randn(2, 3, *shape, dtype=torch.float64)
    with torch.no_grad():
        model64 = copy.deepcopy(model).double()
        ref64 = model64(inputs, mode='tensor')
        ref32 = model(inputs.float(), mode='tensor')
        deployed64 = reparameterize_model(model64)
        exact_diff = float((deployed64(inputs, mode='tensor') -
                            ref64).abs().max())
        deployed = deployed64.float()
        dep32 = deployed(inputs.float(), mode='tensor')
    fp32_diff = float((dep32 - ref32).abs().max())
    noise_floor = float((ref32.double() - ref64).abs().max())
    if exact_diff > atol:
        raise ParityError(f'Re-parameterised logits differ by '
                          f'{exact_diff:.3g} > {atol:g} in float64; not '
                          f'writing {out}.')
    if fp32_diff > max(atol, 2 * noise_floor):
        raise ParityError(f'Re-parameterised float32 logits differ by '
                          f'{fp32_diff:.3g}, more than twice the float32 '
                          f'noise floor {noise_floor:.3g}; not writing '
                          f'{out}.')
    dep_cfg = deploy_config(cfg)
    plain = MODELS.build(dep_cfg.model)
    plain.load_state_dict(deployed.state_dict(), strict=True)
    plain.eval()
    with torch.no_grad():
        plain_diff = float(
            (plain(inputs.float(), mode='tensor') - dep32).abs().max())
    if plain_diff > atol:
        raise ParityError(f'The deploy config does not reproduce the model '
                          f'(max diff {plain_diff:.3g}).')
    # Keep the source's meta (dataset_meta: class names and palette).
    meta = dict(source.get('meta', {}), deploy=True,
                source_checkpoint=osp.abspath(checkpoint))
    buffer = io.BytesIO()
    torch.save(dict(state_dict=deployed.state_dict(), meta=meta), buffer)
    atomic_write(buffer.getvalue(), out)
    atomic_write(dep_cfg.dump(), out_cfg)  # the config's Python text
    return dict(
        max_abs_diff=fp32_diff, max_abs_diff_float64=exact_diff,
        float32_noise_floor=noise_floor,
        deploy_config_max_abs_diff=plain_diff,
        params=params_before,
        params_deployed=sum(p.numel() for p in deployed.parameters()),
        checkpoint=out, config=out_cfg)


def main(argv=None):
    """Returns the figures of :func:`reparameterize`, or exit status 1 when
    its parity check fails; user errors are raised (reported by
    ``run_reporting_user_errors`` on the command line)."""
    args = parse_args(argv)
    try:
        result = reparameterize(args.config, args.checkpoint, args.out,
                                tuple(args.shape), args.atol, args.overwrite)
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
