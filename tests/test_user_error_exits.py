"""User errors end with one ``ERROR:`` line and exit status 2 (train.py --amp
without an accelerator among them), outputs
follow the umask, a broken ONNX file is named, ``infer.py --recursive``
never reads its own outputs, the export parity rule passes every model
of the repository while failing a real mismatch (leaving no file), and a
file that is not a config is named by every tool that reads one."""
import os
import re
import stat

import cv2
import numpy as np
import pytest
import torch
from conftest import (REPO, load_tool, run_cli, run_tool_in_process,
                      write_tiny_config)

DSNET = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
MODEL_CONFIGS = [
    'configs/dsnet/dsnet_isic2017.py', 'configs/dsnet/dsnet-v1_isic2017.py',
    'configs/egeunet/egeunet_isic2017.py',
    'configs/malunet/malunet_isic2017.py'
]


def fake_onnx(path, input_size=(32, 32)):
    """A valid one-Conv lesion model (RGB 0..255 in, 1 logit out: dark
    pixels are lesion) with the metadata export_onnx writes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    weight = np.full((1, 3, 1, 1), -10 / (3 * 255), np.float32)
    graph = helper.make_graph(
        [helper.make_node('Conv', ['image', 'w', 'b'], ['logits'])], 'fake',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT,
                                       ['n', 3, 'h', 'w'])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT,
                                       ['n', 1, 'h', 'w'])],
        [numpy_helper.from_array(weight, 'w'),
         numpy_helper.from_array(np.array([5], np.float32), 'b')])
    model = helper.make_model(graph,
                              opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    from mmseg_dsnet.deploy.deployable import INPUT_FORMAT
    for key, value in (('mmseg_dsnet.input_size', '%d,%d' % input_size),
                       ('mmseg_dsnet.input_format', INPUT_FORMAT)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def random_checkpoint(config, path, seed=0):
    import mmseg_dsnet  # noqa: F401
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(config).model)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


# -- reparameterize.py --------------------------------------------------------


def test_reparameterize_user_error_is_one_error_line(tmp_path, capsys):
    tool = load_tool('deployment/reparameterize.py')
    missing = tmp_path / 'typo.pth'
    code, err = run_cli(tool.main, [DSNET, missing, tmp_path / 'd.pth'],
                        capsys)
    assert code == 2, err
    assert err == f'ERROR: checkpoint {missing} does not exist\n'
    assert sorted(os.listdir(tmp_path)) == []
    # An existing output without --overwrite: named, kept.
    ckpt = random_checkpoint(DSNET, tmp_path / 'trained.pth')
    (tmp_path / 'd.pth').write_bytes(b'keep')
    code, err = run_cli(tool.main, [DSNET, ckpt, tmp_path / 'd.pth'], capsys)
    assert code == 2 and err.startswith('ERROR: ') and '--overwrite' in err
    assert err.count('\n') == 1 and 'Traceback' not in err
    assert (tmp_path / 'd.pth').read_bytes() == b'keep'
    # A check it could not run: an empty size, a tolerance below 0.
    for option, message in (
            (['--shape', '0', '0'], '--shape takes 1 or 2 positive numbers, '
             'got [0, 0]'),
            (['--shape', '64', '64', '64'], '--shape takes 1 or 2 positive '
             'numbers, got [64, 64, 64]'),
            (['--atol', '-1'], '--atol must be positive, got -1'),
            # nan passed "<= 0" and then every parity test.
            (['--atol', 'nan'], '--atol must be positive, got nan')):
        code, err = run_cli(tool.main, [DSNET, ckpt, tmp_path / 'e.pth'] +
                            option, capsys)
        assert code == 2 and err == f'ERROR: {message}\n'
        assert not (tmp_path / 'e.pth').exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU-only '
                    'machine')
def test_train_amp_without_an_accelerator_is_one_error_line(tmp_path, capsys):
    """mmengine's AmpOptimWrapper asserted this with a traceback, after the
    work dir was made."""
    tool = load_tool('train.py')
    work = tmp_path / 'work'
    code, err = run_cli(tool.main, [DSNET, '--amp', '--work-dir', work],
                        capsys)
    assert code == 2, err
    assert err.startswith('ERROR: mixed precision') and 'GPU' in err
    assert err.count('\n') == 1 and not work.exists()


def test_train_with_a_seed_numpy_rejects_is_one_error_line(tmp_path, capsys):
    """numpy's traceback came after the work dir was made."""
    tool = load_tool('train.py')
    work = tmp_path / 'work'
    code, err = run_cli(tool.main, [DSNET, '--work-dir', work, '--cfg-options',
                                    'randomness.seed=-1'], capsys)
    assert code == 2, err
    assert err == ('ERROR: randomness.seed must be an integer from 0 to '
                   '2**32 - 1, got -1\n')
    assert not work.exists()


def test_a_transform_that_refuses_its_arguments_leaves_no_run_folder(
        tiny_isic, tmp_path, capsys):
    """A training transform's refusal came only when the runner built the
    dataset, after it had made the work dir's timestamp folder and config
    dump; now the pipelines are built before the runner exists."""
    zoom = str(REPO / 'configs/dsnet/design/'
               'dsnet-design-deeper-eighth-zoom_isic2017.py')
    data = [f'{loader}.dataset.data_root={tiny_isic}'
            for loader in ('train_dataloader', 'val_dataloader')]
    work = tmp_path / 'work'
    for option, message in (
            ('train_dataloader.dataset.pipeline.3.max_zoom=0.5',
             'RandomZoom max_zoom must be at least 1, got 0.5'),
            # mmcv's own check is a bare assert.
            ('train_dataloader.dataset.pipeline.4.prob=1.5',
             "RandomFlip refused the arguments {'prob': 1.5, "
             "'direction': 'horizontal'} (AssertionError)")):
        index = option.split('.')[3]
        code, err = run_cli(load_tool('train.py').main, [
            zoom, '--work-dir', work, '--cfg-options', option, *data],
            capsys)
        assert not work.exists()
        assert (code, err) == (2, (
            f'ERROR: train_dataloader.dataset.pipeline[{index}] of {zoom}: '
            f'{message}; nothing was started\n'))
    # The same check in fast_train.py, before its work dir (on a config
    # whose transforms it runs: it refuses RandomZoom as a whole).
    code, err = run_cli(load_tool('fast_train.py').main, [
        DSNET, '--work-dir', work, '--device', 'cpu', '--cfg-options',
        'train_dataloader.dataset.pipeline.3.prob=1.5', *data], capsys)
    assert not work.exists()
    assert code == 2 and err.startswith(
        f'ERROR: train_dataloader.dataset.pipeline[3] of {DSNET}: '
        "RandomFlip refused the arguments"), err
    # And in test.py, for the test pipeline.
    weights = tmp_path / 'weights.pth'
    weights.write_bytes(b'not read')
    code, err = run_cli(load_tool('test.py').main, [
        zoom, weights, '--work-dir', work, '--cfg-options',
        'test_dataloader.dataset.pipeline.1.scale=None',
        f'test_dataloader.dataset.data_root={tiny_isic}'], capsys)
    assert not work.exists()
    assert code == 2 and err.startswith(
        f'ERROR: test_dataloader.dataset.pipeline[1] of {zoom}: ')


def test_pytorch_launcher_outside_torchrun_is_one_error_line(
        tmp_path, capsys, monkeypatch):
    """mmengine's ``environment variable RANK expected, but not set``
    traceback came after the work dir was made."""
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    ckpt = random_checkpoint(DSNET, tmp_path / 'trained.pth')
    work = tmp_path / 'work'
    for script, argv in (('train.py', [DSNET]),
                         ('test.py', [DSNET, ckpt])):
        code, err = run_cli(load_tool(script).main, argv + [
            '--launcher', 'pytorch', '--work-dir', work], capsys)
        assert (code, err) == (2, (
            'ERROR: --launcher pytorch: RANK, WORLD_SIZE, MASTER_ADDR, '
            'MASTER_PORT not set, so this process was not started by '
            f'torchrun; run tools/dist_{script[:-3]}.sh (it starts one '
            'process per device), or leave out --launcher\n'))
        assert not work.exists()


def test_another_launcher_in_a_torchrun_process_is_refused_once(
        tmp_path, capsys, monkeypatch):
    """``dist_train.sh CONFIG 2 --launcher none`` (the user's --launcher
    comes after the script's ``--launcher pytorch`` and wins): each process
    trained the whole run alone, both at once into one work dir
    (``epoch_1.pth`` and the log written by both), exit 0. Refused on
    every process before the work dir is made; only rank 0 prints it."""
    from mmseg_dsnet.engine import cli_errors
    monkeypatch.setattr(cli_errors, 'RANK_0_GRACE_S', 0)
    monkeypatch.setenv('WORLD_SIZE', '2')
    ckpt = random_checkpoint(DSNET, tmp_path / 'trained.pth')
    work = tmp_path / 'work'
    for rank, script, argv in (('0', 'train.py', [DSNET]),
                               ('0', 'test.py', [DSNET, ckpt]),
                               ('1', 'train.py', [DSNET])):
        monkeypatch.setenv('RANK', rank)
        code, err = run_cli(load_tool(script).main, argv + [
            '--launcher', 'none', '--work-dir', work], capsys)
        assert (code, err) == (2, (
            'ERROR: --launcher none in one of the 2 processes torchrun '
            'started: each would run alone, on all the data, into the same '
            'work dir; leave out --launcher (tools/dist_'
            f'{script[:-3]}.sh gives pytorch), or run the tool without '
            'torchrun\n') if rank == '0' else '')
        assert not work.exists()
    # One process of its own (dist_train.sh CONFIG 1) runs as before.
    monkeypatch.setenv('WORLD_SIZE', '1')
    from mmseg_dsnet.engine import check_launched
    check_launched('none', 'dist_train.sh')


def test_test_show_without_a_visualization_hook_is_one_error_line(
        tmp_path, capsys):
    """``test.py --show-dir`` with a config without a visualization hook
    ended in mmseg's RuntimeError traceback (a TypeError for a hook or a
    visualizer set to None; ``--show`` without a visualizer showed nothing,
    exit 0). Refused before the checkpoint is read or the work dir is
    made."""
    tool = load_tool('test.py')
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read')
    no_hook = tmp_path / 'no_hook.py'
    no_hook.write_text(f"_base_ = '{DSNET}'\ndefault_hooks = dict(_delete_="
                       "True, timer=dict(type='IterTimerHook'))\n")
    work, show = tmp_path / 'work', tmp_path / 'show'
    hook_hint = ("; add default_hooks = dict(visualization=dict(type="
                 "'SegVisualizationHook')) to it\n")
    for config, options, message in (
            (no_hook, ['--show-dir', show], '--show-dir needs a '
             f'visualization hook in default_hooks of {no_hook}{hook_hint}'),
            (DSNET, ['--show', '--cfg-options',
                     'default_hooks.visualization=None'], '--show needs a '
             f'visualization hook in default_hooks of {DSNET}{hook_hint}'),
            (DSNET, ['--show-dir', show, '--cfg-options', 'visualizer=None'],
             f'--show-dir needs a visualizer in {DSNET}; add visualizer = '
             "dict(type='SegLocalVisualizer', vis_backends=[dict(type="
             "'LocalVisBackend')]) to it\n")):
        code, err = run_cli(tool.main,
                            [config, ckpt, '--work-dir', work] + options,
                            capsys)
        assert (code, err) == (2, f'ERROR: {message}')
        assert not work.exists() and not show.exists()


def test_test_show_dir_that_would_paint_nothing_is_refused(
        tiny_isic, tmp_path):
    """``test.py --show-dir DIR`` on a split of fewer batches than mmseg's
    visualization interval (50) painted nothing, exit 0, and a visualizer
    without a ``LocalVisBackend`` saved nothing either. Both are refused
    (no DIR, no metrics); a test that paints says how many and where."""
    from conftest import make_lesion_checkpoint
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic)
    ckpt = make_lesion_checkpoint(
        str(config), tmp_path / 'model.pth',
        np.zeros((256, 256, 3), np.uint8))
    no_backend = tmp_path / 'no_backend.py'
    no_backend.write_text(f"_base_ = '{config}'\nvisualizer = dict("
                          "_delete_=True, type='SegLocalVisualizer')\n")
    show, work = tmp_path / 'show', tmp_path / 'work'
    images = len((tiny_isic / 'splits' / 'lightweight_test.txt')
                 .read_text().split())
    for cfg, options, message in (
            (config, [], f'--show-dir {show} would paint no image: mmseg '
             'paints the images of one test batch in default_hooks.'
             f'visualization.interval (50) and the test split gives {images}'
             f' batches of {images} images; add --cfg-options default_'
             'hooks.visualization.interval=1 to paint every image. Nothing '
             'was tested.'),
            (no_backend, ['--cfg-options',
                          'default_hooks.visualization.interval=1'],
             "--show-dir needs a LocalVisBackend among the visualizer's "
             f'vis_backends in {no_backend} (it saves no painting without '
             "one); add visualizer = dict(vis_backends=[dict(type='Local"
             "VisBackend')]) to it")):
        proc = run_tool_in_process('tools/test.py', cfg, ckpt, '--work-dir',
                                   work, '--show-dir', show, *options)
        assert proc.returncode == 2, proc.output[-2000:]
        assert proc.stderr.strip().splitlines()[-1] == f'ERROR: {message}'
        assert not show.exists()
        assert not (work / 'test_metrics.json').exists()
    proc = run_tool_in_process(
        'tools/test.py', config, ckpt, '--work-dir', work, '--show-dir',
        show, '--cfg-options', 'default_hooks.visualization.interval=2',
        check=True)
    paintings = show / 'vis_data' / 'vis_image'
    assert len(list(paintings.iterdir())) == images // 2
    assert (f'Painted {images // 2} of the {images} test images into '
            f'{paintings} (one batch in 2; --cfg-options default_hooks.'
            'visualization.interval=1 paints all)') in proc.stdout


