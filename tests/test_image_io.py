"""``mmseg_dsnet.image_io.read_image`` and Pillow's process-wide limit."""
import threading
import warnings

import numpy as np
import pytest
from PIL import Image

import mmseg_dsnet.image_io as image_io


def _save(path, shape=(30, 40)):
    Image.fromarray(np.full(shape + (3, ), 90, np.uint8)).save(path)
    return str(path)


def test_read_image_leaves_pillows_limit_alone_while_decoding(
        tmp_path, monkeypatch):
    # Another thread decoding at the same time reads the same global:
    # turning it off here would take its decompression-bomb guard away.
    seen = []
    decode = image_io.decode_rgb

    def spy(image, notes):
        seen.append(Image.MAX_IMAGE_PIXELS)
        return decode(image, notes)

    monkeypatch.setattr(image_io, 'decode_rgb', spy)
    limit = Image.MAX_IMAGE_PIXELS
    image = image_io.read_image(_save(tmp_path / 'a.png'))
    assert image.size == (30, 40)
    assert seen == [limit]
    assert Image.MAX_IMAGE_PIXELS == limit


@pytest.mark.parametrize('name', ['a.png', 'a.jpg', 'a.bmp'])
def test_read_image_applies_max_pixels_not_pillows_limit(
        tmp_path, monkeypatch, name):
    # Pillow's limit (here far below the image) stays in force for everyone
    # else; read_image is governed by its own max_pixels, as before.
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)
    path = _save(tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter('error', Image.DecompressionBombWarning)
        image = image_io.read_image(path)
    assert image.size == (30, 40)
    assert int(image.rgb.mean()) == 90
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    with pytest.raises(image_io.ImageReadError,
                       match=r'a\.\w+: 40x30 = 1200 pixels is above the '
                       r'limit of 1000 pixels'):
        image_io.read_image(path, max_pixels=1000)
    assert Image.MAX_IMAGE_PIXELS == 100


def test_read_image_names_pillows_limit_when_a_plugin_checks_it(
        tmp_path, monkeypatch):
    # TIFF checks Pillow's limit again on each strip while decoding: a clear
    # refusal that names the limit, not a traceback.
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)
    path = _save(tmp_path / 'a.tif')
    with pytest.raises(image_io.ImageReadError,
                       match=r"a\.tif: refused by Pillow's image-size limit "
                       r'\(PIL\.Image\.MAX_IMAGE_PIXELS = 100\)'):
        image_io.read_image(path)


def test_read_image_refusals_unchanged(tmp_path):
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    with pytest.raises(image_io.ImageReadError,
                       match='notes.png: not an image file'):
        image_io.read_image(str(text))
    cut = tmp_path / 'cut.png'
    data = open(_save(tmp_path / 'whole.png'), 'rb').read()
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(image_io.ImageReadError,
                       match='cut.png: unreadable or truncated'):
        image_io.read_image(str(cut))


def test_read_image_in_threads_keeps_others_guard(tmp_path):
    # While many reads run, a bomb opened by another thread is still
    # refused by Pillow.
    path = _save(tmp_path / 'a.png')
    bomb = _save(tmp_path / 'bomb.png', (200, 200))
    stop = threading.Event()
    escaped, reads, failures = [], [], []

    def reader():
        # A reader that failed at once would leave nothing to overlap with.
        try:
            while not stop.is_set():
                reads.append(image_io.read_image(path).rgb.shape)
        except Exception as err:  # noqa: BLE001  (checked below)
            failures.append(err)

    def opener():
        for _ in range(200):
            try:
                with Image.open(bomb):
                    escaped.append(True)
            except Image.DecompressionBombError:
                pass

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 10_000
    try:
        threads = [threading.Thread(target=reader) for _ in range(2)]
        for thread in threads:
            thread.start()
        opener()
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        Image.MAX_IMAGE_PIXELS = old
    assert not escaped
    assert failures == [] and len(reads) > 0


