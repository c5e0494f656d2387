"""The design table (mmseg_dsnet.leaderboard.design and its command line
tools/analysis_tools/design_table.py): design-run records grouped by
candidate, mean and spread over seeds, best first."""
import json
import statistics

import pytest
from conftest import load_tool

from mmseg_dsnet.leaderboard import design
from mmseg_dsnet.utils.errors import UserError

tool = load_tool('analysis_tools/design_table.py')


def write(path, name, seed, iou, split='design', device='cpu',
          train_images=1350, lr=None, **extra):
    """A design record; without ``lr`` as records before it was recorded;
    ``extra`` fields (``config``, ``data_root`` ...) added as given."""
    metrics = dict(IoU=iou, DSC=2 * iou / (100 + iou) * 100, Sen=90.0,
                   Spe=95.0, mIoU_img=iou - 1, TJ=iou - 5)
    path.write_text(json.dumps(dict(
        name=name, seed=seed, split=split, input_size=128, epochs=15,
        train_images=train_images, test_images=150,
        train_time_s=600.0 + seed,
        device=device, metrics=metrics,
        **({} if lr is None else dict(lr=lr)), **extra)))
    return str(path)


def test_groups_seeds_and_sorts_by_mean_iou(tmp_path):
    paths = [
        write(tmp_path / 'a0.json', 'cand-a', 0, 78.0),
        write(tmp_path / 'a1.json', 'cand-a', 1, 80.0),
        write(tmp_path / 'b0.json', 'cand-b', 0, 79.5),
    ]
    lines = design.design_table(paths).splitlines()
    assert len(lines) == 4
    # cand-b (79.5) ranks above cand-a (mean 79.0 over two seeds).
    assert lines[2].startswith(
        '| cand-b | 128px | 15 | cpu | 1350 / 150 | 0 |')
    assert lines[3].startswith(
        '| cand-a | 128px | 15 | cpu | 1350 / 150 | 0, 1 |')
    # Mean ± sample standard deviation (n - 1) over the seeds.
    assert '| 79.00 ± 1.41 |' in lines[3]
    assert lines[1].count('---') == lines[0].count('|') - 1


def test_runs_on_other_devices_are_separate_rows(tmp_path):
    # GPU kernels round differently: the same seed is another run there.
    paths = [
        write(tmp_path / 'c.json', 'cand-a', 0, 78.0),
        write(tmp_path / 'g.json', 'cand-a', 0, 80.0,
              device='cuda: NVIDIA H200'),
    ]
    lines = design.design_table(paths).splitlines()
    assert len(lines) == 4
    assert lines[2].startswith('| cand-a | 128px | 15 | cuda: NVIDIA H200 |')
    assert '| 80.00 |' in lines[2] and '| 78.00 |' in lines[3]


def test_runs_on_fewer_images_are_not_pooled_with_full_runs(tmp_path):
    paths = [
        write(tmp_path / 'f.json', 'cand-a', 0, 80.0),
        write(tmp_path / 's.json', 'cand-a', 1, 20.0, train_images=16),
    ]
    lines = design.design_table(paths).splitlines()
    assert len(lines) == 4
    assert lines[2].startswith(
        '| cand-a | 128px | 15 | cpu | 1350 / 150 | 0 |')
    assert lines[3].startswith('| cand-a | 128px | 15 | cpu | 16 / 150 | 1 |')


def test_runs_of_another_learning_rate_are_kept_apart(tmp_path):
    """Design records did not hold the learning rate: seeds run with --lr
    0.002 were pooled with seeds at the config's 0.001 into one row, and
    compared with each other as one setting. A record without it (written
    before it was recorded) is unknown, not a difference."""
    paths = [
        write(tmp_path / 'a0.json', 'cand-a', 0, 78.0, lr=0.001),
        write(tmp_path / 'a1.json', 'cand-a', 1, 80.0, lr=0.002),
        write(tmp_path / 'b0.json', 'cand-b', 0, 70.0),
        write(tmp_path / 'b1.json', 'cand-b', 1, 71.0, lr=0.001),
    ]
    lines = design.design_table(paths).splitlines()
    assert len(lines) == 5
    assert lines[2].startswith(
        '| cand-a (lr 0.002) | 128px | 15 | cpu | 1350 / 150 | 1 | 80.00 |')
    assert lines[3].startswith(
        '| cand-a (lr 0.001) | 128px | 15 | cpu | 1350 / 150 | 0 | 78.00 |')
    # Named in every row that records it while the rows hold several.
    assert lines[4].startswith('| cand-b (lr 0.001) | 128px | 15 | cpu | '
                               '1350 / 150 | 0, 1 | 70.50 ± 0.71 |')
    # A run without the lr beside runs of two: which it joins is unknown.
    unknown = write(tmp_path / 'a2.json', 'cand-a', 2, 79.0)
    with pytest.raises(design.DesignRecordError,
                       match=f'cand-a has runs of several lr and runs that '
                       f'do not record it \\({unknown}\\)'):
        design.design_table(paths + [unknown])
    # Compared: runs of another lr are refused, an unknown one is not.
    refs = [write(tmp_path / f'r{k}.json', 'ref', k, 75.0 + k, lr=0.001)
            for k in (0, 1)]
    with pytest.raises(ValueError, match='a run of cand-a \\(seed 1\\) has '
                       'another .*lr 0.002 \\(ref: 0.001\\).*one setting'):
        design.comparison_table(refs + paths[:2], 'ref', ['cand-a'])
    table = design.comparison_table(refs + paths[2:], 'ref', ['cand-b'])
    assert '| cand-b | 70.00 | 71.00 |' in table


def test_rows_of_learning_rates_alike_in_six_digits_have_two_labels(
        tmp_path):
    """Rows of two learning rates that differ past the sixth significant
    digit were both labelled ``(lr 0.001)``: two settings read as one. They
    are written in full then; a rate no other reads alike keeps ``:g``
    (its six significant digits)."""
    paths = [
        write(tmp_path / 'a0.json', 'cand-a', 0, 78.0, lr=0.001),
        write(tmp_path / 'a1.json', 'cand-a', 1, 80.0, lr=0.0010000001),
        # Five significant digits, shown as they are.
        write(tmp_path / 'b0.json', 'cand-b', 0, 70.0, lr=0.0012345),
    ]
    rows = [line.split(' | ')[0]
            for line in design.design_table(paths).splitlines()[2:]]
    assert rows == ['| cand-a (lr 0.0010000001)', '| cand-a (lr 0.001)',
                    '| cand-b (lr 0.0012345)']


def test_runs_of_other_config_files_or_data_are_kept_apart(tmp_path, capsys):
    """Records were grouped by their name (the config's stem), device and
    schedule only: runs of two config files of one name in two folders,
    or on two data roots, were pooled as the seeds of one experiment
    (``0, 1, 2`` and their mean, exit 0), and compared as one."""
    from conftest import REPO
    root, other = '/data/isic2017', '/data/isic2017_reconverted'
    mine = 'configs/mine/cand-a.py'
    paths = [
        write(tmp_path / 'a0.json', 'cand-a', 0, 78.0,
              config='configs/dsnet/design/cand-a.py', data_root=root),
        # The same file, as the fast sweep may record it: one design.
        write(tmp_path / 'a1.json', 'cand-a', 1, 80.0,
              config=str(REPO / 'configs/dsnet/design/cand-a.py'),
              data_root=root),
        write(tmp_path / 'a2.json', 'cand-a', 2, 90.0, config=mine,
              data_root=root),
        write(tmp_path / 'a3.json', 'cand-a', 3, 60.0,
              config='configs/dsnet/design/cand-a.py', data_root=other),
    ]
    lines = design.design_table(paths).splitlines()
    assert len(lines) == 5
    assert lines[2].startswith(f'| cand-a (data_root {root}, config {mine}) '
                               '| 128px | 15 | cpu | 1350 / 150 | 2 | 90.00 |')
    assert lines[3].startswith(
        f'| cand-a (data_root {root}, config configs/dsnet/design/cand-a.py) '
        '| 128px | 15 | cpu | 1350 / 150 | 0, 1 | 79.00 ± 1.41 |')
    assert lines[4].startswith(f'| cand-a (data_root {other}, config '
                               'configs/dsnet/design/cand-a.py) | 128px | 15 '
                               '| cpu | 1350 / 150 | 3 | 60.00 |')
    # Compared: a name of two config files, or runs on another data root
    # than the reference's, are refused.
    refs = [write(tmp_path / f'r{k}.json', 'ref', k, 75.0 + k,
                  config='configs/ref.py', data_root=root) for k in (0, 1)]
    assert tool.main([*refs, *paths[:3], '--compare-to', 'ref',
                      '--candidates', 'cand-a']) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        'ERROR: cand-a names runs of 2 config files (configs/dsnet/design/'
        f'cand-a.py, {mine}) on cpu: they are runs of different designs; '
        'give the records of one of them\n')
    assert captured.out == ''
    moved = write(tmp_path / 'a4.json', 'cand-a', 4, 70.0,
                  config='configs/dsnet/design/cand-a.py', data_root=other)
    with pytest.raises(ValueError, match=(
            'a run of cand-a \\(seed 3\\) has another data_root than '
            f"ref's \\(data_root {other} \\(ref: {root}\\)\\)")):
        design.comparison_table([*refs, paths[3], moved], 'ref', ['cand-a'])
    # Runs of one file and root compare as before.
    table = design.comparison_table([*refs, *paths[:2]], 'ref', ['cand-a'])
    assert '| cand-a | 78.00 | 80.00 |' in table


