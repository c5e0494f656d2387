"""The output folder's records on hand-made folders (mutation testing:
partial files counted as outputs, recorded names counted as unknown and
a stale digest kept for a rewritten name passed the inference tests)."""
import json

from mmseg_dsnet.apis import output_record as rec


def make_outputs(folder, names):
    for name in names:
        for sub, ext in (('masks', '.png'), ('overlays', '.jpg')):
            (folder / sub).mkdir(exist_ok=True)
            (folder / sub / f'{name}{ext}').write_bytes(b'x')


def test_existing_outputs_leave_out_partial_files_and_folders(tmp_path):
    make_outputs(tmp_path, ['b', 'a'])
    (tmp_path / 'masks' / '.a.png.partial').write_bytes(b'x')
    (tmp_path / 'masks' / 'sub').mkdir()
    (tmp_path / 'other').mkdir()
    (tmp_path / 'other' / 'c.png').write_bytes(b'x')
    assert rec.existing_outputs(str(tmp_path)) == [
        str(tmp_path / 'masks' / 'a.png'), str(tmp_path / 'masks' / 'b.png'),
        str(tmp_path / 'overlays' / 'a.jpg'),
        str(tmp_path / 'overlays' / 'b.jpg')]


def test_unrecorded_names_are_those_without_a_source(tmp_path):
    make_outputs(tmp_path, ['a', 'b', 'c'])
    assert rec.unrecorded_names(str(tmp_path), {'a': '/x/a.jpg'}) == [
        'b', 'c']
    assert rec.unrecorded_names(str(tmp_path), {}) == ['a', 'b', 'c']


def test_record_sources_replaces_a_rewritten_names_digest(tmp_path):
    src = tmp_path / 'in'
    src.mkdir()
    out = tmp_path / 'out'
    out.mkdir()
    make_outputs(out, ['a', 'b'])
    (out / rec.SOURCES_NAME).write_text(json.dumps(
        {'a': '/old/a.jpg', 'b': '/old/b.jpg'}))
    (out / rec.DIGESTS_NAME).write_text(json.dumps(
        {'a': 'aa' * 32, 'b': 'bb' * 32}))
    (src / 'a.jpg').write_bytes(b'new a')
    (src / 'c.jpg').write_bytes(b'c')
    # 'a' rewritten without a digest: the old one (of another file) goes;
    # 'c' new with its digest; 'b' untouched.
    rec.record_sources(str(out), {'a': str(src / 'a.jpg'),
                                  'c': str(src / 'c.jpg')},
                       {'c': 'cc' * 32, 'z': 'ff' * 32})
    assert json.loads((out / rec.SOURCES_NAME).read_text()) == {
        'a': str((src / 'a.jpg').resolve()), 'b': '/old/b.jpg',
        'c': str((src / 'c.jpg').resolve())}
    assert json.loads((out / rec.DIGESTS_NAME).read_text()) == {
        'b': 'bb' * 32, 'c': 'cc' * 32}


def test_the_journal_counts_only_names_whose_outputs_are_there(tmp_path):
    make_outputs(tmp_path, ['a'])
    rec.journal_sources(str(tmp_path), {'a': '/in/a.jpg', 'k': '/in/k.jpg'},
                        {'a': 'aa' * 32})
    with open(tmp_path / rec.JOURNAL_NAME, 'a') as file:
        file.write('{"name": "a", "inp')  # a write cut short
    assert rec.read_sources(str(tmp_path)) == {'a': '/in/a.jpg'}
    assert rec.read_source_digests(str(tmp_path)) == {'a': 'aa' * 32}


def test_record_summary_names_the_weights_and_threshold(tmp_path):
    import hashlib
    config, checkpoint = tmp_path / 'a.py', tmp_path / 'b.pth'
    config.write_bytes(b'config')
    checkpoint.write_bytes(b'weights')
    record = rec.describe_model(str(config), str(checkpoint), 0.45, True)
    digest = hashlib.sha256(b'weights').hexdigest()[:12]
    assert record['summary'] == (f'a.py + b.pth (sha256 {digest}), '
                                 'threshold 0.45, with flips')


