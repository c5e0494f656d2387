"""The work dir, output files and folders, and the checkpoint to resume."""
import contextlib
import os
import os.path as osp
import re
import tempfile
import zipfile

from mmengine.logging import print_log

from mmseg_dsnet.utils.errors import UserError
from mmseg_dsnet.utils.fileio import refuse_existing, refuse_unexpanded_home
from mmseg_dsnet.utils.messages import first_few


class WorkDirError(OSError):
    """The work dir (or another output location) cannot be created or
    written to."""


def check_work_dir(work_dir):
    """Create ``work_dir`` and prove a file can be written there.

    Raises:
        WorkDirError: With the reason, e.g. a path component that is a
            file, a read-only or full file system, missing permissions.
    """
    refuse_unexpanded_home(work_dir, 'the work dir')
    try:
        os.makedirs(work_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=work_dir) as probe:
            probe.write(b'ok')
    except OSError as err:
        reason = err.strerror or str(err)
        blocker = _file_in_path(work_dir)
        if blocker:
            reason = f'{blocker} is a file, not a folder'
        raise WorkDirError(
            f'Cannot write to the work dir {work_dir}: {reason}. Nothing was '
            'started or changed; choose a writable folder with --work-dir.'
        ) from None


class WorkDirBusyError(UserError):
    """Another training writes the work dir now."""


