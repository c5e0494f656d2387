"""Make a small synthetic ISIC Task 1 download (dermoscopy-like, exact masks).

The output copies the official folder (or zip) layout of ISIC 2017 or 2018
Task 1, stray files included (superpixel PNGs and metadata CSVs for 2017,
LICENSE/ATTRIBUTION texts for 2018), so that the converter (:mod:`.isic`)
can be exercised end to end without the real data. ISIC 2016's layout (no
validation set, ``_Segmentation.png`` masks) is available as well.

Each picture comes from a seeded generator: a skin-tone background with
smooth texture, noise and vignetting (dark corners); one irregular pigmented
lesion (a perturbed polar radius function) with a dark core, a lighter rim
and a blurred border; dark hair curves over everything; sometimes ruler ticks
near an edge. The mask is exactly the lesion polygon (255 inside, 0
outside); hair and ruler are not part of it. Same arguments give
byte-identical files. Only numpy and OpenCV are used.

The download holds :data:`~.isic.SYNTHETIC_MARKER` beside its folders and
in each official folder or zip; the converter marks its output with it, so that metrics computed on the set
say ``synthetic`` and ``leaderboard.py collect`` refuses its runs.

The command line: ``tools/dataset_converters/make_synthetic_isic.py``.
"""
import errno
import math
import os
import shutil
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

from mmseg_dsnet.utils.messages import counted, first_few

# The official folder names are the converter's: one table for both; its
# output is built beside OUT and renamed into place as this one is.
from .isic import (MIN_IMAGE_SIDE, MIN_LIGHTWEIGHT_PAIRS, OFFICIAL_FOLDERS,
                   SYNTHETIC_MARKER, SYNTHETIC_TOOL, _interrupt_on_signals,
                   _mark_run_folder, _remove_stale_tmp, _unmark_run_folder)

MASK_SUFFIX = {
    2016: '_Segmentation.png',
    2017: '_segmentation.png',
    2018: '_segmentation.png',
}
SPLIT_INDEX = {'train': 0, 'val': 1, 'test': 2}
JPEG_QUALITY = 90
#: The longest image side OpenCV's JPEG encoder writes.
MAX_SIDE = 65500
# A fixed timestamp keeps the zip files byte-identical between runs.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
PLACEHOLDER_TEXT = ('Synthetic images made by tools/dataset_converters/'
                    'make_synthetic_isic.py; they show no real patient.\n')
MARKER_TEXT = ('Synthetic ISIC-like images made by tools/dataset_converters/'
               'make_synthetic_isic.py; metrics computed on them say nothing '
               'about real lesions.\n')


def _smooth_noise(rng, height, width, cells, channels=1):
    """Low-frequency noise of about unit scale: a coarse grid, resized."""
    grid_h = max(2, cells)
    grid_w = max(2, int(round(cells * width / height)))
    coarse = rng.standard_normal((grid_h, grid_w, channels), np.float32)
    smooth = cv2.resize(coarse, (width, height),
                        interpolation=cv2.INTER_CUBIC)
    return smooth.reshape(height, width, channels)


def _lesion_polygon(rng, width, height):
    """An irregular blob: an ellipse whose radius has a few low harmonics."""
    area_fraction = rng.uniform(0.12, 0.42)
    base_radius = math.sqrt(area_fraction * width * height / math.pi)
    centre_x = width * (0.5 + rng.uniform(-0.1, 0.1))
    centre_y = height * (0.5 + rng.uniform(-0.1, 0.1))
    theta = np.linspace(0.0, 2.0 * math.pi, 180, endpoint=False)
    radius = np.ones_like(theta)
    for harmonic in range(2, 7):
        amplitude = rng.uniform(0.0, 0.28 / harmonic)
        radius += amplitude * np.cos(harmonic * theta +
                                     rng.uniform(0, 2 * math.pi))
    stretch = rng.uniform(0.8, 1.25)
    tilt = rng.uniform(0, math.pi)
    local_x = base_radius * radius * np.cos(theta) * stretch
    local_y = base_radius * radius * np.sin(theta) / stretch
    xs = centre_x + local_x * math.cos(tilt) - local_y * math.sin(tilt)
    ys = centre_y + local_x * math.sin(tilt) + local_y * math.cos(tilt)
    return np.stack([xs, ys], axis=1)


