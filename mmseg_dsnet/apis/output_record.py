"""Which model wrote the masks in an inference output folder.

``tools/infer.py`` skips images whose outputs already exist, so that a run
can be continued. Without a record of the model behind those outputs, a
second run with another checkpoint, threshold or ONNX file would fill the
same folder with its own masks beside the first model's, and nothing in
the folder would tell them apart. Every output folder holds ``model.json``
(:data:`RECORD_NAME`) naming the model that wrote all of its masks and
overlays; :func:`claim_output_folder` refuses a run that would mix two.

Outputs are named by their input's file stem (``x.png`` for ``a/x.jpg``),
so two inputs named ``x.jpg`` in two runs would meet at one name: the
second run skipped ``b/x.jpg`` as done because ``x.png`` (``a/x.jpg``'s
mask) existed, or replaced it. ``sources.json`` (:data:`SOURCES_NAME`)
records the input (real absolute path) behind each output name written, so
that a name belongs to one input across runs (:func:`read_sources`,
:func:`record_sources`); outputs it does not list (a folder written before
it existed) are of unknown inputs (:func:`unrecorded_names`). A run
appends the names of each batch to a journal (:data:`JOURNAL_NAME`) before
their outputs are written (:func:`journal_sources`) and folds it into
``sources.json`` when it ends, so the outputs of a run that was killed
(SIGKILL, a crash) are recorded too. ``sources.sha256.json``
(:data:`DIGESTS_NAME`) records the SHA-256 of each input file as it was
when its outputs were made (:func:`read_source_digests`): an input whose
file changed since (a new photo under an old name) is not skipped as done.
"""
import contextlib
import json
import os
import os.path as osp
import threading
from typing import Dict, List, Optional, Sequence, Tuple

from ..models.utils.lesion_logit import threshold_text
from ..utils.errors import UserError
from ..utils.fileio import atomic_write, json_text, sha256_of
from ..utils.messages import counted, first_few

RECORD_NAME = 'model.json'
SOURCES_NAME = 'sources.json'
# The SHA-256 of each input file when its outputs were made: a file
# changed since (a new photo under an old name) no longer matches them.
DIGESTS_NAME = 'sources.sha256.json'
# Names appended before their outputs are written, one JSON line each:
# rewriting sources.json for every batch would cost O(images) each time.
JOURNAL_NAME = '.sources.journal'
OUTPUT_SUBDIRS = ('masks', 'overlays')
# Output folders this process holds locked (real path -> [holding thread,
# depth]): run_inference inside infer.py's hold (in the same thread) does
# not lock out its own caller, while another thread is refused as another
# process is (flock and the lock file are per process).
_HELD_FOLDERS: Dict[str, list] = {}
_HELD_GUARD = threading.Lock()


class OutputFolderBusyError(UserError):
    """Another run is writing the output folder now."""


@contextlib.contextmanager
def output_folder_lock(out_dir: str):
    """Hold ``out_dir`` for one run: a second run (another ``infer.py``
    or ``run_inference``) into it meanwhile is refused.

    Two runs at once both named their ``x.jpg`` ``x`` (the records are
    read when a run starts): the later mask replaced the earlier, or the
    second run skipped its photo as done because the first one's mask was
    there, exit 0 for both, and ``sources.json`` named one photo for it.
    The lock is an ``flock`` on the folder itself (no lock file; released
    when the process ends, also when it is killed). Where that is missing
    (Windows, a file system without ``flock``) it is the file
    :data:`LOCK_NAME` in the folder, made only if absent and naming its
    holder (:func:`_take_lock_file`).

    Args:
        out_dir (str): The output folder (it exists).

    Raises:
        OutputFolderBusyError: Another process, or another thread of this
            one, holds it.
    """
    key = osp.realpath(out_dir)
    me = threading.get_ident()
    # Checked and taken under one guard: two threads that found the folder
    # free would both go ahead where only the lock file guards it (it
    # names the process, not the thread).
    with _HELD_GUARD:
        held = _HELD_FOLDERS.get(key)
        if held is not None and held[0] != me:
            raise OutputFolderBusyError(_busy_message(out_dir))
        # A folder not made yet cannot be locked (run_inference and
        # prepare_output_dir make it first).
        again = held is not None or not osp.isdir(key)
        handle, lock_file = (None, None) if again else \
            _lock_folder(out_dir, key)
        _HELD_FOLDERS[key] = [me, (held[1] if held else 0) + 1]
    try:
        yield
    finally:
        with _HELD_GUARD:
            _HELD_FOLDERS[key][1] -= 1
            if not _HELD_FOLDERS[key][1]:
                del _HELD_FOLDERS[key]
            if not again:
                if lock_file is not None:
                    drop_own_lock_file(key)
                if handle is not None:
                    os.close(handle)  # releases the lock


