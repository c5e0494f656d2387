"""mmseg_dsnet.engine.cpu_distributed in this process: the launcher check
on the environment torchrun sets, and a one-process gloo group started as
``tools/train.py --launcher pytorch`` starts it on a host without CUDA."""
import datetime
import socket

import pytest
import torch
import torch.distributed as torch_dist
from mmengine.config import Config

from mmseg_dsnet.engine.cpu_distributed import (check_launched,
                                                setup_cpu_distributed)
from mmseg_dsnet.utils.errors import UserError

LAUNCH = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


def _launched(monkeypatch, world_size=1):
    """The environment torchrun gives rank 0 of ``world_size``."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    for name, value in zip(LAUNCH, ('0', str(world_size), '127.0.0.1',
                                    str(port))):
        monkeypatch.setenv(name, value)


@pytest.fixture
def group():
    """Destroys the process group a test started."""
    yield
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def test_pytorch_launcher_outside_torchrun_names_what_is_missing(
        monkeypatch):
    for name in LAUNCH:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UserError, match=(
            r'^--launcher pytorch: RANK, WORLD_SIZE, MASTER_ADDR, '
            r'MASTER_PORT not set, .*run tools/dist_train\.sh')):
        check_launched('pytorch', 'dist_train.sh')
    _launched(monkeypatch)
    monkeypatch.delenv('MASTER_PORT')
    with pytest.raises(UserError, match=r'^--launcher pytorch: MASTER_PORT '
                       r'not set'):
        check_launched('pytorch', 'dist_test.sh')
    check_launched('none', 'dist_test.sh')
    _launched(monkeypatch)
    check_launched('pytorch', 'dist_train.sh')


def test_another_launcher_in_one_of_several_processes_is_refused(
        monkeypatch):
    _launched(monkeypatch, world_size=2)
    for launcher in ('none', 'slurm'):
        with pytest.raises(UserError, match=(
                rf'^--launcher {launcher} in one of the 2 processes '
                'torchrun started')):
            check_launched(launcher, 'dist_train.sh')
    # One process (torchrun --nproc-per-node 1), or none started by
    # torchrun: each run is alone anyway.
    _launched(monkeypatch, world_size=1)
    check_launched('none', 'dist_train.sh')
    _launched(monkeypatch, world_size=2)
    monkeypatch.delenv('RANK')
    check_launched('none', 'dist_train.sh')


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason='sets up only hosts without CUDA')
def test_a_pytorch_run_without_cuda_starts_gloo_and_says_so(
        monkeypatch, group):
    _launched(monkeypatch)
    cfg = Config(dict(launcher='pytorch', find_unused_parameters=True,
                      env_cfg=dict(dist_cfg=dict(backend='nccl',
                                                 timeout=77))))
    assert setup_cpu_distributed(cfg)
    assert torch_dist.is_initialized()
    assert torch_dist.get_backend() == 'gloo'
    gloo = torch_dist.distributed_c10d._get_default_group()._get_backend(
        torch.device('cpu'))
    # dist_cfg.timeout is in seconds.
    assert gloo.options._timeout == datetime.timedelta(seconds=77)
    # The dumped config shows what the run used.
    assert cfg.env_cfg.dist_cfg.to_dict() == dict(backend='gloo', timeout=77)
    assert cfg.model_wrapper_cfg.to_dict() == dict(
        type='MMDistributedDataParallel', device_ids=None,
        broadcast_buffers=False, find_unused_parameters=True)
    # The group exists now: a second call (test.py after train.py in one
    # process) does nothing.
    again = Config(dict(launcher='pytorch'))
    assert not setup_cpu_distributed(again)
    assert 'model_wrapper_cfg' not in again and 'env_cfg' not in again


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason='sets up only hosts without CUDA')
@pytest.mark.parametrize('wrapper, expected', [
    (dict(type='MMDistributedDataParallel', broadcast_buffers=True),
     dict(type='MMDistributedDataParallel', broadcast_buffers=True,
          device_ids=None)),
    # Not DDP: takes no device_ids.
    (dict(type='MMFullyShardedDataParallel'),
     dict(type='MMFullyShardedDataParallel')),
])
def test_a_wrapper_of_the_config_is_kept(monkeypatch, group, wrapper,
                                         expected):
    _launched(monkeypatch)
    cfg = Config(dict(launcher='pytorch', model_wrapper_cfg=wrapper))
    assert setup_cpu_distributed(cfg)
    assert cfg.model_wrapper_cfg.to_dict() == expected
    assert cfg.env_cfg.dist_cfg.to_dict() == dict(backend='gloo')


@pytest.mark.parametrize('launcher', ['none', 'slurm', None])
def test_other_launchers_are_left_alone(monkeypatch, launcher):
    _launched(monkeypatch)
    cfg = Config({} if launcher is None else dict(launcher=launcher))
    assert not setup_cpu_distributed(cfg)
    assert not torch_dist.is_initialized()
    assert 'model_wrapper_cfg' not in cfg and 'env_cfg' not in cfg
