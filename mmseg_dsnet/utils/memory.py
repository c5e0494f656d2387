"""The memory a network's pass takes at a ``--shape``, told before the
pass, and the out-of-memory failures of a pass reported in one line.

A ``--shape`` whose input fits in memory but whose activations do not
fails inside torch's allocator (a ``RuntimeError``), gets the process
killed by the system with no message (status 137), or swaps for minutes.
:func:`check_forward_memory` refuses such a shape before its input is
built, from the bytes the model's own pass takes at it
(:func:`forward_memory`); :func:`reporting_out_of_memory` reports a pass
that runs out of memory all the same in one line.
"""
import contextlib
import copy
import itertools
import math
from typing import Optional, Sequence, Tuple

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .errors import UserError


class _PeakBytes(TorchDispatchMode):
    """Counts the bytes of the tensors created under it that are alive at
    once, at the most (``peak``): each storage from the time an operation
    returns it until nothing refers to it."""

    def __init__(self):
        super().__init__()
        self.alive = {}
        self.now = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for key in [k for k, (ref, _) in self.alive.items()
                    if ref.expired()]:
            self.now -= self.alive.pop(key)[1]
        for value in tree_leaves(out):
            if not isinstance(value, torch.Tensor):
                continue
            storage = value.untyped_storage()
            ref = StorageWeakRef(storage)
            # A view or an in-place result shares a counted storage.
            if ref.cdata not in self.alive:
                self.alive[ref.cdata] = (ref, storage.nbytes())
                self.now += storage.nbytes()
        self.peak = max(self.peak, self.now)
        return out


def meta_copy(model):
    """A copy of ``model`` whose weights and buffers are on the ``meta``
    device: it runs every operation on shapes alone, at any input size,
    without allocating or computing (its weights are not copied)."""
    memo = {}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        meta = tensor.detach().to('meta')
        memo[id(tensor)] = (torch.nn.Parameter(
            meta, requires_grad=tensor.requires_grad)
            if isinstance(tensor, torch.nn.Parameter) else meta)
    return copy.deepcopy(model, memo)


def forward_memory(model, shape: Sequence[int], images: int = 1,
                   dtype: torch.dtype = torch.float32,
                   training: bool = False) -> Optional[int]:
    """The bytes of the tensors one pass of ``model`` keeps alive at once,
    at the most, on an ``images x 3 x H x W`` input (the input included,
    the weights not, their gradients in training yes): the pass itself,
    run on the ``meta`` device (:func:`meta_copy`), counted operation by
    operation. The buffers an operation uses inside (a convolution's
    workspace) are not counted: the bytes are those the pass needs at
    the least.

    Without gradients (inference) a pass frees each activation once the
    next layers have read it; with ``training`` every activation is kept
    for the backward pass, which is counted too.

    Args:
        model (nn.Module): The network, called as ``model(inputs)``; it is
            not changed (the pass runs on a copy).
        shape (Sequence[int]): ``(H, W)`` of the input.
        images (int): The images of the batch. Default: 1.
        dtype (torch.dtype): The type of the values. Default: float32.
        training (bool): Count a training pass (training mode, forward
            and backward). Default: False.

    Returns:
        int | None: The bytes; None where the model does not run on the
        ``meta`` device (an operation that reads values), so that there is
        nothing to estimate from.
    """
    try:
        probe = meta_copy(model).to(dtype).train(training)
        with _PeakBytes() as counter:
            inputs = torch.empty(images, 3, *shape, dtype=dtype,
                                 device='meta')
            with torch.set_grad_enabled(training):
                outputs = [out for out in tree_leaves(probe(inputs))
                           if isinstance(out, torch.Tensor)]
                if training:
                    sum(out.sum() for out in outputs
                        if out.requires_grad).backward()
    except (NotImplementedError, RuntimeError, TypeError, ValueError,
            AssertionError, AttributeError):
        # A model that reads values (or a size it refuses): its own run
        # says what it does at this size.
        return None
    return counter.peak


def memory_available(device=None) -> Optional[int]:
    """The bytes a pass on ``device`` can still take: the free memory of a
    CUDA device, else what :func:`~mmseg_dsnet.utils.cli.available_memory`
    says of this machine (None where the system does not say)."""
    device = torch.device(device or 'cpu')
    if device.type == 'cuda':
        return torch.cuda.mem_get_info(device)[0]
    from . import cli
    return cli.available_memory()


def _shape_source(shape, source):
    return source or f'--shape {shape[0]} {shape[1]}'


def _memory_of(device) -> str:
    device = torch.device(device or 'cpu')
    return (f'the memory free on {device}' if device.type == 'cuda' else
            'the memory this machine has available')


