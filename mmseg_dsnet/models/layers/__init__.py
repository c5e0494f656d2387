from .desd_conv import DESDConv, DifferenceKernels
from .dynamic_gate_attention import DynamicGateAttention

__all__ = ['DESDConv', 'DifferenceKernels', 'DynamicGateAttention']