def test_a_test_refused_after_its_runner_is_built_leaves_no_log_folder(
        tiny_isic, tmp_path):
    """``test.py --show-dir DIR`` refused once the runner was built (it
    would paint no image) left ``WORK/<ts>/<ts>.log``, a log folder
    looking like a test's, in a work dir the refused command had made.
    Now neither stays; in a work dir that held files and an earlier run's
    log folder, those stay as they were."""
    from conftest import make_lesion_checkpoint
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic)
    ckpt = make_lesion_checkpoint(
        str(config), tmp_path / 'model.pth',
        np.zeros((256, 256, 3), np.uint8))
    show, fresh, used = (tmp_path / 'show', tmp_path / 'fresh',
                         tmp_path / 'used')
    earlier = used / '20200101_000000'
    earlier.mkdir(parents=True)
    (earlier / '20200101_000000.log').write_text('an earlier run\n')
    (used / 'notes.txt').write_text('kept\n')
    before = sorted(str(p.relative_to(used)) for p in used.rglob('*'))
    for work in (fresh, used):
        proc = run_tool_in_process('tools/test.py', config, ckpt,
                                   '--work-dir', work, '--show-dir', show)
        assert proc.returncode == 2, proc.output[-2000:]
        assert proc.stderr.strip().splitlines()[-1].startswith(
            f'ERROR: --show-dir {show} would paint no image')
    assert not fresh.exists() and not show.exists()
    assert sorted(str(p.relative_to(used)) for p in used.rglob('*')) == \
        before
    assert (earlier / '20200101_000000.log').read_text() == \
        'an earlier run\n'


def test_test_show_dir_refuses_two_images_of_one_file_name(
        tiny_isic, tmp_path):
    """``test.py --show-dir DIR`` on a split holding two images of one file
    name from two folders (a ``ConcatDataset`` of two sets): mmengine names
    a painting after the file name alone, so the second painting replaced
    the first, exit 0. Refused before the test (no DIR, no metrics)."""
    import shutil

    from conftest import make_lesion_checkpoint
    from mmengine.config import Config
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic)
    ckpt = make_lesion_checkpoint(
        str(config), tmp_path / 'model.pth',
        np.zeros((256, 256, 3), np.uint8))
    other = shutil.copytree(tiny_isic, tmp_path / 'copy')
    cfg = Config.fromfile(str(config))
    first = cfg.test_dataloader.dataset
    cfg.test_dataloader.dataset = dict(
        type='ConcatDataset',
        datasets=[first, dict(first, data_root=str(other))])
    both = tmp_path / 'both.py'
    cfg.dump(str(both))
    name = (tiny_isic / 'splits' / 'lightweight_test.txt').read_text(
        ).split()[0]
    show, work = tmp_path / 'show', tmp_path / 'work'
    proc = run_tool_in_process(
        'tools/test.py', both, ckpt, '--work-dir', work, '--show-dir', show,
        '--cfg-options', 'default_hooks.visualization.interval=1')
    assert proc.returncode == 2, proc.output[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f'ERROR: --show-dir {show}: {tiny_isic}/images/{name}.jpg and '
        f'{other}/images/{name}.jpg share the file name {name}.jpg, so one '
        'painting would replace the other; give each test image its own '
        'file name. Nothing was tested.')
    assert not show.exists()
    assert not (work / 'test_metrics.json').exists()


def test_test_show_with_show_dir_is_refused(tmp_path, capsys):
    """``test.py --show --show-dir DIR``: mmseg's hook drops the
    visualizer's backends when it shows, so DIR stayed empty, exit 0.
    Refused before the checkpoint is read or anything is made."""
    tool = load_tool('test.py')
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read')
    work, show = tmp_path / 'work', tmp_path / 'show'
    code, err = run_cli(tool.main, [DSNET, ckpt, '--work-dir', work,
                                    '--show', '--show-dir', show], capsys)
    assert (code, err) == (2, (
        f'ERROR: --show and --show-dir {show} cannot be given together: '
        "mmseg's visualization hook saves nothing while it shows; give one "
        'of them\n'))
    assert not work.exists() and not show.exists()


def test_test_show_without_a_window_is_refused(tmp_path):
    """``test.py --show`` where matplotlib opens no window (a machine
    without a display takes ``agg``; here ``MPLBACKEND=Agg``): every image
    was "shown" into nothing, exit 0. Refused before the checkpoint is
    read or anything is made."""
    import subprocess
    import sys
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read')
    work = tmp_path / 'work'
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', DSNET, str(ckpt), '--work-dir',
         str(work), '--show'], cwd=REPO, capture_output=True, text=True,
        env=dict(os.environ, MPLBACKEND='Agg', PYTHONPATH=str(REPO)),
        timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "ERROR: --show cannot show here: matplotlib's backend is Agg, which "
        'opens no window (no display, or MPLBACKEND); give --show-dir DIR '
        'to save the paintings instead')
    assert not work.exists()


def test_test_show_dir_in_a_distributed_test_is_refused_once(
        tmp_path, capsys, monkeypatch):
    """``dist_test.sh CONFIG CKPT 2 --show-dir D`` (or ``--show``): mmseg's
    visualizer paints on rank 0 only, so D held the images of the first
    process alone (3 of 5, with interval=1), exit 0. Refused on every
    process before the work dir is made; only rank 0 prints the line."""
    from mmseg_dsnet.engine import cli_errors
    monkeypatch.setattr(cli_errors, 'RANK_0_GRACE_S', 0)
    tool = load_tool('test.py')
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read')
    work, show = tmp_path / 'work', tmp_path / 'show'
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', '29500')
    for rank, option in (('0', ['--show-dir', show]), ('0', ['--show']),
                         ('1', ['--show-dir', show])):
        monkeypatch.setenv('RANK', rank)
        code, err = run_cli(tool.main, [DSNET, ckpt, '--work-dir', work,
                                        '--launcher', 'pytorch'] + option,
                            capsys)
        expected = (
            f'ERROR: {option[0]} paints only the images of the first of the '
            '2 processes of a distributed test (mmseg draws on rank 0 only), '
            "so the others' images would be missing; run tools/test.py (one "
            f'process) with {option[0]}\n') if rank == '0' else ''
        assert (code, err) == (2, expected)
        assert not work.exists() and not show.exists()


def test_reparameterize_outputs_follow_the_umask(tmp_path, capsys):
    tool = load_tool('deployment/reparameterize.py')
    ckpt = random_checkpoint(DSNET, tmp_path / 'trained.pth')
    out = tmp_path / 'deploy' / 'dsnet_deploy.pth'
    old = os.umask(0o027)
    try:
        code, err = run_cli(tool.main, [DSNET, ckpt, out, '--shape', '64',
                                        '64'], capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    for path in (out, out.with_suffix('.py')):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    assert sorted(os.listdir(out.parent)) == ['dsnet_deploy.pth',
                                              'dsnet_deploy.py']
    # The deploy config is the Python text of the config.
    assert 'deploy=True' in out.with_suffix('.py').read_text()


# -- broken ONNX files --------------------------------------------------------


@pytest.mark.parametrize('kind', ['truncated', 'random'])
def test_broken_onnx_is_one_error_line(tmp_path, capsys, kind):
    from mmseg_dsnet.apis.inference_backends import make_backend
    from mmseg_dsnet.deploy.ort_session import OnnxModelError
    good = fake_onnx(tmp_path / 'good.onnx').read_bytes()
    broken = tmp_path / f'{kind}.onnx'
    broken.write_bytes(good[:len(good) // 2] if kind == 'truncated' else
                       np.random.default_rng(0).bytes(2000))
    image = tmp_path / 'images' / 'a.png'
    image.parent.mkdir()
    cv2.imwrite(str(image), np.full((20, 30, 3), 90, np.uint8))
    code, err = run_cli(load_tool('infer.py').main, [
        broken, image.parent, '--out-dir', tmp_path / 'out', '--no-progress'
    ], capsys)
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith('ERROR: ') and str(broken) in last, err
    assert 'not a loadable ONNX model' in last
    assert 'Traceback' not in err and err.count('ERROR') == 1
    assert not (tmp_path / 'out').exists()  # a failed run leaves nothing
    # The API raises a user error that names the file, reported the same
    # way by every tool.
    with pytest.raises(OnnxModelError, match=str(broken)):
        make_backend(str(broken))


@pytest.mark.parametrize('format_value', [None, 'float32 NCHW BGR, '
                                          'normalised by ImageNet mean/std'])
def test_onnx_of_another_exporter_is_refused(tmp_path, capsys, format_value):
    """An ONNX file without export_onnx's input-format metadata (another
    exporter's, expecting normalised or BGR input) was run on raw RGB
    pixels at a guessed 256x256 and threshold 0.5: wrong masks, exit 0."""
    import onnx

    from mmseg_dsnet.apis.inference_backends import make_backend
    from mmseg_dsnet.deploy.ort_session import OnnxModelError
    model = onnx.load(str(fake_onnx(tmp_path / 'good.onnx')))
    kept = [(p.key, p.value) for p in model.metadata_props
            if p.key != 'mmseg_dsnet.input_format']
    if format_value is not None:
        kept.append(('mmseg_dsnet.input_format', format_value))
    del model.metadata_props[:]
    for key, value in kept:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    foreign = tmp_path / 'foreign.onnx'
    onnx.save(model, str(foreign))
    image = tmp_path / 'images' / 'a.png'
    image.parent.mkdir()
    cv2.imwrite(str(image), np.full((20, 30, 3), 90, np.uint8))
    infer = load_tool('infer.py').main
    code, err = run_cli(infer, [
        foreign, image, '--out-dir', tmp_path / 'out', '--no-progress'
    ], capsys)
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f'ERROR: {foreign} was not written by '
                           'tools/deployment/export_onnx.py ('), err
    assert ('a guess gives wrong masks without an error; export the model '
            'with tools/deployment/export_onnx.py') in last
    assert 'Traceback' not in err and err.count('ERROR') == 1
    assert not (tmp_path / 'out').exists()
    with pytest.raises(OnnxModelError, match='mmseg_dsnet.input_format'):
        make_backend(str(foreign))
    # export_onnx's own files (the fake one carries its metadata) run.
    code, err = run_cli(infer, [
        tmp_path / 'good.onnx', image, '--out-dir', tmp_path / 'out',
        '--no-progress'
    ], capsys)
    assert code == 0, err


# -- infer.py --recursive with the output folder inside the input -------------


@pytest.mark.parametrize('inside', [False, True])
def test_infer_recursive_does_not_reread_its_outputs(tmp_path, capsys,
                                                     inside):
    model = fake_onnx(tmp_path / 'model.onnx')
    photos = tmp_path / 'photos'
    (photos / 'sub').mkdir(parents=True)
    image = np.full((24, 40, 3), 200, np.uint8)
    image[6:18, 10:30] = 40
    cv2.imwrite(str(photos / 'a.jpg'), image)
    cv2.imwrite(str(photos / 'sub' / 'b.png'), image)
    out = photos / 'results' if inside else photos
    argv = [model, photos, '--out-dir', out, '--recursive', '--no-progress',
            '--overwrite']
    infer = load_tool('infer.py').main
    for run in range(2):
        code, err = run_cli(infer, argv, capsys)
        assert code == 0, err
        assert '2 images' in err, err  # a.jpg and sub/b.png, nothing else
    assert f'skipped {out / "masks"}: an output folder' in err
    assert sorted(os.listdir(out / 'masks')) == ['a.png', 'b.png']
    assert sorted(os.listdir(out / 'overlays')) == ['a.jpg', 'b.jpg']


# -- export parity ------------------------------------------------------------


@pytest.fixture(scope='module')
def check_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp('check')
    image = np.full((70, 90, 3), (130, 150, 205), np.uint8)
    cv2.ellipse(image, (45, 35), (25, 18), 0, 0, 360, (40, 45, 80), -1)
    cv2.imwrite(str(folder / 'lesion.jpg'), image)
    return str(folder)


@pytest.mark.slow
@pytest.mark.parametrize('config', MODEL_CONFIGS)
def test_export_parity_holds_for_every_model(config, check_images, tmp_path):
    from mmseg_dsnet.deploy.onnx_export import export_and_check
    torch.manual_seed(0)
    out = tmp_path / 'model.onnx'
    result = export_and_check(str(REPO / config), None, str(out),
                              shape=(64, 64), check_images=[check_images],
                              log=lambda text: None)
    parity = result['parity']
    assert result['passed'], parity
    # With a margin: the rule is not at its limit on any model.
    assert parity['max_abs_diff'] < parity['tolerance'] / 4
    assert out.is_file() and sorted(os.listdir(tmp_path)) == ['model.onnx']


def _perturb_one_weight(proto):
    """Add 0.1 to one element of the last convolution's weight."""
    from onnx import numpy_helper
    last = [n for n in proto.graph.node if n.op_type == 'Conv'][-1]
    for init in proto.graph.initializer:
        if init.name == last.input[1]:
            weight = numpy_helper.to_array(init).copy()
            weight.flat[0] += 0.1
            init.CopyFrom(numpy_helper.from_array(weight, init.name))
            return
    raise AssertionError('no initializer for the last Conv weight')


def break_cpu_rewrites(monkeypatch):
    """Make the export's CPU rewrites also put one weight off by 0.1 (as a
    faulty rewrite would); returns the real rewrite function."""
    from mmseg_dsnet.deploy import onnx_export
    optimize = onnx_export.optimize_for_cpu

    def faulty_optimize(proto, shape):
        rewrites = optimize(proto, shape)
        _perturb_one_weight(proto)
        return rewrites

    monkeypatch.setattr(onnx_export, 'optimize_for_cpu', faulty_optimize)
    return optimize


def test_export_parity_catches_a_real_mismatch_and_leaves_no_file(
        check_images, tmp_path, capsys, monkeypatch):
    """A fault in the exported graph (one weight off by 0.1, as a faulty
    rewrite would make) fails the check; no .onnx file is left."""
    from mmseg_dsnet.deploy import onnx_export
    optimize = break_cpu_rewrites(monkeypatch)
    ckpt = random_checkpoint(DSNET, tmp_path / 'trained.pth')
    out = tmp_path / 'out' / 'model.onnx'
    code, err = run_cli(load_tool('deployment/export_onnx.py').main, [
        DSNET, ckpt, out, '--shape', '64', '64', '--check-images',
        check_images
    ], capsys)
    printed = capsys.readouterr()
    assert code == 1, err
    assert not out.exists() and os.listdir(out.parent) == []
    # The unchanged export of the same weights passes: the failure above
    # is the weight, not the rule.
    monkeypatch.setattr(onnx_export, 'optimize_for_cpu', optimize)
    result = onnx_export.export_and_check(
        DSNET, str(ckpt), str(out), shape=(64, 64),
        check_images=[check_images], log=lambda text: None)
    assert result['passed'] and out.is_file(), printed
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()


def test_a_failed_export_over_an_earlier_one_is_reported_as_such(
        check_images, tmp_path, capsys, monkeypatch):
    """``--overwrite --json`` over an earlier run's model, failing the
    check: the earlier .onnx (and int8 model) stay, as for any failed
    write, but the FAILED report beside them named OUT as its
    ``onnx_file`` and nothing else: it read as that file's report. Now the
    report lists what this run wrote (nothing) and which files there are
    an earlier run's, and so does the FAILED line."""
    import json
    break_cpu_rewrites(monkeypatch)
    ckpt = random_checkpoint(DSNET, tmp_path / 'trained.pth')
    out, int8 = tmp_path / 'model.onnx', tmp_path / 'model_int8.onnx'
    report = tmp_path / 'model.json'
    for path in (out, int8, report):
        path.write_bytes(b'earlier run')
    code, err = run_cli(load_tool('deployment/export_onnx.py').main, [
        DSNET, ckpt, out, '--shape', '64', '64', '--check-images',
        check_images, '--overwrite', '--json', report, '--int8', int8
    ], capsys)
    assert code == 1, err
    assert out.read_bytes() == int8.read_bytes() == b'earlier run'
    saved = json.loads(report.read_text())
    assert saved['passed'] is False and saved['written'] == []
    assert saved['not_written'] == [str(out), str(int8)]
    assert saved['earlier_file_kept'] == [str(out), str(int8)]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


SLOW_WRITE = '''
import sys, time
from mmseg_dsnet.engine import run_reporting_user_errors
from mmseg_dsnet.utils.fileio import atomic_write

def writer(tmp):
    with open(tmp, 'w') as f:
        f.write('half')
    print('writing', flush=True)
    time.sleep(60)

run_reporting_user_errors(lambda: atomic_write(writer, sys.argv[1]))
'''


def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path):
    """``timeout`` or ``kill`` used to end a tool without clean-up: the
    hidden ``.<name>.part-PID`` file of the write stayed behind."""
    import signal
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, '-c', SLOW_WRITE,
                             str(tmp_path / 'out.json')], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'writing'
    assert len(os.listdir(tmp_path)) == 1  # the temporary file
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert os.listdir(tmp_path) == []


