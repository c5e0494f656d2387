# The default trained with colour augmentation added to the literature's
# flips and rotation: mmseg's PhotoMetricDistortion after the resize, at
# half its default strengths (brightness +-16, contrast and saturation
# 0.75-1.25, hue +-9), since the colour contrast between lesion and skin is
# the cue being learned. Dermoscopes and lighting differ from photo to photo;
# the default fits its training images about two points better than
# EGE-UNet and generalises worse (docs/design_study.md). Training only: the
# model, its FLOPs and its graph are the default's.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
colour_augmentation = dict(
    type='PhotoMetricDistortion',
    brightness_delta=16,
    contrast_range=(0.75, 1.25),
    saturation_range=(0.75, 1.25),
    hue_delta=9)
# After loading and resizing, before the flips and the rotation (so the black
# corners the rotation pads stay black).
train_pipeline = [
    *_base_.train_pipeline[:3], colour_augmentation,
    *_base_.train_pipeline[3:]
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
