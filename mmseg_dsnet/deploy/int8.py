"""Static int8 quantization of an exported model with onnxruntime, and how
far its masks move from the float model's."""
import math
import os
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..models.utils.lesion_logit import decision_map
from ..utils.fileio import atomic_write, refuse_existing
from .deployable import META_PRECISION
from .graph_rewrites import node_attributes
from .ort_session import ort_session, run_ort
from .parity import largest

# int8 activation ranges: this percentile of the calibration activations.
CALIB_PERCENTILE = 99.99


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
      :mod:`.graph_rewrites` made from channel reductions: too little work
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

    refuse_existing(int8_file, overwrite)
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

        def write(temp):
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
                # Convolutions carry nearly all the work; quantizing the
                # gate's element-wise ops and resizes only adds Q/DQ pairs.
                op_types_to_quantize=['Conv'],
                nodes_to_exclude=excluded)
            # The float model's metadata are copied, its weights record
            # included: without this the file read as that model's.
            import onnx
            model = onnx.load(temp)
            props = {entry.key: entry.value
                     for entry in model.metadata_props}
            props[META_PRECISION] = 'int8'
            onnx.helper.set_model_props(model, props)
            onnx.save(model, temp)

        atomic_write(write, int8_file, overwrite)
    return int8_file


def _pooled_iou(pred: np.ndarray, truth: np.ndarray) -> Tuple[int, int]:
    valid = truth != 255
    pred, truth = pred[valid], truth[valid] > 0
    return int((pred & truth).sum()), int((pred | truth).sum())


def compare_int8(fp32_session, int8_session, batches, threshold: float
                 ) -> Dict:
    """Mask agreement between the fp32 and int8 models (and, where ground
    truth is given, pooled lesion IoU of both at the model size).

    The lesion-mask IoU of the two models is given pooled over the images
    (large lesions weigh most) and per image (every image alike; an image
    where neither model sees a lesion counts 100 %).

    Returns:
        dict: ``pixel_agreement`` (%), ``mask_iou_fp32_vs_int8`` (pooled,
        %), ``mean_image_mask_iou`` and ``worst_image_mask_iou`` (per
        image, %), ``max_abs_logit_diff`` and, with ground truth,
        ``iou_fp32``, ``iou_int8`` and ``iou_drop`` (points).
    """
    agree = total = inter = union = 0
    gt = dict(fp32=[0, 0], int8=[0, 0])
    diffs, per_image = [], []
    with_truth = 0
    for _, batch, truths in batches:
        out32 = run_ort(fp32_session, batch)
        out8 = run_ort(int8_session, batch)
        diffs.append(float(np.abs(out32 - out8).max()))
        for index in range(batch.shape[0]):
            m32 = decision_map(out32[index], threshold) > 0
            m8 = decision_map(out8[index], threshold) > 0
            agree += int((m32 == m8).sum())
            total += m32.size
            both, either = int((m32 & m8).sum()), int((m32 | m8).sum())
            inter += both
            union += either
            per_image.append(100.0 * both / either if either else 100.0)
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
        mean_image_mask_iou=float(np.mean(per_image)) if per_image else 100.0,
        worst_image_mask_iou=min(per_image, default=100.0),
        # NaN when either model gave a NaN logit (max() would drop it).
        max_abs_logit_diff=largest(diffs))
    if with_truth:
        iou32 = 100.0 * gt['fp32'][0] / max(gt['fp32'][1], 1)
        iou8 = 100.0 * gt['int8'][0] / max(gt['int8'][1], 1)
        result.update(images_with_ground_truth=with_truth, iou_fp32=iou32,
                      iou_int8=iou8, iou_drop=iou32 - iou8)
    return result


def int8_rejection(figures: Dict, min_mask_iou: float) -> Optional[str]:
    """Why an int8 model measured by :func:`compare_int8` is not good
    enough to ship, or None when it is.

    Both lesion-mask IoUs with the float model must be at least
    ``min_mask_iou``: the pooled one alone is filled by the large lesions
    (on the ISIC 2017 test set, an int8 model that erased the lesions of
    the 40 % of images with the smallest ones kept 92 % pooled IoU), the
    mean per image counts every image alike. Every logit must be finite.

    Args:
        figures (dict): From :func:`compare_int8`.
        min_mask_iou (float): Least IoU (%), pooled and mean per image.
    """
    if not math.isfinite(figures['max_abs_logit_diff']):
        return 'it gives NaN or infinite logits'
    low = [f'{what} {figures[key]:.2f} %' for what, key in (
        ('pooled IoU', 'mask_iou_fp32_vs_int8'),
        ('mean IoU per image', 'mean_image_mask_iou'))
        if figures[key] < min_mask_iou]
    if low:
        return (f'its masks overlap the float model\'s by '
                f'{" and ".join(low)}, less than the {min_mask_iou:g} % '
                'asked')
    return None
