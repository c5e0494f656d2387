"""A tool runs the package of its own checkout.

Python finds a package installed in editable mode (``pip install -e``)
after the folders on its path, and ``python tools/train.py`` puts only the
tool's own folder there: a tool of a second checkout, run with the first
one's environment, imported the first checkout's ``mmseg_dsnet`` and ran
that code with the second one's configs, with no word of it."""
import os
import os.path as osp
import sys

from .errors import UserError, print_user_error
from .paths import REPO_ROOT, checkout_of_tool


def refuse_a_tool_of_another_checkout():
    """End a tool whose checkout is not the one this package was imported
    from with one ``ERROR:`` line and status 2, before it does anything.
    Called first by the package's ``__init__``; a process whose main script
    is not a tool of a checkout (an application, pytest) is left as it is.
    """
    main = getattr(sys.modules.get('__main__'), '__file__', None)
    root = checkout_of_tool(main) if isinstance(main, str) else None
    if root is None or root == osp.realpath(REPO_ROOT):
        return
    # Under torchrun every process would say it: rank 0 does.
    if os.environ.get('RANK', '0') == '0':
        print_user_error(UserError(
            f'{main} is a tool of the checkout {root}, but this Python '
            f'imports the mmseg_dsnet package of {REPO_ROOT}, whose code it '
            f'would run with the configs of {root}; run it with the '
            f'environment of {root} (bash tools/setup_env.sh there makes '
            f'its .venv) or with PYTHONPATH={root}'))
    # 2: the status of every user error (engine.cli_errors.USER_ERROR_EXIT,
    # which the package cannot import yet).
    raise SystemExit(2)
