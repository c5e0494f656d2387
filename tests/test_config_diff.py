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
