"""Count a model's FLOPs and parameters (replaces mmseg 1.2.2's get_flops.py).

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W] [--json]
        [--cfg-options model.KEY=VALUE ...]

Without ``--shape`` the model is counted at the size the config runs it at
(its test ``Resize``); figures at another ``--shape`` say that size beside
theirs. A config that runs the network at no one size (its test pipeline
has no ``Resize`` to a scale, its test ``Resize`` keeps the aspect ratio, or
``model.test_cfg.mode='slide'``, as mmseg's stock configs) needs
``--shape``.

A deploy config (``deploy=True``, as ``reparameterize.py`` writes) is
counted as the re-parameterised model it builds, and labelled so; one that
sets it on part of the model only (``model.backbone.deploy=True`` alone) is
refused: its figures would be of neither form.

``--cfg-options`` may change only ``model.*`` (nothing else is counted),
and not its ``data_preprocessor``, ``test_cfg`` or ``train_cfg`` (one pass of
the network on a ``--shape`` tensor is counted); the overrides are printed
with the figures and kept in the JSON.

One multiply-add counts as one FLOP (mmengine's analyzer, as thop); see
:mod:`mmseg_dsnet.analysis.flops` for what is counted.
"""
import argparse

from mmseg_dsnet.analysis.flops import CONVENTION, get_flops
from mmseg_dsnet.engine.cli_errors import run_reporting_user_errors
from mmseg_dsnet.engine.preflight import (ConfigOptionsAction,
                                          check_input_file)
from mmseg_dsnet.utils.cli import input_shape, other_shape_note
from mmseg_dsnet.utils.fileio import json_text


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Get the FLOPs and parameters of a segmentor')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=None,
        help='input image size (H W, or one number for a square; default: '
        'the size the config runs the model at, its test Resize)')
    parser.add_argument(
        '--json', action='store_true', help='print one JSON object only')
    parser.add_argument(
        '--show-table', action='store_true', help='print the per-module table')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ConfigOptionsAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    args = parser.parse_args(argv)
    if args.json and args.show_table:
        # The JSON object is all that --json prints: the table was dropped.
        parser.error('--show-table prints text tables; it cannot go with '
                     '--json')
    return args


def main(argv=None):
    args = parse_args(argv)
    check_input_file(args.config, 'config file')
    # Without --shape, the config's own size: a fixed 256x256 would count
    # the 128 px demo model at 4x its cost.
    shape = input_shape(args.shape) if args.shape else None
    result = get_flops(args.config, shape, args.cfg_options, args.show_table)
    shape = tuple(result['input_shape'])
    own = result['config_input_size']
    # Titled: the deployed model's table followed the trained one's with
    # nothing between them but a blank line.
    tables = [('Per module, the re-parameterised model (the config sets '
               'deploy=True):' if result.get('deploy_config') else
               'Per module, the model as trained:', result.pop('table'))]
    if 'deploy' in result:
        tables.append(('Per module, the deployed (re-parameterised) model:',
                       result['deploy'].pop('table')))
    if args.json:
        print(json_text(dict(config=args.config, **result)))
        return result
    split_line = '=' * 30
    if args.show_table:
        print('\n'.join(f'{title}\n{table}' for title, table in tables))
    # Named, as in the JSON: figures pasted elsewhere say whose they are.
    print(f'{split_line}\nConfig: {args.config}\n'
          'Compute type: direct: randomly generate a picture\n'
          f'Input shape: {shape}'
          + (other_shape_note(shape, own) if own else ' (--shape)') + '\n'
          + (f'Config options: {result["cfg_options"]}\n'
             if 'cfg_options' in result else '')
          + ('Model: re-parameterised (the config sets deploy=True); count '
             'its training config for the model as trained\n'
             if result.get('deploy_config') else '') +
          f'Flops: {result["flops"] / 1e9:.3f}G\n'
          f'Params: {result["params"] / 1e6:.3f}M\n'
          f'Flops of conv/linear/matmul only (the papers\' thop-style count): '
          f'{result["flops_weight_layers"] / 1e9:.3f}G\n'
          f'Counting: {CONVENTION}')
    if 'deploy' in result:
        dep = result['deploy']
        print(f'Deployed (re-parameterised) model:\n'
              f'Flops: {dep["flops"] / 1e9:.3f}G\n'
              f'Params: {dep["params"] / 1e6:.3f}M')
    print(split_line)
    return result


if __name__ == '__main__':
    run_reporting_user_errors(main)
