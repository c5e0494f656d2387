# Ablation: DSNet trained with BCE + Dice (lesion class) instead of the
# boundary-interior correction loss. Everything else as dsnet_isic2017.py.
_base_ = ['./dsnet_isic2017.py']
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            avg_non_ignore=True,
            loss_weight=1.0,
            loss_name='loss_bce'),
        dict(type='BinaryDiceLoss', loss_weight=1.0, loss_name='loss_dice')
    ]))
