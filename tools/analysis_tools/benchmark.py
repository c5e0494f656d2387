"""Measure inference latency (batch 1) and throughput (batch N) of a
segmentor on CPU or GPU (:mod:`mmseg_dsnet.analysis.benchmark`).

    python tools/analysis_tools/benchmark.py CONFIG [CKPT] [--device cpu]
        [--threads 1] [--deploy | --compare-deploy] [--data] [--json]
        [--shape H W]

Without ``--shape`` the model is timed at the size the config runs it at
(its test ``Resize``); figures at another ``--shape`` say that size beside
theirs (``config_input_size`` in the JSON). A config that runs the network
at no one size (its test pipeline has no ``Resize`` to a scale, its test
``Resize`` keeps the aspect ratio, or ``model.test_cfg.mode='slide'``, as
mmseg's stock configs) needs ``--shape``.
"""
import argparse
import contextlib
import json
import sys

from mmseg_dsnet.analysis.benchmark import (benchmark, check_deploy_form,
                                            check_threads,
                                            check_timed_options,
                                            compare_deploy)
from mmseg_dsnet.deploy.deployable import input_size_of, no_one_input_size
from mmseg_dsnet.engine.cli_errors import (UserError,
                                          run_reporting_user_errors)
from mmseg_dsnet.engine.preflight import (ConfigOptionsAction,
                                          check_input_file, load_tool_config)
from mmseg_dsnet.leaderboard.board import comparable_model
from mmseg_dsnet.utils.cli import (check_at_least, check_warmup,
                                   device_option, input_shape,
                                   other_shape_note)
from mmseg_dsnet.utils.fileio import json_text
from mmseg_dsnet.utils.messages import counted


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark a segmentor: latency and throughput')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        'checkpoint', nargs='?', default=None,
        help='checkpoint (optional: timing does not depend on the weights)')
    parser.add_argument('--device', default='cpu',
                        help="cpu, cuda, cuda:1 ... (default: 'cpu')")
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input size H W (or one number; default: the '
                        'size the config runs the model at, its test '
                        'Resize)')
    parser.add_argument('--batch-size', type=int, default=16,
                        help='batch size of the throughput measurement '
                        '(default: 16)')
    parser.add_argument('--warmup', type=int, default=10,
                        help='untimed runs before timing (at least 1; '
                        'default: 10)')
    parser.add_argument('--repeat', type=int, default=50,
                        help='timed runs at batch 1 (default: 50)')
    parser.add_argument('--throughput-repeat', type=int, default=10,
                        help='timed runs at batch N (default: 10)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads of a --device cpu run '
                        '(default: torch default)')
    parser.add_argument('--deploy', action='store_true',
                        help='re-parameterise the model first (DSNet)')
    parser.add_argument('--compare-deploy', action='store_true',
                        help='time the model as trained AND re-parameterised '
                        'in one run and report the speed ratio')
    parser.add_argument('--channels-last', action='store_true',
                        help='use the channels_last memory format')
    parser.add_argument('--data', action='store_true',
                        help="use the config's test images instead of noise")
    parser.add_argument('--json', action='store_true',
                        help='print one JSON object only')
    parser.add_argument(
        '--cfg-options', nargs='+', action=ConfigOptionsAction,
        help='override some settings in the used config')
    return parser.parse_args(argv)


def print_comparison(result):
    """Print :func:`compare_deploy`'s figures (the JSON goes out whole)."""
    print(f'As trained: {result["latency_ms_trained"]:.2f} ms, '
          f'{result["params_trained"]} params\n'
          f'Re-parameterised: {result["latency_ms_deployed"]:.2f} ms, '
          f'{result["params_deployed"]} params\n'
          f'Speed-up (batch 1 median latency, {result["rounds"]} alternating '
          f'rounds): {result["speedup"]:.2f}x')


