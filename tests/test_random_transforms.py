"""Random transforms are refused in evaluation pipelines
(mmseg_dsnet.datasets.random_transforms, preflight.check_pipelines_build)."""
import pytest
from conftest import REPO

DEMO = str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')

#: A step of each kind that draws, with arguments its class accepts.
DRAWING = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=1., direction=['horizontal', 'vertical']),
    dict(type='RandomFlip', prob=[0.5, 0.5],
         direction=['horizontal', 'vertical']),
    dict(type='RandomRotate', prob=0.5, degree=20),
    dict(type='RandomRotFlip'),
    dict(type='RandomCrop', crop_size=(64, 64)),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.5, 2.0)),
    dict(type='RandomChoiceResize', scales=[(128, 128), (96, 96)]),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomCutOut', prob=0.5, n_holes=2, cutout_shape=(8, 8)),
    dict(type='RandomMosaic', prob=1.),
    dict(type='RandomZoom'),
    dict(type='mmcv.RandomGrayscale', prob=0.5),
    dict(type='RandomApply', prob=1.,
         transforms=[dict(type='PhotoMetricDistortion')]),
    dict(type='TestTimeAug', transforms=[
        [dict(type='PhotoMetricDistortion')]]),
]

#: Steps that never draw: prob 0, or a flip that always flips one way
#: (the views of tools/test.py --tta).
NOT_DRAWING = [
    dict(type='RandomFlip', prob=0., direction='horizontal'),
    dict(type='RandomFlip', prob=1., direction='vertical'),
    dict(type='RandomRotate', prob=0., degree=20),
    dict(type='RandomRotFlip', rotate_prob=0., flip_prob=0.),
    dict(type='RandomZoom', prob=0.),
    dict(type='RandomApply', prob=0.,
         transforms=[dict(type='PhotoMetricDistortion')]),
    # One size: a resize written as RandomResize (tests/test_leaderboard.py)
    dict(type='RandomResize', scale=(128, 128), ratio_range=(1., 1.),
         keep_ratio=False),
    dict(type='RandomChoiceResize', scales=[(128, 128)], keep_ratio=False),
]


def _with_step(step, before_masks=False):
    image, load = dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')
    middle = [step, load] if before_masks else [load, step]
    return [image, dict(type='Resize', scale=(128, 128), keep_ratio=False),
            *middle, dict(type='PackSegInputs')]


