"""Every tool that runs a checkpoint under a config refuses one whose
training config (``meta['cfg']``) builds another network in a setting that
holds no weights (backbone dilations): the weights loaded strictly and ran
in a network they were not trained in, exit 0."""
import numpy as np
import pytest
from mmengine.config import Config

from conftest import (DEMO_128PX, make_128px_checkpoint,
                      make_lesion_checkpoint, run_tool_in_process)

DESIGN_VAL = ('test_dataloader.dataset.ann_file='
              'splits/lightweight_design_val.txt')


def other_network_checkpoint(path, dilations=(1, 2, 2, 2, 1)):
    """A checkpoint whose training config sets ``dilations`` (trained on
    the design split, so that validation-split tools score it)."""
    cfg = Config.fromfile(DEMO_128PX)
    cfg.model.backbone.dilations = list(dilations)
    cfg.train_dataloader.dataset.ann_file = \
        'splits/lightweight_design_train.txt'
    image = np.random.default_rng(0).integers(0, 256, (256, 256, 3),
                                              dtype=np.uint8)
    return make_lesion_checkpoint(DEMO_128PX, path, image,
                                  meta=dict(cfg=cfg.pretty_text))


def refusal(checkpoint, advice):
    return (f'ERROR: checkpoint {checkpoint} was trained in another network '
            f'than config {DEMO_128PX} builds: model.backbone.dilations[1] '
            "is 2 in its training config (meta['cfg']), 1 in the config; "
            f'{advice}')


HINT = ('give the config it was trained with (the one its training dumped '
        'into its work dir)')

TOOLS = {
    'infer': ('tools/infer.py', lambda t: [t / 'imgs', '--out-dir',
                                           t / 'out'], HINT),
    'test': ('tools/test.py', lambda t: ['--work-dir', t / 'out',
                                         '--allow-training-images'],
             'test it with the config it was trained with'),
    # With --tta the model is wrapped; the segmentor inside is compared.
    'test_tta': ('tools/test.py', lambda t: ['--work-dir', t / 'out',
                                             '--allow-training-images',
                                             '--tta'],
                 'test it with the config it was trained with'),
    'export_onnx': ('tools/deployment/export_onnx.py',
                    lambda t: [t / 'out.onnx', '--shape', 128, 128],
                    'export it with the config it was trained with'),
    'reparameterize': ('tools/deployment/reparameterize.py',
                       lambda t: [t / 'out.pth'],
                       'give the training config it was trained with'),
    'error_by_position': ('tools/analysis_tools/error_by_position.py',
                          lambda t: ['--out', t / 'out.json',
                                     '--cfg-options', DESIGN_VAL], HINT),
    'threshold_sweep': ('tools/analysis_tools/threshold_sweep.py',
                        lambda t: ['--thresholds', 0.5, 0.4, '--out',
                                   t / 'out.json', '--cfg-options',
                                   DESIGN_VAL], HINT),
    'benchmark': ('tools/analysis_tools/benchmark.py',
                  lambda t: ['--repeat', 1], HINT),
}


@pytest.mark.parametrize('tool', sorted(TOOLS))
def test_tool_refuses_weights_trained_in_another_network(tool, tmp_path):
    script, extra, advice = TOOLS[tool]
    (tmp_path / 'imgs').mkdir()
    from PIL import Image
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(
        tmp_path / 'imgs' / 'a.png')
    checkpoint = other_network_checkpoint(tmp_path / 'epoch_1.pth')
    done = run_tool_in_process(script, DEMO_128PX, checkpoint,
                               *extra(tmp_path))
    assert done.returncode == 2, done.output[-2000:]
    assert done.stderr.strip().splitlines()[-1] == refusal(
        checkpoint, advice)
    assert not [p.name for p in tmp_path.iterdir()
                if p.name.startswith('out')]


