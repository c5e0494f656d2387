# DSNet v1, the first design (kept so that its leaderboard rows stay
# reproducible): a stride-1 stem, one DESDConv per stage in the first four
# stages, a DGA bridge and a DESDConv at every level up to full resolution,
# BIC loss, no deep supervision. 0.29 M parameters and 0.29 GFLOPs at
# 1x3x256x256 (mmengine's analyzer, one multiply-add = one FLOP).
# ``deploy=True`` in backbone and head builds the re-parameterised form that
# ``reparameterize_model`` produces (load a re-parameterised checkpoint).
norm_cfg = dict(type='BN', requires_grad=True)
act_cfg = dict(type='ReLU', inplace=True)
widths = [16, 32, 64, 128, 144, 224]
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
        num_blocks=[1, 1, 1, 1, 2, 2],
        stem_stride=1,
        shortcut=False,
        out_indices=(0, 1, 2, 3, 4, 5),
        conv_type='desd',
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
        deploy=False),
    decode_head=dict(
        type='DSNetHead',
        in_channels=widths,
        in_index=[0, 1, 2, 3, 4, 5],
        channels=16,
        use_gate=True,
        conv_type='desd',
        final_block=True,
        deep_supervision=False,
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
