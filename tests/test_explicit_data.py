"""Explicit data roots and data provenance: a data root the user gives is
used as given (a missing one is an error naming the converter command), the
synthetic fallback applies only when no data location is given and the
default one is absent, metrics files say which data they were computed on,
and leaderboard collect refuses synthetic runs."""
import json

import numpy as np
import pytest
from conftest import (REPO, load_tool, make_lesion_checkpoint,
                      run_tool_in_process, run_tool_process, write_tiny_config,
                      write_training_log)

from mmseg_dsnet.datasets import synthetic_fallback as fallback

CONFIG = REPO / 'configs' / 'dsnet' / 'dsnet_isic2018.py'
# Light test loader for the CPU.
LIGHT_LOADER = ['test_dataloader.num_workers=0',
                'test_dataloader.persistent_workers=False']


def error_lines(proc):
    return [line for line in proc.stderr.splitlines()
            if line.startswith('ERROR:')]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """Random DSNet weights for the 256x256 ISIC 2018 config."""
    path = tmp_path_factory.mktemp('ckpt') / 'dsnet.pth'
    image = np.random.default_rng(0).integers(0, 255, (256, 256, 3),
                                              dtype=np.uint8)
    return make_lesion_checkpoint(str(CONFIG), path, image)


def test_default_root_matches_the_dataset_base_configs():
    from mmengine.config import Config
    bases = sorted((REPO / 'configs' / '_base_' / 'datasets').glob(
        'isic20*_*.py'))
    assert bases
    for base in bases:
        cfg = Config.fromfile(str(base))
        year = fallback.dataset_year(cfg)
        for name in fallback.LOADERS:
            assert cfg[name].dataset.data_root == \
                fallback.default_root(year), base


@pytest.mark.slow
def test_explicit_root_is_used_as_given(checkpoint, tiny_isic, tmp_path):
    # configs/dsnet/dsnet_isic2018.py's default root data/isic2018 is absent
    # here; the old fallback replaced the given root by the synthetic set.
    assert not (REPO / 'data' / 'isic2018').exists()
    out = tmp_path / 'metrics.json'
    proc = run_tool_process('tools/test.py', CONFIG, checkpoint, '--work-dir',
                            tmp_path / 'w', '--metrics-out', out,
                            '--cfg-options',
                            f'test_dataloader.dataset.data_root={tiny_isic}',
                            *LIGHT_LOADER)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'synthetic' not in proc.stdout.lower()
    record = json.loads(out.read_text())
    split = tiny_isic / 'splits' / 'lightweight_test.txt'
    assert record['data_root'] == str(tiny_isic)
    assert record['split_file'] == str(split)
    assert record['images'] == len(split.read_text().split()) == 5
    assert record['synthetic'] is False


@pytest.mark.parametrize('tool', ['test.py', 'train.py'])
def test_explicit_missing_root_is_an_error(tool, checkpoint, tmp_path):
    missing = tmp_path / 'no_such_isic'
    loader = 'test' if tool == 'test.py' else 'train'
    args = [checkpoint] if tool == 'test.py' else []
    proc = run_tool_in_process(
        f'tools/{tool}', CONFIG, *args, '--work-dir', tmp_path / 'w',
        '--cfg-options', f'{loader}_dataloader.dataset.data_root={missing}')
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = error_lines(proc)
    assert len(errors) == 1 and 'Traceback' not in proc.stderr
    assert f"{loader}_dataloader.dataset.data_root '{missing}'" in errors[0]
    assert f'python tools/dataset_converters/isic.py SRC {missing}' in \
        errors[0]
    assert 'Using the embedded synthetic' not in proc.stdout
    assert not (tmp_path / 'w' / 'test_metrics.json').exists()


def test_config_edit_of_the_data_root_is_explicit(tmp_path, monkeypatch):
    """A config that sets its own ``data_root`` but leaves a loader on the
    default: the loader's missing root is an error, not a fallback."""
    from mmengine.config import Config
    from mmseg_dsnet.datasets.synthetic_fallback import DataRootError
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(str(CONFIG))
    cfg.data_root = str(tmp_path / 'mine')
    with pytest.raises(DataRootError, match="test_dataloader.dataset."
                       "data_root 'data/isic2018' does not exist"):
        fallback.ensure_data(cfg, loaders=('test_dataloader', ))
    assert cfg.test_dataloader.dataset.data_root == 'data/isic2018'


