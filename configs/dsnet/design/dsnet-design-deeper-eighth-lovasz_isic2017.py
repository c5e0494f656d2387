# The default with a Lovasz hinge term beside the BIC loss, on the main and
# the side outputs alike: a convex surrogate of the IoU pooled over the
# batch's pixels, as the leaderboard pools its lesion IoU over the test
# set. Training only; the deployed model is the default's.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(
    decode_head=dict(loss_decode=[
        {{_base_.model.decode_head.loss_decode}},
        dict(type='LovaszHingeLoss', per_image=False, loss_weight=0.5,
             loss_name='loss_lovasz'),
    ]))