def test_pixel_values_without_an_8_bit_reading_are_refused(tmp_path):
    """A float TIFF in 0..4000 (or 32-bit values above 16 bits) was
    clipped to a nearly white picture, noted as ``scaled by 1 to 8 bits``,
    and segmented, exit 0; now it is refused naming its range. Float images
    in 0..1 or 0..255 and 16-bit ones still read."""
    rng = np.random.default_rng(0)
    wide = str(tmp_path / 'wide.tif')
    Image.fromarray((rng.random((20, 30)) * 4000).astype(np.float32)).save(
        wide)
    with pytest.raises(image_io.ImageReadError,
                       match=r'wide.tif: floating-point image \(F\) with '
                       r'values .* outside 0..255'):
        image_io.read_image(wide)
    deep = str(tmp_path / 'deep.tif')
    Image.fromarray((rng.random((20, 30)) * 200000).astype(np.int32),
                    'I').save(deep)
    with pytest.raises(image_io.ImageReadError,
                       match=r'deep.tif: 32-bit integer image \(I\) with '
                       r'values .* outside 0..65535'):
        image_io.read_image(deep)
    unit = str(tmp_path / 'unit.tif')
    Image.fromarray(np.full((20, 30), 0.5, np.float32)).save(unit)
    assert image_io.read_image(unit).rgb[0, 0].tolist() == [128] * 3
    sixteen = str(tmp_path / 'sixteen.png')
    Image.fromarray(np.full((20, 30), 257 * 100, np.uint16)).save(sixteen)
    assert image_io.read_image(sixteen).rgb[0, 0].tolist() == [100] * 3


def test_an_orientation_in_xmp_alone_is_not_applied(tmp_path):
    """A JPEG whose orientation is only in its XMP packet (no EXIF tag):
    Pillow's ``getexif`` reports it, so the image (and its mask) was
    turned, while OpenCV (mmcv's loader, ``tools/test.py``) and viewers
    show it as stored. The EXIF tag itself is still applied."""
    import cv2
    pixels = np.zeros((30, 40, 3), np.uint8)
    pixels[:10] = 200
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
           b'"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description'
           b' xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation='
           b'"6"/></rdf:RDF></x:xmpmeta>')
    only_xmp = str(tmp_path / 'xmp.jpg')
    Image.fromarray(pixels).save(only_xmp, xmp=xmp)
    assert Image.open(only_xmp).getexif().get(0x0112) == 6  # Pillow's view
    loaded = image_io.read_image(only_xmp)
    assert loaded.size == cv2.imread(only_xmp).shape[:2] == (30, 40)
    assert not loaded.notes
    tagged = str(tmp_path / 'exif.jpg')
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tagged, exif=exif)
    loaded = image_io.read_image(tagged)
    assert loaded.size == cv2.imread(tagged).shape[:2] == (40, 30)
    assert 'EXIF orientation 6 applied' in loaded.notes[0]


def test_a_16_bit_colour_image_of_8_bit_values_is_refused(tmp_path):
    """``cv2.imwrite('x.png', rgb8.astype(np.uint16))``: Pillow keeps the
    high bytes of 16-bit colour, so the picture read black (noted only as
    ``reduced to 8 bits``) and its mask was written, exit 0; grayscale
    images of this kind are read as 8-bit values. Now it is refused; a
    16-bit colour image of full range still reads."""
    import cv2
    pixels = np.zeros((20, 30, 3), np.uint16)
    pixels[:] = (150, 120, 100)
    low = str(tmp_path / 'low.png')
    cv2.imwrite(low, pixels)
    with pytest.raises(image_io.ImageReadError,
                       match=r'low.png: 16-bit colour image \(RGB;16B\) '
                       'whose values all lie below 256'):
        image_io.read_image(low)
    full = str(tmp_path / 'full.png')
    cv2.imwrite(full, pixels * 257)
    assert image_io.read_image(full).rgb[0, 0].tolist() == [100, 120, 150]
    # Black pixels in a 16-bit colour photo are no sign of 8-bit values.
    pixels[0, 0] = 0
    cv2.imwrite(full, pixels * 257)
    rgb = image_io.read_image(full).rgb
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[0, 1].tolist() == [100, 120, 150]


