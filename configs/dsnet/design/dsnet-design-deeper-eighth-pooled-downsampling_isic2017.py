# The default with each later stage's first block reading the mean of each
# 2x2 pixel block at stride 1 instead of downsampling with its stride-2
# depthwise convolution. A 3x3 stride-2 convolution centres output pixel i
# on input pixel 2i, half a pixel off the 2i + 0.5 that the decoder's
# bilinear upsampling (align_corners=False) assumes, so every level lies half
# a pixel of the level above it off its place where the bridges add them;
# the 2x2 mean is centred and does not alias. Same weights and
# multiply-adds; the four poolings add 0.72 M additions at 256x256.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(backbone=dict(downsample='avg_pool'))
