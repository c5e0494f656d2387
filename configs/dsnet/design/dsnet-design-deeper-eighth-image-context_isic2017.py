# Sixteenth-round candidate: the default design with the image's summary
# added to every pixel of the deepest encoder feature (1/32): its channels
# averaged over the picture, a 24-channel 1x1 bottleneck and back, starting
# at zero. The design runs miss the rim of lesions that fill the picture;
# whether a lesion does is a property of the whole image.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(backbone=dict(image_context_channels=24))
