# The lightweight-literature schedule (MALUNet / EGE-UNet / DSNet): AdamW
# lr 1e-3, weight decay 1e-2, cosine annealing with T_max = 50 epochs down to
# 1e-5 (restarting every 50 epochs, as torch's CosineAnnealingLR does when run
# past T_max), batch 8, 300 epochs, epoch-based.
max_epochs = 300
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-2))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=50,
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# default_hooks (checkpoint every 10 epochs, keep 2, best by IoU) are in
# ../default_runtime.py.
