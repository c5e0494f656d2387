"""Distributed runs (mmengine's ``pytorch`` launcher) on hosts without CUDA.

mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` before it
starts the process group, and the Runner wraps the model in DDP with
``device_ids=[LOCAL_RANK]``; both fail without CUDA. ``tools/train.py`` and
``tools/test.py`` therefore call :func:`setup_cpu_distributed` before
building the Runner: on such a host it starts the process group itself with
``env_cfg.dist_cfg`` (``backend='gloo'`` instead of ``nccl``, which needs
CUDA), and sets ``model_wrapper_cfg`` to DDP without device ids (how DDP
runs on the CPU). The Runner sees the process group started and does not
start it again. Both settings are written into the config, so the dumped
config of the run shows them; with CUDA nothing changes.
"""
import datetime
import os

import torch
import torch.distributed as torch_dist
from mmengine.logging import print_log

from ..utils.errors import UserError, mark_every_rank

#: What torchrun sets for each process and the ``pytorch`` launcher reads.
LAUNCH_VARIABLES = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')

#: Wrapper types that take ``device_ids`` (DDP).
_DDP_TYPES = (None, 'MMDistributedDataParallel',
              'mmengine.MMDistributedDataParallel')


def check_launched(launcher, script):
    """Refuse ``--launcher pytorch`` in a process torchrun did not start,
    and another launcher in one it started with other processes.

    mmengine reads ``RANK`` and the process group's address from the
    environment only once the runner is built: a traceback (``environment
    variable RANK expected, but not set``) after the work dir is made.

    Args:
        launcher (str): The ``--launcher`` given.
        script (str): ``dist_train.sh`` or ``dist_test.sh``, for the message.

    Raises:
        UserError: Naming the variables that are not set.
    """
    missing = [name for name in LAUNCH_VARIABLES if name not in os.environ]
    if launcher == 'pytorch' and missing:
        raise UserError(
            f'--launcher pytorch: {", ".join(missing)} not set, so this '
            f'process was not started by torchrun; run tools/{script} '
            '(it starts one process per device), or leave out --launcher')
    processes = os.environ.get('WORLD_SIZE', '1')
    if launcher != 'pytorch' and 'RANK' in os.environ and \
            processes.isdigit() and int(processes) > 1:
        # dist_*.sh passes --launcher pytorch before the user's arguments,
        # so a --launcher none among them wins: each process would run the
        # whole run alone, all at once into the same work dir (checkpoints,
        # metrics file and masks written over each other).
        raise mark_every_rank(UserError(
            f'--launcher {launcher} in one of the {processes} processes '
            'torchrun started: each would run alone, on all the data, into '
            f'the same work dir; leave out --launcher (tools/{script} '
            'gives pytorch), or run the tool without torchrun'))


def setup_cpu_distributed(cfg) -> bool:
    """Start a ``pytorch``-launched run's process group on a host without
    CUDA (gloo) and wrap the model without device ids.

    Args:
        cfg (Config): The run's config, with ``launcher`` set; its
            ``env_cfg.dist_cfg`` and ``model_wrapper_cfg`` are updated.

    Returns:
        bool: Whether anything was done (False with CUDA, without a
        launcher, with another launcher, or when the process group already
        exists).
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available() \
            or torch_dist.is_initialized():
        return False
    env_cfg = cfg.get('env_cfg') or {}
    dist_cfg = dict(env_cfg.get('dist_cfg') or {})
    backend = dist_cfg.pop('backend', 'nccl')
    if backend != 'gloo':
        print_log(
            f'No CUDA device: using the gloo backend instead of {backend!r} '
            'for distributed CPU processes (env_cfg.dist_cfg.backend).',
            logger='current')
    cfg.env_cfg = dict(env_cfg, dist_cfg=dict(dist_cfg, backend='gloo'))
    kwargs = dict(dist_cfg)
    if kwargs.get('timeout') is not None:  # seconds, as mmengine takes it
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    torch_dist.init_process_group(backend='gloo', **kwargs)

    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    elif wrapper.get('type') in _DDP_TYPES:
        wrapper.setdefault('device_ids', None)
    return True
