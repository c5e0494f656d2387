# Design candidate C: as B with the 1/4 level wider
# (80 channels) and shallower, no block at 1/2 resolution besides the stem
# and the bridge, deep supervision (BIC) on levels 1-3.
_base_ = ['../dsnet-v1_isic2017.py']
widths = [16, 80, 96, 128, 176]
model = dict(
    backbone=dict(
        widths=widths,
        num_blocks=[1, 4, 3, 2, 2],
        stem_stride=2,
        shortcut=True,
        out_indices=(0, 1, 2, 3, 4)),
    decode_head=dict(
        in_channels=widths,
        in_index=[0, 1, 2, 3, 4],
        channels=widths[0],
        final_block=False,
        refine_blocks=[0, 1, 1, 0],
        deep_supervision=True,
        aux_loss_weights=[0.4, 0.2, 0.1]))
