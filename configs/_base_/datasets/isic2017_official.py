# ISIC 2017 Task 1 at 256x256, official protocol: the challenge's own training, validation
# and test splits; checkpoints are selected on validation, reported on test.
_base_ = './isic_256x256.py'
dataset_type = 'ISIC2017Dataset'
data_root = 'data/isic2017'
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='splits/official_train.txt'))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=data_root,
        ann_file='splits/official_val.txt'))
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='splits/official_test.txt'))