def test_a_random_step_in_an_evaluation_pipeline_is_refused():
    """A random flip, rotation, crop, resize or photometric distortion in
    the test (validation) pipeline after LoadAnnotations: image and mask
    were transformed alike, so tools/test.py, the validation of train.py
    and fast_train.py, threshold_sweep.py ... scored a random view of
    each image, other figures at each run, exit 0. Only RandomZoom was
    refused. The training pipeline keeps them."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import (PipelineConfigError,
                                              check_pipelines_build)
    for step in DRAWING:
        cfg = Config.fromfile(DEMO)
        pipeline = _with_step(step)
        cfg.train_dataloader.dataset.pipeline = pipeline
        check_pipelines_build(cfg, ('train_dataloader', ))
        for loader, phase in (('test_dataloader', 'test'),
                              ('val_dataloader', 'validation')):
            cfg[loader].dataset.pipeline = pipeline
            with pytest.raises(PipelineConfigError) as info:
                check_pipelines_build(cfg, (loader, ))
            # A wrapper is named with the transform in it that draws.
            inner = step.get('transforms')
            if isinstance(inner, list) and isinstance(inner[0], list):
                inner = inner[0]  # TestTimeAug's options
            name = step['type'] if not isinstance(inner, list) else (
                f'{inner[0]["type"]} (in {step["type"]})')
            assert str(info.value).startswith(
                f'{loader}.dataset.pipeline[3] of {DEMO}: {name} '
                f'draws at random (a training augmentation); in the {phase} '
                'pipeline it would score a random view of each image'), (
                    step, str(info.value))
    for step in NOT_DRAWING:
        cfg = Config.fromfile(DEMO)
        # Where each goes: a flip after the masks in training, before
        # them in a test (the segmentor flips its prediction back).
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            cfg[loader].dataset.pipeline = _with_step(
                step, before_masks=loader != 'train_dataloader')
        check_pipelines_build(cfg, ('train_dataloader', 'val_dataloader',
                                    'test_dataloader'))


def test_every_registered_random_transform_is_listed():
    """A random transform of mmcv or MMSegmentation that the list left out
    would be scored in a test pipeline without a word."""
    from mmcv.transforms import TRANSFORMS as MMCV_TRANSFORMS
    from mmseg.registry import TRANSFORMS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.datasets.random_transforms import RANDOM_TRANSFORMS
    register_all_modules(init_default_scope=False)
    names = set(TRANSFORMS.module_dict) | set(MMCV_TRANSFORMS.module_dict)
    drawing = {name for name in names
               if 'Random' in name or name == 'PhotoMetricDistortion'}
    assert drawing and drawing <= set(RANDOM_TRANSFORMS), \
        drawing - set(RANDOM_TRANSFORMS)


def test_a_move_before_the_masks_are_loaded_in_training_is_refused():
    """A training pipeline that flips, rotates or crops before
    LoadAnnotations (the order of the shipped test pipelines, which load
    the masks after Resize): the image was moved and the mask loaded after
    it was not; both kept their size, so training ran on misaligned ground
    truth, exit 0. Only RandomZoom was refused there. A flip before the
    masks stays allowed in a test pipeline (the segmentor flips its
    prediction back: tools/test.py --tta)."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import (PipelineConfigError,
                                              check_pipelines_build)
    image, load = dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')
    resize = dict(type='Resize', scale=(128, 128), keep_ratio=False)
    pack = dict(type='PackSegInputs')
    for step, verb in (
            (dict(type='RandomFlip', prob=0.5, direction='vertical'), 'flip'),
            (dict(type='RandomFlip', prob=1., direction='vertical'), 'flip'),
            (dict(type='RandomRotate', prob=0.5, degree=180), 'rotate'),
            (dict(type='RandomCrop', crop_size=(64, 64)), 'crop')):
        cfg = Config.fromfile(DEMO)
        cfg.train_dataloader.dataset.pipeline = [image, resize, step, load,
                                                 pack]
        with pytest.raises(PipelineConfigError) as info:
            check_pipelines_build(cfg, ('train_dataloader', ))
        assert str(info.value).startswith(
            f'train_dataloader.dataset.pipeline[2] of {DEMO}: {step["type"]} '
            f'comes before LoadAnnotations, so it would {verb} the image but '
            'not its mask'), str(info.value)
    cfg = Config.fromfile(DEMO)
    cfg.train_dataloader.dataset.pipeline = [
        image, resize, dict(type='RandomFlip', prob=0.), load, pack]
    cfg.test_dataloader.dataset.pipeline = [
        image, resize, dict(type='RandomFlip', prob=1.), load, pack]
    check_pipelines_build(cfg, ('train_dataloader', 'test_dataloader'))


