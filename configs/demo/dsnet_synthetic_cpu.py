# The README's main job: DSNet on the embedded synthetic ISIC-like set
# (made and converted by tools/demo.py), a short CPU schedule (a few minutes
# on 2 cores). Same model, data pipeline and optimiser as
# configs/dsnet/dsnet_isic2018.py; only the schedule is shortened.
_base_ = ['../dsnet/dsnet_isic2018.py']
data_root = 'data/synthetic_isic2018'
max_epochs = 12
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
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