def test_output_checks_on_hand_made_files(tmp_path):
    """A 16-bit 0/255 PNG and a .png overlay are no outputs; an input in
    a sibling folder whose name starts with ``masks`` is not inside
    ``masks/``; an earlier run's overlays folder is left out once."""
    import cv2
    import numpy as np
    import pytest

    from mmseg_dsnet.utils.errors import UserError
    make_outputs(tmp_path, ['a'])
    deep = tmp_path / 'masks' / 'deep.png'
    cv2.imwrite(str(deep), np.full((2, 3), 255, np.uint16))
    assert rec.not_an_output(str(deep)) == \
        'a uint16 image of shape (2, 3), not a 0/255 mask'
    overlay = tmp_path / 'overlays' / 'a.png'
    overlay.write_bytes(b'x')
    assert rec.not_an_output(str(overlay)) == 'not a .jpg overlay'
    sibling = tmp_path / 'masks_old'
    sibling.mkdir()
    (sibling / 'a.png').write_bytes(b'x')
    rec.check_inputs_outside_outputs(str(tmp_path), [str(sibling / 'a.png')])
    with pytest.raises(UserError, match='input .*a.png lies in'):
        rec.check_inputs_outside_outputs(
            str(tmp_path), [str(tmp_path / 'masks' / 'a.png')])
    (tmp_path / rec.RECORD_NAME).write_text('{}')
    (tmp_path / 'overlays' / 'b.jpg').write_bytes(b'x')
    photo = tmp_path / 'photo.jpg'
    photo.write_bytes(b'x')
    overlays = [str(tmp_path / 'overlays' / n) for n in ('a.jpg', 'b.jpg')]
    keep, left_out = rec.earlier_outputs_among_inputs(
        [str(tmp_path)], [str(photo)] + overlays)
    assert keep == [str(photo)]
    assert left_out == [str(tmp_path / 'overlays')]


def test_a_run_folders_records_are_no_inputs(tmp_path):
    """``infer.py 'photos/**/*' --out-dir photos/out`` matched the run's
    model.json, sources.json and sources.sha256.json: every later run
    listed them as failed inputs and exited 1."""
    out = tmp_path / 'out'
    out.mkdir()
    make_outputs(out, ['a'])
    photo = tmp_path / 'a.jpg'
    photo.write_bytes(b'x')
    records = [out / name for name in (rec.RECORD_NAME, rec.SOURCES_NAME,
                                       rec.DIGESTS_NAME)]
    for path in records:
        path.write_text('{}')
    # A JSON of that name outside a run folder is the user's: tried.
    (tmp_path / 'sources.json').write_text('{}')
    found = [str(photo), str(tmp_path / 'sources.json')] + [
        str(path) for path in records]
    keep, left_out = rec.earlier_outputs_among_inputs(
        [str(tmp_path / '**' / '*')], found)
    assert keep == found[:2]
    assert left_out == found[2:]


def test_a_refusal_tells_two_close_thresholds_apart(tmp_path):
    """A folder of threshold 0.5 and a run at 0.4999999 (a threshold
    pasted from a sweep): refused as ``another model (..., threshold
    0.5); this run uses ..., threshold 0.5``, the two reading the same."""
    import pytest

    from mmseg_dsnet.utils.errors import UserError
    model = tmp_path / 'm.onnx'
    model.write_bytes(b'graph')
    import cv2
    import numpy as np
    out = tmp_path / 'out'
    (out / 'masks').mkdir(parents=True)
    rec.claim_output_folder(str(out), rec.describe_model(str(model), None,
                                                         0.5), ['a'])
    cv2.imwrite(str(out / 'masks' / 'a.png'), np.zeros((4, 5), np.uint8))
    close = rec.describe_model(str(model), None, 0.4999999)
    assert close['summary'].endswith('threshold 0.4999999')
    with pytest.raises(UserError, match=r'threshold 0\.5\); this run uses '
                       r'm\.onnx \(sha256 \w+\), threshold 0\.4999999:'):
        rec.claim_output_folder(str(out), close, ['a'])


def test_records_name_files_as_they_read(tmp_path):
    """sources.json (and model.json, sources.sha256.json) were written
    with JSON escapes: a clinic reading which photo a mask is of saw
    ``l\\u00e4sion.jpg`` for ``läsion.jpg``. They are UTF-8 now; a name
    that is not UTF-8 (a byte Python keeps as a lone surrogate) stays
    escaped, and every name reads back as it was written."""
    import os

    out = tmp_path / 'out'
    out.mkdir()
    make_outputs(out, ['läsion', 'b'])
    odd = os.fsdecode(b'l\xe4s')  # 'l\udce4s'
    rec.record_sources(str(out), {'läsion': '/in/läsion.jpg',
                                  'b': f'/in/{odd}.jpg'},
                       {'läsion': 'aa' * 32})
    text = (out / rec.SOURCES_NAME).read_bytes().decode('utf-8')
    assert '"läsion": "/in/läsion.jpg"' in text
    assert '"b": "/in/l\\udce4s.jpg"' in text
    assert '"läsion": "' + 'aa' * 32 + '"' in (
        out / rec.DIGESTS_NAME).read_bytes().decode('utf-8')
    assert rec.read_sources(str(out)) == {'läsion': '/in/läsion.jpg',
                                          'b': f'/in/{odd}.jpg'}
    model = tmp_path / 'Modell_ä.onnx'
    model.write_bytes(b'graph')
    record = rec.describe_model(str(model), None, 0.5)
    fresh = tmp_path / 'fresh'
    fresh.mkdir()
    rec.claim_output_folder(str(fresh), record, ['a'])
    assert '"model": "Modell_ä.onnx"' in (
        fresh / rec.RECORD_NAME).read_bytes().decode('utf-8')
    assert rec.read_record(str(fresh)) == record


