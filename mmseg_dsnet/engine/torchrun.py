"""torchrun (``torch.distributed.run``) for ``tools/dist_train.sh`` and
``tools/dist_test.sh``, ending as the processes it started ended.

torchrun itself ends every failure alike: a ``ChildFailedError`` traceback
(about 35 lines) and exit status 1, the status of a crash, also when a
process refused the user's input with its ``ERROR:`` line and status 2, or
was killed (out of memory: SIGKILL); when torchrun itself is stopped
(SIGTERM, Ctrl-C) it stops the processes and ends with a
``SignalException`` traceback, exit 1. :func:`main` runs the same launch
and ends with the status of the process whose failure ended the run (2
after a user error, 137 after SIGKILL, ...), with one ``ERROR:`` line
instead of the traceback where that process left none; stopped by a
signal, with ``ERROR: stopped by SIGTERM ...`` and ``128 + N``; on a
port another run listens on, with one ``ERROR:`` line and status 2.

Usage (the arguments of ``python -m torch.distributed.run``)::

    python -m mmseg_dsnet.engine.torchrun --nproc_per_node=2 tools/train.py \
        CONFIG --launcher pytorch
"""
import logging
import os
import signal
import sys

from ..utils.errors import print_user_error
from .cli_errors import TRAINING_STOP_HINT, USER_ERROR_EXIT

#: What a process stopped by torchrun after another's failure ends with
#: (the tools' SIGTERM handler, or the signal itself).
_STOPPED_BY_TORCHRUN = 128 + signal.SIGTERM

#: What is left of a stopped run and how to go on, by the script run.
_STOPPED_HINTS = {'train.py': TRAINING_STOP_HINT}


def exit_status(exitcode):
    """A process's exit code as a shell reports it.

    Args:
        exitcode (int): As ``subprocess`` gives it (``-N`` for a process
            ended by signal N).

    Returns:
        int: ``128 + N`` for signal N, else ``exitcode``.
    """
    return 128 - exitcode if exitcode < 0 else exitcode


def _signal_name(status):
    try:
        return signal.Signals(status - 128).name
    except ValueError:
        return f'signal {status - 128}'


def root_failure(failures):
    """The process whose failure ended the run.

    torchrun also records the processes it stopped after the first failure
    (SIGTERM), with timestamps in whole seconds, so its own "Root Cause"
    could name one of those instead of the process that failed. Among
    failures of one second, a user error (its ``ERROR:`` line, status 2)
    comes first: its process closed its connections as it ended, and on
    gloo a process waiting in a collective crashes at once (``Connection
    closed by peer``), which torchrun may find in the same look.

    Args:
        failures (dict[int, ProcessFailure]): ``ChildFailedError.failures``
            (global rank: failure).

    Returns:
        tuple[int, int]: The global rank and its exit status
        (:func:`exit_status`).
    """
    def order(item):
        rank, failure = item
        status = exit_status(failure.exitcode)
        return (status == _STOPPED_BY_TORCHRUN, failure.timestamp,
                status != USER_ERROR_EXIT, rank)

    rank, failure = min(failures.items(), key=order)
    return rank, exit_status(failure.exitcode)


def failure_message(rank, status, script):
    """The ``ERROR:`` text for the failed process, or None where it printed
    its own (a user error, status 2).

    Args:
        rank (int): Its global rank.
        status (int): Its exit status.
        script (str): The script torchrun ran.

    Returns:
        str | None: The message.
    """
    if status == USER_ERROR_EXIT:
        return None
    name = os.path.basename(script)
    if status > 128:
        cause = f'was ended by {_signal_name(status)}'
        if status == 128 + signal.SIGKILL:
            cause += ' (out of memory?)'
    else:
        cause = f'failed with exit status {status} (see its output above)'
    return (f'process {rank} of {name} {cause}; torchrun stopped the '
            'others')


def stopped_message(signum, script):
    """The ``ERROR:`` text for a run whose torchrun got signal ``signum``
    (it passes the signal on to the processes and waits for them).

    Args:
        signum (int): The signal.
        script (str): The script torchrun ran.

    Returns:
        str: The message.
    """
    name = os.path.basename(script)
    hint = _STOPPED_HINTS.get(name)
    return (f'stopped by {signal.Signals(signum).name}: the processes of '
            f'{name} were stopped before they finished' +
            (f'; {hint}' if hint else ''))


def _quiet_torchrun_logs():
    # torchrun's lines on a failure ('Closing process ... via signal
    # SIGTERM', 'failed (exitcode: 2) ...') came after the process's ERROR
    # line; the line printed here says which process failed. LOGLEVEL (as
    # torchrun reads it) keeps them.
    if 'LOGLEVEL' in os.environ:
        return
    for name in list(logging.root.manager.loggerDict):
        if name.startswith('torch.distributed.elastic'):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def main(argv=None):
    """Run ``torch.distributed.run`` with ``argv``; end with the status of
    the failed process (see the module's docstring).

    Args:
        argv (list[str], optional): torchrun's arguments (default:
            ``sys.argv[1:]``).

    Returns:
        int: 0 when every process finished.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import \
        ChildFailedError
    from torch.distributed.launcher import api  # noqa: F401  (its loggers)
    from torch.distributed.run import parse_args, run

    args = parse_args(argv)
    _quiet_torchrun_logs()
    try:
        run(args)
    except ChildFailedError as err:
        rank, status = root_failure(err.failures)
        message = failure_message(rank, status, args.training_script)
        if message is not None:
            print_user_error(err, message)
        return status
    except SignalException as err:
        print_user_error(err, stopped_message(err.sigval,
                                              args.training_script))
        return 128 + err.sigval
    except RuntimeError as err:
        if 'EADDRINUSE' not in str(err):
            raise
        # Another run (its own torchrun) listens there: a traceback, exit 1.
        print_user_error(err, f'port {args.master_port} of '
                         f'{args.master_addr} is in use (another '
                         'distributed run?): give another with PORT=...')
        return USER_ERROR_EXIT
    return 0


if __name__ == '__main__':
    sys.exit(main())