@pytest.mark.parametrize('name', ['low.png', 'low.tif'])
def test_a_16_bit_gray_image_of_8_bit_values_is_refused(tmp_path, name):
    """``cv2.imwrite('x.png', gray8.astype(np.uint16))``: OpenCV (mmcv's
    ``LoadImageFromFile``: test.py, training, MMSegInferencer) keeps the
    high byte and reads it black, while the shared reader (infer.py) kept
    the values and noted ``holding 8-bit values``: the same photo gave
    different masks in the project's tools. Now it is refused as the
    colour case is; a full-range 16-bit gray image reads as OpenCV's."""
    import cv2
    pixels = np.full((20, 30), 150, np.uint16)
    pixels[:5] = 255
    low = str(tmp_path / name)
    cv2.imwrite(low, pixels)
    assert not cv2.imread(low, cv2.IMREAD_COLOR).any()  # what test.py sees
    with pytest.raises(image_io.ImageReadError,
                       match=rf'{name}: 16-bit grayscale image \(I;16\w?\) '
                       'whose values all lie below 256'):
        image_io.read_image(low)
    full = str(tmp_path / ('full' + name[3:]))
    cv2.imwrite(full, pixels * 257)
    assert np.array_equal(image_io.read_image(full).rgb,
                          cv2.imread(full, cv2.IMREAD_COLOR)[..., ::-1])


def test_a_32_bit_gray_image_is_named_by_its_depth(tmp_path):
    """Pillow presents a 32-bit integer TIFF and a 16-bit PGM alike as
    mode ``'I'``: the 32-bit TIFF of 8-bit values was refused as a
    ``16-bit grayscale image (I)``, and one of 16-bit values was noted as
    a ``16-bit image``. The depth the file stores is named now; values
    within 0..65535 still read as 16-bit ones."""
    import cv2
    pixels = np.full((20, 30), 150, np.int32)
    pixels[:5] = 255
    low = str(tmp_path / 'low.tif')
    Image.fromarray(pixels, 'I').save(low)
    with pytest.raises(image_io.ImageReadError,
                       match=r'low.tif: 32-bit grayscale image \(I\) whose '
                       r'values all lie below 256 \(8-bit values saved as '
                       r'32 bits\?\)'):
        image_io.read_image(low)
    full = str(tmp_path / 'full.tif')
    Image.fromarray(pixels * 257, 'I').save(full)
    read = image_io.read_image(full)
    assert read.rgb[0, 0].tolist() == [255] * 3
    assert read.notes[0] == \
        '32-bit image (I) scaled to 8 bits as 16-bit values'
    pgm = str(tmp_path / 'sixteen.pgm')
    cv2.imwrite(pgm, (pixels * 257).astype(np.uint16))
    assert Image.open(pgm).mode == 'I'
    assert image_io.read_image(pgm).notes[0] == \
        '16-bit image (I) scaled to 8 bits'


@pytest.mark.parametrize('orientation', [3, 6])
def test_a_webp_orientation_is_read_as_opencv_reads_it(tmp_path, orientation):
    """OpenCV (mmcv's ``LoadImageFromFile``: ``tools/train.py``/``test.py``)
    ignores the EXIF orientation of a WebP; the shared reader turned it,
    so ``infer.py`` segmented the photo turned (180 degrees for 3, the
    size swapped for 6) against how the model was trained and tested on
    the same file, and the mask-size check expected the turned size. Now
    the reader reads it as stored, and says so."""
    import cv2

    from mmseg_dsnet.datasets.sample_checks import check_sizes
    pixels = np.zeros((30, 40, 3), np.uint8)
    pixels[:10, :10] = 200
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    path = str(tmp_path / 'photo.webp')
    image.save(path, exif=exif, lossless=True)
    loaded = image_io.read_image(path)
    theirs = cv2.imread(path, cv2.IMREAD_COLOR)[..., ::-1]
    assert loaded.rgb.shape == theirs.shape == (30, 40, 3)
    assert np.array_equal(loaded.rgb, theirs)
    assert np.array_equal(loaded.rgb, pixels)
    assert loaded.notes == [
        f'EXIF orientation {orientation} of the WEBP image not applied, as '
        'OpenCV (the training and test loader) reads it as stored']
    mask = str(tmp_path / 'mask.png')
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(mask)
    assert check_sizes([(path, mask)]) == []
    # mmcv's Pillow backend turns a WebP too: then the turned size counts.
    assert bool(check_sizes([(path, mask)], apply_exif='pillow')) == (
        orientation == 6)