def test_a_name_two_killed_runs_journaled_is_of_an_unknown_input(tmp_path):
    """a/x.jpg journaled as ``x`` by a run killed before its mask was
    written; b/x.jpg then took the free name ``x``, wrote ``x.png`` and was
    killed too. The first entry won: ``x`` was recorded for a/x.jpg, so a
    rerun with a/x.jpg skipped b's mask as its own. Which run wrote the
    outputs cannot be told, so the name is now of an unknown input (no
    input takes it); entries that agree still count."""
    out = tmp_path / 'out'
    out.mkdir()
    rec.journal_sources(str(out), {'x': '/a/x.jpg', 'y': '/a/y.jpg'},
                        {'x': 'aa' * 32, 'y': 'cc' * 32})
    rec.journal_sources(str(out), {'x': '/b/x.jpg'}, {'x': 'bb' * 32})
    rec.journal_sources(str(out), {'y': '/a/y.jpg'}, {'y': 'cc' * 32})
    make_outputs(out, ['x', 'y'])
    assert rec.read_sources(str(out)) == {'y': '/a/y.jpg'}
    assert rec.read_source_digests(str(out)) == {'y': 'cc' * 32}
    assert rec.unrecorded_names(str(out), rec.read_sources(str(out))) == [
        'x']
    # One input, two versions (a changed photo rewritten with --overwrite
    # and killed): which version x.png shows is unknown too.
    again = tmp_path / 'again'
    again.mkdir()
    rec.journal_sources(str(again), {'x': '/a/x.jpg'}, {'x': 'aa' * 32})
    rec.journal_sources(str(again), {'x': '/a/x.jpg'}, {'x': 'dd' * 32})
    make_outputs(again, ['x'])
    assert rec.read_sources(str(again)) == {}
    assert rec.read_source_digests(str(again)) == {}


def test_the_folder_lock_excludes_a_second_holder_and_bad_lock_files(
        tmp_path):
    """Two holders of the folder's flock (two runs) exclude each other.
    A lock file (where flock is missing) that names no host is one that
    names no process (it raised ``KeyError``); one of another machine,
    whose run cannot be asked, says how to free the folder if that
    machine stopped (``wait for it to end`` never ended)."""
    import json
    import os
    import socket

    import pytest
    out = tmp_path / 'out'
    out.mkdir()
    key = os.path.realpath(out)
    handle, lock_file = rec._lock_folder(str(out), key)
    try:
        assert handle is not None and lock_file is None
        with pytest.raises(rec.OutputFolderBusyError):
            rec._lock_folder(str(out), key)
    finally:
        os.close(handle)
    os.close(rec._lock_folder(str(out), key)[0])  # free once let go
    lock = out / rec.LOCK_NAME
    lock.write_text(json.dumps({'pid': os.getpid()}))
    with pytest.raises(rec.OutputFolderBusyError, match='names no process'):
        rec._take_lock_file(str(out), key)
    other = f'not-{socket.gethostname()}'
    lock.write_text(json.dumps({'pid': 1, 'host': other}))
    with pytest.raises(rec.OutputFolderBusyError) as info:
        rec._take_lock_file(str(out), key)
    assert f'process 1 on {other} holds its lock file {lock})' in str(
        info.value)
    assert str(info.value).endswith(
        f'give another --out-dir; if that run has ended ({other} stopped '
        f'or restarted), remove {lock}')
    assert json.loads(lock.read_text()) == {'pid': 1, 'host': other}


def test_a_model_json_that_is_no_mapping_is_no_record(tmp_path):
    """A ``model.json`` holding a list (hand-edited, or another tool's
    file) is no record: the folder's outputs are of an unknown model."""
    (tmp_path / rec.RECORD_NAME).write_text('[1, 2]')
    assert rec.read_record(str(tmp_path)) is None


