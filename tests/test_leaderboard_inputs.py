"""leaderboard.py build and check on inputs they cannot use: a JSON file of
another kind, seeds of one row that were run differently, a page whose
markers do not mark one block. Copies of the committed run records stand in
for real runs (nothing is trained)."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import (REPO, load_tool, run_tool_in_process, write_tiny_config,
                      write_training_log)

from mmseg_dsnet.leaderboard import blocks
from mmseg_dsnet.leaderboard.table import MixedRunsError
from mmseg_dsnet.utils.errors import UserError

LEADERBOARD = 'tools/analysis_tools/leaderboard.py'
RUNS = REPO / 'results' / 'runs'
DSNET_30EP = [f'dsnet_isic2017_lightweight_cpu-30ep_seed{k}.json'
              for k in range(3)]


@pytest.fixture(scope='module')
def lb():
    return load_tool('analysis_tools/leaderboard.py')


def _copy_runs(folder, names=DSNET_30EP):
    folder.mkdir()
    for name in names:
        shutil.copy(RUNS / name, folder / name)
    return [folder / name for name in names]


def _edit(path, **changes):
    record = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            del record[key]
        else:
            record[key] = value
    path.write_text(json.dumps(record))


def _one_error_line(proc):
    """The tool's single ERROR line (exit 2, no traceback)."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
    line, = [line for line in proc.stderr.splitlines() if line.strip()]
    assert line.startswith('ERROR: ')
    return line


def test_build_and_check_name_a_record_of_another_kind(tmp_path):
    """A design record given to build ended in KeyError: 'model', a run
    record without its dataset in KeyError: 'dataset', and a run record
    given to check as the leaderboard in KeyError: 'measured' (exit 1)."""
    design = sorted((REPO / 'results' / 'design').glob('*.json'))[0]
    run, = _copy_runs(tmp_path / 'runs', DSNET_30EP[:1])
    partial = tmp_path / 'partial.json'
    shutil.copy(run, partial)
    _edit(partial, dataset=None, seed=None)
    out = tmp_path / 'results'
    build = ['build', '--out-dir', out, '--no-plot', '--runs']
    line = _one_error_line(run_tool_in_process(LEADERBOARD, *build, run,
                                               design))
    assert f'{design} is a design record' in line
    assert 'design_table.py' in line
    line = _one_error_line(run_tool_in_process(LEADERBOARD, *build, run,
                                               partial))
    assert f'{partial} is not a complete run record: it lacks dataset, ' \
        'seed;' in line
    assert not out.exists()
    # check reads a leaderboard: a run record is named as one.
    line = _one_error_line(run_tool_in_process(
        LEADERBOARD, 'check', '--leaderboard', run))
    assert f'{run} is a run record' in line and 'not a leaderboard' in line
    # A leaderboard whose rows lack a key the blocks read.
    board = json.loads((REPO / 'results' / 'leaderboard.json').read_text())
    del board['measured'][1]['iou']
    broken = tmp_path / 'leaderboard.json'
    broken.write_text(json.dumps(board))
    line = _one_error_line(run_tool_in_process(
        LEADERBOARD, 'check', '--leaderboard', broken))
    assert f'{broken} is not a complete leaderboard (measured row 2): it ' \
        'lacks iou;' in line


@pytest.mark.parametrize('changes, fact, values', [
    (dict(device='NVIDIA H100', gpu_run=True), 'device',
     ('CPU', 'NVIDIA H100')),
    (dict(test_images=100, evaluated_data=dict(
        data_root='data/isic2017', split_file='splits/isic2017_test100.txt',
        images=100, synthetic=False)), 'test images', ('650', '100')),
    (dict(epochs=15), 'epochs', ('30', '15')),
    (dict(batch_size=16), 'batch size', ('8', '16')),
    (dict(train_images=400), 'train images', ('1500', '400')),
])
def test_build_refuses_seeds_of_one_row_run_differently(lb, tmp_path,
                                                        changes, fact,
                                                        values):
    """Seeds of one model run on another device, test set or schedule were
    averaged into one row ('Device: CPU / NVIDIA H100'), exit 0."""
    runs = _copy_runs(tmp_path / 'runs')
    # A schedule text that names no epochs or batch: one that does is
    # refused of a seed that trained others (check_schedule_text).
    for run in runs:
        _edit(run, schedule='CPU schedule of the seeds')
    _edit(runs[1], **changes)
    out = tmp_path / 'results'
    with pytest.raises(MixedRunsError, match='the row DSNet ') as err:
        lb.main(['build', '--runs', *map(str, runs), '--out-dir', str(out),
                 '--no-plot'])
    message = str(err.value)
    first, other = values
    assert f'{fact} {first} ({DSNET_30EP[0]}, {DSNET_30EP[2]}) vs ' \
        f'{other} ({DSNET_30EP[1]})' in message
    if 'evaluated_data' in changes:
        assert 'evaluated split lightweight_test.txt' in message
        assert 'isic2017_test100.txt' in message
    assert not out.exists()


@pytest.mark.parametrize('key, part, fact, first, other', [
    ('cpu_benchmark', 'cpu', 'CPU of the latency benchmark',
     'Intel(R) Xeon(R) Gold 6248', 'Apple M2'),
    ('gpu_benchmark', 'gpu', 'GPU of the throughput benchmark',
     'NVIDIA H100', 'NVIDIA T4'),
    ('gpu_benchmark', 'batch_size', 'batch of the GPU throughput', 16, 64),
])
def test_build_refuses_seeds_benchmarked_on_two_machines(
        lb, tmp_path, key, part, fact, first, other):
    """A row's CPU ms and GPU img/s are means over its seeds' benchmarks:
    seeds collected on two machines (or GPU batch sizes) were averaged
    into one figure of neither, exit 0. A CPU named by its architecture
    alone (``x86_64``, what records held before) is unknown."""
    runs = _copy_runs(tmp_path / 'runs')
    for run, value in zip(runs, (first, other, first)):
        record = json.loads(run.read_text())
        record[key] = dict(record.get(key) or {}, **{part: value})
        run.write_text(json.dumps(record))
    out = tmp_path / 'results'
    with pytest.raises(MixedRunsError, match='the row DSNet ') as err:
        lb.main(['build', '--runs', *map(str, runs), '--out-dir', str(out),
                 '--no-plot'])
    assert f'{fact} {first} ({DSNET_30EP[0]}, {DSNET_30EP[2]}) vs ' \
        f'{other} ({DSNET_30EP[1]})' in str(err.value)
    assert not out.exists()
    if key == 'cpu_benchmark':
        _edit(runs[1], cpu_benchmark=dict(cpu='x86_64'))
        row, = lb.main(['build', '--runs', *map(str, runs), '--out-dir',
                        str(out), '--no-plot'])['board']['measured']
        assert row['seeds'] == [0, 1, 2]


def test_build_refuses_seeds_with_and_without_recomputed_batch_norm(
        lb, tmp_path):
    """A seed tested with a recalibrate_batch_norm.py checkpoint scores
    another model than the training left; collected under the row's
    --schedule it was averaged with the others, exit 0."""
    runs = _copy_runs(tmp_path / 'runs')
    recomputed = dict(source='work/seed1/epoch_30.pth', batches=169, seed=0,
                      split='splits/lightweight_train.txt')
    for run, value in zip(runs, (False, recomputed, False)):
        _edit(run, batch_norm_recalibration=value)
    out = tmp_path / 'results'
    with pytest.raises(MixedRunsError) as err:
        lb.main(['build', '--runs', *map(str, runs), '--out-dir', str(out),
                 '--no-plot'])
    assert 'BatchNorm statistics recomputed after training False ' \
        f'({DSNET_30EP[0]}, {DSNET_30EP[2]}) vs True ({DSNET_30EP[1]})' \
        in str(err.value)
    assert not out.exists()


def test_seeds_run_alike_still_make_one_row(lb, tmp_path):
    """Facts a record does not hold are unknown, not a difference: records
    collected before ``evaluated_data`` was recorded (here seeds 0 and 1 of
    EGE-UNet, made so) pool with one that has it."""
    names = [f'ege-unet_isic2017_lightweight_cpu-30ep_seed{k}.json'
             for k in range(3)]
    runs = _copy_runs(tmp_path / 'runs', names)
    for run in runs[:2]:
        record = json.loads(run.read_text())
        del record['evaluated_data']
        run.write_text(json.dumps(record))
    assert [('evaluated_data' in json.loads(p.read_text())) for p in runs] \
        == [False, False, True]
    built = lb.main(['build', '--runs', *map(str, runs), '--out-dir',
                     str(tmp_path / 'results'), '--no-plot'])
    row, = built['board']['measured']
    assert row['seeds'] == [0, 1, 2] and row['device'] == 'CPU'


def test_build_refuses_seeds_of_one_row_run_at_different_input_sizes(
        lb, tmp_path):
    """Run records did not hold the input size: seeds trained and tested at
    128 px and at 256 px were averaged into one row, exit 0. A record
    without the size (collected before it was recorded) is unknown, not a
    difference."""
    runs = _copy_runs(tmp_path / 'runs')
    # A schedule text that names no input size: one that does is refused
    # of a seed trained at another (check_schedule_text).
    for run in runs:
        _edit(run, schedule='CPU schedule of the seeds')
    _edit(runs[0], input_size=dict(train=[128, 128], test=[128, 128]))
    _edit(runs[2], input_size=None)
    out = tmp_path / 'results'
    built = lb.main(['build', '--runs', *map(str, runs), '--out-dir',
                     str(out), '--no-plot'])
    row, = built['board']['measured']
    assert row['seeds'] == [0, 1, 2]
    _edit(runs[1], input_size=dict(train=[256, 256], test=[256, 256]))
    shutil.rmtree(out)
    with pytest.raises(MixedRunsError) as err:
        lb.main(['build', '--runs', *map(str, runs), '--out-dir', str(out),
                 '--no-plot'])
    for part in ('training', 'test'):
        assert f'input size ({part}) 128x128 ({DSNET_30EP[0]}) vs 256x256 ' \
            f'({DSNET_30EP[1]})' in str(err.value)
    assert not out.exists()


@pytest.mark.parametrize('part', ['training', 'evaluated'])
def test_build_refuses_seeds_of_one_row_on_two_data_roots(tmp_path, part):
    """Seeds of one row compared only the split files' base names: a seed
    trained or evaluated on another data root (a second conversion,
    another set) was averaged into the row, exit 0. A root spelt another
    way (relative to the repository) or not recorded joins the row."""
    import os.path as osp
    runs = _copy_runs(tmp_path / 'runs')
    root = json.loads(runs[0].read_text())['data_root']
    other = str(tmp_path / 'isic2017_second')
    evaluated = json.loads(runs[1].read_text())['evaluated_data']
    # Another spelling of the same folder, and no evaluated_data: one row.
    _edit(runs[0], data_root=osp.relpath(root, REPO) + '/',
          evaluated_data=None)
    out = tmp_path / 'results'
    build = ['build', '--out-dir', out, '--no-plot', '--runs']
    proc = run_tool_in_process(LEADERBOARD, *build, *runs, check=True)
    assert 'Traceback' not in proc.stderr
    shutil.rmtree(out)
    if part == 'training':
        _edit(runs[1], data_root=other)
    else:
        _edit(runs[1], evaluated_data=dict(
            evaluated, data_root=other,
            split_file=f'{other}/splits/lightweight_test.txt'))
    line = _one_error_line(run_tool_in_process(LEADERBOARD, *build, *runs))
    assert line.startswith('ERROR: the row DSNet (ISIC 2017, lightweight, ')
    if part == 'training':
        assert f'data root (training) {root} ({DSNET_30EP[0]}, ' \
            f'{DSNET_30EP[2]}) vs {other} ({DSNET_30EP[1]})' in line
    else:  # seed 0 holds no evaluated data root now
        assert f'data root (evaluated) {other} ({DSNET_30EP[1]}) vs ' \
            f'{root} ({DSNET_30EP[2]})' in line
    assert not out.exists()


def test_seeds_run_through_a_link_to_the_data_root_join_one_row(tmp_path):
    """A seed trained from a second checkout whose ``data`` links to the
    first's records the link's path: build refused the row as seeds on two
    data roots, though they read the same images. Another folder is still
    refused."""
    runs = _copy_runs(tmp_path / 'runs')
    data = tmp_path / 'data' / 'isic2017'
    (data / 'splits').mkdir(parents=True)
    (tmp_path / 'checkout').mkdir()
    (tmp_path / 'checkout' / 'data').symlink_to(tmp_path / 'data')
    linked = str(tmp_path / 'checkout' / 'data' / 'isic2017')
    for run, root in zip(runs, (str(data), linked, str(data))):
        evaluated = json.loads(run.read_text())['evaluated_data']
        _edit(run, data_root=root, evaluated_data=dict(
            evaluated, data_root=root,
            split_file=f'{root}/splits/lightweight_test.txt'))
    out = tmp_path / 'results'
    build = ['build', '--out-dir', out, '--no-plot', '--runs']
    run_tool_in_process(LEADERBOARD, *build, *runs, check=True)
    row, = json.loads((out / 'leaderboard.json').read_text())['measured']
    assert row['seeds'] == [0, 1, 2]
    shutil.rmtree(out)
    other = tmp_path / 'isic2017_copy'
    other.mkdir()
    _edit(runs[1], data_root=str(other))
    line = _one_error_line(run_tool_in_process(LEADERBOARD, *build, *runs))
    assert f'data root (training) {data} ({DSNET_30EP[0]}, ' \
        f'{DSNET_30EP[2]}) vs {other} ({DSNET_30EP[1]})' in line
    assert not out.exists()


