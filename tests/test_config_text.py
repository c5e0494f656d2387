"""A run's config text is formatted once per distinct text
(mmseg_dsnet/engine/config_text.py), and reads as mmengine's."""
import copy
from collections import OrderedDict

from conftest import REPO
from mmengine.config import Config

from mmseg_dsnet.engine import config_text
from mmseg_dsnet.engine.config_text import (FormattedOnceConfig,
                                            formatting_once)


def _counting_yapf(monkeypatch):
    """Count mmengine's yapf calls (``FormatCode``)."""
    import mmengine.config.config as mmengine_config
    calls = []
    real = mmengine_config.FormatCode

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(mmengine_config, 'FormatCode', counting)
    monkeypatch.setattr(FormattedOnceConfig, '_formatted', OrderedDict())
    return calls


def test_the_text_is_mmengines_formatted_once(monkeypatch):
    cfg = Config.fromfile(str(REPO / 'configs/dsnet/dsnet_isic2017.py'))
    expected = cfg.pretty_text
    assert cfg.dump() == expected
    calls = _counting_yapf(monkeypatch)
    once = formatting_once(cfg)
    assert isinstance(once, FormattedOnceConfig)
    # The caller's object keeps mmengine's class.
    assert type(cfg) is Config
    assert [once.pretty_text for _ in range(3)] == [expected] * 3
    assert once.dump() == expected
    # A Runner deep-copies its config: the copy formats no more.
    assert copy.deepcopy(once).pretty_text == expected
    assert len(calls) == 1


def test_a_changed_config_is_formatted_again(monkeypatch):
    cfg = Config.fromfile(str(REPO / 'configs/dsnet/dsnet_isic2017.py'))
    calls = _counting_yapf(monkeypatch)
    once = formatting_once(cfg)
    before = once.pretty_text
    once.work_dir = 'work_dirs/elsewhere'
    after = once.pretty_text
    assert "work_dir = 'work_dirs/elsewhere'" in after
    assert "work_dir = 'work_dirs/elsewhere'" not in before
    assert len(calls) == 2
    # The same text as mmengine's of the changed config.
    changed = Config.fromfile(str(REPO / 'configs/dsnet/dsnet_isic2017.py'))
    changed.work_dir = 'work_dirs/elsewhere'
    assert after == changed.pretty_text


def test_only_a_few_texts_are_kept(monkeypatch):
    monkeypatch.setattr(config_text, 'KEPT_TEXTS', 2)
    monkeypatch.setattr(FormattedOnceConfig, '_formatted', OrderedDict())
    for number in range(4):
        formatting_once(Config(dict(number=number))).pretty_text
    assert list(FormattedOnceConfig._formatted.values()) == [
        'number = 2\n', 'number = 3\n']


def test_other_values_are_given_back_as_they_are():
    once = formatting_once(Config(dict(a=1)))
    assert formatting_once(once) is once
    plain = dict(a=1)
    assert formatting_once(plain) is plain and formatting_once(None) is None
