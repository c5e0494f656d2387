"""Argument checks of the inference backends, on tiny hand-made ONNX
graphs (an Identity from input to output) whose metadata each test
writes: no export, no checkpoint (mutation testing: a bool thread count,
a height-only size comparison, the defaults of a file without size or
threshold metadata, an upper-case ``.ONNX`` and the ONNX-only argument
checks of make_backend passed the other tests)."""
import os

import numpy as np
import pytest
import torch

from mmseg_dsnet.apis.inference_backends import (OnnxRuntimeBackend,
                                                 as_path, check_input_size,
                                                 check_num_threads,
                                                 check_onnxruntime_device,
                                                 make_backend)
from mmseg_dsnet.deploy.deployable import (INPUT_FORMAT, META_INPUT_FORMAT,
                                           META_INPUT_SIZE, META_THRESHOLD,
                                           input_format)
from mmseg_dsnet.deploy.ort_session import OnnxModelError
from mmseg_dsnet.utils.errors import UserError


def identity_onnx(path, meta, shape=('N', 3, 'H', 'W')):
    """An ONNX file whose output is its input, with ``meta`` as its
    metadata."""
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node('Identity', ['input'], ['output'])], 'identity',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info('output', TensorProto.FLOAT, shape)])
    model = helper.make_model(graph,
                              opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize('value', [True, False, 0, -1, 2.5, '2'])
def test_a_thread_count_that_is_not_a_positive_integer_is_refused(value):
    with pytest.raises(UserError, match=r'x: num_threads must be a positive '
                       rf'whole number of CPU threads, got {value!r}'):
        check_num_threads(value, 'x')
    check_num_threads(None, 'x')
    check_num_threads(1, 'x')
    check_num_threads(np.int64(3), 'x')


def test_onnxruntime_takes_the_cpu_given_as_a_torch_device():
    check_onnxruntime_device('cpu', 'x')
    check_onnxruntime_device(torch.device('cpu'), 'x')
    for device in ('cuda', torch.device('cuda'), 'cuda:0'):
        with pytest.raises(UserError, match=r'x: device=.cuda'):
            check_onnxruntime_device(device, 'x')


@pytest.mark.parametrize('size', [(True, 256), (256, False), (256, 256.0),
                                  (0, 256), (256, -1), [256], ()])
def test_an_input_size_that_is_not_two_positive_integers_is_refused(size):
    with pytest.raises(OnnxModelError, match=r'input_size must be \(height, '
                       r'width\), two positive whole numbers'):
        check_input_size(size)


def test_input_size_is_returned_as_python_ints():
    size = check_input_size([np.int64(128), 96])
    assert size == (128, 96) and all(type(v) is int for v in size)


def test_as_path_uses_the_file_system_path():
    """``os.fspath`` (the path protocol), not ``str`` (a display form)."""

    class Located(os.PathLike):

        def __fspath__(self):
            return '/data/model.onnx'

        def __str__(self):
            return 'Located(model)'

    assert as_path(Located()) == '/data/model.onnx'
    assert as_path(None) is None


def test_a_file_without_size_or_threshold_runs_at_256_and_0_5(tmp_path):
    onnx_file = identity_onnx(tmp_path / 'bare.onnx',
                              {META_INPUT_FORMAT: INPUT_FORMAT})
    backend = OnnxRuntimeBackend(onnx_file)
    assert backend.input_size == (256, 256)
    assert backend.threshold == 0.5
    # Exported before the flips and precision were recorded: the flips
    # are not refused, and the precision is not claimed.
    assert backend.flip_tta_refusal is None and backend.precision is None
    batch = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(backend(batch), batch)
    # The stored values win over the defaults.
    onnx_file = identity_onnx(tmp_path / 'stored.onnx', {
        META_INPUT_FORMAT: INPUT_FORMAT, META_INPUT_SIZE: '128,96',
        META_THRESHOLD: '0.25'})
    backend = OnnxRuntimeBackend(onnx_file)
    assert backend.input_size == (128, 96) and backend.threshold == 0.25


def test_another_width_than_the_stored_size_is_refused(tmp_path):
    """The stored 256x256 against 256x128: the height alone agrees."""
    onnx_file = identity_onnx(tmp_path / 'm.onnx', {
        META_INPUT_FORMAT: INPUT_FORMAT, META_INPUT_SIZE: '256,256'})
    for size in ((256, 128), (128, 256)):
        with pytest.raises(OnnxModelError, match=r'exported to run at '
                           r'256x256 .*but input_size is '
                           rf'{size[0]}x{size[1]}'):
            OnnxRuntimeBackend(onnx_file, input_size=size)
    assert OnnxRuntimeBackend(onnx_file,
                              input_size=(256, 256)).input_size == (256, 256)


def test_a_fixed_size_graph_refuses_an_empty_size(tmp_path):
    onnx_file = identity_onnx(tmp_path / 'fixed.onnx', {
        META_INPUT_FORMAT: input_format(False, (64, 48))},
                              shape=('N', 3, 64, 48))
    assert OnnxRuntimeBackend(onnx_file).input_size == (64, 48)
    assert OnnxRuntimeBackend(onnx_file,
                              input_size=(64, 48)).input_size == (64, 48)
    for size in ((), (48, 64)):
        with pytest.raises(OnnxModelError, match=r'takes 64x48 images only'):
            OnnxRuntimeBackend(onnx_file, input_size=size)


def test_make_backend_on_an_onnx_file(tmp_path):
    """An upper-case ``.ONNX`` is an ONNX file; a checkpoint or the
    pytorch backend with one is refused; the thread count reaches the
    onnxruntime session."""
    onnx_file = identity_onnx(tmp_path / 'MODEL.ONNX',
                              {META_INPUT_FORMAT: INPUT_FORMAT})
    backend = make_backend(onnx_file, num_threads=1)
    assert isinstance(backend, OnnxRuntimeBackend)
    assert backend.session.get_session_options().intra_op_num_threads == 1
    assert make_backend(onnx_file, num_threads=3).session \
        .get_session_options().intra_op_num_threads == 3
    with pytest.raises(ValueError, match=r'holds its weights; do not give a '
                       r'checkpoint'):
        make_backend(onnx_file, checkpoint=str(tmp_path / 'x.pth'))
    with pytest.raises(ValueError, match=r'is an ONNX file: it runs with the '
                       r'onnxruntime backend only'):
        make_backend(onnx_file, backend='pytorch')
    with pytest.raises(ValueError, match=r'backend must be one of'):
        make_backend(onnx_file, backend='ort')


TINY_UNET_64PX = '''
_base_ = '{base}'
crop_size = (64, 64)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(base_channels=8),
    decode_head=dict(in_channels=8, channels=8),
    auxiliary_head=dict(in_channels=16, channels=8))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
'''


def test_a_config_run_with_onnxruntime_is_traced_at_its_own_size(tmp_path):
    """``make_backend(C, CKPT, backend='onnxruntime')`` (``infer.py C CKPT
    --backend onnxruntime``) with mmseg's UNet (a slim one) at 64x64: the
    temporary export was traced at 256x256, whose sizes UNet's graph keeps
    as constants, so every image failed in onnxruntime ("Non concat axis
    dimensions must match"). Now it runs and gives the PyTorch backend's
    masks, from one read of the checkpoint for its checks and export."""
    from conftest import REPO
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from mmseg_dsnet.apis import LesionInferencer
    from mmseg_dsnet.engine.preflight import build_scope
    config = tmp_path / 'unet_64px.py'
    config.write_text(TINY_UNET_64PX.format(
        base=REPO / 'configs/unet/unet-s5-d16_fcn_isic2017.py'))
    cfg = Config.fromfile(str(config))
    torch.manual_seed(0)
    with build_scope(cfg):
        model = MODELS.build(cfg.model)
    checkpoint = tmp_path / 'unet.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3),
                                              dtype=np.uint8)
    reads, load = [], torch.load
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, 'load', lambda file, *args, **kw: (
            reads.append(file), load(file, *args, **kw))[1])
        ort = make_backend(str(config), str(checkpoint),
                           backend='onnxruntime')
    assert reads.count(str(checkpoint)) == 1
    assert ort.input_size == (64, 64)
    torch_backend = make_backend(str(config), str(checkpoint))
    np.testing.assert_allclose(
        LesionInferencer(ort).logits([image]),
        LesionInferencer(torch_backend).logits([image]), atol=1e-4)


