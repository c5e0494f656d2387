"""tools/infer.py: masks at the original size for every kind of image,
bad inputs reported by name while the rest succeed, no overwriting, both
backends agree, and our configs work with mmseg's MMSegInferencer."""
import contextlib
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, load_tool, make_lesion_checkpoint, run_cli
from PIL import Image
from mmseg_dsnet.utils.fileio import PARTIAL_MARK

CONFIG = str(REPO / 'configs/dsnet/dsnet_isic2017.py')


def make_checkpoint(path, seed=0):
    """Random DSNet weights (non-trivial BatchNorm statistics), saved with
    mmengine's ``save_checkpoint``."""
    return make_lesion_checkpoint(CONFIG, path, lesion_image(256, 256, seed),
                                  seed)


def lesion_image(height, width, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    blob = ((yy - height / 2)**2 / (0.25 * height)**2 +
            (xx - width / 2)**2 / (0.3 * width)**2) < 1
    image = np.empty((height, width, 3), np.float32)
    image[:] = (205, 150, 130)
    image[blob] = (80, 45, 40)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp('ckpt') / 'dsnet.pth')


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    """Good images of every kind (name -> (height, width)) and bad ones."""
    folder = tmp_path_factory.mktemp('inputs')
    sizes = {}
    Image.fromarray(lesion_image(190, 250)).save(folder / 'normal.jpg',
                                                 quality=95)
    sizes['normal'] = (190, 250)
    Image.fromarray(np.full((1, 1, 3), 90, np.uint8)).save(folder / 'one.png')
    sizes['one'] = (1, 1)
    Image.fromarray(lesion_image(120, 90, 1)[..., 0]).save(folder /
                                                           'gray.png')
    sizes['gray'] = (120, 90)
    rgba = np.dstack([lesion_image(70, 130, 2),
                      np.full((70, 130), 128, np.uint8)])
    Image.fromarray(rgba).save(folder / 'rgba.png')
    sizes['rgba'] = (70, 130)
    sixteen = lesion_image(66, 77, 3).astype(np.uint16) * 257
    cv2.imwrite(str(folder / 'deep16.png'), sixteen)
    sizes['deep16'] = (66, 77)
    good = open(folder / 'normal.jpg', 'rb').read()
    (folder / 'truncated.jpg').write_bytes(good[:len(good) // 2])
    (folder / 'notes.txt').write_text('not an image')
    return folder, sizes


def run_tool(argv):
    return load_tool('infer.py').main(argv)


def run_cli_tool(argv, capsys):
    """(exit status, stderr) of infer.py's command line."""
    return run_cli(load_tool('infer.py').main, argv, capsys)


def test_masks_at_original_size_and_bad_inputs(checkpoint, inputs, tmp_path,
                                               capsys):
    folder, sizes = inputs
    out = tmp_path / 'out'
    code = run_tool([
        CONFIG, checkpoint, str(folder),
        str(folder / 'notes.txt'), '--out-dir',
        str(out), '--no-progress'
    ])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    # A partial result is not success: status 1 after one ERROR line.
    assert code == 1, text
    errors = [line for line in captured.err.splitlines()
              if line.startswith('ERROR:')]
    assert len(errors) == 1 and '2 inputs failed' in errors[0]
    for stem, (height, width) in sizes.items():
        mask = np.array(Image.open(out / 'masks' / f'{stem}.png'))
        assert mask.shape == (height, width), stem
        assert set(np.unique(mask)) <= {0, 255}
        overlay = Image.open(out / 'overlays' / f'{stem}.jpg')
        assert overlay.size == (width, height)
    assert not (out / 'masks' / 'truncated.png').exists()
    assert not (out / 'masks' / 'notes.png').exists()
    assert 'truncated.jpg: unreadable or truncated image' in text
    assert 'notes.txt: not an image file' in text
    assert 'Processed 5 of 7' in text and 'Failed 2' in text
    assert 'grayscale' in text and 'alpha channel dropped' in text
    assert '16-bit' in text
    # --allow-failures accepts the partial result; the failure is still
    # listed and the good image written.
    accepted = tmp_path / 'accepted'
    code = run_tool([
        CONFIG, checkpoint,
        str(folder / 'truncated.jpg'),
        str(folder / 'normal.jpg'), '--out-dir',
        str(accepted), '--no-progress', '--allow-failures'
    ])
    captured = capsys.readouterr()
    assert code == 0
    assert 'truncated.jpg: unreadable or truncated image' in captured.out
    assert 'ERROR' not in captured.err
    assert (accepted / 'masks' / 'normal.png').exists()
    # A missing input is a failure too.
    code = run_tool([
        CONFIG, checkpoint,
        str(folder / 'gone.jpg'),
        str(folder / 'normal.jpg'), '--out-dir',
        str(tmp_path / 'missing'), '--no-progress'
    ])
    assert code == 1
    assert 'gone.jpg: no such file' in capsys.readouterr().err


def test_large_image_and_pixel_limit(checkpoint, tmp_path, capsys):
    big = tmp_path / 'big.png'
    Image.fromarray(lesion_image(2100, 3000)).save(big)
    out = tmp_path / 'out'
    code = run_tool([CONFIG, checkpoint, str(big), '--out-dir', str(out),
                     '--no-progress', '--overlay-max-side', '1000'])
    assert code == 0
    assert Image.open(out / 'masks' / 'big.png').size == (3000, 2100)
    assert max(Image.open(out / 'overlays' / 'big.jpg').size) == 1000
    code = run_tool([CONFIG, checkpoint, str(big), '--out-dir',
                     str(tmp_path / 'limited'), '--no-progress',
                     '--max-pixels', '1000000'])
    text = capsys.readouterr()
    assert code == 2
    assert 'big.png: 3000x2100 = 6300000 pixels is above the limit of ' \
        '1000000 pixels (raise it with --max-pixels)' in text.out + text.err
    # Nothing was written, so the run leaves no empty output folders.
    assert not (tmp_path / 'limited').exists()


def test_empty_folder_message(checkpoint, tmp_path, capsys):
    empty = tmp_path / 'empty'
    empty.mkdir()
    code = run_tool([CONFIG, checkpoint, str(empty), '--out-dir',
                     str(tmp_path / 'out' / 'new'), '--no-progress'])
    assert code == 2
    err = capsys.readouterr().err
    # One ERROR line naming the input and what is wrong (an 'error:' line
    # before it made two).
    lines = [line for line in err.splitlines()
             if line.lower().startswith('error')]
    assert lines == [f'ERROR: no images to process: {empty}: folder '
                     'contains no image files (.jpg, .jpeg, .jpe, .jfif, '
                     '.png, .bmp, .tif, .tiff, .webp, .gif, .ppm, .pgm, '
                     '.pbm, .heic, .heif)'], err
    # The folders the run created are gone again; a folder the user
    # already had stays.
    assert not (tmp_path / 'out').exists()
    kept = tmp_path / 'kept'
    (kept / 'masks').mkdir(parents=True)
    (kept / 'masks' / 'old.png').write_bytes(b'x')
    assert run_tool([CONFIG, checkpoint, str(empty), '--out-dir', str(kept),
                     '--no-progress']) == 2
    assert sorted(p.name for p in kept.rglob('*')) == ['masks', 'old.png']


@pytest.mark.parametrize('option,value', [
    ('--batch-size', '0'), ('--max-pixels', '0'), ('--threads', '0'),
    ('--overlay-max-side', '0'), ('--threshold', '1.5')])
def test_options_out_of_range_are_refused(checkpoint, inputs, tmp_path,
                                          capsys, option, value):
    """``--overlay-max-side 0`` used to write 1x1 overlays with exit 0."""
    folder, _ = inputs
    out = tmp_path / 'out'
    code, err = run_cli_tool([CONFIG, checkpoint, str(folder / 'normal.jpg'),
                              '--out-dir', str(out), option, value], capsys)
    assert code == 2
    assert err.startswith(f'ERROR: {option} must be'), err
    assert err.count('\n') == 1 and 'usage:' not in err
    assert not out.exists()


def test_device_and_threads_reach_their_backend(checkpoint, inputs,
                                                tmp_path, capsys,
                                                monkeypatch):
    """``--device`` with onnxruntime was ignored (the run stayed on the CPU
    without a word): refused. ``--threads`` with the pytorch backend was
    ignored too: the network runs on that many torch threads, and the
    caller's count is given back."""
    from mmseg_dsnet.deploy.deployable import DeployableSegmentor
    folder, _ = inputs
    image = str(folder / 'normal.jpg')
    for argv in ([str(tmp_path / 'model.onnx'), image],
                 [CONFIG, checkpoint, image, '--backend', 'onnxruntime']):
        code, err = run_cli_tool(argv + ['--out-dir', str(tmp_path / 'out'),
                                         '--device', 'cuda'], capsys)
        assert code == 2
        assert err == ('ERROR: --device cuda applies to the pytorch backend; '
                       'onnxruntime runs on the CPU here\n')
        assert not (tmp_path / 'out').exists()
    seen, forward = [], DeployableSegmentor.forward
    monkeypatch.setattr(DeployableSegmentor, 'forward', lambda *args: (
        seen.append(torch.get_num_threads()), forward(*args))[1])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert run_tool([CONFIG, checkpoint, image, '--out-dir',
                         str(tmp_path / 'out'), '--threads', '1',
                         '--no-progress']) == 0
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_device_this_machine_lacks_is_refused(checkpoint, inputs,
                                               tmp_path, capsys):
    """``--device cuda`` on a machine without CUDA failed when the model
    was moved there: an ``AssertionError`` traceback, exit 1, and the
    output folders were left behind. Now one usage error before any
    work."""
    folder, _ = inputs
    image = str(folder / 'normal.jpg')
    out = tmp_path / 'out'
    # A CUDA device this machine does not have, with or without a GPU.
    missing = 'cuda:99' if torch.cuda.is_available() else 'cuda'
    for device, message in (
            (missing, f'--device {missing}: '),
            ('foo', '--device foo: not a device; give cuda, cuda:N or cpu')):
        code, err = run_cli_tool([CONFIG, checkpoint, image, '--out-dir',
                                  str(out), '--device', device,
                                  '--no-progress'], capsys)
        assert code == 2
        assert err.startswith(f'ERROR: {message}'), err
        assert 'Traceback' not in err
        assert not out.exists()


def test_a_config_tested_otherwise_is_refused(checkpoint, inputs, tmp_path,
                                              capsys):
    """A config whose test pipeline keeps the aspect ratio, or that slides
    windows over the image: both backends ran the whole image resized to
    the scale, aspect not kept, and wrote other masks than those
    ``tools/test.py`` scores for it, exit 0."""
    folder, _ = inputs
    image = str(folder / 'normal.jpg')
    keep = tmp_path / 'keep.py'
    keep.write_text(
        f'_base_ = [{CONFIG!r}]\n'
        "test_pipeline = [dict(type='LoadImageFromFile'), "
        "dict(type='Resize', scale=(256, 256), keep_ratio=True), "
        "dict(type='LoadAnnotations'), dict(type='PackSegInputs')]\n"
        'test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n')
    slide = tmp_path / 'slide.py'
    slide.write_text(
        f'_base_ = [{CONFIG!r}]\n'
        "model = dict(test_cfg=dict(mode='slide', crop_size=(128, 128), "
        'stride=(85, 85)))\n')
    out = tmp_path / 'out'
    for config, problem in (
            (keep, "its test pipeline's Resize keeps the aspect ratio "
             '(scale=(256, 256), keep_ratio=True), while the deployed network '
             'resizes every image to exactly that size'),
            (slide, "model.test_cfg.mode is 'slide', while the deployed "
             'network runs the whole image once')):
        for backend in ('pytorch', 'onnxruntime'):
            assert run_tool([str(config), checkpoint, image, '--out-dir',
                             str(out), '--backend', backend,
                             '--no-progress']) == 2
            last = capsys.readouterr().err.strip().splitlines()[-1]
            assert last == (
                f'ERROR: config {config} is tested otherwise than the '
                f'deployed network (the ONNX export, infer.py) runs it: '
                f'{problem}; the masks would differ from those '
                'tools/test.py scores for it; give a config with keep_ratio='
                "False and test_cfg mode='whole' (as "
                'configs/_base_/datasets/isic_256x256.py and our model '
                'configs)'), last
            assert not out.exists()


def test_sub_folders_left_out_are_named(checkpoint, tmp_path, capsys):
    """A folder of photos with sub-folders of more (one per patient),
    without --recursive: the sub-folders' images were left out without a
    word, ``Processed 1 of 1 images``, exit 0. Now each is named, and the
    summary counts them; the folder holding the outputs is not named."""
    photos = tmp_path / 'photos'
    (photos / 'patient2').mkdir(parents=True)
    Image.fromarray(lesion_image(30, 40)).save(photos / 'top.jpg')
    Image.fromarray(lesion_image(30, 40)).save(photos / 'patient2' / 'a.jpg')
    out = photos / 'results'
    argv = [CONFIG, checkpoint, str(photos), '--out-dir', str(out),
            '--no-progress']
    assert run_tool(argv) == 0
    captured = capsys.readouterr()
    assert (f'skipped {photos / "patient2"}: a sub-folder, not searched '
            '(--recursive to segment its images too)') in captured.err
    assert str(out) + ':' not in captured.err
    assert ('Not searched: 1 sub-folder of the input folders (listed '
            'above; --recursive to segment their images)') in captured.out
    assert sorted(os.listdir(out / 'masks')) == ['top.png']
    assert run_tool(argv + ['--recursive']) == 0
    captured = capsys.readouterr()
    assert 'Not searched' not in captured.out + captured.err
    assert sorted(os.listdir(out / 'masks')) == ['a.png', 'top.png']


def test_a_checkpoint_trained_at_another_size_is_refused(inputs, tmp_path,
                                                         capsys):
    """A checkpoint trained at 128 px (its ``meta['cfg']``, the training
    config mmengine dumps into it, says so) given with a 256 px config: it
    loads strictly (a fully convolutional model has no size in its
    weights) and its masks were made at 256 px, exit 0."""
    from conftest import DEMO_128PX, make_128px_checkpoint, trained_size_error
    folder, _ = inputs
    demo = DEMO_128PX
    trained = make_128px_checkpoint(tmp_path / 'epoch_1.pth')
    out = tmp_path / 'out'
    image = str(folder / 'normal.jpg')
    for backend in ('pytorch', 'onnxruntime'):
        assert run_tool([CONFIG, trained, image, '--out-dir', str(out),
                         '--backend', backend, '--no-progress']) == 2
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1] == trained_size_error(
            trained, CONFIG, 'give the config it was trained with (the one '
            'its training dumped into its work dir)')
        assert not out.exists()
    # With the config it was trained with, it runs at its size.
    assert run_tool([demo, trained, image, '--out-dir', str(out),
                     '--no-progress']) == 0
    assert 'model input 128x128' in capsys.readouterr().err
    assert Image.open(out / 'masks' / 'normal.png').size == (250, 190)


def test_a_checkpoint_among_the_inputs_is_refused(checkpoint, inputs,
                                                  tmp_path, capsys):
    """A checkpoint given without its config (or beside an ONNX file) was
    read as one more input: the photos were segmented by the released DSNet
    (the ONNX model) and the checkpoint reported as an unreadable image,
    with exit 0 under --allow-failures."""
    folder, _ = inputs
    out = tmp_path / 'out'
    for argv, message in (
            ([checkpoint, str(folder)],
             f'{checkpoint} is a checkpoint, not an image: give its config '
             'first (CONFIG CHECKPOINT INPUT ...); without a config the '
             'released DSNet is used and every argument is an input'),
            ([str(tmp_path / 'model.onnx'), checkpoint, str(folder)],
             f'{checkpoint} is a checkpoint, not an image: an ONNX file '
             'holds its weights'),
            ([CONFIG, checkpoint, str(folder), checkpoint],
             f'{checkpoint} is a checkpoint, not an image: give one '
             'checkpoint, right after the config')):
        code, err = run_cli_tool(
            argv + ['--out-dir', str(out), '--allow-failures'], capsys)
        assert code == 2
        assert err == f'ERROR: {message}\n'
        assert not out.exists()


def test_a_yaml_or_json_config_is_a_config(checkpoint, inputs, tmp_path,
                                           capsys):
    """A config dumped as ``.yaml`` or ``.json`` (mmengine reads both) was
    taken for an input, so its checkpoint was refused with 'give its
    config first', though the config came first."""
    from mmengine.config import Config
    folder, _ = inputs
    config = Config.fromfile(CONFIG)
    config.dump(str(tmp_path / 'net.json'))
    args = load_tool('infer.py').parse_args(
        [str(tmp_path / 'net.json'), checkpoint, 'photo.jpg', '--out-dir',
         'out'])
    assert (args.released, args.checkpoint, args.inputs) == (
        False, checkpoint, ['photo.jpg'])
    yaml_config = str(tmp_path / 'net.yaml')
    config.dump(yaml_config)
    out = tmp_path / 'out'
    code, err = run_cli_tool([yaml_config, checkpoint,
                              str(folder / 'normal.jpg'), '--out-dir',
                              str(out), '--no-progress'], capsys)
    assert code == 0, err
    assert Image.open(out / 'masks' / 'normal.png').size == (250, 190)


def test_unwritable_output_folder(checkpoint, inputs, tmp_path, capsys):
    folder, _ = inputs
    if os.geteuid() == 0:
        # chmod does not stop root: put the folder under a regular file.
        (tmp_path / 'afile').write_text('x')
        out = tmp_path / 'afile' / 'sub'
    else:
        locked = tmp_path / 'locked'
        locked.mkdir()
        locked.chmod(0o500)
        out = locked / 'sub'
    try:
        code = run_tool([CONFIG, checkpoint, str(folder / 'normal.jpg'),
                         '--out-dir', str(out), '--no-progress'])
    finally:
        if os.geteuid() != 0:
            (tmp_path / 'locked').chmod(0o700)
    assert code == 2
    assert 'cannot write to output folder' in capsys.readouterr().err


def test_a_record_that_cannot_be_written_is_one_error(checkpoint, inputs,
                                                     tmp_path, capsys):
    """An output folder whose ``masks/`` and ``overlays/`` are writable but
    whose top level is not: writing ``model.json`` ended with an
    ``OSError`` traceback. The write is made to fail as root can see it
    fail: its temporary file's name is taken by a folder."""
    folder, _ = inputs
    out = tmp_path / 'out'
    blocker = out / f'.model.json{PARTIAL_MARK}{os.getpid()}'
    (blocker / 'x').mkdir(parents=True)
    code = run_tool([CONFIG, checkpoint, str(folder / 'normal.jpg'),
                     '--out-dir', str(out), '--no-progress'])
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if 'ERROR' in line]
    assert errors == [line for line in errors
                      if line.startswith(f'ERROR: cannot write '
                                         f'{out / "model.json"}: ')], err
    assert len(errors) == 1 and 'Traceback' not in err
    # Nothing that looks like a finished run.
    left = {p.name for p in out.iterdir()} if out.exists() else set()
    assert not left & {'model.json', 'masks', 'overlays', 'sources.json'}


