"""Shared fixtures: a tiny synthetic ISIC set made and converted by the
project's own converters, and a tiny-schedule config on it."""
import hashlib
import importlib.util
import io
import os
import runpy
import signal
import subprocess
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools'
SHARED_ISIC2017 = REPO.parent / 'shared' / 'data' / 'isic2017_256x192'
# The converter's command line (the tests call the package's functions
# directly otherwise).
CONVERTER = TOOLS / 'dataset_converters' / 'isic.py'

# Keep the suite light on a 2-core machine.
os.environ.setdefault('OMP_NUM_THREADS', '1')


def load_tool(relpath):
    """Import a script under tools/ (not a package) as a module, to run its
    ``main``; the logic the tools wrap is imported from ``mmseg_dsnet``."""
    path = TOOLS / relpath
    name = 'tool_' + path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class ToolRun:
    """What a tool's command line gave.

    Args:
        returncode (int): The exit status.
        stdout (str): What it printed to stdout.
        stderr (str): What it printed to stderr.
    """

    def __init__(self, returncode, stdout, stderr):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.output = stdout + stderr


def run_tool_process(script, *args, check=False):
    """Run ``python script args`` from the repository root in a new process
    (for what needs one: a training's logger, signals, a process group).

    Args:
        script (str | Path): The tool, absolute or relative to the
            repository root.
        check (bool): Fail the test, showing the tool's output, if the exit
            status is not 0.
    """
    proc = subprocess.run([sys.executable, str(script), *map(str, args)],
                          cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS='1'),
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f'{script} {args} failed:\n'
                             f'{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return ToolRun(proc.returncode, proc.stdout, proc.stderr)


# mmengine's global instances a run made that a fresh interpreter would not
# hold: a Runner names its logger, message hub and visualizer after its
# config file and the second it started, and a second run of the same
# config in the same second got the first run's (its log and dumps went
# into the first run's work dir).
def _run_scoped_managers():
    # Before mmengine is imported there are none; the package is not
    # imported for the tests that do not use it.
    if 'mmengine' not in sys.modules:
        return []
    from mmseg_dsnet.engine.log_dir import run_scoped_manager_classes
    return run_scoped_manager_classes()


def _drop_instances_made_since(saved):
    """Forget the logger, message hub and visualizer instances made since
    ``saved`` (class -> instance names), closing the removed loggers'
    handlers (their log files are complete, as at a process's exit)."""
    for cls in _run_scoped_managers():
        made = [name for name in cls._instance_dict
                if name not in saved.get(cls, ())]
        for name in made:
            instance = cls._instance_dict.pop(name)
            for handler in getattr(instance, 'handlers', [])[:]:
                handler.close()
                instance.removeHandler(handler)


@pytest.fixture(autouse=True)
def forget_run_scoped_managers():
    """Drop the loggers, message hubs and visualizers a test made, as
    :func:`run_tool_in_process` does for a tool: a test that builds a runner
    itself (``train_and_evaluate``, a tool's ``main``) left them, and a later
    test's runner of a config of the same name in the same second took them
    over, its ``vis_data`` written into the earlier test's folder."""
    saved = {cls: set(cls._instance_dict) for cls in _run_scoped_managers()}
    yield
    _drop_instances_made_since(saved)


def run_tool_in_process(script, *args, check=False):
    """Run ``python script args`` from the repository root in this process:
    the tool's ``__main__`` block runs with ``sys.argv`` set, its exit status
    is taken from ``SystemExit`` (an uncaught exception: status 1 and the
    traceback on stderr, as Python does) and stdout/stderr are captured.

    The same command line as :func:`run_tool_process` without a Python
    start-up and the imports of torch, mmengine and mmseg (seconds per run),
    for tools that print their output; ``sys.argv``, the working directory
    and the signal handlers are restored afterwards, and the loggers,
    message hubs and visualizers the run made are dropped.

    Args:
        script (str | Path): The tool, absolute or relative to the
            repository root.
        check (bool): Fail the test, showing the tool's output, if the exit
            status is not 0.
    """
    path = Path(script) if Path(script).is_absolute() else REPO / script
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    saved_handlers = {signum: signal.getsignal(signum)
                      for signum in (signal.SIGINT, signal.SIGTERM,
                                     signal.SIGHUP)}
    saved_managers = {cls: set(cls._instance_dict)
                      for cls in _run_scoped_managers()}
    sys.argv = [str(path), *map(str, args)]
    os.chdir(REPO)
    code = 0
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr):
            try:
                runpy.run_path(str(path), run_name='__main__')
            except SystemExit as exit_:
                code = exit_.code
                if code is None:
                    code = 0
                elif not isinstance(code, int):
                    print(code, file=sys.stderr)
                    code = 1
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        for signum, handler in saved_handlers.items():
            signal.signal(signum, handler)
        _drop_instances_made_since(saved_managers)
    if check and code != 0:
        raise AssertionError(f'{script} {args} failed:\n'
                             f'{stdout.getvalue()[-3000:]}\n'
                             f'{stderr.getvalue()[-3000:]}')
    return ToolRun(code, stdout.getvalue(), stderr.getvalue())


