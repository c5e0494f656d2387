"""Masks and overlays from hand-made logits (mutation testing: a zero
decision or a mean probability equal to the threshold counted as lesion,
and an empty output size accepted, passed the inference tests)."""
import numpy as np
import pytest

from mmseg_dsnet.apis.masks import draw_overlay, resize_to_mask, views_to_mask


def test_a_decision_of_zero_is_background():
    decision = np.array([[0, 1e-3], [-1, 0]], np.float32)
    np.testing.assert_array_equal(resize_to_mask(decision, (2, 2)),
                                  [[0, 1], [0, 0]])
    # Upsized 2x: each source pixel's 2x2 block (centres and edges).
    block = np.array([[-1, -1], [1, 1]], np.float32)
    np.testing.assert_array_equal(resize_to_mask(block, (4, 2)),
                                  [[0, 0], [0, 0], [1, 1], [1, 1]])


@pytest.mark.parametrize('size', [(0, 5), (5, 0)])
def test_an_empty_output_size_is_refused(size):
    with pytest.raises(ValueError, match='invalid output size'):
        resize_to_mask(np.ones((2, 2), np.float32), size)
    with pytest.raises(ValueError, match='invalid output size'):
        views_to_mask([np.ones((1, 2, 2), np.float32)] * 2, size, 0.5)


def test_views_merge_as_mean_probability_above_the_threshold():
    # Pixels: both views 0 (mean exactly 0.5); 2 and -1 (mean 0.575);
    # -2 and 1 (0.425); 3 and 3 (0.953).
    first = np.array([[[0, 2], [-2, 3]]], np.float32)
    second = np.array([[[0, -1], [1, 3]]], np.float32)
    np.testing.assert_array_equal(
        views_to_mask([first, second], (2, 2), 0.5), [[0, 1], [0, 1]])
    np.testing.assert_array_equal(
        views_to_mask([first, second], (2, 2), 0.6), [[0, 0], [0, 1]])
    # One view: its own decision (sigmoid above 0.5: logit above 0).
    np.testing.assert_array_equal(views_to_mask([first], (2, 2), 0.5),
                                  [[0, 1], [0, 1]])


def test_overlay_tints_the_lesion_and_is_downsized():
    rgb = np.zeros((100, 50, 3), np.uint8)
    mask = np.zeros((100, 50), np.uint8)
    mask[20:80, 10:40] = 1
    overlay = draw_overlay(rgb, mask, color=(200, 100, 40), alpha=0.5)
    assert overlay.shape == (100, 50, 3)
    assert overlay[50, 25].tolist() == [100, 50, 20]  # tinted inside
    assert overlay[20, 25].tolist() == [200, 100, 40]  # the contour
    assert overlay[5, 5].tolist() == [0, 0, 0]  # untouched outside
    assert rgb.max() == 0  # the input is not drawn on
    # The longer side decides (the shorter one, 50, is within 60).
    small = draw_overlay(rgb, mask, max_side=60)
    assert small.shape == (60, 30, 3)


def test_overlay_refuses_an_image_or_mask_it_would_draw_wrong():
    """``draw_overlay(img_as_float(photo), mask)`` returned a float64
    overlay whose tint was in 0..255 over pixels in 0..1 (a wrong picture,
    no error); a bool mask (``probability > 0.5``) or one of another size
    failed inside OpenCV or numpy indexing, naming neither."""
    from mmseg_dsnet.apis import ImageArrayError
    rgb = np.full((40, 60, 3), 100, np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 10:40] = 1
    expected = draw_overlay(rgb, mask)
    # A bool or 0/255 mask draws the same overlay as the 0/1 mask.
    for same in (mask.astype(bool), mask * np.uint8(255)):
        np.testing.assert_array_equal(draw_overlay(rgb, same), expected)
    with pytest.raises(ImageArrayError, match=r'draw_overlay: rgb has dtype '
                       r'float64 .*not uint8; it takes \(H, W, 3\) uint8'):
        draw_overlay(rgb / 255.0, mask)
    with pytest.raises(ImageArrayError, match=r'draw_overlay: rgb has shape '
                       r'\(40, 60\); it takes \(H, W, 3\) uint8 RGB arrays'):
        draw_overlay(rgb[..., 0], mask)
    for wrong, what in ((mask[:20], r'uint8 \(20, 60\)'),
                        (mask.T.copy(), r'uint8 \(60, 40\)'),
                        (mask.astype(np.float32), r'float32 \(40, 60\)'),
                        (mask[..., None], r'uint8 \(40, 60, 1\)')):
        with pytest.raises(ImageArrayError, match=rf'draw_overlay: mask is '
                           rf'{what}; it takes an \(40, 60\) integer or '
                           r'bool mask \(nonzero = lesion\), the size of '
                           r'rgb \(40, 60, 3\)'):
            draw_overlay(rgb, wrong)


