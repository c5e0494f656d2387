"""Convert the official ISIC 2016/2017/2018 Task 1 downloads to our layout.

Input (``SRC``): a folder holding the official folders, or the official zip
files (read in place), e.g. for 2017 ``ISIC-2017_Training_Data``,
``ISIC-2017_Training_Part1_GroundTruth``, ``ISIC-2017_Validation_Data``, ...
The year is recognised from these names.

Output (``OUT``)::

    OUT/images/<id>.jpg    RGB 8-bit JPEG, upright (valid inputs copied byte
                           for byte)
    OUT/masks/<id>.png     single channel uint8, values exactly {0, 1}
    OUT/splits/official_{train,val,test}.txt, lightweight_{train,test}.txt,
               lightweight_design_{train,val}.txt (lightweight_train split
               again: a seeded 10 % held out for choosing designs and
               settings without the test set)
    OUT/meta.json          year, seed, counts, split rules, fixed/skipped files,
                           duplicate files ignored, images given under more
                           than one id (``identical_images``) and those the
                           seeded shuffles put into a list trained on
                           and the one scored against it
                           (``identical_images_across_lists``), images
                           with a side below MIN_IMAGE_SIDE
                           (``small_images``), masks of one value
                           (``uniform_masks``)
    OUT/SYNTHETIC.txt      only from a download that holds it beside or in
                           its official folders or zips (one made by
                           make_synthetic_isic.py), so that metrics on the
                           set say ``synthetic``

Every pair is checked (missing partner, unreadable or truncated file, size
mismatch, mask values, image mode, ids that are not safe file names, files
over :data:`MAX_MEMBER_BYTES`). Repairable problems are fixed and reported;
the others skip the pair and are reported; nothing is dropped silently.
Images with a side below :data:`MIN_IMAGE_SIDE` pixels are converted and
named in a warning (``small_images``), and so are masks without a lesion
pixel or without a background pixel (``uniform_masks``). An id in more
than one official split is converted from the first split whose pair of
it is valid; the pairs of the other splits are skipped, so that the id is
in one split; ids that differ in letter case alone (``ISIC_1``,
``isic_1``), one file name on Windows and macOS, are one id, and so are
ids that differ in Unicode normalisation alone (``café`` composed or
decomposed), one file name on macOS. Ids that are Windows device names
(``CON``, ``lpt1``, with any extension) are not safe file names.
Subfolders that are links are followed (each real folder read once); a
folder that cannot be listed is named. Zip members named with backslashes
(old Windows tools) are read as if named with slashes. Known stray files
of the downloads (superpixels, metadata CSVs, LICENSE/ATTRIBUTION texts,
macOS metadata) are ignored and counted.

EXIF orientation: mmcv's ``LoadImageFromFile`` shows a photo upright, applying
its EXIF orientation tag, while masks are read as stored. An image with an
orientation tag (2..8) is therefore re-encoded upright (without the tag) and
reported as fixed ("EXIF orientation applied"); its size is compared with the
mask's after the orientation, so a mask drawn on the stored, unrotated pixels
is skipped as a size mismatch instead of silently misaligned. An orientation
that keeps the size (mirrored, turned 180 degrees, or a square image) cannot
show this: such images are named in a warning (``alignment_unchecked``).
Images are read with the package's shared reader,
``mmseg_dsnet/rgb_reader.py``, as inference reads them.

The input is never modified; the output is built in ``OUT.tmp-PID`` beside
``OUT`` and renamed into place at the end, so an interrupted run (Ctrl-C,
SIGTERM, SIGHUP: the temporary folder is removed and the worker processes
stopped) leaves no ``OUT``; a later run removes the temporary folders of
earlier runs whose process is gone (killed with SIGKILL), each marked as
the converter's (:data:`RUN_MARKER`): a folder so named without the
marker is kept and named in a warning. ``OUT`` is resolved
(symlinks followed) before it is compared with ``SRC``; an ``OUT`` that is a
link to a folder is written where it points (the link stays), and one to
nothing is refused (:func:`_followed_out`). User errors raise
:class:`ConversionError`; SIGTERM and SIGHUP raise :class:`Interrupted` (a
``KeyboardInterrupt``, as Ctrl-C does).

Only numpy, Pillow and the standard library are needed (tqdm, when installed,
draws the progress bar), so it runs before mmcv is installed. The command
line (user errors exit with status 2, an interrupt with 128 + the signal
number)::

    python tools/dataset_converters/isic.py /downloads/isic2018 data/isic2018
"""
import contextlib
import ctypes
import functools
import hashlib
import io
import json
import multiprocessing
import os
import pickle
import posixpath
import shutil
import signal
import sys
import threading
import time
import unicodedata
import zipfile
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# The reader inference and export use too: images come out upright (EXIF
# orientation applied) as mmcv's LoadImageFromFile reads them.
from mmseg_dsnet import rgb_reader
from mmseg_dsnet.rgb_reader import SIXTEEN_BIT_MODES
from mmseg_dsnet.utils.fileio import json_text, pid_alive
from mmseg_dsnet.utils.messages import counted, first_few

try:
    from tqdm import tqdm
except ImportError:  # the bar is a nicety; the conversion does not need it
    tqdm = None

# Official folder (and zip) names: split -> (images, ground truth).
OFFICIAL_FOLDERS = {
    2016: {
        'train': ('ISBI2016_ISIC_Part1_Training_Data',
                  'ISBI2016_ISIC_Part1_Training_GroundTruth'),
        'test': ('ISBI2016_ISIC_Part1_Test_Data',
                 'ISBI2016_ISIC_Part1_Test_GroundTruth'),
    },
    2017: {
        'train': ('ISIC-2017_Training_Data',
                  'ISIC-2017_Training_Part1_GroundTruth'),
        'val': ('ISIC-2017_Validation_Data',
                'ISIC-2017_Validation_Part1_GroundTruth'),
        'test': ('ISIC-2017_Test_v2_Data',
                 'ISIC-2017_Test_v2_Part1_GroundTruth'),
    },
    2018: {
        'train': ('ISIC2018_Task1-2_Training_Input',
                  'ISIC2018_Task1_Training_GroundTruth'),
        'val': ('ISIC2018_Task1-2_Validation_Input',
                'ISIC2018_Task1_Validation_GroundTruth'),
        'test': ('ISIC2018_Task1-2_Test_Input',
                 'ISIC2018_Task1_Test_GroundTruth'),
    },
}
SPLITS = ('train', 'val', 'test')
# The official splits whose pairs are shuffled into the lightweight split.
LIGHTWEIGHT_POOL = ('train', 'val')
# 2016 names its masks <id>_Segmentation.png, 2017/2018 <id>_segmentation.png:
# matched case-insensitively.
MASK_SUFFIX = '_segmentation.png'
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
JPEG_QUALITY = 95
# Shortest image side converted without a warning: resized to the configs'
# 256x256 input, each pixel of a smaller image becomes a block of more than
# 32 pixels a side, so no lesion outline is left to learn or score (a 1x1
# placeholder, a thumbnail). The synthetic generator draws no smaller image.
MIN_IMAGE_SIDE = 8
# Largest image or mask file read (a zip member is streamed and stopped at
# this size): ISIC images are a few MB; anything bigger is a broken or
# hostile file whose decompression must not fill the memory.
MAX_MEMBER_BYTES = 200 * 1024 * 1024
# Signals that interrupt a conversion like Ctrl-C (SIGINT) does.
INTERRUPT_SIGNALS = ('SIGTERM', 'SIGHUP')
# ISIC 2016 has no validation set: this share of official train is held out.
HOLDOUT_VAL_RATIO_2016 = 0.1
# The lightweight literature splits the 2150 ISIC 2017 train+val pairs
# 1500/650, not the 1505/645 that round(0.7 * 2150) gives.
LITERATURE_SPLIT_2017 = (2150, 1500)
# Share of lightweight_train held out as lightweight_design_val: designs and
# settings are chosen on it, never on the test split.
DESIGN_VAL_RATIO = 0.1
# The lightweight split files; each must list at least one image.
LIGHTWEIGHT_SPLIT_NAMES = ('lightweight_train', 'lightweight_test',
                           'lightweight_design_train',
                           'lightweight_design_val')
# Fewest train+val pairs that fill them all: 2 train (1 design val), 1 test.
MIN_LIGHTWEIGHT_PAIRS = 3
# The split files whose images are test images: nothing may be chosen on them.
TEST_SPLIT_FILES = ('official_test.txt', 'lightweight_test.txt')
#: Beside the folders of a synthetic download and in its conversion: the
#: images show no real lesion (``synthetic_fallback.is_synthetic``).
SYNTHETIC_MARKER = 'SYNTHETIC.txt'
# The tools that build a folder beside OUT and rename it into place.
CONVERTER_TOOL = 'tools/dataset_converters/isic.py'
SYNTHETIC_TOOL = 'tools/dataset_converters/make_synthetic_isic.py'
#: Written first into each folder a run of them makes beside ``OUT``
#: (``OUT.tmp-PID``) or moves an earlier conversion to (``OUT.old-PID``),
#: and taken out before it becomes ``OUT``: a later run removes a folder
#: so named whose process is gone only when it holds this file.
RUN_MARKER = '.isic_converter_run.json'
#: What each tool writes into those folders: (subfolders, each holding
#: plain files only; plain files). A marked folder holding anything else
#: (added by hand) is kept.
RUN_LAYOUTS = {
    CONVERTER_TOOL: (('images', 'masks', 'splits'),
                     ('meta.json', SYNTHETIC_MARKER)),
    SYNTHETIC_TOOL: (
        tuple(name for year in OFFICIAL_FOLDERS.values()
              for pair in year.values() for name in pair),
        tuple(f'{name}.zip' for year in OFFICIAL_FOLDERS.values()
              for pair in year.values() for name in pair)
        + (SYNTHETIC_MARKER, )),
}
# The output's marker when only the official folders or zips hold one.
MARKED_INSIDE_TEXT = ('Converted from a synthetic ISIC-like download (its '
                      'official folders or zips hold SYNTHETIC.txt); metrics '
                      'computed on it say nothing about real lesions.\n')


def is_test_split(ann_file) -> bool:
    """Whether ``ann_file`` (as a config gives it) is one of the test split
    files the converter writes."""
    return bool(ann_file) and os.path.basename(str(ann_file)) in \
        TEST_SPLIT_FILES
DEFAULT_WORKERS = max(1, min(2, os.cpu_count() or 1))
# Below this many pairs, starting worker processes costs more than it saves.
MIN_PAIRS_FOR_POOL = 64
# Longest list of messages printed per reason; meta.json holds all of them.
MAX_PRINTED_PER_REASON = 20


class ConversionError(Exception):
    """The input cannot be converted (nothing found, OUT in the way, ...)."""