def test_runs_through_a_link_to_the_data_are_runs_on_that_data(tmp_path):
    """A second checkout whose ``data`` links to the first's records the
    link's path: its runs were refused as runs on 'another data_root' than
    the reference's, on the same images."""
    data = tmp_path / 'data' / 'isic2017'
    data.mkdir(parents=True)
    (tmp_path / 'checkout').mkdir()
    (tmp_path / 'checkout' / 'data').symlink_to(tmp_path / 'data')
    linked = str(tmp_path / 'checkout' / 'data' / 'isic2017')
    refs = [write(tmp_path / f'r{k}.json', 'ref', k, 75.0 + k,
                  data_root=str(data)) for k in (0, 1)]
    cands = [write(tmp_path / f'c{k}.json', 'cand', k, 78.0 + k,
                   data_root=linked + '/') for k in (0, 1)]
    table = design.comparison_table([*refs, *cands], 'ref', ['cand'])
    assert '| cand | 78.00 | 79.00 |' in table
    # Another folder of data is still another data_root.
    other = tmp_path / 'other'
    other.mkdir()
    moved = [write(tmp_path / f'm{k}.json', 'cand', k, 70.0,
                   data_root=str(other)) for k in (0, 1)]
    with pytest.raises(ValueError, match='has another data_root'):
        design.comparison_table([*refs, *moved], 'ref', ['cand'])


def test_a_record_the_tables_cannot_read_is_a_user_error(tmp_path, capsys):
    """check_design_record raised a plain ValueError (a traceback where a
    tool does not catch it), and a learning rate of another type passed."""
    good = write(tmp_path / 'a.json', 'cand-a', 0, 80.0)
    text_lr = write(tmp_path / 'b.json', 'cand-a', 1, 80.0, lr='0.001')
    with pytest.raises(UserError, match=f'{text_lr} is not a complete design '
                       'record: no valid lr \\(a number\\)$'):
        design.design_table([good, text_lr])
    test_split = write(tmp_path / 't.json', 'cand-a', 0, 80.0, split='test')
    with pytest.raises(UserError,
                       match=f'{test_split} is not a design-split record'):
        design.design_table([test_split])
    assert tool.main([good, text_lr]) == 2
    assert capsys.readouterr().err == (
        f'ERROR: {text_lr} is not a complete design record: no valid lr (a '
        'number)\n')


def test_cli_refuses_a_run_on_the_synthetic_set(tmp_path, capsys):
    """check_real_data.py --split design on the synthetic stand-in set (a
    smoke test: its records go to results/design by default) wrote a
    record the table showed as a candidate's row, exit 0, and --compare-to
    judged it by the selection rule."""
    root = '/data/synthetic_isic2018'
    paths = comparison_records(tmp_path)
    smoke = write(tmp_path / 'smoke.json', 'good', 5, 95.0, synthetic=True,
                  data_root=root)
    real = write(tmp_path / 'real.json', 'good', 3, 80.0, synthetic=False)
    for options in ([], ['--compare-to', 'ref', '--candidates', 'good']):
        assert tool.main([*paths, real, smoke, *options]) == 2
        captured = capsys.readouterr()
        assert captured.err == (
            f'ERROR: {smoke} is the record of a run on the synthetic '
            f'stand-in set ({root}), not on the real ISIC images: its '
            'figures say nothing about a design; leave it out, and run '
            'tools/check_real_data.py --split design on the converted '
            'real set\n')
        assert captured.out == ''
    assert '| good |' in design.design_table([*paths, real])


def test_refuses_records_of_the_test_split(tmp_path):
    path = write(tmp_path / 't.json', 'cand-a', 0, 80.0, split='test')
    with pytest.raises(ValueError, match='not a design-split record'):
        design.design_table([path])


def test_refuses_a_design_record_of_a_run_on_other_splits(tmp_path, capsys):
    """A record that says split design but whose run was judged on the test
    split (or trained on the full training split, which holds the
    hold-out's images) was compared as a design run: a design chosen on
    the test split."""
    design_splits = dict(train_split='splits/lightweight_design_train.txt',
                         eval_split='splits/lightweight_design_val.txt')
    good = [write(tmp_path / f'r{s}.json', 'ref', s, 80.0 + s,
                  **design_splits) for s in range(2)]
    good.append(write(tmp_path / 'c0.json', 'cand', 0, 81.0, **dict(
        design_splits, split_file='/d/splits/lightweight_design_val.txt')))
    on_test = write(tmp_path / 'c1.json', 'cand', 1, 83.0, **dict(
        design_splits, eval_split='splits/lightweight_test.txt',
        split_file='/d/splits/lightweight_test.txt'))
    assert tool.main([*good, on_test, '--compare-to', 'ref',
                      '--candidates', 'cand']) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f'ERROR: {on_test} says split design but its run read other splits: '
        'eval_split splits/lightweight_test.txt (a design run: '
        'splits/lightweight_design_val.txt), split_file '
        '/d/splits/lightweight_test.txt (a design run: '
        'splits/lightweight_design_val.txt); its figures are no '
        'design-hold-out result (design choices are never made on the test '
        'split); leave it out\n')
    assert captured.out == ''
    full_train = write(tmp_path / 'c2.json', 'cand', 1, 83.0, **dict(
        design_splits, train_split='splits/lightweight_train.txt'))
    with pytest.raises(design.DesignRecordError,
                       match='train_split splits/lightweight_train.txt'):
        design.design_table([*good, full_train])
    # Each recorded key is checked, also after one not recorded; a split
    # not found here is judged by its whole path under the data root.
    for odd in (dict(eval_split='splits/lightweight_test.txt'),
                dict(design_splits,
                     eval_split='other/lightweight_design_val.txt')):
        with pytest.raises(design.DesignRecordError,
                           match=f"eval_split {odd['eval_split']} "):
            design.design_table([*good, write(
                tmp_path / 'c4.json', 'cand', 1, 83.0, **odd)])
    # Records written before the splits were recorded are read as before.
    assert '| cand |' in design.design_table(
        [*good, write(tmp_path / 'c3.json', 'cand', 1, 82.0)])


def test_design_splits_are_judged_by_the_images_they_list(
        tiny_isic, tmp_path, capsys, monkeypatch):
    """Where its split files are found, a design record is judged by the
    images they list: another folder's ``lightweight_design_val.txt``
    holding the test images passed by its file name, and a hold-out (or a
    training split) of another name that keeps the images apart was
    refused."""
    from mmseg_dsnet.utils.messages import counted, first_few
    splits = tiny_isic / 'splits'
    hold_out = splits / 'lightweight_design_val.txt'
    design_splits = dict(data_root=str(tiny_isic),
                         train_split='splits/lightweight_design_train.txt',
                         eval_split='splits/lightweight_design_val.txt')
    good = [write(tmp_path / f'r{s}.json', 'ref', s, 80.0 + s,
                  split_file=str(hold_out), **design_splits)
            for s in range(2)]
    elsewhere = tmp_path / 'copy' / 'splits' / hold_out.name
    elsewhere.parent.mkdir(parents=True)
    test = splits / 'lightweight_test.txt'
    elsewhere.write_text(test.read_text())
    on_test = write(tmp_path / 'c0.json', 'cand', 0, 83.0, **dict(
        design_splits, split_file=str(elsewhere)))
    assert tool.main([*good, on_test]) == 2
    ids = test.read_text().split()
    assert capsys.readouterr().err == (
        f'ERROR: {on_test} says split design but its run read other splits: '
        f'split_file {elsewhere} (lists {counted(len(ids), "image")} of the '
        f'test split {test} ({elsewhere}: {first_few(ids, 3)})); its figures '
        'are no design-hold-out result (design choices are never made on '
        'the test split); leave it out\n')
    full_train = write(tmp_path / 'c1.json', 'cand', 1, 83.0, **dict(
        design_splits, train_split='splits/lightweight_train.txt'))
    with pytest.raises(design.DesignRecordError) as err:
        design.design_table([*good, full_train])
    assert (f'read other splits: train_split splits/lightweight_train.txt '
            f'(lists {counted(len(hold_out.read_text().split()), "image")} '
            f'of the hold-out {hold_out} (') in str(err.value)
    # Files of other names that keep the images apart.
    held_apart = [tmp_path / 'my_val.txt', tmp_path / 'my_train.txt']
    held_apart[0].write_text(hold_out.read_text())
    held_apart[1].write_text(
        (splits / 'lightweight_design_train.txt').read_text())
    renamed = write(tmp_path / 'c2.json', 'cand', 2, 82.0, **dict(
        design_splits, train_split=str(held_apart[1]),
        split_file=str(held_apart[0])))
    assert '| cand |' in design.design_table([renamed])
    # A relative split_file is where the run read it (from its folder),
    # not under the data root.
    monkeypatch.chdir(tmp_path)
    relative = write(tmp_path / 'c3.json', 'cand', 3, 83.0, **dict(
        design_splits, split_file=str(elsewhere.relative_to(tmp_path))))
    with pytest.raises(design.DesignRecordError, match='of the test split'):
        design.design_table([*good, relative])
    # The test split of the hold-out's own data root counts too.
    other = tmp_path / 'other' / 'splits'
    other.mkdir(parents=True)
    (other / 'lightweight_test.txt').write_text('ISIC_9999999\n')
    own = other / 'lightweight_design_val.txt'
    own.write_text(hold_out.read_text() + 'ISIC_9999999\n')
    with pytest.raises(design.DesignRecordError, match=(
            f'lists 1 image of the test split {other}/lightweight_test')):
        design.design_table([*good, write(
            tmp_path / 'c4.json', 'cand', 4, 83.0,
            **dict(design_splits, split_file=str(own)))])
    # So does eval_split, under the data root, in a record without
    # split_file.
    with pytest.raises(design.DesignRecordError, match=(
            r'eval_split splits/lightweight_design_val.txt \(lists 1 ')):
        design.design_table([*good, write(
            tmp_path / 'c6.json', 'cand', 6, 83.0,
            **dict(design_splits, data_root=str(other.parent)))])
    # With no test split found to compare with, a hold-out is judged by
    # its name.
    bare = tmp_path / 'bare' / 'splits'
    bare.mkdir(parents=True)
    (bare / 'my_val.txt').write_text(hold_out.read_text())
    with pytest.raises(design.DesignRecordError,
                       match=r'eval_split splits/my_val.txt \(a design'):
        design.design_table([*good, write(
            tmp_path / 'c5.json', 'cand', 5, 83.0,
            data_root=str(bare.parent), eval_split='splits/my_val.txt',
            train_split='splits/lightweight_design_train.txt')])


