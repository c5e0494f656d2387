# Design candidate E with channel dropout (p = 0.1) on the features the
# classifier reads, as most mmseg decode heads train (a regulariser for the
# 30-epoch schedule, on which E stops improving on the hold-out). Nothing
# changes at inference.
_base_ = ['./dsnet-design-e_isic2017.py']
model = dict(decode_head=dict(dropout_ratio=0.1))