def _draw_hair_and_ruler(rng, width, height):
    """A coverage map (0..1) of hair curves and, sometimes, ruler ticks."""
    scale = min(width, height) / 192.0
    layer = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(0, 7))):
        start = rng.uniform([0, 0], [width, height])
        angle = rng.uniform(0, 2 * math.pi)
        length = rng.uniform(0.3, 0.9) * math.hypot(width, height)
        bend = rng.uniform(-0.25, 0.25) * length
        t = np.linspace(0.0, 1.0, 24)[:, None]
        direction = np.array([math.cos(angle), math.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        points = (start + direction * (t * length) +
                  normal * (bend * np.sin(math.pi * t)))
        thickness = max(1, int(round(rng.uniform(0.6, 1.8) * scale)))
        curve = np.round(points * 16).astype(np.int32)  # 4 fractional bits
        cv2.polylines(layer, [curve], False, 255, thickness, cv2.LINE_AA,
                      shift=4)
    if rng.uniform() < 0.3:
        margin = max(2, int(round(rng.uniform(4, 10) * scale)))
        step = max(3, int(round(rng.uniform(5, 9) * scale)))
        short = max(2, int(round(3 * scale)))
        long_ = max(3, int(round(6 * scale)))
        edge = int(rng.integers(0, 4))  # 0 top, 1 bottom, 2 left, 3 right
        along = width if edge < 2 else height
        for index, pos in enumerate(range(step, along - step, step)):
            tick = long_ if index % 5 == 0 else short
            if edge < 2:
                base = margin if edge == 0 else height - 1 - margin
                sign = 1 if edge == 0 else -1
                cv2.line(layer, (pos, base), (pos, base + sign * tick), 255, 1)
            else:
                base = margin if edge == 2 else width - 1 - margin
                sign = 1 if edge == 2 else -1
                cv2.line(layer, (base, pos), (base + sign * tick, pos), 255, 1)
        if edge < 2:
            base = margin if edge == 0 else height - 1 - margin
            cv2.line(layer, (step, base), (along - step, base), 255, 1)
        else:
            base = margin if edge == 2 else width - 1 - margin
            cv2.line(layer, (base, step), (base, along - step), 255, 1)
    return layer.astype(np.float32) / 255.0


def render_case(rng, width, height):
    """Draw one dermoscopy-like RGB image and its exact lesion mask.

    Args:
        rng (np.random.Generator): Decides everything random.
        width (int): Image width in pixels.
        height (int): Image height in pixels.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``image`` (H, W, 3) uint8 RGB and
        ``mask`` (H, W) uint8, 255 on the lesion and 0 elsewhere.
    """
    scale = min(width, height) / 192.0

    # Skin: a base tone with smooth blotches and fine noise.
    skin_tone = rng.uniform([190, 140, 110], [235, 185, 160])
    skin_tone = skin_tone.astype(np.float32)
    skin = skin_tone + 9.0 * _smooth_noise(rng, height, width, 4, 3)

    # Lesion: exact polygon mask, dark core and light rim, blurred border.
    polygon = np.round(_lesion_polygon(rng, width, height) * 16)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [polygon.astype(np.int32)], 255, cv2.LINE_8, shift=4)
    depth = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    depth = np.clip(depth / (0.7 * depth.max() + 1e-6), 0.0, 1.0)[..., None]
    core = rng.uniform([55, 30, 20], [105, 65, 50]).astype(np.float32)
    rim = rng.uniform([135, 85, 60], [170, 120, 95]).astype(np.float32)
    lesion = rim + (core - rim) * np.sqrt(depth)
    lesion *= 1.0 + 0.12 * _smooth_noise(rng, height, width, 6)
    border_sigma = rng.uniform(0.8, 3.0) * scale
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0),
                             border_sigma)
    image = skin * (1.0 - alpha[..., None]) + lesion * alpha[..., None]

    # Hair and ruler marks lie over skin and lesion alike.
    marks = _draw_hair_and_ruler(rng, width, height)[..., None]
    mark_colour = rng.uniform([25, 18, 12], [60, 45, 35]).astype(np.float32)
    image = image * (1.0 - 0.9 * marks) + mark_colour * (0.9 * marks)

    # Vignetting of the dermoscope: darker towards the corners.
    ys = (np.arange(height, dtype=np.float32) - height / 2) / (height / 2)
    xs = (np.arange(width, dtype=np.float32) - width / 2) / (width / 2)
    radius_sq = (ys[:, None]**2 + xs[None, :]**2) * 0.5
    strength, falloff = rng.uniform(0.3, 0.7), rng.uniform(1.0, 1.75)
    vignette = 1.0 - strength * radius_sq**falloff
    image = image * vignette[..., None]
    image += 2.5 * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), mask


