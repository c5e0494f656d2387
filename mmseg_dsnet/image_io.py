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
import struct
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from .rgb_reader import LoaderMismatchError, PixelRangeError, decode_rgb

# Extensions picked up when a folder is given (explicit files and globs are
# always tried, whatever their extension). HEIC/HEIF (the iPhone's photos)
# are tried too, so that a photo that cannot be read counts as failed:
# left out as no image, it would be missing from "Processed N of N".
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.jpe', '.jfif', '.png', '.bmp',
                    '.tif', '.tiff', '.webp', '.gif', '.ppm', '.pgm', '.pbm',
                    '.heic', '.heif')
# Photo formats Pillow reads only with a plugin (pillow-heif), and OpenCV
# (the training and test loader) not at all.
PLUGIN_PHOTO_EXTENSIONS = {'.heic': 'HEIC', '.heif': 'HEIF'}

# The first bytes of a macOS AppleDouble file: ``._IMG_1.JPG`` holds the
# Finder's data of ``IMG_1.JPG`` where the disk cannot (a USB stick, a
# network share, a zip extracted elsewhere).
APPLE_DOUBLE_MAGIC = b'\x00\x05\x16\x07'

# 10000 x 10000 is the largest image read by default: decoding it needs
# about 1 GB (Pillow's buffer, the RGB array and the full-size mask).
DEFAULT_MAX_PIXELS = 100_000_000


class ImageReadError(Exception):
    """An input that cannot be used; the message names the file."""


class PixelLimitError(ImageReadError):
    """An image with more pixels than the reader's ``max_pixels``. The
    message names no option: only ``infer.py`` has one that raises the
    limit (``--max-pixels``), and the caller that offers it says so."""


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
    try:
        with _open_unchecked(path) as image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise PixelLimitError(
                    f'{path}: {width}x{height} = {width * height} pixels '
                    f'is above the limit of {max_pixels} pixels')
            # The shared reader: upright and converted as the model's
            # data loader sees its training images.
            rgb = decode_rgb(image, notes)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        kind = PLUGIN_PHOTO_EXTENSIONS.get(osp.splitext(path)[1].lower())
        if kind:
            raise ImageReadError(
                f'{path}: a {kind} photo, which Pillow reads only with the '
                'pillow-heif plugin (and OpenCV, the training and test '
                'loader, not at all): convert it to JPEG or PNG first') \
                from None
        raise ImageReadError(
            f'{path}: not an image file (format not recognised)') from None
    except Image.DecompressionBombError as err:
        # Some formats (GIF frames, MPO, ICO, TIFF tiles) check Pillow's
        # process-wide limit again while decoding; that one is the user's.
        raise ImageReadError(
            f'{path}: refused by Pillow\'s image-size limit '
            f'(PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}): '
            f'{err}') from None
    except (PixelRangeError, LoaderMismatchError) as err:
        # Not 'unreadable or truncated': the message says what is wrong.
        raise ImageReadError(f'{path}: {err}') from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(
            f'{path}: unreadable or truncated image ({err})') from None
    except MemoryError:
        raise ImageReadError(
            f'{path}: not enough memory to decode the image') from None
    return LoadedImage(path=path, rgb=rgb, notes=notes)


