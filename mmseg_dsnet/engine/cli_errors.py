"""Report the faults a user can fix (bad data, a config typo, an unsafe or
broken checkpoint, NaN loss ...) as one clear message instead of a stack
trace; genuine bugs keep their traceback."""
import os
import signal
import sys
import threading
import time

# Exit status of every fault the user can fix (as argparse uses for usage
# errors); 1 is left to the few documented partial results (e.g.
# ``infer.py --strict``).
USER_ERROR_EXIT = 2

#: What a stopped ``tools/train.py`` run leaves and how it goes on.
TRAINING_STOP_HINT = ('the checkpoints saved before stay in the work dir; '
                      'the same command with --resume goes on from the '
                      'newest')

#: How long a process that leaves the report of an error every process
#: raised to rank 0 waits before it ends (seconds).
RANK_0_GRACE_S = 5


from mmseg_dsnet.utils.errors import UserError  # noqa: F401  (re-exported)
from mmseg_dsnet.utils.errors import (print_user_error,
                                       reported_by_this_rank,
                                       stops_reported_by_launcher)


def user_error_types():
    """The exception classes whose message alone tells the user what to
    do."""
    from mmseg_dsnet.compat import (CheckpointDownloadError,
                                    CorruptCheckpointError,
                                    UnsafeCheckpointError,
                                    UnsupportedCheckpointSchemeError)
    from mmseg_dsnet.datasets.sample_checks import (BadSampleError,
                                                    MaskValueError)
    from .checkpoint_match import CheckpointMismatchError
    from .fast_training.errors import FastTrainingError
    from .hooks.non_finite_loss_hook import NonFiniteLossError
    from .hooks.num_classes_check_hook import NumClassesMismatchError
    from .preflight import ConfigKeyError, MissingInputError, WorkDirError
    return (UserError, BadSampleError, MaskValueError, NonFiniteLossError,
            NumClassesMismatchError, ConfigKeyError, WorkDirError,
            UnsafeCheckpointError, CorruptCheckpointError, FastTrainingError,
            CheckpointMismatchError, MissingInputError,
            CheckpointDownloadError, UnsupportedCheckpointSchemeError)