def test_the_pytorch_backend_takes_the_heads_threshold(tmp_path):
    """A DSNet config whose decode head cuts at 0.3: the PyTorch backend
    (and so the masks of infer.py) takes 0.3 (mutation testing: 0.5 for
    every config passed)."""
    from conftest import REPO
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from mmseg_dsnet.apis.inference_backends import TorchBackend
    from mmseg_dsnet.engine.preflight import build_scope
    config = tmp_path / 'dsnet_03.py'
    config.write_text(
        f"_base_ = '{REPO / 'configs/dsnet/dsnet_isic2017.py'}'\n"
        "model = dict(decode_head=dict(threshold=0.3))\n"
        "test_evaluator = dict(threshold=0.3)\n")
    cfg = Config.fromfile(str(config))
    with build_scope(cfg):
        model = MODELS.build(cfg.model)
    checkpoint = tmp_path / 'dsnet.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    assert TorchBackend(str(config), str(checkpoint)).threshold == 0.3


def test_the_size_check_reads_the_checkpoint_once(tmp_path, monkeypatch):
    """check_checkpoint_size loads the checkpoint and parses its training
    config once for both of its checks (input size, network), and still
    refuses a checkpoint trained at another size."""
    from mmengine.config import Config

    from mmseg_dsnet import compat
    from mmseg_dsnet.apis import inference_backends
    from mmseg_dsnet.apis import released_model as released
    model = dict(type='EncoderDecoder',
                 data_preprocessor=dict(size=(64, 64)))
    checkpoint = tmp_path / 'c.pth'
    torch.save({'state_dict': {}, 'meta': {'cfg': f'model = {model!r}'}},
               checkpoint)
    loads, parses = [], []
    load, parse = compat.safe_torch_load, released.config_from_text
    monkeypatch.setattr(compat, 'safe_torch_load', lambda *args, **kw: (
        loads.append(args[0]), load(*args, **kw))[1])
    monkeypatch.setattr(released, 'config_from_text', lambda text: (
        parses.append(text), parse(text))[1])
    inference_backends.check_checkpoint_size(Config(dict(model=model)),
                                             str(checkpoint))
    assert (len(loads), len(parses)) == (1, 1)
    other = dict(model, data_preprocessor=dict(size=(96, 96)))
    with pytest.raises(UserError, match=r'size is \(64, 64\) in its '):
        inference_backends.check_checkpoint_size(
            Config(dict(model=other)), str(checkpoint))


