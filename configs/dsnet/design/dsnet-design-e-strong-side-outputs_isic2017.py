# Design candidate E with the side outputs (deep supervision at 1/4, 1/8 and
# 1/16) weighted 0.8, 0.4 and 0.2 instead of 0.4, 0.2 and 0.1: deep
# supervision is the part whose removal costs most, so the candidate asks
# whether more of it helps. Training and deployment cost are unchanged.
_base_ = ['./dsnet-design-e_isic2017.py']
model = dict(decode_head=dict(aux_loss_weights=[0.8, 0.4, 0.2]))