def _superpixel_png(width, height):
    """A stand-in for the 2017 superpixel files: a label grid in RGB."""
    rows = np.arange(height)[:, None] // 16
    cols = np.arange(width)[None, :] // 16
    labels = rows * ((width + 15) // 16) + cols
    bgr = np.stack([np.zeros_like(labels), labels >> 8, labels & 255], -1)
    return cv2.imencode('.png', bgr.astype(np.uint8))[1].tobytes()


def _folder_files(year, splits, width, height, seed):
    """All files of the synthetic download: {folder: [(name, bytes)]}."""
    folders = {}
    superpixels = _superpixel_png(width, height) if year == 2017 else None
    next_number = 0
    for split, count in splits.items():
        image_folder, mask_folder = OFFICIAL_FOLDERS[year][split]
        images, masks = [], []
        ids = []
        for index in range(count):
            image_id = f'ISIC_{next_number:07d}'
            next_number += 1
            rng = np.random.default_rng([seed, SPLIT_INDEX[split], index])
            image, mask = render_case(rng, width, height)
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            jpeg = cv2.imencode('.jpg', bgr,
                                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1]
            images.append((f'{image_id}.jpg', jpeg.tobytes()))
            masks.append((image_id + MASK_SUFFIX[year],
                          cv2.imencode('.png', mask)[1].tobytes()))
            ids.append(image_id)
            if superpixels is not None:
                images.append((f'{image_id}_superpixels.png', superpixels))
        # The stray files the official downloads carry next to the pairs.
        if year == 2017:
            lines = ['image_id,age_approximate,sex']
            lines += [
                f'{i},{30 + 5 * (n % 10)},{"male" if n % 2 else "female"}'
                for n, i in enumerate(ids)
            ]
            images.append((f'{image_folder}_metadata.csv',
                           ('\n'.join(lines) + '\n').encode()))
        elif year == 2018:
            for name in ('LICENSE.txt', 'ATTRIBUTION.txt'):
                images.append((name, PLACEHOLDER_TEXT.encode()))
                masks.append((name, PLACEHOLDER_TEXT.encode()))
        folders[image_folder] = sorted(images)
        folders[mask_folder] = sorted(masks)
    return folders


def _write_folders(root, folders, as_zip):
    """Write :func:`_folder_files`' folders (or their zips) into ``root``;
    returns the number of files."""
    n_files = 0
    for folder, files in folders.items():
        if as_zip:
            with zipfile.ZipFile(root / f'{folder}.zip', 'w',
                                 zipfile.ZIP_DEFLATED) as archive:
                for name, data in files:
                    info = zipfile.ZipInfo(
                        f'{folder}/{name}', date_time=ZIP_DATE_TIME)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, data)
        else:
            (root / folder).mkdir()
            for name, data in files:
                (root / folder / name).write_bytes(data)
        n_files += len(files)
    return n_files


def _rename_into_place(tmp, real_out, out):
    """Rename the finished ``tmp`` to ``real_out`` in one step (an empty
    folder there is replaced)."""
    try:
        os.replace(tmp, real_out)
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise
        raise FileExistsError(f'{out} was filled while the set was written; '
                              'not replaced') from None


