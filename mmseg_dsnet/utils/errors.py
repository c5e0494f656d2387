"""The base class of the faults a user can fix, and how a tool reports
one (light: the data tools use it before torch and mmcv are installed)."""
import os
import sys
import traceback

#: Set (to anything) to show a user error's traceback above its line.
TRACEBACK_VARIABLE = 'MMSEG_DSNET_TRACEBACK'


def print_user_error(error, message=None):
    """Print ``ERROR: <message>`` to stderr, the one line a tool reports a
    user error with; with ``MMSEG_DSNET_TRACEBACK`` set, the error's
    traceback first (besides the line, not instead of it).

    Args:
        error (BaseException): The error.
        message (str | None): The text of the line (default ``str(error)``).
    """
    _close_progress_bars()
    if os.environ.get(TRACEBACK_VARIABLE):
        traceback.print_exception(error)
    print(f'ERROR: {error if message is None else message}',
          file=sys.stderr, flush=True)


def _close_progress_bars():
    """End the progress bars still drawn (a loop left by the error, its
    bar not closed), so that the ``ERROR:`` line starts a line of its own
    and is the last one: it was appended to the bar's line
    (``50%|#####     | 5/10 [...]ERROR: ...``), and the bar's final redraw,
    when the error was collected, came after it."""
    tqdm = sys.modules.get('tqdm')  # only if a bar can have been made
    if tqdm is None:
        return
    for bar in list(getattr(tqdm.tqdm, '_instances', ())):
        try:
            bar.close()
        except Exception:  # noqa: BLE001  (the error is the one to report)
            pass


class UserError(Exception):
    """A fault the user can fix (a missing input, a bad argument), raised
    with a message that says what to do. The tools report it as one
    ``ERROR:`` line and exit 2
    (:func:`mmseg_dsnet.engine.cli_errors.run_reporting_user_errors`)."""


def mark_every_rank(error):
    """Mark ``error`` as raised alike by every process of a distributed run
    (after its cause was pooled over them), so that only rank 0 prints its
    line: one ``ERROR:`` line, not one per process.

    Args:
        error (UserError): The error.

    Returns:
        UserError: ``error``.
    """
    error.on_every_rank = True
    return error


def reported_by_this_rank(error):
    """Whether this process prints ``error``'s line: any process its own
    errors, only rank 0 one that every rank raised
    (:func:`mark_every_rank`)."""
    return not getattr(error, 'on_every_rank', False) or \
        os.environ.get('RANK', '0') == '0'


class ModelArgumentError(UserError, ValueError):
    """A model component given an argument it cannot use (a config value out
    of range or inconsistent with another), raised when it is built. Also a
    ``ValueError``, as for any bad argument."""


class NotJsonError(UserError, ValueError):
    """A file read as a JSON record that does not hold JSON (the message
    names the file). Also a ``ValueError``, as json's own error is."""


class ChildToolError(UserError):
    """A tool that another tool runs (``leaderboard.py run`` runs
    ``train.py`` and ``test.py``) failed; it already printed what went wrong.
    The caller exits with the child's status, so a crash (1) is not
    reported as a user error (2).

    Args:
        message (str): What failed.
        exit_code (int): The child's exit status (``128 + N`` for a child
            ended by signal N).
    """

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


class SizeMismatchError(UserError, ValueError):
    """A prediction and its ground truth differ in size.

    MMSegmentation predicts at the original image size, so the ground truth
    differs when the test pipeline resized it (``LoadAnnotations`` before
    ``Resize``); :data:`SIZE_MISMATCH_FIX` says so.
    """


#: How to fix the test pipeline behind a :class:`SizeMismatchError`.
SIZE_MISMATCH_FIX = (
    'predictions come at the original image size, so the test pipeline '
    'must not resize the ground truth: put LoadAnnotations after Resize (as '
    'configs/_base_/datasets/isic_256x256.py does)')
