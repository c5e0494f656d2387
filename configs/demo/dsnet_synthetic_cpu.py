# The README's main job: DSNet on the embedded synthetic ISIC-like set
# (made and converted by tools/demo.py) with a short CPU schedule (a few
# minutes on 2 cores). Same model, augmentation and optimiser as
# configs/dsnet/dsnet_isic2018.py, but 128x128 inputs (4x cheaper than
# 256x256), a higher learning rate and 20 epochs, so that it learns in
# minutes.
_base_ = ['../dsnet/dsnet_isic2018.py']
data_root = 'data/synthetic_isic2018'
crop_size = (128, 128)
max_epochs = 20
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRotate', prob=0.5, degree=180, pad_val=0, seg_pad_val=255),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
model = dict(data_preprocessor=dict(size=crop_size))
train_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='LesionMetric', low_res_size=crop_size)
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=3e-3))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=max_epochs, save_best=None, max_keep_ckpts=1))
