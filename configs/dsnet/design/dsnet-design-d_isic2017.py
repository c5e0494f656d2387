# Design candidate D: candidate C with both changes that helped it on the
# design hold-out: dilation 2 at 1/8 and 1/16 (and in the refine block at
# 1/8) and the distance-from-centre input channel.
_base_ = ['./dsnet-design-c-dilated_isic2017.py']
model = dict(backbone=dict(radial_channel=True))
