# Reference for the tenth round: the default (the eighth round's design)
# with plain depthwise 3x3 convolutions instead of DESDConv's difference
# branches, as the ablation dsnet_isic2017_vanilla-conv.py, named for the
# design records.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(
    backbone=dict(conv_type='vanilla'), decode_head=dict(conv_type='vanilla'))
