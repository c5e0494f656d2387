"""Edges of the checks that refuse a run before it starts: inputs that
their first tests did not reach (a training folder above the scored one,
a repeated image under two spellings, training-only settings, weights
served over http)."""
import re

import pytest


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
            f'val_dataloader scores the ') + r'\d+' + re.escape(
            f' images of {root}/splits/lightweight_test.txt, and '
            f'train_dataloader trains on every image under {root}/ ')):
        check_held_out_images(cfg, ('val_dataloader', ))


def test_one_image_under_two_spellings_of_its_path_is_refused(tmp_path):
    """Two splits read through two spellings of one folder (``data/isic``
    and ``./data/isic/``, or a link to it) give one image under two paths:
    each copy was scored. The paths are compared as files."""
    from mmseg_dsnet.evaluation.lesion_metric import check_each_image_once
    from mmseg_dsnet.utils.errors import UserError
    images = tmp_path / 'images'
    images.mkdir()
    (images / 'a.jpg').write_bytes(b'a')
    (images / 'b.jpg').write_bytes(b'b')
    (tmp_path / 'link').symlink_to(images)
    check_each_image_once([str(images / 'a.jpg'), str(images / 'b.jpg')])
    with pytest.raises(UserError, match=re.escape(
            f'test_dataloader would score 1 image(s) more than once (2 '
            f'samples of 1 images: {images}/a.jpg (2 times))')):
        check_each_image_once([str(images / 'a.jpg'),
                               str(tmp_path / 'link' / 'a.jpg')])
    # The most repeated first.
    with pytest.raises(UserError, match=re.escape(
            f'images: {images}/b.jpg (3 times), {images}/a.jpg (2 times))')):
        check_each_image_once([str(images / name)
                               for name in ('a.jpg', 'b.jpg') * 2] +
                              [str(images / 'b.jpg')])


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
    _trained_in(REPO / 'configs/dsnet/dsnet_isic2017.py',
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
    ckpt = _trained_in(REPO / 'configs/dsnet/dsnet_isic2017.py',
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


def test_the_demo_trains_into_a_log_folder_of_its_own(tiny_isic, tmp_path,
                                                     monkeypatch):
    """The demo's training, started in the second of another run into its
    ``--work-dir`` (a ``tools/test.py`` run there, whose folder is made
    here), shared that run's log folder (its log opened over the other's).
    It claims its own, as its final test does."""
    import os
    import shutil
    import time

    from conftest import load_tool, write_tiny_config
    from test_train_test_tools import hold_runner_clock
    demo = load_tool('demo.py')
    synthetic = tmp_path / 'synthetic'
    shutil.copytree(tiny_isic, synthetic)
    (synthetic / 'SYNTHETIC.txt').write_text('made by a test\n')
    config = write_tiny_config(tmp_path / 'tiny.py', synthetic, epochs=1)
    second = hold_runner_clock(monkeypatch)
    stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime(second))
    work_dir = tmp_path / 'w'
    (work_dir / stamp).mkdir(parents=True)
    (work_dir / stamp / f'{stamp}.log').write_text('another run\n')
    demo.main(['--config', str(config), '--work-dir', str(work_dir)])
    assert os.listdir(work_dir / stamp) == [f'{stamp}.log']
    assert (work_dir / stamp / f'{stamp}.log').read_text() == 'another run\n'
    assert 'Epoch(train)' in (work_dir / f'{stamp}_1' /
                              f'{stamp}_1.log').read_text()


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
