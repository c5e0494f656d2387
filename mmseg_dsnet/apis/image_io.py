"""Robust image reading and input discovery for the inference tools.

Every problem with an input becomes an :class:`ImageReadError` whose message
names the file, so a batch run can report it and go on with the rest.
Images are decoded with Pillow (which, unlike OpenCV, refuses truncated
files instead of returning a half-grey picture) and always come back as
8-bit RGB; every conversion made on the way is recorded in ``notes``.
"""
import glob
import os
import os.path as osp
import warnings
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Extensions picked up when a folder is given (explicit files and globs are
# always tried, whatever their extension).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff',
                    '.webp', '.gif', '.ppm', '.pgm', '.pbm')

# 10000 x 10000 is the largest image read by default: decoding it needs
# about 1 GB (Pillow's buffer, the RGB array and the full-size mask).
DEFAULT_MAX_PIXELS = 100_000_000

_SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')


class ImageReadError(Exception):
    """An input that cannot be used; the message names the file."""


@dataclass
class LoadedImage:
    """A decoded image.

    Attributes:
        path (str): The file it was read from.
        rgb (np.ndarray): ``(H, W, 3)`` uint8 RGB pixels.
        notes (list[str]): Conversions applied (grayscale, alpha, 16-bit ...).
    """
    path: str
    rgb: np.ndarray
    notes: List[str] = field(default_factory=list)

    @property
    def size(self) -> Tuple[int, int]:
        """``(height, width)`` of the image as read."""
        return self.rgb.shape[:2]


def _to_uint8(array: np.ndarray, mode: str, notes: List[str]) -> np.ndarray:
    """Scale a 16-bit, 32-bit integer or float image to 0..255."""
    if mode in _SIXTEEN_BIT_MODES or array.dtype == np.uint16:
        notes.append(f'16-bit image ({mode}) scaled to 8 bits')
        return np.clip(np.rint(array.astype(np.float32) / 257.0), 0,
                       255).astype(np.uint8)
    if mode == 'F' or array.dtype.kind == 'f':
        peak = float(np.nanmax(array)) if array.size else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
        notes.append(f'floating-point image scaled by {scale:g} to 8 bits')
        array = np.nan_to_num(array.astype(np.float32)) * scale
        return np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return array.astype(np.uint8)


def _raw_mode(image: Image.Image) -> str:
    """The pixel layout stored in the file (e.g. ``'RGB;16B'`` for a
    16-bit colour PNG that Pillow presents as 8-bit ``'RGB'``)."""
    tiles = getattr(image, 'tile', None) or []
    if not tiles:
        return ''
    args = tiles[0][3]
    if isinstance(args, tuple):
        args = args[0] if args else ''
    return args if isinstance(args, str) else ''


def _decoded_rgb(image: Image.Image, notes: List[str]) -> np.ndarray:
    """The pixels of an opened Pillow image as ``(H, W, 3)`` uint8 RGB."""
    mode = image.mode
    if mode == 'RGB':
        return np.asarray(image, dtype=np.uint8)
    if mode in _SIXTEEN_BIT_MODES or mode == 'F':
        gray = _to_uint8(np.asarray(image), mode, notes)
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
    return np.asarray(image.convert('RGB'), dtype=np.uint8)


