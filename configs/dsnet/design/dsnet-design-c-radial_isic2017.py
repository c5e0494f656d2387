# Design candidate C with the distance-from-centre map as a fourth input
# channel of the stem (lesions are centred, corners vignetted; invariant to
# the training flips and rotations).
_base_ = ['./dsnet-design-c_isic2017.py']
model = dict(backbone=dict(radial_channel=True))
