"""The two backends that run a lesion model: PyTorch (config and
checkpoint) and onnxruntime (an exported ONNX file).

Both run the same network (:class:`~mmseg_dsnet.deploy.DeployableSegmentor`:
RGB 0..255 in, logits out) at the model's fixed input size, and are called
alike: ``backend(batch)`` maps ``(N, 3, H, W)`` float32 RGB to
``(N, C, H, W)`` logits, with ``input_size`` and ``threshold`` attributes,
and ``model_files`` (the files that decide the masks, for the output
folder's record: :func:`~.output_record.describe_model`).
"""
import numbers
import os
import os.path as osp
import tempfile
from typing import Optional, Tuple

import numpy as np
import torch

from ..deploy.deployable import (INPUT_FORMAT, META_INPUT_FORMAT,
                                 META_FLIP_TTA, META_INPUT_SIZE,
                                 META_PRECISION, META_THRESHOLD, META_WEIGHTS,
                                 RANDOM_WEIGHTS,
                                 DeployableSegmentor, build_segmentor,
                                 check_runs_as_tested, input_size_of,
                                 parse_input_format, threshold_of)
from ..deploy.onnx_export import export_onnx
from ..deploy.ort_session import OnnxModelError, ort_session
from ..engine.checkpoint_match import read_checkpoint_and_training_config
from ..engine.preflight import load_config
from ..utils.errors import UserError
from ..utils.messages import config_name
from ..utils.threads import torch_threads
from .released_model import (UNREAD, check_trained_input_size,
                             check_trained_model)

BACKENDS = ('pytorch', 'onnxruntime')


def check_checkpoint_size(cfg, checkpoint: Optional[str],
                          loaded=None, training_cfg=UNREAD) -> None:
    """Refuse a checkpoint trained at another input size than ``cfg``
    runs at (:func:`~.released_model.check_trained_input_size`), or in
    another network (:func:`~.released_model.check_trained_model`).

    Args:
        cfg (Config): The config the checkpoint is run with.
        checkpoint (str, optional): The checkpoint; None passes.
        loaded (dict, optional): ``checkpoint`` loaded already
            (:func:`~mmseg_dsnet.engine.checkpoint_match.read_checkpoint`);
            read from the file when None.
        training_cfg (dict, optional): Its training config read already
            with ``loaded`` (:func:`~mmseg_dsnet.engine.checkpoint_match.
            read_checkpoint_and_training_config`; None when it has none);
            read from ``loaded`` when not given.

    Raises:
        UserError: Naming each size setting that differs, or the first
            network setting.
    """
    if checkpoint:
        from ..compat import safe_torch_load
        from .released_model import (trained_config_advice,
                                     training_config_in)
        name = config_name(cfg, '(given as an object)')
        # One load and one parse serve both checks (released weights:
        # their metafile config is read, which takes a while).
        if loaded is None:
            loaded = safe_torch_load(checkpoint, map_location='cpu')
        if training_cfg is UNREAD:
            training_cfg = training_config_in(loaded, checkpoint)
        checked = dict(loaded=loaded, training_cfg=training_cfg)
        advice = trained_config_advice(name, checkpoint, loaded)
        # A fully convolutional model has no input size in its weights:
        # they load strictly into a config of another size.
        check_trained_input_size(cfg, name, checkpoint, advice, **checked)
        check_trained_model(cfg, name, checkpoint, advice, **checked)


def check_has_checkpoint(config, checkpoint: Optional[str],
                         what: str) -> None:
    """Refuse a config given without a checkpoint: its network would run
    with random weights (infer.py refuses it too).

    Raises:
        UserError: Naming the config and the caller.
    """
    if not checkpoint:
        name = config if isinstance(config, str) else getattr(
            config, 'filename', None) or '(given as an object)'
        raise UserError(
            f'{what}: config {name} was given without a checkpoint; its '
            'network would run with random weights and give meaningless '
            'masks; give the checkpoint trained with it (or the released '
            'weights: mmseg_dsnet.apis.released_model.released_model())')


