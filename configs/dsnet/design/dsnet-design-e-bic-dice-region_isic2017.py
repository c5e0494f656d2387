# Design candidate E with the boundary and interior terms of the BIC loss
# scored as soft Dice restricted to each region (region_loss='dice') instead
# of a BCE averaged over it: overlap-based, so the thin boundary band is not
# weighted like a second image.
_base_ = ['./dsnet-design-e_isic2017.py']
model = dict(decode_head=dict(loss_decode=dict(region_loss='dice')))