class StrictModeError(ConversionError):
    """``--strict`` was given and a pair was skipped, an official split
    was missing (no folder or zip, or no image or mask in them), a folder
    could not be read, an id had two files of other content, an image had
    a side below :data:`MIN_IMAGE_SIDE`, a mask had no lesion or no
    background pixel or the lightweight split put one photo into a list
    trained on and the list scored against it; nothing was written."""

    def __init__(self, message, summary):
        super().__init__(message)
        self.summary = summary


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: handled as Ctrl-C (SIGINT) is.

    Args:
        signum (int): The signal.
    """

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class FileTooLargeError(Exception):
    """An image or mask file is larger than :data:`MAX_MEMBER_BYTES`."""


# ---------------------------------------------------------------------------
# Finding the files
# ---------------------------------------------------------------------------


def _printable(text):
    """``text`` with control, line-break and other invisible characters
    escaped (``\\n``, ``\\xa0``), so a file name cannot break a message."""
    return ''.join(
        char if char.isprintable() else char.encode('unicode_escape').decode(
            'ascii') for char in text)


def _display(container, member, is_zip):
    """How messages name a file: ``folder/member`` or ``file.zip:member``."""
    separator = ':' if is_zip else '/'
    return _printable(f'{Path(container).name}{separator}{member}')


# Names Windows keeps for devices, in any letter case and with any
# extension (``con.jpg``, ``Lpt1.v2.png``): no file there is named so.
WINDOWS_DEVICE_NAMES = frozenset(
    ['CON', 'PRN', 'AUX', 'NUL', 'CONIN$', 'CONOUT$']
    + [f'{port}{digit}' for port in ('COM', 'LPT')
       for digit in '123456789\xb9\xb2\xb3'])


def _id_problem(image_id):
    """Why an id cannot be a file name and a line of a split file.

    Ids become ``images/<id>.jpg`` and lines of the split files (which
    mmseg strips and other readers split at whitespace), so whitespace,
    line breaks, control or invisible characters, path separators and a
    leading dot (hidden files, ``..``) would load another file or none,
    and a Windows device name (:data:`WINDOWS_DEVICE_NAMES`) cannot be
    written there. Ids that are one file name on some systems are one id
    (:func:`_file_key`).

    Args:
        image_id (str): The id taken from a file name.

    Returns:
        str | None: What is wrong, or None for a safe id.
    """
    if not image_id:
        return 'empty id'
    if '/' in image_id or '\\' in image_id:
        return 'path separator in the id'
    if image_id.startswith('.'):
        return 'id starts with a dot (hidden file or "..")'
    if any(char.isspace() for char in image_id):
        return 'whitespace (a space, tab or line break) in the id'
    bad = [char for char in image_id if not char.isprintable()]
    if bad:
        return f'control or invisible character {_printable(bad[0])} in the id'
    device = image_id.partition('.')[0].upper()
    if device in WINDOWS_DEVICE_NAMES:
        return (f'{device} is a Windows device name (CON, PRN, AUX, NUL, '
                'COM1-9, LPT1-9), which no file on Windows may be named, '
                'with any extension')
    return None


def _record(split, image_id, reason, ref, detail):
    """A fixed or skipped record, as printed and stored in meta.json."""
    return {
        'split': split,
        'id': image_id,
        'reason': reason,
        'file': _display(*ref),
        'detail': detail,
    }


# How a duplicate file record says that its id is converted from another
# split's pair (the summary counts such records by it).
DUPLICATE_MOVED_TEXT = 'the id is converted from its pair of split'


def _duplicate_record(split, image_id, ref, first, written):
    """The record of a file ignored because ``first``, another file of its
    id and role, has other content.

    Args:
        split (str): The official split.
        image_id (str): The id.
        ref (tuple): The file ignored (as in :func:`_collect_files`).
        first (tuple): The first file of the id, the one used.
        written (tuple | None): ``(split, id)`` of the pair written for
            the id (letter case and Unicode normalisation aside:
            :func:`_file_key`), or None. A pair
            skipped (its first file unreadable, no mask) converted no file
            of this split, though the ignored one may be usable; the id
            may still be converted from another split's pair.

    Returns:
        dict: A ``duplicate file`` record (:func:`_record`).
    """
    skipped = (f'{_display(*first)}, the file used for this id, was '
               'skipped with its pair (see skipped)')
    if written == (split, image_id):
        used = f'{_display(*first)} is the file used for this id'
    elif written is None:
        used = f'{skipped}: no file of this id was converted'
    else:
        used = (f'{skipped}; {DUPLICATE_MOVED_TEXT} '
                f'{written[0]}{_spelled(written[1], image_id)}')
    return _record(split, image_id, 'duplicate file', ref, f'ignored; {used}')


def _spelled(written_id, image_id):
    """`` (spelled ID)`` when the id written differs from ``image_id`` (in
    letter case or Unicode normalisation: :func:`_file_key`), for messages
    that name the pair written; else ``''``."""
    if written_id == image_id:
        return ''
    return f' (spelled {_printable(written_id)})'


def _same_photo(ref, other, copies):
    """Whether two image files (refs as in :func:`_collect_files`) hold
    the same bytes; None when either is missing or cannot be read.

    Args:
        ref (tuple | None): One file.
        other (tuple | None): The other.
        copies (_CopyCheck): Reads sizes (each zip's directory once), so
            files of other sizes are not read.
    """
    if ref is None or other is None:
        return None
    try:
        if copies.size(ref) != copies.size(other):
            return False
        return _read_bytes(ref) == _read_bytes(other)
    except (OSError, FileTooLargeError, zipfile.BadZipFile, KeyError):
        return None
    finally:
        # A later conversion in this process reads each zip anew.
        _close_open_zips()


def _file_key(image_id):
    """What makes two ids one file name: letter case aside, as Windows and
    macOS compare names, where ``images/ISIC_1.jpg`` and
    ``images/isic_1.jpg`` are one file and one pair would overwrite the
    other, and Unicode normalisation aside (``café`` composed, NFC, or
    decomposed, NFD), as macOS compares names (Unicode's canonical
    caseless match)."""
    return unicodedata.normalize(
        'NFC', unicodedata.normalize('NFD', image_id).casefold())


def _one_name(one, other):
    """How two ids of one :func:`_file_key` differ, and where they are one
    file name.

    Args:
        one (str): An id.
        other (str): Another id of its key.

    Returns:
        tuple[str, str]: ``(how, where)``, as messages give them.
    """
    if unicodedata.normalize('NFC', one) == unicodedata.normalize(
            'NFC', other):
        return 'Unicode normalisation (NFC, NFD)', 'macOS'
    if one.casefold() == other.casefold():
        return 'letter case', 'Windows and macOS'
    return 'letter case and Unicode normalisation (NFC, NFD)', 'macOS'


def _cross_split_record(occurrence, converted, same_photo):
    """The record of a pair skipped because its id (or another id of its
    :func:`_file_key`) is converted from another pair: one id
    is one file name (``images/<id>.jpg``), so it can be in one split
    only, and keeping it in the first keeps a photo out of both a training
    and a test split.

    Args:
        occurrence (dict): The pair skipped, as ``_scan`` lists it in
            ``later``.
        converted (dict): The result (:func:`_process_pair`) of the pair
            written for the id.
        same_photo (bool | None): Whether the two photos are the same
            bytes (:func:`_same_photo`).

    Returns:
        dict: A ``duplicate id`` record (:func:`_record`).
    """
    photo = {
        True: 'the same photo, byte for byte',
        False: 'another photo',
        None: 'photos not compared (one is missing or unreadable)',
    }[same_photo]
    split = converted['split']
    if converted['id'] == occurrence['id']:
        detail = (f'id also in split {split}, with {photo}; the pair of '
                  f'{split} is converted, this one is not, so that the id '
                  'is in one split only')
    else:
        how, where = _one_name(converted['id'], occurrence['id'])
        detail = (f'id {_printable(converted["id"])} of split {split}, with '
                  f'{photo}, differs from this one in {how} alone, one file '
                  f'name on {where}, where one pair would overwrite the '
                  f'other; the pair of {split} is converted, this one is '
                  'not; rename one of them to convert both')
    return _record(occurrence['split'], occurrence['id'], 'duplicate id',
                   occurrence['ref'], detail)


def _convert_later_occurrences(later, tasks, results, skipped, duplicates,
                               out_dir, workers, log):
    """Convert the pair of an id from a later occurrence when no earlier
    pair of it is written (skipped: unreadable, no mask), so that a valid
    pair is not lost with a broken one; the other pairs of a converted id
    are skipped as ``duplicate id``. An id (letter case and Unicode
    normalisation aside, :func:`_file_key`) stays in one split and one
    file.

    Args:
        later (list[dict]): The occurrences ``_scan`` lists in ``later``.
        tasks (list[tuple]): The pairs ``_scan`` found first, as
            ``(split, id, image ref, mask ref)``.
        results (list[dict]): Of :func:`_process_pair` on ``tasks``; the
            pairs converted here are added.
        skipped (list[dict]): Skip records; the pairs skipped here are
            added, and a skipped pair whose id is converted from a later
            occurrence names the pair converted.
        duplicates (list[tuple]): Files ignored (as ``_scan`` lists them);
            those of the pairs tried here are added.
        out_dir (Path): The (temporary) output folder.
        workers (int): Worker processes.
        log (callable): ``print``, or a no-op when quiet; each round says
            how many pairs it checks, as ``checking N pairs`` says it of
            the first pairs.
    """
    image_of = {task[:2]: task[2] for task in tasks}
    written = {_file_key(r['id']): r for r in results if r['written']}
    pending = defaultdict(list)
    for occurrence in later:
        pending[_file_key(occurrence['id'])].append(occurrence)
    moved = set()  # keys whose first pair was skipped
    while True:
        batch = []
        for key, occurrences in pending.items():
            while occurrences and key not in written:
                occurrence = occurrences.pop(0)
                moved.add(key)
                duplicates += occurrence['duplicates']
                if occurrence['skip'] is None:
                    batch.append(occurrence['task'] + (str(out_dir), ))
                    image_of[occurrence['task'][:2]] = occurrence['image']
                    break
                skipped.append(occurrence['skip'])
        if not batch:
            break
        log(f'  checking {counted(len(batch), "more pair")}: of ids whose '
            'pair in an earlier split or spelling was skipped')
        # A few pairs: no second progress bar.
        converted = _run_tasks(batch, workers, verbose=False)
        results += converted
        skipped += [result['skip'] for result in converted if result['skip']]
        written.update((_file_key(r['id']), r) for r in converted
                       if r['written'])
    for record in skipped:
        # Each skip of a moved key so far is of a pair tried before the one
        # written (the duplicate id records come below).
        key = _file_key(record['id'])
        if key in moved and key in written:
            result = written[key]
            where = (f'split {result["split"]} (the id is also there)'
                     if result['id'] == record['id'] else
                     f'{result["split"]} spelled {_printable(result["id"])} '
                     f'(one file name on '
                     f'{_one_name(result["id"], record["id"])[1]})')
            record['detail'] += f'; the pair of {where} is converted instead'
    copies = _CopyCheck()
    for key, occurrences in pending.items():
        # Left only for an id written from an earlier occurrence.
        result = written.get(key)
        for occurrence in occurrences:
            same = _same_photo(image_of[(result['split'], result['id'])],
                               occurrence['image'], copies)
            skipped.append(_cross_split_record(occurrence, result, same))


def _stray_kind(member):
    """The kind of a known stray file of the official downloads, or None."""
    parts = member.split('/')
    name = parts[-1]
    lower = name.lower()
    if '__MACOSX' in parts or name.startswith('._') or name == '.DS_Store':
        return 'macOS metadata'
    if lower.endswith('_superpixels.png'):
        return 'superpixels'
    if lower.startswith('license'):
        return 'LICENSE'
    if lower.startswith('attribution'):
        return 'ATTRIBUTION'
    if lower.endswith('.csv'):
        return 'metadata csv'
    if name == SYNTHETIC_MARKER:
        return 'synthetic marker'
    return None


def _list_members(container, is_zip, log, unread):
    """The files in a folder (recursively) or zip.

    Args:
        container (Path): The official folder or zip.
        is_zip (bool): Whether it is a zip.
        log (callable): ``print``, or a no-op when quiet.
        unread (list[str]): Gets each folder that could not be listed, with
            why, as messages name it.

    Returns:
        list[tuple[str, str]]: ``(path, member)`` per file: its relative
        POSIX path, by which ids and stray files are recognised, and the
        name it is read by (they differ only for zip members named with
        backslashes).

    Raises:
        ConversionError: The zip cannot be read.
    """
    if is_zip:
        try:
            with zipfile.ZipFile(container) as archive:
                names = [
                    info.filename for info in archive.infolist()
                    if not info.is_dir()
                ]
        except (zipfile.BadZipFile, OSError) as error:
            raise ConversionError(
                f'cannot read zip file {container}: {error}') from error
        # Old Windows tools wrote "Folder\ISIC_x.jpg" (the zip format asks
        # for "/"); unzip and Windows read the backslash as a separator, so
        # it is one here too. Members are read from the zip by name, never
        # extracted, and an id is the last part, checked by _id_problem, so
        # ".." or a drive letter in such a name reaches nothing.
        return [(name.replace('\\', '/'), name) for name in names
                if not name.endswith('\\')]  # "Folder\": a folder entry
    members = []
    container = str(container)

    def where(path):
        rel = os.path.relpath(path, container)
        return _display(container, '' if rel == '.' else Path(rel).as_posix(),
                        False).rstrip('/')

    def on_error(error):
        # os.walk skips a folder it cannot list without a word.
        unread.append(f'{where(error.filename)}: {error.strerror or error}')

    # Subfolders that are links are followed, as the official folders
    # themselves are and as mmengine's scandir and Python's glob do: data
    # kept elsewhere behind a link is read. Each real folder is read once,
    # so a loop or a second link to a folder adds nothing.
    read = {os.path.realpath(container): container}
    for root, dirs, files in os.walk(container, onerror=on_error,
                                     followlinks=True):
        kept = []
        # Real folders before links, so a file is named by its own path.
        for name in sorted(dirs, key=lambda name: (
                os.path.islink(os.path.join(root, name)), name)):
            path = os.path.join(root, name)
            real = os.path.realpath(path)
            if real in read:
                log(f'note: ignored folder {where(path)}: the same folder '
                    f'as {where(read[real])} (through a link), already read')
                continue
            read[real] = path
            kept.append(name)
        dirs[:] = sorted(kept)
        rel_root = os.path.relpath(root, container)
        for name in sorted(files):
            rel = name if rel_root == '.' else os.path.join(rel_root, name)
            members.append(Path(rel).as_posix())
    return [(member, member) for member in members]


def _official_entries(src):
    """Map lower-case names in ``src`` to their (path, is_zip) entries."""
    found = defaultdict(list)
    for entry in sorted(src.iterdir()):
        name = entry.name
        if entry.is_dir():
            found[name.lower()].append((entry, False))
        elif entry.is_file() and name.lower().endswith('.zip'):
            found[name[:-4].lower()].append((entry, True))
    # A folder is read before a zip of the same name.
    for entries in found.values():
        entries.sort(key=lambda item: item[1])
    return found


def _unread_entries(src, year):
    """Top-level entries of ``src`` that are neither an official folder or
    zip of ``year`` nor a known stray file: never read, so they are named
    with why (a renamed folder such as ``ISIC-2017_Validation_Data (1)``
    is one; a file with an official folder name, a broken download, is
    another).

    Args:
        src (Path): The input folder.
        year (int): ISIC year.

    Returns:
        list[tuple[str, str]]: ``(name, why)``, sorted by name.
    """
    names = {
        name.lower()
        for pair in OFFICIAL_FOLDERS[year].values()
        for name in pair
    }
    unread = []
    for entry in sorted(src.iterdir()):
        name = entry.name
        if entry.is_dir():
            used = name.lower() in names
        else:
            used = (
                entry.is_file() and name.lower().endswith('.zip')
                and name[:-4].lower() in names)
        if used or _stray_kind(name) is not None:
            continue
        other_year = _official_year(
            name[:-4] if name.lower().endswith('.zip') else name)
        if other_year not in (None, year):
            why = (f'an official ISIC {other_year} folder or zip name, not '
                   f'one of ISIC {year}')
        elif name.lower() not in names:
            why = f'not an official ISIC {year} folder or zip name'
        elif entry.is_file() and zipfile.is_zipfile(entry):
            why = ('a zip file without the .zip ending; rename it to '
                   f'{name}.zip to have it read')
        elif entry.is_file():
            why = (f'a file of {entry.stat().st_size} bytes, not a folder or '
                   f'zip; ISIC {year} data is read from a folder of this name '
                   f'or from {name}.zip')
        elif entry.is_symlink():
            why = f'a link to {os.readlink(entry)}, which does not exist'
        else:
            why = 'not a folder or zip file'
        unread.append((name, why))
    return unread


def _missing_split_text(year, split, src, image_found=False,
                        mask_found=False):
    """How messages name a missing official split and its folders.

    Args:
        year (int): ISIC year.
        split (str): The official split.
        src (Path): The input folder.
        image_found (bool): Its image folder or zip is there (but holds no
            image). Default: False.
        mask_found (bool): Its ground-truth folder or zip is there (but
            holds no mask). Default: False.

    Returns:
        str: ``official split <split> missing (<why>)``.
    """
    image_name, mask_name = OFFICIAL_FOLDERS[year][split]
    if not (image_found or mask_found):
        return (f'official split {split} missing (no {image_name} or '
                f'{mask_name} folder or zip in {src})')
    why = [
        _no_files_text(image_name, 'image') if image_found else
        f'no {image_name} folder or zip',
        _no_files_text(mask_name, 'mask') if mask_found else
        f'no {mask_name} folder or zip',
    ]
    return f'official split {split} missing (in {src}: {"; ".join(why)})'


def _no_files_text(name, role):
    """How messages say that an official folder or zip holds no file of
    its kind (it is empty, or holds other files only)."""
    if role == 'image':
        return f'{name} holds no .jpg, .jpeg or .png image'
    return f'{name} holds no <id>{MASK_SUFFIX} mask'


def _official_year(name):
    """The ISIC year one of whose official folders (or zips, without
    ``.zip``) is named ``name`` (in any case), or None."""
    for year, splits in OFFICIAL_FOLDERS.items():
        if any(name.lower() == official.lower()
               for pair in splits.values() for official in pair):
            return year
    return None


def _years_found(found):
    """The ISIC years, sorted, of the official folders or zips in
    ``found`` (:func:`_official_entries`)."""
    return sorted({_official_year(name) for name in found} - {None})


def detect_year(src):
    """Recognise the ISIC year from the official folder or zip names.

    Args:
        src (str | Path): The input folder.

    Returns:
        int: 2016, 2017 or 2018.

    Raises:
        ConversionError: No official name found, or names of several years.
    """
    years = _years_found(_official_entries(Path(src)))
    if not years:
        expected = ', '.join(OFFICIAL_FOLDERS[2017]['train'])
        raise ConversionError(
            f'no official ISIC 2016/2017/2018 Task 1 folder or zip found in '
            f'{src} (expected names such as {expected}, or the same with '
            '.zip)')
    if len(years) > 1:
        raise ConversionError(
            f'{src} holds folders or zips of several ISIC years {years}; '
            'choose one with --year')
    return years[0]


def _collect_files(image_sources, mask_sources, ignored, unexpected, unread,
                   log):
    """Index the images and masks of one split by id (all copies kept).

    Args:
        image_sources (list[tuple[Path, bool]]): Its image folders or zips,
            as ``(path, is_zip)``.
        mask_sources (list[tuple[Path, bool]]): Its ground-truth folders or
            zips.
        ignored (Counter): Gets the stray and unexpected files by kind.
        unexpected (list[str]): Gets the unexpected files, as named.
        unread (list[str]): Gets the folders that could not be listed.
        log (callable): ``print``, or a no-op when quiet.

    Returns:
        tuple[dict, dict]: Images and masks, each mapping an id to its refs
        ``(container, member, is_zip)``.
    """
    images, masks = defaultdict(list), defaultdict(list)
    for sources, role in ((image_sources, 'image'), (mask_sources, 'mask')):
        for container, is_zip in sources:
            for path, member in _list_members(container, is_zip, log, unread):
                kind = _stray_kind(path)
                if kind is not None:
                    ignored[kind] += 1
                    continue
                name = posixpath.basename(path)
                lower = name.lower()
                ref = (str(container), member, is_zip)
                if role == 'mask' and lower.endswith(MASK_SUFFIX):
                    masks[name[:-len(MASK_SUFFIX)]].append(ref)
                elif (role == 'image' and lower.endswith(IMAGE_EXTENSIONS)
                      and not lower.endswith(MASK_SUFFIX)):
                    images[posixpath.splitext(name)[0]].append(ref)
                else:
                    ignored['unexpected file'] += 1
                    unexpected.append(_display(*ref))
    return images, masks


class _CopyCheck:
    """Whether two files of one id, in the official folder or zip of one
    name, are one file twice: the zip and its extracted folder kept side
    by side, or a folder extracted into itself again (a subfolder holding
    a copy). Folder files are compared byte for byte, a zip member by its
    recorded size and CRC-32. Each zip's directory is read once."""

    def __init__(self):
        self._zips = {}

    def _recorded(self, ref):
        """A zip member's recorded ``(size, CRC-32)``, or None."""
        container, member, _ = ref
        if container not in self._zips:
            with zipfile.ZipFile(container) as archive:
                self._zips[container] = {
                    info.filename: (info.file_size, info.CRC)
                    for info in archive.infolist()}
        return self._zips[container].get(member)

    def size(self, ref):
        """A file's size, or None for a zip member not in its zip."""
        if ref[2]:
            recorded = self._recorded(ref)
            return None if recorded is None else recorded[0]
        return os.path.getsize(Path(ref[0], ref[1]))

    def _crc(self, ref):
        if ref[2]:
            return self._recorded(ref)[1]
        return zlib.crc32(Path(ref[0], ref[1]).read_bytes())

    def same(self, kept, other):
        """Whether ``other`` is a copy of ``kept`` (refs as in
        :func:`_collect_files`) in the folder or zip of the same name."""
        names = {Path(ref[0]).name.lower().removesuffix('.zip')
                 for ref in (kept, other)}
        if len(names) != 1:
            return False
        try:
            size = self.size(kept)
            if size is None or size > MAX_MEMBER_BYTES or \
                    self.size(other) != size:
                return False
            if kept[2] or other[2]:
                return self._crc(kept) == self._crc(other)
            # Two folder files: their bytes, as cheap to read as a CRC.
            return (Path(kept[0], kept[1]).read_bytes() ==
                    Path(other[0], other[1]).read_bytes())
        except (OSError, zipfile.BadZipFile):
            return False


def _scan(src, year, log):
    """Find the pairs of every split.

    Returns:
        tuple: ``(tasks, skipped, ignored, present, missing, unread,
        duplicates, later)``:
        ``tasks`` lists (split, id, image ref, mask ref), a ref being
        (container, member, is_zip); ``skipped`` lists skip records;
        ``ignored`` counts stray files by kind; ``present`` names the
        splits whose folders or zips hold an image or a mask; ``missing``
        maps the other official splits of ``year`` to what is missing
        (:func:`_missing_split_text`); ``unread`` names the folders that
        could not be listed, with why; ``duplicates`` lists
        ``(split, id, ref, first ref)`` per file ignored because another
        file of its id and role (the first, which is used) has other
        content (:func:`_duplicate_record` makes their records once the
        pairs are written); ``later`` lists, in split order, each
        occurrence of an id already read (in an earlier official split,
        or spelled otherwise: :func:`_file_key`), as a dict of
        ``split``, ``id``, ``ref`` (its first file), ``image`` (its image
        ref or None), ``duplicates`` (its ignored files, as in
        ``duplicates``) and either ``task`` or ``skip`` (a missing
        partner) (:func:`_convert_later_occurrences` converts one when no
        earlier pair of its id is written).

    Raises:
        ConversionError: No folder or zip of ``year`` in ``src``.
    """
    found = _official_entries(src)
    # A misnamed official folder is read as absent: say which names were
    # passed over, so the user sees why.
    for name, why in _unread_entries(src, year):
        log(f'note: ignored {_printable(name)} ({_printable(why)})')
    names = [name for pair in OFFICIAL_FOLDERS[year].values() for name in pair]
    if not any(name.lower() in found for name in names):
        # Another year's download given with --year: say which it is.
        others = ' and '.join(map(str, _years_found(found)))
        hint = (f'; it holds official ISIC {others} folders or zips: give '
                'that year with --year, or leave --year out to have the '
                'year recognised' if others else '')
        raise ConversionError(f'no ISIC {year} folder or zip found in {src} '
                              f'(expected: {", ".join(names)}){hint}')
    tasks, skipped, unexpected, present, unread = [], [], [], [], []
    duplicates, later = [], []
    missing = {}
    ignored = Counter()
    seen_keys = set()
    copies = _CopyCheck()
    for split in SPLITS:
        if split not in OFFICIAL_FOLDERS[year]:
            continue
        image_name, mask_name = OFFICIAL_FOLDERS[year][split]
        image_sources = found.get(image_name.lower(), [])
        mask_sources = found.get(mask_name.lower(), [])
        if not image_sources and not mask_sources:
            missing[split] = _missing_split_text(year, split, src)
            continue
        unread_before = len(unread)
        images, masks = _collect_files(image_sources, mask_sources, ignored,
                                       unexpected, unread, log)
        for folder in unread[unread_before:]:
            log(f'warning: split {split}: cannot read folder {folder}; the '
                'files in it are not converted')
        # Folders or zips holding no image or mask (empty, or other files
        # only) are a missing split, not a present one with no pairs.
        if not images and not masks:
            missing[split] = _missing_split_text(
                year, split, src, bool(image_sources), bool(mask_sources))
            continue
        present.append(split)
        if not image_sources:
            log(f'warning: split {split}: no {image_name} folder or zip; its '
                'masks are skipped as "missing image"')
        elif not images:
            log(f'warning: split {split}: '
                f'{_no_files_text(image_name, "image")}; its masks are '
                'skipped as "missing image"')
        if not mask_sources:
            log(f'warning: split {split}: no {mask_name} folder or zip; its '
                'images are skipped as "missing mask"')
        elif not masks:
            log(f'warning: split {split}: '
                f'{_no_files_text(mask_name, "mask")}; its images are '
                'skipped as "missing mask"')

        # Identical copies, by whether both are in one folder (or zip).
        copied = Counter()
        for image_id in sorted(set(images) | set(masks)):
            image_refs = images.get(image_id, [])
            mask_refs = masks.get(image_id, [])
            all_refs = image_refs + mask_refs
            problem = _id_problem(image_id)
            if problem is not None:
                skipped.append(
                    _record(split, image_id, 'unsafe id', all_refs[0],
                            f'{problem}: {ascii(image_id)}; rename the '
                            'image and its mask'))
                continue
            # A file in both an official folder and its zip (the zip kept
            # beside its extracted folder), or twice in one (a copy in a
            # subfolder), byte for byte, is one file. A second, different
            # file of the id (ISIC_1.jpg and ISIC_1.png, a zip with other
            # content) is not a skipped pair: the pair is still converted,
            # from the first file.
            ignored_files = []
            for refs in (image_refs, mask_refs):
                for ref in refs[1:]:
                    if copies.same(refs[0], ref):
                        copied[refs[0][2] == ref[2]] += 1
                    else:
                        ignored_files.append((split, image_id, ref, refs[0]))
            occurrence = dict(split=split, id=image_id, ref=all_refs[0],
                              image=(image_refs or [None])[0],
                              duplicates=ignored_files, task=None, skip=None)
            if not mask_refs:
                occurrence['skip'] = _record(
                    split, image_id, 'missing mask', image_refs[0],
                    f'no {image_id}{MASK_SUFFIX} in {mask_name}')
            elif not image_refs:
                occurrence['skip'] = _record(
                    split, image_id, 'missing image', mask_refs[0],
                    f'no {image_id}.jpg in {image_name}')
            else:
                occurrence['task'] = (split, image_id, image_refs[0],
                                      mask_refs[0])
            if _file_key(image_id) in seen_keys:
                # Converted only if no earlier pair of the id (in an
                # earlier split, or spelled otherwise: _file_key) is
                # (:func:`_convert_later_occurrences`).
                later.append(occurrence)
                continue
            seen_keys.add(_file_key(image_id))
            duplicates += ignored_files
            if occurrence['skip'] is not None:
                skipped.append(occurrence['skip'])
            else:
                tasks.append(occurrence['task'])
        if copied[False]:
            log(f'note: split {split}: {counted(copied[False], "file")} '
                f'{"is" if copied[False] == 1 else "are"} both in '
                'an official folder and in the zip of the same name, with '
                'the same content; each is read once, from the folder')
        if copied[True]:
            log(f'note: split {split}: {counted(copied[True], "file")} '
                f'{"is" if copied[True] == 1 else "are"} twice in '
                'one official folder or zip (a copy in a subfolder), with '
                'the same content; each is read once, from its first copy')
    for name in unexpected[:MAX_PRINTED_PER_REASON]:
        log(f'note: ignored unexpected file {name}')
    if len(unexpected) > MAX_PRINTED_PER_REASON:
        log(f'note: ... and {len(unexpected) - MAX_PRINTED_PER_REASON} more '
            'unexpected files')
    return (tasks, skipped, ignored, present, missing, unread, duplicates,
            later)


# ---------------------------------------------------------------------------
# Checking and writing one pair (runs in worker processes)
# ---------------------------------------------------------------------------

_open_zips = {}


def _read_bytes(ref):
    """The content of a file or zip member, at most ``MAX_MEMBER_BYTES``.

    A zip member is decompressed as a stream and stopped at the limit, so a
    member that inflates to gigabytes never fills the memory.

    Raises:
        FileTooLargeError: The file is larger than ``MAX_MEMBER_BYTES``.
    """
    container, member, is_zip = ref
    limit = MAX_MEMBER_BYTES
    if is_zip:
        # Each process opens its own handle: a handle inherited through fork
        # would share the file offset with the parent.
        key = (os.getpid(), container)
        if key not in _open_zips:
            _open_zips[key] = zipfile.ZipFile(container)
        archive = _open_zips[key]
        too_large = archive.getinfo(member).file_size > limit
        opener = functools.partial(archive.open, member)
    else:
        path = Path(container, member)
        too_large = path.stat().st_size > limit
        opener = functools.partial(open, path, 'rb')
    data = b''
    if not too_large:
        # A declared size can lie: the stream is cut at the limit anyway.
        with opener() as stream:
            data = stream.read(limit + 1)
    if too_large or len(data) > limit:
        raise FileTooLargeError(
            f'{_display(*ref)} is larger than the limit of '
            f'{limit / 2**20:g} MB per file (MAX_MEMBER_BYTES in '
            'mmseg_dsnet/datasets/converters/isic.py)')
    return data


def _decode(data, load=True):
    """Fully decode image bytes (so truncation is detected).

    Args:
        data (bytes): The file's content.
        load (bool): Decode the pixels now; without, only the header is
            read (for ``rgb_reader.decode_rgb``, which loads it itself).

    Raises:
        Exception: Whatever the decoder raises for a broken file.
    """
    try:
        picture = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        # Pillow's own message names the in-memory buffer, not the file.
        raise OSError(f'not a recognised image format ({len(data)} bytes)'
                      ) from None
    if load:
        picture.load()
    return picture


def _alpha_problem(picture):
    """Why a mask's transparency cannot be dropped, or None.

    Converting a mask with an alpha channel to one channel drops the
    alpha; an annotation drawn as opaque lesion on a transparent ground
    (over white or black pixels) became a mask of all lesion or none. The
    alpha is dropped only where it is opaque everywhere or says what the
    pixels say (lesion opaque, background transparent).

    Returns:
        tuple | None: ``(reason, detail)`` of the skip, or None.
    """
    if 'A' not in picture.getbands() and not (
            picture.mode == 'P' and 'transparency' in picture.info):
        return None
    alpha = np.asarray(picture.convert('RGBA').getchannel('A'))
    if alpha.min(initial=255) == 255:
        return None
    gray = np.asarray(picture.convert('L'))
    if ((gray >= 128) == (alpha >= 128)).all():
        return None
    return ('unsupported mask',
            f'{picture.mode} mask with transparency (alpha '
            f'{int(alpha.min())}..{int(alpha.max())}) that differs from its '
            'gray values: the lesion may be drawn in the alpha channel, '
            'which a one-channel mask drops; save it as a gray 0/255 mask')


def _palette_labels(picture):
    """The labels of a palette (``P``) mask whose indices are binary.

    Label tools save masks as palette PNGs whose indices are the labels
    (mmseg's ``LoadAnnotations`` reads the indices): 0/1 with a black and a
    coloured entry (PASCAL VOC style) was read by its colours' gray values
    (0 and 38 for dark red) and refused as not binary. Indices 0/1 or
    0/255 are the labels when the palette draws index 0 darker than the
    other index (black background, white or coloured lesion, as the masks
    are shown); a palette that draws index 0 as bright as or brighter than
    the lesion index contradicts the indices, so the mask is refused.

    Args:
        picture (PIL.Image.Image): A decoded ``P`` mask.

    Returns:
        tuple | None: ``(values, fixes, problem)`` as :func:`_mask_values`
        returns them, or None when the indices are not binary (the mask is
        then read by its colours' gray values).
    """
    indices = np.asarray(picture)
    used = set(np.unique(indices).tolist())
    high = 1 if used <= {0, 1} else 255 if used <= {0, 255} else None
    if high is None:
        return None
    palette = picture.getpalette('RGB') or []

    def gray(index):
        rgb = palette[3 * index:3 * index + 3]
        if len(rgb) < 3:
            # No entry (a short palette of a mask without lesion): no
            # colour contradicts the index; index 0 must still be dark.
            return 128, None
        return (rgb[0] * 299 + rgb[1] * 587 + rgb[2] * 114) / 1000, rgb

    (gray_0, rgb_0), (gray_high, rgb_high) = gray(0), gray(high)
    if gray_0 >= gray_high:
        return None, [], (
            'ambiguous palette mask',
            f'P mask with indices 0/{high} whose palette draws index 0 '
            f'(background as labels) as {_colour(rgb_0)}, not darker than '
            f'index {high} (lesion), {_colour(rgb_high)}: indices and colours '
            'disagree on which is the lesion; save it as a gray mask, '
            'lesion 255 on 0')
    return indices, [('mask converted to one channel',
                      f'P mask: palette indices 0/{high} used as labels '
                      f'(index 0, {_colour(rgb_0)}: background; index '
                      f'{high}, {_colour(rgb_high)}: lesion)')], None


def _colour(rgb):
    """How messages name a palette entry (None: the palette has none)."""
    return 'absent from the palette' if rgb is None else str(tuple(rgb))


def _mask_values(picture):
    """One uint8 channel of a decoded mask.

    Returns:
        tuple: (values or None, fixes [(reason, detail)], problem or None).
    """
    problem = _alpha_problem(picture)
    if problem is not None:
        return None, [], problem
    mode = picture.mode
    if mode == '1':
        return np.asarray(picture, dtype=np.uint8), [], None
    if mode == 'L':
        return np.asarray(picture), [], None
    if mode == 'P':
        labels = _palette_labels(picture)
        if labels is not None:
            return labels
    if mode in ('P', 'LA', 'PA'):
        return np.asarray(picture.convert('L')), [
            ('mask converted to one channel',
             f'{mode} mask converted to grayscale')
        ], None
    if mode in ('RGB', 'RGBA'):
        rgb = np.asarray(picture.convert('RGB'))
        if not ((rgb[..., 0] == rgb[..., 1]).all()
                and (rgb[..., 1] == rgb[..., 2]).all()):
            return None, [], ('colour mask',
                              f'{mode} mask whose channels differ')
        return np.ascontiguousarray(rgb[..., 0]), [
            ('mask converted to one channel',
             f'{mode} mask with gray values reduced to one channel')
        ], None
    if mode in SIXTEEN_BIT_MODES:
        wide = np.asarray(picture).astype(np.int64)
        if wide.min(initial=0) < 0:
            return None, [], ('unsupported mask',
                              f'negative values in {mode} mask')
        if wide.max(initial=0) > 255:
            wide = (wide + 128) // 257
        return wide.astype(np.uint8), [
            ('16-bit mask scaled to 8-bit', f'{mode} mask scaled to 8-bit')
        ], None
    return None, [], ('unsupported mask', f'mask mode {mode}')


def _mask_to_binary(picture, raw_mode=''):
    """Turn a decoded mask into a {0, 1} uint8 array.

    Args:
        picture (PIL.Image.Image): The loaded mask.
        raw_mode (str): Its file's pixel layout, read before loading
            (``rgb_reader._raw_mode``; loading forgets it), e.g.
            ``'RGB;16B'`` for a 16-bit colour PNG. Default: ``''``.

    Returns:
        tuple: (mask or None, fixes [(reason, detail)], problem or None,
        number of pixels that were neither 0 nor 255 in a soft mask).
    """
    values, fixes, problem = _mask_values(picture)
    if problem is not None:
        return None, fixes, problem, 0
    if ';16' in raw_mode and picture.mode not in SIXTEEN_BIT_MODES:
        # Pillow keeps only the high byte of 16-bit colour (and gray with
        # alpha): 0/1 labels or 0/255 saved as 16 bits read as all
        # background, which would be written as an empty mask.
        if not values.any():
            return None, fixes, (
                'unsupported mask',
                f'16-bit {picture.mode} mask ({raw_mode}) whose high bytes '
                'are all 0: its values all lie below 256 (0/1 or 0/255 '
                'saved as 16 bits?), which the 8-bit reading cannot tell '
                'from an empty mask; save it as an 8-bit gray 0/255 '
                'mask'), 0
        fixes.append(('16-bit mask scaled to 8-bit',
                      f'{raw_mode} mask: the high byte of each value kept'))
    histogram = np.bincount(values.ravel(), minlength=256)
    present = np.flatnonzero(histogram)
    if set(present.tolist()) <= {0, 255}:
        return (values == 255).astype(np.uint8), fixes, None, 0
    if set(present.tolist()) <= {0, 1}:
        return values.astype(np.uint8, copy=False), fixes, None, 0
    if set(present.tolist()) == {0, 1, 255}:
        # 0/1 labels beside mmseg's ignore label, not a soft 0/255 mask:
        # re-binarised at 128, the lesion (1) became background and the
        # ignored pixels lesion.
        return None, fixes, ('mask values not binary',
                             '3 distinct values (0, 1, 255): 0/1 labels '
                             'beside 255 (an ignore label?), neither a '
                             '0/255 nor a 0/1 mask; expected {0, 255} or '
                             '{0, 1}'), 0
    # A JPEG-style (soft) mask keeps almost all pixels near 0 or 255 and has
    # a lesion; anything else (a label map, a gray picture) is not trusted.
    total = values.size
    near_extremes = histogram[:33].sum() + histogram[223:].sum()
    changed = int(total - histogram[0] - histogram[255])
    if near_extremes >= 0.9 * total and histogram[223:].sum() > 0:
        fixes.append(('soft mask re-binarised at 128',
                      f'{counted(changed, "pixel")} '
                      f'{"was" if changed == 1 else "were"} neither 0 nor '
                      '255'))
        return (values >= 128).astype(np.uint8), fixes, None, changed
    return None, fixes, ('mask values not binary',
                         f'{len(present)} distinct values '
                         f'({first_few(present.tolist(), 8)}); '
                         'expected {0, 255} or {0, 1}'), 0


def _write_pair(out_dir, image_id, jpeg_bytes, mask):
    """Write one checked pair into the (temporary) output folder."""
    Path(out_dir, 'images', f'{image_id}.jpg').write_bytes(jpeg_bytes)
    mask_path = Path(out_dir, 'masks', f'{image_id}.png')
    Image.fromarray(mask, mode='L').save(mask_path)


def _process_pair(task):
    """Check, repair if possible and write one pair.

    Args:
        task (tuple): (split, id, image ref, mask ref, output folder).

    Returns:
        dict: ``split``, ``id``, ``written`` (bool), ``fixes`` (fix records),
        ``skip`` (a skip record or None), ``digest`` (of the image file),
        ``small`` (a ``small image`` record when a side of the image is
        below :data:`MIN_IMAGE_SIDE`, or None) and ``uniform`` (a ``uniform
        mask`` record when the mask holds no lesion or no background
        pixel, or None).
    """
    split, image_id, image_ref, mask_ref, out_dir = task
    result = dict(split=split, id=image_id, written=False, fixes=[], skip=None,
                  digest=None, small=None, uniform=None)

    def skip(reason, ref, detail):
        result['skip'] = _record(split, image_id, reason, ref, detail)
        return result

    # Any decoder failure means the file is unusable; report, never crash.
    try:
        image_bytes = _read_bytes(image_ref)
        # Not loaded: the shared reader reads what loading drops (a PGM's
        # maximum value, a TIFF's orientation tag) before it loads it; a
        # PGM of maximum 100 was converted as Pillow stretches it, not as
        # mmcv reads the same file.
        image = _decode(image_bytes, load=False)
    except FileTooLargeError as error:
        return skip('file too large', image_ref, str(error))
    except Exception as error:
        return skip('unreadable image', image_ref,
                    f'unreadable or truncated: {error}')
    # Upright and 8-bit RGB, as the training loader (mmcv) will read it.
    # Read from its own opening: loading drops a TIFF's tag, and reading
    # a PNG's EXIF loads it (the reader then missed its 16-bit layout, so
    # 8-bit values saved as 16 bits were written as a black JPEG).
    orientation = rgb_reader.exif_orientation(
        _decode(image_bytes, load=False))
    notes = []
    try:
        rgb = rgb_reader.decode_rgb(image, notes)
    except ValueError as error:
        return skip('unsupported image', image_ref, str(error))
    except Exception as error:
        return skip('unreadable image', image_ref,
                    f'unreadable or truncated: {error}')
    try:
        mask_picture = _decode(_read_bytes(mask_ref), load=False)
        mask_raw_mode = rgb_reader._raw_mode(mask_picture)
        mask_picture.load()
    except FileTooLargeError as error:
        return skip('file too large', mask_ref, str(error))
    except Exception as error:
        return skip('unreadable mask', mask_ref,
                    f'unreadable or truncated: {error}')

    # Masks are read as stored (mmseg decodes them 'unchanged', without
    # EXIF orientation): compare with the image as the loader shows it.
    height, width = rgb.shape[:2]
    if (width, height) != mask_picture.size:
        mask_w, mask_h = mask_picture.size
        turned = ''
        if orientation != 1:
            turned = (f' after its EXIF orientation {orientation} (stored '
                      '{}x{})'.format(*rgb_reader.stored_size(image)))
        return skip(
            'size mismatch', mask_ref,
            f'image {_display(*image_ref)} is {width}x{height}{turned}, '
            f'mask is {mask_w}x{mask_h}')

    mask, mask_fixes, problem, changed = _mask_to_binary(mask_picture,
                                                          mask_raw_mode)
    if problem is not None:
        return skip(problem[0], mask_ref, problem[1])
    fixes = [
        dict(_record(split, image_id, reason, mask_ref, detail),
             changed_pixels=changed) for reason, detail in mask_fixes
    ]

    if image.format == 'JPEG' and image.mode == 'RGB' and not notes:
        jpeg_bytes = image_bytes
    else:
        # Written without EXIF: the upright pixels need no orientation tag.
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format='JPEG', quality=JPEG_QUALITY)
        jpeg_bytes = buffer.getvalue()
        if orientation != 1:
            reason = 'EXIF orientation applied'
        elif image.mode != 'RGB' or notes:
            reason = 'image converted to RGB'
        else:
            reason = 'image re-encoded as JPEG'
        what = '; '.join(notes) or f'{image.format} image re-encoded as JPEG'
        record = _record(split, image_id, reason, image_ref, what)
        if orientation != 1 and \
                tuple(rgb_reader.stored_size(image)) == (width, height):
            # Turned to its own size (mirrored, 180 degrees, square): the
            # size check cannot tell a mask of the stored pixels.
            record['detail'] += ('; the mask fits the stored pixels as well '
                                 'as the turned ones: alignment unchecked')
            record['alignment_unchecked'] = True
        fixes.append(record)

    if min(width, height) < MIN_IMAGE_SIDE:
        result['small'] = dict(
            _record(split, image_id, 'small image', image_ref,
                    f'{width}x{height} pixels, a side below '
                    f'{MIN_IMAGE_SIDE}'), size=[width, height])
    lesion = int(np.count_nonzero(mask))
    if lesion in (0, mask.size):
        result['uniform'] = _record(
            split, image_id, 'uniform mask', mask_ref,
            'no lesion pixel' if lesion == 0 else 'no background pixel')
    _write_pair(out_dir, image_id, jpeg_bytes, mask)
    # Of the file as given: copies of one photo under two ids are found.
    result.update(written=True, fixes=fixes,
                  digest=hashlib.sha256(image_bytes).hexdigest())
    return result


