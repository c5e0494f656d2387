"""ONNX export of DSNet: parity with PyTorch (random and real-looking
images, two sizes, batch 2), no silent overwrite, unsafe checkpoints
refused, int8 quantization."""
import os
import pickle

import numpy as np
# Runtime requirements: a broken install fails here (it skipped the file).
import onnx  # noqa: F401
import onnxruntime  # noqa: F401
import pytest
import torch
from conftest import REPO, load_tool, make_lesion_checkpoint
from PIL import Image

CONFIG = str(REPO / 'configs/dsnet/dsnet_isic2017.py')


def make_checkpoint(config, path, seed=0):
    """Random weights with non-trivial BatchNorm statistics and affine
    parameters, saved the way mmengine saves checkpoints."""
    return make_lesion_checkpoint(
        config, path, lesion_image(256, 256, seed), seed,
        randomise_bn_affine=True,
        meta=dict(dataset_meta=dict(classes=('background', 'lesion'))))


def lesion_image(height, width, seed):
    """A skin-coloured picture with a dark blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    blob = ((yy - cy)**2 / (0.2 * height)**2 +
            (xx - cx)**2 / (0.25 * width)**2) < 1
    image = np.empty((height, width, 3), np.float32)
    image[:] = (200, 150, 130)
    image[blob] = (90, 50, 40)
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return make_checkpoint(CONFIG,
                           tmp_path_factory.mktemp('ckpt') / 'dsnet.pth')


@pytest.fixture(scope='module')
def image_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp('check_images')
    for index, (h, w) in enumerate([(192, 256), (300, 280), (64, 80)]):
        Image.fromarray(lesion_image(h, w, index)).save(
            folder / f'img{index}.png')
    return folder


@pytest.fixture(scope='module')
def exported(checkpoint, image_dir, tmp_path_factory):
    from mmseg_dsnet.deploy.onnx_export import export_and_check
    out = tmp_path_factory.mktemp('onnx') / 'dsnet.onnx'
    result = export_and_check(CONFIG, checkpoint, str(out),
                              check_images=[str(image_dir)],
                              log=lambda text: None)
    return out, result


def test_parity_random_and_real_images(exported):
    out, result = exported
    parity = result['parity']
    assert out.is_file() and result['passed']
    # The strict criterion holds here; the tolerance applied grows with the
    # logit scale, or with the float32 noise floor (PyTorch float32 vs
    # float64) when that is larger.
    assert parity['max_abs_diff'] <= 1e-4 and parity['within_atol']
    assert 0 < parity['float32_noise'] < 1e-4
    assert parity['logit_scale'] > 0
    assert parity['tolerance'] == max(1e-4 + 3e-4 * parity['logit_scale'],
                                      4 * parity['float32_noise'])
    # Masks agree wherever the logit is further from the threshold than the
    # tolerance; a pixel whose logit sits within float32 noise of it may
    # round either way (seen: 1 such pixel of ~400k).
    assert parity['mask_mismatch_pixels'] == \
        parity['mask_mismatch_borderline'] <= 3
    assert parity['real_images'] == 3
    shapes = [case['shape'] for case in parity['cases']]
    # Batch 2 and a second image size ran through the same file.
    assert [2, 3, 256, 256] in shapes and [1, 3, 320, 192] in shapes
    # Re-parameterisation really changed the network (fewer parameters).
    params = result['export']['params']
    assert params['deployed'] < params['trained']
    assert result['export']['opset'] == 17
    # The parity above ran on the graph with the CPU rewrites applied.
    rewrites = result['export']['cpu_rewrites']
    assert rewrites['channel_mean'] > 0 and rewrites['channel_max'] > 0
    assert rewrites['single_output_conv'] > 0


@pytest.mark.parametrize('name', [
    'dsnet-design-e-subpixel_isic2017',  # sub-pixel classifier
    'dsnet-design-deeper-eighth-image-norm_isic2017',  # per-image norm
    'dsnet-design-deeper-eighth-replicate-pad_isic2017',  # edge padding
    'dsnet-design-deeper-eighth-image-context_isic2017',  # image summary
    'dsnet-design-deeper-eighth-group-norm_isic2017',  # GroupNorm kept
    'dsnet-design-deeper-eighth-guided-gates_isic2017',  # side outputs kept
    'dsnet-design-deeper-eighth-fused-sides_isic2017',  # side outputs fused
    'dsnet-design-deeper-eighth-pooled-downsampling_isic2017',  # 2x2 means
])
def test_design_variants_export_with_parity(name, image_dir, tmp_path):
    from mmseg_dsnet.deploy.onnx_export import export_and_check
    config = str(REPO / 'configs/dsnet/design' / f'{name}.py')
    checkpoint = make_checkpoint(config, tmp_path / 'variant.pth')
    result = export_and_check(config, checkpoint, str(tmp_path / 'v.onnx'),
                              check_images=[str(image_dir)],
                              log=lambda text: None)
    parity = result['parity']
    assert result['passed'] and parity['within_atol']
    assert parity['max_abs_diff'] <= 1e-4
    assert parity['mask_mismatch_pixels'] == \
        parity['mask_mismatch_borderline'] <= 3


def test_onnx_dynamic_axes_and_metadata(exported, checkpoint):
    import onnxruntime as ort
    from mmseg_dsnet.deploy.deployable import build_deployable
    out, _ = exported
    session = ort.InferenceSession(str(out),
                                   providers=['CPUExecutionProvider'])
    # The names the documentation gives.
    assert [i.name for i in session.get_inputs()] == ['image']
    assert [o.name for o in session.get_outputs()] == ['logits']
    meta = session.get_modelmeta().custom_metadata_map
    assert meta['mmseg_dsnet.input_size'] == '256,256'
    assert float(meta['mmseg_dsnet.threshold']) == 0.5
    network = build_deployable(CONFIG, checkpoint, reparameterize=False)
    batch = np.random.default_rng(1).uniform(0, 255, (2, 3, 128, 224))
    batch = batch.astype(np.float32)
    got = session.run(None, {'image': batch})[0]
    with torch.no_grad():
        want = network(torch.from_numpy(batch)).numpy()
    assert got.shape == (2, 1, 128, 224)
    assert np.abs(got - want).max() <= 1e-4


def test_fixed_size_export_keeps_only_the_batch_dynamic(checkpoint,
                                                        tmp_path):
    """``dynamic_size=False``: height and width are fixed in the graph's
    input (so onnxruntime can fold the shape arithmetic), the batch stays
    dynamic, and the logits equal the PyTorch model's."""
    import onnx
    import onnxruntime as ort
    from mmseg_dsnet.deploy.deployable import build_deployable
    from mmseg_dsnet.deploy.onnx_export import export_onnx
    out = tmp_path / 'fixed.onnx'
    export_onnx(CONFIG, checkpoint, str(out), shape=(96, 128),
                dynamic_size=False)
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [
        3, 96, 128]
    session = ort.InferenceSession(str(out),
                                   providers=['CPUExecutionProvider'])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta['mmseg_dsnet.input_size'] == '96,128'
    assert meta['mmseg_dsnet.dynamic_size'] == 'False'
    batch = np.random.default_rng(2).uniform(0, 255, (2, 3, 96, 128))
    batch = batch.astype(np.float32)
    got = session.run(None, {'image': batch})[0]
    network = build_deployable(CONFIG, checkpoint, reparameterize=False)
    with torch.no_grad():
        want = network(torch.from_numpy(batch)).numpy()
    assert got.shape == (2, 1, 96, 128)
    assert np.abs(got - want).max() <= 1e-4
    with pytest.raises(Exception, match='(?i)dimension|shape'):
        session.run(None, {'image': batch[:, :, :64]})


def test_wrapper_matches_mmseg_preprocessing(checkpoint):
    """The exported input convention (RGB 0..255) gives the logits mmseg
    computes from its own BGR loading and data preprocessor, resized to the
    input as mmseg's prediction does (DSNet classifies at 1/2 resolution)."""
    from mmseg.models.utils import resize
    from mmseg_dsnet.deploy.deployable import build_deployable
    network = build_deployable(CONFIG, checkpoint, reparameterize=False)
    rgb = lesion_image(256, 256, 7)
    bgr = torch.from_numpy(rgb[..., ::-1].copy()).permute(2, 0, 1)
    segmentor = network.segmentor
    data = segmentor.data_preprocessor(dict(inputs=[bgr]), False)
    with torch.no_grad():
        half = segmentor(data['inputs'], mode='tensor')
        want = resize(half, size=(256, 256), mode='bilinear',
                      align_corners=False)
        got = network(
            torch.from_numpy(rgb).permute(2, 0, 1)[None].float())
    assert half.shape[-2:] == (128, 128)
    assert torch.allclose(got, want, atol=1e-5)


def test_cli_refuses_to_overwrite(checkpoint, tmp_path, capsys):
    tool = load_tool('deployment/export_onnx.py')
    out = tmp_path / 'model.onnx'
    out.write_bytes(b'keep me')
    code = tool.main([CONFIG, checkpoint, str(out)])
    assert code == 2
    assert 'already exists' in capsys.readouterr().err
    assert out.read_bytes() == b'keep me'
    assert os.listdir(tmp_path) == ['model.onnx']  # no temp files left


