"""mmseg_dsnet.apis.released_model: the metafile's released weights are
found, and a missing or altered file is refused by name."""
import hashlib
import os

import pytest

from mmseg_dsnet.apis.released_model import (ReleasedModelError,
                                             released_model, sha256_of)


def make_release(root, payload=b'weights', listed_hash=None):
    (root / 'configs' / 'dsnet').mkdir(parents=True)
    (root / 'checkpoints').mkdir()
    (root / 'configs' / 'dsnet' / 'net.py').write_text('model = dict()\n')
    (root / 'checkpoints' / 'net.pth').write_bytes(payload)
    listed = listed_hash or hashlib.sha256(payload).hexdigest()
    metafile = root / 'configs' / 'dsnet' / 'metafile.yaml'
    metafile.write_text(
        'Models:\n'
        '- Name: other\n  Config: configs/dsnet/net.py\n'
        '- Name: net\n  Config: configs/dsnet/net.py\n'
        f'  Weights: checkpoints/net.pth\n  SHA256: {listed}\n')
    return metafile


def test_finds_the_listed_weights(tmp_path):
    metafile = make_release(tmp_path)
    config, checkpoint = released_model('net', str(metafile))
    assert config == str(tmp_path / 'configs' / 'dsnet' / 'net.py')
    assert checkpoint == str(tmp_path / 'checkpoints' / 'net.pth')
    assert sha256_of(checkpoint) == hashlib.sha256(b'weights').hexdigest()


def test_a_digest_listed_in_upper_case_is_the_same_digest(tmp_path):
    """A SHA-256 is a hexadecimal number: listed in capitals (as some
    tools print it) it names the same file."""
    listed = hashlib.sha256(b'weights').hexdigest().upper()
    metafile = make_release(tmp_path, listed_hash=listed)
    assert released_model('net', str(metafile))[1] == str(
        tmp_path / 'checkpoints' / 'net.pth')


def test_refuses_an_altered_file(tmp_path):
    metafile = make_release(tmp_path, listed_hash='0' * 64)
    with pytest.raises(ReleasedModelError, match='not the released file'):
        released_model('net', str(metafile))


def test_refuses_a_missing_file_or_entry(tmp_path):
    metafile = make_release(tmp_path)
    with pytest.raises(ReleasedModelError, match='no released weights'):
        released_model('other', str(metafile))
    with pytest.raises(ReleasedModelError, match='no released weights'):
        released_model('absent', str(metafile))
    (tmp_path / 'checkpoints' / 'net.pth').unlink()
    with pytest.raises(ReleasedModelError, match='missing'):
        released_model('net', str(metafile))


def test_refuses_an_entry_that_names_no_config(tmp_path):
    """An entry with weights but no ``Config`` (a line lost in an edit) is
    refused by name, not a ``KeyError`` traceback."""
    metafile = make_release(tmp_path)
    metafile.write_text(metafile.read_text().replace(
        '- Name: net\n  Config: configs/dsnet/net.py\n', '- Name: net\n'))
    with pytest.raises(ReleasedModelError) as error:
        released_model('net', str(metafile))
    assert str(error.value) == (
        f'{metafile} lists no Config for the released weights named net; '
        'restore it with git checkout')


def test_refuses_a_config_of_another_input_size(tmp_path):
    """The released weights carry no training config: a config edited to
    another size loaded them and ran at that size, with no error."""
    metafile = make_release(tmp_path)
    text = metafile.read_text().replace(
        '- Name: net\n',
        "- Name: net\n  Metadata:\n    crop size: (256,256)\n")
    metafile.write_text(text)
    net = tmp_path / 'configs' / 'dsnet' / 'net.py'

    def write_config(size):
        net.write_text(
            f'model = dict(data_preprocessor=dict(size={size}))\n'
            'test_dataloader = dict(dataset=dict(pipeline=['
            f"dict(type='Resize', scale={size[::-1]}, keep_ratio=False)"
            ']))\n')

    write_config((256, 256))
    assert released_model('net', str(metafile))[0] == str(net)
    write_config((128, 128))
    with pytest.raises(ReleasedModelError) as err:
        released_model('net', str(metafile))
    assert 'model.data_preprocessor.size is (128, 128)' in str(err.value)
    assert "Resize scale is (128, 128)" in str(err.value)
    assert 'trained at (256x256' in str(err.value)


def test_publish_model_writes_weights_that_load_strictly(tmp_path):
    import numpy as np
    import torch
    from conftest import REPO, make_lesion_checkpoint, run_tool_in_process

    from mmseg_dsnet.deploy.deployable import build_segmentor
    config = str(REPO / 'configs' / 'dsnet' / 'dsnet_isic2017.py')
    image = np.random.default_rng(0).integers(0, 256, (256, 256, 3),
                                              dtype=np.uint8)
    trained = tmp_path / 'epoch_1.pth'
    make_lesion_checkpoint(config, trained, image,
                           meta=dict(note='training'))
    out = tmp_path / 'release' / 'net.pth'
    tool = ['tools/misc/publish_model.py', config, str(trained), str(out)]
    done = run_tool_in_process(*tool)
    assert done.returncode == 0, done.stderr
    assert sha256_of(str(out)) in done.stdout
    # The metafile lists files relative to the repository root.
    assert '  Config: configs/dsnet/dsnet_isic2017.py\n' in done.stdout
    assert f'  Weights: (none: {out} is outside the repository' in \
        done.stdout
    # Weights only: tensors and the class names and palette mmseg's
    # init_model and MMSegInferencer read; no training metadata.
    saved = torch.load(out, weights_only=True)
    assert sorted(saved) == ['meta', 'state_dict']
    assert all(isinstance(v, torch.Tensor)
               for v in saved['state_dict'].values())
    assert saved['meta'] == {'dataset_meta': {
        'classes': ('background', 'lesion'),
        'palette': [[0, 0, 0], [255, 64, 64]]}}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = build_segmentor(config, str(trained), False)(x, mode='tensor')
        b = build_segmentor(config, str(out), False)(x, mode='tensor')
    assert torch.equal(a, b)
    # An existing file is kept; a checkpoint of another model is refused.
    before = out.read_bytes()
    again = run_tool_in_process(*tool)
    assert again.returncode == 2 and 'exists' in again.stderr
    assert out.read_bytes() == before
    folder = run_tool_in_process(*tool[:-1], out.parent, '--overwrite')
    assert folder.returncode == 2 and 'is a folder' in folder.stderr
    assert os.listdir(out.parent) == ['net.pth']
    # --overwrite with the checkpoint as OUT_FILE replaced the training
    # checkpoint (optimizer state, meta) with its bare weights.
    trained_bytes = trained.read_bytes()
    itself = run_tool_in_process(*tool[:-1], trained, '--overwrite')
    assert itself.returncode == 2
    assert itself.stderr.strip() == (
        f'ERROR: the checkpoint and OUT_FILE are the same file, {trained}; '
        'write the weights to another file')
    assert trained.read_bytes() == trained_bytes
    other = str(REPO / 'configs' / 'egeunet' / 'egeunet_isic2017.py')
    wrong = run_tool_in_process(tool[0], other, trained, tmp_path / 'x.pth')
    assert wrong.returncode == 2, wrong.stderr
    assert wrong.stderr.strip().splitlines()[-1].startswith('ERROR:')
    assert not (tmp_path / 'x.pth').exists()


