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
import re

from mmengine.dist import broadcast_object_list
from mmengine.runner import Runner


def claim_log_dir(work_dir: str, timestamp: str) -> str:
    """Create the log folder ``<work_dir>/<timestamp>``, or, when another
    run holds it, ``<timestamp>_1``, ``<timestamp>_2`` ... (after it, before
    the next second's, in :func:`log_dir_order`), and return its name.
    ``os.mkdir`` fails on an existing folder, so two runs never claim one.

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


# A log folder's name: the second its run started and, when another run
# held that second's folder, the number claim_log_dir added.
_LOG_DIR_NAME = re.compile(r'(\d{8}_\d{6})(?:_(\d+))?')


def log_dir_order(name: str) -> tuple:
    """Sort key that puts log folder names in the order their runs
    started: ``<ts>``, ``<ts>_1``, ``<ts>_2`` ... ``<ts>_10``, then the next
    second's (as strings, ``<ts>_10`` sorts before ``<ts>_2``). Other names
    sort by their text.

    Args:
        name (str): A folder name (not a path).

    Returns:
        tuple: The key.
    """
    match = _LOG_DIR_NAME.fullmatch(name)
    if match is None:
        return name, 0
    return match.group(1), int(match.group(2) or 0)


def log_dirs(work_dir: str) -> list:
    """The folders of a work dir in the order their runs started
    (:func:`log_dir_order`); the caller tells run folders from others by
    what they hold (``<name>/<name>.log``).

    Args:
        work_dir (str): The work dir.

    Returns:
        list[str]: Their paths, ``<work_dir>/<name>``.
    """
    names = [name for name in os.listdir(work_dir)
             if not name.startswith('.')
             and osp.isdir(osp.join(work_dir, name))]
    return [osp.join(work_dir, name) for name in sorted(names,
                                                        key=log_dir_order)]


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
