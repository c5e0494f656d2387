"""One log folder per run: ``<work_dir>/<timestamp>`` claimed, not shared.

mmengine's Runner names a run's log folder after the second it starts in
and creates it if missing (``mkdir_or_exist``), so two runs into one work
dir started in the same second (two ``tools/test.py``, a test beside a
training) would share it: the second log opened with mode ``'w'`` over
the first, both runs' lines mixed in it, one ``<timestamp>.json`` of
metrics replacing the other's. Here each run claims a folder no other
run holds (:func:`claim_log_dir`, used by :class:`SeparateLogDirRunner`,
which :func:`build_runner` builds), and a run refused before its
training starts leaves no log folder or config dump behind
(:func:`log_dirs_removed_on_refusal`).
"""
import contextlib
import os
import os.path as osp
import re
import shutil

from mmengine.dist import broadcast_object_list
from mmengine.runner import Runner

from ..utils.code_revision import LOG_PREFIX, running_code_revision
from .config_text import formatting_once


class _RefusalBlock:
    """What one open :func:`log_dirs_removed_on_refusal` block undoes if
    its run is refused: the log folders :func:`claim_log_dir` made in it,
    and the files given to :meth:`put_back_on_refusal`, unless its run has
    started training (:func:`keep_run_outputs`)."""

    def __init__(self):
        self.folders = []
        self.files = {}
        self.kept = False

    def put_back_on_refusal(self, path):
        """Put ``path`` back as it is now (remove it, if there is none)
        should the block be refused: a file the run may write (the
        runner's config dump). Called where no other run writes it (its
        work dir's lock held).

        Args:
            path (str): The file.
        """
        path = str(path)
        data = None
        if osp.isfile(path):
            with open(path, 'rb') as f:
                data = f.read()
        self.files[path] = data

    def undo(self, work_dir, made):
        """Remove the block's log folders and ``work_dir`` (when ``made``
        and left empty), and put its files back."""
        # Claimed by os.mkdir in this block: this run's folder alone.
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)
        for path, data in self.files.items():
            try:
                if data is not None:
                    _put_back(path, data)
                elif osp.isfile(path):
                    os.remove(path)
            except OSError:
                pass  # the refusal is the error to report
        if made:
            try:
                os.rmdir(work_dir)
            except OSError:
                pass  # not empty: another run writes there too


def _put_back(path, data):
    """Write ``data`` to ``path`` unless it holds it already."""
    from mmseg_dsnet.utils.fileio import atomic_write
    if osp.isfile(path):
        with open(path, 'rb') as f:
            if f.read() == data:
                return
    atomic_write(data, path)


# The open log_dirs_removed_on_refusal blocks; none is kept once its block
# ends, so a long-lived process holds no list of its runs.
_CLAIMED = []


def claim_log_dir(work_dir: str, timestamp: str, taken=None) -> str:
    """Create the log folder ``<work_dir>/<timestamp>``, or, when another
    run holds it, ``<timestamp>_1``, ``<timestamp>_2`` ... (after it, before
    the next second's, in :func:`log_dir_order`), and return its name.
    ``os.mkdir`` fails on an existing folder, so two runs never claim one.

    Args:
        work_dir (str): The run's work dir (made if missing).
        timestamp (str): The run's start, ``%Y%m%d_%H%M%S``.
        taken (callable, optional): ``taken(name)`` is True for a name that
            may not be used though its folder is free here.

    Returns:
        str: The name of the folder made.
    """
    os.makedirs(work_dir, exist_ok=True)
    stamp, suffix = timestamp, 0
    while True:
        try:
            if taken is None or not taken(stamp):
                os.mkdir(osp.join(work_dir, stamp))
                for block in _CLAIMED:
                    block.folders.append(osp.join(work_dir, stamp))
                return stamp
        except FileExistsError:
            pass
        suffix += 1
        stamp = f'{timestamp}_{suffix}'


def keep_run_outputs():
    """Keep what the open :func:`log_dirs_removed_on_refusal` blocks would
    remove on a refusal: their run has started training, and its log,
    config dump and checkpoints belong together from here on (a refusal
    mid-training, a NaN loss, keeps its log for the diagnosis)."""
    for block in _CLAIMED:
        block.kept = True