def test_publish_model_checks_out_file_before_loading(tmp_path):
    from conftest import REPO, load_tool

    from mmseg_dsnet.engine.preflight import WorkDirError
    publish = load_tool('misc/publish_model.py')
    config = str(REPO / 'configs' / 'dsnet' / 'dsnet_isic2017.py')
    checkpoint = str(REPO / 'checkpoints' / 'dsnet_isic2017_256px.pth')
    blocker = tmp_path / 'afile'
    blocker.write_text('')
    # A file in OUT_FILE's folder path: the write failed only after the
    # checkpoint was loaded, with a traceback (FileExistsError).
    with pytest.raises(WorkDirError, match='afile is a file, not a folder'):
        publish.main([config, checkpoint, str(blocker / 'net.pth')])
    assert os.listdir(tmp_path) == ['afile']


def test_released_weights_load_in_mmseg_apis():
    """mmseg's init_model failed on the released file (``KeyError:
    'meta'``) and MMSegInferencer named its classes after Cityscapes."""
    import numpy as np
    from mmseg.apis import MMSegInferencer, init_model
    config, checkpoint = released_model()
    model = init_model(config, checkpoint, device='cpu')
    assert model.dataset_meta['classes'] == ('background', 'lesion')
    inferencer = MMSegInferencer(model=config, weights=checkpoint,
                                 device='cpu')
    assert inferencer.model.dataset_meta == model.dataset_meta
    image = np.random.default_rng(0).integers(0, 256, (96, 128, 3),
                                              dtype=np.uint8)
    mask = inferencer(image, return_datasamples=True).pred_sem_seg.data
    assert tuple(mask.shape[-2:]) == (96, 128)


@pytest.mark.parametrize('seed,mean,std,lesion_pixels', [
    (0, -3.68033, 3.96720, 3778),
    (1, -3.68302, 3.94319, 3784),
])
def test_released_weights_give_the_recorded_logits(seed, mean, std,
                                                   lesion_pixels):
    """The released network's logits on a fixed picture, as recorded when
    the weights were re-checked (test IoU 80.4575). A change to the
    forward pass that keeps every weight loadable (an activation, the
    gate's pooling, a resize mode, a residual) ran the released weights in
    another network and every other test passed."""
    import numpy as np
    import torch
    from mmseg.apis import init_model
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256]
    blob = ((yy - 120)**2 / 60**2 + (xx - 140)**2 / 80**2) < 1
    image = np.empty((256, 256, 3), np.float32)
    image[:] = (200, 150, 130)
    image[blob] = (90, 50, 40)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255)
    config, checkpoint = released_model()
    model = init_model(config, checkpoint, device='cpu')
    inputs = torch.from_numpy(image.astype(np.uint8)).permute(2, 0, 1)
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=[inputs.float()], data_samples=None), False)
        logits = model(data['inputs'], mode='tensor')
    assert logits.shape == (1, 1, 128, 128)
    assert logits.mean().item() == pytest.approx(mean, abs=1e-4)
    assert logits.std().item() == pytest.approx(std, abs=1e-4)
    assert abs(int((logits > 0).sum()) - lesion_pixels) <= 2


def test_publish_model_refuses_the_config_as_out_file(tmp_path):
    from conftest import REPO, run_tool_in_process
    config = tmp_path / 'mycfg.py'
    config.write_text(f"_base_ = ['{REPO}/configs/dsnet/dsnet_isic2017.py']\n")
    text = config.read_text()
    # --overwrite wrote the weights over the config and printed it as both
    # the metafile's Config and Weights, exit 0.
    done = run_tool_in_process('tools/misc/publish_model.py', config,
                               REPO / 'checkpoints/dsnet_isic2017_256px.pth',
                               config, '--overwrite')
    assert done.returncode == 2, done.output[-2000:]
    assert done.stderr.strip() == (
        f'ERROR: the config and OUT_FILE are the same file, {config}; '
        'write the weights to another file')
    assert config.read_text() == text
    assert os.listdir(tmp_path) == ['mycfg.py']


