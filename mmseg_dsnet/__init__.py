"""mmseg-dsnet: DSNet and its comparison baselines as an MMSegmentation 1.x
plugin. Importing the package applies the stack's compatibility patches and
registers every component (datasets, metrics, models) in mmseg's
registries."""
from . import compat

compat.apply()

from . import datasets, engine, evaluation, models  # noqa: E402,F401

__version__ = '0.1.0'