def _lock_folder(out_dir: str, key: str) -> Tuple[Optional[int],
                                                   Optional[str]]:
    """Take the lock of :func:`output_folder_lock` for this process.

    Returns:
        tuple: The folder's descriptor holding its ``flock`` (None where
        flock is missing) and the lock file made instead (or None).

    Raises:
        OutputFolderBusyError: Another process holds it.
    """
    try:
        import fcntl
    except ImportError:
        fcntl = None
    handle = None
    if fcntl is not None:
        try:
            handle = os.open(key, os.O_RDONLY)
        except OSError:
            pass  # a folder that cannot be opened: the lock file
    try:
        if handle is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return handle, None
            except BlockingIOError:
                raise OutputFolderBusyError(_busy_message(out_dir)) from None
            except OSError:
                pass  # a file system without flock (some network mounts)
        return handle, _take_lock_file(out_dir, key)
    except BaseException:
        if handle is not None:
            os.close(handle)
        raise


# The lock of an output folder where flock is missing (Windows): made
# only if absent, it names the process that holds the folder.
LOCK_NAME = '.infer.lock'


def _busy_message(out_dir: str, holder: str = '') -> str:
    """The line of a run refused because another one holds ``out_dir``."""
    return (f'{out_dir} is being written by another run now (infer.py or '
            f'run_inference{holder}): two runs at once would give two '
            'photos of one name one mask; wait for it to end, or give '
            'another --out-dir')


def _lock_holder(path: str) -> Optional[Dict]:
    """The ``pid`` and ``host`` a lock file names; None when it names none
    (being written, or not such a file)."""
    try:
        with open(path) as file:
            holder = json.load(file)
    except (OSError, ValueError):
        return None
    if (isinstance(holder, dict) and isinstance(holder.get('pid'), int)
            and holder['pid'] > 0 and isinstance(holder.get('host'), str)):
        return holder
    return None


def _take_lock_file(out_dir: str, key: str) -> Optional[str]:
    """Make ``key/LOCK_NAME`` naming this process, or refuse: its holder
    runs (or is of another machine, where it cannot be asked). The file
    of a process of this machine that has ended (killed: nothing removed
    it) is removed (by one run: :func:`_remove_stale_lock_file`) and
    taken.

    Args:
        out_dir (str): The output folder, as given (for the message).
        key (str): Its real path.

    Returns:
        str | None: The lock file; None where it cannot be made (a folder
        not writable: the run's own write fails with its line).

    Raises:
        OutputFolderBusyError: Another process holds it.
    """
    import socket
    import time

    from ..utils.fileio import pid_alive
    path = osp.join(key, LOCK_NAME)
    host = socket.gethostname()
    for _ in range(20):
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            holder = _lock_holder(path)
            if holder is None:
                time.sleep(0.05)  # its holder may be writing it now
                holder = _lock_holder(path)
            if holder is None and not osp.lexists(path):
                continue  # removed meanwhile (its run ended)
            if holder is None:
                raise OutputFolderBusyError(_busy_message(
                    out_dir, f'; its lock file {path} names no process: if '
                    'no run is writing there, remove it')) from None
            if holder['host'] == host and (holder['pid'] == os.getpid()
                                           or not pid_alive(holder['pid'])):
                # Left by a run that was killed.
                try:
                    if not _remove_stale_lock_file(path, holder):
                        time.sleep(0.05)  # another run is removing it
                except OSError:
                    return None  # not writable: the run's write fails
                continue
            # A run of another machine cannot be asked: if that machine
            # stopped, only the user can tell, and waiting never ends.
            ended = '' if holder['host'] == host else (
                f'; if that run has ended ({holder["host"]} stopped or '
                f'restarted), remove {path}')
            raise OutputFolderBusyError(_busy_message(
                out_dir, f'; process {holder["pid"]} on {holder["host"]} '
                f'holds its lock file {path}') + ended) from None
        except OSError:
            return None
        with os.fdopen(handle, 'w') as file:
            json.dump(dict(pid=os.getpid(), host=host), file)
        return path
    if osp.lexists(path + TAKEOVER_SUFFIX):
        raise OutputFolderBusyError(_busy_message(
            out_dir, f'; {path + TAKEOVER_SUFFIX} says a run is removing '
            'its lock file of a run that ended: if no run is writing there, '
            'remove it')) from None
    raise OutputFolderBusyError(_busy_message(
        out_dir, f'; its lock file {path} keeps being made')) from None


