"""Test-time augmentation of lesion segmentors (``tools/test.py --tta``):
the mean lesion probability of the flipped views."""
import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image

CONFIG = str(REPO / 'configs/dsnet/dsnet_isic2017.py')


def view(data, flip=None):
    """A data sample as the segmentor leaves it: seg_logits at the
    original size, already flipped back."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(flip=flip is not None,
                                         flip_direction=flip))
    sample.seg_logits = PixelData(data=torch.as_tensor(data).float())
    sample.gt_sem_seg = PixelData(data=torch.zeros(1, *data.shape[1:]).long())
    return sample


@pytest.fixture
def tta_model():
    import mmseg_dsnet  # noqa: F401
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(CONFIG)
    return MODELS.build(dict(cfg.tta_model, module=cfg.model)).eval()


def test_merge_averages_the_lesion_probability(tta_model):
    """mmseg's SegTTAModel sigmoids the probabilities a second time (every
    pixel ends above 0.5) and keeps the last view's seg_logits."""
    from mmseg_dsnet.evaluation import LesionMetric
    metric = LesionMetric()
    # 1 channel: the segmentor stores probabilities.
    first = np.array([[[0.2, 0.9], [0.4, 0.1]]])
    second = np.array([[[0.6, 0.3], [0.8, 0.1]]])
    merged, = tta_model.merge_preds(
        [[view(first), view(second, 'horizontal')]])
    mean = torch.tensor((first + second)[0] / 2).float()
    assert torch.allclose(merged.seg_logits.data[0], mean)
    assert merged.pred_sem_seg.data.tolist() == [[[0, 1], [1, 0]]]
    assert torch.allclose(metric._lesion_probability(merged.to_dict()), mean)
    assert merged.metainfo['flip'] is False and 'gt_sem_seg' in merged
    # 2 channels: logits; the softmax lesion probability is averaged.
    logits = [np.random.default_rng(seed).normal(0, 2, (2, 3, 4))
              for seed in range(3)]
    merged, = tta_model.merge_preds([[view(x) for x in logits]])
    want = np.mean([torch.tensor(x).softmax(0)[1].numpy() for x in logits], 0)
    got = metric._lesion_probability(merged.to_dict())
    assert np.allclose(got.numpy(), want, atol=1e-6)
    assert (merged.pred_sem_seg.data[0].numpy() == (want > 0.5)).all()


def test_merge_refuses_raw_logits_in_one_channel(tta_model):
    """A 1-channel view outside [0, 1] holds logits, not the probabilities
    mmseg stores: averaging them would give a wrong mask, so it stops."""
    logits = np.array([[[-2.0, 3.0], [0.5, -0.1]]])
    with pytest.raises(ValueError, match='look like raw logits'):
        tta_model.merge_preds([[view(logits), view(logits, 'vertical')]])


def test_flip_views_come_from_the_test_pipeline():
    from mmengine.config import Config

    from mmseg_dsnet.datasets.flip_tta_pipeline import flip_tta_pipeline
    from mmseg_dsnet.utils.errors import UserError
    test = Config.fromfile(CONFIG).test_dataloader.dataset.pipeline
    load, tta = flip_tta_pipeline(test)
    assert load == test[0] and tta['type'] == 'TestTimeAug'
    steps = tta['transforms']
    assert steps[0] == [test[1]]  # the same resize as the single pass
    flips = [(f['prob'], f['direction']) for f in steps[1]]
    assert flips == [(0., 'horizontal'), (1., 'horizontal'), (1., 'vertical')]
    # The ground truth is loaded after the flips: never flipped itself.
    assert steps[2] == [test[2]] and steps[3] == [test[3]]
    with pytest.raises(UserError, match='starts with LoadImageFromFile'):
        flip_tta_pipeline(test[1:])
    with pytest.raises(UserError, match='already flips'):
        flip_tta_pipeline(test[:2] + [dict(type='RandomFlip', prob=1.)] +
                          test[2:])


