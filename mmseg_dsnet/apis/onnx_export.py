"""Export a segmentor to ONNX and prove the file computes the same thing.

The exported graph is :class:`~.deploy_model.DeployableSegmentor` of the
re-parameterised model (DESDConv branches folded, BatchNorm folded):

* input ``image``: float32 ``(N, 3, H, W)``, **RGB**, pixel values 0..255
  (mean/std normalisation and channel order are inside the graph);
* output ``logits``: float32 ``(N, C, H, W)`` at the input size
  (``C = 1``: lesion logit, lesion where ``sigmoid > threshold``;
  ``C = 2``: background/lesion logits, argmax);
* batch, height and width are dynamic. DSNet, EGE-UNet and MALUNet accept
  any size; multiples of 32 (DSNet's deepest stride) keep every level an
  exact 2x of the next and are what we check. mmseg's UNet and SegFormer
  trace their sizes as constants: export them with ``dynamic_size=False``
  (only the batch is dynamic); the check at a second size catches this.
* opset 17 by default (the TorchScript exporter, ``dynamo=False``: it
  keeps dynamic sizes without guards and needs no ``torch.export``
  tracing of mmseg's code); onnxruntime >= 1.12 runs it;
* exact CPU rewrites (:mod:`.onnx_optimize`) are applied by default.

The check compares onnxruntime's logits with the model *as trained*
(eval mode, not re-parameterised), so it covers the re-parameterisation and
the export at once.
"""
import copy
import math
import os
import os.path as osp
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .image_io import ImageReadError, find_images, read_image
from .lesion_inferencer import (INPUT_FORMAT, META_INPUT_FORMAT,
                                META_INPUT_SIZE, META_THRESHOLD,
                                to_model_input)
from ..engine.cli_errors import UserError
from .masks import decision_map, default_file_mode
from .onnx_optimize import node_attributes, optimize_for_cpu

DEFAULT_OPSET = 17
DEFAULT_ATOL = 1e-4
# float32 rounding grows with the size of the logits (a trained network's
# reach 10-50): the tolerance is ``atol + rtol * max|logit|``. 3e-4 (0.03 %
# of the largest logit) is twice the largest share seen on the models of
# the repository, trained or not (EGE-UNet trained 30 epochs: 6.4e-4 at
# logits up to 10.5, onnxruntime's fused kernels round differently), and
# far below a real export fault (a wrong weight, a missing op or another
# model move logits by 1e-2 or more).
DEFAULT_RTOL = 3e-4
# Deeper networks may amplify rounding further: differences up to this
# multiple of the measured float32 noise floor (PyTorch float32 vs float64
# on the same inputs) are accepted too, when larger.
NOISE_FACTOR = 4.0
# int8 activation ranges: this percentile of the calibration activations.
CALIB_PERCENTILE = 99.99


def _replace_atomically(temp: str, out_file: str, overwrite: bool) -> None:
    if osp.exists(out_file) and not overwrite:
        os.unlink(temp)
        raise FileExistsError(
            f'{out_file} already exists (use --overwrite to replace it)')
    os.replace(temp, out_file)


