"""Leave a distributed run cleanly."""
import gc

import torch.distributed as dist
from mmengine.model import is_model_wrapper


def finish_distributed(runner=None) -> None:
    """Wait for every rank, then destroy the process group.

    Without this, a rank that exits while its gloo threads still run can
    end in ``terminate called without an active exception``, failing a run
    that had finished its work.

    Args:
        runner (Runner, optional): The finished runner. Its DDP wrapper holds
            the process group, which would otherwise outlive
            ``destroy_process_group`` and be torn down, gloo threads and all,
            during interpreter shutdown. The wrapper is replaced by the model
            it wraps and freed before the group is destroyed.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    if runner is not None and is_model_wrapper(runner.model):
        runner.model = runner.model.module
    # The wrapper sits in reference cycles; free it now, not at exit.
    gc.collect()
    dist.destroy_process_group()
