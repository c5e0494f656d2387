"""CPU latency of DSNet (as trained, re-parameterised, onnxruntime fp32 and
int8) and the baselines (DSNet v1, EGE-UNet and MALUNet also exported to
onnxruntime, so that all are compared in one runtime), in one run, against
the machine's measured peak.

    python tools/analysis_tools/cpu_latency.py [--out results/cpu_latency.json]
        [--overwrite] [--repeat 50] [--checkpoint DSNET.pth] [--profile]

Every model is timed end to end as deployed: float32 RGB pixels
``(1, 3, 256, 256)`` in, logits at 256x256 out (normalisation inside, and
the final upsampling for heads that predict at a lower resolution, e.g.
SegFormer), after a warm-up, at 1 thread and at as many threads as the
process has CPUs (its affinity: ``taskset``, a container's cpuset). The
onnxruntime models are exported by mmseg_dsnet.deploy (with its exact CPU
graph rewrites; one row without them shows their effect). Weights are
random unless ``--checkpoint`` is given for DSNet (time does not depend on
them). Runs per case are capped by ``--max-seconds`` so slow models
(UNet-S5-D16) do not stretch the run; the number of runs is reported.
Two more DSNet rows run both PyTorch forms through ``torch.compile``
(inductor with weight freezing; ``--no-compile`` leaves them out).
The cases take turns in ``--rounds`` interleaved rounds, so a machine whose
speed drifts (a shared virtual machine) slows all of them alike; the
report gives each target's range over the rounds next to its value.

FLOPs: ``mmseg_dsnet.analysis.get_flops`` (get_flops.py) counts one
multiply-add as one "FLOP" (i.e. MACs, the literature's convention). The
peak is measured with a 2048x2048 fp32 matmul and counts 2 N^3 FLOPs, so
achieved GFLOP/s are reported as ``2 * MACs / latency`` to compare like with
like.

Writes the JSON and a Markdown table (same name, ``.md``) and prints the
table. The JSON records the ``--checkpoint`` (path and SHA-256; null for
random weights), how the cases were timed (``timing``: ``--warmup``,
``--repeat``, ``--max-seconds``, ``--min-runs``, ``--rounds``) and, per
row, the input fed, the thread counts and, for onnxruntime, the input the
exported graph declares.
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import sys
import tempfile
import time
from typing import Dict, List, Tuple

import numpy as np

from mmseg_dsnet.engine.cli_errors import UserError, run_reporting_user_errors
from mmseg_dsnet.engine.preflight import (check_input_file,
                                          check_new_output_file)
from mmseg_dsnet.utils.cli import (check_at_least, check_positive,
                                   check_warmup)
from mmseg_dsnet.utils.fileio import refuse_existing, refuse_same_file
from mmseg_dsnet.utils.messages import counted

REPO = osp.abspath(osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))
# The published record, which leaderboard.py quotes: in the repository
# whatever folder the tool runs from.
RESULT = osp.join(REPO, 'results', 'cpu_latency.json')

DSNET = 'configs/dsnet/dsnet_isic2017.py'
# name -> (top config, fallback model base config when the top one is
# missing)
BASELINES = {
    'DSNet v1': ('configs/dsnet/dsnet-v1_isic2017.py', None),
    'UNet-S5-D16': ('configs/unet/unet-s5-d16_fcn_isic2017.py', None),
    'SegFormer-B0': ('configs/segformer/segformer_mit-b0_isic2017.py', None),
    'EGE-UNet': ('configs/egeunet/egeunet_isic2017.py',
                 'configs/_base_/models/egeunet.py'),
    'MALUNet': ('configs/malunet/malunet_isic2017.py',
                'configs/_base_/models/malunet.py'),
}
# Baselines also exported to onnxruntime (re-parameterised where they can
# be), so that DSNet is compared with them in the same runtime.
ONNX_BASELINES = ('DSNet v1', 'EGE-UNet', 'MALUNet')
SHAPE = (256, 256)
# Targets (ratios within one run).
TARGET_ORT_MS = 12.0
TARGET_VS_EGEUNET = 1.0
TARGET_VS_SEGFORMER = 5.0
TARGET_VS_UNET = 30.0
TARGET_REPARAM_SPEEDUP = 1.5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='CPU latency of DSNet and the baselines in one run')
    parser.add_argument('--out', default=RESULT,
                        help='the JSON report; the table goes next to it '
                        '(.md) (default: results/cpu_latency.json of the '
                        'repository)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --out file and its .md')
    parser.add_argument('--repeat', type=int, default=50,
                        help='timed runs per case (at most; default: '
                        '50)')
    parser.add_argument('--max-seconds', type=float, default=4.0,
                        help='time budget of one case; slow models get '
                        'fewer runs (at least --min-runs; default: 4.0)')
    parser.add_argument('--min-runs', type=int, default=5,
                        help='timed runs per case however long they take '
                        '(default: 5)')
    parser.add_argument('--rounds', type=int, default=5,
                        help='interleaved rounds: every case is timed in '
                        'this many turns, so drift of the machine hits all '
                        'cases alike (default: 5)')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed calls of each case at each thread '
                        'count before its rounds (at least 1; default: '
                        '5)')
    parser.add_argument('--checkpoint', help='DSNet checkpoint (default: '
                        'none, random weights)')
    parser.add_argument('--threads', type=int, nargs='+', default=None,
                        help='thread counts, 1 among them (the targets are '
                        'at 1 thread; default: 1 and every CPU this '
                        'process may run on; no more than those)')
    parser.add_argument('--no-compile', action='store_true',
                        help='leave out the torch.compile rows of DSNet '
                        '(they take about a minute to compile)')
    parser.add_argument('--skip', nargs='*', default=[],
                        help='baseline names to leave out (default: '
                        'none)')
    parser.add_argument('--profile', action='store_true',
                        help='also profile DSNet (torch.profiler and '
                        'onnxruntime) at 1 thread and report the top ops')
    return parser.parse_args(argv)


def baseline_config(top, fallback):
    """The top config, or a config made from the model base file plus our
    dataset and runtime bases when the top one does not exist yet."""
    from mmengine.config import Config
    if osp.isfile(osp.join(REPO, top)):
        return Config.fromfile(osp.join(REPO, top)), top
    if not fallback or not osp.isfile(osp.join(REPO, fallback)):
        return None, f'{top} not found'
    text = (f"_base_ = ['{osp.join(REPO, fallback)}', "
            f"'{osp.join(REPO, 'configs/_base_/datasets/isic_256x256.py')}',"
            f" '{osp.join(REPO, 'configs/_base_/default_runtime.py')}']\n"
            'model = dict(data_preprocessor=_base_.data_preprocessor)\n')
    with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
        f.write(text)
    try:
        return Config.fromfile(f.name), f'{fallback} (top config missing)'
    finally:
        os.unlink(f.name)


def slug(name):
    """A file-name form of a model name: ``'DSNet v1'`` -> ``dsnet-v1``."""
    return ''.join(c if c.isalnum() else '-' for c in name.lower())


def timed(fn, warmup, repeat, max_seconds, min_runs):
    """Milliseconds of individual calls of ``fn`` after ``warmup`` calls;
    as many as fit in ``max_seconds`` (between ``min_runs`` and
    ``repeat``)."""
    return interleaved([fn], warmup, repeat, max_seconds, min_runs,
                       rounds=1)[0][0]


def interleaved(fns, warmup, repeat, max_seconds, min_runs, rounds=5,
                progress=None):
    """Time several callables in turns so that they share the machine's
    moods.

    On a shared or throttled machine the speed drifts over seconds; timing
    one model after the other would put that drift into their ratios. Here
    every callable gets ``rounds`` turns, one after the other in each round,
    and in turn ``r`` runs until it has ``r / rounds`` of its ``repeat``
    runs or of its ``max_seconds`` budget (but at least that share of
    ``min_runs``).

    Args:
        fns (list[callable]): The cases, called without arguments.
        warmup (int): Untimed calls of each case before the first round
            (cut short after half of ``max_seconds``).
        repeat (int): Most timed calls of one case.
        max_seconds (float): Time budget of one case.
        min_runs (int): Fewest timed calls of one case.
        rounds (int): Turns of every case.
        progress (optional): A bar (:func:`~mmseg_dsnet.progress.
            progress_bar`) of ``len(fns) * rounds`` turns, one step after
            each turn, outside the timed calls.

    Returns:
        list[list[np.ndarray]]: For each case, the milliseconds of its
        calls in each round.
    """
    for fn in fns:
        start = time.perf_counter()
        for _ in range(warmup):
            fn()
            if time.perf_counter() - start > max_seconds / 2:
                break
    times = [[] for _ in fns]
    spent = [0.0] * len(fns)
    done = [0] * len(fns)
    for turn in range(1, rounds + 1):
        share = turn / rounds
        for index, fn in enumerate(fns):
            this_round = []
            while done[index] < -(-repeat * turn // rounds):
                if (done[index] >= -(-min_runs * turn // rounds)
                        and spent[index] >= max_seconds * share):
                    break
                tick = time.perf_counter()
                fn()
                elapsed = time.perf_counter() - tick
                spent[index] += elapsed
                done[index] += 1
                this_round.append(elapsed * 1e3)
            times[index].append(np.array(this_round))
            if progress is not None:
                progress.update()
    return times


def busy_cores_of_others(seconds=1.0):
    """Cores kept busy by other processes over ``seconds`` (Linux
    ``/proc/stat``; this process sleeps meanwhile). None elsewhere."""
    def jiffies():
        with open('/proc/stat') as file:
            values = [int(v) for v in file.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        return sum(values[:8]) - values[3] - values[4], sum(values[:8])

    try:
        busy0, total0 = jiffies()
        time.sleep(seconds)
        busy1, total1 = jiffies()
    except (OSError, ValueError, IndexError):
        return None
    cores = os.cpu_count() or 1
    return round(cores * (busy1 - busy0) / max(total1 - total0, 1), 2)


def load_note(others_busy, cores):
    """What the report says of the other processes' load.

    Args:
        others_busy (list[float | None]): :func:`busy_cores_of_others`
            before and after the timing.
        cores (int): The machine's cores.
    """
    busy = max((b for b in others_busy if b is not None), default=None)
    if busy is None:
        return 'Load of other processes unknown (no /proc/stat).'
    if busy < 0.1:
        return 'The machine was otherwise idle (checked before and after).'
    return (f'Other processes kept up to {busy:.1f} of {cores} cores busy '
            '(checked before and after): absolute times are slowed.')


def matmul_peak(threads, size=2048, runs=3):
    """Best GFLOP/s of a ``size`` x ``size`` fp32 matmul (2 N^3 FLOPs)."""
    import torch
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(timed(lambda: torch.mm(a, b), 0, runs, 0, runs)) / 1e3
    return 2 * size**3 / best / 1e9


def torch_runner(network, threads):
    import torch
    x = torch.rand(1, 3, *SHAPE) * 255

    def run():
        torch.set_num_threads(threads)
        with torch.no_grad():
            network(x)

    return run


def compiled(network, label):
    """``network`` through ``torch.compile`` (inductor, with weight
    freezing, which also folds BatchNorms into convolutions), compiled now
    so the timed runs do not pay for it; None (with a warning) where
    compiling fails, e.g. without a C++ compiler."""
    import torch
    import torch._inductor.config as inductor_config
    inductor_config.freezing = True
    started = time.perf_counter()
    print(f'torch.compile of DSNet ({label}) ...', file=sys.stderr)
    try:
        fn = torch.compile(network)
        with torch.no_grad():
            fn(torch.rand(1, 3, *SHAPE) * 255)
    except Exception as error:  # noqa: BLE001 (any backend failure)
        print(f'warning: torch.compile failed, row left out: {error}',
              file=sys.stderr)
        return None
    print(f'  compiled in {time.perf_counter() - started:.0f} s',
          file=sys.stderr)
    return fn


def ort_runner(onnx_file, threads, profile_prefix=None):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    session = ort.InferenceSession(onnx_file, options,
                                   providers=['CPUExecutionProvider'])
    feed = {
        session.get_inputs()[0].name:
        (np.random.default_rng(0).random((1, 3, *SHAPE)) * 255).astype(
            np.float32)
    }
    return session, (lambda: session.run(None, feed))


def summarise(times):
    return dict(median_ms=float(np.median(times)),
                p90_ms=float(np.percentile(times, 90)),
                runs=int(times.size))


def case_stats(rounds, gmacs):
    """The figures of one case at one thread count.

    Args:
        rounds (list[np.ndarray]): Milliseconds of its calls per round
            (:func:`interleaved`).
        gmacs (float): Its multiply-adds, in billions.

    Returns:
        dict: :func:`summarise` of all its calls, ``round_medians_ms``
        (None for a round without runs) and ``achieved_gflops`` (2 FLOPs
        per MAC over the median).
    """
    stats = summarise(np.concatenate(rounds))
    # None for a round without runs (min_runs < rounds).
    stats['round_medians_ms'] = [
        float(np.median(r)) if r.size else None for r in rounds
    ]
    stats['achieved_gflops'] = 2 * gmacs / (stats['median_ms'] / 1e3)
    return stats


def profile_torch(network, runs=30, top=12):
    """Top ops of ``network`` at 1 thread (torch.profiler), per op and
    input shapes, so that one slow convolution stands out."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    torch.set_num_threads(1)
    x = torch.rand(1, 3, *SHAPE) * 255
    with torch.no_grad():
        for _ in range(5):
            network(x)
        with profile(activities=[ProfilerActivity.CPU],
                     record_shapes=True) as prof:
            for _ in range(runs):
                network(x)
    rows = sorted(prof.key_averages(group_by_input_shape=True),
                  key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows) or 1
    return [
        dict(op=e.key,
             shapes=' '.join('x'.join(map(str, shape))
                             for shape in e.input_shapes if shape),
             ms_per_run=e.self_cpu_time_total / 1e3 / runs,
             share=100.0 * e.self_cpu_time_total / total,
             calls_per_run=e.count / runs) for e in rows[:top]
    ]


