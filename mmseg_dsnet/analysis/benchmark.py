"""Latency (batch 1) and throughput (batch N) of a segmentor on CPU or GPU.

Unlike mmseg 1.2.2's benchmark.py (CUDA only, NaN on test sets under 200
images) this times the network itself on a fixed input tensor — random, or
real test images (cycled, so any set size works) — after a warm-up, and
reports the median and percentiles of many timed runs.
"""
import os
import platform
import time

import numpy as np
import torch
from mmseg.registry import MODELS

from ..engine.checkpoint_match import load_checkpoint_strictly
from ..deploy.deployable import (input_size_of, no_one_input_size,
                                  refusing_input_size)
from ..engine.preflight import build_scope
from ..models.utils import reparameterization_changes, reparameterize_model
from ..progress import progress_bar
from ..utils.cli import check_warmup
from ..utils.errors import UserError
from ..utils.memory import check_forward_memory, reporting_out_of_memory
from ..utils.messages import config_name
from ..utils.messages import counted
from ..utils.threads import torch_threads


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_runs(fn, inputs, warmup, repeat, device, progress=None):
    """Wall-clock seconds of ``repeat`` calls of ``fn(inputs)``, after
    ``warmup`` untimed ones; ``progress`` (a bar, optional) steps once per
    call, outside the timed span."""
    with torch.no_grad():
        for _ in range(warmup):
            fn(inputs)
            if progress is not None:
                progress.update()
        _sync(device)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn(inputs)
            _sync(device)
            times.append(time.perf_counter() - start)
            if progress is not None:
                progress.update()
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


