# ISIC 2017 Task 1 at 256x256, official protocol: the challenge's own training, validation
# and test splits; checkpoints are selected on validation, reported on test.
_base_ = './isic_256x256.py'
dataset_type = 'ISIC2017Dataset'
data_root = 'data/isic2017'
# The split names of ./isic_256x256.py too, so that a dumped config says
# what its loaders read.
train_split = 'splits/official_train.txt'
val_split = 'splits/official_val.txt'
test_split = 'splits/official_test.txt'
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=train_split))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=data_root,
        ann_file=val_split))
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=test_split))
