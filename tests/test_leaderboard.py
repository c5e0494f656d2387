"""tools/analysis_tools/leaderboard.py on real runs of our tools: two tiny
DSNet trainings (seeds 0 and 1) through tools/train.py, one tested with
tools/test.py, collected, aggregated, rendered and checked against a README.
"""
import csv
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

import pytest
from conftest import (REPO, load_tool, run_tool_in_process, run_tool_process,
                      write_tiny_config)

from mmseg_dsnet.leaderboard import table
from mmseg_dsnet.utils.code_revision import running_code_revision

# Trains and tests tiny models end to end.
pytestmark = pytest.mark.slow

PY = sys.executable
LEADERBOARD = REPO / 'tools' / 'analysis_tools' / 'leaderboard.py'
README = '''# Project

Intro text that build must keep.

<!-- leaderboard:start -->
stale table
<!-- leaderboard:end -->

Text after the block.
'''


def scalar_lines(work_dir):
    path, = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope='module')
def board(tiny_isic, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('leaderboard')
    cfg = write_tiny_config(tmp / 'tiny_dsnet.py', tiny_isic, epochs=2)
    seed0, seed1 = tmp / 'seed0', tmp / 'seed1'
    # Seed 1 trains alongside seed 0 (one thread each) and is not tested:
    # its metrics must come from the last validation line.
    env = dict(os.environ, OMP_NUM_THREADS='1')
    second = subprocess.Popen(
        [PY, 'tools/train.py', str(cfg), '--work-dir', str(seed1),
         '--cfg-options', 'randomness.seed=1'], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_tool_process('tools/train.py', cfg, '--work-dir', seed0, check=True)
    run_tool_in_process('tools/test.py', cfg, seed0 / 'epoch_2.pth',
                        '--work-dir', seed0, check=True)
    log = second.communicate(timeout=600)[0]
    assert second.returncode == 0, log[-3000:]
    lb = load_tool('analysis_tools/leaderboard.py')
    runs = tmp / 'runs'
    common = ['--label', 'dsnet', '--schedule', 'tiny test schedule',
              '--runs-dir', str(runs)]
    rec0 = lb.main(['collect', str(cfg), str(seed0), *common,
                    '--bench-warmup', '1', '--bench-repeat', '3'])
    rec1 = lb.main(['collect', str(cfg), str(seed1), *common,
                    '--no-benchmark'])
    readme = tmp / 'README.md'
    readme.write_text(README)
    out = tmp / 'results'
    built = lb.main([
        'build', '--runs', *sorted(map(str, runs.glob('*.json'))),
        '--reported', str(REPO / 'results' / 'reported.json'), '--out-dir',
        str(out), '--readme', str(readme)])
    return dict(lb=lb, board=built['board'], paths=built['paths'],
                points=built['plot_points'], rec=(rec0, rec1),
                work=(seed0, seed1), readme=readme, runs=runs, cfg=cfg)


def test_collect_reads_metrics_and_facts_from_the_work_dir(board):
    rec0, rec1 = board['rec']
    seed0, seed1 = board['work']
    tested = json.loads((seed0 / 'test_metrics.json').read_text())['metrics']
    assert rec0['metrics'] == tested
    assert rec0['metrics_source_kind'] == 'test_metrics.json'
    last_val = [line for line in scalar_lines(seed1) if 'IoU' in line][-1]
    assert rec1['metrics_source_kind'] == 'last validation line'
    assert rec1['metrics']['DSC'] == last_val['DSC']
    assert set(rec1['metrics']) >= {'IoU', 'DSC', 'TJ', 'mIoU', 'mDice'}
    assert (rec0['seed'], rec1['seed']) == (0, 1)
    splits = board['cfg'].read_text().split("data_root = '")[1].split("'")[0]
    n_train = len(open(os.path.join(
        splits, 'splits', 'lightweight_train.txt')).read().split())
    for rec in (rec0, rec1):
        assert rec['device'] == 'CPU'
        assert (rec['dataset'], rec['protocol']) == ('ISIC 2018',
                                                     'lightweight')
        assert rec['train_images'] == n_train
        assert rec['epochs'] == 2
        assert rec['iterations'] == 2 * -(-n_train // 4)  # batch 4
        assert rec['short_schedule'] is True
        assert rec['complexity']['params'] > 0
        assert rec['complexity']['deploy']['params'] < \
            rec['complexity']['params']
        assert rec['train_time_s'] >= 0 and 'wall clock' in \
            rec['train_time_method']
    # The logging interval is 1, so the iteration-time sum is exact.
    times = [line['time'] for line in scalar_lines(seed0) if 'loss' in line]
    assert rec0['iter_time_sum_s'] == pytest.approx(sum(times), abs=1e-3)
    assert rec0['cpu_latency_ms'] > 0 and rec1['cpu_latency_ms'] is None
    # Each training log names the code that trained it (both runs are of
    # this checkout, one in a process of its own).
    assert rec0['code_revision'] == rec1['code_revision'] == \
        running_code_revision()
    assert rec0['cpu_benchmark']['threads'] == 1
    names = sorted(p.name for p in board['runs'].glob('*.json'))
    assert names == [
        'dsnet_isic2018_lightweight_tiny-test-schedule_seed0.json',
        'dsnet_isic2018_lightweight_tiny-test-schedule_seed1.json']


def test_collect_records_the_input_size_it_trained_and_tested_at(board):
    """Run records did not hold the input size, so build could not tell
    seeds at 128 px from seeds at 256 px; the tiny config runs at 64."""
    for rec, path in zip(board['rec'], sorted(board['runs'].glob('*.json'))):
        assert rec['input_size'] == dict(train=[64, 64], test=[64, 64])
        assert json.loads(path.read_text())['input_size'] == \
            rec['input_size']


def test_collect_records_the_training_settings(board):
    """Records did not hold the optimizer, learning-rate schedule or
    training pipeline, so build averaged seeds trained with another
    learning rate into one row; both seeds trained alike here."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(board['cfg']))
    for rec in board['rec']:
        training = rec['training']
        assert training['optim_wrapper']['optimizer']['lr'] == \
            cfg.optim_wrapper.optimizer.lr
        assert [s['type'] for s in training['train_pipeline']] == \
            [s['type'] for s in cfg.train_dataloader.dataset.pipeline]
        assert training['param_scheduler'] is not None
    assert board['rec'][0]['training'] == board['rec'][1]['training']


def _copy_of_seed1(board, tmp_path):
    """The tool, a copy of seed 1's work dir, a runs folder and the
    ``collect`` arguments of that copy."""
    work = tmp_path / 'work'
    shutil.copytree(board['work'][1], work)
    runs = tmp_path / 'runs'
    args = ['collect', str(board['cfg']), str(work), '--label', 'dsnet',
            '--runs-dir', str(runs), '--no-benchmark']
    return board['lb'], work, runs, args


def test_collect_refuses_a_runner_test_dump_of_a_changed_evaluator(
        board, tmp_path):
    """Without tools/test.py's metrics file (written elsewhere with
    --metrics-out) collect read the runner's test dump, and figures of an
    evaluator changed by --cfg-options became the config's row, exit 0."""
    from mmseg_dsnet.utils.errors import UserError
    lb, work, runs, args = _copy_of_seed1(board, tmp_path)
    test = ['tools/test.py', board['cfg'], work / 'epoch_2.pth',
            '--work-dir', work, '--metrics-out', tmp_path / 'elsewhere.json']
    # Tested as the config is (data location and workers may differ).
    run_tool_process(*test, '--cfg-options',
                        'test_dataloader.num_workers=0', check=True)
    record = lb.main(args)
    assert record['metrics_source_kind'] == 'runner test dump'
    # Tested with another evaluator: its dump is the newest.
    run_tool_process(*test, '--cfg-options',
                        'test_evaluator.low_res_size=(32,32)', check=True)
    (runs / record['record_file']).unlink()
    with pytest.raises(UserError) as err:
        lb.main(args)
    assert str(err.value).startswith(
        f'{work} was tested with test_evaluator.low_res_size[0]=32 '
        f'test_evaluator.low_res_size[1]=32, unlike {board["cfg"]} (test '
        'results dumped by the runner, ')
    assert not list(runs.glob('*.json'))


def test_collect_compares_the_config_file_the_test_used(board, tmp_path):
    """tools/test.py's metrics file names the config it tested with, and
    collect read only its --cfg-options: a test with another config file
    (another evaluator) became the named config's row, exit 0; a test at
    another input size (the protocol of testing a 128 px run at 256 px)
    was recorded at the size of the training config's test pipeline."""
    from mmseg_dsnet.utils.errors import UserError
    lb, work, runs, args = _copy_of_seed1(board, tmp_path)
    lowres = tmp_path / 'lowres.py'
    lowres.write_text(f"_base_ = ['{board['cfg']}']\n"
                      'test_evaluator = dict(low_res_size=(32, 32))\n')
    run_tool_in_process('tools/test.py', lowres, work / 'epoch_2.pth',
                        '--work-dir', work, check=True)
    with pytest.raises(UserError) as err:
        lb.main(args)
    assert str(err.value).startswith(
        f'{work} was tested with {lowres}, which differs from '
        f'{board["cfg"]} in test_evaluator.low_res_size[0]=32 '
        'test_evaluator.low_res_size[1]=32 (tools/test.py metrics file ')
    assert not runs.exists()
    # Another input size alone: collected, at the size it was tested at.
    small = tmp_path / 'small.py'
    small.write_text(
        f"_base_ = ['{board['cfg']}']\n"
        'model = dict(data_preprocessor=dict(size=(32, 32)))\n'
        'test_dataloader = dict(dataset=dict(pipeline=[\n'
        "    dict(type='LoadImageFromFile'),\n"
        "    dict(type='Resize', scale=(32, 32), keep_ratio=False),\n"
        "    dict(type='LoadAnnotations'),\n"
        "    dict(type='PackSegInputs')]))\n")
    run_tool_in_process('tools/test.py', small, work / 'epoch_2.pth',
                        '--work-dir', work, check=True)
    record = lb.main(args)
    assert record['metrics_source_kind'] == 'test_metrics.json'
    assert record['input_size'] == dict(train=[64, 64], test=[32, 32])


def test_collect_passes_only_the_resize_scale_of_a_runner_test_dump(
        board, tmp_path):
    """The input size a runner tested at may differ from the config's (the
    record holds it); a ``scale`` on any other step of the test pipeline
    (a RandomResize) was passed over too, and its figures became the
    config's row, exit 0."""
    from mmseg_dsnet.utils.errors import UserError
    lb, seed1 = board['lb'], board['work'][1]
    work = tmp_path / 'work'
    shutil.copytree(seed1, work)
    # The config's test pipeline resizes with a (fixed) RandomResize.
    config = tmp_path / 'random_resize.py'
    config.write_text(
        f"_base_ = ['{board['cfg']}']\n"
        'test_dataloader = dict(dataset=dict(pipeline=[\n'
        "    dict(type='LoadImageFromFile'),\n"
        "    dict(type='Resize', scale=(64, 64), keep_ratio=False),\n"
        "    dict(type='RandomResize', scale=(64, 64), ratio_range=(1, 1),\n"
        '         keep_ratio=False),\n'
        "    dict(type='LoadAnnotations'),\n"
        "    dict(type='PackSegInputs')]))\n")
    runs = tmp_path / 'runs'
    args = ['collect', str(config), str(work), '--label', 'dsnet',
            '--runs-dir', str(runs), '--no-benchmark']
    test = ['tools/test.py', config, work / 'epoch_2.pth', '--work-dir',
            work, '--metrics-out', tmp_path / 'elsewhere.json']
    # Tested at another input size: collected, at that size.
    run_tool_process(*test, '--cfg-options',
                        'test_dataloader.dataset.pipeline.1.scale=(32,32)',
                        check=True)
    record = lb.main(args)
    assert record['metrics_source_kind'] == 'runner test dump'
    assert record['input_size'] == dict(train=[64, 64], test=[32, 32])
    # Tested with another RandomResize scale: refused.
    run_tool_process(*test, '--cfg-options',
                        'test_dataloader.dataset.pipeline.2.scale=(32,32)',
                        check=True)
    (runs / record['record_file']).unlink()
    with pytest.raises(UserError) as err:
        lb.main(args)
    assert str(err.value).startswith(
        f'{work} was tested with '
        'test_dataloader.dataset.pipeline[2].scale[0]=32 '
        'test_dataloader.dataset.pipeline[2].scale[1]=32, unlike '
        f'{config} (test results dumped by the runner, ')
    assert not list(runs.glob('*.json'))


def test_collect_refuses_a_validation_line_unlike_a_test_of_the_config(
        board, tmp_path):
    """A run never tested gives the last validation line of its training:
    ``tools/train.py --cfg-options`` on the validation evaluator were not
    compared with the config, and a run validated on a split of its own
    (the official protocol's) became a test row, exit 0."""
    from mmseg_dsnet.utils.errors import UserError
    lb = board['lb']
    official = tmp_path / 'official.py'
    official.write_text(
        f"_base_ = ['{board['cfg']}']\n"
        "train_dataloader = dict(dataset=dict(ann_file='splits/official_"
        "train.txt'))\n"
        "val_dataloader = dict(dataset=dict(ann_file='splits/official_val."
        "txt'))\n"
        "test_dataloader = dict(dataset=dict(ann_file='splits/official_test."
        "txt'))\n")
    work = tmp_path / 'work'
    run_tool_process('tools/train.py', official, '--work-dir', work,
                     '--cfg-options', 'train_cfg.max_epochs=1',
                     'val_evaluator.low_res_size=(32,32)', check=True)
    runs = tmp_path / 'runs'
    with pytest.raises(UserError) as err:
        lb.main(['collect', str(official), str(work), '--label', 'dsnet',
                 '--runs-dir', str(runs), '--no-benchmark'])
    assert str(err.value).startswith(
        f'{work} was validated with val_evaluator.low_res_size[0]=32 '
        'val_evaluator.low_res_size[1]=32, unlike '
        f'{official} (last validation line of ')
    # The config it was trained with: validated on official_val.txt.
    lowres = tmp_path / 'official_lowres.py'
    lowres.write_text(f"_base_ = ['{official}']\n"
                      'val_evaluator = dict(low_res_size=(32, 32))\n')
    with pytest.raises(UserError) as err:
        lb.main(['collect', str(lowres), str(work), '--label', 'dsnet',
                 '--runs-dir', str(runs), '--no-benchmark'])
    assert str(err.value).startswith(
        f'{work} was never tested and validated on '
        'splits/official_val.txt, not on the images of its test split '
        'splits/official_test.txt (last validation line of ')
    assert not runs.exists()


def test_build_averages_the_seeds_with_their_spread(board):
    rec0, rec1 = board['rec']
    saved = json.loads(open(board['paths']['json']).read())
    row, = saved['measured']
    assert row['source'] == 'measured' and row['seeds'] == [0, 1]
    assert row['params'] == rec0['complexity']['params']
    assert row['flops'] == rec0['complexity']['flops']
    assert row['device'] == 'CPU' and row['schedule'] == 'tiny test schedule'
    for field, key, _ in table.METRIC_FIELDS:
        values = [rec0['metrics'][key], rec1['metrics'][key]]
        assert row[field]['mean'] == pytest.approx(statistics.fmean(values),
                                                   abs=1e-12), field
        assert row[field]['std'] == pytest.approx(statistics.stdev(values),
                                                  abs=1e-12), field
        assert (row[field]['min'], row[field]['max'], row[field]['n']) == (
            min(values), max(values), 2)
    # Only seed 0 was benchmarked: the latency is its own.
    assert row['cpu_latency_ms'] == dict(
        mean=rec0['cpu_latency_ms'], std=None, min=rec0['cpu_latency_ms'],
        max=rec0['cpu_latency_ms'], n=1)


def test_build_refuses_two_runs_of_one_seed(board, tmp_path):
    """Two records of one seed from different work dirs: the row showed
    whichever sorted last; a re-collection of one work dir still counts
    once (the newest)."""
    from mmseg_dsnet.utils.errors import UserError
    runs = sorted(board['runs'].glob('*.json'))
    record = json.loads(runs[0].read_text())
    again = tmp_path / 'again.json'
    record['collected_at'] = '9999-12-31T00:00:00'
    record['metrics']['IoU'] += 1.0
    again.write_text(json.dumps(record))
    args = ['build', '--runs', *map(str, runs), str(again), '--no-plot']
    built = board['lb'].main(args + ['--out-dir', str(tmp_path / 'a')])
    row, = built['board']['measured']
    assert row['seeds'] == [0, 1]
    other = json.loads(runs[1].read_text())['metrics']['IoU']
    assert row['iou']['mean'] == pytest.approx(
        (record['metrics']['IoU'] + other) / 2)
    record['work_dir'] = str(tmp_path / 'another_run')
    again.write_text(json.dumps(record))
    with pytest.raises(UserError, match='two runs of .* seed 0'):
        board['lb'].main(args + ['--out-dir', str(tmp_path / 'b')])
    assert not (tmp_path / 'b').exists()


def test_outputs_keep_reported_rows_separate(board):
    paths, saved = board['paths'], board['board']
    assert {r['source'] for r in saved['measured']} == {'measured'}
    assert {r['source'] for r in saved['reported']} == {'reported'}
    published = json.loads((REPO / 'results' / 'reported.json').read_text())
    assert len(saved['reported']) == sum(
        len(m['results']) for m in published['models'])
    with open(paths['csv']) as f:
        rows = list(csv.DictReader(f))
    assert [r['source'] for r in rows] == ['measured']
    assert float(rows[0]['dsc']) == saved['measured'][0]['dsc']['mean']
    with open(paths['reported_csv']) as f:
        assert {r['source'] for r in csv.DictReader(f)} == {'reported'}
    md = open(paths['md']).read()
    measured, reported = md.split('## Reported')
    assert '## Measured' in measured and '| reported |' not in measured
    table_rows = [line for line in reported.splitlines()
                  if line.startswith('| ') and 'Citation' not in line
                  and not line.startswith('| ---')]
    assert len(table_rows) == len(saved['reported'])
    assert all('| reported |' in line for line in table_rows)
    with open(paths['png'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # Every row with FLOPs is drawn and labelled, DSNet's paper row (no
    # dataset stated) in every panel.
    drawn = board['points']
    measured = saved['measured'][0]
    assert ('ISIC 2018', measured['flops'] / 1e9, measured['dsc']['mean'],
            'measured') in {(p, x, y, s) for p, _, x, y, s in drawn}
    labels = [label for _, label, _, _, _ in drawn]
    assert sum(label.startswith('dsnet (tiny test schedule') for label in
               labels) == 1
    assert len(drawn) == 1 + len(saved['reported']) + 1
    assert sum('[reported]' in label for label in labels) == \
        len(saved['reported']) + 1


def test_readme_check_passes_then_fails_after_an_edit(board):
    readme = board['readme']
    text = readme.read_text()
    assert text.startswith('# Project\n\nIntro text that build must keep.')
    assert text.endswith('<!-- leaderboard:end -->\n\nText after the block.\n')
    assert 'stale table' not in text
    json_path = board['paths']['json']
    check = [LEADERBOARD, 'check', '--readme', readme, '--leaderboard',
             json_path]
    assert run_tool_in_process(*check).returncode == 0
    dsc = board['board']['measured'][0]['dsc']
    shown = f'{dsc["mean"]:.2f} ± {dsc["std"]:.2f}'
    assert shown in text
    altered = f'{dsc["mean"] + 0.5:.2f} ± {dsc["std"]:.2f}'
    readme.write_text(text.replace(shown, altered, 1))
    proc = run_tool_in_process(*check)
    assert proc.returncode == 1
    assert 'column DSC' in proc.stderr and altered in proc.stderr
    # A published figure edited by hand is caught too.
    published = next(r for r in board['board']['reported']
                     if r['dataset'] == 'ISIC 2018')
    quoted = f'{published["model"]} {published["iou"]:.2f} /'
    assert quoted in text
    readme.write_text(text.replace(
        quoted, f'{published["model"]} {published["iou"] + 0.01:.2f} /'))
    assert board['lb'].main(['check', '--readme', str(readme),
                             '--leaderboard', json_path]) == 1
    readme.write_text(text)


def test_build_without_plot_leaves_no_plot_of_an_earlier_board(
        board, tmp_path, capsys):
    """``--no-plot`` into a folder of an earlier build left its
    leaderboard.png beside the new tables, showing other rows."""
    out = tmp_path / 'results'
    shutil.copytree(os.path.dirname(board['paths']['png']), out)
    assert (out / 'leaderboard.png').is_file()
    runs = sorted(map(str, board['runs'].glob('*.json')))
    board['lb'].main(['build', '--runs', runs[0], '--out-dir', str(out),
                      '--no-plot'])
    assert not (out / 'leaderboard.png').exists()
    assert f'Removed {out}/leaderboard.png of an earlier build' in \
        capsys.readouterr().out
    assert json.loads((out / 'leaderboard.json').read_text())['measured']


def test_build_refuses_a_page_without_markers_before_writing(board,
                                                            tmp_path):
    """A page without its markers (or with them swapped) gave a traceback
    after the leaderboard files were written."""
    from mmseg_dsnet.utils.errors import UserError
    out = tmp_path / 'results'
    runs = sorted(map(str, board['runs'].glob('*.json')))
    for text in ('# Notes\n',
                 '<!-- leaderboard:end -->\nold\n<!-- leaderboard:start -->\n'):
        page = tmp_path / 'page.md'
        page.write_text(text)
        with pytest.raises(UserError, match=f'{page} lacks the markers'):
            board['lb'].main(['build', '--runs', *runs, '--out-dir',
                              str(out), '--readme', str(page), '--no-plot'])
        assert page.read_text() == text
        assert not out.exists()


def test_collect_never_replaces_another_work_dirs_record(board, tmp_path):
    lb, seed0 = board['lb'], board['work'][0]
    runs = tmp_path / 'runs'
    args = ['--label', 'dsnet', '--schedule', 'tiny test schedule',
            '--runs-dir', str(runs), '--no-benchmark']
    lb.main(['collect', str(board['cfg']), str(seed0), *args])
    record, = runs.glob('*.json')
    # The same work dir again: a refresh.
    lb.main(['collect', str(board['cfg']), str(seed0), *args])
    # Another work dir with the same model, schedule and seed: refused.
    copy = tmp_path / 'copy_of_seed0'
    shutil.copytree(seed0, copy)
    with pytest.raises(FileExistsError, match='--overwrite'):
        lb.main(['collect', str(board['cfg']), str(copy), *args])
    assert json.loads(record.read_text())['work_dir'] == str(seed0)
    lb.main(['collect', str(board['cfg']), str(copy), *args, '--overwrite'])
    assert json.loads(record.read_text())['work_dir'] == str(copy)


def test_collect_refuses_gpu_options_it_cannot_follow(board, tmp_path,
                                                     monkeypatch):
    """``--gpu-benchmark`` without CUDA wrote a record whose GPU entry said
    'asked, but CUDA is not available', exit 0; beside ``--gpu-json`` it was
    ignored. Both are refused before the work dir is read."""
    import torch

    from mmseg_dsnet.utils.errors import UserError
    lb, seed0 = board['lb'], board['work'][0]
    runs = tmp_path / 'runs'
    args = ['collect', str(board['cfg']), str(seed0), '--label', 'dsnet',
            '--runs-dir', str(runs), '--no-benchmark', '--gpu-benchmark']
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(UserError, match='^--gpu-benchmark needs CUDA, which '
                       'this machine does not have; measure on a GPU'):
        lb.main(args)
    gpu_json = tmp_path / 'gpu.json'
    gpu_json.write_text('{}')
    with pytest.raises(UserError, match='give one of them'):
        lb.main(args + ['--gpu-json', str(gpu_json)])
    assert not runs.exists()


def test_collect_refuses_runs_judged_on_the_design_hold_out(board, tmp_path):
    """Design runs choose the model; only test-split runs become rows."""
    lb, seed0 = board['lb'], board['work'][0]
    design = tmp_path / 'design_run'
    shutil.copytree(seed0, design)
    dumped = [p for p in design.rglob('*.py')
              if 'lightweight_test.txt' in p.read_text()]
    assert dumped, 'the work dir holds no dumped config naming the test split'
    for path in dumped:
        path.write_text(path.read_text().replace(
            'lightweight_test.txt', 'lightweight_design_val.txt'))
    runs = tmp_path / 'runs'
    from mmseg_dsnet.utils.errors import UserError

    # A UserError (one ERROR line, exit 2), not a ValueError traceback.
    with pytest.raises(UserError, match='design hold-out'):
        lb.main(['collect', str(board['cfg']), str(design), '--label',
                 'dsnet', '--runs-dir', str(runs), '--no-benchmark'])
    assert not runs.exists() or not list(runs.glob('*.json'))


def test_collect_refuses_runs_evaluated_on_a_training_split(board,
                                                            tmp_path):
    """Figures on the images a model was trained on are not a test
    result; they used to be collected as a row."""
    from mmengine.config import Config

    from mmseg_dsnet.utils.errors import UserError
    lb, seed0 = board['lb'], board['work'][0]
    run = tmp_path / 'tested_on_train'
    shutil.copytree(seed0, run)
    metrics = run / 'test_metrics.json'
    record = json.loads(metrics.read_text())
    train_split = Config.fromfile(board['cfg']).train_dataloader.dataset[
        'ann_file']
    record['split_file'] = record['split_file'].replace(
        os.path.basename(record['split_file']),
        os.path.basename(train_split))
    metrics.write_text(json.dumps(record))
    runs = tmp_path / 'runs'
    with pytest.raises(UserError, match='evaluated on a training split'):
        lb.main(['collect', str(board['cfg']), str(run), '--label',
                 'dsnet', '--runs-dir', str(runs), '--no-benchmark'])
    assert not runs.exists() or not list(runs.glob('*.json'))


def test_collect_refuses_data_of_another_isic_year(board, tiny_isic,
                                                   tmp_path):
    """The row takes its dataset from the config: a run evaluated on data
    whose meta.json says another ISIC year was collected under the
    config's year."""
    from mmseg_dsnet.utils.errors import UserError
    lb, seed0 = board['lb'], board['work'][0]
    other = tmp_path / 'isic2017_data'
    shutil.copytree(tiny_isic, other)
    meta = json.loads((other / 'meta.json').read_text())
    assert meta['year'] == 2018
    meta['year'] = 2017
    (other / 'meta.json').write_text(json.dumps(meta))
    run = tmp_path / 'other_year'
    shutil.copytree(seed0, run)
    metrics = run / 'test_metrics.json'
    record = json.loads(metrics.read_text())
    record['data_root'] = str(other)
    metrics.write_text(json.dumps(record))
    runs = tmp_path / 'runs'
    with pytest.raises(UserError, match=(
            f'was evaluated on {other}, whose meta.json says ISIC 2017 data, '
            'but its config names ISIC2018Dataset; the row would call it '
            'ISIC 2018')):
        lb.main(['collect', str(board['cfg']), str(run), '--label',
                 'dsnet', '--runs-dir', str(runs), '--no-benchmark'])
    assert not runs.exists() or not list(runs.glob('*.json'))


def test_collect_refuses_metrics_of_an_earlier_checkpoint(board, tmp_path):
    """A row says the epochs the run trained: metrics of an earlier
    epoch's checkpoint would be shown as the final model's."""
    from mmseg_dsnet.utils.errors import UserError
    lb, seed0 = board['lb'], board['work'][0]
    run = tmp_path / 'tested_early'
    shutil.copytree(seed0, run)
    metrics = run / 'test_metrics.json'
    record = json.loads(metrics.read_text())
    assert os.path.basename(record['checkpoint']) == 'epoch_2.pth'
    record['checkpoint'] = str(run / 'epoch_1.pth')
    metrics.write_text(json.dumps(record))
    runs = tmp_path / 'runs'
    with pytest.raises(UserError, match=r'epoch_1.pth but the run trained 2 '
                       r'epochs; test its final checkpoint \(epoch_2.pth\)'):
        lb.main(['collect', str(board['cfg']), str(run), '--label',
                 'dsnet', '--runs-dir', str(runs), '--no-benchmark'])
    assert not runs.exists() or not list(runs.glob('*.json'))


def test_collect_refuses_a_runner_test_dump_of_an_earlier_checkpoint(
        board, tmp_path):
    """``tools/test.py CONFIG W/epoch_1.pth --work-dir W --metrics-out
    ELSEWHERE``: collect read the runner's test dump, which names no
    checkpoint, and recorded epoch 1's figures as the 2-epoch run's test
    result, exit 0. The checkpoint is the test's ``load_from``."""
    lb, work, runs, args = _copy_of_seed1(board, tmp_path)
    test = ['tools/test.py', board['cfg'], work / 'epoch_1.pth',
            '--work-dir', work, '--metrics-out', tmp_path / 'elsewhere.json']
    run_tool_in_process(*test, check=True)
    proc = run_tool_in_process(LEADERBOARD, *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f'ERROR: {work}: the test metrics are of {work / "epoch_1.pth"} but '
        'the run trained 2 epochs; test its final checkpoint (epoch_2.pth), '
        'then collect')
    assert not runs.exists() or not list(runs.glob('*.json'))
    # A test of the final checkpoint, dumped later, is the run's result.
    test[2] = work / 'epoch_2.pth'
    run_tool_in_process(*test, check=True)
    record = lb.main(args)
    assert record['metrics_source_kind'] == 'runner test dump'
    assert record['checkpoint'] == str(work / 'epoch_2.pth')


def test_collect_takes_the_runner_test_dump_of_the_last_started_test(
        board, tmp_path):
    """Tests of one second into a work dir dump into ``<ts>_2`` and
    ``<ts>_10`` (``claim_log_dir``): read as strings, ``<ts>_2`` (here a
    test of ``epoch_1.pth``) would be the newest dump and ``<ts>_10`` (the
    final checkpoint's test, started later) passed over. The dump of the
    test started last is the run's result."""
    lb, work, runs, args = _copy_of_seed1(board, tmp_path)
    trained, = [p for p in work.iterdir() if (p / f'{p.name}.log').is_file()
                and 'Epoch(train)' in (p / f'{p.name}.log').read_text()]
    made = []
    for checkpoint in ('epoch_1.pth', 'epoch_2.pth'):
        before = {p.name for p in work.iterdir()}
        run_tool_in_process('tools/test.py', board['cfg'], work / checkpoint,
                            '--work-dir', work, '--metrics-out',
                            tmp_path / 'elsewhere.json', check=True)
        new, = [p for p in work.iterdir()
                if p.name not in before and p.is_dir()]
        made.append(new)
    # As if both had started in the second of the training.
    for folder, name in zip(made, (f'{trained.name}_2',
                                   f'{trained.name}_10')):
        for suffix in ('.log', '.json'):
            (folder / f'{folder.name}{suffix}').rename(
                folder / f'{name}{suffix}')
        folder.rename(work / name)
    record = lb.main(args)
    assert record['metrics_source_kind'] == 'runner test dump'
    assert record['checkpoint'] == str(work / 'epoch_2.pth')
    assert f'{trained.name}_10/{trained.name}_10.json' in \
        record['metrics_source']


def test_collect_refuses_metrics_of_another_runs_checkpoint(board,
                                                           tmp_path):
    """``tools/test.py CONFIG SEED1/epoch_2.pth --work-dir SEED0``: the
    other run's figures were recorded as seed 0's (the file name matched
    its epochs), exit 0. A copy of the run's own checkpoint still passes."""
    seed0, seed1 = board['work']
    run = tmp_path / 'seed0'
    shutil.copytree(seed0, run)
    (run / 'test_metrics.json').unlink()
    run_tool_in_process('tools/test.py', board['cfg'], seed1 / 'epoch_2.pth',
                        '--work-dir', run, check=True)
    runs = tmp_path / 'runs'
    collect = ['collect', str(board['cfg']), str(run), '--label', 'dsnet',
               '--runs-dir', str(runs), '--no-benchmark']
    proc = run_tool_in_process(LEADERBOARD, *collect)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f'ERROR: {run}: the test metrics are of {seed1 / "epoch_2.pth"}, a '
        f'checkpoint of another folder (its weights differ from '
        f'{run / "epoch_2.pth"}): they are another run\'s figures; test '
        "this run's final checkpoint (in its work dir) with tools/test.py, "
        'then collect')
    assert not runs.exists() or not list(runs.glob('*.json'))
    # The run's own weights, tested from a copy outside its work dir.
    outside = tmp_path / 'elsewhere' / 'epoch_2.pth'
    outside.parent.mkdir()
    shutil.copy(run / 'epoch_2.pth', outside)
    metrics = run / 'test_metrics.json'
    record = json.loads(metrics.read_text())
    record['checkpoint'] = str(outside)
    metrics.write_text(json.dumps(record))
    run_tool_in_process(LEADERBOARD, *collect, check=True)
    assert len(list(runs.glob('*.json'))) == 1


def test_collect_records_a_recalibrated_checkpoint_as_such(board,
                                                         tmp_path):
    """``recalibrate_batch_norm.py`` into the work dir, then ``tools/test.py``
    of its output: the figures of the recomputed statistics were collected
    as the training's model, under the same default schedule, exit 0."""
    seed0 = board['work'][0]
    run = tmp_path / 'seed0'
    shutil.copytree(seed0, run)
    (run / 'test_metrics.json').unlink()
    precise = run / 'precise.pth'
    run_tool_in_process('tools/analysis_tools/recalibrate_batch_norm.py',
                        board['cfg'], run / 'epoch_2.pth', precise, check=True)
    run_tool_in_process('tools/test.py', board['cfg'], precise, '--work-dir',
                        run, check=True)
    runs = tmp_path / 'runs'
    run_tool_in_process(LEADERBOARD, 'collect', str(board['cfg']), str(run),
                        '--label', 'dsnet', '--runs-dir', str(runs),
                        '--no-benchmark', check=True)
    record = json.loads(next(runs.glob('*.json')).read_text())
    assert record['checkpoint'] == str(precise)
    assert record['batch_norm_recalibration']['source'] == str(
        run / 'epoch_2.pth')
    assert record['schedule'] == ('2 epochs, 11 train images, batch 4, '
                                  'BatchNorm statistics recomputed')
    # The training's own checkpoint: nothing recomputed.
    assert board['rec'][0]['batch_norm_recalibration'] is False
    assert board['rec'][1]['batch_norm_recalibration'] is False


def test_collect_refuses_a_best_checkpoint_chosen_on_the_test_split(
        board, tmp_path):
    """The lightweight configs validate on the test split: their best
    checkpoint is chosen on the test images."""
    from mmseg_dsnet.utils.errors import UserError
    lb, seed0 = board['lb'], board['work'][0]
    run = tmp_path / 'tested_best'
    shutil.copytree(seed0, run)
    metrics = run / 'test_metrics.json'
    record = json.loads(metrics.read_text())
    record['checkpoint'] = str(run / 'best_IoU_epoch_1.pth')
    metrics.write_text(json.dumps(record))
    runs = tmp_path / 'runs'
    with pytest.raises(UserError, match='best checkpoint was chosen by '
                       'validating on lightweight_test.txt'):
        lb.main(['collect', str(board['cfg']), str(run), '--label',
                 'dsnet', '--runs-dir', str(runs), '--no-benchmark'])
    assert not runs.exists() or not list(runs.glob('*.json'))


def test_collect_refuses_a_config_of_another_model(board, tmp_path):
    """The row's name, config and budget come from CONFIG: one that builds
    another model than the run trained is refused, with the entry named;
    a config that differs only in the input size is accepted."""
    lb, seed0 = board['lb'], board['work'][0]
    runs = tmp_path / 'runs'
    args = ['--label', 'dsnet', '--runs-dir', str(runs), '--no-benchmark']
    ungated = tmp_path / 'ungated.py'
    ungated.write_text(f"_base_ = ['{board['cfg']}']\n"
                       'model = dict(decode_head=dict(use_gate=False))\n')
    with pytest.raises(ValueError, match=r'model\.decode_head\.use_gate'):
        lb.main(['collect', str(ungated), str(seed0), *args])
    assert not runs.exists() or not list(runs.glob('*.json'))
    resized = tmp_path / 'resized.py'
    resized.write_text(
        f"_base_ = ['{board['cfg']}']\n"
        'model = dict(data_preprocessor=dict(size=(96, 96)))\n')
    record = lb.main(['collect', str(resized), str(seed0), *args])
    assert record['config'].endswith('resized.py')


def test_build_refuses_records_their_config_no_longer_builds(board, tmp_path):
    """A default changed after a run: its record would show the old model's
    figures under the config's current name, so build stops and names the
    record and the entry; nothing is written."""
    lb, seed0 = board['lb'], board['work'][0]
    config = tmp_path / 'dsnet_copy.py'
    config.write_text(f"_base_ = ['{board['cfg']}']\n")
    runs = tmp_path / 'runs'
    record = lb.main(['collect', str(config), str(seed0), '--label', 'dsnet',
                      '--runs-dir', str(runs), '--no-benchmark'])
    assert record['model_config']['decode_head']['use_gate'] is True
    assert 'size' not in record['model_config']['data_preprocessor']
    out = tmp_path / 'results'
    build = ['build', '--runs', *map(str, runs.glob('*.json')),
             '--out-dir', str(out), '--no-plot']
    lb.main(build)  # current: builds
    shutil.rmtree(out)
    config.write_text(f"_base_ = ['{board['cfg']}']\n"
                      'model = dict(decode_head=dict(use_gate=False))\n')
    proc = run_tool_in_process(LEADERBOARD, *build)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines()
              if line.startswith('ERROR:')]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert record['record_file'] in errors[0]
    assert 'model.decode_head.use_gate' in errors[0]
    assert not out.exists()


def test_one_row_never_mixes_models(board, tmp_path):
    """``model_name`` names an ablation config (``dsnet_isic2017_no-gate``)
    ``dsnet`` like its base model: collected without ``--label``, its seeds
    were averaged into the full model's row, or (with ``--overwrite``, as
    the refusal suggested) replaced the full model's record, exit 0."""
    lb, seed0 = board['lb'], board['work'][0]
    ungated = tmp_path / 'dsnet_no-gate.py'
    ungated.write_text(f"_base_ = ['{board['cfg']}']\n"
                       'model = dict(decode_head=dict(use_gate=False))\n')
    runs = tmp_path / 'runs'
    collect = ['collect', str(board['cfg']), str(seed0), '--label', 'dsnet',
               '--schedule', 'tiny test schedule', '--runs-dir', str(runs),
               '--no-benchmark']
    record = lb.main(collect)
    # Another model's run of the same name, schedule and seed.
    other = dict(record, config=str(ungated), seed=7,
                 work_dir=str(tmp_path / 'no_gate_seed7'),
                 record_file='no_gate_seed7.json',
                 model_config=json.loads(json.dumps(record['model_config'])))
    other['model_config']['decode_head']['use_gate'] = False
    (runs / 'no_gate_seed7.json').write_text(json.dumps(other))
    out = tmp_path / 'results'
    proc = run_tool_in_process(LEADERBOARD, 'build', '--runs',
                               *sorted(map(str, runs.glob('*.json'))),
                               '--out-dir', str(out), '--no-plot')
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        'ERROR: the row dsnet (ISIC 2018, lightweight, tiny test schedule) '
        f'would average runs of different models: {record["record_file"]} '
        f'({record["config"]}) and no_gate_seed7.json ({ungated}): '
        'model.decode_head.use_gate differs; collect each model under its '
        'own --label')
    assert not out.exists()
    # --overwrite replaces a record of the same model only.
    held = runs / record['record_file']
    held.write_text(json.dumps(dict(other, seed=0)))
    before = held.read_bytes()
    proc = run_tool_in_process(LEADERBOARD, *collect, '--overwrite')
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f'ERROR: {held} holds a run of another model ({ungated}, collected '
        f'from {tmp_path / "no_gate_seed7"}; model.decode_head.use_gate '
        f'differs): this run of {record["config"]} would replace it under '
        "the name 'dsnet'; give this run its own --label")
    assert held.read_bytes() == before