def test_a_killed_exports_temporary_file_is_removed(checkpoint, image_dir,
                                                   tmp_path):
    """An export killed while writing leaves a hidden ``.<name>.part-PID``
    file; the next export to the folder removes it."""
    import subprocess
    import sys

    from mmseg_dsnet.deploy.onnx_export import export_and_check
    dead = subprocess.run([sys.executable, '-c', 'import os; '
                           'print(os.getpid())'], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f'.model.onnx.part-{dead}'
    stale.write_bytes(b'half an onnx file')
    messages = []
    result = export_and_check(CONFIG, checkpoint, str(tmp_path / 'model.onnx'),
                              check_images=[str(image_dir)],
                              log=messages.append)
    assert result['passed'] and not stale.exists()
    assert any(str(stale) in m and 'interrupted export' in m
               for m in messages)
    assert sorted(os.listdir(tmp_path)) == ['model.onnx']


def test_cli_refuses_checks_it_could_not_run(checkpoint, image_dir,
                                             tmp_path):
    """Named check images that are missing or unreadable used to be
    dropped (the check passed on random inputs alone); a negative tolerance
    passed on the noise allowance; an opset the exporter cannot write gave
    a traceback."""
    from mmseg_dsnet.utils.errors import UserError
    tool = load_tool('deployment/export_onnx.py')
    out = tmp_path / 'out' / 'model.onnx'
    out.parent.mkdir()
    junk = tmp_path / 'junk.png'
    junk.write_bytes(b'not an image')
    cases = [
        (['--check-images', str(tmp_path / 'missing')], 'no such file'),
        (['--check-images', str(image_dir), str(junk)],
         '1 file is not a readable image: .*junk.png'),
        (['--atol', '-1'], '--atol must be at least 0, got -1'),
        (['--noise-factor', '-1'], '--noise-factor must be at least 0'),
        # nan failed the parity check as the model's fault, or was skipped.
        (['--atol', 'nan'], '--atol must be a finite number, got nan'),
        (['--rtol', 'nan'], '--rtol must be a finite number, got nan'),
        (['--noise-factor', 'nan'],
         '--noise-factor must be a finite number, got nan'),
        (['--num-check-images', '-1'],
         '--num-check-images must be at least 0'),
        (['--opset', '5'], 'ONNX export at opset 5 failed'),
    ]
    for extra, message in cases:
        with pytest.raises(UserError, match=message):
            tool.main([CONFIG, checkpoint, str(out)] + extra)
        assert os.listdir(out.parent) == []  # nothing that looks usable
    # The --json report: an existing one is kept without --overwrite, a
    # folder is refused even with it; both before the export.
    report = tmp_path / 'report.json'
    report.write_text('keep me')
    assert tool.main([CONFIG, checkpoint, str(out), '--json',
                      str(report)]) == 2
    assert report.read_text() == 'keep me'
    with pytest.raises(UserError, match='is a folder'):
        tool.main([CONFIG, checkpoint, str(out), '--overwrite', '--json',
                   str(tmp_path)])
    assert os.listdir(out.parent) == []


def test_cli_names_a_missing_config_or_checkpoint(checkpoint, tmp_path,
                                                 capsys):
    """A config or checkpoint that is not there: one ERROR line naming it,
    exit 2, before any work (mutation testing)."""
    from conftest import run_cli
    tool = load_tool('deployment/export_onnx.py')
    out = tmp_path / 'm.onnx'
    for args, what in (([tmp_path / 'typo.py', checkpoint], 'config file'),
                       ([CONFIG, tmp_path / 'typo.pth'], 'checkpoint'),
                       ([tmp_path, checkpoint], 'config file')):
        code, err = run_cli(tool.main, args + [out], capsys)
        assert code == 2, err
        path = args[0 if what == 'config file' else 1]
        reason = 'is a folder, not a file' if path.is_dir() else \
            'does not exist'
        assert err == f'ERROR: {what} {path} {reason}\n'
    assert os.listdir(tmp_path) == []


def test_cli_refuses_outputs_that_are_an_input_or_each_other(checkpoint,
                                                            tmp_path):
    """OUT given as the checkpoint (with --overwrite) replaced the weights
    with the ONNX model; --int8 or --json given as OUT replaced the checked
    model after PASSED (exit 0). Each is refused before any work."""
    import shutil

    from conftest import run_tool_in_process
    from mmseg_dsnet.utils.errors import UserError
    weights = tmp_path / 'dsnet.pth'
    shutil.copy(checkpoint, weights)
    before = weights.read_bytes()
    proc = run_tool_in_process('tools/deployment/export_onnx.py', CONFIG,
                               weights, weights, '--overwrite')
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f'ERROR: the checkpoint and OUT are the same file, {weights}; give '
        'each output a file name of its own')
    assert weights.read_bytes() == before
    tool = load_tool('deployment/export_onnx.py')
    out = tmp_path / 'model.onnx'
    for extra, message in ((['--int8', str(out)], 'OUT and --int8'),
                           (['--json', str(out), '--overwrite'],
                            'OUT and --json'),
                           (['--int8', str(tmp_path / 'q.onnx'), '--json',
                             str(tmp_path / 'q.onnx')], '--int8 and --json')):
        with pytest.raises(UserError, match=f'{message} are the same file'):
            tool.main([CONFIG, str(weights), str(out)] + extra)
    assert sorted(os.listdir(tmp_path)) == ['dsnet.pth']


def test_the_parity_check_shows_its_progress(checkpoint, image_dir,
                                            tmp_path, capsys):
    """The parity check runs three models and onnxruntime on every batch
    (minutes over a test set with ``--num-check-images 0``) and said
    nothing between ``Real images`` and ``Parity``. Now a bar on stderr
    counts its batches up to the number checked, not past it; stdout
    keeps the log lines only."""
    import json
    tool = load_tool('deployment/export_onnx.py')
    report = tmp_path / 'report.json'
    assert tool.main([CONFIG, checkpoint, str(tmp_path / 'model.onnx'),
                      '--check-images', str(image_dir), '--json',
                      str(report)]) == 0
    printed, progress = capsys.readouterr()
    cases = len(json.loads(report.read_text())['parity']['cases'])
    assert cases > 1
    assert 'parity check: 100%' in progress
    assert f'| {cases}/{cases} [' in progress
    assert f'{cases + 1}/{cases}' not in progress
    assert 'parity check' not in printed


def test_cli_overwrite_and_int8(checkpoint, image_dir, tmp_path, capsys):
    tool = load_tool('deployment/export_onnx.py')
    out, int8 = tmp_path / 'model.onnx', tmp_path / 'model_int8.onnx'
    out.write_bytes(b'old')
    report = tmp_path / 'report.json'
    # The fixture's random weights put many logits near the threshold,
    # where int8 rounding flips masks (92 % mask IoU with fp32); this test
    # is about the files, not that figure.
    code = tool.main([
        CONFIG, checkpoint, str(out), '--overwrite', '--int8',
        str(int8), '--check-images',
        str(image_dir / '*.png'), '--json',
        str(report), '--int8-min-mask-iou', '50',
        # Quantized on a few images: each one costs a calibration pass.
        '--num-calib-images', '4'
    ])
    text = capsys.readouterr().out
    assert code == 0, text
    assert 'PASSED' in text and 'int8 model' in text
    assert out.read_bytes()[:3] != b'old' and int8.is_file()
    import json
    figures = json.loads(report.read_text())['int8']
    assert figures['images'] == 3
    assert 0 <= figures['pixel_agreement'] <= 100
    assert int8.stat().st_size < out.stat().st_size
    _assert_int8_recipe(int8)


def test_an_int8_model_too_far_from_fp32_is_not_written(
        checkpoint, image_dir, tmp_path, capsys, monkeypatch):
    """The int8 figures were printed and the file written whatever they
    were, then PASSED, exit 0 (a collapsed int8 model measured 0 % mask
    IoU with fp32). Below --int8-min-mask-iou, or with a NaN logit, the
    int8 model is not written and the run fails (exit 1); the checked fp32
    model is kept."""
    import json
    tool = load_tool('deployment/export_onnx.py')
    out, int8 = tmp_path / 'model.onnx', tmp_path / 'q.onnx'
    report = tmp_path / 'report.json'
    code = tool.main([CONFIG, checkpoint, str(out), '--int8', str(int8),
                      '--check-images', str(image_dir), '--json',
                      str(report), '--int8-min-mask-iou', '100',
                      '--num-calib-images', '4'])
    text = capsys.readouterr().out
    assert code == 1, text
    lines = text.strip().splitlines()
    assert lines[-2].startswith("FAILED int8: its masks overlap the float "
                                "model's by ")
    assert lines[-2].endswith(f'%, less than the 100 % asked; {int8} not '
                              'written')
    assert lines[-1] == (
        "FAILED: the int8 model's masks are too far from the float model's "
        f'(see above); {int8} not written ({out} passed its check and is '
        'written)')
    assert sorted(os.listdir(tmp_path)) == ['model.onnx', 'report.json']
    figures = json.loads(report.read_text())
    assert not figures['passed'] and figures['parity']['passed']
    assert figures['int8']['passed'] is False
    assert figures['int8']['mask_iou_fp32_vs_int8'] < 100
    # A NaN logit fails it whatever the masks.
    from mmseg_dsnet.deploy import onnx_export
    monkeypatch.setattr(onnx_export, 'compare_int8', lambda *args: dict(
        images=3, pixel_agreement=100.0, mask_iou_fp32_vs_int8=100.0,
        mean_image_mask_iou=100.0, worst_image_mask_iou=100.0,
        max_abs_logit_diff=float('nan')))
    result = onnx_export.export_and_check(
        CONFIG, checkpoint, str(out), overwrite=True, int8_file=str(int8),
        check_images=[str(image_dir)], num_calib_images=4, log=print)
    assert not result['passed'] and not int8.exists()
    assert (f'FAILED int8: it gives NaN or infinite logits; {int8} not '
            'written') in capsys.readouterr().out


def test_int8_without_calibration_images_is_refused(checkpoint, tmp_path):
    """With neither the config's training nor its test images there, and no
    --check-images, the int8 model was calibrated on random noise and
    written beside a PASSED fp32 model, exit 0."""
    from mmseg_dsnet.utils.errors import UserError
    config = tmp_path / 'no_data.py'
    missing = tmp_path / 'no_data_here'
    config.write_text(
        f"_base_ = '{CONFIG}'\n"
        f"train_dataloader = dict(dataset=dict(data_root='{missing}'))\n"
        f"test_dataloader = dict(dataset=dict(data_root='{missing}'))\n")
    out = tmp_path / 'out'
    out.mkdir()
    tool = load_tool('deployment/export_onnx.py')
    with pytest.raises(UserError, match=(
            f'--int8 {out}/q.onnx: no images to calibrate it on \\(train '
            f'data not found at {missing}; test data not found at '
            f'{missing}\\); give photos with --check-images')):
        tool.main([str(config), checkpoint, str(out / 'model.onnx'),
                   '--int8', str(out / 'q.onnx')])
    assert os.listdir(out) == []


def test_int8_without_images_to_measure_it_on_is_refused(
        checkpoint, tiny_isic, tmp_path):
    """With the config's training images there but not its test images,
    and no --check-images, the int8 model's masks were compared with the
    float model's on random noise, and those figures were printed as the
    int8 model's (the released DSNet: 97.5 % pixel agreement), exit 0."""
    from conftest import run_tool_in_process, write_tiny_config
    base = write_tiny_config(tmp_path / 'tiny.py', tiny_isic)
    config = tmp_path / 'no_test_data.py'
    missing = tmp_path / 'no_data_here'
    config.write_text(
        f"_base_ = '{base}'\n"
        f"test_dataloader = dict(dataset=dict(data_root='{missing}'))\n")
    out = tmp_path / 'out'
    out.mkdir()
    done = run_tool_in_process('tools/deployment/export_onnx.py', config,
                               checkpoint, out / 'model.onnx', '--int8',
                               out / 'q.onnx')
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f'ERROR: --int8 {out}/q.onnx: no images to measure it on (test data '
        f"not found at {missing}): its masks would be compared with the "
        "float model's on random noise, which says nothing of photos; give "
        'photos with --check-images, or convert the data the config names')
    assert os.listdir(out) == []


