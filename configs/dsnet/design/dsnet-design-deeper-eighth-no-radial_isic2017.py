# The default (the eighth round's design) without the distance-from-centre
# channel: the stem reads the image alone, so the network has no explicit
# prior that lesions sit in the middle of the picture.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(backbone=dict(radial_channel=False))
