# The default whose two residual refine blocks in the decoder (at 1/4 and
# 1/8) also start as the identity, as the encoder's residual blocks do
# (their last BatchNorm's scale at 0). Only the initial weights change:
# parameters, FLOPs and the deployed graph are the default's.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(decode_head=dict(zero_init_residual=True))
