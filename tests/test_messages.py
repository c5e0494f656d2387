"""The one way messages name the first few of a list (utils/messages.py)."""
import pytest

from mmseg_dsnet.utils.messages import config_name, counted, first_few


def test_a_count_of_one_takes_the_singular():
    assert counted(1, 'image') == '1 image'
    assert [counted(n, 'image') for n in (0, 2)] == ['0 images', '2 images']
    assert counted(3, 'pass', 'passes') == '3 passes'
    assert counted(1, 'pass', 'passes') == '1 pass'


def test_a_config_is_named_by_its_file_or_as_unnamed(tmp_path):
    """A config built from a dict has ``filename`` None, which
    ``getattr(cfg, 'filename', 'the config')`` returned as the name."""
    from mmengine.config import Config
    path = tmp_path / 'net.py'
    path.write_text('model = dict(type="X")\n')
    assert config_name(Config.fromfile(str(path))) == str(path)
    unnamed = Config(dict(model=dict(type='X')))
    assert unnamed.filename is None
    assert config_name(unnamed) == 'the config'
    assert config_name(unnamed, 'CONFIG') == 'CONFIG'
    assert config_name(dict(model=None)) == 'the config'


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


def test_bad_sample_hook_counts_files_and_names_the_epoch():
    """The hook on real data samples: a validation over replaced samples
    stops naming each file once, most replaced first, with the epoch (or
    the iteration of an iteration loop) it ran after; a training epoch
    logs its own replacements only, counted again from 0."""
    from types import SimpleNamespace

    from mmengine.logging import MessageHub
    from mmseg.structures import SegDataSample

    from mmseg_dsnet.datasets.sample_checks import SKIPPED_KEY
    from mmseg_dsnet.engine.hooks.bad_sample_summary_hook import (
        BadSampleSummaryHook, check_no_replaced_sample,
        replaced_validation_error)
    from mmseg_dsnet.utils.errors import UserError

    def batch(*skipped):
        samples = [SegDataSample(metainfo={SKIPPED_KEY: [path]})
                   for path in skipped] + [SegDataSample()]
        return dict(inputs=[], data_samples=samples)

    assert str(replaced_validation_error('after epoch 1', ['b', 'a', 'a'],
                                         max_listed=1)).startswith(
        'Validation after epoch 1: 2 bad samples were replaced by other '
        "samples (on_bad_sample='skip'): a (x2), ... (1 more). Its figures")
    assert str(replaced_validation_error('after epoch 1', ['a', 'a'])) == (
        'Validation after epoch 1: 1 bad sample was replaced by another '
        "sample (on_bad_sample='skip'): a (x2). Its figures are therefore "
        'not over the whole validation split; they were not recorded and '
        'chose no best checkpoint. Fix or remove the file (and its line in '
        'the split file), then train again or --resume (the checkpoints '
        'saved so far are kept)')
    hook = BadSampleSummaryHook(max_listed=3)
    assert hook._describe(['a', 'b', 'b', 'c', 'd']) == \
        'b (x2), a, c, ... (1 more)'
    hub = MessageHub.get_instance('test_bad_sample_hook')
    for epoch, iteration, when in ((3, 30, 'after epoch 3'),
                                   (0, 30, 'at iteration 30')):
        runner = SimpleNamespace(epoch=epoch, iter=iteration,
                                 message_hub=hub)
        hook.before_val_epoch(runner)
        hook.after_val_iter(runner, 0, batch('x.jpg', 'y.jpg'))
        hook.after_val_iter(runner, 1, batch('y.jpg'))
        with pytest.raises(UserError, match=(
                f'^Validation {when}: 2 bad samples were replaced by other '
                r"samples \(on_bad_sample='skip'\): y\.jpg \(x2\), "
                r'x\.jpg\. ')):
            hook.after_val_epoch(runner)
    runner = SimpleNamespace(epoch=0, iter=0, message_hub=hub)
    for epoch, batches in ((0, [batch('a.png', 'b.png'), batch('c.png')]),
                           (1, [batch('a.png')]), (2, [batch()])):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        for index, data in enumerate(batches):
            hook.after_train_iter(runner, index, data)
        hook.after_train_epoch(runner)
    assert hook.history == [(1, 3), (2, 1), (3, 0)]
    assert hub.get_info('bad_samples_skipped') == 0
    # A clean validation passes.
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0, batch())
    hook.after_val_epoch(runner)
    # A test (or a sweep over the test loader) stops at its first one.
    hook.after_test_iter(runner, 0, batch())
    with pytest.raises(UserError, match=r'^Test: the bad sample z\.jpg was '):
        hook.after_test_iter(runner, 1, batch('z.jpg'))
    check_no_replaced_sample(batch())
    with pytest.raises(UserError, match=r'^Threshold sweep: the bad sample '
                       r'z\.jpg was replaced by the next sample'):
        check_no_replaced_sample(batch('z.jpg'), 'Threshold sweep')