@contextlib.contextmanager
def training_work_dir_lock(work_dir):
    """Hold ``work_dir`` for one training while the block runs: a second
    training into it meanwhile is refused.

    Two trainings in one work dir would each find no checkpoint there,
    then save ``epoch_N.pth``, ``best_*.pth`` and ``last_checkpoint`` over
    one another and each dump its config: files of two runs mixed under
    one name, both ending with exit 0. The lock is an
    ``flock`` on the folder itself (no lock file; released when the
    process ends, also when it is killed); on a file system without
    ``flock`` nothing is held.

    Args:
        work_dir (str): The work dir (it exists).

    Raises:
        WorkDirBusyError: Another process holds it.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        fcntl = None
    try:
        handle = os.open(work_dir, os.O_RDONLY) if fcntl else None
    except OSError:
        handle = None  # a folder that cannot be opened: nothing held
    try:
        if handle is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise WorkDirBusyError(
                    f'The work dir {work_dir} is being written by another '
                    'training now: two trainings at once would save their '
                    'checkpoints over one another. Nothing was started; '
                    'wait for it to end, or choose another --work-dir.'
                ) from None
            except OSError:
                pass  # a file system without flock (some network mounts)
        yield
    finally:
        if handle is not None:
            os.close(handle)  # releases the lock


def check_config_not_dumped_over(config, work_dir):
    """Refuse a work dir where the runner's config dump
    (``<work_dir>/<config file name>``) is the config file given, when
    that file is a source config (it has ``_base_``): the dump would
    replace its text with the flattened config, ``--cfg-options`` (and
    test.py's checkpoint) baked in and its inheritance gone, exit 0. A
    run's own dump given back (``work_dirs/x/x.py``) is a dump already and
    passes.

    Args:
        config (str): The config file given.
        work_dir (str): The run's work dir.

    Raises:
        WorkDirError: Naming the config file and the work dir.
    """
    dump = osp.join(work_dir, osp.basename(config))
    if not (osp.isfile(dump) and osp.samefile(dump, config)):
        return
    try:
        with open(config, encoding='utf-8') as f:
            source = re.search(r'^_base_\s*=', f.read(), re.M) is not None
    except (OSError, UnicodeDecodeError):
        source = True
    if source:
        raise WorkDirError(
            f'--work-dir {work_dir} holds the config file {config}: the '
            f'runner writes its config dump to {dump}, which would replace '
            "the file's text (its _base_ inheritance flattened, the "
            'options of this run baked in); nothing was started; give '
            'another --work-dir')


def check_work_dir_outside(work_dir, folder, what):
    """Refuse a work dir that is ``folder`` or lies inside it (links
    resolved): the run's checkpoints, logs and figures would be written
    among the files there, e.g. into the data set it trains on.

    Args:
        work_dir (str): The run's work dir (it need not exist yet).
        folder (str): The folder it must stay out of.
        what (str): What ``folder`` is, for the message.

    Raises:
        WorkDirError: Naming both.
    """
    work, root = osp.realpath(work_dir), osp.realpath(folder)
    if osp.commonpath([work, root]) == root:
        raise WorkDirError(
            f'--work-dir {work_dir} is {what} {folder}' +
            ('' if work == root else ' or a folder inside it') +
            ": the run's checkpoints, logs and figures would be mixed into "
            'it. Nothing was started; choose another --work-dir.')


# The checkpoints mmengine saves every epoch (or iterations) of a run.
_PERIODIC_CHECKPOINT = re.compile(r'(epoch|iter)_(\d+)\.pth')
# What a training writes into its work dir and a later step picks up.
_RUN_CHECKPOINT = re.compile(
    rf'{_PERIODIC_CHECKPOINT.pattern}|best_.+\.pth|last_checkpoint')


def check_no_earlier_run(work_dir, resumable=True):
    """Refuse to train afresh in a work dir that holds another run's
    checkpoints.

    A new run overwrites only the checkpoints it writes itself: a shorter
    run leaves the earlier run's later ``epoch_*.pth`` and its
    ``best_*.pth`` beside its own, where testing or ranking by name would
    pick them up as the new run's.

    Args:
        work_dir (str): The run's work dir.
        resumable (bool): Whether the tool can continue the earlier run
            (``--resume``); the message offers it only then.
            Default: True.

    Raises:
        WorkDirError: Naming the files found, when there are any.
    """
    if not osp.isdir(work_dir):
        return
    found = sorted(name for name in os.listdir(work_dir)
                   if _RUN_CHECKPOINT.fullmatch(name))
    if found:
        shown = first_few(found, 4)
        raise WorkDirError(
            f'The work dir {work_dir} already holds the checkpoints of a '
            f'run ({shown}); a new run would overwrite some of them and '
            'leave the others beside its own. Nothing was started; ' +
            ('continue that run with --resume, choose another --work-dir, '
             'or remove them.' if resumable else
             'choose another --work-dir, or remove them.'))


def _unwritable_folder(folder):
    """Why files cannot be made in ``folder`` (which may not exist yet: it
    is made before writing, so the nearest existing folder at or above it
    must be writable), or None."""
    existing = folder
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    if not osp.isdir(existing):
        return f'{existing} is a file, not a folder'
    if not os.access(existing, os.W_OK | os.X_OK):
        return f'{existing} is not writable'
    return None


def check_output_file(path, option='--metrics-out'):
    """Check that ``path`` can be written later, so that a long evaluation
    does not end in a failed write. Nothing is created.

    Args:
        path (str): The output file.
        option (str): The command-line option that named it, for the
            message.

    Raises:
        WorkDirError: When ``path`` is a folder, or its parent is not a
            writable folder.
    """
    parent = osp.dirname(osp.abspath(path))
    reason = None
    if osp.isdir(path):
        reason = 'it is a folder, not a file'
    elif osp.exists(path) and not os.access(path, os.W_OK):
        reason = 'the file is not writable'
    else:
        reason = _unwritable_folder(parent)
    if reason:
        raise WorkDirError(
            f'Cannot write {option} {path}: {reason}. Nothing was started; '
            f'choose a writable file for {option}.')


def check_new_output_file(path, option, overwrite=False):
    """Before long work, refuse an output file that must not be replaced
    (:func:`~mmseg_dsnet.utils.fileio.refuse_existing`) or cannot be
    written (:func:`check_output_file`): a report written at the end would
    otherwise fail, or replace a file, only after all the work.

    Args:
        path (str): The output file.
        option (str): The command-line option that named it.
        overwrite (bool): Whether an existing file may be replaced.
            Default: False.
    """
    refuse_existing(path, overwrite)
    check_output_file(path, option)


def check_empty_output_dir(path, option='--out'):
    """Check that ``path`` is a new or empty folder, so that the files a run
    writes there are its own and none is replaced. Nothing is created.

    Args:
        path (str): The output folder.
        option (str): The command-line option that named it, for the
            message.

    Raises:
        WorkDirError: When ``path`` is a file or a folder with files.
    """
    refuse_unexpanded_home(path, option)
    reason = None
    if osp.exists(path) and not osp.isdir(path):
        reason = 'it is a file, not a folder'
    elif osp.isdir(path) and os.listdir(path):
        reason = 'the folder already holds files'
    if reason:
        raise WorkDirError(
            f'Cannot write {option} {path}: {reason}. Nothing was started; '
            f'choose a new or empty folder for {option}.')
    # The folder itself is named: a file in it named a path never given.
    reason = _unwritable_folder(osp.abspath(path))
    if reason:
        raise WorkDirError(
            f'Cannot write {option} {path}: {reason}. Nothing was started; '
            f'choose a writable folder for {option}.')


def _file_in_path(path):
    path = osp.abspath(path)
    while path and path != osp.dirname(path):
        if osp.isfile(path):
            return path
        path = osp.dirname(path)
    return None


def _is_complete(path):
    """A torch checkpoint is a zip archive; a truncated one has no central
    directory."""
    try:
        return osp.isfile(path) and zipfile.is_zipfile(path)
    except OSError:
        return False


def pick_resume_checkpoint(work_dir):
    """The checkpoint ``--resume`` should continue from.

    ``last_checkpoint`` names the newest checkpoint; if it is missing,
    empty, or names a file that is gone or incomplete (the run was killed
    while writing it), the newest complete ``epoch_*.pth`` / ``iter_*.pth``
    in ``work_dir`` is used instead, with a warning. So it is when it names
    a file in another folder (a copied or moved work dir still names the
    original's checkpoints, which may have moved on since).

    Returns:
        str | None: The checkpoint path, or None when there is none and
        no ``last_checkpoint`` (the run then starts from scratch).

    Raises:
        UserError: ``last_checkpoint`` names a checkpoint in another folder,
            or one that is missing or incomplete, and ``work_dir`` holds no
            complete checkpoint of its own.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = None
    elsewhere = False
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip() or None
        elsewhere = bool(named) and osp.dirname(osp.realpath(named)) != \
            osp.realpath(work_dir)
        if named and not elsewhere and _is_complete(named):
            return named
    candidates = []
    if osp.isdir(work_dir):
        for name in os.listdir(work_dir):
            match = _PERIODIC_CHECKPOINT.fullmatch(name)
            if match:
                candidates.append((int(match.group(2)), name))
    for _, name in sorted(candidates, reverse=True):
        path = osp.join(work_dir, name)
        if _is_complete(path):
            if elsewhere:
                print_log(
                    f'last_checkpoint names {named!r}, outside the work dir '
                    f'{work_dir} (a copied or moved work dir); resuming '
                    f'from {path}, its own newest checkpoint, instead.',
                    logger='current', level=30)
            elif named or osp.isfile(pointer):
                print_log(
                    f'last_checkpoint names {named!r}, which is missing or '
                    f'incomplete; resuming from {path} instead.',
                    logger='current', level=30)
            return path
    if elsewhere:
        raise UserError(
            f'--resume: {pointer} names {named}, a checkpoint outside the '
            f'work dir, and {work_dir} holds no checkpoint of its own; copy '
            'the checkpoint into it (or give it with --cfg-options '
            'load_from=...) to continue that run')
    if osp.isfile(pointer):
        # mmengine's runner would read the pointer itself and fail on it
        # with a traceback once the work dir and its log were made.
        raise UserError(
            f'--resume: {pointer} names '
            f'{repr(named) if named else "no file"}, which is missing or '
            f'incomplete, and {work_dir} holds no complete checkpoint to '
            'resume from; give one with --cfg-options load_from=..., or '
            f'remove {pointer} to train anew')
    return None
