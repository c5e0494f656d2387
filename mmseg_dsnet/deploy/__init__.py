"""Deployment: from a config and checkpoint to a checked ONNX file.

* :mod:`.deployable`: the deployed network (:class:`DeployableSegmentor`:
  RGB 0..255 in, logits out) and its input format;
* :mod:`.onnx_export`: export with a parity check (:func:`export_and_check`);
* :mod:`.parity`: the check itself (onnxruntime vs PyTorch in float32 and
  float64);
* :mod:`.deploy_checkpoint`: a checked deploy checkpoint and config of a
  re-parameterisable model;
* :mod:`.int8`: static int8 quantization and its mask agreement;
* :mod:`.graph_rewrites`: exact graph rewrites for onnxruntime's CPU provider;
* :mod:`.ort_session`: onnxruntime sessions with errors that name the file.

onnx and onnxruntime are imported only when a function needs them.
"""
from .deploy_checkpoint import ParityError, write_deploy_checkpoint
from .deployable import (DeployableSegmentor, build_deployable,
                         build_segmentor, input_size_of, threshold_of,
                         to_model_input)
from .int8 import compare_int8, quantize_int8
from .onnx_export import export_and_check, export_network, export_onnx
from .ort_session import OnnxModelError, ort_session
from .parity import check_parity

__all__ = [
    'DeployableSegmentor', 'build_deployable', 'build_segmentor',
    'input_size_of', 'threshold_of', 'to_model_input', 'compare_int8',
    'quantize_int8', 'export_and_check', 'export_network', 'export_onnx',
    'OnnxModelError', 'ort_session', 'check_parity', 'ParityError',
    'write_deploy_checkpoint'
]
