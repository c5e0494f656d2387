"""The captured CUDA-graph step trains exactly like the eager step.

Needs a CUDA device (skipped elsewhere); run on the GPU machine with
``python -m pytest tests/test_fast_training_cuda.py``.
"""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed

import mmseg_dsnet  # noqa: F401
from mmseg_dsnet.engine.fast_training import (BatchedSegAugmentation,
                                              DecodedImageCache, TrainingRun)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs CUDA')


@pytest.mark.parametrize('config', [
    'configs/dsnet/dsnet_isic2017.py', 'configs/egeunet/egeunet_isic2017.py'
])
def test_graph_replay_matches_eager_steps(config, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, 'deterministic', True)
    monkeypatch.setattr(torch.backends.cudnn, 'benchmark', False)
    init_default_scope('mmseg')
    cfg = Config.fromfile(config)
    device = torch.device('cuda')
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 64, 64), generator=generator,
                           dtype=torch.uint8)
    labels = (torch.rand(16, 64, 64, generator=generator) > 0.6).to(
        torch.uint8)
    cache = DecodedImageCache(images, labels, ['x'] * 16).to(device)
    runs = []
    for graph in (False, True):
        set_random_seed(0)
        runs.append(TrainingRun(cfg, cache, BatchedSegAugmentation([]), 4,
                                4, 2, device, cuda_graph=graph))
    eager, graphed = runs
    initial = {k: v.clone() for k, v in eager.model.state_dict().items()}
    torch.testing.assert_close(
        dict(eager.model.state_dict()), dict(graphed.model.state_dict()))
    order = torch.arange(16, device=device).view(4, 4)
    losses = {False: [], True: []}
    for iteration in range(8):
        for run in runs:
            stream = run.stream or torch.cuda.current_stream()
            with torch.cuda.stream(stream):
                run.batch_index.copy_(order[iteration % 4])
                if run.cuda_graph and run.graph is None and iteration >= 2:
                    run.set_iteration(iteration)
                    run.capture()
                run.step(iteration)
            losses[run.cuda_graph].append(run.scalars()['loss'])
    torch.cuda.synchronize()
    assert graphed.graph is not None
    # Same loss at every step, and it falls on this fixed data.
    assert losses[True] == pytest.approx(losses[False], rel=1e-3)
    assert losses[True][-1] < losses[True][0]
    # Weights: the replayed steps moved them where the eager steps did
    # (GPU gradients are not bit-reproducible and Adam amplifies tiny
    # differences, so compare against the distance travelled).
    travelled = moved_apart = 0.0
    for name, start_value in initial.items():
        if not start_value.is_floating_point():
            continue
        a = eager.model.state_dict()[name]
        b = graphed.model.state_dict()[name]
        travelled += float((a - start_value).norm()**2)
        moved_apart += float((a - b).norm()**2)
    assert travelled > 0
    assert moved_apart**0.5 < 0.05 * travelled**0.5