def _assert_int8_recipe(int8_file):
    """The first convolution and every grouped (depthwise) one read float
    weights; the dense 1x1 convolutions read dequantized int8 weights."""
    import onnx
    from onnx import helper
    model = onnx.load(str(int8_file))
    initializers = {init.name for init in model.graph.initializer}
    dequantized = {
        node.output[0]
        for node in model.graph.node if node.op_type == 'DequantizeLinear'
    }
    convs = [node for node in model.graph.node if node.op_type == 'Conv']
    assert convs[0].input[1] in initializers
    quantized_pointwise = 0
    for node in convs:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get('group', 1) > 1:
            assert node.input[1] in initializers, node.name
        elif node.input[1] in dequantized:
            quantized_pointwise += 1
    assert quantized_pointwise >= 10


def two_conv_model(path):
    """x -> Conv 1x1 (identity) -> y -> Conv 1x1 -> z -> Add(z, z): the
    first convolution stays float; the second is quantized with y's
    calibrated range."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    eye = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
    mix = np.arange(1, 10, dtype=np.float32).reshape(3, 3, 1, 1) / 9
    graph = helper.make_graph(
        [helper.make_node('Conv', ['x', 'w1'], ['y'], name='first'),
         helper.make_node('Conv', ['y', 'w2'], ['z'], name='second'),
         helper.make_node('Add', ['z', 'z'], ['out'], name='add')], 'g',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                       ['n', 3, 32, 32])],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT,
                                       ['n', 3, 32, 32])],
        [numpy_helper.from_array(eye, 'w1'),
         numpy_helper.from_array(mix, 'w2')])
    onnx.save(helper.make_model(
        graph, opset_imports=[helper.make_opsetid('', 17)]), str(path))
    return path


def test_int8_recipe_and_calibration_of_a_small_graph(tmp_path):
    """quantize_int8 on a two-convolution graph: QDQ format, per-channel
    int8 weights on the second convolution only, uint8 activations, the
    Add left alone; the input range of the quantized convolution covers
    values above the 99.99th percentile of the calibration images (here
    0.1 % of the values at 100, all in the second image of a batch) and
    leaves out rarer ones (one value of 12288 at 100: 0.008 %)."""
    import onnx
    from onnx import numpy_helper

    from mmseg_dsnet.deploy.int8 import quantize_int8
    fp32 = two_conv_model(tmp_path / 'two.onnx')
    rng = np.random.default_rng(0)

    def quantize(batch, name):
        out = tmp_path / name
        quantize_int8(str(fp32), str(out), [batch])
        return onnx.load(str(out))

    def input_scale(model):
        inits = {i.name: numpy_helper.to_array(i)
                 for i in model.graph.initializer}
        conv, = [n for n in model.graph.node if n.name == 'second']
        dq = {n.output[0]: n for n in model.graph.node
              if n.op_type == 'DequantizeLinear'}
        return float(inits[dq[conv.input[0]].input[1]]), dq, conv, inits

    common = rng.uniform(0, 1, (2, 3, 32, 32)).astype(np.float32)
    outliers = common.copy()
    flat = outliers[1].reshape(-1)
    flat[rng.choice(flat.size, 6, replace=False)] = 100  # 0.1 % of 6144
    model = quantize(outliers, 'covered.onnx')
    scale, dq, conv, inits = input_scale(model)
    assert scale > 0.3  # a range reaching 100 over 255 steps
    ops = [n.op_type for n in model.graph.node]
    assert 'QLinearConv' not in ops
    # The second convolution reads per-channel int8 weights, uint8 data.
    weight = dq[conv.input[1]]
    assert inits[weight.input[1]].shape == (3, )
    assert inits[weight.input[2]].dtype == np.int8
    assert inits[dq[conv.input[0]].input[2]].dtype == np.uint8
    # The first convolution keeps float weights; the Add's output is not
    # quantized (only convolutions are).
    first, = [n for n in model.graph.node if n.name == 'first']
    assert first.input[1] in inits and first.input[1] not in dq
    add, = [n for n in model.graph.node if n.op_type == 'Add']
    assert not [n for n in model.graph.node if n.op_type == 'QuantizeLinear'
                and add.output[0] in n.input]

    rare = rng.uniform(0, 1, (4, 3, 32, 32)).astype(np.float32)
    rare[1, 0, 5, 5] = 100  # 1 of 12288 values: above the 99.99th
    assert input_scale(quantize(rare, 'rare.onnx'))[0] < 0.05


def test_ort_session_threads_and_first_output(tmp_path):
    """``ort_session(f, n)``: n intra-op threads, one inter-op thread;
    without n, onnxruntime's defaults; a missing file is named.
    ``run_ort`` gives the first output of a graph with two."""
    import onnx
    from onnx import TensorProto, helper

    from mmseg_dsnet.deploy.ort_session import (OnnxModelError, ort_session,
                                                run_ort)
    graph = helper.make_graph(
        [helper.make_node('Relu', ['x'], ['first']),
         helper.make_node('Neg', ['x'], ['second'])], 'g',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2])
         for name in ('first', 'second')])
    path = tmp_path / 'two.onnx'
    onnx.save(helper.make_model(
        graph, opset_imports=[helper.make_opsetid('', 17)]), str(path))
    options = ort_session(str(path), 3).get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == \
        (3, 1)
    session = ort_session(str(path))
    options = session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == \
        (0, 0)  # onnxruntime's own choice
    np.testing.assert_array_equal(
        run_ort(session, np.array([-1, 2], np.float32)), [0, 2])
    with pytest.raises(OnnxModelError,
                       match=f'ONNX file {tmp_path}/none.onnx not found'):
        ort_session(str(tmp_path / 'none.onnx'))
    # A file that is no ONNX: onnxruntime's own reason, in one line.
    junk = tmp_path / 'junk.onnx'
    junk.write_bytes(b'not onnx ' * 20)
    with pytest.raises(OnnxModelError) as error:
        ort_session(str(junk))
    message = str(error.value)
    assert message.startswith(f'{junk} is not a loadable ONNX model')
    assert '[ONNXRuntimeError]' in message and 'INVALID_PROTOBUF' in message
    assert '\n' not in message


class _RunsShell:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_malicious_checkpoint_refused(tmp_path, capsys):
    tool = load_tool('deployment/export_onnx.py')
    marker = tmp_path / 'pwned'
    bad = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _RunsShell(marker)}, str(bad),
               pickle_protocol=pickle.DEFAULT_PROTOCOL)
    out = tmp_path / 'never.onnx'
    code = tool.main([CONFIG, str(bad), str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert 'Refusing to load checkpoint' in err and 'evil.pth' in err
    assert not marker.exists() and not out.exists()


def test_an_opset_torch_cannot_write_is_refused_before_the_export(
        checkpoint, tmp_path):
    """An opset outside torch's range (0, or above the highest it writes)
    failed inside the export with a ``RuntimeError: Unsupported
    onnx_opset_version`` traceback, exit 1."""
    import torch
    from conftest import run_tool_in_process
    from torch.onnx._constants import ONNX_MAX_OPSET
    out = tmp_path / 'out' / 'model.onnx'
    out.parent.mkdir()
    for opset in (0, ONNX_MAX_OPSET + 1):
        done = run_tool_in_process('tools/deployment/export_onnx.py', CONFIG,
                                   checkpoint, out, '--opset', opset)
        assert done.returncode == 2, done.stderr[-2000:]
        assert done.stderr.strip().splitlines()[-1] == (
            f'ERROR: --opset {opset}: torch {torch.__version__} writes ONNX '
            f'opsets 1 to {ONNX_MAX_OPSET} (the default is 17)')
        assert os.listdir(out.parent) == []


def test_an_opset_before_13_is_exported_with_the_cpu_rewrites(
        checkpoint, image_dir, tmp_path):
    """``--opset 11`` (or 12): the channel-max rewrite wrote ``Split`` with
    its sizes as an input, the opset 13 form, so onnx's checker failed with
    a ``ValidationError`` traceback, exit 1. Now the sizes are an attribute
    there, and the file passes the check at the opset asked for."""
    import onnx
    from conftest import run_tool_in_process
    out = tmp_path / 'model.onnx'
    done = run_tool_in_process('tools/deployment/export_onnx.py', CONFIG,
                               checkpoint, out, '--opset', 11, '--shape',
                               64, '--check-images', image_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == 'PASSED'
    model = onnx.load(str(out))
    assert [o.version for o in model.opset_import if not o.domain] == [11]
    splits = [n for n in model.graph.node if n.op_type == 'Split']
    assert splits and all(len(n.input) == 1 for n in splits)


def test_int8_below_opset_13_is_refused_before_the_export(checkpoint,
                                                          image_dir,
                                                          tmp_path):
    """``--opset 11 --int8 Q``: the fp32 model was written, then Q, which
    onnxruntime could not load (per-channel DequantizeLinear needs opset
    13), and the run ended with ``ERROR: Q is not a loadable ONNX model``,
    exit 2, the broken Q left on disk."""
    from conftest import run_tool_in_process
    out = tmp_path / 'out'
    out.mkdir()
    done = run_tool_in_process('tools/deployment/export_onnx.py', CONFIG,
                               checkpoint, out / 'model.onnx', '--opset', 11,
                               '--int8', out / 'q.onnx', '--check-images',
                               image_dir, '--num-calib-images', 4)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f'ERROR: --int8 {out}/q.onnx: int8 models need --opset 13 or later '
        '(per-channel int8 weights), got --opset 11')
    assert os.listdir(out) == []


def test_the_opset_limits_are_where_they_are_said_to_be(tmp_path):
    """``--int8`` at opset 12, one below the 13 its per-channel weights
    need, is refused before the export; the opsets torch writes are 1 to
    its highest, both ends included (mutation testing: limits moved by one
    passed)."""
    from torch.onnx._constants import ONNX_MAX_OPSET

    from mmseg_dsnet.deploy.onnx_export import check_opset, export_and_check
    from mmseg_dsnet.utils.errors import UserError
    with pytest.raises(UserError, match='int8 models need --opset 13 or '
                       'later .*got --opset 12'):
        export_and_check(CONFIG, None, str(tmp_path / 'm.onnx'), opset=12,
                         int8_file=str(tmp_path / 'q.onnx'))
    assert os.listdir(tmp_path) == []
    check_opset(1)
    check_opset(ONNX_MAX_OPSET)
    for opset in (0, ONNX_MAX_OPSET + 1):
        with pytest.raises(UserError, match=f'--opset {opset}: torch '):
            check_opset(opset)


def test_an_int8_model_that_fails_to_run_is_not_left_behind(
        checkpoint, image_dir, tmp_path, monkeypatch):
    """The int8 model is measured before it is moved into place: one that
    onnxruntime cannot run leaves no file under its name."""
    from mmseg_dsnet.deploy import onnx_export
    from mmseg_dsnet.deploy.ort_session import OnnxModelError

    def broken_compare(*args):
        raise OnnxModelError('cannot run it')

    monkeypatch.setattr(onnx_export, 'compare_int8', broken_compare)
    out = tmp_path / 'model.onnx'
    with pytest.raises(OnnxModelError, match='cannot run it'):
        onnx_export.export_and_check(
            CONFIG, checkpoint, str(out), shape=(64, 64),
            int8_file=str(tmp_path / 'q.onnx'),
            check_images=[str(image_dir)], num_calib_images=4,
            log=lambda text: None)
    assert sorted(os.listdir(tmp_path)) == ['model.onnx']


def test_weights_trained_at_another_input_size_are_refused(tmp_path):
    """A checkpoint trained at 128 px (its ``meta['cfg']``) exported under a
    256 px config passed the parity check and was written with
    ``mmseg_dsnet.input_size`` 256,256, the size infer.py resizes to,
    exit 0."""
    import onnx
    from conftest import (DEMO_128PX, make_128px_checkpoint,
                          run_tool_in_process, trained_size_error)
    demo = DEMO_128PX
    config = str(REPO / 'configs/dsnet/dsnet_isic2018.py')
    trained = make_128px_checkpoint(tmp_path / 'epoch_1.pth')
    out = tmp_path / 'out' / 'model.onnx'
    tool = 'tools/deployment/export_onnx.py'
    done = run_tool_in_process(tool, config, trained, out, '--shape', 64)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == trained_size_error(
        trained, config, 'export it with the config it was trained with')
    assert not out.parent.exists() or os.listdir(out.parent) == []
    # Under the config it was trained with, it is exported at its size.
    done = run_tool_in_process(tool, demo, trained, out, '--shape', 64)
    assert done.returncode == 0, done.stderr[-2000:]
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta['mmseg_dsnet.input_size'] == '128,128'


def test_a_fixed_size_export_runs_at_the_configs_input_size(checkpoint,
                                                             tmp_path):
    """``--static-size --shape 128 128`` under a 256 px config wrote a file
    fixed at 128x128 after PASSED, exit 0: infer.py resizes to the file's
    size, so the model ran at a size it was neither trained nor tested at
    (the released DSNet: lesion IoU 85.5 -> 75.1). Without --shape the
    fixed size is the config's (the demo config's 128, not 256)."""
    import onnx
    from conftest import (DEMO_128PX, make_128px_checkpoint,
                          run_tool_in_process)
    tool = 'tools/deployment/export_onnx.py'
    out = tmp_path / 'out' / 'model.onnx'
    out.parent.mkdir()
    done = run_tool_in_process(tool, CONFIG, checkpoint, out,
                               '--static-size', '--shape', 128, 128)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        'ERROR: --static-size --shape 128 128: the file would take 128x128 '
        f'images only (infer.py resizes to that size), but {CONFIG} runs '
        'the model at 256x256 (its test pipeline); leave out --shape or '
        'give --shape 256 256')
    assert os.listdir(out.parent) == []
    trained = make_128px_checkpoint(tmp_path / 'demo.pth')
    done = run_tool_in_process(tool, DEMO_128PX, trained, out,
                               '--static-size')
    assert done.returncode == 0, done.stderr[-2000:]
    model = onnx.load(str(out))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta['mmseg_dsnet.input_size'] == '128,128'
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[2:]] == [128, 128]


def test_a_fixed_size_export_says_its_size_and_runs_in_infer(tmp_path,
                                                            capsys):
    """A ``--static-size`` file said "dynamic batch, height and width" in
    its ``mmseg_dsnet.input_format`` metadata, its doc string and the
    report's ``export.input``; now they say the fixed size, and the reader
    (``check_input_format``) takes both forms: infer.py runs the file at
    its size, refuses another size for it, and still refuses another
    exporter's file."""
    import json

    import cv2
    import onnx
    from conftest import (DEMO_128PX, make_128px_checkpoint, run_cli,
                          run_tool_in_process)
    from mmseg_dsnet.apis.inference_backends import OnnxRuntimeBackend
    from mmseg_dsnet.deploy.deployable import INPUT_FORMAT
    from mmseg_dsnet.deploy.ort_session import OnnxModelError
    fixed_format = ('float32 NCHW RGB pixel values 0..255 (not normalised); '
                    'dynamic batch, fixed height and width 128x128')
    trained = make_128px_checkpoint(tmp_path / 'demo.pth')
    out, report = tmp_path / 'fixed.onnx', tmp_path / 'report.json'
    done = run_tool_in_process('tools/deployment/export_onnx.py', DEMO_128PX,
                               trained, out, '--static-size', '--json',
                               report)
    assert done.returncode == 0, done.stderr[-2000:]
    model = onnx.load(str(out))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta['mmseg_dsnet.input_format'] == fixed_format
    assert model.doc_string == fixed_format
    assert json.loads(report.read_text())['export']['input'] == fixed_format
    assert 'height and width' in INPUT_FORMAT and 'fixed' not in INPUT_FORMAT

    image = tmp_path / 'images' / 'a.png'
    image.parent.mkdir()
    cv2.imwrite(str(image), lesion_image(90, 120, 0)[..., ::-1])
    infer = load_tool('infer.py').main
    code, err = run_cli(infer, [out, image, '--out-dir', tmp_path / 'masks',
                                '--no-progress'], capsys)
    assert code == 0, err
    masks = list((tmp_path / 'masks').rglob('a*.png'))
    assert masks and cv2.imread(str(masks[0]), 0).shape == (90, 120)
    backend = OnnxRuntimeBackend(str(out))
    assert backend.input_size == (128, 128)
    # The graph takes 128x128 only: another size is refused up front.
    with pytest.raises(OnnxModelError, match=r'takes 128x128 images only'):
        OnnxRuntimeBackend(str(out), input_size=(256, 256))

    def rewritten(name, **changes):
        edited = onnx.load(str(out))
        for entry in edited.metadata_props:
            entry.value = changes.get(entry.key, entry.value)
        path = tmp_path / name
        onnx.save(edited, str(path))
        return path

    # Metadata that disagree about the size: an edited file.
    with pytest.raises(OnnxModelError, match=r'mmseg_dsnet.input_size is'):
        OnnxRuntimeBackend(str(rewritten(
            'edited.onnx', **{'mmseg_dsnet.input_size': '256,256'})))
    # Another exporter's fixed-size file (BGR, normalised) is still refused.
    foreign = rewritten('foreign.onnx', **{
        'mmseg_dsnet.input_format': fixed_format.replace(
            'RGB pixel values 0..255 (not normalised)',
            'BGR normalised by ImageNet mean/std')})
    code, err = run_cli(infer, [foreign, image, '--out-dir',
                                tmp_path / 'foreign_masks', '--no-progress'],
                        capsys)
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith(
        f'ERROR: {foreign} was not written by '
        'tools/deployment/export_onnx.py (its mmseg_dsnet.input_format is')
    assert not (tmp_path / 'foreign_masks').exists()


