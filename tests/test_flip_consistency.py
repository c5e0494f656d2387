"""FlipConsistentEncoderDecoder: each batch trained with its flipped copy
and a term that pulls the two answers together; inference unchanged."""
import copy
from pathlib import Path

import pytest
import torch
from conftest import lesion_data_samples
from mmengine.config import Config
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import mmseg_dsnet.models  # noqa: F401  (registers DSNet components)
from mmseg_dsnet.models.segmentors.flip_consistent_encoder_decoder import (
    FLIPS, FlipConsistentEncoderDecoder, flip_data_sample, mirror)
from mmseg_dsnet.utils.errors import ModelArgumentError

register_all_modules()

#: The NCHW dimensions each flip reverses.
FLIP_DIMS = {'horizontal': (3, ), 'vertical': (2, ), 'diagonal': (2, 3)}
MODELS_DIR = Path(__file__).parents[1] / 'configs/_base_/models'
PREPROCESSOR = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    size=(64, 64))


def model_cfg(name='dsnet.py', **segmentor):
    cfg = Config.fromfile(str(MODELS_DIR / name)).model
    cfg.data_preprocessor = copy.deepcopy(PREPROCESSOR)
    cfg.update(type='FlipConsistentEncoderDecoder', **segmentor)
    return cfg