# prctl option of <sys/prctl.h>: the signal a process gets when its parent
# dies.
_PR_SET_PDEATHSIG = 1


def _init_worker(parent):
    """Set up a pool worker.

    Interrupts are the parent's to handle (it removes the temporary folder
    and terminates the workers), and on Linux a worker also dies with its
    parent when the parent is killed with SIGKILL, so no orphan is left.

    Args:
        parent (int): PID of the converting process.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in INTERRUPT_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    if sys.platform.startswith('linux'):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass  # the parent still terminates its workers on any signal
            # it can catch
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


@contextlib.contextmanager
def _interrupt_on_signals():
    """Raise :class:`Interrupted` on SIGTERM and SIGHUP, as Ctrl-C raises
    ``KeyboardInterrupt``, so that a stopped conversion removes its
    temporary folder and terminates its workers. The previous handlers are
    restored on exit; outside the main thread nothing is changed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()
    raised = []

    def handler(signum, frame):
        if os.getpid() != owner:
            # A worker forked before its initializer ran: die as by default.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if not raised:  # a second signal must not cut the clean-up short
            raised.append(signum)
            raise Interrupted(signum)

    previous = {}
    for name in INTERRUPT_SIGNALS:
        if hasattr(signal, name):
            signum = getattr(signal, name)
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            if old is not None:
                signal.signal(signum, old)


