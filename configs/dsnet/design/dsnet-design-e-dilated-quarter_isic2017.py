# Design candidate E with dilation 2 also in the residual blocks at 1/4
# (dilations 1, 2, 2, 2, 1): a wider receptive field at no cost.
_base_ = ['./dsnet-design-e_isic2017.py']
model = dict(backbone=dict(dilations=[1, 2, 2, 2, 1]))
