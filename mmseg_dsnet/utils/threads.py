"""torch's CPU thread count for one span of work."""
import contextlib
from typing import Optional

import torch


@contextlib.contextmanager
def torch_threads(count: Optional[int]):
    """Run the ``with`` block on ``count`` torch CPU threads, then give
    torch back the count it had, also when the block raises.

    torch's thread count is process-wide: a library call that set it and
    left it changed the caller's threads for all of its later work.

    Args:
        count (int, optional): The threads for the block; None leaves the
            count as it is.
    """
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
