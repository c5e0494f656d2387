from .desd_conv import DESDConv, DifferenceKernels
from .dynamic_gate_attention import DynamicGateAttention
from .image_context import ImageContext

__all__ = ['DESDConv', 'DifferenceKernels', 'DynamicGateAttention',
           'ImageContext']