def check_forward_memory(model, shape: Sequence[int], images: int = 1,
                         dtype: torch.dtype = torch.float32,
                         training: bool = False, device=None,
                         held: Tuple[int, str] = (0, ''),
                         source: Optional[str] = None,
                         batch_option: Optional[str] = None
                         ) -> Optional[int]:
    """Refuse an input size whose pass would not fit in the memory left
    (:func:`forward_memory` against :func:`memory_available`), before its
    input is built.

    Args:
        model (nn.Module): The network the tool runs.
        shape (Sequence[int]): ``(H, W)`` of the input.
        images (int): The images of the tool's largest batch. Default: 1.
        dtype (torch.dtype): The type of the values. Default: float32.
        training (bool): The tool trains (every activation is kept for
            the backward pass). Default: False.
        device (str | torch.device, optional): Where the pass runs; None
            for the CPU.
        held (tuple[int, str]): The bytes the tool holds beside the pass
            on that device, e.g. images it caches, and what they are (for
            the message). Default: none.
        source (str, optional): Where ``shape`` comes from, for the
            message. Default: None (``--shape H W``).
        batch_option (str, optional): The option that sets ``images``,
            advised beside ``--shape``. Default: None (a fixed batch).

    Returns:
        int | None: The estimated bytes (None: not estimated).

    Raises:
        UserError: The estimate exceeds the memory available, naming both
            and a square size whose pass takes about half of it.
    """
    height, width = shape
    passes = forward_memory(model, shape, images, dtype, training)
    available = memory_available(device)
    if passes is None or available is None:
        return None
    needed = passes + held[0]
    if needed <= available:
        return needed
    # A square (a multiple of 32, the shipped configs' stride) whose pass
    # takes about half the memory left, its bytes taken to grow with the
    # input's pixels: the estimate counts the tensors alone, not the
    # buffers of the operations that make them.
    pixels = height * width * max(available / 2 - held[0], 0) / passes
    side = int(math.sqrt(pixels)) // 32 * 32
    advice = (f'e.g. --shape {side} {side}, whose pass needs about half '
              'of it' if side >= 32 else 'or free memory')
    if batch_option and images > 1:
        advice += f'; or a smaller {batch_option}'
    value_bytes = torch.empty((), dtype=dtype).element_size()
    raise UserError(
        f'{_shape_source(shape, source)}: the '
        + ('training step (forward and backward)' if training else
           'forward pass')
        + f' of the network on {images}x3x{height}x{width} values of '
        f'{value_bytes} bytes needs about {passes / 1e9:.3g} GB'
        + (f' (and {held[0] / 1e9:.3g} GB for {held[1]})' if held[0]
           else '')
        + f', more than the {available / 1e9:.3g} GB of '
        f'{_memory_of(device)}; give a smaller --shape ({advice})')


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation that failed for want of memory:
    ``torch.OutOfMemoryError`` (CUDA), the ``RuntimeError`` of torch's CPU
    allocator, or Python's ``MemoryError``; other errors are not."""
    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(err, RuntimeError) and \
        "DefaultCPUAllocator: can't allocate memory" in str(err)


def out_of_memory_error(err: BaseException, shape: Sequence[int],
                        device=None, source: Optional[str] = None
                        ) -> UserError:
    """The one-line error of a pass that ran out of memory at ``shape``
    (:func:`is_out_of_memory`).

    Args:
        err (BaseException): The failure.
        shape (Sequence[int]): ``(H, W)`` of the pass.
        device (str | torch.device, optional): Where it ran; None for the
            CPU.
        source (str, optional): Where ``shape`` comes from. Default: None
            (``--shape H W``).

    Returns:
        UserError: Saying so, with the allocator's own words.
    """
    device = torch.device(device or 'cpu')
    where = str(device) if device.type == 'cuda' else 'this machine'
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return UserError(
        f'{_shape_source(shape, source)}: {where} ran out of memory at '
        f'this input size ({type(err).__name__}: {first}); give a smaller '
        '--shape, or free memory')


@contextlib.contextmanager
def reporting_out_of_memory(shape: Sequence[int], device=None,
                            source: Optional[str] = None):
    """Raise :func:`out_of_memory_error` for an out-of-memory failure
    under it; other errors pass unchanged.

    Args:
        shape (Sequence[int]): ``(H, W)`` of the passes under it.
        device (str | torch.device, optional): Where they run; None for
            the CPU.
        source (str, optional): Where ``shape`` comes from. Default: None
            (``--shape H W``).
    """
    try:
        yield
    except Exception as err:  # noqa: BLE001  (re-raised unless memory)
        if not is_out_of_memory(err):
            raise
        raise out_of_memory_error(err, shape, device, source) from err
