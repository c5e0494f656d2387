"""Lesion masks for image files, with a PyTorch or an onnxruntime backend
(:mod:`.inference_backends`).

Both backends run the same network at the model's fixed input size;
everything around it (reading, resizing, masks at the original size,
overlays, writing) is shared here, so the two backends give the same masks.
"""
import contextlib
import numbers
import os
import os.path as osp
import tempfile
import unicodedata
from dataclasses import dataclass, field
from typing import (Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple)

import cv2
import numpy as np

from ..deploy.deployable import to_model_input
from ..image_io import (DEFAULT_MAX_PIXELS, ImageReadError, PixelLimitError,
                        read_image)
from ..models.utils.lesion_logit import (check_threshold, decision_map,
                                         lesion_logit,
                                         mean_probability_logits)
from ..progress import progress_bar
from ..utils.errors import UserError
from ..utils.fileio import remove_stale_partials, sha256_of
from .masks import draw_overlay, views_to_mask, write_image
from .output_record import (DIGESTS_NAME, LOCK_NAME, RECORD_NAME,
                            SOURCES_NAME, OutputFolderBusyError,
                            claim_output_folder, describe_model,
                            drop_own_lock_file, existing_outputs,
                            journal_sources, output_folder_lock, read_record,
                            read_source_digests, read_sources,
                            record_sources, unrecorded_names)


class ImageArrayError(UserError, ValueError):
    """An image given to :class:`LesionInferencer` as an array that is not
    8-bit RGB; the message names its place in the list and what it is."""


# How a file becomes the array the inferencer takes (with its conversions).
READ_HINT = ('read image files with '
             'mmseg_dsnet.image_io.read_image(path).rgb, which converts '
             'grayscale, RGBA and 16-bit images to 8-bit RGB')


def check_rgb_image(rgb, index: int, where: Optional[str] = None) -> None:
    """Refuse an image that is not an ``(H, W, 3)`` uint8 RGB array.

    The network takes pixel values 0..255; a float image in 0..1 ran as a
    nearly black picture and a 16-bit one as a glaring one, and both gave
    a mask without a word. A grayscale or RGBA array failed deep inside
    OpenCV or the network.

    Args:
        rgb: One item of the images given.
        index (int): Its place in the list, for the message.
        where (str, optional): What the message names instead of
            ``LesionInferencer: image <index>`` (an image given alone,
            e.g. ``'draw_overlay: rgb'``).

    Raises:
        ImageArrayError: Naming the item and what it is.
    """
    listed = where is None
    where = where or f'LesionInferencer: image {index}'
    want = '; it takes (H, W, 3) uint8 RGB arrays with values 0..255'
    if not isinstance(rgb, np.ndarray):
        raise ImageArrayError(
            f'{where} is a {type(rgb).__name__}, not a numpy array{want}; '
            + READ_HINT)
    if rgb.dtype != np.uint8:
        values = (f' (values {rgb.min():g} to {rgb.max():g})'
                  if rgb.size and rgb.dtype.kind in 'biuf' else '')
        raise ImageArrayError(
            f'{where} has dtype {rgb.dtype}{values}, not uint8{want}: '
            'other values would be read as another picture (0..1 as nearly '
            'black) and give a wrong mask; convert it to 8-bit 0..255, or '
            + READ_HINT)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape[:2]:
        raise ImageArrayError(
            f'{where} has shape {rgb.shape}{want}'
            + (' (one image is passed as a list: [rgb])' if listed else '')
            + '; ' + READ_HINT)


def check_backend_flips(backend, option: str,
                        name: Optional[str] = None) -> None:
    """Refuse to average a backend's model over the image and its two
    flips where ``tools/test.py --tta`` scores other views: a config whose
    own ``tta_pipeline`` is not the flips, or an ONNX file exported from
    one (its export recorded it, ``flip_tta_refusal``).

    Args:
        backend: A backend of :func:`make_backend`.
        option (str): What asked for the flips, for the message
            (``'--tta'``).
        name (str, optional): The model as the user named it; default: the
            config's file.

    Raises:
        UserError: Naming the option and why.
    """
    cfg = getattr(backend, 'cfg', None)
    if cfg is not None:
        # test.py --tta runs a config's own tta_pipeline instead.
        from ..datasets.flip_tta_pipeline import check_flip_tta
        check_flip_tta(cfg, name or getattr(cfg, 'filename', None)
                       or '(a config given as an object)', option)
    refusal = getattr(backend, 'flip_tta_refusal', None)
    if refusal:
        # An ONNX file has no config: the export recorded it.
        raise UserError(f'{option}: {refusal}')


