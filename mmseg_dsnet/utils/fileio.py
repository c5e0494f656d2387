"""The one way this project writes a file: atomically.

A file written by :func:`atomic_write` is either the old one or the complete
new one, whatever happens meanwhile (kill, full disk, power loss after the
fsync): the content goes to a hidden temporary file in the same folder
(:func:`partial_path`), which replaces the target with ``os.replace`` once
complete. Checkpoints, configs, ONNX models, masks and released weights all
go through it.

:func:`sha256_of` identifies a file by its content (released weights, the
model behind an inference folder). Only the standard library is imported, so the dataset converter can use it
before torch and mmcv are installed.
"""
import contextlib
import hashlib
import json
import math
import numbers
import os
import os.path as osp
import re
import shutil
import stat
from typing import Callable, Union

from .errors import UserError

PARTIAL_MARK = '.part-'


#: The longest file name (in bytes) of the usual file systems (ext4, xfs,
#: btrfs, tmpfs, NTFS in UTF-16 units).
NAME_MAX = 255


def partial_path(filepath) -> str:
    """The hidden temporary file a write to ``filepath`` goes through:
    ``.<name>.part-<pid>`` in the same folder (same file system, so the final
    rename is atomic); a name too long for that (over :data:`NAME_MAX`
    bytes with the mark) is cut and a hash of it added, so that a file with
    a valid long name can be written (the temporary name failed with
    ``OSError: File name too long``)."""
    folder, name = osp.split(osp.abspath(str(filepath)))
    suffix = f'{PARTIAL_MARK}{os.getpid()}'
    encoded = name.encode('utf-8', 'surrogateescape')
    if 1 + len(encoded) + len(suffix) > NAME_MAX:
        digest = hashlib.sha256(encoded).hexdigest()[:16]
        keep = NAME_MAX - 1 - len(suffix) - len(digest) - 1
        name = encoded[:keep].decode('utf-8', 'ignore') + '~' + digest
    return osp.join(folder, f'.{name}{suffix}')


def _current_umask() -> int:
    """The process umask, read without changing it where the system tells
    it (Linux: ``/proc/self/status``). ``os.umask`` can only read it by
    setting another value: for that moment a file another thread creates
    (a log, a checkpoint, a data loader's cache) got mode 0o666."""
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


def default_file_mode() -> int:
    """Permissions a normally created file gets: 0o666 less the umask."""
    return 0o666 & ~_current_umask()


def _replaced_file_mode(filepath: str) -> int:
    """The permissions the file written at ``filepath`` gets: those of the
    regular file it replaces, as an in-place write keeps them (a file made
    private with ``chmod 600`` stays private), else
    :func:`default_file_mode`."""
    try:
        found = os.stat(filepath)
    except OSError:
        return default_file_mode()
    if stat.S_ISREG(found.st_mode):
        return stat.S_IMODE(found.st_mode)
    return default_file_mode()


def _remove_partial(tmp: str) -> None:
    """Remove a write's temporary file, or the folder a writer made in its
    place, without raising (the write's own error is the one to report)."""
    try:
        if osp.isdir(tmp) and not osp.islink(tmp):
            shutil.rmtree(tmp)
        elif osp.lexists(tmp):
            os.remove(tmp)
    except OSError:
        pass


def _write_chunks(fileobj, data, chunk=1 << 22):
    """Write ``data`` in 4 MiB chunks (a hook point for fault-injection
    tests)."""
    view = memoryview(data)
    for start in range(0, len(view), chunk):
        fileobj.write(view[start:start + chunk])


