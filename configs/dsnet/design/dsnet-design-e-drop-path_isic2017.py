# Design candidate E with stochastic depth: each residual DESDConv block's
# branch is dropped for a whole sample with a probability rising linearly to
# 0.1 at the last block (a regulariser for the 30-epoch schedule, on which E
# stops improving on the hold-out). Nothing changes at inference.
_base_ = ['./dsnet-design-e_isic2017.py']
model = dict(backbone=dict(drop_path_rate=0.1))