@pytest.mark.parametrize('changes, problem', [
    (dict(seed='1'), "seed is a string ('1'), not an integer or null"),
    (dict(epochs=30.5), 'epochs is a number (30.5), not an integer or null'),
    (dict(complexity=[289108]),
     'complexity is a list ([289108]), not an object or null'),
    (dict(metrics=dict(IoU='80.0', DSC=88.9)),
     "metrics.IoU is a string ('80.0'), not a number or null"),
    (dict(cpu_latency_ms='12 ms'),
     "cpu_latency_ms is a string ('12 ms'), not a number or null"),
    # Not finite (a NaN a hand-edited or foreign record holds): 'nan' in
    # the tables with one seed, a stdev traceback with two.
    (dict(metrics=dict(IoU=float('nan'), DSC=88.9)),
     'metrics.IoU is a number that is not finite (nan), not a number or '
     'null'),
    (dict(train_time_s=float('inf')),
     'train_time_s is a number that is not finite (inf), not a number or '
     'null'),
    (dict(input_size=dict(train=256, test=[256, 256])),
     'input_size.train is an integer (256), not a list of two positive '
     'integers (height, width) or null'),
    # JSON true is no seed, and a size is two sides of at least one pixel.
    (dict(seed=True), 'seed is a boolean (True), not an integer or null'),
    (dict(input_size=dict(train=[0, 256], test=[256, 256])),
     'input_size.train is a list ([0, 256]), not a list of two positive '
     'integers (height, width) or null'),
    (dict(input_size=dict(train=[256, 256], test=[256, 256, 3])),
     'input_size.test is a list ([256, 256, 3]), not a list of two '
     'positive integers (height, width) or null'),
])
def test_build_refuses_run_records_of_other_types(tmp_path, changes,
                                                  problem):
    """An entry of another type than build reads ended in a traceback
    (``TypeError`` from statistics.fmean, ``AttributeError: 'list' object
    has no attribute 'get'``) or was rendered as it was."""
    runs = _copy_runs(tmp_path / 'runs', DSNET_30EP[:2])
    _edit(runs[1], **changes)
    out = tmp_path / 'results'
    line = _one_error_line(run_tool_in_process(
        LEADERBOARD, 'build', '--out-dir', out, '--no-plot', '--runs',
        *runs))
    assert line == (f'ERROR: {runs[1]} is not a valid run record: {problem}'
                    '; give the run records leaderboard.py collect writes '
                    '(results/runs/*.json)')
    assert not out.exists()


PAGE = '''# Notes

The table goes between `{start}` and `{end}`: hand-written text.

{start}
old table
{end}

Text after the block.
'''


@pytest.mark.parametrize('text, lines', [
    # A marker quoted in prose above the block (its start was taken there).
    (PAGE, ['<!-- leaderboard:start --> 2 times (lines 3, 5)',
            '<!-- leaderboard:end --> 2 times (lines 3, 7)']),
    # Once each, but one sharing its line with prose.
    ('intro <!-- leaderboard:start -->\nold\n<!-- leaderboard:end -->\n',
     ['<!-- leaderboard:start --> on line 1 beside other text']),
    # Two blocks.
    ('{start}\na\n{end}\n\n{start}\nb\n{end}\n',
     ['<!-- leaderboard:start --> 2 times (lines 1, 5)',
      '<!-- leaderboard:end --> 2 times (lines 3, 7)']),
])
def test_build_and_check_refuse_markers_that_mark_no_one_block(
        tmp_path, text, lines):
    """build replaced the hand-written text between a quoted marker and the
    real one, exit 0, and check then agreed with the page."""
    start, end = blocks.README_MARKERS
    text = text.format(start=start, end=end)
    page = tmp_path / 'page.md'
    page.write_text(text)
    run, = _copy_runs(tmp_path / 'runs', DSNET_30EP[:1])
    out = tmp_path / 'results'
    for args in (['build', '--runs', run, '--out-dir', out, '--no-plot'],
                 ['check', '--leaderboard',
                  REPO / 'results' / 'leaderboard.json']):
        line = _one_error_line(run_tool_in_process(
            LEADERBOARD, *args, '--readme', page))
        assert line.startswith(f'ERROR: {page} holds ')
        for where in lines:
            assert where in line
        assert page.read_text() == text
        assert not out.exists()
    # The drift check the README test uses says so too.
    problems = blocks.check_block(text, 'new table')
    assert problems and all(p.startswith('the file holds ')
                            for p in problems)


def test_markers_on_lines_of_their_own_still_take_the_block():
    start, end = blocks.README_MARKERS
    text = f'intro\n  {start}\nold\n{end}\ntail\n'
    assert blocks.replace_block(text, 'new') == \
        f'intro\n  {start}\nnew\n{end}\ntail\n'
    with pytest.raises(UserError, match='page.md lacks the markers'):
        blocks.check_markers(f'{end}\n{start}\n', blocks.README_MARKERS,
                             'page.md')


@pytest.mark.parametrize('changes', [
    # Collected again under another --schedule: the first record stays.
    dict(schedule='CPU 30 epochs (renamed)', schedule_tag='cpu-30ep-b',
         record_file='dsnet_isic2017_lightweight_cpu-30ep-b_seed0.json'),
    # A copy of a record under another seed, averaged with itself.
    dict(seed=5, record_file='dsnet_isic2017_lightweight_cpu-30ep_seed5.json'),
])
def test_build_refuses_one_run_in_two_places(tmp_path, changes):
    """One run's record beside a copy under another schedule (or seed):
    build showed the run in two rows (or averaged it with itself) and
    counted it twice in the runs the board is built from, exit 0."""
    runs = _copy_runs(tmp_path / 'runs')
    again = tmp_path / 'runs' / changes['record_file']
    shutil.copy(runs[0], again)
    _edit(again, **changes)
    out = tmp_path / 'results'
    line = _one_error_line(run_tool_in_process(
        LEADERBOARD, 'build', '--runs', *runs, again, '--out-dir', out,
        '--no-plot'))
    assert DSNET_30EP[0] in line and changes['record_file'] in line
    assert 'hold the same test of one run' in line
    assert json.loads(runs[0].read_text())['work_dir'] in line
    assert not out.exists()


def test_collect_refuses_a_run_recorded_under_another_name(tmp_path):
    """collect with another --schedule (or --label) wrote a second record
    of the run beside the first, so build showed it twice."""
    from mmseg_dsnet.leaderboard.board import check_run_not_recorded_elsewhere
    runs = _copy_runs(tmp_path / 'runs', DSNET_30EP[:2])
    record = json.loads(runs[0].read_text())
    new_name = 'dsnet_isic2017_lightweight_other_seed0.json'
    with pytest.raises(UserError, match='already holds this test of') as err:
        check_run_not_recorded_elsewhere(record, str(tmp_path / 'runs'),
                                         new_name)
    assert str(runs[0]) in str(err.value) and new_name in str(err.value)
    # Its own file (a refresh) and other runs pass.
    check_run_not_recorded_elsewhere(record, str(tmp_path / 'runs'),
                                     DSNET_30EP[0])
    record['work_dir'] = str(tmp_path / 'another_run')
    check_run_not_recorded_elsewhere(record, str(tmp_path / 'runs'),
                                     new_name)


def test_a_validation_line_is_a_test_result_by_the_images_listed(
        tiny_isic, tmp_path):
    """A run never tested gives its last validation line, a test result
    when the validation scored the test split's images. Judged by the
    split file's name, a copy of the test split under another name was
    refused, and a file named like the test split that lists other images
    (or the test split cut by ``indices``) passed for a test result."""
    from mmengine.config import Config

    from mmseg_dsnet.leaderboard.board import check_validation_result
    splits = tiny_isic / 'splits'
    copy = tmp_path / 'held_out.txt'
    copy.write_text((splits / 'lightweight_test.txt').read_text())
    other = tmp_path / 'other' / 'lightweight_test.txt'
    other.parent.mkdir()
    other.write_text((splits / 'lightweight_design_val.txt').read_text())
    work = tmp_path / 'work'
    rec = dict(test_split='splits/lightweight_test.txt',
               metrics_source=f'last validation line of {work}/run.log')

    def check(name, val_dataset, val_root=tiny_isic,
              test_dataset="ann_file='splits/lightweight_test.txt'"):
        config = tmp_path / f'{name}.py'
        config.write_text(
            f"val_dataloader = dict(dataset=dict(data_root='{val_root}', "
            f'{val_dataset}))\n'
            f"test_dataloader = dict(dataset=dict(data_root='{tiny_isic}', "
            f'{test_dataset}))\n'
            "val_evaluator = dict(type='LesionMetric')\n")
        check_validation_result(str(config), Config.fromfile(str(config)),
                                rec, str(work))

    check('on_test', "ann_file='splits/lightweight_test.txt'")
    check('on_a_copy', f"ann_file='{copy}'")
    never = f'{work} was never tested and validated on '
    with pytest.raises(UserError) as err:
        check('on_other', f"ann_file='{other}'")
    assert str(err.value).startswith(
        f'{never}{other}, not on the images of its test split '
        'splits/lightweight_test.txt (last validation line of ')
    with pytest.raises(UserError) as err:
        check('on_part', "ann_file='splits/lightweight_test.txt', indices=2")
    assert str(err.value).startswith(
        f'{never}splits/lightweight_test.txt, not on the images of its '
        'test split splits/lightweight_test.txt')
    with pytest.raises(UserError) as err:
        check('on_val', "ann_file='splits/official_val.txt'")
    assert str(err.value).startswith(
        f'{never}splits/official_val.txt, not on the images of its test '
        'split ')
    # The test split's images under another data root are other images.
    moved = tmp_path / 'moved'
    (moved / 'splits').mkdir(parents=True)
    (moved / 'splits' / 'lightweight_test.txt').write_text(
        (splits / 'lightweight_test.txt').read_text())
    with pytest.raises(UserError, match='not on the images of its test'):
        check('on_moved', "ann_file='splits/lightweight_test.txt'", moved)
    # A split file not found here is judged by its name alone.
    check('by_name', "ann_file='splits/lightweight_test.txt'",
          tmp_path / 'gone')
    with pytest.raises(UserError) as err:
        check('gone', "ann_file='splits/val.txt'", tmp_path / 'gone')
    assert str(err.value).startswith(
        f'{never}splits/val.txt, not on its test split '
        'splits/lightweight_test.txt (last validation line of ')
    # Loaders that name no split file are not known to score one set.
    with pytest.raises(UserError, match='never tested and validated on '
                       'None, not on its test split'):
        check('no_split', '', test_dataset='')
    # A validation evaluator changed from the config's is no test of it.
    changed = Config.fromfile(str(tmp_path / 'on_test.py'))
    changed.val_evaluator['low_res_size'] = (32, 32)
    with pytest.raises(UserError, match=(
            f'^{work} was validated with val_evaluator.low_res_size')):
        check_validation_result(str(tmp_path / 'on_test.py'), changed, rec,
                                str(work))


def test_a_validation_line_is_a_test_result_by_the_images_cut(
        tiny_isic, tmp_path):
    """A validation and a test cut by ``indices`` score the images at
    those places of their split files. A copy of the test split in
    another order with the same ``indices`` scores other images, and
    passed for a test result; places naming the images the test's cut
    keeps score those images."""
    from mmengine.config import Config

    from mmseg_dsnet.leaderboard.board import check_validation_result
    test = tiny_isic / 'splits' / 'lightweight_test.txt'
    ids = test.read_text().split()
    reordered = tmp_path / 'reordered.txt'
    reordered.write_text('\n'.join(reversed(ids)) + '\n')
    work = tmp_path / 'work'
    rec = dict(test_split='splits/lightweight_test.txt',
               metrics_source=f'last validation line of {work}/run.log')
    config = tmp_path / 'cut.py'

    def check(val_dataset):
        config.write_text(
            f"val_dataloader = dict(dataset=dict(data_root='{tiny_isic}', "
            f'{val_dataset}))\n'
            f"test_dataloader = dict(dataset=dict(data_root='{tiny_isic}', "
            "ann_file='splits/lightweight_test.txt', indices=2))\n"
            "val_evaluator = dict(type='LesionMetric')\n")
        check_validation_result(str(config), Config.fromfile(str(config)),
                                rec, str(work))

    with pytest.raises(UserError) as err:
        check(f"ann_file='{reordered}', indices=2")
    assert str(err.value).startswith(
        f'{work} was never tested and validated on {reordered}, not on the '
        'images of its test split splits/lightweight_test.txt')
    check("ann_file='splits/lightweight_test.txt', indices=[1, 0]")
    check(f"ann_file='{reordered}', indices=[-1, -2]")


