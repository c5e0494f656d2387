# The default with its side outputs averaged into the prediction (as in
# dsnet-design-deeper-eighth-fused-sides) and that average trained: the BIC
# loss is also applied to the fused logits, with the main loss's weight, so
# the side classifiers learn to complement the main one.
_base_ = ['./dsnet-design-deeper-eighth-fused-sides_isic2017.py']
model = dict(decode_head=dict(fused_loss_weight=1.0))