def _can_use_pool(workers, n_tasks):
    if workers <= 1 or n_tasks < MIN_PAIRS_FOR_POOL:
        return False
    # Fork lets the workers use this module however it was imported (by
    # path, too); elsewhere the pairs are checked in this process.
    if 'fork' not in multiprocessing.get_all_start_methods():
        return False
    try:
        pickle.dumps(_process_pair)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def _run_tasks(tasks, workers, verbose):
    """Run ``_process_pair`` over the tasks, in a pool when worth it."""
    bar = None
    if tqdm is not None and verbose:
        bar = tqdm(total=len(tasks), desc='pairs', unit='pair',
                   file=sys.stderr, mininterval=0.5)
    results = []
    try:
        if not _can_use_pool(workers, len(tasks)):
            for task in tasks:
                results.append(_process_pair(task))
                if bar is not None:
                    bar.update(1)
            return results
        context = multiprocessing.get_context('fork')
        chunk = max(1, min(32, len(tasks) // (workers * 8)))
        pool = context.Pool(
            workers, initializer=_init_worker, initargs=(os.getpid(), ))
        try:
            for result in pool.imap(_process_pair, tasks, chunksize=chunk):
                results.append(result)
                if bar is not None:
                    bar.update(1)
            pool.close()
        except BaseException:
            # Interrupted or failed: stop the workers now (SIGTERM), not
            # after their current chunk.
            pool.terminate()
            raise
        finally:
            pool.join()
        return results
    finally:
        _close_open_zips()
        if bar is not None:
            bar.close()


def _close_open_zips():
    """Close this process's zip handles, so that a later conversion in the
    process (a notebook, the API) reads each zip as it then is, not as it
    was when first opened."""
    for key in [key for key in _open_zips if key[0] == os.getpid()]:
        _open_zips.pop(key).close()


# ---------------------------------------------------------------------------
# Splits, summary, atomic output
# ---------------------------------------------------------------------------


def _make_splits(year, written, seed, train_ratio):
    """Official and lightweight split lists, plus the rules applied.

    Args:
        year (int): ISIC year.
        written (dict[str, list[str]]): Ids written per official split.
        seed (int): Seed of the shuffles.
        train_ratio (float): Train share of the lightweight split.

    Returns:
        tuple: (splits {name: sorted ids}, validation rule, lightweight rule,
        design rule).
    """
    official = {split: sorted(written.get(split, [])) for split in SPLITS}
    if year == 2016:
        train = official['train']
        n_val = int(round(HOLDOUT_VAL_RATIO_2016 * len(train)))
        how = f'round({HOLDOUT_VAL_RATIO_2016} * {len(train)})'
        # Up to 5 pairs round to none (round(0.5) is 0): at least one when
        # there are two, as for the design hold-out, so official_val is not
        # empty.
        if n_val == 0 and len(train) > 1:
            n_val = 1
            how += ' = 0, raised to 1'
        order = np.random.default_rng(seed).permutation(len(train))
        held_out = {train[i] for i in order[:n_val]}
        official['val'] = sorted(held_out)
        official['train'] = [i for i in train if i not in held_out]
        val_rule = (
            f'ISIC 2016 has no validation set: {n_val} of the {len(train)} '
            f'official train pairs ({how}) held out with numpy.random.'
            f'default_rng({seed}).permutation of the sorted ids, removed from '
            'official_train')
    else:
        val_rule = "the challenge's own validation set"

    pool = sorted(i for split in LIGHTWEIGHT_POOL for i in official[split])
    total = len(pool)
    if (year == 2017 and total == LITERATURE_SPLIT_2017[0]
            and train_ratio == 0.7):
        n_train = LITERATURE_SPLIT_2017[1]
        rule = (f'full ISIC 2017 (train+val = {total}): the literature\'s '
                f'fixed {n_train}/{total - n_train} split')
    else:
        n_train = int(round(train_ratio * total))
        rule = f'n_train = round({train_ratio} * {total}) = {n_train}'
    rule += (f'; official train+val ids sorted, shuffled with numpy.random.'
             f'default_rng({seed}).permutation, first n_train -> train')
    order = np.random.default_rng(seed).permutation(total)
    splits = {f'official_{split}': official[split] for split in SPLITS}
    splits['lightweight_train'] = sorted(pool[i] for i in order[:n_train])
    splits['lightweight_test'] = sorted(pool[i] for i in order[n_train:])
    # Design hold-out: its own stream of the same seed, so the literature's
    # train/test split above is unchanged by it.
    train = splits['lightweight_train']
    # At least one image when there are two, so both lists are usable.
    n_val = min(max(1, int(round(DESIGN_VAL_RATIO * len(train)))),
                len(train) - 1) if len(train) > 1 else 0
    order = np.random.default_rng([seed, 1]).permutation(len(train))
    held_out = {train[i] for i in order[:n_val]}
    splits['lightweight_design_val'] = sorted(held_out)
    splits['lightweight_design_train'] = [
        i for i in train if i not in held_out
    ]
    design_rule = (
        f'{n_val} of the {len(train)} lightweight_train ids '
        f'(round({DESIGN_VAL_RATIO} * {len(train)}), at least 1) held out as '
        f'lightweight_design_val with numpy.random.default_rng([{seed}, 1])'
        '.permutation of the sorted ids; the rest is lightweight_design_train'
        '. Designs and settings are chosen on it; reported models train on '
        'all of lightweight_train')
    return splits, val_rule, rule, design_rule


def _check_lightweight_splits(splits, train_ratio, skipped=0):
    """Refuse train+val pairs too few, or a train ratio, that leave a
    lightweight split file (``lightweight_train``, ``lightweight_test``,
    ``lightweight_design_train``, ``lightweight_design_val``) empty: the
    empty file was written and the conversion reported as done, and every
    config on it fails later (a test on it scores nothing).

    A download without train and val pairs (test images only, to score a
    released model on ``official_test``) has no lightweight split at all;
    it is not refused here (its missing splits are warned about).

    Args:
        splits (dict[str, list[str]]): From :func:`_make_splits`.
        train_ratio (float): The train share that made them.
        skipped (int): Train/val pairs skipped, named in the message.
            Default: 0.

    Raises:
        ConversionError: Naming the empty splits, the pair counts and what
            to change.
    """
    train = len(splits['lightweight_train'])
    total = train + len(splits['lightweight_test'])
    if total == 0:
        return
    # With fewer pairs than the splits need no ratio fills them all: that
    # is said below (advising another ratio would not help).
    if total >= MIN_LIGHTWEIGHT_PAIRS and train in (0, total):
        empty = 'lightweight_train' if train == 0 else 'lightweight_test'
        raise ConversionError(
            f'train ratio {train_ratio} puts {train} of the {total} '
            f'train+val pairs into lightweight_train, so {empty} would be '
            'empty; choose a ratio that leaves at least one pair in each')
    empty = [name for name in LIGHTWEIGHT_SPLIT_NAMES if not splits[name]]
    if not empty:
        return
    counts = (f'lightweight train {train} / test {total - train} (design '
              f'hold-out: train {len(splits["lightweight_design_train"])} / '
              f'val {len(splits["lightweight_design_val"])})')
    if total < MIN_LIGHTWEIGHT_PAIRS:
        was_skipped = (f' ({skipped} more skipped: see the list above)'
                       if skipped else '')
        raise ConversionError(
            f'only {counted(total, "train+val pair")} to split{was_skipped}: '
            f'{counts} leaves {", ".join(empty)} empty; the lightweight '
            f'split needs at least {MIN_LIGHTWEIGHT_PAIRS} train+val pairs '
            '(2 to train, with one held out for the design split, and 1 to '
            'test); give a download with more pairs; nothing written')
    raise ConversionError(
        f'train ratio {train_ratio} puts {train} of the {total} train+val '
        f'pairs into lightweight_train ({counts}), so {", ".join(empty)} '
        'would be empty; choose a --train-ratio that leaves at least 2 '
        'pairs in lightweight_train and 1 in lightweight_test')


def _identical_images(results):
    """The written images that are byte-identical copies of one another
    under different ids (one photo given twice: in a training and a test
    split, a test image trained on; in one split, an image that weighs
    twice).

    Args:
        results (list[dict]): Of :func:`_process_pair`.

    Returns:
        list[list[dict]]: One group per content held by more than one id,
        each ``{'split', 'id'}`` per copy, sorted.
    """
    by_digest = defaultdict(list)
    for result in results:
        if result['written'] and result.get('digest'):
            by_digest[result['digest']].append(
                {'split': result['split'], 'id': result['id']})
    groups = [sorted(copies, key=lambda c: (SPLITS.index(c['split']),
                                            c['id']))
              for copies in by_digest.values() if len(copies) > 1]
    return sorted(groups, key=lambda g: (SPLITS.index(g[0]['split']),
                                         g[0]['id']))


# The lists the seeded shuffles make that are trained on, each with the list
# scored against it (ISIC 2016's official_val too): a photo given under two
# ids in both is a scored image trained on. The challenge's own splits are
# kept as published.
TRAINED_AND_SCORED = (('lightweight_train', 'lightweight_test'),
                      ('lightweight_design_train', 'lightweight_design_val'))
TRAINED_AND_SCORED_2016 = (('official_train', 'official_val'), )


def _identical_across_lists(identical, splits, year):
    """The photos given under more than one id (:func:`_identical_images`)
    that a seeded shuffle put into a list trained on and into the list
    scored against it (:data:`TRAINED_AND_SCORED`, and for ISIC 2016
    :data:`TRAINED_AND_SCORED_2016`).

    Args:
        identical (list[list[dict]]): From :func:`_identical_images`.
        splits (dict[str, list[str]]): From :func:`_make_splits`.
        year (int): ISIC year.

    Returns:
        list[list[dict]]: One group per photo and pair of lists, each
        ``{'list', 'id'}`` per copy in them, the trained copies first.
    """
    found = []
    pairs = TRAINED_AND_SCORED + (TRAINED_AND_SCORED_2016
                                  if year == 2016 else ())
    for trained, scored in pairs:
        members = {name: set(splits[name]) for name in (trained, scored)}
        for group in identical:
            copies = [dict(list=name, id=copy['id'])
                      for name in (trained, scored) for copy in group
                      if copy['id'] in members[name]]
            if len({copy['list'] for copy in copies}) == 2:
                found.append(copies)
    return found


def _photos_across_lists(groups):
    """How many photos the groups of :func:`_identical_across_lists` are
    (one photo may be in two pairs of lists)."""
    return len({frozenset(copy['id'] for copy in group) for group in groups})


def _across_lists_text(groups):
    """How the summary and ``--strict`` name the groups of
    :func:`_identical_across_lists`."""
    return first_few([
        ' = '.join(f'{copy["id"]} ({copy["list"]})' for copy in group)
        for group in groups
    ], 5)


def _identical_text(groups):
    """How the summary names groups of identical images."""
    named = [' = '.join(f'{c["id"]} ({c["split"]})' for c in group)
             for group in groups]
    return first_few(named, 5)


def _uniform_masks_text(records):
    """How the summary and ``--strict`` name the masks without a lesion or
    a background pixel (``uniform mask`` records)."""
    named = [f'{r["file"]} ({r["split"]}, {r["detail"]})' for r in records]
    return (f'{counted(len(records), "mask")} of one value (no lesion '
            f'pixel, or no background pixel): {first_few(named, 5)}')


def _small_images_text(records):
    """How the summary and ``--strict`` name the images with a side below
    :data:`MIN_IMAGE_SIDE` (``small image`` records)."""
    named = [f'{r["file"]} ({r["split"]}, {r["size"][0]}x{r["size"][1]})'
             for r in records]
    return (f'{counted(len(records), "image")} smaller than '
            f'{MIN_IMAGE_SIDE} pixels a side: {first_few(named, 5)}')


def _print_records(log, title, records):
    by_reason = defaultdict(list)
    for record in records:
        by_reason[record['reason']].append(record)
    counts = '; '.join(f'{reason}: {len(items)}'
                       for reason, items in by_reason.items())
    log(f'{title}: {len(records)}' + (f' ({counts})' if records else ''))
    for reason, items in by_reason.items():
        for record in items[:MAX_PRINTED_PER_REASON]:
            log(f'    [{reason}] {record["file"]} ({record["split"]}, '
                f'id {_printable(record["id"])}): {record["detail"]}')
        if len(items) > MAX_PRINTED_PER_REASON:
            log(f'    [{reason}] ... and '
                f'{len(items) - MAX_PRINTED_PER_REASON} more (all listed in '
                'meta.json)')


def _data_sets_in(folder):
    """The subfolders of ``folder`` that hold a data set this converter
    (or the synthetic generator through it) wrote: a ``meta.json`` naming
    the converter.

    Args:
        folder (Path): An existing folder.

    Returns:
        list[str]: Their names, sorted.
    """
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [entry.name for entry in entries if _is_conversion(entry)]


def _is_conversion(folder):
    """Whether ``folder`` holds a data set this converter (or the synthetic
    generator through it) wrote: a ``meta.json`` naming the converter.

    Args:
        folder (Path): Any path.

    Returns:
        bool
    """
    meta = folder / 'meta.json'
    try:
        if not folder.is_dir() or not meta.is_file():
            return False
        converter = json.loads(meta.read_text(encoding='utf-8')).get(
            'converter')
    except (OSError, ValueError, AttributeError):
        return False
    return converter == CONVERTER_TOOL


def _input_paths(src, year):
    """The real paths the scan reads from outside ``src``: each official
    folder or zip of ``year``, and each link inside those folders, at any
    depth (the scan follows them, :func:`_list_members`).

    Only folders are listed (each real one once); no file is opened.

    Args:
        src (Path): The input folder, resolved.
        year (int): The ISIC year.

    Returns:
        list[tuple[str, Path]]: ``(path relative to src, real path)``.
    """
    names = {name.lower() for pair in OFFICIAL_FOLDERS[year].values()
             for name in pair}
    found = []
    for name, entries in _official_entries(src).items():
        if name not in names:
            continue
        for entry, is_zip in entries:
            real = os.path.realpath(entry)
            found.append((entry.name, Path(real)))
            pending = [] if is_zip else [(entry, entry.name)]
            listed = {real}
            while pending:
                folder, shown = pending.pop()
                try:
                    children = sorted(os.scandir(folder),
                                      key=lambda child: child.name)
                except OSError:
                    continue  # the scan names the folders it cannot list
                for child in children:
                    where = f'{shown}/{child.name}'
                    real = None
                    if child.is_symlink():
                        real = os.path.realpath(child.path)
                        found.append((where, Path(real)))
                    if child.is_dir():
                        real = real or os.path.realpath(child.path)
                        if real not in listed:
                            listed.add(real)
                            pending.append((child.path, where))
    return found


def _check_out(src, out, overwrite, year=2018):
    """Refuse an ``out`` that overlaps ``src`` or is in the way.

    ``out`` is also compared resolved (symlinks followed, ``src`` already
    is), so an ``out`` that reaches into ``src`` through a symlink is
    refused, and so is one inside (or holding) an official folder of
    ``year`` that is a link to data kept elsewhere, or a link at any depth
    inside an official folder (:func:`_input_paths`). With ``overwrite``, a
    folder whose subfolders hold converted data sets (``data/`` given for
    ``data/isic2018``) is refused too, and so is any other non-empty
    folder that is not an earlier conversion.

    Args:
        src (Path): The input folder, resolved.
        out (Path): The output folder, absolute.
        overwrite (bool): ``--overwrite``.
        year (int): The ISIC year, for the message. Default: 2018.
    """
    real_out = Path(os.path.realpath(out))
    for candidate in (out, real_out):
        if src.is_relative_to(candidate) or candidate.is_relative_to(src):
            via = f', which resolves to {real_out}' if real_out != out else ''
            raise ConversionError(
                f'OUT ({out}{via}) and SRC ({src}) must not contain one '
                'another: the input is never modified')
    # An official folder (or zip), or a link inside one, to data kept
    # elsewhere: an OUT inside it was written into the input, and read as
    # its images the next time.
    for where, real in _input_paths(src, year):
        if any(candidate.is_relative_to(real)
               or real.is_relative_to(candidate)
               for candidate in (out, real_out)):
            raise ConversionError(
                f'OUT ({out}) and {_printable(where)} of SRC, a link to '
                f'{real}, must not contain one another: the input is never '
                'modified')
    if out.is_dir() and not out.is_symlink() and os.path.ismount(out):
        # Found only at the end: rmdir or rename of it fails (EBUSY).
        raise ConversionError(
            f'{out} is a mount point, which the conversion (built beside '
            'it and renamed into place) cannot replace; give a folder '
            f'inside it, such as {out / f"isic{year}"}; nothing written')
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        if not overwrite:
            raise ConversionError(
                f'{out} exists and is not a folder; pass --overwrite to '
                'replace it')
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise ConversionError(
            f'{out} exists and is not empty; pass --overwrite to replace it '
            '(it is left untouched)')
    elif out.is_dir():
        held = _data_sets_in(out)
        if held:
            # "isic.py RAW data --overwrite" (OUT without its last part)
            # replaced every data set under data/.
            raise ConversionError(
                f'{out} holds converted data sets in its subfolders '
                f'({", ".join(held)}); --overwrite replaces one earlier '
                'conversion, not a folder of data sets: give OUT a folder '
                f'of its own (such as {out / f"isic{year}"}); nothing was '
                'replaced')
        if any(out.iterdir()) and not _is_conversion(out):
            # A raw download, a folder of photos or results given as OUT
            # with --overwrite was deleted without a word.
            raise ConversionError(
                f'{out} is not an earlier conversion (it has no meta.json '
                'written by tools/dataset_converters/isic.py); --overwrite '
                'replaces only an earlier conversion: give OUT a new or '
                'empty folder; nothing was replaced')


def _followed_out(out, log):
    """The folder to write for ``OUT``: itself, or the folder it links to.

    The conversion is built beside that folder and renamed into it, so an
    ``OUT`` that is a link (data kept on a larger disk) was replaced by a
    new folder beside the link, and the conversion the link showed stayed
    where it was; without ``--overwrite`` the link was refused as "not a
    folder".

    Args:
        out (Path): ``OUT``, absolute.
        log (callable): ``print``, or a no-op when quiet.

    Returns:
        Path: ``out``, or the resolved folder it links to.

    Raises:
        ConversionError: ``out`` is a link to nothing (a drive not
            mounted, a moved folder): the conversion would be written
            where the drive belongs.
    """
    if not out.is_symlink():
        return out
    target = Path(os.path.realpath(out))
    if not target.exists():
        raise ConversionError(
            f'OUT {out} is a link to {os.readlink(out)}, which does not '
            'exist (a drive not mounted, a moved folder?); make that folder '
            'or give OUT the folder itself; nothing written')
    if not target.is_dir():
        return out  # a link to a file: in the way, as a file is
    log(f'note: OUT {out} is a link; the conversion is written where it '
        f'points, {target}')
    return target


def _mark_run_folder(folder, kind, tool, pid=None):
    """Write :data:`RUN_MARKER` into a folder a run makes beside ``OUT``,
    so that a later run may remove it once the process is gone.

    Args:
        folder (Path): ``OUT.tmp-PID`` (just made) or ``OUT.old-PID``
            (the earlier conversion just moved aside).
        kind (str): ``'tmp'`` or ``'old'``, as the folder's name says.
        tool (str): The tool writing it, a key of :data:`RUN_LAYOUTS`.
        pid (int, optional): The process its name gives. Default: this
            process.
    """
    marker = {'written_by': tool, 'folder': kind,
              'pid': os.getpid() if pid is None else pid}
    (folder / RUN_MARKER).write_text(json_text(marker) + '\n',
                                     encoding='utf-8')


def _unmark_run_folder(folder):
    """Take :data:`RUN_MARKER` out of a folder about to become ``OUT``."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        (folder / RUN_MARKER).unlink()


def _not_a_run_folder(entry, kind, pid):
    """Why ``entry``, named ``OUT.<kind>-<pid>``, is not a folder that a
    run of the converter or of the synthetic generator left, or None.

    Such a folder holds :data:`RUN_MARKER` naming ``kind`` and ``pid``,
    and nothing its tool does not write (:data:`RUN_LAYOUTS`): a user's
    folder that happens to be named so (a backup of an earlier
    conversion) is not one, and is never removed.

    Args:
        entry (Path): The folder (or file, or link) beside ``OUT``.
        kind (str): ``'tmp'`` or ``'old'``.
        pid (int): The process its name gives.

    Returns:
        str | None: Why it is kept, as the warning says it, or None.
    """
    if entry.is_symlink() or not entry.is_dir():
        return 'it is not a folder'
    try:
        try:
            text = (entry / RUN_MARKER).read_text(encoding='utf-8')
        except FileNotFoundError:
            return (f'it does not hold {RUN_MARKER}, which the converter '
                    'writes into the folders it makes')
        marker = json.loads(text)
        if not isinstance(marker, dict) or not isinstance(
                marker.get('written_by'), str):
            marker = {}
        layout = RUN_LAYOUTS.get(marker.get('written_by'))
        if (layout is None or marker.get('folder') != kind
                or marker.get('pid') != pid):
            return (f'its {RUN_MARKER} does not name a {kind} folder of '
                    f'process {pid}')
        folders, files = layout
        for child in sorted(entry.iterdir()):
            extra = child.name
            if child.name == RUN_MARKER or child.is_symlink():
                extra = None if child.name == RUN_MARKER else extra
            elif child.is_file():
                extra = None if child.name in files else extra
            elif child.is_dir() and child.name in folders:
                # Its tool writes plain files into these, nothing else.
                extra = next((f'{child.name}/{inner.name}'
                              for inner in sorted(child.iterdir())
                              if inner.is_symlink() or not inner.is_file()),
                             None)
            if extra is not None:
                return (f'it holds {_printable(extra)}, which the converter '
                        'does not write')
    except ValueError as error:
        return f'its {RUN_MARKER} is not JSON ({error})'
    except OSError as error:
        return f'it cannot be read ({error})'
    return None


def _remove_stale_tmp(out, log):
    """Clean up after earlier runs that could not (killed with SIGKILL,
    power loss): their process is gone. Their ``OUT.tmp-PID`` folders are
    removed; an ``OUT.old-PID`` (the earlier conversion an ``--overwrite``
    run moves aside, :func:`_move_into_place`) is removed when ``OUT``
    exists, and otherwise kept and named, as it is then the only copy of
    that conversion. The folders of a conversion still running are
    kept, and so is, named in a warning, any folder so named that a run
    did not leave (:func:`_not_a_run_folder`)."""
    if not out.parent.is_dir():
        return
    for entry in sorted(out.parent.iterdir()):
        kind, _, pid = entry.name[len(out.name):].partition('-')
        if (not entry.name.startswith(out.name)
                or kind not in ('.tmp', '.old') or not pid.isascii()
                or not pid.isdigit() or int(pid) == os.getpid()
                or pid_alive(int(pid))):
            continue
        why_kept = _not_a_run_folder(entry, kind[1:], int(pid))
        if why_kept is not None:
            log(f'warning: kept {entry}: named like a folder of an '
                f'interrupted conversion (process {pid} is gone), but '
                f'{why_kept}; remove it yourself if it is not needed')
            continue
        if kind == '.old' and not (out.exists() or out.is_symlink()):
            log(f'warning: kept {entry}: the earlier conversion that an '
                f'interrupted --overwrite run (process {pid} is gone) moved '
                f'aside before its own reached {out}; remove it once it is '
                'not needed')
            continue
        what = '' if kind == '.tmp' else ' (the conversion it replaced)'
        run = 'conversion' if kind == '.tmp' else '--overwrite run'
        try:
            _remove_path(entry)
        except OSError as error:
            log(f'warning: could not remove {entry}{what}, left by an '
                f'interrupted {run} (process {pid} is gone): {error}')
            continue
        log(f'note: removed {entry}{what}, left by an interrupted {run} '
            f'(process {pid} is gone)')


def _move_into_place(tmp, out, overwrite):
    """Rename the finished temporary folder to ``out``.

    An earlier conversion at ``out`` (``overwrite``) is moved aside to
    ``OUT.old-PID`` first, so ``out`` is never half old, half new; when
    the new folder then cannot be moved in (an error, an interrupt), the
    earlier conversion is moved back before the error is raised, so that
    ``out`` still holds it instead of nothing. Aside, it holds
    :data:`RUN_MARKER`, so that it is known as the converter's should
    the run be killed; the new one loses its marker. Once the new one is in
    place, the earlier one is removed; a failure to remove it (files
    without write permission, an interrupt) does not undo the conversion
    and is returned to be named.

    Returns:
        str | None: Why ``OUT.old-PID`` could not be removed, or None.

    Raises:
        ConversionError: ``out`` appeared meanwhile and not ``overwrite``.
    """
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        out.rmdir()
    _unmark_run_folder(tmp)
    if not (out.exists() or out.is_symlink()):
        os.replace(tmp, out)
        return None
    if not overwrite:
        raise ConversionError(f'{out} appeared during the conversion; '
                              'not replaced')
    # Move the old one aside first so OUT is never half old, half new.
    old = out.parent / f'{out.name}.old-{os.getpid()}'
    os.replace(out, old)
    try:
        if old.is_dir():
            _mark_run_folder(old, 'old', CONVERTER_TOOL)
        os.replace(tmp, out)
    except BaseException:
        _unmark_run_folder(old)
        os.replace(old, out)
        raise
    try:
        _remove_path(old)
    except (OSError, KeyboardInterrupt) as error:
        # The new conversion is in place: an interrupt now must not be
        # reported as a conversion that wrote nothing.
        why = str(error) or type(error).__name__
        return (f'could not remove {old}, the conversion replaced ({why}); '
                f'{out} holds the new one: remove it by hand')
    return None


def _remove_path(path):
    """Remove a folder with what it holds, or a file or link."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _unread_folders_text(unread):
    """How the summary and ``--strict`` name the folders that could not be
    listed (``os.walk`` passes over them), or None when there are none."""
    if not unread:
        return None
    return (f'{counted(len(unread), "folder")} could not be read '
            f'({", ".join(unread)})')


def _log_summary(log, summary, out, missing, unread_text):
    """Print the summary of a conversion.

    Args:
        log (callable): ``print``, or a no-op when quiet.
        summary (dict): The summary written to ``meta.json``.
        out (Path): The output folder.
        missing (dict[str, str]): What is missing of each official split
            not found, from :func:`_scan`.
        unread_text (str | None): The folders that could not be listed
            (:func:`_unread_folders_text`), or None.
    """
    counts = summary['counts']
    official = ', '.join(f'{split} {counts[f"official_{split}"]}'
                         for split in SPLITS)
    log(f'ISIC {summary["year"]} -> {out}')
    log(f'  pairs written: {official}; lightweight train '
        f'{counts["lightweight_train"]} / test {counts["lightweight_test"]} '
        f'(design hold-out: train {counts["lightweight_design_train"]} / val '
        f'{counts["lightweight_design_val"]}) '
        f'(seed {summary["seed"]})')
    _print_records(log, '  fixed', summary['fixed'])
    _print_records(log, '  skipped', summary['skipped'])
    duplicates = summary.get('duplicate_files', [])
    if duplicates:
        _print_records(log, '  duplicate files ignored', duplicates)
        pairs_skipped = {(r['split'], r['id']) for r in summary['skipped']}
        skipped_with = sum((r['split'], r['id']) in pairs_skipped
                           for r in duplicates)
        # Of those, the ids converted from a pair of another split.
        moved = sum(DUPLICATE_MOVED_TEXT in r['detail'] for r in duplicates)
        lost = skipped_with - moved
        used = len(duplicates) - skipped_with
        if used:
            log(f'  WARNING: {counted(used, "file")} '
                'ignored: each has the id of another file with other '
                'content, and the first one found was converted; check that '
                'it is the right one (--strict refuses to write such a set)')
        if lost:
            # The first file was skipped too (unreadable, no mask): saying
            # it was converted would hide that the id is lost.
            log(f'  WARNING: {counted(lost, "file")} ignored: each has the '
                'id of another file with other content, the first one found, '
                'whose pair was skipped (see skipped above): no file of that '
                'id was converted, though the ignored one may be usable; '
                'check them (--strict refuses to write such a set)')
        if moved:
            log(f'  WARNING: {counted(moved, "file")} ignored: each has the '
                'id of another file with other content, the first one found, '
                'whose pair was skipped (see skipped above); the id is '
                'converted from its pair of another split, though the '
                'ignored one may be usable in its own; check them (--strict '
                'refuses to write such a set)')
    # The lightweight split is a seeded shuffle of all train+val pairs: one
    # pair fewer reshuffles every image between its train and test lists.
    pooled = [r for r in summary['skipped'] if r['split'] in LIGHTWEIGHT_POOL]
    not_comparable = (
        'lightweight_train/test (and the design hold-out) differ from those '
        'of the complete download, so results on them are not comparable '
        'with published figures or other conversions (--strict refuses to '
        'write such a set)')
    if pooled:
        log(f'  WARNING: {counted(len(pooled), "train/val pair")} skipped: '
            f'{not_comparable}')
    tested = [r for r in summary['skipped']
              if r['split'] not in LIGHTWEIGHT_POOL]
    if tested:
        log(f'  WARNING: {counted(len(tested), "test pair")} skipped: '
            'splits/official_test.txt is not the complete test split of '
            'the download, so results on it are not comparable with '
            'published figures or other conversions (--strict refuses to '
            'write such a set)')
    # A whole split missing shrinks the pool as skipped pairs do; a missing
    # test split leaves the official protocol without its test set.
    for split, text in missing.items():
        if split in LIGHTWEIGHT_POOL:
            log(f'  WARNING: {text}: {not_comparable}')
        else:
            log(f'  WARNING: {text}: splits/official_{split}.txt is empty, so '
                'the official protocol has no test images (tools/test.py on '
                'an official-protocol config stops with "no samples"; '
                '--strict refuses to write such a set)')
    unchecked = [r['id'] for r in summary['fixed']
                 if r.get('alignment_unchecked')]
    if unchecked:
        log(f'  WARNING: {counted(len(unchecked), "image")} turned by an '
            'EXIF orientation that keeps its size (mirrored, turned 180 '
            f'degrees, or square): {first_few(unchecked, 5)}; the sizes '
            'cannot tell whether a mask is drawn on the turned pixels (as '
            'written, as the loader shows them) or on the stored ones: '
            'check them against their masks (meta.json: fixed, '
            'alignment_unchecked)')
    small = summary.get('small_images', [])
    if small:
        log(f'  WARNING: {_small_images_text(small)}: resized to the '
            '256x256 input of the configs, each pixel of such an image '
            'becomes a block of more than 32 pixels a side, so no lesion '
            'outline is left to train on or score; converted as given and '
            'listed in meta.json (small_images; --strict refuses to write '
            'such a set)')
    uniform = summary.get('uniform_masks', [])
    if uniform:
        # Every mask of the official downloads outlines a lesion on its
        # background: one of one value is a placeholder or a broken export.
        log(f'  WARNING: {_uniform_masks_text(uniform)}: each ISIC Task 1 '
            'mask outlines a lesion on its background, so these are '
            'placeholders or broken annotations, scored and trained on as '
            'given; converted as given and listed in meta.json '
            '(uniform_masks; --strict refuses to write such a set)')
    identical = summary.get('identical_images', [])
    if identical:
        across = sum(len({c['split'] for c in group}) > 1
                     for group in identical)
        log(f'  WARNING: {counted(len(identical), "image")} '
            f'{"is" if len(identical) == 1 else "are"} given under more than '
            f'one id, byte for byte ({across} across official splits): '
            f'{_identical_text(identical)}; a copy in a training split and '
            'one in a test split is a test image trained on, two in one '
            'split weigh twice in its figures (the lightweight splits '
            'shuffle the train/val copies too). They are converted as '
            'given and listed in meta.json (identical_images)')
    across_lists = summary.get('identical_images_across_lists', [])
    if across_lists:
        photos = counted(_photos_across_lists(across_lists), 'photo')
        log(f'  WARNING: the seeded split (seed {summary["seed"]}) '
            f'puts {photos} given under two ids '
            'into a list trained on and into the list scored against it: '
            f'{_across_lists_text(across_lists)}; a scored image is then '
            'trained on. Another --seed keeps them apart (meta.json: '
            'identical_images_across_lists; --strict refuses to write such '
            'a set)')
    if unread_text:
        log(f'  WARNING: {unread_text}: the pairs in them are in no split, '
            'so the splits are not those of the complete download (--strict '
            'refuses to write such a set)')
    ignored = summary['ignored']
    kinds = ', '.join(f'{kind} {n}' for kind, n in ignored['by_kind'].items())
    log(f'  ignored stray files: {ignored["total"]}' +
        (f' ({kinds})' if kinds else ''))


def convert(src,
            out,
            year=None,
            strict=False,
            seed=0,
            train_ratio=0.7,
            overwrite=False,
            workers=DEFAULT_WORKERS,
            verbose=True):
    """Convert an official ISIC Task 1 download to the mmseg_dsnet layout.

    Args:
        src (str | Path): Folder holding the official folders or zip files.
        out (str | Path): Output folder; it must not exist or must be empty,
            unless ``overwrite``.
        year (int, optional): 2016, 2017 or 2018; recognised from the folder
            or zip names if None. Default: None.
        strict (bool): Fail, writing nothing, if any pair is skipped, an
            official split (train, val, test) is missing (no folder or zip,
            or no image or mask in them), a folder cannot be read, an id
            has two files of other content, an image has a side below
            :data:`MIN_IMAGE_SIDE` pixels, a mask has no lesion or no
            background pixel, or the lightweight split puts one photo
            (under two ids) into a list trained on and the list scored
            against it. Default: False.
        seed (int): Seed of the lightweight split (and of the 2016
            validation hold-out). Default: 0.
        train_ratio (float): Train share of the lightweight split.
            Default: 0.7.
        overwrite (bool): Replace an existing non-empty ``out``.
            Default: False.
        workers (int): Worker processes checking the pairs; 1 checks them in
            this process. Default: min(2, CPU count).
        verbose (bool): Print the summary and a progress bar. Default: True.

    Returns:
        dict: The summary written to ``meta.json`` (``year``, ``seed``,
        ``counts``, ``fixed``, ``skipped``, ``ignored``, the split rules,
        ...) plus ``out`` and ``seconds``.

    Raises:
        ConversionError: Bad arguments, nothing to convert, no valid pair,
            or ``out`` in the way; ``StrictModeError`` (a subclass) when
            ``strict`` and a pair was skipped, an official split was
            missing or a folder could not be read.
        Interrupted: SIGTERM or SIGHUP arrived (a ``KeyboardInterrupt``, as
            for Ctrl-C); the temporary folder was removed.
    """
    # SIGTERM and SIGHUP clean up as Ctrl-C does (temporary folder removed,
    # workers terminated).
    with _interrupt_on_signals():
        return _convert(src, out, year, strict, seed, train_ratio, overwrite,
                        workers, verbose)


def _convert(src, out, year, strict, seed, train_ratio, overwrite, workers,
             verbose):
    """:func:`convert`, with the signals already set up."""
    start = time.perf_counter()
    log = print if verbose else (lambda *args, **kwargs: None)
    src = Path(src).resolve()
    out = _followed_out(Path(os.path.abspath(out)), log)
    if not src.is_dir():
        raise ConversionError(f'SRC {src} is not a folder')
    if not 0.0 < float(train_ratio) < 1.0:
        raise ConversionError(
            f'train ratio must lie in (0, 1), got {train_ratio}')
    if int(workers) < 1:
        raise ConversionError(f'workers must be at least 1, got {workers}')
    year = detect_year(src) if year is None else int(year)
    if year not in OFFICIAL_FOLDERS:
        raise ConversionError(
            f'year must be one of {sorted(OFFICIAL_FOLDERS)}, got {year}')
    _check_out(src, out, overwrite, year)

    (tasks, skipped, ignored, present, missing, unread, duplicates,
     later) = _scan(src, year, log)
    if not tasks and not skipped:
        raise ConversionError(f'no image/mask pairs found in the ISIC {year} '
                              f'folders/zips of {src}')

    tmp = out.parent / f'{out.name}.tmp-{os.getpid()}'
    _remove_stale_tmp(out, log)
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            tmp.mkdir(parents=True)
            # First: a later run removes the folder only if it holds this.
            _mark_run_folder(tmp, 'tmp', CONVERTER_TOOL)
            for sub in ('images', 'masks', 'splits'):
                (tmp / sub).mkdir()
        except OSError as error:
            raise ConversionError(
                f'cannot create the output beside {out}: {error}'
            ) from error
        # The first pair of each id; a later one is checked (and counted)
        # only when its id's earlier pair is skipped.
        log(f'ISIC {year}: checking {counted(len(tasks), "pair")} from {src}')
        results = _run_tasks([task + (str(tmp), ) for task in tasks],
                             workers, verbose)

        skipped += [result['skip'] for result in results if result['skip']]
        _convert_later_occurrences(later, tasks, results, skipped, duplicates,
                                   tmp, workers, log)
        fixed = [fix for result in results for fix in result['fixes']]
        converted = {(r['split'], r['id']) for r in results if r['written']}
        skipped.sort(key=lambda r: (SPLITS.index(r['split']), r['id']))
        written = defaultdict(list)
        for result in results:
            if result['written']:
                written[result['split']].append(result['id'])
        written_as = {_file_key(image_id): (split, image_id)
                      for split, image_id in converted}
        duplicates = [
            _duplicate_record(split, image_id, ref, first,
                              written_as.get(_file_key(image_id)))
            for split, image_id, ref, first in duplicates]
        if not written:
            _print_records(log, 'skipped', skipped)
            raise ConversionError(f'no valid image/mask pair in {src}: all '
                                  f'{len(skipped)} were skipped')

        splits, val_rule, lightweight_rule, design_rule = _make_splits(
            year, written, seed, train_ratio)
        pool_skipped = [r for r in skipped if r['split'] in LIGHTWEIGHT_POOL]
        if pool_skipped and sum(
                len(splits[f'official_{split}'])
                for split in LIGHTWEIGHT_POOL) < MIN_LIGHTWEIGHT_PAIRS:
            _print_records(log, 'skipped', pool_skipped)
        _check_lightweight_splits(splits, train_ratio, len(pool_skipped))
        for name, ids in splits.items():
            text = ''.join(f'{image_id}\n' for image_id in ids)
            # UTF-8 as the datasets read them, not the locale's encoding.
            (tmp / 'splits' / f'{name}.txt').write_text(text, encoding='utf-8')
        summary = {
            'dataset': f'ISIC {year} Task 1 (lesion segmentation)',
            'year': year,
            'source': str(src),
            'seed': seed,
            'train_ratio': train_ratio,
            'mask_values': {'0': 'background', '1': 'lesion'},
            'counts': {name: len(ids) for name, ids in splits.items()},
            'official_splits_present': present,
            'official_val_rule': val_rule,
            'lightweight_rule': lightweight_rule,
            'design_split_rule': design_rule,
            'fixed': fixed,
            'fixed_by_reason': dict(Counter(r['reason'] for r in fixed)),
            'skipped': skipped,
            'skipped_by_reason': dict(Counter(r['reason'] for r in skipped)),
            'ignored': {
                'total': sum(ignored.values()),
                'by_kind': dict(sorted(ignored.items())),
            },
            'converter': CONVERTER_TOOL,
        }
        if unread:  # only then, so that other outputs stay as they were
            summary['unread_folders'] = unread
        if duplicates:  # likewise
            summary['duplicate_files'] = duplicates
        by_split = functools.partial(sorted, key=lambda r: (
            SPLITS.index(r['split']), r['id']))
        small = by_split(r['small'] for r in results if r['small'])
        if small:  # likewise
            summary['small_images'] = small
        uniform = by_split(r['uniform'] for r in results if r['uniform'])
        if uniform:  # likewise
            summary['uniform_masks'] = uniform
        identical = _identical_images(results)
        if identical:  # likewise
            summary['identical_images'] = identical
        across_lists = _identical_across_lists(identical, splits, year)
        if across_lists:  # likewise
            summary['identical_images_across_lists'] = across_lists
        # A synthetic download stays marked after the conversion: without
        # the marker its runs were recorded as runs on real ISIC data. The
        # generator also marks each official folder and zip, so that their
        # copies without the top-level marker are known too.
        synthetic = (src / SYNTHETIC_MARKER).is_file()
        marked_inside = ignored.get('synthetic marker', 0) > 0
        if synthetic:
            shutil.copyfile(src / SYNTHETIC_MARKER, tmp / SYNTHETIC_MARKER)
        elif marked_inside:
            (tmp / SYNTHETIC_MARKER).write_text(MARKED_INSIDE_TEXT,
                                                encoding='utf-8')
        if synthetic or marked_inside:
            summary['synthetic'] = True
        (tmp / 'meta.json').write_text(json_text(summary, indent=2) + '\n',
                                       encoding='utf-8')
        unread_text = _unread_folders_text(unread)
        _log_summary(log, summary, out, missing, unread_text)
        if synthetic:
            log(f'  synthetic: {src} holds {SYNTHETIC_MARKER} (no real '
                'lesions); copied into the output')
        elif marked_inside:
            log(f'  synthetic: the official folders or zips in {src} hold '
                f'{SYNTHETIC_MARKER} (no real lesions); the output is marked '
                'so')
        problems = ([f'{counted(len(skipped), "pair")} skipped'] if skipped
                    else [])
        problems += list(missing.values())
        problems += [_small_images_text(small)] if small else []
        problems += [_uniform_masks_text(uniform)] if uniform else []
        problems += [unread_text] if unread_text else []
        problems += [
            f'{counted(len(duplicates), "duplicate file")} with other '
            'content than '
            'the file used for their id'
        ] if duplicates else []
        problems += [
            f'{counted(_photos_across_lists(across_lists), "photo")} under '
            'two ids in a list trained on and in the list scored against '
            f'it ({_across_lists_text(across_lists)}); another --seed '
            'keeps them apart'
        ] if across_lists else []
        if strict and problems:
            raise StrictModeError(
                f'--strict: {"; ".join(problems)}; nothing written', summary)
        left_over = _move_into_place(tmp, out, overwrite)
    except BaseException:
        # Interrupted or failed: leave neither OUT nor the temporary folder.
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if left_over:
        log(f'  warning: {left_over}')
    summary['out'] = str(out)
    summary['seconds'] = time.perf_counter() - start
    log(f'  done in {summary["seconds"]:.1f} s')
    return summary
