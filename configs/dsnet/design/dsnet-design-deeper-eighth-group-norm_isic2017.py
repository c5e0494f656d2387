# Seventeenth-round candidate: the default design with GroupNorm (4 groups,
# as EGE-UNet uses) instead of BatchNorm in the encoder's blocks at 1/16 and
# 1/32. There a batch of 8 training crops of 128x128 gives BatchNorm only
# 8x8 and 4x4 positions per image to estimate each channel's statistics;
# GroupNorm normalises each image by its own, in training and at inference
# alike. The GroupNorms stay in the deployed graph (they cannot fold).
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
group_norm = dict(type='GN', num_groups=4, requires_grad=True)
model = dict(
    backbone=dict(stage_norm_cfgs=[None, None, None, group_norm, group_norm]))
