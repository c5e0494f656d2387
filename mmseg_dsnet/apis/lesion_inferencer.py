"""Lesion masks for image files, with a PyTorch or an onnxruntime backend.

Both backends run the same network (:class:`DeployableSegmentor`: RGB
0..255 in, logits out) at the model's fixed input size; everything around it
(reading, resizing, masks at the original size, overlays, writing) is shared,
so the two backends give the same masks.
"""
import os
import os.path as osp
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..progress import progress_bar
from .image_io import DEFAULT_MAX_PIXELS, ImageReadError, read_image
from .masks import decision_map, draw_overlay, resize_to_mask, \
    write_image_atomic

BACKENDS = ('pytorch', 'onnxruntime')

# Keys of the metadata ``export_onnx`` stores in the ONNX file.
META_INPUT_SIZE = 'mmseg_dsnet.input_size'
META_THRESHOLD = 'mmseg_dsnet.threshold'
META_INPUT_FORMAT = 'mmseg_dsnet.input_format'
INPUT_FORMAT = ('float32 NCHW RGB pixel values 0..255 (not normalised); '
                'dynamic batch, height and width')


class TorchBackend:
    """Runs a config + checkpoint with PyTorch on CPU (or ``device``).

    Args:
        config (str | Config): Model config.
        checkpoint (str, optional): Checkpoint (loaded safely).
        device (str): Torch device. Default: ``'cpu'``.
        reparameterize (bool): Run the re-parameterised form. Default: True.
    """
    name = 'pytorch'

    def __init__(self, config, checkpoint: Optional[str] = None,
                 device: str = 'cpu', reparameterize: bool = True):
        import torch

        from .deploy_model import (DeployableSegmentor, build_segmentor,
                                   input_size_of, load_config, threshold_of)
        self._torch = torch
        self.cfg = load_config(config)
        segmentor = build_segmentor(self.cfg, checkpoint, reparameterize,
                                    device)
        self.network = DeployableSegmentor.from_segmentor(
            segmentor, self.cfg).to(device).eval()
        self.device = device
        self.input_size = input_size_of(self.cfg)
        self.threshold = threshold_of(segmentor)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32 RGB 0..255 to ``(N, C, H, W)`` logits."""
        with self._torch.no_grad():
            inputs = self._torch.from_numpy(batch).to(self.device)
            return self.network(inputs).float().cpu().numpy()


class OnnxRuntimeBackend:
    """Runs an ONNX file written by ``tools/deployment/export_onnx.py``.

    Args:
        onnx_file (str): The model.
        num_threads (int, optional): onnxruntime intra-op threads (None:
            onnxruntime's default, all cores).
        input_size (tuple[int, int], optional): ``(H, W)`` to run at;
            default: the size stored in the file's metadata, else 256x256.
    """
    name = 'onnxruntime'

    def __init__(self, onnx_file: str, num_threads: Optional[int] = None,
                 input_size: Optional[Tuple[int, int]] = None):
        # One place turns a broken file into an error naming it.
        from .onnx_export import ort_session
        self.session = ort_session(onnx_file, num_threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if input_size is None and META_INPUT_SIZE in meta:
            input_size = tuple(
                int(v) for v in meta[META_INPUT_SIZE].split(','))
        self.input_size = tuple(input_size or (256, 256))
        self.threshold = float(meta.get(META_THRESHOLD, 0.5))
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]


def make_backend(model: str,
                 checkpoint: Optional[str] = None,
                 backend: Optional[str] = None,
                 device: str = 'cpu',
                 num_threads: Optional[int] = None,
                 work_dir: Optional[str] = None):
    """The backend for a config (+ checkpoint) or an ONNX file.

    Args:
        model (str): A config (``.py``) or an exported ``.onnx`` file.
        checkpoint (str, optional): Checkpoint for a config.
        backend (str, optional): ``'pytorch'`` or ``'onnxruntime'``.
            Default: onnxruntime for an ONNX file, PyTorch for a config.
            A config with ``'onnxruntime'`` is exported to a temporary ONNX
            file first.
        device (str): Torch device of the PyTorch backend.
        num_threads (int, optional): Threads of the onnxruntime backend.
        work_dir (str, optional): Where the temporary ONNX file goes
            (removed once loaded).

    Returns:
        TorchBackend | OnnxRuntimeBackend
    """
    is_onnx = model.lower().endswith('.onnx')
    backend = backend or ('onnxruntime' if is_onnx else 'pytorch')
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend}')
    if is_onnx:
        if backend != 'onnxruntime':
            raise ValueError(f'{model} is an ONNX file: it runs with the '
                             'onnxruntime backend only')
        if checkpoint:
            raise ValueError('an ONNX file holds its weights; do not give a '
                             'checkpoint with it')
        return OnnxRuntimeBackend(model, num_threads)
    if backend == 'pytorch':
        return TorchBackend(model, checkpoint, device)
    from .onnx_export import export_onnx
    # The session keeps the model in memory; the file is not needed after.
    with tempfile.TemporaryDirectory(prefix='lesion_onnx_',
                                     dir=work_dir) as folder:
        onnx_file = osp.join(folder, 'model.onnx')
        export_onnx(model, checkpoint, onnx_file)
        return OnnxRuntimeBackend(onnx_file, num_threads)


def to_model_input(rgb: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize an RGB uint8 image to ``size`` = ``(H, W)`` as mmseg's test
    pipeline does (OpenCV bilinear, aspect ratio not kept) and return it
    as ``(3, H, W)`` float32."""
    height, width = size
    if rgb.shape[:2] != (height, width):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)


