"""ISIC datasets read the converter's layout, with 0/1 masks."""
import numpy as np
import pytest


@pytest.mark.parametrize('year', [2016, 2017, 2018])
def test_isic_dataset_reads_converted_layout(tiny_isic, year):
    import mmseg_dsnet  # noqa: F401
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules()
    split = tiny_isic / 'splits' / 'lightweight_train.txt'
    names = split.read_text().split()
    dataset = DATASETS.build(
        dict(
            type=f'ISIC{year}Dataset',
            data_root=str(tiny_isic),
            ann_file='splits/lightweight_train.txt',
            data_prefix=dict(img_path='images', seg_map_path='masks'),
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations'),
                dict(type='PackSegInputs')
            ]))
    assert len(dataset) == len(names) > 0
    assert dataset.metainfo['classes'] == ('background', 'lesion')
    assert len(dataset.metainfo['palette']) == 2
    sample = dataset[0]
    gt = sample['data_samples'].gt_sem_seg.data.numpy()
    assert set(np.unique(gt)) <= {0, 1}
    assert gt.shape[-2:] == sample['inputs'].shape[-2:]
    assert sample['data_samples'].img_path.endswith(f'{names[0]}.jpg')


def test_configs_load_and_point_at_converter_layout():
    import glob
    from conftest import REPO
    from mmengine.config import Config
    configs = sorted(glob.glob(str(REPO / 'configs/*/*isic*.py')))
    assert len(configs) >= 12
    for path in configs:
        cfg = Config.fromfile(path)
        assert cfg.custom_imports['imports'] == ['mmseg_dsnet']
        for name in ('train', 'val', 'test'):
            ds = cfg[f'{name}_dataloader'].dataset
            assert ds.type.startswith('ISIC') and ds.ann_file.startswith(
                'splits/'), path
        protocol = 'official' if 'official' in path else 'lightweight'
        assert cfg.train_dataloader.dataset.ann_file == (
            f'splits/{protocol}_train.txt')
        assert cfg.train_dataloader.batch_size == 8
        assert cfg.optim_wrapper.optimizer.type == 'AdamW'
        assert cfg.optim_wrapper.optimizer.lr == 1e-3
        assert cfg.train_cfg.max_epochs == 300


def test_a_split_file_listing_an_id_twice_is_refused(tiny_isic, tmp_path):
    # A repeated line was read as another sample: the image was scored twice
    # in the pooled figures (and, with --out, its mask written twice).
    import mmseg_dsnet  # noqa: F401
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.utils.errors import UserError
    register_all_modules()
    a, b, c = (tiny_isic / 'splits' /
               'official_test.txt').read_text().split()[:3]
    split = tmp_path / 'dup.txt'
    # './b' is the same image as 'b'.
    split.write_text(f'{a}\n{b}\n{a}\n{c}\n./{b}\n{a}\n')

    def build(ann_file):
        return DATASETS.build(
            dict(
                type='ISIC2018Dataset',
                data_root=str(tiny_isic),
                ann_file=str(ann_file),
                data_prefix=dict(img_path='images', seg_map_path='masks'),
                pipeline=[]))

    with pytest.raises(UserError) as info:
        build(split)
    assert str(info.value) == (
        f'ISIC2018Dataset: split file {split} lists 2 id(s) more than once: '
        f'{a} (3 times), {b} (2 times); each would be trained on or scored '
        'more than once. List each id once.')
    split.write_text(f'{a}\n{b}\n{c}\n')
    assert len(build(split)) == 3


def test_a_split_folder_or_unknown_on_bad_sample_is_refused(tiny_isic):
    # ann_file='splits' (a folder) made mmseg read every image of the
    # images folder: test.py scored train, val and test images together,
    # exit 0. An unknown on_bad_sample was a ValueError traceback.
    import mmseg_dsnet  # noqa: F401
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.engine.cli_errors import describe_user_error
    from mmseg_dsnet.utils.errors import UserError
    register_all_modules()

    def build(**kwargs):
        cfg = dict(
            type='ISIC2018Dataset',
            data_root=str(tiny_isic),
            ann_file='splits/official_test.txt',
            data_prefix=dict(img_path='images', seg_map_path='masks'),
            pipeline=[])
        cfg.update(kwargs)
        return DATASETS.build(cfg)

    for folder in ('splits', 'splits/'):
        with pytest.raises(UserError) as info:
            build(ann_file=folder)
        message = (
            f'ISIC2018Dataset: ann_file {tiny_isic}/{folder} is a folder, not '
            'a split file; mmseg would read every image under '
            f'{tiny_isic / "images"} instead (all splits together). Name a '
            'split file, such as splits/lightweight_train.txt.')
        assert str(info.value) == message
        # The tools print it as one ERROR line (exit 2).
        assert describe_user_error(info.value) == message
    with pytest.raises(UserError) as info:
        build(on_bad_sample='skp')
    assert describe_user_error(info.value) == (
        "ISIC2018Dataset: on_bad_sample must be 'raise' or 'skip', got 'skp'")
    assert len(build()) == 6
