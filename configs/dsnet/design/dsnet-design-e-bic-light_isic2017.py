# Design candidate E with a lighter BIC correction: boundary-band BCE at
# weight 0.25 and no separate interior term (the image-wide BCE and Dice
# already cover the interior).
_base_ = ['./dsnet-design-e_isic2017.py']
model = dict(
    decode_head=dict(
        loss_decode=dict(boundary_weight=0.25, interior_weight=0.0)))
