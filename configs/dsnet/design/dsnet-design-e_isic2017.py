# Design candidate E: candidate D (C + dilation 2 at 1/8 and 1/16 + the
# distance-from-centre channel) with every residual block starting as the
# identity (zero_init_residual), the third change that helped C.
_base_ = ['./dsnet-design-d_isic2017.py']
model = dict(backbone=dict(zero_init_residual=True))