@pytest.fixture(scope='module')
def released_backend():
    """The released weights run by ``make_backend(..., num_threads=1)``
    from a caller on 2 torch threads: the backend, the reads of the
    checkpoint file while it was made, the caller's thread count right
    after, and the reads of the weights' training config (their metafile
    entry's config file)."""
    from mmseg_dsnet.apis import released_model as released
    config, checkpoint = released.released_model()
    reads, load = [], torch.load
    config_reads, read_config = [], released.released_config_text
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(torch, 'load', lambda file, *args, **kw: (
                reads.append(file), load(file, *args, **kw))[1])
            patch.setattr(released, 'released_config_text',
                          lambda *args: (config_reads.append(args),
                                         read_config(*args))[1])
            backend = make_backend(config, checkpoint, num_threads=1)
        threads_after = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
    return (backend, [r for r in reads if r == checkpoint], threads_after,
            config_reads)


def test_the_pytorch_backend_reads_its_checkpoint_once(released_backend):
    """The build and the size check share one read of the file and one
    read of its training config (most of the backend's start)."""
    backend, reads, _, config_reads = released_backend
    assert len(reads) == 1 and backend.name == 'pytorch'
    assert len(config_reads) == 1


def test_the_pytorch_backend_keeps_the_callers_thread_count(
        released_backend):
    """``num_threads`` applies while the network runs, also when it
    fails: the caller's torch thread count is the same after the backend
    is made and after each call."""
    backend, _, threads_after_build, _ = released_backend
    assert threads_after_build == 2
    seen = []
    hook = backend.network.register_forward_pre_hook(
        lambda module, args: seen.append(torch.get_num_threads()))
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        logits = backend(np.zeros((1, 3, 32, 32), np.float32))
        assert logits.shape[-2:] == (32, 32)
        assert seen == [1] and torch.get_num_threads() == 2
        with pytest.raises(RuntimeError):
            backend(np.zeros((1, 2, 32, 32), np.float32))
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
        hook.remove()