def test_collect_reads_only_the_latest_training_of_a_work_dir(board,
                                                              tmp_path):
    """A second training into a work dir without --resume: its record
    summed both trainings' times as 'resumed runs' (and took the epochs
    of the longer one), exit 0; metrics tested before it are refused."""
    seed0, rec0 = board['work'][0], board['rec'][0]
    work = tmp_path / 'seed0'
    shutil.copytree(seed0, work)
    latest, = [p for p in work.iterdir() if (p / f'{p.name}.log').is_file()
               and 'Epoch(train)' in (p / f'{p.name}.log').read_text()]
    # An earlier training of the same length (a first attempt).
    earlier = work / '20000101_000000'
    shutil.copytree(latest, earlier)
    (earlier / f'{latest.name}.log').rename(earlier / f'{earlier.name}.log')
    runs = tmp_path / 'runs'
    collect = ['collect', str(board['cfg']), str(work), '--label', 'dsnet',
               '--schedule', 'tiny test schedule', '--runs-dir', str(runs),
               '--no-benchmark']
    proc = run_tool_in_process(LEADERBOARD, *collect, check=True)
    assert 'left out 1 earlier training run in the work dir ' \
        '(20000101_000000/20000101_000000.log)' in proc.stderr
    record = json.loads(next(runs.glob('*.json')).read_text())
    assert record['train_time_s'] == rec0['train_time_s']
    assert 'resumed' not in record['train_time_method']
    assert record['epochs'] == 2
    assert record['logs'] == [f'{latest.name}/{latest.name}.log']
    # Metrics written before the latest training started: of another model.
    shutil.rmtree(runs)
    metrics = work / 'test_metrics.json'
    os.utime(metrics, (0, 0))
    proc = run_tool_in_process(LEADERBOARD, *collect)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f'ERROR: {work}: the test metrics (test_metrics.json) were written '
        f'before its latest training ({latest.name}/{latest.name}.log) '
        'started at epoch 1 instead of resuming the 1 run before it: '
        'they are of an earlier model; test the final checkpoint of the '
        'latest training, then collect')
    assert not runs.exists()


