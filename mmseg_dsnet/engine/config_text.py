"""A run's config text, formatted once.

mmengine's ``Config.pretty_text`` formats the whole config with yapf each
time it is read (about a second for a training config on one core), and a
Runner reads it for its environment log, its config dump, the visualizer,
a hook before the run and every checkpoint it saves: a short run spends
more time formatting its config than training. :class:`FormattedOnceConfig`
formats each distinct text once, in the runs of the package's runner
(:class:`~mmseg_dsnet.engine.log_dir.SeparateLogDirRunner`); mmengine's
``Config`` itself is left as it is.
"""
import copy
from collections import OrderedDict

from mmengine.config import Config

#: Formatted texts kept per process (a run reads one or two).
KEPT_TEXTS = 16


class FormattedOnceConfig(Config):
    """A :class:`~mmengine.config.Config` whose ``pretty_text`` is what
    mmengine's gives, formatted once per distinct unformatted text: the
    text mmengine builds before yapf is the key, so a config changed
    after a read (``cfg.work_dir = ...``) is formatted again."""

    _formatted = OrderedDict()

    @property
    def pretty_text(self) -> str:
        if not self._format_python_code:
            return super().pretty_text
        # The text mmengine builds before yapf formats it: the key.
        object.__setattr__(self, '_format_python_code', False)
        try:
            unformatted = super().pretty_text
        finally:
            object.__setattr__(self, '_format_python_code', True)
        formatted = self._formatted.get(unformatted)
        if formatted is None:
            formatted = super().pretty_text
            self._formatted[unformatted] = formatted
            while len(self._formatted) > KEPT_TEXTS:
                self._formatted.popitem(last=False)
        return formatted


def formatting_once(cfg):
    """A copy of ``cfg`` whose ``pretty_text`` is formatted once per text
    (:class:`FormattedOnceConfig`); anything else is returned as it is.

    Args:
        cfg (Config | dict | None): A runner's config.

    Returns:
        FormattedOnceConfig | object: The copy, or ``cfg``.
    """
    if not isinstance(cfg, Config) or isinstance(cfg, FormattedOnceConfig):
        return cfg
    # A shallow copy shares the config's contents (Runner deep-copies
    # them); only the copy's class differs, so the caller's object keeps
    # mmengine's class.
    once = copy.copy(cfg)
    # Config.__setattr__ writes config keys.
    object.__setattr__(once, '__class__', FormattedOnceConfig)
    return once
