"""Deployment and inference helpers: ONNX export with parity checks,
lesion-mask inference (PyTorch or onnxruntime) and robust image reading.

Not imported by ``import mmseg_dsnet``: tools import it explicitly, and
onnx / onnxruntime are imported only when a function needs them.
"""
from .deploy_model import (DeployableSegmentor, build_deployable,
                           build_segmentor, input_size_of, threshold_of)
from .image_io import (DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageReadError,
                       InputList, LoadedImage, find_images, read_image)
from .lesion_inferencer import (InferenceSummary, LesionInferencer,
                                OnnxRuntimeBackend, OutputDirError,
                                TorchBackend, make_backend,
                                prepare_output_dir, run_inference)
from .masks import decision_map, draw_overlay, resize_to_mask
from .onnx_export import (check_parity, export_and_check, export_network,
                          export_onnx, quantize_int8)

__all__ = [
    'DeployableSegmentor', 'build_deployable', 'build_segmentor',
    'input_size_of', 'threshold_of', 'DEFAULT_MAX_PIXELS',
    'IMAGE_EXTENSIONS', 'ImageReadError', 'InputList', 'LoadedImage',
    'find_images', 'read_image', 'InferenceSummary', 'LesionInferencer',
    'OnnxRuntimeBackend', 'OutputDirError', 'TorchBackend', 'make_backend',
    'prepare_output_dir', 'run_inference', 'decision_map', 'draw_overlay',
    'resize_to_mask', 'check_parity', 'export_and_check', 'export_network',
    'export_onnx', 'quantize_int8'
]
