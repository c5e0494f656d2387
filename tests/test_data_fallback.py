"""Without the configured dataset and with no data location given,
train.py/test.py say how to prepare it and fall back to the embedded
synthetic set (or refuse, if asked). Given data roots: test_explicit_data.py.
"""
import pytest
from conftest import REPO

from mmseg_dsnet.datasets import synthetic_fallback


@pytest.fixture
def fallback(tmp_path, monkeypatch):
    module = synthetic_fallback
    monkeypatch.setattr(module, 'synthetic_root',
                        lambda year: str(tmp_path / f'synthetic_isic{year}'))
    monkeypatch.setattr(module, 'SYNTHETIC_COUNTS',
                        dict(num_train=6, num_val=2, num_test=3))
    return module


def _config(tmp_path, monkeypatch):
    """The config as written, run from a folder without its default root
    data/isic2018."""
    from mmengine.config import Config
    monkeypatch.chdir(tmp_path)
    return Config.fromfile(str(REPO / 'configs/dsnet/dsnet_isic2018.py'))


def test_missing_data_falls_back_to_synthetic(fallback, tmp_path, capsys,
                                              monkeypatch):
    cfg = _config(tmp_path, monkeypatch)
    assert fallback.ensure_data(cfg) is True
    out = capsys.readouterr().out
    assert 'isic2018' in out and 'tools/dataset_converters/isic.py' in out
    assert 'synthetic' in out
    root = tmp_path / 'synthetic_isic2018'
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[name].dataset.data_root == str(root)
    train_ids = (root / 'splits' / 'lightweight_train.txt').read_text().split()
    assert len(train_ids) == round(0.7 * 8)
    assert (root / 'images' / f'{train_ids[0]}.jpg').is_file()
    assert fallback.is_synthetic(str(root))
    # A second call reuses the converted set (and changes nothing).
    assert fallback.prepare_synthetic(2018) == str(root)


def test_missing_data_can_be_an_error(fallback, tmp_path, monkeypatch):
    cfg = _config(tmp_path, monkeypatch)
    with pytest.raises(FileNotFoundError, match='dataset_converters/isic.py'):
        fallback.ensure_data(cfg, allow_synthetic=False)
    assert not (tmp_path / 'synthetic_isic2018').exists()


def test_present_data_is_left_alone(fallback, tiny_isic):
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / 'configs/dsnet/dsnet_isic2018.py'))
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = str(tiny_isic)
    assert fallback.ensure_data(cfg) is False
    assert cfg.train_dataloader.dataset.data_root == str(tiny_isic)
    assert not fallback.is_synthetic(str(tiny_isic))