@contextlib.contextmanager
def log_dirs_removed_on_refusal(work_dir: str):
    """Remove the log folders claimed in the block (:func:`claim_log_dir`,
    a runner's ``<work_dir>/<timestamp>``), put back the files given to
    the block's ``put_back_on_refusal`` and remove ``work_dir`` itself
    when the block made it and it is left empty, when the block is
    refused (an error
    :func:`~mmseg_dsnet.engine.cli_errors.describe_user_error` reports as
    one ``ERROR:`` line) before its run starts training
    (:func:`keep_run_outputs`).

    A ``tools/test.py`` refused once its runner is built (``--show-dir``
    that would paint nothing, a checkpoint of another model found on
    loading, a check after the evaluation) would otherwise leave
    ``<timestamp>/<timestamp>.log``, and after the evaluation
    ``<timestamp>.json``, which ``leaderboard.py`` collects as a test run;
    a ``tools/train.py`` refused by its runner (a misspelt hook or
    ``randomness`` key) a log folder and a config dump that look like a
    run. What was there before the block stays; a crash or a stop keeps
    its log, for the diagnosis.

    Args:
        work_dir (str): The run's work dir.

    Yields:
        _RefusalBlock: The block, whose ``put_back_on_refusal(path)``
        names a file the run may write.
    """
    from .cli_errors import describe_user_error
    work_dir = str(work_dir)
    made = not osp.isdir(work_dir)
    block = _RefusalBlock()
    _CLAIMED.append(block)
    try:
        yield block
    except Exception as err:
        if describe_user_error(err) is not None and not block.kept:
            block.undo(work_dir, made)
        raise
    finally:
        # By identity: list.remove would take another block's equal one.
        del _CLAIMED[next(index for index, other in enumerate(_CLAIMED)
                          if other is block)]


def run_scoped_manager_classes() -> list:
    """The classes of mmengine's global instances that belong to one run:
    :class:`~mmengine.logging.MMLogger`, :class:`~mmengine.logging.MessageHub`,
    :class:`~mmengine.visualization.Visualizer` and their subclasses (mmseg's
    visualizer), each holding its own ``_instance_dict``. A Runner names
    them after its run and takes over the ones of that name the process
    holds.

    Returns:
        list[type]: The :class:`~mmengine.utils.ManagerMixin` subclasses
        imported so far that are one of these.
    """
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.utils import ManagerMixin
    from mmengine.visualization import Visualizer
    found, todo = [], [ManagerMixin]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if issubclass(cls, (MMLogger, MessageHub, Visualizer)):
            found.append(cls)
    return found