def describe_user_error(err):
    """The message for ``err`` if it is a user-fixable fault, else None."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args \
        else str(err)
    if isinstance(err, user_error_types()):
        return text
    if isinstance(err, KeyError) and 'registry' in text:
        return text + ' (check the spelling of this type in the config)'
    if isinstance(err, TypeError) and 'unexpected keyword argument' in text:
        return text + ' (check the spelling of this key in the config)'
    if isinstance(err, FileNotFoundError) and 'split file' in text:
        return text
    if isinstance(err, FileExistsError) and '--overwrite' in text:
        return text
    if isinstance(err, ValueError) and ('no samples in' in text or
                                        'should be equal to num_classes'
                                        in text):
        return text
    return None


class Terminated(SystemExit):
    """Raised by the SIGTERM handler of :func:`exit_cleanly_on_sigterm`;
    its ``code`` is ``128 + signum``, as for a process killed by it.

    Args:
        signum (int): The signal.
    """

    def __init__(self, signum):
        super().__init__(128 + signum)
        self.signum = signum


def _no_action(signum, frame):
    """A signal handler that does nothing."""


#: How long after a stop was swallowed it is sent again (seconds).
RESEND_STOP_S = 0.05


def _send_again_soon(signum):
    """Send ``signum`` to this process again after :data:`RESEND_STOP_S`,
    from another thread, so that it is handled once the code it came in
    has returned."""
    resend = threading.Timer(RESEND_STOP_S, os.kill, (os.getpid(), signum))
    resend.daemon = True
    resend.start()


def _inside_torch_save(frame):
    """Whether ``frame``, where a signal handler interrupted the main
    thread, runs inside ``torch.save``.

    A stop raised there can skip the last records of the zip archive
    (the writer's ``__exit__`` starts with a check for pending signals).
    The unfinished writer then writes them when it is destroyed at exit,
    into the buffer that mmengine's ``save_checkpoint`` has closed by then,
    and the process aborts after the stop's line (``terminate called after
    throwing an instance of 'pybind11::error_already_set'``, status 134).

    Args:
        frame (types.FrameType | None): The interrupted frame.

    Returns:
        bool: True if ``torch.save`` is among its callers.
    """
    save = getattr(sys.modules.get('torch.serialization'), 'save', None)
    code = getattr(save, '__code__', None)
    while frame is not None and code is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def _resend_swallowed_stops(previous_hook):
    """``sys.unraisablehook`` for a :class:`Terminated` raised where Python
    drops exceptions (a ``__del__``, such as a data loader's, or an at-fork
    callback): there the stop is printed as ``Exception ignored in ...``
    and the run goes on as if no signal had come. The signal is sent
    again, from another thread, so that it is handled once that code has
    returned."""

    def hook(unraisable):
        error = unraisable.exc_value
        if not isinstance(error, Terminated):
            return previous_hook(unraisable)
        _send_again_soon(error.signum)

    hook.resends_stops = True
    return hook


def _exit_on_sigterm(signum, frame):
    # A signal sent to the process group also ends the data-loading
    # workers; PyTorch's SIGCHLD handler would report their end as the
    # error (a RuntimeError traceback) instead of the termination asked for.
    # A handler of its own, not SIG_DFL: a SIGCHLD received before this
    # handler runs (the workers end first) would find SIG_DFL and be
    # printed as 'OSError: Signal 17 ignored due to race condition' with a
    # traceback.
    if _inside_torch_save(frame):
        # The stop comes once the checkpoint is written.
        _send_again_soon(signum)
        return
    if hasattr(signal, 'SIGCHLD'):
        signal.signal(signal.SIGCHLD, _no_action)
    if not getattr(sys.unraisablehook, 'resends_stops', False):
        sys.unraisablehook = _resend_swallowed_stops(sys.unraisablehook)
    raise Terminated(signum)


def exit_cleanly_on_sigterm():
    """Make SIGTERM (``timeout``, ``kill``, a scheduler's stop) end the
    process like an exception, so that clean-up code runs: an atomic
    write removes its temporary file, and nothing half-written is left.
    A SIGTERM that comes while a checkpoint is written (``torch.save``)
    stops the process once the write has finished
    (:func:`_inside_torch_save`).
    The exit status stays ``128 + 15``, as for a process killed by it.

    Only in the main thread and only where SIGTERM has its default action
    (a handler someone else set is kept). Tools call it when they start;
    importing the package does not.

    Returns:
        The previous handler, to restore, or None when nothing was changed.
    """
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        return signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return None


def _interrupt_outside_torch_save(signum, frame):
    """Python's Ctrl-C handler (``KeyboardInterrupt``), held back while
    ``torch.save`` runs (:func:`_inside_torch_save`)."""
    if _inside_torch_save(frame):
        _send_again_soon(signum)
        return
    signal.default_int_handler(signum, frame)


def interrupt_after_checkpoint_writes():
    """Make Ctrl-C that comes while a checkpoint is written (``torch.save``)
    stop the process once the write has finished, as SIGTERM does
    (:func:`exit_cleanly_on_sigterm`), not part-way, where it aborts the
    process at exit (:func:`_inside_torch_save`).

    Only in the main thread and only where SIGINT has Python's own handler
    (a handler someone else set is kept). Tools call it when they start;
    importing the package does not.

    Returns:
        The previous handler, to restore, or None when nothing was changed.
    """
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        return signal.signal(signal.SIGINT, _interrupt_outside_torch_save)
    return None


def report_interrupt(error, hint=''):
    """Report Ctrl-C (``KeyboardInterrupt``) in one line instead of the
    traceback of wherever the work was, and exit with status 130 (128 +
    SIGINT, as a shell reports a process stopped by it). The clean-up of
    the writes under way (``finally``, ``except BaseException``) has run by
    the time the exception gets here.

    Args:
        error (KeyboardInterrupt): The interrupt.
        hint (str): What is left and how to go on, appended to the line.
    """
    if not stops_reported_by_launcher():
        print_user_error(error, 'interrupted (Ctrl-C) before the run '
                         'finished' + (f'; {hint}' if hint else ''))
    sys.exit(128 + signal.SIGINT)


def report_termination(error, hint=''):
    """Report a stop by SIGTERM (:class:`Terminated`) in one line, as
    :func:`report_interrupt` does Ctrl-C (not with status 143 and no
    word), and exit with its status. The clean-up of the writes under way
    has run by the time the exception gets here.

    Args:
        error (Terminated): The stop.
        hint (str): What is left and how to go on, appended to the line.
    """
    if not stops_reported_by_launcher():
        name = signal.Signals(error.signum).name
        print_user_error(error, f'stopped by {name} before the run finished'
                         + (f'; {hint}' if hint else ''))
    sys.exit(error.code)


def stop_behind(error):
    """The stop (Ctrl-C's ``KeyboardInterrupt``, SIGTERM's
    :class:`Terminated`) that ``error`` was raised while handling, if any.

    Code with a bare ``except:`` turns a stop that lands in it into an
    error of its own: mmengine's ``Config.pretty_text``, which every
    checkpoint save calls and which formats the config for about half a
    second, raises ``SyntaxError('Failed to format the config file ...')``
    for it; the tool would end with that traceback and status 1 instead
    of the stop's line and status.

    Args:
        error (BaseException): The error that ended the work.

    Returns:
        KeyboardInterrupt | Terminated | None: The stop, the nearest one in
        the chain of exceptions that ``error`` was raised while handling.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, (KeyboardInterrupt, Terminated)):
            return error
        seen.add(id(error))
        error = error.__cause__ if error.__cause__ is not None \
            else error.__context__
    return None


