"""Which code a run was trained with: the git commit of the checkout that
holds this package, so that a record can be traced to the code that made
it (a later change that leaves the maths alone can still move a run's
figures, as it changes the order of floating-point sums)."""
import functools
import os.path as osp
import subprocess

#: The folder of this package.
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: Start of the line a training log names its code with
#: (:meth:`~mmseg_dsnet.engine.log_dir.SeparateLogDirRunner._log_env`);
#: ``leaderboard.py collect`` reads it into the record's ``code_revision``.
LOG_PREFIX = 'mmseg_dsnet code: '


def _git(folder: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(['git', '-C', folder, *args],
                          capture_output=True,
                          text=True,
                          timeout=30)


def code_revision(package_dir: str = PACKAGE_DIR) -> str:
    """The commit of the git checkout that tracks ``package_dir``.

    Args:
        package_dir (str): The package's folder. Default: this package's.

    Returns:
        str: The full commit hash; with ``' with uncommitted changes'``
        when a tracked file of the checkout differs from it; ``'unknown
        (...)'`` when the package is not a tracked folder of a git checkout
        (e.g. installed from a wheel) or git cannot be run.
    """
    try:
        tracked = _git(package_dir, 'ls-files', '--error-unmatch',
                       '__init__.py')
        if tracked.returncode:
            return ('unknown (no git checkout tracks this package, or git '
                    'cannot read it)')
        head = _git(package_dir, 'rev-parse', 'HEAD')
        changed = _git(package_dir, 'status', '--porcelain',
                       '--untracked-files=no', ':/')
    except (OSError, subprocess.SubprocessError) as err:
        return f'unknown (git could not be run: {type(err).__name__})'
    if head.returncode or changed.returncode:
        return 'unknown (git could not read the checkout)'
    commit = head.stdout.strip()
    return f'{commit} with uncommitted changes' if changed.stdout.strip() \
        else commit


@functools.lru_cache(maxsize=None)
def running_code_revision() -> str:
    """:func:`code_revision` of this package, read once per process (the
    code a process runs is the code it imported)."""
    return code_revision()
