"""The CPU latency tool's scheduling: interleaved rounds and run budgets.

These tests check who is called when and how often, never how fast.
"""
import contextlib
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO, load_tool

cpu_latency = load_tool('analysis_tools/cpu_latency.py')


@contextlib.contextmanager
def torch_threads_kept():
    """Give torch back its thread count after a run of the tool, which
    ends at one thread per core (the suite keeps to one: its workers share
    the cores: at two threads each, later tests in this process run up to
    twice as slow)."""
    import torch
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def each_test_keeps_torch_threads():
    """Each test's runs of the tool leave torch's thread count as it
    was."""
    with torch_threads_kept():
        yield


def recorder(log, name, sleep=0.0):
    def call():
        log.append(name)
        if sleep:
            time.sleep(sleep)
    return call


def test_cases_take_turns_in_every_round():
    log = []
    fns = [recorder(log, 'a'), recorder(log, 'b'), recorder(log, 'c')]
    times = cpu_latency.interleaved(fns, warmup=2, repeat=10,
                                    max_seconds=60, min_runs=3, rounds=5)
    # Warm-up: two untimed calls of each case, one case after the other.
    assert log[:6] == ['a', 'a', 'b', 'b', 'c', 'c']
    # Then five rounds of two calls per case, always in case order.
    assert log[6:] == ['a', 'a', 'b', 'b', 'c', 'c'] * 5
    assert [len(per_case) for per_case in times] == [5, 5, 5]
    assert all(r.size == 2 for per_case in times for r in per_case)
    assert all((r >= 0).all() for per_case in times for r in per_case)


def test_the_rounds_show_their_progress():
    """Cases x rounds x up to --max-seconds (minutes) ran after one line,
    ``timing N cases in R interleaved rounds ...``. Now a bar counts the
    turns, one after each case's turn, up to cases x rounds and not past
    it."""
    import io

    from mmseg_dsnet.progress import progress_bar
    log, out = [], io.StringIO()
    bar = progress_bar(3 * 2, 'turns', unit='turn', file=out)
    cpu_latency.interleaved([recorder(log, name) for name in 'abc'],
                            warmup=1, repeat=4, max_seconds=60, min_runs=1,
                            rounds=2, progress=bar)
    bar.close()
    assert 'turns: 100%' in out.getvalue()
    assert '| 6/6 [' in out.getvalue() and '7/6' not in out.getvalue()

    # Each step comes once a case's turn is done, not as it starts.
    class Steps:

        def update(self):
            log.append('step')

    log.clear()
    cpu_latency.interleaved([recorder(log, name) for name in 'ab'],
                            warmup=0, repeat=2, max_seconds=60, min_runs=1,
                            rounds=2, progress=Steps())
    assert log == ['a', 'step', 'b', 'step'] * 2


def test_slow_case_is_capped_by_its_budget_but_keeps_min_runs():
    log = []
    fast, slow = recorder(log, 'fast'), recorder(log, 'slow', sleep=0.02)
    times = cpu_latency.interleaved([fast, slow], warmup=0, repeat=20,
                                    max_seconds=0.05, min_runs=4, rounds=2)
    assert log.count('fast') == 20
    # 0.05 s of budget holds two or three 20 ms calls; min_runs asks four.
    assert log.count('slow') == 4
    assert [r.size for r in times[1]] == [2, 2]
    assert sum(r.sum() for r in times[1]) >= 4 * 20


def test_uneven_repeat_is_spread_without_losing_runs():
    log = []
    times = cpu_latency.interleaved([recorder(log, 'x')], warmup=0,
                                    repeat=7, max_seconds=60, min_runs=1,
                                    rounds=3)
    # ceil(7 * r / 3) runs after round r: 3, 5, 7.
    assert [r.size for r in times[0]] == [3, 2, 2]
    assert len(log) == 7


def test_timed_is_one_round_of_interleaved():
    log = []
    times = cpu_latency.timed(recorder(log, 'x'), warmup=1, repeat=6,
                              max_seconds=60, min_runs=1)
    assert times.shape == (6, ) and len(log) == 7