def test_a_crop_before_the_masks_in_evaluation_is_refused():
    """``CenterCrop`` (which draws nothing) before LoadAnnotations in a test
    or validation pipeline: the image was cropped, the mask loaded after it
    kept the whole image, and the segmentor resized its prediction of the
    crop onto the whole image (its ``ori_shape``), so every image was scored
    against a misaligned mask, exit 0. Refused as in training; a crop after
    LoadAnnotations (image and mask alike) and a flip before it pass."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import (PipelineConfigError,
                                              check_pipelines_build)
    image, load = dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')
    resize = dict(type='Resize', scale=(128, 128), keep_ratio=False)
    pack = dict(type='PackSegInputs')
    crop = dict(type='CenterCrop', crop_size=64)
    for loader, step, verb in (
            ('test_dataloader', crop, 'crop'),
            ('val_dataloader', crop, 'crop'),
            ('test_dataloader', dict(type='RandomZoom', prob=1.), 'zoom')):
        cfg = Config.fromfile(DEMO)
        cfg[loader].dataset.pipeline = [image, step, resize, load, pack]
        with pytest.raises(PipelineConfigError) as info:
            check_pipelines_build(cfg, ('train_dataloader', loader))
        assert str(info.value).startswith(
            f'{loader}.dataset.pipeline[1] of {DEMO}: {step["type"]} comes '
            f'before LoadAnnotations, so it would {verb} the image but not '
            'its mask'), str(info.value)
    cfg = Config.fromfile(DEMO)
    cfg.test_dataloader.dataset.pipeline = [image, load, crop, resize, pack]
    cfg.val_dataloader.dataset.pipeline = [
        image, dict(type='RandomFlip', prob=1.), resize, load, pack]
    check_pipelines_build(cfg, ('test_dataloader', 'val_dataloader'))


def test_a_flip_after_the_masks_are_loaded_in_a_test_pipeline_is_refused(
        tmp_path):
    """``RandomFlip prob=1.`` after LoadAnnotations in a test pipeline
    (always the same, so not a random step): the ground truth was flipped
    with the image while the segmentor flips its prediction back (the
    sample's ``flip`` meta), so every image was scored against its
    mirrored mask, exit 0."""
    import cv2
    import numpy as np
    from mmcv.transforms import Compose
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmseg_dsnet.engine.preflight import (PipelineConfigError,
                                              check_pipelines_build)
    image, load = dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')
    flip = dict(type='RandomFlip', prob=1., direction='horizontal')
    pack = dict(type='PackSegInputs')
    # What such a pipeline gives: a mirrored mask, and a sample the
    # segmentor un-flips.
    mask = np.zeros((8, 8), np.uint8)
    mask[:, :2] = 1
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'a_mask.png'), mask)
    init_default_scope('mmseg')
    packed = Compose([image, load, flip, pack])(dict(
        img_path=str(tmp_path / 'a.png'),
        seg_map_path=str(tmp_path / 'a_mask.png'), reduce_zero_label=False,
        seg_fields=[]))['data_samples']
    assert packed.flip and np.array_equal(
        packed.gt_sem_seg.data[0].numpy(), mask[:, ::-1])
    cfg = Config.fromfile(DEMO)
    resize = dict(type='Resize', scale=(128, 128), keep_ratio=False)
    for loader in ('test_dataloader', 'val_dataloader'):
        cfg[loader].dataset.pipeline = [image, resize, load, flip, pack]
        with pytest.raises(PipelineConfigError) as info:
            check_pipelines_build(cfg, (loader, ))
        assert str(info.value).startswith(
            f'{loader}.dataset.pipeline[3] of {DEMO}: RandomFlip comes after '
            'LoadAnnotations, so it flips the ground truth while the '
            'segmentor flips its prediction back'), str(info.value)
        # Before the masks: the prediction is compared unflipped.
        cfg[loader].dataset.pipeline = [image, resize, flip, load, pack]
        check_pipelines_build(cfg, (loader, ))
    # Training flips both, as it should.
    cfg.train_dataloader.dataset.pipeline = [image, resize, load, flip, pack]
    check_pipelines_build(cfg, ('train_dataloader', ))


def test_the_listed_default_probabilities_are_the_transforms_own():
    """A step that leaves its probability out draws with the class's
    default: a default written 0 in the list (or a required ``prob``
    given a default) would take ``RandomGrayscale()`` or
    ``RandomRotFlip(rotate_prob=0.)`` for a no-op, scored in a test
    pipeline without a word."""
    import inspect

    from mmcv.transforms import TRANSFORMS as MMCV_TRANSFORMS
    from mmseg.registry import TRANSFORMS
    from mmseg.utils import register_all_modules

    import mmseg_dsnet  # noqa: F401 (registers RandomZoom)
    from mmseg_dsnet.datasets.random_transforms import (RANDOM_TRANSFORMS,
                                                        draws_at_random)
    register_all_modules(init_default_scope=False)
    for name, chances in RANDOM_TRANSFORMS.items():
        cls = TRANSFORMS.get(name) or MMCV_TRANSFORMS.get(name)
        params = inspect.signature(cls.__init__).parameters
        for key, default in chances:
            own = params[key].default
            assert default == (None if own is inspect.Parameter.empty
                               else own), (name, key, default, own)
    # Left out, each draws; written 0 (all of them), none does.
    for step in (dict(type='RandomGrayscale'), dict(type='RandomZoom'),
                 dict(type='RandomApply', transforms=[dict(type='Resize',
                                                           scale=(8, 8))]),
                 dict(type='RandomRotFlip', rotate_prob=0.),
                 dict(type='RandomRotFlip', flip_prob=0.),
                 dict(type='BioMedicalGaussianBlur'),
                 dict(type='RandomDepthMix')):
        assert draws_at_random(step), step
    assert not draws_at_random(dict(type='RandomGrayscale', prob=0.))
    assert not draws_at_random(dict(type='RandomDepthMix', prob=0))


def test_what_draws_follows_mmcvs_sampling():
    """Steps that always do the same (as mmcv samples them) are not random
    steps, and those that sample are, wrapped or not; each wrapper is
    named with the innermost transform that draws."""
    from mmseg_dsnet.datasets.random_transforms import (draws_at_random,
                                                        drawing_transform,
                                                        random_step)
    resize = dict(type='Resize', scale=(8, 8))
    jitter = dict(type='PhotoMetricDistortion')
    # prob=[0., 0.]: mmcv draws None (no flip) with 1 - sum(prob) = 1.
    assert not draws_at_random(dict(type='RandomFlip', prob=[0., 0.],
                                    direction=['horizontal', 'vertical']))
    assert not draws_at_random(dict(type='RandomFlip', prob=[1., 0.],
                                    direction=['horizontal', 'vertical']))
    # Two scales to sample between: ratio_range is not used then.
    assert draws_at_random(dict(type='RandomResize', scale=[(96, 96),
                                                            (128, 128)],
                                ratio_range=(1., 1.)))
    # RandomChoice picks one of its options; RandomApply applies at 0.5.
    assert draws_at_random(dict(type='RandomChoice',
                                transforms=[[resize], [dict(
                                    type='Resize', scale=(16, 16))]]))
    assert not draws_at_random(dict(type='RandomChoice',
                                    transforms=[[resize]]))
    assert draws_at_random(dict(type='RandomApply', transforms=[resize]))
    assert not draws_at_random(dict(type='RandomApply', prob=1.,
                                    transforms=[resize]))
    # A wrapper holding one transform (a dict), nested wrappers.
    mapper = dict(type='KeyMapper', transforms=jitter)
    assert draws_at_random(mapper)
    assert drawing_transform(mapper) == 'PhotoMetricDistortion (in KeyMapper)'
    tta = dict(type='TestTimeAug', transforms=[[dict(
        type='RandomApply', prob=1., transforms=[jitter])]])
    assert drawing_transform(tta) == 'PhotoMetricDistortion (in TestTimeAug)'
    # A callable step is used as it is.
    assert random_step([lambda results: results, resize]) == -1


def test_a_flip_that_never_flips_after_the_masks_is_accepted():
    """``RandomFlip prob=0.`` (or ``prob=[0., 0.]``) after LoadAnnotations
    in a test pipeline flips nothing: not refused as a mirrored ground
    truth, while ``prob=[0.5, 0.5]`` is (it draws)."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import (PipelineConfigError,
                                              check_pipelines_build)
    directions = ['horizontal', 'vertical']
    cfg = Config.fromfile(DEMO)
    for flip in (dict(type='RandomFlip', prob=0., direction='horizontal'),
                 dict(type='RandomFlip', prob=[0., 0.],
                      direction=directions)):
        cfg.test_dataloader.dataset.pipeline = _with_step(flip)
        check_pipelines_build(cfg, ('test_dataloader', ))
    cfg.test_dataloader.dataset.pipeline = _with_step(dict(
        type='RandomFlip', prob=[0.5, 0.5], direction=directions))
    with pytest.raises(PipelineConfigError, match=r'pipeline\[3\] .* draws'):
        check_pipelines_build(cfg, ('test_dataloader', ))


