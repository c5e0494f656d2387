# The default with a 4x4 stem at stride 2 (one pixel of padding) instead of
# a 3x3 one. The 3x3 stem centres output pixel i on input pixel 2i, half a
# pixel off the 2i + 0.5 that the bilinear upsampling of the classifier's
# 1/2-resolution logits (align_corners=False) assumes; pooled downsampling
# keeps every later level on the stem's grid, so the offset is the stem's
# alone. The 4x4 kernel reads rows and columns 2i - 1 to 2i + 2, centred on
# 2i + 0.5. 448 more weights, 7.3 M more multiply-adds at 256x256.
_base_ = ['./dsnet-design-deeper-eighth-pooled-downsampling_isic2017.py']
model = dict(backbone=dict(stem_kernel_size=4))
