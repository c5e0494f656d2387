"""Checks the train/test tools run before building a runner, so that a
config typo, an unwritable work dir or a broken checkpoint is reported in
one clear line instead of a traceback hours into a run.

One module per concept: :mod:`.config` (loading a config, its keys and
``--cfg-options``), :mod:`.model` (building the model, the registry scope,
the trainable form), :mod:`.data` (pipelines, dataset classes, loaders),
:mod:`.evaluation` (the evaluators' arguments, figures and thresholds),
:mod:`.validation` (validation during training, the best checkpoint) and
:mod:`.work_dir` (the work dir, output files, the checkpoint to resume).
Every check is importable from here."""
from .config import (COMMON_VARIABLES, RUNNER_KEYS, ConfigFileError,
                     ConfigKeyError, ConfigOptionError, ConfigOptionsAction,
                     MissingInputError,
                     apply_cfg_options, check_auto_scale_lr,
                     check_config_keys, check_config_sets,
                     check_env_cfg_keys,
                     check_input_file, check_options_take_effect,
                     check_loop_keys, check_training_schedule,
                     load_config, train_loop_class,
                     load_tool_config, set_work_dir)
from .data import (LOADER_PHASES, PipelineConfigError, check_batch_sizes,
                   check_dataset_classes, check_evaluation_loaders,
                   check_held_out_images, check_images_scored_once,
                   check_loader_keys, check_loader_workers,
                   check_pipelines_build,
                   check_training_batches, dataset_classes)
from .evaluation import (ThresholdMismatchError, check_decision_thresholds,
                         check_distinct_figure_names, check_lesion_metrics,
                         check_one_lesion_figure_set, check_tta_model,
                         mask_threshold)
from .model import (build_scope, check_inference_mode, check_load_from,
                    check_model_builds, check_optimizer_builds,
                    check_paramwise_keys,
                    check_pretrained_checkpoints, check_schedulers_build,
                    check_trainable_model,
                    deploy_form_parts)
from .validation import (check_checkpoint_hook_keys, check_save_best,
                         check_val_cfg,
                         check_val_keys_together, has_val_loop,
                         save_best_rule, validates_on,
                         validates_on_images_of)
# _file_in_path too: mmseg_dsnet.leaderboard.board imports it from here.
from .work_dir import (WorkDirBusyError, WorkDirError, _file_in_path,
                       check_config_not_dumped_over, check_empty_output_dir,
                       check_new_output_file, check_no_earlier_run,
                       check_output_file, check_work_dir,
                       pick_resume_checkpoint, training_work_dir_lock)

__all__ = [
    'COMMON_VARIABLES', 'RUNNER_KEYS', 'ConfigFileError', 'ConfigKeyError',
    'ConfigOptionError', 'ConfigOptionsAction', 'MissingInputError',
    'check_auto_scale_lr',
    'check_config_keys', 'check_env_cfg_keys',
    'check_config_sets', 'check_input_file', 'check_options_take_effect',
    'check_loop_keys', 'check_training_schedule', 'train_loop_class',
    'load_config', 'apply_cfg_options',
    'load_tool_config', 'set_work_dir', 'LOADER_PHASES',
    'PipelineConfigError',
    'check_batch_sizes', 'check_dataset_classes', 'check_evaluation_loaders',
    'check_held_out_images', 'check_images_scored_once',
    'check_loader_keys', 'check_loader_workers',
    'check_pipelines_build', 'check_training_batches', 'dataset_classes',
    'ThresholdMismatchError',
    'check_decision_thresholds', 'check_distinct_figure_names',
    'check_lesion_metrics', 'check_one_lesion_figure_set', 'check_tta_model',
    'mask_threshold', 'build_scope', 'check_inference_mode',
    'check_load_from',
    'check_model_builds', 'check_optimizer_builds', 'check_paramwise_keys',
    'check_schedulers_build',
    'check_pretrained_checkpoints',
    'check_trainable_model', 'deploy_form_parts',
    'check_checkpoint_hook_keys', 'check_save_best',
    'check_val_cfg', 'check_val_keys_together', 'has_val_loop', 'validates_on',
    'validates_on_images_of',
    'WorkDirBusyError', 'WorkDirError', 'training_work_dir_lock',
    'check_config_not_dumped_over', 'check_empty_output_dir',
    'check_new_output_file', 'check_no_earlier_run', 'check_output_file',
    'check_work_dir', 'pick_resume_checkpoint'
]
