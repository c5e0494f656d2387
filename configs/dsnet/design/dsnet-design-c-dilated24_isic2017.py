# Design candidate C with a still wider receptive field: depthwise dilation
# 2 in the residual blocks at 1/8 and 4 at 1/16 (the whole 1/16 map of a
# 128-pixel input), dilation 2 in the refine block at 1/8.
_base_ = ['./dsnet-design-c_isic2017.py']
model = dict(
    backbone=dict(dilations=[1, 1, 2, 4, 1]),
    decode_head=dict(refine_dilations=[1, 1, 2, 1]))
