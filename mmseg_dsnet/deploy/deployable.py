"""Build a segmentor for deployment: from config and checkpoint to one
network that maps raw RGB pixels to lesion logits.

:class:`DeployableSegmentor` is the exact computation that is exported to
ONNX and run by the PyTorch backend of ``tools/infer.py``:

* input: float32 ``(N, 3, H, W)`` **RGB** pixels in 0..255 (what Pillow and
  most image libraries give; no BGR, no normalisation by the caller);
* the config's ``data_preprocessor`` steps inside the network: channel
  order for the model, ``(x - mean) / std``;
* output: float32 ``(N, C, H, W)`` logits at the input size (``C = 1``:
  sigmoid lesion logit, ``C = 2``: softmax logits), resized bilinearly when
  the decode head works at a lower resolution (e.g. SegFormer's 1/4).

:func:`to_model_input` makes that input from an image, and the ``META_*``
keys name the metadata an exported ONNX file carries about it.
"""
import contextlib
import os
import re
import warnings
from typing import Optional, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import Tensor, nn

from ..engine.preflight import load_config
from ..utils.config_diff import UNREAD
from ..utils.messages import config_name

DEFAULT_INPUT_SIZE = (256, 256)

# Keys of the metadata ``export_onnx`` stores in the ONNX file.
META_INPUT_SIZE = 'mmseg_dsnet.input_size'
META_THRESHOLD = 'mmseg_dsnet.threshold'
META_INPUT_FORMAT = 'mmseg_dsnet.input_format'
#: The checkpoint the exported weights came from (its file name and
#: SHA-256), or :data:`RANDOM_WEIGHTS`.
META_WEIGHTS = 'mmseg_dsnet.weights'
#: ``META_WEIGHTS`` of a model exported without a checkpoint.
RANDOM_WEIGHTS = 'random (exported without a checkpoint)'
#: ``'float32'``, or ``'int8'`` for a model quantized by
#: :func:`~mmseg_dsnet.deploy.int8.quantize_int8` (whose other metadata are
#: those of the float model it was made from).
META_PRECISION = 'mmseg_dsnet.precision'
#: ``'False'`` when the config's own ``tta_pipeline`` (which
#: ``tools/test.py --tta`` scores) is not the three flips ``--tta`` runs.
META_FLIP_TTA = 'mmseg_dsnet.flip_tta'
INPUT_PIXELS = 'float32 NCHW RGB pixel values 0..255 (not normalised)'
#: The input format of a graph with dynamic height and width.
INPUT_FORMAT = f'{INPUT_PIXELS}; dynamic batch, height and width'


def input_format(dynamic_size: bool = True,
                 shape: Optional[Tuple[int, int]] = None) -> str:
    """What an exported graph takes (``META_INPUT_FORMAT``, its doc string
    and the export report): :data:`INPUT_FORMAT`, or for a graph whose
    height and width are fixed (``--static-size``) that size, e.g.
    ``'...; dynamic batch, fixed height and width 128x160'``.

    Args:
        dynamic_size (bool): Dynamic height and width. Default: True.
        shape (tuple[int, int], optional): ``(H, W)`` of a fixed-size
            graph (needed when ``dynamic_size`` is False).
    """
    if dynamic_size:
        return INPUT_FORMAT
    return (f'{INPUT_PIXELS}; dynamic batch, fixed height and width '
            f'{int(shape[0])}x{int(shape[1])}')


def parse_input_format(found: Optional[str]):
    """Read an :func:`input_format` value back.

    Returns:
        tuple | None: ``(True, None)`` for :data:`INPUT_FORMAT`,
        ``(False, (H, W))`` for a fixed-size graph, None for anything else
        (another exporter's file, or none).
    """
    if found == INPUT_FORMAT:
        return True, None
    match = re.fullmatch(
        re.escape(f'{INPUT_PIXELS}; dynamic batch, fixed height and width ')
        + r'([1-9][0-9]*)x([1-9][0-9]*)', found or '')
    if match is None:
        return None
    return False, (int(match.group(1)), int(match.group(2)))


