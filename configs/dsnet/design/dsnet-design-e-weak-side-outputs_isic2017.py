# Design candidate E with half the deep-supervision weights (0.2, 0.1, 0.05
# at 1/4, 1/8, 1/16): the opposite direction of the strong side outputs.
_base_ = ['./dsnet-design-e_isic2017.py']
model = dict(decode_head=dict(aux_loss_weights=[0.2, 0.1, 0.05]))