def test_collect_leaves_out_a_test_dump_older_than_the_latest_training(
        board, tmp_path):
    """A runner test dump written before the latest training (started at
    epoch 1 instead of resuming) began is of the earlier model, though the
    checkpoint it names (``epoch_2.pth``) has the final one's name: it is
    left out, and the figures are the latest training's own."""
    lb, work, runs, args = _copy_of_seed1(board, tmp_path)
    latest, = [p for p in work.iterdir() if (p / f'{p.name}.log').is_file()
               and 'Epoch(train)' in (p / f'{p.name}.log').read_text()]
    earlier = work / '20000101_000000'
    shutil.copytree(latest, earlier)
    (earlier / f'{latest.name}.log').rename(earlier / f'{earlier.name}.log')
    before = {p.name for p in work.iterdir()}
    run_tool_in_process('tools/test.py', board['cfg'], work / 'epoch_2.pth',
                        '--work-dir', work, '--metrics-out',
                        tmp_path / 'elsewhere.json', check=True)
    tested, = [p for p in work.iterdir()
               if p.name not in before and p.is_dir()]
    # As if it had tested the earlier training's model.
    name = '20000101_000001'
    for suffix in ('.log', '.json'):
        (tested / f'{tested.name}{suffix}').rename(tested / f'{name}{suffix}')
    tested.rename(work / name)
    record = lb.main(args)
    assert record['metrics_source_kind'] == 'last validation line'
    assert record['logs'] == [f'{latest.name}/{latest.name}.log']


