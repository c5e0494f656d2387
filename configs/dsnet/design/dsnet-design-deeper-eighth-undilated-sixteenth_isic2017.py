# The default without dilation at 1/16: its second block there reads the
# 3x3 neighbourhood instead of every other position of a 5x5 one. At 128x128
# the 1/16 map is 8x8, so a dilated tap often falls into the zero padding.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(backbone=dict(dilations=[1, 1, 2, 1, 1]))
