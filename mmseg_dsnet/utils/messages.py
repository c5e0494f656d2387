"""Wording shared by the package's messages (standard library only, so any
module can use it without importing torch or mmseg)."""
import difflib
from typing import Sequence


def first_few(items: Sequence, shown: int = 5, sep: str = ', ') -> str:
    """The first ``shown`` of ``items``, joined, and how many more there
    are: ``'a, b, c, ... (4 more)'``, or ``'a, b'`` when all are shown.

    Every message that names some of a long list says it this way; the
    count matters: a reader must not take the names for all there are.

    Args:
        items (Sequence): What to name (each written with ``str``).
        shown (int): How many to name at most. Defaults to 5.
        sep (str): What goes between two of them (and before the
            ``...``). Defaults to ``', '``.

    Returns:
        str: The names and, when some are left out, their count.
    """
    names = sep.join(str(item) for item in items[:shown])
    if len(items) <= shown:
        return names
    return f'{names}{sep}... ({len(items) - shown} more)'


def counted(count: int, noun: str, plural: str = None) -> str:
    """A count and its noun, singular for one: ``'1 image'``,
    ``'2 images'``, ``'0 images'``. Every message that counts something
    says it this way (``'1 images'`` read as a slip, or a wrong count).

    Args:
        count (int): How many.
        noun (str): The noun in the singular.
        plural (str, optional): Its plural. Defaults to ``noun + 's'``.

    Returns:
        str: E.g. ``'1 image'``.
    """
    return f'{count} {noun if count == 1 else plural or noun + "s"}'


def did_you_mean(name, known: Sequence, cutoff: float = 0.6) -> str:
    """``"; did you mean 'x'?"`` naming the entry of ``known`` closest to
    ``name`` (difflib's ratio at least ``cutoff``), or ``''`` when none is
    close: the hint every refusal of a misspelt key ends its clause with.

    Args:
        name: The key given (written with ``str``).
        known (Sequence[str]): The keys read.
        cutoff (float): How close a match must be, from 0 to 1.
            Defaults to 0.6, difflib's own.

    Returns:
        str: The hint, or ``''``.
    """
    close = difflib.get_close_matches(str(name), list(known), n=1,
                                      cutoff=cutoff)
    return f'; did you mean {close[0]!r}?' if close else ''


def config_name(cfg, unnamed: str = 'the config') -> str:
    """How a message names a config: the file it was read from, or
    ``unnamed`` for one built from a dict (mmengine's ``Config.filename``
    is then None, which ``getattr(cfg, 'filename', default)`` returns as
    is).

    Args:
        cfg: A ``Config``, or any object with or without ``filename``.
        unnamed (str): The name of a config read from no file. Defaults to
            ``'the config'``.

    Returns:
        str: E.g. ``'configs/dsnet/dsnet_isic2017.py'``.
    """
    return str(getattr(cfg, 'filename', None) or unnamed)