def profile_dsnet(trained, deployed, onnx_file, workdir, runs=30, top=12):
    """Top ops of DSNet at 1 thread: torch.profiler on both PyTorch forms
    and onnxruntime's profiler on the exported graph."""
    torch_top = profile_torch(deployed, runs, top)
    trained_top = profile_torch(trained, runs, top)
    session, run = ort_runner(onnx_file, 1,
                              osp.join(workdir, 'ort_profile'))
    for _ in range(runs):
        run()
    trace_file = session.end_profiling()
    with open(trace_file) as file:
        events = json.load(file)
    by_type = {}
    for event in events:
        if event.get('cat') == 'Node' and event.get('name', '').endswith(
                '_kernel_time'):
            op = event.get('args', {}).get('op_name', '?')
            by_type[op] = by_type.get(op, 0) + event.get('dur', 0)
    total = sum(by_type.values()) or 1
    ort_top = [
        dict(op=op, ms_per_run=us / 1e3 / runs, share=100.0 * us / total)
        for op, us in sorted(by_type.items(), key=lambda kv: -kv[1])[:top]
    ]
    return dict(torch_reparameterized=torch_top, torch_as_trained=trained_top,
                onnxruntime_fp32=ort_top)


# --- roofline floor of an exported graph -------------------------------------
#
# How fast an ONNX graph could run on this CPU at best. Every node needs at
# least the time of its arithmetic at the machine's peak (2 x MACs / peak
# FLOP/s) and at least the time to read its inputs and write its outputs at
# the machine's streaming bandwidth; it cannot beat the larger of the two.
# Summed over the nodes this is the floor for any runtime that executes the
# graph node by node (as onnxruntime does, apart from fusing an activation
# into a convolution). The compute term alone is the floor even for a
# runtime that fused everything into one pass. Tensor sizes come from
# running the graph once (``probe_tensors``), so the dynamic ``Resize``
# sizes are resolved.