def test_weights_trained_on_other_normalisation_are_refused(tmp_path):
    """A checkpoint whose training config (``meta['cfg']``) normalised the
    pixels otherwise (BGR order, 0..1 scaling) loaded strictly under the
    stock config; the export baked the stock normalisation into the file and
    its parity check compared the model with itself under it: PASSED, exit
    0 (so did reparameterize.py and publish_model.py)."""
    from conftest import run_tool_in_process
    from mmengine.config import Config
    trained_cfg = Config.fromfile(CONFIG)
    trained_cfg.model.data_preprocessor.update(
        bgr_to_rgb=False, mean=[0, 0, 0], std=[255.0, 255.0, 255.0])
    trained = make_lesion_checkpoint(
        CONFIG, tmp_path / 'bgr.pth', lesion_image(256, 256, 0),
        meta=dict(cfg=trained_cfg.pretty_text))
    out = tmp_path / 'out'
    out.mkdir()
    for tool, output, advice in (
            ('deployment/export_onnx.py', 'model.onnx',
             'export it with the config it was trained with'),
            ('deployment/reparameterize.py', 'deploy.pth',
             'give the training config it was trained with'),
            ('misc/publish_model.py', 'weights.pth',
             'publish it with the config it was trained with')):
        done = run_tool_in_process(f'tools/{tool}', CONFIG, trained,
                                   out / output)
        assert done.returncode == 2, done.stderr[-2000:]
        assert done.stderr.strip().splitlines()[-1] == (
            f'ERROR: checkpoint {trained} was trained on pixels normalised '
            f'otherwise than config {CONFIG} sets: '
            'model.data_preprocessor.mean is (0.0, 0.0, 0.0) in its '
            "training config (meta['cfg']), (123.675, 116.28, 103.53) in "
            'the config; model.data_preprocessor.std is (255.0, 255.0, '
            "255.0) in its training config (meta['cfg']), (58.395, 57.12, "
            '57.375) in the config; model.data_preprocessor.bgr_to_rgb is '
            "False in its training config (meta['cfg']), True in the "
            f'config; {advice}'), tool
        assert os.listdir(out) == [], tool
    # Under the config it was trained with, it is exported.
    config = tmp_path / 'bgr_config.py'
    trained_cfg.dump(str(config))
    done = run_tool_in_process('tools/deployment/export_onnx.py', config,
                               trained, out / 'model.onnx', '--shape', 64)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_config_tested_window_by_window_is_refused(checkpoint, tmp_path):
    """``model.test_cfg.mode='slide'`` (mmseg's stock UNet setting): the
    whole-image network was exported and checked against itself, PASSED,
    exit 0, while tools/test.py scored the model window by window; infer.py
    ran it whole too."""
    from conftest import run_tool_in_process
    config = tmp_path / 'slide.py'
    config.write_text(
        f"_base_ = '{CONFIG}'\n"
        "model = dict(test_cfg=dict(mode='slide', crop_size=(128, 128), "
        'stride=(85, 85)))\n')
    out = tmp_path / 'out'
    out.mkdir()
    message = (
        f'ERROR: config {config} is tested otherwise than the deployed '
        "network (the ONNX export, infer.py) runs it: model.test_cfg.mode is "
        "'slide', while the deployed network runs the whole image once; the "
        'masks would differ from those tools/test.py scores for it; give a '
        "config with keep_ratio=False and test_cfg mode='whole' (as "
        'configs/_base_/datasets/isic_256x256.py and our model configs)')
    done = run_tool_in_process('tools/deployment/export_onnx.py', config,
                               checkpoint, out / 'model.onnx')
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == message
    image = out / 'lesion.png'
    Image.fromarray(lesion_image(64, 64, 0)).save(image)
    done = run_tool_in_process('tools/infer.py', config, checkpoint, image,
                               '--out-dir', out / 'masks')
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == message
    assert os.listdir(out) == ['lesion.png']


