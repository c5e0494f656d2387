"""Roofline floor of an ONNX graph (tools/analysis_tools/cpu_latency.py):
MACs and bytes per node, and the sum."""
import numpy as np
import onnx
import onnxruntime  # noqa: F401  (a runtime requirement)
import pytest
from conftest import load_tool
from onnx import TensorProto, helper, numpy_helper

cpu_latency = load_tool('analysis_tools/cpu_latency.py')
node_costs = cpu_latency.node_costs
roofline_floor = cpu_latency.roofline_floor
stream_bandwidth = cpu_latency.stream_bandwidth


def tiny_graph(second_reader=False):
    """x (1,2,8,8) -> Conv 3x3 (4 out) -> Relu -> Add(z, z) -> Reshape."""
    weight = numpy_helper.from_array(
        np.ones((4, 2, 3, 3), np.float32), 'w')
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), 'shape')
    nodes = [
        helper.make_node('Conv', ['x', 'w'], ['y'], name='conv',
                         pads=[1, 1, 1, 1]),
        helper.make_node('Relu', ['y'], ['z'], name='relu'),
        helper.make_node('Add', ['z', 'y' if second_reader else 'z'],
                         ['s'], name='add'),
        helper.make_node('Reshape', ['s', 'shape'], ['out'], name='flat'),
    ]
    graph = helper.make_graph(
        nodes, 'tiny',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                       [1, 2, 8, 8])],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT, [1, 256])],
        [weight, shape])
    return helper.make_model(graph,
                             opset_imports=[helper.make_opsetid('', 13)])


def test_costs_count_conv_macs_and_bytes_per_node():
    costs = {c['name']: c for c in node_costs(tiny_graph(), (1, 2, 8, 8))}
    # 4 x 8 x 8 outputs, each 2 x 3 x 3 multiply-adds.
    assert costs['conv']['macs'] == 4 * 8 * 8 * 2 * 9
    # Reads x (512 B) and the weights (288 B), writes y (1024 B).
    assert costs['conv']['bytes'] == 512 + 288 + 1024
    # The ReLU runs inside the convolution; the reshape moves nothing.
    assert costs['relu']['bytes'] == 0 and costs['flat']['bytes'] == 0
    assert costs['add'] == dict(name='add', op='Add', macs=0,
                                bytes=3 * 1024)


def test_relu_is_not_fused_when_the_conv_output_is_read_twice():
    costs = {c['name']: c for c in node_costs(tiny_graph(True),
                                              (1, 2, 8, 8))}
    assert costs['relu']['bytes'] == 2 * 1024


def test_floor_takes_the_larger_bound_of_each_node():
    costs = node_costs(tiny_graph(), (1, 2, 8, 8))
    # 1 GFLOP/s and 1 MB/s: the conv is memory-bound (1.824 ms against
    # 9.2 us of arithmetic), the add 3.072 ms.
    floor = roofline_floor(costs, peak_gflops=1.0, bytes_per_s=1e6)
    assert floor['node_by_node_ms'] == pytest.approx(1.824 + 3.072)
    assert floor['compute_ms'] == pytest.approx(2 * 4608 / 1e9 * 1e3)
    assert floor['by_op']['Conv'] == pytest.approx(1.824)
    # Traffic alone: conv 1824 B + add 3072 B (relu, reshape move none).
    assert floor['memory_ms'] == pytest.approx((1824 + 3072) / 1e6 * 1e3)
    assert floor['macs'] == 4608 and floor['bytes'] == 1824 + 3072
    # A machine with little arithmetic makes the conv compute-bound.
    slow = roofline_floor(costs, peak_gflops=1e-3, bytes_per_s=1e6)
    assert slow['by_op']['Conv'] == pytest.approx(2 * 4608 / 1e6 * 1e3)


def test_stream_bandwidth_is_positive_and_finite():
    bandwidth = stream_bandwidth(num_elements=1 << 16, runs=3)
    assert np.isfinite(bandwidth) and bandwidth > 1e6


def test_stream_bandwidth_counts_two_reads_and_one_write(monkeypatch):
    """``c = a + b`` moves 3 x 4 bytes per float32 element; the best of
    the timed runs is taken. Clock: each call 0.5 s apart, except one
    run of 0.25 s."""
    ticks = iter([0.0, 0.5, 1.0, 1.25, 2.0, 2.5])
    monkeypatch.setattr(cpu_latency.time, 'perf_counter',
                        lambda: next(ticks))
    bandwidth = stream_bandwidth(num_elements=1000, runs=3)
    assert bandwidth == pytest.approx(3 * 4 * 1000 / 0.25)


def test_matmul_peak_is_two_n_cubed_over_the_best_run(monkeypatch):
    """The peak the floor and the % of peak divide by: an N x N matmul
    is 2 N^3 FLOPs; the best of the timed runs (ms) counts."""
    import torch
    monkeypatch.setattr(cpu_latency, 'timed',
                        lambda *args: [4.0, 2.0, 3.0])
    peak = cpu_latency.matmul_peak(torch.get_num_threads(), size=16)
    assert peak == pytest.approx(2 * 16**3 / 0.002 / 1e9)