def test_busy_cores_of_others_sees_a_spinning_process():
    if not os.path.isfile('/proc/stat'):
        pytest.skip('needs Linux /proc/stat')
    spinner = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    try:
        time.sleep(0.2)
        busy = cpu_latency.busy_cores_of_others(seconds=0.5)
    finally:
        spinner.kill()
        spinner.wait()
    # One spinning process is about one busy core (less if it has to share
    # a core with other load); never more than the machine has.
    assert 0.4 <= busy <= (os.cpu_count() or 1) + 0.01


def test_arguments_that_would_time_other_cases_are_refused(tmp_path):
    from mmseg_dsnet.engine.cli_errors import UserError
    from mmseg_dsnet.engine.preflight import MissingInputError
    out = ['--out', str(tmp_path / 'latency.json')]
    # A misspelt baseline would otherwise be timed after all.
    with pytest.raises(UserError, match="not a baseline.*'EGE-UNet'"):
        cpu_latency.main(out + ['--skip', 'egeunet'])
    with pytest.raises(UserError, match='--rounds must be at least 1'):
        cpu_latency.main(out + ['--rounds', '0'])
    with pytest.raises(UserError, match='--threads must be at least 1'):
        cpu_latency.main(out + ['--threads', '1', '0'])
    with pytest.raises(MissingInputError, match='does not exist'):
        cpu_latency.main(out + ['--checkpoint', str(tmp_path / 'no.pth')])
    assert not (tmp_path / 'latency.json').exists()
    # An existing report (the default --out is the published record) or
    # its table is kept unless --overwrite is given.
    for existing in ('latency.json', 'latency.md'):
        (tmp_path / existing).write_text('keep me')
        with pytest.raises(FileExistsError, match='--overwrite'):
            cpu_latency.main(out)
        assert (tmp_path / existing).read_text() == 'keep me'
        (tmp_path / existing).unlink()


def test_an_out_file_its_table_would_replace_is_refused(tmp_path):
    """``--out x.md``: the JSON report was written, then replaced by the
    Markdown table of the same name, exit 0."""
    from mmseg_dsnet.engine.cli_errors import UserError
    out = tmp_path / 'latency.md'
    with pytest.raises(UserError) as error:
        cpu_latency.main(['--out', str(out), '--overwrite'])
    assert str(error.value) == (
        '--out and the table written beside it (its name with .md) are the '
        f'same file, {out}; give --out a name ending in .json')
    assert not list(tmp_path.iterdir())


@pytest.fixture
def no_measuring(monkeypatch):
    """Make a run that gets past the checks fail at once, instead of
    minutes of exports and timing."""
    def measure(args, workdir):
        raise AssertionError(f'measured, --out {args.out}')
    monkeypatch.setattr(cpu_latency, 'measure', measure)


def test_options_the_report_would_not_follow_are_refused(tmp_path,
                                                         no_measuring):
    """``--threads 2``: every target, the measured time beside the roofline
    floor and the leaderboard's CPU ms were '-', exit 0; ``--threads 1 1``
    timed twice and showed the second run in both columns; ``--min-runs 3
    --repeat 1`` ran each case once; ``--max-seconds nan`` set no cap."""
    from mmseg_dsnet.engine.cli_errors import UserError
    out = ['--out', str(tmp_path / 'latency.json')]
    with pytest.raises(UserError) as error:
        cpu_latency.main(out + ['--threads', '2', '4'])
    assert str(error.value) == (
        '--threads 2 4: the targets, the roofline floor and the CPU ms the '
        'leaderboard quotes are at 1 thread; include 1 (--threads 1 2 4)')
    with pytest.raises(UserError, match=r'--threads repeats a value: '
                       r'\[1, 2, 1\]'):
        cpu_latency.main(out + ['--threads', '1', '2', '1'])
    with pytest.raises(UserError, match='--min-runs 3 is more than --repeat '
                       '1, the most runs of a case'):
        cpu_latency.main(out + ['--min-runs', '3', '--repeat', '1'])
    # nan compared False with 0, so it passed and set no cap.
    with pytest.raises(UserError, match='--max-seconds must be positive, '
                       'got nan'):
        cpu_latency.main(out + ['--max-seconds', 'nan'])
    assert not list(tmp_path.iterdir())