def test_a_test_on_a_copy_of_the_design_hold_out_is_no_test_result(
        tiny_isic, tmp_path):
    """A design run (trained on the design-train split) tested on a copy
    of the design hold-out under another name was taken for a test
    result: only a test split named like the hold-out was refused."""
    from mmseg_dsnet.datasets.synthetic_fallback import JOINED_PATHS
    from mmseg_dsnet.leaderboard.board import (
        DesignRunError, check_final_test_result,
        check_not_evaluated_on_the_design_hold_out)
    from mmseg_dsnet.utils.messages import counted, first_few
    hold_out = tiny_isic / 'splits' / 'lightweight_design_val.txt'
    copy = tmp_path / 'final_check.txt'
    copy.write_text(hold_out.read_text())
    ids = sorted(hold_out.read_text().split())

    def rec(split_file):
        return dict(checkpoint=None, epochs=2,
                    test_split='splits/lightweight_test.txt',
                    train_split='splits/lightweight_design_train.txt',
                    evaluated_data=dict(data_root=str(tiny_isic),
                                        split_file=split_file))

    with pytest.raises(DesignRunError) as err:
        check_final_test_result(rec(str(copy)), {}, 'w')
    assert str(err.value) == (
        f'w was evaluated on {copy}, which lists {len(ids)} of the '
        f'{counted(len(ids), "image")} of the design hold-out {hold_out} '
        f'({first_few(ids, 3)}), not on a test split; design runs are '
        'recorded by tools/check_real_data.py --split design, not '
        'collected')
    check_final_test_result(
        rec(str(tiny_isic / 'splits' / 'lightweight_test.txt')), {}, 'w')
    # The hold-out of any data root of a wrapped loader counts.
    joined = rec(str(copy))
    joined['evaluated_data']['data_root'] = (
        f'{tmp_path}{JOINED_PATHS}{tiny_isic}')
    with pytest.raises(DesignRunError, match='of the design hold-out'):
        check_not_evaluated_on_the_design_hold_out(joined, 'w')
    # A test split named like the hold-out is refused by its file name; a
    # folder of such a name does not make the file one.
    named = dict(rec(None), test_split='splits/lightweight_design_val.txt')
    with pytest.raises(DesignRunError, match=(
            r'^w was evaluated on the design hold-out \(splits/')):
        check_not_evaluated_on_the_design_hold_out(named, 'w')
    check_not_evaluated_on_the_design_hold_out(dict(
        rec(None), test_split='/runs/design/splits/lightweight_test.txt'),
        'w')


def test_build_refuses_seeds_of_one_row_trained_with_other_settings(
        lb, tmp_path):
    """A seed trained with another learning rate under the same --schedule
    (``leaderboard.py run --cfg-options optim_wrapper.optimizer.lr=0.01``;
    the default schedule text names epochs, images and batch only) was
    averaged into the row, exit 0: the records did not hold the optimizer,
    scheduler or training pipeline."""
    from mmengine.config import Config

    from mmseg_dsnet.leaderboard.board import training_settings
    settings = training_settings(
        Config.fromfile(str(REPO / 'configs/dsnet/dsnet_isic2017.py')))
    runs = _copy_runs(tmp_path / 'runs')
    for run in runs:
        _edit(run, training=settings)
    out = tmp_path / 'results'
    built = lb.main(['build', '--runs', *map(str, runs), '--out-dir',
                     str(out), '--no-plot'])
    row, = built['board']['measured']
    assert row['seeds'] == [0, 1, 2]
    shutil.rmtree(out)
    changed = json.loads(json.dumps(settings))
    changed['optim_wrapper']['optimizer']['lr'] = 0.01
    _edit(runs[1], training=changed)
    with pytest.raises(MixedRunsError, match='the row DSNet ') as err:
        lb.main(['build', '--runs', *map(str, runs), '--out-dir', str(out),
                 '--no-plot'])
    assert 'training setting optim_wrapper.optimizer.lr 0.001 ' \
        f'({DSNET_30EP[0]}, {DSNET_30EP[2]}) vs 0.01 ({DSNET_30EP[1]})' \
        in str(err.value)
    assert not out.exists()
    # A record without the settings (collected before they were recorded)
    # is not compared.
    _edit(runs[1], training=None)
    built = lb.main(['build', '--runs', *map(str, runs), '--out-dir',
                     str(out), '--no-plot'])
    assert built['board']['measured'][0]['seeds'] == [0, 1, 2]


def test_collect_refuses_figures_on_images_of_the_training_split(tmp_path):
    """A run trained on official_train.txt and tested on
    lightweight_test.txt (drawn from the official train and validation
    images), or tested on another conversion's lightweight_test.txt:
    collect told a training split by its name only and recorded figures
    on images the model learned from, exit 0."""
    from mmseg_dsnet.leaderboard.board import \
        check_not_evaluated_on_trained_images
    root = tmp_path / 'isic2017'
    (root / 'splits').mkdir(parents=True)
    train = [f'ISIC_{i:07d}' for i in range(10)]
    (root / 'splits' / 'official_train.txt').write_text('\n'.join(train))
    (root / 'splits' / 'lightweight_train.txt').write_text(
        '\n'.join(train[:6]))
    test = root / 'splits' / 'lightweight_test.txt'
    test.write_text('\n'.join(train[6:] + ['ISIC_0000099']))

    def rec(train_split):
        return dict(data_root=str(root), train_split=train_split,
                    evaluated_data=dict(split_file=str(test)))

    with pytest.raises(UserError, match='was evaluated on') as err:
        check_not_evaluated_on_trained_images(
            rec('splits/official_train.txt'), 'W')
    message = str(err.value)
    assert 'lists 4 of its 5 images in the split the run trained on' in \
        message
    assert 'official_train.txt: ISIC_0000006, ISIC_0000007, ' \
        'ISIC_0000008, ... (1 more)' in message
    # Disjoint splits, and split files not readable here, pass.
    check_not_evaluated_on_trained_images(
        rec('splits/lightweight_train.txt'), 'W')
    check_not_evaluated_on_trained_images(rec('splits/gone.txt'), 'W')


def test_collect_compares_each_training_dataset_a_wrapper_holds(tmp_path):
    """A run whose training loader wraps its dataset (RepeatDataset,
    ConcatDataset) records no training split: collect compared the tested
    split with none and recorded figures on images the model learned
    from, exit 0."""
    from mmseg_dsnet.leaderboard.board import \
        check_not_evaluated_on_trained_images
    root = tmp_path / 'isic2017'
    (root / 'splits').mkdir(parents=True)
    train = [f'ISIC_{i:07d}' for i in range(6)]
    (root / 'splits' / 'official_train.txt').write_text('\n'.join(train))
    (root / 'splits' / 'official_val.txt').write_text('ISIC_0000010\n')
    test = root / 'splits' / 'lightweight_test.txt'
    test.write_text('ISIC_0000004\nISIC_0000020\n')
    rec = dict(data_root=None, train_split=None,
               evaluated_data=dict(split_file=str(test)))

    def trained_on(*splits):
        return dict(train_dataloader=dict(dataset=dict(
            type='RepeatDataset', times=2, dataset=dict(
                type='ConcatDataset', datasets=[
                    dict(data_root=str(root), ann_file=split)
                    for split in splits]))))

    with pytest.raises(UserError) as err:
        check_not_evaluated_on_trained_images(
            rec, 'W', trained_on('splits/official_val.txt',
                                 'splits/official_train.txt'))
    assert str(err.value).startswith(
        f'W was evaluated on {test}, which lists 1 of its 2 images in the '
        f'split the run trained on ({root}/splits/official_train.txt: '
        'ISIC_0000004)')
    check_not_evaluated_on_trained_images(
        rec, 'W', trained_on('splits/official_val.txt'))


def test_collect_reads_each_split_file_of_a_wrapped_test_loader(
        tiny_isic, tmp_path):
    """tools/test.py records the split files of a wrapped test loader's
    datasets joined by ' + ': collect found no such file, so figures on
    training images, or of a best checkpoint chosen on the test split,
    were recorded as a test result, exit 0."""
    from mmseg_dsnet.leaderboard.board import (
        check_final_test_result, check_not_evaluated_on_trained_images)
    splits = tiny_isic / 'splits'
    test, train = (splits / 'lightweight_test.txt',
                   splits / 'lightweight_train.txt')
    rec = dict(checkpoint='w/best_IoU_epoch_1.pth', epochs=2,
               data_root=str(tiny_isic),
               train_split='splits/lightweight_train.txt',
               evaluated_data=dict(
                   data_root=str(tiny_isic),
                   split_file=f'{splits / "official_test.txt"} + {test}'))
    validated_on_test = dict(val_dataloader=dict(dataset=dict(
        data_root=str(tiny_isic), ann_file='splits/lightweight_test.txt')))
    with pytest.raises(UserError, match='the best checkpoint was chosen by '
                       'validating on lightweight_test.txt'):
        check_final_test_result(rec, validated_on_test, 'w')
    check_not_evaluated_on_trained_images(rec, 'w')
    with_train = dict(rec, evaluated_data=dict(
        rec['evaluated_data'], split_file=f'{test} + {train}'))
    with pytest.raises(UserError) as err:
        check_not_evaluated_on_trained_images(with_train, 'w')
    assert str(err.value).startswith(
        f'w was evaluated on {test} + {train}, which lists '
        f'{len(train.read_text().split())} of its ')


def test_collect_reads_split_ids_as_the_datasets_read_them(tmp_path):
    """A training split listing ``./ISIC_0000001`` (the ISIC datasets read
    it as ``ISIC_0000001``) and a test split listing ``ISIC_0000001``: collect
    compared the lines as written and recorded figures on an image the
    model learned from, exit 0."""
    from mmseg_dsnet.leaderboard.board import \
        check_not_evaluated_on_trained_images
    root = tmp_path / 'isic2017'
    (root / 'splits').mkdir(parents=True)
    (root / 'splits' / 'train.txt').write_text(
        './ISIC_0000001\nISIC_0000002\n')
    test = root / 'splits' / 'test.txt'
    test.write_text('ISIC_0000001\nISIC_0000003\n')
    with pytest.raises(UserError, match='lists 1 of its 2 images in the '
                       'split the run trained on .*: ISIC_0000001\\)'):
        check_not_evaluated_on_trained_images(
            dict(data_root=str(root), train_split='splits/train.txt',
                 evaluated_data=dict(split_file=str(test))), 'W')


@pytest.mark.parametrize('where', ['file', 'file/sub'])
def test_build_names_an_out_dir_it_cannot_make(tmp_path, where):
    """``--out-dir`` that is a file (or runs through one): a
    FileExistsError (NotADirectoryError) traceback, exit 1."""
    runs = _copy_runs(tmp_path / 'runs', DSNET_30EP[:1])
    (tmp_path / 'file').write_text('mine')
    readme = tmp_path / 'README.md'
    readme.write_text('<!-- leaderboard:start -->\nold\n'
                      '<!-- leaderboard:end -->\n')
    line = _one_error_line(run_tool_in_process(
        LEADERBOARD, 'build', '--runs', *runs, '--out-dir',
        tmp_path / where, '--readme', readme, '--no-plot'))
    assert line == (f'ERROR: --out-dir {tmp_path / where}: cannot make the '
                    f'folder ({tmp_path / "file"} is a file, not a folder); '
                    'give a folder for the leaderboard files; nothing was '
                    'written')
    assert (tmp_path / 'file').read_text() == 'mine'
    assert 'old' in readme.read_text()


def test_build_never_shows_an_imperfect_mean_as_100(lb, tmp_path):
    """LesionMetric writes a figure that misses perfection by a hair as
    99.9999; the leaderboard's ``.2f`` showed its mean as ``100.00``
    (no error at all) in leaderboard.md, the README and the model card."""
    runs = _copy_runs(tmp_path / 'runs')
    for path in runs:
        metrics = json.loads(path.read_text())['metrics']
        _edit(path, metrics=dict(metrics, IoU=99.9999, DSC=99.9999,
                                 Spe=99.9999, TJ=0.0001))
    built = lb.main(['build', '--runs', *map(str, runs), '--out-dir',
                     str(tmp_path / 'results'), '--no-plot'])
    board = built['board']
    md = (tmp_path / 'results' / 'leaderboard.md').read_text()
    for text in (md, blocks.readme_block(board),
                 blocks.model_card_block(board)):
        assert '100.00' not in text
        assert '>99.99 ± 0.00' in text
    assert '<0.01 ± 0.00' in md and '<0.01 ± 0.00' in \
        blocks.model_card_block(board)
    # The figures themselves are kept as they were.
    assert board['measured'][0]['spe']['mean'] == pytest.approx(99.9999)


