"""Stop the data loaders' persistent worker processes when a run ends."""
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from mmseg.registry import HOOKS


def stop_persistent_workers(dataloader) -> bool:
    """Shut down the worker processes a ``persistent_workers`` loader keeps
    between epochs.

    torch offers no public call for this; the loader's iterator holds the
    workers and frees them when it is deleted. Deleted by the garbage
    collector (the iterator sits in reference cycles with the runner), it
    waits 5 s for each worker, whose queues are already closed, before
    killing it.

    Args:
        dataloader: A ``torch.utils.data.DataLoader`` (anything else is left
            alone).

    Returns:
        bool: Whether workers were stopped.
    """
    iterator = getattr(dataloader, '_iterator', None)
    shutdown = getattr(iterator, '_shutdown_workers', None)
    if shutdown is None:
        return False
    shutdown()
    # The next epoch, if any, starts fresh workers.
    dataloader._iterator = None
    return True


@HOOKS.register_module()
class StopLoaderWorkersHook(Hook):
    """Stop the persistent worker processes of the train, val and test
    loaders when ``runner.train()`` or ``runner.test()`` returns.

    A run in a process that goes on (``tools/check_real_data.py`` trains
    one model after another, the demo, a notebook) otherwise keeps six
    worker processes per run alive until the garbage collector finds them,
    and then stalls for 5 s per worker.
    """

    priority = 'LOWEST'

    def after_run(self, runner) -> None:
        for loop in (runner._train_loop, runner._val_loop,
                     runner._test_loop):
            if isinstance(loop, BaseLoop):
                stop_persistent_workers(loop.dataloader)