def to_model_input(rgb: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize an RGB uint8 image to ``size`` = ``(H, W)`` as mmseg's test
    pipeline does (OpenCV bilinear, aspect ratio not kept) and return it
    as ``(3, H, W)`` float32."""
    height, width = size
    if rgb.shape[:2] != (height, width):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)


def build_segmentor(config: Union[str, Config],
                    checkpoint: Optional[str] = None,
                    reparameterize: bool = True,
                    device: str = 'cpu', loaded=None,
                    training_cfg=UNREAD) -> nn.Module:
    """Build the config's model in eval mode and load its weights.

    The checkpoint is loaded through
    :func:`mmseg_dsnet.compat.safe_torch_load`: a file that holds anything
    outside the allow-list raises
    :class:`~mmseg_dsnet.compat.UnsafeCheckpointError` and nothing in it
    runs. Keys and shapes must match the model, so a checkpoint for another
    model or form raises
    :class:`~mmseg_dsnet.engine.checkpoint_match.CheckpointMismatchError`
    (naming the first differing keys) instead of leaving random weights.

    Args:
        config (str | Config): Config file or object.
        checkpoint (str, optional): Checkpoint file; None keeps the
            initial (random) weights.
        reparameterize (bool): Fold DESDConv branches and BatchNorms
            (:func:`mmseg_dsnet.models.utils.reparameterize_model`); other
            models get their Conv+BN pairs folded. Default: True.
        device (str): Device to put the model on. Default: ``'cpu'``.
        loaded (dict, optional): ``checkpoint`` loaded already
            (:func:`~mmseg_dsnet.engine.checkpoint_match.read_checkpoint`),
            for a caller that checks it too; read from the file when None.
        training_cfg (dict, optional): The checkpoint's training config
            read already with ``loaded`` (:func:`~mmseg_dsnet.engine.
            checkpoint_match.read_checkpoint_and_training_config`; None
            when it has none); read when not given.

    Returns:
        nn.Module: The segmentor (an mmseg ``EncoderDecoder``) in eval mode,
        with ``cfg`` and ``dataset_meta`` attributes like mmseg's
        ``init_model`` sets.
    """
    import mmseg_dsnet  # noqa: F401  (registers modules, safe loading)
    from mmseg.registry import MODELS

    from mmseg_dsnet.engine.checkpoint_match import load_checkpoint_strictly
    from mmseg_dsnet.engine.preflight import build_scope
    from mmseg_dsnet.models.utils import reparameterize_model

    # mmengine's loader takes a str: a pathlib.Path failed in it with
    # "expected string or bytes-like object".
    if isinstance(checkpoint, os.PathLike):
        checkpoint = os.fspath(checkpoint)
    cfg = load_config(config)
    # ``init_weights`` is never called: weights come from the checkpoint
    # and nothing is downloaded. The scope is set for the build only: the
    # process's default scope (another OpenMMLab library's, or none) is
    # left as it was, so the caller's own registry builds are unchanged.
    with build_scope(cfg):
        model = MODELS.build(cfg.model)
    model.cfg = cfg
    model.dataset_meta = dict(classes=('background', 'lesion'),
                              palette=[[0, 0, 0], [255, 0, 0]])
    if checkpoint:
        # Deployment always needs the whole model: no partial loading.
        ckpt = load_checkpoint_strictly(
            model, checkpoint, getattr(cfg, 'filename', None), hint=None,
            cfg=cfg, loaded=loaded, training_cfg=training_cfg)
        from ..compat import checkpoint_meta
        meta = checkpoint_meta(ckpt)
        if meta.get('dataset_meta'):
            model.dataset_meta = meta['dataset_meta']
    model.eval()
    if reparameterize:
        model = reparameterize_model(model)
    return model.to(device)


def resize_step(pipeline):
    """The first ``Resize`` step of ``pipeline`` that sets a ``scale``, or
    None; steps that are not dicts (a config read from text) are passed
    over."""
    for step in pipeline if isinstance(pipeline, (list, tuple)) else []:
        if isinstance(step, dict) and step.get('type') in (
                'Resize', 'mmcv.Resize') and step.get('scale') is not None:
            return step
    return None


def resize_scale(pipeline):
    """The ``scale`` of :func:`resize_step` (as mmcv writes it:
    ``(width, height)`` or an int), or None."""
    step = resize_step(pipeline)
    return None if step is None else step['scale']


def resize_size(pipeline) -> Optional[Tuple[int, int]]:
    """``(height, width)`` of :func:`resize_scale` (mmcv scales are
    ``(width, height)``; an int is square), or None."""
    scale = resize_scale(pipeline)
    if scale is None:
        return None
    if isinstance(scale, int):
        return scale, scale
    return int(scale[1]), int(scale[0])


def loader_pipeline(cfg, loader: str = 'test_dataloader'):
    """The ``pipeline`` of ``cfg[loader].dataset``, or None where there is
    none (no such loader, or parts that are not dicts: a config read from
    text)."""
    loader_cfg = cfg.get(loader)
    dataset = loader_cfg.get('dataset') if isinstance(loader_cfg,
                                                      dict) else None
    return dataset.get('pipeline') if isinstance(dataset, dict) else None


def input_size_of(cfg: Config) -> Tuple[int, int]:
    """``(height, width)`` the model runs at: the ``Resize`` scale of the
    pipeline its test figures come from, the test loader's (else the
    top-level ``test_pipeline``; mmcv scales are ``(width, height)``), or
    256x256 when the config has none."""
    # The loader's first: a --cfg-options change of it (what tools/test.py
    # scored) left the top-level variable, and so the export, at the old size.
    pipeline = loader_pipeline(cfg) or cfg.get('test_pipeline') or []
    return resize_size(pipeline) or DEFAULT_INPUT_SIZE


@contextlib.contextmanager
def refusing_input_size(shape: Tuple[int, int], name: str,
                        own_size: Tuple[int, ...] = (),
                        running: Optional[Tuple[int, int]] = None):
    """Run the model under it at a ``--shape`` it may not take (UNet's
    downsampling asserts a multiple of 16, pooled downsampling gives an
    empty map below 31 pixels): its failure becomes a :class:`UserError`
    naming the shape and the size to give instead. A failure at the
    config's own size is no fault of the shape, and out of memory is no
    size the model refuses: both pass unchanged.

    Args:
        shape (tuple[int, int]): The asked input size.
        name (str): The config, as the message names it.
        own_size (tuple[int, int]): The config's input size, the size to
            give instead (none known: empty).
        running (tuple[int, int], optional): The size run under it, when
            another than ``shape`` (a second size of the parity check).
    """
    from ..utils.errors import UserError
    from ..utils.memory import is_out_of_memory
    try:
        yield
    except (AssertionError, RuntimeError) as err:
        if tuple(running or shape) == tuple(own_size) or \
                is_out_of_memory(err):
            raise
        first = (str(err).strip().splitlines() or [''])[0]
        own = f'such as its {own_size[0]} {own_size[1]}' \
            if len(own_size) == 2 else 'such as the size it was trained at'
        raise UserError(
            f'--shape {shape[0]} {shape[1]}: the model of {name} cannot run '
            f'at this input size ({type(err).__name__}: {first}); give a '
            f'size it takes, {own}') from err


def no_one_input_size(cfg: Config) -> Optional[str]:
    """Why the network of ``cfg`` runs at no one size that
    :func:`input_size_of` could name, or None when it runs at that size:
    its test pipeline has no ``Resize`` to a scale (each image keeps its own
    size), its test ``Resize`` keeps the aspect ratio (each image gets a
    size of its own within the scale) or its model slides windows over the
    image (the network runs on each window, not on the resized image).
    mmseg's stock configs do both of the last two. A config without a test
    pipeline passes (:func:`input_size_of` then names 256x256).

    Args:
        cfg (Config): The model's config.

    Returns:
        str | None: The setting, as a message names it.
    """
    pipeline = loader_pipeline(cfg) or cfg.get('test_pipeline') or []
    step = resize_step(pipeline)
    # A pipeline without a scale leaves each image at its own size (the
    # data preprocessor's ``size`` only pads up to it), so no size counted
    # or timed is the one the config runs the model at.
    if step is None and pipeline and all(
            isinstance(s, dict) for s in pipeline):
        return ('its test pipeline has no Resize to a scale: each image '
                'runs at its own size')
    if step is not None and step.get('keep_ratio'):
        return (f"its test Resize keeps the aspect ratio (scale="
                f"{step['scale']}, keep_ratio=True): each image is resized "
                'to a size of its own within that scale')
    test_cfg = (cfg.get('model') or {}).get('test_cfg') or {}
    if isinstance(test_cfg, dict) and test_cfg.get('mode',
                                                   'whole') != 'whole':
        return (f"model.test_cfg.mode is '{test_cfg['mode']}' (windows of "
                f"{test_cfg.get('crop_size')}, stride "
                f"{test_cfg.get('stride')}): the network runs once per "
                'window, not on the resized image')
    return None


def check_runs_as_tested(cfg: Config) -> None:
    """Refuse a config whose test-time settings the deployed network (the
    ONNX export, ``infer.py``'s backends) would not follow: it runs the
    whole image once, resized to the test ``Resize`` scale with the aspect
    ratio not kept. A config that keeps the aspect ratio, or slides windows
    over the image (``model.test_cfg.mode='slide'``, mmseg's stock UNet
    setting), was deployed without a word: the export's parity check
    compared the network with itself and passed while ``tools/test.py``
    scored the model otherwise (the released DSNet under 128 px windows:
    lesion IoU 32.0 against 86.0 whole), so no test figure described it.

    Args:
        cfg (Config): The model's config.

    Raises:
        UserError: Naming each setting and what to give instead.
    """
    from ..utils.errors import UserError
    problems = []
    pipeline = loader_pipeline(cfg) or cfg.get('test_pipeline') or []
    step = resize_step(pipeline)
    steps = pipeline_steps_not_followed(pipeline)
    if steps:
        problems.append(
            'its test pipeline has ' + ', '.join(steps) + ', which the '
            'deployed network does not apply (it reads the image as '
            "LoadImageFromFile does and resizes it bilinearly to the "
            "Resize scale, nothing else)")
    if step is not None and step.get('keep_ratio'):
        problems.append(
            f"its test pipeline's Resize keeps the aspect ratio "
            f"(scale={step['scale']}, keep_ratio=True), while the deployed "
            'network resizes every image to exactly that size')
    test_cfg = (cfg.get('model') or {}).get('test_cfg') or {}
    mode = test_cfg.get('mode', 'whole') if isinstance(test_cfg,
                                                       dict) else 'whole'
    if mode != 'whole':
        problems.append(f"model.test_cfg.mode is '{mode}', while the "
                        'deployed network runs the whole image once')
    if problems:
        name = config_name(cfg, '(given as an object)')
        pipeline_advice = (
            'a test pipeline of LoadImageFromFile, Resize, LoadAnnotations '
            'and PackSegInputs only, ' if steps else '')
        raise UserError(
            f'config {name} is tested otherwise than the deployed network '
            '(the ONNX export, infer.py) runs it: ' + '; '.join(problems)
            + '; the masks would differ from those tools/test.py scores for '
            f"it; give a config with {pipeline_advice}keep_ratio=False and "
            "test_cfg mode='whole' (as "
            'configs/_base_/datasets/isic_256x256.py and our model configs)')


# The test pipeline steps the deployed network reproduces, with the
# arguments (and values) that keep it so; None: any value.
FOLLOWED_STEPS = {
    # to_float32: the resize would not round to 8 bits, as the network's
    # input (to_model_input) is.
    'LoadImageFromFile': dict(color_type=('color', ),
                              imdecode_backend=('cv2', ),
                              to_float32=(False, ),
                              ignore_empty=None, backend_args=None,
                              file_client_args=None),
    'Resize': dict(scale=None, keep_ratio=None,
                   interpolation=('bilinear', ), backend=('cv2', ),
                   clip_object_border=None),
    'LoadAnnotations': None,
    'PackSegInputs': None,
}


def pipeline_steps_not_followed(pipeline) -> list:
    """The steps of a test pipeline the deployed network would not follow,
    each as ``'<type>'`` or ``'<type>(<arg>=<value>)'``: a transform other
    than loading, resizing and packing (``AdjustGamma``, ``CLAHE`` ...:
    test.py applied it, infer.py and the ONNX export left it out and their
    masks differed, exit 0), a load or resize of another kind (grayscale,
    another interpolation), or a ``Resize`` without a ``scale``
    (``scale_factor``: a size per image). Steps that are not dicts (a
    config read from text) are passed over.

    Args:
        pipeline (list): A test pipeline.

    Returns:
        list[str]: The steps, in pipeline order; empty when all are
        followed.
    """
    found = []
    for item in pipeline if isinstance(pipeline, (list, tuple)) else []:
        if not isinstance(item, dict):
            continue
        kind = str(item.get('type', '')).split('.')[-1]
        if kind not in FOLLOWED_STEPS:
            found.append(str(item.get('type')))
            continue
        if kind == 'Resize' and item.get('scale') is None:
            found.append('Resize without a scale')
            continue
        allowed = FOLLOWED_STEPS[kind]
        if allowed is None:
            continue
        for key, value in item.items():
            if key == 'type':
                continue
            if key not in allowed or (allowed[key] is not None
                                      and value not in allowed[key]):
                found.append(f'{kind}({key}={value!r})')
    return found


def threshold_of(model: nn.Module, default: float = 0.5) -> float:
    """The decode head's sigmoid threshold (binary heads), else
    ``default``."""
    head = getattr(model, 'decode_head', None)
    value = getattr(head, 'threshold', None)
    return float(value) if value is not None else default


class DeployableSegmentor(nn.Module):
    """Raw RGB pixels in, logits at the input size out.

    Args:
        segmentor (nn.Module): An mmseg segmentor (``EncoderDecoder``) in
            eval mode (one in training mode is refused when run); it is
            called with ``mode='tensor'``.
        mean (Sequence[float]): Per-channel mean of the config's
            ``data_preprocessor`` (in the model's channel order).
        std (Sequence[float]): Per-channel std, likewise.
        model_wants_rgb (bool): True when the model was trained on RGB
            (``bgr_to_rgb=True`` with mmseg's BGR loading, as our configs);
            False flips the RGB input to BGR first.
        align_corners (bool): ``align_corners`` of the final resize.
    """

    def __init__(self, segmentor: nn.Module, mean, std,
                 model_wants_rgb: bool = True, align_corners: bool = False):
        super().__init__()
        self.segmentor = segmentor
        self.register_buffer(
            'mean', torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer(
            'std', torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.model_wants_rgb = model_wants_rgb
        self.align_corners = align_corners

    @classmethod
    def from_segmentor(cls, segmentor: nn.Module,
                       cfg: Optional[Config] = None) -> 'DeployableSegmentor':
        """Wrap ``segmentor`` with the preprocessing of ``cfg`` (default:
        ``segmentor.cfg``)."""
        cfg = cfg if cfg is not None else segmentor.cfg
        check_runs_as_tested(cfg)
        pre = cfg.model.get('data_preprocessor') or {}
        mean = pre.get('mean') or [0.0, 0.0, 0.0]
        std = pre.get('std') or [1.0, 1.0, 1.0]
        # mmseg loads BGR; a channel flip in the preprocessor makes it RGB.
        wants_rgb = bool(pre.get('bgr_to_rgb') or pre.get('rgb_to_bgr'))
        head = getattr(segmentor, 'decode_head', None)
        return cls(segmentor, mean, std, wants_rgb,
                   bool(getattr(head, 'align_corners', False)))

    def forward(self, images: Tensor) -> Tensor:
        if self.segmentor.training:
            # A segmentor built with MODELS.build and loaded with
            # load_checkpoint is in training mode: its BatchNorms used the
            # batch's statistics, and 30 % of the released model's mask
            # pixels flipped, without an error.
            from ..utils.errors import UserError
            raise UserError(
                'DeployableSegmentor: the segmentor is in training mode, in '
                "which BatchNorm uses the batch's statistics and the logits "
                'are not those of the trained model; call segmentor.eval() '
                '(as mmseg_dsnet.deploy.build_segmentor and init_model '
                'return it) before running it')
        x = images if self.model_wants_rgb else images.flip(1)
        x = (x - self.mean) / self.std
        logits = self.segmentor(x, mode='tensor')
        with warnings.catch_warnings():
            # Under tracing the size comparison is a constant: the head's
            # output stride is fixed, so the same branch holds for all
            # sizes.
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            if logits.shape[-2:] != images.shape[-2:]:
                logits = F.interpolate(
                    logits,
                    size=images.shape[-2:],
                    mode='bilinear',
                    align_corners=self.align_corners)
        return logits


def build_deployable(config: Union[str, Config],
                     checkpoint: Optional[str] = None,
                     reparameterize: bool = True) -> DeployableSegmentor:
    """:func:`build_segmentor` wrapped in :class:`DeployableSegmentor`."""
    cfg = load_config(config)
    segmentor = build_segmentor(cfg, checkpoint, reparameterize)
    return DeployableSegmentor.from_segmentor(segmentor, cfg).eval()