def test_no_overwrite_without_flag(checkpoint, inputs, tmp_path, capsys):
    folder, _ = inputs
    out = tmp_path / 'out'
    argv = [CONFIG, checkpoint, str(folder / 'normal.jpg'), '--out-dir',
            str(out), '--no-progress']
    assert run_tool(argv) == 0
    mask_file = out / 'masks' / 'normal.png'
    mask_file.write_bytes(b'user data')
    assert run_tool(argv) == 0
    captured = capsys.readouterr()
    assert 'already exists' in captured.out + captured.err
    assert mask_file.read_bytes() == b'user data'
    assert run_tool(argv + ['--overwrite']) == 0
    assert Image.open(mask_file).size == (250, 190)


def test_one_folder_holds_one_models_masks(checkpoint, inputs, tmp_path,
                                           capsys):
    """``OUT/model.json`` names the model behind the folder's outputs. A
    run with another checkpoint or threshold is refused while the folder
    holds the first model's masks (it skipped them and added its own beside
    them, exit 0); ``--overwrite`` replaces them all, and is refused when
    some belong to images the run does not process."""
    import json
    folder, _ = inputs
    out = tmp_path / 'out'
    normal, gray = str(folder / 'normal.jpg'), str(folder / 'gray.png')
    first = [CONFIG, checkpoint, normal, '--out-dir', str(out),
             '--no-progress']
    assert run_tool(first) == 0
    record = json.loads((out / 'model.json').read_text())
    assert record['checkpoint'] == 'dsnet.pth'
    assert record['threshold'] == 0.5 and record['flips'] is False
    old_mask = (out / 'masks' / 'normal.png').read_bytes()
    other = make_checkpoint(tmp_path / 'other.pth', seed=1)
    second = [CONFIG, other, normal, gray, '--out-dir', str(out),
              '--no-progress']

    def refused(argv, *expected):
        before = sorted(p.name for p in out.rglob('*'))
        assert run_tool(argv) == 2
        err = capsys.readouterr().err
        assert err.count('ERROR:') == 1
        for text in expected:
            assert text in err
        assert sorted(p.name for p in out.rglob('*')) == before
        assert (out / 'masks' / 'normal.png').read_bytes() == old_mask

    refused(second, 'holds 2 outputs of another model (',
            'this run uses', 'other.pth', '--overwrite to replace them')
    refused(first + ['--threshold', '0.3'], 'threshold 0.3')
    refused(first + ['--tta'], 'with flips')
    refused([CONFIG, other, gray, '--out-dir', str(out), '--no-progress',
             '--overwrite'], 'for images this run does not process (2 files')
    # The same model continues the folder as before.
    assert run_tool(first[:2] + [gray] + first[3:]) == 0
    assert (out / 'masks' / 'gray.png').is_file()

    # --overwrite with every image replaces the first model's outputs.
    assert run_tool(second + ['--overwrite']) == 0
    assert 'Removed 4 outputs of another model' in capsys.readouterr().err
    record = json.loads((out / 'model.json').read_text())
    assert record['checkpoint'] == 'other.pth'
    fresh = tmp_path / 'fresh'
    assert run_tool([CONFIG, other, normal, gray, '--out-dir', str(fresh),
                     '--no-progress']) == 0
    for name in ('normal.png', 'gray.png'):
        assert (out / 'masks' / name).read_bytes() == (
            fresh / 'masks' / name).read_bytes()

    # Masks without a record are of an unknown model.
    (fresh / 'model.json').unlink()
    assert run_tool(second[:-3] + ['--out-dir', str(fresh),
                                   '--no-progress']) == 2
    assert 'of a model it has no record of (model.json)' in \
        capsys.readouterr().err

    # A run that writes nothing leaves no record behind.
    empty_run = tmp_path / 'nothing'
    assert run_tool([CONFIG, checkpoint, str(folder / 'truncated.jpg'),
                     '--out-dir', str(empty_run), '--no-progress']) == 2
    assert not empty_run.exists()


def test_files_it_did_not_write_are_never_replaced(checkpoint, tiny_isic,
                                                  tmp_path, capsys):
    """A converted data set given as ``--out-dir`` (``images/`` beside its
    ground truth ``masks/<id>.png``): the masks counted as outputs of a
    model with no record, and ``--overwrite`` replaced the ground truth
    with the predictions, exit 0. Photos in ``OUT/overlays`` given as the
    input were removed as such outputs. Both are refused, byte for byte;
    a folder of this tool's own masks without a record is replaced as
    before."""
    import shutil

    from conftest import tree_hashes
    data = tmp_path / 'isic2018'
    shutil.copytree(tiny_isic, data)
    before = tree_hashes(data)
    for extra in ([], ['--overwrite']):
        code = run_tool([CONFIG, checkpoint, str(data / 'images'),
                         '--out-dir', str(data), '--no-progress'] + extra)
        err = capsys.readouterr().err
        assert code == 2, err
        lines = [line for line in err.splitlines() if 'ERROR:' in line]
        assert lines == [
            f'ERROR: {data} has no model.json and holds 22 files infer.py '
            f'does not write (e.g. {data}/masks/ISIC_0000000.png: values '
            '0, 1, not a 0/255 mask), such as the ground truth of a data '
            'set; this run would write its outputs among them and, with '
            '--overwrite, delete them: give another --out-dir'], err
        assert tree_hashes(data) == before
        assert sorted(p.name for p in data.iterdir()) == [
            'images', 'masks', 'meta.json', 'splits']

    photos = tmp_path / 'photos'
    (photos / 'overlays').mkdir(parents=True)
    for index in range(2):
        Image.fromarray(lesion_image(40, 50, index)).save(
            photos / 'overlays' / f'p{index}.jpg')
    before = tree_hashes(photos)
    code = run_tool([CONFIG, checkpoint, str(photos / 'overlays'),
                     '--out-dir', str(photos), '--overwrite',
                     '--no-progress'])
    err = capsys.readouterr().err
    assert code == 2, err
    assert (f'ERROR: 2 inputs ({photos}/overlays/p0.jpg, '
            f'{photos}/overlays/p1.jpg) lie in {photos}/overlays, where '
            'this run writes its overlays') in err
    assert tree_hashes(photos) == before
    assert sorted(p.name for p in photos.iterdir()) == ['overlays']

    # This tool's own outputs with no record are replaced with --overwrite.
    out = tmp_path / 'out'
    argv = [CONFIG, checkpoint, str(photos / 'overlays' / 'p0.jpg'),
            '--out-dir', str(out), '--no-progress']
    assert run_tool(argv) == 0
    (out / 'model.json').unlink()
    assert run_tool(argv + ['--overwrite']) == 0
    assert 'Removed 2 outputs of another model' in capsys.readouterr().err



def test_masks_of_ones_own_named_like_the_photos_are_never_replaced(
        checkpoint, tmp_path, capsys):
    """A study folder holding ground-truth masks of one's own, 0/255 PNGs
    named like the photos (``masks/p0.png`` for ``p0.jpg``), given as
    ``--out-dir``: with no ``model.json`` they passed as outputs of an
    unknown model, and ``--overwrite`` deleted them for the predictions,
    exit 0. Masks no run of infer.py recorded writing (its
    ``sources.json``) are now refused, also with ``--overwrite``."""
    from conftest import tree_hashes
    photos, study = tmp_path / 'photos', tmp_path / 'study'
    photos.mkdir()
    (study / 'masks').mkdir(parents=True)
    truth = np.zeros((40, 50), np.uint8)
    truth[10:20, 10:30] = 255
    for index in range(2):
        Image.fromarray(lesion_image(40, 50, index)).save(
            photos / f'p{index}.jpg')
        Image.fromarray(truth).save(study / 'masks' / f'p{index}.png')
    before = tree_hashes(study)
    for extra in ([], ['--overwrite']):
        code = run_tool([CONFIG, checkpoint, str(photos), '--out-dir',
                         str(study), '--no-progress'] + extra)
        err = capsys.readouterr().err
        assert code == 2, err
        assert [line for line in err.splitlines() if 'ERROR:' in line] == [
            f'ERROR: {study} has no model.json, so it is no output folder '
            'of infer.py, and holds 2 files no infer.py run recorded '
            f'writing there (e.g. {study}/masks/p0.png), such as masks of '
            'your own named like the photos; this run would write its '
            'outputs among them and, with --overwrite, replace them: give '
            'another --out-dir'], err
        assert tree_hashes(study) == before
        assert sorted(p.name for p in study.iterdir()) == ['masks']
    # Beside this tool's own (recorded) outputs, only the mask of one's own
    # is named and counted.
    mixed = tmp_path / 'mixed'
    assert run_tool([CONFIG, checkpoint, str(photos / 'p0.jpg'), '--out-dir',
                     str(mixed), '--no-progress']) == 0
    (mixed / 'model.json').unlink()
    Image.fromarray(truth).save(mixed / 'masks' / 'p1.png')
    before = tree_hashes(mixed)
    capsys.readouterr()
    assert run_tool([CONFIG, checkpoint, str(photos), '--out-dir',
                     str(mixed), '--no-progress', '--overwrite']) == 2
    assert ('holds 1 file no infer.py run recorded writing there (e.g. '
            f'{mixed}/masks/p1.png)') in capsys.readouterr().err
    assert tree_hashes(mixed) == before


