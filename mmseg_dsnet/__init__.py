"""mmseg-dsnet: DSNet and its comparison baselines as an MMSegmentation 1.x
plugin. Importing the package registers every component (datasets, metrics,
models, hooks) in mmseg's registries and turns on safe checkpoint loading
(:func:`mmseg_dsnet.compat.enable_safe_loading`); it changes nothing else in
mmengine. Crash-safe checkpoints and distributed runs without CUDA are
registered components our configs and tools turn on (see
``configs/_base_/default_runtime.py``).

Without mmseg installed (the data tools run before the stack is: see
:mod:`mmseg_dsnet.datasets.converters`) nothing is registered and only the
numpy/Pillow modules of the package can be used."""
from importlib.util import find_spec

from .utils.errors import report_interrupts_while_starting
from .utils.tool_checkout import refuse_a_tool_of_another_checkout

# First: a tool of another checkout would run this one's code.
refuse_a_tool_of_another_checkout()
# Then: a tool stopped while the libraries below load ends in one line.
report_interrupts_while_starting()

__version__ = '0.1.0'

#: Whether MMSegmentation (and so mmcv, mmengine and torch) is installed.
MMSEG_INSTALLED = find_spec('mmseg') is not None

if MMSEG_INSTALLED:
    from . import compat

    compat.enable_safe_loading()

    from . import datasets, engine, evaluation, models  # noqa: F401