def test_a_failed_child_tool_passes_its_status_on(capsys):
    """A child tool's crash (1) is not reported as a user error (2)."""
    from mmseg_dsnet.engine import run_reporting_user_errors
    from mmseg_dsnet.utils.errors import ChildToolError, UserError
    for error, status in ((ChildToolError('train.py failed', 1), 1),
                          (ChildToolError('test.py failed', 2), 2),
                          (UserError('bad option'), 2)):
        def main():
            raise error
        with pytest.raises(SystemExit) as stopped:
            run_reporting_user_errors(main)
        assert stopped.value.code == status
        assert capsys.readouterr().err == f'ERROR: {error}\n'


def test_traceback_variable_adds_the_traceback_to_the_error_line(
        monkeypatch):
    """docs/reliability.md: ``MMSEG_DSNET_TRACEBACK=1`` shows the traceback
    too. It re-raised instead: no ``ERROR:`` line and exit status 1, the
    status of a bug, for a user error."""
    monkeypatch.setenv('MMSEG_DSNET_TRACEBACK', '1')
    run = run_tool_in_process('tools/test.py', 'configs/demo/nope.py',
                              'x.pth')
    assert run.returncode == 2
    assert 'Traceback (most recent call last)' in run.stderr
    assert run.stderr.endswith(
        'ERROR: config file configs/demo/nope.py does not exist\n')
    # A genuine bug keeps its traceback and status 1 either way.
    from mmseg_dsnet.engine import run_reporting_user_errors

    def buggy():
        raise KeyError('bug')
    with pytest.raises(KeyError):
        run_reporting_user_errors(buggy)


def test_running_a_tool_in_process_keeps_the_callers_sigterm_action():
    import signal

    from mmseg_dsnet.engine import run_reporting_user_errors
    before = signal.getsignal(signal.SIGTERM)
    seen = []
    run_reporting_user_errors(
        lambda: seen.append(signal.getsignal(signal.SIGTERM)))
    assert signal.getsignal(signal.SIGTERM) == before
    if before == signal.SIG_DFL:
        assert seen[0] not in (signal.SIG_DFL, before)


def test_running_a_tool_in_process_keeps_the_callers_ctrl_c_action():
    """The tools hold Ctrl-C back while a checkpoint is written; a caller
    that runs one in-process gets its own handler back, and a handler it
    set is left alone."""
    import signal

    from mmseg_dsnet.engine import run_reporting_user_errors

    def own(signum, frame):
        pass
    for caller in (signal.default_int_handler, own):
        before = signal.signal(signal.SIGINT, caller)
        try:
            seen = []
            run_reporting_user_errors(
                lambda: seen.append(signal.getsignal(signal.SIGINT)))
            assert signal.getsignal(signal.SIGINT) is caller
            assert (seen[0] is caller) == (caller is own)
        finally:
            signal.signal(signal.SIGINT, before)


LOADER_LOOP = '''
import time
import torch
from mmseg_dsnet.engine import run_reporting_user_errors

class Slow(torch.utils.data.Dataset):
    def __len__(self):
        return 1000

    def __getitem__(self, index):
        time.sleep(0.05)
        return index

def main():
    loader = torch.utils.data.DataLoader(Slow(), num_workers=2,
                                         persistent_workers=True)
    for i, _ in enumerate(loader):
        if i == 2:
            print('loading', flush=True)

run_reporting_user_errors(main)
'''


def test_sigterm_to_the_process_group_ends_quietly_with_143():
    """``timeout`` and schedulers signal the whole process group: the
    data-loading workers end too, and PyTorch reported their end as a
    RuntimeError traceback instead of the termination."""
    import signal
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, '-c', LOADER_LOOP], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stdout.readline().strip() == 'loading'
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert 'Error' not in proc.stderr.read()


WAITING_TOOL = '''
import time
from mmseg_dsnet.engine import run_reporting_user_errors

def main():
    print('working', flush=True)
    time.sleep(60)

run_reporting_user_errors(main)
'''


def test_sigterm_to_a_tool_is_one_stopped_line():
    """``tools/train.py`` (any tool) stopped by SIGTERM ended with status
    143 and no word, unlike Ctrl-C (``ERROR: interrupted ...``). Under
    torchrun the launcher says it once (mmseg_dsnet.engine.torchrun), so
    its processes print nothing."""
    import signal
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items()
           if k != 'TORCHELASTIC_RUN_ID'}
    for torchrun, line in ((False, 'ERROR: stopped by SIGTERM before the '
                            'run finished\n'), (True, '')):
        if torchrun:
            env['TORCHELASTIC_RUN_ID'] = 'none'
        proc = subprocess.Popen(
            [sys.executable, '-c', WAITING_TOOL], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == 'working'
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert (proc.returncode, err) == (128 + signal.SIGTERM, line)


def test_a_training_stopped_by_sigterm_says_what_it_kept(tiny_isic,
                                                         tmp_path):
    """``tools/train.py`` stopped by SIGTERM (``kill``, a scheduler) after
    its first checkpoint ended with status 143 and no word."""
    import signal
    import subprocess
    import sys
    import time
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=100)
    work = tmp_path / 'work'
    proc = subprocess.Popen(
        [sys.executable, 'tools/train.py', str(cfg), '--work-dir', str(work)],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):
            if (work / 'epoch_1.pth').is_file() or proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert err.splitlines()[-1] == (
        'ERROR: stopped by SIGTERM before the run finished; the checkpoints '
        'saved before stay in the work dir; the same command with --resume '
        'goes on from the newest')
    assert (work / 'epoch_1.pth').is_file()


STOPPED_IN_CONFIG_FORMATTING = '''
import os, signal, sys
from mmengine.config import Config
from mmseg_dsnet.engine import run_reporting_user_errors

SIGNAL = getattr(signal, sys.argv[1])
# As a terminal starts a tool: the signal unblocked, Ctrl-C Python's own
# handler. A subprocess inherits its parent's signal mask and ignored
# signals, and in whole-suite runs an earlier test's libraries left SIGINT
# blocked in the test process (this test alone never saw it).
signal.pthread_sigmask(signal.SIG_UNBLOCK, [SIGNAL])
if SIGNAL == signal.SIGINT:
    signal.signal(SIGNAL, signal.default_int_handler)

def signal_in_formatting(frame, event, arg):
    # The stop lands while yapf formats the config, as it does when it
    # comes during a checkpoint save (runner.save_checkpoint formats it).
    if event == 'call' and frame.f_code.co_name == 'FormatCode':
        sys.setprofile(None)
        os.kill(os.getpid(), SIGNAL)

def main():
    cfg = Config.fromfile('configs/demo/dsnet_synthetic_cpu.py')
    sys.setprofile(signal_in_formatting)
    cfg.pretty_text
    print('not stopped', flush=True)

run_reporting_user_errors(main, stop_hint='HINT')
'''


#: Each stop, the status it ends a tool with and its line (stop hint HINT).
STOPS_WITH_HINT = [
    ('SIGTERM', 143, 'ERROR: stopped by SIGTERM before the run finished; '
     'HINT'),
    ('SIGINT', 130, 'ERROR: interrupted (Ctrl-C) before the run finished; '
     'HINT'),
]


@pytest.mark.parametrize('signame,status,line', STOPS_WITH_HINT)
def test_a_stop_during_config_formatting_is_the_stop_line(signame, status,
                                                          line):
    """mmengine's ``Config.pretty_text`` (half a second of yapf, at every
    checkpoint save) turns any exception in it into a ``SyntaxError``: a
    SIGTERM or Ctrl-C that landed there ended ``tools/train.py`` with that
    traceback and status 1 (about 1 stop in 5 after the first
    checkpoint)."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items()
           if k != 'TORCHELASTIC_RUN_ID'}
    proc = subprocess.run(
        [sys.executable, '-c', STOPPED_IN_CONFIG_FORMATTING, signame],
        cwd=REPO, env=dict(env, PYTHONPATH=str(REPO)), capture_output=True,
        text=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (status, ''), proc.stderr
    assert proc.stderr.splitlines()[-1] == line
    assert 'Traceback' not in proc.stderr


STOPPED_IN_CHECKPOINT_WRITE = '''
import os, signal, sys, time
import torch
from mmengine.runner.checkpoint import save_checkpoint
from mmseg_dsnet.engine import cli_errors, run_reporting_user_errors

SIGNAL = getattr(signal, sys.argv[1])
signal.pthread_sigmask(signal.SIG_UNBLOCK, [SIGNAL])
if SIGNAL == signal.SIGINT:
    signal.signal(SIGNAL, signal.default_int_handler)
# Time enough for the rest of the save, also on a loaded machine.
cli_errors.RESEND_STOP_S = 1.0

def signal_as_the_writer_ends(frame, event, arg):
    # The stop lands where torch.save's zip writer is about to write its
    # last records, as a stop that comes during a long write does.
    if event == 'call' and frame.f_code.co_name == '__exit__' and \\
            frame.f_code.co_filename == torch.serialization.__file__:
        sys.setprofile(None)
        os.kill(os.getpid(), SIGNAL)

def main():
    sys.setprofile(signal_as_the_writer_ends)
    save_checkpoint({'weight': torch.arange(4.)}, sys.argv[2])
    print('saved', flush=True)
    time.sleep(60)  # the training goes on
    print('not stopped', flush=True)

run_reporting_user_errors(main, stop_hint='HINT')
'''


@pytest.mark.parametrize('signame,status,line', STOPS_WITH_HINT)
def test_a_stop_during_a_checkpoint_write_comes_after_it(tmp_path, signame,
                                                        status, line):
    """A SIGTERM or Ctrl-C handled as ``torch.save`` was about to write the
    last records of a checkpoint skipped them; at exit the unfinished
    writer wrote them into the buffer mmengine had closed, and
    ``tools/train.py`` aborted after its stop line (``terminate called
    after throwing an instance of 'pybind11::error_already_set'``, status
    134, not 143 or 130). The stop now waits for the write: the checkpoint
    is whole, then the stop's line and status."""
    import subprocess
    import sys

    import torch
    env = {k: v for k, v in os.environ.items()
           if k != 'TORCHELASTIC_RUN_ID'}
    checkpoint = tmp_path / 'epoch_1.pth'
    proc = subprocess.run(
        [sys.executable, '-c', STOPPED_IN_CHECKPOINT_WRITE, signame,
         str(checkpoint)],
        cwd=REPO, env=dict(env, PYTHONPATH=str(REPO)), capture_output=True,
        text=True, timeout=120)
    assert proc.returncode == status, proc.stderr
    assert proc.stdout.splitlines()[-1] == 'saved'
    assert proc.stderr.splitlines()[-1] == line
    assert 'terminate called' not in proc.stderr
    saved = torch.load(checkpoint, map_location='cpu', weights_only=True)
    assert torch.equal(saved['weight'], torch.arange(4.))


BUSY_LOADER = '''
import torch
from mmseg_dsnet.engine import run_reporting_user_errors

def main():
    loader = torch.utils.data.DataLoader(range(100), num_workers=2,
                                         persistent_workers=True)
    next(iter(loader))
    print('busy', flush=True)
    # One long call into C: the signals are handled after it, when the
    # workers' end (SIGCHLD) has come in too.
    sum(range(10 ** 8))

run_reporting_user_errors(main)
'''


def test_sigterm_that_ends_the_loader_workers_first_is_one_line():
    """SIGTERM to the process group while the main process is in a long
    call: the data-loading workers ended first, and their SIGCHLD, handled
    after the SIGTERM handler had reset it to SIG_DFL, was printed as
    ``OSError: Signal 17 ignored due to race condition`` with a
    traceback."""
    import signal
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, '-c', BUSY_LOADER], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stdout.readline().strip() == 'busy'
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (
        128 + signal.SIGTERM,
        'ERROR: stopped by SIGTERM before the run finished\n')


SIGTERM_IN_A_DEL = '''
import os
import re
import signal
import time
from mmseg_dsnet.engine import run_reporting_user_errors

class Closing:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs here, in __del__
            pass

def main():
    Closing()  # freed at once
    time.sleep(1)
    print('went on', flush=True)

run_reporting_user_errors(main)
'''


