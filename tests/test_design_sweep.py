"""design_sweep.py: design runs in parallel processes, seed by seed, each
logged; failures and bad input reported (mmseg_dsnet.leaderboard.sweep)."""
import json
import os.path as osp

import pytest
from conftest import load_tool

from mmseg_dsnet.leaderboard import sweep
from mmseg_dsnet.utils.errors import UserError

tool = load_tool('analysis_tools/design_sweep.py')

# Stands in for check_real_data.py: prints its arguments; seed 1 fails,
# seed 2 exits 0 without a record (as check_real_data.py does, with SKIP,
# when the data is absent), the others write their record.
FAKE_CHECK = '''import sys
print('args', ' '.join(sys.argv[1:]))
seed = sys.argv[sys.argv.index('--seed') + 1]
if seed == '1':
    sys.exit(3)
print('SKIP: no data' if seed == '2' else 'Design record: r.json')
'''


@pytest.fixture
def fake_check(tmp_path, monkeypatch):
    script = tmp_path / 'fake_check.py'
    script.write_text(FAKE_CHECK)
    monkeypatch.setattr(sweep, 'CHECK_TOOL', str(script))
    return script


def test_jobs_go_seed_by_seed_and_unknown_candidates_are_refused(tmp_path):
    from conftest import REPO
    whole = f"_base_ = [{str(REPO / 'configs/dsnet/dsnet_isic2017.py')!r}]\n"
    config = tmp_path / 'cand.py'
    config.write_text(whole)
    jobs = sweep.sweep_jobs(['egeunet', str(config)], [0, 1])
    assert [(j.candidate, j.seed) for j in jobs] == [
        ('egeunet', 0), (str(config), 0), ('egeunet', 1), (str(config), 1)]
    assert [j.name for j in jobs[:2]] == ['egeunet_s0', 'cand_s0']
    # The runs start in the repository root: paths are absolute.
    assert sweep.job_command(jobs[0], 'w', ['--epochs', '1'])[2:] == [
        '--models', 'egeunet', '--seed', '0', '--work-dir',
        osp.abspath('w/egeunet_s0'), '--epochs', '1']
    assert sweep.job_command(jobs[1], 'w', [])[2:4] == ['--configs',
                                                         str(config)]
    with pytest.raises(FileNotFoundError, match='nowhere.py is neither'):
        sweep.sweep_jobs([str(tmp_path / 'nowhere.py')], [0])
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'cand.py').write_text(whole)
    with pytest.raises(ValueError,
                       match=r'runs named twice: cand_s0 \(a seed'):
        sweep.sweep_jobs([str(config), str(other / 'cand.py')], [0])
    with pytest.raises(ValueError, match='egeunet_s1 '):
        sweep.sweep_jobs(['egeunet'], [1, 1])


def test_runs_in_parallel_processes_with_one_log_each(fake_check, tmp_path):
    jobs = sweep.sweep_jobs(['egeunet', 'malunet'], [0, 1])
    statuses = sweep.run_sweep(jobs, str(tmp_path / 'w'), ['--epochs', '2'],
                               parallel=2)
    assert statuses['egeunet_s0'] == statuses['malunet_s0'] == 'done'
    for name in ('egeunet_s1', 'malunet_s1'):
        assert statuses[name].startswith('failed (exit 3, see ')
        assert statuses[name].endswith(f'{name}.log)')
    log = (tmp_path / 'w' / 'malunet_s0.log').read_text()
    assert log.startswith('args --models malunet --seed 0 --work-dir ')
    assert log.splitlines()[0].endswith('--epochs 2')


def test_a_failed_run_started_again_keeps_its_earlier_log(fake_check,
                                                          tmp_path):
    """A run that failed before its first checkpoint may be started again
    into the same work dir; its new log was opened over the earlier one,
    whose output (the reason it failed) was lost."""
    jobs = sweep.sweep_jobs(['egeunet'], [1])
    work_dir = tmp_path / 'w'
    first = sweep.run_sweep(jobs, str(work_dir), ['--epochs', '2'],
                            parallel=1)
    assert first['egeunet_s1'].endswith(f'{work_dir}/egeunet_s1.log)')
    second = sweep.run_sweep(jobs, str(work_dir), ['--epochs', '3'],
                             parallel=1)
    assert second['egeunet_s1'].endswith(f'{work_dir}/egeunet_s1_1.log)')
    earlier = (work_dir / 'egeunet_s1.log').read_text().splitlines()
    assert earlier[0].endswith('--epochs 2')
    again = (work_dir / 'egeunet_s1_1.log').read_text().splitlines()
    assert again[0].endswith('--epochs 3')
    sweep.run_sweep(jobs, str(work_dir), [], parallel=1)
    assert sorted(p.name for p in work_dir.glob('*.log')) == [
        'egeunet_s1.log', 'egeunet_s1_1.log', 'egeunet_s1_2.log']


