"""The export parity check's figures on hand-made values (mutation
testing: a strict ``<`` tolerance, decisions judged on the candidate's
logits, a dropped last batch and a missing second input size passed)."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from mmseg_dsnet.deploy import parity


def test_tolerance_and_its_boundary():
    assert parity.within(1e-4, 1e-4)  # "up to" the tolerance
    assert not parity.within(1.5e-4, 1e-4)
    assert parity.parity_tolerance(10.0, 1e-6) == pytest.approx(1e-4 + 3e-3)
    assert parity.parity_tolerance(0.0, 1e-3) == pytest.approx(4e-3)
    assert parity.parity_tolerance(10.0, 1.0, atol=1e-4, rtol=0,
                                   noise_factor=0) == pytest.approx(1e-4)


def test_mask_mismatch_is_judged_on_the_reference_logits():
    # Pixel (0, 1): both near the threshold (borderline). Pixel (1, 0):
    # the reference is far from it (-1), the candidate barely above.
    reference = np.array([[[[2, 5e-5], [-1, -3]]]], np.float32)
    candidate = np.array([[[[2, -5e-5], [1e-5, -3]]]], np.float32)
    figures = parity.compare_logits(reference, candidate, 0.5, atol=1e-3)
    assert figures == dict(max_abs_diff=pytest.approx(1.00001),
                           mask_mismatch=2, mask_mismatch_decisive=1,
                           pixels=4)
    # float64 logits, where given, decide: here both pixels are decisive.
    exact = np.array([[[[2, 0.5], [-1, -3]]]], np.float64)
    figures = parity.compare_logits(reference, candidate, 0.5, atol=1e-3,
                                    exact=exact)
    assert figures['mask_mismatch_decisive'] == 2


def test_random_inputs_cover_batch_two_and_a_second_size():
    cases = parity.random_inputs((64, 64))
    assert [batch.shape for _, batch in cases] == [
        (1, 3, 64, 64), (2, 3, 64, 64), (1, 3, 128, 96)]
    assert [label for label, _ in cases] == [
        'random 1x3x64x64', 'random 2x3x64x64', 'random 1x3x128x96']
    wide = parity.random_inputs((64, 160))
    assert wide[2][1].shape == (1, 3, 128, 96)
    assert len(parity.random_inputs((64, 64), dynamic_size=False)) == 2
    assert all(b.dtype == np.float32 and 0 <= b.min() and b.max() <= 255
               for _, b in cases)


def test_load_batches_keeps_the_last_partial_batch(tmp_path):
    pairs = []
    for index in range(5):
        image = np.full((10, 20, 3), index * 10, np.uint8)
        cv2.imwrite(str(tmp_path / f'i{index}.png'), image)
        pairs.append((str(tmp_path / f'i{index}.png'), None))
    (tmp_path / 'bad.png').write_bytes(b'not an image')
    pairs.insert(2, (str(tmp_path / 'bad.png'), None))
    mask = np.zeros((10, 20), np.uint8)
    mask[:, 10:] = 1
    mask[0, 0] = 255
    cv2.imwrite(str(tmp_path / 'm.png'), mask)
    pairs[0] = (pairs[0][0], str(tmp_path / 'm.png'))
    batches = parity.load_batches(pairs, (4, 8), batch_size=2)
    assert [label for label, _, _ in batches] == [
        'i0.png, i1.png', 'i2.png, i3.png', 'i4.png']
    assert [b.shape for _, b, _ in batches] == [(2, 3, 4, 8), (2, 3, 4, 8),
                                              (1, 3, 4, 8)]
    assert [b[:, 0, 0, 0].tolist() for _, b, _ in batches] == [
        [0, 10], [20, 30], [40]]
    truth = batches[0][2][0]
    assert truth.shape == (4, 8) and truth[0, 0] == 255
    assert (truth[:, 4:] == 1).all() and (truth[1:, :4] == 0).all()
    assert batches[0][2][1] is None and batches[2][2] == [None]


class FirstPlusChannel(torch.nn.Module):
    """Logits = input channel 0, plus channel ``offset`` (a pattern the
    test writes into the input) where ``float64`` says so: a network
    whose float32 and float64 answers differ by a chosen amount, or an
    export that moves chosen logits by a chosen amount."""

    def __init__(self, offset=None, float64_only=False):
        super().__init__()
        self.offset, self.float64_only = offset, float64_only

    def forward(self, x):
        logits = x[:, :1]
        if self.offset is not None and (
                not self.float64_only or x.dtype == torch.float64):
            logits = logits + x[:, self.offset:self.offset + 1]
        return logits


def onnx_session(module, tmp_path):
    import onnxruntime as ort
    path = tmp_path / 'export.onnx'
    torch.onnx.export(module.eval(), (torch.zeros(1, 3, 1, 2), ), str(path),
                      dynamo=False, opset_version=17, input_names=['x'],
                      output_names=['y'],
                      dynamic_axes={'x': {0: 'n'}, 'y': {0: 'n'}})
    return ort.InferenceSession(str(path),
                                providers=['CPUExecutionProvider'])


def case(name, *pixels):
    """A ``(1, 3, 1, len(pixels))`` batch, one ``(c0, c1, c2)`` a pixel."""
    return name, np.array(pixels, np.float32).T[None, :, None, :].copy()


def test_the_tolerance_comes_from_the_trained_model_not_the_export(
        tmp_path):
    """The noise floor (float32 vs float64 of the model as trained) and
    the logit scale are the trained model's; a pixel whose exact logit
    is beyond the tolerance from the threshold must keep its decision
    even where the difference is within it. Figures worked out by hand:
    scale 1, tolerance 1e-4 + 3e-4 * 1 = 4e-4 (above 4 x noise 8e-5); the
    export flips pixel A (float32 3.6e-4, float64 4.4e-4) to -2e-5: a
    3.8e-4 difference, a decisive mismatch (mutation testing: a noise
    floor measured on the export, over the first case only, a pass rule
    without the mask rule and ``within_atol`` judged on the tolerance
    passed)."""
    trained = FirstPlusChannel(offset=1, float64_only=True)
    session = onnx_session(FirstPlusChannel(offset=2), tmp_path)
    cases = [case('flat', (1.0, 0, 0), (-0.5, 0, 0)),
             case('edge', (3.6e-4, 0.8e-4, -3.8e-4), (1.0, 0, 0))]
    result = parity.check_parity(trained, trained, session, cases,
                                 threshold=0.5)
    assert result['errors'] == []
    assert result['float32_noise'] == pytest.approx(0.8e-4, rel=1e-3)
    assert result['logit_scale'] == pytest.approx(1.0)
    assert result['tolerance'] == pytest.approx(4e-4, rel=1e-3)
    assert result['max_abs_diff'] == pytest.approx(3.8e-4, rel=1e-3)
    assert result['within_atol'] is False
    assert result['mask_mismatch_pixels'] == 1
    assert result['mask_mismatch_borderline'] == 0
    assert result['passed'] is False

    # The same flip of a pixel whose exact logit is within the tolerance
    # of the threshold (3e-4) is rounding's to make: it passes.
    cases[1] = case('edge', (2.2e-4, 0.8e-4, -2.4e-4), (1.0, 0, 0))
    result = parity.check_parity(trained, trained, session, cases,
                                 threshold=0.5)
    assert result['mask_mismatch_pixels'] == 1
    assert result['mask_mismatch_borderline'] == 1
    assert result['passed'] is True


def test_a_wrong_export_cannot_widen_its_own_tolerance(tmp_path):
    """An export 1e-2 off on one pixel of an exact network (no float32
    noise) fails: the tolerance stays 1e-4 + 3e-4 * 2 (mutation testing:
    a noise floor measured against the export grew it to 4e-2)."""
    trained = FirstPlusChannel()
    session = onnx_session(FirstPlusChannel(offset=2), tmp_path)
    cases = [case('one', (2.0, 0, 0), (-1.0, 0, 1e-2))]
    result = parity.check_parity(trained, trained, session, cases,
                                 threshold=0.5)
    assert result['float32_noise'] == 0
    assert result['tolerance'] == pytest.approx(7e-4)
    assert result['max_abs_diff'] == pytest.approx(1e-2, rel=1e-3)
    assert result['mask_mismatch_pixels'] == 0
    assert result['passed'] is False


def test_a_decision_exactly_the_tolerance_from_the_threshold_is_borderline():
    """"More than ``atol`` away" decides: a flipped pixel whose exact logit
    is exactly ``atol`` from the threshold is borderline (values exact in
    binary)."""
    reference = np.array([[[[0.25, 2.0]]]], np.float32)
    candidate = np.array([[[[-0.25, 2.0]]]], np.float32)
    exact = np.array([[[[0.5, 2.0]]]], np.float64)
    figures = parity.compare_logits(reference, candidate, 0.5, atol=0.5,
                                    exact=exact)
    assert figures['mask_mismatch'] == 1
    assert figures['mask_mismatch_decisive'] == 0


def test_a_limit_of_zero_checks_every_named_image(tmp_path):
    """``--num-check-images 0`` means all the images named, not none
    (which would leave the check to random inputs alone)."""
    for index in range(3):
        cv2.imwrite(str(tmp_path / f'i{index}.png'),
                    np.full((6, 5, 3), index * 40, np.uint8))
    pairs = parity.explicit_check_pairs([str(tmp_path)], limit=0)
    assert sorted(osp.basename(image) for image, _ in pairs) == [
        'i0.png', 'i1.png', 'i2.png']
    assert len(parity.explicit_check_pairs([str(tmp_path)], limit=2)) == 2


def test_a_limit_of_zero_checks_every_image_of_the_config_split(
        tiny_config):
    """``--num-check-images 0`` on a config's own test split takes all its
    images, not none (mutation testing: ``limit < 0`` passed)."""
    from mmseg_dsnet.engine.preflight import load_config
    cfg = load_config(str(tiny_config))
    every, source = parity.config_samples(cfg, 'test', limit=0)
    total = len(every)
    assert total > 2
    assert source.startswith(f'{total} of {total} test images of ')
    assert all(osp.isfile(image) and osp.isfile(mask)
               for image, mask in every)
    some, source = parity.config_samples(cfg, 'test', limit=2)
    assert some == every[:2] and source.startswith(f'2 of {total} ')
