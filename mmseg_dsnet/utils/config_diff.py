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
            yield from config_differences(given.get(key), other.get(key),
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


def value_at(obj, path):
    """The entry of a config dict at a path of :func:`config_differences`,
    or None where there is none."""
    for bracket, name in _STEP.findall(path):
        if name:
            obj = obj.get(name) if isinstance(obj, dict) else None
            continue
        key = ast.literal_eval(bracket)
        if isinstance(obj, (list, tuple)) and isinstance(key, int):
            obj = obj[key] if 0 <= key < len(obj) else None
        else:
            obj = obj.get(key) if isinstance(obj, dict) else None
    return obj
