# Shared 256x256 binary lesion-segmentation data settings. Year/protocol files
# below set ``dataset_type``, ``data_root`` and the split files.
dataset_type = 'ISIC2017Dataset'
data_root = 'data/isic2017'
crop_size = (256, 256)
train_split = 'splits/lightweight_train.txt'
val_split = 'splits/lightweight_test.txt'
test_split = 'splits/lightweight_test.txt'

# The literature's augmentation: resize to 256x256 (aspect ratio not kept),
# random horizontal and vertical flips and a random rotation.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRotate', prob=0.5, degree=180, pad_val=0, seg_pad_val=255),
    dict(type='PackSegInputs')
]
# Ground truth is loaded after the resize, so it stays at the original
# resolution; LesionMetric reports figures at 256x256 and at that resolution.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=train_split,
        data_prefix=dict(img_path='images', seg_map_path='masks'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=val_split,
        data_prefix=dict(img_path='images', seg_map_path='masks'),
        pipeline=test_pipeline))
# The test loader is the validation loader on the test split.
test_dataloader = dict(
    val_dataloader, dataset=dict(val_dataloader['dataset'], ann_file=test_split))
val_evaluator = dict(type='LesionMetric')
test_evaluator = val_evaluator
