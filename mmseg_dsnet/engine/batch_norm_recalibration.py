"""BatchNorm statistics recomputed over many training batches with the final
weights ("precise BN").

During training a BatchNorm layer's running mean and variance are an
exponential average (momentum 0.1) of the last few batches; with batches of
eight images that is an estimate from roughly the last hundred pictures,
taken while the weights still moved. Recomputing them with the final weights
as the plain average over a whole pass of the training data gives the
statistics the evaluated network actually produces. Weights are unchanged;
models without BatchNorm (GroupNorm or LayerNorm only) are left as they are.
"""
import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.model import is_model_wrapper
from torch.nn.modules.batchnorm import _BatchNorm

from ..progress import progress_bar


def batch_norm_layers(model):
    """The BatchNorm layers of ``model`` that keep running statistics."""
    return [module for module in model.modules()
            if isinstance(module, _BatchNorm) and module.track_running_stats]


@torch.no_grad()
def recalibrate_batch_norm(model, data_loader, max_batches=None,
                           show_progress=True):
    """Replace every BatchNorm layer's running statistics by their average
    over the batches of ``data_loader``.

    All other layers run in eval mode (no dropout or drop path), so the
    statistics are those of the network as it is evaluated. In distributed
    runs the statistics are averaged over the processes.

    Args:
        model (nn.Module): A segmentor (``data_preprocessor`` and
            ``mode='tensor'`` forward), possibly wrapped.
        data_loader (Iterable[dict]): Batches as mmengine's loaders give
            them, usually the training loader.
        max_batches (int, optional): Stop after this many batches. Defaults
            to None (the whole loader).
        show_progress (bool): Show a progress bar. Defaults to True.

    Returns:
        int: The number of batches averaged (0 when the model has no
        BatchNorm layer; nothing is run then).

    Raises:
        ValueError: The loader gave no batch.
    """
    if is_model_wrapper(model):
        model = model.module
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    was_training = model.training
    momenta = [layer.momentum for layer in layers]
    saved = [(layer.running_mean.clone(), layer.running_var.clone(),
              layer.num_batches_tracked.clone()) for layer in layers]
    model.eval()
    for layer in layers:
        layer.reset_running_stats()
        # momentum None: a cumulative average, every batch weighs the same.
        layer.momentum = None
        layer.train()
    try:
        total = len(data_loader) if hasattr(data_loader, '__len__') else 0
        if max_batches is not None:
            total = min(total, max_batches) if total else max_batches
        bar = progress_bar(total, 'BatchNorm statistics', show_progress,
                           unit='batch')
        seen = 0
        for batch in data_loader:
            if max_batches is not None and seen >= max_batches:
                break
            data = model.data_preprocessor(batch, True)
            model(data['inputs'], data['data_samples'], mode='tensor')
            seen += 1
            bar.update()
        bar.close()
        if seen == 0:
            raise ValueError('the data loader gave no batch to recompute '
                             'the BatchNorm statistics from')
    except BaseException:
        # Leave the model as it was rather than half recalibrated.
        for layer, (mean, var, count) in zip(layers, saved):
            layer.running_mean.copy_(mean)
            layer.running_var.copy_(var)
            layer.num_batches_tracked.copy_(count)
        raise
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.train(was_training)
    if get_world_size() > 1:
        for layer in layers:
            all_reduce(layer.running_mean, op='mean')
            all_reduce(layer.running_var, op='mean')
    return seen


def write_recalibrated_checkpoint(config, checkpoint, out, max_batches=None,
                                  seed=0, overwrite=False, cfg_options=None):
    """Recompute a trained checkpoint's BatchNorm statistics over the
    config's training loader and write the result as a new checkpoint.

    Args:
        config (str): The config the checkpoint was trained with.
        checkpoint (str): The trained checkpoint (loaded strictly).
        out (str): The checkpoint to write; its ``meta`` is the input's
            with ``batch_norm_recalibration`` added.
        max_batches (int, optional): See :func:`recalibrate_batch_norm`.
        seed (int): Seed of the loader's order and augmentation.
        overwrite (bool): Replace an existing ``out``.
        cfg_options (dict, optional): Config overrides.

    Returns:
        dict: ``batches`` averaged and ``layers`` recalibrated.

    Raises:
        UserError: A missing input, ``out`` being an input, a folder, an
            existing file without ``overwrite`` or a file that cannot be
            written, a checkpoint trained at another input size than the
            config's, or a model without BatchNorm layers (nothing is
            written).
    """
    import io
    import os.path as osp

    from mmengine.runner import Runner
    from mmengine.runner.utils import set_random_seed
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from ..apis.released_model import check_trained_input_size
    from ..utils.errors import UserError
    from ..utils.fileio import atomic_write, refuse_folder, refuse_same_file
    from .checkpoint_match import load_checkpoint_strictly
    from .preflight import (check_input_file, check_new_output_file,
                            load_config)

    check_input_file(checkpoint, 'checkpoint')
    refuse_same_file((('the config', config), ('the checkpoint', checkpoint),
                      ('the output', out)),
                     hint='give the recalibrated checkpoint a new name')
    refuse_folder(out)
    check_new_output_file(out, 'OUT', overwrite)
    register_all_modules(init_default_scope=True)
    cfg = load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    # The pass runs the config's training pipeline: at another input size
    # than the weights were trained at, it would write the statistics of
    # images the network never saw beside weights that look unchanged.
    check_trained_input_size(
        cfg, config, checkpoint,
        advice='recalibrate it with the config it was trained with')
    model = MODELS.build(cfg.model)
    if not batch_norm_layers(model):
        raise UserError(f'{config} builds a model without BatchNorm layers; '
                        'there are no statistics to recompute')
    loaded = load_checkpoint_strictly(
        model, checkpoint, config,
        hint='Give the config the checkpoint was trained with.')
    set_random_seed(seed)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=seed)
    batches = recalibrate_batch_norm(model, loader, max_batches)
    meta = dict(loaded.get('meta') or {}) if isinstance(loaded, dict) else {}
    meta['batch_norm_recalibration'] = dict(
        source=osp.abspath(checkpoint), batches=batches, seed=seed,
        split=cfg.train_dataloader.dataset.get('ann_file'))
    buffer = io.BytesIO()
    torch.save(dict(meta=meta, state_dict=model.state_dict()), buffer)
    atomic_write(buffer.getvalue(), out)
    return dict(batches=batches, layers=len(batch_norm_layers(model)))