def test_no_overlay_keeps_no_overlay_of_an_old_mask(checkpoint, inputs,
                                                    tmp_path, capsys):
    """``--no-overlay`` into a folder with overlays of an earlier run: an
    overlay counts as an output, and ``--overwrite`` removes it with its
    mask (it stayed beside the new mask, showing the old one). A removed
    mask whose overlay is there was skipped (``overlays/x.jpg already
    exists``), exit 0, and the run asked for masks left it without one:
    it is now written, and the overlay (of this model and photo) kept."""
    folder, _ = inputs
    out = tmp_path / 'out'
    argv = [CONFIG, checkpoint, str(folder / 'normal.jpg'), '--out-dir',
            str(out), '--no-progress']
    assert run_tool(argv) == 0
    mask, overlay = out / 'masks' / 'normal.png', out / 'overlays' / \
        'normal.jpg'
    assert overlay.is_file()
    mask.unlink()
    assert run_tool(argv + ['--no-overlay']) == 0
    captured = capsys.readouterr()
    assert (f'completing {folder / "normal.jpg"}: {mask} missing') in \
        captured.err and f'{overlay} kept' in captured.err
    assert Image.open(mask).size == (250, 190) and overlay.is_file()
    assert run_tool(argv + ['--no-overlay']) == 0
    captured = capsys.readouterr()
    assert f'{mask}, {overlay} already exists' in captured.err
    assert run_tool(argv + ['--no-overlay', '--overwrite']) == 0
    captured = capsys.readouterr()
    assert 'Removed 1 overlays of an earlier run' in captured.out
    assert Image.open(mask).size == (250, 190) and not overlay.exists()


def test_inputs_sharing_a_name_are_told_apart(checkpoint, tmp_path, capsys):
    """Two photos named x.jpg in two folders get masks x.png and x_2.png,
    and a line names the input behind the renamed one."""
    sizes = {'a': (60, 80), 'b': (90, 70)}
    for folder, (height, width) in sizes.items():
        (tmp_path / folder).mkdir()
        Image.fromarray(lesion_image(height, width)).save(
            tmp_path / folder / 'x.jpg')
    out = tmp_path / 'out'
    second = tmp_path / 'b' / 'x.jpg'
    assert run_tool([CONFIG, checkpoint, str(tmp_path / 'a' / 'x.jpg'),
                     str(second), '--out-dir', str(out),
                     '--no-progress']) == 0
    captured = capsys.readouterr()
    assert f'{second}: its outputs are named x_2' in (captured.out +
                                                       captured.err)
    assert Image.open(out / 'masks' / 'x.png').size == (80, 60)
    assert Image.open(out / 'masks' / 'x_2.png').size == (70, 90)


def test_names_told_apart_by_case_only_are_renamed(checkpoint, tmp_path,
                                                   capsys):
    """``a/IMG_1.JPG`` and ``b/img_1.jpg`` got masks IMG_1.png and
    img_1.png: on a case-insensitive disk (macOS, Windows, exFAT) one file,
    the second mask replacing the first while sources.json named the first
    photo for it. Now the second is img_1_2, and a later run's Img_1 too
    takes a free name."""
    photos = {'a': ('IMG_1.JPG', (60, 80)), 'b': ('img_1.jpg', (90, 70)),
              'c': ('Img_1.png', (50, 40)),
              # é composed and decomposed: one name on macOS.
              'd': ('caf\u00e9.jpg', (30, 20)),
              'e': ('cafe\u0301.jpg', (20, 30))}
    for folder, (name, (height, width)) in photos.items():
        (tmp_path / folder).mkdir()
        Image.fromarray(lesion_image(height, width)).save(
            tmp_path / folder / name)
    out = tmp_path / 'out'
    second = tmp_path / 'b' / 'img_1.jpg'
    assert run_tool([CONFIG, checkpoint, str(tmp_path / 'a' / 'IMG_1.JPG'),
                     str(second), '--out-dir', str(out),
                     '--no-progress']) == 0
    captured = capsys.readouterr()
    assert (f'{second}: its outputs are named img_1_2 (another input has '
            'the same name on a case-insensitive disk') in (captured.out +
                                                          captured.err)
    assert sorted(os.listdir(out / 'masks')) == ['IMG_1.png', 'img_1_2.png']
    assert Image.open(out / 'masks' / 'IMG_1.png').size == (80, 60)
    assert Image.open(out / 'masks' / 'img_1_2.png').size == (70, 90)
    third = tmp_path / 'c' / 'Img_1.png'
    assert run_tool([CONFIG, checkpoint, str(third), '--out-dir', str(out),
                     '--no-progress']) == 0
    captured = capsys.readouterr()
    assert f'{third}: its outputs are named Img_1_3 (IMG_1 is recorded ' \
        'for' in captured.out + captured.err
    assert Image.open(out / 'masks' / 'Img_1_3.png').size == (40, 50)
    assert Image.open(out / 'masks' / 'IMG_1.png').size == (80, 60)
    assert run_tool([CONFIG, checkpoint, str(tmp_path / 'd' / photos['d'][0]),
                     str(tmp_path / 'e' / photos['e'][0]), '--out-dir',
                     str(out), '--no-progress']) == 0
    capsys.readouterr()
    assert Image.open(out / 'masks' / 'caf\u00e9.png').size == (20, 30)
    assert Image.open(out / 'masks' / 'cafe\u0301_2.png').size == (30, 20)


def test_a_folder_another_run_writes_is_refused(checkpoint, tmp_path,
                                                capsys):
    """Two runs at once into one folder (``infer.py clinic_a/`` and
    ``infer.py clinic_b/`` in two terminals) both named their x.jpg ``x``,
    the records being read when a run starts: one mask replaced the
    other, or the second run skipped its photo as done, exit 0 for both.
    Now a run into a folder another process holds is refused, and
    changes nothing there."""
    import shutil

    from conftest import tree_hashes
    photos = same_name_photos(tmp_path, {'a': (60, 80), 'b': (90, 70)})
    out = tmp_path / 'out'
    argv = ['--out-dir', str(out), '--no-progress']
    assert run_tool([CONFIG, checkpoint, str(photos['a'])] + argv) == 0
    capsys.readouterr()
    # A --no-overlay run that has just started: its folder claimed, no
    # output yet (a refused run that cleaned up after itself removed its
    # model.json, and left an empty overlays folder in it).
    starting = tmp_path / 'starting'
    (starting / 'masks').mkdir(parents=True)
    shutil.copy(out / 'model.json', starting)
    for folder in (out, starting):
        before = tree_hashes(folder)
        listed = sorted(folder.iterdir())
        with another_process_holds(folder):
            code = run_tool([CONFIG, checkpoint, str(photos['b']),
                             '--out-dir', str(folder), '--no-progress'])
            err = capsys.readouterr().err
            assert code == 2, err
            errors = [line for line in err.splitlines() if 'ERROR' in line]
            assert errors == [
                f'ERROR: {folder} is being written by another run now '
                '(infer.py or run_inference): two runs at once would give '
                'two photos of one name one mask; wait for it to end, or '
                'give another --out-dir'], err
            assert tree_hashes(folder) == before
            assert sorted(folder.iterdir()) == listed
    # Once it ends, the folder is free again.
    assert run_tool([CONFIG, checkpoint, str(photos['b'])] + argv) == 0
    assert Image.open(out / 'masks' / 'x_2.png').size == (70, 90)


