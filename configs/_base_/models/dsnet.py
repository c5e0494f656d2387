# DSNet: a stride-2 stem that also reads the distance from the image centre,
# residual DESDConv stages (starting as the identity) with most of the
# compute at 1/4 and 1/8 of the input and dilation 2 at 1/8 and 1/16, each
# later stage reading the mean of each 2x2 block (so every level is centred
# on the pixels it summarises, where the decoder's upsampling puts it), a
# decoder with dynamic gate attention (DGA) bridges and residual refine
# blocks, a classifier at 1/2 resolution and deep supervision, all trained
# with the boundary-interior correction loss. Chosen on the design hold-out
# (docs/design_study.md). As trained it counts 0.289 M parameters and
# 0.286 GFLOPs at 1x3x256x256
# (mmengine's analyzer, one multiply-add = one FLOP); see
# tools/analysis_tools/get_flops.py and configs/dsnet/README.md.
# ``deploy=True`` in backbone and head builds the re-parameterised form that
# ``reparameterize_model`` produces (load a re-parameterised checkpoint).
# Every width is a multiple of 16, onnxruntime's CPU channel block.
norm_cfg = dict(type='BN', requires_grad=True)
act_cfg = dict(type='ReLU', inplace=True)
widths = [16, 80, 96, 128, 160]
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='DSNet',
        in_channels=3,
        widths=widths,
        num_blocks=[1, 4, 4, 2, 2],
        stem_stride=2,
        downsample='avg_pool',
        dilations=[1, 1, 2, 2, 1],
        shortcut=True,
        zero_init_residual=True,
        radial_channel=True,
        out_indices=(0, 1, 2, 3, 4),
        conv_type='desd',
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
        deploy=False),
    decode_head=dict(
        type='DSNetHead',
        in_channels=widths,
        in_index=[0, 1, 2, 3, 4],
        channels=widths[0],
        use_gate=True,
        conv_type='desd',
        refine_blocks=[0, 1, 1, 0],
        refine_dilations=[1, 1, 2, 1],
        final_block=False,
        deep_supervision=True,
        aux_loss_weights=[0.4, 0.2, 0.1],
        deploy=False,
        num_classes=2,
        out_channels=1,
        threshold=0.5,
        dropout_ratio=0.0,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
        align_corners=False,
        loss_decode=dict(
            type='BoundaryInteriorLoss',
            bce_weight=1.0,
            dice_weight=1.0,
            boundary_weight=1.0,
            interior_weight=0.5,
            band_width=2,
            region_loss='bce',
            loss_weight=1.0,
            loss_name='loss_bic')),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
