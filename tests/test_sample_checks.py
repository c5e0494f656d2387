"""mmseg_dsnet.datasets.sample_checks on small files: which masks, sizes
and files are refused, at the boundaries of each rule."""
import numpy as np
import pytest
from PIL import Image

from mmseg_dsnet.datasets.sample_checks import (check_sizes, file_problem,
                                                mask_problem)


@pytest.mark.parametrize('orientation,turned', [
    (2, False), (3, False), (4, False),
    (5, True), (6, True), (7, True), (8, True)])
def test_each_transposing_exif_orientation_swaps_the_size(
        tmp_path, orientation, turned):
    """Orientations 5 to 8 (transpose, rotate 90, transverse, rotate 270)
    swap width and height as the loader turns the image; 2 to 4 (mirrors,
    rotate 180) keep them. A mask of the stored size fits only the
    latter."""
    image = tmp_path / 'a.jpg'
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new('RGB', (20, 10)).save(image, exif=exif)
    upright, stored = tmp_path / 'upright.png', tmp_path / 'stored.png'
    Image.new('L', (10, 20)).save(upright)
    Image.new('L', (20, 10)).save(stored)
    bad = [m for m, _ in check_sizes([(image, upright), (image, stored)])]
    assert bad == ([stored] if turned else [upright])


def test_mask_values_and_dtype(tmp_path):
    """0/1 masks pass, also with 255 beside 1 (an ignore label); 0/255
    alone is an unconverted mask; a 16-bit mask is refused even when it
    holds 0/1."""
    def mask(values, name, dtype=np.uint8):
        path = tmp_path / name
        Image.fromarray(np.asarray([values], dtype)).save(path)
        return str(path)

    assert mask_problem(mask([0, 1, 1], 'a.png')) is None
    assert mask_problem(mask([0, 1, 255], 'b.png')) is None
    assert mask_problem(mask([1, 255], 'c.png')) is None
    assert mask_problem(mask([0, 255], 'd.png')) == (
        'values', 'values {0, 255}: an unconverted 0/255 mask (the lesion '
        'would be learned as "ignore")')
    assert mask_problem(mask([0, 2], 'e.png')) == (
        'values', 'unexpected values {2}')
    assert mask_problem(mask([0, 1], 'f.png', np.uint16)) == (
        'values', 'dtype uint16, expected uint8')


def test_file_problems(tmp_path):
    """An empty file is 'empty' whatever its kind; a PNG or JPEG with
    padding after its end marker (more than the 64 bytes looked at) decodes
    and passes; one cut short is truncated."""
    for name in ('a.png', 'a.jpg', 'a.bmp'):
        (tmp_path / name).write_bytes(b'')
        assert file_problem(str(tmp_path / name)) == 'empty'
        assert file_problem(str(tmp_path / name), b'') == 'empty'
    for name in ('p.png', 'p.jpg'):
        path = tmp_path / name
        Image.fromarray(np.random.default_rng(0).integers(
            0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        whole = path.read_bytes()
        path.write_bytes(whole + b'\0' * 100)
        assert file_problem(str(path)) is None
        path.write_bytes(whole[:len(whole) // 2])
        assert file_problem(str(path)) == 'truncated or corrupt'
    assert file_problem(str(tmp_path / 'none.png')) == 'missing'


def test_a_palette_mask_is_read_as_its_loader_reads_it(tmp_path):
    """Indices 0/1 drawn black and dark red: valid labels for a loader that
    reads palette indices, a colour image for one that reads colours (in
    either order: the result of one reading is not reused for the
    other)."""
    path = tmp_path / 'p.png'
    picture = Image.fromarray(np.asarray([[0, 1]], np.uint8), mode='P')
    picture.putpalette([0, 0, 0, 128, 0, 0])
    picture.save(path)
    colour = ('values', '3 channels (a colour image), expected a '
              'single-channel label mask')
    assert mask_problem(str(path)) is None
    assert mask_problem(str(path), palette_indices=False) == colour
    other = tmp_path / 'q.png'
    picture.save(other)
    assert mask_problem(str(other), palette_indices=False) == colour
    assert mask_problem(str(other)) is None
