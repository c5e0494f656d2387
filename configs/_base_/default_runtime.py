# Runtime shared by every config of this project.
custom_imports = dict(imports=['mmseg_dsnet'], allow_failed_imports=False)
default_scope = 'mmseg'
# Distributed runs use nccl. On a host without CUDA, tools/train.py and
# tools/test.py start the processes with backend='gloo' and set
# model_wrapper_cfg to DDP without device_ids (setup_cpu_distributed; both
# are written into the run's config). Set dist_cfg.backend='gloo' here to
# use gloo on GPUs too.
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
# Checkpoints every 10 epochs (the schedule validates every 10), keeping the
# last 2 and the best by IoU. AtomicCheckpointHook is mmengine's
# CheckpointHook made crash-safe: each checkpoint is written to a hidden
# temporary file and renamed into place once complete, and old/best
# checkpoints are deleted only after the new one is saved
# (docs/reliability.md). type='CheckpointHook' turns this off.
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=True),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=True,
        interval=10,
        max_keep_ckpts=2,
        save_best='IoU',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
# load_from / resume / tools/test.py load strictly (StrictCheckpointHook): a
# missing, unexpected or mis-shaped key stops the run. Set False to start
# from a partial checkpoint on purpose (e.g. backbone weights only).
load_from_strict = True
# tools/test.py --tta: the mean lesion probability of the tta_pipeline's views
# (mmseg's SegTTAModel would apply a second sigmoid to 1-channel outputs).
tta_model = dict(type='LesionTTAModel')
# Reproducible runs: every epoch reseeds all generators from (seed, epoch), so
# a run resumed after a kill ends with the same weights as an uninterrupted
# one. For bit-exact results also set deterministic=True (slower cuDNN
# kernels) and num_workers=0 or persistent_workers=False (docs/reliability.md).
randomness = dict(seed=0)
# Fault handling (docs/reliability.md): reseeding per epoch, stopping on a
# NaN/inf loss before any checkpoint holds it, counting skipped bad samples,
# checking the head's num_classes against the dataset and every loaded
# checkpoint against the model (load_from_strict), and stopping the
# loaders' persistent worker processes when a run ends (a process that goes
# on, such as tools/check_real_data.py, does not keep them). In distributed
# runs SyncBuffersHook averages BatchNorm statistics over the processes
# before each validation and checkpoint (a no-op in one process).
custom_hooks = [
    dict(type='SyncBuffersHook'),
    dict(type='ReseedPerEpochHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='BadSampleSummaryHook'),
    dict(type='NumClassesCheckHook'),
    dict(type='StrictCheckpointHook'),
    dict(type='StopLoaderWorkersHook'),
]
