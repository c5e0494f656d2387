"""Count and log the bad samples a dataset skipped (``on_bad_sample='skip'``)
at the end of each epoch."""
import logging
from collections import Counter

from mmengine.dist import all_gather_object, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from mmseg_dsnet.datasets.sample_checks import SKIPPED_KEY
from mmseg_dsnet.utils.errors import UserError, mark_every_rank
from mmseg_dsnet.utils.messages import counted, first_few


def skipped_paths(data_batch):
    """Paths of the bad samples that were replaced to make ``data_batch``
    (the datasets record them in each sample's metainfo)."""
    samples = data_batch.get('data_samples') if isinstance(
        data_batch, dict) else None
    found = []
    for sample in samples or []:
        meta = getattr(sample, 'metainfo', None)
        if meta is None and isinstance(sample, dict):
            meta = sample
        found.extend((meta or {}).get(SKIPPED_KEY, []))
    return found


def replaced_validation_error(when, paths, max_listed=10):
    """The error that stops a training run whose validation used bad
    samples replaced by others (``on_bad_sample='skip'``): its figures would
    choose the best checkpoint, yet are not over the whole split.

    Args:
        when (str): When the validation ran (``'after epoch 3'``).
        paths (list[str]): The replaced samples' files, one per
            replacement.
        max_listed (int): How many distinct paths to name. Defaults to 10.

    Returns:
        UserError: Naming the files and what to do.
    """
    counts = Counter(paths)
    named = first_few([f'{path} (x{n})' if n > 1 else path
                       for path, n in counts.most_common()], max_listed)
    one = len(counts) == 1
    return mark_every_rank(UserError(
        f'Validation {when}: {counted(len(counts), "bad sample")} '
        f'{"was" if one else "were"} replaced by '
        f'{"another sample" if one else "other samples"} '
        f"(on_bad_sample='skip'): {named}. Its figures are "
        'therefore not over the whole validation split; they were not '
        'recorded and chose no best checkpoint. Fix or remove '
        + ('the file (and its line' if one else 'the files (and their lines')
        + ' in the split file), then train again or '
        '--resume (the checkpoints saved so far are kept)'))


def replaced_test_sample_error(path, what='Test'):
    """The error that stops a test (or an analysis that scores the test
    loader: ``threshold_sweep.py``, ``error_by_position.py``) at a bad
    sample replaced by the next one (``on_bad_sample='skip'``).

    Args:
        path (str): The replaced sample's file.
        what (str): What stops, first in the message.

    Returns:
        UserError: Naming the file and what to do.
    """
    return mark_every_rank(UserError(
        f'{what}: the bad sample {path} was replaced by the next '
        "sample (on_bad_sample='skip'), so that one would be scored "
        f'twice and {path} not at all; a test scores every image '
        'of its split. Fix or remove the file (and its line in the '
        "split file); nothing was reported"))


def check_no_replaced_sample(data_batch, what='Test'):
    """Raise :func:`replaced_test_sample_error` for the first bad sample
    replaced to make ``data_batch``, if any (this process only)."""
    paths = skipped_paths(data_batch)
    if paths:
        raise replaced_test_sample_error(paths[0], what)


@HOOKS.register_module()
class BadSampleSummaryHook(Hook):
    """Log how many bad samples (unreadable, missing or truncated images and
    masks) were skipped in each training epoch, stop a validation that used
    replacements before its figures are logged or pick the best checkpoint,
    and stop a test at the first one
    (:class:`~mmseg_dsnet.utils.errors.UserError`). Counts are pooled over
    all ranks and workers.

    Args:
        max_listed (int): How many distinct paths to name in the log.
            Defaults to 10.
    """

    # Before LoggerHook (BELOW_NORMAL) and CheckpointHook (VERY_LOW): a
    # validation over replaced samples is refused before its figures are
    # logged or choose the best checkpoint.
    priority = 'NORMAL'

    def __init__(self, max_listed=10):
        self.max_listed = max_listed
        self._paths = dict(train=[], val=[], test=[])
        self.history = []  # (epoch, count) of the training epochs

    def _gather(self, mode):
        paths = self._paths[mode]
        if get_world_size() > 1:
            paths = [p for part in all_gather_object(paths) for p in part]
        self._paths[mode] = []
        return paths

    def _describe(self, paths):
        counts = Counter(paths)
        return first_few([f'{path} (x{n})' if n > 1 else path
                          for path, n in counts.most_common()],
                         self.max_listed)

    def before_train_epoch(self, runner) -> None:
        self._paths['train'] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self._paths['train'] += skipped_paths(data_batch)

    def after_train_epoch(self, runner) -> None:
        paths = self._gather('train')
        epoch = runner.epoch + 1
        self.history.append((epoch, len(paths)))
        runner.message_hub.update_info('bad_samples_skipped', len(paths))
        if paths:
            print_log(
                f'Epoch {epoch}: skipped {len(paths)} bad training samples '
                f'(replaced by other samples): {self._describe(paths)}',
                logger='current', level=logging.WARNING)
        else:
            print_log(f'Epoch {epoch}: skipped 0 bad training samples.',
                      logger='current')

    def before_val_epoch(self, runner) -> None:
        self._paths['val'] = []

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None) -> None:
        self._paths['val'] += skipped_paths(data_batch)

    def after_val_epoch(self, runner, metrics=None) -> None:
        # Validation figures choose the best checkpoint (save_best), the
        # model a user keeps: over a set with a sample scored twice and a
        # bad one not at all they are not the split's, and a warning beside
        # them did not stop them being logged and picking best_*.pth. The
        # paths are pooled over the ranks first, so every rank stops.
        paths = self._gather('val')
        if paths:
            when = (f'after epoch {runner.epoch}' if runner.epoch
                    else f'at iteration {runner.iter}')
            raise replaced_validation_error(when, paths, self.max_listed)

    def before_test_epoch(self, runner) -> None:
        self._paths['test'] = []

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        # Test figures are the result itself: a replaced sample would be
        # scored twice and the bad one not at all, under the split's name
        # and image count (with only a warning in the log to say so).
        # Pooled over the ranks at every iteration (each rank runs as many:
        # the sampler pads the split), so that all stop together: a rank
        # that stopped alone would leave the others in a collective, ended
        # by torchrun with a gloo traceback (NCCL: a hang until its
        # timeout).
        paths = skipped_paths(data_batch)
        if get_world_size() > 1:
            paths = [p for part in all_gather_object(paths) for p in part]
        if paths:
            raise replaced_test_sample_error(paths[0])

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._warn_eval('test', 'Test')

    def _warn_eval(self, mode, name):
        paths = self._gather(mode)
        if paths:
            one = len(paths) == 1
            print_log(
                f'{name}: {counted(len(paths), "bad sample")} '
                f'{"was" if one else "were"} replaced by '
                f'{"another sample" if one else "other samples"}, so the '
                'metrics are NOT over the full set: '
                f'{self._describe(paths)}',
                logger='current', level=logging.WARNING)
