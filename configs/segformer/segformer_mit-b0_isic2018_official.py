# Baseline: stock mmseg SegFormer MiT-B0 (mmseg's own base config and
# classes), 2 classes (softmax), on ISIC 2018, official protocol, same data and
# schedule as DSNet. No download at init: it trains from scratch unless a
# local ImageNet checkpoint is given, e.g.
#   --cfg-options model.backbone.pretrained=/path/to/mit_b0.pth
# (the leaderboard says which was used).
_base_ = [
    'mmseg::_base_/models/segformer_mit-b0.py',
    '../_base_/datasets/isic2018_official.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_300e_adamw_cosine.py'
]
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=_base_.crop_size),
    backbone=dict(init_cfg=None),
    decode_head=dict(num_classes=2, norm_cfg=norm_cfg))