def run_converter(*args):
    """Run the converter's command line (in this process)."""
    return run_tool_in_process(CONVERTER, *args)


def run_cli(main, argv, capsys):
    """Run a tool's ``main`` as its command line does (user errors through
    ``run_reporting_user_errors``); return (exit status, stderr)."""
    from mmseg_dsnet.engine import run_reporting_user_errors
    capsys.readouterr()
    try:
        result = run_reporting_user_errors(
            lambda: main([str(a) for a in argv]))
        code = result if isinstance(result, int) else 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def another_run_writes_during_save(monkeypatch, out):
    """Make every ``torch.save`` first write ``out`` as another copy of a
    tool would while this one works (its bytes: ``b'the other run'``)."""
    import torch
    save = torch.save

    def other_run_writes_out(*args, **kwargs):
        out.write_bytes(b'the other run')
        return save(*args, **kwargs)

    monkeypatch.setattr(torch, 'save', other_run_writes_out)


def tree_hashes(root):
    """SHA-256 of every file below ``root``, by relative POSIX path."""
    return {
        p.relative_to(root).as_posix():
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob('*')) if p.is_file()
    }


@pytest.fixture(scope='session')
def tiny_isic(tmp_path_factory):
    """A converted synthetic ISIC 2018-layout set: 64x48 images,
    12 train + 4 val + 6 test."""
    from mmseg_dsnet.datasets.converters.isic import convert
    from mmseg_dsnet.datasets.converters.synthetic_isic import generate
    base = tmp_path_factory.mktemp('tiny_isic')
    raw = base / 'raw'
    # A stand-in for a real download: runs on it are collected.
    generate(str(raw), year=2018, num_train=12, num_val=4, num_test=6,
             size=(64, 48), seed=0, mark_synthetic=False)
    root = base / 'isic2018'
    convert(str(raw), str(root), year=2018, seed=0)
    return root


TINY_CONFIG = '''
_base_ = '{base}'
data_root = '{root}'
crop_size = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
model = dict(data_preprocessor=dict(size=crop_size))
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='LesionMetric', low_res_size=crop_size)
test_evaluator = val_evaluator
max_epochs = {epochs}
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs,
                        eta_min=1e-5, by_epoch=True, begin=0, end=max_epochs)]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=1, max_keep_ckpts=3, save_best='IoU'),
    visualization=dict(type='SegVisualizationHook', draw=False))
env_cfg = dict(cudnn_benchmark=False)
'''


def write_tiny_config(path, root, base='configs/dsnet/dsnet_isic2018.py',
                      epochs=2):
    """Write a config that inherits ``base`` and trains ``epochs`` epochs on
    the tiny set at 64x64."""
    path = Path(path)
    path.write_text(
        TINY_CONFIG.format(base=REPO / base, root=root, epochs=epochs))
    return path


def write_model_variant(path, model, base='configs/dsnet/dsnet_isic2017.py'):
    """Write a config that inherits ``base`` and changes its model by
    ``model`` (the text of a dict merged into ``base``'s ``model``): the
    same network with another setting."""
    path = Path(path)
    path.write_text(f"_base_ = ['{REPO / base}']\nmodel = {model}\n")
    return str(path)


def write_training_log(work_dir):
    """Write the two lines of a one-epoch training log that
    ``leaderboard.py collect`` reads (``<ts>/<ts>.log``) into
    ``work_dir``: a run record without a training."""
    ts = '20240101_000000'
    (work_dir / ts).mkdir(parents=True)
    (work_dir / ts / f'{ts}.log').write_text(
        '2024/01/01 00:00:00 - mmengine - INFO - Checkpoints will be saved '
        'to x\n2024/01/01 00:00:09 - mmengine - INFO - Epoch(train) [1][1/1]'
        '  lr: 1e-3  loss: 0.5\n')


