# Ablation: DSNet with plain depthwise 3x3 convolutions instead of the
# detail-enhanced separable difference convolutions (same widths; the
# difference branches are removed). Everything else as dsnet_isic2017.py.
_base_ = ['./dsnet_isic2017.py']
model = dict(
    backbone=dict(conv_type='vanilla'), decode_head=dict(conv_type='vanilla'))