def test_publish_model_refuses_weights_trained_at_another_input_size(
        tmp_path):
    """A checkpoint trained at 128 px (its ``meta['cfg']``, the training
    config mmengine dumps into it, says so) was published under a 256 px
    config, exit 0: it loads strictly, a fully convolutional model has
    no size in its weights."""
    from conftest import (DEMO_128PX, REPO, make_128px_checkpoint,
                          run_tool_in_process, trained_size_error)
    demo = DEMO_128PX
    config = str(REPO / 'configs' / 'dsnet' / 'dsnet_isic2018.py')
    trained = make_128px_checkpoint(tmp_path / 'epoch_1.pth')
    out = tmp_path / 'net.pth'
    tool = 'tools/misc/publish_model.py'
    done = run_tool_in_process(tool, config, trained, out)
    assert done.returncode == 2, done.output[-2000:]
    assert done.stderr.strip().splitlines()[-1] == trained_size_error(
        trained, config, 'publish it with the config it was trained with')
    assert not out.exists()
    # Under the config it was trained with, it is published.
    done = run_tool_in_process(tool, demo, trained, out)
    assert done.returncode == 0, done.output[-2000:]
    assert out.exists()
    # The dumped config is read, never run.
    from mmseg_dsnet.apis.released_model import (config_from_text,
                                                 input_size_settings)
    marker = tmp_path / 'ran'
    settings = config_from_text(
        f"__import__('pathlib').Path({str(marker)!r}).touch()\n"
        'model = dict(data_preprocessor=dict(size=(64, 96)))\n'
        'test_dataloader = dict(dataset=dict(pipeline=[dict(\n'
        "    type='Resize', scale=96), dict(type='PackSegInputs')]))\n"
        'oops = open(__file__)\n')
    assert input_size_settings(settings) == {
        'model.data_preprocessor.size': (64, 96),
        "the test pipeline's Resize scale": (96, 96)}
    assert not marker.exists() and 'oops' not in settings


def test_publish_model_refuses_weights_trained_in_another_network(tmp_path):
    """A checkpoint trained with other backbone dilations (a setting that
    holds no weights) loaded strictly under the config and was published
    to run in a network it was not trained in, exit 0."""
    from mmengine.config import Config

    from conftest import (DEMO_128PX, make_lesion_checkpoint,
                          run_tool_in_process)
    import numpy as np
    cfg = Config.fromfile(DEMO_128PX)
    cfg.model.backbone.dilations = [1, 2, 2, 2, 1]
    image = np.random.default_rng(0).integers(0, 256, (256, 256, 3),
                                              dtype=np.uint8)
    trained = make_lesion_checkpoint(DEMO_128PX, tmp_path / 'epoch_1.pth',
                                     image, meta=dict(cfg=cfg.pretty_text))
    out = tmp_path / 'net.pth'
    done = run_tool_in_process('tools/misc/publish_model.py', DEMO_128PX,
                               trained, out)
    assert done.returncode == 2, done.output[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f'ERROR: checkpoint {trained} was trained in another network than '
        f'config {DEMO_128PX} builds: model.backbone.dilations[1] is 2 in '
        "its training config (meta['cfg']), 1 in the config; publish it "
        'with the config it was trained with')
    assert not out.exists()
    # Training-only settings (the loss, a dropout) may differ.
    cfg = Config.fromfile(DEMO_128PX)
    cfg.model.decode_head.loss_decode.bce_weight = 2.0
    cfg.model.decode_head.dropout_ratio = 0.1
    trained = make_lesion_checkpoint(DEMO_128PX, tmp_path / 'epoch_2.pth',
                                     image, meta=dict(cfg=cfg.pretty_text))
    done = run_tool_in_process('tools/misc/publish_model.py', DEMO_128PX,
                               trained, out)
    assert done.returncode == 0, done.output[-2000:]
    assert out.exists()


def test_publish_model_replaces_out_file_with_overwrite(tmp_path):
    """publish_model.py said ``--force`` where every other tool says
    ``--overwrite`` (an unknown option there, exit 2); ``--force`` still
    works and says it is deprecated."""
    import numpy as np
    from conftest import REPO, make_lesion_checkpoint, run_tool_in_process
    config = str(REPO / 'configs' / 'dsnet' / 'dsnet_isic2017.py')
    trained = tmp_path / 'epoch_1.pth'
    make_lesion_checkpoint(config, trained,
                           np.zeros((256, 256, 3), dtype=np.uint8))
    out = tmp_path / 'net.pth'
    out.write_bytes(b'an older file')
    tool = ['tools/misc/publish_model.py', config, trained, out]
    kept = run_tool_in_process(*tool)
    assert kept.returncode == 2
    assert kept.stderr.strip() == (
        f'ERROR: {out} already exists (use --overwrite to replace it)')
    assert out.read_bytes() == b'an older file'
    done = run_tool_in_process(*tool, '--overwrite')
    assert done.returncode == 0, done.output[-2000:]
    assert 'deprecated' not in done.stderr
    published = out.read_bytes()
    assert published != b'an older file'
    out.write_bytes(b'an older file')
    old_name = run_tool_in_process(*tool, '--force')
    assert old_name.returncode == 0, old_name.output[-2000:]
    assert 'publish_model.py: --force is deprecated; use --overwrite' in \
        old_name.stderr
    assert out.read_bytes() == published


def test_publish_model_keeps_a_file_another_run_wrote_meanwhile(
        tmp_path, monkeypatch):
    """Two copies of publish_model.py with one OUT_FILE (no --overwrite):
    both passed the check at the start, the later one replaced the other's
    weights, and each printed the SHA256 of the file it found, exit 0."""
    import numpy as np
    from conftest import (REPO, another_run_writes_during_save,
                          make_lesion_checkpoint, run_tool_in_process)
    config = str(REPO / 'configs' / 'dsnet' / 'dsnet_isic2017.py')
    image = np.zeros((256, 256, 3), dtype=np.uint8)
    trained = tmp_path / 'epoch_1.pth'
    make_lesion_checkpoint(config, trained, image)
    out = tmp_path / 'net.pth'
    another_run_writes_during_save(monkeypatch, out)
    done = run_tool_in_process('tools/misc/publish_model.py', config,
                               trained, out)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f'ERROR: {out} was written by another process while this run '
        'worked; not replacing it (nothing written; pass --overwrite to '
        'replace it)')
    assert 'SHA256' not in done.stdout
    assert out.read_bytes() == b'the other run'


