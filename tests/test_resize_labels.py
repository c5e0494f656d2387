"""ResizeLabels: labels kept at a multiple of the input's side, centre to
centre, and the design candidate that trains against them."""
import numpy as np
import pytest
from conftest import REPO

FINE_LABELS = str(REPO / 'configs/dsnet/design/'
                  'dsnet-design-deeper-eighth-fine-labels_isic2017.py')


def build(step, **kwargs):
    import mmseg_dsnet  # noqa: F401
    from mmseg.registry import TRANSFORMS
    return TRANSFORMS.build(dict(type=step, **kwargs))


def row_coded_sample(first_lesion_row=97, height=192, width=256):
    """A 128x128 input (as the pipeline's Resize leaves it) and a mask file
    of ``height`` x ``width`` that is lesion from ``first_lesion_row`` on,
    with the ignore index in its first column."""
    mask = np.zeros((height, width), np.uint8)
    mask[first_lesion_row:] = 1
    mask[:, 0] = 255
    return dict(img=np.zeros((128, 128, 3), np.uint8), gt_seg_map=mask,
                seg_fields=['gt_seg_map'])


def test_labels_are_resized_to_the_image_times_the_factor_centre_to_centre():
    out = build('ResizeLabels', scale_factor=2)(row_coded_sample())
    labels = out['gt_seg_map']
    assert labels.shape == (256, 256) and labels.dtype == np.uint8
    assert out['img'].shape == (128, 128, 3)
    assert set(np.unique(labels)) == {0, 1, 255}
    assert (labels[:, 0] == 255).all() and (labels[:, 1:] != 255).all()
    # Row 97 of 192 starts at 97 * 256 / 192 = 129.33 on 256 rows: the
    # first row whose centre (129.5) lies below it is 129. Nearest
    # neighbour from the top-left source pixel (mmcv's) gives 130.
    rows = np.flatnonzero(labels[:, 128] == 1)
    assert rows[0] == 129 and rows[-1] == 255
    # Factor 1 gives the image's own size.
    assert build('ResizeLabels', scale_factor=1)(
        row_coded_sample())['gt_seg_map'].shape == (128, 128)


@pytest.mark.parametrize('value', [0, -2, 1.5, True, '2', None])
def test_a_factor_that_is_not_a_whole_number_of_at_least_one_is_refused(
        value):
    from mmseg_dsnet.utils.errors import UserError
    with pytest.raises(UserError, match='ResizeLabels scale_factor must be '
                       f'an integer of at least 1, got {value!r}'):
        build('ResizeLabels', scale_factor=value)


@pytest.mark.parametrize('size', [64, 128])
def test_fine_labels_config_gives_labels_at_twice_any_input_size(size):
    """The candidate's pipeline at check_real_data's --crop-size, from the
    Resize on (the loaders need files): the input at the size, the
    labels at twice it, flipped and rotated with the image."""
    import mmseg_dsnet  # noqa: F401
    from mmcv.transforms import Compose
    from mmengine.config import Config
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.leaderboard.real_data_check import set_input_size
    register_all_modules()
    cfg = Config.fromfile(FINE_LABELS)
    set_input_size(cfg, size)
    steps = cfg.train_dataloader.dataset.pipeline
    assert [s['type'] for s in steps][:4] == [
        'LoadImageFromFile', 'Resize', 'LoadAnnotations', 'ResizeLabels']
    assert cfg.model.decode_head.loss_decode.band_width == 4
    resize, moves = Compose([steps[1]]), Compose(steps[3:])
    np.random.seed(0)
    for _ in range(6):
        # The image is its own mask: after the moves the lesion pixels of
        # the input and of the labels (shrunk back) must agree.
        mask = row_coded_sample(60)['gt_seg_map'].clip(0, 1)
        mask[20:150, 30:90] = 1
        image = np.repeat(mask[..., None] * 255, 3, -1)
        sample = resize(dict(img=image, img_shape=mask.shape,
                             ori_shape=mask.shape))
        sample.update(gt_seg_map=mask, seg_fields=['gt_seg_map'])
        packed = moves(sample)
        image = packed['inputs'][0].numpy() > 127
        labels = packed['data_samples'].gt_sem_seg.data[0].numpy()
        assert image.shape == (size, size)
        assert labels.shape == (2 * size, 2 * size)
        shrunk = labels.reshape(size, 2, size, 2).transpose(0, 2, 1, 3)
        known = (shrunk != 255).all((2, 3))
        lesion = (shrunk == 1).mean((2, 3)) > 0.5
        agree = (lesion == image)[known].mean()
        assert agree > 0.97, agree


def _pipeline_config(tmp_path, loader, steps):
    from mmengine.config import Config
    config = tmp_path / f'{loader}.py'
    config.write_text(
        f"_base_ = '{FINE_LABELS}'\n"
        f'{loader} = dict(dataset=dict(pipeline=[' + ', '.join(
            f"dict(type='{step}'" + (', scale=(128, 128))' if step ==
                                     'Resize' else ')') for step in steps)
        + ']))\n')
    return config, Config.fromfile(str(config))


@pytest.mark.parametrize('loader, steps, message', [
    ('train_dataloader',
     ['LoadImageFromFile', 'Resize', 'ResizeLabels', 'LoadAnnotations',
      'PackSegInputs'],
     'train_dataloader.dataset.pipeline[2] of {}: ResizeLabels comes '
     'before LoadAnnotations, so it finds no labels to resize'),
    ('train_dataloader',
     ['LoadImageFromFile', 'LoadAnnotations', 'Resize', 'ResizeLabels',
      'PackSegInputs'],
     'train_dataloader.dataset.pipeline[3] of {}: ResizeLabels comes '
     'after a Resize that already shrank the labels with the image'),
    ('test_dataloader',
     ['LoadImageFromFile', 'Resize', 'LoadAnnotations', 'ResizeLabels',
      'PackSegInputs'],
     'test_dataloader.dataset.pipeline[3] of {}: ResizeLabels resizes the '
     "ground truth, which the test scores at the mask file's size"),
])
def test_a_label_resize_that_cannot_do_its_job_is_refused_before_any_work(
        tmp_path, loader, steps, message):
    """Each ran to exit 0: before the annotations it resized nothing,
    after a Resize of the labels it enlarged the shrunken mask, and in a
    test pipeline the run stopped only at the first image's metric."""
    from mmseg_dsnet.engine.preflight import (PipelineConfigError,
                                              check_pipelines_build)
    config, cfg = _pipeline_config(tmp_path, loader, steps)
    with pytest.raises(PipelineConfigError) as info:
        check_pipelines_build(cfg, (loader, ))
    assert str(info.value).startswith(message.format(config))
    assert str(info.value).endswith('Nothing was started')
    # The candidate's own pipelines are accepted.
    from mmengine.config import Config
    check_pipelines_build(Config.fromfile(FINE_LABELS), (
        'train_dataloader', 'val_dataloader', 'test_dataloader'))
