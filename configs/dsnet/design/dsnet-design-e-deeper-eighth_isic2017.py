# Design candidate E with capacity moved from 1/32 to 1/8 resolution: a
# fourth block at 1/8 (96 channels, dilation 2) and 160 instead of 176
# channels at 1/32. The deepest level holds most of E's weights on few
# pixels; the same weights at 1/8 are shared over 16 times more pixels.
_base_ = ['./dsnet-design-e_isic2017.py']
widths = [16, 80, 96, 128, 160]
model = dict(
    backbone=dict(widths=widths, num_blocks=[1, 4, 4, 2, 2]),
    decode_head=dict(in_channels=widths))
