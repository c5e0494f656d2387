"""DSNet components (and the EGE-UNet / MALUNet anchors); importing this
package registers them in MMSegmentation's ``MODELS`` registry."""
from . import (backbones, decode_heads, layers, losses,  # noqa: F401
               segmentors, utils)
