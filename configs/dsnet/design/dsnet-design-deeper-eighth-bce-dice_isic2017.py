# Reference for the ninth round: the default (the eighth round's design)
# trained with BCE + Dice instead of the boundary-interior correction loss,
# as the ablation dsnet_isic2017_bce-dice.py, named for the design records.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
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
