# The default with 5x5 depthwise kernels in the encoder blocks at 1/16 and
# 1/32: the difference branches' 3x3 kernel plus a learned outer ring (see
# DESDConv's kernel_size). Where the feature maps are this small the extra
# taps cost little, and each block sees twice as far (with dilation 2 at
# 1/16, 9x9 positions).
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(backbone=dict(kernel_sizes=[3, 3, 3, 5, 5]))
