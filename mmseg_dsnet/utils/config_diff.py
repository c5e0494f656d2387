"""Where two config dicts differ, as dotted paths
(``model.decode_head.threshold``, ``x.pipeline[1].scale``), and the entry
at such a path."""
import re


def config_differences(given, other, path):
    """Dotted paths of the entries where two config dicts differ (a list of
    another length is one difference), in order.

    Args:
        given: A config dict (or any value).
        other: The one it is compared with.
        path (str): The path of ``given`` itself (``'model'``).

    Yields:
        str: ``model.decode_head.threshold``, ``x.pipeline[1].scale``.
    """
    if isinstance(given, dict) and isinstance(other, dict):
        for key in sorted(set(given) | set(other), key=str):
            yield from config_differences(given.get(key), other.get(key),
                                          f'{path}.{key}')
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
    for index, key in re.findall(r'\[(\d+)\]|([^.\[\]]+)', path):
        if index:
            obj = obj[int(index)] if isinstance(obj, (list, tuple)) and \
                int(index) < len(obj) else None
        else:
            obj = obj.get(key) if isinstance(obj, dict) else None
    return obj
