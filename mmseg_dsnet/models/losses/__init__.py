from .boundary_interior_loss import (BoundaryInteriorLoss,
                                     boundary_interior_maps)

__all__ = ['BoundaryInteriorLoss', 'boundary_interior_maps']
from .binary_dice_loss import BinaryDiceLoss  # noqa: E402,F401
from .lovasz_hinge_loss import LovaszHingeLoss  # noqa: E402,F401
