# The default with its side outputs averaged into the prediction: at
# inference the main logits and the deep-supervision classifiers' logits at
# 1/4, 1/8 and 1/16 (resized to the main logits) are averaged with the
# weights of their losses (1, 0.4, 0.2, 0.1). Training is the default's;
# the three 1x1 classifiers stay in the deployed model.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(decode_head=dict(fuse_side_outputs=True))
