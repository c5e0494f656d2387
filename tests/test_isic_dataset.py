"""ISIC datasets read the converter's layout, with 0/1 masks."""
import re

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
        f'ISIC2018Dataset: split file {split} lists 2 ids more than once: '
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


def test_a_mask_of_another_size_than_its_image_is_refused(tiny_isic, tmp_path):
    # Resize scales image and mask each to the crop size, so a transposed
    # mask (or one that fits the stored pixels of an image its EXIF
    # orientation turns) was stretched over its image: train.py trained on
    # it, exit 0; test.py blamed the test pipeline's LoadAnnotations.
    import shutil

    import cv2
    from conftest import run_tool_in_process, write_tiny_config
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    from PIL import Image

    # MaskSizeError is one; the tools report it as one ERROR line.
    from mmseg_dsnet.datasets.sample_checks import MaskValueError
    register_all_modules()
    data = tmp_path / 'data'
    shutil.copytree(tiny_isic, data)
    first, second = (data / 'splits' /
                     'lightweight_train.txt').read_text().split()[:2]
    mask = data / 'masks' / f'{first}.png'
    labels = cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)  # 48x64 (HxW)
    cv2.imwrite(str(mask), np.ascontiguousarray(labels.T))
    cfg = write_tiny_config(tmp_path / 'tiny.py', data, epochs=1)
    run = run_tool_in_process('tools/train.py', cfg, '--work-dir',
                              tmp_path / 'work')
    assert run.returncode == 2, run.output[-2000:]
    errors = [line for line in run.output.splitlines()
              if line.startswith('ERROR:')]
    assert errors == [
        f'ERROR: ISIC2018Dataset: 1 of 11 masks listed in {data}/splits/'
        'lightweight_train.txt is not the size of their image (Resize would '
        'stretch such a mask over its image in training, and a test cannot '
        'score it):']
    assert (f'  {mask}: 48x64 (width x height), but its image '
            f'{data}/images/{first}.jpg is 64x48 as loaded') in run.output
    assert 'python tools/dataset_converters/isic.py RAW_DIR DATA_ROOT' in \
        run.output
    assert not list((tmp_path / 'work').rglob('*.pth'))
    cv2.imwrite(str(mask), labels)

    def build(**kwargs):
        return DATASETS.build(dict(
            dict(type='ISIC2018Dataset', data_root=str(data),
                 ann_file='splits/lightweight_train.txt',
                 data_prefix=dict(img_path='images', seg_map_path='masks'),
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='LoadAnnotations')]), **kwargs))

    # The image's EXIF orientation turns it (OpenCV applies it) but not its
    # mask, which fits the stored pixels.
    image = data / 'images' / f'{second}.jpg'
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(image).save(image, exif=exif.tobytes())
    with pytest.raises(MaskValueError) as info:
        build()
    assert type(info.value).__name__ == 'MaskSizeError'
    assert (f'{second}.png: 64x48 (width x height), but its image {image} is '
            '48x64 as loaded (stored 64x48, turned by its EXIF orientation 6)'
            '; the mask fits the stored pixels, which the loader turns') in \
        str(info.value)
    # A loader that keeps the stored pixels, or no check: the pair fits.
    def turned_sample(dataset):
        paths = [dataset.get_data_info(i)['img_path']
                 for i in range(len(dataset))]
        return dataset[paths.index(str(image))]

    sample = turned_sample(build(pipeline=[
        dict(type='LoadImageFromFile', color_type='color_ignore_orientation'),
        dict(type='LoadAnnotations')]))
    assert sample['img'].shape[:2] == sample['gt_seg_map'].shape == (48, 64)
    assert len(build(check_masks=False)) == 11
    # A mask turned upright with its image passes.
    upright = np.ascontiguousarray(
        np.rot90(cv2.imread(str(data / 'masks' / f'{second}.png'),
                            cv2.IMREAD_UNCHANGED), -1))
    cv2.imwrite(str(data / 'masks' / f'{second}.png'), upright)
    sample = turned_sample(build())
    assert sample['img'].shape[:2] == sample['gt_seg_map'].shape == (64, 48)
    # A grayscale loader turns the image too (OpenCV applies the EXIF
    # orientation to any reading but color_ignore_orientation's).
    sample = turned_sample(build(pipeline=[
        dict(type='LoadImageFromFile', color_type='grayscale'),
        dict(type='LoadAnnotations')]))
    assert sample['img'].shape[:2] == sample['gt_seg_map'].shape == (64, 48)


