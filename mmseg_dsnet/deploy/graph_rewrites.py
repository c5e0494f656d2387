"""Exact graph rewrites that make an exported model faster on
onnxruntime's CPU provider.

Found by profiling DSNet at 1 thread (``tools/analysis_tools/
cpu_latency.py --profile``): onnxruntime reduces over the channel axis of
an NCHW tensor slowly, and pads a convolution with one output channel to
eight (its NCHWc layout), so DSNet's dynamic-gate bridges cost more than
all its DESDConv blocks. Each rewrite computes the same function (only the
order of floating-point additions may change; the export's parity check
runs on the rewritten graph):

* ``ReduceMean(x, axes=[1], keepdims=1)`` -> 1x1 ``Conv`` with weights
  ``1 / C`` (runs in the convolution's fast layout);
* ``ReduceMax(x, axes=[1], keepdims=1)`` -> ``Split`` into channels and one
  element-wise ``Max``;
* ``Conv`` with one output channel, ``C > 1`` input channels, a kernel
  larger than 3x3 and no groups -> depthwise ``Conv`` (``C`` groups) and a
  1x1 ``Conv`` of ones that sums the channels (and adds the bias).
"""
from typing import Dict, Sequence

import numpy as np


# Assumed when a model names no opset of the default domain.
DEFAULT_ONNX_OPSET = 17


def node_attributes(node) -> Dict:
    """The attributes of an ONNX node as a ``name: value`` dict."""
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def probe_tensors(model, names: Sequence[str],
                  probe_shape=(1, 3, 64, 64)) -> Dict[str, np.ndarray]:
    """Values of the named tensors, found by running the model once (with
    graph optimisations off, so every node runs as written) on a zero
    input of ``probe_shape``. Shape inference cannot see through the
    dynamic ``Resize`` sizes; running can."""
    import onnx
    import onnxruntime as ort
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    wanted = [n for n in dict.fromkeys(names) if n and n not in existing]
    for name in wanted:
        probe.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = \
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options,
                                   providers=['CPUExecutionProvider'])
    feed = {
        session.get_inputs()[0].name:
        np.zeros(probe_shape, dtype=np.float32)
    }
    outputs = [o.name for o in session.get_outputs()]
    values = session.run(outputs, feed)
    wanted = set(names)
    return {
        name: value
        for name, value in zip(outputs, values) if name in wanted
    }


def _channel_counts(model, names: Sequence[str],
                    probe_shape=(1, 3, 64, 64)) -> Dict[str, int]:
    """Channels (dim 1) of the named tensors."""
    return {
        name: int(value.shape[1])
        for name, value in probe_tensors(model, names, probe_shape).items()
        if value.ndim >= 2
    }


def optimize_for_cpu(model, probe_shape=(1, 3, 64, 64)):
    """Apply the rewrites in place.

    Args:
        model (onnx.ModelProto): An NCHW model with one float input.
        probe_shape (tuple): Input shape used to learn channel counts.

    Returns:
        dict: How many nodes of each kind were rewritten.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    # The default domain's opset: operator signatures depend on it.
    opset = max((o.version for o in model.opset_import
                 if o.domain in ('', 'ai.onnx')), default=DEFAULT_ONNX_OPSET)
    initializers = {init.name: init for init in graph.initializer}
    reductions = [
        node for node in graph.node
        if node.op_type in ('ReduceMean', 'ReduceMax')
        and list(node_attributes(node).get('axes', [])) == [1]
        and node_attributes(node).get('keepdims', 1) == 1
        and len(node.input) == 1
    ]
    channels = _channel_counts(model, [n.input[0] for n in reductions],
                               probe_shape) if reductions else {}
    reduction_ids = {id(node) for node in reductions}
    counts = dict(channel_mean=0, channel_max=0, single_output_conv=0)
    rewritten = []
    for node in graph.node:
        attrs = node_attributes(node)
        if id(node) in reduction_ids and channels.get(node.input[0], 0) > 1:
            count = channels[node.input[0]]
            if node.op_type == 'ReduceMean':
                weight = numpy_helper.from_array(
                    np.full((1, count, 1, 1), 1.0 / count, np.float32),
                    f'{node.output[0]}/mean_weight')
                graph.initializer.append(weight)
                rewritten.append(
                    helper.make_node('Conv', [node.input[0], weight.name],
                                     list(node.output),
                                     name=f'{node.name}/cpu_channel_mean'))
                counts['channel_mean'] += 1
            else:
                parts = [f'{node.output[0]}/channel{i}' for i in range(count)]
                if opset >= 13:
                    split = numpy_helper.from_array(
                        np.ones(count, np.int64), f'{node.output[0]}/split')
                    graph.initializer.append(split)
                    split_node = helper.make_node(
                        'Split', [node.input[0], split.name], parts, axis=1,
                        name=f'{node.name}/cpu_split')
                else:
                    # Before opset 13 the sizes are an attribute: as an
                    # input the graph failed onnx's checker (a traceback).
                    split_node = helper.make_node(
                        'Split', [node.input[0]], parts, axis=1,
                        split=[1] * count, name=f'{node.name}/cpu_split')
                rewritten.append(split_node)
                rewritten.append(
                    helper.make_node('Max', parts, list(node.output),
                                     name=f'{node.name}/cpu_max'))
                counts['channel_max'] += 1
            continue
        weight = (initializers.get(node.input[1])
                  if node.op_type == 'Conv' and len(node.input) > 1 else None)
        if weight is not None and attrs.get('group', 1) == 1:
            kernel = numpy_helper.to_array(weight)
            if (kernel.ndim == 4 and kernel.shape[0] == 1
                    and kernel.shape[1] > 1 and min(kernel.shape[2:]) > 3):
                inputs = kernel.shape[1]
                depthwise = numpy_helper.from_array(
                    kernel.reshape(inputs, 1, *kernel.shape[2:]).copy(),
                    f'{node.output[0]}/depthwise_weight')
                ones = numpy_helper.from_array(
                    np.ones((1, inputs, 1, 1), np.float32),
                    f'{node.output[0]}/sum_weight')
                graph.initializer.extend([depthwise, ones])
                middle = f'{node.output[0]}/per_channel'
                conv_attrs = {k: v for k, v in attrs.items() if k != 'group'}
                rewritten.append(
                    helper.make_node('Conv', [node.input[0], depthwise.name],
                                     [middle], group=inputs,
                                     name=f'{node.name}/cpu_depthwise',
                                     **conv_attrs))
                sum_inputs = [middle, ones.name] + list(node.input[2:])
                rewritten.append(
                    helper.make_node('Conv', sum_inputs, list(node.output),
                                     name=f'{node.name}/cpu_channel_sum'))
                counts['single_output_conv'] += 1
                continue
        rewritten.append(node)
    del graph.node[:]
    graph.node.extend(rewritten)
    used = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    return counts
