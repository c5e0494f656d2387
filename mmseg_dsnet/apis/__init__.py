"""Inference: lesion masks for image files with a PyTorch or onnxruntime
backend, and the released weights.

* :mod:`.inference_backends`: :class:`TorchBackend`,
  :class:`OnnxRuntimeBackend`, :func:`make_backend`;
* :mod:`.lesion_inferencer`: :class:`LesionInferencer` and
  :func:`run_inference` (masks at the original size, overlays);
* :mod:`.masks`: resizing decision maps to masks, overlays, image writing;
* :mod:`.released_model`: the weights shipped in ``checkpoints/``.

Export, parity checks and int8 live in :mod:`mmseg_dsnet.deploy`; image
reading in :mod:`mmseg_dsnet.image_io`. Not imported by
``import mmseg_dsnet``; onnx / onnxruntime are imported only when needed.
"""
from ..deploy.deployable import build_segmentor
from .inference_backends import (OnnxRuntimeBackend, TorchBackend,
                                 make_backend)
from .lesion_inferencer import (ImageArrayError, InferenceSummary,
                                LesionInferencer, OutputDirError,
                                prepare_output_dir, remove_empty_output_dirs,
                                run_inference)
from .masks import draw_overlay, resize_to_mask, write_image

__all__ = [
    'build_segmentor', 'OnnxRuntimeBackend', 'TorchBackend', 'make_backend',
    'ImageArrayError', 'InferenceSummary', 'LesionInferencer', 'OutputDirError',
    'prepare_output_dir', 'remove_empty_output_dirs', 'run_inference',
    'draw_overlay', 'resize_to_mask', 'write_image'
]
