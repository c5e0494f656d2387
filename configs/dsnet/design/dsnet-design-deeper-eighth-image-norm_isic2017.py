# The default (the eighth round's design) with per-image colour
# standardisation: each image's channels are brought to zero mean and unit
# variance over its own pixels before the stem, so a dermoscope's white
# balance or exposure is no longer something the network can fit.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(backbone=dict(image_norm=True))
