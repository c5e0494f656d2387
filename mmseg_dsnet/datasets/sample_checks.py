"""Checks that find broken dataset files before they are trained on:
missing, empty, truncated or undecodable images and masks, and masks whose
values are not the 0/1 labels the ISIC datasets expect."""
import io
import os
import os.path as osp

import cv2
import numpy as np

from ..image_io import read_unchanged
from ..utils.messages import first_few

#: Metainfo key under which a dataset records the bad samples it replaced.
SKIPPED_KEY = 'skipped_bad_samples'

CONVERT_HINT = (
    'Masks must be single-channel PNGs holding 0 (background) and 1 '
    '(lesion); mmseg treats 255 as "ignore", so a 0/255 mask silently trains '
    'on nothing. Convert the official ISIC download with\n'
    '    python tools/dataset_converters/isic.py RAW_DIR DATA_ROOT\n'
    '(it writes 0/1 masks and the split files), or convert your own masks '
    'with mask = (mask > 127).astype(np.uint8). Set check_masks=False in '
    "the dataset config to skip this check.")

# A complete JPEG ends with the EOI marker, a complete PNG with its IEND
# chunk; look for them near the end (some writers append padding).
_END_MARKERS = {'.jpg': b'\xff\xd9', '.jpeg': b'\xff\xd9', '.png': b'IEND'}
_TAIL = 64


class BadSampleError(RuntimeError):
    """An image or mask of a sample is missing, truncated or unreadable.

    Args:
        message (str): What is wrong, naming the file.
        path (str, optional): The bad file.
        problem (str, optional): What is wrong without the advice that
            follows it in ``message``. Defaults to ``message``.
    """

    def __init__(self, message, path=None, problem=None):
        super().__init__(message)
        self.path = path
        self.problem = problem or message

    @classmethod
    def of_file(cls, kind, path, problem):
        """The error for one bad ``kind`` file (``'image'``, ``'mask'``),
        with the advice a user sees (:func:`describe_bad_file`)."""
        return cls(describe_bad_file(kind, path, problem), path=path,
                   problem=f'Bad {kind} file {path}: {problem}')


class MaskValueError(ValueError):
    """Masks hold values other than the expected class labels."""


class MaskSizeError(MaskValueError):
    """Masks of another size than their images (as the loader reads them).

    mmseg's ``Resize`` scales image and mask each to the target size, so a
    training pipeline would stretch such a mask over its image without an
    error.
    """