def test_flip_views_read_scoped_type_names():
    """A test pipeline whose types carry their scope
    (``mmseg.LoadAnnotations``) gets its flips before the ground truth is
    loaded, as the unscoped one does: they were put after it, so the flipped
    views flipped their ground truth too and --tta stopped at the first
    image ('hold different ground truths'). A scoped flip in it is refused
    as already flipping."""
    from mmseg_dsnet.datasets.flip_tta_pipeline import flip_tta_pipeline
    from mmseg_dsnet.utils.errors import UserError
    test = [dict(type='mmcv.LoadImageFromFile'),
            dict(type='Resize', scale=(64, 64), keep_ratio=False),
            dict(type='mmseg.LoadAnnotations'),
            dict(type='mmseg.PackSegInputs')]
    load, tta = flip_tta_pipeline(test)
    assert load == test[0]
    steps = tta['transforms']
    assert [len(options) for options in steps] == [1, 3, 1, 1]
    assert steps[0] == [test[1]] and steps[2] == [test[2]]
    assert [f['type'] for f in steps[1]] == ['RandomFlip'] * 3
    with pytest.raises(UserError, match='already flips'):
        flip_tta_pipeline(test[:2] + [dict(type='mmcv.RandomFlip', prob=1.)]
                          + test[2:])
    # Only the ground truth's loader scoped (the case that ran and failed).
    test[0], test[3] = dict(type='LoadImageFromFile'), dict(
        type='PackSegInputs')
    steps = flip_tta_pipeline(test)[1]['transforms']
    assert [len(options) for options in steps] == [1, 3, 1, 1]
    assert steps[2] == [test[2]]


def test_tta_equals_the_mean_of_the_flipped_predictions(tta_model, tmp_path):
    """Through the real pipeline and segmentor: each view is flipped back
    before the mean (an input the network does not treat symmetrically)."""
    from mmcv.transforms import Compose
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from mmseg_dsnet.datasets.flip_tta_pipeline import flip_tta_pipeline
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    image[40:120, 30:200] = (90, 50, 40)
    Image.fromarray(image).save(tmp_path / 'img.png')
    Image.fromarray(np.zeros((256, 256), np.uint8)).save(tmp_path / 'gt.png')
    cfg = Config.fromfile(CONFIG)
    pipeline = Compose(flip_tta_pipeline(cfg.test_dataloader.dataset.pipeline))
    data = pipeline(dict(img_path=str(tmp_path / 'img.png'),
                         seg_map_path=str(tmp_path / 'gt.png'),
                         reduce_zero_label=False, seg_fields=[]))
    with torch.no_grad():
        merged, = tta_model.test_step(pseudo_collate([data]))
        module = tta_model.module
        batch = module.data_preprocessor(
            dict(inputs=[data['inputs'][0]]), False)['inputs']

        def probability(x):
            return module.predict(x)[0].seg_logits.data[0]

        want = (probability(batch) +
                probability(batch.flip(3)).flip(1) +
                probability(batch.flip(2)).flip(0)) / 3
    got = merged.seg_logits.data[0]
    assert torch.allclose(got, want, atol=1e-5)
    # The views differ: the mean is not any single one of them.
    assert not torch.allclose(got, probability(batch), atol=1e-4)
    # infer.py --tta (LesionInferencer with flips, re-parameterised
    # network, its own preprocessing) gives the same mean probability.
    from mmseg_dsnet.apis.inference_backends import TorchBackend
    from mmseg_dsnet.apis.lesion_inferencer import LesionInferencer
    checkpoint = tmp_path / 'weights.pth'
    torch.save(dict(state_dict=module.state_dict()), checkpoint)
    inferencer = LesionInferencer(TorchBackend(CONFIG, str(checkpoint)),
                                  flips=True)
    logits = inferencer.logits([image])[0, 0]
    assert np.allclose(1 / (1 + np.exp(-logits)), got.numpy(), atol=1e-4)
    single = LesionInferencer(inferencer.backend).logits([image])[0, 0]
    assert not np.allclose(single, logits, atol=1e-3)


def test_merge_thresholds_the_mean_strictly_at_the_heads_threshold(
        tta_model):
    """1 channel: lesion where the mean probability is above the decode
    head's threshold (0.75 here), a mean of exactly 0.75 is background;
    2 channels: above 0.5, a tie (equal logits) is background."""
    tta_model.module.decode_head.threshold = 0.75
    first = np.array([[[0.5, 1.0], [0.75, 0.25]]])
    second = np.array([[[1.0, 0.75], [0.75, 0.25]]])
    # Means 0.75 0.875 / 0.75 0.25.
    merged, = tta_model.merge_preds(
        [[view(first), view(second, 'horizontal')]])
    assert merged.pred_sem_seg.data.tolist() == [[[0, 1], [0, 0]]]
    # Lesion minus background logits 0, 2 / -2, 0: probabilities 0.5,
    # 0.88 / 0.12, 0.5 in both views.
    pair = np.array([[[1.0, -1.0], [1.0, 3.0]], [[1.0, 1.0], [-1.0, 3.0]]])
    merged, = tta_model.merge_preds([[view(pair), view(pair, 'vertical')]])
    assert merged.pred_sem_seg.data.tolist() == [[[0, 1], [0, 0]]]



