"""The one reader of RGB images: upright (EXIF orientation applied), 8-bit.

mmcv's ``LoadImageFromFile`` (OpenCV, ``flag='color'``) applies the EXIF
orientation of a JPEG, PNG or TIFF photo (not of a WebP), so every other
place that reads an image the model sees (the dataset converter, inference,
export calibration, the demo) must apply it too, or the image ends up
rotated against its mask. Label masks are
not read here: mmseg's ``LoadAnnotations`` decodes them ``'unchanged'``,
which ignores EXIF orientation.

This module imports only numpy and Pillow: the dataset converter uses it
before mmcv and torch are installed (the package's ``__init__`` registers
nothing when mmseg is absent).
"""
import io
import re

import numpy as np
from PIL import Image, ImageOps

#: EXIF tag 274: how the stored pixels must be turned to be shown upright.
EXIF_ORIENTATION_TAG = 0x0112
# Orientations 2..8 move pixels; 1 (and a missing or invalid tag) does not.
_MOVING_ORIENTATIONS = range(2, 9)
#: Pillow formats whose EXIF orientation OpenCV's imread/imdecode (mmcv's
#: default ``LoadImageFromFile`` backend) applies; it ignores the tag of a
#: WebP (checked with OpenCV 4.11), so the model sees it as stored.
OPENCV_ORIENTED_FORMATS = ('JPEG', 'MPO', 'PNG', 'TIFF')

SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')


class PixelRangeError(ValueError):
    """Pixel values with no one reading as an 8-bit picture (a float image
    beyond 0..255, a 32-bit one beyond 16 bits): scaled by a guess, they
    were clipped to a white (or black) picture that still gave a mask."""


class LoaderMismatchError(ValueError):
    """A file that OpenCV (mmcv's ``LoadImageFromFile``, so training and
    ``tools/test.py``) and Pillow decode to different pixels, in a way this
    reader cannot follow: refused rather than segmented as the model never
    sees it."""


def exif_orientation(image):
    """The EXIF orientation the model's image loader applies, 1 when it
    applies none.

    OpenCV (mmcv's ``LoadImageFromFile``) applies the tag of JPEG, PNG and
    TIFF files only (:data:`OPENCV_ORIENTED_FORMATS`): the tag of a WebP
    was applied here but not by ``tools/train.py``/``test.py``, so
    ``infer.py`` segmented the photo turned against how the model was
    trained and tested on it, and the mask-size check expected the turned
    size (see :func:`ignored_orientation`).

    Only the EXIF data counts: Pillow's ``getexif`` also takes a
    ``tiff:Orientation`` from the XMP packet when the EXIF has none, which
    OpenCV (so mmcv's ``LoadImageFromFile``, as ``tools/test.py`` reads
    the image) and image viewers ignore: the mask came out turned against
    the photo as shown and as tested.

    Args:
        image (PIL.Image.Image): An opened image.

    Returns:
        int: 2..8 when the pixels must be mirrored or rotated, else 1.
    """
    if image.format not in OPENCV_ORIENTED_FORMATS:
        return 1
    return _tagged_orientation(image)


def ignored_orientation(image):
    """The EXIF orientation (2..8) of an image whose format OpenCV reads
    as stored (a WebP), which :func:`exif_orientation` therefore does not
    apply; 1 when there is none, or when it is applied."""
    if image.format in OPENCV_ORIENTED_FORMATS:
        return 1
    return _tagged_orientation(image)


def stored_size(image):
    """``(width, height)`` of the pixels as stored in the file, before any
    EXIF orientation.

    Pillow (13) reports a TIFF's size already turned by its orientation
    tag, before loading it; the TIFF's own width and length tags give the
    stored size.

    Args:
        image (PIL.Image.Image): An opened image.
    """
    tags = getattr(image, 'tag_v2', None)
    if image.format == 'TIFF' and tags is not None:
        width, length = tags.get(256), tags.get(257)
        if isinstance(width, int) and isinstance(length, int):
            return width, length
    return image.size