def test_an_output_path_through_a_file_is_refused_before_the_export(
        checkpoint, image_dir, tmp_path):
    """OUT, --int8 or --json under a path that runs through a file: --json
    failed with a ``FileExistsError`` traceback after PASSED, --int8 with
    ``ERROR: [Errno 17] File exists: ...`` after the fp32 model had been
    written, OUT with that line naming no option."""
    from mmseg_dsnet.engine.preflight import WorkDirError
    tool = load_tool('deployment/export_onnx.py')
    afile = tmp_path / 'afile'
    afile.write_text('a file, not a folder')
    out = str(tmp_path / 'model.onnx')
    for option, bad in (('OUT', afile / 'model.onnx'),
                        ('--int8', afile / 'q.onnx'),
                        ('--json', afile / 'report.json')):
        args = [str(bad)] if option == 'OUT' else [out, option, str(bad)]
        with pytest.raises(WorkDirError, match=(
                f'Cannot write {option} {bad}: {afile} is a file, not a '
                'folder. Nothing was started')):
            tool.main([CONFIG, checkpoint] + args +
                      ['--shape', '64', '--check-images', str(image_dir)])
        assert sorted(os.listdir(tmp_path)) == ['afile']
    assert afile.read_text() == 'a file, not a folder'


def test_an_output_not_named_onnx_is_refused_before_the_export(
        checkpoint, image_dir, tmp_path):
    """``export_onnx.py CONFIG CKPT model.pth``: an ONNX graph was written
    under a checkpoint's name (the tools that read a model go by its name),
    exit 0."""
    from conftest import run_tool_in_process
    for option, bad in (('OUT', tmp_path / 'model.pth'),
                        ('--int8', tmp_path / 'q.int8')):
        args = [bad] if option == 'OUT' else [tmp_path / 'model.onnx',
                                              option, bad]
        done = run_tool_in_process(
            'tools/deployment/export_onnx.py', CONFIG, checkpoint, *args,
            '--shape', '64', '--check-images', image_dir)
        assert done.returncode == 2, done.output[-2000:]
        assert done.stderr.strip() == (
            f'ERROR: {option} {bad}: the model is written in ONNX format; '
            'give a file name ending with .onnx')
        assert os.listdir(tmp_path) == []


def test_the_input_size_is_that_of_the_test_loader():
    """A --cfg-options change of the test loader's Resize (what test.py
    scores) left the export and infer.py at the top-level test_pipeline's
    size."""
    from mmengine.config import Config

    from mmseg_dsnet.deploy import input_size_of
    cfg = Config.fromfile(str(REPO / 'configs/dsnet/dsnet_isic2018.py'))
    assert input_size_of(cfg) == (256, 256)
    cfg.merge_from_dict(
        {'test_dataloader.dataset.pipeline.1.scale': (160, 128)})
    assert cfg.test_dataloader.dataset.pipeline[1].type == 'Resize'
    assert input_size_of(cfg) == (128, 160)


def test_non_finite_onnxruntime_logits_fail_the_check(monkeypatch, capsys):
    """NaN logits where the model sees background passed: max() skips a
    NaN that is not first, and a NaN pixel decides background. The
    progress bar counts the failed case too (it ends at 2/2)."""
    import torch

    from mmseg_dsnet.deploy import parity
    net = torch.nn.Conv2d(3, 1, 1).eval()
    with torch.no_grad():
        net.bias.fill_(-10.0)  # every pixel background
    rng = np.random.default_rng(0)
    cases = [('one', rng.random((1, 3, 8, 8), np.float32)),
             ('two', rng.random((2, 3, 8, 8), np.float32))]

    def onnxruntime_with_nan(session, batch):
        with torch.no_grad():
            out = net(torch.from_numpy(batch)).numpy()
        if len(batch) == 2:
            out[1, 0, :2] = np.nan
        return out

    monkeypatch.setattr(parity, 'run_ort', onnxruntime_with_nan)
    result = parity.check_parity(net, net, None, cases, threshold=0.5,
                                 progress=True)
    assert not result['passed']
    assert result['errors'] == [
        'two: onnxruntime gave 16 non-finite logits (nan or inf)']
    assert '| 2/2 [' in capsys.readouterr().err


def test_the_parity_bar_steps_once_a_case_is_checked():
    """The bar steps after a case is done (also one that failed and was
    passed over), not as it starts: it does not show a batch as checked
    while the models still run on it."""
    import io

    from mmseg_dsnet.deploy.parity import _counted
    from mmseg_dsnet.progress import progress_bar
    bar = progress_bar(3, 'parity check', unit='batch', file=io.StringIO())
    seen = []
    for case in _counted(['one', 'two', 'three'], bar):
        seen.append(bar.n)
        if case == 'two':
            continue
    assert seen == [0, 1, 2] and bar.n == 3
    bar.close()


def test_non_finite_pytorch_logits_fail_the_check(monkeypatch):
    """A NaN logit of the model as trained in the second case: its
    difference (NaN) was dropped by max() and compared False with the
    tolerance, so the check passed on the first case alone."""
    import torch

    from mmseg_dsnet.deploy import parity
    net = torch.nn.Conv2d(3, 1, 1).eval()

    class NanOnBatchTwo(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = self.net(x)
            if len(x) == 2:
                out = out.clone()
                out[1, 0, 0, 0] = float('nan')
            return out

    rng = np.random.default_rng(0)
    cases = [('one', rng.random((1, 3, 8, 8), np.float32)),
             ('two', rng.random((2, 3, 8, 8), np.float32))]

    def onnxruntime(session, batch):
        with torch.no_grad():
            return net(torch.from_numpy(batch)).numpy()

    monkeypatch.setattr(parity, 'run_ort', onnxruntime)
    result = parity.check_parity(NanOnBatchTwo(), net, None, cases,
                                 threshold=0.5)
    assert not result['passed']
    assert result['errors'] == [
        'two: PyTorch (the model as trained, float32) gave 1 non-finite '
        'logit (nan or inf); PyTorch (the model as trained, float64) '
        'gave 1 non-finite logit (nan or inf)']
    # Differences are judged so that a NaN or inf one never passes.
    assert not parity.within(float('nan'), 1.0)
    assert not parity.within(float('inf'), float('inf'))
    assert parity.within(1e-6, 1e-5)
    assert np.isnan(parity.largest([1e-6, float('nan')]))


def test_int8_comparison_reports_a_nan_logit(monkeypatch):
    """A NaN int8 logit after the first batch was dropped by max(): the
    report said max_abs_logit_diff 0.0 while its masks read background."""
    import math

    from mmseg_dsnet.deploy import int8
    clean = np.zeros((1, 1, 4, 4), dtype=np.float32)
    broken = clean.copy()
    broken[0, 0, 0, 0] = np.nan
    outputs = {('fp32', 0): clean, ('int8', 0): clean,
               ('fp32', 1): clean, ('int8', 1): broken}
    monkeypatch.setattr(int8, 'run_ort',
                        lambda session, batch: outputs[(session,
                                                        int(batch[0, 0]))])
    batches = [(f'b{i}', np.full((1, 1), i), None) for i in (0, 1)]
    report = int8.compare_int8('fp32', 'int8', batches, threshold=0.5)
    assert math.isnan(report['max_abs_logit_diff'])


def test_deployable_refuses_a_segmentor_in_training_mode():
    """A segmentor built with MODELS.build and loaded with mmengine's
    load_checkpoint is in training mode; wrapped in DeployableSegmentor
    its BatchNorms used the batch's statistics (30 % of the released
    model's mask pixels flipped), no error."""
    from mmseg_dsnet.deploy import DeployableSegmentor, build_segmentor
    from mmseg_dsnet.utils.errors import UserError
    segmentor = build_segmentor(
        str(REPO / 'configs/dsnet/dsnet_isic2017.py'),
        str(REPO / 'checkpoints/dsnet_isic2017_256px.pth'),
        reparameterize=False)
    network = DeployableSegmentor.from_segmentor(segmentor)
    images = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        expected = network(images)
        segmentor.train()
        with pytest.raises(UserError, match='in training mode'):
            network(images)
        network.eval()  # the wrapper's eval() puts the segmentor back
        assert torch.equal(network(images), expected)


def test_a_failed_int8_model_leaves_no_earlier_one_beside_the_new_model(
        checkpoint, image_dir, tmp_path, capsys):
    """``--overwrite`` over an earlier run's pair, the int8 model failing
    its check: the new fp32 model was written and the earlier int8 model
    stayed beside it, the int8 form of another model (exit 1, but the pair
    looked complete). Now it is removed, and the report says so."""
    import json
    tool = load_tool('deployment/export_onnx.py')
    out, int8 = tmp_path / 'model.onnx', tmp_path / 'q.onnx'
    report = tmp_path / 'report.json'
    out.write_bytes(b'earlier fp32')
    int8.write_bytes(b'earlier int8')
    code = tool.main([CONFIG, checkpoint, str(out), '--int8', str(int8),
                      '--check-images', str(image_dir), '--json',
                      str(report), '--int8-min-mask-iou', '100',
                      '--num-calib-images', '4', '--overwrite'])
    text = capsys.readouterr().out
    assert code == 1, text
    assert f'Removed {int8}: an earlier int8 model, not of the model now ' \
        f'at {out}' in text
    assert out.read_bytes()[:12] != b'earlier fp32' and not int8.exists()
    figures = json.loads(report.read_text())
    assert figures['written'] == [str(out)]
    assert figures['not_written'] == [str(int8)]
    assert figures['earlier_file_kept'] == []


def test_an_interrupted_int8_export_leaves_no_earlier_pair_beside_it(
        checkpoint, image_dir, tmp_path, capsys, monkeypatch):
    """Ctrl-C (or SIGTERM, a crash of the quantizer) after the new fp32
    model was written, under ``--overwrite`` over an earlier run's files:
    the earlier int8 model and report stayed beside the new model, the
    int8 form and the figures of another model."""
    from mmseg_dsnet.deploy import onnx_export
    tool = load_tool('deployment/export_onnx.py')
    out, int8 = tmp_path / 'model.onnx', tmp_path / 'q.onnx'
    report = tmp_path / 'report.json'
    out.write_bytes(b'earlier fp32')
    int8.write_bytes(b'earlier int8')
    report.write_text('{"onnx_file": "model.onnx", "passed": true}')

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, '_quantize_and_compare', interrupted)
    with pytest.raises(KeyboardInterrupt):
        tool.main([CONFIG, checkpoint, str(out), '--int8', str(int8),
                   '--check-images', str(image_dir), '--json', str(report),
                   '--overwrite'])
    text = capsys.readouterr().out
    assert out.read_bytes()[:12] != b'earlier fp32'
    assert not int8.exists() and not report.exists()
    assert f'Removed {int8}: an earlier int8 model, not of the model now ' \
        f'at {out}' in text
    assert f'Removed {report}: an earlier report, not of the model now at ' \
        f'{out}' in text
    assert sorted(os.listdir(tmp_path)) == ['model.onnx']