def test_sigterm_handled_in_a_del_still_stops_the_tool():
    """A SIGTERM whose handler ran inside a ``__del__`` (a data loader's,
    freed at the end of each epoch) or an at-fork callback: Python printed
    the stop as ``Exception ignored in ...`` and the run went on, exit 0,
    as if no signal had come."""
    import signal
    import subprocess
    import sys
    done = subprocess.run([sys.executable, '-c', SIGTERM_IN_A_DEL],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (
        128 + signal.SIGTERM, '',
        'ERROR: stopped by SIGTERM before the run finished\n')


RELEASED = 'checkpoints/dsnet_isic2017_256px.pth'
# Each tool that reads a config, with CONFIG, CHECKPOINT and OUT (a folder
# for the run's outputs) in its arguments.
CONFIG_READERS = {
    'tools/train.py': ['CONFIG', '--work-dir', 'OUT'],
    'tools/test.py': ['CONFIG', 'CHECKPOINT', '--work-dir', 'OUT'],
    'tools/demo.py': ['--config', 'CONFIG', '--work-dir', 'OUT'],
    'tools/infer.py': ['CONFIG', 'CHECKPOINT', 'IMAGE', '--out-dir', 'OUT'],
    'tools/analysis_tools/benchmark.py': ['CONFIG', '--device', 'cpu'],
    'tools/analysis_tools/get_flops.py': ['CONFIG'],
    'tools/analysis_tools/profile_train_step.py': ['CONFIG', '--device',
                                                   'cpu'],
    'tools/analysis_tools/threshold_sweep.py': [
        'CONFIG', 'CHECKPOINT', '--thresholds', '0.5'],
    'tools/analysis_tools/error_by_position.py': ['CONFIG', 'CHECKPOINT',
                                                  '--out', 'OUT/e.json'],
    'tools/deployment/reparameterize.py': ['CONFIG', 'CHECKPOINT',
                                           'OUT/deploy.pth'],
    'tools/deployment/export_onnx.py': ['CONFIG', 'CHECKPOINT',
                                        'OUT/model.onnx'],
    'tools/misc/publish_model.py': ['CONFIG', 'CHECKPOINT', 'OUT/net.pth'],
}


@pytest.mark.parametrize('tool', sorted(CONFIG_READERS))
def test_a_file_that_is_not_a_config_is_one_error_line(tool, tmp_path):
    """Reading a config runs it: a syntax error (or a checkpoint given in
    its place) was a traceback from deep in mmengine."""
    broken = tmp_path / 'broken.py'
    broken.write_text("_base_ = ['../configs/dsnet/dsnet_isic2017.py']\n"
                      'model = dict(\n')
    image = tmp_path / 'lesion.png'
    cv2.imwrite(str(image), np.full((32, 32, 3), 128, np.uint8))
    out = tmp_path / 'out'
    names = dict(CONFIG=broken, CHECKPOINT=REPO / RELEASED, IMAGE=image,
                 OUT=out)

    def fill(arg):
        if arg.startswith('OUT/'):
            return out / arg[len('OUT/'):]
        return names.get(arg, arg)

    argv = [fill(arg) for arg in CONFIG_READERS[tool]]
    run = run_tool_in_process(tool, *argv)
    assert run.returncode == 2, run.output[-2000:]
    lines = run.stderr.strip().splitlines()
    assert 'Traceback' not in run.stderr
    assert lines[-1] == (f'ERROR: config file {broken} cannot be read as a '
                         "config: SyntaxError: '(' was never closed "
                         '(<unknown>, line 2)'), lines[-1]
    assert not out.exists() or not any(out.rglob('*.*'))


def test_a_checkpoint_given_as_the_config_is_named_as_such(tmp_path):
    run = run_tool_in_process('tools/train.py', RELEASED, '--work-dir',
                              tmp_path / 'w')
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        f'ERROR: config file {RELEASED} cannot be read as a config: '
        'OSError: Only py/yml/yaml/json type are supported now! (configs '
        'are .py files, e.g. configs/dsnet/dsnet_isic2017.py; was a '
        'checkpoint given in its place?)')
    assert not (tmp_path / 'w').exists()


def test_an_evaluation_loader_that_drops_images_is_refused(
        tiny_config, tmp_path, capsys):
    """``drop_last=True`` on the test (validation) loader scored only the
    full batches: 4 of 5 images, or none (every figure 100 %, exit 0) when
    the batch exceeded the split. ``fast_train.py --val-interval 1``
    (``--test``) trained its first epoch, made its work dir and only then
    stopped at ``LesionMetric``'s count of the images scored (the test
    after all the training). Refused before the work dir is made."""
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read')
    work = tmp_path / 'work'
    fast = [tiny_config, '--device', 'cpu']
    for script, argv, loader in (
            ('test.py', [tiny_config, ckpt], 'test_dataloader'),
            ('train.py', [tiny_config], 'val_dataloader'),
            ('fast_train.py', fast + ['--val-interval', '1'],
             'val_dataloader'),
            ('fast_train.py', fast + ['--test'], 'test_dataloader')):
        code, err = run_cli(load_tool(script).main, argv + [
            '--work-dir', work, '--cfg-options', f'{loader}.batch_size=4',
            f'{loader}.drop_last=True'], capsys)
        assert (code, err) == (2, (
            f'ERROR: {tiny_config}: {loader}.drop_last is True: the last '
            'incomplete batch '
            'of the split would never be scored, so the figures would be '
            'of part of it; set --cfg-options '
            f'{loader}.drop_last=False\n')), script
        assert not work.exists()


def test_a_test_batch_of_no_image_is_refused_naming_the_config(
        tiny_config, tmp_path, capsys):
    """``tools/test.py CONFIG CKPT --cfg-options test_dataloader.batch_size=0``
    is refused with the config's name first, as its other config refusals
    are, before the work dir is made."""
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read')
    work = tmp_path / 'work'
    code, err = run_cli(load_tool('test.py').main, [
        tiny_config, ckpt, '--work-dir', work, '--cfg-options',
        'test_dataloader.batch_size=0'], capsys)
    assert (code, err) == (2, (
        f'ERROR: {tiny_config}: test_dataloader.batch_size=0 must be a whole '
        'number of at least 1: the images of a step. Nothing was '
        'started.\n'))
    assert not work.exists()