def test_pixel_ranges_at_their_limits_read_as_documented(tmp_path):
    """The edges of each reading: a float image whose brightest pixel is
    exactly 1.0 is in 0..1 (scaled by 255), one reaching exactly 255 is in
    0..255 (kept, not refused); a 16-bit image whose brightest pixel is
    exactly 256 is scaled by its high byte (one at 255 is refused, see
    ``test_a_16_bit_gray_image_of_8_bit_values_is_refused``), as is one
    reaching 65535."""
    from mmseg_dsnet.rgb_reader import read_rgb
    cases = [
        (np.array([[0.0, 0.5, 1.0]], np.float32), 'unit.tif', [0, 128, 255]),
        (np.array([[0.0, 2.0, 255.0]], np.float32), 'byte.tif', [0, 2, 255]),
        (np.array([[0, 2, 256]], np.uint16), 'low16.png', [0, 0, 1]),
        (np.array([[0, 511, 65535]], np.uint16), 'high16.png', [0, 1, 255]),
    ]
    for values, name, expected in cases:
        Image.fromarray(values).save(tmp_path / name)
        rgb = read_rgb(tmp_path / name)
        assert rgb.shape == (1, 3, 3), name
        assert rgb[0, :, 0].tolist() == expected, name
        assert (rgb == rgb[..., :1]).all(), name  # gray on all 3 channels


def test_a_tiff_orientation_is_applied_as_opencv_applies_it(tmp_path):
    """OpenCV (mmcv's LoadImageFromFile) turns a TIFF upright by its
    orientation tag, as a JPEG's; so must the shared reader, and say so:
    Pillow's TIFF loader turns it itself and drops the tag, and the reader
    (reading the tag after loading) noted nothing."""
    import mmcv

    from mmseg_dsnet.rgb_reader import read_rgb
    upright = np.zeros((24, 32, 3), np.uint8)
    upright[:6, :10] = (250, 20, 20)
    path = tmp_path / 'o6.tif'
    Image.fromarray(np.ascontiguousarray(np.rot90(upright))).save(
        path, tiffinfo={274: 6})
    notes = []
    ours = read_rgb(path, notes)
    theirs = mmcv.imfrombytes(path.read_bytes(), flag='color')[..., ::-1]
    assert np.array_equal(theirs, upright)
    assert np.array_equal(ours, upright)
    # It was turned (by Pillow's TIFF loader) but not noted.
    assert notes == ['EXIF orientation 6 applied (stored 24x32, upright '
                     '32x24)']


def test_an_rgba_tiff_reads_as_opencv_reads_it(tmp_path):
    """OpenCV (mmcv's LoadImageFromFile: ``tools/test.py``, training)
    reads an 8-bit TIFF through libtiff's RGBA interface, which multiplies
    unassociated alpha into the colour (Pillow's own RGBA TIFFs): the
    transparent ground turns black. The shared reader dropped the alpha
    and kept the hidden colours, so ``infer.py`` segmented another picture
    (up to 252 levels apart), exit 0. Now it multiplies as OpenCV does, and
    says so; premultiplied (associated) alpha, which Pillow divides out, is
    refused; a grey+alpha TIFF still reads as OpenCV reads it."""
    import mmcv

    from mmseg_dsnet.rgb_reader import read_rgb
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (16, 256, 3), dtype=np.uint8)
    alpha = np.tile(np.arange(256, dtype=np.uint8), (16, 1))
    alpha[:, :40] = 0  # a transparent ground
    path = tmp_path / 'lesion.tif'
    Image.fromarray(np.dstack([colour, alpha]), 'RGBA').save(path)

    def opencv(file):
        return mmcv.imfrombytes(file.read_bytes(), flag='color')[..., ::-1]

    loaded = image_io.read_image(str(path))
    assert np.array_equal(loaded.rgb, opencv(path))
    assert not loaded.rgb[:, :40].any()
    assert loaded.notes == ['RGBA TIFF: colour multiplied by its alpha and '
                            'alpha dropped, as OpenCV reads it']
    # The same tag marked associated (ExtraSamples 1): refused.
    data = path.read_bytes()
    entry = b'\x52\x01\x03\x00\x01\x00\x00\x00\x02\x00'
    assert data.count(entry) == 1
    premultiplied = tmp_path / 'premultiplied.tif'
    premultiplied.write_bytes(data.replace(entry, entry[:8] + b'\x01\x00'))
    with pytest.raises(image_io.ImageReadError,
                       match=r'premultiplied.tif: RGBA TIFF with associated '
                       r'\(premultiplied\) alpha: Pillow divides'):
        image_io.read_image(str(premultiplied))
    gray_alpha = tmp_path / 'gray_alpha.tif'
    Image.fromarray(np.dstack([colour[..., 0], alpha]), 'LA').save(gray_alpha)
    assert np.array_equal(read_rgb(gray_alpha), opencv(gray_alpha))