def test_collect_reads_the_figures_of_a_prefixed_evaluator(tmp_path):
    """With ``test_evaluator = dict(..., prefix='lesion')`` the figures are
    ``lesion/IoU`` ...: collect wrote a record without one figure it
    shows, and the row read ``-`` in every metric column (exit 0); a
    run only validated was told to test first. Now the prefix is taken
    off; figures of two LesionMetrics, or of none, are refused."""
    from mmseg_dsnet.leaderboard.work_dir import final_metrics
    figures = json.loads((RUNS / DSNET_30EP[0]).read_text())['metrics']
    metrics = tmp_path / 'test_metrics.json'

    def write(values):
        metrics.write_text(json.dumps(dict(metrics=values,
                                           checkpoint='epoch_30.pth')))
        return final_metrics(str(tmp_path), [], [])

    got, kind, source, checkpoint = write(
        {f'lesion/{k}': v for k, v in figures.items()})
    assert got == figures and kind == 'test_metrics.json'
    assert "prefix 'lesion' taken off" in source
    assert write(figures)[:3] == (figures, 'test_metrics.json',
                                  f'tools/test.py metrics file {metrics}')
    # The last validation line of a run only validated.
    scalars = tmp_path / 'scalars.json'
    run = dict(scalars=str(scalars), test_json=str(tmp_path / 'none.json'),
               dir='20261204_000000', lines=[
        dict({f'val/{k}': v for k, v in figures.items()}, step=30,
             data_time=0.1, time=0.2)])
    metrics.unlink()
    got, kind, _, _ = final_metrics(str(tmp_path), [run], [])
    assert got == figures and kind == 'last validation line'
    with pytest.raises(UserError, match=(
            f"{metrics} holds the figures of 2 LesionMetric evaluators "
            r"\(prefixes 'a', 'b'\)")):
        write({'a/IoU': 80.0, 'b/IoU': 81.0})
    with pytest.raises(UserError, match=(
            f'{metrics} holds no LesionMetric figures '
            r'\(no IoU; its keys: aAcc, mAcc, mIoU\)')):
        write({'mIoU': 80.0, 'mAcc': 90.0, 'aAcc': 95.0})


@pytest.mark.parametrize('metrics', [
    'prefixed', 'no TJ', 'null IoU'])
def test_build_refuses_a_seed_without_a_figure(lb, tmp_path, metrics):
    """A record whose metrics lack a figure (``lesion/IoU`` ... of a
    prefixed evaluator, collected before collect took the prefix off; a
    figure missing or null) made that figure's mean None: its column read
    ``-`` for the whole row, every seed, exit 0."""
    runs = _copy_runs(tmp_path / 'runs')
    figures = json.loads(runs[1].read_text())['metrics']
    edited = {'prefixed': {f'lesion/{k}': v for k, v in figures.items()},
              'no TJ': {k: v for k, v in figures.items() if k != 'TJ'},
              'null IoU': dict(figures, IoU=None)}[metrics]
    _edit(runs[1], metrics=edited)
    proc = run_tool_in_process(
        LEADERBOARD, 'build', '--runs', *map(str, runs), '--out-dir',
        str(tmp_path / 'results'), '--no-plot')
    line = _one_error_line(proc)
    missing = {'prefixed': 'IoU, DSC, Acc', 'no TJ': 'TJ',
               'null IoU': 'IoU'}[metrics]
    assert line.startswith(f'ERROR: {runs[1]} holds no {missing}')
    assert 'would show - for each of them' in line
    assert not (tmp_path / 'results').exists()


def test_build_refuses_seeds_of_best_and_final_checkpoints(lb, tmp_path):
    """An official-protocol run may be tested with its best_*.pth (chosen
    on the validation split); one row averaged a seed tested so with
    seeds tested with their final weights (exit 0): the mean of two model
    selections, which the row did not say."""
    runs = _copy_runs(tmp_path / 'runs')
    for path, name in zip(runs, ['best_IoU_epoch_25.pth', 'epoch_30.pth',
                                 'epoch_30.pth']):
        _edit(path, checkpoint=f'/work/run/{name}')
    proc = run_tool_in_process(
        LEADERBOARD, 'build', '--runs', *map(str, runs), '--out-dir',
        str(tmp_path / 'results'), '--no-plot')
    line = _one_error_line(proc)
    assert 'would average seeds run differently: checkpoint tested best ' \
        f'on validation (best_*.pth) ({runs[0].name}) vs final ' \
        f'({runs[1].name}, {runs[2].name})' in line
    assert not (tmp_path / 'results').exists()
    # All of one kind (or not recorded, as in older records) still build.
    for path in runs:
        _edit(path, checkpoint='/work/run/best_IoU_epoch_25.pth')
    _edit(runs[2], checkpoint=None)
    built = lb.main(['build', '--runs', *map(str, runs), '--out-dir',
                     str(tmp_path / 'results'), '--no-plot'])
    assert built['board']['measured'][0]['seeds'] == [0, 1, 2]


def _records(names):
    return [json.loads((RUNS / name).read_text()) for name in names]


def test_aggregate_rows_by_hand():
    """table.aggregate on the committed records with figures set by hand:
    a row's mean and sample std (n-1) over its seeds, in seed order; the
    newest collection of a seed wins; a timing of some seeds averages
    those; one short seed marks the row; rows sort by mean DSC, best
    first."""
    from mmseg_dsnet.leaderboard.table import aggregate
    dsnet = _records(DSNET_30EP)
    # Collected in the order seed 2, 0, 1 (not seed order).
    for rec, dsc, stamp in zip(dsnet, (80.0, 84.0, 86.0),
                               ('2026-12-02', '2026-12-03', '2026-12-01')):
        rec['metrics']['DSC'] = dsc
        rec['collected_at'] = stamp
        rec['cpu_latency_ms'] = None
        rec['short_schedule'] = False
    dsnet[0]['cpu_latency_ms'] = 10.0
    dsnet[2]['short_schedule'] = True
    # Seed 0 collected again, later, from its own work dir: this one counts.
    again = json.loads(json.dumps(dsnet[0]))
    again['metrics']['DSC'] = 83.0
    again['collected_at'] = '2026-12-04'
    ege = _records([name.replace('dsnet_', 'ege-unet_')
                    for name in DSNET_30EP])
    for rec in ege:
        rec['metrics']['DSC'] = 90.0
    # Given before the earlier collection: the newest wins, not the last.
    first, second = aggregate([dsnet[2], again, ege[1], dsnet[0], ege[0],
                               dsnet[1], ege[2]])
    assert first['model'] == 'EGE-UNet' and second['model'] == 'DSNet'
    assert first['dsc'] == dict(mean=90.0, std=0.0, min=90.0, max=90.0, n=3)
    assert second['seeds'] == [0, 1, 2]
    assert second['runs'] == DSNET_30EP
    # 83, 84, 86: mean 253/3, squared deviations (4 + 1 + 25) / 9, over
    # n-1 = 2: variance 7/3.
    assert second['dsc']['mean'] == pytest.approx(253 / 3, abs=1e-12)
    assert second['dsc']['std'] == pytest.approx((7 / 3)**0.5, abs=1e-12)
    assert (second['dsc']['min'], second['dsc']['max'],
            second['dsc']['n']) == (83.0, 86.0, 3)
    assert second['cpu_latency_ms'] == dict(mean=10.0, std=None, min=10.0,
                                            max=10.0, n=1)
    assert second['short_schedule'] is True and \
        first['short_schedule'] is True


def test_a_last_validation_line_is_of_the_final_weights():
    """A record without a checkpoint whose figures are its last
    validation line is of the final weights: averaged with seeds tested
    with their best_*.pth it is refused, with seeds of their final weights
    it is not."""
    from mmseg_dsnet.leaderboard.table import aggregate
    records = _records(DSNET_30EP)
    records[0]['checkpoint'] = None
    records[0]['metrics_source_kind'] = 'last validation line'
    for rec in records[1:]:
        rec['checkpoint'] = '/work/run/best_IoU_epoch_25.pth'
    with pytest.raises(MixedRunsError, match='checkpoint tested'):
        aggregate(records)
    for rec in records[1:]:
        rec['checkpoint'] = '/work/run/epoch_30.pth'
    row, = aggregate(records)
    assert row['seeds'] == [0, 1, 2]


def test_stats_of_seeds_with_a_missing_figure():
    """A seed without the figure makes a metric's statistics None (shown
    as ``-``, never the mean of the others); a timing of some seeds
    averages those: 80 and 84, mean 82, std sqrt((2² + 2²) / (2 - 1))."""
    from mmseg_dsnet.leaderboard.table import stats
    assert stats([80.0, None, 84.0]) is None
    assert stats([]) is None and stats([None], skip_missing=True) is None
    got = stats([80.0, None, 84.0], skip_missing=True)
    assert got == dict(mean=82.0, std=pytest.approx(8**0.5, abs=1e-12),
                       min=80.0, max=84.0, n=2)


def test_two_seeds_trained_with_other_settings_are_refused():
    """Two records of one row holding other learning rates are refused,
    also when a third record does not hold its settings."""
    from mmseg_dsnet.leaderboard.table import aggregate
    records = _records(DSNET_30EP)
    for rec, lr in zip(records, (0.001, 0.01)):
        rec['training'] = dict(optim_wrapper=dict(optimizer=dict(lr=lr)))
    records[2].pop('training', None)
    with pytest.raises(MixedRunsError, match=(
            r'training setting optim_wrapper\.optimizer\.lr 0\.001 .* vs '
            r'0\.01 ')):
        aggregate(records)
    records[1]['training'] = records[0]['training']
    row, = aggregate(records)
    assert row['seeds'] == [0, 1, 2]


def test_a_record_without_a_seed_comes_last():
    from mmseg_dsnet.leaderboard.table import aggregate, summary_line
    records = _records(DSNET_30EP)
    records[1]['seed'] = None
    row, = aggregate(records)
    assert row['seeds'] == [0, 2, None]
    assert row['runs'] == [DSNET_30EP[0], DSNET_30EP[2], DSNET_30EP[1]]
    assert 'seeds: 0, 2, None;' in summary_line([row])


def test_timings_show_their_spread_over_seeds():
    """CPU ms, GPU img/s and training time: mean ± sample std, rounded to
    the column's digits; one seed shows its value alone."""
    from mmseg_dsnet.leaderboard.table import _stat
    assert _stat(dict(mean=10.0, std=0.5, min=9.5, max=10.5, n=2)) == \
        '10.00 ± 0.50'
    assert _stat(dict(mean=1234.4, std=56.6, min=1190.0, max=1270.0, n=2),
                 0) == '1234 ± 57'
    assert _stat(dict(mean=7.25, std=None, min=7.25, max=7.25, n=1)) == \
        '7.25'
    assert _stat(None) == '-'


def test_one_work_dir_spelt_two_ways_is_one_run():
    """``/w/run`` and ``/w/run/`` (or ``/w/./run``) are one work dir: its
    test recorded under two seeds is refused."""
    from mmseg_dsnet.leaderboard.table import (DuplicateRunError,
                                               check_each_run_once)
    first = dict(record_file='a.json', model='DSNet', seed=0,
                 work_dir='/w/run', metrics_source='/w/run/test.json')
    second = dict(first, record_file='b.json', seed=1, work_dir='/w/./run/')
    with pytest.raises(DuplicateRunError, match=(
            r'^a\.json \(DSNet, seed 0\) and b\.json \(DSNet, seed 1\) hold '
            r'the same test of one run \(/w/run, /w/run/test\.json\)')):
        check_each_run_once({'row': {0: first, 1: second}})
    check_each_run_once({'row': {0: first, 1: dict(second,
                                                    work_dir='/w/run2')}})


def test_a_timing_of_some_seeds_says_how_many():
    """Seeds 0, 1 and 2 of a row, two of them benchmarked (the third
    collected with --no-benchmark): leaderboard.md showed the two seeds'
    ``mean ± std`` beside ``Seeds 0, 1, 2``, as if over all three."""
    from mmseg_dsnet.leaderboard.table import (MEASURED_COLUMNS, aggregate,
                                               markdown_table)
    records = _records(DSNET_30EP)
    timings = ('cpu_latency_ms', 'gpu_img_per_s', 'train_time_s')
    for record, latency in zip(records, (30.0, 40.0, None)):
        record.update(dict.fromkeys(timings, latency))
    row, = aggregate(records)
    line = markdown_table(MEASURED_COLUMNS, [row]).splitlines()[-1]
    assert '| 0, 1, 2 |' in line
    assert '| 35.00 ± 7.07 (2 of 3 seeds) |' in line
    # Each timing column (CPU, GPU, train time).
    assert '| 35 ± 7 (2 of 3 seeds) | 35 ± 7 (2 of 3 seeds) |' in line
    # Timed on every seed: the value alone, as before.
    records[2].update(dict.fromkeys(timings, 35.0))
    row, = aggregate(records)
    line = markdown_table(MEASURED_COLUMNS, [row]).splitlines()[-1]
    assert '| 35.00 ± 5.00 |' in line and 'seeds)' not in line


def test_a_schedule_text_naming_its_own_count_beside_others_passes():
    """A text naming a warm-up's epochs beside the run's own describes the
    run; one that never names the run's own is refused."""
    from mmseg_dsnet.leaderboard.board import check_schedule_text
    record, = _records(DSNET_30EP[:1])
    check_schedule_text('1 epoch linear warm-up, then 30 epochs cosine, '
                        'batch 8', record)
    with pytest.raises(UserError,
                       match=r'it says epochs 1/15 \(the run: 30\);'):
        check_schedule_text('1 epoch warm-up, then 15 epochs', record)


