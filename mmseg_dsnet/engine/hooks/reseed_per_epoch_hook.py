"""Make each epoch's randomness a function of (seed, epoch) only, so that a
run resumed from a checkpoint repeats exactly what the uninterrupted run
would have done."""
import random
from functools import partial

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS


def epoch_seed(seed, epoch):
    """A 32-bit seed derived from the run's seed and the epoch number."""
    sequence = np.random.SeedSequence([seed % 2**32, epoch])
    return int(sequence.generate_state(1)[0])


def seed_everything(seed):
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seed_worker(worker_id, base_seed, num_workers, rank):
    """``worker_init_fn`` of one epoch: each data-loading worker gets its own
    seed, derived from that epoch's seed, its rank and its id."""
    seed_everything((base_seed + num_workers * rank + worker_id) % 2**32)


@HOOKS.register_module()
class ReseedPerEpochHook(Hook):
    """Reseed every random generator at the start of each training epoch.

    mmengine seeds once per process and ``--resume`` does not restore the
    generators' states, so data augmentation (``RandomFlip``,
    ``RandomRotate`` ... draw from NumPy's global generator) and any other
    randomness after a resume differ from the uninterrupted run. Reseeding
    from ``(seed, epoch)`` before each epoch (before its data iterator
    exists) removes that difference: the sampler already shuffles with
    ``seed + epoch``.

    Data-loading workers: with ``num_workers > 0`` and
    ``persistent_workers=False`` the workers of each epoch are seeded from the
    same epoch seed, so resuming is exact there too (and, unlike mmengine's
    default, augmentations differ between epochs). Persistent workers keep
    their generators across epochs, which a resume cannot restore: a warning
    says so.

    Args:
        seed (int, optional): Overrides the runner's seed
            (``randomness.seed``). Defaults to None.
    """

    priority = 'VERY_HIGH'

    def __init__(self, seed=None):
        self.seed = seed
        self._warned = False

    def before_train_epoch(self, runner) -> None:
        seed = self.seed if self.seed is not None else runner.seed
        if seed is None:
            return
        base = epoch_seed(seed, runner.epoch)
        seed_everything(base)
        loader = runner.train_loop.dataloader
        workers = getattr(loader, 'num_workers', 0)
        if not workers:
            return
        if getattr(loader, 'persistent_workers', False):
            if not self._warned:
                print_log(
                    'ReseedPerEpochHook: persistent data-loading workers keep '
                    'their random state across epochs, so a resumed run is '
                    'not bit-exact; set persistent_workers=False (or '
                    'num_workers=0) for exact resumes.',
                    logger='current')
                self._warned = True
            return
        loader.worker_init_fn = partial(
            seed_worker, base_seed=base, num_workers=workers, rank=get_rank())
