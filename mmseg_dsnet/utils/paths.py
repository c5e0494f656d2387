"""Where the checkout is: the package is installed from it in place
(``pip install -e .``), and the tools' defaults (``data/``, ``results/``,
``configs/``, ``README.md``) are folders of it."""
import os.path as osp
import subprocess
from typing import Optional

#: The repository root (the folder holding ``mmseg_dsnet/``).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def checkout_of_tool(script: str) -> Optional[str]:
    """The checkout a tool script belongs to: the folder that holds both
    the ``tools/`` folder the script is in (``<root>/tools/train.py``,
    ``<root>/tools/analysis_tools/get_flops.py``) and an ``mmseg_dsnet``
    package.

    Args:
        script (str): The script's path.

    Returns:
        str | None: The checkout's real path; None for a script that is
        not a tool of a checkout.
    """
    folder = osp.dirname(osp.realpath(script))
    while osp.basename(folder) != 'tools':
        parent = osp.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    root = osp.dirname(folder)
    return root if osp.isfile(osp.join(root, 'mmseg_dsnet',
                                       '__init__.py')) else None


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


def folder_key(path: str, base: str = REPO_ROOT) -> str:
    """A folder as run records are compared: a relative path taken from
    ``base`` (the repository root, as the tools resolve data roots),
    normalised, and with symbolic links resolved where it exists here, so
    that runs made through a link to the data (a second checkout whose
    ``data`` links to the first's) are runs on the same images. A path
    that does not exist here is compared as written, normalised.

    Args:
        path (str): The folder as a record gives it.
        base (str): What a relative ``path`` is relative to.
            Default: :data:`REPO_ROOT`.
    """
    joined = osp.normpath(osp.join(base, path))
    return osp.realpath(joined) if osp.exists(joined) else joined


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