def export_network(network,
                   out_file: str,
                   shape: Tuple[int, int] = (256, 256),
                   opset: int = DEFAULT_OPSET,
                   overwrite: bool = False,
                   metadata: Optional[Dict[str, str]] = None,
                   optimize: bool = True,
                   dynamic_size: bool = True) -> Dict[str, int]:
    """Export a :class:`DeployableSegmentor` with dynamic batch and size.

    The file is written to a temporary name next to ``out_file``, checked
    with ``onnx.checker`` and moved into place with ``os.replace``: a
    reader never sees a half-written model.

    Args:
        network (nn.Module): RGB 0..255 in, logits out.
        out_file (str): The ONNX file.
        shape (tuple[int, int]): ``(H, W)`` of the tracing input.
        opset (int): ONNX opset. Default: 17.
        overwrite (bool): Replace an existing ``out_file``.
        metadata (dict[str, str], optional): Stored in ``metadata_props``.
        optimize (bool): Apply the exact CPU rewrites of
            :func:`~.onnx_optimize.optimize_for_cpu`. Default: True.
        dynamic_size (bool): Dynamic height and width (else only the batch
            is dynamic; for models whose trace fixes the size, e.g. mmseg's
            UNet and SegFormer). Default: True.

    Returns:
        dict[str, int]: The rewrites applied, by kind.

    Raises:
        FileExistsError: ``out_file`` exists and ``overwrite`` is False.
    """
    import onnx
    import torch

    if osp.exists(out_file) and not overwrite:
        raise FileExistsError(
            f'{out_file} already exists (use --overwrite to replace it)')
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(
        prefix='.' + osp.basename(out_file) + '.', suffix='.tmp', dir=folder)
    os.close(handle)
    try:
        dummy = torch.rand(1, 3, *shape) * 255
        axes = {0: 'batch', 2: 'height', 3: 'width'} if dynamic_size \
            else {0: 'batch'}
        with torch.no_grad():
            torch.onnx.export(
                network.eval(), (dummy, ),
                temp,
                dynamo=False,
                opset_version=opset,
                input_names=['image'],
                output_names=['logits'],
                dynamic_axes={'image': axes, 'logits': axes},
                do_constant_folding=True)
        proto = onnx.load(temp)
        rewrites = {}
        if optimize:
            rewrites = optimize_for_cpu(proto, (1, 3, *shape))
        for key, value in (metadata or {}).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, str(value)
        proto.doc_string = INPUT_FORMAT
        onnx.checker.check_model(proto)
        onnx.save(proto, temp)
        os.chmod(temp, default_file_mode())
        _replace_atomically(temp, out_file, overwrite)
    finally:
        if osp.exists(temp):
            os.unlink(temp)
    return rewrites


class OnnxModelError(UserError, ValueError):
    """An ONNX file onnxruntime cannot load (truncated, not ONNX, ...)."""


def ort_session(onnx_file: str, num_threads: Optional[int] = None):
    """An onnxruntime CPU session (``num_threads`` intra-op threads).

    Raises:
        OnnxModelError: ``onnx_file`` is missing or cannot be loaded; the
            message names the file and gives onnxruntime's reason in one
            line.
    """
    import onnxruntime as ort
    if not osp.isfile(onnx_file):
        raise OnnxModelError(f'ONNX file {onnx_file} not found')
    options = ort.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(
            onnx_file, options, providers=['CPUExecutionProvider'])
    except Exception as err:  # noqa: BLE001  (onnxruntime's own types)
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise OnnxModelError(
            f'{onnx_file} is not a loadable ONNX model (truncated, not an '
            f'ONNX file, or an unsupported graph): {lines[-1][:300]}'
        ) from None