def test_build_segmentor_refuses_weights_trained_in_another_network(
        tmp_path):
    """cpu_latency.py and the Python API build through build_segmentor."""
    from mmseg_dsnet.deploy.deployable import build_segmentor
    from mmseg_dsnet.utils.errors import UserError
    checkpoint = other_network_checkpoint(tmp_path / 'epoch_1.pth')
    with pytest.raises(UserError, match=r'dilations\[1\] is 2'):
        build_segmentor(DEMO_128PX, checkpoint)
    # Its own network (with a deploy config: deploy=True is the same
    # network) and a checkpoint without a training config load.
    cfg = Config.fromfile(DEMO_128PX)
    cfg.model.backbone.dilations = [1, 2, 2, 2, 1]
    build_segmentor(cfg, checkpoint)
    from mmseg_dsnet.deploy.deploy_checkpoint import deploy_config
    from mmseg_dsnet.engine.checkpoint_match import load_checkpoint_strictly
    from mmseg.registry import MODELS
    dep = deploy_config(cfg)
    load_checkpoint_strictly(MODELS.build(cfg.model), checkpoint, cfg=dep)
    image = np.zeros((256, 256, 3), np.uint8)
    plain = make_lesion_checkpoint(DEMO_128PX, tmp_path / 'plain.pth',
                                   image)
    build_segmentor(DEMO_128PX, plain)


def test_test_py_accepts_another_input_size_of_its_own_network(tmp_path):
    """An input size is a data setting test.py accepts (leaderboard runs);
    the network check compares the model only."""
    from mmseg_dsnet.apis.released_model import check_trained_model
    cfg = Config.fromfile(DEMO_128PX)
    cfg.model.data_preprocessor.size = (96, 96)
    image = np.zeros((256, 256, 3), np.uint8)
    checkpoint = make_lesion_checkpoint(DEMO_128PX, tmp_path / 'a.pth',
                                        image, meta=dict(cfg=cfg.pretty_text))
    check_trained_model(Config.fromfile(DEMO_128PX), DEMO_128PX, checkpoint)


def _trained_model():
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', size=(128, 128)),
        backbone=dict(type='DSNet', dilations=[1, 2, 1], drop_path_rate=0.1,
                      norm_cfg=dict(type='SyncBN', requires_grad=True),
                      init_cfg=dict(type='Pretrained', checkpoint='a.pth')),
        decode_head=dict(type='DSHead', threshold=0.5, align_corners=False,
                         loss_decode=[dict(type='DiceLoss', loss_weight=1.0)]),
        auxiliary_head=[dict(type='FCNHead', in_index=1, dropout_ratio=0.1,
                             loss_decode=dict(type='CE', loss_weight=0.4))],
        train_cfg=dict(), test_cfg=dict(mode='whole'))


def _checkpoint_and_changed_model(tmp_path, path, value):
    """A checkpoint whose ``meta`` records ``_trained_model()``, and that
    model config with the entry at ``path`` set to ``value``."""
    import copy

    import torch
    checkpoint = tmp_path / 'c.pth'
    torch.save({'state_dict': {},
                'meta': {'cfg': f'model = {_trained_model()!r}'}},
               checkpoint)
    given = copy.deepcopy(_trained_model())
    entry = given
    for key in path[:-1]:
        entry = entry[key]
    entry[path[-1]] = value
    return checkpoint, given


@pytest.mark.parametrize('path,value', [
    (('decode_head', 'threshold'), 0.3),
    (('decode_head', 'loss_decode', 0, 'loss_weight'), 2.0),
    (('auxiliary_head', 0, 'loss_decode', 'loss_weight'), 1.0),
    (('auxiliary_head', 0, 'dropout_ratio'), 0.0),
    (('backbone', 'drop_path_rate'), 0.0),
    (('backbone', 'init_cfg'), None),
    (('data_preprocessor', 'size'), (96, 96)),
    (('test_cfg', 'mode'), 'slide'),
    (('backbone', 'norm_cfg', 'type'), 'BN'),
    (('backbone', 'norm_cfg', 'type'), 'BN2d'),
    (('decode_head', 'fuse_side_outputs'), True),
    (('_scope_', ), 'mmseg'),
    (('backbone', '_scope_'), 'mmseg'),
])
def test_training_only_settings_may_differ(tmp_path, path, value):
    """The decision threshold, losses (also inside a list of heads),
    dropout, initialisation, the preprocessor (compared on its own), the
    test mode, SyncBN for BN or BN2d (mmcv's other name of BN: one
    computation at test time; weights trained on several devices were
    refused under the one-device config) and the side outputs averaged
    into the prediction at test time (``fuse_side_outputs``, over the same
    trained side classifiers: a trained checkpoint was refused under it)
    and mmseg's registry scope set by name (``_scope_='mmseg'``, the scope
    models are built in without one) do not change the network the
    weights run in."""
    from mmseg_dsnet.apis.released_model import check_trained_model
    checkpoint, given = _checkpoint_and_changed_model(tmp_path, path, value)
    check_trained_model(Config(dict(model=given)), 'x.py', str(checkpoint))


