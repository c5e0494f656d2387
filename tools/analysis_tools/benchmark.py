"""Measure inference latency (batch 1) and throughput (batch N) of a
segmentor on CPU or GPU.

Unlike mmseg 1.2.2's benchmark.py (CUDA only, NaN on test sets under 200
images) this times the network itself on a fixed input tensor — random, or
real test images with ``--data`` (cycled, so any set size works) — after a
warm-up, and reports the median and percentiles of many timed runs.
"""
import argparse
import json
import os.path as osp
import platform
import sys
import time

import numpy as np
import torch
from mmengine.config import Config, DictAction

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))
import mmseg_dsnet  # noqa: E402,F401
from mmseg_dsnet.engine.checkpoint_match import \
    load_checkpoint_strictly  # noqa: E402
from mmseg_dsnet.engine.cli_errors import \
    run_reporting_user_errors  # noqa: E402
from mmseg_dsnet.engine.preflight import check_input_file  # noqa: E402
from mmseg_dsnet.models.utils import reparameterize_model  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark a segmentor: latency and throughput')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        'checkpoint', nargs='?', default=None,
        help='checkpoint (optional: timing does not depend on the weights)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1 ...')
    parser.add_argument('--shape', type=int, nargs='+', default=[256, 256],
                        help='input size H W (or one number)')
    parser.add_argument('--batch-size', type=int, default=16,
                        help='batch size of the throughput measurement')
    parser.add_argument('--warmup', type=int, default=10,
                        help='untimed runs before timing')
    parser.add_argument('--repeat', type=int, default=50,
                        help='timed runs at batch 1')
    parser.add_argument('--throughput-repeat', type=int, default=10,
                        help='timed runs at batch N')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
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
        '--cfg-options', nargs='+', action=DictAction,
        help='override some settings in the used config')
    return parser.parse_args(argv)


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_runs(fn, inputs, warmup, repeat, device):
    """Wall-clock seconds of ``repeat`` calls of ``fn(inputs)``."""
    with torch.no_grad():
        for _ in range(warmup):
            fn(inputs)
        _sync(device)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn(inputs)
            _sync(device)
            times.append(time.perf_counter() - start)
    return np.array(times)


def load_test_images(cfg, count, shape):
    """Up to ``count`` preprocessed test images of the config, resized to
    ``shape`` (normalised like the model's data preprocessor)."""
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    if len(dataset) == 0:
        raise ValueError('The test set of the config is empty.')
    images = []
    for i in range(min(count, len(dataset))):
        img = dataset[i]['inputs'].float()[None]
        images.append(torch.nn.functional.interpolate(
            img, size=shape, mode='bilinear', align_corners=False))
    images = torch.cat(images)
    pre = cfg.model.data_preprocessor
    mean = torch.tensor(pre.get('mean', [0, 0, 0])).view(1, -1, 1, 1)
    std = torch.tensor(pre.get('std', [1, 1, 1])).view(1, -1, 1, 1)
    if pre.get('bgr_to_rgb', False):
        images = images[:, [2, 1, 0]]
    return (images - mean) / std


def make_batch(pool, batch, shape):
    """A batch of ``batch`` images, cycling through ``pool`` if given."""
    if pool is None:
        return torch.randn(batch, 3, *shape)
    idx = torch.arange(batch) % pool.shape[0]
    return pool[idx]


