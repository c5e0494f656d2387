# Design candidate E with GELU instead of ReLU after every norm (the
# activation EGE-UNet and MALUNet use). Same parameters and convolutions; a
# GELU is one more elementwise pass in onnxruntime, where a ReLU fuses into
# the convolution before it.
_base_ = ['./dsnet-design-e_isic2017.py']
gelu = dict(_delete_=True, type='GELU')
model = dict(backbone=dict(act_cfg=gelu), decode_head=dict(act_cfg=gelu))
