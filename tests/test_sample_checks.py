"""mmseg_dsnet.datasets.sample_checks on small files: which masks, sizes
and files are refused, at the boundaries of each rule."""
import numpy as np
import pytest
from PIL import Image

from mmseg_dsnet.datasets.sample_checks import (check_sizes, decode_problem,
                                                file_problem, listing,
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


def test_a_webp_orientation_counts_for_the_pillow_loader_only(tmp_path):
    """OpenCV (mmcv's default loader) reads a WebP as stored, ignoring its
    EXIF orientation; mmcv's Pillow backend turns it. A WebP stored 20x10
    with orientation 6 is loaded 10x20 by the Pillow backend: only the
    upright mask fits it there, only the stored one for OpenCV."""
    image = tmp_path / 'a.webp'
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new('RGB', (20, 10)).save(image, exif=exif)
    upright, stored = tmp_path / 'upright.png', tmp_path / 'stored.png'
    Image.new('L', (10, 20)).save(upright)
    Image.new('L', (20, 10)).save(stored)
    pairs = [(image, upright), (image, stored)]
    assert [m for m, _ in check_sizes(pairs, apply_exif=True)] == [upright]
    assert [m for m, _ in check_sizes(pairs, apply_exif='pillow')] == [
        stored]


def test_a_file_opencv_cannot_decode_is_named(tmp_path):
    """The full check of a sample that failed in the pipeline decodes the
    file as OpenCV (mmcv's loader) does: text saved under an image name
    (a .bmp, which has no end marker to look for; a .jpg ending with the
    JPEG end marker) is 'not a decodable image'; a real image is fine."""
    (tmp_path / 'a.bmp').write_bytes(b'not an image at all')
    (tmp_path / 'b.jpg').write_bytes(b'not an image either\xff\xd9')
    Image.new('RGB', (4, 4)).save(tmp_path / 'c.bmp')
    assert decode_problem(str(tmp_path / 'a.bmp')) == 'not a decodable image'
    assert decode_problem(str(tmp_path / 'b.jpg')) == 'not a decodable image'
    assert decode_problem(str(tmp_path / 'c.bmp')) is None


def test_a_mask_fixed_on_disk_is_read_again(tmp_path):
    """A mask is read once per version of the file: fixed in place (a
    0/255 mask converted to 0/1) it is read again in the same process,
    not reported from the reading of its old content."""
    import os
    path = tmp_path / 'm.png'
    Image.fromarray(np.asarray([[0, 255]], np.uint8)).save(path)
    assert mask_problem(str(path))[0] == 'values'
    Image.fromarray(np.asarray([[0, 1, 1]], np.uint8)).save(path)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert mask_problem(str(path)) is None


def test_a_listing_names_what_it_leaves_out():
    """Of 11 bad files, 10 are listed and the 11th counted; 10 are all
    listed."""
    items = [(f'm{i}.png', 'bad') for i in range(11)]
    lines = listing(items).splitlines()
    assert lines[:10] == [f'  m{i}.png: bad' for i in range(10)]
    assert lines[10:] == ['  ... and 1 more']
    assert listing(items[:10]).splitlines() == lines[:10]
    assert listing(items, limit=3).splitlines()[3:] == ['  ... and 8 more']