@pytest.mark.parametrize('magic,maxval,channels', [
    (b'P5', 100, 1), (b'P5', 4095, 1), (b'P6', 1000, 3), (b'P6', 65535, 3)])
def test_a_pnm_of_another_maximum_is_refused(tmp_path, magic, maxval,
                                             channels):
    """A PGM/PPM whose maximum value is not 255: Pillow stretches the
    values to 0..255 (16 of 100 read as 41; a 16-bit PPM as x*255/65535),
    OpenCV (mmcv, so ``tools/test.py`` and training) keeps them (16) or
    takes the high byte; ``infer.py`` segmented another picture, exit 0 and
    no note. Now it is refused; maxval 255 and 16-bit grayscale, read
    alike by both, still read."""
    import mmcv
    rng = np.random.default_rng(1)
    values = rng.integers(0, maxval + 1, (6, 8, channels))
    dtype = '>u2' if maxval > 255 else 'u1'
    path = tmp_path / 'scan.pnm'
    path.write_bytes(magic + b'\n8 6\n%d\n' % maxval +
                     values.astype(dtype).tobytes())
    kind = 'colour' if channels == 3 else 'grayscale'
    with pytest.raises(image_io.ImageReadError,
                       match=f'scan.pnm: {kind} PGM/PPM image with maximum '
                       f'value {maxval} \\(not 255\\)'):
        image_io.read_image(str(path))
    for good_max in (255, 65535) if channels == 1 else (255, ):
        dtype = '>u2' if good_max > 255 else 'u1'
        values = rng.integers(0, good_max + 1, (6, 8, channels))
        path.write_bytes(magic + b'\n8 6\n%d\n' % good_max +
                         values.astype(dtype).tobytes())
        theirs = mmcv.imfrombytes(path.read_bytes(), flag='color')
        assert np.array_equal(image_io.read_image(str(path)).rgb,
                              theirs[..., ::-1])


@pytest.mark.parametrize('mode', ['L', 'P', 'RGBA', 'I;16'])
@pytest.mark.parametrize('orientation', [3, 6])
def test_an_uncompressed_tiff_is_turned_as_opencv_turns_it(
        tmp_path, mode, orientation):
    """Pillow turns a TIFF by its orientation tag when loading it, but an
    uncompressed grayscale, palette, RGBA or 16-bit grayscale file that it
    maps (read from a path) kept its stored axes under orientation 6:
    ``infer.py`` (``read_image``) segmented it a quarter turn against
    ``tools/test.py``, noted ``EXIF orientation 6 applied``, exit 0. Now
    it is turned as mmcv's ``LoadImageFromFile`` turns it (3 was read
    right: kept as a guard)."""
    import mmcv
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, (24, 32, 4), dtype=np.uint8)
    pixels[..., 3] = 255  # opaque: the alpha reading is another test's
    image = {
        'L': lambda: Image.fromarray(pixels[..., 0]),
        'P': lambda: Image.fromarray(pixels[..., :3]).quantize(16),
        'RGBA': lambda: Image.fromarray(pixels, 'RGBA'),
        'I;16': lambda: Image.fromarray(
            pixels[..., 0].astype(np.uint16) * 257),
    }[mode]()
    path = tmp_path / 'turned.tif'
    image.save(path, tiffinfo={274: orientation})
    loaded = image_io.read_image(str(path))
    theirs = mmcv.imfrombytes(path.read_bytes(), flag='color')[..., ::-1]
    assert theirs.shape[:2] == ((32, 24) if orientation == 6 else (24, 32))
    assert np.array_equal(loaded.rgb, theirs)
    assert f'EXIF orientation {orientation} applied' in loaded.notes[0]


