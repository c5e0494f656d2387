# Design candidate B: stride-2 stem, a thin 16-channel level at 1/2
# resolution, most FLOPs in residual DESDConv blocks at 1/4 (64 channels)
# and 1/8 (96), refine blocks after the bridges at 1/2, 1/4 and 1/8,
# classifier at 1/2, deep supervision (BIC) on levels 1-3. Channel counts
# are multiples of 16 (onnxruntime's CPU block size).
_base_ = ['../dsnet-v1_isic2017.py']
# Every design config (all derive from this one) trains on the design-train
# split and validates and tests on the design hold-out (10 % of the
# lightweight training split), also when run directly with tools/train.py or
# tools/test.py: a design chosen on the test split would be tuned on the
# images it is reported on. tools/check_real_data.py --split design and
# tools/analysis_tools/design_sweep.py read the same splits.
train_split = 'splits/lightweight_design_train.txt'
val_split = 'splits/lightweight_design_val.txt'
test_split = val_split
train_dataloader = dict(dataset=dict(ann_file=train_split))
val_dataloader = dict(dataset=dict(ann_file=val_split))
test_dataloader = dict(dataset=dict(ann_file=test_split))
widths = [16, 64, 96, 128, 160]
model = dict(
    backbone=dict(
        widths=widths,
        num_blocks=[2, 5, 4, 2, 2],
        stem_stride=2,
        shortcut=True,
        out_indices=(0, 1, 2, 3, 4)),
    decode_head=dict(
        in_channels=widths,
        in_index=[0, 1, 2, 3, 4],
        channels=widths[0],
        final_block=False,
        refine_blocks=[1, 2, 1, 0],
        deep_supervision=True,
        aux_loss_weights=[0.4, 0.2, 0.1]))