def read_image(path: str,
               max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image file as 8-bit RGB.

    Grayscale, palette, RGBA/LA (alpha dropped), CMYK and 16-bit images are
    converted and a note says so. EXIF orientation is applied, so the
    result (and every mask made from it) is upright as viewers show it.

    Args:
        path (str): The image file.
        max_pixels (int, optional): Refuse images with more pixels than this
            before decoding them (None: no limit).
            Default: :data:`DEFAULT_MAX_PIXELS` (10000 x 10000).

    Returns:
        LoadedImage: The pixels and the notes.

    Raises:
        ImageReadError: The file is missing, empty, not an image, truncated
            or corrupt, or larger than ``max_pixels``.
    """
    if not osp.exists(path):
        raise ImageReadError(f'{path}: no such file')
    if not osp.isfile(path):
        raise ImageReadError(f'{path}: not a regular file')
    if osp.getsize(path) == 0:
        raise ImageReadError(f'{path}: empty file')
    notes: List[str] = []
    # Pillow's own decompression-bomb guard (89 M pixels) would stop
    # legitimate large scans; ``max_pixels`` is checked instead.
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageReadError(
                        f'{path}: {width}x{height} = {width * height} pixels '
                        f'is above the limit of {max_pixels} pixels '
                        '(raise it with --max-pixels)')
                raw_mode = _raw_mode(image)
                image.load()  # Truncated or corrupt data fails here.
                if ';16' in raw_mode and image.mode not in _SIXTEEN_BIT_MODES:
                    # Pillow keeps the high byte of 16-bit colour images.
                    notes.append(f'16-bit image ({raw_mode}) reduced to 8 '
                                 'bits')
                if getattr(image, 'n_frames', 1) > 1:
                    notes.append(
                        f'{image.n_frames} frames: only the first is used')
                orientation = image.getexif().get(0x0112, 1)
                if orientation not in (None, 1):
                    image = ImageOps.exif_transpose(image)
                    notes.append(f'EXIF orientation {orientation} applied')
                rgb = _decoded_rgb(image, notes)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(
            f'{path}: not an image file (format not recognised)') from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(
            f'{path}: unreadable or truncated image ({err})') from None
    except MemoryError:
        raise ImageReadError(
            f'{path}: not enough memory to decode the image') from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit
    return LoadedImage(path=path, rgb=np.ascontiguousarray(rgb), notes=notes)


@dataclass
class InputList:
    """Files found for a list of inputs.

    Attributes:
        files (list[str]): Files to process, in a stable order, no
            duplicates.
        problems (list[tuple[str, str]]): ``(input, message)`` for inputs
            that matched nothing (missing file, empty folder, empty glob).
        skipped (list[str]): Files inside given folders whose extension is
            not an image extension (e.g. LICENSE.txt), not processed.
    """
    files: List[str] = field(default_factory=list)
    problems: List[Tuple[str, str]] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)


def _has_glob_magic(text: str) -> bool:
    return any(char in text for char in '*?[')


def find_images(inputs: Sequence[str], recursive: bool = False) -> InputList:
    """Expand files, folders and glob patterns into image files.

    A file is taken as given, whatever its extension. A folder contributes
    its files with an image extension (:data:`IMAGE_EXTENSIONS`, any case);
    the other files are listed in ``skipped``. A glob pattern contributes
    every file it matches (``**`` works).

    Args:
        inputs (Sequence[str]): Files, folders or glob patterns.
        recursive (bool): Also search sub-folders of given folders.

    Returns:
        InputList: The files, the inputs that gave nothing and the skipped
        files.
    """
    found = InputList()
    seen = set()

    def add(path):
        key = osp.realpath(path)
        if key not in seen:
            seen.add(key)
            found.files.append(path)

    for item in inputs:
        if osp.isdir(item):
            if recursive:
                paths = []
                for root, dirs, names in os.walk(item):
                    dirs.sort()
                    paths += [osp.join(root, name) for name in sorted(names)]
            else:
                paths = [
                    osp.join(item, name) for name in sorted(os.listdir(item))
                ]
            paths = [path for path in paths if osp.isfile(path)]
            images = [
                path for path in paths
                if osp.splitext(path)[1].lower() in IMAGE_EXTENSIONS
            ]
            found.skipped += [path for path in paths if path not in images]
            if not images:
                found.problems.append(
                    (item, f'{item}: folder contains no image files '
                     f'({", ".join(IMAGE_EXTENSIONS)})'))
            for path in images:
                add(path)
        elif osp.exists(item):
            add(item)
        elif _has_glob_magic(item):
            matches = sorted(
                path for path in glob.glob(item, recursive=True)
                if osp.isfile(path))
            if not matches:
                found.problems.append(
                    (item, f'{item}: pattern matches no files'))
            for path in matches:
                add(path)
        else:
            found.problems.append((item, f'{item}: no such file or folder'))
    # A file skipped in a folder but also given by name is not skipped.
    found.skipped = [
        path for path in found.skipped if osp.realpath(path) not in seen
    ]
    return found
