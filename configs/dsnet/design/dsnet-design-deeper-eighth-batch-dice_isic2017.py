# Eighteenth-round candidate: the default design with the BIC loss's Dice
# term taken over all the pixels of the batch at once instead of per image.
# Per image, half of a small lesion missed costs as much as half of one that
# fills the picture; the pooled IoU the models are ranked by counts pixels,
# so there the large lesion's miss weighs far more. Same weights, FLOPs and
# deployed graph as the default: only the training loss changes.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(
    decode_head=dict(loss_decode=dict(dice_reduction='batch')))