class LesionInferencer:
    """Binary lesion masks at each image's original size.

    Args:
        backend (TorchBackend | OnnxRuntimeBackend): The network.
        threshold (float, optional): Lesion probability above which a
            pixel is lesion: the sigmoid of 1-channel models, the softmax
            lesion probability of 2-channel ones (as
            :class:`~mmseg_dsnet.evaluation.LesionMetric` scores them);
            default: the model's own (0.5 in our configs; 0.5 is the
            argmax of 2 channels).
        flips (bool): Average the lesion probability of each image and
            its horizontal and vertical flips (three passes), as
            ``tools/test.py --tta`` does. Default: False.

    Raises:
        ThresholdError: ``threshold`` (or the model's own) is not in
            (0, 1); also a ``UserError`` and a ``ValueError``.
        UserError: ``flips`` is not a bool, or is True for a config (or
            an ONNX file exported from one) whose own ``tta_pipeline``
            (which ``tools/test.py --tta`` runs) is not the flips.
    """

    def __init__(self, backend, threshold: Optional[float] = None,
                 flips: bool = False):
        self.backend = backend
        # Refused here, not when the first masks are made: run_inference
        # listed every image as failed for one bad argument.
        self.threshold = (
            check_threshold(backend.threshold, "the model's threshold")
            if threshold is None else
            check_threshold(threshold, 'LesionInferencer: threshold'))
        # Any truthy value turned the flips on: flips='False' (or 'no')
        # ran three passes and recorded "flips": "False" in model.json.
        if not isinstance(flips, (bool, np.bool_)):
            raise UserError(
                f'LesionInferencer: flips must be True or False, got '
                f'{flips!r}; True averages each image with its horizontal '
                'and vertical flips (as tools/test.py --tta), False (the '
                'default) runs the image once')
        flips = bool(flips)
        self.input_size = tuple(backend.input_size)
        if flips:
            check_backend_flips(backend, 'LesionInferencer(flips=True)')
        self.flips = flips

    def views(self, batch: np.ndarray) -> List[np.ndarray]:
        """``(N, 3, H, W)`` model-size RGB to the ``(N, C, H, W)`` logits
        of each view: the batch as it is, and with ``flips`` also flipped
        horizontally and vertically (each output flipped back)."""
        views = [self.backend(batch)]
        if self.flips:
            for axis in (3, 2):  # horizontal, vertical
                flipped = np.ascontiguousarray(np.flip(batch, axis))
                views.append(np.flip(self.backend(flipped), axis))
        return views

    def run(self, batch: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` model-size RGB to ``(N, C, H, W)`` logits (with
        ``flips``: of the mean probability of the three views, each
        flipped back, at the model size; the masks merge the views at the
        image's size instead: :meth:`predict`)."""
        views = self.views(batch)
        return views[0] if len(views) == 1 else mean_probability_logits(views)

    def logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, C, H, W)`` logits at the model's input size for RGB uint8
        images of any sizes.

        Raises:
            ImageArrayError: An image is not an ``(H, W, 3)`` uint8 array,
                or no image is given.
        """
        # A generator was used up by the checks: 'need at least one array
        # to stack' for images that were there.
        images = list(images)
        if not images:
            raise ImageArrayError('LesionInferencer.logits: no images '
                                  'given (an empty list)')
        for index, rgb in enumerate(images):
            check_rgb_image(rgb, index)
        batch = np.stack([to_model_input(rgb, self.input_size)
                          for rgb in images])
        return self.run(batch)

    def decisions(self, images: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Decision maps at the model size (positive = lesion); images may
        be any iterable (an empty one gives ``[]``). With ``flips`` they
        are of the views merged at the model size, so resized they may
        differ from :meth:`predict`'s masks at the rim."""
        images = list(images)
        return [decision_map(item, self.threshold)
                for item in self.logits(images)] if images else []

    def masks(self, views: Sequence[np.ndarray],
              size: Tuple[int, int]) -> np.ndarray:
        """The ``(H, W)`` uint8 mask at ``size`` of one image's ``(C, h, w)``
        view logits (:meth:`views`), made as ``tools/test.py`` (``--tta``)
        makes it: each view resized to ``size``, merged there
        (:func:`~.masks.views_to_mask`)."""
        return views_to_mask(views, size, self.threshold)

    def predict(self, images: Sequence[np.ndarray]) -> List[np.ndarray]:
        """``(H, W)`` uint8 masks (1 = lesion) at each image's size; images
        may be any iterable (an empty one gives ``[]``)."""
        # Read twice below: a generator gave no masks, or a wrong error.
        images = list(images)
        if not images:
            return []
        for index, rgb in enumerate(images):
            check_rgb_image(rgb, index)
        views = self.views(np.stack([to_model_input(rgb, self.input_size)
                                     for rgb in images]))
        return [
            self.masks([view[index] for view in views], rgb.shape[:2])
            for index, rgb in enumerate(images)
        ]


@dataclass
class InferenceSummary:
    """What a run did.

    Attributes:
        processed (list[str]): Images whose outputs were written.
        failed (list[tuple[str, str]]): ``(file, reason)``.
        skipped_existing (list[str]): Images whose outputs already existed.
        notes (dict[str, list[str]]): Conversions applied, per image.
        outputs (dict[str, tuple[str, str | None]]): Mask and overlay paths
            per processed image.
        removed_overlays (list[str]): Overlays of an earlier run removed
            because, without overlays, a new mask replaced theirs.
        replaced_outputs (list[str]): Outputs of another model removed
            (``overwrite``) before this run wrote its own
            (:func:`~.output_record.claim_output_folder`).
    """
    processed: List[str] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)
    skipped_existing: List[str] = field(default_factory=list)
    notes: Dict[str, List[str]] = field(default_factory=dict)
    outputs: Dict[str, Tuple[str, Optional[str]]] = field(
        default_factory=dict)
    removed_overlays: List[str] = field(default_factory=list)
    replaced_outputs: List[str] = field(default_factory=list)


class OutputDirError(Exception):
    """The output folder cannot be created or written."""


def prepare_output_dir(out_dir: str, overlays: bool = True,
                       hold: Optional[contextlib.ExitStack] = None
                       ) -> List[str]:
    """Create ``out_dir/masks`` (and ``overlays``), prove they are
    writable by writing and removing a probe file, and remove the temporary
    files a killed run left there.

    Args:
        out_dir (str): The output folder.
        overlays (bool): Also ``out_dir/overlays``.
        hold (contextlib.ExitStack, optional): Keeps the folder's lock
            (:func:`~.output_record.output_folder_lock`) until it closes
            (the whole run); default: held while the folder is cleaned.

    Returns:
        list[str]: The folders this call created (for
        :func:`remove_empty_output_dirs` when the run writes nothing).

    Raises:
        OutputDirError: With the folder and the reason.
        OutputFolderBusyError: Another run writes ``out_dir`` now (its
            half-written files are left alone, and the folders this call
            made are removed).
    """
    subdirs = ['masks'] + (['overlays'] if overlays else [])
    created = []
    folders = []
    for sub in subdirs:
        folder = osp.join(out_dir, sub)
        try:
            created.extend(make_folder(folder))
            handle, probe = tempfile.mkstemp(prefix='.write_probe_',
                                             dir=folder)
            os.close(handle)
            os.unlink(probe)
        except OSError as err:
            reason = err.strerror or str(err)
            raise OutputDirError(
                f'cannot write to output folder {folder}: {reason}') from None
        folders.append(folder)
    # Hidden half-written outputs of a run that was killed; those of a run
    # writing now are its own (the lock tells them apart).
    with contextlib.ExitStack() as brief:
        try:
            (hold or brief).enter_context(output_folder_lock(out_dir))
        except OutputFolderBusyError:
            # An overlays folder made in the folder of a --no-overlay run.
            remove_empty_output_dirs(created)
            raise
        for folder in folders:
            try:
                remove_stale_partials(folder)
            except OSError as err:
                raise OutputDirError(
                    f'cannot write to output folder {folder}: '
                    f'{err.strerror or err}') from None
    return created


def make_folder(folder: str) -> List[str]:
    """Make ``folder`` and the folders above it that are missing.

    Args:
        folder (str): The folder.

    Returns:
        list[str]: The folders made, deepest first (for
        :func:`remove_empty_output_dirs`).

    Raises:
        OSError: It cannot be made.
    """
    missing = []
    parent = folder
    while parent and not osp.exists(parent):
        missing.append(parent)
        parent = osp.dirname(parent)
    os.makedirs(folder, exist_ok=True)
    return missing


def remove_empty_output_dirs(created: Sequence[str]) -> None:
    """Remove the folders :func:`prepare_output_dir` created that are still
    empty, so that a run that wrote nothing leaves nothing behind."""
    for folder in sorted(created, key=len, reverse=True):
        try:
            # The run's own lock file (where flock is missing) is no output.
            if os.listdir(folder) == [LOCK_NAME]:
                drop_own_lock_file(folder)
            os.rmdir(folder)
        except OSError:
            pass  # not empty (or already gone): keep what is there


def input_stem(path: str) -> str:
    """The output name an input gets when nothing else holds it: its file
    stem without leading dots (``h`` for ``.h.jpg``; ``image`` for a name
    that is all dots)."""
    # No output is hidden (.h.png): the output folder's checks pass over
    # hidden files, as a killed writer's partial files, so a run with
    # another model would skip them and record itself in model.json.
    return osp.splitext(osp.basename(path))[0].lstrip('.') or 'image'


def name_key(name: str) -> str:
    """What tells output names apart on every disk: case-insensitive ones
    (macOS, Windows, exFAT, SMB) take ``IMG_1`` and ``img_1`` for one
    file, and macOS's also a name's composed and decomposed accents."""
    return unicodedata.normalize('NFC', name).casefold()


def output_names(files: Sequence[str],
                 recorded: Optional[Dict[str, str]] = None,
                 taken: Iterable[str] = ()) -> Dict[str, str]:
    """A unique output stem per input file: its file stem, with ``_2``,
    ``_3`` ... added when several inputs share one (e.g. ``a.jpg`` and
    ``a.png``) or when the stem belongs to another input of an earlier run.
    Names are compared as a case-insensitive disk compares them
    (:func:`name_key`).

    Args:
        files (Sequence[str]): The input files.
        recorded (dict[str, str], optional): Output name -> real path of
            the input it was written for
            (:func:`~.output_record.read_sources`): an input recorded keeps
            its name, and no other input takes one.
        taken (Iterable[str]): Names of outputs of unknown inputs
            (:func:`~.output_record.unrecorded_names`): no input takes them.
    """
    recorded = recorded or {}
    recorded_name = {}
    for name, source in recorded.items():
        recorded_name.setdefault(source, name)
    # Compared without case: on a case-insensitive disk (macOS, Windows,
    # exFAT, SMB) the mask of IMG_1.JPG was replaced by that of another
    # folder's img_1.jpg, and sources.json named the first photo for it.
    names = {}
    used = {name_key(name) for name in (*recorded, *taken)}
    for path in files:
        name = recorded_name.get(osp.realpath(path))
        if name is None:
            stem = input_stem(path)
            name, counter = stem, 1
            while name_key(name) in used:
                counter += 1
                name = f'{stem}_{counter}'
        used.add(name_key(name))
        names[path] = name
    return names


def say_renames(names: Dict[str, str], recorded: Dict[str, str],
                taken: Iterable[str], out_dir: str,
                say: Callable[[str], None]) -> None:
    """Say, once per input whose outputs are not named by its file stem,
    which name they have and why: otherwise nothing tells which of two
    photos named ``x.jpg`` the mask ``x_2.png`` belongs to.

    Args:
        names (dict[str, str]): Input -> output name, from
            :func:`output_names`.
        recorded (dict[str, str]): Output name -> input of earlier runs.
        taken (Iterable[str]): Names of outputs of unknown inputs.
        out_dir (str): The output folder.
        say (callable): Where the lines go.
    """
    record_file = osp.join(out_dir, SOURCES_NAME)
    # The name that holds a stem, told apart from it by case only or not
    # (output_names compares names without case).
    holder = {name_key(other): other for other in (*taken, *recorded)}
    for path, name in names.items():
        stem = input_stem(path)
        if name == stem:
            if stem != osp.splitext(osp.basename(path))[0]:
                say(f'{path}: its outputs are named {name} (without the '
                    'leading dot, which would make them hidden files)')
            continue
        held = holder.get(name_key(stem))
        if recorded.get(name) == osp.realpath(path):
            why = f'recorded for it in {record_file}'
        elif held in recorded:
            why = f'{held} is recorded for {recorded[held]} in {record_file}'
        elif held is not None:
            why = (f'{out_dir} holds outputs named {held} of an input '
                   f'{record_file} has no record of; they are left as '
                   'they are')
        else:
            why = ('another input has the same name' + (
                '' if stem in names.values() else
                ' on a case-insensitive disk, as macOS and Windows compare '
                'names'))
        say(f'{path}: its outputs are named {name} ({why})')


def changed_since(path: str, recorded: Optional[str]) -> Optional[str]:
    """How the file ``path`` differs from the one its outputs were made
    from, or None when it is that file (or nothing was recorded).

    Args:
        path (str): The input file.
        recorded (str, optional): Its SHA-256 then
            (:func:`~.output_record.read_source_digests`).
    """
    if not recorded:
        return None
    try:
        digest = sha256_of(path)
    except OSError as err:
        return f'it cannot be read now: {err.strerror or err}'
    if digest == recorded:
        return None
    return (f'SHA-256 {recorded[:12]}... recorded in {DIGESTS_NAME}, '
            f'{digest[:12]}... now')


def inferencer_record(inferencer: LesionInferencer) -> Optional[Dict]:
    """The output folder's record of the model ``inferencer`` runs
    (:func:`~.output_record.describe_model`), from its backend's
    ``model_files``; None when they are not known (a config given as an
    object) or can no longer be read."""
    files = getattr(inferencer.backend, 'model_files', None)
    if not files or not files[0]:
        return None
    try:
        return describe_model(files[0], files[1], inferencer.threshold,
                              flips=inferencer.flips)
    except OSError:
        return None


def run_inference(inferencer: LesionInferencer,
                  files: Sequence[str],
                  out_dir: str,
                  batch_size: int = 4,
                  overwrite: bool = False,
                  overlays: bool = True,
                  max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                  overlay_max_side: int = 4096,
                  progress: bool = True,
                  log: Optional[Callable[[str], None]] = None,
                  model_record: Optional[Dict] = None
                  ) -> InferenceSummary:
    """Write ``out_dir/masks/<stem>.png`` (0/255, original size) and
    ``out_dir/overlays/<stem>.jpg`` for every file.

    A file that cannot be read or written is recorded in ``failed`` with
    the reason and the run goes on. Files whose outputs already exist are
    skipped unless ``overwrite``; a file with its mask but not its overlay
    (or the reverse: a run stopped between the two) gets the missing one,
    the other is kept. An output name belongs to one input
    across runs: ``out_dir/sources.json`` records the input of each output
    written (through a journal written before each batch's outputs, so
    also when the run is killed), an input recorded there keeps its name,
    and a new one takes no name recorded for another input or held by an
    output the record does not list (a line names each input whose
    outputs are not named by its stem, and why). Without ``overlays``, an
    overlay of an earlier run counts as an existing output; with
    ``overwrite`` it is removed once the new mask is written (it showed
    the old mask). Existing outputs made from another version of the input
    file (its SHA-256, recorded in ``out_dir/sources.sha256.json``, differs:
    a new photo under an old name) are not skipped as done: without
    ``overwrite`` the image is listed in ``failed``. Images are held in
    memory only as the model-size input
    and the overlay base (at most ``overlay_max_side``), so batches of huge
    images stay small. A folder holds one model's outputs, as with
    ``tools/infer.py``: ``out_dir/model.json`` records the model
    (:func:`~.output_record.claim_output_folder`), and outputs of another
    model are refused, or with ``overwrite`` replaced.

    Args:
        inferencer (LesionInferencer): The model.
        files (Iterable[str]): Image files.
        out_dir (str): Output folder (made if missing; see also
            :func:`prepare_output_dir`, which proves it writable).
        batch_size (int): Images per forward pass.
        overwrite (bool): Replace existing outputs.
        overlays (bool): Also write overlay pictures.
        max_pixels (int, optional): Larger images are refused.
        overlay_max_side (int): Longer side of overlays of large images.
        progress (bool): Show a tqdm progress bar.
        log (callable, optional): Where messages go (default: the progress
            bar's ``write``, i.e. stderr).
        model_record (dict, optional): The model's record
            (:func:`~.output_record.describe_model`); default: made from
            the backend's ``model_files``.

    Returns:
        InferenceSummary

    Raises:
        UserError: ``batch_size``, ``max_pixels`` or ``overlay_max_side``
            is not a whole number of at least 1, an item of ``files`` is
            not a path (an array: use :meth:`LesionInferencer.predict`),
            ``out_dir/sources.json`` (or its digests) cannot be read,
            ``inferencer.threshold`` is not in (0, 1), or ``out_dir``
            holds outputs of another model (or of an unknown one).
        OutputFolderBusyError: Another run writes ``out_dir`` now
            (:func:`~.output_record.output_folder_lock`).
        OutputDirError: ``out_dir`` is missing and cannot be made.
    """
    # Made before it is locked: only a folder that exists can be locked,
    # and a run whose first write (model.json) made the folder would go on
    # unlocked, and a second run into the same new folder too.
    try:
        created = make_folder(out_dir)
    except OSError as err:
        raise OutputDirError(f'cannot make output folder {out_dir}: '
                             f'{err.strerror or err}') from None
    try:
        with output_folder_lock(out_dir):
            return _run_inference(inferencer, files, out_dir, batch_size,
                                  overwrite, overlays, max_pixels,
                                  overlay_max_side, progress, log,
                                  model_record)
    except BaseException:
        remove_empty_output_dirs(created)  # a refused run leaves none
        raise


def _run_inference(inferencer, files, out_dir, batch_size, overwrite,
                   overlays, max_pixels, overlay_max_side, progress, log,
                   model_record) -> InferenceSummary:
    """:func:`run_inference`, with ``out_dir`` held."""
    # One path string was taken as a sequence of one-letter file names,
    # each listed as failed.
    if isinstance(files, (str, bytes, os.PathLike)):
        raise UserError(
            f'run_inference: files is one path ({os.fspath(files)!r}), not '
            'a list of image files; give [path] for one image, or the '
            'images of a folder (mmseg_dsnet.image_io.find_images)')
    # Below 1 these were taken as given, as infer.py's options once were:
    # overlay_max_side=0 wrote 1x1 overlays, max_pixels=0 listed every
    # image as failed, batch_size=0 ran one image at a time.
    for name, value in (('batch_size', batch_size),
                        ('max_pixels', max_pixels),
                        ('overlay_max_side', overlay_max_side)):
        if name == 'max_pixels' and value is None:
            continue  # no limit
        if isinstance(value, bool) or not isinstance(
                value, numbers.Integral) or value < 1:
            raise UserError(
                f'run_inference: {name} must be a whole number of at least '
                f'1, got {value!r}'
                + ('; give None for no limit' if name == 'max_pixels'
                   else ''))
    # A generator was used up naming the outputs: the run claimed the
    # folder (model.json) and failed with "has no len()".
    files = list(files)
    # An array (or a bytes path) failed deep in the naming of the outputs
    # with a TypeError from os.path that named neither the item nor what
    # to pass.
    for index, path in enumerate(files):
        if not isinstance(path, (str, os.PathLike)) or isinstance(
                os.fspath(path), bytes):
            what = ('an array' if isinstance(path, np.ndarray) else
                    f'a {type(path).__name__}')
            raise UserError(
                f'run_inference: files[{index}] is {what}, not an image '
                'file path (a str or pathlib.Path); run_inference reads '
                'and writes files: segment arrays already in memory with '
                'LesionInferencer.predict([rgb, ...]), or give the path '
                'of each image file')
    # Also one error for a threshold set after the inferencer was made,
    # not one failure per image.
    check_threshold(inferencer.threshold, 'LesionInferencer: threshold')
    summary = InferenceSummary()
    recorded = read_sources(out_dir)
    taken = unrecorded_names(out_dir, recorded)
    names = output_names(files, recorded, taken)
    # Called from Python too, a run checks the folder's model, or it
    # would write its masks among another model's and skip theirs as its
    # own.
    record = model_record or inferencer_record(inferencer)
    if record is not None:
        summary.replaced_outputs = claim_output_folder(
            out_dir, record, list(names.values()), overwrite=overwrite)
    elif read_record(out_dir) is not None or existing_outputs(out_dir):
        raise UserError(
            f'{out_dir} holds outputs (or a {RECORD_NAME}) of a model, and '
            'the model of this run is not known by its files (its config '
            'was given as an object), so they cannot be told apart: give '
            'an empty output folder, or the config as a file')
    made_from = read_source_digests(out_dir)
    written, digests = {}, {}
    # Path -> its outputs already there, kept, when the others are missing.
    keep = {}
    bar = progress_bar(len(files), 'inference', progress)
    say = log or bar.write
    pending = []
    say_renames(names, recorded, taken, out_dir, say)

    def targets(path):
        mask = osp.join(out_dir, 'masks', names[path] + '.png')
        overlay = (osp.join(out_dir, 'overlays', names[path] + '.jpg')
                   if overlays else None)
        return mask, overlay

    def stale_overlay(path):
        # Without overlays, one left by an earlier run would sit beside the
        # new mask and show another.
        overlay = osp.join(out_dir, 'overlays', names[path] + '.jpg')
        return overlay if not overlays and osp.exists(overlay) else None

    def flush():
        if not pending:
            return
        try:
            views = inferencer.views(
                np.stack([item[1] for item in pending]))
            for view in views:
                # Outputs that are no lesion logits (3 channels) fail here,
                # as the model's fault, not while the masks are written.
                lesion_logit(view)
            # One image's views; merged at each output's size (the mask's,
            # the overlay's), as test.py --tta merges them.
            per_image = [[view[index] for view in views]
                         for index in range(len(pending))]
        except Exception as err:  # noqa: BLE001  (report, keep going)
            for path, *_ in pending:
                summary.failed.append((path, f'model failed: {err}'))
                say(f'FAILED {path}: model failed: {err}')
            bar.update(len(pending))
            pending.clear()
            return
        try:
            # On disk before the outputs: a run killed while writing them
            # (SIGKILL, a crash) leaves none of an input it has no record of.
            journal_sources(out_dir,
                            {names[path]: path for path, *_ in pending},
                            {names[path]: item[-1] for path, *item in pending})
        except OSError as err:
            for path, *_ in pending:
                summary.failed.append((path, f'cannot write output: {err}'))
                say(f'FAILED {path}: cannot write output: {err}')
            bar.update(len(pending))
            pending.clear()
            return
        for (path, _, size, base, digest), image_views in zip(pending,
                                                              per_image):
            mask_file, overlay_file = targets(path)
            new_mask = False
            try:
                kept = keep.get(path, ())
                if mask_file not in kept:
                    mask = inferencer.masks(image_views, size)
                    write_image(mask_file, mask * np.uint8(255))
                    new_mask = True
                    del mask
                # Recorded once the mask is there, even if the overlay fails:
                # a mask of no recorded input is one of an unknown input.
                written[names[path]] = path
                digests[names[path]] = digest
                if overlay_file and overlay_file not in kept:
                    overlay = draw_overlay(
                        base, inferencer.masks(image_views, base.shape[:2]),
                        max_side=overlay_max_side)
                    write_image(overlay_file, overlay,
                                       [cv2.IMWRITE_JPEG_QUALITY, 90])
                stale = stale_overlay(path)
                if stale and stale not in kept:
                    os.remove(stale)
                    summary.removed_overlays.append(stale)
            except (OSError, MemoryError, cv2.error) as err:
                if new_mask and overlay_file and osp.exists(overlay_file):
                    # An earlier overlay shows the mask just replaced (of
                    # an older photo under this name): beside the new mask
                    # a run without --overwrite skipped both as done.
                    # Removed, the next run draws it ("completing").
                    with contextlib.suppress(OSError):
                        os.remove(overlay_file)
                summary.failed.append((path, f'cannot write output: {err}'))
                say(f'FAILED {path}: cannot write output: {err}')
                bar.update()
                continue
            summary.processed.append(path)
            summary.outputs[path] = (mask_file, overlay_file)
            # Counted once its outputs are on disk: counted when read, the
            # bar showed N/N while the last batch was still being written.
            bar.update()
        pending.clear()

    try:
        for path in files:
            mask_file, overlay_file = targets(path)
            existing = [
                f for f in (mask_file, overlay_file, stale_overlay(path))
                if f and osp.exists(f)
            ]
            if existing and not overwrite:
                # Outputs of another version of the file (a new photo under
                # an old name) are not the outputs of this one.
                changed = changed_since(path, made_from.get(names[path]))
                if changed:
                    reason = (f'{path}: its outputs {", ".join(existing)} '
                              f'were made from another version of this '
                              f'file ({changed}): they do not show it; use '
                              '--overwrite to replace them')
                    summary.failed.append((path, reason))
                    say(f'FAILED {reason}')
                    bar.update()
                    continue
                missing = [f for f in (mask_file, overlay_file)
                           if f and not osp.exists(f)]
                if not missing:
                    summary.skipped_existing.append(path)
                    say(f'skipped {path}: {", ".join(existing)} already '
                        'exists (use --overwrite to replace)')
                    bar.update()
                    continue
                # A mask without its overlay (a run killed or failed between
                # the two, or one deleted) is not done; nor is a removed
                # mask with --no-overlay, its overlay there.
                # Both are of this model (model.json) and this file (its
                # SHA-256): they show the mask written now.
                keep[path] = existing
                say(f'completing {path}: {", ".join(missing)} missing (a '
                    'run stopped or failed before writing it, or it was '
                    f'removed); {", ".join(existing)} kept')
            try:
                image = read_image(path, max_pixels)
                digest = sha256_of(path)
            except OSError as err:
                summary.failed.append((path, f'{path}: cannot read: {err}'))
                say(f'FAILED {path}: cannot read: {err}')
                bar.update()
                continue
            except ImageReadError as err:
                message = str(err)
                if isinstance(err, PixelLimitError):
                    message += ' (raise it with --max-pixels)'
                summary.failed.append((path, message))
                say(f'FAILED {message}')
                bar.update()
                continue
            if image.notes:
                summary.notes[path] = image.notes
                say(f'note {path}: {"; ".join(image.notes)}')
            size = image.size
            # The model input is made from the full image (as mmseg does);
            # only it and the overlay base (at most overlay_max_side) are
            # kept until the batch runs.
            model_input = to_model_input(image.rgb, inferencer.input_size)
            base = None
            if overlays:
                base = image.rgb
                if max(size) > overlay_max_side:
                    factor = overlay_max_side / max(size)
                    base = cv2.resize(
                        base, (max(1, round(size[1] * factor)),
                               max(1, round(size[0] * factor))),
                        interpolation=cv2.INTER_AREA)
            del image
            pending.append((path, model_input, size, base, digest))
            if len(pending) >= batch_size:
                flush()
        flush()
    finally:
        # Also after an interruption: the outputs written keep their input.
        record_sources(out_dir, written, digests)
    bar.close()
    return summary
