"""mmseg_dsnet.utils.percent: reported percentages never read perfect (or
zero) when they are not, and are otherwise rounded as asked."""
from mmseg_dsnet.utils.percent import percent, percent_text, round_percent


def test_round_percent_keeps_two_decimals_by_default():
    """The leaderboard's records round with the default: 2 decimals."""
    assert round_percent(81.0527) == 81.05
    assert round_percent(99.996) == 99.99  # not 100.0
    assert round_percent(0.004) == 0.01  # not 0.0


def test_percent_keeps_four_decimals_by_default():
    assert percent(0.810527) == 81.0527
    assert percent(0.5) == 50.0


def test_an_exact_zero_stays_zero_in_the_tables():
    """Only a non-zero figure that ``.2f`` shows as 0.00 reads ``<0.01``;
    a true zero (no lesion pixel found) stays ``0.00``, as a true 100 stays
    ``100.00``."""
    assert percent_text(0.0) == '0.00'
    assert percent_text(0.004) == '<0.01'
    assert percent_text(0.005) == '0.01'  # 0.005 is just above in binary
    assert percent_text(0.05) == '0.05'
    assert percent_text(99.996) == '>99.99'
    assert percent_text(99.99) == '99.99'