def test_what_loading_changes_is_noted(tmp_path):
    """The notes users read to know what the model saw: a 16-bit colour
    image cut to 8 bits, and a file of two frames read as its first."""
    import cv2

    from mmseg_dsnet.rgb_reader import read_rgb
    bgr = np.zeros((4, 6, 3), np.uint16)
    bgr[:] = (100 * 256 + 7, 120 * 256 + 200, 150 * 256 + 255)
    deep = tmp_path / 'deep.png'
    cv2.imwrite(str(deep), bgr)
    notes = []
    rgb = read_rgb(deep, notes)
    assert rgb.shape == (4, 6, 3)
    assert rgb[0, 0].tolist() == [150, 120, 100]  # the high bytes
    assert notes == ['16-bit image (RGB;16B) reduced to 8 bits']
    frames = [Image.fromarray(np.full((4, 6, 3), v, np.uint8))
              for v in (10, 200)]
    two = tmp_path / 'two.tif'
    frames[0].save(two, save_all=True, append_images=frames[1:])
    notes = []
    assert (read_rgb(two, notes) == 10).all()
    assert notes == ['2 frames: only the first is used']


@pytest.mark.parametrize('orientation,upright_size,corner', [
    (2, (4, 6), (0, 5)), (3, (4, 6), (3, 5)), (4, (4, 6), (3, 0)),
    (5, (6, 4), (0, 0)), (6, (6, 4), (0, 3)), (7, (6, 4), (5, 3)),
    (8, (6, 4), (5, 0))])
def test_every_orientation_is_applied_and_noted(tmp_path, orientation,
                                                upright_size, corner):
    """Each EXIF orientation (TIFF/EXIF 2.3 definitions, worked by hand
    for a 6x4 picture whose stored top-left pixel is marked): where that
    pixel ends up, and the note's stored and upright sizes (5..8 swap the
    axes; 5 and 7 were never checked)."""
    from mmseg_dsnet.rgb_reader import read_rgb
    stored = np.zeros((4, 6, 3), np.uint8)
    stored[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / 'o.png'
    Image.fromarray(stored).save(path, exif=exif)
    notes = []
    rgb = read_rgb(path, notes)
    assert rgb.shape[:2] == upright_size
    assert [tuple(p) for p in np.argwhere(rgb[..., 0])] == [corner]
    height, width = upright_size
    assert notes == [f'EXIF orientation {orientation} applied (stored 6x4, '
                     f'upright {width}x{height})']


@pytest.mark.parametrize('orientation', range(2, 9))
def test_a_tiff_that_pillow_did_not_turn_is_refused(
        tmp_path, monkeypatch, orientation):
    """The guard behind the TIFF orientation fix: should Pillow's loader
    leave a TIFF of orientation 5..8 in its stored axes (as it did for
    mapped files), it is refused, not segmented a quarter turn against
    ``tools/test.py``; 2..4 keep the axes and are turned by the reader."""
    from PIL import TiffImagePlugin

    from mmseg_dsnet.rgb_reader import LoaderMismatchError, read_rgb

    def load_end(self):  # pixels left as stored, and reported so
        self._size = self.im.size

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, 'load_end', load_end)
    stored = np.zeros((4, 6, 3), np.uint8)
    stored[0, 0] = 255
    path = tmp_path / 'o.tif'
    Image.fromarray(stored).save(path, tiffinfo={274: orientation})
    if orientation >= 5:
        with pytest.raises(LoaderMismatchError,
                           match=f'TIFF with EXIF orientation {orientation}'
                           r' that Pillow did not turn \(stored 6x4, read '
                           r'6x4\)'):
            read_rgb(path)
    else:
        assert read_rgb(path).shape == (4, 6, 3)


