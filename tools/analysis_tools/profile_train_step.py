"""Time one training step of a config on the device, in several forms, and
show which kernels take the time.

Random cached data (no dataset needed), the config's model, loss and
optimizer. Prints what is timed (batch size, input shape, steps, device,
CPU threads), then the step time and img/s of: eager, CUDA graph, graph with
channels-last inputs, graph with bf16 autocast; then torch.profiler's top
kernels of the plain eager step (float32, channels-first), under a line that
says so, whichever forms were timed.

    python tools/analysis_tools/profile_train_step.py configs/dsnet/dsnet_isic2017.py
"""
import argparse
import contextlib
import time

# First, so that a Ctrl-C while the libraries load ends in one line;
# it registers the components and turns on safe loading.
import mmseg_dsnet  # noqa: F401
import torch
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed

from mmseg_dsnet.deploy.deployable import refusing_input_size, resize_size
from mmseg_dsnet.engine.cli_errors import UserError, run_reporting_user_errors
from mmseg_dsnet.engine.fast_training import (
    BatchedSegAugmentation, DecodedImageCache, TrainingRun,
    check_plain_dataset, split_train_pipeline)
from mmseg_dsnet.engine.preflight import (check_config_sets,
                                          check_input_file,
                                          check_trainable_model, load_config)
from mmseg_dsnet.utils.cli import check_at_least, device_option, input_shape
from mmseg_dsnet.utils.memory import (check_forward_memory, is_out_of_memory,
                                      reporting_out_of_memory)
from mmseg_dsnet.utils.messages import counted

VARIANT_PARTS = {'eager', 'graph', 'channels_last', 'bf16', 'compile'}
#: The forms timed when --variants is not given.
DEFAULT_VARIANTS = {
    'cuda': ['eager', 'graph', 'graph+channels_last', 'graph+bf16',
             'graph+bf16+channels_last'],
    'cpu': ['eager', 'eager+channels_last'],
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='training config')
    p.add_argument('--batch-size', type=int, default=8,
                   help='images per step (default: 8)')
    p.add_argument('--shape', type=int, nargs='+', default=None,
                   help='input H W, or one number for a square (default: '
                   'the size the config trains at, its train Resize; '
                   'needed without one)')
    p.add_argument('--steps', type=int, default=60,
                   help='timed steps of each form (default: 60)')
    p.add_argument('--device', default='cuda', help='cuda (default) or cpu')
    p.add_argument('--variants', nargs='+',
                   help="'+'-joined: eager or graph (CUDA only; not both), "
                   'channels_last, bf16, compile (default: '
                   f'{DEFAULT_VARIANTS["cuda"]} on CUDA, '
                   f'{DEFAULT_VARIANTS["cpu"]} on the CPU)')
    p.add_argument('--top', type=int, default=25,
                   help="rows of torch.profiler's table of kernels "
                   '(default: 25)')
    p.add_argument('--profile-steps', type=int, default=10,
                   help='eager steps torch.profiler records for the table; '
                   '0: no table (default: 10)')
    return p.parse_args(argv)


def make_run(cfg, cache, aug, args, variant):
    set_random_seed(0)
    device = torch.device(args.device)
    return TrainingRun(
        cfg, cache, aug, args.batch_size, 10, 10000, device,
        cuda_graph='graph' in variant,
        channels_last='channels_last' in variant, amp='bf16' in variant,
        compile='compile' in variant)


def time_steps(run, steps, sync):
    stream = run.stream
    with (torch.cuda.stream(stream) if stream is not None else
          contextlib.nullcontext()):
        for i in range(3):
            run.step(i)
        if run.cuda_graph:
            run.set_iteration(3)
            run.capture()
        sync()
        start = time.perf_counter()
        for i in range(steps):
            run.step(4 + i)
        sync()
        return (time.perf_counter() - start) / steps