def test_build_refuses_a_record_whose_schedule_text_is_another_runs(
        tmp_path):
    """A record collected (before collect compared them) under the
    ``--schedule`` text of another schedule: the row said ``15 epochs ...
    256x256`` of 30-epoch runs, exit 0."""
    runs = _copy_runs(tmp_path / 'runs', DSNET_30EP[:1])
    text = ('CPU 15 epochs at 256x256: all 1500 train images (2820 '
            'iterations, batch 8), 256x256 input')
    _edit(runs[0], schedule=text, input_size=dict(train=[128, 128],
                                                  test=[128, 128]))
    out = tmp_path / 'results'
    line = _one_error_line(run_tool_in_process(
        LEADERBOARD, 'build', '--out-dir', out, '--no-plot', '--runs',
        *runs))
    work = json.loads(runs[0].read_text())['work_dir']
    assert line == (
        f'ERROR: {runs[0]}: its schedule {text!r} does not describe the run '
        f'collected from {work}: it says epochs 15 (the run: 30); '
        'iterations 2820 (the run: 5640); input size 256x256 (the run: '
        '128x128); collect the run again with the description of its own '
        'schedule')
    assert not out.exists()


def test_a_resume_that_found_no_checkpoint_starts_a_training(tmp_path):
    """A first run started with ``--resume`` in a work dir with nothing to
    resume: mmengine logged ``Auto resumed from the latest checkpoint
    None.`` and trained from epoch 1. It was read as a resumption, so a
    training before it in the work dir was summed with it as one; it
    starts the latest training, a real resumption does not."""
    from mmseg_dsnet.leaderboard.work_dir import latest_training, parse_log

    def log(name, epoch, note):
        path = tmp_path / f'{name}.log'
        path.write_text(
            f'2026/01/0{epoch} 10:00:00 - mmengine - INFO - {note}\n'
            f'2026/01/0{epoch} 10:00:01 - mmengine - INFO - Checkpoints '
            f'will be saved to {tmp_path}.\n'
            f'2026/01/0{epoch} 10:00:09 - mmengine - INFO - Epoch(train) '
            f'[{epoch}][3/3]  lr: 1.0000e-03  loss: 0.5000\n')
        return parse_log(path)

    earlier = log('earlier', 1, 'Config:')
    anew = log('anew', 1, 'Auto resumed from the latest checkpoint None.')
    resumed = log('resumed', 2, 'Auto resumed from the latest checkpoint '
                  f'{tmp_path}/epoch_1.pth.')
    assert (anew['resumed'], resumed['resumed']) == (False, True)
    runs, infos, left_out = latest_training(
        ['earlier', 'anew', 'resumed'], [earlier, anew, resumed])
    assert (runs, left_out) == (['anew', 'resumed'], ['earlier'])


def test_one_synthetic_seed_marks_its_row_and_the_summary():
    """A row with one seed on the synthetic stand-in set is a row on it:
    the board's summary line says so (any seed, not only all of them)."""
    from mmseg_dsnet.leaderboard.table import aggregate, summary_line
    records = _records(DSNET_30EP)
    assert not any(rec.get('synthetic_data') for rec in records)
    row, = aggregate(records)
    assert row['synthetic_data'] is False
    assert 'synthetic' not in summary_line([row])
    records[1]['synthetic_data'] = True
    row, = aggregate(records)
    assert row['synthetic_data'] is True
    assert summary_line([row]).endswith(
        ' Some rows use the synthetic stand-in data set.')


def test_a_bar_in_a_cell_keeps_the_markdown_row_whole():
    """A ``|`` in a value (a citation) would end its cell early and shift
    every cell after it into the wrong column: it is shown as ``/``."""
    from mmseg_dsnet.leaderboard.table import markdown_table
    columns = (('Model', lambda r: r['model']),
               ('Citation', lambda r: r['citation']),
               ('DSC', lambda r: r['dsc']))
    text = markdown_table(columns, [dict(model='DSNet', dsc='89.81',
                                         citation='Paper | 2024')])
    assert text.splitlines()[-1] == '| DSNet | Paper / 2024 | 89.81 |'
    assert blocks._tables(text)[-1][-1] == ['DSNet', 'Paper / 2024',
                                            '89.81']


def test_one_short_row_gets_the_short_schedule_note():
    """leaderboard.md marks a short row with † and explains the mark under
    the table, also when other rows ran the full schedule."""
    from mmseg_dsnet.leaderboard.table import (SHORT_NOTE, aggregate,
                                               build_board,
                                               leaderboard_markdown)
    short = _records(DSNET_30EP)
    full = _records([name.replace('dsnet_', 'ege-unet_')
                     for name in DSNET_30EP])
    for rec in full:
        rec['short_schedule'] = False
    assert all(rec['short_schedule'] for rec in short)
    rows = {row['model']: row for row in aggregate(short + full)}
    assert (rows['DSNet']['short_schedule'],
            rows['EGE-UNet']['short_schedule']) == (True, False)
    text = leaderboard_markdown(build_board(short + full, None))
    assert text.count(' †') == 1 and SHORT_NOTE in text
    assert SHORT_NOTE not in leaderboard_markdown(build_board(full, None))


def test_one_seed_never_shows_an_imperfect_figure_as_100():
    """A row of one seed (no std) shows its figure alone: 99.9999 reads
    ``>99.99`` and 0.0001 ``<0.01`` there too, not 100.00 and 0.00."""
    from mmseg_dsnet.leaderboard.table import (MEASURED_COLUMNS, aggregate,
                                               markdown_table)
    record, = _records(DSNET_30EP[:1])
    record['metrics'].update(IoU=99.9999, TJ=0.0001)
    row, = aggregate([record])
    assert row['iou']['std'] is None
    cells = blocks._tables(markdown_table(MEASURED_COLUMNS, [row]))[0]
    shown = dict(zip(*cells))
    assert (shown['IoU'], shown['TJ']) == ('>99.99', '<0.01')


def test_build_refuses_an_ablation_labelled_as_its_base_model():
    """The no-gate ablation's record relabelled ``DSNet`` (collected
    without ``--label``) would join DSNet's row: refused, naming what
    differs; DSNet's own seeds pass."""
    from mmseg_dsnet.leaderboard.board import (MixedModelsError,
                                               check_one_model_per_row)
    ungated, = _records(
        ['dsnet-no-gate_isic2017_lightweight_cpu-30ep_seed1.json'])
    dsnet = _records(DSNET_30EP)
    check_one_model_per_row(dsnet)
    ungated['model'] = 'DSNet'
    assert ungated['schedule'] == dsnet[0]['schedule']
    with pytest.raises(MixedModelsError, match=(
            r'^the row DSNet \(ISIC 2017, lightweight, CPU 30 epochs.* would '
            r'average runs of different models: ')):
        check_one_model_per_row(dsnet[:1] + [ungated])


def test_build_refuses_a_record_of_a_model_its_config_no_longer_builds(
        lb, tmp_path):
    """A record whose model is not what its config builds now (here: the
    gate recorded off, the config has it on) is refused by build before
    any file is written."""
    from mmseg_dsnet.leaderboard.board import StaleRecordError
    path, = _copy_runs(tmp_path / 'runs', DSNET_30EP[:1])
    model = json.loads(path.read_text())['model_config']
    model['decode_head']['use_gate'] = False
    _edit(path, model_config=model)
    out = tmp_path / 'results'
    with pytest.raises(StaleRecordError, match=(
            r'1 run record trained another model than its config '
            r'builds now: dsnet_isic2017_lightweight_cpu-30ep_seed0\.json '
            r'\(configs/dsnet/dsnet_isic2017\.py: .*use_gate differs\)')):
        lb.main(['build', '--runs', str(path), '--out-dir', str(out),
                 '--no-plot'])
    assert not out.exists()


def test_build_refuses_a_record_that_is_not_of_a_measurement():
    """A record with every key of a run record but another source (a
    published figure written out as one) would be averaged into a
    measured row."""
    from mmseg_dsnet.leaderboard.board import (RecordKindError,
                                               check_run_record)
    record, = _records(DSNET_30EP[:1])
    check_run_record('seed0.json', record)
    record['source'] = 'reported'
    with pytest.raises(RecordKindError, match=(
            r"^seed0\.json is not a measured run record \(source "
            r"'reported', metrics a dict\)")):
        check_run_record('seed0.json', record)


def test_a_record_whose_config_is_gone_is_stale(tmp_path):
    """A record naming a config that no longer exists cannot show what
    model its row is: refused with the others that are stale."""
    from mmseg_dsnet.leaderboard.board import (StaleRecordError,
                                               check_records_current)
    record, = _records(DSNET_30EP[:1])
    check_records_current([record])
    record['config'] = 'configs/dsnet/dsnet_renamed.py'
    with pytest.raises(StaleRecordError, match=(
            r'1 run record .*: dsnet_isic2017_lightweight_cpu-30ep_'
            r'seed0\.json \(configs/dsnet/dsnet_renamed\.py no longer '
            r'exists\)')):
        check_records_current([record])


def test_one_model_name_in_two_rows_may_be_two_models():
    """Records of one name that are rows of their own (another schedule)
    are not averaged, so different models among them pass."""
    from mmseg_dsnet.leaderboard.board import check_one_model_per_row
    dsnet, = _records(DSNET_30EP[:1])
    ungated, = _records(
        ['dsnet-no-gate_isic2017_lightweight_cpu-30ep_seed1.json'])
    ungated.update(model=dsnet['model'], schedule='another schedule')
    assert ungated['model_config'] != dsnet['model_config']
    check_one_model_per_row([dsnet, ungated])


def test_a_schedule_text_with_another_batch_size_is_refused():
    """``batch size 16`` for a run of batch 8 is another schedule's
    text, as ``batch 16`` is."""
    from mmseg_dsnet.leaderboard.board import check_schedule_text
    record, = _records(DSNET_30EP[:1])
    assert record['batch_size'] == 8
    check_schedule_text('30 epochs, batch size 8', record)
    for text in ('30 epochs, batch size 16', '30 epochs, batch 16'):
        with pytest.raises(UserError,
                           match=r'it says batch size 16 \(the run: 8\)'):
            check_schedule_text(text, record)


def test_the_board_states_the_flops_convention_of_its_records():
    from mmseg_dsnet.leaderboard.board import board_from_records
    record, = _records(DSNET_30EP[:1])
    board = board_from_records([record], None, None)
    assert board['flops_convention'].startswith(
        '1 multiply-add = 1 FLOP (mmengine FlopAnalyzer')


def test_check_refuses_a_json_object_that_is_no_leaderboard(tmp_path):
    """An object without ``measured`` (no kind build writes) compared with
    no page passed as a leaderboard with nothing in it."""
    from mmseg_dsnet.leaderboard.board import RecordKindError, check
    path = tmp_path / 'other.json'
    path.write_text(json.dumps(dict(rows=[])))
    with pytest.raises(RecordKindError, match=(
            r'other\.json is not a complete leaderboard: it lacks '
            r'measured;')):
        check(None, str(path))


def _tested(**facts):
    """A run as read_work_dir reads it, with only what the checks of its
    test result read."""
    rec = dict(checkpoint=None, epochs=30, train_split=(
        'splits/lightweight_train.txt'), test_split=(
            'splits/lightweight_test.txt'), evaluated_data=dict(
                split_file='splits/lightweight_test.txt', data_root=None),
               data_root=None, dataset_key='isic2017',
               dataset_type='ISIC2017Dataset', dataset='ISIC 2017')
    rec.update(facts)
    return rec


def test_figures_of_any_training_split_or_an_earlier_epoch_are_refused(
        tmp_path):
    """Figures on a split named a training split (even of another
    protocol than the one trained on), or of an earlier epoch's
    checkpoint, are no final test result."""
    from mmengine.config import Config

    from mmseg_dsnet.leaderboard.board import check_final_test_result
    cfg = Config(dict(val_dataloader=dict(dataset=dict(
        ann_file='splits/lightweight_test.txt'))))
    check_final_test_result(_tested(), cfg, 'w')
    check_final_test_result(_tested(checkpoint='w/epoch_30.pth'), cfg, 'w')
    with pytest.raises(UserError, match=(
            r'^w was evaluated on a training split \(official_train\.txt; '
            r'trained on lightweight_train\.txt\)')):
        check_final_test_result(_tested(evaluated_data=dict(
            split_file='splits/official_train.txt')), cfg, 'w')
    with pytest.raises(UserError, match=(
            r'^w: the test metrics are of w/epoch_29\.pth but the run '
            r'trained 30 epochs')):
        check_final_test_result(_tested(checkpoint='w/epoch_29.pth'), cfg,
                                'w')


