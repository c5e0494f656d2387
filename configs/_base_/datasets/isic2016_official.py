# ISIC 2016 Task 1 at 256x256, official protocol: the challenge's own training and test
# splits. ISIC 2016 has no validation set: official_val is 10 % of the
# challenge's training set held out with a fixed seed and removed from
# official_train (tools/dataset_converters/isic.py); checkpoints are selected
# on it, reported on test.
_base_ = './isic_256x256.py'
dataset_type = 'ISIC2016Dataset'
data_root = 'data/isic2016'
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
