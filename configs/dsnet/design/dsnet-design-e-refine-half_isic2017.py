# Design candidate E with one more residual refine block in the head, at 1/2
# resolution (refine blocks 1, 1, 1, 0 from 1/2 to 1/16), just before the
# classifier: spends part of the FLOP headroom where the mask is drawn.
_base_ = ['./dsnet-design-e_isic2017.py']
model = dict(decode_head=dict(refine_blocks=[1, 1, 1, 0]))