def test_publish_model_keeps_the_record_of_recomputed_statistics(
        tiny_isic, tmp_path):
    """A checkpoint whose BatchNorm statistics ``recalibrate_batch_norm.py``
    recomputed, published: the weights-only file dropped
    ``meta['batch_norm_recalibration']``, so its test figures were
    collected as those of the model as trained and the images the
    statistics came from could be scored (threshold sweep, test.py),
    exit 0."""
    import torch
    from conftest import run_tool_in_process, write_tiny_config
    from mmengine.config import Config

    from mmseg_dsnet.analysis.threshold_sweep import check_not_trained_on
    from mmseg_dsnet.engine.batch_norm_recalibration import \
        write_recalibrated_checkpoint
    from mmseg_dsnet.engine.cli_errors import UserError
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    bare = tmp_path / 'bare.pth'
    torch.save(dict(state_dict=MODELS.build(
        Config.fromfile(cfg).model).state_dict()), bare)
    precise = tmp_path / 'precise.pth'
    write_recalibrated_checkpoint(
        str(cfg), str(bare), str(precise), max_batches=1,
        cfg_options={'train_dataloader.dataset.ann_file':
                     'splits/official_val.txt'})
    out = tmp_path / 'net.pth'
    done = run_tool_in_process('tools/misc/publish_model.py', cfg, precise,
                               out)
    assert done.returncode == 0, done.stderr
    saved = torch.load(out, weights_only=True)
    record = torch.load(precise, weights_only=False)['meta'][
        'batch_norm_recalibration']
    assert saved['meta']['batch_norm_recalibration'] == record
    dataset = Config.fromfile(cfg).test_dataloader.dataset
    dataset.ann_file = 'splits/official_val.txt'
    with pytest.raises(UserError, match='BatchNorm statistics recomputed'):
        check_not_trained_on(str(out), dataset, str(cfg))
    # Weights as trained publish as before: no such record.
    plain = tmp_path / 'plain.pth'
    assert run_tool_in_process('tools/misc/publish_model.py', cfg, bare,
                               plain).returncode == 0
    assert 'batch_norm_recalibration' not in torch.load(
        plain, weights_only=True)['meta']


def test_a_non_square_release_size_compares_height_and_width(tmp_path):
    """mmcv's Resize scale is (width, height), the preprocessor's size and
    the metafile's crop size (height, width): a config running 256 high
    and 320 wide fits a crop size of (256, 320), not (320, 256); an int
    crop size is square."""
    import pytest

    from mmseg_dsnet.apis.released_model import (ReleasedModelError,
                                                 check_release_input_size)
    config = tmp_path / 'wide.py'
    config.write_text(
        "model = dict(data_preprocessor=dict(size=(256, 320)))\n"
        "test_pipeline = [dict(type='LoadImageFromFile'), "
        "dict(type='Resize', scale=(320, 256), keep_ratio=False)]\n")

    def entry(size):
        return {'Name': 'net', 'Metadata': {'crop size': size}}

    check_release_input_size(entry('(256, 320)'), str(config))
    with pytest.raises(ReleasedModelError, match=(
            r'at the size they were trained at \(320x256, ')) as err:
        check_release_input_size(entry('(320, 256)'), str(config))
    assert 'is (256, 320) (height, width); ' in str(err.value)
    with pytest.raises(ReleasedModelError, match=r'\(256x256, '):
        check_release_input_size(entry('256'), str(config))
    square = tmp_path / 'square.py'
    square.write_text(
        "model = dict(data_preprocessor=dict(size=(256, 256)))\n"
        "test_pipeline = [dict(type='Resize', scale=(256, 256))]\n")
    check_release_input_size(entry('256'), str(square))
    # Sizes given as lists (--cfg-options writes lists) are compared too.
    listed = tmp_path / 'listed.py'
    listed.write_text(
        "model = dict(data_preprocessor=dict(size=[256, 320]))\n"
        "test_pipeline = [dict(type='Resize', scale=[320, 256])]\n")
    check_release_input_size(entry('(256, 320)'), str(listed))
    with pytest.raises(ReleasedModelError, match=(
            r'model\.data_preprocessor\.size is \(256, 320\) \(height, '
            r'width\)')):
        check_release_input_size(entry('256'), str(listed))
    # A crop size the metafile writes as a YAML list is the same size;
    # one that is no size at all is refused by name.
    check_release_input_size(entry([256, 320]), str(config))
    for odd in ('(0, 256)', '(256.5, 320)', '(True, 320)', '[256]'):
        with pytest.raises(ReleasedModelError, match=(
                r"crop size of net is not \(height, width\)")):
            check_release_input_size(entry(odd), str(config))