def _decodes_with_pillow(path):
    """Whether Pillow decodes the whole file (it refuses truncated data,
    which OpenCV decodes partially with only a warning)."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except Exception:  # any decoder error means the file is broken
        return False


def file_problem(path, data=None):
    """Cheap integrity check of one image or mask file.

    Reads only the end of the file (unless ``data`` is given); a file whose
    end marker is missing is decoded fully to confirm it is truncated.

    Args:
        path (str): The file.
        data (bytes, optional): Its content, when already read.

    Returns:
        str | None: What is wrong ('missing', 'empty', 'truncated'), or None.
    """
    if data is None:
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            return 'missing'
        except OSError as err:
            return f'unreadable ({err.strerror})'
        if size == 0:
            return 'empty'
    elif not data:
        return 'empty'
    marker = _END_MARKERS.get(osp.splitext(path)[1].lower())
    if marker is None:
        return None
    if data is None:
        try:
            with open(path, 'rb') as f:
                f.seek(max(0, size - _TAIL))
                tail = f.read()
        except OSError as err:
            return f'unreadable ({err.strerror})'
    else:
        tail = data[-_TAIL:]
    if marker in tail or _decodes_with_pillow(path):
        return None
    return 'truncated or corrupt'


def decode_problem(path):
    """Full check of one file: does OpenCV (mmcv's default backend) decode it
    and is it complete?

    Returns:
        str | None: What is wrong, or None.
    """
    problem = file_problem(path)
    if problem:
        return problem
    if read_unchanged(path) is None:
        return 'not a decodable image'
    return None


def describe_bad_file(kind, path, problem):
    """The message a user sees for one bad file."""
    return (f'Bad {kind} file {path}: {problem}. Fix or remove the file (and '
            'its line in the split file), or set on_bad_sample=\'skip\' in '
            'the training dataset config to skip such samples (they are '
            'counted and logged at the end of each epoch).')


_MASK_CACHE = {}  # (path, mtime, size, ...) -> result: val and test share
# files


def mask_problem(path, palette_indices=True):
    """Read one mask and classify its values.

    Args:
        path (str): The mask file.
        palette_indices (bool): Whether the mask loader reads a palette
            (``P``) PNG as its indices, as mmseg's ``LoadAnnotations`` does
            with its default Pillow backend (OpenCV expands the palette to
            colours). Defaults to True.

    Returns:
        tuple[str, str] | None: ``(kind, detail)`` with kind 'unreadable' or
        'values', or None for a valid 0/1 mask (255 is accepted as a
        deliberate ignore label next to 1, not as the only non-zero value).
    """
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return 'unreadable', 'missing'
    key = (path, stat.st_mtime_ns, stat.st_size, bool(palette_indices))
    if key not in _MASK_CACHE:
        _MASK_CACHE[key] = _classify_mask(path, palette_indices)
    return _MASK_CACHE[key]


def _palette_indices(data):
    """The indices of a palette (``P``) image, as mmcv's Pillow backend
    reads it ``'unchanged'``, or None for another kind of image."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data.tobytes())) as image:
            if image.mode != 'P':
                return None
            return np.asarray(image)
    except Exception:  # noqa: BLE001  (OpenCV decoded it: its reading holds)
        return None


def _classify_mask(path, palette_indices=True):
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        return 'unreadable', err.strerror or str(err)
    problem = file_problem(path, data[-_TAIL:].tobytes())
    if problem:
        return 'unreadable', problem
    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if mask is None:
        return 'unreadable', 'not a decodable image'
    if mask.ndim == 3 and mask.shape[2] > 1 and palette_indices:
        # A palette mask (label tools, PASCAL VOC style): OpenCV shows its
        # colours, mmseg's LoadAnnotations trains on its indices; it was
        # refused as a colour image.
        indices = _palette_indices(data)
        mask = mask if indices is None else indices
    if mask.ndim == 3 and mask.shape[2] > 1:
        return 'values', (f'{mask.shape[2]} channels (a colour image), '
                          'expected a single-channel label mask')
    if mask.dtype != np.uint8:
        return 'values', f'dtype {mask.dtype}, expected uint8'
    counts = np.bincount(mask.ravel(), minlength=256)
    present = np.flatnonzero(counts)
    extra = [int(v) for v in present if v not in (0, 1, 255)]
    if extra:
        return 'values', f'unexpected values {{{first_few(extra, 8)}}}'
    if counts[255] and not counts[1]:
        return 'values', ('values {0, 255}: an unconverted 0/255 mask (the '
                          'lesion would be learned as "ignore")')
    return None


def check_masks(paths, palette_indices=True):
    """Check every mask once.

    Args:
        paths (Iterable[str]): Mask files.
        palette_indices (bool): See :func:`mask_problem`. Defaults to True.

    Returns:
        tuple[list, list]: ``(bad_values, unreadable)``, each a list of
        ``(path, detail)``.
    """
    bad_values, unreadable = [], []
    for path in paths:
        result = mask_problem(path, palette_indices)
        if result is None:
            continue
        kind, detail = result
        (bad_values if kind == 'values' else unreadable).append((path, detail))
    return bad_values, unreadable


#: EXIF orientations that swap the width and the height.
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)

SIZE_HINT = (
    'Each mask must have the size of its image as the loader reads it '
    '(width x height after the EXIF orientation, which LoadImageFromFile '
    'applies to the image but LoadAnnotations not to the mask). Convert the '
    'official ISIC download with\n'
    '    python tools/dataset_converters/isic.py RAW_DIR DATA_ROOT\n'
    '(it writes upright images and skips pairs of different sizes), or fix '
    'or remove these pairs. Set check_masks=False in the dataset config to '
    'skip this check.')