def test_write_image_refuses_an_array_it_would_write_wrong(tmp_path):
    """``write_image('p.png', probability)`` (float in 0..1) was cast by
    OpenCV to 8 bits with only a warning: a file of 0s and 1s; an RGBA
    image lost its alpha; a bool mask failed inside OpenCV's overload
    resolution."""
    import cv2

    from mmseg_dsnet.apis import ImageArrayError, write_image
    probability = np.linspace(0, 1, 40 * 60, dtype=np.float32).reshape(40, 60)
    for image, what in ((probability, r'float32 \(40, 60\)'),
                        (probability > 0.5, r'bool \(40, 60\)'),
                        (np.zeros((40, 60, 4), np.uint8),
                         r'uint8 \(40, 60, 4\)'),
                        ([[0, 255]], 'a list')):
        path = tmp_path / 'p.png'
        with pytest.raises(ImageArrayError, match=rf'write_image: .*p.png: '
                           rf'the image is {what}; it takes uint8 \(H, W\) '
                           r'or \(H, W, 3\) RGB arrays: a mask as mask \* '
                           r'255'):
            write_image(str(path), image)
        assert not path.exists()
    mask = (probability > 0.5).astype(np.uint8) * np.uint8(255)
    write_image(str(tmp_path / 'm.png'), mask)
    np.testing.assert_array_equal(
        cv2.imread(str(tmp_path / 'm.png'), cv2.IMREAD_UNCHANGED), mask)


def test_overlay_refuses_a_style_it_would_wrap_around():
    """``draw_overlay(rgb, mask, alpha=35)`` (a percentage), ``alpha=1.5``
    or ``color=(300, -20, 0)`` wrapped the tint around uint8 into other
    colours, and ``max_side=0`` drew a 1x1 overlay, without an error."""
    rgb = np.full((40, 60, 3), 100, np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 10:40] = 1
    for kwargs, match in (
            (dict(alpha=35), r'alpha must be an opacity from 0 to 1, got 35'),
            (dict(alpha=1.5), r'got 1\.5'), (dict(alpha=-0.5), r'got -0\.5'),
            (dict(color=(300, -20, 0)), r'color must be three whole '
             r'numbers 0\.\.255 \(R, G, B\), got \(300, -20, 0\)'),
            (dict(color=(255, 0)), r'got \(255, 0\)'),
            (dict(max_side=0), r'max_side must be a whole number of at '
             r'least 1, got 0')):
        with pytest.raises(ValueError, match=rf'draw_overlay: .*{match}'):
            draw_overlay(rgb, mask, **kwargs)
    # The limits themselves are drawn.
    assert draw_overlay(rgb, mask, alpha=1.0, color=(255, 0, 0),
                        max_side=1).shape == (1, 1, 3)
    assert draw_overlay(rgb, mask, alpha=0)[20, 20].tolist() == [100] * 3


def test_resize_to_mask_refuses_a_size_or_map_it_would_misread():
    """``resize_to_mask(d, (10.7, 8.2))`` cut the size to 10x8 without a
    word; ``resize_to_mask(logits[0], size)`` with one image's ``(1, h, w)``
    logits failed with ``too many values to unpack`` from inside."""
    decision = np.ones((4, 4), np.float32)
    for size in ((10.7, 8.2), (10, True), 10, (10, 8, 3)):
        with pytest.raises(ValueError, match=r'invalid output size .*: give '
                           r'\(height, width\), two whole numbers of at '
                           r'least 1'):
            resize_to_mask(decision, size)
    with pytest.raises(ValueError, match=r'resize_to_mask: the decision map '
                       r'has shape \(1, 4, 4\); it takes one \(h, w\) map '
                       r'.*decision_map\(logits, threshold\)'):
        resize_to_mask(decision[None], (10, 8))
    assert resize_to_mask(decision, (np.int64(10), 8)).shape == (10, 8)


def test_resize_to_mask_matches_opencv_bilinear_at_the_edges():
    """Mutation testing: resampling taps left unclamped at the image edge
    (the first output pixel read the *last* source pixel, index -1) and a
    resampled decision of exactly 0 counted as lesion passed the tests
    above."""
    # Upsized 1x2 -> 1x4, by hand (half-pixel centres, clamped at 0):
    # sources -0.25 -> 0, 0.25, 0.75, 1.25 -> 1: values 1, -0.5, -3.5, -5.
    np.testing.assert_array_equal(
        resize_to_mask(np.array([[1, -5]], np.float32), (1, 4)),
        [[1, 0, 0, 0]])
    # Downsized 2x2 -> 2x1: each row is the mean of its two pixels; the
    # first row's mean is exactly 0 (background), the second's is 1.
    np.testing.assert_array_equal(
        resize_to_mask(np.array([[-1, 1], [-1, 3]], np.float32), (2, 1)),
        [[0], [1]])
    # Against OpenCV's INTER_LINEAR (an independent implementation) on a
    # random map, up and down, in bands of 3 rows; pixels within 1e-4 of
    # 0 are left out (float rounding may differ there).
    import cv2
    rng = np.random.default_rng(0)
    decision = rng.normal(size=(7, 9)).astype(np.float32)
    for size in ((20, 31), (3, 4), (7, 20), (16, 9)):
        expected = cv2.resize(decision, size[::-1],
                              interpolation=cv2.INTER_LINEAR)
        clear = np.abs(expected) > 1e-4
        mask = resize_to_mask(decision, size, chunk_rows=3)
        assert mask.shape == size
        np.testing.assert_array_equal(mask[clear], (expected > 0)[clear])