def test_collect_orders_the_log_folders_of_one_second_by_number(board,
                                                                 tmp_path):
    """Runs that start in one second into a work dir get the log folders
    ``<ts>``, ``<ts>_1`` ... ``<ts>_10`` (``claim_log_dir``); read as
    strings, ``<ts>_10`` (the 11th) came before ``<ts>_2``, so collect took
    an earlier training for the latest and left the latest out, exit 0."""
    from mmseg_dsnet.engine.log_dir import claim_log_dir, log_dirs
    work = tmp_path / 'seed0'
    shutil.copytree(board['work'][0], work)
    trained, = [p for p in work.iterdir() if (p / f'{p.name}.log').is_file()
                and 'Epoch(train)' in (p / f'{p.name}.log').read_text()]
    tested, = [p.parent.name for p in work.glob('*/*.json')
               if p.stem == p.parent.name]
    stamp = trained.name
    # Claimed as ten more runs of that second would: <ts>_1 ... <ts>_10.
    for _ in range(9):
        claim_log_dir(str(work), stamp)
    assert claim_log_dir(str(work), stamp) == f'{stamp}_10'
    assert [os.path.basename(p) for p in log_dirs(str(work))] == \
        [stamp] + [f'{stamp}_{n}' for n in range(1, 11)] + [tested]
    # The training in <ts>_10 is the latest; <ts>_2 holds an earlier one.
    for name in (f'{stamp}_2', f'{stamp}_10'):
        shutil.rmtree(work / name)
        shutil.copytree(trained, work / name)
        (work / name / f'{stamp}.log').rename(work / name / f'{name}.log')
    shutil.rmtree(trained)
    runs = tmp_path / 'runs'
    proc = run_tool_in_process(
        LEADERBOARD, 'collect', str(board['cfg']), str(work), '--label',
        'dsnet', '--schedule', 'tiny test schedule', '--runs-dir', str(runs),
        '--no-benchmark', check=True)
    assert 'left out 1 earlier training run in the work dir ' \
        f'({stamp}_2/{stamp}_2.log): the latest training, ' \
        f'{stamp}_10/{stamp}_10.log, started again' in proc.stderr
    record = json.loads(next(runs.glob('*.json')).read_text())
    assert record['logs'] == [f'{stamp}_10/{stamp}_10.log']


