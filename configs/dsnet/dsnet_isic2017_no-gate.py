# Ablation: DSNet with plain skip connections (proj(enc + dec)) instead of
# the dynamic gate attention bridges. Everything else as dsnet_isic2017.py.
_base_ = ['./dsnet_isic2017.py']
model = dict(decode_head=dict(use_gate=False))