def test_a_training_loader_of_no_batch_is_refused(tiny_config, tmp_path,
                                                  capsys):
    """A training split of fewer images than ``batch_size`` with
    ``drop_last=True``: mmengine's loop ran its epochs without one step,
    saved the initial weights as ``epoch_N.pth`` and validated them, exit
    0. Refused before the work dir is made; a split that fills a batch,
    or ``drop_last=False``, still trains."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import check_training_batches
    from mmseg_dsnet.utils.errors import UserError
    split = tiny_config.parent / 'two.txt'
    root = Config.fromfile(tiny_config).data_root
    split.write_text('\n'.join(open(
        f'{root}/splits/lightweight_train.txt').read().split()[:2]) + '\n')
    work = tmp_path / 'work'
    code, err = run_cli(load_tool('train.py').main, [
        tiny_config, '--work-dir', work, '--cfg-options',
        f'train_dataloader.dataset.ann_file={split}',
        'train_dataloader.drop_last=True'], capsys)
    assert (code, err) == (2, (
        f'ERROR: train_dataloader gives no batch: its 2 training images '
        f'({split}) are fewer than batch_size=4 with drop_last=True, so '
        'every epoch would train no step and save the initial weights; set '
        '--cfg-options train_dataloader.drop_last=False or a smaller '
        'train_dataloader.batch_size. Nothing was started.\n'))
    assert not work.exists()
    cfg = Config.fromfile(tiny_config)
    cfg.train_dataloader.drop_last = True
    check_training_batches(cfg)  # the whole split fills a batch of 4
    cfg.train_dataloader.dataset.ann_file = str(split)
    cfg.train_dataloader.drop_last = False
    check_training_batches(cfg)  # the last, incomplete batch is trained
    cfg.train_dataloader.update(drop_last=True, batch_size=2)
    check_training_batches(cfg)
    with pytest.raises(UserError, match=r'\(1 per process of 2\)'):
        check_training_batches(cfg, world_size=2)
    # mmengine's sampler gives each of 2 processes 2 of 3 images (one
    # padded): a batch of 2 each.
    three = tiny_config.parent / 'three.txt'
    three.write_text('\n'.join(open(
        f'{root}/splits/lightweight_train.txt').read().split()[:3]) + '\n')
    cfg.train_dataloader.dataset.ann_file = str(three)
    check_training_batches(cfg, world_size=2)
    with pytest.raises(UserError, match=r'its 3 training images '):
        check_training_batches(cfg, world_size=4)
    # mmengine's epoch loop without a type (by_epoch=True) too; an
    # iteration loop fills its batches from any images.
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2)
    with pytest.raises(UserError, match=r'its 3 training images '):
        check_training_batches(cfg, world_size=4)
    cfg.train_cfg = dict(type='mmengine.EpochBasedTrainLoop', max_epochs=2)
    with pytest.raises(UserError, match=r'its 3 training images '):
        check_training_batches(cfg, world_size=4)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=10)
    check_training_batches(cfg, world_size=4)


def train_refusal(config, tmp_path, options, capsys):
    """``train.py CONFIG --work-dir TMP/work --cfg-options OPTIONS``, which
    must be refused before the work dir is made: its error text (exit
    status 2)."""
    work = tmp_path / 'work'
    code, err = run_cli(load_tool('train.py').main, [
        config, '--work-dir', work, '--cfg-options', *options], capsys)
    assert code == 2, err
    assert not work.exists()
    return err


@pytest.mark.parametrize('options,message', [
    (['auto_scale_lr.enabled=True', 'auto_scale_lr.base_batch_size=2'],
     "auto_scale_lr.enabled is not read by mmengine, which takes only "
     "enable and base_batch_size; did you mean 'enable'? (the learning "
     'rate would not be scaled as meant)'),
    (['auto_scale_lr.enable=True'],
     'auto_scale_lr is enabled with base_batch_size=None; give the batch '
     'size the learning rate is set for (a positive integer), or set '
     'auto_scale_lr.enable=False'),
    (['auto_scale_lr.enable=True', 'auto_scale_lr.base_batch_size=0'],
     'auto_scale_lr is enabled with base_batch_size=0; give the batch '
     'size the learning rate is set for (a positive integer), or set '
     'auto_scale_lr.enable=False')])
def test_an_auto_scale_lr_mmengine_would_not_apply_is_refused(
        tiny_config, tmp_path, capsys, options, message):
    """``auto_scale_lr=dict(enabled=True, ...)`` (a key mmengine does not
    read) trained at the unscaled rate, exit 0; scaling enabled without a
    positive ``base_batch_size`` was an ``AssertionError`` (a
    ``ZeroDivisionError``) traceback once the run had started. Refused
    before the work dir is made."""
    assert train_refusal(tiny_config, tmp_path, options, capsys) == \
        f'ERROR: {tiny_config}: {message}\n'


@pytest.mark.parametrize('options,message', [
    (['train_cfg.max_epochs=0', 'default_hooks.checkpoint.save_best=None'],
     'train_cfg.max_epochs=0 must be a whole number of at least 1: how '
     'long to train.'),
    (['train_cfg.val_interval=0'], 'train_cfg.val_interval=0 must be a '
     'whole number of at least 1: an epoch or iteration count that '
     'validation comes at (to train without validation set val_cfg=None '
     'val_dataloader=None val_evaluator=None).'),
    (['train_cfg.max_epochs=2.5'], 'train_cfg.max_epochs=2.5 must be a '
     'whole number of at least 1: how long to train.'),
    (['train_dataloader.batch_size=0'], 'train_dataloader.batch_size=0 must '
     'be a whole number of at least 1: the images of a step.')])
def test_a_schedule_count_below_one_is_refused(tiny_config, tmp_path, capsys,
                                               options, message):
    """``max_epochs=0`` made the work dir and ended at once without a
    checkpoint, exit 0; ``max_epochs=2.5`` was mmengine's
    ``AssertionError`` traceback once the work dir was made;
    ``val_interval=0`` trained an epoch, saved it and
    ended with a ``ZeroDivisionError`` traceback; ``batch_size=0`` was a
    ``ValueError`` traceback once the runner was built. Refused before the
    work dir is made."""
    assert train_refusal(tiny_config, tmp_path, options, capsys) == \
        f'ERROR: {tiny_config}: {message} Nothing was started.\n'


@pytest.mark.parametrize('options,message', [
    (['train_dataloader.num_workers=-1'], 'train_dataloader.num_workers=-1 '
     'must be a whole number of at least 0: the processes that load images '
     '(0: the main process).'),
    (['val_dataloader.num_workers=-1'], 'val_dataloader.num_workers=-1 must '
     'be a whole number of at least 0: the processes that load images (0: '
     'the main process).'),
    (['train_dataloader.persistent_workers=True'], 'train_dataloader.'
     'num_workers=0 with train_dataloader.persistent_workers=True: there is '
     'no worker to keep; set train_dataloader.persistent_workers=False with '
     'it.')])
def test_loader_workers_torch_refuses_are_refused(tiny_config, tmp_path,
                                                   capsys, options, message):
    """``num_workers=-1`` (a guess at "all cores"), or ``num_workers=0``
    over the shipped configs' ``persistent_workers=True``, was torch's
    ``ValueError`` traceback once the work dir, its log and the dumped
    config were made. Refused before the work dir is made."""
    assert train_refusal(tiny_config, tmp_path, options, capsys) == \
        f'ERROR: {tiny_config}: {message} Nothing was started.\n'


@pytest.mark.parametrize('options,message', [
    (['train_cfg.max_epoch=3'], "train_cfg.max_epoch=3 is no argument of "
     "EpochBasedTrainLoop; did you mean 'max_epochs'?"),
    (['train_dataloader.batch_sise=4'], 'train_dataloader.batch_sise=4 is '
     "read neither by mmengine's runner nor by torch's DataLoader; did you "
     "mean 'batch_size'?"),
    (['val_dataloader.num_worker=1'], 'val_dataloader.num_worker=1 is read '
     "neither by mmengine's runner nor by torch's DataLoader; did you mean "
     "'num_workers'?")])
def test_a_misspelt_loop_or_loader_key_is_refused_before_the_work_dir(
        tiny_config, tmp_path, capsys, options, message):
    """A ``train_cfg`` key the training loop does not take, or a
    dataloader key neither mmengine nor torch's ``DataLoader`` reads, is
    refused before the work dir is made."""
    assert train_refusal(tiny_config, tmp_path, options, capsys) == \
        f'ERROR: {tiny_config}: {message} Nothing was started.\n'


def test_by_epoch_beside_a_loop_type_is_refused_without_a_guess(
        tiny_config, tmp_path, capsys):
    """``train_cfg.by_epoch=True`` beside the config's ``type`` (mmengine's
    runner takes one of them and stops on both) is refused with what to
    do, not as a misspelt ``max_epochs``; a ``train_cfg`` with neither
    (mmengine's ``KeyError``) likewise. ``by_epoch`` in place of ``type``
    is mmengine's own way to pick the loop and passes."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import check_loop_keys
    from mmseg_dsnet.utils.errors import UserError
    assert train_refusal(tiny_config, tmp_path, ['train_cfg.by_epoch=True'],
                         capsys) == (
        f'ERROR: {tiny_config}: train_cfg.by_epoch=True is given beside '
        "train_cfg.type='EpochBasedTrainLoop', and mmengine's runner takes "
        'only one of them (by_epoch picks EpochBasedTrainLoop or '
        'IterBasedTrainLoop when no type is given); remove '
        'train_cfg.by_epoch. Nothing was started.\n')
    cfg = Config.fromfile(tiny_config)
    cfg.train_cfg = dict(max_epochs=2, val_interval=1)
    with pytest.raises(UserError, match=(
            r'^train_cfg gives neither type nor by_epoch, and mmengine\'s '
            r'runner needs one of them to pick the training loop; set '
            r"train_cfg\.type='EpochBasedTrainLoop'")):
        check_loop_keys(cfg)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
    check_loop_keys(cfg)
    # An iteration loop takes no max_epochs; by_epoch, given, is no guess.
    cfg.train_cfg = dict(by_epoch=False, max_epochs=2)
    with pytest.raises(UserError, match=(
            r'^train_cfg\.max_epochs=2 is no argument of IterBasedTrainLoop'
            r"; did you mean 'max_iters'\? Nothing was started\.$")):
        check_loop_keys(cfg)


@pytest.mark.parametrize('option,error', [
    ('default_hooks.logger.intervl=5', "LoggerHook.__init__() got an "
     "unexpected keyword argument 'intervl'"),
    ('randomness.sed=1', "Runner.set_randomness() got an unexpected "
     "keyword argument 'sed'")])
def test_a_run_the_runner_refuses_leaves_nothing(tiny_config, tmp_path,
                                                 capsys, option, error):
    """A key the runner refuses once it is built (a hook's, randomness')
    leaves no log folder, no config dump and no work dir of its own; in a
    work dir of earlier runs, their log folder and the config dump there
    stay as they were."""
    from conftest import write_training_log
    train = load_tool('train.py').main
    message = (f'ERROR: {error} (check the spelling of this key in the '
               'config)\n')
    work = tmp_path / 'work'
    code, err = run_cli(train, [tiny_config, '--work-dir', work,
                                '--cfg-options', option], capsys)
    assert (code, err[err.rfind('ERROR:'):]) == (2, message)
    assert not work.exists()
    work.mkdir()
    write_training_log(work)
    dump = work / tiny_config.name
    dump.write_text('# an earlier run\'s config\n')
    before = sorted(p.relative_to(work) for p in work.rglob('*'))
    code, err = run_cli(train, [tiny_config, '--work-dir', work,
                                '--cfg-options', option], capsys)
    assert (code, err[err.rfind('ERROR:'):]) == (2, message)
    assert sorted(p.relative_to(work) for p in work.rglob('*')) == before
    assert dump.read_text() == '# an earlier run\'s config\n'


def test_a_refusal_once_training_started_keeps_the_run(
        tiny_config, tmp_path, capsys, monkeypatch):
    """A refusal in the training loop (here at its first iteration) keeps
    the run's log folder and config dump, for the diagnosis."""
    from mmengine.runner import EpochBasedTrainLoop

    from mmseg_dsnet.utils.errors import UserError

    def refused(self, idx, data_batch):
        raise UserError('refused in the loop')

    monkeypatch.setattr(EpochBasedTrainLoop, 'run_iter', refused)
    work = tmp_path / 'work'
    code, err = run_cli(load_tool('train.py').main, [
        tiny_config, '--work-dir', work], capsys)
    assert (code, err[err.rfind('ERROR:'):]) == (
        2, 'ERROR: refused in the loop\n')
    logs = [p for p in work.iterdir() if p.is_dir()]
    assert len(logs) == 1 and (logs[0] / f'{logs[0].name}.log').is_file()
    assert (work / tiny_config.name).is_file()


@pytest.mark.parametrize('option,message', [
    ('env_cfg.cudnn_benchmrk=True', "env_cfg.cudnn_benchmrk=True is not read "
     "by mmengine's runner, which reads cudnn_benchmark, mp_cfg, dist_cfg, "
     "resource_limit; did you mean 'cudnn_benchmark'? (it would be "
     'ignored).'),
    ('env_cfg.mp_cfg.mp_start_methd=spawn', "env_cfg.mp_cfg.mp_start_methd="
     "'spawn' is not read by mmengine's set_multi_processing, which reads "
     "mp_start_method, opencv_num_threads; did you mean 'mp_start_method'? "
     '(the runner would stop on it).')])
def test_a_misspelt_env_cfg_key_is_refused(tiny_config, tmp_path, capsys,
                                           option, message):
    """mmengine ignores an ``env_cfg`` key it does not read (the run went
    on without cudnn's benchmark, exit 0); a misspelt ``mp_cfg`` key was
    refused by the runner once the work dir was made. Both are refused
    before the work dir is made, with the key meant."""
    assert train_refusal(tiny_config, tmp_path, [option], capsys) == \
        f'ERROR: {tiny_config}: {message} Nothing was started.\n'


def test_a_checkpoint_path_with_an_unexpanded_home_is_named_as_such(
        tiny_config, tmp_path, capsys, monkeypatch):
    """``load_from=~/x.pth`` (a ``~`` the shell left as it is) said only
    that the file does not exist. The message says the ``~`` is not
    expanded, and names the expanded path where that file exists; the
    path is not expanded for the run."""
    home = tmp_path / 'home'
    home.mkdir()
    monkeypatch.setenv('HOME', str(home))
    left = ('ERROR: checkpoint ~/{} does not exist: the shell left its "~" '
            'unexpanded (quoted, after "--option=", or in a config file), '
            'and it is not expanded here; ')
    assert train_refusal(tiny_config, tmp_path, ['load_from=~/x.pth'],
                         capsys) == left.format('x.pth') + \
        'give the path in full\n'
    (home / 'x.pth').write_bytes(b'')
    assert train_refusal(tiny_config, tmp_path, ['load_from=~/x.pth'],
                         capsys) == left.format('x.pth') + \
        f'{home}/x.pth exists: give it in full\n'


def test_an_optimizer_torch_refuses_is_refused_before_the_work_dir(
        tiny_config, tmp_path, capsys):
    """``optim_wrapper.optimizer.lr=-0.1`` was torch's ``ValueError``
    traceback, and a misspelt optimizer argument an ``ERROR:`` line, once
    the runner had made the work dir, its log and the dumped config (the
    runner builds the optimizer when the training starts). Both are
    refused before the work dir is made."""
    work = tmp_path / 'work'
    for option, error in (
            ('optim_wrapper.optimizer.lr=-0.1',
             f'{tiny_config}: optim_wrapper: Invalid learning rate: -0.1. '
             'Nothing was started.'),
            ('optim_wrapper.optimizer.learning_rate=0.1',
             "AdamW.__init__() got an unexpected keyword argument "
             "'learning_rate' (check the spelling of this key in the "
             'config)')):
        code, err = run_cli(load_tool('train.py').main, [
            tiny_config, '--work-dir', work, '--cfg-options', option],
            capsys)
        assert (code, err) == (2, f'ERROR: {error}\n')
        assert not work.exists()


@pytest.mark.parametrize('option,message', [
    ('param_scheduler.0.type=CosineAnealingLR', 'CosineAnealingLR is not in '
     'the mmseg::parameter scheduler registry.'),
    ('param_scheduler.0.eta_mn=0', 'CosineAnnealingParamScheduler.__init__() '
     "got an unexpected keyword argument 'eta_mn'. Nothing was started.\n"),
    ('param_scheduler.0.begin=5', 'end should be larger than begin, but got '
     'begin=5, end=2. Nothing was started.\n')])
def test_a_scheduler_mmengine_refuses_is_refused_before_the_work_dir(
        tiny_config, tmp_path, capsys, option, message):
    """A misspelt scheduler type or argument, or ``begin`` not below
    ``end``, is refused, naming the scheduler, before the work dir is made
    (the runner builds its schedulers only when the training starts)."""
    err = train_refusal(tiny_config, tmp_path, [option], capsys)
    assert err.startswith(f'ERROR: {tiny_config}: param_scheduler[0] (')
    assert message in err and err.count('\n') == 1


def test_paramwise_settings_that_change_nothing_are_refused(
        tiny_config, tmp_path, capsys):
    """mmengine's optimizer constructor ignores a ``paramwise_cfg`` key it
    does not read, a ``custom_keys`` name no parameter's name holds and a
    custom key's setting the optimizer does not read:
    ``custom_keys.backbnoe.lr_mult=0.1`` trained the backbone at the base
    rate, exit 0. Refused before the work dir is made; names that match
    pass."""
    import torch

    from mmseg_dsnet.engine.preflight import check_paramwise_keys
    from mmseg_dsnet.utils.errors import UserError
    work = tmp_path / 'work'
    code, err = run_cli(load_tool('train.py').main, [
        tiny_config, '--work-dir', work, '--cfg-options',
        'optim_wrapper.paramwise_cfg.custom_keys.backbnoe.lr_mult=0.1'],
        capsys)
    assert (code, err) == (2, (
        f'ERROR: {tiny_config}: optim_wrapper.paramwise_cfg.custom_keys '
        "'backbnoe' is part of the name of no parameter of the model; did "
        "you mean 'backbone'? (its settings would apply to none). Nothing "
        'was started.\n'))
    assert not work.exists()
    # mmengine matches within '<module>.<parameter>', '.<name>' at the top.
    model = torch.nn.Module()
    model.backbone = torch.nn.Conv2d(3, 4, 3)
    model.scale = torch.nn.Parameter(torch.ones(1))

    def paramwise(**keys):
        return dict(optim_wrapper=dict(paramwise_cfg=keys))

    check_paramwise_keys(paramwise(norm_decay_mult=0.0, custom_keys={
        'backbone.bias': dict(lr_mult=0.1), '.scale': dict(lr_mult=2.0)}),
        model)
    with pytest.raises(UserError, match="custom_keys 'bakbone' is part of"):
        check_paramwise_keys(paramwise(custom_keys={'bakbone': {}}), model)
    with pytest.raises(UserError, match=(
            r"paramwise_cfg\.norm_decay_mul is not read by mmengine's "
            r".* did you mean 'norm_decay_mult'\?")):
        check_paramwise_keys(paramwise(norm_decay_mul=0.0), model)
    # torch keeps a setting it does not read in the parameter group.
    adamw = torch.optim.AdamW(model.parameters()).defaults
    check_paramwise_keys(paramwise(custom_keys={'backbone': dict(
        lr_mult=0.1, decay_mult=0.0, betas=(0.8, 0.9))}), model, adamw)
    with pytest.raises(UserError, match=(
            r"custom_keys\.backbone\.lr_mul is read neither by mmengine's "
            r".* did you mean 'lr_mult'\?")):
        check_paramwise_keys(paramwise(custom_keys={'backbone': dict(
            lr_mul=0.1)}), model, adamw)


def test_a_save_best_that_names_no_figure_is_refused(tiny_config, tmp_path,
                                                     capsys):
    """``save_best='iou'``: mmengine's hook looked the key up only after the
    first epoch and stopped with a ``KeyError: 'iou'`` traceback, exit 1.
    Refused before the work dir is made; the figures (with a prefix) and
    'auto' pass the check."""
    from mmseg_dsnet.engine import check_save_best
    from mmseg_dsnet.utils.errors import UserError
    work = tmp_path / 'work'
    code, err = run_cli(load_tool('train.py').main, [
        tiny_config, '--work-dir', work, '--cfg-options',
        'default_hooks.checkpoint.save_best=iou'], capsys)
    assert (code, err) == (2, (
        "ERROR: default_hooks.checkpoint.save_best='iou' is not a figure of "
        'the validation, which reports IoU, DSC, Acc, Sen, Spe, IoU_orig, '
        'DSC_orig, Acc_orig, Sen_orig, Spe_orig, mIoU_img, mDSC_img, TJ, '
        "mIoU, mDice; did you mean 'IoU'? (the run would stop at its first "
        'validation)\n'))
    assert not work.exists()

    def cfg(save_best, **metric):
        return dict(default_hooks=dict(checkpoint=dict(save_best=save_best,
                                                       rule='greater')),
                    val_cfg=dict(type='ValLoop'),
                    val_evaluator=dict(type='LesionMetric', **metric))

    for save_best in ('IoU', ['TJ', 'mDice'], 'auto', None):
        check_save_best(cfg(save_best))
    check_save_best(cfg('lesion/DSC', prefix='lesion'))
    with pytest.raises(UserError, match=r"save_best='DSC' .*reports "
                       r"lesion/IoU.*did you mean 'lesion/DSC'\?"):
        check_save_best(cfg('DSC', prefix='lesion'))
    # Another prefix, another case: the figure of that name is offered.
    with pytest.raises(UserError, match=r"save_best='val/dsc' .*did you "
                       r"mean 'lesion/DSC'\?"):
        check_save_best(cfg('val/dsc', prefix='lesion'))
    # The metric by its scoped name reports the same figures.
    with pytest.raises(UserError, match="save_best='iou' is not a figure"):
        check_save_best(dict(cfg('iou'), val_evaluator=dict(
            type='mmseg.LesionMetric')))
    # Another evaluator's figures are not known here.
    check_save_best(dict(cfg('iou'), val_evaluator=dict(type='IoUMetric')))


def test_a_save_best_in_a_run_that_never_validates_is_refused(
        tiny_config, tmp_path, capsys):
    """``--cfg-options train_cfg.val_begin=5`` on a 2-epoch run (or no
    ``val_cfg``) with the default ``save_best='IoU'``: the run trained,
    never validated and ended with no best checkpoint, exit 0. Refused
    before the work dir is made; ``save_best=None`` trains."""
    from mmseg_dsnet.engine import check_save_best
    from mmseg_dsnet.utils.errors import UserError
    work = tmp_path / 'work'
    code, err = run_cli(load_tool('train.py').main, [
        tiny_config, '--work-dir', work, '--cfg-options',
        'train_cfg.val_begin=5'], capsys)
    assert (code, err) == (2, (
        "ERROR: default_hooks.checkpoint.save_best='IoU' keeps the "
        'checkpoint that validates best, but train_cfg.val_begin=5 lies '
        'beyond its max_epochs=2, so the run would never validate and save '
        'no best checkpoint; set default_hooks.checkpoint.save_best=None to '
        'train without one, or let the run validate\n'))
    assert not work.exists()

    def cfg(save_best, val_cfg=dict(type='ValLoop'), **train):
        return dict(default_hooks=dict(checkpoint=dict(save_best=save_best,
                                                       rule='greater')),
                    val_cfg=val_cfg, train_cfg=train,
                    val_evaluator=dict(type='LesionMetric'))

    with pytest.raises(UserError, match='the config sets no val_cfg'):
        check_save_best(cfg('IoU', val_cfg=None, max_epochs=2))
    with pytest.raises(UserError, match='val_begin=101 lies beyond its '
                       'max_iters=100'):
        check_save_best(cfg('IoU', type='IterBasedTrainLoop', max_iters=100,
                            val_begin=101))
    # The last epoch validates from val_begin on; no save_best, no check.
    check_save_best(cfg('IoU', max_epochs=2, val_begin=2, val_interval=5))
    # mmengine's loops validate from epoch (iteration) 1 on by default.
    check_save_best(cfg('IoU', max_epochs=1))
    check_save_best(cfg('IoU', type='IterBasedTrainLoop', max_iters=1))
    check_save_best(cfg(None, max_epochs=2, val_begin=5))
    check_save_best(cfg(None, val_cfg=None))


def test_an_empty_val_cfg_validates_and_is_checked(tiny_config, tmp_path,
                                                  capsys):
    """``val_cfg = dict()``: mmengine's Runner builds a plain ``ValLoop``
    from it and validates, but the checks read it as no validation: the
    default ``save_best='IoU'`` was refused ("sets no val_cfg"), and with
    ``save_best=None`` a validation split holding training images, a
    validation loader with ``drop_last=True`` or ``val_interval=0``
    trained (validating on training images, exit 0). Each is refused
    before the work dir is made; ``fast_train.py --val-interval`` checks
    its validation loader's dataset whatever ``val_cfg`` says."""
    from mmengine.config import Config

    from mmseg_dsnet.engine import check_save_best
    from mmseg_dsnet.engine.fast_training import check_fast_run_config
    from mmseg_dsnet.engine.preflight import (check_training_schedule,
                                              has_val_loop)
    from mmseg_dsnet.utils.errors import UserError
    config = tmp_path / 'empty_val_cfg.py'
    config.write_text(f"_base_ = '{tiny_config}'\n"
                      'val_cfg = dict(_delete_=True)\n')
    cfg = Config.fromfile(config)
    assert cfg.val_cfg == {} and has_val_loop(cfg)
    assert not has_val_loop(dict(cfg, val_cfg=None))
    check_save_best(cfg)
    cfg.train_cfg.val_interval = 0
    with pytest.raises(UserError, match=r'^train_cfg\.val_interval=0 must'):
        check_training_schedule(cfg)
    root = cfg.data_root
    test_split = f'{root}/splits/lightweight_test.txt'
    count = len(open(test_split).read().split())
    work = tmp_path / 'work'
    code, err = run_cli(load_tool('train.py').main, [
        config, '--work-dir', work, '--cfg-options',
        'default_hooks.checkpoint.save_best=None',
        f'train_dataloader.dataset.ann_file={test_split}'], capsys)
    assert code == 2 and err.startswith(
        f'ERROR: {config}: val_dataloader scores {count} of the {count} '
        f'images of '
        f'{test_split} that train_dataloader trains on'), err
    assert not work.exists()
    code, err = run_cli(load_tool('train.py').main, [
        config, '--work-dir', work, '--cfg-options',
        'default_hooks.checkpoint.save_best=None',
        'val_dataloader.drop_last=True'], capsys)
    assert code == 2 and err.startswith(
        f'ERROR: {config}: val_dataloader.drop_last is True: the'), err
    assert not work.exists()
    cfg = Config.fromfile(config)
    cfg.val_dataloader.dataset.reduce_zero_label = True
    check_fast_run_config(cfg, str(config))
    with pytest.raises(UserError, match=r'^val_dataloader\.dataset\.'
                       'reduce_zero_label=True does not fit'):
        check_fast_run_config(cfg, str(config), validate=True)


def test_lesion_metric_arguments_are_checked_before_the_run(
        tiny_config, tmp_path, capsys):
    """``--cfg-options test_evaluator.threshold=1.5`` (with the head's at
    1.5 too, which the head now refuses itself) scored no pixel as lesion
    and wrote the figures, exit 0; ``test_evaluator.low_res_size=(0,0)`` ended in a
    RuntimeError traceback after the model ran. Refused before the work dir
    (train.py: the validation's)."""
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read')
    work = tmp_path / 'work'
    for script, argv, name, options, message in (
            ('test.py', [tiny_config, ckpt], 'test_evaluator',
             ['test_evaluator.low_res_size=(0,0)'],
             'low_res_size must be (height, width), two positive whole '
             'numbers, got (0, 0)'),
            ('train.py', [tiny_config], 'val_evaluator',
             ['val_evaluator.jaccard_threshold=65'],
             "jaccard_threshold must be a Jaccard index in [0, 1] (0.65 is "
             "the ISIC challenge's), got 65")):
        code, err = run_cli(load_tool(script).main, argv + [
            '--work-dir', work, '--cfg-options', *options], capsys)
        assert (code, err) == (
            2, f'ERROR: {name} (LesionMetric): {message}; nothing was '
            'started\n')
        assert not work.exists()
    # On the command line the head (DSNetHead's own range check) or the
    # head/metric agreement check refuses a threshold first; the metric's
    # own check stands for evaluators of other heads.
    from mmseg_dsnet.engine.preflight import check_lesion_metrics
    from mmseg_dsnet.utils.errors import UserError
    with pytest.raises(UserError, match=r'^test_evaluator \(LesionMetric\): '
                       r'threshold must be a lesion probability in \(0, 1\), '
                       r'got 1.5; nothing was started$'):
        check_lesion_metrics(dict(
            val_evaluator=dict(type='LesionMetric'),
            test_evaluator=dict(type='LesionMetric', threshold=1.5)),
            ('val_evaluator', 'test_evaluator'))


def test_evaluators_that_report_one_figure_name_are_refused(
        tiny_config, tmp_path, capsys):
    """``test_evaluator=[LesionMetric, IoUMetric]`` (both report ``mIoU``)
    ran the whole test, then mmengine's ``ValueError: There are multiple
    evaluation results with the same metric name mIoU`` traceback, exit 1
    (train.py: after the first epoch). Refused before the work dir; a
    prefix of its own lets them run."""
    from mmseg_dsnet.engine.preflight import check_lesion_metrics
    from mmseg_dsnet.utils.errors import UserError
    config = tmp_path / 'two.py'
    config.write_text(
        f"_base_ = '{tiny_config}'\n"
        "test_evaluator = [dict(type='LesionMetric', low_res_size=(64, 64)),"
        " dict(type='IoUMetric', iou_metrics=['mIoU', 'mDice'])]\n")
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read')
    work = tmp_path / 'work'
    code, err = run_cli(load_tool('test.py').main,
                        [config, ckpt, '--work-dir', work], capsys)
    assert (code, err) == (
        2, 'ERROR: test_evaluator[0] (LesionMetric) and test_evaluator[1] '
        '(IoUMetric) both report mIoU, mDice: mmengine refuses figures of '
        "one name, after the whole evaluation; give each a prefix of its own "
        "(prefix='lesion', ...) or leave one out; nothing was started\n")
    assert not work.exists()
    lesion = dict(type='LesionMetric')
    with pytest.raises(UserError, match=r'^val_evaluator\[0\] \(LesionMetric'
                       r'\) and val_evaluator\[1\] \(LesionMetric\) both '
                       r'report IoU, DSC, '):
        check_lesion_metrics(dict(val_evaluator=[
            lesion, dict(lesion, threshold=0.4)]), ('val_evaluator', ))
    # IoUMetric reports mIoU by default; one name (a string) is one metric.
    for iou, shared in ((dict(type='IoUMetric'), 'mIoU'),
                        (dict(type='IoUMetric', iou_metrics='mDice'),
                         'mDice')):
        with pytest.raises(UserError, match=(
                r'^val_evaluator\[0\] \(LesionMetric\) and val_evaluator'
                rf'\[1\] \(IoUMetric\) both report {shared}: ')):
            check_lesion_metrics(dict(val_evaluator=[lesion, iou]),
                                 ('val_evaluator', ))
    # Distinct prefixes, or figures of other names, pass.
    check_lesion_metrics(dict(val_evaluator=[
        lesion, dict(lesion, threshold=0.4, prefix='t04')]),
        ('val_evaluator', ))
    check_lesion_metrics(dict(val_evaluator=[
        lesion, dict(type='IoUMetric', iou_metrics=['mFscore']),
        dict(type='SomeMetric')]), ('val_evaluator', ))


def test_logit_input_of_a_model_that_stores_probabilities_is_refused(
        tiny_config, tmp_path, capsys):
    """``test_evaluator.single_channel_input=logit`` with DSNet (whose
    segmentor, mmseg's ``EncoderDecoder``, stores sigmoid probabilities)
    applied the sigmoid twice: every pixel lesion, ``Sen: 100.0000 Spe:
    0.0000`` in ``test_metrics.json``, exit 0 (the sweep and the error
    analysis alike). Refused before anything runs."""
    from mmseg_dsnet.engine.preflight import check_lesion_metrics
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read')
    work = tmp_path / 'work'
    option = ['--cfg-options', 'test_evaluator.single_channel_input=logit']
    message = (
        "ERROR: test_evaluator (LesionMetric): single_channel_input='logit',"
        ' but the model (EncoderDecoder) stores its 1-channel output as '
        "sigmoid probabilities (mmseg's postprocess_result), so the sigmoid "
        'would be applied twice and every pixel scored as lesion; leave '
        "single_channel_input unset ('probability'); nothing was started\n")
    code, err = run_cli(load_tool('test.py').main,
                        [tiny_config, ckpt, '--work-dir', work] + option,
                        capsys)
    assert (code, err) == (2, message)
    assert not work.exists()
    for tool, argv in (
            ('analysis_tools/threshold_sweep.py',
             [tiny_config, ckpt, '--thresholds', '0.5', '0.4']),
            ('analysis_tools/error_by_position.py', [tiny_config, ckpt])):
        code, err = run_cli(load_tool(tool).main, argv + option, capsys)
        assert (code, err) == (2, message), tool
    # A 2-channel head (the option has no effect) or a segmentor not known
    # here passes.
    model = dict(type='EncoderDecoder', decode_head=dict(out_channels=2))
    evaluator = dict(type='LesionMetric', single_channel_input='logit')
    check_lesion_metrics(dict(model=model, test_evaluator=evaluator),
                         ('test_evaluator', ))
    check_lesion_metrics(dict(model=dict(type='MySegmentor'),
                              test_evaluator=evaluator), ('test_evaluator', ))
    # A segmentor that stores its logits (its own postprocess_result)
    # passes; the last head of a cascade is the one that outputs.
    from mmseg.models.segmentors import EncoderDecoder

    from mmseg_dsnet.utils.errors import UserError

    class LogitSegmentor(EncoderDecoder):

        def postprocess_result(self, seg_logits, data_samples=None):
            return data_samples

    check_lesion_metrics(dict(model=dict(
        type=LogitSegmentor, decode_head=dict(out_channels=1)),
        test_evaluator=evaluator), ('test_evaluator', ))
    # mmseg's head takes out_channels from num_classes=1.
    for model in (dict(type='CascadeEncoderDecoder', decode_head=[
            dict(out_channels=2), dict(num_classes=2, out_channels=1)]),
            dict(type='EncoderDecoder', decode_head=dict(num_classes=1))):
        with pytest.raises(UserError, match=(
                rf"model \({model['type']}\) stores its 1-channel output")):
            check_lesion_metrics(dict(model=model, test_evaluator=evaluator),
                                 ('test_evaluator', ))


def test_train_and_test_refuse_a_base_config(tmp_path, capsys):
    """A model or dataset base config given as the config ended in an
    ``AttributeError: 'ConfigDict' object has no attribute 'optim_wrapper'``
    (``'model'``) traceback, exit 1, or in mmengine's registry error with a
    spelling hint (``EncoderDecoder is not in the mmengine::model
    registry``) for a model base config given to test.py."""
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read')
    work = tmp_path / 'work'
    model = 'configs/_base_/models/dsnet.py'
    data = 'configs/_base_/datasets/isic2018_lightweight.py'
    give = '; give a whole config such as configs/dsnet/dsnet_isic2017.py\n'
    for script, argv, message in (
            ('train.py', [model],
             f'config file {model} sets no train_dataloader.dataset, '
             'optim_wrapper, train_cfg: training runs the model on its '
             'training data with its optimizer and schedule'),
            ('test.py', [model, ckpt],
             f'config file {model} sets no test_dataloader.dataset, '
             'test_evaluator, test_cfg: a test runs the model on its test '
             'data and scores it with its test evaluator'),
            ('test.py', [data, ckpt],
             f'config file {data} sets no model, test_cfg: a test runs the '
             'model on its test data and scores it with its test '
             'evaluator')):
        code, err = run_cli(load_tool(script).main,
                            argv + ['--work-dir', work], capsys)
        assert (code, err) == (2, f'ERROR: {message}{give}')
        assert not work.exists()


def test_a_numpy_nan_is_refused_as_a_python_nan():
    """``check_at_least`` tested only Python floats for nan: a tolerance
    computed with numpy (``export_onnx(..., atol=np.float32('nan'))``)
    compared False with its bound and passed, turning the check it was
    meant for off."""
    from mmseg_dsnet.utils.cli import check_at_least
    from mmseg_dsnet.utils.errors import UserError
    for value in (np.float32('nan'), np.float64('inf'), float('nan')):
        with pytest.raises(UserError,
                           match='atol must be a finite number, got'):
            check_at_least(('atol', value, 0))
    check_at_least(('atol', np.float32(0.5), 0), ('n', np.int64(3), 1),
                   ('m', 2, 1), ('o', None, 1))


def test_the_error_line_is_not_appended_to_a_progress_bar(tmp_path):
    """A user error raised inside a loop with a progress bar (a bad sample
    in ``threshold_sweep.py`` or ``recalibrate_batch_norm.py``): the bar
    was not closed, so ``ERROR: ...`` was appended to its line
    (``0/10 [...]ERROR: ...``) and its final redraw came after it, the
    last line of stderr; a script looking for ``^ERROR:`` found none."""
    import subprocess
    import sys
    script = tmp_path / 'tool.py'
    script.write_text(
        'from mmseg_dsnet.engine.cli_errors import run_reporting_user_errors\n'
        'from mmseg_dsnet.progress import progress_bar\n'
        'from mmseg_dsnet.utils.errors import UserError\n'
        'def main():\n'
        '    bar = progress_bar(10, "images")\n'
        '    for i in range(10):\n'
        '        bar.update()\n'
        '        if i == 4:\n'
        '            raise UserError("x.png: bad image")\n'
        'run_reporting_user_errors(main)\n')
    run = subprocess.run([sys.executable, str(script)], capture_output=True,
                         text=True, cwd=REPO,
                         env={**os.environ, 'PYTHONPATH': str(REPO)})
    assert run.returncode == 2, run.stderr
    lines = run.stderr.replace('\r', '\n').strip().splitlines()
    assert lines[-1] == 'ERROR: x.png: bad image', run.stderr
    assert sum('ERROR:' in line for line in lines) == 1
    assert '5/10' in run.stderr  # the bar shows where it stopped


def test_test_py_tta_refuses_a_tta_model_other_than_lesion_tta(
        tiny_config, tmp_path, capsys):
    """``test.py --tta`` with mmseg's ``SegTTAModel`` (``--cfg-options
    tta_model.type=SegTTAModel``, or a config on mmseg's default_runtime)
    scored the last (vertically flipped) view only, recorded as
    test-time augmented, exit 0; ``tta_model=None`` was an AttributeError
    traceback. Refused before the work dir."""
    import torch
    ckpt = tmp_path / 'model.pth'
    torch.save(dict(state_dict={}), ckpt)  # not loaded
    work = tmp_path / 'work'
    for option, given, why in (
            ('tta_model.type=SegTTAModel', "type='SegTTAModel'",
             "mmseg's SegTTAModel scores a lesion model on its last view "
             'only (after a second sigmoid)'),
            ('tta_model.type=mmseg.SegTTAModel', "type='mmseg.SegTTAModel'",
             "mmseg's SegTTAModel scores a lesion model on its last view "
             'only (after a second sigmoid)'),
            ('tta_model=None', 'None',
             'the views need a model that averages them')):
        code, err = run_cli(load_tool('test.py').main,
                            [tiny_config, ckpt, '--work-dir', work, '--tta',
                             '--cfg-options', option], capsys)
        assert (code, err) == (
            2, f'ERROR: --tta: tta_model of {tiny_config} is {given}, not '
            f"LesionTTAModel: {why}; set tta_model = dict(type="
            "'LesionTTAModel') in it (as configs/_base_/default_runtime.py "
            'does); nothing was started\n'), option
        assert not work.exists()
    # Ours, by either name, passes.
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import check_tta_model
    for kind in ('LesionTTAModel', 'mmseg.LesionTTAModel'):
        check_tta_model(Config(dict(tta_model=dict(type=kind))), 'c.py')


def test_cfg_options_of_another_kind_than_the_value_they_replace(
        tiny_config, tmp_path, capsys):
    """``train.py --cfg-options train_cfg.max_epochs=abc`` (a word for a
    number), ``train_cfg=[1,2]`` (a list for a dict) or
    ``default_hooks.checkpoint="dict(interval=1)"`` (kept a string by
    DictAction): the work dir, a log folder and the config dump were made,
    then a ValueError / TypeError traceback, exit 1. Refused before."""
    work = tmp_path / 'work'
    for option, message in (
            ('train_cfg.max_epochs=abc', "gives str 'abc', but the config "
             'holds 2 there; give a number'),
            ('train_dataloader.batch_size=two', "gives str 'two', but the "
             'config holds 4 there; give a number'),
            ('train_cfg=[1,2]', 'gives list [1, 2], but the config holds '),
            ('default_hooks.checkpoint=dict(interval=1)',
             "gives str 'dict(interval=1)', but the config holds ")):
        code, err = run_cli(load_tool('train.py').main,
                            [tiny_config, '--work-dir', work,
                             '--cfg-options', option], capsys)
        assert code == 2, option
        shown = option.replace('[1,2]', '[1, 2]')  # as DictAction parsed
        assert err.startswith(f'ERROR: --cfg-options {shown} {message}'), err
        assert err.count('\n') == 1
        assert not work.exists()
    assert err.endswith('give a dict (set its keys one by one: '
                        'default_hooks.checkpoint.KEY=VALUE)\n')
    # Values of the kind they replace, None, and new keys pass.
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import check_options_take_effect
    cfg = Config(dict(train_cfg=dict(max_epochs=2, flag=True),
                      pipeline=[dict(scale=(1, 2))]))
    check_options_take_effect(cfg, {
        'train_cfg.max_epochs': 3.5, 'train_cfg.flag': False,
        'pipeline.0.scale': 'x', 'pipeline.3.scale': 'x',
        'train_cfg.new': 'x', 'train_cfg': None})


def test_a_work_dir_holding_the_source_config_is_refused(tiny_config,
                                                         tmp_path, capsys):
    """``test.py C/mine.py CKPT --work-dir C`` (or ``train.py``): the
    runner dumped its config to ``C/mine.py``, over the file given, whose
    ``_base_`` was flattened and whose ``--cfg-options`` (here a 2-image
    subset) stayed baked in, exit 0. Refused; a run's own dump (no
    ``_base_``) given back with its work dir passes."""
    import torch

    from mmseg_dsnet.engine.preflight import check_config_not_dumped_over
    folder = tmp_path / 'configs'
    folder.mkdir()
    mine = folder / 'mine.py'
    mine.write_text(f"_base_ = ['{tiny_config}']\n")
    text = mine.read_text()
    ckpt = tmp_path / 'model.pth'
    torch.save(dict(state_dict={}), ckpt)
    message = (
        f'ERROR: --work-dir {folder} holds the config file {mine}: the '
        f'runner writes its config dump to {mine}, which would replace the '
        "file's text (its _base_ inheritance flattened, the options of this "
        'run baked in); nothing was started; give another --work-dir\n')
    for tool, argv in (('test.py', [mine, ckpt]), ('train.py', [mine])):
        code, err = run_cli(load_tool(tool).main,
                            argv + ['--work-dir', folder], capsys)
        assert (code, err) == (2, message), tool
        assert mine.read_text() == text
        assert sorted(p.name for p in folder.iterdir()) == ['mine.py']
    dump = tmp_path / 'run' / 'dumped.py'
    dump.parent.mkdir()
    dump.write_text("model = dict(type='EncoderDecoder')\n")
    check_config_not_dumped_over(str(dump), str(dump.parent))
    check_config_not_dumped_over(str(mine), str(tmp_path / 'elsewhere'))


def test_ctrl_c_ends_a_tool_with_one_line_and_130(capsys):
    """Ctrl-C gave the ``KeyboardInterrupt`` traceback of wherever the work
    was (a convolution, a data loader ...)."""
    from mmseg_dsnet.engine import run_reporting_user_errors

    def main():
        raise KeyboardInterrupt

    try:
        with pytest.raises(SystemExit) as stopped:
            run_reporting_user_errors(main)
    except KeyboardInterrupt:
        pytest.fail('KeyboardInterrupt traceback instead of a message')
    assert stopped.value.code == 130
    assert capsys.readouterr().err == (
        'ERROR: interrupted (Ctrl-C) before the run finished\n')


# A sitecustomize that sends this process SIGINT at the first call into
# torch, as a Ctrl-C pressed while a tool loads its libraries (the signal
# unblocked and Python's handler set, as a terminal starts a tool).
STOP_WHILE_LOADING_TORCH = '''
import os, signal, sys
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
signal.signal(signal.SIGINT, signal.default_int_handler)

def stop_in_torch(frame, event, arg):
    if event == 'call' and '/torch/' in frame.f_code.co_filename:
        sys.setprofile(None)
        os.kill(os.getpid(), signal.SIGINT)

sys.setprofile(stop_in_torch)
'''


@pytest.mark.parametrize('tool', sorted(
    str(path.relative_to(REPO)) for pattern in ('tools/*.py', 'tools/*/*.py')
    for path in REPO.glob(pattern)))
def test_ctrl_c_while_a_tool_loads_its_libraries_is_one_line(tool,
                                                              tmp_path):
    """Ctrl-C while a tool still imports torch and mmseg (seconds, before
    its work runs under ``run_reporting_user_errors``) ended it with the
    ``KeyboardInterrupt`` traceback of the import under way. Now one line,
    and Python ends the process by SIGINT (status 130 in a shell)."""
    import signal
    import subprocess
    import sys
    (tmp_path / 'sitecustomize.py').write_text(STOP_WHILE_LOADING_TORCH)
    env = {k: v for k, v in os.environ.items()
           if k != 'TORCHELASTIC_RUN_ID'}
    env['PYTHONPATH'] = f'{tmp_path}{os.pathsep}{REPO}'
    proc = subprocess.run([sys.executable, tool, 'x', 'y'], cwd=REPO,
                          env=env, capture_output=True, text=True,
                          timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        -signal.SIGINT, '', 'ERROR: interrupted (Ctrl-C) while the tool was '
        'starting (loading its libraries); nothing was done\n')


def test_ctrl_c_line_carries_the_hint_and_is_left_to_torchrun(
        capsys, monkeypatch):
    """The stop hint ends the line; under torchrun (its launcher says it
    once) the process prints nothing, with the same status."""
    from mmseg_dsnet.engine import run_reporting_user_errors

    def main():
        raise KeyboardInterrupt

    monkeypatch.delenv('TORCHELASTIC_RUN_ID', raising=False)
    with pytest.raises(SystemExit) as stopped:
        run_reporting_user_errors(main, stop_hint='what is left')
    assert stopped.value.code == 130
    assert capsys.readouterr().err == (
        'ERROR: interrupted (Ctrl-C) before the run finished; '
        'what is left\n')
    monkeypatch.setenv('TORCHELASTIC_RUN_ID', 'none')
    with pytest.raises(SystemExit) as stopped:
        run_reporting_user_errors(main, stop_hint='what is left')
    assert stopped.value.code == 130
    assert capsys.readouterr().err == ''


def test_the_stop_resending_hook_passes_other_exceptions_on():
    """The ``sys.unraisablehook`` that re-sends a swallowed SIGTERM hands
    every other unraisable exception to the hook it replaced (Python's
    ``Exception ignored in ...``), not dropping it."""
    import types

    from mmseg_dsnet.engine.cli_errors import _resend_swallowed_stops
    seen = []
    hook = _resend_swallowed_stops(seen.append)
    other = types.SimpleNamespace(exc_value=ValueError('in a __del__'))
    hook(other)
    assert seen == [other]


def test_schedule_and_auto_scale_lr_checks_read_each_key(tmp_path):
    """The schedule and ``auto_scale_lr`` checks on configs the tiny one
    does not cover: an iteration loop's ``max_iters=0`` (refused), a
    ``val_interval=0`` with validation off (never read, so passed), a
    ``base_batch_size=True`` (a bool, not a batch size)."""
    from mmseg_dsnet.engine.preflight.config import (check_auto_scale_lr,
                                                     check_training_schedule)
    from mmseg_dsnet.utils.errors import UserError
    iters = dict(train_cfg=dict(type='IterBasedTrainLoop', max_iters=0,
                                val_interval=10), val_cfg=dict())
    with pytest.raises(UserError, match=r'^train_cfg\.max_iters=0 must'):
        check_training_schedule(iters)
    check_training_schedule(dict(
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=2,
                       val_interval=0), val_cfg=None))
    with pytest.raises(UserError, match='base_batch_size=True'):
        check_auto_scale_lr(dict(auto_scale_lr=dict(
            enable=True, base_batch_size=True)))
    check_auto_scale_lr(dict(auto_scale_lr=dict(enable=True,
                                                base_batch_size=8)))