def test_an_out_it_cannot_write_is_refused_before_timing(
        tmp_path, no_measuring, capsys):
    """An --out whose folder path runs through a file: a traceback when
    the report was written, after minutes of timing."""
    from conftest import run_cli
    blocker = tmp_path / 'afile'
    blocker.write_text('')
    out = blocker / 'latency.json'
    code, stderr = run_cli(cpu_latency.main, ['--out', out], capsys)
    assert code == 2
    assert stderr == (
        f'ERROR: Cannot write --out {out}: {blocker} is a file, not a '
        'folder. Nothing was started; choose a writable file for --out.\n')
    assert blocker.read_text() == ''


def test_the_default_out_is_the_repositorys_record(tmp_path, monkeypatch,
                                                   no_measuring):
    """Run from another folder, the default --out was
    ``./results/cpu_latency.json`` there, a record leaderboard.py never
    reads, exit 0; now it is the repository's, which is kept unless
    --overwrite is given."""
    from conftest import REPO
    record = REPO / 'results' / 'cpu_latency.json'
    assert record.is_file()
    monkeypatch.chdir(tmp_path)
    assert cpu_latency.parse_args([]).out == str(record)
    with pytest.raises(FileExistsError, match=f'{record} already exists'):
        cpu_latency.main([])
    assert not list(tmp_path.iterdir())


def test_a_timing_without_warm_up_is_refused(tmp_path, no_measuring,
                                             capsys):
    """``--warmup 0``: the first call of every case was timed, the
    torch.compile rows' recompilation at 1 thread among them (a p90 of
    22483 ms beside a median of 11 ms), exit 0."""
    from conftest import run_cli
    out = tmp_path / 'latency.json'
    code, stderr = run_cli(cpu_latency.main,
                           ['--out', out, '--warmup', '0'], capsys)
    assert code == 2
    assert stderr == (
        'ERROR: --warmup must be at least 1, got 0: the first call of a '
        'model pays one-off costs (memory and kernel set-up; torch.compile '
        'recompiles at a new thread count, which takes seconds), and '
        'without a warm-up it would be timed and raise the figures\n')
    assert not list(tmp_path.iterdir())


def test_thread_counts_stay_within_the_cpus_it_may_use(
        tmp_path, no_measuring, monkeypatch, capsys):
    """Under ``taskset -c 0`` on two cores the default timed 2 threads on
    one CPU and reported them as the 2-thread figures (onnxruntime fp32
    14.9 ms beside 6.7 ms at 1 thread), exit 0; ``--threads 1 2`` alike."""
    from conftest import run_cli
    monkeypatch.setattr(os, 'cpu_count', lambda: 2)
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0},
                        raising=False)
    assert cpu_latency.thread_counts() == [1]
    assert cpu_latency.thread_counts([1]) == [1]
    out = tmp_path / 'latency.json'
    code, stderr = run_cli(cpu_latency.main,
                           ['--out', out, '--threads', '1', '2'], capsys)
    assert code == 2
    assert stderr == (
        "ERROR: --threads 1 2: this process may run on 1 CPU (its CPU "
        "affinity: taskset, a container's cpuset), so 2 threads would take "
        'turns on them and the figures would be of that, not of 2 threads; '
        'give counts up to 1\n')
    assert not list(tmp_path.iterdir())
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1})
    assert cpu_latency.thread_counts() == [1, 2]


def test_a_re_parameterised_export_is_credited_with_its_own_macs(tmp_path):
    """DSNet v1's onnxruntime row is its re-parameterised export (0.265
    GMACs) but was credited with the 0.286 GMACs of the model as trained,
    which overstated its GFLOP/s and % of peak in the report."""
    import copy

    from mmseg_dsnet.analysis.flops import get_flops
    cfg, _ = cpu_latency.baseline_config(
        *cpu_latency.BASELINES['DSNet v1'])
    flops = get_flops(copy.deepcopy(cfg))
    cases = cpu_latency.baseline_cases('DSNet v1', cfg, str(tmp_path))
    gmacs = {form: value for _, form, value, _ in cases}
    assert gmacs == {'PyTorch': flops['flops'] / 1e9,
                     'onnxruntime fp32': flops['deploy']['flops'] / 1e9}
    assert gmacs['onnxruntime fp32'] < gmacs['PyTorch']
    # The runner factories time the files that were written.
    assert (tmp_path / 'dsnet-v1.onnx').is_file()


