"""Count a model's FLOPs and parameters (replaces mmseg 1.2.2's get_flops.py,
which passes both ``input_shape`` and ``inputs`` and always fails on
mmengine 0.10.7).

Counting convention: mmengine's ``FlopAnalyzer`` counts ONE fused
multiply-add as ONE FLOP (the thop/fvcore convention of the lesion
segmentation literature, i.e. these "FLOPs" are MACs). Convolutions,
linear/matmul, normalisation layers, upsampling and adaptive pooling are
counted; element-wise activations, additions and multiplications are not.
The network is counted from the input tensor to the decode head's logits
(``EncoderDecoder._forward``), in eval mode, at batch 1.

A second figure, ``flops_weight_layers``, keeps only convolutions, linear
layers and matrix products: the count the lightweight-lesion papers quote
(thop ignores GroupNorm/LayerNorm and resizes), so published budgets of
EGE-UNet and MALUNet compare with it. DSNet's budget (0.287 G) is checked
against the full count.
"""
import argparse
import json
import os.path as osp
import sys

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.print_helper import complexity_stats_table
from mmengine.config import Config, DictAction

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))
import mmseg_dsnet  # noqa: E402,F401
from mmseg_dsnet.models.utils import reparameterize_model  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402

CONVENTION = ('1 multiply-add = 1 FLOP (mmengine FlopAnalyzer, as thop); '
              'convs, linear, norms, upsampling counted; element-wise ops not')
# Operators of weight layers and matrix products (the papers' thop count).
WEIGHT_LAYER_OPS = ('conv', 'linear', 'matmul', 'bmm', 'einsum', 'addmm')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Get the FLOPs and parameters of a segmentor')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[256, 256],
        help='input image size (H W, or one number for a square)')
    parser.add_argument(
        '--json', action='store_true', help='print one JSON object only')
    parser.add_argument(
        '--show-table', action='store_true', help='print the per-module table')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    return parser.parse_args(argv)


def count(model, shape, show_table=False):
    """FLOPs and params of ``model`` (eval mode) at input ``(1, 3, *shape)``."""
    inputs = torch.randn(1, 3, *shape)
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, (inputs, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        by_operator = analyzer.by_operator()
        result = dict(
            flops=int(analyzer.total()),
            flops_weight_layers=int(
                sum(by_operator.get(op, 0) for op in WEIGHT_LAYER_OPS)),
            params=int(parameter_count(model)['']),
            table=complexity_stats_table(analyzer, show_param_shapes=False)
            if show_table else '')
    return result


def build_model(cfg):
    register_all_modules(init_default_scope=True)
    model = MODELS.build(cfg.model)
    model.eval()
    return model


def get_flops(config, shape=(256, 256), cfg_options=None, show_table=False):
    """Count the model as trained and, when it can be re-parameterised, as
    deployed.

    Returns:
        dict: ``flops``, ``params`` (raw numbers), ``input_shape``,
        ``convention`` and, for re-parameterisable models, ``deploy`` with
        the deployed model's ``flops`` and ``params``.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = build_model(cfg)
    result = count(model, shape, show_table)
    result.update(input_shape=list(shape), convention=CONVENTION)
    if any(hasattr(m, 'reparameterize') for m in model.modules()):
        dep = count(reparameterize_model(model), shape, show_table)
        result['deploy'] = dep
    return result


def main(argv=None):
    args = parse_args(argv)
    if len(args.shape) == 1:
        shape = (args.shape[0], args.shape[0])
    elif len(args.shape) == 2:
        shape = tuple(args.shape)
    else:
        raise ValueError(f'--shape takes 1 or 2 numbers, got {args.shape}')
    result = get_flops(args.config, shape, args.cfg_options, args.show_table)
    tables = [result.pop('table')]
    if 'deploy' in result:
        tables.append(result['deploy'].pop('table'))
    if args.json:
        print(json.dumps(dict(config=args.config, **result)))
        return result
    split_line = '=' * 30
    if args.show_table:
        print('\n'.join(t for t in tables if t))
    print(f'{split_line}\nCompute type: direct: randomly generate a picture\n'
          f'Input shape: {shape}\n'
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
    main()
