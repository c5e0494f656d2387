# Design candidate A: stride-2 stem (stage 0 at 1/2 resolution), residual
# DESDConv stages deepest at 1/8 and 1/16, one residual refine block after
# the bridges of the three finest levels, classifier at 1/2 resolution,
# deep supervision with the BIC loss on levels 1-3.
_base_ = ['../dsnet-v1_isic2017.py']
widths = [24, 48, 80, 128, 160]
model = dict(
    backbone=dict(
        widths=widths,
        num_blocks=[2, 3, 4, 3, 2],
        stem_stride=2,
        shortcut=True,
        out_indices=(0, 1, 2, 3, 4)),
    decode_head=dict(
        in_channels=widths,
        in_index=[0, 1, 2, 3, 4],
        channels=widths[0],
        final_block=False,
        refine_blocks=[1, 1, 1, 0],
        deep_supervision=True,
        aux_loss_weights=[0.4, 0.2, 0.1]))