@pytest.mark.parametrize('channels', [3, 4])
def test_a_16_bit_colour_tiff_is_refused(tmp_path, channels):
    """A 16-bit colour TIFF (``cv2.imwrite('x.tif', bgr16)``): Pillow
    keeps the high byte (41743 -> 163), OpenCV (mmcv, so ``tools/test.py``
    and training) rounds x * 255 / 65535 (41743 -> 162): a quarter of the
    values were a level apart, exit 0. Now refused; 16-bit grayscale,
    read alike by both, still reads."""
    import cv2
    import mmcv
    pixels = np.full((4, 6, channels), 41743, np.uint16)
    path = tmp_path / 'deep.tif'
    cv2.imwrite(str(path), pixels)
    theirs = mmcv.imfrombytes(path.read_bytes(), flag='color')
    assert (theirs == 162).all()  # round(41743 * 255 / 65535) = 162
    with pytest.raises(image_io.ImageReadError,
                       match=r'deep.tif: 16-bit colour TIFF \(RGBA?;16N\): '
                       'Pillow keeps the high byte'):
        image_io.read_image(str(path))
    gray = tmp_path / 'gray.tif'
    cv2.imwrite(str(gray), pixels[..., 0])
    assert (image_io.read_image(str(gray)).rgb == 163).all()
    assert (mmcv.imfrombytes(gray.read_bytes(), flag='color') == 163).all()


@pytest.mark.parametrize('data', [b'\n', b'hi\n', b'BM', b'\xff\xd8\xff'])
def test_a_file_of_a_few_bytes_is_refused_by_name(tmp_path, data):
    """Pillow's BMP and JPEG plugins raise struct.error judging a prefix
    under 4 bytes: a 3-byte download named .jpg in a folder ended the
    whole batch of infer.py with a traceback."""
    path = tmp_path / 'stub.jpg'
    path.write_bytes(data)
    with pytest.raises(image_io.ImageReadError,
                       match='stub.jpg: not an image file'):
        image_io.read_image(str(path))
    # The images after it are read as before.
    assert image_io.read_image(_save(tmp_path / 'next.png')).size == (30, 40)


@pytest.mark.parametrize('suffix', ['.jpg', '.tif'])
def test_a_cmyk_image_reads_as_opencv_reads_it(tmp_path, suffix):
    """Pillow rounds its CMYK to RGB conversion, OpenCV (mmcv's
    LoadImageFromFile: training, test.py, MMSegInferencer) does not: every
    pixel of a CMYK photo was up to 2 levels apart, and infer.py's masks
    were not test.py's."""
    import mmcv
    rng = np.random.default_rng(0)
    cmyk = rng.integers(0, 256, (24, 32, 4), dtype=np.uint8)
    path = tmp_path / f'print{suffix}'
    Image.fromarray(cmyk, 'CMYK').save(path)
    image = image_io.read_image(str(path))
    theirs = mmcv.imfrombytes(path.read_bytes(), flag='color')[..., ::-1]
    assert np.array_equal(image.rgb, theirs)
    assert image.notes == ['CMYK image converted to RGB as OpenCV (the '
                           'training and test loader) converts it']


