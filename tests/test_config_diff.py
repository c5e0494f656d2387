"""mmseg_dsnet.utils.config_diff: the paths of config differences and the
values at them."""
from mmseg_dsnet.engine.resume_check import resume_config_changes
from mmseg_dsnet.utils.config_diff import config_differences, value_at


def test_a_key_that_is_not_a_plain_name_is_found_at_its_path():
    """``paramwise_cfg.custom_keys`` names parameters with dots
    (``'backbone.stem'``): the difference was reported at
    ``...custom_keys.backbone.stem.lr_mult``, where nothing is, so a
    refused resume said ``lr_mult=None (the checkpoint's: None)`` for a
    learning-rate multiplier changed from 1.0 to 0.1 (and an int key
    likewise)."""
    def cfg(mult, name):
        return {'optim_wrapper': dict(paramwise_cfg=dict(
            custom_keys={'backbone.stem': dict(lr_mult=mult)})),
            'model': dict(tags={3: name})}

    given, before = cfg(0.1, 'a'), cfg(1.0, 'b')
    paths = list(config_differences(given, before, 'cfg'))
    assert paths == ["cfg.model.tags[3]",
                     "cfg.optim_wrapper.paramwise_cfg.custom_keys"
                     "['backbone.stem'].lr_mult"]
    assert [value_at({'cfg': given}, p) for p in paths] == ['a', 0.1]
    assert [value_at({'cfg': before}, p) for p in paths] == ['b', 1.0]
    assert resume_config_changes(given, before) == [
        "model.tags[3]='a' (the checkpoint's: 'b')",
        "optim_wrapper.paramwise_cfg.custom_keys['backbone.stem'].lr_mult"
        "=0.1 (the checkpoint's: 1.0)"]


def test_plain_paths_are_unchanged():
    given = {'x': {'pipeline': [dict(scale=(1, 2)), dict(scale=(3, 4))]}}
    other = {'x': {'pipeline': [dict(scale=(1, 2)), dict(scale=(3, 5))]}}
    assert list(config_differences(given, other, 'cfg')) == [
        'cfg.x.pipeline[1].scale[1]']
    assert value_at({'cfg': given}, 'cfg.x.pipeline[1].scale[1]') == 4
    assert value_at(given, 'x.pipeline[7]') is None


def test_a_key_set_to_none_differs_from_a_key_left_out():
    """Both read as None, so ``--resume --cfg-options
    model.backbone.act_cfg=None`` (no activations; a missing ``act_cfg``
    is ReLU) continued the run with no difference found, as did the check
    that a checkpoint runs in the network it was trained in."""
    before = {'model': {'backbone': {'type': 'DSNet'}}}
    given = {'model': {'backbone': {'type': 'DSNet', 'act_cfg': None}}}
    assert list(config_differences(given, before, 'cfg')) == [
        'cfg.model.backbone.act_cfg']
    assert list(config_differences(before, given, 'cfg')) == [
        'cfg.model.backbone.act_cfg']
    assert resume_config_changes(given, before) == [
        "model.backbone.act_cfg=None (the checkpoint's: <not set>)"]
    # Equal configs, None values included, still do not differ.
    assert list(config_differences(given, dict(given), 'cfg')) == []
    assert value_at(given, 'model.backbone.act_cfg', 'x') is None
    assert value_at(before, 'model.backbone.act_cfg', 'x') == 'x'


def test_the_network_check_names_a_key_left_out(tmp_path):
    """``check_trained_model``: a config that sets ``act_cfg=None`` where
    the training config left it out ran the weights in a network without
    activations, no error."""
    import pytest
    import torch
    from mmengine.config import Config

    from mmseg_dsnet.apis.released_model import check_trained_model
    from mmseg_dsnet.utils.errors import UserError
    trained = "model = dict(type='EncoderDecoder', backbone=dict(type='DSNet'))"
    checkpoint = tmp_path / 'c.pth'
    torch.save({'state_dict': {}, 'meta': {'cfg': trained}}, checkpoint)
    cfg = Config(dict(model=dict(type='EncoderDecoder',
                                 backbone=dict(type='DSNet', act_cfg=None))))
    with pytest.raises(UserError, match=r'model\.backbone\.act_cfg is '
                       r"<not set> in its training config \(meta\['cfg'\]\), "
                       'None in the config'):
        check_trained_model(cfg, 'x.py', str(checkpoint), 'advice')


def test_a_list_of_another_length_is_one_difference_at_the_list():
    """A pipeline with a step added or dropped differs at the list itself
    (its elements cannot be paired up), both ways round."""
    given = {'x': {'pipeline': [dict(type='A'), dict(type='B')]}}
    other = {'x': {'pipeline': [dict(type='A')]}}
    assert list(config_differences(given, other, 'cfg')) == [
        'cfg.x.pipeline']
    assert list(config_differences(other, given, 'cfg')) == [
        'cfg.x.pipeline']
    assert list(config_differences({'x': []}, {'x': [1]}, 'cfg')) == [
        'cfg.x']


def test_a_value_set_to_none_differs_from_a_value():
    """``threshold=None`` (the head's default) against ``threshold=0.3``,
    both ways round."""
    assert list(config_differences({'t': None}, {'t': 0.3}, 'cfg')) == [
        'cfg.t']
    assert list(config_differences({'t': 0.3}, {'t': None}, 'cfg')) == [
        'cfg.t']


def test_value_at_an_index_one_past_the_end_is_the_default():
    """Index ``len`` is past the end of a list (index ``len - 1`` is its
    last entry): the default, not an IndexError."""
    given = {'x': {'pipeline': [dict(scale=1), dict(scale=2)]}}
    assert value_at(given, 'x.pipeline[1].scale') == 2
    assert value_at(given, 'x.pipeline[2]', 'none') == 'none'
    assert value_at(given, 'x.pipeline[2].scale', 'none') == 'none'
    assert value_at(given, 'x.pipeline[-1]', 'none') == 'none'


def test_a_negative_int_key_is_found_at_its_path():
    """An int key below 0 is written ``[-1]`` and read back as that int,
    not as the text ``'-1'``; a list has no entry at ``[-1]``."""
    given, other = {'tags': {-1: 'a'}}, {'tags': {-1: 'b'}}
    paths = list(config_differences(given, other, 'cfg'))
    assert paths == ['cfg.tags[-1]']
    assert value_at({'cfg': given}, paths[0]) == 'a'
    assert value_at({'cfg': {'tags': ['x', 'y']}}, 'cfg.tags[-1]', 'none') \
        == 'none'