def _run_ort(session, batch: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def random_inputs(shape: Tuple[int, int], seed: int = 0,
                  dynamic_size: bool = True
                  ) -> List[Tuple[str, np.ndarray]]:
    """Random RGB batches that exercise the dynamic axes: batch 1 and 2 at
    ``shape`` and, with ``dynamic_size``, batch 1 at a second size (other
    multiples of 32)."""
    rng = np.random.default_rng(seed)
    height, width = shape
    other = (height + 64, width - 64 if width > 96 else width + 32)
    cases = [(1, height, width), (2, height, width)]
    if dynamic_size:
        cases.append((1, *other))
    return [(f'random {n}x3x{h}x{w}',
             rng.uniform(0, 255, (n, 3, h, w)).astype(np.float32))
            for n, h, w in cases]


def config_samples(cfg, split: str = 'test', limit: int = 64
                   ) -> Tuple[List[Tuple[str, Optional[str]]], str]:
    """``(image, mask)`` file pairs of the config's ``split`` set.

    Returns:
        tuple: The pairs (``mask`` None when the set has none) and a
        message that says where they come from or why there are none.
    """
    loader = cfg.get(f'{split}_dataloader')
    if not loader:
        return [], f'the config has no {split}_dataloader'
    dataset_cfg = copy.deepcopy(loader['dataset'])
    root = dataset_cfg.get('data_root', '')
    if root and not osp.isdir(root):
        return [], f'{split} data not found at {root}'
    try:
        import mmseg_dsnet  # noqa: F401
        from mmseg.registry import DATASETS
        from mmseg.utils import register_all_modules
        register_all_modules(init_default_scope=True)
        dataset_cfg['lazy_init'] = False
        dataset = DATASETS.build(dataset_cfg)
    except Exception as err:  # noqa: BLE001  (any reason: say it, go on)
        return [], f'cannot build the {split} set at {root}: {err}'
    count = len(dataset) if limit <= 0 else min(limit, len(dataset))
    pairs = []
    for index in range(count):
        info = dataset.get_data_info(index)
        pairs.append((info['img_path'], info.get('seg_map_path')))
    return pairs, f'{count} of {len(dataset)} {split} images of {root}'


def load_batches(pairs: Sequence[Tuple[str, Optional[str]]],
                 shape: Tuple[int, int],
                 batch_size: int = 4):
    """Read images (skipping unreadable ones) into model-size batches.

    Returns:
        list[tuple[str, np.ndarray, list[np.ndarray | None]]]: label,
        ``(n, 3, H, W)`` float32 RGB batch and the ground-truth masks
        (nearest-resized to ``shape``, values 0/1/255) or None.
    """
    batches, images, labels, truths = [], [], [], []
    for image_file, mask_file in pairs:
        try:
            images.append(to_model_input(read_image(image_file).rgb, shape))
        except ImageReadError:
            continue
        labels.append(osp.basename(image_file))
        truth = None
        if mask_file and osp.isfile(mask_file):
            import cv2
            raw = cv2.imread(mask_file, cv2.IMREAD_UNCHANGED)
            if raw is not None:
                truth = cv2.resize(raw, shape[::-1],
                                   interpolation=cv2.INTER_NEAREST)
        truths.append(truth)
        if len(images) == batch_size:
            batches.append((', '.join(labels), np.stack(images), truths))
            images, labels, truths = [], [], []
    if images:
        batches.append((', '.join(labels), np.stack(images), truths))
    return batches


def compare_logits(reference: np.ndarray, candidate: np.ndarray,
                   threshold: float, atol: float,
                   exact: Optional[np.ndarray] = None) -> Dict[str, float]:
    """Logit difference and mask agreement of two ``(N, C, H, W)`` arrays.

    Args:
        reference (np.ndarray): The logits compared against.
        candidate (np.ndarray): The logits checked.
        threshold (float): Sigmoid threshold (1-channel logits).
        atol (float): Decision margin that rounding may flip.
        exact (np.ndarray, optional): float64 logits of the reference
            model; where given, they decide which pixels are borderline.

    Returns:
        dict: ``max_abs_diff``; ``mask_mismatch``, the pixels whose
        lesion/background decision differs; ``mask_mismatch_decisive``,
        those whose exact (else reference) logit is more than ``atol`` away
        from the threshold (a decision that rounding cannot flip); and
        ``pixels``.
    """
    diff = float(np.abs(reference - candidate).max())
    mismatch = decisive = 0
    exact = reference if exact is None else exact
    for ref, cand, ref64 in zip(reference, candidate, exact):
        ref_d, cand_d = decision_map(ref, threshold), decision_map(
            cand, threshold)
        differs = (ref_d > 0) != (cand_d > 0)
        mismatch += int(differs.sum())
        margin = np.abs(decision_map(ref64, threshold))
        decisive += int((differs & (margin > atol)).sum())
    return dict(max_abs_diff=diff, mask_mismatch=mismatch,
                mask_mismatch_decisive=decisive,
                pixels=int(reference.shape[0] * reference.shape[2] *
                           reference.shape[3]))


def parity_tolerance(logit_scale: float, float32_noise: float,
                     atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL,
                     noise_factor: float = NOISE_FACTOR) -> float:
    """The largest logit difference an export may show:
    ``max(atol + rtol * logit_scale, noise_factor * float32_noise)``.

    Args:
        logit_scale (float): Largest ``|logit|`` of the exact (float64)
            reference on the checked inputs.
        float32_noise (float): Largest PyTorch float32 vs float64 logit
            difference on the same inputs.
        atol (float): Absolute part.
        rtol (float): Part relative to the logit scale.
        noise_factor (float): Allowed multiple of the float32 noise (0:
            none).
    """
    return max(atol + rtol * logit_scale, noise_factor * float32_noise)


def check_parity(reference, deployed, session,
                 cases: Sequence[Tuple[str, np.ndarray]],
                 threshold: float,
                 atol: float = DEFAULT_ATOL,
                 noise_factor: float = NOISE_FACTOR,
                 rtol: float = DEFAULT_RTOL) -> Dict:
    """Compare onnxruntime with PyTorch on every case.

    The same model as trained is also run in float64, the exact answer up
    to rounding. Its largest ``|logit|`` sets the scale of the tolerance
    (:func:`parity_tolerance`: float32 rounding is relative), and its
    distance from PyTorch float32 (the *float32 noise floor*) may widen it
    for networks that amplify rounding. The rule for masks: every pixel's
    lesion/background decision must agree, except pixels whose exact logit
    lies within the tolerance of the threshold (a decision rounding can
    flip). Neither figure depends on the exported file, so a wrong export
    cannot widen its own tolerance.

    Args:
        reference (nn.Module): The model as trained (eval mode).
        deployed (nn.Module): The re-parameterised model that was exported.
        session: onnxruntime session of the exported file.
        cases (Sequence[tuple[str, np.ndarray]]): ``(label, batch)``.
        threshold (float): Sigmoid threshold (1-channel models).
        atol (float): Absolute part of the tolerance.
        noise_factor (float): Allowed multiple of the float32 noise floor;
            0 disables the noise-floor rule.
        rtol (float): Part of the tolerance relative to the largest
            ``|logit|``; with ``noise_factor`` 0, 0 gives a strict
            ``atol``.

    Returns:
        dict: per case figures; ``max_abs_diff`` (ONNX vs trained),
        ``logit_scale`` (largest exact ``|logit|``), ``float32_noise``
        (PyTorch float32 vs float64), ``tolerance`` (the limit applied),
        ``within_atol`` (the strict test), mismatching mask pixels and
        ``passed``: within ``tolerance``, no onnxruntime error, and
        identical masks except pixels whose exact logit is within
        ``tolerance`` of the threshold (``mask_mismatch_borderline``).
    """
    import torch
    exact = copy.deepcopy(reference).double()
    rows, outputs = [], []
    for label, batch in cases:
        with torch.no_grad():
            ref = reference(torch.from_numpy(batch)).numpy()
            dep = deployed(torch.from_numpy(batch)).numpy()
            ref64 = exact(torch.from_numpy(batch).double()).numpy()
        row = dict(case=label, shape=list(batch.shape))
        rows.append(row)
        try:
            ort_out = _run_ort(session, batch)
        except Exception as err:  # noqa: BLE001  (report which case)
            row['error'] = (
                f'onnxruntime failed: {str(err).strip().splitlines()[-1]}. '
                'If only other input sizes fail, the traced graph fixed the '
                'size (mmseg UNet/SegFormer do): export with --static-size.')
            continue
        row['float32_noise'] = float(np.abs(ref - ref64).max())
        row['logit_scale'] = float(np.abs(ref64).max())
        row['reparameterized_vs_trained'] = float(np.abs(ref - dep).max())
        row['onnx_vs_reparameterized'] = float(np.abs(dep - ort_out).max())
        outputs.append((row, ref, ref64, ort_out))
    noise = max([r['float32_noise'] for r, *_ in outputs] or [0.0])
    scale = max([r['logit_scale'] for r, *_ in outputs] or [0.0])
    tolerance = parity_tolerance(scale, noise, atol, rtol, noise_factor)
    for row, ref, ref64, ort_out in outputs:
        row['onnx_vs_trained'] = compare_logits(ref, ort_out, threshold,
                                                tolerance, exact=ref64)
    errors = [f'{r["case"]}: {r["error"]}' for r in rows if 'error' in r]
    ok = [row for row, *_ in outputs]
    worst = max([r['onnx_vs_trained']['max_abs_diff'] for r in ok] or
                [float('inf')])
    mismatch = sum(r['onnx_vs_trained']['mask_mismatch'] for r in ok)
    decisive = sum(r['onnx_vs_trained']['mask_mismatch_decisive']
                   for r in ok)
    return dict(
        cases=rows,
        atol=atol,
        rtol=rtol,
        logit_scale=scale,
        float32_noise=noise,
        tolerance=tolerance,
        max_abs_diff=worst,
        within_atol=bool(worst <= atol),
        max_abs_diff_reparameterized_vs_trained=max(
            [r['reparameterized_vs_trained'] for r in ok] or [float('inf')]),
        errors=errors,
        mask_mismatch_pixels=mismatch,
        mask_mismatch_borderline=mismatch - decisive,
        masks_identical=mismatch == 0,
        passed=bool(ok and worst <= tolerance and decisive == 0
                    and not errors))


class _CalibrationReader:
    """Feeds calibration batches to onnxruntime's static quantizer."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]):
        self._items = iter([{input_name: b[i:i + 1]} for b in batches
                            for i in range(b.shape[0])])

    def get_next(self):
        return next(self._items, None)

    def rewind(self):  # pragma: no cover - our calibrators read once
        raise NotImplementedError


def _kept_in_float(onnx_file: str) -> List[str]:
    """Convolutions left in float32 by :func:`quantize_int8`.

    Measured on DSNet with onnxruntime's CPU provider on an AVX2 machine
    (ISIC 2017 test images, see ``docs/deployment.md``):

    * grouped (depthwise) convolutions: int8 has no fast depthwise path
      there (slower than float) and one activation scale per tensor loses
      the per-channel ranges of a depthwise output;
    * the first convolution: it reads the normalised image, whose three
      channels span different ranges; quantizing it cost most accuracy;
    * kernels larger than 3x3 (the gate's 7x7) and the tiny convolutions
      :mod:`.onnx_optimize` made from channel reductions: too little work
      to pay for their quantize/dequantize pairs.
    """
    import onnx
    from onnx import numpy_helper
    model = onnx.load(onnx_file)
    shapes = {
        init.name: numpy_helper.to_array(init).shape
        for init in model.graph.initializer
    }
    convs = [node for node in model.graph.node if node.op_type == 'Conv']
    excluded = [convs[0].name] if convs else []
    for node in convs[1:]:
        kernel = shapes.get(node.input[1], ())
        groups = node_attributes(node).get('group', 1)
        if (groups > 1 or (len(kernel) == 4 and max(kernel[2:]) > 3)
                or node.name.endswith(('/cpu_channel_mean',
                                       '/cpu_channel_sum',
                                       '/cpu_depthwise'))):
            excluded.append(node.name)
    return excluded


def quantize_int8(fp32_file: str, int8_file: str,
                  calibration: Sequence[np.ndarray],
                  overwrite: bool = False) -> str:
    """Static int8 quantization of the dense convolutions with onnxruntime
    (QDQ format, per-channel int8 weights, uint8 activations).

    Activation ranges come from the 99.99th percentile of the calibration
    activations (``CALIB_PERCENTILE``) rather than their min/max: on DSNet
    the min/max ranges, stretched by rare outliers, cost 1.00 lesion-IoU
    point against 0.58 for the percentile (``docs/deployment.md``). The
    convolutions of :func:`_kept_in_float` stay float32.

    Args:
        fp32_file (str): The exported float model.
        int8_file (str): Output file (written atomically).
        calibration (Sequence[np.ndarray]): ``(n, 3, H, W)`` float32 RGB
            batches; a few dozen real images are enough.
        overwrite (bool): Replace an existing ``int8_file``.

    Returns:
        str: ``int8_file``.
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if osp.exists(int8_file) and not overwrite:
        raise FileExistsError(
            f'{int8_file} already exists (use --overwrite to replace it)')
    folder = osp.dirname(osp.abspath(int8_file))
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix='.quant_') as work:
        prepared = osp.join(work, 'prepared.onnx')
        try:
            quant_pre_process(fp32_file, prepared)
        except Exception:  # noqa: BLE001  (symbolic shapes can fail)
            quant_pre_process(fp32_file, prepared, skip_symbolic_shape=True)
        excluded = _kept_in_float(prepared)
        session = ort_session(prepared, 1)
        reader = _CalibrationReader(session.get_inputs()[0].name,
                                    calibration)
        del session
        temp = osp.join(work, 'int8.onnx')
        quantize_static(
            prepared,
            temp,
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile,
            extra_options=dict(CalibPercentile=CALIB_PERCENTILE),
            # Convolutions carry nearly all the work; quantizing the gate's
            # element-wise ops and resizes only adds Q/DQ pairs.
            op_types_to_quantize=['Conv'],
            nodes_to_exclude=excluded)
        os.chmod(temp, default_file_mode())
        _replace_atomically(temp, int8_file, overwrite)
    return int8_file


def _pooled_iou(pred: np.ndarray, truth: np.ndarray) -> Tuple[int, int]:
    valid = truth != 255
    pred, truth = pred[valid], truth[valid] > 0
    return int((pred & truth).sum()), int((pred | truth).sum())


def compare_int8(fp32_session, int8_session, batches, threshold: float
                 ) -> Dict:
    """Mask agreement between the fp32 and int8 models (and, where ground
    truth is given, pooled lesion IoU of both at the model size).

    Returns:
        dict: ``pixel_agreement`` (%), ``mask_iou_fp32_vs_int8`` (%),
        ``max_abs_logit_diff`` and, with ground truth, ``iou_fp32``,
        ``iou_int8`` and ``iou_drop`` (points).
    """
    agree = total = inter = union = 0
    gt = dict(fp32=[0, 0], int8=[0, 0])
    worst = 0.0
    with_truth = 0
    for _, batch, truths in batches:
        out32 = _run_ort(fp32_session, batch)
        out8 = _run_ort(int8_session, batch)
        worst = max(worst, float(np.abs(out32 - out8).max()))
        for index in range(batch.shape[0]):
            m32 = decision_map(out32[index], threshold) > 0
            m8 = decision_map(out8[index], threshold) > 0
            agree += int((m32 == m8).sum())
            total += m32.size
            inter += int((m32 & m8).sum())
            union += int((m32 | m8).sum())
            truth = truths[index] if truths else None
            if truth is not None:
                with_truth += 1
                for key, mask in (('fp32', m32), ('int8', m8)):
                    i, u = _pooled_iou(mask, truth)
                    gt[key][0] += i
                    gt[key][1] += u
    result = dict(
        images=sum(b[1].shape[0] for b in batches),
        pixel_agreement=100.0 * agree / max(total, 1),
        mask_iou_fp32_vs_int8=100.0 * inter / union if union else 100.0,
        max_abs_logit_diff=worst)
    if with_truth:
        iou32 = 100.0 * gt['fp32'][0] / max(gt['fp32'][1], 1)
        iou8 = 100.0 * gt['int8'][0] / max(gt['int8'][1], 1)
        result.update(images_with_ground_truth=with_truth, iou_fp32=iou32,
                      iou_int8=iou8, iou_drop=iou32 - iou8)
    return result


def export_onnx(config,
                checkpoint: Optional[str],
                out_file: str,
                opset: int = DEFAULT_OPSET,
                shape: Tuple[int, int] = (256, 256),
                reparameterize: bool = True,
                overwrite: bool = False,
                optimize: bool = True,
                dynamic_size: bool = True):
    """Build, re-parameterise and export a config's model.

    Returns:
        tuple: ``(reference, deployed, cfg, info)``: the model as trained
        and as exported (both :class:`DeployableSegmentor`), the config
        and a dict describing the file.
    """
    from .deploy_model import (DeployableSegmentor, build_segmentor,
                               input_size_of, load_config, threshold_of)
    from mmseg_dsnet.models.utils import reparameterize_model

    if osp.exists(out_file) and not overwrite:
        raise FileExistsError(
            f'{out_file} already exists (use --overwrite to replace it)')
    cfg = load_config(config)
    trained = build_segmentor(cfg, checkpoint, reparameterize=False)
    reference = DeployableSegmentor.from_segmentor(trained, cfg).eval()
    segmentor = copy.deepcopy(trained)
    if reparameterize:
        segmentor = reparameterize_model(segmentor)
    deployed = DeployableSegmentor.from_segmentor(segmentor, cfg).eval()
    threshold = threshold_of(trained)
    test_size = input_size_of(cfg)
    metadata = {
        META_INPUT_FORMAT: INPUT_FORMAT,
        # A fixed-size graph must be fed its trace size.
        META_INPUT_SIZE: (f'{test_size[0]},{test_size[1]}' if dynamic_size
                          else f'{shape[0]},{shape[1]}'),
        'mmseg_dsnet.dynamic_size': str(bool(dynamic_size)),
        META_THRESHOLD: f'{threshold:g}',
        'mmseg_dsnet.out_channels': str(trained.decode_head.out_channels),
        'mmseg_dsnet.config': str(getattr(cfg, 'filename', '') or ''),
        'mmseg_dsnet.reparameterized': str(bool(reparameterize)),
    }
    rewrites = export_network(deployed, out_file, shape, opset, overwrite,
                              metadata, optimize, dynamic_size)
    params = dict(
        trained=sum(p.numel() for p in trained.parameters()),
        deployed=sum(p.numel() for p in segmentor.parameters()))
    info = dict(onnx_file=out_file, opset=opset, trace_shape=list(shape),
                bytes=osp.getsize(out_file), params=params,
                threshold=threshold, test_size=list(test_size),
                input=INPUT_FORMAT, reparameterized=reparameterize,
                cpu_rewrites=rewrites, dynamic_size=dynamic_size)
    return reference, deployed, cfg, info


def export_and_check(config,
                     checkpoint: Optional[str],
                     out_file: str,
                     opset: int = DEFAULT_OPSET,
                     shape: Tuple[int, int] = (256, 256),
                     reparameterize: bool = True,
                     overwrite: bool = False,
                     int8_file: Optional[str] = None,
                     check_images: Optional[Sequence[str]] = None,
                     num_check_images: int = 64,
                     num_calib_images: int = 32,
                     atol: float = DEFAULT_ATOL,
                     optimize: bool = True,
                     dynamic_size: bool = True,
                     noise_factor: float = NOISE_FACTOR,
                     log: Callable[[str], None] = print,
                     rtol: float = DEFAULT_RTOL) -> Dict:
    """Export, check parity on random and real images, optionally quantize.

    The model is exported to a hidden temporary file next to ``out_file``
    and moved into place only when the parity check passes: a failed
    export leaves no file (nor an int8 model) that looks usable.

    Args:
        config (str | Config): Model config.
        checkpoint (str, optional): Checkpoint (None: random weights).
        out_file (str): The ONNX file.
        opset (int): ONNX opset. Default: 17.
        shape (tuple[int, int]): ``(H, W)`` of tracing and checks.
        reparameterize (bool): Export the re-parameterised form.
        overwrite (bool): Replace existing output files.
        int8_file (str, optional): Also write a static int8 model here.
        check_images (Sequence[str], optional): Files, folders or globs of
            real images for the checks; default: the config's test set
            when its data exists.
        num_check_images (int): Real images checked (<= 0: all).
        num_calib_images (int): Calibration images for int8 (taken from
            the config's training set, else the check images).
        atol (float): Absolute part of the parity tolerance.
        optimize (bool): Apply the exact onnxruntime CPU rewrites.
        dynamic_size (bool): Dynamic height and width (else batch only).
        noise_factor (float): Accept differences up to this multiple of
            the float32 noise floor when larger (0: no such allowance).
        log (callable): Where progress messages go.
        rtol (float): Part of the parity tolerance relative to the largest
            exact ``|logit|`` (see :func:`parity_tolerance`).

    Returns:
        dict: ``export`` (file info), ``parity`` (see
        :func:`check_parity`), ``real_images`` (source), ``int8`` (when
        asked) and ``passed``.
    """
    from mmseg_dsnet.compat import partial_path

    for path in (out_file, int8_file):
        if path and osp.exists(path) and not overwrite:
            raise FileExistsError(
                f'{path} already exists (use --overwrite to replace it)')
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    temp = partial_path(out_file)
    try:
        return _export_check_and_move(
            config, checkpoint, out_file, temp, opset, shape,
            reparameterize, overwrite, int8_file, check_images,
            num_check_images, num_calib_images, atol, optimize,
            dynamic_size, noise_factor, log, rtol)
    finally:
        if osp.exists(temp):
            os.unlink(temp)


def _export_check_and_move(config, checkpoint, out_file, temp, opset, shape,
                           reparameterize, overwrite, int8_file,
                           check_images, num_check_images, num_calib_images,
                           atol, optimize, dynamic_size, noise_factor, log,
                           rtol) -> Dict:
    """:func:`export_and_check` with the model exported to ``temp`` first,
    then moved to ``out_file`` if it passes."""
    reference, deployed, cfg, info = export_onnx(
        config, checkpoint, temp, opset, shape, reparameterize, True,
        optimize, dynamic_size)
    info['onnx_file'] = out_file
    log(f'Exported {out_file} (opset {opset}, {info["bytes"] / 1e6:.2f} MB, '
        f'{info["params"]["deployed"]} parameters after '
        f're-parameterisation, {info["params"]["trained"]} as trained)')
    threshold = info['threshold']
    if check_images:
        found = find_images(check_images)
        limit = len(found.files) if num_check_images <= 0 else \
            num_check_images
        pairs = [(path, None) for path in found.files[:limit]]
        source = f'{len(pairs)} files from {", ".join(check_images)}'
    else:
        pairs, source = config_samples(cfg, 'test', num_check_images)
    real = load_batches(pairs, shape)
    log(f'Real images: {source}' + ('' if real else ' (none usable)'))
    session = ort_session(temp)
    cases = random_inputs(shape, dynamic_size=dynamic_size) + [
        (label, batch) for label, batch, _ in real]
    parity = check_parity(reference, deployed, session, cases, threshold,
                          atol, noise_factor, rtol)
    parity['real_images'] = sum(b.shape[0] for _, b, _ in real)
    result = dict(export=info, parity=parity, real_images=source)
    strict = ('within' if parity['within_atol'] else 'ABOVE')
    log(f'Parity (onnxruntime vs PyTorch as trained, {len(cases)} batches, '
        f'{parity["real_images"]} real images): max |logit diff| '
        f'{parity["max_abs_diff"]:.2e}, {strict} {atol:.0e}; '
        f'largest exact |logit| {parity["logit_scale"]:.3g}; '
        f'PyTorch float32 vs float64 (noise floor) '
        f'{parity["float32_noise"]:.2e}; tolerance applied '
        f'{parity["tolerance"]:.2e} (max({atol:g} + {rtol:g} * |logit|, '
        f'{noise_factor:g} * noise)); re-parameterised vs trained '
        f'{parity["max_abs_diff_reparameterized_vs_trained"]:.2e}; mask '
        f'pixels that differ: {parity["mask_mismatch_pixels"]} '
        f'({parity["mask_mismatch_borderline"]} within the tolerance of the '
        f'threshold) -> {"PASS" if parity["passed"] else "FAIL"}')
    for error in parity['errors']:
        log(f'FAILED {error}')
    passed = parity['passed']
    if not passed:
        log(f'Not writing {out_file}: the exported model failed the check')
        result['passed'] = False
        return result
    os.chmod(temp, default_file_mode())
    _replace_atomically(temp, out_file, overwrite)
    if int8_file:
        calib_pairs, calib_source = config_samples(cfg, 'train',
                                                   num_calib_images)
        calibration = [b for _, b, _ in load_batches(calib_pairs, shape)]
        if not calibration:
            calibration = [b for _, b, _ in real][:max(
                1, math.ceil(num_calib_images / 4))]
            calib_source = ('the check images' if calibration else
                            'random noise (no images found: int8 accuracy '
                            'will be poor)')
        if not calibration:
            calibration = [
                b for _, b in random_inputs(shape, dynamic_size=False)[:2]
            ]
        quantize_int8(out_file, int8_file, calibration, overwrite)
        noise = [(label, b, [None] * b.shape[0])
                 for label, b in random_inputs(shape, dynamic_size=False)]
        int8 = compare_int8(session, ort_session(int8_file), real or noise,
                            threshold)
        int8.update(int8_file=int8_file, calibration=calib_source,
                    evaluated_on=source if real else 'random inputs',
                    bytes=osp.getsize(int8_file))
        result['int8'] = int8
        text = (f'int8 model {int8_file} ({int8["bytes"] / 1e6:.2f} MB, '
                f'calibrated on {calib_source}): mask pixel agreement with '
                f'fp32 {int8["pixel_agreement"]:.2f} %, mask IoU fp32 vs '
                f'int8 {int8["mask_iou_fp32_vs_int8"]:.2f} %')
        if 'iou_drop' in int8:
            text += (f'; lesion IoU vs ground truth fp32 '
                     f'{int8["iou_fp32"]:.2f} -> int8 {int8["iou_int8"]:.2f}'
                     f' (drop {int8["iou_drop"]:.2f} points)')
        log(text)
    result['passed'] = passed
    return result
