# The default with a BatchNorm per difference branch in the encoder blocks
# at 1/16 and 1/32 during training (as RepVGG and MobileOne normalise each
# of their branches): each difference response is normalised on its own
# before the five are summed. Re-parameterisation folds the norms away, so
# the deployed graph is the default's. Coarser stages only: each branch is
# convolved on its own in training, and at 1/8 and finer that would take
# the FLOPs as trained past the budget.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(
    backbone=dict(branch_norms=[False, False, False, True, True]))
