# Design candidate C: as B with the 1/4 level wider (80 channels) and
# shallower (4 blocks instead of 5), one block fewer at 1/8 (3 instead of
# 4), 176 instead of 160 channels at 1/32, no block at 1/2 resolution
# besides the stem's residual block and the bridge, refine blocks at 1/4
# and 1/8 only (docs/design_study.md: widths 16/80/96/128/176, blocks
# 1/4/3/2/2).
_base_ = ['./dsnet-design-b_isic2017.py']
widths = [16, 80, 96, 128, 176]
model = dict(
    backbone=dict(widths=widths, num_blocks=[1, 4, 3, 2, 2]),
    decode_head=dict(
        in_channels=widths, channels=widths[0], refine_blocks=[0, 1, 1, 0]))
