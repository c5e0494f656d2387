"""The README's main job (tools/demo.py): trains, evaluates and draws on
the embedded synthetic set; refuses settings it would not follow."""
import shutil

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