#: ``train_dataloader.dataset`` of a config inheriting a tiny config, as
#: each dataset wrapper holds it.
WRAPPED_DATASETS = {
    'RepeatDataset': "dict(_delete_=True, type='RepeatDataset', times=3, "
    'dataset={{_base_.train_dataloader.dataset}})',
    'ConcatDataset': "dict(_delete_=True, type='ConcatDataset', datasets=["
    '{{_base_.train_dataloader.dataset}}, '
    '{{_base_.val_dataloader.dataset}}])',
    'MultiImageMixDataset': "dict(_delete_=True, type='MultiImageMixDataset', "
    "pipeline=[dict(type='RandomFlip', prob=0.5), "
    "dict(type='PackSegInputs')], "
    'dataset={{_base_.train_dataloader.dataset}})',
}


def write_wrapped_config(path, base, wrapper):
    """Write a config that inherits ``base`` (a tiny config) and wraps its
    training dataset in ``wrapper`` (a key of :data:`WRAPPED_DATASETS`)."""
    path = Path(path)
    path.write_text(f"_base_ = '{base}'\n"
                    f'train_dataloader = dict(dataset='
                    f'{WRAPPED_DATASETS[wrapper]})\n')
    return path


@pytest.fixture
def tiny_config(tiny_isic, tmp_path):
    return write_tiny_config(tmp_path / 'tiny_dsnet.py', tiny_isic)


def lesion_data_samples(labels):
    """Training samples of ``labels`` (``(N, H, W)`` masks): each one's
    ground truth and the metainfo the segmentors read."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for label in labels:
        shape = tuple(label.shape)
        sample = SegDataSample(
            metainfo=dict(
                img_shape=shape,
                ori_shape=shape,
                pad_shape=shape,
                padding_size=[0, 0, 0, 0]))
        sample.gt_sem_seg = PixelData(data=label[None].long())
        samples.append(sample)
    return samples


def make_lesion_checkpoint(config, path, calibration_image, seed=0,
                           randomise_bn_affine=False, meta=None):
    """Random DSNet weights with non-trivial BatchNorm statistics (so that
    folding is really exercised), the classifier scaled so that logits on
    ``calibration_image`` (256x256x3 uint8, RGB) straddle the threshold with
    trained-like magnitudes; saved with mmengine's ``save_checkpoint``."""
    import mmseg_dsnet  # noqa: F401
    import torch
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(config).model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 2.0)
                if randomise_bn_affine:
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.3, 0.3)
        # Spread the logits around the threshold so that masks are
        # neither empty nor full and mask comparisons mean something.
        model.eval()
        image = torch.from_numpy(calibration_image).permute(
            2, 0, 1)[None].float()
        mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
        std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
        noise = torch.rand(1, 3, 256, 256) * 255
        logits = model((torch.cat([image, noise]) - mean) / std,
                       mode='tensor')
        centre = logits[0].median()
        # Trained models reach logits of about +-20; so do these.
        scale = 20.0 / (logits - centre).abs().max()
        classifier = model.decode_head.conv_seg
        classifier.weight.mul_(scale)
        classifier.bias.copy_((classifier.bias - centre) * scale)
    checkpoint = dict(state_dict=model.state_dict())
    if meta is not None:
        checkpoint['meta'] = meta
    save_checkpoint(checkpoint, str(path))
    return str(path)


#: The demo config: DSNet at 128 px (the shipped ISIC configs run at 256).
DEMO_128PX = str(REPO / 'configs' / 'demo' / 'dsnet_synthetic_cpu.py')


def make_128px_checkpoint(path):
    """A lesion checkpoint of :data:`DEMO_128PX` whose ``meta['cfg']`` (the
    training config mmengine dumps into a checkpoint) says it trained at
    128 px."""
    import numpy as np
    from mmengine.config import Config
    image = np.random.default_rng(0).integers(0, 256, (256, 256, 3),
                                              dtype=np.uint8)
    return make_lesion_checkpoint(
        DEMO_128PX, path, image,
        meta=dict(cfg=Config.fromfile(DEMO_128PX).pretty_text))


def trained_size_error(checkpoint, config, advice):
    """The ERROR line of a 128 px checkpoint given with a 256 px config."""
    return (f'ERROR: checkpoint {checkpoint} was trained at another input '
            f'size than config {config} sets: model.data_preprocessor.size '
            "is (128, 128) in its training config (meta['cfg']), (256, 256) "
            "in the config; the test pipeline's Resize scale is (128, 128) "
            "in its training config (meta['cfg']), (256, 256) in the config; "
            f'{advice}')
