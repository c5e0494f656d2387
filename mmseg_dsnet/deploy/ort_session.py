"""onnxruntime sessions for exported models, with errors that name the
file."""
import os.path as osp
from typing import Optional

import numpy as np

from ..engine.cli_errors import UserError


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


def run_ort(session, batch: np.ndarray) -> np.ndarray:
    """The first output of ``session`` for one input batch."""
    return session.run(None, {session.get_inputs()[0].name: batch})[0]