def test_released_weights_are_checked_against_their_metafile_config(
        tmp_path, monkeypatch):
    """Released weights hold no training config (``meta['cfg']``), so every
    check that reads one passed them: under a config of other dilations
    (same tensors) they ran in a network they were not trained in, under the
    128 px demo config at another input size, and on the images they
    trained on they were scored as on new ones, exit 0. Their metafile
    entry's ``Config`` stands in for it now, for a copy of the file too."""
    import shutil

    from conftest import REPO
    from mmengine.config import Config

    from mmseg_dsnet.analysis.threshold_sweep import training_split_files
    from mmseg_dsnet.apis.released_model import (check_trained_input_size,
                                                 check_trained_model,
                                                 released_training_config)
    from mmseg_dsnet.utils.errors import UserError
    copy = tmp_path / 'copy.pth'
    shutil.copyfile(REPO / 'checkpoints' / 'dsnet_isic2017_256px.pth', copy)
    trained = released_training_config(str(copy))
    default = Config.fromfile(str(REPO / 'configs/dsnet/dsnet_isic2017.py'))
    assert trained['model']['backbone'] == default.model.backbone.to_dict()
    source = ('configs/dsnet/dsnet_isic2017.py, the Config of its metafile '
              'entry dsnet_isic2017_256px, with the model config the entry '
              'records')
    dilated = str(REPO / 'configs/dsnet/design/'
                  'dsnet-design-deeper-eighth-dilated-quarter_isic2017.py')
    with pytest.raises(UserError) as error:
        check_trained_model(Config.fromfile(dilated), dilated, str(copy),
                            'advice')
    assert str(error.value) == (
        f'checkpoint {copy} was trained in another network than config '
        f'{dilated} builds: model.backbone.dilations[1] is 1 in its '
        f'training config ({source}), 2 in the config; advice')
    demo = str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')
    with pytest.raises(UserError, match=r'model.data_preprocessor.size is '
                       r'\(256, 256\) in its training config \(configs/'
                       r'dsnet/dsnet_isic2017.py, the Config'):
        check_trained_input_size(Config.fromfile(demo), demo, str(copy))
    # Its training split, looked for under another data root (from a
    # folder where the config's relative data root is not).
    monkeypatch.chdir(tmp_path)
    split = tmp_path / 'root' / 'splits' / 'lightweight_train.txt'
    split.parent.mkdir(parents=True)
    split.write_text('ISIC_0000000\n')
    assert training_split_files(str(copy), str(tmp_path / 'root')) == [
        str(split)]
    # The config it is published under passes; another file is no release.
    check_trained_model(default, 'dsnet_isic2017.py', str(copy))
    data = copy.read_bytes()
    copy.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert released_training_config(str(copy)) is None
    check_trained_model(Config.fromfile(dilated), dilated, str(copy))


def test_released_entry_matches_a_copy_by_digest_only(tmp_path):
    """A copy of listed weights is found by its SHA-256 (listed in either
    case) with its Config made absolute; an entry whose Config is missing,
    another file or no file at all is no release."""
    from mmseg_dsnet.apis.released_model import released_entry
    payload = b'weights'
    metafile = make_release(
        tmp_path, payload, hashlib.sha256(payload).hexdigest().upper())
    copy = tmp_path / 'copy.pth'
    copy.write_bytes(payload)
    entry = released_entry(str(copy), str(metafile))
    assert entry['Name'] == 'net'
    assert entry['Config'] == str(tmp_path / 'configs' / 'dsnet' / 'net.py')
    other = tmp_path / 'other.pth'
    other.write_bytes(b'weightz')  # the same size, another digest
    assert released_entry(str(other), str(metafile)) is None
    assert released_entry(str(tmp_path / 'missing.pth'),
                          str(metafile)) is None
    (tmp_path / 'configs' / 'dsnet' / 'net.py').unlink()
    assert released_entry(str(copy), str(metafile)) is None


def test_published_released_weights_keep_their_metafile_config(tmp_path):
    """Released weights hold no ``meta['cfg']``; published again (another
    file, no longer known by its SHA-256) they must carry their metafile
    entry's config, or the copy passed the checks of network, input size
    and training split."""
    import torch
    from mmengine.config import Config

    from mmseg_dsnet.apis.released_model import (publish_weights,
                                                 training_config_of)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = os.path.join(repo, 'configs', 'dsnet', 'dsnet_isic2017.py')
    out = str(tmp_path / 'copy.pth')
    publish_weights(config, os.path.join(
        repo, 'checkpoints', 'dsnet_isic2017_256px.pth'), out)
    text = torch.load(out, map_location='cpu', weights_only=False)[
        'meta']['cfg']
    assert Config.fromstring(text, '.py').model == \
        Config.fromfile(config).model
    assert training_config_of(out)['train_dataloader']['dataset'][
        'ann_file'] == 'splits/lightweight_train.txt'


