"""The design table (mmseg_dsnet.leaderboard.design and its command line
tools/analysis_tools/design_table.py): design-run records grouped by
candidate, mean and spread over seeds, best first."""
import json

import pytest
from conftest import load_tool

from mmseg_dsnet.leaderboard import design

tool = load_tool('analysis_tools/design_table.py')


def write(path, name, seed, iou, split='design', device='cpu',
          train_images=1350):
    metrics = dict(IoU=iou, DSC=2 * iou / (100 + iou) * 100, Sen=90.0,
                   Spe=95.0, mIoU_img=iou - 1, TJ=iou - 5)
    path.write_text(json.dumps(dict(
        name=name, seed=seed, split=split, input_size=128, epochs=15,
        train_images=train_images, test_images=150,
        train_time_s=600.0 + seed,
        device=device, metrics=metrics)))
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


def test_refuses_records_of_the_test_split(tmp_path):
    path = write(tmp_path / 't.json', 'cand-a', 0, 80.0, split='test')
    with pytest.raises(ValueError, match='not a design-split record'):
        design.design_table([path])


def test_cli_reports_a_bad_record_in_one_line(tmp_path, capsys):
    path = write(tmp_path / 't.json', 'cand-a', 0, 80.0, split='test')
    assert tool.main([path]) == 2
    err = capsys.readouterr().err
    assert err.startswith('ERROR: ') and 'not a design-split record' in err
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

    from conftest import REPO
    paths = sorted(glob.glob(osp.join(design.DESIGN_DIR, '*.json')))
    if not paths:
        pytest.skip('no design records in this checkout')
    doc = (REPO / 'docs' / 'design_study.md').read_text()
    assert design.design_table(paths) in doc


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