@pytest.mark.parametrize('indices, fault', [
    (0, ' selects no image; give the number of images to use, or remove '
     'the option'),
    ([], ' selects no image'),
    (7, ' asks for more images than there are; give at most 6, or remove '
     'the option to use them all'),
    (-7, ' asks for more images than there are; give at most 6, or remove '
     'the option to use them all'),
    ([0, 6], ': positions 6 are not in the split (0 to 5)'),
    ([-1], ': positions -1 are not in the split (0 to 5)'),
    ([0, '1'], ": positions '1' are not in the split (0 to 5)"),
    ([0, 6, 7, 8, 9, 10, 11], ': positions 6, 7, 8, 9, 10, ... (1 more) are '
     'not in the split (0 to 5)'),
    ([1, 2, 1], ' repeats positions 1: those images would be scored (or '
     'trained on) more than once'),
    (True, ': give a number of images N (the first N; -N: the last N) or a '
     'list of positions'),
])
def test_indices_that_select_no_subset_are_refused(tiny_isic, indices,
                                                   fault):
    """``--cfg-options test_dataloader.dataset.indices=0`` ended in
    mmengine's ValueError traceback (``need at least one array to
    concatenate``) after the runner was built; a position past the end in
    an IndexError; a repeated one was scored twice."""
    import mmseg_dsnet  # noqa: F401
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.utils.errors import UserError
    register_all_modules()
    split = tiny_isic / 'splits' / 'official_test.txt'

    def build(indices):
        return DATASETS.build(
            dict(type='ISIC2018Dataset', data_root=str(tiny_isic),
                 ann_file=str(split), indices=indices,
                 data_prefix=dict(img_path='images', seg_map_path='masks'),
                 pipeline=[]))

    with pytest.raises(UserError) as info:
        build(indices)
    assert str(info.value) == (f'ISIC2018Dataset: indices={indices!r} '
                               f'({split} lists 6 images){fault}')
    # What mmengine documents still works: the first N, the last N, a list.
    assert len(build(6)) == 6 and len(build(-2)) == 2
    assert len(build([5, 0])) == 2


def test_test_tool_refuses_indices_0_with_one_error_line(tiny_config,
                                                         tmp_path):
    from conftest import run_tool_in_process
    from test_user_error_exits import random_checkpoint
    ckpt = random_checkpoint(str(tiny_config), tmp_path / 'model.pth')
    run = run_tool_in_process('tools/test.py', tiny_config, ckpt,
                              '--work-dir', tmp_path / 'w', '--cfg-options',
                              'test_dataloader.dataset.indices=0')
    assert run.returncode == 2, run.output[-3000:]
    assert 'Traceback' not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith('ERROR: ISIC2018Dataset: indices=0 (') and \
        last.endswith('selects no image; give the number of images to use, '
                      'or remove the option'), last
    assert not (tmp_path / 'w' / 'test_metrics.json').exists()


def _checkpoint_and_work_dirs(tiny_config, tmp_path):
    """A checkpoint of ``tiny_config``'s model, a work dir holding a
    training's dump of that config (the file test.py's runner would
    replace) and a work dir without one."""
    from test_user_error_exits import random_checkpoint
    ckpt = random_checkpoint(str(tiny_config), tmp_path / 'model.pth')
    trained, fresh = tmp_path / 'trained', tmp_path / 'fresh'
    trained.mkdir()
    dump = trained / tiny_config.name
    dump.write_text('# the training run\'s config\n')
    return ckpt, trained, fresh, dump


def test_a_failed_test_leaves_the_work_dirs_config_dump_as_it_was(
        tiny_config, tmp_path):
    """test.py's runner dumps its config over the work dir's root dump,
    which ``leaderboard.py collect`` reads as the training config: after a
    refused ``--cfg-options test_dataloader.dataset.indices=0`` a later
    collect recorded 0 test images, exit 0. Now the dump is put back (and
    one that was not there is not left), and the refused run's log folder
    is removed."""
    from conftest import run_tool_in_process

    from mmseg_dsnet.leaderboard.work_dir import find_runs
    ckpt, trained, fresh, dump = _checkpoint_and_work_dirs(tiny_config,
                                                           tmp_path)
    for work_dir in (trained, fresh):
        run = run_tool_in_process('tools/test.py', tiny_config, ckpt,
                                  '--work-dir', work_dir, '--cfg-options',
                                  'test_dataloader.dataset.indices=0')
        assert dump.read_text() == '# the training run\'s config\n'
        assert not (fresh / tiny_config.name).exists()
        assert run.returncode == 2, run.output[-3000:]
        assert find_runs(str(work_dir)) == ([], [])
    assert not list(fresh.glob('*.json')) and not list(trained.glob('*.json'))


