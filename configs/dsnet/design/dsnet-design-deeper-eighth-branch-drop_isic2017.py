# The default (the eighth round's design) with branch drop: during training
# each DESDConv drops each channel's difference-branch kernels with
# probability 0.2 (kept ones scaled by 1 / 0.8), so the five branches are a
# structured noise on the kernel rather than only a re-parameterisation of
# it. Evaluation, export and the deployed model are unchanged.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(
    backbone=dict(branch_drop=0.2), decode_head=dict(branch_drop=0.2))