def test_a_run_without_its_record_is_a_failure(fake_check, tmp_path):
    statuses = sweep.run_sweep(sweep.sweep_jobs(['egeunet'], [2]),
                               str(tmp_path), [], parallel=1)
    assert statuses['egeunet_s2'].startswith(
        'failed (no design record written, see ')


def test_no_run_starts_after_the_deadline(fake_check, tmp_path):
    jobs = sweep.sweep_jobs(['egeunet'], [0, 2])
    statuses = sweep.run_sweep(jobs, str(tmp_path), [], parallel=1,
                               start_before_s=-1)
    assert set(statuses.values()) == {'not started'}
    assert not list(tmp_path.glob('*.log'))


def test_cli_reports_failed_runs_and_bad_input(fake_check, tmp_path,
                                               capsys):
    data = tmp_path / 'data'
    data.mkdir()
    args = ['--data-root', str(data), '--work-dir', str(tmp_path / 'w'),
            '--record-dir', str(tmp_path / 'r')]
    assert tool.main(['egeunet', *args]) == 2
    assert 'is not a converted ISIC set' in capsys.readouterr().err
    (data / 'meta.json').write_text('{}')
    assert tool.main(['no-such-model', *args]) == 2
    assert capsys.readouterr().err.startswith(
        'ERROR: no-such-model is neither a model name')
    assert tool.main(['egeunet', '--seeds', '0', '1', *args]) == 1
    captured = capsys.readouterr()
    assert 'egeunet_s0: done' in captured.out
    assert captured.err.splitlines()[-1] == (
        'ERROR: 1 of 2 runs failed: egeunet_s1')
    assert tool.main(['egeunet', '--seeds', '3', '3', *args]) == 2
    assert capsys.readouterr().err.startswith(
        'ERROR: runs named twice: egeunet_s3')
    for option, value, rule in (
            ('--parallel', '0', 'must be at least 1, got 0'),
            ('--threads', '0', 'must be at least 1, got 0'),
            ('--start-before', '-5', 'must be positive, got -5'),
            ('--start-before', '0', 'must be positive, got 0')):
        assert tool.main(['egeunet', option, value, *args]) == 2
        assert capsys.readouterr().err == f'ERROR: {option} {rule}\n'
    assert tool.main(['egeunet', '--seeds', '0', '-1', *args]) == 2
    assert capsys.readouterr().err.startswith(
        'ERROR: --seeds must be an integer from 0 to 2**32 - 1, got -1')
    # Zero used to mean "all design-train images"; nothing starts.
    for option, value in (('--train-images', '0'), ('--epochs', '0'),
                          ('--crop-size', '100')):
        assert tool.main(['egeunet', option, value, *args]) == 2
        assert capsys.readouterr().err.startswith(f'ERROR: {option} must')


def test_cli_refuses_more_threads_than_cpus(fake_check, tmp_path,
                                           monkeypatch, capsys):
    """``--parallel 4 --threads 2`` on two CPUs: eight threads took turns
    on two, every run was slowed, and each record's train time (the design
    table's) was that of the contention, exit 0."""
    import importlib

    # (the package's ``benchmark`` is the function of that name)
    benchmark = importlib.import_module('mmseg_dsnet.analysis.benchmark')
    monkeypatch.setattr(benchmark, 'usable_cpus', lambda: 2)
    args = cli_args(tmp_path)
    assert tool.main(['egeunet', '--parallel', '4', '--threads', '2',
                      *args]) == 2
    assert capsys.readouterr().err == (
        'ERROR: --parallel 4 x --threads 2 = 8 CPU threads, and this process '
        "may run on 2 CPUs (its CPU affinity: taskset, a container's "
        "cpuset): the runs would take turns on them, and their records' "
        'train times would be of that contention; give --parallel x '
        '--threads up to 2\n')
    assert not (tmp_path / 'w').exists() and not (tmp_path / 'r').exists()
    # The default of two runs at a time is lowered to what the CPUs hold.
    monkeypatch.setattr(benchmark, 'usable_cpus', lambda: 1)
    assert sweep.check_cpu_share(2, 1, parallel_given=False) == 1
    with pytest.raises(UserError, match='--parallel 1 x --threads 2 = 2'):
        sweep.check_cpu_share(2, 2, parallel_given=False)
    assert tool.main(['egeunet', *args]) == 0
    assert 'egeunet_s0: done' in capsys.readouterr().out


def test_cli_refuses_more_training_images_than_the_split_holds(
        fake_check, tmp_path, capsys):
    """``--train-images 5000`` where the design-train split holds 1350:
    with --fast every run trained on all of them, exit 0 (its record said
    1350, not what was asked); without, every run refused it when it
    started, its reason only in its log."""
    args = cli_args(tmp_path)
    splits = tmp_path / 'data' / 'splits'
    splits.mkdir()
    (splits / 'lightweight_design_train.txt').write_text('a\nb\nc\n')
    for mode in ([], ['--fast', '--device', 'cpu']):
        assert tool.main(['egeunet', '--train-images', '4', *mode,
                          *args]) == 2
        assert capsys.readouterr().err == (
            f'ERROR: --train-images 4: {splits}/lightweight_design_train.txt'
            ' holds only 3 images\n')
        assert not (tmp_path / 'w').exists()
    assert tool.main(['egeunet', '--train-images', '3', *args]) == 0