def test_tool_config_launcher_and_work_dir_precedence(tiny_config, tmp_path):
    """``--cfg-options launcher=...`` wins over ``--launcher``; the work dir
    is ``--work-dir``, else the config's, else ``./work_dirs/<name>``."""
    from mmseg_dsnet.engine.preflight.config import (load_tool_config,
                                                     set_work_dir)
    cfg = load_tool_config(str(tiny_config), {'launcher': 'slurm'},
                           launcher='pytorch')
    assert cfg.launcher == 'slurm'
    assert load_tool_config(str(tiny_config),
                            launcher='pytorch').launcher == 'pytorch'
    cfg.work_dir = str(tmp_path / 'from_config')
    set_work_dir(cfg, None, str(tiny_config))
    assert cfg.work_dir == str(tmp_path / 'from_config')
    set_work_dir(cfg, str(tmp_path / 'cli'), str(tiny_config))
    assert cfg.work_dir == str(tmp_path / 'cli')
    cfg.work_dir = None
    set_work_dir(cfg, None, str(tiny_config))
    assert cfg.work_dir == os.path.join('./work_dirs', 'tiny_dsnet')


def test_a_validation_split_holding_training_images_is_refused(
        tiny_config, tmp_path, capsys):
    """A training split that lists images of the validation split (a test
    image added to one's own training split), or a training dataset with
    no split file (every image of the set): ``train.py`` validated on
    them and chose ``best_IoU_*.pth`` by those figures, exit 0. Refused
    before the work dir is made, by ``fast_train.py`` too (its ``--test``
    split alike); the converter's disjoint splits still train."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.fast_training import check_fast_run_config
    from mmseg_dsnet.engine.preflight import check_held_out_images
    from mmseg_dsnet.utils.errors import UserError
    root = Config.fromfile(tiny_config).data_root
    train_ids = open(f'{root}/splits/lightweight_train.txt').read().split()
    test_ids = open(f'{root}/splits/lightweight_test.txt').read().split()
    leaked = tmp_path / 'leaked.txt'
    # Windows line endings and ./: the ids the dataset reads.
    leaked.write_bytes(''.join(f'{i}\r\n' for i in train_ids).encode() +
                       f'./{test_ids[1]}\r\n'.encode())
    work = tmp_path / 'work'
    code, err = run_cli(load_tool('train.py').main, [
        tiny_config, '--work-dir', work, '--cfg-options',
        f'train_dataloader.dataset.ann_file={leaked}'], capsys)
    assert (code, err) == (2, (
        f'ERROR: {tiny_config}: val_dataloader scores 1 of the '
        f'{len(test_ids)} images of {root}/splits/lightweight_test.txt '
        f'that train_dataloader trains on ({leaked}: {test_ids[1]}): '
        'figures on images the model learns from favour it (and so would '
        'a best checkpoint chosen by them); make the splits disjoint, or '
        'set --cfg-options val_cfg=None val_dataloader=None '
        'val_evaluator=None to train without validation. Nothing was '
        'started.\n'))
    assert not work.exists()
    code, err = run_cli(load_tool('train.py').main, [
        tiny_config, '--work-dir', work, '--cfg-options',
        'train_dataloader.dataset.ann_file='], capsys)
    assert code == 2 and f'trains on every image under {root}/images ' \
        in err
    assert not work.exists()
    cfg = Config.fromfile(tiny_config)
    check_held_out_images(cfg, ('val_dataloader', 'test_dataloader'))
    # Every image of another folder: none of those scored.
    (tmp_path / 'own').mkdir()
    cfg.train_dataloader.dataset.update(
        ann_file='', data_root=str(tmp_path), data_prefix=dict(
            img_path='own', seg_map_path='own'))
    check_held_out_images(cfg, ('val_dataloader', 'test_dataloader'))
    cfg = Config.fromfile(tiny_config)
    check_fast_run_config(cfg, str(tiny_config), validate=True, test=True)
    cfg.train_dataloader.dataset.ann_file = str(leaked)
    with pytest.raises(UserError, match='^[^ ]+: test_dataloader scores 1 '):
        check_fast_run_config(cfg, str(tiny_config), test=True)


def test_a_photo_under_another_id_in_the_training_split_is_refused(
        tiny_isic, tmp_path):
    """A set converted without --strict whose seeded split put one photo
    under two ids into lightweight_train and lightweight_test (meta.json's
    identical_images_across_lists): train.py validated on a photo it
    trained on, and tools/test.py scored it, exit 0. Both refuse it."""
    import json
    import shutil

    import torch
    from conftest import write_tiny_config
    from mmengine.config import Config

    from mmseg_dsnet.analysis.threshold_sweep import \
        check_not_tested_on_training_images
    from mmseg_dsnet.engine.preflight import check_held_out_images
    from mmseg_dsnet.utils.errors import UserError
    root = tmp_path / 'data'
    shutil.copytree(tiny_isic, root)
    config = str(write_tiny_config(tmp_path / 'tiny.py', root))
    cfg = Config.fromfile(config)
    splits = root / 'splits'
    trained = (splits / 'lightweight_train.txt').read_text().split()[2]
    scored = (splits / 'lightweight_test.txt').read_text().split()[1]
    checkpoint = str(tmp_path / 'epoch_1.pth')
    torch.save(dict(state_dict={}, meta=dict(cfg=(
        "train_dataloader = dict(dataset=dict(type='ISIC2018Dataset', "
        f"data_root='{root}', ann_file='splits/lightweight_train.txt'))"))),
        checkpoint)
    # Without the record the splits are disjoint.
    check_held_out_images(cfg, ('val_dataloader', ), config)
    check_not_tested_on_training_images(
        checkpoint, cfg.test_dataloader.dataset, config)
    meta = json.loads((root / 'meta.json').read_text())
    meta['identical_images_across_lists'] = [[
        dict(list='lightweight_train', id=trained),
        dict(list='lightweight_test', id=scored)]]
    (root / 'meta.json').write_text(json.dumps(meta))
    with pytest.raises(UserError) as error:
        check_held_out_images(cfg, ('val_dataloader', ), config)
    assert str(error.value) == (
        f'{config}: val_dataloader scores 1 photo of '
        f'{root}/splits/lightweight_test.txt that train_dataloader trains '
        f'on under another id ({root}/splits/lightweight_train.txt; '
        f'{root}/meta.json records them in identical_images_across_lists: '
        f'{scored} = {trained}): figures on images the model learns from '
        'favour it (and so would a best checkpoint chosen by them); make '
        'the splits disjoint (converted with another --seed, the set keeps '
        'the copies apart), or set --cfg-options val_cfg=None '
        'val_dataloader=None val_evaluator=None to train without '
        'validation. Nothing was started.')
    with pytest.raises(UserError, match=(
            f'^checkpoint {checkpoint} was trained on 1 photo that {config} '
            'scores under another id ')) as error:
        check_not_tested_on_training_images(
            checkpoint, cfg.test_dataloader.dataset, config)
    assert f'identical_images_across_lists: {scored} = {trained})' in str(
        error.value)


def test_a_training_set_without_a_split_file_above_the_scored_images_is_refused(  # noqa: E501
        tiny_config):
    """A training dataset without a split file reads every image under its
    folder, recursively: one whose folder is the data root (``img_path=''``)
    trains on the validation split's images under ``images/`` too. Refused
    like a training set in the scored folder itself."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import check_held_out_images
    from mmseg_dsnet.utils.errors import UserError
    cfg = Config.fromfile(tiny_config)
    root = cfg.data_root
    cfg.train_dataloader.dataset.update(
        ann_file='', data_prefix=dict(img_path='', seg_map_path=''))
    with pytest.raises(UserError, match=re.escape(
            'val_dataloader scores the ') + r'\d+' + re.escape(
            f' images of {root}/splits/lightweight_test.txt, and '
            f'train_dataloader trains on every image under {root}/ ')):
        check_held_out_images(cfg, ('val_dataloader', ))