def test_data_of_another_isic_year_than_the_config_is_refused(tmp_path):
    from mmseg_dsnet.leaderboard.board import check_data_is_the_dataset
    root = tmp_path / 'isic2017'
    root.mkdir()
    (root / 'meta.json').write_text(json.dumps(dict(year=2017)))
    check_data_is_the_dataset(_tested(data_root=str(root)), 'w')
    (root / 'meta.json').write_text(json.dumps(dict(year=2018)))
    for where, facts in (('trained on', dict(data_root=str(root))),
                         ('evaluated on', dict(evaluated_data=dict(
                             data_root=str(root))))):
        with pytest.raises(UserError, match=(
                rf'^w was {where} {root}, whose meta\.json says ISIC 2018 '
                'data, but its config names ISIC2017Dataset')):
            check_data_is_the_dataset(_tested(**facts), 'w')
    # An earlier year than the config's, too.
    (root / 'meta.json').write_text(json.dumps(dict(year=2017)))
    with pytest.raises(UserError, match=(
            rf'^w was trained on {root}, whose meta\.json says ISIC 2017 '
            'data, but its config names ISIC2018Dataset')):
        check_data_is_the_dataset(_tested(
            data_root=str(root), dataset_key='isic2018',
            dataset_type='ISIC2018Dataset', dataset='ISIC 2018'), 'w')


def test_build_refuses_records_whose_flops_were_counted_two_ways(tmp_path):
    """A record collected before the FLOPs counter changed, beside newer
    ones: the board stated the first record's convention for every row's
    FLOPs, exit 0."""
    runs = _copy_runs(tmp_path / 'runs', DSNET_30EP[:1] + [
        'dsnet-no-gate_isic2017_lightweight_cpu-30ep_seed0.json'])
    record = json.loads(runs[1].read_text())
    record['complexity']['convention'] = 'older counter: convs only'
    runs[1].write_text(json.dumps(record))
    out = tmp_path / 'results'
    line = _one_error_line(run_tool_in_process(
        LEADERBOARD, 'build', '--out-dir', out, '--no-plot', '--runs',
        *runs))
    assert line.startswith(
        'ERROR: the run records count FLOPs in different ways: '
        'dsnet-no-gate_isic2017_lightweight_cpu-30ep_seed0.json (\'older '
        'counter: convs only\') and dsnet_isic2017_lightweight_cpu-30ep_'
        'seed0.json (\'1 multiply-add = 1 FLOP (mmengine FlopAnalyzer')
    assert not out.exists()


def test_figures_of_a_best_checkpoint_chosen_on_the_test_split_are_refused():
    from mmengine.config import Config

    from mmseg_dsnet.leaderboard.board import check_not_chosen_on_test
    on_test = Config(dict(val_dataloader=dict(dataset=dict(
        ann_file='splits/lightweight_test.txt'))))
    tested = ['lightweight_test.txt']
    with pytest.raises(UserError, match=(
            r'^w: the best checkpoint was chosen by validating on '
            r'lightweight_test\.txt, the split it is tested on')):
        check_not_chosen_on_test(on_test, 'w/best_DSC_epoch_3.pth', tested,
                                 'w')
    # The last checkpoint, or a best one chosen on another split, is fine.
    check_not_chosen_on_test(on_test, 'w/epoch_30.pth', tested, 'w')
    on_val = Config(dict(val_dataloader=dict(dataset=dict(
        ann_file='splits/official_val.txt'))))
    check_not_chosen_on_test(on_val, 'w/best_DSC_epoch_3.pth', tested, 'w')


def test_a_best_checkpoint_chosen_on_the_test_split_renamed_is_refused(
        tmp_path):
    """A validation split of another name holding images of the tested
    split (a subset written to go faster, a link to it) passed by name: the
    figures of a checkpoint chosen on the test images were collected."""
    import os

    from mmengine.config import Config

    from mmseg_dsnet.leaderboard.board import check_not_chosen_on_test
    splits = tmp_path / 'isic' / 'splits'
    splits.mkdir(parents=True)
    test = splits / 'lightweight_test.txt'
    test.write_text('ISIC_0000007\nISIC_0000008\nISIC_0000009\n')
    (splits / 'faster.txt').write_text('ISIC_0000008\n')
    os.symlink('lightweight_test.txt', splits / 'held_out.txt')
    (splits / 'official_val.txt').write_text('ISIC_0000001\n')

    def validating_on(name):
        return Config(dict(val_dataloader=dict(dataset=dict(
            data_root=str(tmp_path / 'isic'), ann_file=f'splits/{name}'))))

    for name, shared in (('faster.txt', '1 image'),
                         ('held_out.txt', '3 images')):
        with pytest.raises(UserError) as error:
            check_not_chosen_on_test(validating_on(name),
                                     'w/best_IoU_epoch_3.pth', [str(test)],
                                     'w')
        assert str(error.value).startswith(
            f'w: the best checkpoint was chosen by validating on {name}, '
            f'which lists {shared} of {test} (ISIC_0000')
    # A validation split sharing no image with it passes.
    check_not_chosen_on_test(validating_on('official_val.txt'),
                             'w/best_IoU_epoch_3.pth', [str(test)], 'w')


def test_figures_of_another_runs_weights_are_refused(tmp_path):
    """A checkpoint outside the work dir passes only when it holds the
    weights of the work dir's file of that name (a copy)."""
    import torch

    from mmseg_dsnet.leaderboard.board import \
        check_tested_checkpoint_is_the_runs
    work, other, copy = (tmp_path / name for name in ('w', 'other', 'copy'))
    for folder, value in ((work, 1.0), (other, 2.0), (copy, 1.0)):
        folder.mkdir()
        torch.save(dict(state_dict={'w': torch.full((3, ), value)}),
                   folder / 'epoch_2.pth')
    for tested in (work, copy):
        check_tested_checkpoint_is_the_runs(
            dict(checkpoint=str(tested / 'epoch_2.pth')), str(work))
    with pytest.raises(UserError, match=(
            rf'^{work}: the test metrics are of {other}/epoch_2\.pth, a '
            rf'checkpoint of another folder \(its weights differ from '
            rf'{work}/epoch_2\.pth\)')):
        check_tested_checkpoint_is_the_runs(
            dict(checkpoint=str(other / 'epoch_2.pth')), str(work))
    # The run's weights and more are not the same weights.
    torch.save(dict(state_dict={'w': torch.full((3, ), 1.0),
                                'head': torch.zeros(1)}),
               work / 'epoch_2.pth')
    with pytest.raises(UserError, match='its weights differ from'):
        check_tested_checkpoint_is_the_runs(
            dict(checkpoint=str(copy / 'epoch_2.pth')), str(work))
    # Recalibrated from the run's own checkpoint: judged by that one.
    check_tested_checkpoint_is_the_runs(dict(
        checkpoint=str(other / 'epoch_2.pth'), batch_norm_recalibration=dict(
            source=str(work / 'epoch_2.pth'))), str(work))
    (work / 'epoch_2.pth').unlink()
    with pytest.raises(UserError, match=rf'\({work} holds no epoch_2\.pth\)'):
        check_tested_checkpoint_is_the_runs(
            dict(checkpoint=str(copy / 'epoch_2.pth')), str(work))


def test_two_runs_of_one_seed_are_refused_whichever_comes_first():
    """Seed 0 from two work dirs: which one the row showed was an accident
    of order."""
    from mmseg_dsnet.leaderboard.table import aggregate
    first, = _records(DSNET_30EP[:1])
    other = json.loads(json.dumps(first))
    other['work_dir'] = first['work_dir'] + '_again'
    other['collected_at'] = '9999-01-01T00:00:00'
    for records in ([first, other], [other, first]):
        with pytest.raises(UserError, match=(
                r'^two runs of DSNet seed 0 \(CPU 30 epochs.*\): .* and '
                r'.*; give the records of one of them')):
            aggregate(records)