def _fsync_path(path: str) -> None:
    """Flush a file or folder to disk (best effort for folders)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def refuse_unexpanded_home(path, what: str = 'the output') -> None:
    """Raise :class:`~mmseg_dsnet.utils.errors.UserError` when ``path``
    starts with a ``~`` the shell did not expand (``--out=~/r.json``: bash
    expands no ``~`` after ``--option=``): it was written into a folder
    named ``~`` in the current folder, reported as ``~/r.json`` (read as
    the home folder), and a later ``rm -r ~`` to clean it up removes the
    home folder.

    Args:
        path (str | Path): The path to write.
        what (str): What the path is, for the message.
    """
    path = str(path)
    if path.split('/', 1)[0].startswith('~'):
        raise UserError(
            f'{what} {path} starts with "~", which the shell did not expand '
            '(it expands none after "--option="): it would be written into '
            f'a folder named "~" here; give the path as "--option {path}" '
            'or in full')


def refuse_folder(filepath) -> None:
    """Raise :class:`~mmseg_dsnet.utils.errors.UserError` when the file to
    write, ``filepath``, is an existing folder, or names one by ending in a
    path separator (``out/``): no overwrite flag may replace a folder, and
    the rename would fail only after the work; or when it starts with a
    ``~`` the shell did not expand (:func:`refuse_unexpanded_home`)."""
    refuse_unexpanded_home(filepath)
    if osp.isdir(filepath):
        raise UserError(f'{filepath} is a folder; give the path of the file '
                        'to write')
    if str(filepath).endswith(tuple({'/', os.sep})):
        raise UserError(f'{filepath} names a folder (it ends in '
                        f'{str(filepath)[-1]}); give the path of the file '
                        'to write')


def refuse_existing(filepath, overwrite: bool = False) -> None:
    """Raise :class:`FileExistsError` (naming ``--overwrite``) when
    ``filepath`` exists and ``overwrite`` is False, and
    :class:`~mmseg_dsnet.utils.errors.UserError` when it is a folder; tools
    call it before long work so that nothing is computed for an output they
    may not write."""
    refuse_folder(filepath)
    if not overwrite and osp.exists(filepath):
        raise FileExistsError(
            f'{filepath} already exists (use --overwrite to replace it)')


#: The names the tools take for a PyTorch checkpoint (``infer.py`` refuses
#: such a file among its images; ``reparameterize.py`` writes any of them).
CHECKPOINT_SUFFIXES = ('.pth', '.pt', '.ckpt')


def refuse_other_suffix(filepath, suffix, option: str,
                        written_as: str) -> None:
    """Raise :class:`~mmseg_dsnet.utils.errors.UserError` when ``filepath``
    does not end with ``suffix`` (any case): the file is written in one
    format whatever its name says, and the tools that read it go by the
    name. A None ``filepath`` (an option not given) passes.

    Args:
        filepath (str | None): The output file as given.
        suffix (str | tuple[str]): The suffix it must have, with its dot
            (``'.onnx'``), or the suffixes of one format
            (:data:`CHECKPOINT_SUFFIXES`).
        option (str): How the user gave it (``'OUT'``, ``'--plot'``).
        written_as (str): What the file is written as, for the message
            (``'the model is written in ONNX format'``).
    """
    suffixes = (suffix, ) if isinstance(suffix, str) else tuple(suffix)
    if filepath is not None and \
            osp.splitext(str(filepath))[1].lower() not in suffixes:
        named = suffixes[0] if len(suffixes) == 1 else \
            ', '.join(suffixes[:-1]) + f' or {suffixes[-1]}'
        raise UserError(f'{option} {filepath}: {written_as}; give a file '
                        f'name ending with {named}')


def refuse_same_file(files, hint: str = '') -> None:
    """Raise :class:`~mmseg_dsnet.utils.errors.UserError` when two of
    ``files`` are one file: an output whose name is made from another
    (``OUT.py`` beside ``OUT``) or one that is an input would silently
    replace it. Tools call it before any work.

    Args:
        files (Sequence[tuple[str, str]]): ``(what, path)`` pairs, inputs
            first; a None path (an option not given) is skipped.
        hint (str): What to do instead, appended to the message.
    """
    seen = {}
    for what, path in files:
        if path is None:
            continue
        key = osp.realpath(str(path))
        if key in seen:
            raise UserError(f'{seen[key]} and {what} are the same file, '
                            f'{path}' + (f'; {hint}' if hint else ''))
        seen[key] = what


def atomic_write(data: Union[bytes, str, Callable[[str], None]],
                 filepath,
                 overwrite: bool = True) -> str:
    """Write ``filepath`` atomically, with the user's umask (a file it
    replaces keeps its permissions).

    Args:
        data (bytes | str | callable): The content (str is written as
            UTF-8), or a function that writes the file at the path it is
            given, for libraries that write files themselves
            (``onnx.save``, ``torch.onnx.export``, an image encoder ...).
            An exception it raises aborts the write: the temporary file (or
            a folder the function made in its place) is removed and
            ``filepath`` is left as it was.
        filepath (str | Path): The destination; its folder is created.
        overwrite (bool): Replace an existing ``filepath``. When False an
            existing file raises :class:`FileExistsError`, checked before
            the work and again before the final rename. Default: True.

    Returns:
        str: ``filepath``.

    Raises:
        FileExistsError: ``filepath`` exists and ``overwrite`` is False.
        UserError: ``filepath`` is a folder.
    """
    return atomic_write_together([(data, filepath)], overwrite)[0]


def _write_partial(data, tmp: str, filepath: str) -> None:
    """Write ``data`` (as :func:`atomic_write` takes it) completely to the
    temporary file ``tmp`` of ``filepath``, synced, with the mode
    ``filepath`` will have."""
    if callable(data):
        data(tmp)
        if not osp.isfile(tmp):
            raise OSError(f'{filepath}: the writer produced no file')
        _fsync_path(tmp)
    else:
        if isinstance(data, str):
            data = data.encode('utf-8')
        with open(tmp, 'wb') as f:
            _write_chunks(f, data)
            f.flush()
            os.fsync(f.fileno())
    # A library may create its file with other permissions.
    os.chmod(tmp, _replaced_file_mode(filepath))


def _kept_copy(filepath: str):
    """Keep the file at ``filepath`` under a temporary name (a hard link,
    or a copy where the file system has none) so that it can be put back;
    returns that name, or None when there is no file."""
    if not (osp.islink(filepath) or osp.isfile(filepath)):
        return None
    kept = partial_path(filepath + '~old')
    _remove_partial(kept)
    # A link is kept as the link, as the rename replaces the link itself.
    try:
        os.link(filepath, kept, follow_symlinks=False)
    except OSError:
        try:
            shutil.copy2(filepath, kept, follow_symlinks=False)
        except BaseException:
            _remove_partial(kept)
            raise
    return kept


def _rename_all_or_none(renames) -> None:
    """``os.replace`` each ``(tmp, filepath)`` of ``renames`` in order; when
    one fails (or an interrupt arrives) the targets already replaced get
    their earlier files back, and those that had none are removed, before
    the error is raised."""
    if len(renames) == 1:  # one rename leaves no mixed set: nothing to keep
        os.replace(*renames[0])
        return
    kept = {}
    done = []
    try:
        for _, filepath in renames:
            kept[filepath] = _kept_copy(filepath)
        for tmp, filepath in renames:
            os.replace(tmp, filepath)
            done.append(filepath)
    except BaseException:
        for filepath in reversed(done):
            try:
                if kept[filepath] is not None:
                    os.replace(kept.pop(filepath), filepath)
                else:
                    os.remove(filepath)
            except OSError:
                pass  # the failure itself is the error to report
        raise
    finally:
        for path in kept.values():
            if path is not None:
                _remove_partial(path)


def atomic_write_together(files, overwrite: bool = True) -> list:
    """Write files that belong together (a deploy checkpoint and its
    config) so that a failure leaves all of them as they were: each is
    written completely to its temporary file first, and only then are they
    renamed over their targets, in order. A failure during the renames
    (an interrupt, a rename refused) puts back the files already renamed
    over (each earlier file is kept as a hard link, or a copy, until all
    renames are done) and removes those that did not exist, so a reader
    never finds the new first file beside the previous run's second one.
    Only a kill that Python cannot catch (SIGKILL, power loss) between
    two renames can leave such a mixed set.

    Args:
        files (Sequence[tuple]): ``(data, filepath)`` pairs, each as
            :func:`atomic_write` takes them.
        overwrite (bool): Replace existing files (see :func:`atomic_write`).

    Returns:
        list[str]: The file paths.

    Raises:
        FileExistsError: A file exists and ``overwrite`` is False.
        UserError: A file path is a folder.
    """
    files = [(data, str(filepath)) for data, filepath in files]
    for _, filepath in files:
        refuse_existing(filepath, overwrite)
    written = []
    try:
        for data, filepath in files:
            os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
            tmp = partial_path(filepath)
            written.append((tmp, filepath))
            _write_partial(data, tmp, filepath)
        for _, filepath in files:
            if not overwrite and osp.exists(filepath):
                # Another run (a second copy of the tool with the same
                # output) wrote it while this one worked: replacing it
                # would leave that run's report naming a file that is not
                # its own.
                raise FileExistsError(
                    f'{filepath} was written by another process while this '
                    'run worked; not replacing it (nothing written; use '
                    '--overwrite to replace it)')
        _rename_all_or_none(written)
    except BaseException:
        for tmp, _ in written:
            _remove_partial(tmp)
        raise
    for folder in dict.fromkeys(osp.dirname(osp.abspath(filepath))
                                for _, filepath in files):
        _fsync_path(folder)  # make the renames themselves durable
    return [filepath for _, filepath in files]


def pid_alive(pid: int) -> bool:
    """Whether a process of this id runs on this machine (of any user).

    POSIX answers ``os.kill(pid, 0)``; on Windows that call would send a
    Ctrl-C to a process group (signal 0 is ``CTRL_C_EVENT``), so the
    process is opened and its exit code read instead.

    Args:
        pid (int): The process id.

    Returns:
        bool: True when it runs (or exists, of a user not ours).
    """
    if os.name == 'nt':
        import ctypes
        from ctypes import wintypes
        kernel32 = ctypes.WinDLL('kernel32', use_last_error=True)
        kernel32.OpenProcess.restype = wintypes.HANDLE
        kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL,
                                         wintypes.DWORD)
        kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE,
                                                wintypes.LPDWORD)
        kernel32.CloseHandle.argtypes = (wintypes.HANDLE, )
        # PROCESS_QUERY_LIMITED_INFORMATION
        handle = kernel32.OpenProcess(0x1000, False, int(pid))
        if not handle:
            return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED
        try:
            code = wintypes.DWORD()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, run by another user
        return True
    return True


def remove_stale_partials(folder) -> list:
    """Delete temporary files left in ``folder`` by writers that were killed
    (their process no longer exists).

    Returns:
        list[str]: The removed files.
    """
    removed = []
    if not osp.isdir(folder):
        return removed
    for name in os.listdir(folder):
        if not name.startswith('.') or PARTIAL_MARK not in name:
            continue
        pid = name.rsplit(PARTIAL_MARK, 1)[1]
        if not pid.isdigit():
            continue
        if pid_alive(int(pid)):
            continue  # the writer is still alive
        path = osp.join(folder, name)
        os.remove(path)
        removed.append(path)
    return removed


def sha256_of(path: str) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for chunk in iter(lambda: file.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def json_safe(obj):
    """``obj`` with every number that is not finite (NaN, inf: e.g. a
    ring of an error analysis that holds no lesion) replaced by None.

    Python's ``json`` writes those as ``NaN``/``Infinity``, which are not
    JSON: jq, JavaScript and most other readers refuse the whole file.

    Args:
        obj: Dicts, lists and tuples (walked) of JSON values.

    Returns:
        A copy in which such floats (numpy's too) are None, the rest as it
        was (tuples become lists, as JSON writes them).
    """
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    if isinstance(obj, numbers.Real) and not isinstance(
            obj, numbers.Integral):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


# A lone surrogate: how Python decodes a byte of a file name that is not
# UTF-8 (os.fsdecode); it has no UTF-8 encoding.
_SURROGATE = re.compile('[\ud800-\udfff]')


def json_text(obj, **kwargs) -> str:
    """``json.dumps(obj, **kwargs)`` as strict JSON: numbers that are not
    finite written as ``null`` (:func:`json_safe`); the one way this project
    writes JSON, so that every reader (ours accept ``null`` where a figure
    may be missing) can read every file. With ``ensure_ascii=False`` (text
    written as UTF-8, as people read it) lone surrogates stay escaped
    (``\\udce4``): written raw, the text could not be encoded."""
    text = json.dumps(json_safe(obj), allow_nan=False, **kwargs)
    if not kwargs.get('ensure_ascii', True):
        # JSON's own syntax is ASCII: a surrogate is inside a string.
        text = _SURROGATE.sub(lambda match: f'\\u{ord(match.group()):04x}',
                              text)
    return text


@contextlib.contextmanager
def restored_on_failure(filepath, keep_existing=False):
    """Put ``filepath`` back as it was (or remove it, if there was none)
    when the block raises, for a file a failed step must not change.
    With ``keep_existing`` a file that was there is put back after a
    block that succeeds, too (the block's own file is then lost: write it
    elsewhere as well).

    ``tools/test.py``'s runner dumps its config over the work dir's root
    dump, the one ``leaderboard.py collect`` reads as the training config:
    a refused or crashed test (``--cfg-options
    test_dataloader.dataset.indices=0``) left its options there, and a
    later collect recorded 0 test images, exit 0.

    Args:
        filepath (str): The file.
        keep_existing (bool): Put back a file that was there also when
            the block succeeds. Defaults to False.

    Yields:
        dict: ``restored`` is True once a file the block changed was put
        back after it succeeded (``keep_existing``); False when the block
        left it as it was (or there was none), so that a caller says
        "kept" only where it kept something.
    """
    filepath = str(filepath)
    state = dict(restored=False)
    before = None
    if osp.isfile(filepath):
        with open(filepath, 'rb') as f:
            before = f.read()
    try:
        yield state
    except BaseException:
        try:
            if before is not None:
                atomic_write(before, filepath)
            elif osp.isfile(filepath):
                os.remove(filepath)
        except OSError:
            pass  # the block's own error is the one to report
        raise
    if keep_existing and before is not None:
        now = None
        if osp.isfile(filepath):
            with open(filepath, 'rb') as f:
                now = f.read()
        if now != before:
            atomic_write(before, filepath)
            state['restored'] = True


def _files_under(folder: str) -> set:
    found = set()
    for root, dirs, files in os.walk(folder):
        found.update(osp.join(root, name) for name in dirs + files)
    return found


def _remove_new_files(folder: str, before: set, made: bool) -> None:
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files + dirs:
            path = osp.join(root, name)
            if path in before:
                continue
            try:
                if osp.isdir(path) and not osp.islink(path):
                    os.rmdir(path)  # empty by now unless another wrote
                else:
                    os.remove(path)
            except OSError:
                pass
    if made:
        try:
            os.rmdir(folder)
        except OSError:
            pass  # another process wrote there meanwhile


@contextlib.contextmanager
def new_files_removed_on_failure(folder):
    """Remove the files and folders the block made under ``folder`` (and
    ``folder`` itself when it did not exist) when the block raises, an
    interrupt or SIGTERM included: for an output folder filled file by file
    (``tools/test.py --show-dir``'s paintings), whose part written before a
    fault would look like the paintings of the whole split. What was there
    before stays (the tools refuse a folder that holds files anyway).

    Args:
        folder (str): The output folder.
    """
    folder = str(folder)
    made = not osp.isdir(folder)
    before = set() if made else _files_under(folder)
    try:
        yield
    except BaseException:
        if osp.isdir(folder):
            _remove_new_files(folder, before, made)
        raise
