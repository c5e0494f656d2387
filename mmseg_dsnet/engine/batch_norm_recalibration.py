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
from ..utils.messages import counted, first_few


#: Why a deploy (re-parameterised) checkpoint or config cannot be
#: recalibrated.
FOLDED = ('the deploy form has no BatchNorm layers (they are folded into its '
          'convolutions), so there are no statistics to recompute')
#: What the refusal of a deploy config adds.
FOLDED_ADVICE = (': it builds the deploy (re-parameterised) form '
                 '(deploy=True), whose BatchNorm layers are folded into its '
                 'convolutions; recalibrate the trained checkpoint with its '
                 'training config, then re-parameterise the result with '
                 'tools/deployment/reparameterize.py')


def batch_norm_layers(model):
    """The BatchNorm layers of ``model`` that keep running statistics."""
    return [module for module in model.modules()
            if isinstance(module, _BatchNorm) and module.track_running_stats]


@torch.no_grad()
def recalibrate_batch_norm(model, data_loader, max_batches=None,
                           show_progress=True, not_run=None):
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
            to None (one pass: ``len(data_loader)`` batches, also of a loader
            whose sampler repeats, as ``InfiniteSampler`` does).
        show_progress (bool): Show a progress bar. Defaults to True.
        not_run (list, optional): Filled with the names of the BatchNorm
            layers the forward pass does not run (a training-only
            auxiliary head); they keep their statistics. Defaults to None.

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
    # A loader of no batch (fewer images than a batch, drop_last) whose
    # sampler repeats (InfiniteSampler) never ends: a length of 0 read as
    # "no length" let the pass run without end.
    if hasattr(data_loader, '__len__') and len(data_loader) == 0:
        raise ValueError('the data loader gave no batch to recompute '
                         'the BatchNorm statistics from')
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
        # One pass is the loader's length: a loader of an iteration-based
        # config (InfiniteSampler) never ends by itself.
        total = len(data_loader) if hasattr(data_loader, '__len__') else 0
        if max_batches is not None:
            total = min(total, max_batches) if total else max_batches
        bar = progress_bar(total, 'BatchNorm statistics', show_progress,
                           unit='batch')
        seen = 0
        for batch in data_loader:
            if total and seen >= total:
                break
            data = model.data_preprocessor(batch, True)
            model(data['inputs'], data['data_samples'], mode='tensor')
            seen += 1
            bar.update()
        bar.close()
        if seen == 0:
            raise ValueError('the data loader gave no batch to recompute '
                             'the BatchNorm statistics from')
        # A layer the pass does not run (mmseg's auxiliary head: training
        # only) sees no batch; reset, it would be written as mean 0,
        # variance 1 and counted as recomputed.
        names = {id(module): name for name, module in model.named_modules()}
        for layer, (mean, var, count) in zip(layers, saved):
            if int(layer.num_batches_tracked) == 0:
                layer.running_mean.copy_(mean)
                layer.running_var.copy_(var)
                layer.num_batches_tracked.copy_(count)
                if not_run is not None:
                    not_run.append(names[id(layer)])
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