def test_a_random_step_in_a_wrapped_test_dataset_is_refused():
    """The pipeline of a dataset inside ``ConcatDataset`` or
    ``RepeatDataset`` is checked too, named by its place."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import (PipelineConfigError,
                                              check_pipelines_build)
    cfg = Config.fromfile(DEMO)
    plain = cfg.test_dataloader.dataset.copy()
    drawing = dict(plain, pipeline=_with_step(
        dict(type='RandomRotate', prob=0.5, degree=20)))
    for wrapped, path in (
            (dict(type='ConcatDataset', datasets=[plain, drawing]),
             'test_dataloader.dataset.datasets[1].pipeline[3]'),
            (dict(type='RepeatDataset', times=2, dataset=drawing),
             'test_dataloader.dataset.dataset.pipeline[3]')):
        cfg.test_dataloader.dataset = wrapped
        with pytest.raises(PipelineConfigError) as info:
            check_pipelines_build(cfg, ('test_dataloader', ))
        assert str(info.value).startswith(
            f'{path} of {DEMO}: RandomRotate draws at random'), str(info.value)


def test_a_flip_that_never_flips_before_the_masks_is_accepted_in_training():
    """``RandomFlip prob=[0., 0.]`` (two directions, never flipped) before
    LoadAnnotations in a training pipeline was refused as a flip of the
    image but not its mask; ``prob=0.`` passed. Neither flips."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import check_pipelines_build
    from mmseg_dsnet.datasets.random_transforms import moved_before_masks
    image, load = dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')
    pack = dict(type='PackSegInputs')
    for flip in (dict(type='RandomFlip', prob=[0., 0.],
                      direction=['horizontal', 'vertical']),
                 dict(type='RandomFlip', prob=0., direction='vertical')):
        pipeline = [image, flip, load, pack]
        assert moved_before_masks(pipeline) == -1
        cfg = Config.fromfile(DEMO)
        cfg.train_dataloader.dataset.pipeline = pipeline
        check_pipelines_build(cfg, ('train_dataloader', ))
    assert moved_before_masks([image, dict(
        type='RandomFlip', prob=[0., 0.5],
        direction=['horizontal', 'vertical']), load, pack]) == 1