def _tagged_orientation(image):
    """The orientation tag (2..8) of the image's own EXIF data, else 1."""
    value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    if value not in _MOVING_ORIENTATIONS:
        return 1
    return value if EXIF_ORIENTATION_TAG in _exif_tags(image) else 1


def _exif_tags(image):
    """The tags of the image's own EXIF data (a TIFF's tags), without
    what Pillow adds from the XMP packet."""
    raw = image.info.get('exif')
    if isinstance(raw, (bytes, bytearray)) and raw:
        exif = Image.Exif()
        try:
            exif.load(bytes(raw))
        except Exception:  # noqa: BLE001  (damaged EXIF: no orientation)
            return {}
        return exif
    tags = getattr(image, 'tag_v2', None)  # TIFF: the tags are the EXIF
    return tags if tags is not None else {}


def _sample_bits(raw_mode, array):
    """The bits an integer grayscale sample is stored in: those the
    file's pixel layout names (``'I;16B'``: 16, ``'I;32S'``: 32), else
    those of the decoded array. Pillow presents 16-bit PGM samples and
    32-bit TIFF samples alike as mode ``'I'`` (32-bit integers).

    Args:
        raw_mode (str): The file's pixel layout (:func:`_raw_mode`).
        array (np.ndarray): The decoded pixels.
    """
    stored = re.match(r'I;(\d+)', raw_mode or '')
    return int(stored.group(1)) if stored else array.dtype.itemsize * 8


def _to_uint8(array, mode, notes, raw_mode=''):
    """Scale a 16-bit, 32-bit integer or float image to 0..255. Integer
    values within 0..65535 are read as 16-bit ones (their high byte), as
    OpenCV reads a 16-bit image.

    Args:
        array (np.ndarray): The decoded grayscale pixels.
        mode (str): Their Pillow mode.
        notes (list[str]): Receives what was changed.
        raw_mode (str): The file's pixel layout (:func:`_raw_mode`), which
            names the depth a mode ``'I'`` image is stored at.

    Raises:
        PixelRangeError: Values outside 0..65535 (integers) or 0..255
            (floats, where 0..1 is scaled by 255), or a 16-bit image whose
            values all lie below 256 (black when read as OpenCV reads it).
    """
    bits = _sample_bits(raw_mode, array)
    if array.size and array.dtype.kind in 'iuf':
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        top = 255.0 if array.dtype.kind == 'f' else 65535.0
        if low < 0 or high > top:
            kind = ('floating-point' if array.dtype.kind == 'f' else
                    f'{bits}-bit integer')
            raise PixelRangeError(
                f'{kind} image ({mode}) with values {low:g} to {high:g}, '
                f'outside 0..{top:g}: no scale to 8 bits can be assumed '
                '(clipping gave a white or black picture and a wrong '
                'mask); convert it to an 8-bit (or 16-bit) image first')
    if mode in SIXTEEN_BIT_MODES or array.dtype == np.uint16:
        # A 32-bit image (its values within 0..65535) is read as 16-bit
        # values; its messages name the depth it is stored at.
        as_16 = '' if bits == 16 else ' as 16-bit values'
        if array.size and int(array.max()) <= 255:
            # 8-bit values saved as 16 bits: mmcv's LoadImageFromFile
            # (OpenCV: tools/test.py, training, MMSegInferencer) keeps the
            # high byte and sees a black picture; refused as the colour
            # case is, so no two tools segment different pictures.
            how = 'as OpenCV, the training and test loader, reads it' \
                if bits == 16 else ('as 16-bit values, as OpenCV, the '
                                    'training and test loader, reads those')
            raise PixelRangeError(
                f'{bits}-bit grayscale image ({mode}) whose values all lie '
                f'below 256 (8-bit values saved as {bits} bits?): read as 8 '
                f'bits ({how}) it is black; convert it to an 8-bit image '
                'first')
        notes.append(f'{bits}-bit image ({mode}) scaled to 8 bits{as_16}')
        # The high byte, as mmcv's LoadImageFromFile (OpenCV) reads it for
        # tools/test.py and training: rounding x / 257 made a quarter of
        # the pixels one level brighter and changed infer.py's masks.
        return (array.astype(np.uint32) >> 8).astype(np.uint8)
    if mode == 'F' or array.dtype.kind == 'f':
        peak = float(np.nanmax(array)) if array.size else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
        notes.append(f'floating-point image scaled by {scale:g} to 8 bits')
        array = np.nan_to_num(array.astype(np.float32)) * scale
        return np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return array.astype(np.uint8)