# Nodes that read only a shape or give a new view of the same memory.
_VIEW_OPS = {'Shape', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze',
             'Identity'}


def conv_macs(node, values: Dict[str, np.ndarray]) -> int:
    """Multiply-adds of a ``Conv`` node: output elements x (input channels
    per group) x kernel area."""
    weight = values[node.input[1]]
    output = values[node.output[0]]
    return int(output.size * int(np.prod(weight.shape[1:])))


def node_costs(model, input_shape: Tuple[int, ...]) -> List[Dict]:
    """MACs and bytes moved by every node of ``model`` for one input.

    Args:
        model (onnx.ModelProto): A model with one float32 input.
        input_shape (tuple): Input shape, e.g. ``(1, 3, 256, 256)``.

    Returns:
        list[dict]: Per node ``name``, ``op``, ``macs`` and ``bytes``
        (inputs, weights included, plus outputs). View-like nodes
        (``Reshape``, ``Shape``, ...) and a ``Relu`` fused into the
        convolution before it count no bytes; the small integer
        tensors of shape arithmetic are counted, they are tiny.
    """
    from onnx import numpy_helper

    from mmseg_dsnet.deploy.graph_rewrites import probe_tensors
    values = {
        init.name: numpy_helper.to_array(init)
        for init in model.graph.initializer
    }
    names = [out for node in model.graph.node for out in node.output]
    values.update(probe_tensors(model, names, input_shape))
    values[model.graph.input[0].name] = np.zeros(input_shape, np.float32)
    conv_outputs = {
        node.output[0]
        for node in model.graph.node if node.op_type == 'Conv'
    }
    readers: Dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    costs = []
    for node in model.graph.node:
        if node.op_type == 'Constant':
            continue
        # A ReLU that alone reads a convolution's output runs inside that
        # convolution (onnxruntime fuses them): no pass of its own.
        fused = (node.op_type == 'Relu' and node.input[0] in conv_outputs
                 and readers[node.input[0]] == 1)
        moved = 0 if fused or node.op_type in _VIEW_OPS else sum(
            values[n].nbytes for n in list(node.input) + list(node.output)
            if n in values)
        macs = conv_macs(node, values) if node.op_type == 'Conv' else 0
        costs.append(dict(name=node.name, op=node.op_type, macs=macs,
                          bytes=int(moved)))
    return costs


