# Nineteenth-round candidate: the default design with the BIC loss's
# per-image Dice term weighted 2 instead of 1. Taking the Dice over the
# batch's pixels instead (eighteenth round) lost on the design hold-out, in
# pooled and in per-image IoU alike: weighing every image the same helps, and
# this candidate asks whether more of it helps more. Same weights, FLOPs and
# deployed graph as the default: only the training loss changes.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(decode_head=dict(loss_decode=dict(dice_weight=2.0)))