def check_recalibration_images(checkpoint, dataset_cfg, config):
    """Refuse to recompute a checkpoint's BatchNorm statistics on images it
    did not train on: statistics from validation or test images let those
    images shape the model that is then scored on them.

    The images are those of the loader's split files; a test split
    (:func:`~mmseg_dsnet.datasets.converters.isic.is_test_split`) is always
    refused, and any image outside the checkpoint's training split when its
    training config names that split
    (:func:`~mmseg_dsnet.analysis.threshold_sweep.training_split_files`; a
    checkpoint without one, or whose split file is found nowhere, is
    checked for test images only: a test split, or a copy, subset or link
    of one under another name,
    :func:`~mmseg_dsnet.analysis.threshold_sweep.test_images_scored`). The
    synthetic stand-in set
    (:func:`~mmseg_dsnet.datasets.synthetic_fallback.is_synthetic`) is
    refused unless the checkpoint's training split lies in it, or its run
    read the whole set without a split file.

    Args:
        checkpoint (str): The checkpoint file.
        dataset_cfg (dict): The dataset config of the recalibration loader.
        config (str): The config, for the message.

    Raises:
        UserError: Naming the split file and the images it did not train
            on.
    """
    import os.path as osp

    from ..apis.released_model import training_config_source
    from ..analysis.threshold_sweep import (split_less_training_roots,
                                            test_images_scored,
                                            training_split_files)
    from ..datasets.split_files import (leaf_datasets, split_file, split_ids,
                                        test_split_files)
    from ..datasets.converters.isic import is_test_split
    from ..datasets.synthetic_fallback import SYNTHETIC_MARKER, is_synthetic
    from ..utils.errors import UserError
    from ..utils.paths import same_folder
    advice = ('recompute them on the images it trained on (the '
              'train_dataloader of the config it was trained with)')
    # Without a split file mmseg reads every image under the data root,
    # test and validation images too; the checks below look at split files
    # only, so such a loader passed them all. A run that trained so (its
    # training config gives no split file for that root) saw those images.
    split_less = split_less_training_roots(checkpoint)
    for leaf in leaf_datasets(dataset_cfg):
        root = leaf.get('data_root') or ''
        if split_file(leaf) is not None or not test_split_files(root):
            continue
        if any(same_folder(root, trained_root)
               for trained_root in split_less):
            continue
        raise UserError(
            f'{config}: train_dataloader.dataset has no split file '
            f'(ann_file), so it reads every image under {root}, the test '
            'and validation images among them: BatchNorm statistics '
            'recomputed on them let held-out images shape the model that '
            'is then scored on them; ' + advice)
    splits = [split_file(leaf) for leaf in leaf_datasets(dataset_cfg)]
    splits = [split for split in splits if split is not None]
    for split in splits:
        if is_test_split(split):
            raise UserError(
                f'{config}: train_dataloader reads the test split {split}: '
                'BatchNorm statistics recomputed on test images let them '
                'shape the model that is then scored on them; ' + advice)
    trained = training_split_files(checkpoint, dataset_cfg.get('data_root'))
    # The synthetic stand-in set (a demo config, or the fallback) is the
    # training set only of runs whose training config names it.
    roots = {leaf.get('data_root') for leaf in leaf_datasets(dataset_cfg)}
    for root in sorted(root for root in roots if is_synthetic(root)):
        inside = [found for found in trained or () if found and
                  osp.commonpath([osp.abspath(found), osp.abspath(root)])
                  == osp.abspath(root)]
        # A run that read the whole set without a split file trained on it.
        if inside or any(same_folder(root, trained_root)
                         for trained_root in split_less):
            continue
        said = ('holds no training config (meta[\'cfg\']) that '
                'names it'
                if trained is None else 'trained on ' + ', '.join(
                    [str(found) for found in trained] +
                    [f'every image under {trained_root}'
                     for trained_root in split_less]))
        raise UserError(
            f'{config}: train_dataloader reads the synthetic stand-in '
            f'set {root} (it holds {SYNTHETIC_MARKER}), and checkpoint '
            f'{checkpoint} {said}: statistics of synthetic pictures '
            'would replace those of its training images; '
            + advice)
    if not trained or None in trained:
        # Nothing to compare with but the test splits: by name alone a
        # copy, subset or link of one under another name passed.
        found = test_images_scored(dataset_cfg, [checkpoint])
        if found:
            raise UserError(
                f'{config}: train_dataloader reads {found}: BatchNorm '
                'statistics recomputed on test images let them shape the '
                'model that is then scored on them; ' + advice)
        return
    train_ids = {i for found in trained for i in split_ids(found)}
    for split in splits:
        if not osp.isfile(split):
            continue
        ids = split_ids(split)
        unseen = [i for i in ids if i not in train_ids]
        if unseen:
            raise UserError(
                f'{config}: train_dataloader reads {len(unseen)} of '
                f'{counted(len(ids), "image")} ({split}: '
                f'{first_few(unseen, 3)}) '
                f'that checkpoint {checkpoint} did not train on; its '
                f'training split is {", ".join(trained)} (its training '
                f'config, {training_config_source(checkpoint)}). BatchNorm '
                'statistics recomputed on '
                'them let held-out images shape the model that is then '
                'scored on them; ' + advice)