def test_a_record_is_read_as_the_utf_8_it_is_written_in(tmp_path):
    """Records are written as UTF-8 (``write_json``); ``load_json`` read
    them in the locale's encoding: a non-ASCII work dir was mojibake under
    cp1252 (Windows) and 'not a JSON file' under an ASCII locale."""
    from mmseg_dsnet.leaderboard.records import write_json
    path = tmp_path / 'record.json'
    write_json({'work_dir': '/data/jörg/run'}, str(path))
    env = {k: v for k, v in os.environ.items() if not k.startswith('LC_')}
    # An ASCII locale: Linux's C locale without UTF-8 mode or coercion.
    env.update(LANG='C', LC_ALL='C', PYTHONCOERCECLOCALE='0', PYTHONUTF8='0')
    proc = subprocess.run(
        [sys.executable, '-c',
         'import locale, sys\n'
         'from mmseg_dsnet.leaderboard.records import load_json\n'
         'print(locale.getpreferredencoding(False))\n'
         'print(ascii(load_json(sys.argv[1])["work_dir"]))', str(path)],
        cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    encoding, work_dir = proc.stdout.split()
    assert encoding != 'UTF-8'
    assert work_dir == ascii('/data/jörg/run')


def test_collect_refuses_figures_on_another_split_than_the_configs_test(
        tiny_isic, tmp_path):
    """``tools/test.py CONFIG CKPT --cfg-options
    test_dataloader.dataset.ann_file=SUBSET`` (a data location passes as
    one): figures on part of the test split, on another split, or on a
    file named like the test split that lists other images became the
    config's row, exit 0. The test split's images under another name, or
    in another data location, are the test split."""
    from mmengine.config import Config

    from mmseg_dsnet.leaderboard.board import (check_tested_on_the_test_split,
                                               tested_split_difference)
    config = str(write_tiny_config(tmp_path / 'tiny.py', tiny_isic))
    test = tiny_isic / 'splits' / 'lightweight_test.txt'
    ids = test.read_text().split()
    subset = tmp_path / 'subset.txt'
    subset.write_text('\n'.join(ids[:2]) + '\n')
    copy = tmp_path / 'held_out.txt'
    copy.write_text(test.read_text())
    other = tmp_path / 'other' / 'splits' / 'lightweight_test.txt'
    other.parent.mkdir(parents=True)
    other.write_text(
        (tiny_isic / 'splits' / 'official_test.txt').read_text())
    gone = '/gone/isic2018'
    dataset = Config.fromfile(config).test_dataloader.dataset

    def evaluated(split_file, images=len(ids), data_root=str(tiny_isic)):
        return dict(data_root=data_root, images=images,
                    split_file=str(split_file))

    def difference(*tested, of=dataset):
        return tested_split_difference(of, evaluated(*tested))

    assert difference(test) is None
    assert difference(copy) is None
    assert difference(f'{gone}/splits/lightweight_test.txt', len(ids),
                      gone) is None
    whole = f'not on the test split of the config, {test} ' \
        f'({len(ids)} images)'
    others = len(other.read_text().split())
    for tested, scored in (
            ((subset, 2), '2 images'), ((test, 2), '2 images'),
            ((tiny_isic / 'splits' / 'official_test.txt', others),
             f'{others} images; it lists {others} images the test split '
             'does not'),
            ((other, others, str(other.parent.parent)),
             f'{others} images; it lists {others} images the test split '
             'does not'),
            ((f'{gone}/splits/lightweight_test.txt', 2, gone), '2 images'),
            ((f'{gone}/splits/subset.txt', len(ids), gone),
             f'{len(ids)} images')):
        assert difference(*tested) == f'{tested[0]} ({scored}), {whole}'
    # The config's data moved: its split file is read where it was tested.
    moved = dict(dataset, data_root='/gone')
    assert difference(test, of=moved) is None
    assert difference(subset, 2, of=moved) == f'{subset} (2 images), {whole}'
    rec = dict(metrics_source='tools/test.py metrics file M',
               evaluated_data=evaluated(subset, 2))
    with pytest.raises(UserError) as err:
        check_tested_on_the_test_split(config, rec, 'W')
    assert str(err.value) == (
        f'W was tested on {subset} (2 images), {whole} (tools/test.py '
        "metrics file M); a leaderboard row is the config's test split as "
        'it is, every image of it: test the checkpoint on it with '
        'tools/test.py (data locations and loader workers may be given), '
        'then collect')


def test_collect_names_the_split_a_run_was_tested_on(tiny_isic, tmp_path,
                                                     monkeypatch):
    """The metrics of ``tools/test.py --cfg-options
    test_dataloader.dataset.ann_file=SUBSET`` were collected as the
    config's row, exit 0. The checks that meet the split of the figures
    (the design hold-out's, the training splits', the test split's) read
    it once."""
    from mmseg_dsnet.datasets import isic
    work_dir = tmp_path / 'work'
    write_training_log(work_dir)
    config = write_tiny_config(work_dir / 'tiny_dsnet.py', tiny_isic,
                               epochs=1)
    test = tiny_isic / 'splits' / 'lightweight_test.txt'
    ids = test.read_text().split()
    subset = tmp_path / 'subset.txt'
    subset.write_text('\n'.join(ids[:2]) + '\n')
    metrics = work_dir / 'test_metrics.json'
    # What tools/test.py writes of a test given that option.
    metrics.write_text(json.dumps(dict(
        config=str(config), checkpoint=None, metrics=dict(IoU=50.0),
        test_time_augmentation=False,
        cfg_options={'test_dataloader.dataset.ann_file': str(subset)},
        data_root=str(tiny_isic), split_file=str(subset), images=2,
        synthetic=False)))
    runs = tmp_path / 'runs'
    # Every split file read is first checked for its encoding.
    checked = []
    check_split_encoding = isic.check_split_encoding
    monkeypatch.setattr(isic, 'check_split_encoding', lambda path: (
        checked.append(os.path.abspath(path)), check_split_encoding(path)))
    line = _one_error_line(run_tool_in_process(
        LEADERBOARD, 'collect', config, work_dir, '--no-benchmark',
        '--runs-dir', runs))
    assert line.startswith(
        f'ERROR: {work_dir} was tested on {subset} (2 images), not on the '
        f'test split of the config, {test} ({len(ids)} images) '
        f'(tools/test.py metrics file {metrics}); ')
    assert not runs.exists()
    assert checked.count(str(subset)) == 1


def test_run_refuses_options_that_test_on_another_split(tiny_isic,
                                                        tmp_path,
                                                        monkeypatch):
    """``leaderboard.py run --cfg-options
    test_dataloader.dataset.ann_file=SUBSET``: every seed trained, then
    was tested on the subset (collect refuses those figures, after the
    trainings)."""
    lb = load_tool('analysis_tools/leaderboard.py')
    started = []
    # No training here: a step the check lets through is only noted.
    monkeypatch.setattr(lb, '_run_step', lambda command, *_: (
        started.append(command), pytest.fail('a seed was started')))
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    test = tiny_isic / 'splits' / 'lightweight_test.txt'
    subset = tmp_path / 'subset.txt'
    subset.write_text(test.read_text().split()[0] + '\n')
    with pytest.raises(UserError) as err:
        lb.main(['run', str(cfg), '--work-dir', str(tmp_path / 'work'),
                 '--runs-dir', str(tmp_path / 'runs'), '--no-benchmark',
                 '--cfg-options',
                 f'test_dataloader.dataset.ann_file={subset}'])
    assert str(err.value).startswith(
        f'--cfg-options would test the seeds on {subset}, not on the test '
        f'split of the config, {test} (')
    assert not started and not (tmp_path / 'work').exists()


@pytest.mark.parametrize('wrapper,reason', [
    ("type='ConcatDataset', datasets=[{{_base_.test_dataloader.dataset}}, "
     "dict(type='ISIC2018Dataset', data_root=DATA, "
     "ann_file='splits/official_test.txt', pipeline={{_base_.test_pipeline}})"
     ']', 'ConcatDataset of splits/lightweight_test.txt + '
     'splits/official_test.txt (test_dataloader.dataset): its images are '
     'not those of a test split of its data root ('),
    ("type='RepeatDataset', times=2, "
     'dataset={{_base_.test_dataloader.dataset}}',
     'RepeatDataset (times=2) of splits/lightweight_test.txt '
     '(test_dataloader.dataset): it scores ')])
def test_run_refuses_a_wrapped_test_loader_of_no_test_split(
        tiny_isic, tmp_path, monkeypatch, wrapper, reason):
    """``leaderboard.py run`` of a config whose test loader wraps another
    split than a test split (the test and official test splits joined),
    or scores each image twice: every seed trained and was tested before
    collect refused the figures. Refused before the first training."""
    lb = load_tool('analysis_tools/leaderboard.py')
    started = []
    monkeypatch.setattr(lb, '_run_step', lambda command, *_: (
        started.append(command), pytest.fail('a seed was started')))
    tiny = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    config = tmp_path / 'wrapped.py'
    config.write_text(
        f"_base_ = '{tiny}'\n"
        'test_dataloader = dict(dataset=dict(_delete_=True, '
        f"{wrapper.replace('DATA', repr(str(tiny_isic)))}))\n")
    with pytest.raises(UserError) as err:
        lb.main(['run', str(config), '--work-dir', str(tmp_path / 'work'),
                 '--runs-dir', str(tmp_path / 'runs'), '--no-benchmark'])
    assert str(err.value).startswith(
        f'{config}: its test loader reads {reason}'), str(err.value)
    assert str(err.value).endswith(
        'give run a config whose test loader reads that split '
        '(splits/lightweight_test.txt or splits/official_test.txt)')
    assert not started and not (tmp_path / 'work').exists()
    assert not (tmp_path / 'runs').exists()


def test_seeds_tested_on_other_images_under_one_name_are_refused(tmp_path):
    """Seeds of one row tested on split files of one name and data root
    that list other images (an ``ann_file`` given as a path elsewhere)
    were averaged: the split files were compared by name."""
    from mmseg_dsnet.leaderboard.table import aggregate
    records = _records(DSNET_30EP)
    ids = [f'ISIC_{i:07d}' for i in range(4)]
    for index, (folder, listed) in enumerate((('a', ids), ('b', ids[1:]),
                                              ('c', ids))):
        split = tmp_path / folder / 'lightweight_test.txt'
        split.parent.mkdir()
        split.write_text('\n'.join(listed) + '\n')
        records[index]['evaluated_data']['split_file'] = str(split)
    with pytest.raises(MixedRunsError) as err:
        aggregate(records)
    assert 'images of the evaluated split 4 ids (sha1 ' in str(err.value)
    assert f'({DSNET_30EP[0]}, {DSNET_30EP[2]}) vs 3 ids (sha1 ' in \
        str(err.value)
    (tmp_path / 'b' / 'lightweight_test.txt').write_text('\n'.join(ids))
    row, = aggregate(records)
    assert row['seeds'] == [0, 1, 2]


def test_the_protocol_of_a_test_split_is_read_from_what_it_lists(
        tiny_isic, tmp_path):
    """A copy of a test split under another name was labelled by its file
    name (``held_out.txt``: protocol ``held``) and gave its row and record
    name that label."""
    from mmengine.config import Config

    from mmseg_dsnet.leaderboard.work_dir import dataset_facts
    splits = tiny_isic / 'splits'
    copy = tmp_path / 'held_out.txt'
    copy.write_text((splits / 'official_test.txt').read_text())
    other = tmp_path / 'my_split.txt'
    other.write_text('ISIC_0000000\n')

    def protocol(ann_file):
        dataset = dict(type='ISIC2018Dataset', data_root=str(tiny_isic),
                       ann_file=ann_file)
        return dataset_facts(Config(dict(
            train_dataloader=dict(dataset=dataset),
            test_dataloader=dict(dataset=dataset))))['protocol']

    assert protocol(str(copy)) == 'official'
    assert protocol('splits/lightweight_test.txt') == 'lightweight'
    # A split of images of its own is named by its file.
    assert protocol(str(other)) == 'my'


def test_split_size_counts_the_ids_the_datasets_read(tmp_path):
    """A run record's image count is what the ISIC datasets load from the
    split file: './' prefixes and blank lines as the datasets read them,
    and a file they refuse (an id listed twice, UTF-16 text) is refused."""
    from mmseg_dsnet.leaderboard.work_dir import split_size
    splits = tmp_path / 'splits'
    splits.mkdir()
    (splits / 'ok.txt').write_text('./ISIC_1\nISIC_2\n\n  \nISIC_3\n')
    assert split_size(dict(data_root=str(tmp_path),
                           ann_file='splits/ok.txt')) == 3
    assert split_size(dict(data_root=str(tmp_path), ann_file='splits/ok.txt',
                           indices=2)) == 2
    (splits / 'twice.txt').write_text('ISIC_1\nISIC_2\n./ISIC_1\n')
    with pytest.raises(UserError, match=r'twice\.txt lists 1 id more than '
                       r'once: ISIC_1 \(2 times\)'):
        split_size(dict(data_root=str(tmp_path), ann_file='splits/twice.txt'))
    (splits / 'utf16.txt').write_text('ISIC_1\nISIC_2\n', encoding='utf-16')
    with pytest.raises(UserError, match='is not UTF-8 text'):
        split_size(dict(data_root=str(tmp_path), ann_file='splits/utf16.txt'))


def test_collect_refuses_a_config_whose_test_loader_reads_no_split(
        tiny_isic, tmp_path, monkeypatch):
    """A config whose test loader names no split file (``ann_file=''``):
    mmseg's dataset scores every image of the data root's image folder,
    training images included, and collect recorded those figures as a
    row, exit 0; ``leaderboard.py run`` trained its seeds first."""
    work_dir = tmp_path / 'work'
    write_training_log(work_dir)
    tiny = write_tiny_config(work_dir / 'tiny_dsnet.py', tiny_isic,
                             epochs=1)
    config = tmp_path / 'all_images.py'
    config.write_text(f"_base_ = '{tiny}'\n"
                      "test_dataloader = dict(dataset=dict(ann_file=''))\n")
    images = len(os.listdir(tiny_isic / 'images'))
    metrics = work_dir / 'test_metrics.json'
    # What tools/test.py writes of a test of that config.
    metrics.write_text(json.dumps(dict(
        config=str(config), checkpoint=None, metrics=dict(IoU=50.0),
        test_time_augmentation=False, cfg_options={},
        data_root=str(tiny_isic), split_file=None, images=images,
        synthetic=False)))
    runs = tmp_path / 'runs'
    line = _one_error_line(run_tool_in_process(
        LEADERBOARD, 'collect', config, work_dir, '--no-benchmark',
        '--runs-dir', runs))
    assert line.startswith(
        f'ERROR: {config}: test_dataloader.dataset reads no split file (no '
        'ann_file): a test of it scores every image of its data root\'s '
        f'image folder, the training images too; {work_dir} was evaluated '
        f'on every image under {tiny_isic} ({images} images) (tools/test.py '
        f'metrics file {metrics}). ')
    assert not runs.exists()
    lb = load_tool('analysis_tools/leaderboard.py')
    monkeypatch.setattr(lb, '_run_step', lambda command, *_: pytest.fail(
        'a seed was started'))
    with pytest.raises(UserError, match=(
            '^test_dataloader.dataset of the config reads no split file')):
        lb.main(['run', str(config), '--work-dir', str(tmp_path / 'seeds'),
                 '--runs-dir', str(runs), '--no-benchmark'])
    assert not (tmp_path / 'seeds').exists() and not runs.exists()


def test_a_wrapped_validation_is_judged_by_the_splits_it_reads(
        tiny_isic, tmp_path):
    """A validation loader wrapped in ``RepeatDataset`` or
    ``ConcatDataset`` was judged by the wrapper, which names no split
    file: its record named no data (``None``, the current folder as its
    data root) and any last validation line of it was refused as
    'validated on None', the test split's too. The datasets it holds are
    judged instead, each cut by its own ``indices``, with the number of
    images the wrapper scores; a wrapper of another kind scores an
    unknown number and is no test result."""
    from mmengine.config import Config

    from mmseg_dsnet.leaderboard.board import check_validation_result
    from mmseg_dsnet.leaderboard.work_dir import evaluated_data
    work = tmp_path / 'work'
    rec = dict(test_split='splits/lightweight_test.txt',
               metrics_source=f'last validation line of {work}/run.log')
    test = "dict(data_root='{}', ann_file='splits/{}.txt'{})"

    def split(name='lightweight_test', cut=''):
        return test.format(tiny_isic, name, cut)

    def check(val_dataset):
        config = tmp_path / 'wrapped.py'
        config.write_text(
            f'val_dataloader = dict(dataset={val_dataset})\n'
            f'test_dataloader = dict(dataset={split()})\n'
            "val_evaluator = dict(type='LesionMetric')\n")
        cfg = Config.fromfile(str(config))
        check_validation_result(str(config), cfg, rec, str(work))
        return evaluated_data(cfg.val_dataloader.dataset)

    ids = (tiny_isic / 'splits' / 'lightweight_test.txt').read_text().split()
    scored = check(f"dict(type='RepeatDataset', times=1, dataset={split()})")
    assert scored == dict(
        data_root=str(tiny_isic), images=len(ids), synthetic=False,
        split_file=str(tiny_isic / 'splits' / 'lightweight_test.txt'))
    check(f"dict(type='ConcatDataset', datasets=["
          f"{split(cut=', indices=2')}, "
          f"{split(cut=f', indices=list(range(2, {len(ids)}))')}])")
    never = f'{work} was never tested and validated on '
    for wrapped, named in (
            (f"dict(type='ConcatDataset', datasets=[{split()}, "
             f"{split('official_val')}])", 'ConcatDataset of '
             'splits/lightweight_test.txt + splits/official_val.txt, not '
             'on the images of'),
            # Each image scored three times; part of the test split.
            (f"dict(type='RepeatDataset', times=3, dataset={split()})",
             'RepeatDataset (times=3) of splits/lightweight_test.txt, not '
             'on the images of'),
            (f"dict(type='RepeatDataset', times=1, dataset="
             f"{split(cut=', indices=2')})", 'RepeatDataset (times=1) of '
             'splits/lightweight_test.txt, not on the images of'),
            (f"dict(type='ClassBalancedDataset', oversample_thr=0.5, "
             f'dataset={split()})', 'ClassBalancedDataset of '
             'splits/lightweight_test.txt, not on')):
        with pytest.raises(UserError) as err:
            check(wrapped)
        assert str(err.value).startswith(
            f'{never}{named} its test split splits/lightweight_test.txt '
            '(last validation line of ')
    # The data roots of a wrapped loader's datasets, joined in its
    # record, are each read for their ISIC year.
    from mmseg_dsnet.leaderboard.board import check_data_is_the_dataset
    other = tmp_path / 'isic2017'
    other.mkdir()
    (other / 'meta.json').write_text(json.dumps(dict(year=2017)))
    with pytest.raises(UserError, match=(
            rf'^w was evaluated on {other}, whose meta\.json says ISIC 2017 '
            'data, but its config names ISIC2018Dataset')):
        check_data_is_the_dataset(_tested(
            dataset_key='isic2018', dataset_type='ISIC2018Dataset',
            dataset='ISIC 2018', evaluated_data=dict(
                data_root=f'{tiny_isic} + {other}')), 'w')


def test_collect_counts_a_repeated_training_split_once(tiny_isic,
                                                       tmp_path):
    """A run whose training loader is ``RepeatDataset(times=2)`` over a
    split: its record gave twice the split's images as ``train_images``,
    and its row's schedule said it trained on that many images, exit 0.
    Now ``train_images`` counts each image of the split once (a split
    joined to itself too), the samples an epoch draws are kept apart and
    the throughput counts them."""
    from mmseg_dsnet.leaderboard.table import check_runs_alike
    work_dir = tmp_path / 'work'
    write_training_log(work_dir)
    tiny = write_tiny_config(tmp_path / 'tiny_dsnet.py', tiny_isic,
                             epochs=1)
    config = work_dir / 'repeated.py'
    config.write_text(
        f"_base_ = '{tiny}'\n"
        'train_dataloader = dict(dataset=dict(_delete_=True, '
        "type='RepeatDataset', times=2, "
        'dataset={{_base_.train_dataloader.dataset}}))\n')
    splits = tiny_isic / 'splits'
    images = len((splits / 'lightweight_train.txt').read_text().split())
    test = splits / 'lightweight_test.txt'
    (work_dir / 'test_metrics.json').write_text(json.dumps(dict(
        config=str(config), checkpoint=None, metrics=dict(IoU=50.0),
        test_time_augmentation=False, cfg_options={},
        data_root=str(tiny_isic), split_file=str(test),
        images=len(test.read_text().split()), synthetic=False)))
    runs = tmp_path / 'runs'
    proc = run_tool_in_process(LEADERBOARD, 'collect', config, work_dir,
                               '--no-benchmark', '--runs-dir', runs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    path, = runs.glob('*.json')
    rec = json.loads(path.read_text())
    assert rec['train_images'] == images
    assert rec['train_samples_per_epoch'] == 2 * images
    # One epoch of 2 x images samples in the log's 9 s.
    assert rec['train_img_per_s'] == round(2 * images / 9, 2)
    assert rec['schedule'] == (
        f'1 epoch of {2 * images} samples ({images} images), batch 4')
    # A split joined to itself is its images, each drawn twice.
    joined = _facts(dict(type='ConcatDataset', datasets=[dict(
        data_root=str(tiny_isic), ann_file='splits/lightweight_train.txt')
    ] * 2), dict(data_root=str(tiny_isic),
                 ann_file='splits/lightweight_test.txt'))
    assert (joined['train_images'], joined['train_samples_per_epoch']) \
        == (images, 2 * images)
    # Seeds of one row that draw another number of samples are refused.
    once = dict(rec, train_samples_per_epoch=images, record_file='once')
    with pytest.raises(MixedRunsError, match=(
            rf'train samples per epoch {2 * images} \({rec["record_file"]}'
            rf'\) vs {images} \(once\)')):
        check_runs_alike([rec, once])


def _facts(train, test):
    """``dataset_facts`` of a dumped config with these loader datasets."""
    from mmengine.config import Config

    from mmseg_dsnet.leaderboard.work_dir import dataset_facts
    return dataset_facts(Config(dict(
        train_dataloader=dict(dataset=train),
        test_dataloader=dict(dataset=test))), where='W')


def test_a_wrapped_test_loader_is_recorded_as_the_split_it_scores(
        tiny_isic, tmp_path):
    """A test loader wrapped in ``ConcatDataset`` or ``RepeatDataset``:
    its record read the wrapper's own ``ann_file`` (none), so the run got
    protocol None, no test split and a record file named ``..._none_...``
    whatever the wrapper held. Now the images of a test split, each
    scored once, are that split's protocol; any other is refused.

    A ``RepeatDataset`` with ``times=3`` around the test split scores each
    image three times: LesionMetric's figures stay those of one pass
    (each pooled count, and each per-image figure, comes three times),
    but tools/test.py refuses to score an image twice, a validation of it
    is no test result, and its record would count 18 images of 6: it is
    refused too."""
    splits = tiny_isic / 'splits'
    ids = (splits / 'lightweight_test.txt').read_text().split()
    train = dict(type='ISIC2018Dataset', data_root=str(tiny_isic),
                 ann_file='splits/lightweight_train.txt')

    def split(name='lightweight_test', **changes):
        return dict(train, ann_file=f'splits/{name}.txt', **changes)

    def concat(*datasets):
        return dict(type='ConcatDataset', datasets=list(datasets))

    def repeat(times, dataset):
        return dict(type='RepeatDataset', times=times, dataset=dataset)

    for test, protocol, name in (
            (concat(split()), 'lightweight', 'lightweight_test'),
            (repeat(1, concat(split())), 'lightweight', 'lightweight_test'),
            (concat(split(indices=2),
                    split(indices=list(range(2, len(ids))))),
             'lightweight', 'lightweight_test'),
            (repeat(1, split('official_test')), 'official',
             'official_test')):
        facts = _facts(train, test)
        listed = (splits / f'{name}.txt').read_text().split()
        assert (facts['protocol'], facts['test_split'],
                facts['test_images']) == (
                    protocol, f'splits/{name}.txt', len(listed))
    other = tmp_path / 'other'
    shutil.copytree(splits, other / 'splits')
    test = 'splits/lightweight_test.txt'
    for wrapped, reason in (
            (concat(split(), split('official_val')),
             f'ConcatDataset of {test} + splits/official_val.txt '
             '(test_dataloader.dataset): its images are not those of a '
             'test split of its data root ('),
            (repeat(3, split()),
             f'RepeatDataset (times=3) of {test} (test_dataloader.dataset)'
             f': it scores {3 * len(ids)} samples of the {len(ids)} images '
             f'of {test}: each would weigh 3 times in the figures. '),
            (concat(split(), split()),
             f'ConcatDataset of {test} + {test} (test_dataloader.dataset): '
             f'it scores {2 * len(ids)} samples of the {len(ids)} images '
             f'of {test}: each would weigh 2 times in the figures. '),
            (repeat(1, split(indices=2)),
             f'RepeatDataset (times=1) of {test} (test_dataloader.dataset)'
             ': its images are not those of a test split of its data root '
             '(2 images). '),
            (dict(type='ClassBalancedDataset', oversample_thr=0.5,
                  dataset=split()), f'ClassBalancedDataset of {test} '
             '(test_dataloader.dataset): its config does not give how '
             'many images it scores. '),
            (concat(split(), split(data_root=str(other))),
             f'ConcatDataset of {test} + {test} (test_dataloader.dataset): '
             f'it reads 2 data roots ({tiny_isic} + {other}). '),
            (concat(split('gone')), 'ConcatDataset of splits/gone.txt '
             f'(test_dataloader.dataset): {tiny_isic}/splits/gone.txt is '
             'not found here. ')):
        with pytest.raises(UserError) as err:
            _facts(train, wrapped)
        assert str(err.value).startswith(
            f'W: its test loader reads {reason}'), str(err.value)
    assert str(err.value).endswith(
        ". A leaderboard row is the protocol's test split, each image of "
        'it scored once: test the checkpoint with tools/test.py and a '
        'config whose test loader reads that split '
        '(splits/lightweight_test.txt or splits/official_test.txt), then '
        'collect')


def test_collect_refuses_a_wrapped_test_of_another_split(tiny_isic,
                                                         tmp_path):
    """collect of a run tested with a config whose test loader joins the
    test split and the official test split: the figures were recorded
    under protocol None (``..._none_...``), exit 0."""
    work_dir = tmp_path / 'work'
    write_training_log(work_dir)
    tiny = write_tiny_config(tmp_path / 'tiny_dsnet.py', tiny_isic,
                             epochs=1)
    config = work_dir / 'joined.py'
    config.write_text(
        f"_base_ = '{tiny}'\n"
        'test_dataloader = dict(dataset=dict(_delete_=True, '
        "type='ConcatDataset', datasets=["
        '{{_base_.test_dataloader.dataset}}, '
        f"dict(type='ISIC2018Dataset', data_root='{tiny_isic}', "
        "ann_file='splits/official_test.txt', "
        'pipeline={{_base_.test_pipeline}})]))\n')
    splits = tiny_isic / 'splits'
    files = [splits / 'lightweight_test.txt', splits / 'official_test.txt']
    images = sum(len(path.read_text().split()) for path in files)
    distinct = len(set().union(*(path.read_text().split()
                                 for path in files)))
    (work_dir / 'test_metrics.json').write_text(json.dumps(dict(
        config=str(config), checkpoint=None, metrics=dict(IoU=50.0),
        test_time_augmentation=False, cfg_options={},
        data_root=str(tiny_isic), split_file=' + '.join(map(str, files)),
        images=images, synthetic=False)))
    runs = tmp_path / 'runs'
    line = _one_error_line(run_tool_in_process(
        LEADERBOARD, 'collect', config, work_dir, '--no-benchmark',
        '--runs-dir', runs))
    assert line.startswith(
        f'ERROR: {work_dir}: its test loader reads ConcatDataset of '
        'splits/lightweight_test.txt + splits/official_test.txt '
        '(test_dataloader.dataset): its images are not those of a test '
        f'split of its data root ({distinct} images). ')
    assert not runs.exists()


def test_a_wrapped_training_loader_is_recorded_by_the_datasets_it_holds(
        tiny_isic, tmp_path):
    """A training loader wrapped in ``RepeatDataset`` or
    ``ConcatDataset``: its record took the wrapper's type as the dataset
    (dataset key ``unknown``), and its empty data root and split file, so
    its data's ISIC year was never compared with the config's and the
    record alone named no training split to compare the scored one
    with. Now the datasets it holds give them."""
    from mmseg_dsnet.leaderboard.board import (
        check_data_is_the_dataset, check_final_test_result,
        check_not_evaluated_on_trained_images)
    splits = tiny_isic / 'splits'
    names = ('lightweight_train', 'official_val')

    def split(name, root=tiny_isic):
        return dict(type='ISIC2018Dataset', data_root=str(root),
                    ann_file=f'splits/{name}.txt')

    train = dict(type='RepeatDataset', times=2, dataset=dict(
        type='ConcatDataset', datasets=[split(name) for name in names]))
    facts = _facts(train, split('lightweight_test'))
    assert {key: facts[key] for key in (
        'dataset', 'dataset_key', 'dataset_type', 'data_root',
        'train_split', 'train_images')} == dict(
            dataset='ISIC 2018', dataset_key='isic2018',
            dataset_type='ISIC2018Dataset', data_root=str(tiny_isic),
            train_split=' + '.join(f'splits/{name}.txt' for name in names),
            train_images=len(set().union(*(
                (splits / f'{name}.txt').read_text().split()
                for name in names))))
    # Each epoch draws every image of both splits twice.
    assert facts['train_samples_per_epoch'] == 2 * sum(
        len((splits / f'{name}.txt').read_text().split())
        for name in names)
    # Evaluated on the validation split it trained on: refused by name,
    # and by the ids the record's training splits list.
    val = splits / 'official_val.txt'
    rec = dict(facts, checkpoint=None, epochs=30, evaluated_data=dict(
        split_file=str(val), data_root=str(tiny_isic)))
    with pytest.raises(UserError, match=(
            r'^w was evaluated on a training split \(official_val\.txt; '
            r'trained on lightweight_train\.txt \+ official_val\.txt\)')):
        check_final_test_result(rec, dict(), 'w')
    with pytest.raises(UserError, match=(
            rf'^w was evaluated on {val}, which lists \d+ of its \d+ '
            r'images in the split the run trained on '
            rf'\({splits}/lightweight_train\.txt: ')):
        check_not_evaluated_on_trained_images(rec, 'w')
    # Data of another year than the config names, under a wrapper.
    other = tmp_path / 'isic2017'
    shutil.copytree(splits, other / 'splits')
    (other / 'meta.json').write_text(json.dumps(dict(year=2017)))
    rec = dict(_facts(dict(type='RepeatDataset', times=2, dataset=split(
        'lightweight_train', other)), split('lightweight_test')),
        evaluated_data=dict(data_root=str(tiny_isic)))
    assert rec['data_root'] == str(other)
    with pytest.raises(UserError, match=(
            rf'^w was trained on {other}, whose meta\.json says ISIC 2017 '
            'data, but its config names ISIC2018Dataset')):
        check_data_is_the_dataset(rec, 'w')
    # A row is of one dataset.
    mixed = dict(type='ConcatDataset', datasets=[
        split('lightweight_train'),
        dict(split('lightweight_train', other), type='ISIC2017Dataset')])
    with pytest.raises(UserError, match=(
            r'^W: its training loader reads ConcatDataset of '
            r'splits/lightweight_train\.txt \+ splits/lightweight_train\.txt'
            r' \(train_dataloader\.dataset\), datasets of several types '
            r'\(ISIC2018Dataset, ISIC2017Dataset\): ')):
        _facts(mixed, split('lightweight_test'))
