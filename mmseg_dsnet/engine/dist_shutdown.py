"""Leave a distributed run cleanly."""
import torch.distributed as dist


def finish_distributed() -> None:
    """Wait for every rank, then destroy the process group.

    Without this, a rank that exits while its gloo threads still run can
    end in ``terminate called without an active exception`` (seen when the
    machine is loaded), failing a run that had finished its work.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
