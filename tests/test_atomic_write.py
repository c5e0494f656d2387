"""mmseg_dsnet.utils.fileio.atomic_write: permissions, the umask and what
a failed write leaves behind."""
import os
import stat
import threading

import pytest

from mmseg_dsnet.utils import fileio
from mmseg_dsnet.utils.fileio import atomic_write


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    """A file made private (``chmod 600``: masks or figures of patients)
    became readable by everyone (0644, the umask's mode) when a tool
    replaced it, which writing it in place does not do."""
    private = tmp_path / 'figures.json'
    private.write_text('old')
    private.chmod(0o600)
    atomic_write('new', private)
    assert private.read_text() == 'new'
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    # A new file still follows the umask.
    fresh = tmp_path / 'fresh.json'
    atomic_write('new', fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == fileio.default_file_mode()


def test_the_umask_is_read_without_being_changed(tmp_path, monkeypatch):
    """Reading the umask with ``os.umask(0)`` set it to 0 for a moment: a
    file another thread of the process created then (a log, a checkpoint)
    was writable by everyone."""
    if not os.path.exists('/proc/self/status'):
        pytest.skip('the umask can only be read by setting it here')
    calls = []
    real = os.umask

    def recording_umask(mask):
        calls.append((threading.current_thread().name, mask))
        return real(mask)

    old = real(0o027)
    try:
        monkeypatch.setattr(os, 'umask', recording_umask)
        atomic_write('text', tmp_path / 'a.txt')
    finally:
        monkeypatch.undo()
        real(old)
    assert calls == []
    assert stat.S_IMODE((tmp_path / 'a.txt').stat().st_mode) == 0o640


def test_a_folder_made_by_the_writer_is_removed_and_the_error_kept(
        tmp_path):
    """A writer that made a folder at the temporary path (instead of a
    file) left ``.model.onnx.part-PID/`` behind, and the error was an
    ``IsADirectoryError`` about that hidden path, not the writer's."""
    out = tmp_path / 'model.onnx'
    with pytest.raises(OSError, match='the writer produced no file'):
        atomic_write(lambda tmp: os.makedirs(os.path.join(tmp, 'x')), out)
    assert os.listdir(tmp_path) == []

    def fails_after_a_folder(tmp):
        os.makedirs(tmp)
        raise RuntimeError('the export failed')

    with pytest.raises(RuntimeError, match='the export failed'):
        atomic_write(fails_after_a_folder, out)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('stem', ['a' * 250, 'é' * 124])
def test_a_long_valid_file_name_is_written(tmp_path, stem):
    """The temporary file, ``.<name>.part-<pid>``, is 11 or more bytes
    longer than the name: a file whose own name was valid (up to 255 bytes)
    failed with ``OSError: [Errno 36] File name too long: '.<name>.part-...'``
    naming a file the user never asked for."""
    target = tmp_path / f'{stem}.json'
    atomic_write('new', target)
    assert target.read_text() == 'new'
    partial = os.path.basename(fileio.partial_path(target))
    assert partial.startswith('.') and len(partial.encode()) <= 255
    assert partial.endswith(f'{fileio.PARTIAL_MARK}{os.getpid()}')
    # Another long name sharing the first 200 bytes has its own.
    other = tmp_path / f'{stem}.png'
    assert fileio.partial_path(other) != fileio.partial_path(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    # Short names are as before.
    assert fileio.partial_path(tmp_path / 'x.json') == str(
        tmp_path / f'.x.json{fileio.PARTIAL_MARK}{os.getpid()}')


def test_a_path_starting_with_an_unexpanded_tilde_is_refused(
        tmp_path, monkeypatch):
    """``--out=~/r.json`` (bash expands no ``~`` after ``--option=``) was
    written into a folder named ``~`` in the current folder, and reported
    as ``~/r.json``, read as the home folder."""
    from mmseg_dsnet.engine.preflight import (check_empty_output_dir,
                                              check_work_dir)
    from mmseg_dsnet.utils.errors import UserError
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match='~/r.json starts with "~", which '
                       'the shell did not expand'):
        atomic_write('new', '~/r.json')
    with pytest.raises(UserError, match='the work dir ~/w starts with'):
        check_work_dir('~/w')
    with pytest.raises(UserError, match='--out-dir ~user/o starts with'):
        check_empty_output_dir('~user/o', '--out-dir')
    assert list(tmp_path.iterdir()) == []
    # A "~" inside a path is an ordinary name.
    atomic_write('new', 'a~/b~.json')
    assert (tmp_path / 'a~' / 'b~.json').read_text() == 'new'


def test_a_file_another_process_wrote_meanwhile_is_kept(tmp_path):
    """Without ``overwrite``, a file that appears while the content is
    written (a second copy of the tool with the same output) is not
    replaced, and the message says what happened."""
    out = tmp_path / 'out.pth'

    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(b'this run')
        out.write_bytes(b'the other run')

    with pytest.raises(FileExistsError) as refused:
        atomic_write(write, out, overwrite=False)
    assert str(refused.value) == (
        f'{out} was written by another process while this run worked; not '
        'replacing it (nothing written; use --overwrite to replace it)')
    assert out.read_bytes() == b'the other run'
    assert os.listdir(tmp_path) == ['out.pth']


def test_a_process_of_another_user_is_alive():
    """``pid_alive`` of a process this user may not signal (os.kill's
    PermissionError) is True: a running run of another user is not taken
    for a killed one (its lock file taken, its partial outputs removed).
    Asked as ``nobody`` from a forked child when the tests run as root
    (forked, so nothing is read from the repository as ``nobody``)."""
    import subprocess
    import sys

    from mmseg_dsnet.utils.fileio import pid_alive
    ended = subprocess.Popen([sys.executable, '-c', ''])
    ended.wait()
    assert pid_alive(os.getpid()) and not pid_alive(ended.pid)
    other = os.getpid() if os.geteuid() == 0 else 1
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            if os.geteuid() == 0:
                os.setuid(65534)
            os.write(write, f'{pid_alive(other)} {pid_alive(ended.pid)}'
                     .encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as answer:
        assert answer.read() == 'True False'


def test_an_output_of_another_suffix_is_refused_in_any_case():
    """``refuse_other_suffix``: a name of the suffix in any case (``.ONNX``,
    a camera's ``.PNG`` habit) and an option not given pass; another
    suffix, or none, is refused naming the option and the format."""
    from mmseg_dsnet.utils.errors import UserError
    for name in ('model.onnx', 'MODEL.ONNX', 'a.b/m.Onnx', None):
        fileio.refuse_other_suffix(name, '.onnx', 'OUT', 'ONNX')
    for name in ('model.pth', 'model', 'model.onnx.bak', 'onnx'):
        with pytest.raises(UserError) as error:
            fileio.refuse_other_suffix(name, '.onnx', 'OUT',
                                       'the model is written in ONNX format')
        assert str(error.value) == (
            f'OUT {name}: the model is written in ONNX format; give a file '
            'name ending with .onnx')
    # The suffixes of one format: any of them passes.
    for name in ('m.pth', 'm.PT', 'm.ckpt'):
        fileio.refuse_other_suffix(name, fileio.CHECKPOINT_SUFFIXES, 'OUT',
                                   'PyTorch')
    with pytest.raises(UserError, match='^OUT m.onnx: PyTorch; give a file '
                       'name ending with .pth, .pt or .ckpt$'):
        fileio.refuse_other_suffix('m.onnx', fileio.CHECKPOINT_SUFFIXES,
                                   'OUT', 'PyTorch')


def test_an_existing_output_or_a_folder_is_refused_before_the_work(
        tmp_path):
    """``refuse_existing``: an existing file needs ``overwrite``; a folder
    (or a path ending in ``/``) is never a file to write; and a refused
    ``atomic_write`` calls no writer and leaves the file as it was."""
    from mmseg_dsnet.utils.errors import UserError
    out = tmp_path / 'out.json'
    out.write_text('old')
    with pytest.raises(FileExistsError, match='use --overwrite'):
        fileio.refuse_existing(out)
    fileio.refuse_existing(out, overwrite=True)
    fileio.refuse_existing(tmp_path / 'new.json')
    called = []
    with pytest.raises(FileExistsError):
        atomic_write(called.append, out, overwrite=False)
    assert called == [] and out.read_text() == 'old'
    # Files written together: any existing one is refused before the work.
    with pytest.raises(FileExistsError, match='out.json already exists'):
        fileio.atomic_write_together([(called.append, tmp_path / 'new.json'),
                                      (called.append, out)], overwrite=False)
    assert called == [] and out.read_text() == 'old'
    with pytest.raises(UserError, match='is a folder'):
        fileio.refuse_existing(tmp_path, overwrite=True)
    with pytest.raises(UserError, match=r'names a folder \(it ends in /\)'):
        fileio.refuse_existing(f'{tmp_path}/missing/', overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ['out.json']


def test_only_the_partials_of_ended_writers_are_removed(tmp_path):
    """``remove_stale_partials`` removes a hidden ``.<name>.part-<pid>`` of
    a process that no longer runs; a live writer's, a user's own file that
    only looks alike (not hidden) and a mark without a pid stay."""
    import subprocess
    import sys
    ended = subprocess.Popen([sys.executable, '-c', ''])
    ended.wait()
    mark = fileio.PARTIAL_MARK
    names = [f'.out.json{mark}{ended.pid}', f'.out.png{mark}{os.getpid()}',
             f'notes{mark}{ended.pid}', f'.x{mark}abc']
    for name in names:
        (tmp_path / name).write_text('x')
    assert fileio.remove_stale_partials(tmp_path) == [
        os.path.join(tmp_path, names[0])]
    assert sorted(os.listdir(tmp_path)) == sorted(names[1:])
    assert fileio.remove_stale_partials(tmp_path / 'missing') == []


def test_two_spellings_of_one_file_are_the_same_file(tmp_path):
    """``refuse_same_file`` compares real paths (``a/../a/x``, a link); an
    option not given (None) is skipped, two of them included."""
    from mmseg_dsnet.utils.errors import UserError
    (tmp_path / 'a').mkdir()
    (tmp_path / 'link').symlink_to(tmp_path / 'a')
    other = f'{tmp_path}/link/../a/x.py'
    with pytest.raises(UserError) as error:
        fileio.refuse_same_file([('the config', f'{tmp_path}/a/x.py'),
                                 ('--out', None), ('OUT.py', other)],
                                hint='give another OUT')
    assert str(error.value) == (
        f'the config and OUT.py are the same file, {other}; give another '
        'OUT')
    with pytest.raises(UserError):
        fileio.refuse_same_file([('A', f'{tmp_path}/a/y'),
                                 ('B', f'{tmp_path}/link/y')])
    fileio.refuse_same_file([('A', None), ('B', None),
                             ('C', f'{tmp_path}/a/x.py')])


def test_json_text_writes_numbers_that_are_not_finite_as_null():
    import numpy as np
    text = fileio.json_text({'a': float('nan'), 'b': [float('inf'), 1, 2.5],
                             'c': (np.float32('nan'), np.float64(0.25)),
                             'd': True})
    assert text == ('{"a": null, "b": [null, 1, 2.5], "c": [null, 0.25], '
                    '"d": true}')


def test_a_failed_block_puts_the_file_back_as_it_was(tmp_path):
    """``restored_on_failure``: a failed block leaves the file it changed
    as it was before, or removes the one it made; with ``keep_existing``
    a file that was there is put back after a block that succeeds too,
    and ``restored`` says whether anything was put back."""
    dump = tmp_path / 'config.py'
    dump.write_text('trained')
    with pytest.raises(RuntimeError):
        with fileio.restored_on_failure(dump):
            dump.write_text('refused test')
            raise RuntimeError('refused')
    assert dump.read_text() == 'trained'
    made = tmp_path / 'made.py'
    with pytest.raises(KeyboardInterrupt):
        with fileio.restored_on_failure(made):
            made.write_text('half')
            raise KeyboardInterrupt
    assert not made.exists()
    with fileio.restored_on_failure(dump, keep_existing=True) as state:
        dump.write_text('test')
    assert dump.read_text() == 'trained' and state['restored']
    with fileio.restored_on_failure(dump, keep_existing=True) as state:
        pass
    assert not state['restored']
    with fileio.restored_on_failure(dump) as state:
        dump.write_text('new')
    assert dump.read_text() == 'new' and not state['restored']
    assert sorted(os.listdir(tmp_path)) == ['config.py']


def test_a_failed_block_removes_only_the_files_it_made(tmp_path):
    """``new_files_removed_on_failure``: what the block made goes, files
    and folders; what was there stays, an empty folder included."""
    out = tmp_path / 'paintings'
    (out / 'old').mkdir(parents=True)
    (out / 'keep.png').write_text('x')
    with pytest.raises(RuntimeError):
        with fileio.new_files_removed_on_failure(out):
            (out / 'new.png').write_text('x')
            (out / 'sub').mkdir()
            (out / 'sub' / 'a.png').write_text('x')
            (out / 'old' / 'b.png').write_text('x')
            raise RuntimeError
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob('*')) \
        == ['keep.png', 'old']
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(RuntimeError):
        with fileio.new_files_removed_on_failure(empty):
            raise RuntimeError
    assert empty.is_dir()
    fresh = tmp_path / 'fresh'
    with pytest.raises(RuntimeError):
        with fileio.new_files_removed_on_failure(fresh):
            (fresh / 'a').mkdir(parents=True)
            raise RuntimeError
    assert not fresh.exists()
    with fileio.new_files_removed_on_failure(fresh):
        (fresh / 'done.png').mkdir(parents=True)
    assert fresh.is_dir()


def test_a_temporary_name_is_cut_only_past_255_bytes(tmp_path):
    """``.<name>.part-<pid>`` of exactly 255 bytes is kept whole; one byte
    more is cut (and hashed), and the file is still written."""
    suffix = f'{fileio.PARTIAL_MARK}{os.getpid()}'
    fits = 'a' * (254 - len(suffix) - len('.json')) + '.json'
    assert os.path.basename(fileio.partial_path(tmp_path / fits)) == \
        f'.{fits}{suffix}'
    over = 'b' + fits
    partial = os.path.basename(fileio.partial_path(tmp_path / over))
    assert partial != f'.{over}{suffix}' and len(partial) <= 255
    for name in (fits, over):
        atomic_write('new', tmp_path / name)
    assert sorted(os.listdir(tmp_path)) == sorted([fits, over])


@pytest.mark.parametrize('failure', [OSError, KeyboardInterrupt])
def test_a_failure_between_the_renames_leaves_the_earlier_set(
        tmp_path, monkeypatch, failure):
    """Files written together are renamed over their targets one after
    the other; a failure at the second rename (an interrupt, a refused
    rename) left the new first file beside the earlier second one, a set
    that looks whole and does not match. The first is put back, and a
    file that did not exist before is removed."""
    weights, config = tmp_path / 'model.pth', tmp_path / 'model.py'
    weights.write_text('old weights')
    config.write_text('old config')
    real_replace = os.replace
    calls = []

    def failing_replace(source, target):
        calls.append(os.path.basename(target))
        if len(calls) == 2:
            raise failure('injected at the second rename')
        real_replace(source, target)

    monkeypatch.setattr(os, 'replace', failing_replace)
    with pytest.raises(failure, match='injected'):
        fileio.atomic_write_together([('new weights', weights),
                                      ('new config', config)])
    assert calls[:2] == ['model.pth', 'model.py']
    assert weights.read_text() == 'old weights'
    assert config.read_text() == 'old config'
    assert sorted(os.listdir(tmp_path)) == ['model.pth', 'model.py']
    # A first file that is new is removed again.
    weights.unlink()
    calls.clear()
    with pytest.raises(failure, match='injected'):
        fileio.atomic_write_together([('new weights', weights),
                                      ('new config', config)])
    assert sorted(os.listdir(tmp_path)) == ['model.py']
    monkeypatch.undo()
    fileio.atomic_write_together([('new weights', weights),
                                  ('new config', config)])
    assert (weights.read_text(), config.read_text()) == (
        'new weights', 'new config')
    assert sorted(os.listdir(tmp_path)) == ['model.pth', 'model.py']


def test_a_link_renamed_over_is_put_back_as_the_link(tmp_path, monkeypatch):
    """A failure at the second rename puts a first output that was a
    symbolic link back as that link (to a file, or to nothing), not as a
    copy of the file it pointed to, and does not remove it."""
    target = tmp_path / 'published' / 'model.pth'
    target.parent.mkdir()
    target.write_text('old weights')
    weights, config = tmp_path / 'model.pth', tmp_path / 'model.py'
    config.write_text('old config')
    real_replace = os.replace

    def failing_replace(source, path):
        if os.path.basename(path) == 'model.py':
            raise OSError('injected at the second rename')
        real_replace(source, path)

    monkeypatch.setattr(os, 'replace', failing_replace)
    for pointed in (target, tmp_path / 'missing.pth'):
        weights.unlink(missing_ok=True)
        weights.symlink_to(pointed)
        with pytest.raises(OSError, match='injected'):
            fileio.atomic_write_together([('new weights', weights),
                                          ('new config', config)])
        assert weights.is_symlink() and os.readlink(weights) == str(pointed)
    assert target.read_text() == 'old weights'
    assert config.read_text() == 'old config'
    assert sorted(os.listdir(tmp_path)) == [
        'model.pth', 'model.py', 'published']