@contextlib.contextmanager
def another_process_holds(folder):
    """Another process holds ``folder`` as a run does (``flock`` on the
    folder itself) until the block ends."""
    import subprocess
    import sys
    holder = subprocess.Popen(
        [sys.executable, '-c',
         'import fcntl, os, sys\n'
         'handle = os.open(sys.argv[1], os.O_RDONLY)\n'
         'fcntl.flock(handle, fcntl.LOCK_EX)\n'
         'print("held", flush=True)\n'
         'sys.stdin.read()\n', str(folder)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == 'held\n'
        yield
    finally:
        holder.communicate('')


def held_by_some_process(folder):
    """Whether a process holds ``folder`` (another one's lock refused)."""
    import subprocess
    import sys
    return subprocess.run(
        [sys.executable, '-c',
         'import fcntl, os, sys\n'
         'handle = os.open(sys.argv[1], os.O_RDONLY)\n'
         'try:\n'
         '    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\n'
         'except BlockingIOError:\n'
         '    print("busy")\n', str(folder)],
        capture_output=True, text=True, check=True).stdout == 'busy\n'


def test_a_folder_is_held_for_the_whole_run(checkpoint, tmp_path):
    """run_inference from Python wrote into a folder infer.py was writing;
    and infer.py let go of its folder between cleaning it and segmenting,
    so a second run starting then claimed it too. Both hold it throughout
    now."""
    from mmseg_dsnet.apis import (LesionInferencer, TorchBackend,
                                  run_inference)
    from mmseg_dsnet.apis.output_record import OutputFolderBusyError
    photo = same_name_photos(tmp_path, {'a': (60, 80)})['a']
    out = tmp_path / 'out'
    (out / 'masks').mkdir(parents=True)
    inferencer = LesionInferencer(TorchBackend(CONFIG, checkpoint))
    with another_process_holds(out):
        with pytest.raises(OutputFolderBusyError,
                           match='is being written by another run now'):
            run_inference(inferencer, [str(photo)], str(out),
                          progress=False)
    assert sorted(p.name for p in out.rglob('*')) == ['masks']
    tool = load_tool('infer.py')
    args = tool.parse_args([CONFIG, checkpoint, str(photo), '--out-dir',
                            str(out), '--no-progress'])
    with contextlib.ExitStack() as hold:
        assert tool.run(args, hold) == 0
        # Still held when the run's last output is written.
        assert held_by_some_process(out)
    assert not held_by_some_process(out)
    assert (out / 'masks' / 'x.png').is_file()


def test_a_folder_run_inference_makes_is_held_too(tmp_path):
    """run_inference into a folder that did not exist yet took no lock
    (only a folder that exists can be held), and its first write made the
    folder: the run wrote it unheld, and a second run into the same new
    folder went ahead beside it. The folder is now made first and held
    for the whole run; one a refused run made is removed."""
    from mmseg_dsnet.apis.lesion_inferencer import (LesionInferencer,
                                                    run_inference)
    from mmseg_dsnet.apis.output_record import describe_model
    from mmseg_dsnet.utils.errors import UserError
    model = tmp_path / 'm.onnx'
    model.write_bytes(b'graph')
    record = describe_model(str(model), None, 0.5)
    cv2.imwrite(str(tmp_path / 'a.png'), lesion_image(20, 30))
    out = tmp_path / 'new' / 'out'
    held = []
    # Said while the run writes the folder: the photo missing after a.png.
    summary = run_inference(
        LesionInferencer(FakeBackend()),
        [str(tmp_path / 'a.png'), str(tmp_path / 'gone.png')], str(out),
        batch_size=1, progress=False, model_record=record,
        log=lambda line: held.append(held_by_some_process(out)))
    assert held == [True]
    assert [path for path, _ in summary.failed] == [
        str(tmp_path / 'gone.png')]
    assert cv2.imread(str(out / 'masks' / 'a.png')).shape[:2] == (20, 30)
    assert not held_by_some_process(out)
    with pytest.raises(UserError, match='batch_size must be'):
        run_inference(LesionInferencer(FakeBackend()),
                      [str(tmp_path / 'a.png')], str(tmp_path / 'n' / 'o'),
                      batch_size=0, progress=False, model_record=record)
    assert not (tmp_path / 'n').exists()



def test_a_folder_is_locked_where_flock_is_missing(checkpoint, tmp_path,
                                                   monkeypatch, capsys):
    """Where ``fcntl`` is missing (Windows, the clinic PCs) the output
    folder was not locked at all: two runs at once into one folder
    interleaved, exit 0 for both. The folder is now held by a lock file
    naming its holder's process: a second run is refused, naming it; the
    file of a run that was killed is taken over; a run removes its own."""
    import signal
    import socket
    import subprocess
    import sys

    from conftest import tree_hashes

    from mmseg_dsnet.apis.output_record import LOCK_NAME
    # No flock here or in the holder below ('import fcntl' fails).
    monkeypatch.setitem(sys.modules, 'fcntl', None)
    photos = same_name_photos(tmp_path, {'a': (60, 80), 'b': (90, 70)})
    out = tmp_path / 'out'
    argv = ['--out-dir', str(out), '--no-progress']
    assert run_tool([CONFIG, checkpoint, str(photos['a'])] + argv) == 0
    assert not (out / LOCK_NAME).exists()
    capsys.readouterr()
    holder = subprocess.Popen(
        [sys.executable, '-c',
         'import sys\n'
         'sys.modules["fcntl"] = None\n'
         'from mmseg_dsnet.apis.output_record import output_folder_lock\n'
         'with output_folder_lock(sys.argv[1]):\n'
         '    print("held", flush=True)\n'
         '    sys.stdin.read()\n', str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert holder.stdout.readline() == 'held\n'
        before = tree_hashes(out)
        assert run_tool([CONFIG, checkpoint, str(photos['b'])] + argv) == 2
        err = capsys.readouterr().err
        assert [line for line in err.splitlines() if 'ERROR' in line] == [
            f'ERROR: {out} is being written by another run now (infer.py '
            f'or run_inference; process {holder.pid} on '
            f'{socket.gethostname()} holds its lock file '
            f'{osp.realpath(out / LOCK_NAME)}): two runs at once would give '
            'two photos of one name one mask; wait for it to end, or give '
            'another --out-dir'], err
        assert tree_hashes(out) == before
    finally:
        # Killed while it holds the folder: its lock file stays.
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    assert (out / LOCK_NAME).is_file()
    assert run_tool([CONFIG, checkpoint, str(photos['b'])] + argv) == 0
    assert Image.open(out / 'masks' / 'x_2.png').size == (70, 90)
    assert not (out / LOCK_NAME).exists()
    # A folder a refused run made is removed, its lock file with it.
    new = tmp_path / 'new'
    assert run_tool([CONFIG, checkpoint, str(tmp_path / 'missing.jpg'),
                     '--out-dir', str(new), '--no-progress']) != 0
    assert not new.exists()


def test_a_stale_lock_file_is_taken_over_by_one_run(tmp_path, monkeypatch):
    """Two runs that found the lock file of a killed run at once (no
    ``flock``): the first removed it and made its own, then the second
    removed that one, the first run's, and made its own; both wrote into
    the folder, exit 0. The stale file is now removed by one run at a
    time, and only while it still names the run that ended: the second
    is refused, naming the first."""
    import json
    import socket
    import subprocess
    import sys

    from mmseg_dsnet.apis.output_record import (LOCK_NAME,
                                                OutputFolderBusyError,
                                                output_folder_lock)
    from mmseg_dsnet.utils import fileio
    monkeypatch.setitem(sys.modules, 'fcntl', None)
    out = tmp_path / 'out'
    out.mkdir()
    ended = subprocess.Popen([sys.executable, '-c', 'pass'])
    ended.wait()
    host = socket.gethostname()
    (out / LOCK_NAME).write_text(json.dumps(dict(pid=ended.pid, host=host)))
    first = []
    real_pid_alive = fileio.pid_alive

    def pid_alive(pid):
        # While this run looks at the stale file, another run takes the
        # folder over (a real process holding it through the lock).
        if pid == ended.pid and not first:
            first.append(subprocess.Popen(
                [sys.executable, '-c',
                 'import sys\n'
                 'sys.modules["fcntl"] = None\n'
                 'from mmseg_dsnet.apis.output_record import '
                 'output_folder_lock\n'
                 'with output_folder_lock(sys.argv[1]):\n'
                 '    print("held", flush=True)\n'
                 '    sys.stdin.read()\n', str(out)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO))))
            assert first[0].stdout.readline() == 'held\n'
        return real_pid_alive(pid)

    monkeypatch.setattr(fileio, 'pid_alive', pid_alive)
    try:
        with pytest.raises(OutputFolderBusyError) as info:
            with output_folder_lock(str(out)):
                pass
        assert f'process {first[0].pid} on {host} holds its lock file' in \
            str(info.value)
        assert json.loads((out / LOCK_NAME).read_text()) == dict(
            pid=first[0].pid, host=host)
    finally:
        for run in first:
            run.communicate('')
    assert os.listdir(out) == []


def test_the_lock_file_is_taken_only_from_this_machines_ended_runs(
        tmp_path, monkeypatch):
    """The lock file where flock is missing: one of another machine is
    never taken (its process cannot be asked), even naming a pid that has
    ended here; one naming no process is refused as such; one of this
    machine whose process ended, or naming this very process (a pid used
    again after a restart), is taken and names this run while it holds
    the folder; another's is left by ``drop_own_lock_file``. Where flock
    works no lock file is made (a killed run would leave it behind)."""
    import json
    import socket
    import subprocess
    import sys

    from mmseg_dsnet.apis.output_record import (LOCK_NAME,
                                                OutputFolderBusyError,
                                                drop_own_lock_file,
                                                output_folder_lock)
    ended = subprocess.Popen([sys.executable, '-c', ''])
    ended.wait()
    host = socket.gethostname()
    out = tmp_path / 'out'
    out.mkdir()
    lock = out / LOCK_NAME
    with output_folder_lock(str(out)):
        assert not lock.exists()
    monkeypatch.setitem(sys.modules, 'fcntl', None)
    for holder in (dict(pid=ended.pid, host=host),
                   dict(pid=os.getpid(), host=host)):
        lock.write_text(json.dumps(holder))
        with output_folder_lock(str(out)):
            assert json.loads(lock.read_text()) == dict(pid=os.getpid(),
                                                        host=host)
        assert not lock.exists()
    other = json.dumps(dict(pid=ended.pid, host=f'not-{host}'))
    lock.write_text(other)
    with pytest.raises(OutputFolderBusyError,
                       match=f'process {ended.pid} on not-{host} holds'):
        with output_folder_lock(str(out)):
            pass
    drop_own_lock_file(str(out))
    assert lock.read_text() == other
    for text in (json.dumps(dict(pid=0, host=host)), 'half'):
        lock.write_text(text)
        with pytest.raises(OutputFolderBusyError,
                           match='names no process: if no run is writing '
                           'there, remove it'):
            with output_folder_lock(str(out)):
                pass
        assert lock.read_text() == text


@pytest.mark.parametrize('flock', [True, False])
def test_another_thread_is_refused_the_folder_this_thread_holds(
        tmp_path, monkeypatch, flock):
    """Two threads of one process calling ``run_inference`` into one
    folder both went ahead: the lock counted a second entry of the process
    as the caller's own (``infer.py`` holds the folder and calls
    ``run_inference``, which takes it again). Another thread is now refused
    as another process is, with ``flock`` and with the lock file; the
    holding thread still enters again, and the folder is free once it
    lets go."""
    import sys
    import threading

    from mmseg_dsnet.apis.output_record import (OutputFolderBusyError,
                                                output_folder_lock)
    if not flock:
        monkeypatch.setitem(sys.modules, 'fcntl', None)
    out = tmp_path / 'out'
    out.mkdir()
    held, release, outcome = threading.Event(), threading.Event(), []

    def holder():
        with output_folder_lock(str(out)):
            with output_folder_lock(str(out)):  # the caller's own entry
                held.set()
                release.wait(60)

    def second_writer():
        try:
            with output_folder_lock(str(out)):
                outcome.append('entered')
        except OutputFolderBusyError as err:
            outcome.append(str(err))

    first = threading.Thread(target=holder)
    first.start()
    try:
        assert held.wait(60)
        second = threading.Thread(target=second_writer)
        second.start()
        second.join(60)
    finally:
        release.set()
        first.join(60)
    assert outcome == [
        f'{out} is being written by another run now (infer.py or '
        'run_inference): two runs at once would give two photos of one '
        'name one mask; wait for it to end, or give another --out-dir']
    with output_folder_lock(str(out)):
        pass
    assert os.listdir(out) == []


def test_the_runs_own_folders_are_not_named_unsearched_photos(
        checkpoint, tmp_path, capsys):
    """``infer.py photos --out-dir photos``: its masks and overlays
    folders were listed as ``a sub-folder, not searched (--recursive to
    segment its images too)`` and counted in ``Not searched: 2
    sub-folder(s) of the input folders``, as if photos were left out."""
    photos = tmp_path / 'photos'
    (photos / 'more').mkdir(parents=True)
    Image.fromarray(lesion_image(40, 50)).save(photos / 'a.jpg')
    argv = [CONFIG, checkpoint, str(photos), '--out-dir', str(photos),
            '--no-progress']
    for _ in range(2):
        assert run_tool(argv) == 0
        out, err = capsys.readouterr()
        for sub in ('masks', 'overlays'):
            assert (f'skipped {photos / sub}: an output folder of this run, '
                    'not read as input') in err, err
        # The user's own sub-folder is still named.
        assert f'skipped {photos / "more"}: a sub-folder, not searched' \
            in err
        assert 'Not searched: 1 sub-folder of' in out


def test_the_runs_own_records_are_not_named_skipped_inputs(
        checkpoint, tmp_path, capsys):
    """``infer.py photos --recursive --out-dir photos/out``: a second run
    listed ``photos/out/model.json``, ``sources.json`` ... as ``skipped:
    not an image file extension``, as if files of the user's were left
    out; its masks and overlays are not segmented again."""
    photos = tmp_path / 'photos'
    photos.mkdir()
    Image.fromarray(lesion_image(40, 50)).save(photos / 'a.jpg')
    (photos / 'notes.txt').write_text('not a photo')
    out_dir = photos / 'out'
    argv = [CONFIG, checkpoint, str(photos), '--recursive', '--out-dir',
            str(out_dir), '--no-progress']
    assert run_tool(argv) == 0
    capsys.readouterr()
    assert (out_dir / 'model.json').is_file()
    assert run_tool(argv) == 0
    out, err = capsys.readouterr()
    skipped = [line for line in err.splitlines()
               if 'not an image file extension' in line]
    assert skipped == [f'skipped {photos / "notes.txt"}: not an image '
                       'file extension'], err
    assert 'Processed 0 of 1 images' in out
    assert sorted(p.name for p in (out_dir / 'masks').iterdir()) == \
        ['a.png']


def same_name_photos(tmp_path, sizes):
    """``tmp_path/<folder>/x.jpg`` of the given ``(height, width)`` each,
    so that a mask's size tells which photo it is of."""
    paths = {}
    for folder, (height, width) in sizes.items():
        (tmp_path / folder).mkdir()
        paths[folder] = tmp_path / folder / 'x.jpg'
        Image.fromarray(lesion_image(height, width)).save(paths[folder])
    return paths


def test_an_output_name_belongs_to_one_input_across_runs(
        checkpoint, tmp_path, capsys):
    """``OUT/sources.json`` records the input behind each output name. A
    second run with b/x.jpg alone skipped it as done because x.png, a/x.jpg's
    mask, existed (exit 0), and both in the other order with --overwrite
    swapped x.png and x_2.png; now a recorded input keeps its name (also
    through a symlink) and a new one never takes another's."""
    import json
    photos = same_name_photos(tmp_path, {'a': (60, 80), 'b': (90, 70),
                                         'c': (50, 40)})
    (tmp_path / 'link').symlink_to(tmp_path / 'b')
    out = tmp_path / 'out'
    masks = out / 'masks'

    def run(*paths, expect=0):
        assert run_tool([CONFIG, checkpoint, *map(str, paths), '--out-dir',
                         str(out), '--no-progress']) == expect
        captured = capsys.readouterr()
        return captured.out + captured.err

    def sizes():
        return {path.name: Image.open(path).size
                for path in sorted(masks.iterdir())}

    run(photos['a'], photos['b'])
    first = {'x.png': (80, 60), 'x_2.png': (70, 90)}
    assert sizes() == first
    old = {name: (masks / name).read_bytes() for name in first}

    # b/x.jpg (given through a symlink) is skipped for its own outputs.
    text = run(tmp_path / 'link' / 'x.jpg')
    assert 'its outputs are named x_2 (recorded for it in' in text
    assert f'{masks / "x_2.png"}' in text and 'Skipped 1' in text
    assert f'{masks / "x.png"}' not in text
    # --overwrite in the other order replaces each input's own outputs.
    run(photos['b'], photos['a'], '--overwrite')
    assert sizes() == first
    # A new x.jpg takes neither recorded name; a failed input records none.
    (tmp_path / 'x.jpg').write_bytes(b'not an image')
    text = run(photos['c'], tmp_path / 'x.jpg', '--allow-failures')
    assert (f'{photos["c"]}: its outputs are named x_3 (x is recorded for '
            f'{osp.realpath(photos["a"])} in') in text
    assert sizes() == {**first, 'x_3.png': (40, 50)}
    assert {name: (masks / name).read_bytes() for name in first} == old
    assert json.loads((out / 'sources.json').read_text()) == {
        'x': osp.realpath(photos['a']), 'x_2': osp.realpath(photos['b']),
        'x_3': osp.realpath(photos['c'])}


def test_outputs_of_a_changed_input_are_not_skipped_as_done(
        checkpoint, tmp_path, capsys):
    """A new photo saved under the name of one already segmented (cameras
    reuse IMG_0001.jpg): the run skipped it as done, exit 0, and the mask
    of the old photo (another size here) stayed as if it were the new
    one's. Now ``OUT/sources.sha256.json`` records each input's SHA-256
    and a changed input is listed as failed (exit 1) until --overwrite."""
    import json
    photos = same_name_photos(tmp_path, {'a': (60, 80), 'b': (50, 40)})
    other = tmp_path / 'y.jpg'
    Image.fromarray(lesion_image(30, 30)).save(other)
    out = tmp_path / 'out'
    mask = out / 'masks' / 'x.png'

    def run(*extra, expect=0):
        assert run_tool([CONFIG, checkpoint, str(photos['a']), str(other),
                         '--out-dir',
                         str(out), '--no-progress', *extra]) == expect
        captured = capsys.readouterr()
        return captured.out + captured.err

    run()
    old = mask.read_bytes()
    digests = json.loads((out / 'sources.sha256.json').read_text())
    assert sorted(digests) == ['x', 'y'] and len(digests['x']) == 64
    assert 'Skipped 2' in run()  # the same files: done
    # Another photo under the same name.
    photos['a'].write_bytes(photos['b'].read_bytes())
    text = run(expect=1)
    assert (f'{photos["a"]}: its outputs {mask}, {out / "overlays" / "x.jpg"}'
            ' were made from another version of this file (SHA-256 '
            f'{digests["x"][:12]}... recorded in sources.sha256.json') in text
    assert 'they do not show it; use --overwrite to replace them' in text
    assert 'ERROR: 1 input failed' in text and 'Skipped 1 ' in text
    assert mask.read_bytes() == old
    run('--overwrite')
    assert Image.open(mask).size == (40, 50)
    assert 'Skipped 2' in run()
    (out / 'sources.sha256.json').write_text('[1, 2]')
    text = run(expect=2)
    assert (f'ERROR: cannot read {out / "sources.sha256.json"}, the record '
            'of the SHA-256 of the input behind each output (not a mapping '
            'of output names to SHA-256 digests)') in text


def test_outputs_of_a_hidden_input_are_not_hidden(checkpoint, tmp_path,
                                                 capsys):
    """``.h.jpg`` gave the hidden outputs ``.h.png`` and ``.h.jpg``, which
    the folder's checks pass over (as a killed writer's partial files): a
    run with another threshold skipped them as done and recorded its own
    threshold in model.json, exit 0, beside masks of the first."""
    photo = tmp_path / '.h.jpg'
    Image.fromarray(lesion_image(40, 50)).save(photo)
    out = tmp_path / 'out'
    argv = [CONFIG, checkpoint, str(photo), '--out-dir', str(out),
            '--no-progress']
    assert run_tool(argv) == 0
    assert (f'{photo}: its outputs are named h (without the leading dot, '
            'which would make them hidden files)') in capsys.readouterr().err
    assert sorted(os.listdir(out / 'masks')) == ['h.png']
    assert sorted(os.listdir(out / 'overlays')) == ['h.jpg']
    record = (out / 'model.json').read_text()
    assert run_tool(argv + ['--threshold', '0.2']) == 2
    assert 'holds 2 outputs of another model' in capsys.readouterr().err
    assert (out / 'model.json').read_text() == record


def test_an_input_named_only_dots_gets_a_visible_name():
    """A file named ``...`` (tried as given: explicit files always are)
    has no stem once its dots go: its outputs are named ``image``, not
    the hidden ``.png``; a second such file gets ``image_2``."""
    from mmseg_dsnet.apis.lesion_inferencer import input_stem, output_names
    assert input_stem('/p/...') == 'image'
    assert list(output_names(['/p/...', '/q/....']).values()) == [
        'image', 'image_2']


def test_the_header_shows_the_threshold_unrounded(checkpoint, tmp_path,
                                                 capsys):
    """``--threshold 0.4999999`` (pasted from a sweep) was shown as
    ``threshold 0.5`` in the run's header line."""
    photo = same_name_photos(tmp_path, {'a': (40, 50)})['a']
    assert run_tool([CONFIG, checkpoint, str(photo), '--out-dir',
                     str(tmp_path / 'out'), '--no-progress', '--threshold',
                     '0.4999999']) == 0
    assert ', threshold 0.4999999\n' in capsys.readouterr().err


def test_outputs_without_a_record_of_their_inputs_keep_their_names(
        checkpoint, tmp_path, capsys):
    """A folder written before inputs were recorded (outputs, model.json,
    no sources.json): its outputs are of unknown inputs, so no input takes
    their names (b/x.jpg was skipped for a/x.jpg's x.png, exit 0), even
    with --overwrite; a line says so. An unreadable record is refused."""
    import json
    photos = same_name_photos(tmp_path, {'a': (60, 80), 'b': (90, 70)})
    out = tmp_path / 'out'
    argv = [CONFIG, checkpoint, str(photos['a']), '--out-dir', str(out),
            '--no-progress']
    assert run_tool(argv) == 0
    (out / 'sources.json').unlink(missing_ok=True)
    old = (out / 'masks' / 'x.png').read_bytes()
    assert run_tool(argv[:2] + [str(photos['b'])] + argv[3:]) == 0
    assert run_tool(argv + ['--overwrite']) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    for photo, name in ((photos['b'], 'x_2'), (photos['a'], 'x_3')):
        assert (f'{photo}: its outputs are named {name} ({out} holds '
                'outputs named x of an input') in text
    assert 'skipped' not in text
    assert (out / 'masks' / 'x.png').read_bytes() == old
    assert Image.open(out / 'masks' / 'x_2.png').size == (70, 90)
    assert Image.open(out / 'masks' / 'x_3.png').size == (80, 60)
    assert json.loads((out / 'sources.json').read_text()) == {
        'x_2': osp.realpath(photos['b']), 'x_3': osp.realpath(photos['a'])}
    # Told apart from the unrecorded x by case only (one name on a
    # case-insensitive disk): the line names x, not another input.
    upper = tmp_path / 'c' / 'X.jpg'
    upper.parent.mkdir()
    Image.fromarray(lesion_image(30, 20)).save(upper)
    assert run_tool(argv[:2] + [str(upper)] + argv[3:]) == 0
    assert (f'{upper}: its outputs are named X_4 ({out} holds outputs '
            'named x of an input') in capsys.readouterr().err

    (out / 'sources.json').write_text('{"x_2": ')

    def files():
        return sorted((path.name, path.read_bytes())
                      for path in out.rglob('*') if path.is_file())

    before = files()
    assert run_tool(argv) == 2
    err = capsys.readouterr().err
    assert err.count('ERROR:') == 1 and 'cannot read' in err
    assert 'sources.json' in err
    assert files() == before


# tools/infer.py, killed with SIGKILL right after the first mask of its
# second batch is on disk (the kill is real; only its moment is chosen).
KILLED_MID_BATCH = '''
import os, runpy, signal, sys
import mmseg_dsnet.apis.lesion_inferencer as inferencer
write, masks = inferencer.write_image, []

def write_then_die(path, image, params=None):
    write(path, image, params)
    if path.endswith('.png'):
        masks.append(path)
        if len(masks) == int(os.environ['KILL_AFTER_MASKS']):
            os.kill(os.getpid(), signal.SIGKILL)

inferencer.write_image = write_then_die
sys.argv[0] = 'tools/infer.py'
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def test_masks_of_a_killed_run_keep_their_inputs(checkpoint, tmp_path,
                                                 capsys):
    """A SIGKILL left masks that ``OUT/sources.json`` did not list (it was
    written when the run ended): the next run took them for outputs of
    unknown inputs and wrote every such image again as ``<stem>_2``, exit
    0. The names of each batch are journaled before its outputs, so every
    mask on disk keeps its input; the temporary file of a mask cut short
    is removed by the next run."""
    import json
    import signal
    import subprocess
    import sys
    folder = tmp_path / 'photos'
    folder.mkdir()
    for index in range(8):
        Image.fromarray(lesion_image(40 + index, 50, index)).save(
            folder / f'p{index}.jpg')
    out = tmp_path / 'out'
    argv = [CONFIG, checkpoint, str(folder), '--out-dir', str(out),
            '--batch-size', '4', '--no-progress']
    killed = subprocess.run(
        [sys.executable, '-c', KILLED_MID_BATCH, *argv], cwd=REPO,
        env=dict(os.environ, OMP_NUM_THREADS='1', KILL_AFTER_MASKS='5',
                 PYTHONPATH=os.pathsep.join(
                     filter(None, [str(REPO),
                                   os.environ.get('PYTHONPATH')]))),
        capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    written = sorted(path.stem for path in (out / 'masks').iterdir())
    assert written == ['p0', 'p1', 'p2', 'p3', 'p4']
    from mmseg_dsnet.apis.output_record import read_sources
    assert read_sources(str(out)) == {
        name: osp.realpath(folder / f'{name}.jpg') for name in written}
    # A mask the kill cut short stays a hidden temporary file of its dead
    # writer; the next run removes it.
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    (out / 'masks' / f'.p5.png.part-{dead.pid}').write_bytes(b'half')

    assert run_tool(argv) == 0
    text = ''.join(capsys.readouterr())
    # p4's mask was written before the kill, its overlay not: it gets the
    # overlay (it was skipped as done), the mask is kept.
    assert 'its outputs are named' not in text and 'Skipped 4' in text
    assert f'completing {folder / "p4.jpg"}: ' in text
    names = [f'p{index}' for index in range(8)]
    assert sorted(path.stem for path in (out / 'masks').iterdir()) == names
    assert sorted(path.stem for path in (out / 'overlays').iterdir()) == names
    assert json.loads((out / 'sources.json').read_text()) == {
        name: osp.realpath(folder / f'{name}.jpg') for name in names}
    assert sorted(os.listdir(out)) == ['masks', 'model.json', 'overlays',
                                       'sources.json', 'sources.sha256.json']
    # The digests journaled before the kill are recorded too.
    assert sorted(json.loads(
        (out / 'sources.sha256.json').read_text())) == names


def test_flips_average_three_passes(checkpoint, inputs, tmp_path):
    """``--tta``: the masks of the mean probability of the image and its
    flips, at the original size, batch by batch as one by one."""
    from mmseg_dsnet.apis.inference_backends import TorchBackend
    from mmseg_dsnet.apis.lesion_inferencer import LesionInferencer
    from mmseg_dsnet.image_io import read_image
    folder, _ = inputs
    names = ['normal.jpg', 'deep16.png']
    assert run_tool([CONFIG, checkpoint, *[str(folder / n) for n in names],
                     '--out-dir', str(tmp_path / 'out'), '--tta',
                     '--batch-size', '2', '--no-progress']) == 0
    backend = TorchBackend(CONFIG, checkpoint)
    flips, single = (LesionInferencer(backend, flips=f) for f in (True, False))
    changed = 0
    for name in names:
        rgb = read_image(str(folder / name)).rgb
        written = np.array(Image.open(
            tmp_path / 'out' / 'masks' / (name.rsplit('.', 1)[0] + '.png')))
        want, = flips.predict([rgb])
        assert (written == want * 255).all()
        changed += int((single.predict([rgb])[0] != want).sum())
    assert changed > 0  # the flips changed some pixels


def test_the_progress_bar_counts_an_image_once_its_outputs_are_written(
        checkpoint, inputs, tmp_path, monkeypatch):
    """The bar counted an image when it was read: it showed 5/5 while the
    last batch (one image) was still being segmented and written, and 2/5
    before any mask of the first batch existed."""
    from mmseg_dsnet.apis import lesion_inferencer
    from mmseg_dsnet.apis.inference_backends import TorchBackend
    from mmseg_dsnet.progress import progress_bar
    folder, _ = inputs
    out = tmp_path / 'out'
    seen = []

    class RecordingBar:
        """The project's bar, noting what is on disk at each count."""

        def __init__(self, *args, **kwargs):
            self.bar, self.count = progress_bar(*args, **kwargs), 0

        def update(self, count=1):
            self.count += count
            outputs = [f for sub in ('masks', 'overlays')
                       for f in (os.listdir(out / sub)
                                 if (out / sub).is_dir() else [])]
            seen.append((self.count, len(outputs)))
            self.bar.update(count)

        def __getattr__(self, name):
            return getattr(self.bar, name)

    monkeypatch.setattr(lesion_inferencer, 'progress_bar', RecordingBar)
    # 4 readable images and a truncated one (failed, and counted, when
    # read): batches of 3 and 1.
    files = [str(folder / n) for n in ('normal.jpg', 'truncated.jpg',
                                       'gray.png', 'rgba.png',
                                       'deep16.png')]
    summary = lesion_inferencer.run_inference(
        lesion_inferencer.LesionInferencer(TorchBackend(CONFIG, checkpoint)),
        files, str(out), batch_size=3, progress=False)
    assert len(summary.processed) == 4 and len(summary.failed) == 1
    assert seen[-1] == (5, 8)
    assert [count for count, _ in seen] == [1, 2, 3, 4, 5]
    # At each count, the outputs (mask and overlay) of every image counted
    # but the failed one are there.
    for count, outputs in seen:
        assert outputs >= 2 * (count - 1), seen


def test_the_progress_bar_counts_the_images_of_a_batch_that_failed(
        tmp_path, monkeypatch):
    """An image whose batch failed in the model, or whose journal line or
    outputs could not be written, is done too: the bar stopped short of
    N/N, as if images were still to come."""
    import errno
    import io

    from mmseg_dsnet.apis import lesion_inferencer
    from mmseg_dsnet.progress import progress_bar
    files = []
    for index in range(5):
        files.append(str(tmp_path / f'im{index}.png'))
        cv2.imwrite(files[-1], lesion_image(20, 30, index))
    bars = []

    def shown_bar(total, desc, enabled=True, **kwargs):
        # The project's bar, shown (into a buffer) to read its count.
        bars.append(progress_bar(total, desc, file=io.StringIO()))
        return bars[-1]

    monkeypatch.setattr(lesion_inferencer, 'progress_bar', shown_bar)

    class ThreeChannels(FakeBackend):
        """No lesion logits: every batch fails in the model."""

        def __call__(self, batch):
            return np.zeros((len(batch), 3, 32, 32), np.float32)

    def run(backend, out):
        lesion_inferencer.prepare_output_dir(str(out))
        return lesion_inferencer.run_inference(
            lesion_inferencer.LesionInferencer(backend), files, str(out),
            batch_size=2, progress=False)

    summary = run(ThreeChannels(), tmp_path / 'model')
    assert len(summary.failed) == 5 and bars[-1].n == 5
    # A full disk while the first batch's journal line, and then one
    # image's mask, is written: those images fail, the others are done.
    journal, write = (lesion_inferencer.journal_sources,
                      lesion_inferencer.write_image)
    full = OSError(errno.ENOSPC, 'No space left on device')
    calls = []

    def journal_once_full(*args, **kwargs):
        calls.append('journal')
        if calls.count('journal') == 1:
            raise full
        return journal(*args, **kwargs)

    def mask_once_full(path, *args, **kwargs):
        if path.endswith('im3.png'):
            raise full
        return write(path, *args, **kwargs)

    monkeypatch.setattr(lesion_inferencer, 'journal_sources',
                        journal_once_full)
    monkeypatch.setattr(lesion_inferencer, 'write_image', mask_once_full)
    summary = run(FakeBackend(), tmp_path / 'disk')
    assert sorted(osp.basename(path) for path, _ in summary.failed) == [
        'im0.png', 'im1.png', 'im3.png']
    assert len(summary.processed) == 2 and bars[-1].n == 5


def test_mean_probability_logits_of_one_and_two_channels():
    from mmseg_dsnet.models.utils.lesion_logit import (lesion_logit,
                                                       mean_probability_logits)
    rng = np.random.default_rng(0)
    for channels in (1, 2):
        views = [rng.normal(0, 3, (2, channels, 4, 5)).astype(np.float32)
                 for _ in range(3)]
        merged = mean_probability_logits(views)
        assert merged.shape == views[0].shape and merged.dtype == np.float32
        want = np.mean([1 / (1 + np.exp(-lesion_logit(v))) for v in views], 0)
        got = 1 / (1 + np.exp(-lesion_logit(merged)))
        assert np.allclose(got, want, atol=1e-6)


def test_threshold_of_two_channel_models(tmp_path):
    """``--threshold`` of a softmax (2-channel) model: lesion where the
    softmax lesion probability exceeds it, as LesionMetric scores it (the
    threshold was dropped: the argmax masks whatever was asked)."""
    from mmseg_dsnet.apis.inference_backends import TorchBackend
    from mmseg_dsnet.deploy.deployable import to_model_input
    config = str(REPO / 'configs/segformer/segformer_mit-b0_isic2017.py')
    checkpoint = make_lesion_checkpoint(config, tmp_path / 'segformer.pth',
                                        lesion_image(256, 256))
    # At the model size (and lossless): the mask is the decision itself.
    rgb = lesion_image(256, 256, 1)
    Image.fromarray(rgb).save(tmp_path / 'x.png')
    backend = TorchBackend(config, checkpoint)
    logits = backend(to_model_input(rgb, backend.input_size)[None])[0]
    probability = torch.from_numpy(logits).double().softmax(0)[1].numpy()
    # Two thresholds that split this image's probabilities differently.
    low, high = np.quantile(probability, [0.3, 0.7])
    assert 0 < low < high < 1
    masks = []
    for threshold in (low, high):
        out = tmp_path / f'out_{threshold}'
        assert run_tool([config, checkpoint, str(tmp_path / 'x.png'),
                         '--out-dir', str(out), '--threshold',
                         str(threshold), '--no-overlay',
                         '--no-progress']) == 0
        mask = np.array(Image.open(out / 'masks' / 'x.png')) > 0
        clear = np.abs(probability - threshold) > 1e-4
        assert np.array_equal(mask[clear], (probability > threshold)[clear])
        masks.append(mask)
    assert masks[0].sum() > masks[1].sum()


def test_arrays_that_are_not_8_bit_rgb_are_refused(checkpoint):
    """``LesionInferencer.predict`` (and ``logits``, ``decisions``) take
    ``(H, W, 3)`` uint8 RGB arrays. A float image in 0..1 (as scikit-image
    gives) and a 16-bit one gave a wrong mask without a word; grayscale and
    RGBA arrays failed inside OpenCV or the network."""
    from mmseg_dsnet.apis import ImageArrayError
    from mmseg_dsnet.apis.inference_backends import TorchBackend
    from mmseg_dsnet.apis.lesion_inferencer import LesionInferencer
    inferencer = LesionInferencer(TorchBackend(CONFIG, checkpoint))
    rgb = lesion_image(60, 80)
    good, = inferencer.predict([rgb])
    assert good.shape == (60, 80)
    bad = {
        'has dtype float32 (values 0.0': rgb.astype(np.float32) / 255,
        'has dtype uint16': rgb.astype(np.uint16) * 257,
        'has shape (60, 80)': rgb[..., 0],
        'has shape (60, 80, 4)': np.dstack([rgb, np.full((60, 80), 255,
                                                     np.uint8)]),
        'is a str': 'photo.jpg',
    }
    for what, image in bad.items():
        with pytest.raises(ImageArrayError, match=r'image 1 ' +
                           re.escape(what)):
            inferencer.predict([rgb, image])
    # One image not in a list: its first row is refused by its shape.
    with pytest.raises(ImageArrayError, match=r'image 0 has shape \(80, 3\)'
                       r'.*a list: \[rgb\]'):
        inferencer.predict(rgb)
    # A batch as one (N, H, W, 3) array is a sequence of good images.
    assert np.array_equal(inferencer.predict(rgb[None])[0], good)


class FakeBackend:
    """Zero logits at 32x32, with the model's own threshold."""
    name = 'fake'
    input_size = (32, 32)

    def __init__(self, threshold=0.5):
        self.threshold = threshold
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        return np.zeros((len(batch), 1, 32, 32), np.float32)


def test_a_new_mask_whose_overlay_failed_keeps_no_old_overlay(tmp_path,
                                                            monkeypatch):
    """A new photo under an old name, rerun with overwrite: the new mask
    was written, its overlay not (a full disk), and the old overlay, of
    the old photo, stayed beside it; the next run without overwrite
    skipped both as done (the digest recorded was the new photo's), exit
    0. The old overlay is now removed with the failure, and the next run
    draws the missing one."""
    from mmseg_dsnet.apis import lesion_inferencer as li
    from mmseg_dsnet.apis.output_record import describe_model
    model = tmp_path / 'm.onnx'
    model.write_bytes(b'graph')
    record = describe_model(str(model), None, 0.5)
    photo, out = tmp_path / 'a.png', tmp_path / 'out'
    cv2.imwrite(str(photo), lesion_image(20, 30))

    def run(**kwargs):
        return li.run_inference(li.LesionInferencer(FakeBackend()),
                                [str(photo)], str(out), progress=False,
                                model_record=record, **kwargs)

    assert run().processed == [str(photo)]
    cv2.imwrite(str(photo), lesion_image(40, 50, seed=1))  # a new photo
    real = li.write_image

    def full_disk(path, image, params=None):
        if path.endswith('.jpg'):
            raise OSError(28, 'No space left on device')
        real(path, image, params)

    monkeypatch.setattr(li, 'write_image', full_disk)
    failed = run(overwrite=True)
    assert failed.failed == [(str(photo), 'cannot write output: [Errno 28] '
                              'No space left on device')]
    assert cv2.imread(str(out / 'masks' / 'a.png')).shape[:2] == (40, 50)
    assert not (out / 'overlays' / 'a.jpg').exists()
    monkeypatch.setattr(li, 'write_image', real)
    assert run().processed == [str(photo)]
    assert cv2.imread(str(out / 'overlays' / 'a.jpg')).shape[:2] == (40, 50)


def test_completing_an_image_leaves_its_kept_output_as_it_is(tmp_path):
    """An image with its mask but no overlay gets the overlay; the mask
    there is kept as it is, not written again."""
    from mmseg_dsnet.apis import lesion_inferencer as li
    from mmseg_dsnet.apis.output_record import describe_model
    model = tmp_path / 'm.onnx'
    model.write_bytes(b'graph')
    photo, out = tmp_path / 'a.png', tmp_path / 'out'
    cv2.imwrite(str(photo), lesion_image(20, 30))

    def run():
        return li.run_inference(
            li.LesionInferencer(FakeBackend()), [str(photo)], str(out),
            progress=False, model_record=describe_model(str(model), None,
                                                        0.5))

    run()
    # FakeBackend's masks are empty: a full one tells the kept mask apart.
    cv2.imwrite(str(out / 'masks' / 'a.png'), np.full((20, 30), 255,
                                                      np.uint8))
    kept = (out / 'masks' / 'a.png').read_bytes()
    (out / 'overlays' / 'a.jpg').unlink()
    assert run().processed == [str(photo)]
    assert (out / 'masks' / 'a.png').read_bytes() == kept
    assert cv2.imread(str(out / 'overlays' / 'a.jpg')).shape[:2] == (20, 30)


def test_an_unknown_model_is_refused_a_folder_with_outputs(tmp_path):
    """A model not known by its files (no ``model_files``: a config given
    as an object) is refused a folder holding outputs even without a
    ``model.json``: they could not be told apart from its own."""
    from mmseg_dsnet.apis import lesion_inferencer as li
    from mmseg_dsnet.utils.errors import UserError
    photo, out = tmp_path / 'a.png', tmp_path / 'out'
    cv2.imwrite(str(photo), lesion_image(20, 30))
    (out / 'masks').mkdir(parents=True)
    cv2.imwrite(str(out / 'masks' / 'b.png'), np.zeros((4, 4), np.uint8))
    with pytest.raises(UserError, match='not known by its files'):
        li.run_inference(li.LesionInferencer(FakeBackend()), [str(photo)],
                         str(out), progress=False)
    assert sorted(p.name for p in out.rglob('*')) == ['b.png', 'masks']


def test_a_threshold_outside_0_1_is_refused_when_made(tmp_path):
    """``LesionInferencer(backend, threshold=50)`` (or NaN, or a bool) was
    taken, and ``run_inference`` then listed every image as failed
    (``model failed: threshold must be in (0, 1)``)."""
    from mmseg_dsnet.apis.lesion_inferencer import (LesionInferencer,
                                                    prepare_output_dir,
                                                    run_inference)
    from mmseg_dsnet.utils.errors import UserError
    for bad, shown in ((50, '50'), (float('nan'), 'nan'), (True, 'True'),
                       (0, '0'), (1.0, '1.0'), ('half', "'half'")):
        with pytest.raises(UserError, match=r'LesionInferencer: threshold '
                           r'must be .* in \(0, 1\), got ' + shown):
            LesionInferencer(FakeBackend(), threshold=bad)
    with pytest.raises(ValueError, match="the model's threshold must be"):
        LesionInferencer(FakeBackend(threshold=1.5))
    assert LesionInferencer(FakeBackend(), threshold=0.3).threshold == 0.3
    # Set after it was made: one error before any image is read.
    cv2.imwrite(str(tmp_path / 'a.png'), lesion_image(20, 20))
    inferencer = LesionInferencer(FakeBackend())
    inferencer.threshold = 50.0
    out = tmp_path / 'out'
    prepare_output_dir(str(out))
    with pytest.raises(UserError, match='got 50.0'):
        run_inference(inferencer, [str(tmp_path / 'a.png')], str(out),
                      progress=False)
    assert inferencer.backend.calls == 0
    assert not list((out / 'masks').iterdir())


def test_onnxruntime_backend_gives_same_masks(checkpoint, inputs, tmp_path):
    """The two backends write the same masks, except where the PyTorch
    model's decision lies within float rounding of the threshold (the two
    runtimes sum in different orders; such pixels may go either way)."""
    from mmseg_dsnet.apis.inference_backends import TorchBackend
    from mmseg_dsnet.apis.lesion_inferencer import LesionInferencer
    from mmseg_dsnet.apis.masks import resize_to_mask
    from mmseg_dsnet.deploy.onnx_export import export_onnx
    from mmseg_dsnet.image_io import read_image
    folder, sizes = inputs
    onnx_file = tmp_path / 'dsnet.onnx'
    export_onnx(CONFIG, checkpoint, str(onnx_file))
    images = [str(folder / f) for f in os.listdir(folder)
              if f.endswith(('.png', '.jpg')) and 'truncated' not in f]
    assert run_tool([CONFIG, checkpoint, *images, '--out-dir',
                     str(tmp_path / 'pt'), '--no-progress']) == 0
    assert run_tool([str(onnx_file), *images, '--out-dir',
                     str(tmp_path / 'ort'), '--no-progress',
                     '--batch-size', '2']) == 0
    reference = LesionInferencer(TorchBackend(CONFIG, checkpoint))
    # Decision (logit) margin within which the runtimes may disagree.
    rounding = 1e-4
    differing = 0
    for image in images:
        stem = osp.splitext(osp.basename(image))[0]
        torch_mask = np.array(Image.open(tmp_path / 'pt/masks' /
                                         f'{stem}.png'))
        ort_mask = np.array(Image.open(tmp_path / 'ort/masks' /
                                       f'{stem}.png'))
        assert torch_mask.shape == ort_mask.shape == sizes[stem]
        decision, = reference.decisions([read_image(image).rgb])
        surely_lesion = resize_to_mask(decision - rounding, sizes[stem])
        maybe_lesion = resize_to_mask(decision + rounding, sizes[stem])
        for mask in (torch_mask, ort_mask):
            assert (mask[surely_lesion == 1] == 255).all(), stem
            assert (mask[maybe_lesion == 0] == 0).all(), stem
        differing += int((torch_mask != ort_mask).sum())
    total = sum(height * width for height, width in sizes.values())
    assert differing <= total * 1e-4


def test_resize_to_mask_matches_torch_interpolate():
    import torch.nn.functional as F
    from mmseg_dsnet.apis.masks import resize_to_mask
    rng = np.random.default_rng(0)
    for (h, w), size in [((256, 256), (1, 1)), ((256, 256), (37, 531)),
                         ((8, 5), (300, 17))]:
        decision = rng.standard_normal((h, w)).astype(np.float32)
        want = F.interpolate(torch.from_numpy(decision)[None, None],
                             size=size, mode='bilinear',
                             align_corners=False)[0, 0].numpy() > 0
        got = resize_to_mask(decision, size, chunk_rows=7)
        assert np.array_equal(got.astype(bool), want)


def test_mmseg_inferencer_with_our_config(checkpoint, inputs, tmp_path):
    """mmseg's own MMSegInferencer runs our config and checkpoint and
    agrees with tools/infer.py."""
    from mmseg.apis import MMSegInferencer
    folder, _ = inputs
    image = lesion_image(150, 210, 5)
    png = tmp_path / 'lesion.png'
    Image.fromarray(image).save(png)
    inferencer = MMSegInferencer(model=CONFIG, weights=checkpoint,
                                 device='cpu')
    result = inferencer(str(png), return_datasamples=True)
    mmseg_mask = result.pred_sem_seg.data[0].numpy()
    assert mmseg_mask.shape == (150, 210)
    assert set(np.unique(mmseg_mask)) <= {0, 1}
    assert run_tool([CONFIG, checkpoint, str(png), '--out-dir',
                     str(tmp_path / 'ours'), '--no-progress']) == 0
    ours = np.array(Image.open(tmp_path / 'ours/masks/lesion.png')) > 0
    assert (ours == mmseg_mask.astype(bool)).mean() > 0.999


def test_released_model_is_used_when_no_model_is_given(
        checkpoint, inputs, tmp_path, monkeypatch, capsys):
    """``infer.py IMAGES --out-dir OUT`` runs the metafile's released
    weights, checked by their SHA-256; without them it stops clearly."""
    import hashlib

    from mmseg_dsnet.apis import released_model
    folder, sizes = inputs
    metafile = tmp_path / 'metafile.yaml'
    monkeypatch.setattr(released_model, 'METAFILE', str(metafile))
    monkeypatch.setattr(released_model, 'DEFAULT_RELEASE', 'tiny')
    metafile.write_text('Models: []\n')
    code = run_tool([str(folder / 'normal.jpg'), '--out-dir',
                     str(tmp_path / 'none')])
    assert code == 2
    assert 'lists no released weights' in capsys.readouterr().err

    digest = hashlib.sha256(open(checkpoint, 'rb').read()).hexdigest()
    # Paths in a metafile are relative to the repository holding it.
    (tmp_path / 'configs' / 'dsnet').mkdir(parents=True)
    metafile = tmp_path / 'configs' / 'dsnet' / 'metafile.yaml'
    monkeypatch.setattr(released_model, 'METAFILE', str(metafile))
    metafile.write_text(
        f'Models:\n- Name: tiny\n  Config: {osp.relpath(CONFIG, tmp_path)}\n'
        f'  Weights: {osp.relpath(checkpoint, tmp_path)}\n'
        f'  SHA256: {digest}\n')
    out = tmp_path / 'out'
    code = run_tool([str(folder / 'normal.jpg'), '--out-dir', str(out),
                     '--no-progress'])
    assert code == 0, capsys.readouterr().err
    assert 'the released DSNet' in capsys.readouterr().err
    mask = np.array(Image.open(out / 'masks' / 'normal.png'))
    assert mask.shape == sizes['normal']
    # The same mask as naming the config and checkpoint explicitly.
    code = run_tool([CONFIG, checkpoint, str(folder / 'normal.jpg'),
                     '--out-dir', str(tmp_path / 'explicit'),
                     '--no-progress'])
    assert code == 0
    explicit = np.array(Image.open(tmp_path / 'explicit' / 'masks' /
                                   'normal.png'))
    assert np.array_equal(mask, explicit)


def test_run_inference_in_python_keeps_one_model_per_folder(
        checkpoint, inputs, tmp_path, capsys):
    """run_inference called from Python wrote a second model's masks into
    a folder of infer.py's outputs (model.json still naming the first)
    and skipped the first model's masks as its own, no error; a later
    infer.py run then took the second model's masks as done."""
    import json

    from mmseg_dsnet.apis import (LesionInferencer, TorchBackend,
                                  prepare_output_dir, run_inference)
    from mmseg_dsnet.utils.errors import UserError
    folder, _ = inputs
    out = tmp_path / 'out'
    normal, gray = str(folder / 'normal.jpg'), str(folder / 'gray.png')
    assert run_tool([CONFIG, checkpoint, normal, '--out-dir', str(out),
                     '--no-progress']) == 0
    record = (out / 'model.json').read_text()
    before = sorted(p.name for p in out.rglob('*'))
    other = make_checkpoint(tmp_path / 'other.pth', seed=1)
    inferencer = LesionInferencer(TorchBackend(CONFIG, str(other)))
    with pytest.raises(UserError, match=r'holds 2 outputs of another model '
                       r'\(dsnet_isic2017.py \+ dsnet.pth'):
        run_inference(inferencer, [normal, gray], str(out), progress=False)
    assert sorted(p.name for p in out.rglob('*')) == before
    assert (out / 'model.json').read_text() == record
    # With overwrite the folder becomes the new model's.
    summary = run_inference(inferencer, [normal, gray], str(out),
                            overwrite=True, progress=False)
    assert sorted(summary.processed) == sorted([normal, gray])
    assert json.loads((out / 'model.json').read_text())['checkpoint'] == \
        'other.pth'
    # The same model again skips its own masks; a model given as a Config
    # object (nothing says which it is) is refused there.
    again = run_inference(inferencer, [normal], str(out), progress=False)
    assert again.skipped_existing == [normal]
    from mmengine.config import Config
    unknown = LesionInferencer(TorchBackend(Config.fromfile(CONFIG),
                                            str(other)))
    with pytest.raises(UserError, match='not known by its files'):
        run_inference(unknown, [normal], str(out), progress=False)
    fresh = tmp_path / 'fresh'
    prepare_output_dir(str(fresh))
    assert run_inference(unknown, [normal], str(fresh),
                         progress=False).processed == [normal]


@pytest.mark.parametrize('make', ['TorchBackend', 'make_backend'])
def test_a_config_without_checkpoint_is_refused_in_python(make):
    """infer.py refuses a config without a checkpoint; TorchBackend(CONFIG)
    and make_backend(CONFIG) ran the network with random weights and gave
    masks without a word."""
    from mmseg_dsnet.apis import inference_backends
    from mmseg_dsnet.utils.errors import UserError
    with pytest.raises(UserError, match=f'{make}: config {re.escape(CONFIG)} '
                       'was given without a checkpoint; its network would '
                       'run with random weights'):
        getattr(inference_backends, make)(CONFIG)


def test_run_inference_refuses_one_path_given_as_files(checkpoint, inputs,
                                                       tmp_path):
    """``run_inference(inferencer, 'photo.jpg', out)``: each letter of the
    path was taken as a file name and listed as failed."""
    from mmseg_dsnet.apis import LesionInferencer, TorchBackend, run_inference
    from mmseg_dsnet.utils.errors import UserError
    folder, _ = inputs
    normal = folder / 'normal.jpg'
    inferencer = LesionInferencer(TorchBackend(CONFIG, checkpoint))
    out = tmp_path / 'out'
    for given in (str(normal), normal):
        with pytest.raises(UserError, match=r"files is one path \("
                           rf"'{normal}'\), not a list of image files"):
            run_inference(inferencer, given, str(out), progress=False)
    assert not out.exists()
    summary = run_inference(inferencer, [str(normal)], str(out),
                            progress=False)
    assert summary.processed == [str(normal)]


def test_an_earlier_runs_outputs_are_not_taken_as_photos(checkpoint,
                                                          tmp_path, capsys):
    """``infer.py OUT1/overlays --out-dir OUT2`` (or ``OUT1 --recursive``,
    or a photo folder holding an earlier ``--out-dir``, searched with
    ``--recursive``) segmented the earlier run's overlays and masks as
    photos: ``Processed 6 of 6 images``, exit 0, masks of drawings of
    masks. Named, they are refused; met while searching, left out."""
    from conftest import tree_hashes
    photos = tmp_path / 'photos'
    photos.mkdir()
    for index in range(2):
        Image.fromarray(lesion_image(40, 50, index)).save(
            photos / f'p{index}.jpg')
    first = photos / 'out'  # an --out-dir inside the photos' folder
    assert run_tool([CONFIG, checkpoint, str(photos), '--out-dir',
                     str(first), '--no-progress']) == 0
    capsys.readouterr()
    before = tree_hashes(tmp_path)
    out = tmp_path / 'again'
    for named in (first / 'overlays', first / 'masks' / 'p0.png'):
        code = run_tool([CONFIG, checkpoint, str(named), '--out-dir',
                         str(out), '--no-progress'])
        err = capsys.readouterr().err
        assert code == 2, err
        lines = [line for line in err.splitlines() if 'ERROR:' in line]
        sub = 'overlays' if named.name == 'overlays' else 'masks'
        assert len(lines) == 1 and lines[0].startswith(
            f'ERROR: input {first}/{sub}/p0.') and (
                f'lies in {first}/{sub}, the {sub} of an earlier infer.py '
                f'run ({first}/model.json)') in lines[0], err
        assert not out.exists()
    assert run_tool([CONFIG, checkpoint, str(first), '--recursive',
                     '--out-dir', str(out), '--no-progress']) == 2
    assert 'ERROR: no images to process' in capsys.readouterr().err
    assert not out.exists()
    assert tree_hashes(tmp_path) == before

    assert run_tool([CONFIG, checkpoint, str(photos), '--recursive',
                     '--out-dir', str(out), '--no-progress']) == 0
    out_text, err = capsys.readouterr()
    assert (f'skipped {first}/masks: the outputs of an earlier infer.py '
            'run, not read as input') in err
    assert 'Processed 2 of 2 images' in out_text + err
    assert sorted(p.name for p in (out / 'masks').iterdir()) == [
        'p0.png', 'p1.png']
    # A glob over the photos matches the earlier run's records too.
    assert run_tool([CONFIG, checkpoint, str(photos / '**' / '*'),
                     '--out-dir', str(out), '--no-progress']) == 0
    err = capsys.readouterr().err
    assert (f'skipped {first}/model.json: a record of an earlier infer.py '
            'run, not read as input') in err, err


def test_a_link_to_an_input_is_named_when_left_out(checkpoint, tmp_path,
                                                    capsys):
    """A folder holding ``a.jpg`` and ``link.jpg`` (a symbolic link to it):
    the link was dropped as a duplicate without a word, ``Processed 1 of 1
    images``, exit 0, and no ``masks/link.png`` came; now it is named."""
    photos = tmp_path / 'photos'
    photos.mkdir()
    Image.fromarray(lesion_image(40, 50)).save(photos / 'a.jpg')
    (photos / 'link.jpg').symlink_to(photos / 'a.jpg')
    out = tmp_path / 'out'
    assert run_tool([CONFIG, checkpoint, str(photos), str(photos / 'a.jpg'),
                     '--out-dir', str(out), '--no-progress']) == 0
    err = capsys.readouterr().err
    assert (f'skipped {photos}/link.jpg: the same file as {photos}/a.jpg, '
            'segmented once') in err
    # The same path given twice is no news.
    assert err.count('the same file as') == 1
    assert sorted(p.name for p in (out / 'masks').iterdir()) == ['a.png']


def test_an_image_missing_one_of_its_outputs_gets_it(checkpoint, inputs,
                                                     tmp_path, capsys):
    """A mask without its overlay (a run killed, or its overlay write
    failed, between the two) was skipped as done on the next run, exit 0,
    and the overlay never came; now the missing output is written and the
    existing one kept."""
    folder, _ = inputs
    out = tmp_path / 'out'
    argv = [CONFIG, checkpoint, str(folder / 'normal.jpg'), '--out-dir',
            str(out), '--no-progress']
    assert run_tool(argv) == 0
    mask, overlay = out / 'masks' / 'normal.png', out / 'overlays' / \
        'normal.jpg'
    first = overlay.read_bytes()
    overlay.unlink()
    capsys.readouterr()
    assert run_tool(argv) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert f'completing {folder / "normal.jpg"}: {overlay} missing' in text
    assert 'Processed 1 of 1' in text
    assert overlay.read_bytes() == first
    # The reverse: the overlay is kept, the mask written again.
    stamp = overlay.stat().st_mtime_ns
    mask_bytes = mask.read_bytes()
    mask.unlink()
    assert run_tool(argv) == 0
    assert mask.read_bytes() == mask_bytes
    assert overlay.stat().st_mtime_ns == stamp
    # Both there: skipped as before.
    assert run_tool(argv) == 0
    assert 'already exists' in ''.join(capsys.readouterr())


def test_images_given_as_a_generator_are_segmented(checkpoint):
    """``predict((read(p) for p in paths))``: the images were read twice,
    so a generator was used up by the checks and failed with numpy's
    ``need at least one array to stack``; now any iterable works, an empty
    one gives no masks and ``logits([])`` names the problem."""
    from mmseg_dsnet.apis import ImageArrayError
    from mmseg_dsnet.apis.inference_backends import TorchBackend
    from mmseg_dsnet.apis.lesion_inferencer import LesionInferencer
    inferencer = LesionInferencer(TorchBackend(CONFIG, checkpoint))
    images = [lesion_image(60, 80), lesion_image(40, 30, 1)]
    expected = inferencer.predict(images)
    masks = inferencer.predict(image for image in images)
    assert [mask.shape for mask in masks] == [(60, 80), (40, 30)]
    assert all((a == b).all() for a, b in zip(masks, expected))
    assert len(inferencer.decisions(iter(images))) == 2
    assert inferencer.logits(iter(images)).shape[0] == 2
    assert inferencer.predict([]) == []
    with pytest.raises(ImageArrayError, match='no images given'):
        inferencer.logits([])


def test_run_inference_takes_files_from_a_generator(checkpoint, inputs,
                                                    tmp_path):
    """``run_inference(inferencer, (p for p in paths), out)``: the
    generator was used up naming the outputs, then the run failed with
    ``TypeError: object of type 'generator' has no len()`` after it had
    claimed ``out`` (model.json) for no outputs."""
    from mmseg_dsnet.apis import (LesionInferencer, TorchBackend,
                                  prepare_output_dir, run_inference)
    folder, _ = inputs
    files = [str(folder / 'normal.jpg'), str(folder / 'gray.png')]
    inferencer = LesionInferencer(TorchBackend(CONFIG, checkpoint))
    out = str(tmp_path / 'out')
    prepare_output_dir(out)
    summary = run_inference(inferencer, (path for path in files), out,
                            progress=False)
    assert summary.processed == files
    assert sorted(os.listdir(osp.join(out, 'masks'))) == ['gray.png',
                                                          'normal.png']


def test_ctrl_c_ends_with_one_line_and_the_same_command_finishes(
        checkpoint, tmp_path, monkeypatch):
    """Ctrl-C in the middle of a folder printed a ``KeyboardInterrupt``
    traceback of wherever the work was; now one line says what is left
    (exit 130), and the same command again writes the rest."""
    from conftest import run_tool_in_process

    from mmseg_dsnet.apis import masks
    folder = tmp_path / 'images'
    folder.mkdir()
    for i in range(4):
        Image.fromarray(lesion_image(60, 80, i)).save(folder / f'p{i}.png')
    out = tmp_path / 'out'
    command = ('tools/infer.py', CONFIG, checkpoint, folder, '--out-dir',
               out, '--no-overlay', '--no-progress')
    write, writes = masks.atomic_write, []

    def interrupted_at_the_third(*args, **kwargs):
        writes.append(args[1])
        if len(writes) == 3:
            raise KeyboardInterrupt
        return write(*args, **kwargs)

    monkeypatch.setattr(masks, 'atomic_write', interrupted_at_the_third)
    try:
        stopped = run_tool_in_process(*command)
    except KeyboardInterrupt:
        pytest.fail('KeyboardInterrupt traceback instead of a message')
    assert stopped.returncode == 130
    assert stopped.stderr.splitlines()[-1] == (
        'ERROR: interrupted (Ctrl-C) before the run finished; the outputs '
        'written so far are kept; the same command again writes the rest')
    assert 'Traceback' not in stopped.stderr
    assert sorted(os.listdir(out / 'masks')) == ['p0.png', 'p1.png']
    monkeypatch.setattr(masks, 'atomic_write', write)
    again = run_tool_in_process(*command)
    assert again.returncode == 0, again.stderr
    assert 'Processed 2 of 4 images' in again.stdout
    assert sorted(os.listdir(out / 'masks')) == [f'p{i}.png'
                                                 for i in range(4)]


def test_a_config_run_with_onnxruntime_records_its_checkpoint(checkpoint,
                                                              tmp_path):
    """A config exported on the fly for onnxruntime is recorded as the
    config and checkpoint that made it (model.json compares checkpoints
    by SHA-256: without it, masks of another checkpoint under the same
    config would be taken for this model's), and its temporary export is
    gone (mutation testing)."""
    from mmseg_dsnet.apis.inference_backends import make_backend
    from mmseg_dsnet.apis.lesion_inferencer import (LesionInferencer,
                                                    inferencer_record)
    from mmseg_dsnet.utils.fileio import sha256_of
    work = tmp_path / 'work'
    work.mkdir()
    backend = make_backend(CONFIG, str(checkpoint), backend='onnxruntime',
                           work_dir=str(work), num_threads=1)
    assert backend.model_files == (CONFIG, str(checkpoint))
    # The thread count reaches the session of the exported file too.
    assert backend.session.get_session_options().intra_op_num_threads == 1
    assert os.listdir(work) == []
    record = inferencer_record(LesionInferencer(backend))
    assert record['checkpoint_sha256'] == sha256_of(str(checkpoint))
    assert record['model_sha256'] == sha256_of(CONFIG)


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_threads=0), r'make_backend: num_threads must be a positive '
     r'whole number of CPU threads, got 0'),
    (dict(num_threads=-1), r'num_threads must be a positive whole number '
     r'of CPU threads, got -1'),
    (dict(num_threads=2.5), r'got 2\.5'),
    (dict(backend='onnxruntime', num_threads=0), r'got 0'),
    (dict(backend='onnxruntime', device='cuda'),
     r"make_backend: device='cuda' applies to the pytorch backend; "
     r'onnxruntime runs on the CPU here'),
    (dict(device='gpu'), r'TorchBackend: device gpu: not a device; give '
     r'cuda, cuda:N or cpu'),
])
def test_make_backend_refuses_arguments_it_would_drop(checkpoint, kwargs,
                                                      match):
    """``make_backend(CONFIG, CKPT, num_threads=0)`` ran on all cores and
    ``backend='onnxruntime', device='cuda'`` on the CPU, without a word
    (infer.py refuses both); ``num_threads=-1`` / ``2.5`` and
    ``device='gpu'`` failed inside torch with errors that named no
    argument."""
    from mmseg_dsnet.apis import make_backend
    from mmseg_dsnet.utils.errors import UserError
    threads = torch.get_num_threads()
    with pytest.raises(UserError, match=match):
        make_backend(CONFIG, checkpoint, **kwargs)
    assert torch.get_num_threads() == threads


def test_onnxruntime_backend_refuses_a_thread_count_it_would_drop(
        tmp_path):
    """``OnnxRuntimeBackend(f, num_threads=0)`` ran on all cores."""
    from mmseg_dsnet.apis import OnnxRuntimeBackend
    from mmseg_dsnet.utils.errors import UserError
    with pytest.raises(UserError, match=r'OnnxRuntimeBackend: num_threads '
                       r'must be a positive whole number of CPU threads, '
                       r'got 0'):
        OnnxRuntimeBackend(str(tmp_path / 'model.onnx'), num_threads=0)


def test_run_inference_refuses_an_item_that_is_not_a_path(checkpoint, inputs,
                                                          tmp_path):
    """``run_inference(inferencer, [path, rgb], out)`` (an array among the
    files, or a bytes path) failed with ``TypeError: expected str, bytes or
    os.PathLike object, not ndarray`` from os.path, naming neither the item
    nor what to call instead."""
    from mmseg_dsnet.apis import LesionInferencer, TorchBackend, run_inference
    from mmseg_dsnet.utils.errors import UserError
    folder, _ = inputs
    normal = folder / 'normal.jpg'
    inferencer = LesionInferencer(TorchBackend(CONFIG, checkpoint))
    out = tmp_path / 'out'
    rgb = np.zeros((8, 8, 3), np.uint8)
    for given, what in (([str(normal), rgb], 'files\\[1\\] is an array'),
                        ([str(normal).encode()], 'files\\[0\\] is a bytes'),
                        ([normal, None], 'files\\[1\\] is a NoneType')):
        with pytest.raises(UserError, match=f'run_inference: {what}, not an '
                           r'image file path \(a str or pathlib.Path\); '
                           r'.*LesionInferencer.predict\(\[rgb, ...\]\)'):
            run_inference(inferencer, given, str(out), progress=False)
    assert not out.exists()
    summary = run_inference(inferencer, [normal], str(out), progress=False)
    assert summary.processed == [normal]


def test_lesion_inferencer_refuses_flips_that_is_not_a_bool(checkpoint):
    """``LesionInferencer(backend, flips='False')`` (or ``'no'``) turned
    the flips on: three passes per image, and ``"flips": "False"`` in the
    output folder's model.json."""
    from mmseg_dsnet.apis import LesionInferencer, TorchBackend
    from mmseg_dsnet.utils.errors import UserError
    backend = TorchBackend(CONFIG, checkpoint)
    for given in ('False', 'no', None, 1):
        with pytest.raises(UserError, match=r'LesionInferencer: flips must '
                           rf'be True or False, got {re.escape(repr(given))}'):
            LesionInferencer(backend, flips=given)
    assert LesionInferencer(backend, flips=np.bool_(True)).flips is True
    assert LesionInferencer(backend).flips is False


@pytest.mark.parametrize('name, value', [
    ('overlay_max_side', 0), ('overlay_max_side', -5), ('max_pixels', 0),
    ('batch_size', 0), ('batch_size', 2.5), ('batch_size', True)])
def test_run_inference_refuses_sizes_below_one(checkpoint, inputs, tmp_path,
                                               name, value):
    """``run_inference(..., overlay_max_side=0)`` wrote 1x1 overlays,
    ``max_pixels=0`` listed every image as failed (``raise it with
    --max-pixels``), ``batch_size=0`` ran one image at a time, no error
    (infer.py refuses these options below 1)."""
    from mmseg_dsnet.apis import LesionInferencer, TorchBackend, run_inference
    from mmseg_dsnet.utils.errors import UserError
    folder, _ = inputs
    inferencer = LesionInferencer(TorchBackend(CONFIG, checkpoint))
    out = tmp_path / 'out'
    with pytest.raises(UserError, match=rf'run_inference: {name} must be a '
                       rf'whole number of at least 1, got {value!r}'):
        run_inference(inferencer, [str(folder / 'normal.jpg')], str(out),
                      progress=False, **{name: value})
    assert not out.exists()


def test_backends_take_pathlib_paths(checkpoint):
    """``TorchBackend(Path(config), Path(ckpt))`` failed in mmengine's
    loader (``TypeError: expected string or bytes-like object``),
    ``make_backend(Path(...))`` with ``AttributeError: 'PosixPath' object
    has no attribute 'lower'``."""
    from pathlib import Path

    from mmseg_dsnet.apis import LesionInferencer, TorchBackend, make_backend
    rgb = np.random.RandomState(0).randint(0, 256, (40, 50, 3), np.uint8)
    expected = LesionInferencer(TorchBackend(CONFIG, str(checkpoint))
                                ).predict([rgb])[0]
    for make in (TorchBackend, make_backend):
        backend = make(Path(CONFIG), Path(checkpoint))
        # Recorded in model.json as files (a Path was taken for an object).
        assert backend.model_files == (CONFIG, str(checkpoint))
        np.testing.assert_array_equal(
            LesionInferencer(backend).predict([rgb])[0], expected)
    # The segmentor builder the backends use, called on its own.
    from mmseg_dsnet.apis import build_segmentor
    model = build_segmentor(CONFIG, Path(checkpoint))
    assert not model.training


def test_a_macs_metadata_files_are_skipped_not_failed(checkpoint, tmp_path,
                                                      capsys):
    """A folder of photos a Mac copied to a USB stick holds an AppleDouble
    ``._IMG_0001.JPG`` beside each photo (and Windows adds ``Thumbs.db``):
    each was counted as a photo that failed (``not an image file``), so
    the run ended ``ERROR: 1 input(s) failed``, exit 1, with every photo
    done. Now they are skipped with a line each; a real photo whose name
    starts with ``._`` is still segmented."""
    photos = tmp_path / 'Patientin Müller'
    photos.mkdir()
    Image.fromarray(lesion_image(30, 40)).save(photos / 'IMG_0001.JPG')
    Image.fromarray(lesion_image(30, 40, 1)).save(photos / '._scan 2.jpg')
    apple_double = photos / '._IMG_0001.JPG'
    apple_double.write_bytes(b'\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X')
    (photos / 'Thumbs.db').write_bytes(b'\xd0\xcf\x11\xe0')
    out = tmp_path / 'out'
    assert run_tool([CONFIG, checkpoint, str(photos), '--out-dir', str(out),
                     '--no-progress']) == 0
    captured = capsys.readouterr()
    assert (f'skipped {apple_double}: macOS metadata (an AppleDouble file), '
            'not an image') in captured.err
    assert f'skipped {photos / "Thumbs.db"}: not an image file extension' \
        in captured.err
    assert 'Processed 2 of 2 images' in captured.out
    assert sorted(os.listdir(out / 'masks')) == ['IMG_0001.png',
                                                 '_scan 2.png']


def test_photo_names_the_console_cannot_show_are_escaped(checkpoint,
                                                         tmp_path):
    """A phone's gray photo named in Chinese, with the output redirected
    on Windows (stdout in cp1252): its conversion note raised
    ``UnicodeEncodeError`` after its mask was written, a traceback and
    exit 1 for a run that had done every image. Now the name is escaped
    and the run ends as it should, exit 0."""
    import subprocess
    import sys
    photos = tmp_path / '病历'
    photos.mkdir()
    Image.fromarray(lesion_image(30, 40)[..., 0]).save(photos / '病变 1.png')
    out = tmp_path / 'out'
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'infer.py'), CONFIG,
         str(checkpoint), str(photos), '--out-dir', str(out),
         '--no-progress'], cwd=REPO, capture_output=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONIOENCODING='cp1252'))
    stdout = result.stdout.decode('cp1252')
    assert result.returncode == 0, stdout + result.stderr.decode('cp1252')
    assert ('\\u75c5\\u5386/\\u75c5\\u53d8 1.png: grayscale image '
            'replicated to 3 channels') in stdout
    assert os.listdir(out / 'masks') == ['病变 1.png']


def test_a_file_name_that_is_not_utf8_does_not_crash(checkpoint, tmp_path):
    """A photo whose name is not UTF-8 (``l\\xe4sion.png``: a zip made on
    Windows, extracted here) and its mask in an output folder without
    infer.py's records: ``cv2.imread`` of the mask ended the process with
    a segmentation fault (exit -11), no line said why. The masks are now
    read through Python (``image_io.read_unchanged``): one ERROR line."""
    import subprocess
    import sys
    name = os.fsdecode(b'l\xe4sion.png')
    photos, out = tmp_path / 'photos', tmp_path / 'out'
    photos.mkdir()
    (out / 'masks').mkdir(parents=True)
    Image.fromarray(lesion_image(30, 40)).save(photos / name)
    mask = np.zeros((30, 40), np.uint8)
    mask[10:20, 10:30] = 255
    Image.fromarray(mask).save(out / 'masks' / name)
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'infer.py'), CONFIG,
         str(checkpoint), str(photos), '--out-dir', str(out),
         '--no-progress'], cwd=REPO, capture_output=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    stderr = result.stderr.decode('utf-8', 'replace')
    assert result.returncode == 2, stderr
    errors = [line for line in stderr.splitlines()
              if line.startswith('ERROR:')]
    assert len(errors) == 1 and 'Traceback' not in stderr
    assert 'masks/l\\udce4sion.png' in errors[0]
    assert os.listdir(out / 'masks') == [name]


def test_a_pattern_through_a_folder_with_brackets_is_refused(checkpoint,
                                                             tmp_path,
                                                             capsys):
    """``infer.py 'Patient [2]/*.jpg'``: in a pattern ``[2]`` is a set of
    characters, so the photos of the folder ``Patient 2`` were segmented
    in place of those of ``Patient [2]``, exit 0. Now refused with a line
    that says how to write it; the escaped pattern reads the folder."""
    wanted, other = tmp_path / 'Patient [2]', tmp_path / 'Patient 2'
    for folder, name in ((wanted, 'a.jpg'), (other, 'other.jpg')):
        folder.mkdir()
        Image.fromarray(lesion_image(30, 40)).save(folder / name)
    out = tmp_path / 'out'
    argv = [CONFIG, checkpoint, '--out-dir', str(out), '--no-progress']
    assert run_tool(argv[:2] + [f'{wanted}/*.jpg'] + argv[2:]) == 2
    err = capsys.readouterr().err
    assert (f'ERROR: no images to process: {wanted}/*.jpg: {wanted} '
            'exists, but in a pattern "[...]" is a set of characters, so '
            'the pattern does not read it; write each "[" of the name as '
            '"[[]" (or give the folder itself)') in err
    assert not out.exists()
    assert run_tool(argv[:2] + [f'{tmp_path}/Patient [[]2]/*.jpg']
                    + argv[2:]) == 0
    assert os.listdir(out / 'masks') == ['a.png']


def test_a_folder_for_the_checkpoint_is_named_one(tmp_path, capsys):
    """A folder given as the checkpoint was refused as ``checkpoint DIR
    not found``: it is there, only not a file."""
    photo, out = tmp_path / 'a.png', tmp_path / 'out'
    cv2.imwrite(str(photo), lesion_image(20, 30))
    folder = tmp_path / 'weights'
    folder.mkdir()
    code = run_tool([CONFIG, str(folder), str(photo), '--out-dir', str(out),
                     '--no-progress'])
    assert code == 2
    assert capsys.readouterr().err == (
        f'ERROR: checkpoint {folder} is a folder, not a file\n')
    assert not out.exists()
