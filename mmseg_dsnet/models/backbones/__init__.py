from .dsnet import DSNet  # noqa: F401
from .egeunet import EGEUNet  # noqa: F401
from .malunet import MALUNet  # noqa: F401
