"""The JSON records the tools write and the leaderboard reads: one reader,
one (atomic) writer, and the metrics record of a test."""
import json
import math
import os.path as osp

from mmseg_dsnet.datasets.synthetic_fallback import data_provenance
from mmseg_dsnet.utils.errors import NotJsonError, UserError
from mmseg_dsnet.utils.fileio import atomic_write, json_text


def load_json(path):
    """The object a JSON file holds.

    Raises:
        NotJsonError: The file is not JSON (the message names it; json's
            own error names only a line and column).
    """
    # UTF-8, as write_json and the converter write: not the locale's
    # encoding (cp1252 read a non-ASCII path as other characters).
    with open(path, encoding='utf-8') as f:
        try:
            return json.load(f)
        except ValueError as err:
            raise NotJsonError(f'{path} is not a JSON file ({err})') from None


def is_number(value):
    """Whether a JSON value is a number (``true`` and ``false`` are not,
    though Python counts them as ints)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value):
    """Whether a JSON value is a number that is a figure: not NaN or
    infinity, which Python's ``json`` reads from ``NaN`` / ``Infinity``
    (files written before records were written as strict JSON)."""
    return is_number(value) and math.isfinite(value)


def write_json(obj, path):
    """Write ``obj`` as indented JSON (UTF-8, a final newline) so that
    ``path`` is either the old file or the complete new one."""
    atomic_write(json_text(obj, indent=2, ensure_ascii=False) + '\n', path)


def read_last_checkpoint(work_dir):
    """The checkpoint a work dir's ``last_checkpoint`` file names, or None
    when there is no such file."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return f.read().strip()


def previous_metrics_source(path, option='--metrics-out'):
    """What the file ``path`` that a new test's metrics replace held
    (``the metrics of <checkpoint> on <split file>``), so that the
    replacement is said; None when there is no such file.

    Raises:
        UserError: ``path`` holds something else. Only an earlier test's
            metrics are replaced: ``--metrics-out`` naming the checkpoint
            turned the weights into a metrics file after the evaluation.
    """
    if not osp.isfile(path):
        return None
    try:
        old = load_json(path)
        return f'the metrics of {old["checkpoint"]} on {old["split_file"]}'
    except (OSError, NotJsonError, KeyError, TypeError, ValueError):
        raise UserError(
            f'{option} {path} holds a file that is not a metrics record '
            '(tools/test.py replaces only the metrics of an earlier test); '
            f'give {option} a file name of its own') from None


def metrics_record(config, checkpoint, metrics, dataset_cfg, images,
                   test_time_augmentation=False, cfg_options=None):
    """What ``tools/test.py`` writes to ``test_metrics.json`` (and the
    leaderboard reads): the metrics and the data they were computed on.

    Args:
        config (str): The config file.
        checkpoint (str | None): The evaluated checkpoint.
        metrics (dict): The evaluator's figures.
        dataset_cfg (dict): The evaluating loader's dataset config.
        images (int): Number of images evaluated.
        test_time_augmentation (bool): Whether the figures average
            augmented views (``tools/test.py --tta``). Default: False.
        cfg_options (dict, optional): The ``--cfg-options`` the config was
            tested with, so that figures of a changed model or evaluator
            do not pass for the config's own.

    Returns:
        dict: ``config``, ``checkpoint``, ``metrics``,
        ``test_time_augmentation``, ``cfg_options`` and the keys of
        :func:`~mmseg_dsnet.datasets.synthetic_fallback.data_provenance`.
    """
    return dict(config=config, checkpoint=checkpoint,
                metrics={k: float(v) for k, v in metrics.items()},
                test_time_augmentation=bool(test_time_augmentation),
                cfg_options=dict(cfg_options or {}),
                **data_provenance(dataset_cfg, images))
