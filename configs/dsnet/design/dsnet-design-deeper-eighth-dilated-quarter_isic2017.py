# The default with dilation 2 at 1/4 as well: the three residual blocks there
# read every other position of a 5x5 neighbourhood, as those at 1/8 and 1/16
# do, at no cost in parameters or FLOPs. At 128x128 the 1/4 map is 32x32, so
# few dilated taps fall into the zero padding.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(backbone=dict(dilations=[1, 2, 2, 2, 1]))
