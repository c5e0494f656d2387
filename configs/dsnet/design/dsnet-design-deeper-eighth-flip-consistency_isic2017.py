# The default trained on every batch together with a flipped copy of it
# (horizontal, vertical or both, drawn per step) and a term that pulls the
# two answers together (FlipConsistentEncoderDecoder): test-time flips gain
# about a point on the design hold-out, so one pass's answer depends on the
# picture's orientation. Inference, parameters and FLOPs are the default's;
# a training step costs about twice as much.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(type='FlipConsistentEncoderDecoder', consistency_weight=1.0)