def test_a_failed_report_write_leaves_no_earlier_report_beside_the_model(
        checkpoint, image_dir, tmp_path, capsys, monkeypatch):
    """``--json report.json --overwrite`` over an earlier run's pair, the
    write of the new report failing (a full disk, an interrupt) after the
    new model was put in place: the earlier report, figures and ``passed``
    of another model, stayed beside it."""
    tool = load_tool('deployment/export_onnx.py')
    out, report = tmp_path / 'model.onnx', tmp_path / 'report.json'
    out.write_bytes(b'earlier fp32')
    report.write_text('{"onnx_file": "model.onnx", "passed": true}')
    write = tool.atomic_write

    def disk_full_at_the_report(data, path, *args, **kwargs):
        if str(path) == str(report):
            raise OSError(28, 'No space left on device')
        return write(data, path, *args, **kwargs)

    monkeypatch.setattr(tool, 'atomic_write', disk_full_at_the_report)
    with pytest.raises(OSError, match='No space left'):
        tool.main([CONFIG, checkpoint, str(out), '--check-images',
                   str(image_dir), '--json', str(report), '--overwrite'])
    assert out.read_bytes()[:12] != b'earlier fp32'
    assert f'Removed {report}: an earlier report, not of the model now at ' \
        f'{out}' in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ['model.onnx']


@pytest.mark.parametrize('flags,expected', [
    # mmseg's data preprocessor flips the channels for either flag: the
    # model was trained on RGB, and gets the RGB input unflipped.
    (dict(bgr_to_rgb=True), [(10 - 1) / 2, (20 - 2) / 4, (30 - 3) / 8]),
    (dict(rgb_to_bgr=True), [(10 - 1) / 2, (20 - 2) / 4, (30 - 3) / 8]),
    # Neither: the model was trained on mmcv's BGR loading.
    (dict(), [(30 - 1) / 2, (20 - 2) / 4, (10 - 3) / 8]),
])
def test_deployable_normalises_in_the_models_channel_order(flags, expected):
    """An RGB pixel (10, 20, 30) reaches the segmentor as
    ``(pixel - mean) / std`` in the order the config's preprocessor gave
    the model its training images."""
    from mmengine.config import Config

    from mmseg_dsnet.deploy import DeployableSegmentor

    class Identity(torch.nn.Module):
        def forward(self, x, mode):
            assert mode == 'tensor'
            return x

    cfg = Config(dict(
        model=dict(data_preprocessor=dict(mean=[1, 2, 3], std=[2, 4, 8],
                                          **flags)),
        test_pipeline=[dict(type='LoadImageFromFile'),
                       dict(type='Resize', scale=(8, 8), keep_ratio=False)]))
    network = DeployableSegmentor.from_segmentor(Identity().eval(), cfg)
    images = torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1).expand(
        2, 3, 4, 5)
    out = network(images)
    assert out.shape == (2, 3, 4, 5)
    assert torch.equal(out, torch.tensor(expected).view(1, 3, 1, 1).expand(
        2, 3, 4, 5))


def test_int8_comparison_figures_from_known_masks(monkeypatch):
    """Pixel agreement, fp32-vs-int8 mask IoU, the logit difference and
    the ground-truth IoUs (ignore label 255 left out) of hand-made logits
    (mutation testing: swapped counts and a dropped ignore label passed)."""
    from mmseg_dsnet.deploy import int8
    fp32 = np.array([[[[1, 1, -1, -1], [1, -1, -1, -1]]]], np.float32)
    int8_out = np.array([[[[1, -1, 1, -1], [1, -1, -1, -1]]]], np.float32)
    outputs = {('fp32', 0): fp32, ('int8', 0): int8_out,
               ('fp32', 1): np.full((1, 1, 2, 4), -3, np.float32),
               ('int8', 1): np.full((1, 1, 2, 4), -2.5, np.float32)}
    monkeypatch.setattr(int8, 'run_ort',
                        lambda session, batch: outputs[(session,
                                                        int(batch[0, 0]))])
    truth = np.array([[1, 1, 255, 0], [0, 0, 0, 0]], np.uint8)
    batches = [('b0', np.zeros((1, 1)), [truth]),
               ('b1', np.ones((1, 1)), [None])]
    report = int8.compare_int8('fp32', 'int8', batches, threshold=0.5)
    assert report['images'] == 2
    # 2 of 16 pixels differ; the masks share 2 of their 4 lesion pixels.
    assert report['pixel_agreement'] == pytest.approx(100 * 14 / 16)
    assert report['mask_iou_fp32_vs_int8'] == pytest.approx(50.0)
    assert report['max_abs_logit_diff'] == pytest.approx(2.0)
    # Against the truth without its 255 pixel: fp32 2/3, int8 1/3.
    assert report['images_with_ground_truth'] == 1
    assert report['iou_fp32'] == pytest.approx(200 / 3)
    assert report['iou_int8'] == pytest.approx(100 / 3)
    assert report['iou_drop'] == pytest.approx(100 / 3)
    # At threshold 0.9 (logit 2.2) both models see no lesion anywhere:
    # identical (empty) masks are full agreement.
    report = int8.compare_int8('fp32', 'int8', batches, threshold=0.9)
    assert report['pixel_agreement'] == 100.0
    assert report['mask_iou_fp32_vs_int8'] == 100.0
    assert report['iou_fp32'] == report['iou_int8'] == 0.0


@pytest.mark.parametrize('iou, written', [(90.0, True), (89.99, False)])
def test_int8_pass_rule_at_the_minimum_mask_iou(checkpoint, image_dir,
                                                tmp_path, monkeypatch, iou,
                                                written):
    """A mask IoU equal to --int8-min-mask-iou passes ("at least"); just
    below it fails (mutation testing: > for >= passed)."""
    from mmseg_dsnet.deploy import onnx_export
    monkeypatch.setattr(onnx_export, 'compare_int8', lambda *args: dict(
        images=3, pixel_agreement=99.0, mask_iou_fp32_vs_int8=iou,
        mean_image_mask_iou=iou, worst_image_mask_iou=iou,
        max_abs_logit_diff=0.5))
    out, int8 = tmp_path / 'model.onnx', tmp_path / 'q.onnx'
    result = onnx_export.export_and_check(
        CONFIG, checkpoint, str(out), shape=(64, 64), int8_file=str(int8),
        check_images=[str(image_dir)], log=lambda text: None,
        int8_min_mask_iou=90.0)
    assert result['int8']['passed'] is written
    assert result['passed'] is written and int8.exists() is written


