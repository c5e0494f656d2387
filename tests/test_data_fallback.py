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


def test_wrapped_datasets_are_checked_and_recorded_by_their_own_data(
        fallback, tiny_isic, tmp_path, monkeypatch):
    """A ``RepeatDataset`` / ``ConcatDataset`` (mmseg's way to repeat or
    merge splits) was refused by train.py and test.py as
    ``ERROR: train_dataloader.dataset.data_root '' does not exist`` (the
    wrapper names no data itself), and a metrics record named the working
    folder as its data. Now the wrapped datasets' data is checked, falls
    back to the synthetic set, and is recorded."""
    from mmengine.config import Config
    cfg = _config(tmp_path, monkeypatch)
    train = cfg.train_dataloader.dataset
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2,
                                        dataset=train)
    test = cfg.test_dataloader.dataset
    cfg.test_dataloader.dataset = dict(
        type='ConcatDataset',
        datasets=[test, dict(test, ann_file='splits/lightweight_train.txt')])
    cfg = Config(cfg.to_dict())
    assert fallback.ensure_data(cfg) is True
    root = str(tmp_path / 'synthetic_isic2018')
    assert cfg.train_dataloader.dataset.dataset.data_root == root
    assert [d.data_root for d in cfg.test_dataloader.dataset.datasets] == \
        [root, root]
    record = fallback.data_provenance(cfg.test_dataloader.dataset, 9)
    assert record == dict(
        data_root=root, split_file=f'{root}/splits/lightweight_test.txt + '
        f'{root}/splits/lightweight_train.txt', images=9, synthetic=True)

    # Given data: each wrapped dataset's root is checked and named.
    cfg.test_dataloader.dataset.datasets[0].data_root = str(tiny_isic)
    cfg.test_dataloader.dataset.datasets[1].data_root = str(tmp_path / 'no')
    with pytest.raises(fallback.DataRootError,
                       match=r"^test_dataloader\.dataset\.datasets\[1\]\."
                       rf"data_root '{tmp_path}/no' does not exist"):
        fallback.ensure_data(cfg, loaders=('test_dataloader', ))


@pytest.mark.parametrize('kind', ['broken link', 'file'])
def test_a_broken_default_root_is_not_replaced_by_the_synthetic_set(
        fallback, tmp_path, monkeypatch, kind):
    """data/isic2018 as a link to an unmounted drive (or a file) was taken
    for absent data: the run trained and tested on the synthetic set, exit
    0, though the user had put their real data's place there."""
    cfg = _config(tmp_path, monkeypatch)
    (tmp_path / 'data').mkdir()
    root = tmp_path / 'data' / 'isic2018'
    if kind == 'file':
        root.write_bytes(b'PK\x03\x04')
        what = 'not a folder'
    else:
        root.symlink_to(tmp_path / 'unmounted' / 'isic2018')
        what = (f'a link to {tmp_path}/unmounted/isic2018, which does not '
                'exist')
    with pytest.raises(fallback.DataRootError) as info:
        fallback.ensure_data(cfg)
    assert str(info.value).startswith(
        f"The ISIC 2018 data root 'data/isic2018' is {what}")
    assert 'tools/dataset_converters/isic.py SRC data/isic2018' in str(
        info.value)
    assert not (tmp_path / 'synthetic_isic2018').exists()
    assert cfg.train_dataloader.dataset.data_root == 'data/isic2018'
