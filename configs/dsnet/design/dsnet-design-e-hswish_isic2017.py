# Design candidate E with hard swish (x * relu6(x + 3) / 6, MobileNetV3's
# activation) instead of ReLU after every norm: a smooth-like activation made
# of cheap piecewise-linear operations.
_base_ = ['./dsnet-design-e_isic2017.py']
hswish = dict(_delete_=True, type='HSwish')
model = dict(backbone=dict(act_cfg=hswish), decode_head=dict(act_cfg=hswish))