def corner_labels(batch, size):
    """A lesion in the top-left quarter: no flip leaves it in place."""
    labels = torch.zeros(batch, size, size, dtype=torch.long)
    labels[:, 2:size // 2, 4:size // 3] = 1
    assert labels.any()
    return labels


def test_flipped_sample_holds_the_mirrored_mask_and_the_metainfo():
    label = torch.zeros(8, 8, dtype=torch.long)
    label[1:3, 0:2] = 1
    sample, = lesion_data_samples([label])
    for name, dims in FLIP_DIMS.items():
        flipped = flip_data_sample(sample, torch.tensor(FLIPS[name]))
        expected = label[None].flip([d - 1 for d in dims])
        assert torch.equal(flipped.gt_sem_seg.data, expected), name
        assert flipped.metainfo == sample.metainfo
    # Horizontal mirrors columns: the lesion moves to the right side.
    right = flip_data_sample(sample, torch.tensor(FLIPS['horizontal']))
    assert right.gt_sem_seg.data[0, 1, -1] == 1
    assert right.gt_sem_seg.data[0, 1, 0] == 0
    assert torch.equal(sample.gt_sem_seg.data[0], label)  # not changed


@pytest.mark.parametrize('name', sorted(FLIPS))
def test_mirror_flips_the_last_two_dimensions_and_undoes_itself(name):
    x = torch.randn(2, 3, 5, 7)
    flip = torch.tensor(FLIPS[name])
    assert torch.equal(mirror(x, flip), x.flip(FLIP_DIMS[name]))
    assert torch.equal(mirror(mirror(x, flip), flip), x)
    assert torch.equal(mirror(x, torch.tensor([False, False])), x)


@pytest.mark.parametrize('name', sorted(FLIPS))
def test_agreement_term_is_zero_for_mirrored_answers(name):
    dims, flip = FLIP_DIMS[name], torch.tensor(FLIPS[name])
    logits = torch.randn(3, 1, 8, 8) * 3
    agreeing = torch.cat([logits, logits.flip(dims)])
    term = FlipConsistentEncoderDecoder.consistency_loss(agreeing, flip)
    assert abs(float(term)) < 1e-6
    # The same answers not mirrored disagree (the map is not symmetric).
    unflipped = torch.cat([logits, logits])
    assert FlipConsistentEncoderDecoder.consistency_loss(unflipped,
                                                         flip) > 1e-2


def test_agreement_gradient_is_the_difference_of_the_probabilities():
    dims, flip = FLIP_DIMS['vertical'], torch.tensor(FLIPS['vertical'])
    seg_logits = torch.randn(4, 1, 6, 6, requires_grad=True)
    FlipConsistentEncoderDecoder.consistency_loss(seg_logits,
                                                  flip).backward()
    plain, flipped = seg_logits.detach().chunk(2)
    back = flipped.flip(dims)
    numel = plain.numel()
    expected_plain = 0.5 * (plain.sigmoid() - back.sigmoid()) / numel
    expected_flipped = (0.5 * (back.sigmoid() - plain.sigmoid()) /
                        numel).flip(dims)
    grad_plain, grad_flipped = seg_logits.grad.chunk(2)
    torch.testing.assert_close(grad_plain, expected_plain)
    torch.testing.assert_close(grad_flipped, expected_flipped)


def test_loss_scores_the_batch_and_its_flipped_copy_as_one_batch(
        monkeypatch):
    torch.manual_seed(0)
    model = MODELS.build(model_cfg(consistency_weight=0.7)).train()
    plain = MODELS.build(
        dict(model_cfg(), type='EncoderDecoder')).train()
    plain.load_state_dict(model.state_dict(), strict=True)
    dims, flip = FLIP_DIMS['diagonal'], torch.tensor(FLIPS['diagonal'])
    monkeypatch.setattr(model, '_draw_flip', lambda device: flip)
    inputs, labels = torch.randn(2, 3, 64, 64), corner_labels(2, 64)
    samples = lesion_data_samples(labels)

    losses = model.loss(inputs, samples)
    assert set(losses) >= {
        'decode.loss_bic', 'decode.aux1.loss_bic',
        'decode.loss_flip_consistency', 'decode.acc_seg'
    }
    both = torch.cat([inputs, inputs.flip(dims)])
    both_samples = samples + lesion_data_samples(labels.flip([1, 2]))
    expected = plain.loss(both, both_samples)
    for name in ('decode.loss_bic', 'decode.aux1.loss_bic',
                 'decode.aux3.loss_bic'):
        torch.testing.assert_close(losses[name], expected[name])
    with torch.no_grad():
        logits = plain.decode_head.forward(plain.extract_feat(both))
    term = 0.7 * FlipConsistentEncoderDecoder.consistency_loss(logits, flip)
    torch.testing.assert_close(
        losses['decode.loss_flip_consistency'].detach(), term)
    assert losses['decode.loss_flip_consistency'] > 0
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert model.backbone.stem.conv.weight.grad.abs().sum() > 0


def test_the_run_seed_fixes_which_flips_are_drawn():
    model = MODELS.build(model_cfg())
    cpu = torch.device('cpu')

    def draws(segmentor, count=40):
        return [tuple(segmentor._draw_flip(cpu).tolist())
                for _ in range(count)]

    torch.manual_seed(3)
    first = draws(model)
    torch.manual_seed(3)
    assert draws(model) == first
    assert set(first) == set(FLIPS.values())  # never none
    only = MODELS.build(model_cfg(flips=('vertical', )))
    assert set(draws(only, 10)) == {FLIPS['vertical']}
    # Not saved: checkpoints are the plain EncoderDecoder's.
    assert 'flip_table' not in model.state_dict()


def test_inference_and_weights_are_the_plain_encoder_decoders():
    torch.manual_seed(1)
    model = MODELS.build(model_cfg())
    plain = MODELS.build(dict(model_cfg(), type='EncoderDecoder'))
    model.train()
    with torch.no_grad():  # BatchNorm statistics of its own
        model.extract_feat(torch.randn(4, 3, 64, 64))
    plain.load_state_dict(model.state_dict(), strict=True)
    model.eval(), plain.eval()
    inputs = torch.randn(1, 3, 64, 64)
    samples = lesion_data_samples(corner_labels(1, 64))
    with torch.no_grad():
        mine = model.predict(inputs, samples)[0].seg_logits.data
        theirs = plain.predict(inputs, samples)[0].seg_logits.data
    assert torch.equal(mine, theirs)


@pytest.mark.parametrize('cfg, words', [
    (dict(consistency_weight=0), 'must be above 0'),
    (dict(flips=('sideways', )), "flips=('sideways',)"),
    (dict(flips=()), 'give one or more'),
])
def test_refuses_settings_it_cannot_train(cfg, words):
    with pytest.raises(ModelArgumentError, match=words.replace('(', r'\(')
                       .replace(')', r'\)')):
        MODELS.build(model_cfg(**cfg))


def test_refuses_a_head_it_cannot_pair_the_answers_of():
    with pytest.raises(ModelArgumentError,
                       match='decode_for_loss .* not LightweightClsHead'):
        MODELS.build(model_cfg('egeunet.py'))
    two = model_cfg()
    two.decode_head.update(out_channels=2)
    with pytest.raises(ModelArgumentError, match='out_channels=2, not 1'):
        MODELS.build(two)
    aux = model_cfg()
    aux.auxiliary_head = dict(
        type='FCNHead', in_channels=80, in_index=1, channels=16,
        num_convs=1, num_classes=2, out_channels=1,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True))
    with pytest.raises(ModelArgumentError, match='no auxiliary_head'):
        MODELS.build(aux)