@pytest.mark.slow
def test_no_data_named_falls_back_to_synthetic(checkpoint, tmp_path,
                                               monkeypatch, capsys):
    test_tool = load_tool('test.py')
    # The fallback test.py uses, made small and kept in tmp_path.
    monkeypatch.setattr(fallback, 'synthetic_root',
                        lambda year: str(tmp_path / f'synthetic_isic{year}'))
    monkeypatch.setattr(fallback, 'SYNTHETIC_COUNTS',
                        dict(num_train=6, num_val=2, num_test=3))
    # The default root data/isic2018 is absent from this folder.
    monkeypatch.chdir(tmp_path)
    out = tmp_path / 'metrics.json'
    test_tool.main([str(CONFIG), checkpoint, '--work-dir',
                    str(tmp_path / 'w'), '--metrics-out', str(out),
                    '--cfg-options', 'randomness.seed=0', *LIGHT_LOADER])
    printed = capsys.readouterr().out
    assert 'Using the embedded synthetic' in printed
    record = json.loads(out.read_text())
    root = tmp_path / 'synthetic_isic2018'
    # The printed figures say what they are of, as the record does.
    assert ('\nNOTE: these figures are of the synthetic stand-in set '
            f'{root}, not of ISIC data: ') in printed
    assert printed.index('LesionMetric over') < printed.index('NOTE: ')
    assert record['synthetic'] is True
    assert record['data_root'] == str(root)
    assert record['split_file'] == str(root / 'splits' /
                                       'lightweight_test.txt')
    assert record['images'] == 2
    assert (root / 'SYNTHETIC.txt').is_file()


def test_leaderboard_collect_refuses_a_synthetic_run(tiny_isic, tmp_path):
    work_dir = tmp_path / 'work'
    write_training_log(work_dir)
    # One epoch, as the log: a run cut short is refused on its own.
    config = write_tiny_config(work_dir / 'tiny_dsnet.py', tiny_isic,
                               epochs=1)
    # What tools/test.py writes after the synthetic fallback.
    (work_dir / 'test_metrics.json').write_text(json.dumps(dict(
        config=str(config), checkpoint=None, metrics=dict(IoU=50.0),
        data_root='/x/synthetic', split_file='/x/s.txt', images=2,
        synthetic=True)))
    runs = tmp_path / 'runs'
    proc = run_tool_in_process('tools/analysis_tools/leaderboard.py',
                               'collect', config, work_dir, '--no-benchmark',
                               '--runs-dir', runs)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = error_lines(proc)
    assert len(errors) == 1 and 'Traceback' not in proc.stderr
    assert 'synthetic' in errors[0] and str(work_dir) in errors[0]
    assert not runs.exists()


@pytest.mark.parametrize('kind', ['folder', 'parent is a file'])
def test_unwritable_metrics_out_fails_before_evaluating(
        kind, checkpoint, tiny_isic, tmp_path):
    if kind == 'folder':
        out = tmp_path / 'taken'
        out.mkdir()
    else:
        (tmp_path / 'file').write_text('x')
        out = tmp_path / 'file' / 'metrics.json'
    work_dir = tmp_path / 'w'
    proc = run_tool_in_process(
        'tools/test.py', CONFIG, checkpoint, '--work-dir', work_dir,
        '--metrics-out', out, '--cfg-options',
        f'test_dataloader.dataset.data_root={tiny_isic}', *LIGHT_LOADER)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = error_lines(proc)
    assert len(errors) == 1 and 'Traceback' not in proc.stderr
    assert f'Cannot write --metrics-out {out}' in errors[0]
    # No runner was built: no log, no evaluation.
    assert 'Epoch(test)' not in proc.stdout + proc.stderr
    assert not list(work_dir.glob('*/*.log'))


@pytest.mark.parametrize('tool', ['test.py', 'train.py'])
def test_a_config_variable_in_cfg_options_is_refused(tool, checkpoint,
                                                     tmp_path):
    """``--cfg-options data_root=X``: mmengine had already copied the
    variable into the loaders when it read the config, so the option
    changed nothing: the config's own data set was scored, exit 0 (or its
    path, not X, was named missing), and ``test_metrics.json`` listed
    ``data_root=X`` among the options it was computed with."""
    other = tmp_path / 'other_isic'
    args = [checkpoint] if tool == 'test.py' else []
    proc = run_tool_in_process(
        f'tools/{tool}', CONFIG, *args, '--work-dir', tmp_path / 'w',
        '--cfg-options', f'data_root={other}')
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = error_lines(proc)
    assert len(errors) == 1 and 'Traceback' not in proc.stderr
    assert errors[0].startswith(
        f"ERROR: --cfg-options data_root={other} sets the config variable "
        "'data_root'"), errors
    assert f'test_dataloader.dataset.data_root={other}' in errors[0]
    assert not (tmp_path / 'w').exists()