def test_collect_refuses_a_run_stopped_before_its_last_epoch(board,
                                                             tmp_path):
    """A run that trained 2 of the 3 epochs its config sets (stopped by
    fast_train.py --time-limit, or killed, then tested): its record stood
    under a '2-epochs' schedule as if it had trained one, exit 0."""
    work = tmp_path / 'seed0'
    shutil.copytree(board['work'][0], work)
    dumped, = work.glob('*.py')
    text = dumped.read_text()
    assert 'max_epochs=2' in text
    dumped.write_text(text.replace('max_epochs=2', 'max_epochs=3'))
    (work / 'fast_train.json').write_text(json.dumps(dict(
        completed=False, stopped='stopped after epoch 2 of 3: another epoch '
        'would pass the time limit of 60 s')))
    runs = tmp_path / 'runs'
    proc = run_tool_in_process(
        LEADERBOARD, 'collect', str(board['cfg']), str(work), '--label',
        'dsnet', '--runs-dir', str(runs), '--no-benchmark')
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f'ERROR: {work}: its training stopped after epoch 2 of the 3 its '
        'config sets (fast_train.json: stopped after epoch 2 of 3: another '
        'epoch would pass the time limit of 60 s): it is a run cut short, '
        'not one of a 2-epoch schedule; finish it (tools/train.py or '
        'tools/fast_train.py with --resume), test its final checkpoint, '
        'then collect')
    assert not runs.exists()