@pytest.mark.parametrize('path,value,trained,shown', [
    (('decode_head', 'align_corners'), True, 'False', 'True'),
    (('auxiliary_head', 0, 'in_index'), 2, '1', '2'),
    (('backbone', 'dilations', 2), 2, '1', '2'),
    (('decode_head', 'type'), 'FCNHead', "'DSHead'", "'FCNHead'"),
    (('backbone', 'norm_cfg', 'type'), 'GN', "'SyncBN'", "'GN'"),
    (('backbone', '_scope_'), 'mmpretrain', '<not set>', "'mmpretrain'"),
])
def test_a_setting_of_the_network_is_refused(tmp_path, path, value, trained,
                                             shown):
    """``align_corners``, a head's input index (inside a list of heads), a
    dilation and a head type change the network: refused, naming the path
    and both values."""
    from mmseg_dsnet.apis.released_model import check_trained_model
    from mmseg_dsnet.utils.errors import UserError
    checkpoint, given = _checkpoint_and_changed_model(tmp_path, path, value)
    where = 'model' + ''.join(f'[{k}]' if isinstance(k, int) else f'.{k}'
                              for k in path)
    with pytest.raises(UserError) as error:
        check_trained_model(Config(dict(model=given)), 'x.py',
                            str(checkpoint), 'advice')
    assert str(error.value) == (
        f'checkpoint {checkpoint} was trained in another network than '
        f'config x.py builds: {where} is {trained} in its training config '
        f"(meta['cfg']), {shown} in the config; advice")


def test_published_weights_keep_their_training_config(tmp_path):
    """publish_model.py wrote the weights without the training checkpoint's
    ``meta['cfg']``: published weights of a run with other dilations then
    ran under a config of the usual ones, exit 0."""
    from PIL import Image
    (tmp_path / 'imgs').mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(
        tmp_path / 'imgs' / 'a.png')
    checkpoint = other_network_checkpoint(tmp_path / 'epoch_1.pth')
    trained = Config.fromfile(DEMO_128PX)
    trained.model.backbone.dilations = [1, 2, 2, 2, 1]
    # The split it trained on, too: publishing refuses another.
    trained.train_dataloader.dataset.ann_file = \
        'splits/lightweight_design_train.txt'
    trained_config = str(tmp_path / 'trained.py')
    trained.dump(trained_config)
    out = tmp_path / 'net.pth'
    done = run_tool_in_process('tools/misc/publish_model.py', trained_config,
                               checkpoint, out)
    assert done.returncode == 0, done.output[-2000:]
    refused = run_tool_in_process('tools/infer.py', DEMO_128PX, out,
                                  tmp_path / 'imgs', '--out-dir',
                                  tmp_path / 'out')
    assert refused.returncode == 2, refused.output[-2000:]
    assert refused.stderr.strip().splitlines()[-1] == refusal(out, HINT)
    assert not (tmp_path / 'out').exists()
    # Under the config it was trained with, it runs.
    ran = run_tool_in_process('tools/infer.py', trained_config, out,
                              tmp_path / 'imgs', '--out-dir',
                              tmp_path / 'masks')
    assert ran.returncode == 0, ran.output[-2000:]
    assert (tmp_path / 'masks').is_dir()


def test_reparameterised_released_weights_keep_their_training_config(
        tmp_path):
    """Released weights hold no ``meta['cfg']`` and are recognised by their
    SHA-256; their re-parameterised copy, another file, was recognised by
    nothing and ran under a config of other dilations, exit 0."""
    from conftest import REPO

    from mmseg_dsnet.apis.released_model import (check_trained_model,
                                                 training_config_of)
    from mmseg_dsnet.deploy.deploy_checkpoint import write_deploy_checkpoint
    from mmseg_dsnet.utils.errors import UserError
    config = str(REPO / 'configs' / 'dsnet' / 'dsnet_isic2017.py')
    released = str(REPO / 'checkpoints' / 'dsnet_isic2017_256px.pth')
    out = str(tmp_path / 'deploy.pth')
    write_deploy_checkpoint(config, released, out, shape=(64, 64))
    other = Config.fromfile(str(tmp_path / 'deploy.py'))
    other.model.backbone.dilations = [1, 1, 1, 1, 1]
    with pytest.raises(UserError, match=r'trained in another network .* '
                       r'model\.backbone\.dilations\[2\] is 2 in its '
                       r'training config'):
        check_trained_model(other, 'deploy.py', out)
    # Its own network passes; its training split is known.
    check_trained_model(Config.fromfile(str(tmp_path / 'deploy.py')),
                        'deploy.py', out)
    assert training_config_of(out)['train_dataloader']['dataset'][
        'ann_file'] == 'splits/lightweight_train.txt'


