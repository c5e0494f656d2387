from .atomic_checkpoint_hook import AtomicCheckpointHook
from .bad_sample_summary_hook import BadSampleSummaryHook
from .batch_norm_recalibration_hook import BatchNormRecalibrationHook
from .loader_workers_hook import StopLoaderWorkersHook
from .non_finite_loss_hook import NonFiniteLossHook
from .num_classes_check_hook import NumClassesCheckHook
from .reseed_per_epoch_hook import ReseedPerEpochHook
from .strict_checkpoint_hook import StrictCheckpointHook

__all__ = [
    'AtomicCheckpointHook', 'BadSampleSummaryHook',
    'BatchNormRecalibrationHook', 'NonFiniteLossHook',
    'NumClassesCheckHook', 'ReseedPerEpochHook', 'StopLoaderWorkersHook',
    'StrictCheckpointHook'
]