def stream_bandwidth(num_elements: int = 16 * 256 * 256,
                     runs: int = 20) -> float:
    """Best bytes/s of ``c = a + b`` on float32 arrays of ``num_elements``
    (two reads and one write per element), one thread: the speed of an
    element-wise pass over a tensor of that size."""
    a = np.random.default_rng(0).random(num_elements, dtype=np.float32)
    b, c = a.copy(), np.empty_like(a)
    np.add(a, b, out=c)
    best = float('inf')
    for _ in range(runs):
        tick = time.perf_counter()
        np.add(a, b, out=c)
        best = min(best, time.perf_counter() - tick)
    return 3 * a.nbytes / best


def roofline_floor(costs: List[Dict], peak_gflops: float,
                   bytes_per_s: float) -> Dict:
    """Floor of the run time in milliseconds.

    Args:
        costs (list[dict]): From :func:`node_costs`.
        peak_gflops (float): Measured peak, FLOP/s / 1e9 (2 per MAC).
        bytes_per_s (float): Measured streaming bandwidth.

    Returns:
        dict: ``node_by_node_ms`` (sum of each node's larger bound),
        ``compute_ms`` (arithmetic alone at peak: the floor even with
        every node fused), ``memory_ms`` (traffic alone), ``by_op`` (the
        node-by-node floor summed per operator type) and the inputs.
    """
    by_op: Dict[str, float] = {}
    total = compute = memory = 0.0
    for cost in costs:
        compute_s = 2 * cost['macs'] / (peak_gflops * 1e9)
        memory_s = cost['bytes'] / bytes_per_s
        floor = max(compute_s, memory_s)
        total, compute, memory = (total + floor, compute + compute_s,
                                  memory + memory_s)
        by_op[cost['op']] = by_op.get(cost['op'], 0.0) + floor * 1e3
    return dict(node_by_node_ms=total * 1e3, compute_ms=compute * 1e3,
                memory_ms=memory * 1e3,
                by_op={k: v for k, v in sorted(by_op.items(),
                                               key=lambda kv: -kv[1])},
                peak_gflops=peak_gflops, bandwidth_gb_s=bytes_per_s / 1e9,
                macs=sum(c['macs'] for c in costs),
                bytes=sum(c['bytes'] for c in costs))


def fmt(value, digits=2):
    return '-' if value is None else f'{value:.{digits}f}'