def main(argv=None):
    args = parse_args(argv)
    # Both printed "Model: CONFIG (re-parameterised)" above the comparison
    # of the model as trained with its re-parameterised form.
    if args.deploy and args.compare_deploy:
        raise UserError('--deploy and --compare-deploy: --compare-deploy '
                        'times the model as trained and re-parameterised; '
                        'give one of them')
    check_at_least(('--batch-size', args.batch_size, 1),
                   ('--repeat', args.repeat, 1),
                   ('--throughput-repeat', args.throughput_repeat, 1),
                   ('--threads', args.threads, 1))
    shape = input_shape(args.shape, images=args.batch_size) \
        if args.shape else None
    check_warmup(args.warmup)
    # torch refuses a device only once the model is built and moved.
    device = device_option(args.device, task='the benchmark')
    check_threads(args.threads, device)
    # Keys that change nothing timed were printed beside the figures as
    # if they had (model.test_cfg.mode=slide: one whole-image pass timed).
    check_timed_options(args.cfg_options, args.data, shape)
    check_input_file(args.config, 'config file')
    if args.checkpoint:
        check_input_file(args.checkpoint, 'checkpoint')
    # With --json, stdout holds the JSON object alone (`--json > FILE`):
    # what the work prints, such as mmengine's "Loads checkpoint by ..."
    # line, goes to stderr.
    with (contextlib.redirect_stdout(sys.stderr) if args.json else
          contextlib.nullcontext()):
        cfg = load_tool_config(
            args.config, args.cfg_options,
            ('model', ) + (('test_dataloader.dataset', ) if args.data else ()),
            'the benchmark builds the model of the config'
            + (' and reads its test images (--data)' if args.data else '')
            + '; give a model or training config such as '
            'configs/dsnet/dsnet_isic2017.py')
        # Without --shape, the config's own size: a fixed 256x256 would
        # time the 128 px demo model at 4x its work.
        # One that keeps the aspect ratio, slides windows or has no
        # Resize runs the network at no one size: there is no size of its
        # own to time.
        why = no_one_input_size(cfg)
        if shape is None and why:
            raise UserError(f'config {args.config} runs its network at no '
                            f'one input size ({why}); give the size to time '
                            'at with --shape H W')
        own = None if why else tuple(input_size_of(cfg))
        shape = shape or own
        if args.deploy or args.compare_deploy:
            check_deploy_form(
                cfg, '--compare-deploy' if args.compare_deploy else '--deploy')

        def run(deploy):
            return benchmark(cfg, args.checkpoint, device, shape,
                             args.batch_size, args.warmup, args.repeat,
                             args.throughput_repeat, args.threads, deploy,
                             args.channels_last, args.data, progress=True)

        result = (compare_deploy(run) if args.compare_deploy else
                  run(args.deploy))
    if args.cfg_options:
        # The figures of a model changed by --cfg-options were labelled
        # with the config alone, as those of the config's model.
        result['cfg_options'] = dict(args.cfg_options)
    # What was timed, for leaderboard.py collect --gpu-json to compare with
    # the run's model (options that keep the parameter count change it too).
    result['model_config'] = json.loads(
        json.dumps(comparable_model(cfg.model)))
    if args.json:
        print(json_text(result))
        return result
    # What the figures are of, above them in both forms: the comparison
    # printed its milliseconds and speed-up without the config, device,
    # threads or input size.
    timed = result['trained'] if args.compare_deploy else result
    # CPU threads do not run a GPU benchmark.
    threads = (f'threads: {timed["threads"]}, '
               if timed['threads'] is not None else '')
    label = (' (re-parameterised: the config sets deploy=True)'
             if result.get('deploy_config') else
             ' (re-parameterised)' if args.deploy else '')
    print(f'Model: {args.config}{label}\n'
          + (f'Config options: {result["cfg_options"]}\n'
             if args.cfg_options else '')
          + f'Device: {timed["device"]} ({timed["device_name"]}), '
          f'{threads}input: {timed["input"]} {shape[0]}x{shape[1]}'
          + (other_shape_note(shape, own) if own else ' (--shape)'))
    if args.compare_deploy:
        print_comparison(result)
        return result
    lat, tput = result['latency_ms'], result['throughput']
    print(f'Latency (batch 1, {counted(lat["runs"], "run")}): median '
          f'{lat["median"]:.2f} '
          f'ms, p90 {lat["p90"]:.2f} ms, p99 {lat["p99"]:.2f} ms\n'
          f'Throughput (batch {tput["batch_size"]}): '
          f'{tput["img_per_s"]:.1f} img/s')
    return result


if __name__ == '__main__':
    run_reporting_user_errors(main)
