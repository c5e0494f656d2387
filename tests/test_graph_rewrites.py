"""Deployment code on small hand-made ONNX graphs: the CPU graph rewrites
compute what the graph did (mutation testing: a depthwise rewrite that
dropped the convolution's bias passed the export tests), int8's float
convolutions, and the onnxruntime backend's metadata."""
import numpy as np
import pytest


def tiny_graph(opset, conv_attrs, bias=0.75):
    """Input (1, 3, H, W) -> channel mean, channel max and a 7x7 conv with
    one output channel and a bias: one node of each rewritten kind."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    kernel = rng.normal(0, 0.2, (1, 3, 7, 7)).astype(np.float32)
    inits = [numpy_helper.from_array(kernel, 'w'),
             numpy_helper.from_array(np.array([bias], np.float32), 'b')]
    nodes = [
        helper.make_node('ReduceMean', ['x'], ['mean'], axes=[1],
                         keepdims=1, name='mean'),
        helper.make_node('ReduceMax', ['x'], ['max'], axes=[1], keepdims=1,
                         name='max'),
        helper.make_node('Conv', ['x', 'w', 'b'], ['conv'], name='gate',
                         **conv_attrs),
    ]
    dims = ['n', 3, 'h', 'w']
    graph = helper.make_graph(
        nodes, 'tiny', [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                                      dims)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                       ['n', 1, 'h', 'w'])
         for name in ('mean', 'max', 'conv')], inits)
    return helper.make_model(graph,
                             opset_imports=[helper.make_opsetid('', opset)])


def run(model, x):
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=['CPUExecutionProvider'])
    return session.run(['mean', 'max', 'conv'], {'x': x})


# 13: the first opset whose Split takes its sizes as an input.
@pytest.mark.parametrize('opset', [11, 13, 17])
@pytest.mark.parametrize('conv_attrs', [
    dict(pads=[3] * 4),
    # MALUNet's shared 7x7 conv is dilated; the depthwise half keeps it.
    dict(pads=[9] * 4, dilations=[3, 3]),
])
def test_rewritten_graph_gives_the_same_outputs(opset, conv_attrs):
    import onnx

    from mmseg_dsnet.deploy.graph_rewrites import optimize_for_cpu
    model = tiny_graph(opset, conv_attrs)
    x = np.random.default_rng(1).normal(0, 1, (2, 3, 20, 24)).astype(
        np.float32)
    before = run(model, x)
    counts = optimize_for_cpu(model)
    onnx.checker.check_model(model)
    assert counts == dict(channel_mean=1, channel_max=1,
                          single_output_conv=1)
    ops = [node.op_type for node in model.graph.node]
    assert 'ReduceMean' not in ops and 'ReduceMax' not in ops
    assert ops.count('Conv') == 3  # mean, depthwise, channel sum
    mean, largest, conv = run(model, x)
    # Known values: numpy's mean and max over channels, and the original
    # graph's convolution (bias included).
    np.testing.assert_allclose(mean, x.mean(1, keepdims=True), atol=1e-6)
    np.testing.assert_array_equal(largest, x.max(1, keepdims=True))
    np.testing.assert_allclose(conv, before[2], atol=1e-5)
    np.testing.assert_allclose(before[0], mean, atol=1e-6)


def test_other_reductions_are_left_as_they_are():
    """Only a mean or max over the channel axis that keeps it is a
    channel reduction: a global mean over (2, 3) and a channel max
    without ``keepdims`` compute what they did (mutation testing: the
    rewrite took them for channel reductions and the tests passed)."""
    from onnx import TensorProto, helper

    from mmseg_dsnet.deploy.graph_rewrites import optimize_for_cpu
    nodes = [
        helper.make_node('ReduceMean', ['x'], ['mean'], axes=[2, 3],
                         keepdims=1, name='pool'),
        helper.make_node('ReduceMax', ['x'], ['max'], axes=[1], keepdims=0,
                         name='flat_max'),
    ]
    graph = helper.make_graph(
        nodes, 'others',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                       ['n', 3, 'h', 'w'])],
        [helper.make_tensor_value_info('mean', TensorProto.FLOAT,
                                       ['n', 3, 1, 1]),
         helper.make_tensor_value_info('max', TensorProto.FLOAT,
                                       ['n', 'h', 'w'])])
    model = helper.make_model(graph,
                              opset_imports=[helper.make_opsetid('', 17)])
    counts = optimize_for_cpu(model)
    assert counts == dict(channel_mean=0, channel_max=0,
                          single_output_conv=0)
    assert [n.op_type for n in model.graph.node] == ['ReduceMean',
                                                     'ReduceMax']
    import onnxruntime as ort
    x = np.random.default_rng(2).normal(0, 1, (2, 3, 5, 4)).astype(
        np.float32)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=['CPUExecutionProvider'])
    mean, largest = session.run(['mean', 'max'], {'x': x})
    np.testing.assert_allclose(mean, x.mean((2, 3), keepdims=True),
                               atol=1e-6)
    np.testing.assert_array_equal(largest, x.max(1))


def test_convolutions_kept_in_float_for_int8(tmp_path):
    """Which convolutions int8 quantization leaves in float32: the first,
    grouped ones (2 groups too), kernels above 3x3 and the rewrites' tiny
    ones; dense 1x1 and 3x3 ones are quantized (mutation testing)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from mmseg_dsnet.deploy.int8 import _kept_in_float
    specs = [  # name, weight shape, group (the second is looked at too)
        ('first', (4, 3, 3, 3), 1), ('two_groups', (4, 2, 3, 3), 2),
        ('pointwise', (4, 4, 1, 1), 1), ('dense3x3', (4, 4, 3, 3), 1),
        ('dense5x5', (4, 4, 5, 5), 1), ('depthwise', (4, 1, 3, 3), 4),
        ('x/cpu_channel_mean', (4, 4, 1, 1), 1)]
    nodes, inits, previous = [], [], 'x'
    for name, shape, group in specs:
        weight = numpy_helper.from_array(np.zeros(shape, np.float32),
                                         f'{name}_w')
        inits.append(weight)
        pad = shape[2] // 2
        nodes.append(helper.make_node('Conv', [previous, weight.name],
                                      [f'{name}_out'], name=name,
                                      group=group, pads=[pad] * 4))
        previous = f'{name}_out'
    graph = helper.make_graph(
        nodes, 'convs',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                       [1, 3, 8, 8])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT,
                                       [1, 4, 8, 8])], inits)
    path = tmp_path / 'convs.onnx'
    onnx.save(helper.make_model(graph), str(path))
    assert _kept_in_float(str(path)) == [
        'first', 'two_groups', 'dense5x5', 'depthwise', 'x/cpu_channel_mean']


