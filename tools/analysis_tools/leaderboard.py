"""The leaderboard: collect logged runs, aggregate them, render the tables,
the plot and the README block, and check the README against them.

Every figure comes from what a run wrote (its logs, dumped config and
``tools/test.py`` metrics) or from our own measuring tools (``get_flops.py``,
``benchmark.py``) — never typed by hand. Published figures live only in
``results/reported.json`` and are shown as separate rows marked
``reported``.

    # one work dir -> results/runs/<model>_<data>_<protocol>_<tag>_seed<k>.json
    python tools/analysis_tools/leaderboard.py collect CONFIG WORK_DIR \\
        [--label NAME] [--schedule "2 epochs, 200 train images (CPU short)"]
    # all runs -> results/leaderboard.{json,csv,md,png} (+ README block)
    python tools/analysis_tools/leaderboard.py build --readme README.md
    # non-zero exit when the README block disagrees with leaderboard.json
    python tools/analysis_tools/leaderboard.py check --readme README.md
    # train + test + collect, one work dir per seed
    python tools/analysis_tools/leaderboard.py run CONFIG --work-dir W \\
        --seeds 0 1 2

Run record (``results/runs/*.json``): ``metrics`` holds LesionMetric's
figures exactly as logged (percent), with ``metrics_source`` saying where
they were read; ``train_time_s`` with ``train_time_method``; ``device`` from
the training log; ``seed`` from the dumped config; ``complexity`` from
get_flops (``flops`` = all counted ops, ``flops_weight_layers`` = conv /
linear / matmul only, both with 1 multiply-add = 1 FLOP, plus ``deploy`` for
re-parameterisable models); ``cpu_latency_ms`` / ``cpu_latency_p90_ms``
(batch 1, 1 thread, 256x256, median / 90th percentile of timed runs) and
``gpu_img_per_s`` from benchmark.py; ``evaluated_data`` (``data_root``,
``split_file``, ``images``, ``synthetic``) names the data the metrics were
computed on (absent in older records). ``collect`` refuses a run trained or
evaluated on the synthetic stand-in set. Leaderboard rows aggregate the
seeds: see leaderboard_table.py for the format.
"""
import argparse
import datetime
import glob
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from leaderboard_collect import (REPO_ROOT, model_name,  # noqa: E402
                                 read_work_dir, slug)
import leaderboard_table as table  # noqa: E402

TOOLS = osp.join(REPO_ROOT, 'tools')


def _load_tool(relpath):
    """Import a script under tools/ by path (tools/ is not a package)."""
    name = 'tool_' + osp.splitext(osp.basename(relpath))[0]
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, osp.join(TOOLS, relpath))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _rel(path):
    path = osp.abspath(path)
    return osp.relpath(path, REPO_ROOT) if path.startswith(
        REPO_ROOT + os.sep) else path


def _checkpoint(record, work_dir):
    """The evaluated checkpoint, else the work dir's last one (timing does
    not depend on the weights; loading them only proves they load)."""
    path = record.get('checkpoint')
    if path and osp.isfile(path):
        return path
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            path = f.read().strip()
        if osp.isfile(path):
            return path
    return None


def measure_complexity(cfg):
    result = _load_tool('analysis_tools/get_flops.py').get_flops(
        cfg, (256, 256))
    result.pop('table', None)
    if 'deploy' in result:
        result['deploy'].pop('table', None)
    return result


