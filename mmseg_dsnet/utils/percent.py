"""Percentages that never read perfect when they are not (standard library
only, so the leaderboard and design tables use them without importing the
metric's torch and mmseg).

Pooled over millions of pixels, one false positive leaves specificity (and
IoU) at 99.99998 %, which plain rounding shows as 100: no error at all, in
a medical figure. These helpers round such a value to the nearest figure
below 100 (and a tiny non-zero one to the nearest above 0) instead.
"""


def percent(fraction: float, digits: int = 4) -> float:
    """``fraction`` in percent, rounded to ``digits`` decimals, but never
    to 100 when it is below 1 nor to 0 when it is above 0.

    Such a value reads ``100 - 10**-digits`` (99.9999) instead; a tiny
    non-zero one ``10**-digits``.

    Args:
        fraction (float): A ratio in [0, 1] (NaN is kept).
        digits (int): Decimals kept. Defaults to 4.

    Returns:
        float: The percentage.
    """
    return round_percent(fraction * 100, digits, below_100=fraction < 1,
                         above_0=fraction > 0)


def round_percent(value: float, digits: int = 2, below_100: bool = None,
                  above_0: bool = None) -> float:
    """A percentage rounded to ``digits`` decimals, but never to 100 when
    it is below 100 nor to 0 when it is above 0 (see :func:`percent`).

    Args:
        value (float): A percentage in [0, 100] (NaN is kept).
        digits (int): Decimals kept. Defaults to 2.
        below_100 (bool, optional): Whether the figure is imperfect;
            ``value < 100`` when None.
        above_0 (bool, optional): Whether the figure is non-zero;
            ``value > 0`` when None.

    Returns:
        float: The rounded percentage.
    """
    below_100 = value < 100 if below_100 is None else below_100
    above_0 = value > 0 if above_0 is None else above_0
    rounded = round(value, digits)
    step = 10**-digits
    if below_100 and rounded >= 100:
        return round(100 - step, digits)
    if above_0 and rounded <= 0:
        return round(step, digits)
    return rounded


def percent_text(value: float) -> str:
    """A percentage with 2 decimals for the tables, ``>99.99`` or
    ``<0.01`` where ``.2f`` would show an imperfect figure as ``100.00``
    or a non-zero one as ``0.00``."""
    text = f'{value:.2f}'
    if text == '100.00' and value < 100:
        return '>99.99'
    if text == '0.00' and value > 0:
        return '<0.01'
    return text