def check_loader_gives_batches(loader, config):
    """Refuse a training loader of no batch: fewer images than a batch
    with ``drop_last``, or none at all.

    Args:
        loader (DataLoader): The built recalibration loader.
        config (str): The config, for the message.

    Raises:
        UserError: Naming the images, the batch size and ``drop_last``.
    """
    from ..utils.errors import UserError
    if len(loader) > 0:
        return
    images = len(loader.dataset)
    drop_last = bool(getattr(loader, 'drop_last', False))
    split = getattr(loader.dataset, 'ann_file', None)
    raise UserError(
        f'{config}: train_dataloader gives no batch: its '
        f'{counted(images, "image")}{f" ({split})" if split else ""} '
        f'{"is" if images == 1 else "are"} fewer than '
        f'batch_size={loader.batch_size} with drop_last={drop_last}; '
        'there is nothing to recompute the BatchNorm statistics from. '
        'Give a smaller batch (--cfg-options '
        'train_dataloader.batch_size=N)')


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
        dict: ``batches`` averaged, ``layers`` recalibrated and ``not_run``,
        the names of the BatchNorm layers the forward pass does not run
        (kept as they were).

    Raises:
        UserError: A missing input, ``out`` being an input, a folder, not
            named as a checkpoint (``.pth``, ``.pt``, ``.ckpt``), an
            existing file without ``overwrite`` or a file that cannot be
            written, a ``cfg_options`` key that would change nothing
            (:func:`~.preflight.check_options_take_effect`), a checkpoint
            trained at another input size than the config's, a training
            loader that reads images the checkpoint did not train on
            (:func:`check_recalibration_images`), a model without BatchNorm
            layers, a training loader that gives no batch
            (:func:`check_loader_gives_batches`), or statistics that came
            out NaN or infinite (nothing is written).
    """
    import io
    import os.path as osp

    from mmengine.runner import Runner
    from mmengine.runner.utils import set_random_seed
    from mmseg.registry import MODELS

    from ..datasets.split_files import leaf_datasets, split_file

    from ..apis.released_model import (check_trained_input_size,
                                       check_trained_model,
                                       training_config_text)
    from ..deploy.deploy_checkpoint import is_deploy_config
    from ..utils.errors import UserError
    from ..utils.fileio import (CHECKPOINT_SUFFIXES, atomic_write,
                                refuse_folder, refuse_other_suffix,
                                refuse_same_file)
    from .checkpoint_match import (load_checkpoint_strictly,
                                   non_finite_tensors)
    from .preflight import (apply_cfg_options, build_scope,
                            check_batch_sizes, check_input_file,
                            check_new_output_file, load_config)

    check_input_file(checkpoint, 'checkpoint')
    refuse_same_file((('the config', config), ('the checkpoint', checkpoint),
                      ('the output', out)),
                     hint='give the recalibrated checkpoint a new name')
    refuse_folder(out)
    # Model files are read by their suffix: a PyTorch file named
    # ``x.onnx`` would be read by infer.py as a broken ONNX model.
    refuse_other_suffix(out, CHECKPOINT_SUFFIXES, 'OUT',
                        'the recalibrated checkpoint is written in PyTorch '
                        'format')
    check_new_output_file(out, 'OUT', overwrite)
    # Checked as every tool checks them: data_root=... (a variable, copied
    # into the loaders when the config is read) would change nothing, and
    # the statistics would come from the config's own images.
    cfg = apply_cfg_options(load_config(config), cfg_options)
    check_batch_sizes(cfg, ('train_dataloader', ), config)
    # The pass runs the config's training pipeline: at another input size
    # than the weights were trained at, it would write the statistics of
    # images the network never saw beside weights that look unchanged.
    check_trained_input_size(
        cfg, config, checkpoint,
        advice='recalibrate it with the config it was trained with')
    # A setting without weights (a dilation) would give the statistics of
    # another network than the one the weights trained in.
    check_trained_model(
        cfg, config, checkpoint,
        advice='recalibrate it with the config it was trained with')
    check_recalibration_images(checkpoint, cfg.train_dataloader.dataset,
                               config)
    # The scope is set for the builds (model, loader, its dataset and
    # transforms) only: the caller's default scope is left as it was.
    with build_scope(cfg):
        model = MODELS.build(cfg.model)
        if not batch_norm_layers(model):
            raise UserError(f'{config} builds a model without BatchNorm '
                            'layers; there are no statistics to recompute'
                            + (FOLDED_ADVICE if is_deploy_config(cfg)
                               else ''))
        loaded = load_checkpoint_strictly(
            model, checkpoint, config,
            hint='Give the config the checkpoint was trained with.',
            deploy_refused=FOLDED)
        set_random_seed(seed)
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=seed)
        check_loader_gives_batches(loader, config)
        not_run = []
        batches = recalibrate_batch_norm(model, loader, max_batches,
                                         not_run=not_run)
    if len(not_run) == len(batch_norm_layers(model)):
        raise UserError(
            f'{config} builds a model whose BatchNorm layers the forward '
            f'pass does not run ({", ".join(not_run)}); there are no '
            f'statistics to recompute; {out} was not written')
    # Finite weights can still overflow on the images (a run about to
    # diverge); tools/test.py would refuse the statistics only later.
    bad = non_finite_tensors(model.state_dict())
    if bad:
        raise UserError(
            f'the BatchNorm statistics recomputed for checkpoint '
            f'{checkpoint} hold NaN or infinite values in '
            f'{counted(len(bad), "tensor")} ({first_few(bad, 3)}): its '
            'activations '
            'overflow on the training images, as those of a diverging '
            f'training do; {out} was not written. Use an earlier '
            'checkpoint of the run')
    from ..compat import checkpoint_meta
    meta = dict(checkpoint_meta(loaded))
    # The training config stays with the weights (released weights: their
    # metafile entry's), for the checks of network, size and split.
    cfg_text = training_config_text(loaded, checkpoint)
    if cfg_text is not None:
        meta['cfg'] = cfg_text
    # Which checkpoint of its run it came from (best, last), known by the
    # source's name or message hub, neither of which this file keeps.
    from ..apis.released_model import training_progress
    progress = training_progress(loaded, checkpoint)
    if progress is not None:
        meta['training_progress'] = progress
    meta['batch_norm_recalibration'] = dict(
        source=osp.abspath(checkpoint), batches=batches, seed=seed,
        split=cfg.train_dataloader.dataset.get('ann_file'),
        # Joined with their data roots: the split alone does not say which
        # set's images, and the threshold sweep and tools/test.py refuse
        # to score the images the statistics came from.
        split_files=[osp.abspath(path) for path in (
            split_file(leaf) for leaf in
            leaf_datasets(cfg.train_dataloader.dataset)) if path])
    buffer = io.BytesIO()
    torch.save(dict(meta=meta, state_dict=model.state_dict()), buffer)
    # Checked again at the rename: a second run writing ``out`` meanwhile
    # would be replaced without a word, both reporting the file as theirs.
    atomic_write(buffer.getvalue(), out, overwrite=overwrite)
    return dict(batches=batches,
                layers=len(batch_norm_layers(model)) - len(not_run),
                not_run=not_run)
