# The default whose DGA bridges at 1/2, 1/4 and 1/8 also read the lesion
# probability the next coarser level's side output predicts (upsampled):
# deep supervision's maps guide where encoder detail passes the gate, which
# matters at the lesion's edge. 49 weights per guided gate, starting at zero
# (the candidate starts as the default); the three side-output classifiers
# stay in the deployed model.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(decode_head=dict(guided_gates=True))