def benchmark(cfg, checkpoint=None, device='cpu', shape=(256, 256),
              batch_size=16, warmup=10, repeat=50, throughput_repeat=10,
              threads=None, deploy=False, channels_last=False, data=False):
    """Run the benchmark and return its figures as a dict (times in ms)."""
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device)
    register_all_modules(init_default_scope=True)
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint_strictly(model, checkpoint,
                                 getattr(cfg, 'filename', None), hint=None)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    if deploy:
        model = reparameterize_model(model)
    model.to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    pool = load_test_images(cfg, max(batch_size, 1), shape) if data else None

    def forward(x):
        return model(x, mode='tensor')

    single = make_batch(pool, 1, shape).to(device, memory_format=fmt)
    lat = time_runs(forward, single, warmup, repeat, device) * 1e3
    many = make_batch(pool, batch_size, shape).to(device, memory_format=fmt)
    tput = time_runs(forward, many, max(2, warmup // 2), throughput_repeat,
                     device)
    return dict(
        config=getattr(cfg, 'filename', None),
        device=str(device),
        device_name=(torch.cuda.get_device_name(device)
                     if device.type == 'cuda' else platform.processor()
                     or platform.machine()),
        threads=torch.get_num_threads(),
        shape=list(shape),
        deploy=deploy,
        channels_last=channels_last,
        input='test images' if data else 'random',
        params=params,
        params_deployed=sum(p.numel() for p in model.parameters()),
        latency_ms=dict(
            median=float(np.median(lat)),
            mean=float(lat.mean()),
            p90=float(np.percentile(lat, 90)),
            p99=float(np.percentile(lat, 99)),
            min=float(lat.min()),
            runs=int(repeat)),
        throughput=dict(
            batch_size=batch_size,
            img_per_s=float(batch_size / np.median(tput)),
            runs=int(throughput_repeat)),
    )


def compare_deploy(run, as_json=False, rounds=3):
    """Time both forms in one process, alternating ``rounds`` times so
    that load changes on the machine hit both alike; ratios of medians."""
    trained, deployed = [], []
    for _ in range(rounds):
        trained.append(run(False))
        deployed.append(run(True))

    def median_of(results, key):
        return float(np.median([r['latency_ms'][key] for r in results]))

    result = dict(
        trained=trained[-1], deployed=deployed[-1], rounds=rounds,
        latency_ms_trained=median_of(trained, 'median'),
        latency_ms_deployed=median_of(deployed, 'median'))
    result['speedup'] = (result['latency_ms_trained'] /
                         result['latency_ms_deployed'])
    result['params_trained'] = trained[-1]['params']
    result['params_deployed'] = deployed[-1]['params_deployed']
    if as_json:
        print(json.dumps(result))
    else:
        print(f'As trained: {result["latency_ms_trained"]:.2f} ms, '
              f'{result["params_trained"]} params\n'
              f'Re-parameterised: {result["latency_ms_deployed"]:.2f} ms, '
              f'{result["params_deployed"]} params\n'
              f'Speed-up (batch 1 median latency, {rounds} alternating '
              f'rounds): {result["speedup"]:.2f}x')
    return result


def main(argv=None):
    args = parse_args(argv)
    shape = tuple(args.shape * 2 if len(args.shape) == 1 else args.shape)
    check_input_file(args.config, 'config file')
    if args.checkpoint:
        check_input_file(args.checkpoint, 'checkpoint')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    def run(deploy):
        return benchmark(cfg, args.checkpoint, args.device, shape,
                         args.batch_size, args.warmup, args.repeat,
                         args.throughput_repeat, args.threads, deploy,
                         args.channels_last, args.data)

    if args.compare_deploy:
        return compare_deploy(run, args.json)
    result = run(args.deploy)
    if args.json:
        print(json.dumps(result))
        return result
    lat, tput = result['latency_ms'], result['throughput']
    print(f'Model: {args.config}{" (re-parameterised)" if args.deploy else ""}'
          f'\nDevice: {result["device"]} ({result["device_name"]}), '
          f'threads: {result["threads"]}, input: {result["input"]} '
          f'{shape[0]}x{shape[1]}\n'
          f'Latency (batch 1, {lat["runs"]} runs): median {lat["median"]:.2f} '
          f'ms, p90 {lat["p90"]:.2f} ms, p99 {lat["p99"]:.2f} ms\n'
          f'Throughput (batch {tput["batch_size"]}): '
          f'{tput["img_per_s"]:.1f} img/s')
    return result


if __name__ == '__main__':
    run_reporting_user_errors(main)
