"""Training-engine additions: hooks that make runs reproducible after a
resume and stop them cleanly on faults, and the pre-flight checks of the
train/test tools."""
from .cli_errors import describe_user_error, run_reporting_user_errors
from .dist_shutdown import finish_distributed
from .hooks import (BadSampleSummaryHook, NonFiniteLossHook,
                    NumClassesCheckHook, ReseedPerEpochHook)
from .preflight import (ConfigKeyError, DataRootError, SyntheticDataError,
                        WorkDirError, check_config_keys, check_output_file,
                        check_work_dir, pick_resume_checkpoint)

__all__ = [
    'BadSampleSummaryHook', 'NonFiniteLossHook', 'NumClassesCheckHook',
    'ReseedPerEpochHook', 'ConfigKeyError', 'DataRootError',
    'SyntheticDataError', 'WorkDirError', 'check_config_keys',
    'check_output_file', 'check_work_dir', 'pick_resume_checkpoint',
    'describe_user_error', 'run_reporting_user_errors', 'finish_distributed'
]
