"""finish_distributed: the DDP wrapper (which holds the process group) is
freed while the interpreter is fully alive, then the group is destroyed."""
import gc
import weakref
from types import SimpleNamespace

import pytest
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from torch import nn

from mmseg_dsnet.engine import finish_distributed


@pytest.fixture
def gloo_group(tmp_path):
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
        world_size=1)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_wrapper_freed_before_the_group_is_destroyed(gloo_group):
    model = nn.Conv2d(1, 1, 1)
    wrapper = MMDistributedDataParallel(module=model)
    runner = SimpleNamespace(model=wrapper)
    wrapper_ref = weakref.ref(wrapper)
    del wrapper
    gc.disable()  # only finish_distributed may collect the wrapper's cycles
    try:
        assert wrapper_ref() is not None
        finish_distributed(runner)
    finally:
        gc.enable()
    assert runner.model is model
    assert wrapper_ref() is None
    assert not dist.is_initialized()


def test_no_group_leaves_the_runner_alone():
    assert not dist.is_initialized()
    model = nn.Conv2d(1, 1, 1)
    runner = SimpleNamespace(model=model)
    finish_distributed(runner)
    finish_distributed()
    assert runner.model is model
