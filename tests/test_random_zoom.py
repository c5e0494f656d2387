"""RandomZoom: a crop relative to the picture, resized back, image and mask
alike."""
import numpy as np
import pytest
from conftest import REPO


def build_zoom(**kwargs):
    import mmseg_dsnet  # noqa: F401
    from mmseg.registry import TRANSFORMS
    return TRANSFORMS.build(dict(type='RandomZoom', **kwargs))


def position_coded_sample(height=96, width=128):
    """An image whose first channel is the column, second the row; a mask
    that is 1 right of the middle, with the ignore index in one corner."""
    columns, rows = np.meshgrid(np.arange(width), np.arange(height))
    img = np.stack([columns, rows, np.zeros_like(rows)], -1).astype(np.uint8)
    mask = (columns >= width // 2).astype(np.uint8)
    mask[:4, :4] = 255
    return dict(img=img, gt_seg_map=mask, seg_fields=['gt_seg_map'])


def test_zoom_crops_a_window_of_the_drawn_size_and_resizes_it_back():
    zoom = build_zoom(prob=1.0, max_zoom=2.0)
    np.random.seed(0)
    spans = []
    for _ in range(20):
        sample = position_coded_sample()
        out = zoom(sample)
        assert out['img'].shape == (96, 128, 3)
        assert out['gt_seg_map'].shape == (96, 128)
        # Labels keep their values (nearest neighbour), no blend of 0/1/255.
        assert set(np.unique(out['gt_seg_map'])) <= {0, 1, 255}
        column_span = int(out['img'][..., 0].max()) - int(
            out['img'][..., 0].min())
        row_span = int(out['img'][..., 1].max()) - int(out['img'][..., 1].min())
        # A window 1/z of each side, the same z for both: width 128/z,
        # height 96/z, so the spans keep the picture's 4:3.
        assert 128 / 2 - 2 <= column_span <= 127
        assert column_span == pytest.approx(row_span * 128 / 96, abs=3)
        # The mask moved with the image: lesion exactly where the source
        # column is right of the middle (away from the resampled border).
        source_column = out['img'][..., 0].astype(int)
        lesion = out['gt_seg_map'] == 1
        assert not lesion[source_column <= 62].any()
        assert lesion[source_column >= 66].all()
        spans.append(column_span)
    # The zoom is drawn: not every window has the same size, and uniformly
    # over [1, 2]: of 20 draws some window is near half the width (zoom
    # near 2), some near the whole of it (zoom near 1).
    assert len(set(spans)) > 5
    assert min(spans) < 128 / 1.8 and max(spans) > 128 / 1.2


def test_the_image_is_resized_smoothly_and_the_labels_not():
    """The window is resized back bilinearly (a ramp of even values gets
    odd ones in between), the label maps by nearest neighbour (their
    values stay those of the window)."""
    zoom = build_zoom(prob=1.0, max_zoom=2.0)
    np.random.seed(0)
    columns = np.tile(np.arange(128) * 2, (96, 1))
    for _ in range(5):
        out = zoom(dict(img=np.stack([columns] * 3, -1).astype(np.uint8),
                        gt_seg_map=(columns // 2).astype(np.uint8),
                        seg_fields=['gt_seg_map']))
        assert (out['img'] % 2 == 1).any()
        assert set(np.unique(out['gt_seg_map'])) <= set(range(128))
        # Nearest neighbour: each output column holds one source column.
        assert (out['gt_seg_map'] == out['gt_seg_map'][:1]).all()


def test_every_window_place_is_drawn():
    """The window lies anywhere in the picture, touching either edge: on a
    10-pixel picture whose label codes its column, a window's label spans
    exactly the source columns it covers (nearest neighbour)."""
    zoom = build_zoom(prob=1.0, max_zoom=2.0)
    np.random.seed(0)
    columns, rows = np.meshgrid(np.arange(10), np.arange(10))
    column_windows, row_windows = set(), set()
    for _ in range(300):
        out = zoom(dict(img=np.stack([columns] * 3, -1).astype(np.uint8),
                        gt_seg_map=columns.astype(np.uint8),
                        rows_map=rows.astype(np.uint8),
                        seg_fields=['gt_seg_map', 'rows_map']))
        left, right = int(out['gt_seg_map'].min()), int(
            out['gt_seg_map'].max())
        # The image moved with the label.
        assert (int(out['img'][..., 0].min()), int(
            out['img'][..., 0].max())) == (left, right)
        column_windows.add((left, right))
        row_windows.add((int(out['rows_map'].min()),
                         int(out['rows_map'].max())))
    # Windows 5..10 pixels wide; for each width every place 0..10-width.
    for width in range(5, 11):
        for windows in (column_windows, row_windows):
            assert {first for first, last in windows
                    if last - first + 1 == width} == set(range(11 - width))


def test_defaults_zoom_half_the_samples_by_up_to_one_and_a_half():
    zoom = build_zoom()
    np.random.seed(0)
    spans = []
    for _ in range(200):
        out = zoom(position_coded_sample())
        span = int(out['img'][..., 0].max()) - int(out['img'][..., 0].min())
        if span < 127:
            spans.append(span)
    # prob 0.5: 200 samples, about 100 zoomed (binomial sd 7).
    assert 70 < len(spans) < 130
    # max_zoom 1.5: windows down to 128 / 1.5 columns, none narrower.
    assert 128 / 1.5 - 2 <= min(spans) < 128 / 1.45


def test_no_zoom_leaves_the_sample_as_it_was():
    np.random.seed(0)
    sample = position_coded_sample()
    expected_img = sample['img'].copy()
    expected_mask = sample['gt_seg_map'].copy()
    for zoom in (build_zoom(prob=0.0), build_zoom(prob=1.0, max_zoom=1.0)):
        out = zoom(dict(sample))
        np.testing.assert_array_equal(out['img'], expected_img)
        np.testing.assert_array_equal(out['gt_seg_map'], expected_mask)


@pytest.mark.parametrize('kwargs', [dict(prob=1.5), dict(prob=-0.1),
                                    dict(max_zoom=0.5),
                                    dict(max_zoom=float('nan')),
                                    # inf: numpy's OverflowError in the
                                    # first zoomed sample of training; a
                                    # string or None: a TypeError traceback.
                                    dict(max_zoom=float('inf')),
                                    dict(prob='0.5'), dict(max_zoom=None)])
def test_settings_that_mean_nothing_are_refused(kwargs):
    from mmseg_dsnet.utils.errors import UserError
    with pytest.raises(UserError, match='RandomZoom'):
        build_zoom(**kwargs)


@pytest.mark.parametrize('size', [128, 256])
def test_zoom_config_trains_at_any_input_size(size):
    """The round's config at check_real_data's --crop-size: every picture
    leaves the pipeline at the input size, zoomed or not."""
    import mmseg_dsnet  # noqa: F401
    from mmcv.transforms import Compose
    from mmengine.config import Config
    from mmseg.utils import register_all_modules
    from mmseg_dsnet.leaderboard.real_data_check import set_input_size
    register_all_modules()
    cfg = Config.fromfile(
        str(REPO / 'configs/dsnet/design/'
            'dsnet-design-deeper-eighth-zoom_isic2017.py'))
    set_input_size(cfg, size)
    steps = cfg.train_dataloader.dataset.pipeline
    assert [s['type'] for s in steps][2:4] == ['Resize', 'RandomZoom']
    # From the resize on: the loaders need files.
    pipeline = Compose(steps[2:])
    np.random.seed(1)
    for _ in range(6):
        sample = position_coded_sample(192, 256)
        sample['img_shape'] = sample['ori_shape'] = (192, 256)
        packed = pipeline(sample)
        assert tuple(packed['inputs'].shape) == (3, size, size)
        assert tuple(packed['data_samples'].gt_sem_seg.data.shape) == (
            1, size, size)


def test_a_zoom_before_the_masks_are_loaded_is_refused(tmp_path):
    """RandomZoom before LoadAnnotations zoomed the image but not the mask
    loaded after it (same size, so nothing failed): training on misaligned
    ground truth, exit 0. Now refused before anything starts."""
    from mmengine.config import Config

    from mmseg_dsnet.datasets.random_transforms import moved_before_masks
    from mmseg_dsnet.engine.preflight import (PipelineConfigError,
                                              check_pipelines_build)
    load, zoom = dict(type='LoadAnnotations'), dict(type='RandomZoom')
    image = dict(type='LoadImageFromFile')
    pack = dict(type='PackSegInputs')
    assert moved_before_masks([image, load, zoom, pack]) == -1
    assert moved_before_masks([image, zoom, pack]) == -1  # no mask at all
    assert moved_before_masks([image, zoom, load, pack]) == 1
    assert moved_before_masks(
        [image, dict(type='mmseg.RandomZoom'), load, pack]) == 1
    config = tmp_path / 'zoom_first.py'
    config.write_text(
        f"_base_ = '{REPO}/configs/dsnet/design/"
        "dsnet-design-deeper-eighth-zoom_isic2017.py'\n"
        'train_dataloader = dict(dataset=dict(pipeline=['
        "dict(type='LoadImageFromFile'), "
        "dict(type='RandomZoom', prob=0.5, max_zoom=1.5), "
        "dict(type='LoadAnnotations'), dict(type='PackSegInputs')]))\n")
    cfg = Config.fromfile(str(config))
    with pytest.raises(PipelineConfigError) as info:
        check_pipelines_build(cfg, ('train_dataloader', 'val_dataloader'))
    assert str(info.value).startswith(
        f'train_dataloader.dataset.pipeline[1] of {config}: RandomZoom comes '
        'before LoadAnnotations, so it would zoom the image but not its mask')
    # The shipped zoom config is accepted.
    check_pipelines_build(Config.fromfile(
        str(REPO / 'configs/dsnet/design/'
            'dsnet-design-deeper-eighth-zoom_isic2017.py')),
        ('train_dataloader', 'val_dataloader', 'test_dataloader'))


def test_a_zoom_in_a_validation_or_test_pipeline_is_refused(tmp_path):
    """RandomZoom zooms the image and its mask alike, so a test pipeline
    holding it (after LoadAnnotations, without Resize) ran and scored
    random windows of the test images, other figures at each run, exit 0.
    Now refused before anything starts, also inside a TestTimeAug."""
    from mmengine.config import Config

    from mmseg_dsnet.datasets.random_transforms import random_step
    from mmseg_dsnet.engine.preflight import (PipelineConfigError,
                                              check_pipelines_build)
    image, load = dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')
    pack = dict(type='PackSegInputs')
    assert random_step([image, load, pack]) == -1
    assert random_step([image, load, dict(type='RandomZoom', prob=0.),
                        pack]) == -1  # never zooms
    assert random_step([image, load, dict(type='RandomZoom'), pack]) == 2
    tta = dict(type='TestTimeAug', transforms=[
        [load], [dict(type='mmseg.RandomZoom', prob=1.)], [pack]])
    assert random_step([image, tta]) == 1
    base = REPO / 'configs/dsnet/design/dsnet-design-deeper-eighth-zoom_isic2017.py'
    config = tmp_path / 'zoom_test.py'
    config.write_text(
        f"_base_ = '{base}'\n"
        'test_dataloader = dict(dataset=dict(pipeline=['
        "dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), "
        "dict(type='RandomZoom', prob=1.0, max_zoom=2.0), "
        "dict(type='PackSegInputs')]))\n")
    cfg = Config.fromfile(str(config))
    with pytest.raises(PipelineConfigError) as info:
        check_pipelines_build(cfg, ('test_dataloader', ))
    assert str(info.value).startswith(
        f'test_dataloader.dataset.pipeline[2] of {config}: RandomZoom draws '
        'at random (a training augmentation); in the test pipeline')
    # The same pipeline trains (the zoom config's own training pipeline
    # zooms) and the validation pipeline is checked too.
    cfg.train_dataloader.dataset.pipeline = cfg.test_dataloader.dataset.pipeline
    check_pipelines_build(cfg, ('train_dataloader', ))
    cfg.val_dataloader.dataset.pipeline = cfg.test_dataloader.dataset.pipeline
    with pytest.raises(PipelineConfigError, match='in the validation'):
        check_pipelines_build(cfg, ('train_dataloader', 'val_dataloader'))


def test_a_zoom_in_a_test_pipeline_that_starts_with_it_is_refused(tmp_path):
    """A test pipeline that is one TestTimeAug (the image loaded inside
    it) zooms at its first step, position 0: it is refused as well."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import (PipelineConfigError,
                                              check_pipelines_build)
    base = REPO / ('configs/dsnet/design/'
                   'dsnet-design-deeper-eighth-zoom_isic2017.py')
    config = tmp_path / 'zoom_first.py'
    config.write_text(
        f"_base_ = '{base}'\n"
        "test_dataloader = dict(dataset=dict(pipeline=[dict("
        "type='TestTimeAug', transforms=[[dict(type='LoadImageFromFile')], "
        "[dict(type='LoadAnnotations')], [dict(type='RandomZoom', prob=1.0)"
        "], [dict(type='PackSegInputs')]])]))\n")
    with pytest.raises(PipelineConfigError) as info:
        check_pipelines_build(Config.fromfile(str(config)),
                              ('test_dataloader', ))
    assert str(info.value).startswith(
        f'test_dataloader.dataset.pipeline[0] of {config}: RandomZoom (in '
        'TestTimeAug) draws at random (a training augmentation); in the '
        'test pipeline')