def small_lesions_erased(n_images, size=64):
    """Logits of a float model that sees a lesion filling half of the
    first image and a 2x2 one in each other, and of an int8 model that
    keeps the large one and misses every small one (a quarter of a
    lesion's pixels are lost on most images: 2048 of 2048 + 4 (n - 1))."""
    fp32 = np.full((n_images, 1, size, size), -5, np.float32)
    fp32[0, 0, :size // 2] = 5
    fp32[1:, 0, 10:12, 10:12] = 5
    int8_out = fp32.copy()
    int8_out[1:] = -5
    return fp32, int8_out


def test_int8_per_image_mask_iou_counts_every_image_alike(monkeypatch):
    """Pooled IoU of three images with the small lesions of two erased by
    int8 is 2048 / 2056 = 99.6 %; per image it is 100, 0 and 0 %."""
    from mmseg_dsnet.deploy import int8
    fp32, int8_out = small_lesions_erased(3)
    outputs = dict(fp32=fp32, int8=int8_out)
    monkeypatch.setattr(int8, 'run_ort',
                        lambda session, batch: outputs[session][:len(batch)])
    # Ground truth: the large lesion alone, so the float model's masks
    # score 2048 / 2056 and the int8 model's 2048 / 2048 (every image).
    truths = [(fp32[i, 0] > 0).astype(np.uint8) * (i == 0) for i in range(3)]
    report = int8.compare_int8('fp32', 'int8', [('b', fp32, truths)], 0.5)
    assert report['images'] == report['images_with_ground_truth'] == 3
    assert report['mask_iou_fp32_vs_int8'] == pytest.approx(
        100 * 2048 / 2056)
    assert report['mean_image_mask_iou'] == pytest.approx(100 / 3)
    assert report['worst_image_mask_iou'] == 0.0
    assert report['iou_fp32'] == pytest.approx(100 * 2048 / 2056)
    assert report['iou_int8'] == 100.0
    assert report['iou_drop'] == pytest.approx(100 * 2048 / 2056 - 100)
    # An image where neither model sees a lesion is full agreement.
    empty = np.full((2, 1, 4, 4), -5, np.float32)
    outputs.update(fp32=empty, int8=empty)
    report = int8.compare_int8('fp32', 'int8', [('b', empty, None)], 0.5)
    assert report['mean_image_mask_iou'] == 100.0
    assert report['worst_image_mask_iou'] == 100.0


def test_the_int8_gate_needs_both_ious_and_finite_logits():
    """At least the limit in pooled and mean per-image IoU passes; below it
    in either fails, naming that one; a NaN or infinite logit fails
    whatever the masks."""
    from mmseg_dsnet.deploy.int8 import int8_rejection

    def figures(pooled, mean, diff=0.5):
        return dict(mask_iou_fp32_vs_int8=pooled, mean_image_mask_iou=mean,
                    max_abs_logit_diff=diff)

    assert int8_rejection(figures(90.0, 90.0), 90.0) is None
    assert int8_rejection(figures(89.99, 99.0), 90.0) == (
        "its masks overlap the float model's by pooled IoU 89.99 %, less "
        'than the 90 % asked')
    assert int8_rejection(figures(99.0, 89.99), 90.0) == (
        "its masks overlap the float model's by mean IoU per image 89.99 %, "
        'less than the 90 % asked')
    assert int8_rejection(figures(10.0, 20.0), 0) is None
    for diff in (float('nan'), float('inf')):
        assert int8_rejection(figures(100.0, 100.0, diff), 0) == (
            'it gives NaN or infinite logits')


def test_an_int8_model_that_erases_the_small_lesions_is_not_written(
        checkpoint, image_dir, tmp_path, monkeypatch):
    """The int8 gate was the pooled IoU of its masks with the float
    model's, which the large lesions fill: an int8 model that erased the
    lesions of most images passed at 90 % (ISIC 2017 test set: erasing the
    smallest 40 % leaves 92 % pooled IoU), was written, PASSED, exit 0.
    Now the mean IoU per image must reach the limit too. The two models'
    logits here are made by hand (the quantization itself is real)."""
    from mmseg_dsnet.deploy import int8 as int8_module
    from mmseg_dsnet.deploy.onnx_export import export_and_check
    fp32, int8_out = small_lesions_erased(3)
    outputs, seen = dict(fp32=fp32, int8=int8_out), dict(fp32=0, int8=0)

    def run_ort(session, batch):
        # compare_int8 runs the float model, then the int8 one, per batch.
        which = 'fp32' if seen['fp32'] == seen['int8'] else 'int8'
        start = seen[which]
        seen[which] += len(batch)
        return outputs[which][start:start + len(batch)]

    monkeypatch.setattr(int8_module, 'run_ort', run_ort)
    out, int8 = tmp_path / 'model.onnx', tmp_path / 'q.onnx'
    lines = []
    result = export_and_check(
        CONFIG, checkpoint, str(out), shape=(64, 64), int8_file=str(int8),
        check_images=[str(image_dir)], log=lines.append,
        int8_min_mask_iou=90.0)
    assert out.is_file() and not int8.exists()
    figures = result['int8']
    assert not figures['passed'] and not result['passed']
    assert figures['mask_iou_fp32_vs_int8'] > 99
    assert figures['mean_image_mask_iou'] == pytest.approx(100 / 3)
    assert ("FAILED int8: its masks overlap the float model's by mean IoU "
            f'per image 33.33 %, less than the 90 % asked; {int8} not '
            'written') in lines


def test_onnxruntime_backend_refuses_another_input_size(exported):
    """``OnnxRuntimeBackend(f, input_size=(128, 128))`` of a model exported
    at 256x256 (a dynamic graph) ran it at 128x128 and gave other masks
    without an error (the released DSNet: 23 % of one photo's mask pixels
    flipped, its lesion nearly gone); ``input_size=[256, '256']`` was kept
    as given."""
    from mmseg_dsnet.apis import OnnxRuntimeBackend
    from mmseg_dsnet.deploy.ort_session import OnnxModelError
    out, _ = exported
    assert OnnxRuntimeBackend(str(out)).input_size == (256, 256)
    assert OnnxRuntimeBackend(str(out),
                              input_size=[256, 256]).input_size == (256, 256)
    with pytest.raises(OnnxModelError, match=r'was exported to run at '
                       r'256x256 \(its mmseg_dsnet.input_size: .*\), but '
                       r'input_size is 128x128: .* leave input_size out'):
        OnnxRuntimeBackend(str(out), input_size=(128, 128))
    for given in ([256, '256'], 256, (256, 256, 3), (0, 256)):
        with pytest.raises(OnnxModelError, match=r'input_size must be '
                           r'\(height, width\), two positive whole numbers'):
            OnnxRuntimeBackend(str(out), input_size=given)


def test_a_model_exported_without_a_checkpoint_is_refused_where_used(
        exported, checkpoint, image_dir, tmp_path, capsys):
    """``export_onnx(config, None, OUT)`` from Python writes random
    weights; the file held nothing that said so, and ``infer.py OUT``
    wrote its meaningless masks, exit 0. Now the file records the weights
    it holds (the checkpoint's name and SHA-256, or random), and a random
    one is refused by name, before any output is written."""
    import hashlib

    import onnx
    from conftest import run_cli
    from mmseg_dsnet.apis import OnnxRuntimeBackend
    from mmseg_dsnet.deploy.onnx_export import export_onnx
    from mmseg_dsnet.deploy.ort_session import OnnxModelError
    out, _ = exported
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    digest = hashlib.sha256(open(checkpoint, 'rb').read()).hexdigest()
    assert meta['mmseg_dsnet.weights'] == f'dsnet.pth sha256 {digest}'
    OnnxRuntimeBackend(str(out))  # a trained model runs

    random_file = tmp_path / 'random.onnx'
    export_onnx(CONFIG, None, str(random_file), shape=(64, 64))
    with pytest.raises(OnnxModelError, match=r'random.onnx was exported '
                       r'without a checkpoint .*weights are random'):
        OnnxRuntimeBackend(str(random_file))
    infer = load_tool('infer.py').main
    code, err = run_cli(infer, [random_file, image_dir, '--out-dir',
                                tmp_path / 'masks', '--no-progress'], capsys)
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith(
        f'ERROR: {random_file} was exported without a checkpoint')
    assert not (tmp_path / 'masks').exists()


def test_flips_are_refused_for_a_model_whose_config_scores_other_tta_views(
        checkpoint, image_dir, tmp_path, capsys):
    """An ONNX file exported from a config with its own ``tta_pipeline``
    (two scales), which ``tools/test.py --tta`` scores: ``infer.py M.onnx
    --tta`` (``LesionInferencer(OnnxRuntimeBackend(M), flips=True)``)
    averaged the three flips at the test size without a word, exit 0,
    where the same run from the config is refused. The export now records
    it and the flips are refused by name; without ``--tta`` it runs."""
    import onnx
    from conftest import run_cli
    from mmseg_dsnet.apis import LesionInferencer, OnnxRuntimeBackend
    from mmseg_dsnet.deploy.onnx_export import export_onnx
    from mmseg_dsnet.utils.errors import UserError
    config = tmp_path / 'two_scales.py'
    config.write_text(
        f"_base_ = '{CONFIG}'\n"
        "tta_pipeline = [dict(type='LoadImageFromFile'), dict(\n"
        "    type='TestTimeAug', transforms=[\n"
        "        [dict(type='Resize', scale=(256, 256), keep_ratio=False),\n"
        "         dict(type='Resize', scale=(320, 320), keep_ratio=False)],\n"
        "        [dict(type='LoadAnnotations')],\n"
        "        [dict(type='PackSegInputs')]])]\n")
    scales = tmp_path / 'scales.onnx'
    export_onnx(str(config), checkpoint, str(scales), shape=(64, 64))
    plain = tmp_path / 'plain.onnx'
    export_onnx(CONFIG, checkpoint, str(plain), shape=(64, 64))
    meta = {p.key: p.value for p in onnx.load(str(plain)).metadata_props}
    assert meta['mmseg_dsnet.flip_tta'] == 'True'
    assert LesionInferencer(OnnxRuntimeBackend(str(plain)), flips=True).flips

    backend = OnnxRuntimeBackend(str(scales))
    with pytest.raises(UserError, match=r'scales.onnx was exported from a '
                       r'config that sets its own tta_pipeline'):
        LesionInferencer(backend, flips=True)
    assert not LesionInferencer(backend).flips
    infer = load_tool('infer.py').main
    code, err = run_cli(infer, [scales, image_dir, '--tta', '--out-dir',
                                tmp_path / 'tta', '--no-progress'], capsys)
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith(
        f'ERROR: --tta: {scales} was exported from a config that sets its '
        'own tta_pipeline')
    assert not (tmp_path / 'tta').exists()
    code, err = run_cli(infer, [scales, image_dir, '--out-dir',
                                tmp_path / 'once', '--no-progress'], capsys)
    assert code == 0, err


def test_an_int8_model_says_it_is_one(exported, tmp_path, capsys):
    """``quantize_int8`` copies the float model's metadata, its weights
    record included, so the int8 file read as the float model (nothing in
    it, nor in ``infer.py``'s lines, said int8). Now its
    ``mmseg_dsnet.precision`` is ``int8`` (the float model's ``float32``)
    and ``infer.py`` names it."""
    import onnx
    from conftest import run_cli
    from mmseg_dsnet.apis import OnnxRuntimeBackend
    from mmseg_dsnet.deploy.int8 import quantize_int8
    out, _ = exported
    int8 = tmp_path / 'q.onnx'
    calibration = [np.random.default_rng(0).uniform(
        0, 255, (2, 3, 64, 64)).astype(np.float32)]
    quantize_int8(str(out), str(int8), calibration)

    def meta(path):
        return {p.key: p.value for p in onnx.load(str(path)).metadata_props}

    assert meta(out)['mmseg_dsnet.precision'] == 'float32'
    assert meta(int8)['mmseg_dsnet.precision'] == 'int8'
    assert meta(int8)['mmseg_dsnet.weights'] == meta(out)[
        'mmseg_dsnet.weights']
    assert OnnxRuntimeBackend(str(int8)).precision == 'int8'
    image = tmp_path / 'a.png'
    Image.fromarray(lesion_image(40, 50, 0)).save(image)
    code, err = run_cli(load_tool('infer.py').main,
                        [int8, image, '--out-dir', tmp_path / 'masks',
                         '--no-progress'], capsys)
    assert code == 0, err
    assert '1 image, backend onnxruntime (int8 model), model input' in err


def test_int8_figures_name_the_size_they_were_measured_at(
        checkpoint, tiny_isic, tmp_path):
    """``export_onnx.py C.py CKPT M.onnx --shape 32 32 --int8 Q`` with a
    64 px config: the int8 model was calibrated and measured at 32x32 (the
    size of the checks), while the file runs at 64x64 (its
    ``mmseg_dsnet.input_size``), and its lesion IoU was printed as "at the
    model's input size". Now the line names the size of the figures and
    the size the model runs at, and the report holds ``measured_at``."""
    from conftest import write_tiny_config
    from mmseg_dsnet.deploy.onnx_export import export_and_check
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic)
    lines = []
    result = export_and_check(
        str(config), checkpoint, str(tmp_path / 'm.onnx'), shape=(32, 32),
        int8_file=str(tmp_path / 'q.onnx'), num_check_images=2,
        num_calib_images=2, log=lines.append, int8_min_mask_iou=0)
    assert result['parity']['passed'], lines
    line, = [text for text in lines if text.startswith('int8 model ')]
    assert ' at 32x32 (--shape; the model runs at 64x64): mask pixel ' \
        'agreement' in line, line
    assert 'lesion IoU vs ground truth at 32x32, fp32' in line, line
    assert "the model's input size" not in line
    assert result['int8']['measured_at'] == [32, 32]