def test_loading_released_weights_checks_their_metafile_config():
    """load_checkpoint_strictly (error_by_position.py, benchmark.py) checks
    the checkpoint it loaded already: released weights, which hold no
    ``meta['cfg']``, must be compared with their metafile entry's config
    there too, or they ran in a network of other dilations."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import mmseg_dsnet  # noqa: F401
    from mmseg_dsnet.engine.checkpoint_match import load_checkpoint_strictly
    from mmseg_dsnet.utils.errors import UserError
    register_all_modules()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    released = os.path.join(repo, 'checkpoints', 'dsnet_isic2017_256px.pth')
    cfg = Config.fromfile(
        os.path.join(repo, 'configs', 'dsnet', 'dsnet_isic2017.py'))
    load_checkpoint_strictly(MODELS.build(cfg.model), released, cfg=cfg)
    cfg.model.backbone.dilations = [1, 1, 1, 1, 1]
    with pytest.raises(UserError, match=r'dilations\[2\] is 2 in its '
                       r'training config \(configs/dsnet/dsnet_isic2017.py, '
                       'the Config of its metafile entry'):
        load_checkpoint_strictly(MODELS.build(cfg.model), released, cfg=cfg)


def test_publish_model_records_and_checks_the_epoch_of_the_checkpoint(
        tmp_path):
    """``epoch_5.pth`` of a 100-epoch run was published without a word,
    and the file did not say which epoch it held. The run's best and last
    checkpoints pass and record their epoch; an intermediate one needs
    --allow-unfinished."""
    import numpy as np
    import torch
    from conftest import (DEMO_128PX, make_lesion_checkpoint,
                          run_tool_in_process)
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO_128PX)
    cfg.train_cfg.max_epochs = 100
    image = np.random.default_rng(0).integers(0, 256, (256, 256, 3),
                                              dtype=np.uint8)

    def publish(name, epoch, *options):
        checkpoint = tmp_path / name
        make_lesion_checkpoint(DEMO_128PX, checkpoint, image, meta=dict(
            epoch=epoch, iter=epoch * 10, cfg=cfg.pretty_text))
        out = tmp_path / f'out_{name}'
        return run_tool_in_process('tools/misc/publish_model.py',
                                   DEMO_128PX, checkpoint, out,
                                   *options), out

    done, out = publish('epoch_5.pth', 5)
    assert done.returncode == 2, done.output[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f'ERROR: checkpoint {tmp_path / "epoch_5.pth"} holds epoch 5 of '
        '100, iteration 50 (a checkpoint saved before the training ended): '
        "it is not the run's best checkpoint (best_*.pth) either, so its "
        "weights are not the run's result; publish the run's last or best "
        'checkpoint, or pass --allow-unfinished to publish these weights '
        '(the file records their epoch)')
    assert not out.exists()
    done, out = publish('epoch_5.pth', 5, '--allow-unfinished')
    assert done.returncode == 0, done.output[-2000:]
    assert ('Trained: epoch 5 of 100, iteration 50 (a checkpoint saved '
            'before the training ended)\n') in done.stdout
    assert torch.load(out, weights_only=True)['meta'][
        'training_progress'] == dict(epoch=5, iter=50, max_epochs=100,
                                     checkpoint='unfinished')
    for name, epoch, what in (('best_IoU_epoch_7.pth', 7, 'best'),
                              ('epoch_100.pth', 100, 'last')):
        done, out = publish(name, epoch)
        assert done.returncode == 0, done.output[-2000:]
        assert (f'Trained: epoch {epoch} of 100, iteration {epoch * 10} '
                f"(the run's {what} checkpoint)\n") in done.stdout
        assert torch.load(out, weights_only=True)['meta'][
            'training_progress']['checkpoint'] == what
    # The training config travels with the weights unless a release
    # leaves it out (it names the training machine's folders); the
    # training progress stays either way.
    assert 'cfg' in torch.load(out, weights_only=True)['meta']
    done, out = publish('epoch_100.pth', 100, '--no-training-config',
                        '--overwrite')
    assert done.returncode == 0, done.output[-2000:]
    meta = torch.load(out, weights_only=True)['meta']
    assert sorted(meta) == ['dataset_meta', 'training_progress']
    assert meta['training_progress']['checkpoint'] == 'last'


def test_a_recalibrated_best_checkpoint_is_published_as_the_best(
        tiny_isic, tmp_path):
    """``recalibrate_batch_norm.py`` keeps neither the name nor the message
    hub that tell a best checkpoint: its output, published, was refused
    as an intermediate checkpoint. It now carries the record along."""
    import torch
    from conftest import run_tool_in_process, write_tiny_config
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.engine.batch_norm_recalibration import \
        write_recalibrated_checkpoint
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=3)
    register_all_modules()
    loaded = Config.fromfile(cfg)
    best = tmp_path / 'best_IoU_epoch_1.pth'
    torch.save(dict(state_dict=MODELS.build(loaded.model).state_dict(),
                    meta=dict(epoch=1, iter=2, cfg=loaded.pretty_text)),
               best)
    precise = tmp_path / 'precise.pth'
    write_recalibrated_checkpoint(str(cfg), str(best), str(precise),
                                  max_batches=1)
    out = tmp_path / 'net.pth'
    done = run_tool_in_process('tools/misc/publish_model.py', cfg, precise,
                               out)
    assert done.returncode == 0, done.output[-2000:]
    assert ("Trained: epoch 1 of 3, iteration 2 (the run's best "
            'checkpoint)\n') in done.stdout
    assert torch.load(out, weights_only=True)['meta'][
        'training_progress'] == dict(epoch=1, iter=2, max_epochs=3,
                                     checkpoint='best')


def test_training_progress_of_iteration_runs_and_early_stopping(tmp_path):
    """An iteration-based run is measured in iterations (its epoch says
    nothing), and a run whose config stops early may end before its
    planned length: its intermediate checkpoint passes, read as 'of at
    most'."""
    from mmengine.config import Config

    from mmseg_dsnet.apis.released_model import (UnfinishedRunError,
                                                 check_finished,
                                                 progress_text,
                                                 training_progress)

    def loaded(epoch, iteration, **cfg):
        return dict(meta=dict(epoch=epoch, iter=iteration,
                              cfg=Config(cfg).pretty_text))

    by_iter = dict(train_cfg=dict(type='IterBasedTrainLoop', max_iters=1000))
    middle = training_progress(loaded(1, 500, **by_iter), 'iter_500.pth')
    assert middle == dict(epoch=1, iter=500, max_iters=1000,
                          checkpoint='unfinished')
    assert progress_text(middle, 'iter_500.pth') == (
        'iteration 500 of 1000 (a checkpoint saved before the training '
        'ended)')
    with pytest.raises(UnfinishedRunError, match='iteration 500 of 1000'):
        check_finished(middle, 'iter_500.pth')
    assert training_progress(loaded(2, 1000, **by_iter),
                             'iter_1000.pth')['checkpoint'] == 'last'
    # An epoch run's record without the epoch it stopped at is not judged.
    assert training_progress(
        dict(meta=dict(iter=50, cfg=Config(dict(train_cfg=dict(
            max_epochs=100))).pretty_text)), 'iter_50.pth')[
                'checkpoint'] == 'unknown'

    stops_early = dict(train_cfg=dict(max_epochs=100), custom_hooks=[
        dict(type='EarlyStoppingHook', monitor='IoU')])
    early = training_progress(loaded(40, 400, **stops_early), 'epoch_40.pth')
    assert early == dict(epoch=40, iter=400, max_epochs=100,
                         early_stopping=True, checkpoint='unfinished')
    check_finished(early, 'epoch_40.pth')  # the run may have ended here
    assert progress_text(early, 'epoch_40.pth') == (
        'epoch 40 of at most 100, iteration 400 (its config stops early, '
        'so the run may have ended here or later)')


