# MALUNet (Ruan et al., BIBM 2022): the whole U-Net (DGA + IEA stages, SAB and
# CAB on the skips) is the backbone; the head is only the paper's final 1x1
# classifier. Loss: BCE + Dice on the lesion logit, as in the paper.
# 0.1720 M parameters; 0.0861 GFLOPs counting only conv/linear
# multiply-adds (the paper's thop convention, published 0.175 M / 0.083 G);
# 0.0928 GFLOPs with mmengine's analyzer (get_flops.py), which also counts
# norms, pooling and resizes.
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
        type='MALUNet',
        in_channels=3,
        channels=(8, 16, 24, 32, 48, 64),
        dilations=(1, 2, 5, 7),
        expansion=4),
    decode_head=dict(
        type='LightweightClsHead',
        in_channels=8,
        channels=8,
        in_index=0,
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
