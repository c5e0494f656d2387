# DSNet v1 (the first design) on ISIC 2017 Task 1, lightweight protocol,
# 256x256, the literature's schedule (AdamW 1e-3, cosine T_max 50 epochs,
# batch 8, 300 epochs).
_base_ = [
    '../_base_/models/dsnet-v1.py',
    '../_base_/datasets/isic2017_lightweight.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_300e_adamw_cosine.py'
]
data_preprocessor = dict(size=_base_.crop_size)
model = dict(data_preprocessor=data_preprocessor)
