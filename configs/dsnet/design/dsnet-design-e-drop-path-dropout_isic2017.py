# Design candidate E with both zero-cost regularisers of the fifth design
# round: stochastic depth rising to 0.1 at the last residual DESDConv block
# and channel dropout (p = 0.1) on the features the classifier reads.
# Nothing changes at inference.
_base_ = ['./dsnet-design-e_isic2017.py']
model = dict(
    backbone=dict(drop_path_rate=0.1), decode_head=dict(dropout_ratio=0.1))