def test_build_and_check_refuse_named_files_that_are_missing(tmp_path,
                                                             monkeypatch):
    """A missing --reported or --cpu-latency file used to drop its figures
    from the pages silently; the others gave a traceback."""
    from mmseg_dsnet.engine.preflight import MissingInputError
    from mmseg_dsnet.utils.errors import UserError
    lb = load_tool('analysis_tools/leaderboard.py')
    missing = str(tmp_path / 'missing.json')
    out = ['--out-dir', str(tmp_path / 'results'), '--no-plot']
    for option in ('--runs', '--reported', '--cpu-latency', '--readme',
                   '--model-card'):
        with pytest.raises(MissingInputError, match=f'{missing} does not'):
            lb.main(['build', option, missing] + out)
    for option in ('--readme', '--leaderboard', '--model-card'):
        with pytest.raises(MissingInputError, match=f'{missing} does not'):
            lb.main(['check', option, missing])
    # No records at all: nothing to build a board from.
    monkeypatch.setattr(lb, 'RUNS_DIR', str(tmp_path / 'runs'))
    with pytest.raises(UserError, match='no run records in .*runs'):
        lb.main(['build'] + out)
    assert not (tmp_path / 'results').exists()
    # A file that is not JSON is named (it was a traceback, exit 1: the
    # status that says a generated block disagrees).
    not_json = tmp_path / 'leaderboard.json'
    not_json.write_text('<html>\n')
    with pytest.raises(UserError, match=f'{not_json} is not a JSON file'):
        lb.main(['check', '--leaderboard', str(not_json)])