def _trained_in(config, path):
    """A checkpoint of ``config``'s model as mmengine's Runner saves it,
    with its training config in ``meta['cfg']``."""
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint

    from mmseg_dsnet.apis import build_segmentor
    save_checkpoint(
        dict(state_dict=build_segmentor(str(config), None,
                                        reparameterize=False).state_dict(),
             meta=dict(cfg=Config.fromfile(str(config)).pretty_text)),
        str(path))
    return str(path)


@pytest.mark.parametrize('trained,setting', [
    ('dsnet-design-deeper-eighth-fused-trained_isic2017.py',
     dict(fused_loss_weight=0.5)),
    ('dsnet-design-deeper-eighth-distance_isic2017.py',
     dict(distance_loss_weight=1.0))])
def test_weights_differing_in_a_loss_weight_load_under_mmseg(
        trained, setting, tmp_path):
    """``fused_loss_weight`` and ``distance_loss_weight`` weigh losses of
    the training only: weights trained with one weight are the same
    network's under another, and mmseg's init_model loads them."""
    from mmengine.config import Config
    from mmseg.apis import init_model
    from conftest import REPO
    config = REPO / 'configs/dsnet/design' / trained
    ckpt = _trained_in(config, tmp_path / 'epoch_1.pth')
    cfg = Config.fromfile(str(config))
    cfg.model.decode_head.update(setting)
    init_model(cfg, ckpt, device='cpu')


def test_weights_served_over_http_are_compared_with_their_network(
        tmp_path, monkeypatch):
    """An ``http(s)://`` checkpoint goes through the same loader as a
    local one: weights trained in another network (dilation 2 in the
    second block at 1/16) are refused by init_model under the undilated
    config."""
    import functools
    import http.server
    import threading

    from mmseg.apis import init_model
    from conftest import REPO

    from mmseg_dsnet.engine.checkpoint_match import TrainedNetworkError
    served = tmp_path / 'served'
    served.mkdir()
    # The undilated design's sibling: the same network but that dilation.
    _trained_in(REPO / 'configs/dsnet/design/'
                'dsnet-design-e-deeper-eighth_isic2017.py',
                served / 'epoch_1.pth')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f'http://127.0.0.1:{server.server_address[1]}/epoch_1.pth'
        with pytest.raises(TrainedNetworkError,
                           match=r"model\.backbone\.dilations\[3\] is 2 in "
                           r"their training config \(meta\['cfg'\]\), 1 in "
                           r"this model"):
            init_model(str(REPO / 'configs/dsnet/design/dsnet-design-deeper-'
                           'eighth-undilated-sixteenth_isic2017.py'), url,
                       device='cpu')
    finally:
        server.shutdown()
        server.server_close()


def test_a_subclass_is_compared_by_the_settings_it_was_built_with():
    """A module subclassing one of ours with a constructor of its own is
    built with its own settings (``shortcut_blocks``), which its training
    config holds: they are what is compared, not those it passes on to
    its base class (``shortcut``), which the training config does not
    name."""
    from mmseg_dsnet.models.backbones.dsnet import DSNet
    from mmseg_dsnet.models.utils.strict_loading import \
        check_trained_settings

    class ShortcutDSNet(DSNet):

        def __init__(self, shortcut_blocks=True, **kwargs):
            super().__init__(shortcut=shortcut_blocks, **kwargs)

    module = ShortcutDSNet(shortcut_blocks=True)
    check_trained_settings(module, (dict(type='ShortcutDSNet',
                                         shortcut_blocks=True), 'cfg'),
                           'backbone.')
    from mmseg_dsnet.engine.checkpoint_match import TrainedNetworkError
    with pytest.raises(TrainedNetworkError,
                       match=r'model\.backbone\.shortcut_blocks is False in '
                       r'their training config \(cfg\), True in this model'):
        check_trained_settings(module, (dict(type='ShortcutDSNet',
                                             shortcut_blocks=False), 'cfg'),
                               'backbone.')