def test_the_training_config_is_named_where_it_is_read(tmp_path,
                                                       monkeypatch):
    """Weights listed in the metafile whose file holds its training config
    (``meta['cfg']``, as publish_model.py writes it) are checked against
    that config, and messages name it so; bare listed weights name the
    Config of their metafile entry."""
    import torch
    import yaml

    from mmseg_dsnet.apis import released_model
    from mmseg_dsnet.utils.fileio import sha256_of
    published, bare = tmp_path / 'published.pth', tmp_path / 'bare.pth'
    torch.save(dict(state_dict={'w': torch.zeros(2)},
                    meta=dict(cfg='model = dict()')), published)
    torch.save(dict(state_dict={'w': torch.ones(3)}), bare)
    (tmp_path / 'net.py').write_text('model = dict()\n')
    metafile = tmp_path / 'configs' / 'dsnet' / 'metafile.yaml'
    metafile.parent.mkdir(parents=True)
    metafile.write_text(yaml.safe_dump(dict(Models=[
        dict(Name=path.stem, Config='net.py', Weights=path.name,
             SHA256=sha256_of(str(path))) for path in (published, bare)])))
    monkeypatch.setattr(released_model, 'METAFILE', str(metafile))
    config = os.path.relpath(tmp_path / 'net.py', released_model.REPO_ROOT)
    assert released_model.training_config_source(str(published)) == \
        "meta['cfg']"
    assert released_model.training_config_source(str(bare)) == (
        f'{config}, the Config of its metafile entry bare')


def test_refuses_weights_whose_entry_lists_no_digest(tmp_path):
    """An entry without SHA256 (or an empty one) cannot vouch for any
    file: its weights are refused, not taken as released (mutation
    testing: an empty listed digest accepted every file)."""
    metafile = make_release(tmp_path)
    text = metafile.read_text()
    metafile.write_text(text[:text.index('  SHA256:')])
    with pytest.raises(ReleasedModelError,
                       match='not the released file .* lists none'):
        released_model('net', str(metafile))


def test_publish_model_refuses_an_out_file_of_another_format(tmp_path):
    """OUT_FILE ``weights.onnx`` was written as a PyTorch file, exit 0, and
    infer.py, which reads a model file by its name, took it for ONNX."""
    from conftest import REPO, load_tool

    from mmseg_dsnet.utils.errors import UserError
    publish = load_tool('misc/publish_model.py')
    config = str(REPO / 'configs' / 'dsnet' / 'dsnet_isic2017.py')
    checkpoint = str(REPO / 'checkpoints' / 'dsnet_isic2017_256px.pth')
    out = tmp_path / 'weights.onnx'
    with pytest.raises(UserError) as err:
        publish.main([config, checkpoint, str(out)])
    assert str(err.value) == (
        f'OUT_FILE {out}: the weights are written in PyTorch format; give '
        'a file name ending with .pth, .pt or .ckpt')
    assert os.listdir(tmp_path) == []


def test_publishing_reads_the_checkpoint_and_its_config_once(
        tmp_path, monkeypatch):
    """publish_weights loads the checkpoint once and parses its training
    config once for all of its checks (epoch, input size, network, data)
    and the strict load, and the weights it writes are the checkpoint's."""
    import torch
    from conftest import DEMO_128PX, make_128px_checkpoint

    from mmseg_dsnet import compat
    from mmseg_dsnet.apis import released_model as released
    checkpoint = make_128px_checkpoint(tmp_path / 'epoch_1.pth')
    loads, parses = [], []
    load, parse = compat.safe_torch_load, released.config_from_text

    def counted_load(filename, *args, **kwargs):
        loads.append(os.fspath(filename))
        return load(filename, *args, **kwargs)

    def counted_parse(text):
        parses.append(text)
        return parse(text)

    monkeypatch.setattr(compat, 'safe_torch_load', counted_load)
    monkeypatch.setattr(released, 'config_from_text', counted_parse)
    out = tmp_path / 'net.pth'
    released.publish_weights(DEMO_128PX, str(checkpoint), str(out))
    assert loads == [str(checkpoint)]
    assert len(parses) == 1
    trained = torch.load(checkpoint, weights_only=True)
    published = torch.load(out, weights_only=True)
    assert published['meta']['cfg'] == trained['meta']['cfg']
    assert sorted(published['state_dict']) == sorted(trained['state_dict'])
    assert all(torch.equal(tensor, trained['state_dict'][name])
               for name, tensor in published['state_dict'].items())


def test_publish_model_names_a_folder_given_as_an_input_file(tmp_path):
    """A folder given as CONFIG or CHECKPOINT is named a folder, not a
    file that does not exist; nothing is written."""
    from conftest import REPO, run_tool_in_process
    config = str(REPO / 'configs' / 'dsnet' / 'dsnet_isic2017.py')
    checkpoint = str(REPO / 'checkpoints' / 'dsnet_isic2017_256px.pth')
    out = tmp_path / 'net.pth'
    for argv, what in (((tmp_path, checkpoint), 'config file'),
                       ((config, tmp_path), 'checkpoint file')):
        done = run_tool_in_process('tools/misc/publish_model.py', *argv,
                                   out)
        assert done.returncode == 2, done.output[-2000:]
        assert done.stderr.strip() == (
            f'ERROR: {what} {tmp_path} is a folder, not a file')
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('text,why', [
    ('', 'lists no Models'),
    ('Models:\n- Name: net\n  Config: [\n', 'is not YAML (line 4)'),
    ('Models:\n  net: configs/dsnet/net.py\n', 'lists no Models'),
    ('- Name: net\n', 'lists no Models'),
    ('Models:\n- net\n', 'lists no Models'),
    ('Models: {}\n', 'lists no Models'),
    (b'Models:\n- Name: n\xe9t\n', 'cannot be read'),
])
def test_a_metafile_that_is_not_a_list_of_models_is_one_error(
        tmp_path, text, why):
    """An empty or broken metafile (a merge left half of it, a list where
    mappings go) is refused by name as a user error, both when released
    weights are looked up by name and when a checkpoint is looked up by
    its digest, instead of a YAML or attribute traceback."""
    from mmseg_dsnet.apis.released_model import released_entry
    from mmseg_dsnet.utils.errors import UserError
    metafile = make_release(tmp_path)
    if isinstance(text, bytes):  # not UTF-8
        metafile.write_bytes(text)
    else:
        metafile.write_text(text)
    checkpoint = str(tmp_path / 'checkpoints' / 'net.pth')
    for look_up in (lambda: released_model('net', str(metafile)),
                    lambda: released_entry(checkpoint, str(metafile))):
        with pytest.raises(ReleasedModelError) as error:
            look_up()
        assert isinstance(error.value, UserError)
        assert str(error.value).startswith(f'metafile {metafile} {why}')