def _run_instance_names() -> set:
    """The names of the loggers, message hubs and visualizers this process
    holds: a Runner takes over the one named as its run (its experiment
    name) if it exists."""
    return {name for cls in run_scoped_manager_classes()
            for name in cls._instance_dict}


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
    distributed run take its name.

    The run's name (``<config name>_<folder name>``) and its visualizer's
    are its own in the process too: mmengine hands a Runner the logger,
    message hub and visualizer of a name the process holds, so a second
    run in one process (a final test after its training, a test's runs)
    would write its ``vis_data`` into the first run's folder.

    Its config formats its text once (:mod:`.config_text`)."""

    def __init__(self, *args, experiment_name=None, visualizer=None,
                 **kwargs):
        self._name_given = experiment_name
        # mmseg's configs name the visualizer ('visualizer'): a later run in
        # the process would take the first run's and write its vis_data
        # there.
        held = _run_instance_names()
        if isinstance(visualizer, dict) and visualizer.get('name') in held:
            base, number = visualizer['name'], 1
            while f'{base}_{number}' in held:
                number += 1
            visualizer = dict(visualizer, name=f'{base}_{number}')
        if 'cfg' in kwargs:
            # Its text is read for the log, the dump, the visualizer and
            # each checkpoint: formatted once (config_text).
            kwargs['cfg'] = formatting_once(kwargs['cfg'])
        super().__init__(*args, experiment_name=experiment_name,
                         visualizer=visualizer, **kwargs)

    def _log_env(self, env_cfg: dict) -> None:
        super()._log_env(env_cfg)
        # collect reads it into the run's record (code_revision).
        self.logger.info(LOG_PREFIX + running_code_revision())

    def _run_name(self, stamp: str) -> str:
        """The experiment name mmengine gives a run of folder ``stamp``."""
        if self._name_given is not None:
            return f'{self._name_given}_{stamp}'
        if self.cfg.filename is not None:
            return osp.splitext(osp.basename(self.cfg.filename))[0] + \
                f'_{stamp}'
        return stamp

    def call_hook(self, fn_name: str, **kwargs) -> None:
        # The training loop starts: its outputs stay, also on a refusal.
        if fn_name == 'before_train':
            keep_run_outputs()
        super().call_hook(fn_name, **kwargs)

    def setup_env(self, env_cfg: dict) -> None:
        super().setup_env(env_cfg)
        held = _run_instance_names()
        stamp = [claim_log_dir(self._work_dir, self._timestamp,
                               taken=lambda s: self._run_name(s) in held)
                 if self._rank == 0 else None]
        if self._world_size > 1:
            broadcast_object_list(stamp)
        self._timestamp = stamp[0]


def build_runner(cfg):
    """Build the config's runner (``runner_type``, mmengine's
    :class:`~mmengine.runner.Runner` when it names none) with a log folder
    of its own, as :class:`SeparateLogDirRunner`'s (:func:`runner_class`).

    Args:
        cfg (Config): The run's config.

    Returns:
        Runner: The runner.

    Raises:
        UserError: See :func:`runner_class`.
    """
    return runner_class(cfg).from_cfg(cfg)


def runner_class(cfg):
    """The class :func:`build_runner` builds for ``cfg``; the tools call it
    among their checks, before the work dir is made.

    A runner class of the config's own (a ``Runner`` subclass, e.g. from a
    ``custom_imports`` module) runs as a subclass of both classes
    (:class:`SeparateLogDirRunner`'s methods, then its own): built as it
    is, two of its runs started in one second into one work dir would
    share their log folder (one log holding both, one metrics ``.json``
    replacing the other).

    Args:
        cfg (Config): The run's config.

    Returns:
        type: A subclass of :class:`SeparateLogDirRunner`.

    Raises:
        UserError: ``runner_type`` names no registered class, or one that
            is not a ``Runner`` (mmengine's ``FlexibleRunner`` keeps its
            log folder in its strategy, out of reach here).
    """
    from mmengine.registry import RUNNERS

    from mmseg_dsnet.utils.errors import UserError
    runner_type = cfg.get('runner_type')
    if runner_type is None:
        return SeparateLogDirRunner
    # Looked up as mmengine's build_runner_from_cfg does, in the config's
    # scope too (a runner registered in mmseg's registry).
    scope = cfg.get('_scope_', cfg.get('default_scope'))
    with RUNNERS.switch_scope_and_registry(scope) as registry:
        found = (registry.get(runner_type)
                 if isinstance(runner_type, str) else runner_type)
    if found is None:
        raise UserError(
            f'config {cfg.filename}: runner_type {runner_type!r} is '
            'not a registered runner (is the module that registers it '
            'in the config\'s custom_imports?)')
    if not (isinstance(found, type) and issubclass(found, Runner)):
        raise UserError(
            f'config {cfg.filename}: runner_type {runner_type!r} is '
            "not a subclass of mmengine's Runner: its log folder could "
            'not be kept apart from that of another run started in the '
            'same second into the work dir; use a Runner subclass or '
            'leave runner_type out')
    return _separate_log_dir_class(found)


# The classes _separate_log_dir_class made, by the runner class they extend.
_SEPARATE_CLASSES = {}


def _separate_log_dir_class(runner_cls):
    """``runner_cls`` with :class:`SeparateLogDirRunner`'s log folder: the
    class itself when it has it, else one subclass of both, made once per
    class (``isinstance`` holds across runs).

    The subclass is ``SeparateLogDir<name>`` of this module, where pickle
    finds it (:func:`__getattr__`): under ``runner_cls``'s own name and
    module it would read as that class though it is another, and pickle
    would refuse it (not the object that name holds)."""
    if issubclass(runner_cls, SeparateLogDirRunner):
        return runner_cls
    if runner_cls is Runner:
        return SeparateLogDirRunner
    if runner_cls not in _SEPARATE_CLASSES:
        # Two runner classes of one name (from two modules) get two names.
        taken = {cls.__name__ for cls in _SEPARATE_CLASSES.values()}
        name = base = f'SeparateLogDir{runner_cls.__name__}'
        number = 0
        while name in taken:
            number += 1
            name = f'{base}_{number}'
        _SEPARATE_CLASSES[runner_cls] = type(
            name, (SeparateLogDirRunner, runner_cls),
            dict(__module__=__name__, __qualname__=name,
                 __doc__=f'{runner_cls.__module__}.'
                 f'{runner_cls.__qualname__} with a log folder of its own '
                 '(:class:`SeparateLogDirRunner`).'))
    return _SEPARATE_CLASSES[runner_cls]


def __getattr__(name):
    """The classes :func:`_separate_log_dir_class` made, by name (pickle
    looks a class up in its module)."""
    for cls in _SEPARATE_CLASSES.values():
        if cls.__name__ == name:
            return cls
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
