"""The one way messages name the first few of a list (utils/messages.py)."""
from mmseg_dsnet.utils.messages import first_few


def test_first_few_names_all_when_few():
    assert first_few(['a', 'b'], 2) == 'a, b'
    assert first_few([], 3) == ''


def test_first_few_counts_the_rest():
    """The names left out are counted, so none are taken for all."""
    assert first_few(['a', 'b', 'c', 'd'], 2) == 'a, b, ... (2 more)'
    assert first_few(list(range(7))) == '0, 1, 2, 3, 4, ... (2 more)'


def test_first_few_separator():
    assert first_few(['x=1', 'y=2', 'z=3'], 2, sep=' ') == \
        'x=1 y=2 ... (1 more)'
    assert first_few(['a', 'b'], 1, sep='; ') == 'a; ... (1 more)'


def test_bad_sample_log_names_the_first_few_the_same_way():
    """The hook's log said 'and N more files'; it now says it as every
    message does, most frequent first."""
    from mmseg_dsnet.engine.hooks.bad_sample_summary_hook import \
        BadSampleSummaryHook
    hook = BadSampleSummaryHook(max_listed=2)
    assert hook._describe(['a', 'b', 'b', 'c', 'd']) == \
        'b (x2), a, ... (2 more)'
    assert hook._describe(['a']) == 'a'
