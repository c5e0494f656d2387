"""The export parity check's figures on hand-made values (mutation
testing: a strict ``<`` tolerance, decisions judged on the candidate's
logits, a dropped last batch and a missing second input size passed)."""
import cv2
import numpy as np
import pytest

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
