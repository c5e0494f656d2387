from .dsnet_head import DSNetHead  # noqa: F401
from .lightweight_cls_head import LightweightClsHead  # noqa: F401
