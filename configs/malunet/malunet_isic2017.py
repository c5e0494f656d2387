# Lightweight anchor: MALUNet (BIBM 2022), written from its paper for this project,
# on ISIC 2017, lightweight protocol, same data and schedule as DSNet.
_base_ = [
    '../_base_/models/malunet.py', '../_base_/datasets/isic2017_lightweight.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_300e_adamw_cosine.py'
]
data_preprocessor = dict(size=_base_.crop_size)
model = dict(data_preprocessor=data_preprocessor)
