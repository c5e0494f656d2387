"""The README's main job (tools/demo.py): trains, evaluates and draws on
the embedded synthetic set; refuses settings it would not follow."""
import hashlib
import os
import shutil
import subprocess

import pytest
from conftest import REPO, load_tool, write_tiny_config

from mmseg_dsnet.engine.cli_errors import UserError
from mmseg_dsnet.engine.preflight import MissingInputError

demo = load_tool('demo.py')


def test_demo_trains_evaluates_and_draws(tmp_path, capsys):
    work = tmp_path / 'demo'
    metrics, guess = demo.main(['--epochs', '1', '--work-dir', str(work)])
    for key in ('IoU', 'DSC', 'Sen', 'Spe'):
        assert 0.0 <= metrics[key] <= 100.0
    # The all-lesion guess scores the lesion share, strictly between.
    assert 0.0 < guess < 100.0
    assert (work / 'overlays.png').stat().st_size > 0
    assert list(work.glob('epoch_1.pth'))
    printed = capsys.readouterr().out
    assert 'Training DSNet on the CPU for 1 epochs' in printed
    assert f'all-lesion {guess:.2f}' in printed
    # The figures and overlays are of the checkpoint it names.
    assert f'Checkpoint: {work / "epoch_1.pth"}' in printed


def test_demo_refuses_what_it_would_not_follow(tmp_path):
    with pytest.raises(UserError, match='--epochs must be at least 1'):
        demo.main(['--epochs', '0', '--work-dir', str(tmp_path / 'a')])
    # numpy's refusal came as a traceback after the set was made.
    with pytest.raises(UserError, match='--seed must be an integer from 0'):
        demo.main(['--seed', '-1', '--work-dir', str(tmp_path / 'a')])
    assert not (tmp_path / 'a').exists()
    with pytest.raises(MissingInputError, match='does not exist'):
        demo.main(['--config', str(tmp_path / 'missing.py'), '--work-dir',
                   str(tmp_path / 'b')])
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(Exception, match='is a file, not a folder'):
        demo.main(['--work-dir', str(blocker / 'work')])
    assert not (tmp_path / 'a').exists() and not (tmp_path / 'b').exists()


def test_demo_refuses_a_config_of_real_data(tmp_path, tiny_isic):
    """``--config`` of a converted (real) set, or of the real data's default
    root: refused before anything is written. The demo used to train on
    the real set as 'synthetic' and mark it so, and every later metric on
    it said ``synthetic: true``."""
    from mmseg_dsnet.datasets.synthetic_fallback import (
        SyntheticTargetError, is_synthetic, prepare_synthetic)
    real = tmp_path / 'isic2018'
    shutil.copytree(tiny_isic, real)
    config = write_tiny_config(tmp_path / 'real.py', real, epochs=1)
    work = tmp_path / 'work'
    with pytest.raises(SyntheticTargetError, match='converted from'):
        demo.main(['--config', str(config), '--work-dir', str(work)])
    assert not is_synthetic(str(real)) and not work.exists()
    # An ISIC config of the real data's default root: nothing is
    # generated there.
    default = REPO / 'data' / 'isic2018'
    existed = default.exists()
    with pytest.raises(SyntheticTargetError, match='real ISIC 2018 data'):
        demo.main(['--config', str(REPO / 'configs/dsnet/dsnet_isic2018.py'),
                   '--work-dir', str(work)])
    assert default.exists() == existed and not work.exists()
    # The synthetic set itself is still reused (and stays marked).
    synthetic = tmp_path / 'synthetic'
    shutil.copytree(tiny_isic, synthetic)
    (synthetic / 'SYNTHETIC.txt').write_text('made by a test\n')
    assert prepare_synthetic(2018, str(synthetic)) == str(synthetic)


def test_demo_reads_the_set_it_made_from_any_folder(tmp_path, monkeypatch,
                                                    capsys):
    """From another folder the demo made the synthetic set under the
    repository but trained on the config's relative data_root, so the
    training found no split file (exit 2, a log folder and a dumped
    config left); relative --work-dir is of the caller's folder."""
    monkeypatch.chdir(tmp_path)
    metrics, guess = demo.main(['--epochs', '1', '--work-dir', 'demo'])
    assert 0.0 <= metrics['IoU'] <= 100.0 and 0.0 < guess < 100.0
    assert (tmp_path / 'demo' / 'epoch_1.pth').is_file()
    assert (tmp_path / 'demo' / 'overlays.png').stat().st_size > 0
    assert 'Checkpoint: demo/epoch_1.pth' in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ['demo']


def test_run_demo_sh_keeps_the_callers_folder(tmp_path):
    """run_demo.sh changed to the repository root, so a relative --config
    was looked for there: ``ERROR: config file tiny.py does not exist``."""
    parts = sorted((REPO / 'requirements').glob('*.txt')) + [
        REPO / 'setup.py', REPO / 'tools' / 'setup_env.sh']
    stamp = hashlib.sha1(b''.join(p.read_bytes() for p in parts)).hexdigest()
    if not (REPO / '.venv' / f'.mmseg-dsnet-{stamp[:16]}').exists():
        pytest.skip('.venv is not up to date: run_demo.sh would install it')
    (tmp_path / 'tiny.py').write_text('model = dict(\n')
    done = subprocess.run(
        ['bash', str(REPO / 'tools' / 'run_demo.sh'), '--config', 'tiny.py',
         '--epochs', '1', '--work-dir', 'demo3'], cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        'ERROR: config file tiny.py cannot be read as a config: '
        "SyntaxError: '(' was never closed (<unknown>, line 1)")
    assert os.listdir(tmp_path) == ['tiny.py']


def test_demo_refuses_loaders_of_different_folders(tmp_path, tiny_isic):
    """The demo makes one synthetic set and tests on it; a test loader of
    another folder was tested on as it was, as 'synthetic'."""
    synthetic = tmp_path / 'synthetic'
    shutil.copytree(tiny_isic, synthetic)
    (synthetic / 'SYNTHETIC.txt').write_text('made by a test\n')
    config = write_tiny_config(tmp_path / 'mixed.py', synthetic, epochs=1)
    other = tmp_path / 'other'
    with open(config, 'a') as f:
        f.write(f'test_dataloader = dict(dataset=dict(data_root={str(other)!r}'
                '))\n')
    work = tmp_path / 'work'
    with pytest.raises(UserError) as err:
        demo.main(['--config', str(config), '--work-dir', str(work)])
    assert str(err.value) == (
        f'config file {config}: the demo makes one synthetic set and tests '
        f'on it, but the loaders read different folders (train_dataloader '
        f'{synthetic}, val_dataloader {synthetic}, test_dataloader {other})'
        '; give them one data_root')
    assert sorted(os.listdir(tmp_path)) == ['mixed.py', 'synthetic']