@pytest.fixture(scope='module')
def checkpoint_run(tmp_path_factory):
    """One short run of the tool (each run exports and quantizes DSNet:
    seconds), timed with ``--checkpoint``, its int8 model calibrated on two
    listed training images of which one is unreadable.

    Returns:
        tuple: The run's folder, its checkpoint and what it printed on
        stderr.
    """
    import io

    import numpy as np
    from PIL import Image

    from mmseg_dsnet.deploy import parity
    folder = tmp_path_factory.mktemp('checkpoint_run')
    readable = folder / 'ISIC_0000001.png'
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(readable)
    unreadable = folder / 'ISIC_0000000.jpg'
    unreadable.write_bytes(b'not a jpeg')
    checkpoint = REPO / 'checkpoints' / 'dsnet_isic2017_256px.pth'
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, torch_threads_kept(), \
            contextlib.redirect_stderr(err):
        patch.setattr(
            parity, 'config_samples',
            lambda cfg, split, limit: ([(str(unreadable), None),
                                        (str(readable), None)],
                                       f'2 of 2 {split} images of {folder}'))
        cpu_latency.main([
            '--out', str(folder / 'r.json'), '--skip',
            *cpu_latency.BASELINES, '--no-compile', '--repeat', '2',
            '--rounds', '2', '--min-runs', '2', '--max-seconds', '0.1',
            '--warmup', '1', '--threads', '1', '--checkpoint',
            str(checkpoint)
        ])
    return folder, checkpoint, err.getvalue()


def test_the_report_says_what_each_row_timed(checkpoint_run):
    """The report did not record which --checkpoint DSNet was timed with
    (path, SHA-256), nor per row the input fed, the thread counts and the
    input the exported graph declares (dynamic or fixed 256x256)."""
    import json

    from mmseg_dsnet.utils.fileio import sha256_of
    folder, checkpoint, err = checkpoint_run
    report = json.loads((folder / 'r.json').read_text())
    # The bar counts each case's turns (--rounds 2) at 1 thread.
    turns = 2 * len(report['models'])
    assert '1 thread: 100%' in err and f'| {turns}/{turns} [' in err
    assert report['checkpoint'] == dict(path=str(checkpoint),
                                        sha256=sha256_of(str(checkpoint)))
    assert sha256_of(str(checkpoint)) in (folder / 'r.md').read_text()
    graphs = {}
    for row in report['models']:
        assert row['input_shape'] == [1, 3, 256, 256], row['form']
        assert row['threads'] == [1] and list(row['latency']) == ['1']
        graphs[row['form']] = row.get('graph_input')
    assert graphs['PyTorch, as trained'] is None
    assert graphs['onnxruntime fp32']['shape'] == ['batch', 3, 'height',
                                                   'width']
    assert graphs['onnxruntime fp32, fixed 256x256']['shape'] == [
        'batch', 3, 256, 256]
    # And how the cases were timed: the warm-up calls and the caps.
    assert report['timing'] == dict(warmup=1, repeat=2, max_seconds=0.1,
                                    min_runs=2, rounds=2)
    assert 'after up to 1 warm-up call, in 2 interleaved rounds' in \
        report['note']
    # The existing keys stay (leaderboard.py reads them).
    assert {'machine', 'input', 'threads', 'peak_gflops', 'configs',
            'models', 'targets'} <= set(report)


def test_a_failed_table_write_keeps_the_previous_report(tmp_path,
                                                        monkeypatch):
    """``--overwrite`` over an earlier report, the table's write failing (a
    full disk): the new JSON was already in place beside the previous
    run's table, a pair that did not match; now both are kept."""
    import errno

    from mmseg_dsnet.utils import fileio
    out = tmp_path / 'r.json'
    out.write_text('{"earlier": true}\n')
    (tmp_path / 'r.md').write_text('earlier table\n')
    write_partial = fileio._write_partial

    def full_disk_for_the_table(data, tmp, filepath):
        if str(filepath).endswith('.md'):
            raise OSError(errno.ENOSPC, 'No space left on device', tmp)
        write_partial(data, tmp, filepath)

    monkeypatch.setattr(fileio, '_write_partial', full_disk_for_the_table)
    # No training images listed: calibrated on two random inputs, not on
    # 16 images of whatever data set the config finds.
    from mmseg_dsnet.deploy import parity
    monkeypatch.setattr(parity, 'config_samples',
                        lambda cfg, split, limit: ([], 'none listed'))
    with pytest.raises(OSError, match='No space left'):
        cpu_latency.main([
            '--out', str(out), '--overwrite', '--skip',
            *cpu_latency.BASELINES, '--no-compile', '--repeat', '1',
            '--rounds', '1', '--min-runs', '1', '--max-seconds', '0.1',
            '--warmup', '1', '--threads', '1'
        ])
    assert out.read_text() == '{"earlier": true}\n'
    assert (tmp_path / 'r.md').read_text() == 'earlier table\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['r.json', 'r.md']


