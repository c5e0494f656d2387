"""Fast training: decoded-image cache, device-side augmentation and a
CUDA-graph-captured step, several runs at once (``tools/fast_train.py``)."""
from .decoded_cache import (DecodedImageCache, check_plain_dataset,
                            split_train_pipeline)
from .errors import FastTrainingError
from .fast_trainer import (FOLLOWED_HOOKS, FastTrainer, RunSpec,
                           check_cfg_options, check_fast_run_config,
                           check_settings_followed, last_checkpoint_of, shared_training_setup,
                           training_device)
from .gpu_augmentation import BatchedSegAugmentation
from .graph_safe_losses import (graph_safe_losses, masked_accuracy,
                                masked_binary_cross_entropy)
from .training_run import TrainingRun, learning_rate_table

__all__ = [
    'DecodedImageCache', 'check_plain_dataset', 'split_train_pipeline',
    'FastTrainer',
    'FOLLOWED_HOOKS', 'check_cfg_options', 'check_fast_run_config',
    'check_settings_followed',
    'FastTrainingError', 'RunSpec', 'last_checkpoint_of',
    'shared_training_setup',
    'training_device', 'BatchedSegAugmentation', 'graph_safe_losses',
    'masked_accuracy', 'masked_binary_cross_entropy', 'TrainingRun',
    'learning_rate_table'
]