def test_a_synthetic_validation_split_holding_training_images_is_refused(
        tiny_isic, tmp_path):
    """On a synthetic set (the demo's) too, a training split listing
    validation images is refused: the two splits are of one kind of set,
    whose ids are compared."""
    import shutil

    from conftest import write_tiny_config
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import check_held_out_images
    from mmseg_dsnet.utils.errors import UserError
    synthetic = tmp_path / 'synthetic'
    shutil.copytree(tiny_isic, synthetic)
    (synthetic / 'SYNTHETIC.txt').write_text('made by a test\n')
    cfg = Config.fromfile(write_tiny_config(tmp_path / 'tiny.py', synthetic))
    check_held_out_images(cfg, ('val_dataloader', ))
    splits = synthetic / 'splits'
    leaked = splits / 'leaked.txt'
    leaked.write_text((splits / 'lightweight_train.txt').read_text() +
                      (splits / 'lightweight_test.txt').read_text())
    cfg.train_dataloader.dataset.ann_file = str(leaked)
    with pytest.raises(UserError, match='val_dataloader scores '):
        check_held_out_images(cfg, ('val_dataloader', ))


def test_a_validation_set_without_a_split_file_over_the_training_images_is_refused(  # noqa: E501
        tiny_config, tmp_path):
    """A validation dataset without a split file scores every image under
    its folder: over the training split's folder it validated on the
    training images too and chose the best checkpoint by them, exit 0.
    Refused; one over a folder of its own is not."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import check_held_out_images
    from mmseg_dsnet.utils.errors import UserError
    cfg = Config.fromfile(tiny_config)
    root = cfg.data_root
    cfg.val_dataloader.dataset.ann_file = ''
    with pytest.raises(UserError, match=re.escape(
            f'val_dataloader scores every image under {root}/images (it '
            f'names no ann_file), and train_dataloader trains on images '
            f'under {root}/images ({root}/splits/lightweight_train.txt), '
            'those among them: figures on images the model learns from '
            'favour it (and so would a best checkpoint chosen by them); '
            'give val_dataloader.dataset a split file (ann_file) of images '
            'the training does not use, or set --cfg-options val_cfg=None '
            'val_dataloader=None val_evaluator=None to train without '
            'validation. Nothing was started.')):
        check_held_out_images(cfg, ('val_dataloader', ))
    # Neither names a split file, the training folder above the scored one.
    cfg.train_dataloader.dataset.update(
        ann_file='', data_prefix=dict(img_path='', seg_map_path=''))
    with pytest.raises(UserError, match=re.escape(
            f'train_dataloader trains on images under {root}/, those '
            'among them: figures on images the model learns from favour it '
            '(and so would a best checkpoint chosen by them); give '
            'val_dataloader.dataset and train_dataloader.dataset split '
            'files (ann_file) that share no image, or set')):
        check_held_out_images(cfg, ('val_dataloader', ))
    # A test loader: no advice to train without validation.
    with pytest.raises(UserError, match=re.escape(
            'that share no image. Nothing was started.')):
        cfg.test_dataloader = cfg.val_dataloader
        check_held_out_images(cfg, ('test_dataloader', ))
    (tmp_path / 'own').mkdir()
    cfg.val_dataloader.dataset.update(data_root=str(tmp_path),
                                      data_prefix=dict(img_path='own',
                                                       seg_map_path='own'))
    check_held_out_images(cfg, ('val_dataloader', ))


def test_each_part_of_a_training_concat_dataset_is_compared_with_the_scored_split(  # noqa: E501
        tiny_isic, tmp_path):
    """A training ``ConcatDataset`` of a set without a split file in a
    folder of its own (``imag``, beside the scored ``images``: a name that
    begins like it is no folder inside it) and of a split listing a scored
    image: the first part holds no scored image, and the second is still
    compared and refused; for a test loader the message says nothing of a
    best checkpoint (a test chooses none)."""
    import shutil

    from conftest import write_tiny_config
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import check_held_out_images
    from mmseg_dsnet.utils.errors import UserError
    root = tmp_path / 'isic'
    shutil.copytree(tiny_isic, root)
    (root / 'imag').mkdir()
    cfg = Config.fromfile(write_tiny_config(tmp_path / 'tiny.py', root))
    split = cfg.train_dataloader.dataset.to_dict()
    own = dict(split, ann_file='', data_prefix=dict(img_path='imag',
                                                    seg_map_path='imag'))
    cfg.train_dataloader.dataset = dict(type='ConcatDataset',
                                        datasets=[own])
    check_held_out_images(cfg, ('val_dataloader', 'test_dataloader'))
    test_ids = (root / 'splits' / 'lightweight_test.txt').read_text().split()
    leaked = tmp_path / 'leaked.txt'
    leaked.write_text((root / 'splits' / 'lightweight_train.txt').read_text()
                      + f'{test_ids[0]}\n')
    cfg.train_dataloader.dataset = dict(
        type='ConcatDataset',
        datasets=[own, dict(split, ann_file=str(leaked))])
    with pytest.raises(UserError) as error:
        check_held_out_images(cfg, ('test_dataloader', ))
    message = str(error.value)
    assert (f'test_dataloader scores 1 of the {len(test_ids)} images of '
            f'{root}/splits/lightweight_test.txt that train_dataloader '
            f'trains on ({leaked}: {test_ids[0]})') in message, message
    assert 'best checkpoint' not in message, message
    with pytest.raises(UserError, match='and so would a best checkpoint'):
        check_held_out_images(cfg, ('val_dataloader', ))
    # The second loader is compared too (fast_train.py checks both): a
    # validation split the training does not hold comes first.
    (tmp_path / 'val.txt').write_text('\n'.join(test_ids[1:]) + '\n')
    cfg.val_dataloader.dataset.ann_file = str(tmp_path / 'val.txt')
    with pytest.raises(UserError, match='test_dataloader scores 1 of the'):
        check_held_out_images(cfg, ('val_dataloader', 'test_dataloader'))
    # A training set without a split file read through a link to the data
    # root (or another spelling of it) reads the scored images too.
    (tmp_path / 'link').symlink_to(root)
    cfg.train_dataloader.dataset = dict(
        own, data_root=str(tmp_path / 'link'),
        data_prefix=dict(img_path='', seg_map_path=''))
    with pytest.raises(UserError, match=re.escape(
            f'train_dataloader trains on every image under '
            f'{tmp_path}/link/ (it names no ann_file)')):
        check_held_out_images(cfg, ('test_dataloader', ))


def test_an_error_every_rank_raised_is_printed_by_rank_0_only(
        capsys, monkeypatch):
    """An error marked with ``mark_every_rank`` (its cause pooled over the
    processes) is one ``ERROR:`` line, printed by rank 0; every rank exits
    with status 2. An error of one process alone is printed where it was
    raised."""
    from mmseg_dsnet.engine import cli_errors, run_reporting_user_errors
    from mmseg_dsnet.utils.errors import UserError, mark_every_rank
    monkeypatch.setattr(cli_errors, 'RANK_0_GRACE_S', 0)
    for rank, marked, err in (('0', True, 'ERROR: pooled\n'),
                              ('1', True, ''), ('3', True, ''),
                              ('1', False, 'ERROR: pooled\n')):
        monkeypatch.setenv('RANK', rank)

        def main():
            error = UserError('pooled')
            raise mark_every_rank(error) if marked else error
        with pytest.raises(SystemExit) as stopped:
            run_reporting_user_errors(main)
        assert stopped.value.code == 2
        assert capsys.readouterr().err == err, (rank, marked)


def test_only_errors_that_say_what_to_fix_become_one_line():
    """``describe_user_error``: a type missing from a registry and a
    misspelt config key get their advice (a KeyError's message without
    the quotes ``str`` adds); a FileExistsError that does not name
    ``--overwrite`` (``os.makedirs`` of a taken path) or any other KeyError
    is a bug, not a user error (None: its traceback is kept)."""
    from mmseg_dsnet.engine.cli_errors import describe_user_error
    assert describe_user_error(KeyError('Foo is not in the model registry')) \
        == ('Foo is not in the model registry (check the spelling of this '
            'type in the config)')
    assert describe_user_error(TypeError(
        "__init__() got an unexpected keyword argument 'chanels'")) == (
            "__init__() got an unexpected keyword argument 'chanels' (check "
            'the spelling of this key in the config)')
    assert describe_user_error(FileExistsError(
        '[Errno 17] File exists: work_dirs/x')) is None
    assert describe_user_error(FileExistsError(
        'out.json already exists (use --overwrite to replace it)')) == \
        'out.json already exists (use --overwrite to replace it)'
    assert describe_user_error(KeyError('state_dict')) is None
    assert describe_user_error(ValueError('bad')) is None


def test_a_sigterm_action_the_caller_set_is_left_in_place():
    """A SIGTERM handler someone else set (a scheduler's, a caller running
    the tool in-process) is kept while the tool runs, not replaced."""
    import signal

    from mmseg_dsnet.engine import run_reporting_user_errors

    def callers(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, callers)
    try:
        seen = []
        run_reporting_user_errors(
            lambda: seen.append(signal.getsignal(signal.SIGTERM)))
        assert seen == [callers]
        assert signal.getsignal(signal.SIGTERM) is callers
        # The default action is replaced while the tool runs, then back.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        run_reporting_user_errors(
            lambda: seen.append(signal.getsignal(signal.SIGTERM)))
        assert seen[1] not in (signal.SIG_DFL, callers)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)