def _tiff_extra_samples(image):
    """The ExtraSamples tag (338) of an 8-bit RGBA TIFF, else ``()``: 1
    for associated (premultiplied) alpha, 2 for unassociated alpha."""
    tags = getattr(image, 'tag_v2', None)
    if image.format != 'TIFF' or image.mode != 'RGBA' or tags is None:
        return ()
    if tuple(tags.get(258, ())) != (8, 8, 8, 8):
        return ()
    extra = tags.get(338, ())
    return tuple(extra) if isinstance(extra, tuple) else (extra, )


def _check_pnm_maxval(image):
    """Refuse a PGM/PPM whose maximum value is not 255 (nor 65535 for a
    grayscale one).

    Pillow stretches such values to 0..255 (a maxval-100 PGM: 16 read as
    41; a 16-bit PPM: x * 255 / 65535), while OpenCV keeps them (16 stays
    16, a 16-bit colour PPM is cut to its high byte): ``infer.py`` and the
    converter segmented another picture than ``tools/test.py`` and
    training read from the same file, exit 0 without a note.

    Raises:
        LoaderMismatchError: Such a file.
    """
    tiles = getattr(image, 'tile', None) or []
    if image.format != 'PPM' or image.mode == '1' or not tiles:
        return
    args = tiles[0][3]
    if not isinstance(args, tuple) or len(args) < 2 or \
            not isinstance(args[1], int):
        return  # the raw decoder: maxval 255, or 65535 for grayscale
    maxval = args[1]
    if maxval == 255 or (maxval == 65535 and image.mode == 'I'):
        return
    kind = 'colour' if image.mode == 'RGB' else 'grayscale'
    raise LoaderMismatchError(
        f'{kind} PGM/PPM image with maximum value {maxval} (not 255): '
        'OpenCV (the training and test loader) and Pillow scale its '
        'values to 8 bits differently, so the pixels the model sees '
        'would depend on the tool; convert it to an 8-bit PNG first')


def _raw_mode(image):
    """The pixel layout stored in the file (e.g. ``'RGB;16B'`` for a
    16-bit colour PNG that Pillow presents as 8-bit ``'RGB'``)."""
    tiles = getattr(image, 'tile', None) or []
    if not tiles:
        return ''
    args = tiles[0][3]
    if isinstance(args, tuple):
        args = args[0] if args else ''
    return args if isinstance(args, str) else ''


def _cmyk_as_opencv(image, file_format):
    """The RGB pixels OpenCV (mmcv's ``LoadImageFromFile``) makes of a CMYK
    JPEG or TIFF, else None.

    Pillow rounds ``(255 - c) * (255 - k) / 255``; OpenCV's JPEG reader
    takes ``k' - (c * k' >> 8)`` with ``k' = 255 - k`` and libtiff (its
    TIFF reader) floors ``k' * (255 - c) / 255``: every pixel of a CMYK
    photo was up to 2 levels apart, and ``infer.py``'s masks differed from
    those of ``tools/test.py`` and mmseg's ``MMSegInferencer``.

    Args:
        image (PIL.Image.Image): A loaded ``'CMYK'`` image (Pillow has
            undone the inversion of Adobe JPEGs).
        file_format (str): Its file's format (``image.format`` before any
            turn, which drops it).
    """
    if file_format not in ('JPEG', 'MPO', 'TIFF'):
        return None
    cmyk = np.asarray(image, dtype=np.int32)
    ink, white = cmyk[..., :3], 255 - cmyk[..., 3:]
    if file_format == 'TIFF':
        rgb = white * (255 - ink) // 255
    else:
        rgb = white - ((ink * white) >> 8)
    return rgb.astype(np.uint8)