class LesionInferencer:
    """Binary lesion masks at each image's original size.

    Args:
        backend (TorchBackend | OnnxRuntimeBackend): The network.
        threshold (float, optional): Sigmoid threshold for 1-channel
            models; default: the model's own (0.5 in our configs).
    """

    def __init__(self, backend, threshold: Optional[float] = None):
        self.backend = backend
        self.threshold = (backend.threshold
                          if threshold is None else float(threshold))
        self.input_size = tuple(backend.input_size)

    def logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, C, H, W)`` logits at the model's input size for RGB uint8
        images of any sizes."""
        batch = np.stack([to_model_input(rgb, self.input_size)
                          for rgb in images])
        return self.backend(batch)

    def decisions(self, images: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Decision maps at the model size (positive = lesion)."""
        return [decision_map(item, self.threshold)
                for item in self.logits(images)]

    def predict(self, images: Sequence[np.ndarray]) -> List[np.ndarray]:
        """``(H, W)`` uint8 masks (1 = lesion) at each image's size."""
        return [
            resize_to_mask(decision, rgb.shape[:2])
            for decision, rgb in zip(self.decisions(images), images)
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
    """
    processed: List[str] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)
    skipped_existing: List[str] = field(default_factory=list)
    notes: Dict[str, List[str]] = field(default_factory=dict)
    outputs: Dict[str, Tuple[str, Optional[str]]] = field(
        default_factory=dict)


class OutputDirError(Exception):
    """The output folder cannot be created or written."""


def prepare_output_dir(out_dir: str, overlays: bool = True) -> None:
    """Create ``out_dir/masks`` (and ``overlays``) and prove they are
    writable by writing and removing a probe file.

    Raises:
        OutputDirError: With the folder and the reason.
    """
    subdirs = ['masks'] + (['overlays'] if overlays else [])
    for sub in subdirs:
        folder = osp.join(out_dir, sub)
        try:
            os.makedirs(folder, exist_ok=True)
            handle, probe = tempfile.mkstemp(prefix='.write_probe_',
                                             dir=folder)
            os.close(handle)
            os.unlink(probe)
        except OSError as err:
            reason = err.strerror or str(err)
            raise OutputDirError(
                f'cannot write to output folder {folder}: {reason}') from None


def output_names(files: Sequence[str]) -> Dict[str, str]:
    """A unique output stem per input file: its file stem, with ``_2``,
    ``_3`` ... added when several inputs share one (e.g. ``a.jpg`` and
    ``a.png``)."""
    names, used = {}, set()
    for path in files:
        stem = osp.splitext(osp.basename(path))[0] or 'image'
        name, counter = stem, 1
        while name in used:
            counter += 1
            name = f'{stem}_{counter}'
        used.add(name)
        names[path] = name
    return names


def run_inference(inferencer: LesionInferencer,
                  files: Sequence[str],
                  out_dir: str,
                  batch_size: int = 4,
                  overwrite: bool = False,
                  overlays: bool = True,
                  max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                  overlay_max_side: int = 4096,
                  progress: bool = True,
                  log: Optional[Callable[[str], None]] = None
                  ) -> InferenceSummary:
    """Write ``out_dir/masks/<stem>.png`` (0/255, original size) and
    ``out_dir/overlays/<stem>.jpg`` for every file.

    A file that cannot be read or written is recorded in ``failed`` with
    the reason and the run goes on. Files whose outputs already exist are
    skipped unless ``overwrite``. Images are held in memory only as the
    model-size input and the overlay base (at most ``overlay_max_side``),
    so batches of huge images stay small.

    Args:
        inferencer (LesionInferencer): The model.
        files (Sequence[str]): Image files.
        out_dir (str): Output folder (made writable first by the caller,
            see :func:`prepare_output_dir`).
        batch_size (int): Images per forward pass.
        overwrite (bool): Replace existing outputs.
        overlays (bool): Also write overlay pictures.
        max_pixels (int, optional): Larger images are refused.
        overlay_max_side (int): Longer side of overlays of large images.
        progress (bool): Show a tqdm progress bar.
        log (callable, optional): Where messages go (default: the progress
            bar's ``write``, i.e. stderr).

    Returns:
        InferenceSummary
    """
    summary = InferenceSummary()
    names = output_names(files)
    bar = progress_bar(len(files), 'inference', progress)
    say = log or bar.write
    pending = []

    def targets(path):
        mask = osp.join(out_dir, 'masks', names[path] + '.png')
        overlay = (osp.join(out_dir, 'overlays', names[path] + '.jpg')
                   if overlays else None)
        return mask, overlay

    def flush():
        if not pending:
            return
        try:
            logits = inferencer.backend(
                np.stack([item[1] for item in pending]))
            decisions = [decision_map(item, inferencer.threshold)
                         for item in logits]
        except Exception as err:  # noqa: BLE001  (report, keep going)
            for path, *_ in pending:
                summary.failed.append((path, f'model failed: {err}'))
                say(f'FAILED {path}: model failed: {err}')
            pending.clear()
            return
        for (path, _, size, base), decision in zip(pending, decisions):
            mask_file, overlay_file = targets(path)
            try:
                mask = resize_to_mask(decision, size)
                write_image_atomic(mask_file, mask * np.uint8(255))
                del mask
                if overlay_file:
                    overlay = draw_overlay(
                        base, resize_to_mask(decision, base.shape[:2]),
                        max_side=overlay_max_side)
                    write_image_atomic(overlay_file, overlay,
                                       [cv2.IMWRITE_JPEG_QUALITY, 90])
            except (OSError, MemoryError, cv2.error) as err:
                summary.failed.append((path, f'cannot write output: {err}'))
                say(f'FAILED {path}: cannot write output: {err}')
                continue
            summary.processed.append(path)
            summary.outputs[path] = (mask_file, overlay_file)
        pending.clear()

    for path in files:
        mask_file, overlay_file = targets(path)
        existing = [f for f in (mask_file, overlay_file)
                    if f and osp.exists(f)]
        if existing and not overwrite:
            summary.skipped_existing.append(path)
            say(f'skipped {path}: {", ".join(existing)} already exists '
                '(use --overwrite to replace)')
            bar.update()
            continue
        try:
            image = read_image(path, max_pixels)
        except ImageReadError as err:
            summary.failed.append((path, str(err)))
            say(f'FAILED {err}')
            bar.update()
            continue
        if image.notes:
            summary.notes[path] = image.notes
            say(f'note {path}: {"; ".join(image.notes)}')
        size = image.size
        # The model input is made from the full image (as mmseg does); only
        # it and the overlay base (at most overlay_max_side) are kept until
        # the batch runs.
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
        pending.append((path, model_input, size, base))
        if len(pending) >= batch_size:
            flush()
        bar.update()
    flush()
    bar.close()
    return summary