def test_a_partial_load_on_purpose_takes_weights_of_another_network(
        tmp_path):
    """``load_checkpoint_strictly(strict=False)`` (``load_from_strict=
    False``, which the refusal of weights trained in another network
    advises, to start a training from them) loads such weights: the
    caller checked the load with its own rule."""
    import torch
    from conftest import REPO

    from mmseg_dsnet.apis import build_segmentor
    from mmseg_dsnet.engine.checkpoint_match import (TrainedNetworkError,
                                                     load_checkpoint_strictly)
    ckpt = _trained_in(REPO / 'configs/dsnet/design/'
                       'dsnet-design-e-deeper-eighth_isic2017.py',
                       tmp_path / 'epoch_1.pth')
    undilated = str(REPO / 'configs/dsnet/design/dsnet-design-deeper-'
                    'eighth-undilated-sixteenth_isic2017.py')
    model = build_segmentor(undilated, None, reparameterize=False)
    with pytest.raises(TrainedNetworkError):
        load_checkpoint_strictly(model, ckpt, hint=None)
    load_checkpoint_strictly(model, ckpt, strict=False, hint=None)
    want = torch.load(ckpt, map_location='cpu')['state_dict']
    state = model.state_dict()
    assert [key for key, value in want.items()
            if not torch.equal(state[key], value)] == []


@pytest.mark.parametrize('change,refused', [
    (dict(type='ISIC2017Dataset'), True),
    (dict(ann_file='splits/official_train.txt'), True),
    # Data moved to another folder is the same data.
    (dict(data_root='/elsewhere/synthetic_isic2018'), False)])