# Held (made only if absent) by the run that removes a stale lock file.
TAKEOVER_SUFFIX = '.takeover'

# The files an output folder holds beside its masks and overlays.
RECORD_FILES = (RECORD_NAME, SOURCES_NAME, DIGESTS_NAME, JOURNAL_NAME,
                LOCK_NAME, LOCK_NAME + TAKEOVER_SUFFIX)


def is_record_of(path: str, out_dir: str) -> bool:
    """Whether ``path`` is one of the records (:data:`RECORD_FILES`) of
    the output folder ``out_dir``.

    Args:
        path (str): A file found among the inputs.
        out_dir (str): The output folder of the run.

    Returns:
        bool: True for ``out_dir``'s ``model.json``, ``sources.json`` ...
    """
    return (osp.basename(path) in RECORD_FILES
            and osp.realpath(osp.dirname(path)) == osp.realpath(out_dir))


def _remove_stale_lock_file(path: str, holder: Dict) -> bool:
    """Remove the lock file ``path`` if it still names ``holder``, a run
    that has ended. Runs that found it stale at once remove it one at a
    time, each holding ``path + TAKEOVER_SUFFIX``, so that a later one
    cannot remove the lock file the first made meanwhile (both would run).

    Args:
        path (str): The lock file.
        holder (dict): The holder it named when found stale.

    Returns:
        bool: False when another run is removing it now.
    """
    guard = path + TAKEOVER_SUFFIX
    try:
        os.close(os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    try:
        if _lock_holder(path) == holder:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
    finally:
        os.remove(guard)
    return True


def drop_own_lock_file(folder: str) -> None:
    """Remove ``folder/LOCK_NAME`` if this process holds it (a run that
    ends; a folder of its own it removes), else leave it.

    Args:
        folder (str): The output folder.
    """
    import socket
    path = osp.join(folder, LOCK_NAME)
    holder = _lock_holder(path)
    if holder == dict(pid=os.getpid(), host=socket.gethostname()):
        try:
            os.remove(path)
        except OSError:
            pass  # removed already (or left: a later run finds it stale)


def describe_model(model: str,
                   checkpoint: Optional[str],
                   threshold: float,
                   flips: bool = False) -> Dict:
    """What decides the masks a run writes, as a record.

    The files are identified by their SHA-256, so a renamed or moved file
    is the same model and a retrained checkpoint under the old name is not.

    Args:
        model (str): The config (``.py``) or exported ``.onnx`` file.
        checkpoint (str, optional): The checkpoint of a config.
        threshold (float): The lesion probability threshold used.
        flips (bool): Whether flipped passes are averaged (``--tta``).

    Returns:
        dict: The record, with a one-line ``summary`` for messages.
    """
    record = {
        'model': osp.basename(model),
        'model_sha256': sha256_of(model),
        'checkpoint': osp.basename(checkpoint) if checkpoint else None,
        'checkpoint_sha256': sha256_of(checkpoint) if checkpoint else None,
        'threshold': float(threshold),
        'flips': bool(flips),
    }
    weights = record['checkpoint_sha256'] or record['model_sha256']
    record['summary'] = (
        ' + '.join(filter(None, [record['model'], record['checkpoint']])) +
        f' (sha256 {weights[:12]}), threshold {threshold_text(threshold)}' +
        (', with flips' if flips else ''))
    return record


def _same_model(first: Dict, second: Dict) -> bool:
    keys = ('model_sha256', 'checkpoint_sha256', 'threshold', 'flips')
    return all(first.get(key) == second.get(key) for key in keys)


def read_record(out_dir: str) -> Optional[Dict]:
    """The record of ``out_dir``, or None when there is none (or it cannot
    be read: then the folder's outputs are of an unknown model)."""
    path = osp.join(out_dir, RECORD_NAME)
    try:
        # Written as UTF-8 (atomic_write): not the locale's encoding.
        with open(path, encoding='utf-8') as file:
            record = json.load(file)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def existing_outputs(out_dir: str) -> List[str]:
    """The files in ``out_dir/masks`` and ``out_dir/overlays``."""
    found = []
    for sub in OUTPUT_SUBDIRS:
        folder = osp.join(out_dir, sub)
        if osp.isdir(folder):
            found.extend(
                osp.join(folder, name) for name in sorted(os.listdir(folder))
                # Hidden files are a killed writer's partial files.
                if not name.startswith('.')
                and osp.isfile(osp.join(folder, name)))
    return found


def not_an_output(path: str) -> Optional[str]:
    """Why ``path``, a file in an output folder with no record, cannot be
    an output of ``tools/infer.py`` (a single-channel 0/255 ``.png`` mask,
    a ``.jpg`` overlay), or None when it can be.

    Args:
        path (str): A file in ``OUT/masks`` or ``OUT/overlays``.
    """
    sub = osp.basename(osp.dirname(path))
    ext = osp.splitext(path)[1].lower()
    if sub == 'overlays':
        return None if ext == '.jpg' else 'not a .jpg overlay'
    if ext != '.png':
        return 'not a .png mask'
    import numpy as np

    from ..image_io import read_unchanged
    mask = read_unchanged(path)
    if mask is None:
        return 'not a readable image'
    if mask.ndim != 2 or mask.dtype != np.uint8:
        return f'a {mask.dtype} image of shape {mask.shape}, not a 0/255 mask'
    values = np.unique(mask)
    if not set(values.tolist()) <= {0, 255}:
        return f'values {first_few(values.tolist(), 4)}, not a 0/255 mask'
    return None


def claim_output_folder(out_dir: str,
                        record: Dict,
                        output_stems: Sequence[str],
                        overwrite: bool = False) -> List[str]:
    """Make ``out_dir`` the folder of one model's outputs, or refuse.

    When its record names the same model, nothing changes: existing
    outputs are skipped or replaced as usual. When the folder holds outputs
    of another model (or of one it has no record of), the run is refused
    unless ``overwrite``; with ``overwrite`` it is refused too if some of
    them belong to images this run does not process (they would stay
    beside the new masks), and otherwise they are removed before the new
    record is written, so that an interrupted run leaves only this model's
    outputs behind.

    Args:
        out_dir (str): The output folder.
        record (dict): This run's model, from :func:`describe_model`.
        output_stems (Sequence[str]): The output names (file stems) of the
            images this run processes.
        overwrite (bool): ``--overwrite`` was given.

    Returns:
        list[str]: The outputs of another model that were removed.

    Raises:
        UserError: The folder holds another model's outputs that this run
            cannot or may not replace, or, with no record, files that are
            no outputs of ``tools/infer.py`` (:func:`not_an_output`) or
            that its :data:`SOURCES_NAME` does not name (also with
            ``overwrite``); or :data:`RECORD_NAME` cannot be written.
    """
    previous = read_record(out_dir)
    removed = []
    if previous is None or not _same_model(previous, record):
        found = existing_outputs(out_dir)
        if found:
            whose = (f'of another model ({previous["summary"]})'
                     if previous and 'summary' in previous else
                     f'of a model it has no record of ({RECORD_NAME})')
            if previous is None:
                # No record: the files may be anything, e.g. the ground
                # truth of a data set given as --out-dir (its masks/ beside
                # images/), which --overwrite replaced with predictions.
                foreign = [(path, why) for path in found
                           for why in [not_an_output(path)] if why]
                if foreign:
                    path, why = foreign[0]
                    raise UserError(
                        f'{out_dir} has no {RECORD_NAME} and holds '
                        f'{counted(len(foreign), "file")} infer.py does not '
                        'write '
                        f'(e.g. {path}: {why}), such as the ground truth of '
                        'a data set; this run would write its outputs among '
                        'them and, with --overwrite, delete them: give '
                        'another --out-dir')
                # 0/255 masks named like the photos look like outputs, but
                # no run recorded writing them (sources.json): they may be
                # a user's own masks, which --overwrite must not remove.
                recorded = read_sources(out_dir)
                unrecorded = [
                    path for path in found
                    if osp.splitext(osp.basename(path))[0] not in recorded]
                if unrecorded:
                    raise UserError(
                        f'{out_dir} has no {RECORD_NAME}, so it is no '
                        f'output folder of infer.py, and holds '
                        f'{counted(len(unrecorded), "file")} no infer.py run '
                        'recorded '
                        f'writing there (e.g. {unrecorded[0]}), such as '
                        'masks of your own named like the photos; this run '
                        'would write its outputs among them and, with '
                        '--overwrite, replace them: give another --out-dir')
            if not overwrite:
                raise UserError(
                    f'{out_dir} holds {len(found)} outputs {whose}; this '
                    f'run uses {record["summary"]}: give another '
                    '--out-dir, or --overwrite to replace them')
            stems = set(output_stems)
            kept = [path for path in found
                    if osp.splitext(osp.basename(path))[0] not in stems]
            if kept:
                raise UserError(
                    f'{out_dir} holds outputs {whose} for images this run '
                    f'does not process ({counted(len(kept), "file")}, '
                    f'e.g. {kept[0]}); '
                    '--overwrite would leave them beside the new masks: '
                    'give another --out-dir')
            for path in found:
                os.remove(path)
            removed = found
        path = osp.join(out_dir, RECORD_NAME)
        try:
            atomic_write(
                json_text(record, indent=2, ensure_ascii=False) + '\n', path)
        except OSError as err:
            # A top level that is not writable while masks/ and overlays/
            # are (prepare_output_dir's probes) fails here.
            raise UserError(
                f'cannot write {path}: {err.strerror or err}; the run '
                'writes no outputs without the record of their model: make '
                f'{out_dir} writable, or give another --out-dir') from None
    return removed


def check_inputs_outside_outputs(out_dir: str,
                                 inputs: Sequence[str]) -> None:
    """Refuse inputs inside ``out_dir/masks`` or ``out_dir/overlays``.

    A folder given as input is read even when it is an output folder
    (only searches skip them), so ``infer.py photos/overlays --out-dir
    photos`` wrote its outputs among its inputs, and with ``--overwrite``
    removed them as outputs of a model it had no record of.

    Args:
        out_dir (str): The output folder.
        inputs (Sequence[str]): The input files of the run.

    Raises:
        UserError: Naming the first such inputs and the folder.
    """
    for sub in OUTPUT_SUBDIRS:
        folder = osp.join(out_dir, sub)
        real = osp.realpath(folder) + os.sep
        inside = [path for path in inputs
                  if osp.realpath(path).startswith(real)]
        if inside:
            named = (f'input {inside[0]} lies' if len(inside) == 1 else
                     f'{len(inside)} inputs ({first_few(inside, 3)}) lie')
            raise UserError(
                f'{named} in {folder}, where this run writes its {sub}: its '
                'outputs would be written among its inputs, and --overwrite '
                'would replace or remove them; give an --out-dir whose masks '
                'and overlays folders hold no input')


def earlier_outputs_among_inputs(named: Sequence[str],
                                  inputs: Sequence[str]
                                  ) -> Tuple[List[str], List[str]]:
    """Leave out inputs that are another run's masks or overlays.

    ``infer.py OUT1/overlays`` (or ``OUT1 --recursive``, or a photo folder
    holding an earlier ``--out-dir``) segmented an earlier run's overlays
    and masks as if they were photos, exit 0: the new masks were of
    drawings of the old ones. A file in ``masks/`` or ``overlays/`` of a
    folder with a :data:`RECORD_NAME` is such an output; the records
    beside it (:data:`RECORD_NAME`, :data:`SOURCES_NAME` ...) are left out
    too.

    Args:
        named (Sequence[str]): The inputs as given (files, folders).
        inputs (Sequence[str]): The input files found from them.

    Returns:
        tuple: The inputs to keep and what was left out: the output
        folders (met while searching a folder above them) and the
        records.

    Raises:
        UserError: When a named input is such a folder or lies in one.
    """
    keep, left_out = [], []
    named_real = [osp.realpath(path) for path in named]
    for path in inputs:
        real_path = osp.realpath(path)
        # A glob such as 'photos/**/*' over a run folder matched its
        # records too: each run listed them as failed inputs, exit 1.
        if osp.basename(real_path) in RECORD_FILES and osp.isfile(
                osp.join(osp.dirname(real_path), RECORD_NAME)):
            left_out.append(path)
            continue
        folder = osp.dirname(real_path)
        run_dir = osp.dirname(folder)
        if (osp.basename(folder) not in OUTPUT_SUBDIRS
                or not osp.isfile(osp.join(run_dir, RECORD_NAME))):
            keep.append(path)
            continue
        if any(real == folder or real.startswith(folder + os.sep)
               for real in named_real):
            raise UserError(
                f'input {path} lies in {osp.dirname(path)}, the '
                f'{osp.basename(folder)} of an earlier infer.py run '
                f'({osp.join(osp.dirname(osp.dirname(path)), RECORD_NAME)}'
                '): its masks and overlays are not photos; give the '
                'images that run was given')
        shown = osp.dirname(path)
        if shown not in left_out:
            left_out.append(shown)
    return keep, left_out


def release_output_folder(out_dir: str) -> None:
    """Remove the records of ``out_dir`` if the folder holds no outputs, so
    that a run that wrote nothing leaves nothing behind."""
    if existing_outputs(out_dir):
        return
    for name in (RECORD_NAME, SOURCES_NAME, DIGESTS_NAME, JOURNAL_NAME):
        path = osp.join(out_dir, name)
        if osp.isfile(path):
            try:
                os.remove(path)
            except OSError:
                pass  # the folder's own ERROR line says why


def read_sources(out_dir: str) -> Dict[str, str]:
    """The input behind each output name recorded in ``out_dir``: in
    ``sources.json`` and, for outputs that are there, in the journal of a
    run that did not end (:func:`journal_sources`).

    Args:
        out_dir (str): The output folder.

    Returns:
        dict[str, str]: Output name (file stem) -> the real absolute path of
        the input it was written for; empty when there is no record.

    Raises:
        UserError: The record exists but cannot be read: guessing would
            give its names to other inputs, and rewriting it would lose it.
    """
    return _with_journal(
        out_dir,
        _read_mapping(out_dir, SOURCES_NAME, 'the input behind each output',
                      'input files', 'of unknown inputs'), 'input')


def read_source_digests(out_dir: str) -> Dict[str, str]:
    """The SHA-256 of the input file each output name was made from, as
    it was then: in ``sources.sha256.json`` and, for outputs that are
    there, in the journal of a run that did not end.

    Args:
        out_dir (str): The output folder.

    Returns:
        dict[str, str]: Output name -> hex SHA-256; names written before
        this record existed are not in it.

    Raises:
        UserError: The record exists but cannot be read.
    """
    return _with_journal(
        out_dir,
        _read_mapping(out_dir, DIGESTS_NAME, 'the SHA-256 of the input '
                      'behind each output', 'SHA-256 digests',
                      'of inputs that may have changed'), 'sha256')


def _read_mapping(out_dir: str, name: str, what: str, values: str,
                  then: str) -> Dict[str, str]:
    """The ``{output name: str}`` record ``out_dir/name`` (empty when
    there is none).

    Raises:
        UserError: It exists but is no such mapping.
    """
    path = osp.join(out_dir, name)
    if not osp.exists(path):
        return {}
    try:
        # Written as UTF-8 (atomic_write): not the locale's encoding.
        with open(path, encoding='utf-8') as file:
            mapping = json.load(file)
    except (OSError, ValueError) as err:
        reason = f': {err}'
    else:
        if isinstance(mapping, dict) and all(
                isinstance(value, str) for value in mapping.values()):
            return mapping
        reason = f' (not a mapping of output names to {values})'
    raise UserError(
        f'cannot read {path}, the record of {what}{reason}; give another '
        f'--out-dir, or remove it (its outputs then count as {then})')


def _with_journal(out_dir: str, sources: Dict[str, str],
                  key: str = 'input') -> Dict[str, str]:
    """``sources`` and the journal's ``key`` of names whose outputs are
    there (a name journaled just before a kill may have none). A name the
    journal gives two inputs (or two versions of one) is left out: its
    outputs are then of an unknown input."""
    try:
        with open(osp.join(out_dir, JOURNAL_NAME)) as file:
            lines = file.readlines()
    except OSError:
        return sources
    present = {osp.splitext(osp.basename(path))[0]
               for path in existing_outputs(out_dir)}
    journaled, disputed = {}, set()
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the last line of a write cut short
        if not isinstance(entry, dict):
            continue
        name = entry.get('name')
        if not isinstance(name, str) or name not in present:
            continue
        # Two killed runs: a/x.jpg journaled as x, killed before its mask
        # was written; then b/x.jpg took the free name x, wrote x.png and
        # was killed too. Which one's outputs are there cannot be told (by
        # the first entry, a's rerun would skip b's mask as done).
        seen = {field: entry.get(field) for field in ('input', 'sha256')}
        if journaled.setdefault(name, seen) != seen:
            disputed.add(name)
    for name, seen in journaled.items():
        if name not in disputed and isinstance(seen[key], str):
            sources.setdefault(name, seen[key])
    return sources


def journal_sources(out_dir: str, names: Dict[str, str],
                    digests: Optional[Dict[str, str]] = None) -> None:
    """Append the inputs of outputs about to be written to the journal of
    ``out_dir`` and flush it to disk, so that they are recorded even if
    the run is killed before :func:`record_sources`.

    Args:
        out_dir (str): The output folder.
        names (dict[str, str]): Output name -> input file.
        digests (dict[str, str], optional): Output name -> SHA-256 of the
            input file the outputs are made from.

    Raises:
        OSError: The journal cannot be written (then neither should the
            outputs be).
    """
    if not names:
        return
    digests = digests or {}
    lines = ''.join(
        json.dumps({'name': name, 'input': osp.realpath(path),
                    **({'sha256': digests[name]} if name in digests else {})})
        + '\n' for name, path in names.items())
    with open(osp.join(out_dir, JOURNAL_NAME), 'a') as file:
        file.write(lines)
        file.flush()
        os.fsync(file.fileno())


def unrecorded_names(out_dir: str, sources: Dict[str, str]) -> List[str]:
    """The output names (file stems) in ``out_dir`` that ``sources`` does
    not record: outputs of unknown inputs, whose names no input may take.

    Args:
        out_dir (str): The output folder.
        sources (dict[str, str]): From :func:`read_sources`.
    """
    stems = {osp.splitext(osp.basename(path))[0]
             for path in existing_outputs(out_dir)}
    return sorted(stems - set(sources))


def record_sources(out_dir: str, written: Dict[str, str],
                   digests: Optional[Dict[str, str]] = None) -> None:
    """Add the inputs of the outputs a run wrote (and their SHA-256) to
    the records of ``out_dir`` (atomically; the names already recorded
    stay) and remove the journal, which the records then hold.

    Args:
        out_dir (str): The output folder.
        written (dict[str, str]): Output name -> input file of the outputs
            actually written.
        digests (dict[str, str], optional): Output name -> SHA-256 of the
            input file they were made from.

    Raises:
        UserError: The record cannot be read or written.
    """
    journal = osp.join(out_dir, JOURNAL_NAME)
    if not written and not osp.exists(journal):
        return
    sources = read_sources(out_dir)
    sources.update({name: osp.realpath(path)
                    for name, path in written.items()})
    recorded = read_source_digests(out_dir)
    # A name rewritten from an input recorded without a digest keeps none.
    for name in written:
        recorded.pop(name, None)
    recorded.update({name: digest
                     for name, digest in (digests or {}).items()
                     if name in written})
    path = osp.join(out_dir, SOURCES_NAME)
    # UTF-8, as the file names read: escaped, a clinic reading the record
    # would see l\u00e4sion.jpg for läsion.jpg.
    style = dict(indent=2, sort_keys=True, ensure_ascii=False)
    try:
        atomic_write(json_text(sources, **style) + '\n', path)
        if recorded or osp.exists(osp.join(out_dir, DIGESTS_NAME)):
            path = osp.join(out_dir, DIGESTS_NAME)
            atomic_write(json_text(recorded, **style) + '\n', path)
        if osp.exists(journal):
            os.remove(journal)
    except OSError as err:
        raise UserError(
            f'cannot write {path}: {err}; the {len(written)} outputs this '
            'run wrote are there, but later runs will take them for '
            'outputs of unknown inputs') from None
