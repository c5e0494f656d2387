"""How fast an ONNX graph could run on this CPU at best: a roofline floor.

Every node needs at least the time of its arithmetic at the machine's peak
(``2 x MACs / peak FLOP/s``) and at least the time to read its inputs and
write its outputs at the machine's streaming bandwidth; it cannot beat the
larger of the two. Summed over the nodes this is the floor for any runtime
that executes the graph node by node (as onnxruntime does, apart from
fusing an activation into a convolution). The compute term alone is the
floor even for a runtime that fused everything into one pass.

Tensor sizes come from running the graph once (``probe_tensors``), so the
dynamic ``Resize`` sizes are resolved.
"""
import time
from typing import Dict, List, Tuple

import numpy as np

from .onnx_optimize import probe_tensors

# Nodes that read only a shape or give a new view of the same memory.
_VIEW_OPS = {'Shape', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze',
             'Identity'}


def conv_macs(node, values: Dict[str, np.ndarray]) -> int:
    """Multiply-adds of a ``Conv`` node: output elements x (input channels
    per group) x kernel area."""
    weight = values[node.input[1]]
    output = values[node.output[0]]
    return int(output.size * int(np.prod(weight.shape[1:])))


def node_costs(model, input_shape: Tuple[int, ...]) -> List[Dict]:
    """MACs and bytes moved by every node of ``model`` for one input.

    Args:
        model (onnx.ModelProto): A model with one float32 input.
        input_shape (tuple): Input shape, e.g. ``(1, 3, 256, 256)``.

    Returns:
        list[dict]: Per node ``name``, ``op``, ``macs`` and ``bytes``
        (inputs, weights included, plus outputs). View-like nodes
        (``Reshape``, ``Shape``, ...) and a ``Relu`` fused into the
        convolution before it count no bytes; the small integer
        tensors of shape arithmetic are counted, they are tiny.
    """
    from onnx import numpy_helper
    values = {
        init.name: numpy_helper.to_array(init)
        for init in model.graph.initializer
    }
    names = [out for node in model.graph.node for out in node.output]
    values.update(probe_tensors(model, names, input_shape))
    values[model.graph.input[0].name] = np.zeros(input_shape, np.float32)
    conv_outputs = {
        node.output[0]
        for node in model.graph.node if node.op_type == 'Conv'
    }
    readers: Dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    costs = []
    for node in model.graph.node:
        if node.op_type == 'Constant':
            continue
        # A ReLU that alone reads a convolution's output runs inside that
        # convolution (onnxruntime fuses them): no pass of its own.
        fused = (node.op_type == 'Relu' and node.input[0] in conv_outputs
                 and readers[node.input[0]] == 1)
        moved = 0 if fused or node.op_type in _VIEW_OPS else sum(
            values[n].nbytes for n in list(node.input) + list(node.output)
            if n in values)
        macs = conv_macs(node, values) if node.op_type == 'Conv' else 0
        costs.append(dict(name=node.name, op=node.op_type, macs=macs,
                          bytes=int(moved)))
    return costs


def stream_bandwidth(num_elements: int = 16 * 256 * 256,
                     runs: int = 20) -> float:
    """Best bytes/s of ``c = a + b`` on float32 arrays of ``num_elements``
    (two reads and one write per element), one thread: the speed of an
    element-wise pass over a tensor of that size."""
    a = np.random.default_rng(0).random(num_elements, dtype=np.float32)
    b, c = a.copy(), np.empty_like(a)
    np.add(a, b, out=c)
    best = float('inf')
    for _ in range(runs):
        tick = time.perf_counter()
        np.add(a, b, out=c)
        best = min(best, time.perf_counter() - tick)
    return 3 * a.nbytes / best


def roofline_floor(costs: List[Dict], peak_gflops: float,
                   bytes_per_s: float) -> Dict:
    """Floor of the run time in milliseconds.

    Args:
        costs (list[dict]): From :func:`node_costs`.
        peak_gflops (float): Measured peak, FLOP/s / 1e9 (2 per MAC).
        bytes_per_s (float): Measured streaming bandwidth.

    Returns:
        dict: ``node_by_node_ms`` (sum of each node's larger bound),
        ``compute_ms`` (arithmetic alone at peak: the floor even with
        every node fused), ``memory_ms`` (traffic alone), ``by_op`` (the
        node-by-node floor summed per operator type) and the inputs.
    """
    by_op: Dict[str, float] = {}
    total = compute = memory = 0.0
    for cost in costs:
        compute_s = 2 * cost['macs'] / (peak_gflops * 1e9)
        memory_s = cost['bytes'] / bytes_per_s
        floor = max(compute_s, memory_s)
        total, compute, memory = (total + floor, compute + compute_s,
                                  memory + memory_s)
        by_op[cost['op']] = by_op.get(cost['op'], 0.0) + floor * 1e3
    return dict(node_by_node_ms=total * 1e3, compute_ms=compute * 1e3,
                memory_ms=memory * 1e3,
                by_op={k: v for k, v in sorted(by_op.items(),
                                               key=lambda kv: -kv[1])},
                peak_gflops=peak_gflops, bandwidth_gb_s=bytes_per_s / 1e9,
                macs=sum(c['macs'] for c in costs),
                bytes=sum(c['bytes'] for c in costs))