def check_size(size, name='size'):
    """Refuse an image size the generator cannot write, before any image is
    drawn.

    Args:
        size (tuple[int, int]): Image (width, height).
        name (str): Where it was given, for the message. Default: ``'size'``.

    Returns:
        tuple[int, int]: Width and height.

    Raises:
        ValueError: A side below :data:`~.isic.MIN_IMAGE_SIDE` (the
            converter warns of smaller images) or above :data:`MAX_SIDE`
            (OpenCV's JPEG encoder refuses it only after the images are
            drawn).
    """
    width, height = (int(v) for v in size)
    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        raise ValueError(f'{name} must be at least {MIN_IMAGE_SIDE}x'
                         f'{MIN_IMAGE_SIDE}, got {width}x{height}')
    if max(width, height) > MAX_SIDE:
        raise ValueError(f'{name} must be at most {MAX_SIDE} pixels a side '
                         '(the largest JPEG OpenCV writes), got '
                         f'{width}x{height}')
    return width, height


def check_counts(year, num_train, num_val, num_test,
                 names=('--num-train', '--num-val', '--num-test')):
    """Refuse pair counts whose download the converter cannot make a whole
    set of, before any image is drawn: every official split of ``year``
    with pairs (the validation set of ISIC 2017 and 2018 included; ISIC
    2016 has none) and enough train+val pairs for the lightweight split
    (:data:`~.isic.MIN_LIGHTWEIGHT_PAIRS`). Such a download was written,
    exit 0, as a set of empty folders, or one the converter refused (too
    few pairs) or converted with an empty official split file.

    :func:`generate` itself also writes partial downloads (a split of 0
    pairs is an empty official folder), as tests of the converter need.

    Args:
        year (int): 2016, 2017 or 2018.
        num_train (int): Training pairs.
        num_val (int): Validation pairs.
        num_test (int): Test pairs.
        names (tuple[str, str, str]): How the three were given, for the
            messages. Default: the command line's options.

    Raises:
        ValueError: Naming the count and what the set needs.
    """
    train_name, val_name, test_name = names
    year = int(year)
    if year == 2016:
        if num_val:
            raise ValueError(f'{val_name} {num_val}: ISIC 2016 has no '
                             f'validation set; leave out {val_name}')
    elif num_val < 1:
        raise ValueError(
            f'{val_name} must be at least 1 for ISIC {year}, got {num_val}: '
            'its download has a validation set, and without pairs in it '
            'the converted set has an empty official_val split')
    for name, count, split in ((train_name, num_train, 'official_train'),
                               (test_name, num_test, 'official_test')):
        if count < 1:
            raise ValueError(
                f'{name} must be at least 1, got {count}: without pairs '
                f'there the converted set has an empty {split} split')
    if num_train + num_val < MIN_LIGHTWEIGHT_PAIRS:
        given = (f'{train_name} {num_train}' if year == 2016 else
                 f'{train_name} {num_train} and {val_name} {num_val}')
        raise ValueError(
            f'{counted(num_train + num_val, "train+val pair")} ({given}): '
            'the '
            f'converter needs at least {MIN_LIGHTWEIGHT_PAIRS} for its '
            'lightweight split (2 to train, 1 to test)')


