"""Without the configured dataset and with no data location given,
train.py/test.py say how to prepare it and fall back to the embedded
synthetic set (or refuse, if asked). Given data roots: test_explicit_data.py.
"""
import json
import shutil

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


def test_data_in_the_repository_is_not_replaced_from_another_folder(
        fallback, tmp_path, monkeypatch):
    """A tool run from another folder reads the relative default root
    data/isic2018 there: it tested the released weights on the synthetic
    set (IoU 97.98, exit 0) while the converted data sat in the
    repository. It names both places now and makes nothing."""
    repo = tmp_path / 'repo'
    (repo / 'data' / 'isic2018' / 'images').mkdir(parents=True)
    monkeypatch.setattr(fallback, 'REPO_ROOT', str(repo))
    cfg = _config(tmp_path, monkeypatch)
    with pytest.raises(fallback.DataRootError) as info:
        fallback.ensure_data(cfg)
    assert str(info.value).startswith(
        "The ISIC 2018 data root 'data/isic2018' is read from the current "
        f'folder {tmp_path}, where it does not exist; the converted data is '
        f'at {repo}/data/isic2018.')
    assert not (tmp_path / 'synthetic_isic2018').exists()
    assert cfg.test_dataloader.dataset.data_root == 'data/isic2018'
    # The repository's own synthetic set is no such data: fall back.
    (repo / 'data' / 'isic2018' / synthetic_fallback.SYNTHETIC_MARKER
     ).write_text('synthetic')
    assert fallback.ensure_data(cfg) is True


def _prepare_in_process(out_root, start, queue):
    """One of the processes of a distributed run: make the synthetic set
    once ``start`` is set; puts the outcome on ``queue``."""
    start.wait(20)
    try:
        synthetic_fallback.prepare_synthetic(
            2018, out_root, counts=dict(num_train=40, num_val=8,
                                        num_test=16))
        queue.put('ok')
    except Exception as err:  # noqa: BLE001  (the outcome is checked)
        queue.put(f'{type(err).__name__}: {err}')


def test_processes_that_make_the_synthetic_set_together_all_get_it(
        tmp_path):
    """``dist_train.sh`` on a fresh checkout without data: each process
    found no synthetic set and wrote it at once, so one failed with
    `FileExistsError: ... was filled while the set was written` (a
    traceback) and the run stopped. Now one makes it, the others wait and
    reuse it."""
    import multiprocessing as mp
    ctx = mp.get_context('spawn')
    start, queue = ctx.Event(), ctx.SimpleQueue()
    out_root = str(tmp_path / 'synthetic_isic2018')
    procs = [ctx.Process(target=_prepare_in_process,
                         args=(out_root, start, queue)) for _ in range(3)]
    for proc in procs:
        proc.start()
    start.set()
    try:
        for proc in procs:
            proc.join(60)
        assert not any(proc.is_alive() for proc in procs), 'a process hung'
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
    assert [queue.get() for _ in procs] == ['ok'] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'synthetic_isic2018', 'synthetic_isic2018_official_layout']
    assert synthetic_fallback.is_synthetic(out_root)


def test_a_set_made_from_some_counts_is_made_and_reused(fallback, tmp_path):
    """``prepare_synthetic(2018, root, counts=dict(num_train=4))``: the
    counts left out are the generator's, but the check read them as 0 and
    refused the set it had just made ("made by another version"), at
    every call."""
    import json
    root = tmp_path / 'some'
    for _ in range(2):  # made, then reused
        assert fallback.prepare_synthetic(2018, out_root=str(root),
                                          counts=dict(num_train=4)) == \
            str(root)
    held = json.loads((root / 'meta.json').read_text())['counts']
    assert held['official_train'] == 4 and held['official_val'] > 0


def test_a_synthetic_set_of_other_image_sizes_is_not_reused(fallback,
                                                          tmp_path):
    """``prepare_synthetic(2018, root, counts=dict(..., size=(64, 48)))``
    where ``root`` holds a set made at another size: the check compared
    year, seed and counts only, so the set of other images was reused as
    the one asked, exit 0. Now it is refused, naming both sizes, and left
    as it is; asked at its own size, it is reused."""
    from PIL import Image
    root = tmp_path / 'sized'
    counts = dict(num_train=2, num_val=1, num_test=1)
    small = dict(counts, size=(64, 48))
    assert fallback.prepare_synthetic(2018, str(root), counts=small) == \
        str(root)
    first = sorted((root / 'images').iterdir())[0]
    assert Image.open(first).size == (64, 48)
    meta = (root / 'meta.json').read_text()
    with pytest.raises(fallback.SyntheticTargetError,
                       match=r'image size 64x48 \(asked: 256x192\)'):
        fallback.prepare_synthetic(2018, str(root), counts=counts)
    with pytest.raises(fallback.SyntheticTargetError,
                       match=r'image size 64x48 \(asked: 32x32\)'):
        fallback.prepare_synthetic(2018, str(root),
                                   counts=dict(counts, size=(32, 32)))
    assert (root / 'meta.json').read_text() == meta
    assert fallback.prepare_synthetic(2018, str(root), counts=small) == \
        str(root)


def test_a_synthetic_set_of_other_images_is_not_reused(fallback, tmp_path):
    """A synthetic set already at the target (made by an older version
    with other counts, or from a download of other counts left beside it)
    was reused as it was: the run trained and scored other images than
    the fallback makes, exit 0. Now it is refused, naming the folder and
    what differs, and left as it is."""
    root = tmp_path / 'synthetic_isic2018'
    assert fallback.prepare_synthetic(2018) == str(root)
    meta = (root / 'meta.json').read_text()
    more = dict(num_train=7, num_val=2, num_test=3)
    with pytest.raises(fallback.SyntheticTargetError) as info:
        fallback.prepare_synthetic(2018, counts=more)
    assert str(info.value).startswith(
        f'{root} holds a synthetic set of other images than this one '
        'makes: official_train 6 (asked: 7) ')
    assert f'Remove it and {root}_official_layout' in str(info.value)
    assert (root / 'meta.json').read_text() == meta
    with pytest.raises(fallback.SyntheticTargetError, match='seed 0 '):
        fallback.prepare_synthetic(2018, seed=1)
    # The converted set gone, the download of 6 training images left
    # beside it is not converted into a set of 7 without a word.
    shutil.rmtree(root)
    with pytest.raises(fallback.SyntheticTargetError,
                       match=r'official_train 6 \(asked: 7\)'):
        fallback.prepare_synthetic(2018, counts=more)
    # Asked as made: reused.
    assert fallback.prepare_synthetic(2018) == str(root)
    # Nor is a set of the other layout (ISIC 2018's for 2017).
    with pytest.raises(fallback.SyntheticTargetError,
                       match=r'year 2018 \(asked: 2017\)'):
        fallback.prepare_synthetic(2017, out_root=str(root),
                                   counts=fallback.SYNTHETIC_COUNTS)
