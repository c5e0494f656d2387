# EGE-UNet (Ruan et al., MICCAI 2023): the whole U-Net is the backbone; the
# head is only the paper's final 1x1 classifier plus the deep supervision of
# the five decoder mask predictions (weights 0.5 .. 0.1, fine to coarse).
# Loss: BCE + Dice on the lesion logit, as in the paper ("BceDice").
# 0.0534 M parameters; 0.0721 GFLOPs counting only conv multiply-adds (the
# paper's thop convention, published 0.053 M / 0.072 G); 0.0850 GFLOPs with
# mmengine's analyzer (get_flops.py), which also counts norms and resizes.
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
        type='EGEUNet',
        in_channels=3,
        channels=(8, 16, 24, 32, 48, 64),
        memory_size=8,
        dilations=(1, 2, 5, 7)),
    decode_head=dict(
        type='LightweightClsHead',
        in_channels=8,
        channels=8,
        in_index=0,
        aux_in_index=(1, 2, 3, 4, 5),
        aux_loss_weights=(0.5, 0.4, 0.3, 0.2, 0.1),
        num_classes=2,
        out_channels=1,
        threshold=0.5,
        dropout_ratio=0.0,
        align_corners=False,
        loss_decode=[
            dict(
                type='CrossEntropyLoss',
                use_sigmoid=True,
                avg_non_ignore=True,
                loss_weight=1.0),
            dict(type='BinaryDiceLoss', smooth=1.0, loss_weight=1.0)
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
