"""Importing mmseg-dsnet (every module of it) and using its API leave the
process-wide state of the other libraries as it was: torch's, numpy's,
Pillow's, OpenCV's and matplotlib's settings, warnings filters, loggers,
signal handlers, the environment, and the names of mmengine/mmcv/mmseg's
registries. (mmengine's checkpoint schemes, the one thing the import turns
on, are checked in ``tests/test_compat.py``.)"""
import json
import os
import subprocess
import sys

from conftest import REPO

SNAPSHOT = r'''
import atexit, importlib, json, logging, os, pkgutil, signal, sys, warnings
import matplotlib
matplotlib.use('svg')  # a user's own backend, not the Agg of our plots
import matplotlib.pyplot as plt
import cv2, numpy as np, torch
import PIL.Image as Image, PIL.ImageFile as ImageFile
import mmengine
from mmseg.utils import register_all_modules
register_all_modules(init_default_scope=False)
import mmcv.cnn, mmengine.registry, mmseg.registry

figure = plt.figure()  # a user's open figure


def registries():
    names = {}
    for module in (mmengine.registry, mmcv.cnn, mmseg.registry):
        for attr, registry in vars(module).items():
            if isinstance(registry, mmengine.Registry):
                for key, cls in registry.module_dict.items():
                    names[f'{module.__name__}.{attr}[{key}]'] = \
                        f'{cls.__module__}.{cls.__qualname__}'
    return names


def state():
    return dict(
        torch=[torch.get_num_threads(), torch.get_num_interop_threads(),
               torch.are_deterministic_algorithms_enabled(),
               torch.backends.cudnn.benchmark,
               torch.backends.cudnn.deterministic,
               str(torch.get_default_dtype()), torch.is_grad_enabled(),
               torch.get_float32_matmul_precision(),
               torch.is_anomaly_enabled()],
        numpy=[np.geterr(), repr(np.get_printoptions())],
        pil=[Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES],
        cv2=[cv2.getNumThreads()],
        matplotlib=[matplotlib.get_backend(), plt.get_fignums()],
        warnings=[repr(f) for f in warnings.filters],
        loggers={name: [lg.level, lg.disabled, lg.propagate,
                        [repr(h) for h in lg.handlers]]
                 for name, lg in logging.Logger.manager.loggerDict.items()
                 if isinstance(lg, logging.Logger)
                 and not name.startswith('mmseg_dsnet')},
        root_logger=[logging.root.level, logging.root.manager.disable,
                     [repr(h) for h in logging.root.handlers]],
        signals={int(s): repr(signal.getsignal(s)) for s in (
            signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP)},
        atexit=atexit._ncallbacks(), excepthook=repr(sys.excepthook),
        default_scope=getattr(
            mmengine.registry.DefaultScope.get_current_instance(),
            'scope_name', None),
        environ=dict(os.environ), sys_path=list(sys.path),
        registries=registries())


SETUP
before = state()
import mmseg_dsnet
for info in pkgutil.walk_packages(mmseg_dsnet.__path__, 'mmseg_dsnet.'):
    importlib.import_module(info.name)
STEP
after = state()
changed = {}
for key in before:
    if key in ('registries', 'loggers'):
        # New names are ours (or created lazily); no old one may change.
        old = before[key]
        diff = sorted(k for k in old if after[key].get(k) != old[k])
    else:
        diff = before[key] != after[key]
    if diff:
        changed[key] = [str(before[key])[:2000], str(after[key])[:2000],
                        diff]
print(json.dumps(changed))
'''