def test_collect_names_what_the_work_dir_lacks(tmp_path):
    """A work dir without a training log, or without metrics, was a
    FileNotFoundError traceback; now one user error naming it."""
    from mmseg_dsnet.leaderboard.work_dir import (IncompleteWorkDirError,
                                                  final_metrics)
    lb = load_tool('analysis_tools/leaderboard.py')
    config = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    empty = tmp_path / 'work'
    empty.mkdir()
    runs = ['--runs-dir', str(tmp_path / 'runs'), '--no-benchmark']
    with pytest.raises(IncompleteWorkDirError,
                       match=f'no training log .* under {empty}'):
        lb.main(['collect', config, str(empty)] + runs)
    missing = tmp_path / 'metrics.json'
    with pytest.raises(IncompleteWorkDirError,
                       match=f'metrics file {missing} does not exist'):
        final_metrics(str(empty), [], [], str(missing))
    with pytest.raises(IncompleteWorkDirError,
                       match='no test or validation metrics'):
        final_metrics(str(empty), [], [])
    assert not (tmp_path / 'runs').exists()


def test_run_refuses_what_its_trainings_would_fail_on(tmp_path):
    """A negative seed failed inside train.py with a CalledProcessError
    traceback; a benchmark that would time nothing was found out only after
    the hour of training."""
    from mmseg_dsnet.utils.errors import UserError
    lb = load_tool('analysis_tools/leaderboard.py')
    config = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    base = ['run', config, '--work-dir', str(tmp_path / 'work'),
            '--runs-dir', str(tmp_path / 'runs')]
    for extra, message in (
            (['--seeds', '0', '-1'], '--seeds must be an integer from 0 to '
                                    r'2\*\*32 - 1, got -1'),
            (['--seeds', '1', '1'], 'repeats a seed'),
            (['--bench-repeat', '0'], '--bench-repeat must be at least 1'),
            (['--bench-warmup', '-1'], '--bench-warmup must be at least 1'),
            (['--gpu-benchmark', '--gpu-batch-size', '0'],
             '--gpu-batch-size must be at least'),
            # Options nothing would be timed with were dropped unsaid.
            (['--gpu-batch-size', '64'], r'^--gpu-batch-size 64: it sets the '
             'batch of --gpu-benchmark, which is not asked; leave it out$'),
            (['--gpu-json', 'gpu.json', '--gpu-batch-size', '64'],
             r'--gpu-batch-size 64: .* \(a --gpu-json file holds the batch '
             r'it was measured at: measure it with benchmark.py '
             r'--batch-size\); leave it out$'),
            (['--no-benchmark', '--bench-repeat', '5'],
             '^--bench-repeat 5: --no-benchmark times nothing here; leave '
             'it out$')):
        with pytest.raises(UserError, match=message):
            lb.main(base + extra)
    with pytest.raises(UserError, match='--bench-repeat must be at least 1'):
        lb.main(['collect', config, str(tmp_path), '--bench-repeat', '0'])
    assert not (tmp_path / 'work').exists()
    # A training that fails ends the run in one line, naming the seed.
    with pytest.raises(UserError, match='tools/train.py failed for seed 2 '
                       r'\(exit 2; its output is above\)') as failed:
        lb.main(base + ['--seeds', '2', '--cfg-options',
                        f'train_dataloader.dataset.data_root={tmp_path}/no'])
    assert failed.value.exit_code == 2  # the status leaderboard.py exits with
    assert not (tmp_path / 'runs').exists()


def test_run_refuses_a_random_test_pipeline_before_training(tmp_path):
    """A config whose test pipeline flips at random: every seed trained
    first, then tools/test.py refused the pipeline (the training time
    lost). Now refused before the first training."""
    from mmseg_dsnet.engine.preflight import PipelineConfigError
    lb = load_tool('analysis_tools/leaderboard.py')
    config = tmp_path / 'flipped_test.py'
    config.write_text(
        f"_base_ = '{REPO / 'configs/dsnet/dsnet_isic2017.py'}'\n"
        'test_dataloader = dict(dataset=dict(pipeline=['
        "dict(type='LoadImageFromFile'), "
        "dict(type='Resize', scale=(256, 256), keep_ratio=False), "
        "dict(type='LoadAnnotations'), "
        "dict(type='RandomFlip', prob=0.5, direction='horizontal'), "
        "dict(type='PackSegInputs')]))\n")
    with pytest.raises(PipelineConfigError) as info:
        lb.main(['run', str(config), '--work-dir', str(tmp_path / 'work'),
                 '--runs-dir', str(tmp_path / 'runs'), '--no-benchmark',
                 '--cfg-options',
                 f'train_dataloader.dataset.data_root={tmp_path}/no'])
    assert str(info.value).startswith(
        f'test_dataloader.dataset.pipeline[3] of {config}: RandomFlip draws '
        'at random')
    assert not (tmp_path / 'work').exists()
    assert not (tmp_path / 'runs').exists()


def test_run_collects_the_runs_it_makes(tiny_isic, tmp_path):
    """Each seed's test got the training's --cfg-options (the seed among
    them), so collect refused every record ("tested with --cfg-options
    randomness.seed=0"), after the training."""
    from mmseg_dsnet.utils.errors import UserError
    lb = load_tool('analysis_tools/leaderboard.py')
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    base = ['run', str(cfg), '--work-dir', str(tmp_path / 'work'),
            '--runs-dir', str(tmp_path / 'runs'), '--allow-synthetic',
            '--no-benchmark', '--seeds', '0']
    # An option a test reads would make every record refused: before
    # the training.
    with pytest.raises(UserError, match=(
            '--cfg-options model.decode_head.threshold=0.3 change the model, '
            'the test data or the evaluator of')):
        lb.main(base + ['--cfg-options', 'model.decode_head.threshold=0.3'])
    assert not (tmp_path / 'work').exists()
    # Training settings and the seed do not change a test: the seed's
    # record is written.
    records = lb.main(base + ['--cfg-options', 'train_dataloader.num_workers=0',
                              'optim_wrapper.optimizer.lr=0.002'])
    assert [rec['seed'] for rec in records] == [0]
    assert [p.name for p in (tmp_path / 'runs').iterdir()] == [
        os.path.basename(records[0]['record_file'])]


