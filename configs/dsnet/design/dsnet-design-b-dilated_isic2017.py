# Design candidate B with a wider receptive field at no cost: the
# residual blocks of the 1/8 and 1/16 stages and the refine blocks at 1/8
# use depthwise dilation 2.
_base_ = ['./dsnet-design-b_isic2017.py']
model = dict(
    backbone=dict(dilations=[1, 1, 2, 2, 1]),
    decode_head=dict(refine_dilations=[1, 1, 2, 1]))