def test_onnx_backend_reads_size_and_threshold_from_the_metadata(tmp_path):
    """An export's input size and threshold come from its metadata, with
    256x256 and 0.5 only when it has none (mutation testing: a backend
    that ignored the stored size passed, every test export being
    256x256)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from mmseg_dsnet.apis.inference_backends import OnnxRuntimeBackend
    from mmseg_dsnet.deploy.deployable import (INPUT_FORMAT,
                                               META_INPUT_FORMAT,
                                               META_INPUT_SIZE,
                                               META_THRESHOLD)
    weight = numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float32), 'w')
    dims = ['n', 3, 'h', 'w']
    graph = helper.make_graph(
        [helper.make_node('Conv', ['x', 'w'], ['y'])], 'g',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT,
                                       ['n', 1, 'h', 'w'])], [weight])
    for name, extra, size, threshold in (
            ('stored.onnx', {META_INPUT_SIZE: '64,96', META_THRESHOLD: '0.3'},
             (64, 96), 0.3),
            ('bare.onnx', {}, (256, 256), 0.5)):
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid('', 17)])
        helper.set_model_props(model, {META_INPUT_FORMAT: INPUT_FORMAT,
                                       **extra})
        onnx.save(model, str(tmp_path / name))
        backend = OnnxRuntimeBackend(str(tmp_path / name), num_threads=1)
        assert backend.input_size == size
        assert backend.threshold == threshold
        out = backend(np.ones((1, 3, 4, 4), np.float32))
        np.testing.assert_array_equal(out, np.full((1, 1, 4, 4), 3.0))