def test_a_design_hold_out_with_test_images_added_is_refused(
        tiny_isic, tmp_path):
    """A design hold-out that lists a test image beside its own was taken
    for a design hold-out (only a copy or a subset of a test split was
    refused): design choices were made partly on test images."""
    from mmseg_dsnet.leaderboard.real_data_check import check_design_hold_out
    from mmseg_dsnet.utils.errors import UserError
    splits = tiny_isic / 'splits'
    test = splits / 'lightweight_test.txt'
    test_id = test.read_text().split()[0]
    mixed = tmp_path / 'lightweight_design_val.txt'
    mixed.write_text((splits / 'lightweight_design_val.txt').read_text()
                     + f'{test_id}\n')
    with pytest.raises(UserError) as err:
        check_design_hold_out(dict(data_root=str(tiny_isic),
                                   ann_file=str(mixed)))
    assert str(err.value).startswith(
        f'the design hold-out {mixed} lists 1 image of the test split '
        f'{test} ({mixed}: {test_id}): design choices made on it would be '
        'made on test images.')
    check_design_hold_out(dict(data_root=str(tiny_isic),
                               ann_file='splits/lightweight_design_val.txt'))


def test_a_folder_named_like_a_test_split_is_no_test_split(tmp_path):
    """Only files (or links to them) named like a test split are the data
    root's test splits: a folder of that name lists no images."""
    from mmseg_dsnet.datasets.split_files import test_split_files
    splits = tmp_path / 'splits'
    (splits / 'official_test.txt').mkdir(parents=True)
    (splits / 'lightweight_test.txt').write_text('ISIC_0000000\n')
    assert test_split_files(str(tmp_path)) == [
        str(splits / 'lightweight_test.txt')]


def test_cli_reports_a_bad_record_in_one_line(tmp_path, capsys):
    path = write(tmp_path / 't.json', 'cand-a', 0, 80.0, split='test')
    assert tool.main([path]) == 2
    err = capsys.readouterr().err
    assert err.startswith('ERROR: ') and 'not a design-split record' in err
    assert err.count('\n') == 1