def check_args(args):
    """Refuse a device or a form that cannot be timed, before any work."""
    check_input_file(args.config, 'config file')
    check_at_least(('--batch-size', args.batch_size, 1),
                   ('--steps', args.steps, 1), ('--top', args.top, 1),
                   ('--profile-steps', args.profile_steps, 0))
    args.shape = input_shape(args.shape, images=args.batch_size) \
        if args.shape else None
    device = device_option(args.device, task='the profile')
    kind = 'cuda' if device.type == 'cuda' else 'cpu'
    args.variants = args.variants or DEFAULT_VARIANTS[kind]
    for variant in args.variants:
        unknown = set(variant.split('+')) - VARIANT_PARTS
        if unknown:
            raise UserError(f'--variants {variant}: '
                            f'{counted(len(unknown), "unknown part")} '
                            f'{", ".join(sorted(unknown))}; known: '
                            f'{", ".join(sorted(VARIANT_PARTS))}')
        # Timed as a CUDA graph, the line read "eager+graph".
        if {'eager', 'graph'} <= set(variant.split('+')):
            raise UserError(f'--variants {variant}: a form is eager or a '
                            'CUDA graph, not both; give one of them')
    # The same form twice (in any order of its parts, with or without the
    # 'eager' that is implied without 'graph') was timed twice and shown as
    # two forms.
    forms = [frozenset(variant.split('+')) - {'eager'}
             for variant in args.variants]
    if len(set(forms)) != len(forms):
        raise UserError(f'--variants {" ".join(args.variants)}: a form is '
                        'given twice')
    if kind != 'cuda':
        graphs = [v for v in args.variants if 'graph' in v.split('+')]
        if graphs:
            raise UserError(f'--variants {" ".join(graphs)}: CUDA graphs '
                            f'need a CUDA device, not {args.device}')


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    init_default_scope('mmseg')
    cfg = load_config(args.config)
    # A wrapper's own pipeline (a MultiImageMixDataset's) is not the
    # training augmentation; a RepeatDataset's has none.
    check_plain_dataset((cfg.get('train_dataloader') or {}).get('dataset'),
                        args.config,
                        "profile_train_step.py (the fast trainer's step)")
    check_config_sets(
        cfg, args.config,
        ('model', 'train_dataloader.dataset.pipeline', 'optim_wrapper'),
        "a training step needs the config's model, training augmentation "
        'and optimizer; give a training config such as '
        'configs/dsnet/dsnet_isic2017.py')
    # A deploy form (deploy=True on a part) trains another network than the
    # model's, which a backbone-only one did, timed as the config's step
    # (fast_train.py refuses it).
    check_trainable_model(cfg, args.config, action='profile')
    prefix, rest = split_train_pipeline(cfg.train_dataloader.dataset.pipeline)
    aug = BatchedSegAugmentation(rest)
    # Without --shape, the size the config trains at: a fixed 256x256
    # would time the 128 px demo config's step at 4x its work.
    # One without a Resize to a scale trains each image at its own size:
    # no one step is the config's, so --shape must say which to time.
    args.train_size = resize_size(prefix)
    if args.train_size is None and args.shape is None:
        raise UserError(
            f'{args.config}: its training pipeline has no Resize to a '
            'scale, so it trains each image at its own size; give the size '
            'to time at with --shape H W')
    args.shape = args.shape or tuple(args.train_size)
    h, w = args.shape
    if cfg.model.get('data_preprocessor', {}).get('size') is not None:
        cfg.model.data_preprocessor.size = (h, w)
    n = max(64, args.batch_size)
    # Before the cache is made: a step too large for the device's memory
    # fails in the allocator or gets the process killed.
    from mmseg.registry import MODELS
    model = MODELS.build(cfg.model)
    check_forward_memory(
        model, args.shape, images=args.batch_size,
        training=True, device=args.device,
        held=(n * 4 * h * w, f'the {n} cached images and masks'),
        batch_option='--batch-size')
    with reporting_out_of_memory(args.shape, args.device):
        # A size the network cannot run at (pooled downsampling empties a
        # map below 31 pixels) would fail every form with the same message.
        with refusing_input_size(args.shape, args.config,
                                 tuple(args.train_size or ())), \
                torch.no_grad():
            model.eval()(torch.zeros(1, 3, h, w), mode='tensor')
        profile(cfg, aug, args, n)


