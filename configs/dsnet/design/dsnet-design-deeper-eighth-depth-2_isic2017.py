# The default with two kernels per channel in the depthwise convolution of
# the block that takes the 16-channel 1/2-resolution features to 1/4: with
# one, that stride-2 block passes on 16 filtered values for every four
# pixels of 16 channels, and the whole encoder below 1/2 is built from them.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(backbone=dict(depth_multipliers=[1, 2, 1, 1, 1]))