def _size_as_loaded(path, apply_exif):
    """The ``(width, height)`` of an image as it is loaded, and its stored
    size and EXIF orientation; only the file's header is read.

    Returns:
        tuple | None: ``(loaded, stored, orientation)``, or None when Pillow
        cannot open the file (the sample checks name such files).
    """
    from PIL import Image

    from ..rgb_reader import (exif_orientation, ignored_orientation,
                              stored_size)
    try:
        with Image.open(path) as image:
            # Not image.size: Pillow gives a TIFF's turned size, and it was
            # turned twice (the right mask refused, one of the stored
            # pixels accepted).
            stored = stored_size(image)
            orientation = exif_orientation(image) if apply_exif else 1
            if apply_exif == 'pillow':  # mmcv's Pillow backend: every format
                orientation = max(orientation, ignored_orientation(image))
    except Exception:  # unreadable files are reported by the other checks
        return None
    loaded = stored[::-1] if orientation in _TRANSPOSING_ORIENTATIONS \
        else stored
    return loaded, stored, orientation


def check_sizes(pairs, apply_exif=True):
    """Compare each mask's size with its image's size as loaded.

    Args:
        pairs (Iterable[tuple[str, str]]): ``(image, mask)`` files; pairs
            with a file that cannot be opened are left to the other checks.
        apply_exif (bool | str): Whether the image loader applies the EXIF
            orientation (mmcv's ``LoadImageFromFile`` does, unless its
            ``color_type`` ignores it): True as OpenCV does (JPEG, PNG,
            TIFF; not WebP), ``'pillow'`` for every format (its Pillow
            backend). Defaults to True.

    Returns:
        list[tuple[str, str]]: ``(mask, detail)`` of each mask whose size
        differs from its image's.
    """
    bad = []
    for image_path, mask_path in pairs:
        image = _size_as_loaded(image_path, apply_exif)
        mask = _size_as_loaded(mask_path, False)
        if image is None or mask is None or image[0] == mask[0]:
            continue
        (width, height), stored, orientation = image
        detail = (f'{mask[0][0]}x{mask[0][1]} (width x height), but its '
                  f'image {image_path} is {width}x{height} as loaded')
        if orientation != 1:
            detail += (f' (stored {stored[0]}x{stored[1]}, turned by its '
                       f'EXIF orientation {orientation})')
            if mask[0] == stored:
                detail += ('; the mask fits the stored pixels, which the '
                           'loader turns')
        bad.append((mask_path, detail))
    return bad


def missing_detail(path, suffix, names=None):
    """Why a file of the split is missing, when its folder tells:
    ``'missing'``, or with what lies there in its place.

    * ``ISIC_0000000.JPG`` for ``ISIC_0000000.jpg``: names that differ in
      case only (photos from a phone or a Windows disk, whose names ignore
      case, copied to one that does not);
    * ``ISIC_0000000.jpg`` for ``ISIC_0000000.jpg.jpg``: the split file
      lists the id with its extension;
    * an invisible character in the id (a byte-order mark inside the split
      file, where two files were joined; a zero-width space pasted in),
      which the message would not show.

    Args:
        path (str): The missing image or mask file (``<id><suffix>``).
        suffix (str): The dataset's suffix of such files (``.jpg``).
        names (dict, optional): Folder -> its names by lower case, filled
            here: one listing of a folder for all its missing files.

    Returns:
        str: The detail for :func:`listing`.
    """
    folder, name = osp.split(path)
    image_id = name[:len(name) - len(suffix)] if suffix and \
        name.endswith(suffix) else name
    hidden = [char for char in image_id if not char.isprintable()]
    if hidden:
        return (f'missing: the split file lists the id {image_id!r}, which '
                f'holds the invisible character U+{ord(hidden[0]):04X}; '
                'remove it')
    stem, extension = osp.splitext(image_id)
    if extension.lower() in ('.jpg', '.jpeg', '.png') and \
            osp.isfile(osp.join(folder, stem + suffix)):
        return (f'missing: the split file lists the id {image_id} with its '
                f'extension; list it as {stem}')
    names = {} if names is None else names
    if folder not in names:
        try:
            names[folder] = {other.lower(): other
                             for other in sorted(os.listdir(folder))}
        except OSError:
            names[folder] = {}
    other = names[folder].get(name.lower())
    if other and other != name:
        return (f'missing: {other} is there, named in another case (file '
                f'names tell case apart here); rename it to {name}')
    return 'missing'


def listing(items, limit=10):
    """Format ``(path, detail)`` pairs, one per line, at most ``limit``."""
    lines = [f'  {path}: {detail}' for path, detail in items[:limit]]
    if len(items) > limit:
        lines.append(f'  ... and {len(items) - limit} more')
    return '\n'.join(lines)
