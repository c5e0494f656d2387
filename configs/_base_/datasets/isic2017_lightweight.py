# ISIC 2017 Task 1 at 256x256, lightweight-literature protocol: the challenge's training and
# validation sets merged and split 7:3 with a fixed seed (tools/dataset_converters/
# isic.py); the 30 % part is both the validation and the test set, as in the
# literature.
# The best_IoU_*.pth checkpoint that ../default_runtime.py keeps is
# therefore chosen on the test images: report the last one (epoch_300.pth),
# as leaderboard.py and fast_train.py --test do.
_base_ = './isic_256x256.py'
dataset_type = 'ISIC2017Dataset'
data_root = 'data/isic2017'
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='splits/lightweight_train.txt'))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=data_root,
        ann_file='splits/lightweight_test.txt'))
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='splits/lightweight_test.txt'))