def test_views_with_flipped_ground_truths_are_refused(tta_model, tmp_path):
    """A tta_pipeline that loads the mask before its flips flipped the
    ground truth of the flipped views; the merged sample kept the first
    view's (here the horizontally flipped one) and scored the prediction,
    flipped back, against a flipped mask: wrong figures, exit 0."""
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate

    from mmseg_dsnet.utils.errors import UserError
    image = np.full((48, 64, 3), 200, np.uint8)
    truth = np.zeros((48, 64), np.uint8)
    truth[10:30, 5:20] = 1  # on the left: a flip moves it
    Image.fromarray(image).save(tmp_path / 'img.png')
    Image.fromarray(truth).save(tmp_path / 'gt.png')
    flips = [dict(type='RandomFlip', prob=1., direction='horizontal'),
             dict(type='RandomFlip', prob=0., direction='horizontal')]
    resize = [dict(type='Resize', scale=(64, 64), keep_ratio=False)]
    load, pack = [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]

    def merged(steps):
        pipeline = Compose([dict(type='LoadImageFromFile'),
                            dict(type='TestTimeAug', transforms=steps)])
        data = pipeline(dict(img_path=str(tmp_path / 'img.png'),
                             seg_map_path=str(tmp_path / 'gt.png'),
                             reduce_zero_label=False, seg_fields=[]))
        with torch.no_grad():
            return tta_model.test_step(pseudo_collate([data]))[0]

    with pytest.raises(UserError, match='hold different ground truths'):
        merged([resize, load, flips, pack])
    # The masks loaded after the flips: every view's is the file's.
    sample = merged([resize, flips, load, pack])
    assert sample.gt_sem_seg.data[0].numpy().tolist() == truth.tolist()


@pytest.mark.parametrize('view', [
    dict(type='RandomRotate', prob=1., degree=(90, 90)),
    dict(type='mmseg.RandomCrop', crop_size=(128, 128)),
    dict(type='RandomZoom', prob=1.)])