def markdown(report):
    threads = report['threads']
    head = ['model', 'form', 'GMACs']
    for t in threads:
        head += [f'{t}T median ms', f'{t}T p90 ms', f'{t}T GFLOP/s',
                 f'{t}T % peak']
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    for row in report['models']:
        cells = [row['model'], row['form'], fmt(row['gmacs'], 3)]
        for t in threads:
            case = row['latency'].get(str(t))
            if case is None:
                cells += ['-'] * 4
                continue
            cells += [fmt(case['median_ms']), fmt(case['p90_ms']),
                      fmt(case['achieved_gflops']),
                      fmt(case['percent_of_peak'], 1)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    peak = ', '.join(f'{counted(t, "thread")}: '
                     f'{report["peak_gflops"][str(t)]:.1f}'
                     for t in threads)
    lines += [
        '', f'Peak (2048x2048 fp32 matmul, 2 N^3 FLOPs): {peak} GFLOP/s. '
        'Achieved = 2 x MACs / median latency.', ''
    ]
    lines.append('| target (1 thread, medians) | value | range over rounds '
                 '| target | met |')
    lines.append('|---|---|---|---|---|')
    for item in report['targets']:
        met = {None: '-', True: 'yes', False: 'NO'}[item['met']]
        spread = item.get('rounds')
        spread = (f'{fmt(spread[0])} - {fmt(spread[1])}'
                  if spread else '-')
        lines.append(f'| {item["what"]} | {fmt(item["value"])} | {spread} | '
                     f'{item["target"]} | {met} |')
    floor = report.get('roofline_onnxruntime_fp32')
    if floor:
        lines += [
            '', f'Roofline floor of the exported fp32 graph on 1 thread '
            f'(every node at the larger of 2 x MACs / {floor["peak_gflops"]:.1f}'
            f' GFLOP/s and bytes / {floor["bandwidth_gb_s"]:.1f} GB/s, the '
            'measured element-wise streaming speed): '
            f'**{floor["node_by_node_ms"]:.2f} ms** node by node, '
            f'{floor["compute_ms"]:.2f} ms for the arithmetic alone (the floor'
            ' even with every node fused); onnxruntime took '
            f'{fmt(floor["measured_ms"])} ms, '
            f'{fmt(floor["measured_over_floor"])}x the floor. Floor by '
            'operator: ' + ', '.join(
                f'{op} {ms:.2f}' for op, ms in floor['by_op'].items()
                if ms >= 0.01) + ' ms.'
        ]
    if any(case['percent_of_peak'] > 100 for row in report['models']
           for case in row['latency'].values()):
        lines += ['', 'Over 100 % of peak means the peak measurement was '
                  'slowed by other processes.']
    lines += ['', f'Machine: {report["machine"]["cpu"]}, '
              f'{report["machine"]["cores"]} cores; torch '
              f'{report["machine"]["torch"]}, onnxruntime '
              f'{report["machine"]["onnxruntime"]}. {report["note"]}']
    # The table alone gave a median and "p90" with nothing saying how many
    # runs they came from (one run under --repeat 1), nor what the int8
    # model was calibrated on; the JSON had both.
    runs = [case['runs'] for row in report['models']
            for case in row['latency'].values() if 'runs' in case]
    if runs:
        lines += ['', f'Timed runs per case and thread count: {min(runs)}'
                  + (f' to {max(runs)}' if max(runs) != min(runs) else '')
                  + ' (`runs` of each row in the JSON).']
    if report.get('int8_calibration'):
        lines += ['', 'DSNet onnxruntime int8 calibrated on '
                  f'{report["int8_calibration"]}.']
    if 'checkpoint' in report:  # older reports do not say
        weights = report['checkpoint']
        lines += ['', 'DSNet weights: ' + (
            f'{weights["path"]} (SHA-256 {weights["sha256"]})'
            if weights else 'random (no --checkpoint)') + '.']
    return '\n'.join(lines) + '\n'


def check_args(args):
    """Refuse what would time nothing, or other cases than asked, before
    the minutes of exports and timing."""
    if args.checkpoint:
        check_input_file(args.checkpoint, 'checkpoint')
    unknown = [name for name in args.skip if name not in BASELINES]
    if unknown:
        raise UserError(f'--skip {" ".join(unknown)}: not a baseline; the '
                        f'baselines are {", ".join(map(repr, BASELINES))}')
    check_at_least(('--repeat', args.repeat, 1), ('--rounds', args.rounds, 1),
                   ('--min-runs', args.min_runs, 1))
    # Without it the torch.compile rows timed their recompilation.
    check_warmup(args.warmup)
    # A case runs at most --repeat times, so more --min-runs were not run.
    if args.min_runs > args.repeat:
        raise UserError(f'--min-runs {args.min_runs} is more than --repeat '
                        f'{args.repeat}, the most runs of a case; give '
                        '--repeat at least --min-runs')
    # A nan compared False and so set no cap.
    check_positive(('--max-seconds', args.max_seconds))
    if args.threads and min(args.threads) < 1:
        raise UserError(f'--threads must be at least 1, got {args.threads}')
    if args.threads and len(set(args.threads)) != len(args.threads):
        raise UserError(f'--threads repeats a value: {args.threads}')
    # Without 1 thread the report had no target, no measured time beside
    # the roofline floor and no CPU ms for the leaderboard, all '-'.
    if args.threads and 1 not in args.threads:
        raise UserError(
            f'--threads {" ".join(map(str, args.threads))}: the targets, the '
            'roofline floor and the CPU ms the leaderboard quotes are at 1 '
            'thread; include 1 (--threads 1 '
            f'{" ".join(map(str, args.threads))})')
    if args.threads:
        # More threads than usable CPUs timed their contention.
        from mmseg_dsnet.analysis.benchmark import check_cpu_threads
        check_cpu_threads(args.threads)
    # An --out ending in .md would be replaced by its own table.
    table = osp.splitext(args.out)[0] + '.md'
    refuse_same_file((('--checkpoint', args.checkpoint), ('--out', args.out),
                      ('the table written beside it (its name with .md)',
                       table)),
                     hint='give --out a name ending in .json')
    # The default --out is the published record: a run on another machine
    # must not replace it unasked. Both are written after all the timing.
    check_new_output_file(args.out, '--out', args.overwrite)
    refuse_existing(table, args.overwrite)


def baseline_cases(name, cfg, workdir):
    """The timed cases of baseline ``name``: PyTorch as trained and, for
    :data:`ONNX_BASELINES`, onnxruntime fp32 of its export (to
    ``workdir``).

    Args:
        name (str): The baseline's name (a key of :data:`BASELINES`).
        cfg (Config): Its config.
        workdir (str): Where the ONNX file goes.

    Returns:
        list[tuple]: ``(model, form, gmacs, {threads: runner factory})``.
    """
    from mmseg_dsnet.analysis.flops import get_flops
    from mmseg_dsnet.deploy import (DeployableSegmentor, build_segmentor,
                                    export_onnx)
    flops = get_flops(copy.deepcopy(cfg))
    gmacs = flops['flops'] / 1e9
    net = DeployableSegmentor.from_segmentor(
        build_segmentor(cfg, None, reparameterize=False), cfg).eval()
    cases = [(name, 'PyTorch', gmacs,
              lambda t, net=net: torch_runner(net, t))]
    if name in ONNX_BASELINES:
        onnx_file = osp.join(workdir, f'{slug(name)}.onnx')
        export_onnx(cfg, None, onnx_file, shape=SHAPE)
        # The export is re-parameterised (DSNet v1: 0.265 GMACs, not the
        # 0.286 of the model as trained, which overstated its GFLOP/s and
        # % of peak).
        deployed = flops.get('deploy', {}).get('flops', flops['flops'])
        cases.append((name, 'onnxruntime fp32', deployed / 1e9,
                      lambda t, f=onnx_file: ort_runner(f, t)[1]))
    return cases


def checkpoint_record(checkpoint):
    """Which weights DSNet's rows were timed with: the ``--checkpoint``
    file's absolute path and SHA-256, or None for random weights."""
    from mmseg_dsnet.utils.fileio import sha256_of
    if not checkpoint:
        return None
    return dict(path=osp.abspath(checkpoint), sha256=sha256_of(checkpoint))


def graph_input(onnx_file):
    """The input an exported graph declares: its name, and its shape with a
    named (dynamic) axis as that name, e.g. ``[1, 3, 'height', 'width']``."""
    import onnx
    declared = onnx.load(onnx_file, load_external_data=False).graph.input[0]
    dims = [d.dim_param or d.dim_value
            for d in declared.type.tensor_type.shape.dim]
    return dict(name=declared.name, shape=dims)


def thread_counts(threads=None):
    """The thread counts to time: ``threads`` as given, else 1 and every
    CPU this process may run on (its affinity, not the machine's cores:
    under ``taskset -c 0`` on two cores, the second count timed two
    threads on one CPU)."""
    from mmseg_dsnet.analysis.benchmark import usable_cpus
    return list(threads) if threads else sorted({1, usable_cpus()})


def measure(args, workdir):
    """Export, time and report every case of ``args``; the ONNX files go
    to ``workdir``.

    Returns:
        dict: The report written to ``args.out``.
    """
    import onnxruntime
    import torch

    from mmseg_dsnet.analysis.benchmark import cpu_name as benchmark_cpu_name
    from mmseg_dsnet.analysis.benchmark import usable_cpus
    from mmseg_dsnet.analysis.flops import get_flops
    from mmseg_dsnet.deploy import (DeployableSegmentor, build_segmentor,
                                    export_onnx, quantize_int8)
    from mmseg_dsnet.deploy.parity import (config_samples, load_batches,
                                           random_inputs)
    from mmseg_dsnet.models.utils import reparameterize_model
    from mmseg_dsnet.progress import progress_bar
    from mmseg_dsnet.utils.fileio import atomic_write_together, json_text

    started = time.perf_counter()
    cores = os.cpu_count() or 1
    counts = thread_counts(args.threads)
    cases = []  # (model, form, gmacs, {threads: runner factory})

    # DSNet: as trained, re-parameterised, onnxruntime fp32 and int8.
    from mmengine.config import Config
    dsnet_cfg = Config.fromfile(osp.join(REPO, DSNET))
    dsnet_flops = get_flops(copy.deepcopy(dsnet_cfg))
    trained = build_segmentor(dsnet_cfg, args.checkpoint,
                              reparameterize=False)
    trained_net = DeployableSegmentor.from_segmentor(trained, dsnet_cfg)
    deployed_net = DeployableSegmentor.from_segmentor(
        reparameterize_model(copy.deepcopy(trained)), dsnet_cfg).eval()
    fp32_file = osp.join(workdir, 'dsnet.onnx')
    int8_file = osp.join(workdir, 'dsnet_int8.onnx')
    plain_file = osp.join(workdir, 'dsnet_no_rewrites.onnx')
    fixed_file = osp.join(workdir, 'dsnet_fixed_size.onnx')
    export_onnx(dsnet_cfg, args.checkpoint, fp32_file, shape=SHAPE)
    # Only the batch dynamic: does folding the shape arithmetic pay?
    export_onnx(dsnet_cfg, args.checkpoint, fixed_file, shape=SHAPE,
                dynamic_size=False)
    export_onnx(dsnet_cfg, args.checkpoint, plain_file, shape=SHAPE,
                optimize=False)
    calib_pairs, calib_source = config_samples(dsnet_cfg, 'train', 16)
    calibration = [b for _, b, _ in load_batches(calib_pairs, SHAPE)]
    if not calibration:
        # None of the images could be read: the report named the training
        # set for a model calibrated on noise.
        calib_source = 'random inputs' + (
            f' (none of the {len(calib_pairs)} training images listed could '
            'be read)' if calib_pairs else f' ({calib_source})')
        calibration = [b for _, b in random_inputs(SHAPE)[:2]]
    elif sum(b.shape[0] for b in calibration) < len(calib_pairs):
        # Some could not be read: "16 of 1500 train images" named more
        # images than the model was calibrated on.
        calib_source += (f': {sum(b.shape[0] for b in calibration)} of '
                         'them readable')
    quantize_int8(fp32_file, int8_file, calibration)
    macs = dsnet_flops['flops'] / 1e9
    macs_deploy = dsnet_flops.get('deploy', {}).get('flops',
                                                    dsnet_flops['flops']) / 1e9
    cases += [
        ('DSNet', 'PyTorch, as trained', macs,
         lambda t: torch_runner(trained_net, t)),
        ('DSNet', 'PyTorch, re-parameterised', macs_deploy,
         lambda t: torch_runner(deployed_net, t)),
        ('DSNet', 'onnxruntime fp32', macs_deploy,
         lambda t: ort_runner(fp32_file, t)[1]),
        ('DSNet', 'onnxruntime int8', macs_deploy,
         lambda t: ort_runner(int8_file, t)[1]),
        ('DSNet', 'onnxruntime fp32, no CPU rewrites', macs_deploy,
         lambda t: ort_runner(plain_file, t)[1]),
        ('DSNet', 'onnxruntime fp32, fixed 256x256', macs_deploy,
         lambda t: ort_runner(fixed_file, t)[1]),
    ]
    if not args.no_compile:
        for form, net, gmacs in (('as trained', trained_net, macs),
                                 ('re-parameterised', deployed_net,
                                  macs_deploy)):
            fn = compiled(net, form)
            if fn is not None:
                cases.append(('DSNet', f'torch.compile, {form}', gmacs,
                              lambda t, fn=fn: torch_runner(fn, t)))
    sources = {'DSNet': DSNET}
    for name, (top, fallback) in BASELINES.items():
        if name in args.skip:
            continue
        cfg, source = baseline_config(top, fallback)
        sources[name] = source
        if cfg is None:
            print(f'warning: {name}: {source}; left out', file=sys.stderr)
            continue
        cases += baseline_cases(name, cfg, workdir)

    # What a reader needs to reproduce a row: the input it was fed, the
    # thread counts it was timed at and, for onnxruntime, the input the
    # exported graph declares (dynamic or fixed axes).
    graph_files = {('DSNet', 'onnxruntime fp32'): fp32_file,
                   ('DSNet', 'onnxruntime int8'): int8_file,
                   ('DSNet', 'onnxruntime fp32, no CPU rewrites'): plain_file,
                   ('DSNet', 'onnxruntime fp32, fixed 256x256'): fixed_file}
    graph_files.update({(name, 'onnxruntime fp32'):
                        osp.join(workdir, f'{slug(name)}.onnx')
                        for name in ONNX_BASELINES})
    peak = {}
    rows = [dict(model=m, form=f, gmacs=g, latency={},
                 input_shape=[1, 3, *SHAPE], threads=counts)
            for m, f, g, _ in cases]
    for row in rows:
        if (row['model'], row['form']) in graph_files:
            row['graph_input'] = graph_input(
                graph_files[(row['model'], row['form'])])
    others_busy = [busy_cores_of_others()]
    for threads in counts:
        peak[str(threads)] = matmul_peak(threads)
        print(f'{counted(threads, "thread")}: timing '
              f'{counted(len(cases), "case")} in '
              f'{args.rounds} interleaved rounds ...', file=sys.stderr)
        # Minutes without a line otherwise (cases x rounds x up to
        # --max-seconds); on stderr, updated between the timed calls.
        bar = progress_bar(len(cases) * args.rounds,
                           counted(threads, 'thread'), unit='turn')
        try:
            per_case = interleaved(
                [factory(threads) for *_, factory in cases], args.warmup,
                args.repeat, args.max_seconds, args.min_runs, args.rounds,
                progress=bar)
        finally:
            bar.close()
        for row, (_, _, gmacs, _), rounds in zip(rows, cases, per_case):
            stats = case_stats(rounds, gmacs)
            row['latency'][str(threads)] = stats
            print(f'{counted(threads, "thread")} {row["model"]:>13} '
                  f'{row["form"]:<34} median {stats["median_ms"]:8.2f} ms '
                  f'({counted(stats["runs"], "run")})', file=sys.stderr)
        # Best of a measurement before and after the models: load from
        # other processes lowers a single measurement.
        peak[str(threads)] = max(peak[str(threads)], matmul_peak(threads))
        for row in rows:
            stats = row['latency'][str(threads)]
            stats['percent_of_peak'] = (100 * stats['achieved_gflops'] /
                                        peak[str(threads)])
    others_busy.append(busy_cores_of_others())
    torch.set_num_threads(cores)

    def case(model, form, threads=1):
        for row in rows:
            if row['model'] == model and row['form'].startswith(form):
                return row['latency'].get(str(threads))
        return None

    def ratio(slow, fast):
        """Ratio of the medians, and its range over the rounds."""
        a, b = case(*slow), case(*fast)
        if not a or not b:
            return None, None
        per_round = [x / y for x, y in zip(a['round_medians_ms'],
                                           b['round_medians_ms']) if x and y]
        return a['median_ms'] / b['median_ms'], spread(per_round)

    def spread(values):
        values = [v for v in values if v is not None]
        return [min(values), max(values)] if values else None

    ort = ('DSNet', 'onnxruntime fp32')
    ort_case = case(*ort)
    ort_ms = ort_case and ort_case['median_ms']
    targets = [
        dict(what='DSNet onnxruntime fp32, ms', value=ort_ms,
             rounds=ort_case and spread(ort_case['round_medians_ms']),
             target=f'<= {TARGET_ORT_MS:g}',
             met=None if ort_ms is None else ort_ms <= TARGET_ORT_MS)
    ]
    for what, slow, fast, limit in (
            ('EGE-UNet onnxruntime / DSNet onnxruntime',
             ('EGE-UNet', 'onnxruntime fp32'), ort, TARGET_VS_EGEUNET),
            ('MALUNet onnxruntime / DSNet onnxruntime',
             ('MALUNet', 'onnxruntime fp32'), ort, None),
            ('DSNet v1 onnxruntime / DSNet onnxruntime',
             ('DSNet v1', 'onnxruntime fp32'), ort, None),
            ('SegFormer-B0 / DSNet onnxruntime',
             ('SegFormer-B0', 'PyTorch'), ort, TARGET_VS_SEGFORMER),
            ('UNet-S5-D16 / DSNet onnxruntime',
             ('UNet-S5-D16', 'PyTorch'), ort, TARGET_VS_UNET),
            ('DSNet as trained / re-parameterised (PyTorch)',
             ('DSNet', 'PyTorch, as trained'),
             ('DSNet', 'PyTorch, re-parameterised'), TARGET_REPARAM_SPEEDUP),
            ('DSNet onnxruntime fp32 / int8', ort,
             ('DSNet', 'onnxruntime int8'), None),
            ('DSNet onnxruntime, no rewrites / with CPU rewrites',
             ('DSNet', 'onnxruntime fp32, no'), ort, None),
            ('DSNet onnxruntime, dynamic / fixed size', ort,
             ('DSNet', 'onnxruntime fp32, fixed'), None)):
        value, value_range = ratio(slow, fast)
        targets.append(dict(
            what=what, value=value, rounds=value_range,
            target='(report)' if limit is None else f'>= {limit:g}',
            met=None if limit is None or value is None else value >= limit))

    # How far onnxruntime is from what this graph allows on this machine.
    import onnx
    costs = node_costs(onnx.load(fp32_file), (1, 3, *SHAPE))
    floor = roofline_floor(costs, peak.get('1') or matmul_peak(1),
                           stream_bandwidth(runs=60))
    floor['measured_ms'] = ort_ms
    floor['measured_over_floor'] = ort_ms and ort_ms / floor[
        'node_by_node_ms']

    note = load_note(others_busy, cores)
    note += (' Every case was timed after up to '
             f'{counted(args.warmup, "warm-up call")}, in '
             f'{counted(args.rounds, "interleaved round")}; ratios use the '
             'medians over all rounds, and the range of the per-round '
             'ratios shows how much the machine drifted.')

    report = dict(
        machine=dict(cpu=benchmark_cpu_name(), cores=cores,
                     usable_cpus=usable_cpus(),
                     torch=torch.__version__,
                     onnxruntime=onnxruntime.__version__,
                     python=platform.python_version()),
        note=note,
        others_busy_cores=others_busy,
        input='1x3x256x256 float32 RGB 0..255, end to end to 256x256 logits',
        threads=counts,
        # How each case was timed: the report gave the runs per row, not
        # the warm-up calls before them nor the caps that set the runs.
        timing=dict(warmup=args.warmup, repeat=args.repeat,
                    max_seconds=args.max_seconds, min_runs=args.min_runs,
                    rounds=args.rounds),
        flops_convention=('GMACs from get_flops.py (1 multiply-add = 1 FLOP);'
                          ' achieved GFLOP/s = 2 x MACs / median latency; '
                          'peak = 2 N^3 / time of an N=2048 fp32 matmul'),
        peak_gflops=peak,
        configs=sources,
        # None: DSNet's rows were timed with random weights.
        checkpoint=checkpoint_record(args.checkpoint),
        int8_calibration=calib_source,
        models=rows,
        targets=targets,
        roofline_onnxruntime_fp32=floor)
    if args.profile:
        report['profile'] = profile_dsnet(trained_net, deployed_net,
                                          fp32_file, workdir)
    report['wall_seconds'] = time.perf_counter() - started

    table = markdown(report)
    if args.profile:
        for key, top in report['profile'].items():
            table += (f'\nTop ops, {key} (1 thread):\n\n'
                      '| op | input shapes | ms/run | calls/run | % |\n'
                      '|---|---|---|---|---|\n')
            table += ''.join(
                f'| {r["op"]} | {r.get("shapes", "-")} | '
                f'{r["ms_per_run"]:.3f} | {fmt(r.get("calls_per_run"), 0)} | '
                f'{r["share"]:.1f} |\n' for r in top)
    md_file = osp.splitext(args.out)[0] + '.md'
    # Both or neither: a failure after the first write (a full disk, an
    # interrupt) left the new JSON beside the previous run's table.
    atomic_write_together([(json_text(report, indent=2), args.out),
                           (table, md_file)])
    print(table)
    print(f'Wrote {args.out} and {md_file} '
          f'({report["wall_seconds"]:.0f} s)')
    return report


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    # The exported models are needed only while they are timed.
    with tempfile.TemporaryDirectory(prefix='cpu_latency_') as workdir:
        return measure(args, workdir)


if __name__ == '__main__':
    run_reporting_user_errors(main)
