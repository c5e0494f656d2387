"""Argument helpers shared by the command-line tools."""
import math
import numbers
from typing import Sequence, Tuple

from .messages import counted


def available_memory():
    """The bytes of memory this machine can still give a process
    (``MemAvailable`` of ``/proc/meminfo``), or None where the system does
    not say."""
    try:
        with open('/proc/meminfo') as file:
            for line in file:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def input_shape(values: Sequence[int], images: int = 1,
                value_bytes: int = 4) -> Tuple[int, int]:
    """``(height, width)`` from a ``--shape`` option given one number (a
    square) or two, refused where the input batch alone would not fit in
    the memory this machine has left.

    torch fails such an allocation with a traceback once the model is
    built (``--shape 100000``: 120 GB for one float32 image), or the
    system kills the process when it touches the pages.

    Args:
        values (Sequence[int]): The numbers given to ``--shape``.
        images (int): The images of the tool's input batch. Default: 1.
        value_bytes (int): The bytes of one input value (4 for float32,
            8 for float64). Default: 4.

    Returns:
        tuple[int, int]: Height and width.

    Raises:
        UserError: Not one or two positive numbers, or an input batch
            larger than :func:`available_memory`.
    """
    from .errors import UserError
    values = list(values)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise UserError(
            f'--shape takes 1 or 2 positive numbers, got {values}')
    height, width = values
    needed = images * 3 * height * width * value_bytes
    available = available_memory()
    if available is not None and needed > available:
        raise UserError(
            f'--shape {height} {width}: the input alone, {images}x3x'
            f'{height}x{width} values of {value_bytes} bytes, takes '
            f'{needed / 1e9:.3g} GB, more than the {available / 1e9:.3g} '
            'GB of memory this machine has available (the network needs '
            'several times its input); give a smaller --shape')
    return tuple(values)


def other_shape_note(shape: Sequence[int], own: Sequence[int]) -> str:
    """What to print beside figures measured at ``--shape`` ``shape`` when
    the config runs its model at ``own`` (nothing when they agree).

    Args:
        shape (Sequence[int]): The measured ``(height, width)``.
        own (Sequence[int]): The config's own ``(height, width)``.

    Returns:
        str: ``' (--shape; the config runs the model at HxW)'`` or ``''``.
    """
    if tuple(shape) == tuple(own):
        return ''
    return f' (--shape; the config runs the model at {own[0]}x{own[1]})'


def check_at_least(*checks) -> None:
    """Refuse option values below their minimum, before any work.

    Args:
        *checks (tuple): ``(option, value, least)``; a value of None (not
            given) passes.

    Raises:
        UserError: ``<option> must be at least <least>, got <value>`` for the
        first value below its minimum (``must be a finite number`` for a
        nan or infinite float).
    """
    from .errors import UserError
    for option, value, least in checks:
        if value is None:
            continue
        # A nan compares False with everything: it passed "value < least"
        # and then every test the value was meant for (a tolerance of nan
        # failed nothing); an inf bounds nothing. numpy's floats too
        # (``np.float32('nan')`` is no Python float).
        if isinstance(value, numbers.Real) and not math.isfinite(value):
            raise UserError(f'{option} must be a finite number, got {value}')
        if value < least:
            raise UserError(f'{option} must be at least {least}, got {value}')


def check_positive(*checks) -> None:
    """Refuse option values that are not positive finite numbers (a
    tolerance, a learning rate, a time limit), before any work.

    Args:
        *checks (tuple): ``(option, value)``; a value of None (not given)
            passes.

    Raises:
        UserError: ``<option> must be positive, got <value>`` for the first
        value that is zero, negative, nan or infinite.
    """
    for option, value in checks:
        if value is not None and not (math.isfinite(value) and value > 0):
            from .errors import UserError
            raise UserError(f'{option} must be positive, got {value:g}')


def check_warmup(warmup: int, option: str = '--warmup') -> None:
    """Refuse a timing without a warm-up call, before any work.

    The first call of a model pays one-off costs (memory and kernel
    set-up, an onnxruntime session's first run, a ``torch.compile``
    recompilation at a new thread count: seconds), so without a warm-up it
    is one of the timed calls and raises the mean, the percentiles and the
    median of a few runs with no word of it.

    Args:
        warmup (int): The untimed calls asked for.
        option (str): The option that gave it, for the message.
            Default: ``'--warmup'``.

    Raises:
        UserError: ``warmup`` below 1.
    """
    if warmup < 1:
        from .errors import UserError
        raise UserError(
            f'{option} must be at least 1, got {warmup}: the first call of '
            'a model pays one-off costs (memory and kernel set-up; '
            'torch.compile recompiles at a new thread count, which takes '
            'seconds), and without a warm-up it would be timed and raise '
            'the figures')


#: numpy's and PyTorch's seeds: 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1


def check_seed(seed, name: str = 'randomness.seed') -> None:
    """Refuse a seed numpy would reject (with a traceback, once the run has
    started and made its work dir).

    Args:
        seed: The seed; None (not set) passes.
        name (str): Where it was given, for the message.

    Raises:
        UserError: ``<name> must be an integer from 0 to 2**32 - 1, got ...``.
    """
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or \
            not 0 <= seed <= MAX_SEED:
        from .errors import UserError
        raise UserError(f'{name} must be an integer from 0 to 2**32 - 1, '
                        f'got {seed!r}')


def device_option(name, task: str = 'this tool', option: str = '--device'):
    """The torch device a ``--device`` option names, refused before any work
    when this machine cannot run there (torch fails only once a model or a
    tensor is moved, with a traceback).

    Args:
        name (str | torch.device): ``'cuda'``, ``'cuda:N'`` or ``'cpu'``.
        task (str): What runs on the device, for the message about another
            kind of device. Default: ``'this tool'``.
        option (str): The command-line option, for the messages.
            Default: ``'--device'``.

    Returns:
        torch.device: The device.

    Raises:
        UserError: Not a device, neither CUDA nor CPU, CUDA not available,
        or a CUDA index this machine does not have.
    """
    import torch

    from .errors import UserError
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f'{option} {name}: not a device; give cuda, cuda:N '
                        'or cpu') from None
    if device.type not in ('cuda', 'cpu'):
        raise UserError(f'{option} {name}: {task} runs on cuda or cpu')
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise UserError(f'{option} {name}: CUDA is not available here; '
                            f'pass {option} cpu')
        if device.index is not None and \
                device.index >= torch.cuda.device_count():
            raise UserError(
                f'{option} {name}: this machine has '
                f'{counted(torch.cuda.device_count(), "CUDA device")}')
    return device


def escape_unencodable_output(stream=None) -> None:
    """Let a tool's standard output write a character its encoding lacks
    as an escape (``\\u75c5``), as Python's standard error always does.

    A photo or folder named in Chinese, or a file name that is not UTF-8
    (``l\\udce4sion.jpg``, from a zip made on Windows), printed to a
    console or log file whose encoding cannot hold it (Windows' cp1252
    when the output is redirected) raised ``UnicodeEncodeError``: a
    traceback and exit 1 after the outputs were written, or before the
    converter wrote any. Called by the tools' ``__main__`` blocks only:
    importing the package changes no stream.

    Args:
        stream (io.TextIOWrapper, optional): Default: ``sys.stdout``.
    """
    import sys
    stream = sys.stdout if stream is None else stream
    reconfigure = getattr(stream, 'reconfigure', None)
    if reconfigure is not None:  # not a replaced stream (StringIO)
        reconfigure(errors='backslashreplace')