def test_a_folders_iphone_and_jfif_photos_are_tried(tmp_path):
    """A folder's HEIC photos (an iPhone's) were skipped as no image and
    its .jfif ones (JPEGs as Windows saves them) too: infer.py ended
    ``Processed 1 of 1``, exit 0. Now the JPEGs are read, and a HEIC that
    cannot be decoded is a failed input that says why."""
    for name in ('a.jfif', 'c.jpe'):
        Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(
            tmp_path / name, format='JPEG')
    _save(tmp_path / 'b.jpg')
    heic = tmp_path / 'IMG_0001.HEIC'
    heic.write_bytes(b'\0\0\0\x18ftypheic\0\0\0\0mif1heic' + bytes(64))
    (tmp_path / 'IMG_0002.heif').write_bytes(heic.read_bytes())
    (tmp_path / 'notes.txt').write_text('x')
    found = image_io.find_images([str(tmp_path)])
    assert found.files == [str(tmp_path / name) for name in (
        'IMG_0001.HEIC', 'IMG_0002.heif', 'a.jfif', 'b.jpg', 'c.jpe')]
    assert found.skipped == [str(tmp_path / 'notes.txt')]
    assert image_io.read_image(found.files[2]).size == (30, 40)
    with pytest.raises(image_io.ImageReadError,
                       match='IMG_0001.HEIC: a HEIC photo, which Pillow '
                       'reads only with the pillow-heif plugin'):
        image_io.read_image(str(heic))


def test_a_linked_sub_folder_is_searched_once(tmp_path):
    """``--recursive`` passed over a sub-folder that is a symbolic link
    (``photos/2024 -> /mnt/nas/2024``) without a word: its photos were
    not segmented, exit 0. Now it is searched, and a link to a folder
    above is not followed round."""
    photos, elsewhere = tmp_path / 'photos', tmp_path / 'nas'
    photos.mkdir()
    elsewhere.mkdir()
    _save(photos / 'a.png')
    _save(elsewhere / 'b.png')
    (photos / '2024').symlink_to(elsewhere)
    (photos / 'loop').symlink_to(photos)
    found = image_io.find_images([str(photos)], recursive=True)
    assert found.files == [str(photos / 'a.png'),
                           str(photos / '2024' / 'b.png')]
    # Not walked round the loop: its photos are no duplicates to name.
    assert not found.problems and not found.duplicates


def test_limits_and_exclusions_at_their_boundaries(tmp_path):
    """An image of exactly ``max_pixels`` pixels is read (one more is
    refused); an empty file is named as empty; an excluded folder
    ``out`` leaves its sibling ``out2`` searched (a folder whose name only
    starts with the excluded one's is another folder)."""
    path = _save(tmp_path / 'a.png')  # 40x30
    assert image_io.read_image(path, max_pixels=1200).size == (30, 40)
    with pytest.raises(image_io.ImageReadError, match='above the limit of '
                       '1199 pixels'):
        image_io.read_image(path, max_pixels=1199)
    (tmp_path / 'empty.jpg').write_bytes(b'')
    with pytest.raises(image_io.ImageReadError, match='empty.jpg: empty '
                       'file$'):
        image_io.read_image(str(tmp_path / 'empty.jpg'))
    base = tmp_path / 'base'
    for folder in ('out', 'out2'):
        (base / folder).mkdir(parents=True)
        _save(base / folder / f'{folder}.png')
    for inputs in ([str(base)], [str(base / '**' / '*.png')]):
        found = image_io.find_images(inputs, recursive=True,
                                     exclude=[str(base / 'out')])
        assert found.files == [str(base / 'out2' / 'out2.png')]
        assert found.excluded == [str(base / 'out')]


def test_a_file_given_twice_is_taken_once_and_not_called_skipped(tmp_path):
    """A file skipped in a folder (no image extension) but also given by
    name is taken and not listed as skipped; one file under two spellings
    of its path is taken once without being called a duplicate, while a
    link to it is named as one."""
    _save(tmp_path / 'a.png')
    (tmp_path / 'scan.raw').write_bytes(b'x')
    found = image_io.find_images([str(tmp_path),
                                  str(tmp_path / 'scan.raw')])
    assert found.files == [str(tmp_path / 'a.png'),
                           str(tmp_path / 'scan.raw')]
    assert found.skipped == []
    (tmp_path / 'link.png').symlink_to(tmp_path / 'a.png')
    found = image_io.find_images([str(tmp_path / 'a.png'),
                                  f'{tmp_path}/./a.png',
                                  str(tmp_path / 'link.png')])
    assert found.files == [str(tmp_path / 'a.png')]
    assert found.duplicates == [(str(tmp_path / 'link.png'),
                                 str(tmp_path / 'a.png'))]
