# Ablation: DSNet without deep supervision (only the final 1/2-resolution
# classifier is trained). Everything else as dsnet_isic2017.py.
_base_ = ['./dsnet_isic2017.py']
model = dict(decode_head=dict(deep_supervision=False))