def _rgb_pixels(image, notes, file_format=None, raw_mode=''):
    """The pixels of a decoded Pillow image as ``(H, W, 3)`` uint8 RGB.

    Args:
        image (PIL.Image.Image): The loaded (and turned) image.
        notes (list[str]): Receives what was changed.
        file_format (str, optional): The file's format (a CMYK image is
            converted as OpenCV reads its format).
        raw_mode (str): The file's pixel layout (:func:`_raw_mode`, read
            before loading, which drops it).
    """
    mode = image.mode
    if mode == 'RGB':
        return np.asarray(image, dtype=np.uint8)
    if mode == 'CMYK':
        rgb = _cmyk_as_opencv(image, file_format)
        if rgb is not None:
            notes.append('CMYK image converted to RGB as OpenCV (the '
                         'training and test loader) converts it')
            return rgb
    if mode in SIXTEEN_BIT_MODES or mode == 'F':
        gray = _to_uint8(np.asarray(image), mode, notes, raw_mode)
        notes.append('grayscale image replicated to 3 channels')
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in ('L', '1'):
        notes.append('grayscale image replicated to 3 channels')
    elif mode in ('LA', 'La'):
        notes.append('grayscale image with alpha: alpha dropped, gray '
                     'replicated to 3 channels')
    elif mode in ('RGBA', 'RGBa', 'RGBX'):
        notes.append(f'{mode} image: alpha channel dropped')
    elif mode == 'P':
        notes.append('palette image converted to RGB')
    else:
        notes.append(f'{mode} image converted to RGB')
    # Pillow raises ValueError for modes it cannot convert.
    return np.asarray(image.convert('RGB'), dtype=np.uint8)


