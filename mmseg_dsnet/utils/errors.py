"""The base class of the faults a user can fix, and how a tool reports
one (light: the data tools use it before torch and mmcv are installed)."""
import os
import os.path as osp
import sys
import traceback

from .paths import REPO_ROOT

#: Set (to anything) to show a user error's traceback above its line.
TRACEBACK_VARIABLE = 'MMSEG_DSNET_TRACEBACK'

#: The line of a Ctrl-C that comes while a tool loads its libraries.
STARTUP_INTERRUPT = ('interrupted (Ctrl-C) while the tool was starting '
                     '(loading its libraries); nothing was done')


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


def stops_reported_by_launcher():
    """Whether torchrun started this process: ``tools/dist_*.sh``'s
    launcher (:mod:`mmseg_dsnet.engine.torchrun`) reports a stop (Ctrl-C,
    SIGTERM) of the run in one line, so its processes print none (one line
    each, otherwise)."""
    return 'TORCHELASTIC_RUN_ID' in os.environ


def _while_starting(trace):
    """Whether an exception's traceback is of the main script's start: its
    own top-level code, or a module it imports (that module's top-level
    code, or importlib's frames), not a function the script called."""
    if trace is None or trace.tb_frame.f_code.co_name != '<module>':
        return False
    inner = trace.tb_next
    if inner is None:
        return True
    code = inner.tb_frame.f_code
    return code.co_name == '<module>' or \
        code.co_filename.startswith('<frozen importlib')


def report_interrupts_while_starting():
    """End a tool of the checkout (a script under ``tools/``) that Ctrl-C
    stops while it loads its libraries (torch and mmseg take seconds,
    before its work runs under
    :func:`~mmseg_dsnet.engine.cli_errors.run_reporting_user_errors`) with
    one line, :data:`STARTUP_INTERRUPT`, instead of the traceback of the
    import under way; Python then ends it by SIGINT (status 130, as a
    shell reports it). Called first by the package's ``__init__``.

    Only a ``KeyboardInterrupt`` that reaches the top during the start is
    reported so; any other exception, and one raised later, goes to the
    hook there was. A process whose main script is not a tool of the
    checkout (an application importing the package) is left as it is.
    """
    main = getattr(sys.modules.get('__main__'), '__file__', None)
    tools = osp.join(osp.realpath(REPO_ROOT), 'tools') + os.sep
    if not isinstance(main, str) or \
            not osp.realpath(main).startswith(tools) or \
            getattr(sys.excepthook, 'reports_startup_interrupts', False):
        return
    previous = sys.excepthook

    def hook(kind, error, trace):
        if not (issubclass(kind, KeyboardInterrupt)
                and _while_starting(trace)):
            return previous(kind, error, trace)
        if not stops_reported_by_launcher():
            print_user_error(error, STARTUP_INTERRUPT)

    hook.reports_startup_interrupts = True
    sys.excepthook = hook


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