def test_int8_calibrated_on_noise_is_reported_as_such(tmp_path,
                                                      monkeypatch):
    """The config's training images listed but none readable: the int8
    model was calibrated on random inputs while the report named the
    training set as its calibration data."""
    import json
    unreadable = tmp_path / 'ISIC_0000000.jpg'
    unreadable.write_bytes(b'not a jpeg')
    from mmseg_dsnet.deploy import parity
    monkeypatch.setattr(
        parity, 'config_samples',
        lambda cfg, split, limit: ([(str(unreadable), None)],
                                   f'1 of 1 {split} images of {tmp_path}'))
    out = tmp_path / 'r.json'
    cpu_latency.main([
        '--out', str(out), '--skip', *cpu_latency.BASELINES, '--no-compile',
        '--repeat', '1', '--rounds', '1', '--min-runs', '1',
        '--max-seconds', '0.1', '--warmup', '1', '--threads', '1'
    ])
    calibration = json.loads(out.read_text())['int8_calibration']
    assert calibration.startswith('random inputs'), calibration
    assert 'none of the 1 training images' in calibration
    # The table says it too, and how many runs each figure came from.
    table = (tmp_path / 'r.md').read_text()
    assert f'int8 calibrated on {calibration}.' in table
    assert 'Timed runs per case and thread count: 1 ' in table


def test_int8_calibration_counts_the_images_it_could_read(checkpoint_run):
    """One of the two training images listed unreadable: the report said
    the int8 model was calibrated on ``2 of 2 train images`` when it was
    calibrated on one."""
    import json
    folder = checkpoint_run[0]
    assert json.loads((folder / 'r.json').read_text())[
        'int8_calibration'] == (
        f'2 of 2 train images of {folder}: 1 of them readable')


def test_warm_up_stops_after_half_the_budget():
    """A case that outlasts half of --max-seconds in warm-up stops warming
    up there: 20 ms calls and a 50 ms budget give one or two warm-up calls
    of the ten asked, then the timed ones (mutation testing: a cut at
    twice the budget passed)."""
    log = []
    cpu_latency.interleaved([recorder(log, 'slow', sleep=0.02)], warmup=10,
                            repeat=1, max_seconds=0.05, min_runs=1,
                            rounds=1)
    assert 2 <= len(log) <= 3  # warm-up calls and the one timed call


def test_the_fewest_runs_are_spread_rounding_up():
    """With no time budget left, round r of R stops at ceil(min_runs r / R)
    runs: 3 runs over 2 rounds are 2 then 1 (rounding down gave 1 then 2,
    a first round of one run)."""
    times = cpu_latency.interleaved([lambda: None], warmup=0, repeat=10,
                                    max_seconds=0, min_runs=3, rounds=2)
    assert [r.size for r in times[0]] == [2, 1]


def test_summary_is_the_median_and_90th_percentile_of_the_runs():
    """[1, 2, 3, 4, 100] ms: median 3; the 90th percentile sits 0.6 of
    the way from the 4th to the 5th sorted run, 4 + 0.6 * 96 = 61.6."""
    import numpy as np
    assert cpu_latency.summarise(np.array([4.0, 100.0, 1.0, 3.0, 2.0])) == \
        dict(median_ms=3.0, p90_ms=pytest.approx(61.6), runs=5)


