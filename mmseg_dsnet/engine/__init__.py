"""Training-engine additions: hooks that make runs reproducible after a
resume, save checkpoints crash-safely and stop runs cleanly on faults, the
set-up of distributed runs without CUDA, and the pre-flight checks of the
train/test tools."""
from .atomic_file_backend import AtomicLocalBackend, register_atomic_backend
from .cli_errors import describe_user_error, run_reporting_user_errors
from .cpu_distributed import check_launched, setup_cpu_distributed
from .dist_shutdown import finish_distributed
from .hooks import (AtomicCheckpointHook, BadSampleSummaryHook,
                    NonFiniteLossHook, NumClassesCheckHook,
                    ReseedPerEpochHook)
from .preflight import (ConfigKeyError, ThresholdMismatchError, WorkDirError,
                        check_config_keys, check_dataset_classes,
                        check_decision_thresholds, check_empty_output_dir,
                        check_evaluation_loaders, check_lesion_metrics,
                        check_save_best, check_val_keys_together,
                        check_model_builds, check_no_earlier_run,
                        check_output_file, check_pipelines_build,
                        check_work_dir,
                        pick_resume_checkpoint)

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'register_atomic_backend',
    'check_launched', 'setup_cpu_distributed', 'BadSampleSummaryHook',
    'NonFiniteLossHook',
    'NumClassesCheckHook', 'ReseedPerEpochHook', 'ConfigKeyError',
    'ThresholdMismatchError', 'WorkDirError', 'check_config_keys',
    'check_dataset_classes',
    'check_decision_thresholds', 'check_empty_output_dir',
    'check_evaluation_loaders', 'check_lesion_metrics', 'check_save_best',
    'check_val_keys_together',
    'check_model_builds', 'check_no_earlier_run', 'check_output_file',
    'check_pipelines_build',
    'check_work_dir',
    'pick_resume_checkpoint', 'describe_user_error',
    'run_reporting_user_errors', 'finish_distributed'
]
