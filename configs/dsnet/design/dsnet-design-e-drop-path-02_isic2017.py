# Design candidate E with stronger stochastic depth: each residual DESDConv
# block's branch is dropped for a whole sample with a probability rising
# linearly to 0.2 at the last block (twice the rate of
# dsnet-design-e-drop-path). Nothing changes at inference.
_base_ = ['./dsnet-design-e_isic2017.py']
model = dict(backbone=dict(drop_path_rate=0.2))