def changed_state(step='', setup=''):
    """What ``import mmseg_dsnet`` (and every submodule), then ``step``,
    changed in a fresh interpreter (after ``setup``, whose own changes are
    not counted)."""
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=str(REPO) + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run(
        [sys.executable, '-c',
         SNAPSHOT.replace('SETUP', setup).replace('STEP', step)], cwd=REPO,
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_every_module_changes_no_global_state():
    """``mmseg_dsnet.leaderboard.plot`` switched matplotlib to Agg on
    import (which also closed the user's open figures)."""
    assert changed_state() == {}


def test_drawing_the_leaderboard_plot_changes_no_global_state():
    step = '''
import tempfile
from mmseg_dsnet.leaderboard.plot import plot_leaderboard
row = dict(model='DSNet', dataset='ISIC 2017', source='reported',
           flops=2.9e8, dsc=89.8, params=2.9e5)
with tempfile.TemporaryDirectory() as folder:
    drawn = plot_leaderboard(dict(measured=[], reported=[row]),
                             os.path.join(folder, 'board.png'))
    assert os.path.getsize(os.path.join(folder, 'board.png')) > 1000
    assert len(drawn) == 1, drawn
'''
    assert changed_state(step) == {}


def test_segmenting_an_image_through_the_api_changes_no_global_state():
    """``build_segmentor`` (under ``make_backend``, ``TorchBackend``,
    ``export_onnx``) left mmengine's process-wide default scope set to
    ``mmseg``, so the caller's later registry builds (another OpenMMLab
    library's, or one with no scope) looked in mmseg's registries first;
    now the scope is set for the build only."""
    step = '''
from mmseg_dsnet.apis import LesionInferencer, make_backend
from mmseg_dsnet.apis.released_model import released_model
from mmseg_dsnet.deploy import build_segmentor
config, checkpoint = released_model()
build_segmentor(config, checkpoint)
image = np.random.RandomState(0).randint(0, 256, (40, 52, 3), np.uint8)
mask = LesionInferencer(make_backend(config, checkpoint)).predict([image])[0]
assert mask.shape == (40, 52), mask.shape
'''
    assert changed_state(step) == {}



def test_package_functions_that_build_change_no_default_scope(
        tiny_isic, tmp_path):
    """``benchmark``, ``check_deploy_form``, ``get_flops``,
    ``config_samples``, ``write_deploy_checkpoint`` and
    ``write_recalibrated_checkpoint`` called
    ``register_all_modules(init_default_scope=True)``, which left
    mmengine's process-wide default scope set to ``mmseg`` for a Python
    caller; now they build under
    :func:`mmseg_dsnet.engine.preflight.build_scope` (the demo config, on
    the tiny converted set)."""
    config = tmp_path / 'demo.py'
    config.write_text(
        f"_base_ = '{REPO / 'configs' / 'demo' / 'dsnet_synthetic_cpu.py'}'\n"
        f"data_root = '{tiny_isic}'\n"
        'loader = dict(num_workers=0, persistent_workers=False, '
        'dataset=dict(data_root=data_root))\n'
        'train_dataloader = dict(batch_size=2, **loader)\n'
        'val_dataloader = loader\n'
        'test_dataloader = loader\n')
    step = '''
from mmengine.config import Config
from mmengine.runner import save_checkpoint
from mmseg_dsnet.analysis.benchmark import benchmark, check_deploy_form
from mmseg_dsnet.analysis.flops import get_flops
from mmseg_dsnet.deploy import build_segmentor, write_deploy_checkpoint
from mmseg_dsnet.deploy.parity import config_samples
from mmseg_dsnet.engine.batch_norm_recalibration import (
    write_recalibrated_checkpoint)
config, folder = 'CONFIG', 'FOLDER'
checkpoint = folder + '/trained.pth'
save_checkpoint(dict(state_dict=build_segmentor(
    config, None, reparameterize=False).state_dict()), checkpoint)
cfg = Config.fromfile(config)
check_deploy_form(cfg, '--deploy')
figures = benchmark(cfg, checkpoint, shape=(128, 128), batch_size=2,
                    warmup=1, repeat=1, throughput_repeat=1, data=True)
assert figures['input'] == 'test images', figures
assert get_flops(config, shape=(128, 128))['flops'] > 0
pairs, source = config_samples(cfg, 'test', 2)
assert len(pairs) == 2, source
write_deploy_checkpoint(config, checkpoint, folder + '/deploy.pth',
                        shape=(128, 128))
assert write_recalibrated_checkpoint(
    config, checkpoint, folder + '/recalibrated.pth',
    max_batches=1)['batches'] == 1
'''.replace('CONFIG', str(config)).replace('FOLDER', str(tmp_path))
    # tqdm starts its monitor thread (an atexit callback) with its first
    # bar, whoever draws it, and torch imports its compiler stack (atexit
    # callbacks) the first time a pass runs on the meta device, as the
    # --shape memory estimate's does: both made before the snapshot.
    setup = ('import tqdm; tqdm.tqdm(total=1, disable=False).close(); '
             'import torch._dynamo')
    assert changed_state(step, setup) == {}
    assert (tmp_path / 'deploy.pth').is_file()
    assert (tmp_path / 'recalibrated.pth').is_file()


def test_benchmark_with_threads_puts_the_callers_thread_count_back():
    """``benchmark(..., threads=1)`` set torch's process-wide thread count
    and left it there: a Python caller's later work (and a later benchmark
    without ``threads``, recorded with that count) ran on one thread; now
    the caller's count (2 here) is put back after the run, which records
    the threads it was timed on."""
    step = '''
from mmengine.config import Config
from mmseg_dsnet.analysis.benchmark import benchmark
cfg = Config.fromfile('configs/demo/dsnet_synthetic_cpu.py')
figures = benchmark(cfg, shape=(64, 64), batch_size=1, warmup=1, repeat=1,
                    throughput_repeat=1, threads=1)
assert figures['threads'] == 1, figures['threads']
'''
    # torch._dynamo: imported by torch for the memory estimate's pass on
    # the meta device (atexit callbacks), as in the test above.
    assert changed_state(
        step, setup='torch.set_num_threads(2); import torch._dynamo') == {}