def decode_rgb(image, notes=None):
    """Decode an opened image as upright 8-bit RGB, as the model sees it.

    Grayscale, palette, RGBA/LA (alpha dropped), CMYK and 16-bit images are
    converted, and the EXIF orientation is applied as mmcv's
    ``LoadImageFromFile`` does; each change adds a line to ``notes``.

    Args:
        image (PIL.Image.Image): An opened (not necessarily loaded) image.
        notes (list[str], optional): Receives what was changed.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB, C-contiguous, upright.

    Raises:
        OSError: Truncated or corrupt data.
        ValueError: A pixel mode Pillow cannot convert to RGB.
        PixelRangeError: A float or 32-bit image whose values have no
            8-bit reading, or a 16-bit one whose values all lie below 256
            (black as OpenCV reads it; a ``ValueError`` too).
        LoaderMismatchError: A file OpenCV reads otherwise than Pillow
            in a way not followed here (a PGM/PPM of another maximum than
            255, a TIFF with premultiplied alpha, a 16-bit colour TIFF; a
            ``ValueError`` too).
    """
    notes = [] if notes is None else notes
    file_format = image.format  # a turned copy has none
    raw_mode = _raw_mode(image)
    # Before loading: Pillow's TIFF loader turns the pixels upright itself
    # and drops the tag, and the orientation went unnoted.
    _check_pnm_maxval(image)  # before anything that may load it
    if image.format == 'TIFF' and ';16' in raw_mode and \
            image.mode not in SIXTEEN_BIT_MODES:
        # Pillow keeps the high byte of 16-bit colour; OpenCV reads a
        # 16-bit colour TIFF through libtiff's RGBA interface, which rounds
        # x * 255 / 65535: a quarter of the values were a level apart.
        raise LoaderMismatchError(
            f'16-bit colour TIFF ({raw_mode}): Pillow keeps the high byte, '
            'OpenCV (the training and test loader) rounds x * 255 / 65535, '
            'so the pixels the model sees would depend on the tool; '
            'convert it to an 8-bit PNG first')
    orientation = exif_orientation(image)
    extra_samples = _tiff_extra_samples(image)
    if 1 in extra_samples:
        # Pillow divides the colour by alpha; OpenCV keeps the stored
        # (premultiplied) values: the transparent parts differed.
        raise LoaderMismatchError(
            'RGBA TIFF with associated (premultiplied) alpha: Pillow '
            'divides its colour by alpha, OpenCV (the training and test '
            'loader) reads it as stored; save it without alpha (RGB) '
            'first')
    if image.format == 'TIFF' and orientation != 1:
        # Pillow turns a TIFF by its tag when loading it, but an
        # uncompressed file it maps (grayscale, palette, RGBA, 16-bit
        # grayscale, read from a path) kept its stored axes (orientations
        # 5..8): infer.py segmented it a quarter turn against
        # tools/test.py, noted as turned. Pillow maps nothing for an image
        # with its own seek (ImageFile.load).
        if getattr(image, 'fp', None) is not None:  # not yet loaded
            image.load_seek = image.fp.seek
        stored = stored_size(image)
    image.load()  # truncated or corrupt data fails here
    if image.format == 'TIFF' and orientation >= 5 and \
            image.size != stored[::-1]:
        raise LoaderMismatchError(
            f'TIFF with EXIF orientation {orientation} that Pillow did not '
            'turn (stored {}x{}, read {}x{}) as OpenCV (the training and '
            'test loader) does'.format(*stored, *image.size))
    if ';16' in raw_mode and image.mode not in SIXTEEN_BIT_MODES:
        # Pillow keeps the high byte of 16-bit colour images.
        notes.append(f'16-bit image ({raw_mode}) reduced to 8 bits')
    if getattr(image, 'n_frames', 1) > 1:
        notes.append(f'{image.n_frames} frames: only the first is used')
    ignored = ignored_orientation(image)
    if ignored != 1:
        notes.append(f'EXIF orientation {ignored} of the {image.format} '
                     'image not applied, as OpenCV (the training and test '
                     'loader) reads it as stored')
    if orientation != 1:
        # (A no-op for a TIFF, which Pillow turned when loading it.)
        image = ImageOps.exif_transpose(image)
        width, height = image.size
        # Orientations 5..8 swap the axes (a TIFF reports the upright
        # size even before loading).
        stored = (height, width) if orientation >= 5 else (width, height)
        notes.append(f'EXIF orientation {orientation} applied (stored '
                     '{}x{}, upright {}x{})'.format(*stored, width, height))
    if 2 in extra_samples:
        # OpenCV reads an 8-bit TIFF through libtiff's RGBA interface,
        # which multiplies unassociated alpha into the colour (a
        # transparent ground turns black); dropping alpha kept the hidden
        # colours, and infer.py's mask differed from test.py's.
        rgba = np.asarray(image, dtype=np.uint16)
        alpha = rgba[..., 3:]
        rgb = ((rgba[..., :3] * alpha + 127) // 255).astype(np.uint8)
        rgb = np.ascontiguousarray(rgb)
        notes.append('RGBA TIFF: colour multiplied by its alpha and alpha '
                     'dropped, as OpenCV reads it')
    else:
        rgb = np.ascontiguousarray(
            _rgb_pixels(image, notes, file_format, raw_mode))
    if ';16' in raw_mode and image.mode not in SIXTEEN_BIT_MODES and \
            rgb.size and not rgb.any():
        # Pillow keeps the high bytes: 8-bit values saved as 16 bits (as
        # grayscale ones are read above) came out black and were segmented.
        raise PixelRangeError(
            f'16-bit colour image ({raw_mode}) whose values all lie below '
            '256 (8-bit values saved as 16 bits?): read as 8 bits it is '
            'black; convert it to an 8-bit image first')
    return rgb


def read_rgb(source, notes=None):
    """Read an image file (or its bytes) as upright 8-bit RGB.

    Args:
        source (str | os.PathLike | bytes): The file, or its content.
        notes (list[str], optional): Receives what was changed (see
            :func:`decode_rgb`).

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB.

    Raises:
        PIL.UnidentifiedImageError: Not an image.
        OSError: Missing, truncated or corrupt file.
        ValueError: A pixel mode Pillow cannot convert to RGB.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    with Image.open(source) as image:
        return decode_rgb(image, notes)
