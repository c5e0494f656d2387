# The default with GELU instead of ReLU in the encoder's blocks at 1/16 and
# 1/32: a smooth activation where the feature maps are small, so that its
# extra element-wise work costs next to nothing at inference.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
gelu = dict(type='GELU')
model = dict(
    backbone=dict(stage_act_cfgs=[None, None, None, gelu, gelu]))