def read_unchanged(path: str) -> Optional[np.ndarray]:
    """The pixels of an image file as OpenCV's ``imread(path,
    IMREAD_UNCHANGED)`` gives them (BGR, any depth), or None when the file
    cannot be read or decoded.

    The file is read by Python and decoded from its bytes: ``cv2.imread``
    crashed the process (a segmentation fault) on a name that is not UTF-8
    (``l\\xe4sion.png`` from a zip made on Windows) and returns None for
    a name outside the ANSI code page on Windows, both for a good file.

    Args:
        path (str): The image file.

    Returns:
        np.ndarray | None: The pixels.
    """
    import cv2
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except (OSError, ValueError):
        return None
    if not data.size:
        return None
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def _open_unchecked(path: str) -> Image.Image:
    """Open an image file as ``Image.open`` does, without Pillow's
    decompression-bomb check on the header size.

    Pillow's guard (warning above 89 M pixels, error above twice that)
    would stop legitimate large scans, and ``read_image`` checks its own
    ``max_pixels`` from the header instead. Pillow's limit is a
    process-wide global (``Image.MAX_IMAGE_PIXELS``): turning it off while
    decoding would take the protection away from every other thread of the
    process, so the format plugins are called directly, as ``Image.open``
    calls them (``Image.OPEN`` / ``Image.ID`` are Pillow's plugin registry).

    Args:
        path (str): The image file.

    Returns:
        PIL.Image.Image: The opened, not yet decoded, image.

    Raises:
        PIL.UnidentifiedImageError: No plugin recognises the file.
    """
    registry = getattr(Image, 'OPEN', None)
    formats = getattr(Image, 'ID', None)
    if not isinstance(registry, dict) or not isinstance(formats, list):
        return Image.open(path)  # a Pillow without the registry: its check
    handle = open(path, 'rb')
    try:
        prefix = handle.read(16)
        for loader in (Image.preinit, Image.init):
            loader()
            for name in list(formats):
                factory, accept = registry.get(name.upper(), (None, None))
                if factory is None:
                    continue
                # A plugin's accept reads the prefix too: BMP's and JPEG's
                # raise struct.error on a file of 1 to 3 bytes; such a
                # file is no image of that format, not the batch's end.
                try:
                    result = not accept or accept(prefix)
                    if not result or isinstance(result, str):
                        continue
                    handle.seek(0)
                    image = factory(handle, path)
                except (SyntaxError, IndexError, TypeError, struct.error):
                    continue
                # As Image.open: the image closes the file with itself.
                image._exclusive_fp = True
                return image
    except BaseException:
        handle.close()
        raise
    handle.close()
    raise UnidentifiedImageError(f'cannot identify image file {path!r}')


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
        excluded (list[str]): Folders of ``exclude`` met while searching
            folders or globs; nothing under them was taken.
        subfolders (list[str]): Sub-folders of given folders, not searched
            (without ``recursive``), so that their images are not left out
            without a word.
        duplicates (list[tuple[str, str]]): ``(path, kept)`` for a path
            under another name that is the same file as ``kept`` (a
            symbolic or hard link), taken once: its outputs are ``kept``'s.
        metadata (list[str]): Files inside given folders with an image
            extension that are macOS AppleDouble files
            (:func:`is_apple_double`), not processed.
    """
    files: List[str] = field(default_factory=list)
    problems: List[Tuple[str, str]] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    excluded: List[str] = field(default_factory=list)
    subfolders: List[str] = field(default_factory=list)
    duplicates: List[Tuple[str, str]] = field(default_factory=list)
    metadata: List[str] = field(default_factory=list)


def is_apple_double(path: str) -> bool:
    """Whether ``path`` is a macOS AppleDouble file (``._IMG_1.JPG``, the
    Finder's data of ``IMG_1.JPG``), which holds no image: a Mac writes one
    beside every photo it copies to a USB stick or network share.

    Args:
        path (str): A file.

    Returns:
        bool: Its name starts with ``._`` and its content with the
        AppleDouble header (:data:`APPLE_DOUBLE_MAGIC`).
    """
    if not osp.basename(path).startswith('._'):
        return False
    try:
        with open(path, 'rb') as f:
            return f.read(len(APPLE_DOUBLE_MAGIC)) == APPLE_DOUBLE_MAGIC
    except OSError:
        return False  # tried as an input, and reported there


def _has_glob_magic(text: str) -> bool:
    return any(char in text for char in '*?[')


def _bracketed_folder(pattern: str) -> Optional[str]:
    """The longest leading part of a glob pattern that names an existing
    file or folder as written and holds a ``[``, or None.

    In a pattern, ``[2]`` is a set of characters: ``Patient [2]/*.jpg``
    matched the photos of ``Patient 2``, not those of the folder
    ``Patient [2]``.
    """
    if os.altsep:  # Windows: "/" separates too
        pattern = pattern.replace(os.altsep, os.sep)
    parts = pattern.split(os.sep)
    for end in range(len(parts), 0, -1):
        prefix = os.sep.join(parts[:end])
        if '[' in prefix and osp.lexists(prefix):
            return prefix
    return None


def find_images(inputs: Sequence[str], recursive: bool = False,
                exclude: Sequence[str] = ()) -> InputList:
    """Expand files, folders and glob patterns into image files.

    A file is taken as given, whatever its extension. A folder contributes
    its files with an image extension (:data:`IMAGE_EXTENSIONS`, any case);
    the other files are listed in ``skipped``, and macOS AppleDouble files
    (``._IMG_1.JPG``) in ``metadata``. A glob pattern contributes
    every file it matches (``**`` works); one whose leading part names an
    existing file or folder with a ``[`` in its name (``Patient [2]/*.jpg``,
    where ``[2]`` would match ``Patient 2``) is refused in ``problems``.
    Sub-folder searches and globs take nothing under the ``exclude``
    folders (a folder given itself is still read). Without ``recursive``,
    sub-folders of given folders are listed in ``subfolders``.

    Args:
        inputs (Sequence[str]): Files, folders or glob patterns.
        recursive (bool): Also search sub-folders of given folders
            (symbolic links to folders too, each real folder once).
        exclude (Sequence[str]): Folders never searched, e.g. the output
            folders of a tool whose outputs are images, so that a second
            run does not read the first run's outputs as inputs.

    Returns:
        InputList: The files, the inputs that gave nothing and the skipped
        files.
    """
    found = InputList()
    seen = set()
    excluded = {osp.realpath(folder): folder for folder in exclude}

    def is_excluded(path):
        """Whether ``path`` is under an excluded folder (noted once)."""
        real = osp.realpath(path)
        for key, folder in excluded.items():
            if real == key or real.startswith(key + os.sep):
                if folder not in found.excluded:
                    found.excluded.append(folder)
                return True
        return False

    first = {}

    def add(path):
        key = osp.realpath(path)
        if key not in seen:
            seen.add(key)
            first[key] = path
            found.files.append(path)
        elif osp.normpath(path) != osp.normpath(first[key]):
            # Left out without a word, no output of its name (a link).
            found.duplicates.append((path, first[key]))

    for item in inputs:
        if osp.isdir(item):
            if recursive:
                paths = []
                # Linked sub-folders are searched too (os.walk passes
                # them over unless told), each real folder once: a link
                # to a folder above would loop.
                walked = set()
                for root, dirs, names in os.walk(item, followlinks=True):
                    real = osp.realpath(root)
                    if real in walked:
                        dirs[:] = []
                        continue
                    walked.add(real)
                    dirs[:] = sorted(d for d in dirs
                                     if not is_excluded(osp.join(root, d)))
                    paths += [osp.join(root, name) for name in sorted(names)]
            else:
                paths = [
                    osp.join(item, name) for name in sorted(os.listdir(item))
                ]
                found.subfolders += [path for path in paths
                                     if osp.isdir(path)]
            paths = [path for path in paths if osp.isfile(path)]
            images = [
                path for path in paths
                if osp.splitext(path)[1].lower() in IMAGE_EXTENSIONS
            ]
            found.skipped += [path for path in paths if path not in images]
            # Metadata files are no photos: counted as failed ones, a
            # folder copied from a Mac would end as a partial result.
            metadata = [path for path in images if is_apple_double(path)]
            found.metadata += metadata
            images = [path for path in images if path not in metadata]
            if not images:
                found.problems.append(
                    (item, f'{item}: folder contains no image files '
                     f'({", ".join(IMAGE_EXTENSIONS)})'))
            for path in images:
                add(path)
        elif osp.exists(item):
            add(item)
        elif _has_glob_magic(item) and _bracketed_folder(item):
            # Read either way it would segment the wrong photos, or none.
            found.problems.append(
                (item, f'{item}: {_bracketed_folder(item)} exists, but in a '
                 'pattern "[...]" is a set of characters, so the pattern '
                 'does not read it; write each "[" of the name as "[[]" '
                 '(or give the folder itself)'))
        elif _has_glob_magic(item):
            matches = sorted(
                path for path in glob.glob(item, recursive=True)
                if osp.isfile(path) and not is_excluded(path))
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
    found.metadata = [
        path for path in found.metadata if osp.realpath(path) not in seen
    ]
    return found