def test_cli_names_a_record_that_does_not_exist(tmp_path, capsys):
    """A mistyped path (or a glob that matched nothing) was reported in
    errno's words."""
    good = write(tmp_path / 'a.json', 'cand-a', 0, 80.0)
    missing = tmp_path / 'nothing_*.json'
    assert tool.main([good, str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f'ERROR: design record {missing} does not exist\n'


def test_cli_names_a_file_that_is_not_json(tmp_path, capsys):
    good = write(tmp_path / 'a.json', 'cand-a', 0, 80.0)
    bad = tmp_path / 'notes.json'
    bad.write_text('# not a record\n')
    assert tool.main([good, str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'ERROR: {bad} is not a JSON file (')
    assert err.count('\n') == 1


def test_no_records_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tool, 'DESIGN_DIR', str(tmp_path))
    assert tool.main([]) == 2
    assert capsys.readouterr().err.startswith('ERROR: no design records')


def test_design_study_quotes_the_records_table():
    """docs/design_study.md shows design_table.py's output for the
    committed records, unchanged (a new or edited record must be
    re-rendered into the report)."""
    import glob
    import os.path as osp
    import re

    from conftest import REPO
    paths = sorted(glob.glob(osp.join(design.DESIGN_DIR, '*.json')))
    # The records are committed: none found is a fault (a moved folder),
    # not a reason to skip the check.
    assert paths, f'no design records under {design.DESIGN_DIR}'
    doc = (REPO / 'docs' / 'design_study.md').read_text()
    assert design.design_table(paths) in doc
    # The decision tables of the third and fourth rounds (15-epoch runs)
    # and of the 30-epoch probe, by the rule stated there.
    short = [p for p in paths if '_128px_15ep_' in p]
    full = [p for p in paths if '_128px_30ep_' in p]
    for candidates in (['dsnet-design-e-subpixel_isic2017',
                        'dsnet-design-e-weak-side-outputs_isic2017'],
                       ['dsnet_isic2017_bce-dice', 'egeunet'],
                       ['dsnet-design-e-hswish_isic2017',
                        'dsnet-design-e-bic-pixel-weight_isic2017']):
        assert design.comparison_table(
            short, 'dsnet-design-e_isic2017', candidates,
            seeds=[0, 1, 2, 3]) in doc
    assert design.comparison_table(
        full, 'dsnet-design-e_isic2017',
        ['dsnet_isic2017_bce-dice', 'egeunet']) in doc
    # The fifth and sixth rounds (30-epoch runs), as judged and paired.
    rounds = ['dsnet-design-e-drop-path-02_isic2017',
              'dsnet-design-e-drop-path-dropout_isic2017']
    assert design.comparison_table(
        full, 'dsnet-design-e_isic2017', rounds, seeds=[0, 1, 2, 3]) in doc
    assert design.comparison_table(
        full, 'dsnet-design-e_isic2017',
        ['dsnet-design-e-drop-path_isic2017',
         'dsnet-design-e-dropout_isic2017', *rounds], seeds=[0, 1, 2, 3],
        paired=True) in doc
    # The seventh round: fresh seeds, judged paired.
    assert design.comparison_table(
        full, 'dsnet-design-e_isic2017',
        ['dsnet-design-e-drop-path-dropout_isic2017'], seeds=[4, 5, 6, 7],
        paired=True) in doc
    # The eighth round, judged paired.
    assert design.comparison_table(
        full, 'dsnet-design-e_isic2017',
        ['dsnet-design-e-deeper-eighth_isic2017'], seeds=[0, 1, 2, 3],
        paired=True) in doc
    # The ninth round's reference, judged paired on the seeds it ran.
    assert design.comparison_table(
        full, 'dsnet-design-e-deeper-eighth_isic2017',
        ['dsnet-design-deeper-eighth-bce-dice_isic2017'], seeds=[0, 1, 2],
        paired=True) in doc
    # The tenth round's candidate, stopped for futility after seed 2.
    assert design.comparison_table(
        full, 'dsnet-design-e-deeper-eighth_isic2017',
        ['dsnet-design-deeper-eighth-branch-drop_isic2017'],
        seeds=[0, 1, 2], paired=True) in doc
    # The twelfth round's candidate, stopped for futility after seed 1.
    assert design.comparison_table(
        full, 'dsnet-design-e-deeper-eighth_isic2017',
        ['dsnet-design-deeper-eighth-no-radial_isic2017'],
        seeds=[0, 1], paired=True) in doc
    # What the rule can see: the spread of the 30-epoch pairs judged.
    e, d = 'dsnet-design-e_isic2017', 'dsnet-design-e-deeper-eighth_isic2017'

    def judged(*candidates):
        """E's five pairs, then the default's with ``candidates``."""
        return [(e, f'dsnet-design-e-{c}_isic2017') for c in
                ('drop-path', 'dropout', 'drop-path-02', 'drop-path-dropout',
                 'deeper-eighth')] + [
            (d, f'dsnet-design-deeper-eighth-{c}_isic2017')
            for c in candidates]

    assert design.paired_spread_table(full, judged(
        'bce-dice', 'branch-drop', 'image-norm')) in doc
    # ... and of all ten pairs, as the thirteenth round quotes it.
    ten = design.paired_spread_table(full, judged(
        'bce-dice', 'branch-drop', 'image-norm', 'no-radial', 'vanilla-conv'))
    assert ten.split('\n\n', 1)[1] in doc
    # ... and of all fourteen pairs through the seventeenth round, on the
    # seeds 0 to 7 they had then (the sixteen-seed test registered after).
    first_eight = [p for p in full
                   if int(re.search(r'_seed(\d+)', p).group(1)) < 8]
    all_judged = judged(
        'bce-dice', 'branch-drop', 'image-norm', 'vanilla-conv', 'no-radial',
        'drop-path', 'replicate-pad', 'image-context', 'group-norm')
    fourteen = design.paired_spread_table(first_eight, all_judged)
    # ... and per image, with the anchor's four seeds compared the same way.
    assert design.paired_spread_table(first_eight, all_judged,
                                      metric='mIoU_img') in doc
    assert design.comparison_table(full, d, ['egeunet'], seeds=[0, 1, 2, 3],
                                   paired=True, metric='mIoU_img') in doc
    assert fourteen.split('\n\n', 1)[1] in doc
    # The tenth round's reference, seeds 0 to 3.
    assert design.comparison_table(
        full, 'dsnet-design-e-deeper-eighth_isic2017',
        ['dsnet-design-deeper-eighth-vanilla-conv_isic2017'],
        seeds=[0, 1, 2, 3], paired=True) in doc
    # The eleventh round's candidate, stopped for futility after seed 1.
    assert design.comparison_table(
        full, 'dsnet-design-e-deeper-eighth_isic2017',
        ['dsnet-design-deeper-eighth-image-norm_isic2017'],
        seeds=[0, 1], paired=True) in doc
    # The thirteenth, fourteenth and sixteenth rounds, stopped after four
    # of eight seeds, and the seventeenth's first four: the table and the
    # quoted verdict.
    for name in ('drop-path', 'replicate-pad', 'image-context',
                 'group-norm'):
        table, verdict = design.comparison_table(
            full, d, [f'dsnet-design-deeper-eighth-{name}_isic2017'],
            seeds=[0, 1, 2, 3], paired=True,
            planned_seeds=8).rstrip().split('\n\n')
        assert table in doc and f'> {verdict}' in doc
    # The seventeenth round, all eight seeds (the verdict in the model card).
    assert design.comparison_table(
        full, d, ['dsnet-design-deeper-eighth-group-norm_isic2017'],
        seeds=list(range(8)), paired=True) in doc
    # ... continued to seed 10 (stopped for futility), pooled and per image.
    eleven = list(range(11))
    table, verdict = design.comparison_table(
        full, d, ['dsnet-design-deeper-eighth-group-norm_isic2017'],
        seeds=eleven, paired=True, planned_seeds=16).rstrip().split('\n\n')
    assert table in doc and f'> {verdict}' in doc
    assert design.comparison_table(
        full, d, ['dsnet-design-deeper-eighth-group-norm_isic2017'],
        seeds=eleven, paired=True, metric='mIoU_img') in doc
    # The anchor's four design seeds beside the default's.
    assert design.comparison_table(full, d, ['egeunet'], seeds=[0, 1, 2, 3],
                                   paired=True) in doc
    # The verdicts of the rounds stopped for futility (--planned-seeds 4).
    for name, seeds in (('branch-drop', [0, 1, 2]), ('image-norm', [0, 1]),
                        ('no-radial', [0, 1])):
        table = design.comparison_table(
            full, d, [f'dsnet-design-deeper-eighth-{name}_isic2017'],
            seeds=seeds, paired=True, planned_seeds=4)
        verdict = table.rstrip().splitlines()[-1]
        assert 'cannot pass with 4 seeds' in verdict
        assert f'> {verdict}' in doc
    # The thirty-ninth round's four seeds, pooled and per image.
    fine = 'dsnet-design-deeper-eighth-fine-labels_isic2017'
    for metric in ('IoU', 'mIoU_img'):
        assert design.comparison_table(
            full, d, [fine], seeds=[0, 1, 2, 3], paired=True,
            metric=metric) in doc
    # The fortieth round's eight seeds and its twenty-seed screen on the
    # CPU (the verdict), pooled and per image.
    pooled = 'dsnet-design-deeper-eighth-pooled-downsampling_isic2017'
    for seeds, min_seeds in ((8, design.MIN_SEEDS), (20, 20)):
        for metric in ('IoU', 'mIoU_img'):
            assert design.comparison_table(
                full, d, [pooled], seeds=list(range(seeds)), paired=True,
                metric=metric, min_seeds=min_seeds) in doc
    # The forty-first round's eight seeds against the pooled default and
    # its twenty-seed screen on the CPU (the verdict).
    centred = 'dsnet-design-deeper-eighth-pooled-centred-stem_isic2017'
    for seeds, min_seeds in ((8, design.MIN_SEEDS), (20, 20)):
        for metric in ('IoU', 'mIoU_img'):
            assert design.comparison_table(
                full, pooled, [centred], seeds=list(range(seeds)),
                paired=True, metric=metric, min_seeds=min_seeds) in doc


def test_design_study_quotes_the_test_time_flip_records():
    """The flip table's figures are the tools/test.py records in
    results/tta, each single pass equal to its design run's record."""
    from conftest import REPO
    doc = (REPO / 'docs' / 'design_study.md').read_text()
    flips = doc.split('## Test-time flips on the design hold-out')[1]
    round_38 = doc.split('## Thirty-eighth round')[1]
    round_40 = doc.split('## Fortieth round')[1].split('## Forty-first')[0]
    round_41 = doc.split('## Forty-first round')[1]
    default = 'dsnet-design-e-deeper-eighth_isic2017'
    candidate = 'dsnet-design-deeper-eighth-flip-consistency_isic2017'
    pooled = 'dsnet-design-deeper-eighth-pooled-downsampling_isic2017'
    centred = 'dsnet-design-deeper-eighth-pooled-centred-stem_isic2017'
    for section, name, row_start, seeds in (
            (flips, default, default, (4, 5, 6, 7)),
            (flips, 'egeunet', 'egeunet', (2, 3)),
            (round_38, candidate, f'{candidate} (flip consistency)',
             (0, 1)),
            (round_40, pooled, f'{pooled} (pooled downsampling)',
             (0, 1, 2, 3, 4, 5, 6, 7)),
            (round_41, centred, f'{centred} (centred stem)',
             (0, 1, 2, 3, 4, 5, 6, 7))):
        row = next(line for line in section.splitlines()
                   if line.startswith(f'| {row_start}'))
        differences = []
        for seed in seeds:
            runs = {mode: json.loads((REPO / 'results' / 'tta' /
                                      f'{name}_s{seed}_{mode}.json'
                                      ).read_text())
                    for mode in ('single', 'tta')}
            assert runs['tta']['test_time_augmentation'] is True
            assert not runs['single']['test_time_augmentation']
            assert runs['single']['split_file'].endswith('design_val.txt')
            single, tta = (runs[mode]['metrics']['IoU']
                           for mode in ('single', 'tta'))
            design_run = json.loads((REPO / 'results' / 'design' /
                                     f'{name}_128px_30ep_seed{seed}.json'
                                     ).read_text())
            assert round(single, 2) == design_run['metrics']['IoU']
            assert f'{single:.2f}' in row and f'{tta:.2f}' in row
            differences.append(tta - single)
            assert f'{tta - single:+.2f}' in row
        assert f'mean {statistics.mean(differences):+.2f}' in row


def test_design_study_quotes_the_seed_spread_of_the_per_image_records():
    """The table of the pictures that spread the seeds is seed_spread.py's
    output for the committed per-image tables of the runs."""
    from conftest import REPO

    from mmseg_dsnet.analysis.seed_spread import (read_tables,
                                                  spread_by_image,
                                                  spread_table)
    doc = (REPO / 'docs' / 'design_study.md').read_text()
    section = doc.split('## What spreads the seeds')[1]
    tables = sorted(str(p) for p in
                    (REPO / 'results' / 'per_image').glob('*.csv'))
    assert len(tables) == 12
    assert spread_table(spread_by_image(read_tables(tables))) in section


def test_design_records_are_named_by_device_and_never_replaced(tmp_path):
    from mmseg_dsnet.leaderboard.real_data_check import write_design_record
    run = dict(input_size=128, epochs=15, seed=0, device='cpu',
               metrics=dict(IoU=80.0))
    write_design_record(str(tmp_path), 'cand', run)
    write_design_record(str(tmp_path), 'cand',
                        dict(run, device='cuda: NVIDIA H200'))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'cand_128px_15ep_seed0.json', 'cand_128px_15ep_seed0_cuda.json']
    write_design_record(str(tmp_path), 'cand',
                        dict(run, metrics=dict(IoU=81.0)))
    records = [json.loads(p.read_text()) for p in tmp_path.iterdir()]
    assert len(records) == 3
    assert json.loads((tmp_path / 'cand_128px_15ep_seed0.json').read_text(
    ))['metrics']['IoU'] == 80.0


def comparison_records(tmp_path):
    ious = dict(ref=[80.0, 81.0, 80.5], good=[81.5, 82.0, 81.8],
                close=[80.4, 81.2, 80.9])
    return [write(tmp_path / f'{name}{seed}.json', name, seed, iou)
            for name, values in ious.items()
            for seed, iou in enumerate(values)]


def test_comparison_applies_the_selection_rule(tmp_path):
    paths = comparison_records(tmp_path)
    paths.append(write(tmp_path / 'g.json', 'good', 0, 70.0,
                       device='cuda: NVIDIA H200'))  # another device
    # Three seeds: the rule's arithmetic (four are needed to decide, see
    # test_the_rule_decides_nothing_on_fewer_seeds_than_it_needs).
    lines = design.comparison_table(paths, 'ref', ['good', 'close'],
                                    min_seeds=3).splitlines()
    assert lines[0].startswith('| candidate | seed 0 | seed 1 | seed 2 | '
                               'mean ± std | difference to ref | 2 standard')
    assert lines[2] == ('| ref | 80.00 | 81.00 | 80.50 | 80.50 ± 0.50 '
                        '| - | - | - |')
    # good: +1.27, above 0.3 and above 2 * sqrt(0.25 / 3 + 0.0633 / 3).
    assert lines[3] == ('| good | 81.50 | 82.00 | 81.80 | 81.77 ± 0.25 '
                        '| +1.27 | 0.65 | yes |')
    # close: +0.33 beats the minimum gain but not the standard errors.
    assert lines[4].endswith('| +0.33 | 0.74 | no |')
    strict = design.comparison_table(paths, 'ref', ['good'], min_gain=1.5,
                                     min_seeds=3).splitlines()
    assert strict[3].endswith('| no |')


def test_a_gain_that_only_equals_the_rule_does_not_pass():
    """The rule asks for a gain of *more* than ``min_gain`` and *more*
    than the standard errors. Gains of exactly 0.5 on every seed (0.5 is
    exact in binary) have a paired standard error of 0."""
    values = {'ref': {0: 80.0, 1: 81.0, 2: 80.5, 3: 80.0},
              'up': {0: 80.5, 1: 81.5, 2: 81.0, 3: 80.5},
              'same': {0: 80.0, 1: 81.0, 2: 80.5, 3: 80.0}}
    columns = [(s, f'seed {s}') for s in range(4)]
    lines = design.rule_table(values, 'ref', ['up', 'same'], columns,
                              min_gain=0.5, paired=True).splitlines()
    assert lines[3].endswith('| +0.50 | 0.00 | no |')
    # A negative min_gain (a non-inferiority margin): a gain of 0 is above
    # it but only equals its standard error of 0.
    lines = design.rule_table(values, 'ref', ['up', 'same'], columns,
                              min_gain=-1.0, paired=True).splitlines()
    assert lines[3].endswith('| +0.50 | 0.00 | yes |')
    assert lines[4].endswith('| +0.00 | 0.00 | no |')
    # A stopped comparison: differences 1, 1 and two missing ones of
    # average x have the mean (2 + 2x) / 4, exactly 0.5 at x = 0 (on the
    # scan), so the lowest average that still passes is the next step.
    low, high = design.still_passing_averages([1.0, 1.0], 4, min_gain=0.5,
                                              se_factor=0.0)
    assert (low, high) == (pytest.approx(0.01), 20.0)


def test_paired_comparison_takes_the_spread_of_the_differences(tmp_path):
    """close is 0.2 to 0.4 above ref on every seed: within the seeds'
    spread unpaired, well outside it paired."""
    paths = comparison_records(tmp_path)
    lines = design.comparison_table(paths, 'ref', ['close'], paired=True,
                                    min_seeds=3).splitlines()
    assert '| 2 standard errors (paired) | passes |' in lines[0]
    # Differences 0.4, 0.2, 0.4: std 0.1155, 2 * 0.1155 / sqrt(3) = 0.13.
    assert lines[3].endswith('| +0.33 | 0.13 | yes |')
    assert tool.main([*paths, '--compare-to', 'ref', '--candidates',
                      'close', '--paired', '--min-seeds', '3']) == 0


def test_the_rule_decides_nothing_on_fewer_seeds_than_it_needs(tmp_path,
                                                              capsys):
    """docs/design_study.md's rule needs at least four seeds ("with fewer
    the round decides nothing"): a candidate that met it on two or three
    seeds was shown as passing ("yes"), on a standard error of one or two
    degrees of freedom."""
    paths = comparison_records(tmp_path)
    two = design.comparison_table(paths, 'ref', ['good'], seeds=[0, 1],
                                  paired=True).splitlines()
    # good: +1.50, +1.00; 2 * 0.354 / sqrt(2) = 0.50: the rule is met.
    assert two[3].endswith('| +1.25 | 0.50 | too few seeds (2 < 4) |')
    # A candidate that fails the rule fails it whatever the seeds.
    assert design.comparison_table(
        paths, 'ref', ['good'], seeds=[0, 1], paired=True,
        min_gain=2.0).splitlines()[3].endswith('| no |')
    assert tool.main([*paths, '--compare-to', 'ref', '--candidates',
                      'good']) == 0
    assert capsys.readouterr().out.splitlines()[3].endswith(
        '| +1.27 | 0.65 | too few seeds (3 < 4) |')
    # On four seeds the rule decides.
    four = [*paths, write(tmp_path / 'ref3.json', 'ref', 3, 80.0),
            write(tmp_path / 'good3.json', 'good', 3, 81.6)]
    assert design.comparison_table(four, 'ref', ['good']).splitlines()[
        3].endswith('| yes |')
    # Planned seeds too few to decide, and a minimum below two, are refused.
    assert tool.main([*paths, '--compare-to', 'ref', '--candidates', 'good',
                      '--seeds', '0', '1', '--paired', '--planned-seeds',
                      '3']) == 2
    assert capsys.readouterr().err == (
        'ERROR: 3 planned seeds are fewer than the 4 the rule needs to '
        'decide\n')
    assert tool.main([*paths, '--compare-to', 'ref', '--candidates', 'good',
                      '--min-seeds', '1']) == 2
    assert capsys.readouterr().err == (
        'ERROR: --min-seeds must be at least 2, got 1\n')


def test_paired_spread_pools_the_differences_of_each_pair(tmp_path,
                                                          capsys):
    paths = comparison_records(tmp_path)
    text = design.paired_spread_table(paths, [('ref', 'close'),
                                              ('ref', 'good')])
    lines = text.splitlines()
    assert lines[2] == '| ref | close | 0, 1, 2 | +0.40, +0.20, +0.40 | 0.12 |'
    # good - ref: +1.50, +1.00, +1.30 (std 0.2517); pooled over 2 + 2
    # degrees of freedom: sqrt((0.01333 + 0.06333) / 2) = 0.1958.
    assert lines[3] == '| ref | good | 0, 1, 2 | +1.50, +1.00, +1.30 | 0.25 |'
    assert 'Pooled std of the per-seed differences: 0.20 (4 degrees' in text
    # 2 * 0.1958 / sqrt(4) = 0.196 -> the 0.3 minimum; / sqrt(16) = 0.098.
    assert '| 4 | 0.30 |' in lines and '| 16 | 0.30 |' in lines
    wide = design.paired_spread_table(paths, [('ref', 'good')],
                                      seed_counts=[2], min_gain=0.0)
    assert '| 2 | 0.36 |' in wide.splitlines()  # 2 * 0.2517 / sqrt(2)
    assert tool.main([*paths, '--spread', 'ref:close', 'ref:good']) == 0
    assert 'Pooled std' in capsys.readouterr().out
    assert tool.main([*paths, '--spread', 'ref']) == 2
    assert 'REFERENCE:CANDIDATE' in capsys.readouterr().err


def test_a_stopped_comparison_says_whether_it_can_still_pass(tmp_path,
                                                             capsys):
    # Differences 1.0, 1.1, 0.9 and a fourth x: x near 1 passes easily; far
    # below the mean drops, far above the spread grows faster than the mean.
    def passes(diffs):
        bound = 2 * statistics.stdev(diffs) / len(diffs)**0.5
        return statistics.mean(diffs) > max(0.3, bound)

    low, high = design.still_passing_averages([1.0, 1.1, 0.9], 4)
    assert -5 < low < 1 < high < 20
    assert passes([1.0, 1.1, 0.9, low]) and passes([1.0, 1.1, 0.9, high])
    assert not passes([1.0, 1.1, 0.9, low - 0.01])
    assert not passes([1.0, 1.1, 0.9, high + 0.01])
    # Equal missing differences are the best case: one average that fails
    # with them fails with any, so none passes here.
    assert design.still_passing_averages([1.29, -0.18, -1.35], 4) is None
    assert design.still_passing_averages([-0.64, -0.74], 4) is None
    with pytest.raises(ValueError, match='4 planned seeds leave none'):
        design.still_passing_averages([1, 2, 3, 4], 4)
    paths = comparison_records(tmp_path)
    lines = design.comparison_table(paths, 'ref', ['good', 'close'],
                                    seeds=[0, 1], paired=True,
                                    planned_seeds=3,
                                    min_seeds=3).splitlines()
    # good: +1.50, +1.00; close: +0.40, +0.20.
    assert lines[-2].startswith('good can still pass with 3 seeds only if '
                                'the 1 missing difference is +')
    assert lines[-1].startswith('close can still pass with 3 seeds')
    # With ten seeds to come, any large enough average passes: no upper end.
    lines = design.comparison_table(paths, 'ref', ['good'], seeds=[0, 1],
                                    paired=True, planned_seeds=12)
    assert lines.rstrip().endswith(
        'good can still pass with 12 seeds only if the 10 missing '
        'differences average at least +0.11.')
    with pytest.raises(ValueError, match='paired rule only'):
        design.comparison_table(paths, 'ref', ['good'], planned_seeds=3)
    assert tool.main([*paths, '--compare-to', 'ref', '--candidates', 'good',
                      '--seeds', '0', '1', '2', '--paired',
                      '--planned-seeds', '3', '--min-seeds', '3']) == 2
    assert capsys.readouterr().err == (
        'ERROR: 3 planned seeds leave none to run after 3\n')


def test_comparison_refuses_what_it_cannot_compare(tmp_path):
    paths = comparison_records(tmp_path)
    with pytest.raises(ValueError, match='no run of ref seed 5, good seed 5$'):
        design.comparison_table(paths, 'ref', ['good'], seeds=[0, 5])
    with pytest.raises(ValueError, match='no design runs of other on cpu'):
        design.comparison_table(paths, 'ref', ['other'])
    one = [write(tmp_path / 'o.json', 'one', 0, 80.0)]
    with pytest.raises(ValueError, match='fewer than two seeds'):
        design.comparison_table(paths + one, 'ref', ['one'])
    smoke = [write(tmp_path / 's.json', 'good', 7, 30.0, train_images=16)]
    with pytest.raises(ValueError,
                       match='good \\(seed 7\\) has another.*one setting'):
        design.comparison_table(paths + smoke, 'ref', ['good'])
    twice = [write(tmp_path / 't.json', 'good', 1, 81.0)]
    with pytest.raises(ValueError, match='good has two runs of seed 1'):
        design.comparison_table(paths + twice, 'ref', ['good'])


def test_cli_compares_and_checks_its_options(tmp_path, capsys):
    paths = comparison_records(tmp_path)
    assert tool.main([*paths, '--compare-to', 'ref', '--candidates',
                      'good']) == 0
    assert '| good | 81.50 |' in capsys.readouterr().out
    assert tool.main([*paths, '--compare-to', 'ref']) == 2
    assert capsys.readouterr().err == (
        'ERROR: --compare-to and --candidates go together\n')
    assert tool.main([*paths, '--compare-to', 'ref', '--candidates',
                      'good', '--seeds', '9', '0']) == 2
    assert capsys.readouterr().err.startswith('ERROR: no run of ref seed 9')
    # A negative factor would let gains below the noise pass.
    assert tool.main([*paths, '--compare-to', 'ref', '--candidates', 'good',
                      '--se-factor', '-1']) == 2
    assert capsys.readouterr().err == (
        'ERROR: --se-factor must be at least 0, got -1.0\n')
    # A nan failed every candidate ("passes: no"), exit 0.
    for option in ('--se-factor', '--min-gain'):
        assert tool.main([*paths, '--compare-to', 'ref', '--candidates',
                          'good', option, 'nan']) == 2
        assert capsys.readouterr().err == (
            f'ERROR: {option} must be a finite number, got nan\n')


def test_cli_refuses_options_the_table_would_ignore(tmp_path, capsys):
    """Comparison options without a comparison printed the full table,
    sorted by pooled IoU (``--metric mIoU_img``, ``--seeds 7 --paired``),
    and ``--compare-to`` beside ``--spread`` was dropped: exit 0 either
    way."""
    paths = comparison_records(tmp_path)
    for options, message in (
            (['--metric', 'mIoU_img'], 'ERROR: --metric applies only to '
             '--compare-to or --spread; this table would not use it\n'),
            (['--seeds', '7', '--paired'], 'ERROR: --seeds, --paired apply '
             'only to --compare-to; this table would not use them\n'),
            (['--spread', 'ref:good', '--planned-seeds', '8'],
             'ERROR: --planned-seeds applies only to --compare-to; this '
             'table would not use it\n'),
            (['--spread', 'ref:good', '--compare-to', 'ref', '--candidates',
              'good'], 'ERROR: --spread and --compare-to make two different '
             'tables; give one of them\n')):
        assert tool.main([*paths, *options]) == 2
        captured = capsys.readouterr()
        assert captured.err == message and captured.out == ''
    # What each table uses is still accepted.
    assert tool.main([*paths, '--spread', 'ref:good', '--metric',
                      'mIoU_img']) == 0
    assert '| ref | good |' in capsys.readouterr().out


def gain_pooled_only(tmp_path):
    """Three seeds of ``ref`` and ``cand``: ``cand`` gains pooled IoU
    (+1.0, +0.7, +1.3) and nothing per image (``mIoU_img = ref - 1`` for
    both)."""
    paths = []
    for seed, (ref, cand) in enumerate(((80.0, 81.0), (80.5, 81.2),
                                        (79.8, 81.1))):
        paths.append(write(tmp_path / f'ref{seed}.json', 'ref', seed, ref))
        path = tmp_path / f'cand{seed}.json'
        write(path, 'cand', seed, cand)
        record = json.loads(path.read_text())
        record['metrics']['mIoU_img'] = ref - 1
        path.write_text(json.dumps(record))
        paths.append(str(path))
    return paths


def test_comparisons_of_another_figure(tmp_path, capsys):
    """``--metric mIoU_img``: the per-image mean instead of pooled IoU, here
    a candidate that gains pooled IoU and nothing per image."""
    paths = gain_pooled_only(tmp_path)
    pooled = design.comparison_table(paths, 'ref', ['cand'], paired=True,
                                     min_seeds=3)
    assert pooled.splitlines()[3].endswith('| yes |')
    per_image = design.comparison_table(paths, 'ref', ['cand'], paired=True,
                                        metric='mIoU_img')
    # Named in the headers: the table read as one of pooled IoU.
    assert '| mIoU_img mean ± std |' in per_image.splitlines()[0]
    assert '| mean ± std |' in pooled.splitlines()[0]
    assert per_image.splitlines()[2].startswith(
        '| ref | 79.00 | 79.50 | 78.80 |')
    assert per_image.splitlines()[3].endswith('| +0.00 | 0.00 | no |')
    spread = design.paired_spread_table(paths, [('ref', 'cand')],
                                        metric='mIoU_img')
    assert '| ref | cand | 0, 1, 2 | +0.00, +0.00, +0.00 | 0.00 |' in spread
    assert '| seeds | mIoU_img differences | std |' in spread
    assert 'std of the per-seed mIoU_img differences: 0.00' in spread
    assert tool.main([*paths, '--compare-to', 'ref', '--candidates', 'cand',
                      '--paired', '--metric', 'mIoU_img']) == 0
    assert capsys.readouterr().out == per_image


def test_cli_refuses_a_run_counted_twice(tmp_path, capsys):
    """One record given twice (a path beside a glob that names it), or a
    rerun's record of the same seed, was a second seed: ``0, 0`` and
    ``± 0.00`` in the table, exit 0."""
    paths = comparison_records(tmp_path)
    assert tool.main([*paths, paths[0]]) == 2
    captured = capsys.readouterr()
    assert captured.err == f'ERROR: design record {paths[0]} is given twice\n'
    assert captured.out == ''
    rerun = write(tmp_path / 'ref0_20250101-000000.json', 'ref', 0, 79.0)
    assert tool.main([*paths, rerun]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f'ERROR: ref has two runs of seed 0 on cpu with one setting: '
        f'{paths[0]} and {rerun}; give one of them\n')
    assert captured.out == ''


def test_cli_refuses_records_it_cannot_read(tmp_path, capsys):
    """A record that is not an object, or lacks a figure, ended in a
    traceback (``AttributeError``, ``TypeError``) or ``ERROR: 'IoU'``."""
    good = write(tmp_path / 'a.json', 'cand-a', 0, 80.0)
    record = json.loads((tmp_path / 'a.json').read_text())
    cases = {'list.json': [record],
             'nulls.json': dict(record, metrics=None),
             'no_iou.json': dict(record, metrics=dict(record['metrics'],
                                                      IoU=None)),
             'text_seed.json': dict(record, seed='1')}
    for name, content in cases.items():
        bad = tmp_path / name
        bad.write_text(json.dumps(content))
        assert tool.main([good, str(bad)]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith(f'ERROR: {bad} is not a ')
        assert captured.err.count('\n') == 1 and captured.out == ''
    with pytest.raises(ValueError, match='no valid metrics \\(an object\\)'):
        design.design_table([str(tmp_path / 'nulls.json')])
    with pytest.raises(ValueError, match='no valid metrics.IoU'):
        design.design_table([str(tmp_path / 'no_iou.json')])


def test_comparisons_refuse_a_name_seed_or_pair_twice(tmp_path, capsys):
    """A repeated seed counted as another paired unit, the reference as a
    candidate (or a candidate twice) added rows of a design against
    itself, and a pair of one design (zero differences) or a pair given
    twice biased the pooled spread: all exit 0."""
    paths = comparison_records(tmp_path)
    for options, message in (
            (['--compare-to', 'ref', '--candidates', 'good', '--seeds', '0',
              '0', '1'], 'the seeds repeat a value: 0 0 1'),
            (['--compare-to', 'ref', '--candidates', 'ref', 'good'],
             'ref is given twice'),
            (['--compare-to', 'ref', '--candidates', 'good', 'good'],
             'good is given twice'),
            (['--spread', 'ref:ref', 'ref:good'],
             'the pair ref:ref compares a design with itself'),
            (['--spread', 'ref:good', 'good:ref'],
             'the pair good:ref is given twice')):
        assert tool.main([*paths, *options]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith(f'ERROR: {message}')
        assert captured.err.count('\n') == 1 and captured.out == ''


def test_cli_says_where_a_name_without_runs_has_them(tmp_path, capsys):
    """``--compare-to`` (or ``--spread``) naming a design whose runs are all
    on another device (``--device`` left at cpu, or given as ``cuda`` for
    records of ``'cuda: NVIDIA H200 (fast_train)'``), or a name no record
    has (a config stem without ``_isic2017``): ``ERROR: no design runs of
    NAME on cpu``, which named neither the devices nor the names there
    are."""
    fast = 'cuda: NVIDIA H200 (fast_train)'
    paths = [write(tmp_path / f'{name}{seed}.json', name, seed, 80.0 + seed,
                   device=fast)
             for name in ('ref_isic2017', 'cand_isic2017') for seed in (0, 1)]
    for argv in (['--compare-to', 'ref_isic2017', '--candidates',
                  'cand_isic2017'],
                 ['--spread', 'ref_isic2017:cand_isic2017', '--device',
                  'cuda']):
        assert tool.main([*paths, *argv]) == 2
        device = 'cuda' if '--spread' in argv else 'cpu'
        assert capsys.readouterr().err == (
            f'ERROR: no design runs of ref_isic2017 on {device}; its runs '
            f"are on '{fast}': give one of these as --device\n")
    assert tool.main([*paths, '--compare-to', 'ref', '--candidates',
                      'cand_isic2017', '--device', fast]) == 2
    assert capsys.readouterr().err == (
        f'ERROR: no design runs of ref on {fast}: none of the 4 records '
        "given is of that name (a record's name is its config's stem; "
        'nearest: ref_isic2017)\n')
    assert tool.main([paths[0], '--compare-to', 'ref', '--candidates',
                      'cand_isic2017', '--device', fast]) == 2
    assert capsys.readouterr().err.startswith(
        f'ERROR: no design runs of ref on {fast}: none of the 1 record '
        'given is of that name')
    assert tool.main([*paths, '--compare-to', 'ref_isic2017',
                      '--candidates', 'cand_isic2017', '--device',
                      fast]) == 0


def test_spread_refuses_pairs_of_other_settings(tmp_path, capsys):
    """``--spread A:B C:D`` where A and B ran 15 epochs and C and D 30 (or
    at another input size, on other data): the per-seed differences of both
    schedules were pooled into one spread and one "difference the rule
    needs", exit 0."""
    paths = []
    for name, epochs in (('a', 15), ('b', 15), ('c', 30), ('d', 30)):
        for seed in (0, 1, 2):
            path = write(tmp_path / f'{name}{seed}.json', name, seed,
                         80.0 + seed * (name in 'bd'))
            record = json.loads(open(path).read())
            record['epochs'] = epochs
            open(path, 'w').write(json.dumps(record))
            paths.append(path)
    assert tool.main([*paths, '--spread', 'a:b', 'c:d']) == 2
    assert capsys.readouterr().err == (
        'ERROR: the pair c:d has another epochs than the pairs before it '
        '(epochs 30 (a:b: 15)): the pooled spread would mix different '
        'experiments; give pairs of one setting (e.g. the records '
        'results/design/*_128px_30ep_*.json)\n')
    assert tool.main([*paths, '--spread', 'c:d', 'a:c']) == 2
    assert tool.main([*paths, '--spread', 'a:b']) == 0
    assert 'Pooled std of the per-seed differences: 1.00 (2 degrees' in \
        capsys.readouterr().out


def test_tables_never_show_an_imperfect_figure_as_100(tmp_path):
    """A design-val figure of 99.9999 (LesionMetric never writes 100 for an
    imperfect one) read ``100.00`` in the tables; the seconds of the
    training time are no percentage and keep ``.2f``."""
    paths = [write(tmp_path / f'a{seed}.json', 'cand-a', seed, 99.9999)
             for seed in range(2)]
    paths += [write(tmp_path / f'b{seed}.json', 'cand-b', seed, 80.0)
              for seed in range(2)]
    table = design.design_table(paths)
    assert '100.00' not in table
    assert '| >99.99 ± 0.00 |' in table and '| 600.50 ± 0.71 |' in table
    rule = design.comparison_table(paths, 'cand-b', ['cand-a'],
                                   min_seeds=2)
    assert '100.00' not in rule
    assert '| cand-a | >99.99 | >99.99 | >99.99 ± 0.00 |' in rule
    assert design.mean_and_spread([99.99999]) == '>99.99'
    assert design.mean_and_spread([0.001, 0.002]) == '<0.01 ± 0.00'
    assert design.mean_and_spread([99.999], percentage=False) == '100.00'


def test_design_records_never_round_an_imperfect_figure_to_100():
    """The records kept 2 decimals with round(): 99.9999 became 100.0."""
    from mmseg_dsnet.utils.percent import round_percent
    assert round_percent(99.9999, 2) == 99.99
    assert round_percent(100.0, 2) == 100.0
    assert round_percent(0.0001, 2) == 0.01 and round_percent(0.0, 2) == 0.0
    assert round_percent(81.0527, 2) == 81.05


def test_runs_of_a_config_edited_between_seeds_are_not_pooled(tmp_path,
                                                               capsys):
    # Seeds 0 and 1 trained before the candidate's config was edited, seed
    # 2 after: the row pooled the seeds of two models under one name.
    config = 'configs/dsnet/design/cand-a.py'
    gate = dict(type='EncoderDecoder', decode_head=dict(use_gate=True))
    paths = [write(tmp_path / f'a{seed}.json', 'cand-a', seed, 78.0 + seed,
                   config=config, model_config=gate) for seed in (0, 1)]
    assert '| 0, 1 |' in design.design_table(paths)
    edited = dict(gate, decode_head=dict(use_gate=False))
    paths.append(write(tmp_path / 'a2.json', 'cand-a', 2, 82.0,
                       config=config, model_config=edited))
    with pytest.raises(design.DesignRecordError,
                       match='model.decode_head.use_gate differs'):
        design.design_table(paths)
    assert tool.main(paths) == 2
    err = capsys.readouterr().err
    assert err.startswith('ERROR: ') and 'a2.json' in err
    # Records without model_config (written before it was) pass.
    paths[-1] = write(tmp_path / 'a2.json', 'cand-a', 2, 82.0, config=config)
    assert '| 0, 1, 2 |' in design.design_table(paths)


def test_design_records_keep_the_model_apart_from_the_input_size():
    from mmseg_dsnet.leaderboard.real_data_check import (design_model_config,
                                                         load_run_config,
                                                         set_input_size)
    cfg = load_run_config('configs/dsnet/dsnet_isic2017.py')
    small = load_run_config('configs/dsnet/dsnet_isic2017.py')
    set_input_size(small, 128)
    model = design_model_config(cfg)
    assert model == design_model_config(small)
    assert json.loads(json.dumps(model)) == model
    assert model['decode_head']['type'] == cfg.model.decode_head.type


def test_design_records_of_one_seed_in_one_second_are_all_kept(
        tmp_path, monkeypatch):
    """A third record of a seed written in the second of the second (two
    sweeps into one --record-dir) took the second's stamped name and
    replaced it."""
    from mmseg_dsnet.leaderboard import real_data_check
    monkeypatch.setattr(real_data_check.time, 'strftime',
                        lambda fmt: '20250101-000000')
    run = dict(input_size=128, epochs=15, seed=0, device='cpu')
    for iou in (80.0, 81.0, 82.0):
        real_data_check.write_design_record(
            str(tmp_path), 'cand', dict(run, metrics=dict(IoU=iou)))
    kept = {p.name: json.loads(p.read_text())['metrics']['IoU']
            for p in tmp_path.iterdir()}
    assert kept == {'cand_128px_15ep_seed0.json': 80.0,
                    'cand_128px_15ep_seed0_20250101-000000.json': 81.0,
                    'cand_128px_15ep_seed0_20250101-000000-1.json': 82.0}


def test_design_study_candidate_tables_quote_get_flops():
    """Each candidate row of docs/design_study.md that names its design
    config quotes the parameters and GFLOPs get_flops.py counts for it at
    256x256 (the budget every candidate is held to); a figure left from
    another candidate or a changed config would misstate its cost."""
    import re

    from conftest import REPO
    get_flops = load_tool('analysis_tools/get_flops.py').get_flops
    doc = (REPO / 'docs' / 'design_study.md').read_text()
    rows = re.findall(r'^\|[^\n]*`design/([^`]+\.py)`[^\n]*'
                      r'\| (\d\.\d{3}) \| (\d\.\d{3}) \|$', doc, re.M)
    assert len(rows) >= 35
    counted = {}
    for name, params, flops in rows:
        if name not in counted:
            # Only the trained form's figures are quoted: the deployed
            # form's trace (a third of the time) is left out.
            result = get_flops(
                str(REPO / 'configs/dsnet/design' / name), (256, 256),
                count_deployed=False)
            counted[name] = (f"{result['params'] / 1e6:.3f}",
                             f"{result['flops'] / 1e9:.3f}")
        assert (params, flops) == counted[name], name


def test_train_time_of_runs_trained_together_is_marked_as_the_loop(
        tmp_path):
    """The fast trainer records the loop's time for each of the runs it
    trained together: the cell names the loop, not a per-run mean."""
    def fast(name, seed, together, seconds):
        path = write(tmp_path / f'{name}{seed}.json', 'a', seed, 80.0,
                     device='cuda: NVIDIA H200 (fast_train)')
        record = json.loads((tmp_path / f'{name}{seed}.json').read_text())
        record.update(runs_together=together, train_time_s=seconds)
        (tmp_path / f'{name}{seed}.json').write_text(json.dumps(record))
        return path

    paths = [fast('f', seed, 40, 378.71) for seed in range(3)]
    paths += [fast('g', seed, 8, 100.5) for seed in range(3, 5)]
    paths += [write(tmp_path / f'c{seed}.json', 'b', seed, 70.0)
              for seed in range(2)]
    rows = design.design_table(paths).splitlines()
    assert rows[2].endswith(
        '| 100.50 (8 runs together), 378.71 (40 runs together) |')
    assert rows[3].endswith('| 600.50 ± 0.71 |')  # seeds one by one
    # Seeds trained one by one beside a loop: their mean is per run.
    mixed = design.design_table(paths[:1] + [write(
        tmp_path / f'm{seed}.json', 'a', seed, 80.0,
        device='cuda: NVIDIA H200 (fast_train)') for seed in range(5, 7)
    ]).splitlines()[2]
    assert mixed.endswith(
        '| 605.50 ± 0.71 (per run), 378.71 (40 runs together) |'), mixed
    for value in ('40', 0):  # a run of no loop would drop out of the cell
        bad = fast('bad', 9, value, 378.71)
        with pytest.raises(UserError, match='runs_together'):
            design.design_table([bad])


def test_check_real_data_names_the_split_its_images_are_scored_on():
    """``check_real_data.py --split design`` scores the design hold-out (a
    validation split): its table headed that count ``test img``."""
    from mmseg_dsnet.leaderboard.real_data_check import (TABLE_KEYS,
                                                         results_table)

    def result(split):
        return dict(split=split, train_images=1350, test_images=150,
                    train_time_s=12.0, metrics=dict.fromkeys(TABLE_KEYS,
                                                             80.0))
    header = results_table({'dsnet': result('design')}).splitlines()[0]
    assert header.split()[1:5] == ['train', 'img', 'val', 'img']
    header = results_table({'dsnet': result('test')}).splitlines()[0]
    assert header.split()[1:5] == ['train', 'img', 'test', 'img']


def test_results_table_names_mixed_evaluations_and_imperfect_figures():
    """Runs scored on two sets are counted as ``eval img`` (neither set's
    name), and a figure just short of 100 % (or just above 0 %) is not
    shown as 100 (or 0)."""
    from mmseg_dsnet.leaderboard.real_data_check import (TABLE_KEYS,
                                                         results_table)

    def result(split, value):
        return dict(split=split, train_images=4, test_images=2,
                    train_time_s=1.0,
                    metrics=dict.fromkeys(TABLE_KEYS, value))
    for first, second in (('design', 'test'), ('test', 'design')):
        header = results_table({'a': result(first, 50.0),
                                'b': result(second, 50.0)}).splitlines()[0]
        assert header.split()[1:5] == ['train', 'img', 'eval', 'img']
    rows = results_table({'a': result('test', 99.996),
                          'b': result('test', 0.004)}).splitlines()[1:]
    assert rows[0].split()[4:] == ['>99.99'] * len(TABLE_KEYS)
    assert rows[1].split()[4:] == ['<0.01'] * len(TABLE_KEYS)


def test_cli_refuses_a_record_whose_figure_is_not_finite(tmp_path, capsys):
    """A record with ``NaN`` or ``Infinity`` (Python's ``json`` writes and
    reads them) gave a row of ``nan`` for one seed, exit 0, and a
    statistics traceback (``AttributeError``) for several seeds or
    ``--compare-to``, exit 1."""
    paths = [write(tmp_path / f'a{seed}.json', 'a', seed, 80.0 + seed)
             for seed in range(4)]
    ref = [write(tmp_path / f'r{seed}.json', 'ref', seed, 79.0)
           for seed in range(4)]
    good = (tmp_path / 'a1.json').read_text()
    for key, value in (('IoU', float('nan')), ('TJ', float('inf')),
                       ('train_time_s', float('nan'))):
        record = json.loads(good)
        if key == 'train_time_s':
            record[key] = value
        else:
            record['metrics'][key] = value
        bad = tmp_path / 'a1.json'
        bad.write_text(json.dumps(record))
        for args in ([paths[1]], paths, [*paths, *ref, '--compare-to', 'ref',
                                         '--candidates', 'a', '--paired']):
            assert tool.main(args) == 2, (key, args)
            captured = capsys.readouterr()
            name = key if key == 'train_time_s' else f'metrics.{key}'
            assert captured.err == (
                f'ERROR: {bad} is not a complete design record: no valid '
                f'{name} (a number)\n')
            assert captured.out == ''


def test_rows_of_other_learning_rates_or_data_say_so(tmp_path):
    """Rows of candidates run at different learning rates (``--lr``) or on
    different data roots (another conversion: another hold-out) showed
    the name alone, read as runs of one setting side by side, best first;
    a table whose rows share them is unchanged."""
    paths = [write(tmp_path / f'a{k}.json', 'cand-a', k, 80.0, lr=0.002,
                   data_root='/data/isic2017') for k in (0, 1)]
    paths += [write(tmp_path / f'b{k}.json', 'cand-b', k, 79.0, lr=0.001,
                    data_root='/data/other') for k in (0, 1)]
    paths.append(write(tmp_path / 'c0.json', 'cand-c', 0, 78.0))
    rows = [line.split(' | ')[0] for line in
            design.design_table(paths).splitlines()[2:]]
    assert rows == ['| cand-a (lr 0.002, data_root /data/isic2017)',
                    '| cand-b (lr 0.001, data_root /data/other)',
                    '| cand-c']
    alike = [write(tmp_path / f's{k}.json', f'cand-{k}', 0, 80.0 - k,
                   lr=0.001, data_root='/data/isic2017') for k in (0, 1)]
    rows = [line.split(' | ')[0] for line in
            design.design_table(alike).splitlines()[2:]]
    assert rows == ['| cand-0', '| cand-1']
    # A candidate run at two rates: each of its rows names the data too.
    paths += [write(tmp_path / f'd{k}.json', 'cand-d', 0, 77.0 - k, lr=lr,
                    data_root='/data/isic2017')
              for k, lr in enumerate((0.004, 0.008))]
    rows = [line.split(' | ')[0] for line in
            design.design_table(paths).splitlines()[2:]]
    assert rows[3:] == ['| cand-d (lr 0.004, data_root /data/isic2017)',
                        '| cand-d (lr 0.008, data_root /data/isic2017)']



def test_two_runs_trained_together_are_marked_as_their_loop(tmp_path):
    """Two runs of one fast-trainer loop (``runs_together`` 2) record the
    loop's time each: the cell is that time, marked as the loop's, not a
    per-run mean of it."""
    paths = []
    for seed in range(2):
        path = tmp_path / f'p{seed}.json'
        write(path, 'a', seed, 80.0, device='cuda: NVIDIA H200 (fast_train)')
        record = json.loads(path.read_text())
        record.update(runs_together=2, train_time_s=250.0)
        path.write_text(json.dumps(record))
        paths.append(str(path))
    row = design.design_table(paths).splitlines()[2]
    assert row.endswith('| 0, 1 | 80.00 ± 0.00 | 88.89 ± 0.00 | '
                        '90.00 ± 0.00 | 95.00 ± 0.00 | 79.00 ± 0.00 | '
                        '75.00 ± 0.00 | 250.00 (2 runs together) |'), row


def test_cli_spread_of_another_figure(tmp_path, capsys):
    """``--spread REF:CAND --metric mIoU_img`` prints the spread of the
    per-image differences (here none: 0.00), not of pooled IoU's."""
    paths = gain_pooled_only(tmp_path)
    assert tool.main([*paths, '--spread', 'ref:cand', '--metric',
                      'mIoU_img']) == 0
    out = capsys.readouterr().out
    assert '| seeds | mIoU_img differences | std |' in out
    assert '| ref | cand | 0, 1, 2 | +0.00, +0.00, +0.00 | 0.00 |' in out