def test_albu_in_an_evaluation_pipeline_draws_unless_all_is_fixed():
    """mmseg's ``Albu`` holds albumentations' transforms, most applied with
    a chance (``p=0.5`` by default) or with drawn values: in a test
    pipeline it scored a random view of each image, not refused (its inner
    names are not ours). Now it draws unless each inner transform always
    does the same, and the message names the one that draws. Checked on
    the configs alone: albumentations need not be installed."""
    from mmseg_dsnet.datasets.random_transforms import (draws_at_random,
                                                        drawing_transform,
                                                        random_step)

    def albu(*transforms):
        return dict(type='Albu', transforms=list(transforms))

    for step, name in (
            (albu(dict(type='HorizontalFlip', p=0.5)), 'HorizontalFlip'),
            (albu(dict(type='Normalize'), dict(type='CLAHE', p=1.)),
             'CLAHE'),
            (albu(dict(type='ToGray')), 'ToGray'),
            (albu(dict(type='OneOf', transforms=[
                dict(type='Blur', p=1.), dict(type='MedianBlur', p=1.)])),
             'OneOf'),
            (albu(dict(type='Compose', transforms=[
                dict(type='Resize', height=64, width=64),
                dict(type='RandomBrightnessContrast', p=1.)])),
             'RandomBrightnessContrast'),
            # One never applied (p=0) does not hide the next one.
            (albu(dict(type='HorizontalFlip', p=0.),
                  dict(type='VerticalFlip', p=0.5)), 'VerticalFlip')):
        assert draws_at_random(step), step
        assert drawing_transform(step) == f'{name} (in Albu)'
        assert random_step([dict(type='LoadImageFromFile'), step]) == 1
    for step in (albu(dict(type='Normalize'),
                      dict(type='Resize', height=64, width=64)),
                 albu(dict(type='ToGray', p=1.),
                      dict(type='HorizontalFlip', p=0.))):
        assert not draws_at_random(step), step


def test_a_transform_of_a_library_not_installed_is_named():
    """mmseg's ``Albu`` without albumentations installed: an ImportError
    traceback from the pipeline check. Now one line naming the step."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import (PipelineConfigError,
                                              check_pipelines_build)
    try:
        import albumentations  # noqa: F401
        pytest.skip('albumentations is installed')
    except ImportError:
        pass
    cfg = Config.fromfile(DEMO)
    cfg.test_dataloader.dataset.pipeline = _with_step(dict(
        type='Albu', transforms=[dict(type='HorizontalFlip', p=0.5)]))
    with pytest.raises(PipelineConfigError, match=(
            r'^test_dataloader\.dataset\.pipeline\[3\] of .*: '
            'albumentations is not installed')):
        check_pipelines_build(cfg, ('test_dataloader', ))