def test_resize_to_mask_refuses_an_empty_decision_map():
    """Mutation testing: without the empty-map check a (0, 4) map failed
    with an IndexError from inside the resampling."""
    with pytest.raises(ValueError, match=r'resize_to_mask: the decision map '
                       r'has shape \(0, 4\)'):
        resize_to_mask(np.zeros((0, 4), np.float32), (3, 3))


def test_overlay_refuses_a_bool_or_out_of_range_style():
    """Mutation testing: ``color`` 256, a bool colour value or a bool
    ``alpha`` were accepted by mutated checks without a test failing."""
    rgb = np.full((8, 8, 3), 100, np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 1
    for kwargs, match in ((dict(color=(256, 0, 0)), 'color must be'),
                          (dict(color=(True, 0, 0)), 'color must be'),
                          (dict(alpha=True), 'alpha must be'),
                          (dict(max_side=True), 'max_side must be')):
        with pytest.raises(ValueError, match=rf'draw_overlay: {match}'):
            draw_overlay(rgb, mask, **kwargs)


def test_overlay_downsize_rounds_to_the_nearest_pixel():
    """51 columns scaled by 60/100 are 30.6: 31 columns, not 30."""
    rgb = np.zeros((100, 51, 3), np.uint8)
    mask = np.zeros((100, 51), np.uint8)
    assert draw_overlay(rgb, mask, max_side=60).shape == (60, 31, 3)


def test_overlay_contour_is_the_outer_one_and_scales_with_the_longer_side():
    """The contour is drawn only around the lesion's outside (a hole's
    border stays tinted), and its thickness is round(longer side / 256):
    4 pixels for a 1024x64 image (1 from the shorter side)."""
    rgb = np.zeros((40, 60, 3), np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 10:50] = 1
    mask[18:22, 25:35] = 0  # a hole
    overlay = draw_overlay(rgb, mask, color=(200, 100, 40), alpha=0.5)
    assert overlay[10, 30].tolist() == [200, 100, 40]  # outer contour
    assert overlay[17, 30].tolist() == [100, 50, 20]  # hole border: tint
    assert overlay[20, 30].tolist() == [0, 0, 0]  # inside the hole
    rgb = np.zeros((1024, 64, 3), np.uint8)
    mask = np.zeros((1024, 64), np.uint8)
    mask[100:900, 16:48] = 1
    overlay = draw_overlay(rgb, mask, color=(200, 100, 40))
    assert overlay[500, 15].tolist() == [200, 100, 40]  # 1 px outside
    assert overlay[500, 10].tolist() == [0, 0, 0]  # 6 px outside


def test_write_image_writes_rgb_in_file_order(tmp_path, monkeypatch):
    """An RGB array is written as RGB (OpenCV encodes BGR: it must be
    converted), and a failed encoding is an OSError, not an
    AttributeError on ``None``."""
    import cv2

    from mmseg_dsnet.apis import write_image
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0] = 255  # pure red in RGB
    image[0, 0] = (10, 20, 30)
    write_image(str(tmp_path / 'red.png'), image)
    read = cv2.imread(str(tmp_path / 'red.png'), cv2.IMREAD_UNCHANGED)
    assert read[1, 1].tolist() == [0, 0, 255]  # BGR on reading back
    assert read[0, 0].tolist() == [30, 20, 10]
    monkeypatch.setattr(cv2, 'imencode', lambda *args: (False, None))
    with pytest.raises(OSError, match=r'could not encode a \.png image'):
        write_image(str(tmp_path / 'x.png'), image)
    assert not (tmp_path / 'x.png').exists()


def test_overlay_downsizes_one_pixel_over_max_side_and_keeps_nearest_labels():
    """An image one pixel longer than ``max_side`` is downsized too (5
    columns to 4, 3 rows to round(3 * 4 / 5) = 2). The mask is downsized
    by nearest neighbour (source column floor(x * 2): 0, 2, 4, 6), not
    blended: columns alternating 0/1 keep only background, so nothing is
    tinted and no contour drawn."""
    rgb = np.full((3, 5, 3), 100, np.uint8)
    assert draw_overlay(rgb, np.zeros((3, 5), np.uint8),
                        max_side=4).shape == (2, 4, 3)
    rgb = np.full((2, 8, 3), 100, np.uint8)
    mask = np.tile(np.asarray([0, 1], np.uint8), (2, 4))
    overlay = draw_overlay(rgb, mask, max_side=4)
    assert overlay.shape == (1, 4, 3)
    assert (overlay == 100).all()