def test_a_dynamic_export_at_another_shape_is_checked_at_its_run_size(
        checkpoint, tiny_isic, tmp_path):
    """``export_onnx.py C.py CKPT M.onnx --shape 32 32`` with a 64 px
    config: the file runs at 64x64 (its ``mmseg_dsnet.input_size``, the
    size infer.py feeds it), but the parity check ran at 32x32 and 96x64
    only, and PASSED named no size. Now a case at 64x64 is checked too,
    and the parity line names every size it ran."""
    import onnx
    from conftest import write_tiny_config
    from mmseg_dsnet.deploy.onnx_export import export_and_check
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic)
    out, lines = tmp_path / 'm.onnx', []
    result = export_and_check(
        str(config), checkpoint, str(out), shape=(32, 32),
        num_check_images=2, log=lines.append)
    assert result['passed'], lines
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta['mmseg_dsnet.input_size'] == '64,64'
    shapes = [case['shape'] for case in result['parity']['cases']]
    assert [1, 3, 64, 64] in shapes and [2, 3, 32, 32] in shapes
    line, = [text for text in lines if text.startswith('Parity ')]
    assert ' batches at 32x32, 96x64, 64x64, ' in line, line


def test_an_export_says_which_form_it_holds_and_checked(checkpoint,
                                                        image_dir, tmp_path):
    """``--no-reparameterize`` with a deploy config (as reparameterize.py
    writes it) exported its re-parameterised model with
    ``mmseg_dsnet.reparameterized`` False; the report called that model
    "as trained" and printed "re-parameterised vs trained 0.00e+00", a fold
    that did not happen (so did a training config with
    ``--no-reparameterize``: "289108 parameters after re-parameterisation,
    289108 as trained")."""
    import onnx
    from mmseg_dsnet.deploy import write_deploy_checkpoint
    from mmseg_dsnet.deploy.onnx_export import export_and_check
    deploy = tmp_path / 'deploy.pth'
    write_deploy_checkpoint(CONFIG, str(checkpoint), str(deploy), (64, 64))
    runs = {}
    for name, config, weights, fold in (
            ('deploy', str(deploy.with_suffix('.py')), deploy, False),
            # The default (re-parameterise): nothing left to fold.
            ('deploy_default', str(deploy.with_suffix('.py')), deploy, True),
            ('trained', CONFIG, checkpoint, False),
            ('folded', CONFIG, checkpoint, True)):
        out, lines = tmp_path / f'{name}.onnx', []
        result = export_and_check(
            config, str(weights), str(out), shape=(64, 64),
            reparameterize=fold, check_images=[str(image_dir)],
            num_check_images=1, log=lines.append)
        assert result['passed']
        meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        runs[name] = (meta['mmseg_dsnet.reparameterized'],
                      result['export']['reparameterized'],
                      result['export'].get('reference'), '\n'.join(lines))
    for name in ('deploy', 'deploy_default'):
        meta, reported, reference, text = runs[name]
        # The file holds the re-parameterised model, and says so.
        assert meta == 'True'
        assert (reported, reference) == (True, 'deploy config')
        assert 'as trained' not in text
        assert 're-parameterised vs trained' not in text
        assert "PyTorch the deploy config's model" in text
    meta, reported, reference, text = runs['trained']
    assert (meta, reported, reference) == ('False', False, 'as trained')
    assert 'after re-parameterisation' not in text
    assert 're-parameterised vs trained' not in text
    assert 'parameters, not re-parameterised' in text
    # The default: a training config's model folded here, and said so.
    meta, reported, reference, text = runs['folded']
    assert (meta, reported, reference) == ('True', True, 'as trained')
    assert 'parameters after re-parameterisation' in text
    assert 're-parameterised vs trained' in text
    assert 'not re-parameterised' not in text


def test_int8_calibration_says_how_many_images_it_used(checkpoint, image_dir,
                                                       tmp_path):
    """Without the config's training images, the int8 model was calibrated
    on the three check images where 32 were asked, and the report said
    ``calibrated on the check images``, as if it had what it asked for."""
    from mmseg_dsnet.deploy.onnx_export import export_and_check
    config = tmp_path / 'no_train_data.py'
    config.write_text(
        f"_base_ = '{CONFIG}'\n"
        f"train_dataloader = dict(dataset=dict(data_root='{tmp_path}/no'))\n")
    lines = []
    result = export_and_check(
        str(config), checkpoint, str(tmp_path / 'm.onnx'), shape=(64, 64),
        int8_file=str(tmp_path / 'q.onnx'), check_images=[str(image_dir)],
        num_calib_images=32, int8_min_mask_iou=0, log=lines.append)
    calibration = result['int8']['calibration']
    assert calibration == (f'the check images (3 files from {image_dir}): '
                           '3 images, 32 asked')
    assert result['int8']['calibration_images'] == 3
    assert f'calibrated on {calibration})' in '\n'.join(lines)


def test_a_check_too_small_to_see_every_weight_is_refused(tmp_path):
    """A config of a small input size exported ``--static-size`` was
    checked at that size alone: at 32x32 some 3x3 weights of the deeper
    stages meet only the zero padding, so a wrong value of them in the
    file passed the check, exit 0. A dynamic export is also checked at a
    second size and the config's, which see them all (``--shape 32 32``
    under a 256 px config passes). A size the model cannot run at (below
    31 px with pooled downsampling) is refused, not a traceback."""
    from conftest import DEMO_128PX, run_tool_in_process
    from mmengine.config import Config

    from mmseg_dsnet.deploy.onnx_export import check_sizes_see_every_weight
    from mmseg_dsnet.deploy.deployable import build_segmentor
    from mmseg_dsnet.utils.errors import UserError
    model = build_segmentor(CONFIG, None, reparameterize=False)
    check_sizes_see_every_weight([model], (32, 32), True, (256, 256))
    with pytest.raises(UserError, match=r'--shape 2 2: the model of c.py '
                       r'cannot run at this input size \(RuntimeError: .*'
                       r'\); give a size it takes, such as its 256 256'):
        check_sizes_see_every_weight([model], (2, 2), True, (256, 256),
                                     'c.py')
    with pytest.raises(UserError, match=r'--shape 32 32 is too small for '
                       r'the parity check: at every size it runs \(32x32\)'):
        check_sizes_see_every_weight([model], (32, 32), False, (32, 32))
    assert model.training is False
    cfg = Config.fromfile(DEMO_128PX)
    cfg.model.data_preprocessor.size = (32, 32)
    for pipeline in (cfg.test_pipeline, cfg.test_dataloader.dataset.pipeline):
        for step in pipeline:
            if step['type'] == 'Resize':
                step['scale'] = (32, 32)
    config = str(tmp_path / 'dsnet_32px.py')
    cfg.dump(config)
    checkpoint = make_lesion_checkpoint(config, tmp_path / 'w.pth',
                                        lesion_image(256, 256, 0))
    out = tmp_path / 'out' / 'model.onnx'
    out.parent.mkdir()
    done = run_tool_in_process('tools/deployment/export_onnx.py', config,
                               checkpoint, out, '--static-size')
    assert done.returncode == 2, done.output[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith(
        'ERROR: --shape 32 32 is too small for the parity check: at every '
        'size it runs (32x32) weights of '), done.stderr[-2000:]
    assert os.listdir(out.parent) == []


def test_a_shared_convolution_is_seen_on_its_largest_map():
    """MALUNet's spatial bridge runs one 7x7 convolution (dilation 3) on
    every skip map: on the deepest (8x8 at 256 px) its outer taps meet
    only padding, on the others every tap meets pixels. Judged call by
    call it was "not seen" and its export at the config's size would be
    refused."""
    import torch

    from mmseg_dsnet.deploy.deployable import build_segmentor
    from mmseg_dsnet.deploy.onnx_export import check_sizes_see_every_weight
    from mmseg_dsnet.deploy.parity import convolutions_not_seen
    model = build_segmentor(
        str(REPO / 'configs/malunet/malunet_isic2017.py'), None,
        reparameterize=False)
    assert convolutions_not_seen(model, torch.zeros(1, 3, 256, 256)) == []
    check_sizes_see_every_weight([model], (256, 256), False, (256, 256))
    # At 32x32 its largest map (16x16) still meets every tap; the deepest
    # grouped convolutions, called once, do not.
    unseen = convolutions_not_seen(model, torch.zeros(1, 3, 32, 32))
    assert 'backbone.spatial_bridge.shared_conv' not in unseen
    assert 'backbone.encoder_stages.5.dga.group_convs.0.0' in unseen


class _OneConv(torch.nn.Module):
    """A 3x3 convolution (padding 1) of stride ``stride``, then BatchNorm:
    run in tensor mode as the parity check runs a segmentor."""

    def __init__(self, stride):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 3, stride=stride, padding=1)
        self.bn = torch.nn.BatchNorm2d(2)

    def forward(self, inputs, mode='tensor'):
        return self.bn(self.conv(inputs))


def test_a_weight_seen_only_on_larger_inputs_is_refused_for_any_model():
    """At 8x8 a stride-64 convolution gives one output pixel, whose top row
    and left column of taps read only padding; at 256x256 its later
    outputs read pixels through them, so a wrong value there changes the
    model's output: refused, whichever of the compared models has it. A
    stride-1000 convolution's first row and column meet only padding at
    any size up to 1000 (they change no output): not refused. The check
    leaves a model in training mode in it, BatchNorm statistics
    untouched."""
    from mmseg_dsnet.deploy.onnx_export import check_sizes_see_every_weight
    from mmseg_dsnet.utils.errors import UserError
    fine, unseen = _OneConv(1), _OneConv(64)
    for models in ([fine, unseen], [unseen, fine]):
        with pytest.raises(UserError, match=r'^--shape 8 8 is too small for'
                           r' the parity check: at every size it runs '
                           r'\(8x8\) weights of 1 convolution \(conv\)'):
            check_sizes_see_every_weight(models, (8, 8), False, (8, 8))
    check_sizes_see_every_weight([fine, _OneConv(1000)], (8, 8), False,
                                 (8, 8))
    fine.train()
    before = {k: v.clone() for k, v in fine.bn.state_dict().items()}
    check_sizes_see_every_weight([fine], (8, 8), False, (8, 8))
    assert fine.training and fine.bn.training
    after = fine.bn.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
