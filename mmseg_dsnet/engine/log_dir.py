"""One log folder per run: ``<work_dir>/<timestamp>`` claimed, not shared.

mmengine's Runner names a run's log folder after the second it started in
and creates it if missing (``mkdir_or_exist``): two runs into one work dir
started in the same second (two ``tools/test.py``, a test beside a
training) shared it, the second log opened with mode ``'w'`` over the
first, both runs' lines mixed in it, and one ``<timestamp>.json`` of
metrics replaced the other's, exit 0 for both.
"""
import os
import os.path as osp

from mmengine.dist import broadcast_object_list
from mmengine.runner import Runner


def claim_log_dir(work_dir: str, timestamp: str) -> str:
    """Create the log folder ``<work_dir>/<timestamp>``, or, when another
    run holds it, ``<timestamp>_1``, ``<timestamp>_2`` ... (sorted after it,
    before the next second's), and return its name. ``os.mkdir`` fails on
    an existing folder, so two runs never claim one.

    Args:
        work_dir (str): The run's work dir (made if missing).
        timestamp (str): The run's start, ``%Y%m%d_%H%M%S``.

    Returns:
        str: The name of the folder made.
    """
    os.makedirs(work_dir, exist_ok=True)
    stamp, suffix = timestamp, 0
    while True:
        try:
            os.mkdir(osp.join(work_dir, stamp))
            return stamp
        except FileExistsError:
            suffix += 1
            stamp = f'{timestamp}_{suffix}'


class SeparateLogDirRunner(Runner):
    """mmengine's :class:`~mmengine.runner.Runner` whose log folder (and
    so its ``<timestamp>.log``, ``<timestamp>.json`` and ``vis_data``) is
    its own (:func:`claim_log_dir`): rank 0 claims it, the other ranks of a
    distributed run take its name."""

    def setup_env(self, env_cfg: dict) -> None:
        super().setup_env(env_cfg)
        stamp = [claim_log_dir(self._work_dir, self._timestamp)
                 if self._rank == 0 else None]
        if self._world_size > 1:
            broadcast_object_list(stamp)
        self._timestamp = stamp[0]
