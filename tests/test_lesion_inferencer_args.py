"""LesionInferencer and run_inference argument checks with a fake
backend (no model, no files: each check refuses before anything is run
or written). Mutation testing: the flips' tta_pipeline check dropped,
``None`` taken as "no limit" for every size, a path whose ``__fspath__``
gives bytes, and an empty list given to ``logits`` passed the other
tests."""
import os

import numpy as np
import pytest
from mmengine.config import Config

from mmseg_dsnet.apis import ImageArrayError, LesionInferencer, run_inference
from mmseg_dsnet.utils.errors import UserError


class FakeBackend:
    """A backend whose logits are 1 channel of zeros."""
    threshold = 0.5
    input_size = (8, 8)
    model_files = None

    def __init__(self, cfg=None):
        if cfg is not None:
            self.cfg = cfg

    def __call__(self, batch):
        return np.zeros((len(batch), 1) + batch.shape[2:], np.float32)


def test_flips_refused_for_a_config_with_its_own_tta_pipeline():
    cfg = Config(dict(tta_pipeline=[dict(type='LoadImageFromFile'),
                                    dict(type='TestTimeAug', transforms=[])]))
    with pytest.raises(UserError, match=r'LesionInferencer\(flips=True\): '
                       r'.* sets its own tta_pipeline'):
        LesionInferencer(FakeBackend(cfg), flips=True)
    # Without flips the config's tta_pipeline does not matter.
    assert LesionInferencer(FakeBackend(cfg)).flips is False
    # A config without a tta_pipeline takes the flips.
    assert LesionInferencer(FakeBackend(Config(dict())), flips=True).flips


@pytest.mark.parametrize('name', ['batch_size', 'overlay_max_side'])
def test_run_inference_refuses_none_for_a_size_with_no_none(name, tmp_path):
    """Only ``max_pixels`` takes None (no limit)."""
    out = tmp_path / 'out'
    with pytest.raises(UserError, match=rf'run_inference: {name} must be a '
                       r'whole number of at least 1, got None$'):
        run_inference(LesionInferencer(FakeBackend()), ['a.png'], str(out),
                      progress=False, **{name: None})
    assert not out.exists()


def test_run_inference_refuses_a_path_like_of_bytes(tmp_path):

    class BytesPath(os.PathLike):

        def __fspath__(self):
            return b'a.png'

    out = tmp_path / 'out'
    with pytest.raises(UserError, match=r'run_inference: files\[1\] is a '
                       r'BytesPath, not an image file path'):
        run_inference(LesionInferencer(FakeBackend()),
                      ['b.png', BytesPath()], str(out), progress=False)
    assert not out.exists()


def test_logits_of_no_images_is_refused_by_name():
    inferencer = LesionInferencer(FakeBackend())
    with pytest.raises(ImageArrayError, match=r'LesionInferencer.logits: no '
                       r'images given'):
        inferencer.logits([])
    # decisions and predict take an empty list (no images, no output).
    assert inferencer.decisions([]) == [] and inferencer.predict([]) == []
    logits = inferencer.logits([np.zeros((5, 7, 3), np.uint8)])
    assert logits.shape == (1, 1, 8, 8)


class ConstantBackend(FakeBackend):
    """A backend whose lesion probability is 0.7 everywhere, and whose
    model's own threshold is 0.8."""
    threshold = 0.8

    def __call__(self, batch):
        logit = np.log(0.7 / 0.3)
        return np.full((len(batch), 1) + batch.shape[2:], logit, np.float32)


@pytest.mark.parametrize('threshold, lesion', [(None, 0), (0.6, 1)])
def test_masks_are_cut_at_the_models_threshold_or_the_one_given(threshold,
                                                                lesion):
    """A probability of 0.7 is background at the model's own threshold of
    0.8 and lesion at a threshold of 0.6 given, in the masks at the
    image's size, with or without flips, and in the decision maps
    (mutation testing: the masks cut at 0.5 passed)."""
    rgb = np.zeros((5, 7, 3), np.uint8)
    for flips in (False, True):
        inferencer = LesionInferencer(ConstantBackend(), threshold,
                                      flips=flips)
        mask, = inferencer.predict([rgb])
        assert mask.shape == (5, 7)
        assert (mask == lesion).all()
        decision, = inferencer.decisions([rgb])
        assert ((decision > 0) == lesion).all()


def test_outputs_of_a_wide_image_keep_its_shape(tmp_path):
    """An 8x50 photo with overlay_max_side=10: its mask is 8x50 of 0/255
    (probability 0.7 over a threshold of 0.6 everywhere), its overlay 2x10
    (50 -> 10, 8 -> 1.6, rounded to 2), height first (mutation testing:
    the overlay sized (width, height), or by the shorter side, or the
    mask written as 0/1, passed)."""
    from PIL import Image
    photo = tmp_path / 'wide.png'
    Image.fromarray(np.full((8, 50, 3), 90, np.uint8)).save(photo)
    out = tmp_path / 'out'
    (out / 'masks').mkdir(parents=True)
    (out / 'overlays').mkdir()
    summary = run_inference(LesionInferencer(ConstantBackend(), 0.6),
                            [str(photo)], str(out), overlay_max_side=10,
                            progress=False, log=lambda line: None)
    assert summary.processed == [str(photo)]
    mask = np.array(Image.open(out / 'masks' / 'wide.png'))
    assert mask.shape == (8, 50) and (mask == 255).all()
    overlay = np.array(Image.open(out / 'overlays' / 'wide.jpg'))
    assert overlay.shape == (2, 10, 3)
