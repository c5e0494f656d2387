# Fourteenth-round candidate: the default design with the depthwise
# convolutions of the encoder stages at 1/16 and 1/32 padding their input
# by repeating the border pixels instead of zeros. At the 128x128 design
# input those maps are 8x8 and 4x4, and three quarters of their positions
# read taps outside the map; the lesion pixels the design runs miss sit at
# the rim of lesions that reach the border of the picture.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(
    backbone=dict(
        padding_modes=['zeros', 'zeros', 'zeros', 'replicate', 'replicate']))
