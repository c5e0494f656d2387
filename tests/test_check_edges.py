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