def run_reporting_user_errors(main, stop_hint=''):
    """Run ``main()``; on a user-fixable fault print ``ERROR: <message>`` to
    stderr and exit with status 2, the status of every user error in this
    project, or with the status of a failed child tool
    (:class:`~mmseg_dsnet.utils.errors.ChildToolError`)
    (``MMSEG_DSNET_TRACEBACK=1`` shows the traceback as well).
    SIGTERM ends ``main()`` with clean-up (:func:`exit_cleanly_on_sigterm`),
    one line and status 143 (:func:`report_termination`), Ctrl-C with one
    line and status 130 (:func:`report_interrupt`), also when code under
    ``main()`` turned the stop into another error (:func:`stop_behind`).
    Either stop waits for a checkpoint write under way to finish
    (:func:`interrupt_after_checkpoint_writes`).

    A path the standard output's encoding cannot hold (a work dir named in
    Chinese, output redirected on Windows) is printed escaped
    (:func:`~mmseg_dsnet.utils.cli.escape_unencodable_output`), not a
    ``UnicodeEncodeError`` traceback after the work was done.

    Args:
        main (callable): The tool's work.
        stop_hint (str): What a stop (Ctrl-C, SIGTERM) leaves and how to go
            on (e.g. :data:`TRAINING_STOP_HINT`), for its line.
    """
    from mmseg_dsnet.utils.cli import escape_unencodable_output
    escape_unencodable_output()
    previous = exit_cleanly_on_sigterm()
    previous_interrupt = interrupt_after_checkpoint_writes()
    try:
        return main()
    except KeyboardInterrupt as err:
        report_interrupt(err, stop_hint)
    except Terminated as err:
        report_termination(err, stop_hint)
    except Exception as err:
        stop = stop_behind(err)
        if isinstance(stop, KeyboardInterrupt):
            report_interrupt(stop, stop_hint)
        if stop is not None:
            report_termination(stop, stop_hint)
        message = describe_user_error(err)
        if message is None:
            raise
        # With MMSEG_DSNET_TRACEBACK, the traceback besides the ERROR line
        # and status 2, not instead of them: a re-raise would end with the
        # bare exception and status 1.
        if reported_by_this_rank(err):
            print_user_error(err, message)
        else:
            # torchrun stops the other processes when one ends: leave rank
            # 0, which raised the same error, the time to print its line.
            time.sleep(RANK_0_GRACE_S)
        # A failed child tool passes its own status on.
        sys.exit(getattr(err, 'exit_code', USER_ERROR_EXIT))
    finally:
        # A caller that runs a tool in-process keeps its own behaviour.
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_interrupt is not None:
            signal.signal(signal.SIGINT, previous_interrupt)