def profile(cfg, aug, args, n):
    """Time and profile the forms of ``args`` on ``n`` cached random
    images; raises UserError naming the forms that failed."""
    h, w = args.shape
    gen = torch.Generator().manual_seed(0)
    cache = DecodedImageCache(
        torch.randint(0, 256, (n, 3, h, w), generator=gen,
                      dtype=torch.uint8),
        (torch.rand(n, h, w, generator=gen) > 0.6).to(torch.uint8),
        ['random'] * n).to(args.device)
    cuda = args.device.startswith('cuda')
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.backends.cudnn.benchmark = True
    # The times mean nothing without what was timed (printed on the CPU
    # too, with its thread count).
    print(setup_line(args, cuda), flush=True)
    failed = []
    for variant in args.variants:
        try:
            run = make_run(cfg, cache, aug, args, variant)
            step = time_steps(run, args.steps, sync)
            print(step_line(variant, step, args.batch_size), flush=True)
        except Exception as err:  # noqa: BLE001  (the others still run)
            # Out of memory at this shape: said as such, in one line.
            if is_out_of_memory(err):
                raise
            failed.append(variant)
            print(f'{variant:28s} failed: {type(err).__name__}: {err}',
                  flush=True)
    problems = []
    if failed:
        problems.append(f'{len(failed)} of '
                        f'{counted(len(args.variants), "form")} '
                        f'could not be timed: {", ".join(failed)}')
    try:
        if args.profile_steps:
            print(profile_eager_step(cfg, cache, aug, args, sync, cuda))
    except Exception as err:  # noqa: BLE001  (reported as the forms are)
        if is_out_of_memory(err):
            raise
        # The eager step fails as the timed forms did (e.g. a batch of one
        # through batch norm): said in one line, not a traceback.
        print(f'{"profile of eager":28s} failed: {type(err).__name__}: '
              f'{str(err).splitlines()[0] if str(err) else ""}', flush=True)
        problems.append('the eager step could not be profiled')
    if problems:
        raise UserError('; '.join(problems) + ' (see above)')


def step_line(variant, seconds, batch_size):
    """The printed time of one form: ms per step and images per second
    (:func:`~mmseg_dsnet.analysis.benchmark.rate_text`)."""
    from mmseg_dsnet.analysis.benchmark import rate_text
    return (f'{variant:28s} {seconds * 1e3:8.2f} ms/step  '
            f'{rate_text(batch_size / seconds):>8s} img/s')


def setup_line(args, cuda):
    """What the printed times are of: batch size, input shape, steps,
    device (its name) and torch's CPU threads."""
    if cuda:
        device = f'{args.device} ({torch.cuda.get_device_name(args.device)})'
    else:
        from mmseg_dsnet.analysis.benchmark import cpu_name
        device = f'cpu ({cpu_name()})'
    h, w = args.shape
    own = getattr(args, 'train_size', args.shape)
    note = ("; --shape: the config trains each image at its own size"
            if own is None else '' if tuple(own) == tuple(args.shape) else
            f'; --shape: the config trains at {own[0]}x{own[1]}')
    return (f'batch size {args.batch_size}, input {args.batch_size}x3x{h}x{w}'
            f' (random uint8 images and masks{note}), '
            f'{counted(args.steps, "timed step")} '
            f'after 3 untimed; device {device}, '
            f'{counted(torch.get_num_threads(), "CPU thread")}; torch '
            f'{torch.__version__}')


def profile_eager_step(cfg, cache, aug, args, sync, cuda):
    """torch.profiler's table of ``args.profile_steps`` eager steps, the
    ``args.top`` kernels that take the most time first."""
    run = make_run(cfg, cache, aug, args, 'eager')
    for i in range(3):
        run.step(i)
    sync()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for i in range(args.profile_steps):
            run.step(3 + i)
        sync()
    key = 'cuda_time_total' if cuda else 'cpu_time_total'
    # Named: printed under the timed forms (say graph+bf16), the table read
    # as theirs, though it is always of the plain eager step.
    return (f'torch.profiler of {counted(args.profile_steps, "step")} of '
            'the plain eager form (no CUDA '
            'graph, float32, channels-first inputs), whatever --variants '
            f'timed; top {args.top} by {key}:\n' +
            prof.key_averages().table(sort_by=key, row_limit=args.top,
                                      max_name_column_width=60))


if __name__ == '__main__':
    run_reporting_user_errors(main)
