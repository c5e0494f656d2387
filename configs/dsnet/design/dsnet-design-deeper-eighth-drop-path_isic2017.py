# Thirteenth-round candidate: the default (the eighth round's design) with
# stochastic depth: each residual DESDConv block's branch is dropped for a
# whole sample with a probability rising linearly to 0.1 at the last block.
# On design E the same regulariser was the largest single gain seen on the
# 30-epoch hold-out (fifth round). Nothing changes at inference.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(backbone=dict(drop_path_rate=0.1))
