# Design candidate E with a sub-pixel classifier: the classifier at 1/2
# resolution predicts 4 logits per position, laid out at full resolution by
# a pixel shuffle (a learned upsampling instead of the bilinear one; 48 more
# weights, no convolution at full resolution).
_base_ = ['./dsnet-design-e_isic2017.py']
model = dict(decode_head=dict(pixel_shuffle=2))