def measure_speed(cfg, checkpoint, device, deploy, batch_size, warmup,
                  repeat):
    import torch
    bench = _load_tool('analysis_tools/benchmark.py').benchmark
    threads = torch.get_num_threads()
    try:
        return bench(cfg, checkpoint, device, (256, 256),
                     batch_size=batch_size, warmup=warmup, repeat=repeat,
                     throughput_repeat=max(1, repeat // 5),
                     threads=1 if device == 'cpu' else None, deploy=deploy)
    finally:
        torch.set_num_threads(threads)


def collect(config, work_dir, label=None, schedule=None, schedule_tag=None,
            seed_from_config=False, benchmark=True, gpu_benchmark=False,
            runs_dir=osp.join(REPO_ROOT, 'results', 'runs'),
            metrics_file=None, warmup=10, repeat=50, gpu_batch_size=32,
            gpu_json=None, overwrite=False):
    """Read a work dir, measure the model, write and return its record.

    ``gpu_json`` is a ``benchmark.py --device cuda --json`` result measured
    on a GPU machine, used for the GPU throughput when this machine has no
    GPU. A record of the same model, dataset, protocol, schedule tag and
    seed collected from another work dir is only replaced with
    ``overwrite``; one from the same work dir is refreshed."""
    rec = read_work_dir(work_dir, seed_from_config, metrics_file)
    cfg = rec.pop('_config')
    if 'design' in osp.basename(str(rec.get('test_split') or '')):
        # Design runs choose the model; a leaderboard row is a test result.
        raise ValueError(
            f'{work_dir} was evaluated on the design hold-out '
            f'({rec["test_split"]}), not on a test split; design runs are '
            'recorded by tools/check_real_data.py --split design, not '
            'collected')
    if rec['synthetic_data']:
        from mmseg_dsnet.engine import SyntheticDataError
        raise SyntheticDataError(
            f'{work_dir} was trained or evaluated on the synthetic stand-in '
            f'set (evaluated on {rec["evaluated_data"]["data_root"]}); its '
            'figures say nothing about real lesions and are not collected. '
            'Convert the real data (python tools/dataset_converters/isic.py '
            'SRC ROOT), train and test on it, then collect')
    model = label or model_name(config)
    gpu = rec['device'] != 'CPU'
    if schedule is None:
        schedule = (f'{rec["epochs"]} epochs, {rec["train_images"]} train '
                    f'images, batch {rec["batch_size"]}')
    tag = schedule_tag or slug(schedule)[:48].strip('-')
    record = dict(record_version=1, source='measured', model=model,
                  config=_rel(config), schedule=schedule, schedule_tag=tag)
    record.update(rec)
    # Checked before the (slow) measurements.
    name = (f'{slug(model)}_{rec["dataset_key"]}_{slug(rec["protocol"])}_'
            f'{tag}_seed{rec["seed"]}.json')
    path = osp.join(runs_dir, name)
    if osp.isfile(path):
        with open(path) as f:
            previous = json.load(f).get('work_dir')
        if previous != record['work_dir'] and not overwrite:
            raise FileExistsError(
                f'{path} already holds the run collected from {previous}; '
                f'pass --overwrite to replace it with {record["work_dir"]}, '
                'or give this run another --schedule-tag')
        print(f'Replacing {path} (collected before from {previous})')
    record['complexity'] = measure_complexity(cfg)
    record.update(cpu_latency_ms=None, cpu_latency_p90_ms=None,
                  gpu_img_per_s=None)
    ckpt = _checkpoint(rec, work_dir)
    if benchmark:
        runs = {}
        modes = [False, True] if 'deploy' in record['complexity'] else \
            [False]
        for deploy in modes:
            out = measure_speed(cfg, ckpt, 'cpu', deploy, 1, warmup, repeat)
            runs['deployed' if deploy else 'as_trained'] = dict(
                median=out['latency_ms']['median'],
                p90=out['latency_ms']['p90'], runs=out['latency_ms']['runs'])
        record.update(
            cpu_latency_ms=runs['as_trained']['median'],
            cpu_latency_p90_ms=runs['as_trained']['p90'],
            cpu_benchmark=dict(batch_size=1, threads=1, shape=[256, 256],
                               warmup=warmup, cpu=out['device_name'],
                               input='random', **runs))
    if gpu_json:
        with open(gpu_json) as f:
            out = json.load(f)
        if not str(out.get('device', '')).startswith('cuda') or \
                list(out.get('shape', [])) != [256, 256]:
            raise ValueError(f'{gpu_json}: not a benchmark.py --device cuda '
                             '--shape 256 256 --json result')
        record.update(
            gpu_img_per_s=out['throughput']['img_per_s'],
            gpu_benchmark=dict(
                gpu=out['device_name'],
                batch_size=out['throughput']['batch_size'],
                img_per_s=out['throughput']['img_per_s'],
                latency_ms_b1=out['latency_ms']['median'], shape=[256, 256],
                source=_rel(gpu_json)))
    elif gpu_benchmark:
        import torch
        if torch.cuda.is_available():
            out = measure_speed(cfg, ckpt, 'cuda', False, gpu_batch_size,
                                warmup, repeat)
            record.update(
                gpu_img_per_s=out['throughput']['img_per_s'],
                gpu_benchmark=dict(
                    gpu=out['device_name'], batch_size=gpu_batch_size,
                    img_per_s=out['throughput']['img_per_s'],
                    latency_ms_b1=out['latency_ms']['median'],
                    shape=[256, 256]))
        else:
            record['gpu_benchmark'] = 'asked, but CUDA is not available'
    record['collected_at'] = datetime.datetime.now().isoformat(
        timespec='seconds')
    record['record_file'] = name
    record['gpu_run'] = gpu
    os.makedirs(runs_dir, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(record, f, indent=2, ensure_ascii=False)
        f.write('\n')
    for warning in record['warnings']:
        print(f'WARNING ({work_dir}): {warning}', file=sys.stderr)
    print(f'Run record written to {osp.join(runs_dir, name)}')
    return record


def build(run_files, reported_path, out_dir, readme=None, plot=True):
    """Aggregate run records into the leaderboard files (and README).

    Returns:
        dict: ``board`` (what leaderboard.json holds), ``paths`` (files
        written) and ``plot_points`` (panel, label, GFLOPs, DSC, source of
        every point drawn).
    """
    records = [table.load_json(p) for p in sorted(run_files)]
    reported = table.load_json(reported_path) if reported_path and \
        osp.isfile(reported_path) else None
    convention = next((r['complexity'].get('convention') for r in records
                       if r.get('complexity')), '')
    board = table.build_board(records, reported, convention)
    os.makedirs(out_dir, exist_ok=True)
    paths = table.write_outputs(board, out_dir)
    points = None
    if plot:
        from leaderboard_plot import plot_leaderboard
        paths['png'] = osp.join(out_dir, 'leaderboard.png')
        points = plot_leaderboard(board, paths['png'])
    if readme:
        with open(readme) as f:
            text = f.read()
        with open(readme, 'w') as f:
            f.write(table.replace_block(text, table.readme_block(board)))
        paths['readme'] = readme
    for kind, path in paths.items():
        print(f'{kind}: {path}')
    return dict(board=board, paths=paths, plot_points=points)


def check(readme, leaderboard_json):
    with open(readme) as f:
        problems = table.check_readme(f.read(),
                                      table.load_json(leaderboard_json))
    for problem in problems:
        print(f'MISMATCH: {problem}', file=sys.stderr)
    if problems:
        print(f'{readme} disagrees with {leaderboard_json}; regenerate it '
              'with: leaderboard.py build --readme README.md',
              file=sys.stderr)
    else:
        print(f'{readme} agrees with {leaderboard_json}')
    return 1 if problems else 0


def run(args):
    """tools/train.py, tools/test.py and collect, once per seed."""
    from mmseg_dsnet.engine import SyntheticDataError
    records = []
    for seed in args.seeds:
        work_dir = osp.join(args.work_dir, f'seed{seed}')
        options = [f'randomness.seed={seed}'] + (args.cfg_options or [])
        common = ['--cfg-options', *options]
        guard = [] if args.allow_synthetic else ['--no-synthetic-fallback']
        train = [sys.executable, osp.join(TOOLS, 'train.py'), args.config,
                 '--work-dir', work_dir, *guard, *common]
        subprocess.run(train + (['--amp'] if args.amp else []), check=True)
        if args.checkpoint == 'best':
            ckpt = max(glob.glob(osp.join(work_dir, 'best_*.pth')),
                       key=osp.getmtime)
        else:
            with open(osp.join(work_dir, 'last_checkpoint')) as f:
                ckpt = f.read().strip()
        subprocess.run([sys.executable, osp.join(TOOLS, 'test.py'),
                        args.config, ckpt, '--work-dir', work_dir, *guard,
                        *common], check=True)
        try:
            records.append(collect_from_args(args, work_dir))
        except SyntheticDataError as err:
            # A synthetic dry run (--allow-synthetic) ends without a record.
            if not args.allow_synthetic:
                raise
            print(f'Not collected: {err}')
    return records


def collect_from_args(args, work_dir):
    return collect(args.config, work_dir, args.label, args.schedule,
                   args.schedule_tag, args.seed_from_config,
                   not args.no_benchmark, args.gpu_benchmark, args.runs_dir,
                   getattr(args, 'metrics_file', None), args.bench_warmup,
                   args.bench_repeat, args.gpu_batch_size,
                   getattr(args, 'gpu_json', None),
                   getattr(args, 'overwrite', False))


def _collect_flags(parser):
    parser.add_argument('--label', help='model name (default: from the '
                        'config file name)')
    parser.add_argument('--schedule', help='schedule description, the '
                        'grouping key (default: epochs, images, batch)')
    parser.add_argument('--schedule-tag', help='short schedule tag for the '
                        'file name (default: from --schedule)')
    parser.add_argument('--seed-from-config', action='store_true',
                        help="take the seed only from the dumped config's "
                        'randomness.seed (fail when unset) instead of '
                        'falling back to the seed in the log')
    parser.add_argument('--no-benchmark', action='store_true',
                        help='skip the CPU latency measurement')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a record of the same model, protocol, '
                        'schedule tag and seed collected from another work '
                        'dir')
    parser.add_argument('--gpu-benchmark', action='store_true',
                        help='also measure GPU throughput (needs CUDA)')
    parser.add_argument('--gpu-json', help='GPU throughput from a '
                        'benchmark.py --device cuda --json file measured on '
                        'a GPU machine (instead of --gpu-benchmark)')
    parser.add_argument('--gpu-batch-size', type=int, default=32)
    parser.add_argument('--bench-warmup', type=int, default=10)
    parser.add_argument('--bench-repeat', type=int, default=50)
    parser.add_argument('--runs-dir', default=osp.join(REPO_ROOT, 'results',
                                                       'runs'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('collect', help='one work dir -> one run record')
    p.add_argument('config')
    p.add_argument('work_dir')
    p.add_argument('--metrics-file', help='a tools/test.py --metrics-out '
                   'file (default: <work_dir>/test_metrics.json)')
    _collect_flags(p)
    p = sub.add_parser('build', help='run records -> leaderboard files')
    p.add_argument('--runs', nargs='+', help='run records (default: '
                   'results/runs/*.json)')
    p.add_argument('--reported', default=osp.join(REPO_ROOT, 'results',
                                                  'reported.json'))
    p.add_argument('--out-dir', default=osp.join(REPO_ROOT, 'results'))
    p.add_argument('--readme', help='README whose leaderboard block to '
                   'replace')
    p.add_argument('--no-plot', action='store_true')
    p = sub.add_parser('check', help='exit 1 when the README block '
                       'disagrees with leaderboard.json')
    p.add_argument('--readme', default=osp.join(REPO_ROOT, 'README.md'))
    p.add_argument('--leaderboard', default=osp.join(REPO_ROOT, 'results',
                                                     'leaderboard.json'))
    p = sub.add_parser('run', help='train, test and collect per seed')
    p.add_argument('config')
    p.add_argument('--work-dir', required=True)
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--cfg-options', nargs='+', help='key=value overrides '
                   'passed to train.py and test.py')
    p.add_argument('--checkpoint', choices=['last', 'best'], default='last',
                   help="checkpoint to test ('best' = selected on the "
                   'validation split, for the official protocol)')
    p.add_argument('--amp', action='store_true')
    p.add_argument('--allow-synthetic', action='store_true',
                   help='let train/test fall back to the synthetic set (a dry '
                   'run of the pipeline: its runs are not collected)')
    _collect_flags(p)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.command == 'collect':
        return collect_from_args(args, args.work_dir)
    if args.command == 'build':
        runs = args.runs or glob.glob(
            osp.join(REPO_ROOT, 'results', 'runs', '*.json'))
        return build(runs, args.reported, args.out_dir, args.readme,
                     not args.no_plot)
    if args.command == 'check':
        return check(args.readme, args.leaderboard)
    return run(args)


if __name__ == '__main__':
    from mmseg_dsnet.engine import run_reporting_user_errors
    result = run_reporting_user_errors(main)
    sys.exit(result if isinstance(result, int) else 0)