def test_views_the_segmentor_cannot_turn_back_are_refused(view):
    """The segmentor turns a view's prediction back by its flip and size
    only: a rotated (cropped, zoomed) view's prediction was averaged,
    misplaced, with the others and scored, exit 0."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import check_tta_model
    from mmseg_dsnet.utils.errors import UserError
    cfg = Config.fromfile(CONFIG)

    def tta_pipeline(views):
        return [dict(type='LoadImageFromFile'),
                dict(type='TestTimeAug', transforms=[
                    [dict(type='Resize', scale=(256, 256),
                          keep_ratio=False)], views,
                    [dict(type='LoadAnnotations')],
                    [dict(type='PackSegInputs')]])]

    cfg.tta_pipeline = tta_pipeline(
        [dict(type='RandomFlip', prob=0., direction='horizontal'), view])
    with pytest.raises(UserError, match=r'tta_pipeline\[1\] of c.py holds '
                       f"{view['type']}, whose views' predictions are not "):
        check_tta_model(cfg, 'c.py')
    # Flips and scales are turned back; a step that never fires is none.
    cfg.tta_pipeline = tta_pipeline(
        [dict(type='RandomFlip', prob=1., direction='vertical'),
         dict(view, prob=0.) if 'prob' in view else
         dict(type='RandomFlip', prob=0.)])
    check_tta_model(cfg, 'c.py')
    # No ground truth loaded: a KeyError 'gt_sem_seg' traceback from the
    # metric at the first image.
    cfg.tta_pipeline[1]['transforms'].pop(2)
    with pytest.raises(UserError, match=r'tta_pipeline of c.py loads no '
                       'ground truth'):
        check_tta_model(cfg, 'c.py')


def test_tta_view_checks_read_scoped_type_names():
    """Types spelled with their scope (``mmcv.TestTimeAug``,
    ``mmseg.LoadAnnotations``) build the same transforms: a rotating view
    inside them is refused, and their loaded ground truth is seen; a
    config without a tta_pipeline (--tta flips its test pipeline) passes."""
    from mmengine.config import Config

    from mmseg_dsnet.datasets.flip_tta_pipeline import check_tta_views
    from mmseg_dsnet.engine.preflight import check_tta_model
    from mmseg_dsnet.utils.errors import UserError

    def tta_pipeline(view):
        return [dict(type='mmcv.LoadImageFromFile'),
                dict(type='mmcv.TestTimeAug', transforms=[
                    [dict(type='mmcv.RandomFlip', prob=0.,
                          direction='horizontal'), view],
                    [dict(type='mmseg.LoadAnnotations')],
                    [dict(type='mmseg.PackSegInputs')]])]

    with pytest.raises(UserError, match=r'tta_pipeline\[1\] of c.py holds '
                       'mmseg.RandomRotate, whose'):
        check_tta_views(tta_pipeline(dict(type='mmseg.RandomRotate', prob=1.,
                                          degree=(90, 90))), 'c.py')
    check_tta_views(tta_pipeline(dict(type='mmcv.RandomFlip', prob=1.,
                                      direction='vertical')), 'c.py')
    # Never applied (its chances are rotate_prob and flip_prob): it was
    # refused as a rotating view, read by a prob it does not have.
    check_tta_views(tta_pipeline(dict(type='RandomRotFlip', rotate_prob=0.,
                                      flip_prob=0.)), 'c.py')
    cfg = Config.fromfile(CONFIG)
    assert 'tta_pipeline' not in cfg
    check_tta_model(cfg, 'c.py')


def test_views_without_ground_truth_are_merged(tta_model):
    """Views of an unlabelled image carry no gt_sem_seg: their mean is
    merged and the merged sample holds no ground truth either."""
    first, second = view(np.array([[[0.2, 0.9]]])), view(
        np.array([[[0.6, 0.3]]]), 'horizontal')
    for sample in (first, second):
        del sample.gt_sem_seg
    merged, = tta_model.merge_preds([[first, second]])
    assert merged.pred_sem_seg.data.tolist() == [[[0, 1]]]
    assert 'gt_sem_seg' not in merged


class RowBiasBackend:
    """A 4x4 backend whose lesion logit is ``(red - 128) / 10`` plus a
    bias per row: it moves with the picture when the picture is flipped,
    the row bias does not."""
    threshold = 0.5
    input_size = (4, 4)
    model_files = None

    def __init__(self, row_bias):
        self.row_bias = np.asarray(row_bias, np.float32)

    def __call__(self, batch):
        logits = (batch[:, :1] - 128) / 10
        return (logits + self.row_bias[:, None]).astype(np.float32)


def flip_reference(red, row_bias, threshold):
    """The mask of the mean probability of the image and its horizontal and
    vertical flips, each flipped back: at a pixel the picture's logit is
    the same in the three views; the row bias is the row's own in the
    image and its horizontal flip, the mirrored row's in the vertical one.
    """
    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    own = (red - 128) / 10
    bias = np.asarray(row_bias, float)[:, None]
    mean = (2 * sigmoid(own + bias) + sigmoid(own + bias[::-1])) / 3
    return (mean > threshold).astype(np.uint8)


@pytest.mark.parametrize('red, row_bias, threshold', [
    # Lesion in the top-left quadrant only; no bias.
    (np.array([[228, 228, 28, 28], [228, 228, 28, 28], [28] * 4, [28] * 4]),
     [0, 0, 0, 0], 0.5),
    # A grey picture; the top rows biased to lesion: 2/3 of the views
    # say lesion there, under the threshold of 0.8.
    (np.full((4, 4), 128), [10, 10, -10, -10], 0.8),
    (np.full((4, 4), 128), [10, 10, -10, -10], 0.3),
])
def test_inferencer_flips_are_flipped_back_and_averaged(red, row_bias,
                                                        threshold):
    """LesionInferencer(flips=True) against the mean probability of the
    three views worked out by hand (mutation testing: views not flipped
    back, or flipped twice horizontally, passed the other tests)."""
    from mmseg_dsnet.apis import LesionInferencer
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = red
    inferencer = LesionInferencer(RowBiasBackend(row_bias), threshold,
                                  flips=True)
    expected = flip_reference(red, row_bias, threshold)
    mask, = inferencer.predict([rgb])
    np.testing.assert_array_equal(mask, expected)
    # The logits at the model size are of that mean probability too.
    logits, = inferencer.logits([rgb])
    np.testing.assert_array_equal((logits[0] > np.log(
        threshold / (1 - threshold))).astype(np.uint8), expected)
