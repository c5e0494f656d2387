"""StopLoaderWorkersHook: a finished run leaves no loader worker processes
behind in a process that goes on."""
import time

import torch
from mmengine.runner import BaseLoop
from torch.utils.data import DataLoader, TensorDataset

from mmseg_dsnet.engine.hooks import StopLoaderWorkersHook


class OneEpochLoop(BaseLoop):
    """Reads its loader once, as a train, val or test loop does."""

    def run(self):
        return [batch for batch, in self.dataloader]


def persistent_loader():
    return DataLoader(TensorDataset(torch.arange(8.)), batch_size=2,
                      num_workers=2, persistent_workers=True)


def test_after_run_stops_the_persistent_workers_of_every_loop():
    loaders = [persistent_loader() for _ in range(3)]
    runner = type('Runner', (), {})()
    runner._train_loop, runner._val_loop, runner._test_loop = (
        OneEpochLoop(runner, loader) for loader in loaders)
    workers = []
    for loop in (runner._train_loop, runner._val_loop, runner._test_loop):
        assert torch.cat(loop.run()).tolist() == list(range(8))
        workers += loop.dataloader._iterator._workers
    assert len(workers) == 6 and all(w.is_alive() for w in workers)

    StopLoaderWorkersHook().after_run(runner)
    deadline = time.time() + 10
    while any(w.is_alive() for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(w.is_alive() for w in workers)
    assert all(loader._iterator is None for loader in loaders)
    # A loop that runs again gets fresh workers.
    assert torch.cat(runner._train_loop.run()).tolist() == list(range(8))
    StopLoaderWorkersHook().after_run(runner)


def test_loops_not_built_and_loaders_without_workers_are_left_alone():
    runner = type('Runner', (), {})()
    plain = DataLoader(TensorDataset(torch.arange(4.)), batch_size=2)
    runner._train_loop = OneEpochLoop(runner, plain)
    runner._train_loop.run()
    # Loops given as configs were never built: nothing to stop.
    runner._val_loop, runner._test_loop = dict(type='ValLoop'), None
    StopLoaderWorkersHook().after_run(runner)
    assert torch.cat(runner._train_loop.run()).tolist() == [0, 1, 2, 3]