def test_publish_refuses_a_config_of_other_training_data(tmp_path, change,
                                                         refused):
    """publish_model.py CONFIG of ISIC 2018 with weights trained on ISIC
    2017 wrote the weights and printed the metafile fields naming the ISIC
    2018 config, exit 0: a mislabel."""
    checkpoint = make_128px_checkpoint(tmp_path / 'epoch_1.pth')
    given = Config.fromfile(DEMO_128PX)
    given.train_dataloader.dataset.update(change)
    config = str(tmp_path / 'given.py')
    given.dump(config)
    out = tmp_path / 'net.pth'
    done = run_tool_in_process('tools/misc/publish_model.py', config,
                               checkpoint, out)
    if not refused:
        assert done.returncode == 0, done.output[-2000:]
        assert out.is_file()
        return
    assert done.returncode == 2, done.output[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(
        f'ERROR: checkpoint {checkpoint} was trained on ISIC2018Dataset '
        "(splits/lightweight_train.txt) (its training config, meta['cfg']),"
        f' but config {config} trains on '), lines[-1]
    assert 'Config:' not in done.stdout
    assert not out.exists()


def _reading(*datasets):
    """A config whose training loader reads ``datasets`` (a ConcatDataset
    of them when there are several)."""
    dataset = datasets[0] if len(datasets) == 1 else dict(
        type='ConcatDataset', datasets=list(datasets))
    return Config(dict(train_dataloader=dict(dataset=dataset)))


def test_training_data_is_compared_by_split_file_not_by_folder():
    """The split file is compared relative to its data root: an absolute
    split path under the root, ``./splits/...`` and ``splits/...`` under
    data moved elsewhere name the same file; a split outside the root is
    another file."""
    from mmseg_dsnet.apis.released_model import training_data_settings
    isic = 'ISIC2017Dataset'
    absolute = _reading(dict(type=isic, data_root='/data/isic2017',
                             ann_file='/data/isic2017/splits/a_train.txt'))
    moved = _reading(dict(type=isic, data_root='/mnt/copy/isic2017',
                          ann_file='./splits/a_train.txt'))
    outside = _reading(dict(type=isic, data_root='/data/isic2017',
                            ann_file='/data/other/splits/a_train.txt'))
    assert training_data_settings(absolute) == [(isic, 'splits/a_train.txt')]
    assert training_data_settings(moved) == [(isic, 'splits/a_train.txt')]
    assert training_data_settings(outside) == [
        (isic, '/data/other/splits/a_train.txt')]


def test_a_split_named_through_another_path_to_its_root_is_the_same(
        tmp_path):
    """An absolute split path under a relative data root (the root's
    folders found in the path), or under a data root reached through a
    symbolic link, names the split relative to the root; a config naming
    the same split relative to a moved root passes the data check, and
    one naming another split is refused."""
    from mmseg_dsnet.apis.released_model import (check_trained_data,
                                                 training_data_settings)
    from mmseg_dsnet.utils.errors import UserError
    isic = 'ISIC2017Dataset'
    split = 'splits/lightweight_train.txt'
    real = tmp_path / 'disk' / 'isic2017'
    (real / 'splits').mkdir(parents=True)
    (real / split).write_text('ISIC_0000000\n')
    (tmp_path / 'link').symlink_to(tmp_path / 'disk')
    relative_root = _reading(dict(
        type=isic, data_root='./disk/isic2017/',
        ann_file=str(real / split)))
    linked = _reading(dict(type=isic, data_root=str(real),
                           ann_file=str(tmp_path / 'link' / 'isic2017' /
                                        split)))
    for trained in (relative_root, linked):
        assert training_data_settings(trained) == [(isic, split)]
        loaded = dict(meta=dict(cfg=trained.pretty_text), state_dict={})
        check_trained_data(_reading(dict(type=isic, data_root='/moved/isic',
                                         ann_file=split)),
                           'c.py', 'w.pth', loaded=loaded)
        with pytest.raises(UserError, match=(
                r'trained on ISIC2017Dataset \(splits/lightweight_train'
                r'\.txt\) .*trains on ISIC2017Dataset \(splits/official_'
                r'train\.txt\);')):
            check_trained_data(_reading(dict(
                type=isic, data_root='data/isic2017',
                ann_file='splits/official_train.txt')), 'c.py', 'w.pth',
                loaded=loaded)
    # A root whose folders are not in the split's path: another file.
    elsewhere = _reading(dict(type=isic, data_root='data/isic2017',
                              ann_file=str(real / split)))
    assert training_data_settings(elsewhere) == [(isic, str(real / split))]


def test_a_path_is_named_relative_to_its_root_only_inside_it():
    """A split or image folder is named relative to its data root only
    where it lies inside it: an absolute split without a data root, the
    root's parent folder and a root of no folders (``.``) leave the path
    as given, and a relative root whose folders appear twice in the path
    names it from their last place; the root's own folder is the data
    root, however the root is given."""
    from mmseg_dsnet.apis.released_model import training_data_settings
    isic = 'ISIC2017Dataset'
    cases = [
        (dict(ann_file='/w/splits/a.txt'), '/w/splits/a.txt'),
        (dict(data_root='.', ann_file='/w/splits/a.txt'),
         '/w/splits/a.txt'),
        (dict(data_root='/d/isic', data_prefix=dict(img_path='/d')),
         'every image in /d'),
        (dict(data_root='/d/isic',
              data_prefix=dict(img_path='/d/isic/images')),
         'every image in images'),
        (dict(data_root='/d/isic'), 'every image in the data root'),
        (dict(data_root='data/isic',
              ann_file='/a/data/isic/b/data/isic/splits/t.txt'),
         'splits/t.txt'),
        # The root's own folder, under a relative or an absolute root.
        (dict(data_root='data/isic',
              data_prefix=dict(img_path='/w/data/isic')),
         'every image in the data root'),
        (dict(data_root='/w/data/isic',
              data_prefix=dict(img_path='/w/data/isic')),
         'every image in the data root'),
    ]
    for dataset, named in cases:
        assert training_data_settings(_reading(dict(type=isic, **dataset))
                                      ) == [(isic, named)], dataset
    # A dataset that names no data (set by a wrapper's defaults, say) is
    # nothing to compare.
    assert training_data_settings(_reading(dict(type=isic))) is None


def test_every_dataset_of_a_wrapped_training_loader_is_compared():
    """Weights trained on ISIC 2017 + ISIC 2018 published under a config
    that reads ISIC 2017 + ISIC 2017's official split: refused, both
    datasets of each named (the first datasets alone agree)."""
    from mmseg_dsnet.apis.released_model import (check_trained_data,
                                                 training_data_settings)
    from mmseg_dsnet.utils.errors import UserError
    isic17 = dict(type='ISIC2017Dataset', data_root='/d/isic2017',
                  ann_file='splits/lightweight_train.txt')
    isic18 = dict(type='ISIC2018Dataset', data_root='/d/isic2018',
                  ann_file='splits/lightweight_train.txt')
    official = dict(isic17, ann_file='splits/official_train.txt')
    trained = _reading(isic17, isic18)
    assert training_data_settings(trained) == [
        ('ISIC2017Dataset', 'splits/lightweight_train.txt'),
        ('ISIC2018Dataset', 'splits/lightweight_train.txt')]
    loaded = dict(meta=dict(cfg=trained.pretty_text), state_dict={})
    with pytest.raises(UserError, match=(
            r'^checkpoint w\.pth was trained on ISIC2017Dataset '
            r'\(splits/lightweight_train\.txt\) \+ ISIC2018Dataset '
            r'\(splits/lightweight_train\.txt\) .*but config c\.py trains '
            r'on ISIC2017Dataset \(splits/lightweight_train\.txt\) \+ '
            r'ISIC2017Dataset \(splits/official_train\.txt\);')):
        check_trained_data(_reading(isic17, official), 'c.py', 'w.pth',
                           loaded=loaded)
    # The same datasets (moved elsewhere) pass.
    check_trained_data(_reading(dict(isic17, data_root='/e/isic2017'),
                                dict(isic18, data_root='/e/isic2018')),
                       'c.py', 'w.pth', loaded=loaded)


def test_the_same_datasets_concatenated_in_another_order_pass():
    """ISIC 2017 + ISIC 2018 and ISIC 2018 + ISIC 2017 train on the same
    images: the publish passes; a dataset read twice is other data."""
    from mmseg_dsnet.apis.released_model import check_trained_data
    from mmseg_dsnet.utils.errors import UserError
    isic17 = dict(type='ISIC2017Dataset', data_root='/d/isic2017',
                  ann_file='splits/lightweight_train.txt')
    isic18 = dict(isic17, type='ISIC2018Dataset', data_root='/d/isic2018')
    loaded = dict(meta=dict(cfg=_reading(isic17, isic18).pretty_text),
                  state_dict={})
    check_trained_data(_reading(isic18, isic17), 'c.py', 'w.pth',
                       loaded=loaded)
    # Two splits of one dataset class, in either order.
    design = dict(isic17, ann_file='splits/lightweight_design_val.txt')
    check_trained_data(
        _reading(design, isic17), 'c.py', 'w.pth',
        loaded=dict(meta=dict(cfg=_reading(isic17, design).pretty_text),
                    state_dict={}))
    with pytest.raises(UserError, match='but config c.py trains on '):
        check_trained_data(_reading(isic18, isic17, isic17), 'c.py',
                           'w.pth', loaded=loaded)


def test_without_a_split_file_the_image_folder_is_compared():
    """Datasets without a split file read every image of their image
    folder: weights trained on ``train/images`` published under a config
    reading ``val/images`` are refused, naming both folders; the same
    folder under a moved data root passes."""
    from mmseg_dsnet.apis.released_model import check_trained_data
    from mmseg_dsnet.utils.errors import UserError

    def every_image_in(root, folder):
        return _reading(dict(type='ISIC2018Dataset', data_root=root,
                             data_prefix=dict(img_path=folder,
                                              seg_map_path='masks')))

    trained = every_image_in('/d/isic2018', 'train/images')
    loaded = dict(meta=dict(cfg=trained.pretty_text), state_dict={})
    check_trained_data(every_image_in('/e/isic2018', './train/images/'),
                       'c.py', 'w.pth', loaded=loaded)
    with pytest.raises(UserError, match=(
            r'trained on ISIC2018Dataset \(every image in train/images\) '
            r'.*trains on ISIC2018Dataset \(every image in val/images\);')):
        check_trained_data(every_image_in('/d/isic2018', 'val/images'),
                           'c.py', 'w.pth', loaded=loaded)


def test_weights_whose_training_config_reads_no_literal_loader_pass():
    """A training config without a training loader (``train_dataloader``
    None, as a test-only config has) or without a checkpoint's config at
    all (bare weights) records no training data: nothing to compare, so
    the weights are published as given, not refused."""
    from mmseg_dsnet.apis.released_model import (check_trained_data,
                                                 training_data_settings)
    given = _reading(dict(type='ISIC2017Dataset', data_root='/d/isic2017',
                          ann_file='splits/lightweight_train.txt'))
    untrained = Config(dict(train_dataloader=None))
    assert training_data_settings(untrained) is None
    for loaded in (dict(meta=dict(cfg=untrained.pretty_text),
                        state_dict={}), {'w': np.zeros(1)}):
        check_trained_data(given, 'c.py', 'w.pth', loaded=loaded)