def test_classes_that_would_relabel_the_masks_are_refused(
        tiny_isic, tmp_path, capsys):
    """mmseg maps every mask to the order of the ``metainfo`` classes:
    ``classes=('lesion', 'background')`` swapped lesion and background in
    training and testing, exit 0; ``reduce_zero_label=True`` was a
    TypeError traceback."""
    import mmseg_dsnet  # noqa: F401
    from conftest import load_tool, run_cli, write_tiny_config
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.utils.errors import UserError
    register_all_modules()

    def build(**kwargs):
        return DATASETS.build(dict(
            type='ISIC2018Dataset', data_root=str(tiny_isic),
            ann_file='splits/official_test.txt',
            data_prefix=dict(img_path='images', seg_map_path='masks'),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations')], **kwargs))

    for classes in (('lesion', 'background'), ('lesion', ), ['background',
                                                             'Lesion']):
        with pytest.raises(UserError, match=r"metainfo classes must be "
                           r"\('background', 'lesion'\)"):
            build(metainfo=dict(classes=classes))
    with pytest.raises(UserError, match='reduce_zero_label=True'):
        build(reduce_zero_label=True)
    # The masks' own classes, in their order, are read as they are.
    sample = build(metainfo=dict(classes=['background', 'lesion']),
                   reduce_zero_label=False)[0]
    mask = np.array(__import__('PIL.Image').Image.open(
        sample['seg_map_path']))
    np.testing.assert_array_equal(sample['gt_seg_map'], mask)
    # train.py refuses either before the runner makes its run folder.
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    work = tmp_path / 'work'
    for option, message in (
            ('train_dataloader.dataset.metainfo.classes=[lesion,background]',
             "ERROR: ISIC2018Dataset: metainfo classes must be "
             "('background', 'lesion') (the labels 0 and 1 of the masks), "
             "got ('lesion', 'background')"),
            ('val_dataloader.dataset.reduce_zero_label=True',
             'ERROR: val_dataloader.dataset.reduce_zero_label=True does not '
             'fit the ISIC masks')):
        code, err = run_cli(load_tool('train.py').main, [
            config, '--work-dir', work, '--cfg-options', option], capsys)
        assert code == 2 and err.startswith(message), err
        assert not work.exists()


def test_a_data_prefix_without_a_mask_folder_is_refused(tiny_isic):
    """A data_prefix without seg_map_path, with a pipeline that loads masks,
    failed at the first sample with a KeyError 'seg_map_path' traceback
    (after the run had started); seg_map_path=None was mmengine's
    TypeError traceback."""
    import mmseg_dsnet  # noqa: F401
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.datasets.flip_tta_pipeline import flip_tta_pipeline
    from mmseg_dsnet.engine.cli_errors import describe_user_error
    from mmseg_dsnet.utils.errors import UserError
    register_all_modules()
    test_pipeline = [dict(type='LoadImageFromFile'),
                     dict(type='Resize', scale=(64, 64), keep_ratio=False),
                     dict(type='LoadAnnotations'),
                     dict(type='PackSegInputs')]

    def build(data_prefix, pipeline=test_pipeline):
        return DATASETS.build(dict(
            type='ISIC2018Dataset', data_root=str(tiny_isic),
            ann_file='splits/official_test.txt', data_prefix=data_prefix,
            pipeline=pipeline))

    for pipeline in (test_pipeline, flip_tta_pipeline(test_pipeline)):
        with pytest.raises(UserError) as info:
            build(dict(img_path='images'), pipeline)
        assert describe_user_error(info.value) == (
            'ISIC2018Dataset: data_prefix has no seg_map_path (the masks '
            'folder), but the pipeline loads masks (LoadAnnotations); set '
            "data_prefix=dict(img_path='images', seg_map_path='masks'), or "
            'segment unlabelled images with tools/infer.py.')
    with pytest.raises(UserError, match=r'data_prefix.seg_map_path must be '
                       r'a folder under data_root .*got None'):
        build(dict(img_path='images', seg_map_path=None))
    # Images alone, for a pipeline that loads no mask.
    dataset = build(dict(img_path='images'),
                    test_pipeline[:2] + test_pipeline[3:])
    assert dataset[0]['inputs'].shape[-2:] == (64, 64)


def test_a_split_file_with_a_byte_order_mark_is_refused(tiny_isic, tmp_path):
    """Notepad's UTF-8 byte-order mark was read as part of the first id:
    `images/\\ufeffISIC_... .jpg: missing`, though the image is there.
    Windows line endings and blank lines are read as they are."""
    import shutil

    import mmseg_dsnet  # noqa: F401
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.datasets.split_files import split_ids
    from mmseg_dsnet.utils.errors import UserError
    register_all_modules()
    root = tmp_path / 'root'
    shutil.copytree(tiny_isic, root)
    ids = (root / 'splits' / 'official_test.txt').read_text().split()

    def build(text):
        (root / 'splits' / 'mine.txt').write_bytes(text)
        return DATASETS.build(dict(
            type='ISIC2018Dataset', data_root=str(root),
            ann_file='splits/mine.txt',
            data_prefix=dict(img_path='images', seg_map_path='masks'),
            pipeline=[]))

    lines = '\r\n'.join(ids[:2]).encode() + b'\r\n\r\n'
    assert len(build(lines)) == 2
    with pytest.raises(UserError, match=r'split file .*mine.txt starts with '
                       'a UTF-8 byte-order mark'):
        build(b'\xef\xbb\xbf' + lines)
    # UTF-16 (Notepad's "Unicode", with or without its mark), Latin-1:
    # UnicodeDecodeError or "embedded null byte" tracebacks.
    text = '\r\n'.join(ids[:2])
    for encoded in (text.encode('utf-16'), text.encode('utf-16-le'),
                    (text + '\né').encode('latin-1')):
        with pytest.raises(UserError, match=r'split file .*mine.txt is not '
                           'UTF-8 text'):
            build(encoded)
        # The tools' training-image checks read it first.
        with pytest.raises(UserError, match=r'^Split file .*mine.txt is not '
                           'UTF-8 text'):
            split_ids(str(root / 'splits' / 'mine.txt'))


def test_a_palette_mask_is_checked_by_the_indices_mmseg_loads(tmp_path):
    """A palette PNG mask of indices 0/1 (VOC style: black and dark red)
    was refused at load as ``3 channels (a colour image)`` (OpenCV shows
    its colours), though mmseg's LoadAnnotations (Pillow) trains on its
    indices; its 0/255 indices are still refused, and so is any palette
    mask when LoadAnnotations decodes with OpenCV."""
    import mmcv
    from PIL import Image

    from mmseg_dsnet.datasets.sample_checks import check_masks
    labels = np.zeros((12, 16), np.uint8)
    labels[3:8, 4:10] = 1
    paths = []
    for name, indices in (('p01.png', labels), ('p0255.png', labels * 255)):
        picture = Image.fromarray(indices, mode='P')
        picture.putpalette([0, 0, 0, 128, 0, 0] + [0, 0, 0] * 253 +
                           [255, 255, 255])
        picture.save(tmp_path / name)
        paths.append(str(tmp_path / name))
    loaded = mmcv.imfrombytes(open(paths[0], 'rb').read(), flag='unchanged',
                              backend='pillow')
    assert np.array_equal(loaded, labels)  # what LoadAnnotations trains on
    bad, unreadable = check_masks(paths)
    assert unreadable == []
    assert bad == [(paths[1], 'values {0, 255}: an unconverted 0/255 mask '
                    '(the lesion would be learned as "ignore")')]
    bad, _ = check_masks(paths, palette_indices=False)
    assert [path for path, _ in bad] == paths
    assert '3 channels (a colour image)' in bad[0][1]


def test_a_palette_mask_is_checked_as_the_pipelines_loader_reads_it(
        tiny_isic, tmp_path):
    """A dataset checks a palette mask (indices 0/1, black and dark red)
    as its pipeline's LoadAnnotations decodes it: by its indices with the
    default Pillow backend (it loads), by its colours with OpenCV, which
    trains on 3 colour channels (refused)."""
    import shutil

    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    from PIL import Image

    from mmseg_dsnet.datasets.sample_checks import MaskValueError
    register_all_modules()
    data = tmp_path / 'data'
    shutil.copytree(tiny_isic, data)
    first = (data / 'splits' / 'official_test.txt').read_text().split()[0]
    mask = data / 'masks' / f'{first}.png'
    picture = Image.fromarray(np.asarray(Image.open(mask)), mode='P')
    picture.putpalette([0, 0, 0, 128, 0, 0])
    picture.save(mask)

    def build(**load):
        return DATASETS.build(dict(
            type='ISIC2018Dataset', data_root=str(data),
            ann_file='splits/official_test.txt',
            data_prefix=dict(img_path='images', seg_map_path='masks'),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations', **load)]))

    assert len(build()) == 6
    with pytest.raises(MaskValueError, match=r'1 of 6 masks listed in .* '
                       r'does not hold 0/1 labels:\n  .*: 3 channels '
                       r'\(a colour image\)'):
        build(imdecode_backend='cv2')


def test_the_size_check_turns_a_tiff_by_its_orientation_once(tmp_path):
    """Pillow reports a TIFF's size already turned by its EXIF orientation,
    and the size check turned it again: the mask of the upright image (as
    mmcv loads it) was refused, one of the stored pixels accepted, and
    training stretched it over the turned image, exit 0."""
    import mmcv
    from PIL import Image

    from mmseg_dsnet.datasets.sample_checks import check_sizes
    image = tmp_path / 'o6.tif'
    # Stored 24 wide and 32 high; orientation 6 turns it 32 wide, 24 high.
    Image.fromarray(np.zeros((32, 24, 3), np.uint8)).save(
        image, tiffinfo={274: 6})
    assert mmcv.imfrombytes(image.read_bytes(),
                            flag='color').shape[:2] == (24, 32)
    upright, stored = tmp_path / 'upright.png', tmp_path / 'stored.png'
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(upright)
    Image.fromarray(np.zeros((32, 24), np.uint8)).save(stored)
    assert check_sizes([(str(image), str(upright))]) == []
    assert check_sizes([(str(image), str(stored))]) == [(
        str(stored), f'24x32 (width x height), but its image {image} is '
        '32x24 as loaded (stored 24x32, turned by its EXIF orientation 6); '
        'the mask fits the stored pixels, which the loader turns')]


def _skipping_dataset(root, max_refetch):
    import mmseg_dsnet  # noqa: F401
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules()
    return DATASETS.build(
        dict(type='ISIC2018Dataset', data_root=str(root),
             ann_file='splits/lightweight_train.txt',
             data_prefix=dict(img_path='images', seg_map_path='masks'),
             on_bad_sample='skip', max_refetch=max_refetch,
             pipeline=[dict(type='LoadImageFromFile'),
                       dict(type='LoadAnnotations'),
                       dict(type='PackSegInputs')]))


def test_a_bad_sample_is_replaced_by_the_next_good_one(tiny_isic, tmp_path):
    """Which sample stands in for a bad one (the next, wrapping round),
    what it records (the bad sample drawn, not the bad stand-ins tried) and
    how many tries max_refetch allows (mutation testing)."""
    import shutil

    from mmseg_dsnet.datasets.sample_checks import (SKIPPED_KEY,
                                                    BadSampleError)
    root = tmp_path / 'isic'
    shutil.copytree(tiny_isic, root)
    dataset = _skipping_dataset(root, max_refetch=2)
    paths = [dataset.get_data_info(i)['img_path']
             for i in range(len(dataset))]
    for index in (2, 3, len(paths) - 1):
        with open(paths[index], 'wb') as file:
            file.write(b'not a jpeg')
    sample = dataset[2]['data_samples']
    assert sample.img_path == paths[4]
    assert sample.metainfo[SKIPPED_KEY] == [paths[2]]
    sample = dataset[len(paths) - 1]['data_samples']
    assert sample.img_path == paths[0]
    assert sample.metainfo[SKIPPED_KEY] == [paths[-1]]
    assert SKIPPED_KEY not in dataset[1]['data_samples'].metainfo
    # Two bad samples in a row need two refetches.
    dataset = _skipping_dataset(root, max_refetch=1)
    with pytest.raises(BadSampleError, match='more than 1 bad samples in a '
                       f'row \\(first: {paths[2]}\\)'):
        dataset[2]
    assert dataset[3]['data_samples'].img_path == paths[4]


def test_masks_of_another_converted_set_are_refused(tiny_isic, tmp_path):
    """Every converted set names its images ISIC_0000000 ...: a mask folder
    of another set of the same size (an absolute seg_map_path) passed the
    value and size checks, and its masks were paired by id with this set's
    images (wrong figures, exit 0); another set's split file chose the
    images scored."""
    import shutil

    import mmseg_dsnet  # noqa: F401
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    from PIL import Image

    from mmseg_dsnet.utils.errors import UserError
    register_all_modules()
    other = tmp_path / 'other'
    shutil.copytree(tiny_isic, other)
    for mask in (other / 'masks').iterdir():  # another set's lesions
        Image.fromarray(1 - np.asarray(Image.open(mask))).save(mask)

    def build(masks, split='splits/lightweight_test.txt'):
        return DATASETS.build(dict(
            type='ISIC2018Dataset', data_root=str(tiny_isic),
            ann_file=split,
            data_prefix=dict(img_path='images', seg_map_path=masks),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations'),
                      dict(type='PackSegInputs')]))

    with pytest.raises(UserError) as info:
        build(str(other / 'masks'))
    assert str(info.value).startswith(
        f'ISIC2018Dataset: the images ({tiny_isic}/images) and the split '
        'file ({0}/splits/lightweight_test.txt) from {0}; the masks '
        '({1}/masks) from {1}: 2 converted sets'.format(tiny_isic, other))
    # Another set's split file chose which images were scored.
    with pytest.raises(UserError, match=r'the split file \(.*other/splits/'
                       r'lightweight_test.txt\) from .*other: 2 converted'):
        build('masks', str(other / 'splits/lightweight_test.txt'))
    # The set's own masks, however they are named, are read.
    names = (tiny_isic / 'splits/lightweight_test.txt').read_text().split()
    for masks in ('masks', str(tiny_isic / 'masks'), '../isic2018/masks/'):
        assert len(build(masks)) == len(names)
    # So are masks and split files outside any converted set (the user's).
    shutil.copytree(other / 'masks', tmp_path / 'redrawn' / 'masks')
    assert len(build(str(tmp_path / 'redrawn' / 'masks'))) == len(names)
    shutil.copytree(other / 'splits', tmp_path / 'mine' / 'splits')
    assert len(build('masks', str(tmp_path / 'mine/splits/'
                                  'lightweight_test.txt'))) == len(names)


def test_one_converted_set_reached_by_a_link_is_one_set(tiny_isic, tmp_path):
    """A data_root that is a link to a converted set, with masks named by
    the set's real folder, reads one set: its samples are built."""
    import mmseg_dsnet  # noqa: F401
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules()
    link = tmp_path / 'linked'
    link.symlink_to(tiny_isic, target_is_directory=True)
    dataset = DATASETS.build(dict(
        type='ISIC2018Dataset', data_root=str(link),
        ann_file='splits/lightweight_test.txt',
        data_prefix=dict(img_path='images',
                         seg_map_path=str(tiny_isic / 'masks')),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations'),
                  dict(type='PackSegInputs')]))
    names = (tiny_isic / 'splits/lightweight_test.txt').read_text().split()
    assert len(dataset) == len(names)


def test_a_config_dump_identical_to_the_tests_is_not_said_kept(
        tiny_config, tmp_path):
    """A second identical ``test.py CONFIG CKPT --work-dir W`` found the
    first test's dump at ``W/<config name>``, identical to its own, and
    printed ``Kept W/x.py as it was (this test's config is in the run's log
    folder ...)`` as if the root dump were another config. Now that line
    is printed only where the runner's dump differed (and was put back)."""
    from conftest import run_tool_in_process
    ckpt, _, fresh, _ = _checkpoint_and_work_dirs(tiny_config, tmp_path)
    dump = fresh / tiny_config.name
    for _ in range(2):
        run = run_tool_in_process('tools/test.py', tiny_config, ckpt,
                                  '--work-dir', fresh)
        assert run.returncode == 0, run.output[-3000:]
        assert 'Kept ' not in run.output, run.output[-3000:]
    first = dump.read_text()
    assert 'load_from' in first
    other = run_tool_in_process('tools/test.py', tiny_config, ckpt,
                                '--work-dir', fresh, '--cfg-options',
                                'test_dataloader.dataset.indices=1')
    assert other.returncode == 0, other.output[-3000:]
    assert f'Kept {dump} as it was' in other.output
    assert dump.read_text() == first


def test_a_passed_test_keeps_the_file_its_config_dump_would_replace(
        tiny_config, tmp_path):
    """test.py's runner dumps its config to ``<work_dir>/<config name>``:
    after a passed test in a training's work dir (or one holding the
    user's own file of that name) that file was replaced by the test's
    config (its ``--cfg-options`` and ``load_from`` baked in), exit 0. Now
    the file is kept and the test's config is in its log folder; a work
    dir without one gets the dump, as before."""
    from conftest import run_tool_in_process
    ckpt, trained, fresh, dump = _checkpoint_and_work_dirs(tiny_config,
                                                           tmp_path)
    for work_dir in (trained, fresh):
        run = run_tool_in_process('tools/test.py', tiny_config, ckpt,
                                  '--work-dir', work_dir, '--cfg-options',
                                  'test_dataloader.dataset.indices=1')
        assert run.returncode == 0, run.output[-3000:]
        # A dump of its own (no file there before) is not one kept.
        assert ('Kept ' in run.output) == (work_dir == trained)
    assert dump.read_text() == '# the training run\'s config\n'
    assert f'Kept {dump} as it was' in run_tool_in_process(
        'tools/test.py', tiny_config, ckpt, '--work-dir', trained).output
    assert dump.read_text() == '# the training run\'s config\n'
    assert 'indices=1' in (fresh / tiny_config.name).read_text()


def test_a_test_loader_that_repeats_images_is_refused(tiny_config,
                                                      tiny_isic, tmp_path):
    """A test loader whose dataset gives an image more than once (a
    ``RepeatDataset``; a ``ConcatDataset`` of two splits sharing images,
    ``official_val`` and ``lightweight_test``): each copy was scored,
    ``LesionMetric over 6 images`` for a split of 2 and ``"images": 6`` in
    test_metrics.json, exit 0. Refused before any image is scored."""
    from conftest import run_tool_in_process
    from test_user_error_exits import random_checkpoint
    ckpt = random_checkpoint(str(tiny_config), tmp_path / 'model.pth')
    shared = sorted(
        set((tiny_isic / 'splits' / 'official_val.txt').read_text().split())
        & set((tiny_isic / 'splits' / 'lightweight_test.txt').read_text()
              .split()))
    assert shared
    config = tmp_path / 'val_and_test.py'
    split = ("dict(type='ISIC2018Dataset', data_root='{root}', "
             "ann_file='splits/{name}.txt', data_prefix=dict(img_path="
             "'images', seg_map_path='masks'), pipeline="
             "{{{{_base_.test_pipeline}}}})")
    config.write_text(
        f"_base_ = ['{tiny_config}']\n"
        "test_dataloader = dict(dataset=dict(_delete_=True, "
        "type='ConcatDataset', datasets=[" + ', '.join(
            split.format(root=tiny_isic, name=name)
            for name in ('lightweight_test', 'official_val')) + "]))\n")
    work = tmp_path / 'w'
    run = run_tool_in_process('tools/test.py', config, ckpt, '--work-dir',
                              work)
    assert run.returncode == 2, run.output[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f'ERROR: test_dataloader would score {len(shared)} images more '
        'than once ('), last
    assert f'{tiny_isic}/images/{shared[0]}.jpg (2 times)' in last
    assert last.endswith('Score each image once; nothing was scored.')
    assert not (work / 'test_metrics.json').exists()
    # The split alone is scored.
    fine = run_tool_in_process('tools/test.py', tiny_config, ckpt,
                               '--work-dir', tmp_path / 'fine')
    assert fine.returncode == 0, fine.output[-3000:]


@pytest.mark.parametrize('tool', ['train', 'fast_train', 'threshold_sweep',
                                  'error_by_position'])
def test_a_scored_loader_that_repeats_images_is_refused_before_the_run(
        tiny_config, tiny_isic, tmp_path, tool):
    """Validation during training (``train.py``, ``fast_train.py
    --val-interval``) on a ``RepeatDataset`` scored each copy (``Epoch(val)
    [1][15/15]`` for a split of 5) and chose the best checkpoint by those
    figures, exit 0; ``threshold_sweep.py`` and ``error_by_position.py``
    scored every copy before failing with a traceback. Refused before
    anything is run or written."""
    from conftest import run_tool_in_process
    from test_user_error_exits import random_checkpoint
    split = tiny_isic / 'splits' / 'lightweight_test.txt'
    ids = split.read_text().split()
    config = tmp_path / 'repeated.py'
    loader = 'test_dataloader' if tool in ('threshold_sweep',
                                           'error_by_position') else \
        'val_dataloader'
    config.write_text(
        f"_base_ = ['{tiny_config}']\n"
        f"{loader} = dict(dataset=dict(_delete_=True, type='RepeatDataset', "
        "times=2, dataset=dict(type='ISIC2018Dataset', data_root="
        f"'{tiny_isic}', ann_file='splits/lightweight_test.txt', "
        "data_prefix=dict(img_path='images', seg_map_path='masks'), "
        "pipeline={{_base_.test_pipeline}})))\n")
    work = tmp_path / 'work'
    if tool in ('train', 'fast_train'):
        script = f'tools/{tool}.py'
        argv = [config, '--work-dir', work] + (
            ['--device', 'cpu', '--val-interval', 1]
            if tool == 'fast_train' else ['--no-synthetic-fallback'])
    else:
        script = f'tools/analysis_tools/{tool}.py'
        argv = [config, random_checkpoint(str(tiny_config),
                                          tmp_path / 'model.pth'),
                '--out', work / 'out.json'] + (
            ['--thresholds', 0.5, 0.4, '--allow-test-split'] if tool == 'threshold_sweep'
            else ['--allow-training-images'])
    run = run_tool_in_process(script, *argv)
    assert run.returncode == 2, run.output[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f'ERROR: {loader} would score {len(ids)} images more than once '
        f'({2 * len(ids)} samples of {len(ids)} images: {tiny_isic}/images/'
        f'{sorted(ids)[0]}.jpg (2 times), '), last
    assert last.endswith(
        'a RepeatDataset or a ConcatDataset of splits that share images; '
        'each would weigh that many times in the pooled figures. Score each '
        'image once; nothing was scored.'), last
    assert not work.exists()


def test_one_image_under_two_spellings_of_its_path_is_refused(tmp_path):
    """Two splits read through two spellings of one folder (``data/isic``
    and ``./data/isic/``, or a link to it) give one image under two paths:
    each copy was scored. The paths are compared as files."""
    from mmseg_dsnet.evaluation.lesion_metric import check_each_image_once
    from mmseg_dsnet.utils.errors import UserError
    images = tmp_path / 'images'
    images.mkdir()
    (images / 'a.jpg').write_bytes(b'a')
    (images / 'b.jpg').write_bytes(b'b')
    (tmp_path / 'link').symlink_to(images)
    check_each_image_once([str(images / 'a.jpg'), str(images / 'b.jpg')])
    with pytest.raises(UserError, match=re.escape(
            f'test_dataloader would score 1 image more than once (2 '
            f'samples of 1 image: {images}/a.jpg (2 times))')):
        check_each_image_once([str(images / 'a.jpg'),
                               str(tmp_path / 'link' / 'a.jpg')])
    # The most repeated first.
    with pytest.raises(UserError, match=re.escape(
            f'images: {images}/b.jpg (3 times), {images}/a.jpg (2 times))')):
        check_each_image_once([str(images / name)
                               for name in ('a.jpg', 'b.jpg') * 2] +
                              [str(images / 'b.jpg')])


def test_each_scored_loader_is_checked_for_repeated_images(tiny_config,
                                                           tiny_isic):
    """``check_images_scored_once`` over several loaders (``fast_train.py
    --val-interval N --test``) checks each that has a dataset: a first
    loader without one (``val_dataloader=None``) leaves the next checked."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import check_images_scored_once
    from mmseg_dsnet.utils.errors import UserError
    cfg = Config.fromfile(str(tiny_config))
    cfg.val_dataloader = None
    check_images_scored_once(cfg, ('val_dataloader', 'test_dataloader'))
    cfg.test_dataloader.dataset = dict(type='RepeatDataset', times=2,
                                       dataset=cfg.test_dataloader.dataset)
    with pytest.raises(UserError, match='^test_dataloader would score '):
        check_images_scored_once(cfg, ('val_dataloader', 'test_dataloader'))


def test_a_missing_file_names_what_lies_in_its_place(tiny_isic, tmp_path):
    """A split file edited by hand lists ``ISIC_x.jpg`` (the id with its
    extension), and a photo copied from a Windows disk is ``ISIC_y.JPG``:
    each was listed as ``images/ISIC_x.jpg.jpg: missing`` or
    ``images/ISIC_y.jpg: missing`` though the file is there, with advice
    to skip such samples. The message now says what lies there."""
    import shutil

    import mmseg_dsnet  # noqa: F401
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.datasets.sample_checks import BadSampleError
    register_all_modules()
    root = tmp_path / 'root'
    shutil.copytree(tiny_isic, root)
    a, b, c, d = (root / 'splits' /
                  'official_test.txt').read_text().split()[:4]
    (root / 'images' / f'{b}.jpg').rename(root / 'images' / f'{b}.JPG')
    # A byte-order mark inside the file: two files joined into one.
    (root / 'splits' / 'mine.txt').write_text(
        f'{a}.jpg\r\n{b}\r\n{c}\r\n\ufeff{d}\r\n', encoding='utf-8')
    with pytest.raises(BadSampleError) as info:
        DATASETS.build(dict(
            type='ISIC2018Dataset', data_root=str(root),
            ann_file='splits/mine.txt',
            data_prefix=dict(img_path='images', seg_map_path='masks'),
            pipeline=[]))
    lines = str(info.value).splitlines()
    assert f'  {root}/images/{a}.jpg.jpg: missing: the split file lists ' \
        f'the id {a}.jpg with its extension; list it as {a}' in lines
    assert f'  {root}/masks/{a}.jpg.png: missing: the split file lists ' \
        f'the id {a}.jpg with its extension; list it as {a}' in lines
    assert f'  {root}/images/{b}.jpg: missing: {b}.JPG is there, named in ' \
        f'another case (file names tell case apart here); rename it to ' \
        f'{b}.jpg' in lines
    assert f'  {root}/images/\ufeff{d}.jpg: missing: the split file lists ' \
        f"the id '\\ufeff{d}', which holds the invisible character U+FEFF; " \
        'remove it' in lines
    assert not any(c in line for line in lines)