def generate(out,
             year=2017,
             num_train=40,
             num_val=8,
             num_test=16,
             size=(256, 192),
             seed=0,
             as_zip=False,
             verbose=False,
             mark_synthetic=True):
    """Write a synthetic ISIC Task 1 download in the official layout.

    Args:
        out (str | Path): A new or empty folder. The download is written
            to ``OUT.tmp-PID`` beside it and renamed to ``out`` once
            complete, so an interrupted call leaves no ``out``.
        year (int): 2017 or 2018 (or 2016, which has no validation set).
            Default: 2017.
        num_train (int): Training pairs. Default: 40.
        num_val (int): Validation pairs (must be 0 for 2016). Default: 8.
        num_test (int): Test pairs. Default: 16.
        size (tuple[int, int]): Image (width, height), each side 8 to
            :data:`MAX_SIDE`. Default: (256, 192).
        seed (int): Seed; equal arguments give byte-identical files.
            Default: 0.
        as_zip (bool): Write the official zip files instead of folders.
            Default: False.
        verbose (bool): Print a one-line summary. Default: False.
        mark_synthetic (bool): Write :data:`~.isic.SYNTHETIC_MARKER` beside
            the folders and inside each official folder or zip (the
            converter carries it into its output, also when the folders
            or zips are copied without the top-level one). False only for
            a stand-in of a real download (tests). Default: True.

    Returns:
        dict: ``year``, ``out``, ``counts`` (pairs per split), ``folders``
        (the names written, with ``.zip`` when zipped), ``files`` (number of
        files written, strays included) and ``seconds``.
    """
    year = int(year)
    if year not in OFFICIAL_FOLDERS:
        raise ValueError(
            f'year must be one of {sorted(OFFICIAL_FOLDERS)}, got {year}')
    if year == 2016 and num_val:
        raise ValueError('ISIC 2016 has no validation set; pass num_val=0')
    width, height = check_size(size)
    counts = dict(train=int(num_train), val=int(num_val), test=int(num_test))
    if any(v < 0 for v in counts.values()):
        raise ValueError(f'counts must be >= 0, got {counts}')
    splits = {s: n for s, n in counts.items() if s in OFFICIAL_FOLDERS[year]}

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f'{out} is a file; give a new or empty folder')
    # OUT and OUT.tmp-PID are made under the nearest folder that exists:
    # a file there failed naming the temporary folder.
    nearest = next(p for p in (out.absolute(), *out.absolute().parents)
                   if p.exists())
    if not nearest.is_dir():
        raise NotADirectoryError(f'{out}: {nearest} is a file, not a '
                                 'folder; give a new or empty folder')
    names = [
        name for pair in (OFFICIAL_FOLDERS[year][s] for s in splits)
        for name in pair
    ]
    targets = [out / (name + '.zip' if as_zip else name) for name in names]
    clashes = [t.name for t in targets if t.exists()]
    if clashes:
        raise FileExistsError(f'{out} already holds {", ".join(clashes)}; '
                              'choose an empty or new folder')
    # The set is renamed into place as a whole: OUT must be new or empty.
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held:
        raise FileExistsError(f'{out} is not empty (it holds '
                              f'{first_few(held, 3)}); choose an '
                              'empty or new folder')
    # A symlinked OUT is written where it points.
    real_out = Path(os.path.realpath(out))
    if real_out == Path.cwd():
        raise ValueError(f'{out} is the current folder, which the finished '
                         'set would replace; give a new folder')

    start = time.perf_counter()
    folders = _folder_files(year, splits, width, height, seed)
    if mark_synthetic:
        # In each folder or zip too: copied into another download folder
        # without the top-level marker, the set converted as real data.
        folders = {folder: sorted(files + [(SYNTHETIC_MARKER,
                                            MARKER_TEXT.encode())])
                   for folder, files in folders.items()}
    log = print if verbose else (lambda *args, **kwargs: None)
    # Built in OUT.tmp-PID beside OUT and renamed into place at the end, so
    # that an interrupted run leaves no OUT that looks like a whole
    # download (the converter and the synthetic fallback would take it).
    tmp = real_out.parent / f'{real_out.name}.tmp-{os.getpid()}'
    missing = [p for p in tmp.parents if not p.exists()]
    _remove_stale_tmp(real_out, log)
    # SIGTERM and SIGHUP clean up as Ctrl-C does; SIGKILL leaves tmp, which
    # the next run removes.
    with _interrupt_on_signals():
        try:
            tmp.mkdir(parents=True)
            # First: a later run removes the folder only if it holds this.
            _mark_run_folder(tmp, 'tmp', SYNTHETIC_TOOL)
            n_files = _write_folders(tmp, folders, as_zip)
            if mark_synthetic:
                (tmp / SYNTHETIC_MARKER).write_text(MARKER_TEXT,
                                                    encoding='utf-8')
            _unmark_run_folder(tmp)
            _rename_into_place(tmp, real_out, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            # The parent folders made for tmp, innermost first.
            for parent in missing:
                try:
                    parent.rmdir()
                except OSError:
                    break
            raise
    seconds = time.perf_counter() - start
    summary = {
        'year': year,
        'out': str(out),
        'counts': splits,
        'folders': [t.name for t in targets],
        'files': n_files,
        'seconds': seconds,
    }
    if verbose:
        pairs = ', '.join(f'{s} {n}' for s, n in splits.items())
        kind = 'zip' if as_zip else 'folder'
        print(f'synthetic ISIC {year}: {pairs} pairs of {width}x{height} '
              f'({counted(n_files, "file")} in '
              f'{counted(len(targets), kind)}) written to {out} '
              f'in {seconds:.2f} s')
    return summary
