# Runtime shared by every config of this project.
custom_imports = dict(imports=['mmseg_dsnet'], allow_failed_imports=False)
default_scope = 'mmseg'
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
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
tta_model = dict(type='SegTTAModel')
# Reproducible runs: every epoch reseeds all generators from (seed, epoch), so
# a run resumed after a kill ends with the same weights as an uninterrupted
# one. For bit-exact results also set deterministic=True (slower cuDNN
# kernels) and num_workers=0 or persistent_workers=False (docs/reliability.md).
randomness = dict(seed=0)
# Fault handling (docs/reliability.md): reseeding per epoch, stopping on a
# NaN/inf loss before any checkpoint holds it, counting skipped bad samples,
# checking the head's num_classes against the dataset and every loaded
# checkpoint against the model (load_from_strict). In distributed
# runs SyncBuffersHook averages BatchNorm statistics over the processes
# before each validation and checkpoint (a no-op in one process).
custom_hooks = [
    dict(type='SyncBuffersHook'),
    dict(type='ReseedPerEpochHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='BadSampleSummaryHook'),
    dict(type='NumClassesCheckHook'),
    dict(type='StrictCheckpointHook'),
]