def test_run_best_checkpoint_of_a_run_that_never_validated(tiny_isic,
                                                          tmp_path):
    """``--checkpoint best`` with no best_*.pth: a ValueError traceback from
    ``max()`` after the training."""
    from mmseg_dsnet.utils.errors import UserError
    lb = load_tool('analysis_tools/leaderboard.py')
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    base = ['run', str(cfg), '--work-dir', str(tmp_path / 'work'),
            '--runs-dir', str(tmp_path / 'runs'), '--checkpoint', 'best',
            '--allow-synthetic', '--no-benchmark', '--cfg-options',
            'default_hooks.checkpoint.save_best=None']
    # The lightweight protocol validates on its test split: a best
    # checkpoint would be chosen on the test images. Refused before any
    # training.
    with pytest.raises(UserError, match='chosen by validating on '
                       'lightweight_test.txt, the split it is tested on'):
        lb.main(base)
    assert not (tmp_path / 'work').exists()
    with pytest.raises(UserError, match='--checkpoint best: no best_.*pth in'
                       '.*use --checkpoint last'):
        lb.main(base + ['val_dataloader.dataset.ann_file='
                        'splits/lightweight_design_val.txt',
                        # Held out of lightweight_train.
                        'train_dataloader.dataset.ann_file='
                        'splits/lightweight_design_train.txt'])
    assert not (tmp_path / 'runs').exists()


def test_run_best_checkpoint_chosen_on_a_subset_of_the_test_split(
        tiny_isic, tmp_path):
    """``--checkpoint best`` with a validation split of another name that
    lists test images (a subset of lightweight_test.txt written to go
    faster): by name it was a split of its own, and the trainings ran to
    test a checkpoint chosen on the test images."""
    from mmseg_dsnet.utils.errors import UserError
    lb = load_tool('analysis_tools/leaderboard.py')
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    test = tiny_isic / 'splits' / 'lightweight_test.txt'
    faster = tmp_path / 'faster.txt'
    faster.write_text('\n'.join(test.read_text().split()[:2]) + '\n')
    with pytest.raises(UserError, match=(
            'chosen by validating on faster.txt, which lists 2 images of '
            f'{re.escape(str(test))}')):
        lb.main(['run', str(cfg), '--work-dir', str(tmp_path / 'work'),
                 '--runs-dir', str(tmp_path / 'runs'), '--checkpoint',
                 'best', '--allow-synthetic', '--no-benchmark',
                 '--cfg-options', f'val_dataloader.dataset.ann_file={faster}'])
    assert not (tmp_path / 'work').exists()


def test_collect_of_a_check_real_data_run_records_what_it_tested(
        tiny_isic, tmp_path):
    """check_real_data.py's test_metrics.json named the config file it
    started from, though its run tested that config changed (--crop-size,
    --test-images, the data root): collected with another config file (a
    copy, the run's dumped config), the test was taken for one of that file
    and the record said it tested at 64 px where it tested at 32, and a
    test on 4 of the 5 test images became the config's row, exit 0."""
    from mmseg_dsnet.leaderboard.real_data_check import train_and_evaluate
    from mmseg_dsnet.utils.errors import UserError
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    copy = tmp_path / 'copy.py'
    shutil.copy(config, copy)
    lb = load_tool('analysis_tools/leaderboard.py')

    def collect(named, work, runs):
        return lb.main(['collect', str(named), str(work), '--label', 'tiny',
                        '--runs-dir', str(tmp_path / runs),
                        '--no-benchmark'])

    small = tmp_path / 'small'
    train_and_evaluate(str(config), str(tiny_isic), str(small), epochs=1,
                       seed=0, train_images=4, crop_size=32)
    for i, named in enumerate((config, copy, small / 'tiny.py')):
        record = collect(named, small, f'runs{i}')
        assert record['input_size'] == dict(train=[32, 32], test=[32, 32])
    subset = tmp_path / 'subset'
    train_and_evaluate(str(config), str(tiny_isic), str(subset), epochs=1,
                       seed=0, train_images=4, test_images=4)
    tested = json.loads((subset / 'test_metrics.json').read_text())['config']
    for named in (config, copy):
        with pytest.raises(UserError) as err:
            collect(named, subset, 'subset_runs')
        assert str(err.value).startswith(
            f'{subset} was tested with {tested}, which differs from {named} '
            'in test_dataloader.dataset.indices=4 ')
    assert not (tmp_path / 'subset_runs').exists()
    # The config the run dumped is the one it tested: its row.
    record = collect(subset / 'tiny.py', subset, 'subset_runs')
    assert record['evaluated_data']['images'] == 4


def test_an_interrupted_build_leaves_the_earlier_board_whole(
        board, tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM, a failed plot) in the middle of a build into the
    folder of an earlier one: the files were written one after the other,
    so the new leaderboard.json stood beside the earlier build's tables,
    plot and README block."""
    from mmseg_dsnet.leaderboard import plot
    out = tmp_path / 'results'
    shutil.copytree(os.path.dirname(board['paths']['png']), out)
    readme = tmp_path / 'README.md'
    shutil.copy(board['readme'], readme)
    before = {p.name: p.read_bytes() for p in (*out.iterdir(), readme)}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plot, 'plot_leaderboard', interrupted)
    runs = sorted(map(str, board['runs'].glob('*.json')))
    with pytest.raises(KeyboardInterrupt):
        board['lb'].main(['build', '--runs', runs[0], '--out-dir', str(out),
                          '--readme', str(readme)])
    after = {p.name: p.read_bytes() for p in (*out.iterdir(), readme)}
    assert after == before  # no temporary file either


def test_collect_refuses_a_schedule_text_of_another_schedule(board,
                                                             tmp_path):
    """The ``--schedule`` text of docs/benchmarks.md's 30-epoch rows,
    copied with the command for a run of another schedule: the row (and
    the README's footnote) said ``30 epochs ... batch 8, 128x128 input``
    of a 2-epoch run at batch 4, exit 0."""
    rec = board['rec'][0]
    size = 'x'.join(map(str, rec['input_size']['train']))
    runs = tmp_path / 'runs'
    collect = ['collect', str(board['cfg']), str(board['work'][0]),
               '--label', 'dsnet', '--runs-dir', str(runs), '--no-benchmark',
               '--schedule']
    text = ('CPU 30 epochs: all 1500 train images (5640 iterations, batch '
            '8), 128x128 input, cosine over 30 epochs')
    proc = run_tool_in_process(LEADERBOARD, *collect, text)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f'ERROR: --schedule {text!r} does not describe the run collected '
        f'from {board["work"][0]}: it says epochs 30 (the run: 2); '
        f'iterations 5640 (the run: {rec["iterations"]}); batch size 8 '
        f'(the run: 4); input size 128x128 (the run: {size}); give the '
        'description of its own schedule (or leave --schedule out)')
    assert not runs.exists()
    # Its own schedule, and a text that names none of those facts, pass.
    for i, text in enumerate((f'2 epochs, batch 4, {size} input',
                              'CPU smoke test')):
        collect[6] = str(tmp_path / f'runs{i}')
        run_tool_in_process(LEADERBOARD, *collect, text, check=True)
        record, = [json.loads(p.read_text())
                   for p in (tmp_path / f'runs{i}').glob('*.json')]
        assert record['schedule'] == text