def test_publish_model_lists_no_file_git_ignores(tmp_path):
    """Weights written where git ignores them (``work_dirs/``, any
    ``*.pth`` outside ``checkpoints/``) are never committed: the metafile
    field printed for them would name a file missing from every other
    copy of the repository, so none is printed; a tracked config is."""
    import shutil
    import subprocess
    import tempfile

    from conftest import REPO, run_tool_in_process
    if subprocess.run(['git', '-C', str(REPO), 'rev-parse'],
                      capture_output=True).returncode != 0:
        pytest.skip('the repository is not a git checkout')
    work_dirs = REPO / 'work_dirs'
    made = not work_dirs.exists()
    work_dirs.mkdir(exist_ok=True)
    folder = tempfile.mkdtemp(dir=work_dirs)
    out = os.path.join(folder, 'net.pth')
    try:
        done = run_tool_in_process(
            'tools/misc/publish_model.py', 'configs/dsnet/dsnet_isic2017.py',
            'checkpoints/dsnet_isic2017_256px.pth', out)
        assert done.returncode == 0, done.output[-2000:]
        relative = os.path.relpath(out, REPO)
        assert '  Config: configs/dsnet/dsnet_isic2017.py\n' in done.stdout
        assert (f'  Weights: (none: git ignores {relative}, so it would be '
                'missing from every other copy of the repository; write '
                'the weights under checkpoints/)\n') in done.stdout
    finally:
        shutil.rmtree(folder)
        if made and not any(work_dirs.iterdir()):
            work_dirs.rmdir()


def test_an_edited_release_config_is_refused_for_the_released_weights(
        tmp_path, monkeypatch, capsys):
    """The released weights were compared with their metafile entry's
    config file as it is now: a dilation edited there (it holds no
    weights) was compared with itself, the weights loaded strictly and
    infer.py wrote masks of another network, exit 0. The entry records
    the model the weights were trained in, and the edit is refused."""
    import numpy as np
    from conftest import REPO, load_tool
    from PIL import Image

    from mmseg_dsnet.apis import released_model as released
    folder = tmp_path / 'configs' / 'dsnet'
    folder.mkdir(parents=True)
    (tmp_path / 'checkpoints').mkdir()
    name = 'dsnet_isic2017_256px.pth'
    checkpoint = tmp_path / 'checkpoints' / name
    checkpoint.symlink_to(REPO / 'checkpoints' / name)
    metafile = folder / 'metafile.yaml'
    metafile.write_text(
        (REPO / 'configs' / 'dsnet' / 'metafile.yaml').read_text())
    monkeypatch.setattr(released, 'METAFILE', str(metafile))
    config = folder / 'dsnet_isic2017.py'
    original = REPO / 'configs' / 'dsnet' / 'dsnet_isic2017.py'
    config.write_text(f'_base_ = [{str(original)!r}]\n'
                      'model = dict(backbone=dict(dilations=[1, 1, 2, 1, '
                      '1]))\n')
    photo = tmp_path / 'photo.png'
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(photo)
    out = tmp_path / 'out'
    # infer.py with no model given runs the released weights.
    assert load_tool('infer.py').main(
        [str(photo), '--out-dir', str(out), '--no-progress']) == 2
    source = (f'{os.path.relpath(config, released.REPO_ROOT)}, the Config '
              'of its metafile entry dsnet_isic2017_256px, with the model '
              'config the entry records')
    assert capsys.readouterr().err.splitlines()[-1] == (
        f'ERROR: checkpoint {checkpoint} was trained in another network '
        f'than config {config} builds: model.backbone.dilations[3] is 2 in '
        f'its training config ({source}), 1 in the config; restore '
        f'{source.split(",")[0]} as released (git checkout -- '
        f'{source.split(",")[0]}): released weights run in the network its '
        'metafile entry dsnet_isic2017_256px records')
    assert not out.exists()
    # Under a config of their own, released weights (no work dir) are
    # sent to the config their metafile entry names.
    other = tmp_path / 'other.py'
    other.write_text(config.read_text())
    assert load_tool('infer.py').main(
        [str(other), str(checkpoint), str(photo), '--out-dir', str(out),
         '--no-progress']) == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        f'1 in the config; give the config its metafile entry '
        f'dsnet_isic2017_256px names ({source.split(",")[0]})')
    assert not out.exists()


def test_weights_of_another_kind_of_network_are_named_by_its_type():
    """DSNet weights under a UNet config are refused naming the backbones
    (the setting the user acts on), not the first setting in which the two
    model configs differ (``model.auxiliary_head``)."""
    from mmengine.config import Config

    from conftest import REPO

    from mmseg_dsnet.apis.released_model import check_trained_model
    from mmseg_dsnet.utils.errors import UserError
    dsnet = Config.fromfile(REPO / 'configs' / 'dsnet' / 'dsnet_isic2017.py')
    unet = Config.fromfile(
        REPO / 'configs' / 'unet' / 'unet-s5-d16_fcn_isic2017.py')
    with pytest.raises(UserError, match=(
            r"^checkpoint c\.pth was trained in another network than config "
            r"u\.py builds: model\.backbone\.type is 'DSNet' in its training "
            r"config \(meta\['cfg'\]\), 'UNet' in the config; advice$")):
        check_trained_model(unet, 'u.py', 'c.pth', 'advice', loaded={},
                            training_cfg=dict(model=dsnet.model.to_dict()))