def test_options_that_take_effect_are_let_through():
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import (ConfigOptionError,
                                              check_options_take_effect)
    cfg = Config.fromfile(str(CONFIG))
    # Dotted keys, runner keys and new keys reach the runner.
    check_options_take_effect(cfg, {
        'test_dataloader.dataset.data_root': 'x', 'work_dir': 'w',
        'randomness.seed': 1, 'my_new_key': 3})
    with pytest.raises(ConfigOptionError, match='crop_size'):
        check_options_take_effect(cfg, {'crop_size': (64, 64)})


# A clinic's folder names: a space, a comma and letters outside ASCII.
CLINIC_FOLDER = 'Patientin Müller, A'


@pytest.mark.parametrize('tool, positional', [
    ('test.py', ['C.py', 'c.pth']), ('train.py', ['C.py']),
    ('fast_train.py', ['C.py']),
    ('analysis_tools/benchmark.py', ['C.py']),
    ('analysis_tools/error_by_position.py', ['C.py', 'c.pth']),
    ('analysis_tools/get_flops.py', ['C.py']),
    ('analysis_tools/threshold_sweep.py', ['C.py', 'c.pth', '--thresholds',
                                           '0.5']),
    ('analysis_tools/recalibrate_batch_norm.py', ['C.py', 'c.pth', 'o.pth'])])
def test_cfg_options_keep_a_folder_name_whole(tool, positional, tmp_path):
    """mmengine's ``DictAction`` removed the spaces of every value and split
    it at commas: ``work_dir=/x/My Runs`` trained into ``/x/MyRuns``, exit
    0; a data root in ``Patientin Müller, A`` became a list (a traceback).
    Lists in brackets, and ``a,b`` without a path, are read as before."""
    root = tmp_path / CLINIC_FOLDER / 'isic 2018'
    args = load_tool(tool).parse_args([
        *positional, '--cfg-options',
        f'test_dataloader.dataset.data_root={root}',
        f'work_dir={tmp_path / "My Runs" / "r1"}',
        'val_evaluator.low_res_size=(32, 32)', 'x=a,b', 'y= 0.5'])
    assert args.cfg_options == {
        'test_dataloader.dataset.data_root': str(root),
        'work_dir': str(tmp_path / 'My Runs' / 'r1'),
        'val_evaluator.low_res_size': (32, 32), 'x': ['a', 'b'], 'y': 0.5}


def test_a_data_root_in_a_clinic_folder_is_scored(checkpoint, tiny_isic,
                                                  tmp_path):
    """``test.py --cfg-options test_dataloader.dataset.data_root=<folder
    with a space and a comma>`` scores that folder's set (before: a
    ``TypeError`` traceback: the comma made the root a list)."""
    import shutil
    root = tmp_path / CLINIC_FOLDER / 'isic 2018'
    shutil.copytree(tiny_isic, root)
    out = tmp_path / 'metrics.json'
    proc = run_tool_in_process(
        'tools/test.py', CONFIG, checkpoint, '--work-dir', tmp_path / 'w',
        '--metrics-out', out, '--cfg-options',
        f'test_dataloader.dataset.data_root={root}', *LIGHT_LOADER)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    split = root / 'splits' / 'lightweight_test.txt'
    assert record['data_root'] == str(root)
    assert record['split_file'] == str(split)
    assert record['images'] == len(split.read_text().split()) == 5


def test_a_tools_output_escapes_a_path_its_encoding_lacks(monkeypatch):
    """``test.py ... --work-dir 结果 > log.txt`` on Windows (standard output
    redirected, so in cp1252): ``Metrics written to 结果/...`` raised
    ``UnicodeEncodeError``, a traceback and exit 1 after the metrics file
    was written. The tools' runner (``run_reporting_user_errors``) now lets
    standard output escape what it cannot encode."""
    import io
    import sys

    from mmseg_dsnet.engine.cli_errors import run_reporting_user_errors
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding='cp1252', write_through=True)
    monkeypatch.setattr(sys, 'stdout', stdout)
    assert run_reporting_user_errors(
        lambda: print('Metrics written to 结果/test_metrics.json') or 0) == 0
    assert raw.getvalue().decode('cp1252') == \
        'Metrics written to \\u7ed3\\u679c/test_metrics.json\n'