def test_overwrite_removes_every_output_of_another_model(tmp_path):
    """With ``overwrite``, each output of another model is removed (and
    returned) before the new record is written; none stays beside the
    new masks."""
    import json
    model = tmp_path / 'm.onnx'
    model.write_bytes(b'graph')
    out = tmp_path / 'out'
    out.mkdir()
    make_outputs(out, ['a', 'b'])
    (out / rec.RECORD_NAME).write_text(json.dumps(
        {'model_sha256': '0' * 64, 'summary': 'old.onnx'}))
    record = rec.describe_model(str(model), None, 0.5)
    removed = rec.claim_output_folder(str(out), record, ['a', 'b'],
                                      overwrite=True)
    assert sorted(removed) == sorted(
        str(out / sub / name) for sub, ext in (('masks', '.png'),
                                               ('overlays', '.jpg'))
        for name in ('a' + ext, 'b' + ext))
    assert rec.existing_outputs(str(out)) == []
    assert rec.read_record(str(out)) == record


def test_a_folder_without_outputs_keeps_no_records(tmp_path):
    """``release_output_folder`` (a run that wrote nothing) removes all
    four records, the digests and the journal too; with an output there
    it removes none."""
    names = (rec.RECORD_NAME, rec.SOURCES_NAME, rec.DIGESTS_NAME,
             rec.JOURNAL_NAME)
    for name in names:
        (tmp_path / name).write_text('{}')
    (tmp_path / 'masks').mkdir()
    rec.release_output_folder(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['masks']
    for name in names:
        (tmp_path / name).write_text('{}')
    make_outputs(tmp_path, ['a'])
    rec.release_output_folder(str(tmp_path))
    assert all((tmp_path / name).exists() for name in names)


def test_the_digest_recorded_wins_over_the_journals(tmp_path):
    """``sources.sha256.json`` names the photo version ``x.png`` shows; a
    journal entry of another version (a rerun with overwrite killed,
    perhaps before ``x.png`` was rewritten) does not replace it: then a
    rerun would skip the old mask as done for the new photo."""
    import json
    make_outputs(tmp_path, ['x'])
    (tmp_path / rec.SOURCES_NAME).write_text(json.dumps({'x': '/a/x.jpg'}))
    (tmp_path / rec.DIGESTS_NAME).write_text(json.dumps({'x': 'aa' * 32}))
    rec.journal_sources(str(tmp_path), {'x': '/a/x.jpg'}, {'x': 'dd' * 32})
    assert rec.read_source_digests(str(tmp_path)) == {'x': 'aa' * 32}
    assert rec.read_sources(str(tmp_path)) == {'x': '/a/x.jpg'}


def test_the_journal_is_folded_in_by_a_run_that_wrote_nothing(
        tmp_path, monkeypatch):
    """The journal of a killed run names each input by its real absolute
    path (an input given as ``in/a.jpg`` from another folder is the same
    file), and a later run that writes nothing (all skipped) still folds
    it into ``sources.json`` and removes it."""
    import json
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'a.jpg').write_bytes(b'a')
    out = tmp_path / 'out'
    out.mkdir()
    monkeypatch.chdir(tmp_path)
    rec.journal_sources(str(out), {'a': 'in/a.jpg'}, {'a': 'aa' * 32})
    make_outputs(out, ['a'])
    whole = str((tmp_path / 'in' / 'a.jpg').resolve())
    assert rec.read_sources(str(out)) == {'a': whole}
    rec.record_sources(str(out), {})
    assert not (out / rec.JOURNAL_NAME).exists()
    assert json.loads((out / rec.SOURCES_NAME).read_text()) == {'a': whole}
    assert json.loads((out / rec.DIGESTS_NAME).read_text()) == {
        'a': 'aa' * 32}
    # A run's own inputs, given relative, are recorded by real path too;
    # a name rewritten without a digest leaves the digests empty.
    (tmp_path / 'in' / 'b.jpg').write_bytes(b'b')
    rec.record_sources(str(out), {'a': 'in/b.jpg'})
    assert json.loads((out / rec.SOURCES_NAME).read_text()) == {
        'a': str((tmp_path / 'in' / 'b.jpg').resolve())}
    assert json.loads((out / rec.DIGESTS_NAME).read_text()) == {}


def test_a_journal_line_cut_short_hides_no_later_line(tmp_path):
    """A line cut short (a write interrupted) followed by the lines of a
    later run: those are still read."""
    make_outputs(tmp_path, ['a', 'b'])
    rec.journal_sources(str(tmp_path), {'a': '/in/a.jpg'})
    with open(tmp_path / rec.JOURNAL_NAME, 'a') as file:
        file.write('{"name": "z", "inp\n')
    rec.journal_sources(str(tmp_path), {'b': '/in/b.jpg'})
    assert rec.read_sources(str(tmp_path)) == {'a': '/in/a.jpg',
                                               'b': '/in/b.jpg'}