def as_path(value):
    """A ``pathlib.Path`` (any ``os.PathLike``) as the ``str`` path the
    OpenMMLab loaders take; anything else as it is (a ``Config`` object,
    None). mmengine's checkpoint loader failed on a Path with ``TypeError:
    expected string or bytes-like object``, and ``make_backend`` with
    ``AttributeError: ... has no attribute 'lower'``."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def check_num_threads(num_threads, what: str):
    """Refuse a thread count that is not a positive integer (None passes:
    the library's default).

    ``0`` was dropped without a word (both backends ran on all cores, as
    ``infer.py --threads 0`` did before it was refused); ``-1`` and ``2.5``
    failed inside torch or onnxruntime without naming the argument.

    Raises:
        UserError: Naming the caller and the value.
    """
    if num_threads is None:
        return
    if isinstance(num_threads, bool) or not isinstance(
            num_threads, numbers.Integral) or num_threads < 1:
        raise UserError(
            f'{what}: num_threads must be a positive whole number of CPU '
            f'threads, got {num_threads!r}; leave it out (None) for the '
            "library's default (all cores)")


def check_onnxruntime_device(device, what: str) -> None:
    """Refuse a device other than the CPU for the onnxruntime backend,
    which runs on the CPU here (``infer.py --device`` refuses it too):
    ``device='cuda'`` was dropped without a word.

    Raises:
        UserError: Naming the caller and the device.
    """
    if str(device) != 'cpu':
        raise UserError(
            f"{what}: device={str(device)!r} applies to the pytorch backend; "
            "onnxruntime runs on the CPU here: leave device out (or 'cpu'), "
            "or run the config and checkpoint with backend='pytorch'")


class TorchBackend:
    """Runs a config + checkpoint with PyTorch on CPU (or ``device``).

    Args:
        config (str | Path | Config): Model config.
        checkpoint (str | Path): Checkpoint (loaded safely and strictly);
            required: None raises a ``UserError``.
        device (str | torch.device): Torch device (``'cpu'``, ``'cuda'``,
            ``'cuda:N'``); one this machine cannot run on raises a
            ``UserError`` before anything is built. Default: ``'cpu'``.
        reparameterize (bool): Run the re-parameterised form. Default: True.
        num_threads (int, optional): torch CPU threads of each call, a
            positive integer; the caller's count is given back after the
            call (torch's count is process-wide). None: torch's current
            count.
    """
    name = 'pytorch'

    def __init__(self, config, checkpoint: Optional[str] = None,
                 device: str = 'cpu', reparameterize: bool = True,
                 num_threads: Optional[int] = None):
        # Optional in the signature only so that the error says what is
        # missing: masks of random weights came out without a word.
        config, checkpoint = as_path(config), as_path(checkpoint)
        check_has_checkpoint(config, checkpoint, 'TorchBackend')
        check_num_threads(num_threads, 'TorchBackend')
        # torch failed only when the model was moved there, after the
        # build: an AssertionError ('Torch not compiled with CUDA enabled').
        from ..utils.cli import device_option
        try:
            device_option(device, task='inference', option='device')
        except UserError as err:
            raise UserError(f'TorchBackend: {err}') from None
        self.cfg = load_config(config)
        check_runs_as_tested(self.cfg)
        # One read of the file and of its training config serves the build
        # and the size check.
        loaded, training_cfg = read_checkpoint_and_training_config(
            checkpoint)
        segmentor = build_segmentor(self.cfg, checkpoint, reparameterize,
                                    device, loaded=loaded,
                                    training_cfg=training_cfg)
        check_checkpoint_size(self.cfg, checkpoint, loaded, training_cfg)
        self.network = DeployableSegmentor.from_segmentor(
            segmentor, self.cfg).to(device).eval()
        self.device = device
        self.num_threads = num_threads
        self.input_size = input_size_of(self.cfg)
        self.threshold = threshold_of(segmentor)
        # A Config object may have been changed since it was read: its
        # file does not say what runs.
        self.model_files = ((config, checkpoint) if isinstance(config, str)
                            else None)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32 RGB 0..255 to ``(N, C, H, W)`` logits."""
        with torch.no_grad(), torch_threads(self.num_threads):
            inputs = torch.from_numpy(batch).to(self.device)
            return self.network(inputs).float().cpu().numpy()


def check_input_format(onnx_file: str, meta: dict):
    """Refuse an ONNX file that does not say it takes what this backend
    gives: raw RGB pixels 0..255 (``META_INPUT_FORMAT``, written by
    ``tools/deployment/export_onnx.py``, with dynamic height and width or,
    from ``--static-size``, the fixed size of the graph:
    :func:`~mmseg_dsnet.deploy.deployable.input_format`).

    Another exporter's file (mmdeploy's, a plain ``torch.onnx.export`` of
    the segmentor) expects normalised or BGR input; fed raw RGB at a
    guessed 256x256 and threshold 0.5 it gave wrong masks, exit 0.

    Args:
        onnx_file (str): The file, for the message.
        meta (dict): Its ``custom_metadata_map``.

    Returns:
        tuple[int, int] | None: The ``(H, W)`` a fixed-size graph takes;
        None for dynamic height and width.

    Raises:
        OnnxModelError: Naming the file and what it lacks.
    """
    found = meta.get(META_INPUT_FORMAT)
    parsed = parse_input_format(found)
    if parsed is not None:
        return parsed[1]
    what = (f'it has no {META_INPUT_FORMAT} metadata' if found is None else
            f'its {META_INPUT_FORMAT} is {found!r}, not {INPUT_FORMAT!r} '
            'or its fixed-size form')
    raise OnnxModelError(
        f'{onnx_file} was not written by tools/deployment/export_onnx.py '
        f'({what}): the input it expects (pixel range, channel order, '
        'normalisation), its input size and threshold are unknown, and a '
        'guess gives wrong masks without an error; export the model with '
        'tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx')


def check_trained_weights(onnx_file: str, meta: dict) -> None:
    """Refuse an ONNX file exported without a checkpoint
    (``META_WEIGHTS`` is ``RANDOM_WEIGHTS``: ``export_onnx(config, None,
    ...)`` from Python): its random weights passed the parity check, and
    its masks, meaningless, were written as any model's, exit 0. A file
    without ``META_WEIGHTS`` (exported before it was recorded, when the
    command line always took a checkpoint) runs.

    Raises:
        OnnxModelError: Naming the file.
    """
    if meta.get(META_WEIGHTS) == RANDOM_WEIGHTS:
        raise OnnxModelError(
            f'{onnx_file} was exported without a checkpoint (its '
            f'{META_WEIGHTS} is {RANDOM_WEIGHTS!r}): its weights are '
            'random and its masks would be meaningless; export the model '
            'with its checkpoint: tools/deployment/export_onnx.py CONFIG '
            'CHECKPOINT OUT.onnx')


def check_input_size(input_size) -> Tuple[int, int]:
    """``input_size`` as ``(H, W)`` of two positive integers.

    Raises:
        OnnxModelError: It is not two positive whole numbers.
    """
    try:
        height, width = input_size
    except (TypeError, ValueError):
        height = width = None
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
               and v > 0 for v in (height, width)):
        raise OnnxModelError(
            'OnnxRuntimeBackend: input_size must be (height, width), two '
            f'positive whole numbers, got {input_size!r}; leave it out to '
            'run at the size stored in the file')
    return int(height), int(width)


class OnnxRuntimeBackend:
    """Runs an ONNX file written by ``tools/deployment/export_onnx.py``.

    Args:
        onnx_file (str): The model.
        num_threads (int, optional): onnxruntime intra-op threads, a
            positive integer (None: onnxruntime's default, all cores).
        input_size (tuple[int, int], optional): ``(H, W)`` to run at;
            default: the size stored in the file's metadata (the test
            size of the config it was exported from), else 256x256.
            Another size than the stored one is refused: the weights were
            trained and checked at that size, and elsewhere give other
            masks. A fixed-size graph (``--static-size``) runs at its
            size only.

    Raises:
        OnnxModelError: The file is not export_onnx's, or was exported
            without a checkpoint (random weights), ``input_size`` is
            not the size stored in it (or not two positive integers), or
            a fixed-size graph's metadata disagree about its size.
    """
    name = 'onnxruntime'

    def __init__(self, onnx_file: str, num_threads: Optional[int] = None,
                 input_size: Optional[Tuple[int, int]] = None):
        check_num_threads(num_threads, 'OnnxRuntimeBackend')
        onnx_file = as_path(onnx_file)
        # One place turns a broken file into an error naming it.
        self.session = ort_session(onnx_file, num_threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        fixed = check_input_format(onnx_file, meta)
        check_trained_weights(onnx_file, meta)
        if fixed is not None:
            # The graph takes its trace size only: another size fails in
            # onnxruntime, and sizes that disagree mean an edited file.
            stored = meta.get(META_INPUT_SIZE)
            for given, what in ((input_size and tuple(input_size),
                                 'input_size'), (stored, META_INPUT_SIZE)):
                if given is not None and given not in (
                        fixed, f'{fixed[0]},{fixed[1]}'):
                    raise OnnxModelError(
                        f'{onnx_file} takes {fixed[0]}x{fixed[1]} images '
                        f'only (its {META_INPUT_FORMAT}: a fixed-size '
                        f'graph), but {what} is {given}; run it at '
                        f'{fixed[0]}x{fixed[1]} or export the model again')
            input_size = fixed
        stored = (tuple(int(v) for v in meta[META_INPUT_SIZE].split(','))
                  if META_INPUT_SIZE in meta else None)
        if fixed is None and input_size is not None:
            input_size = check_input_size(input_size)
            # A fully convolutional graph runs at any size, so the weights
            # (trained and checked at the stored size) ran at another one
            # and gave other masks without a word.
            if stored is not None and input_size != stored:
                raise OnnxModelError(
                    f'{onnx_file} was exported to run at '
                    f'{stored[0]}x{stored[1]} (its {META_INPUT_SIZE}: the '
                    "test size of its config, at which its parity with "
                    'PyTorch was checked), but input_size is '
                    f'{input_size[0]}x{input_size[1]}: the network has no '
                    'input size in its weights, so it would run there and '
                    'give other masks without an error; leave input_size '
                    'out, or export a model trained at that size')
        if input_size is None:
            input_size = stored
        self.input_size = tuple(input_size or (256, 256))
        self.threshold = float(meta.get(META_THRESHOLD, 0.5))
        # 'int8' for a quantized model; None when the file does not say.
        self.precision = meta.get(META_PRECISION)
        # Why LesionInferencer(flips=True) is refused for this file, or
        # None (a file exported before the key was written: not known).
        self.flip_tta_refusal = None if meta.get(
            META_FLIP_TTA, 'True') == 'True' else (
            f'{onnx_file} was exported from a config that sets its own '
            f'tta_pipeline (its {META_FLIP_TTA} is False), which '
            'tools/test.py --tta scores, while this averages the image and '
            'its horizontal and vertical flips at the test size only: the '
            "masks would not be those of the config's test-time augmented "
            'figures; leave out test-time augmentation, or export the model '
            'from a config without its own tta_pipeline')
        self.input_name = self.session.get_inputs()[0].name
        self.model_files = (onnx_file, None)

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
        checkpoint (str, optional): Checkpoint for a config (required
            with one).
        backend (str, optional): ``'pytorch'`` or ``'onnxruntime'``.
            Default: onnxruntime for an ONNX file, PyTorch for a config.
            A config with ``'onnxruntime'`` is exported to a temporary ONNX
            file first, fixed at the config's input size.
        device (str): Torch device of the PyTorch backend; the onnxruntime
            backend runs on the CPU only (another device raises a
            ``UserError``).
        num_threads (int, optional): CPU threads of either backend, a
            positive integer (PyTorch: set for each call and given back
            after it, so the caller's torch thread count is unchanged);
            None: the library's default.
        work_dir (str, optional): Where the temporary ONNX file goes
            (removed once loaded).

    Returns:
        TorchBackend | OnnxRuntimeBackend
    """
    model, checkpoint = as_path(model), as_path(checkpoint)
    is_onnx = model.lower().endswith('.onnx')
    backend = backend or ('onnxruntime' if is_onnx else 'pytorch')
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend}')
    check_num_threads(num_threads, 'make_backend')
    if backend == 'onnxruntime':
        check_onnxruntime_device(device, 'make_backend')
    if is_onnx:
        if backend != 'onnxruntime':
            raise ValueError(f'{model} is an ONNX file: it runs with the '
                             'onnxruntime backend only')
        if checkpoint:
            raise ValueError('an ONNX file holds its weights; do not give a '
                             'checkpoint with it')
        return OnnxRuntimeBackend(model, num_threads)
    check_has_checkpoint(model, checkpoint, 'make_backend')
    if backend == 'pytorch':
        return TorchBackend(model, checkpoint, device,
                            num_threads=num_threads)
    cfg = load_config(model)
    check_runs_as_tested(cfg)
    # One read of the file and of its training config serves the checks
    # and the export.
    loaded, training_cfg = read_checkpoint_and_training_config(checkpoint)
    check_checkpoint_size(cfg, checkpoint, loaded, training_cfg)
    # The session keeps the model in memory; the file is not needed after.
    with tempfile.TemporaryDirectory(prefix='lesion_onnx_',
                                     dir=work_dir) as folder:
        onnx_file = osp.join(folder, 'model.onnx')
        # Traced at the size it runs at, which the graph then fixes: traced
        # at 256x256, mmseg's UNet and SegFormer keep that size as
        # constants, and a config at another size failed at every image.
        export_onnx(model, checkpoint, onnx_file,
                    shape=tuple(input_size_of(cfg)), dynamic_size=False,
                    loaded=loaded, training_cfg=training_cfg)
        backend = OnnxRuntimeBackend(onnx_file, num_threads)
    # The temporary file is gone: the config and checkpoint made it.
    backend.model_files = (model, checkpoint)
    backend.cfg = cfg  # what it runs, as TorchBackend.cfg
    return backend
