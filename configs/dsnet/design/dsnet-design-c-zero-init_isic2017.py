# Design candidate C with every residual block starting as the identity
# (last BatchNorm scale 0; mmseg ResNet's zero_init_residual).
_base_ = ['./dsnet-design-c_isic2017.py']
model = dict(backbone=dict(zero_init_residual=True))
