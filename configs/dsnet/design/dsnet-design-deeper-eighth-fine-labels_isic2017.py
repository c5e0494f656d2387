# The default trained against labels at twice the input's side: the mask is
# loaded after the input's Resize and resized to twice the input (from the
# file, not from a mask already shrunk to the input with nearest neighbour,
# which moves the rim by up to half an input pixel). The loss resizes the
# logits to the labels, so the rim is scored at the resolution the metric
# reads (the mask files' 256 px side at a 128 px input). The BIC band keeps
# its width in the picture: 4 label pixels are 2 input pixels. Training
# only: the model, its FLOPs and its graph are the default's.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
# LoadImageFromFile, Resize, LoadAnnotations, then the labels' size, then the
# flips and the rotation, which move image and labels alike.
train_pipeline = [
    _base_.train_pipeline[0], _base_.train_pipeline[2],
    _base_.train_pipeline[1],
    dict(type='ResizeLabels', scale_factor=2), *_base_.train_pipeline[3:]
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
model = dict(
    decode_head=dict(loss_decode=dict(band_width=4)))
