"""tools/dist_train.sh and tools/dist_test.sh with 2 CPU processes (gloo):
LesionMetric's figures pooled over the ranks equal a single-process
evaluation of the same checkpoint, also when the test set does not split
evenly (mmengine's sampler pads it by repeating images; the results are
cut back to the dataset size before the metric is computed)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from conftest import REPO, load_tool, tree_hashes, write_tiny_config

# Trains and tests tiny models end to end.
pytestmark = pytest.mark.slow

KEYS = ('IoU', 'DSC', 'Acc', 'Sen', 'Spe', 'IoU_orig', 'DSC_orig', 'Acc_orig',
        'Sen_orig', 'Spe_orig', 'mIoU_img', 'mDSC_img', 'TJ', 'mIoU', 'mDice')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_dist(script, *args, timeout=600, status=0):
    """Runs tools/SCRIPT; checks it ended with ``status``."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable,
               PORT=str(free_port()))
    proc = subprocess.run(['bash', f'tools/{script}', *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == status, out[-4000:]
    return out


def single_process_test(cfg, checkpoint, work_dir, *options):
    """tools/test.py in this process, without a launcher."""
    metrics = load_tool('test.py').main([
        str(cfg), str(checkpoint), '--work-dir', str(work_dir),
        '--metrics-out', str(work_dir / 'metrics.json'),
        *map(str, options), '--cfg-options',
        f'experiment_name=single_{uuid.uuid4().hex[:8]}'])
    return {k: float(v) for k, v in metrics.items()}


@pytest.fixture(scope='module')
def setup(tiny_isic, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('dist')
    cfg = write_tiny_config(tmp / 'tiny_dist.py', tiny_isic, epochs=1)
    test_split = tiny_isic / 'splits' / 'lightweight_test.txt'
    return tmp, cfg, len(test_split.read_text().split())


@pytest.fixture(scope='module')
def informative_checkpoint(setup):
    """Random DSNet weights whose predictions are neither all lesion nor all
    background, so that every metric depends on every image."""
    import mmseg_dsnet  # noqa: F401
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    tmp, cfg, _ = setup
    register_all_modules(init_default_scope=True)
    torch.manual_seed(1)
    model = MODELS.build(Config.fromfile(str(cfg)).model)
    model.init_weights()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        model.eval()
        logits = model(torch.randn(4, 3, 64, 64), mode='tensor')
        model.decode_head.conv_seg.bias -= logits.median()
    path = tmp / 'informative.pth'
    save_checkpoint(dict(state_dict=model.state_dict(), meta=dict()),
                    str(path))
    return path


def test_distributed_test_equals_single_process(setup,
                                                informative_checkpoint):
    """Also the masks of ``--out``: the process that scored the padding
    copy of the first image stopped the run, or not, as the processes raced
    (`LesionMetric: an image of another process or run and ... share the
    stem`)."""
    tmp, cfg, num_test = setup
    assert num_test % 2 == 1, 'an odd test set exercises the padding'
    out = run_dist('dist_test.sh', cfg, informative_checkpoint, 2,
                   '--work-dir', tmp / 'dist_test', '--metrics-out',
                   tmp / 'dist_metrics.json', '--out', tmp / 'dist_masks')
    # Each rank saw half of the padded set.
    assert f'Epoch(test) [{(num_test + 1) // 2}/{(num_test + 1) // 2}]' in out
    dist = json.loads((tmp / 'dist_metrics.json').read_text())['metrics']
    single = single_process_test(cfg, informative_checkpoint,
                                 tmp / 'single_test', '--out',
                                 tmp / 'single_masks')
    assert 0 < single['Sen'] < 100 and 0 < single['Spe'] < 100
    for key in KEYS:
        assert dist[key] == single[key], key
    written = tree_hashes(tmp / 'single_masks')
    assert len([name for name in written if name.endswith('.png')]) == \
        num_test
    # The masks and the per-image table, its rows in the split's order
    # without the padding's copies.
    assert 'per_image.csv' in written
    assert tree_hashes(tmp / 'dist_masks') == written


def test_distributed_training_one_epoch(setup):
    """Two processes train an epoch (DDP over gloo); the validation they run
    together matches a single-process test of the checkpoint they wrote
    (BatchNorm statistics are averaged over the ranks first)."""
    tmp, cfg, _ = setup
    work_dir = tmp / 'dist_train'
    out = run_dist('dist_train.sh', cfg, 2, '--work-dir', work_dir,
                   '--no-synthetic-fallback')
    assert 'Distributed launcher: pytorch' in out
    assert 'Distributed training: True' in out
    assert (work_dir / 'epoch_1.pth').is_file()
    logs = sorted(work_dir.glob('*/vis_data/scalars.json'))
    records = [json.loads(line) for line in logs[-1].read_text().splitlines()]
    val = [r for r in records if 'IoU' in r][-1]
    single = single_process_test(cfg, work_dir / 'epoch_1.pth',
                                 tmp / 'single_after_train')
    for key in KEYS:
        assert val[key] == pytest.approx(single[key], abs=1e-4), key


def test_a_bad_test_sample_stops_every_process_with_one_error(
        setup, informative_checkpoint, tmp_path):
    """``dist_test.sh`` with ``on_bad_sample='skip'`` and a truncated test
    image: only the process that loaded it raised, so the other was left in
    a collective and ended by torchrun with a gloo ``Connection closed by
    peer`` traceback (NCCL: a hang until its timeout). Now the replaced
    paths are pooled over the processes at each iteration: all stop at the
    same iteration, with exit status 2 each and one ERROR line."""
    tmp, cfg, _ = setup
    root = Path(Config.fromfile(str(cfg)).data_root)
    data = tmp_path / 'data'
    shutil.copytree(root, data)
    name = (data / 'splits' / 'lightweight_test.txt').read_text().split()[2]
    image = data / 'images' / f'{name}.jpg'
    image.write_bytes(image.read_bytes()[:300])
    out = run_dist(
        'dist_test.sh', cfg, informative_checkpoint, 2, '--work-dir',
        tmp_path / 'work', '--cfg-options',
        f'test_dataloader.dataset.data_root={data}',
        'test_dataloader.dataset.on_bad_sample=skip', timeout=120,
        status=2)
    errors = [line for line in out.splitlines() if 'ERROR:' in line]
    assert errors == [
        f'ERROR: Test: the bad sample {image} was replaced by the next '
        "sample (on_bad_sample='skip'), so that one would be scored twice "
        f'and {image} not at all; a test scores every image of its split. '
        'Fix or remove the file (and its line in the split file); nothing '
        'was reported'], out[-4000:]
    assert 'Connection closed by peer' not in out
    # The run ends with the processes' status 2 (torchrun's was 1) and no
    # traceback of torchrun's.
    assert 'Traceback' not in out and 'Root Cause' not in out, out[-4000:]
    assert not list((tmp_path / 'work').rglob('*.json'))


def test_distributed_tta_test_equals_single_process(
        setup, informative_checkpoint):
    """``dist_test.sh ... --tta``: DDP wraps the test-time augmentation
    model, and the checkpoint check unwrapped only DDP, so it compared the
    checkpoint with the TTA model's ``module.``-prefixed keys and refused
    it (`Checkpoint ... does not match the model ...: 315 missing keys`),
    exit 1, though ``test.py --tta`` tested it."""
    tmp, cfg, _ = setup
    run_dist('dist_test.sh', cfg, informative_checkpoint, 2, '--tta',
             '--work-dir', tmp / 'dist_tta', '--metrics-out',
             tmp / 'dist_tta.json', timeout=120)
    dist = json.loads((tmp / 'dist_tta.json').read_text())['metrics']
    single = single_process_test(cfg, informative_checkpoint,
                                 tmp / 'single_tta', '--tta')
    for key in KEYS:
        assert dist[key] == single[key], key
