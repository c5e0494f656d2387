# Baseline: stock mmseg UNet-S5-D16 with FCN head (mmseg's own base config and
# classes), 2 classes (softmax), on ISIC 2018, lightweight protocol, same data and
# schedule as DSNet. BatchNorm instead of SyncBN so it also runs on one device.
_base_ = [
    'mmseg::_base_/models/fcn_unet_s5-d16.py',
    '../_base_/datasets/isic2018_lightweight.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_300e_adamw_cosine.py'
]
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=_base_.crop_size),
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(num_classes=2, norm_cfg=norm_cfg),
    auxiliary_head=dict(num_classes=2, norm_cfg=norm_cfg),
    test_cfg=dict(mode='whole', _delete_=True))