def test_the_table_puts_each_figure_in_its_column():
    """A row's cells follow the header: median, p90, GFLOP/s, % of peak
    per thread count; a figure of 0 is printed, '-' only for none."""
    report = dict(
        threads=[1], peak_gflops={'1': 100.0}, targets=[], note='n.',
        machine=dict(cpu='cpu', cores=2, torch='t', onnxruntime='o'),
        models=[dict(model='M', form='f', gmacs=0.5, latency={'1': dict(
            median_ms=10.0, p90_ms=12.5, achieved_gflops=0.0,
            percent_of_peak=7.3, runs=4)})])
    lines = cpu_latency.markdown(report).splitlines()
    assert lines[0] == ('| model | form | GMACs | 1T median ms | 1T p90 ms '
                        '| 1T GFLOP/s | 1T % peak |')
    assert lines[2] == '| M | f | 0.500 | 10.00 | 12.50 | 0.00 | 7.3 |'
    assert 'Timed runs per case and thread count: 4 (' in lines[-1]
    assert not any(line.startswith('Over 100 %') for line in lines)
    # A second row of 9 runs and 150 % of peak: the range of runs, and the
    # note that the peak was measured low.
    report['models'].append(dict(model='N', form='g', gmacs=1.0, latency={
        '1': dict(median_ms=1.0, p90_ms=1.0, achieved_gflops=150.0,
                  percent_of_peak=150.0, runs=9)}))
    text = cpu_latency.markdown(report)
    assert 'Timed runs per case and thread count: 4 to 9 (' in text
    assert 'Over 100 % of peak means the peak measurement was slowed' in text
    # The peak line counts threads in words ('1 thread(s)' read as a slip).
    report.update(threads=[1, 2], peak_gflops={'1': 96.4, '2': 187.7})
    assert ('Peak (2048x2048 fp32 matmul, 2 N^3 FLOPs): 1 thread: 96.4, '
            '2 threads: 187.7 GFLOP/s.') in cpu_latency.markdown(report)


def test_counts_at_the_edge_are_refused(tmp_path, no_measuring):
    """``--min-runs`` one more than ``--repeat``, and a thread count of 0
    beside 1, are refused before any work."""
    from mmseg_dsnet.engine.cli_errors import UserError
    out = ['--out', str(tmp_path / 'latency.json')]
    with pytest.raises(UserError, match='--min-runs 2 is more than --repeat '
                       '1'):
        cpu_latency.main(out + ['--min-runs', '2', '--repeat', '1'])
    with pytest.raises(UserError, match=r'--threads must be at least 1, got '
                       r'\[0, 1\]'):
        cpu_latency.main(out + ['--threads', '0', '1'])
    assert not list(tmp_path.iterdir())


def test_onnxruntime_cases_run_at_the_thread_count_asked(tmp_path):
    """The onnxruntime rows at N threads: N intra-op threads and one
    inter-op thread (mutation testing: a session left at one thread, or at
    onnxruntime's default inter-op pool, passed)."""
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node('Relu', ['x'], ['y'])], 'g',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                       [1, 3, 256, 256])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT,
                                       [1, 3, 256, 256])])
    path = tmp_path / 'relu.onnx'
    onnx.save(helper.make_model(
        graph, opset_imports=[helper.make_opsetid('', 17)]), str(path))
    session, run = cpu_latency.ort_runner(str(path), 2)
    options = session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == \
        (2, 1)
    run()


def test_case_figures_from_known_rounds():
    """Rounds of [1, 6, 2], [10] and no run, 0.5 GMACs: the median of all
    four runs is 4 ms, the rounds' medians 2 and 10 (None for the empty
    one; the first round's mean would be 3), and 2 x 0.5e9 FLOPs in 4 ms
    are 250 GFLOP/s."""
    import numpy as np
    stats = cpu_latency.case_stats(
        [np.array([1.0, 6.0, 2.0]), np.array([10.0]), np.array([])], 0.5)
    assert stats['median_ms'] == 4.0 and stats['runs'] == 4
    assert stats['round_medians_ms'] == [2.0, 10.0, None]
    assert stats['achieved_gflops'] == pytest.approx(250.0)


def test_the_load_note_calls_idle_only_an_idle_machine():
    """The larger of the two load readings counts: 0.05 cores is idle,
    0.5 is not (mutation testing: 'idle' up to a whole core passed)."""
    assert cpu_latency.load_note([0.0, 0.05], 2) == (
        'The machine was otherwise idle (checked before and after).')
    assert cpu_latency.load_note([0.5, 0.02], 2) == (
        'Other processes kept up to 0.5 of 2 cores busy (checked before '
        'and after): absolute times are slowed.')
    assert cpu_latency.load_note([None, None], 2).startswith(
        'Load of other processes unknown')
