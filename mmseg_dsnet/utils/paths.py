"""Where the checkout is: the package is installed from it in place
(``pip install -e .``), and the tools' defaults (``data/``, ``results/``,
``configs/``, ``README.md``) are folders of it."""
import os.path as osp
import subprocess
from typing import Optional

#: The repository root (the folder holding ``mmseg_dsnet/``).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def same_folder(first: str, second: str) -> bool:
    """Whether ``first`` and ``second`` are one existing folder (another
    spelling, a symbolic link): how the analysis tools tell that a data root
    is the one a run trained on.

    Args:
        first (str): A folder path (may be empty or missing).
        second (str): Another folder path (may be empty or missing).
    """
    return bool(first) and bool(second) and osp.isdir(first) and \
        osp.isdir(second) and osp.samefile(first, second)


def git_ignores(path: str) -> Optional[bool]:
    """Whether git ignores ``path`` in the checkout (``.gitignore``): a
    file there is never committed, so other copies of the repository lack
    it.

    Args:
        path (str): A path in the checkout (it need not exist).

    Returns:
        bool | None: None where that is not known (no git, or the package
        is not in a git checkout).
    """
    try:
        done = subprocess.run(
            ['git', '-C', REPO_ROOT, 'check-ignore', '-q', '--',
             osp.abspath(path)], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {0: True, 1: False}.get(done.returncode)
