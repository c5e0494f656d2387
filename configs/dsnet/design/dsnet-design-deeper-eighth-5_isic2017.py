# The default (the eighth round's design) with capacity moved further from
# 1/32 to 1/8: a fifth block at 1/8 (96 channels, dilation 2) and 144
# instead of 160 channels at 1/32.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
widths = [16, 80, 96, 128, 144]
model = dict(
    backbone=dict(widths=widths, num_blocks=[1, 4, 5, 2, 2]),
    decode_head=dict(in_channels=widths))