def cpu_name():
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform``
    says. ``platform.processor()`` is empty on Linux, so the benchmark
    recorded every CPU as ``x86_64``."""
    try:
        with open('/proc/cpuinfo') as file:
            for line in file:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def rate_text(images_per_second):
    """A throughput as printed beside a step time: whole numbers from 100
    images/s up, else three significant digits.

    A slow CPU step (batch 2 in 5.8 s) printed ``0 img/s`` with ``.0f``,
    a figure of no throughput at all.

    Args:
        images_per_second (float): The throughput, above 0.

    Returns:
        str: E.g. ``'1234'``, ``'12.3'``, ``'0.347'``.
    """
    if images_per_second >= 100:
        return f'{images_per_second:.0f}'
    return f'{images_per_second:.3g}'


def usable_cpus():
    """The number of CPUs this process may run on: its CPU affinity
    (``taskset``, a container's cpuset) where the system tells it, else
    ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_cpu_threads(counts, option='--threads'):
    """Refuse CPU thread counts above the CPUs this process may run on:
    the threads would take turns on fewer CPUs, so the figures recorded
    for that count would be of the contention (under ``taskset -c 0``,
    ``cpu_latency.py``'s 2-thread onnxruntime time was 14.9 ms beside 6.7
    ms at 1 thread).

    Args:
        counts (Sequence[int]): The asked thread counts.
        option (str): The option that gave them, for the message.

    Raises:
        UserError: A count above :func:`usable_cpus`.
    """
    usable = usable_cpus()
    most = max(counts)
    if most > usable:
        raise UserError(
            f'{option} {" ".join(map(str, counts))}: this process may run on '
            f'{counted(usable, "CPU")} (its CPU affinity: taskset, a '
            'container\'s '
            f'cpuset), so {most} threads would take turns on them and the '
            f'figures would be of that, not of {most} threads; give counts '
            f'up to {usable}')


def check_threads(threads, device, option='--threads'):
    """Refuse a thread count for a GPU run: it sets torch's CPU threads,
    which do not run the timed network there, so the figures would be
    reported beside a setting that changed nothing; and, for a CPU run, a
    count above the CPUs this process may run on
    (:func:`check_cpu_threads`).

    Args:
        threads (int | None): The asked number of CPU threads.
        device (str | torch.device): The timed device.
        option (str): The option that gave ``threads``, for the message.

    Raises:
        UserError: ``threads`` given with a CUDA device, or more threads
            than usable CPUs.
    """
    device = torch.device(device)
    if threads is not None and device.type == 'cuda':
        raise UserError(
            f'{option} {threads}: it sets the CPU threads, and the network '
            f'is timed on {device}, so it would change nothing; leave it out, '
            'or time the CPU with --device cpu')
    if threads is not None:
        check_cpu_threads([threads], option)


def check_input_size(forward, inputs, shape, cfg):
    """Run ``forward`` once on ``inputs`` (untimed), refusing an input size
    the model cannot take: UNet's downsampling asserts a multiple of 16,
    and ``--shape 100`` ended in a traceback from inside mmseg.

    Args:
        forward (callable): The timed call.
        inputs (Tensor): A batch of one image at ``shape``.
        shape (tuple[int, int]): The asked input size.
        cfg (Config): The benchmarked config, for the message and its
            own input size.

    Raises:
        UserError: The model fails at ``shape``, which is not the size the
            config sets (a failure at that size is no fault of the size).
    """
    size = tuple(cfg.model.get('data_preprocessor', {}).get('size') or ())
    with refusing_input_size(shape, config_name(cfg),
                             size), torch.no_grad():
        forward(inputs)


def benchmark(cfg, checkpoint=None, device='cpu', shape=(256, 256),
              batch_size=16, warmup=10, repeat=50, throughput_repeat=10,
              threads=None, deploy=False, channels_last=False, data=False,
              progress=False):
    """Run the benchmark and return its figures as a dict (times in ms).

    ``threads`` (torch's CPU threads) is for CPU runs only, set for the run
    and put back to the caller's count after it; the figures of a GPU run
    record ``threads`` as None.

    Args:
        warmup (int): Untimed calls before the latency is timed (half as
            many, at least 2, before the throughput); at least 1: the first
            call's one-off costs would be timed into the figures
            (:func:`~mmseg_dsnet.utils.cli.check_warmup`). Default: 10.
        progress (bool): A bar on stderr over the calls (warm-up and
            timed, latency then throughput). Default: False.

    Returns:
        dict: The figures and what they are of (the warm-up calls before
        ``latency_ms`` and ``throughput``, the torch version and, on CUDA,
        the CUDA and cuDNN versions among them); ``deploy`` is True for the
        re-parameterised model, asked for (``deploy``) or built by a deploy
        config (``deploy=True``, as ``reparameterize.py`` writes it; then
        ``deploy_config`` is True too).

    Raises:
        UserError: ``warmup`` below 1, or ``threads`` refused by
            :func:`check_threads`, before anything is built; a
            ``batch_size`` x ``shape`` pass that does not fit in the
            memory of ``device``, before its input is made
            (:func:`~mmseg_dsnet.utils.memory.check_forward_memory`), or
            that runs out of it all the same.
    """
    check_warmup(warmup, option='warmup')
    check_threads(threads, device, option='threads')
    if not threads:
        return _timed_figures(cfg, checkpoint, device, shape, batch_size,
                              warmup, repeat, throughput_repeat, deploy,
                              channels_last, data, progress)
    # The caller's thread count is put back: a Python caller's later work
    # (and later benchmarks without ``threads``) runs on its own threads.
    with torch_threads(threads):
        return _timed_figures(cfg, checkpoint, device, shape, batch_size,
                              warmup, repeat, throughput_repeat, deploy,
                              channels_last, data, progress)


def _timed_figures(cfg, checkpoint, device, shape, batch_size, warmup,
                   repeat, throughput_repeat, deploy, channels_last, data,
                   progress):
    """:func:`benchmark`'s figures, on torch's current CPU threads (the
    arguments checked by it)."""
    device = torch.device(device)
    from ..deploy.deploy_checkpoint import (check_whole_deploy_form,
                                            is_deploy_config)
    from_deploy_config = is_deploy_config(cfg)
    # The scope is set for the builds only (the model, the test set): the
    # caller's default scope is left as it was.
    with build_scope(cfg):
        model = MODELS.build(cfg.model)
    if from_deploy_config:
        check_whole_deploy_form(cfg, model,
                                config_name(cfg))
    if checkpoint:
        load_checkpoint_strictly(model, checkpoint,
                                 getattr(cfg, 'filename', None), hint=None,
                                 cfg=cfg)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    if deploy:
        model = reparameterize_model(model)
    # Before the inputs are made: the throughput's batch too large for
    # the memory left fails in the allocator or gets the process killed.
    check_forward_memory(model, shape, images=batch_size, device=device,
                         batch_option='--batch-size')
    with reporting_out_of_memory(shape, device):
        return _time_model(cfg, checkpoint, model, device, shape,
                           batch_size, warmup, repeat, throughput_repeat,
                           deploy, from_deploy_config, params,
                           channels_last, data, progress)


def _time_model(cfg, checkpoint, model, device, shape, batch_size, warmup,
                repeat, throughput_repeat, deploy, from_deploy_config,
                params, channels_last, data, progress):
    """:func:`_timed_figures` of the built ``model``."""
    model.to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    with build_scope(cfg):
        pool = (load_test_images(cfg, max(batch_size, 1), shape)
                if data else None)

    def forward(x):
        return model(x, mode='tensor')

    single = make_batch(pool, 1, shape).to(device, memory_format=fmt)
    check_input_size(forward, single, shape, cfg)
    tput_warmup = max(2, warmup // 2)
    # Minutes on a CPU at the defaults, without a line otherwise.
    bar = progress_bar(
        warmup + repeat + tput_warmup + throughput_repeat,
        'timing ' + ('re-parameterised' if deploy or from_deploy_config
                     else 'as trained'), progress, unit='call')
    try:
        lat = time_runs(forward, single, warmup, repeat, device, bar) * 1e3
        many = make_batch(pool, batch_size, shape).to(device,
                                                      memory_format=fmt)
        tput = time_runs(forward, many, tput_warmup, throughput_repeat,
                         device, bar)
    finally:
        bar.close()
    return dict(
        config=getattr(cfg, 'filename', None),
        # The weights timed (None: random), as the figures' label.
        checkpoint=checkpoint,
        device=str(device),
        device_name=(torch.cuda.get_device_name(device)
                     if device.type == 'cuda' else cpu_name()),
        threads=(torch.get_num_threads() if device.type == 'cpu' else None),
        shape=list(shape),
        # The size the config runs the model at, beside the timed one.
        config_input_size=(None if no_one_input_size(cfg) else
                           list(input_size_of(cfg))),
        # A deploy config's model is the re-parameterised one: it was
        # recorded as the model as trained (deploy: false).
        deploy=bool(deploy or from_deploy_config),
        **(dict(deploy_config=True) if from_deploy_config else {}),
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
            runs=int(repeat),
            # The untimed calls before the runs: figures after one warm-up
            # call were recorded like those after ten.
            warmup=int(warmup)),
        throughput=dict(
            batch_size=batch_size,
            img_per_s=float(batch_size / np.median(tput)),
            runs=int(throughput_repeat),
            warmup=int(tput_warmup)),
        # The stack the figures were measured with (a JSON kept for
        # leaderboard.py collect --gpu-json outlives the install).
        torch=torch.__version__,
        **(dict(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
           if device.type == 'cuda' else {}),
    )


# What the model's settings outside the network do in the benchmark: the
# network alone is timed, one forward pass on a tensor.
NOT_TIMED = dict(
    test_cfg='the test-time settings are not timed (the figures are of one '
    'forward pass of the network on the input tensor, whatever the '
    'inference mode: slide inference runs it once per window)',
    train_cfg='the training settings are not timed (the figures are of one '
    'forward pass of the network in eval mode)')
# What --data reads of the data preprocessor (load_test_images).
DATA_NORMALISATION = ('mean', 'std', 'bgr_to_rgb')


def check_timed_options(cfg_options, data=False, shape=None):
    """Refuse ``--cfg-options`` keys that would not change what is timed:
    the figures were printed under ``Config options:`` (and kept as
    ``cfg_options`` in the JSON) as if they had, e.g. the slide inference of
    ``model.test_cfg.mode=slide`` or a ``test_dataloader.batch_size`` read
    as the throughput's batch.

    Timed are the network (``model.*`` but its test and training
    settings), with ``data`` the test images (``test_dataloader.dataset``)
    and their normalisation (``model.data_preprocessor`` mean, std and
    ``bgr_to_rgb``), and without ``shape`` the size of the test pipeline's
    ``Resize`` (``test_dataloader.dataset.pipeline``).

    Args:
        cfg_options (dict | None): The parsed ``--cfg-options``.
        data (bool): Whether the config's test images are timed (``--data``).
        shape (tuple | None): The ``--shape`` given; None for the config's.

    Raises:
        UserError: Naming the first such key and what sets it instead.
    """
    from .flops import option_keys
    for key in option_keys(cfg_options):
        parts = key.split('.')
        if parts[0] == 'model' and len(parts) > 1:
            if parts[1] in NOT_TIMED:
                reason = NOT_TIMED[parts[1]]
            elif parts[1] != 'data_preprocessor':
                continue
            elif data and len(parts) > 2 and \
                    parts[2] in DATA_NORMALISATION:
                continue
            else:
                reason = ('the data preprocessor does not run (the network '
                          'is timed on a tensor; with --data its mean, std '
                          'and bgr_to_rgb normalise the test images)')
        elif key.startswith('test_dataloader.dataset.pipeline') and \
                shape is None or \
                key.startswith('test_dataloader.dataset.') and data:
            continue
        else:
            reason = ('the benchmark times the model (model.*)'
                      + (' on the test images (test_dataloader.dataset.*)'
                         if data else ' on random inputs')
                      + (' at the size of the test pipeline\'s Resize'
                         if shape is None else ' at --shape')
                      + '; the batch sizes, repeats and threads are its '
                      'own options')
        raise UserError(f'--cfg-options {key}: {reason}, so this key would '
                        'change nothing; leave it out')


def check_deploy_form(cfg, option):
    """Refuse to time a re-parameterised form the config's model lacks.

    Without one, the "re-parameterised" model is the trained one: timing it
    labelled the trained model's latency as re-parameterised, and
    ``--compare-deploy`` reported the noise between two runs of one model
    as a speed-up.

    Args:
        cfg (Config): The benchmarked config.
        option (str): The option that asked for it, for the message.

    Raises:
        UserError: Re-parameterisation leaves the model unchanged.
    """
    from ..deploy.deploy_checkpoint import (check_whole_deploy_form,
                                            is_deploy_config)
    with build_scope(cfg):
        model = MODELS.build(cfg.model)
    if is_deploy_config(cfg):
        # One re-parameterised part alone is neither form.
        check_whole_deploy_form(cfg, model, cfg.filename)
        # Its model is re-parameterised already; the message said it had
        # no re-parameterisable block.
        raise UserError(
            f'{option}: {cfg.filename} is a deploy config (it sets '
            'deploy=True): its model is the re-parameterised one already; '
            f'time it without {option}, or give its training config')
    if not reparameterization_changes(model):
        raise UserError(
            f'{option}: {cfg.filename} builds a model that '
            're-parameterisation leaves unchanged (no re-parameterisable '
            'block, no BatchNorm after a convolution); time it without '
            f'{option}')


def compare_deploy(run, rounds=3):
    """Time both forms in one process, alternating ``rounds`` times so
    that load changes on the machine hit both alike; ratios of medians.

    Args:
        run (callable): ``run(deploy)`` returns :func:`benchmark`'s dict.
        rounds (int): Alternating rounds.

    Returns:
        dict: The last results of both forms, their median latencies over
        the rounds, ``speedup`` and the parameter counts.
    """
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
    return result
