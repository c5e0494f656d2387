"""Where two config dicts differ, as dotted paths
(``model.decode_head.threshold``, ``x.pipeline[1].scale``), and the entry
at such a path."""
import ast
import re

# A key written after a dot; any other (``'backbone.stem'`` in
# ``paramwise_cfg.custom_keys``, an int key) is written in brackets,
# ``custom_keys['backbone.stem']``, so that :func:`value_at` finds it.
_PLAIN_KEY = re.compile(r'[^.\[\]\'"]+$')
_STEP = re.compile(r"\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|-?\d+)\]"
                   r'|([^.\[\]]+)')


def _child(path, key):
    """The path of the entry ``key`` of the dict at ``path``."""
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return f'{path}.{key}'
    return f'{path}[{key!r}]'


def config_differences(given, other, path):
    """Dotted paths of the entries where two config dicts differ (a list of
    another length is one difference), in order.

    Args:
        given: A config dict (or any value).
        other: The one it is compared with.
        path (str): The path of ``given`` itself (``'model'``).

    Yields:
        str: ``model.decode_head.threshold``, ``x.pipeline[1].scale``,
        ``x.custom_keys['backbone.stem'].lr_mult`` (a key that is not a
        plain name is quoted).
    """
    if isinstance(given, dict) and isinstance(other, dict):
        for key in sorted(set(given) | set(other), key=str):
            # A key set to None is not a key left out: the component then
            # takes its default (``act_cfg=None`` builds no activations,
            # where a missing ``act_cfg`` is ReLU), and both read as None.
            if (key in given) != (key in other):
                yield _child(path, key)
                continue
            yield from config_differences(given[key], other[key],
                                          _child(path, key))
    elif isinstance(given, (list, tuple)) and isinstance(other,
                                                         (list, tuple)):
        if len(given) != len(other):
            yield path
            return
        for index, (a, b) in enumerate(zip(given, other)):
            yield from config_differences(a, b, f'{path}[{index}]')
    elif given != other:
        yield path


class _NotSet:
    """What :func:`value_at` gives for an entry a config leaves out, told
    apart from one set to None; its repr says so in messages."""

    def __repr__(self):
        return '<not set>'


#: The ``default`` of :func:`value_at` for messages: ``<not set>``.
NOT_SET = _NotSet()

#: The ``training_cfg`` a check or loader is given when its caller has not
#: read the checkpoint's training config (None: it has none): the callee
#: reads it itself. Kept here, a module that imports nothing of the
#: package, so that loaders of every layer can default to it.
UNREAD = object()


def value_at(obj, path, default=None):
    """The entry of a config dict at a path of :func:`config_differences`.

    Args:
        obj: The config dict.
        path (str): The path.
        default: What to give where there is no entry. Default: None
            (:data:`NOT_SET` tells a missing entry from one set to None).
    """
    for bracket, name in _STEP.findall(path):
        if name:
            key = name
        else:
            key = ast.literal_eval(bracket)
        if isinstance(obj, (list, tuple)) and isinstance(key, int) and \
                not name:
            if not 0 <= key < len(obj):
                return default
            obj = obj[key]
        elif isinstance(obj, dict) and key in obj:
            obj = obj[key]
        else:
            return default
    return obj