def cli_args(tmp_path):
    data = tmp_path / 'data'
    data.mkdir(exist_ok=True)
    (data / 'meta.json').write_text('{}')
    return ['--data-root', str(data), '--work-dir', str(tmp_path / 'w'),
            '--record-dir', str(tmp_path / 'r')]


def test_cli_checks_its_outputs_before_any_run(fake_check, tmp_path,
                                               capsys):
    """A --work-dir through a file ended in a traceback; a --record-dir
    that is a file let every run train, then fail to write its record; a
    run whose record exists (a sweep cut short, run again) trained again
    and wrote a second record of its seed."""
    blocker = tmp_path / 'afile'
    blocker.write_text('')
    args = cli_args(tmp_path)
    assert tool.main(['egeunet', *args, '--work-dir',
                      str(blocker / 'w')]) == 2
    assert capsys.readouterr().err.startswith(
        f'ERROR: Cannot write to the work dir {blocker / "w"}: {blocker} '
        'is a file, not a folder.')
    assert tool.main(['egeunet', *args, '--record-dir', str(blocker)]) == 2
    assert capsys.readouterr().err.startswith(
        f'ERROR: Cannot write --record-dir {blocker}/egeunet_128px_15ep_'
        f'seed0.json: {blocker} is a file, not a folder.')
    records = tmp_path / 'r'
    records.mkdir()
    (records / 'egeunet_128px_15ep_seed1.json').write_text('{}')
    assert tool.main(['egeunet', '--seeds', '0', '1', *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith('ERROR: 1 of the 2 runs has a record already: '
                          f'{records}/egeunet_128px_15ep_seed1.json;')
    assert err.count('\n') == 1
    assert not list((tmp_path / 'w').glob('*.log'))


def test_resume_skips_the_runs_with_a_record_and_continues_the_others(
        fake_check, tmp_path, capsys):
    """A sweep cut short, run again with ``--resume``: the runs with a
    record are not run again, the others are (each with ``--resume``, so
    that a run stopped part-way continues from its checkpoint); a run's
    folder with checkpoints is no refusal then. Without ``--resume`` the
    refusal of the records offers it."""
    args = cli_args(tmp_path)
    records = tmp_path / 'r'
    records.mkdir()
    (records / 'egeunet_128px_15ep_seed0.json').write_text('{}')
    stopped = tmp_path / 'w' / 'egeunet_s3' / 'egeunet'
    stopped.mkdir(parents=True)
    (stopped / 'epoch_1.pth').write_bytes(b'')
    assert tool.main(['egeunet', '--seeds', '0', '3', *args]) == 2
    assert capsys.readouterr().err.endswith(
        'Nothing was started; continue that run with --resume, choose '
        'another --work-dir, or remove them.\n')
    assert tool.main(['egeunet', '--seeds', '0', *args]) == 2
    assert capsys.readouterr().err.endswith(
        'give another --record-dir, or continue the sweep with --resume\n')
    assert not list((tmp_path / 'w').glob('*.log'))
    assert tool.main(['egeunet', '--seeds', '0', '3', '--resume',
                      *args]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        f'egeunet_s0: done already (its record is in {records})')
    assert 'egeunet_s3: done' in out.splitlines()
    assert [p.name for p in (tmp_path / 'w').glob('*.log')] == [
        'egeunet_s3.log']
    log = (tmp_path / 'w' / 'egeunet_s3.log').read_text()
    assert log.splitlines()[0].endswith(' --resume')
    # Every run with its record: nothing to start.
    (records / 'egeunet_128px_15ep_seed3.json').write_text('{}')
    assert tool.main(['egeunet', '--seeds', '0', '3', '--resume',
                      *args]) == 0
    assert capsys.readouterr().out == ''.join(
        f'egeunet_s{seed}: done already (its record is in {records})\n'
        for seed in (0, 3))
    assert len(list((tmp_path / 'w').glob('*.log'))) == 1
    # --resume is of the process runs: --fast cannot continue a run.
    assert tool.main(['egeunet', '--resume', '--fast', *args]) == 2
    assert capsys.readouterr().err == (
        'ERROR: --resume is not used with --fast (all runs train together '
        'in this process on --data-root)\n')


def test_a_record_of_other_training_images_is_named_as_such(
        fake_check, tmp_path, capsys):
    """A sweep with ``--train-images 2`` where a record at a run's path
    (which does not hold the training images) trained on 3: the refusal
    read as a rerun of this sweep (``leave out their seeds``). Now it
    says the record was made with another --train-images; a record of
    the same count is refused as a rerun, as before."""
    args = cli_args(tmp_path)
    splits = tmp_path / 'data' / 'splits'
    splits.mkdir()
    (splits / 'lightweight_design_train.txt').write_text('a\nb\nc\n')
    records = tmp_path / 'r'
    records.mkdir()
    record = records / 'egeunet_128px_15ep_seed0.json'
    record.write_text(json.dumps({'train_images': 3}))
    assert tool.main(['egeunet', '--train-images', '2', *args]) == 2
    assert capsys.readouterr().err == (
        f'ERROR: 1 record at the paths of this sweep\'s runs was made with '
        f'another --train-images: {record} (3 training images), and this '
        'sweep trains on 2; a record\'s name does not hold the training '
        'images, so give this sweep another --record-dir\n')
    # Without --train-images the runs train on the whole split (3).
    record.write_text(json.dumps({'train_images': 2}))
    assert tool.main(['egeunet', *args]) == 2
    assert 'made with another --train-images: ' in capsys.readouterr().err
    assert tool.main(['egeunet', '--train-images', '2', *args]) == 2
    assert capsys.readouterr().err.startswith(
        'ERROR: the run has a record already: ')
    assert json.loads(record.read_text()) == {'train_images': 2}
    assert not (tmp_path / 'w' / 'egeunet_s0').exists()


def test_cli_refuses_a_work_dir_that_holds_earlier_runs(
        fake_check, tmp_path, tiny_isic, capsys):
    """A sweep into the work dir of an earlier one (a sweep cut short, run
    again into another --record-dir) started every run on top of the
    earlier run's checkpoints. Now ``check_real_data.py`` refuses such a
    work dir, and the sweep refuses it before any run starts, not with
    one failed run each."""
    from conftest import write_tiny_config

    from mmseg_dsnet.leaderboard.real_data_check import train_and_evaluate
    config = write_tiny_config(tmp_path / 'egeunet.py', tiny_isic, epochs=1)
    earlier = tmp_path / 'w' / 'egeunet_s0' / 'egeunet'
    train_and_evaluate(str(config), str(tiny_isic), str(earlier), epochs=1,
                       train_images=2, test_images=1, crop_size=32)
    assert tool.main(['egeunet', *cli_args(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f'ERROR: The work dir {earlier} already holds the checkpoints of a '
        'run (epoch_1.pth, last_checkpoint); a new run would overwrite some '
        'of them and leave the others beside its own. Nothing was started; '
        'continue that run with --resume, choose another --work-dir, or '
        'remove them.\n')
    assert not list((tmp_path / 'w').glob('*.log'))
    # --fast trains each run in W/<run>: it cannot resume one, so the
    # message offers no --resume.
    import shutil
    fast = tmp_path / 'fast'
    fast.mkdir()
    # A copy of the earlier run: its checkpoints are what is refused.
    shutil.copytree(earlier, fast / 'w' / 'egeunet_s0')
    assert tool.main(['egeunet', '--fast', '--device', 'cpu',
                      *cli_args(fast)]) == 2
    assert capsys.readouterr().err.endswith(
        'Nothing was started; choose another --work-dir, or remove them.\n')


def test_cli_refuses_a_candidate_that_is_no_config(fake_check, tmp_path,
                                                   capsys):
    """A checkpoint given as a candidate, or a config with a syntax error:
    every run started and failed with a traceback in its log (``OSError:
    Only py/yml/yaml/json type are supported now!``), and the sweep ended
    with ``ERROR: 2 of 2 runs failed``, exit 1, after the runs before
    them; ``--fast`` gave the syntax error's traceback."""
    from conftest import REPO
    args = cli_args(tmp_path)
    checkpoint = tmp_path / 'dsnet.pth'
    checkpoint.write_bytes(b'PK\x03\x04 not a config')
    broken = tmp_path / 'broken.py'
    broken.write_text('x = (\n')
    config = REPO / 'configs/dsnet/design/dsnet-design-e_isic2017.py'
    for candidate, reason in (
            (checkpoint, 'OSError: Only py/yml/yaml/json type are supported '
             'now! (configs are .py files, e.g. configs/dsnet/'
             'dsnet_isic2017.py; was a checkpoint given in its place?)'),
            (broken, 'SyntaxError: ')):
        assert tool.main([str(config), str(candidate), 'egeunet',
                          *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f'ERROR: candidate config {candidate} cannot '
                              f'be read as a config: {reason}')
        assert err.count('\n') == 1
    # A base config: each run failed in its log (KeyError), exit 1.
    base = str(REPO / 'configs/_base_/models/dsnet.py')
    assert tool.main([str(config), base, *args]) == 2
    assert capsys.readouterr().err == (
        f'ERROR: config file {base} sets no train_dataloader.dataset, '
        'val_dataloader.dataset, test_dataloader.dataset, optim_wrapper, '
        'train_cfg, visualizer, default_hooks.logger: a run trains and tests '
        "the config's model on its data pipelines with its optimizer; give "
        'a whole training config such as configs/dsnet/dsnet_isic2017.py\n')
    # Another evaluator: each run failed in its log, exit 1.
    iou = tmp_path / 'iou.py'
    iou.write_text(f'_base_ = [{str(config)!r}]\n'
                   "test_evaluator = dict(type='IoUMetric')\n")
    assert tool.main([str(iou), *args]) == 2
    assert capsys.readouterr().err.startswith(
        f'ERROR: config file {iou}: its test_evaluator is IoUMetric, not '
        'LesionMetric;')
    # The fast sweep reads the configs in this process: the syntax error
    # was a traceback, the checkpoint an ERROR that did not name it.
    assert tool.main([str(broken), '--fast', '--device', 'cpu', *args]) == 2
    assert capsys.readouterr().err.startswith(
        f'ERROR: candidate config {broken} cannot be read as a config: '
        'SyntaxError: ')
    assert not (tmp_path / 'w').exists()


def test_cli_refuses_the_synthetic_set_before_any_run(fake_check, tmp_path,
                                                      capsys):
    """``--data-root data/synthetic_isic2018`` (the stand-in set, which
    holds SYNTHETIC.txt): every run started and refused it (its reason in
    the logs), and the sweep ended with ``ERROR: 2 of 2 runs failed``,
    exit 1; a ``--fast`` sweep trained and wrote records that
    design_table.py refuses."""
    from mmseg_dsnet.datasets.synthetic_fallback import SYNTHETIC_MARKER
    args = cli_args(tmp_path)
    data = tmp_path / 'data'
    (data / SYNTHETIC_MARKER).write_text('synthetic\n')
    for mode in ([], ['--fast', '--device', 'cpu']):
        assert tool.main(['egeunet', 'malunet', *mode, *args]) == 2
        assert capsys.readouterr().err == (
            f'ERROR: --data-root {data} is the synthetic stand-in set (it '
            f'holds {SYNTHETIC_MARKER}), not the real ISIC images: a design '
            'run on it says nothing about a design, and design_table.py '
            'refuses its record; give --data-root the converted real ISIC '
            '2017 set\n')
    assert not (tmp_path / 'w').exists()
    assert not (tmp_path / 'r').exists()


def test_cli_gives_the_runs_absolute_paths(fake_check, tmp_path,
                                           monkeypatch):
    """The runs start in the repository root: a relative --record-dir or
    --data-root given elsewhere named other folders there (the records
    went to the repository, the data checked was not the data trained
    on)."""
    cli_args(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert tool.main(['egeunet', '--data-root', 'data', '--work-dir', 'w',
                      '--record-dir', 'r']) == 0
    line = (tmp_path / 'w' / 'egeunet_s0.log').read_text().splitlines()[0]
    for option, path in (('--work-dir', 'w/egeunet_s0'),
                         ('--data-root', 'data'), ('--record-dir', 'r')):
        assert f'{option} {tmp_path / path} ' in line + ' '


SLOW_CHECK = '''import sys, time
time.sleep(float(sys.argv[sys.argv.index('--seed') + 1]) / 2)
print('Design record: r.json')
'''


def test_a_sweep_cut_short_is_not_a_success(tmp_path, monkeypatch,
                                            capsys):
    """Runs left out by --start-before were listed as ``not started`` with
    exit 0, as if the sweep had done what was asked."""
    script = tmp_path / 'slow_check.py'
    script.write_text(SLOW_CHECK)
    monkeypatch.setattr(sweep, 'CHECK_TOOL', str(script))
    assert tool.main(['egeunet', '--seeds', '3', '0', '--parallel', '1',
                      '--start-before', '1', *cli_args(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert 'egeunet_s3: done' in captured.out
    assert captured.err.splitlines()[-1] == (
        'ERROR: 1 of 2 runs not started before --start-before 1 s: '
        'egeunet_s0')


def test_an_interrupted_sweep_stops_its_runs(tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM) ended the sweep, but the runs under way went on
    and wrote their records after it had ended."""
    import signal
    import threading
    import time
    script = tmp_path / 'record_late.py'
    script.write_text('import sys, time\ntime.sleep(3)\n'
                      f'open({str(tmp_path / "late")!r}, "w").close()\n')
    monkeypatch.setattr(sweep, 'CHECK_TOOL', str(script))
    # Ctrl-C as a terminal gives it: Python's own handler, SIGINT not
    # blocked. In whole-suite runs the signal once went unanswered (the
    # runs finished), never in this file alone; what an earlier test's
    # libraries leave in this process is not what this test is about.
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    print(f'SIGINT before the test: handler {handler!r}, blocked '
          f'{signal.SIGINT in blocked}')
    # Ctrl-C: SIGINT to this process's main thread, which waits on the
    # runs (sent to the process from the timer's thread, the kernel may
    # hand it to that thread and leave the main thread's wait running).
    threading.Timer(1.0, signal.pthread_kill,
                    (threading.main_thread().ident, signal.SIGINT)).start()
    began = time.time()
    try:
        with pytest.raises(KeyboardInterrupt):
            sweep.run_sweep(
                sweep.sweep_jobs(['egeunet', 'malunet'], [0, 1]),
                str(tmp_path / 'w'), [], parallel=2)
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    assert time.time() - began < 3
    time.sleep(3)
    assert not (tmp_path / 'late').exists()
    # The next seed was never started.
    assert sorted(p.name for p in (tmp_path / 'w').glob('*.log')) == [
        'egeunet_s0.log', 'malunet_s0.log']


def test_cli_refuses_options_the_chosen_mode_would_drop(tmp_path, capsys):
    """``--parallel`` with ``--fast`` (all runs train in one process) and
    ``--time-limit`` without it would be dropped; nothing starts."""
    args = cli_args(tmp_path)
    assert tool.main(['egeunet', '--fast', '--parallel', '2', *args]) == 2
    assert capsys.readouterr().err.startswith(
        'ERROR: --parallel is not used with --fast')
    assert tool.main(['egeunet', '--time-limit', '60', *args]) == 2
    assert capsys.readouterr().err.startswith(
        'ERROR: --time-limit is used only with --fast')
    assert tool.main(['egeunet', '--fast', '--time-limit', '0', *args]) == 2
    assert capsys.readouterr().err.startswith(
        'ERROR: --time-limit must be positive')
    assert not (tmp_path / 'w').exists()


def test_fast_record_names_keep_the_trainer_apart():
    from mmseg_dsnet.leaderboard.real_data_check import design_record_path
    names = [osp.basename(design_record_path('r', 'dsnet', 128, 30, 3, d))
             for d in ('cpu', 'cuda: NVIDIA H200', 'cpu (fast_train)',
                       'cuda: NVIDIA H200 (fast_train)')]
    assert names == ['dsnet_128px_30ep_seed3.json',
                     'dsnet_128px_30ep_seed3_cuda.json',
                     'dsnet_128px_30ep_seed3_fast.json',
                     'dsnet_128px_30ep_seed3_cuda_fast.json']


@pytest.mark.slow
def test_fast_sweep_records_what_each_runs_checkpoint_scores(tiny_isic,
                                                             tmp_path,
                                                             capsys):
    """``--fast`` trains every run in one process and records each run's
    score on the design hold-out: the figures tools/test.py gives its final
    checkpoint, in a record the design tables keep apart."""
    import json

    from conftest import run_tool_in_process

    from mmseg_dsnet.leaderboard.design import design_table
    records, work = tmp_path / 'records', tmp_path / 'work'
    argv = ['dsnet', '--seeds', '0', '1', '--epochs', '2', '--crop-size',
            '64', '--fast', '--device', 'cpu', '--data-root',
            str(tiny_isic), '--work-dir', str(work), '--record-dir',
            str(records)]
    assert tool.main(argv) == 0
    assert 'dsnet_s1: done' in capsys.readouterr().out
    paths = sorted(records.glob('*.json'))
    assert [p.name for p in paths] == ['dsnet_64px_2ep_seed0_fast.json',
                                       'dsnet_64px_2ep_seed1_fast.json']
    record = json.loads(paths[1].read_text())
    assert record['device'] == 'cpu (fast_train)'
    assert record['runs_together'] == 2 and record['seed'] == 1
    # The model it trained, which the tables compare across its seeds.
    assert record['model_config']['type'] == 'EncoderDecoder'
    assert record['eval_split'] == 'splits/lightweight_design_val.txt'
    held_out = (tiny_isic / 'splits' / 'lightweight_design_val.txt'
                ).read_text().split()
    assert record['test_images'] == len(held_out)
    run_dir = work / 'dsnet_s1'
    run_tool_in_process('tools/test.py', run_dir / 'dsnet_isic2017.py',
                        run_dir / 'epoch_2.pth', '--work-dir',
                        tmp_path / 'test', check=True)
    tested = json.loads((tmp_path / 'test' / 'test_metrics.json'
                         ).read_text())['metrics']
    for key in ('IoU', 'DSC', 'mIoU_img'):
        assert record['metrics'][key] == round(tested[key], 2), key
    assert '| dsnet | 64px | 2 | cpu (fast_train) |' in design_table(
        [str(p) for p in paths])
    # A second sweep of those seeds would add second records: refused.
    assert tool.main(argv[:-4] + ['--work-dir', str(tmp_path / 'w2'),
                                  '--record-dir', str(records)]) == 2
    assert 'have a record already' in capsys.readouterr().err


def test_fast_sweep_refuses_a_config_it_would_not_follow(tmp_path, capsys):
    """A config with a hook the fast trainer would leave out is refused
    before the sweep makes its folder."""
    from conftest import REPO
    ema = REPO / 'configs/dsnet/design' / \
        'dsnet-design-deeper-eighth-ema_isic2017.py'
    assert tool.main([str(ema), '--fast', '--device', 'cpu',
                      *cli_args(tmp_path)]) == 2
    assert 'custom_hooks EMAHook would not run in fast training' in \
        capsys.readouterr().err
    assert not (tmp_path / 'w').exists()


# Stands in for design_screen.sh's python: the sweep records one run and
# stops the other at the time limit (exit 1, as design_sweep.py --fast).
FAKE_SCREEN_PYTHON = r'''#!/usr/bin/env bash
while [ "$1" != --record-dir ]; do shift; done
mkdir -p "$2"; echo '{}' > "$2/cand_128px_30ep_seed0_cuda_fast.json"
echo 'cand_s0: done'
echo 'cand_s1: stopped (stopped after epoch 12: ...)'
echo 'ERROR: 1 of 2 runs did not train all their epochs (no record): cand_s1'
exit 1
'''


def test_design_screen_script_passes_on_the_sweeps_failure(tmp_path):
    """tools/device/design_screen.sh ended with exit 0 whatever the sweep
    did: runs stopped by the time limit (no record) or a sweep that refused
    its input read as a complete screen."""
    import os
    import subprocess

    from conftest import REPO
    fake = tmp_path / 'python'
    fake.write_text(FAKE_SCREEN_PYTHON)
    fake.chmod(0o755)
    out = tmp_path / 'out'
    proc = subprocess.run(
        ['bash', str(REPO / 'tools/device/design_screen.sh')],
        env=dict(os.environ, PYTHON=str(fake), OUT=str(out),
                 WORK=str(tmp_path / 'work'), SEEDS='0 1'),
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert 'design_sweep rc=1' in proc.stdout
    assert 'ERROR: 1 of 2 runs did not train' in proc.stdout
    # The records of the runs that finished still come back.
    assert (out / 'records.tar.gz').is_file()


def test_cli_refuses_figures_of_two_lesion_metrics_before_any_run(
        fake_check, tmp_path, capsys):
    """An evaluator of two prefixed LesionMetric (say at two thresholds):
    each run trained, then its record was refused (``holds the figures of
    2 LesionMetric evaluators``), none written; ``--fast`` (which records
    the validation) trained all runs first. Now refused before any run."""
    from conftest import REPO
    args = cli_args(tmp_path)
    config = REPO / 'configs/dsnet/design/dsnet-design-e_isic2017.py'
    two = ("[dict(type='LesionMetric', prefix='a'), "
           "dict(type='LesionMetric', prefix='b')]")
    for key, mode in (('test_evaluator', []),
                      ('val_evaluator', ['--fast', '--device', 'cpu'])):
        candidate = tmp_path / f'two_{key}.py'
        candidate.write_text(f'_base_ = [{str(config)!r}]\n{key} = {two}\n')
        assert tool.main([str(candidate), *mode, *args]) == 2
        err = capsys.readouterr().err
        assert err.splitlines()[-1] == (
            f"ERROR: config file {candidate}: {key} holds 2 LesionMetric "
            "(prefixes 'a', 'b'): the run record keeps the figures of one "
            'LesionMetric, and it would have been refused only after the '
            f'training; give {key} one LesionMetric (other metrics may '
            'stay); nothing was started')
        assert not (tmp_path / 'w').exists()
        assert not (tmp_path / 'r').exists()


def test_fast_sweep_refuses_a_design_hold_out_of_test_images(
        tiny_isic, tmp_path, capsys):
    """``--fast`` on a set whose lightweight_design_val.txt is a copy of
    its test split: the runs were judged on the test images and recorded
    as design results, exit 0. Now nothing is trained or written."""
    import shutil
    root = tmp_path / 'isic'
    shutil.copytree(tiny_isic, root)
    splits = root / 'splits'
    shutil.copy(splits / 'lightweight_test.txt',
                splits / 'lightweight_design_val.txt')
    records, work = tmp_path / 'records', tmp_path / 'work'
    assert tool.main(['dsnet', '--seeds', '0', '--epochs', '1',
                      '--crop-size', '64', '--fast', '--device', 'cpu',
                      '--data-root', str(root), '--work-dir', str(work),
                      '--record-dir', str(records)]) == 2
    assert capsys.readouterr().err.startswith(
        f'ERROR: the design hold-out {splits / "lightweight_design_val.txt"}'
        ' lists ')
    assert not records.exists() and not work.exists()


def test_fast_sweep_trains_the_config_given_from_another_folder(
        tiny_isic, tmp_path, monkeypatch):
    """A relative candidate path was read from the repository root: a
    ``--fast`` sweep run in another checkout trained the repository's file
    of that path (another learning rate here), not the one given."""
    from mmseg_dsnet.leaderboard.fast_design import fast_design_specs
    from mmseg_dsnet.utils.paths import REPO_ROOT
    given = tmp_path / 'configs' / 'dsnet' / 'dsnet_isic2017.py'
    given.parent.mkdir(parents=True)
    given.write_text(
        f"_base_ = ['{osp.join(REPO_ROOT, 'configs/dsnet/dsnet_isic2017.py')}']"
        '\noptim_wrapper = dict(optimizer=dict(lr=0.0123))\n')
    monkeypatch.chdir(tmp_path)
    jobs = sweep.sweep_jobs(['configs/dsnet/dsnet_isic2017.py'], [0])
    spec, = fast_design_specs(jobs, str(tiny_isic), str(tmp_path / 'work'),
                              epochs=1, crop_size=64)
    assert spec.cfg.optim_wrapper.optimizer.lr == 0.0123
    assert spec.config_path == str(given)


def test_design_screen_records_unpack_without_replacing_any(tmp_path):
    """The extraction design_screen.sh documents for its records
    (``tar xzf records.tar.gz -C results/design --strip-components 1``)
    replaced a record already there of the same name (an earlier screen of
    that candidate and seed: the sweep on the device checks only
    ``OUT/records``), exit 0. Now the documented command keeps it and
    fails naming it."""
    import re
    import shlex
    import subprocess
    import tarfile

    from conftest import REPO
    script = (REPO / 'tools/device/design_screen.sh').read_text()
    command, = re.findall(r'^# (tar x\S* records\.tar\.gz .*)$', script,
                          re.MULTILINE)
    packed = tmp_path / 'out' / 'records'
    packed.mkdir(parents=True)
    name = 'cand_128px_30ep_seed0_cuda_fast.json'
    (packed / name).write_text('{"screen": "new"}')
    (packed / 'cand_128px_30ep_seed1_cuda_fast.json').write_text('{}')
    with tarfile.open(tmp_path / 'records.tar.gz', 'w:gz') as archive:
        archive.add(packed, arcname='records')
    design = tmp_path / 'results' / 'design'
    design.mkdir(parents=True)
    (design / name).write_text('{"screen": "earlier"}')
    proc = subprocess.run(shlex.split(command), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert name in proc.stderr
    assert (design / name).read_text() == '{"screen": "earlier"}'
    assert (design / 'cand_128px_30ep_seed1_cuda_fast.json').is_file()


def test_the_default_runs_at_a_time_are_the_cpus_over_the_threads(
        monkeypatch):
    """Not asked for, the runs at a time are lowered to the usable CPUs
    divided by each run's threads: 4 CPUs hold 2 runs of 2 threads."""
    import importlib
    benchmark = importlib.import_module('mmseg_dsnet.analysis.benchmark')
    monkeypatch.setattr(benchmark, 'usable_cpus', lambda: 4)
    assert sweep.check_cpu_share(3, 2, parallel_given=False) == 2
    assert sweep.check_cpu_share(3, 1, parallel_given=False) == 3
    assert sweep.check_cpu_share(8, 3, parallel_given=False) == 1


def test_fast_sweep_writes_no_record_of_a_run_the_time_limit_stopped(
        tiny_isic, tmp_path, capsys):
    """A run stopped by ``--time-limit`` trained fewer epochs than its
    record would name: it gets no record, the run that trained all its
    epochs gets one, and the sweep ends with one ERROR line."""
    records = tmp_path / 'records'
    # Two runs over the limit after epoch 2: the last is stopped there, the
    # first trains its third (the last run is never stopped at the end).
    argv = ['dsnet', '--seeds', '0', '1', '--epochs', '3', '--crop-size',
            '64', '--fast', '--device', 'cpu', '--time-limit', '0.001',
            '--data-root', str(tiny_isic), '--work-dir',
            str(tmp_path / 'work'), '--record-dir', str(records)]
    assert tool.main(argv) == 1
    out, err = capsys.readouterr()
    assert 'dsnet_s0: done' in out
    assert 'dsnet_s1: stopped (stopped after epoch 2: with 2 runs' in out
    assert err.strip().splitlines()[-1] == (
        'ERROR: 1 of 2 runs did not train all their epochs (no record): '
        'dsnet_s1')
    assert [p.name for p in records.iterdir()] == [
        'dsnet_64px_3ep_seed0_fast.json']


def test_help_says_each_option_and_its_default_in_clean_paths(monkeypatch,
                                                              capsys):
    """``--help`` showed the default --src as ``<repo>/../shared/...``,
    and --seeds, --epochs, --crop-size, --record-dir and --work-dir with
    no word on what they do or their default."""
    import re

    from conftest import REPO
    monkeypatch.setenv('COLUMNS', '200')  # one line an option
    tool = load_tool('analysis_tools/design_sweep.py')
    with pytest.raises(SystemExit):
        tool.parse_args(['--help'])
    text = capsys.readouterr().out
    src = osp.join(REPO.parent, 'shared', 'data', 'isic2017_256x192')
    assert f'default: {src})' in text and '/../' not in text
    options = re.split(r'\n  (?=-)', text.split('options:', 1)[1])[1:]
    assert len(options) == 16, options
    undocumented = [option.split()[0] for option in options
                    if 'default' not in option.lower() and
                    not option.startswith(('-h', '--fast ', '--resume '))]
    assert undocumented == []
