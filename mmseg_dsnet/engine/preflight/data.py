"""The data a config reads: its pipelines, dataset classes and loaders."""
import os.path as osp

from mmseg_dsnet.utils.errors import UserError
from mmseg_dsnet.utils.messages import config_name, counted, did_you_mean


class PipelineConfigError(UserError, ValueError):
    """A transform of a data pipeline refuses its arguments."""


def _dataset_pipelines(dataset_cfg, path):
    """``(dotted path, pipeline)`` of a dataset config and of the datasets a
    wrapper holds (``RepeatDataset.dataset``, ``ConcatDataset.datasets``)."""
    if not isinstance(dataset_cfg, dict):
        return
    if isinstance(dataset_cfg.get('pipeline'), (list, tuple)):
        yield f'{path}.pipeline', dataset_cfg['pipeline']
    yield from _dataset_pipelines(dataset_cfg.get('dataset'),
                                  f'{path}.dataset')
    for index, inner in enumerate(dataset_cfg.get('datasets') or []):
        yield from _dataset_pipelines(inner, f'{path}.datasets[{index}]')


def check_pipelines_build(cfg, loaders):
    """Build every transform of the loaders' pipelines once and drop them,
    so that a transform argument out of range (``RandomZoom max_zoom=0.5``)
    or a misspelt transform is refused before the runner makes its
    ``<work_dir>/<timestamp>/`` folder; the runner builds the datasets only
    later. Building a transform reads no image.

    Args:
        cfg (Config): The merged config.
        loaders (Sequence[str]): The dataloader keys the tool runs.

    Raises:
        PipelineConfigError: Naming the config, the transform's place and
            its own message, for a transform that refuses its arguments
            (a ``UserError``, ``ValueError`` or ``AssertionError`` of its
            constructor), for a step that moves pixels before
            ``LoadAnnotations`` (the mask would not be moved: a flip,
            rotation, crop or zoom of training; a zoom elsewhere), or for a
            step that draws at random (``RandomFlip``, ``RandomRotate``,
            ``PhotoMetricDistortion`` ...; see
            :func:`~mmseg_dsnet.datasets.random_transforms.random_step`)
            in a validation or test pipeline (random views would be
            scored), or for a flip after ``LoadAnnotations`` there (a
            mirrored ground truth), or for a ``ResizeLabels`` before
            ``LoadAnnotations``, after a ``Resize`` of the labels or
            outside training. An unknown
            type or argument keeps mmengine's error (reported with a
            spelling hint).
    """
    from mmengine.registry import TRANSFORMS, DefaultScope

    from ...datasets.random_transforms import (MOVING_TRANSFORMS,
                                               drawing_transform,
                                               flip_after_masks,
                                               moved_before_masks,
                                               random_step)
    where = config_name(cfg)
    # Any move in training. In evaluation a flip before the masks is undone
    # by the segmentor (--tta's views; a random one is refused below), any
    # other move is not (a CenterCrop draws nothing): the prediction is
    # resized onto the whole, unmoved mask.
    evaluation_moves = tuple(name for name, verb in MOVING_TRANSFORMS.items()
                             if verb != 'flip')
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        for loader in loaders:
            dataset = (cfg.get(loader) or {}).get('dataset')
            for path, pipeline in _dataset_pipelines(dataset,
                                                     f'{loader}.dataset'):
                for index, transform in enumerate(pipeline):
                    if not isinstance(transform, dict):
                        continue  # a callable is used as it is
                    try:
                        TRANSFORMS.build(transform)
                    # ImportError: a wrapper of a library not installed
                    # (mmseg's Albu without albumentations), a traceback.
                    except (UserError, ValueError, AssertionError,
                            ImportError) as err:
                        args = {k: v for k, v in transform.items()
                                if k != 'type'}
                        reason = str(err) or (
                            f'{transform.get("type")} refused the arguments '
                            f'{args} ({type(err).__name__})')
                        raise PipelineConfigError(
                            f'{path}[{index}] of {where}: {reason}; nothing '
                            'was started') from err
                moved = moved_before_masks(
                    pipeline, MOVING_TRANSFORMS if loader ==
                    'train_dataloader' else evaluation_moves)
                if moved >= 0:
                    name = str(pipeline[moved]['type'])
                    verb = MOVING_TRANSFORMS[name.split('.')[-1]]
                    raise PipelineConfigError(
                        f'{path}[{moved}] of {where}: {name} comes before '
                        f'LoadAnnotations, so it would {verb} the image but '
                        'not its mask (which keeps its size: no error, a '
                        'misaligned ground truth); put it after '
                        'LoadAnnotations. Nothing was started')
                drawn = random_step(pipeline)
                if loader != 'train_dataloader' and drawn >= 0:
                    # Nothing fails: the figures are of a random view of
                    # each image (flipped, rotated, cropped, distorted),
                    # new at each run.
                    name = drawing_transform(pipeline[drawn])
                    raise PipelineConfigError(
                        f'{path}[{drawn}] of {where}: {name} draws at '
                        'random (a training augmentation); in the '
                        f'{LOADER_PHASES.get(loader, loader)} pipeline it '
                        'would score a random view of each image, other '
                        'figures at each run. Remove it from that pipeline. '
                        'Nothing was started')
                _check_label_resize(pipeline, loader, path, where)
                flip = flip_after_masks(pipeline)
                if loader != 'train_dataloader' and flip >= 0:
                    # Deterministic (prob=1.), so not refused above.
                    raise PipelineConfigError(
                        f'{path}[{flip}] of {where}: '
                        f'{pipeline[flip].get("type")} comes after '
                        'LoadAnnotations, so it flips the ground truth '
                        'while the segmentor flips its prediction back: '
                        'each image would be scored against its mirrored '
                        'mask. Put it before LoadAnnotations. Nothing was '
                        'started')


def _check_label_resize(pipeline, loader, path, where):
    """Refuse a ``ResizeLabels`` that would not do what it says: before
    ``LoadAnnotations`` it finds no labels (the mask loaded after it keeps
    the file's size, so training goes on with other labels than the
    config names), after a ``Resize`` of the labels it only enlarges the
    shrunken mask, and in evaluation it would resize the ground truth
    that predictions are scored against at the mask file's size."""
    from ...datasets.random_transforms import steps_around_masks
    _, names, loads = steps_around_masks(pipeline)
    if 'ResizeLabels' not in names:
        return
    at = names.index('ResizeLabels')
    if loads < 0:
        loads = len(names)
    step = f'{path}[{at}] of {where}: ResizeLabels'
    if loader != 'train_dataloader':
        raise PipelineConfigError(
            f'{step} resizes the ground truth, which the '
            f"{LOADER_PHASES.get(loader, loader)} scores at the mask file's "
            'size; it belongs to the training pipeline only. Nothing was '
            'started')
    if at < loads:
        raise PipelineConfigError(
            f'{step} comes before LoadAnnotations, so it finds no labels '
            'to resize; put it after the LoadAnnotations that follows the '
            'Resize. Nothing was started')
    if 'Resize' in names[loads:at]:
        raise PipelineConfigError(
            f'{step} comes after a Resize that already shrank the labels '
            'with the image, so it would only enlarge the shrunken mask; '
            'load the annotations after the Resize (LoadImageFromFile, '
            'Resize, LoadAnnotations, ResizeLabels). Nothing was started')


LOADER_PHASES = {'train_dataloader': 'training',
                 'val_dataloader': 'validation',
                 'test_dataloader': 'test'}


def dataset_classes(dataset_cfg):
    """``(type name, classes)`` of the dataset a config will build, read from
    its ``metainfo`` or its class's ``METAINFO`` without building it (no
    data is read); wrappers (``RepeatDataset``, ``ConcatDataset``) give their
    first inner dataset's. ``(name, None)`` when the classes are unknown.

    Args:
        dataset_cfg (dict): A dataloader's ``dataset`` config.
    """
    from mmseg.registry import DATASETS
    inner = dataset_cfg.get('dataset') or (dataset_cfg.get('datasets')
                                           or [None])[0]
    metainfo = dataset_cfg.get('metainfo') or {}
    if metainfo.get('classes'):
        return str(dataset_cfg.get('type')), metainfo['classes']
    if isinstance(inner, dict):
        return dataset_classes(inner)
    dataset_type = dataset_cfg.get('type')
    dataset_class = DATASETS.get(dataset_type) if isinstance(
        dataset_type, str) else dataset_type
    if dataset_class is None:
        return str(dataset_type), None
    return dataset_class.__name__, getattr(dataset_class, 'METAINFO',
                                           {}).get('classes')


def check_dataset_classes(cfg, loaders):
    """Raise :class:`~mmseg_dsnet.engine.hooks.num_classes_check_hook.
    NumClassesMismatchError` before the runner exists when a head of
    ``cfg.model`` does not predict the classes of a loader's dataset, so a
    refused run leaves no run folder (``NumClassesCheckHook`` checks the
    same on a built runner).

    Args:
        cfg (Config): The merged config.
        loaders (Sequence[str]): The dataloader keys the tool runs.
    """
    from ..hooks.num_classes_check_hook import check_head_classes
    model = cfg.get('model') or {}
    model = model.get('module', model)
    aux = model.get('auxiliary_head')
    aux = aux if isinstance(aux, (list, tuple)) else [aux]
    named = [('decode_head', model.get('decode_head'))] + [
        (f'auxiliary_head[{i}]', head) for i, head in enumerate(aux)]
    heads = [(name, head['num_classes'], head.get('out_channels'))
             for name, head in named
             if isinstance(head, dict) and 'num_classes' in head]
    for loader in loaders:
        dataset = (cfg.get(loader) or {}).get('dataset')
        if not isinstance(dataset, dict):
            continue
        name, classes = dataset_classes(dataset)
        if classes:
            check_head_classes(heads, classes, LOADER_PHASES[loader], name)
        _check_label_mapping(dataset, loader)


def _check_label_mapping(dataset_cfg, loader):
    """Let each ISIC dataset a loader reads refuse its ``metainfo``
    classes and ``reduce_zero_label`` (which would relabel the masks)
    before the runner makes its run folder; the dataset refuses the same
    when built."""
    from mmseg.registry import DATASETS

    from ...datasets.isic import ISICDataset
    from ...datasets.split_files import dataset_leaves
    for path, leaf in dataset_leaves(dataset_cfg, f'{loader}.dataset'):
        leaf_type = leaf.get('type')
        leaf_class = DATASETS.get(leaf_type) if isinstance(
            leaf_type, str) else leaf_type
        if not (isinstance(leaf_class, type)
                and issubclass(leaf_class, ISICDataset)):
            continue
        classes = (leaf.get('metainfo') or {}).get('classes')
        if leaf.get('reduce_zero_label'):
            raise UserError(
                f'{path}.reduce_zero_label=True does not fit the ISIC masks '
                '(0 = background, 1 = lesion): the background would be '
                'ignored and the lesion learned as class 0. Remove the '
                'option; nothing was started.')
        if classes is not None:
            leaf_class.get_label_map(classes)


def check_batch_sizes(cfg, loaders, config=None):
    """Refuse a ``batch_size`` of ``loaders`` that is not a whole number
    of at least 1, before any loader is built: torch's sampler raises a
    ``ValueError`` traceback for it once the model and checkpoint are
    loaded.

    Args:
        cfg (Config | dict): The merged config.
        loaders (Sequence[str]): The dataloader keys the tool builds.
        config (str, optional): The config file, for the message.

    Raises:
        UserError: Naming the key and its value.
    """
    where = f'{config}: ' if config else ''
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, dict):
            continue
        value = loader_cfg.get('batch_size')
        # None leaves it to mmengine's default of 1.
        if value is None or isinstance(value, int) and \
                not isinstance(value, bool) and value >= 1:
            continue
        raise UserError(
            f'{where}{loader}.batch_size={value!r} must be a whole number of '
            'at least 1: the images of a step. Nothing was started.')


#: The dataloader keys mmengine's ``Runner.build_dataloader`` reads
#: itself; it passes the others to torch's ``DataLoader``.
RUNNER_LOADER_KEYS = ('num_batch_per_epoch', 'disable_subprocess_warning')


def check_loader_keys(cfg, loaders, config=None):
    """Refuse a key of ``loaders`` that neither mmengine's runner nor
    torch's ``DataLoader`` takes (``batch_sise``, ``num_worker``): torch
    raises ``unexpected keyword argument`` for it once the runner has made
    the work dir, its log folder and the dumped config.

    Args:
        cfg (Config | dict): The merged config.
        loaders (Sequence[str]): The dataloader keys the tool builds.
        config (str, optional): The config file, for the message.

    Raises:
        UserError: Naming the key and the closest one taken.
    """
    from torch.utils.data import DataLoader

    from .validation import _named_parameters
    taken, _ = _named_parameters(DataLoader.__init__)
    taken = sorted(taken | set(RUNNER_LOADER_KEYS))
    where = f'{config}: ' if config else ''
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, dict):
            continue
        for key in loader_cfg:
            if key in taken:
                continue
            hint = did_you_mean(key, taken) or '.'
            raise UserError(
                f'{where}{loader}.{key}={loader_cfg[key]!r} is read neither '
                "by mmengine's runner nor by torch's DataLoader"
                f'{hint} Nothing was started.')


def check_loader_workers(cfg, loaders, config=None):
    """Refuse a ``num_workers`` of ``loaders`` that is not a whole number
    of at least 0 (``-1``, a guess at "all cores"), or
    ``persistent_workers=True`` with no worker (``num_workers=0`` set over
    the shipped configs' loaders, which keep their workers): torch's
    ``DataLoader`` raises a ``ValueError`` traceback for either once the
    runner has made the work dir.

    Args:
        cfg (Config | dict): The merged config.
        loaders (Sequence[str]): The dataloader keys the tool builds.
        config (str, optional): The config file, for the message.

    Raises:
        UserError: Naming the key, its value and what to set.
    """
    where = f'{config}: ' if config else ''
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, dict):
            continue
        # torch's default: the main process loads the images.
        workers = loader_cfg.get('num_workers', 0)
        if not isinstance(workers, int) or isinstance(workers, bool) or \
                workers < 0:
            raise UserError(
                f'{where}{loader}.num_workers={workers!r} must be a whole '
                'number of at least 0: the processes that load images (0: '
                'the main process). Nothing was started.')
        if workers == 0 and loader_cfg.get('persistent_workers'):
            raise UserError(
                f'{where}{loader}.num_workers=0 with '
                f'{loader}.persistent_workers=True: there is no worker to '
                f'keep; set {loader}.persistent_workers=False with it. '
                'Nothing was started.')


def check_evaluation_loaders(cfg, loaders, config=None):
    """Refuse, before the runner exists, a validation or test dataloader
    that leaves images out: with ``drop_last=True`` the last incomplete
    batch is never scored (every image, when the batch exceeds the split),
    which ``LesionMetric`` would otherwise refuse only at the end of the
    evaluation (of the first epoch, in training); or one whose
    ``batch_size`` is below 1 (:func:`check_batch_sizes`), whose workers
    torch refuses (:func:`check_loader_workers`) or with a key no one
    reads (:func:`check_loader_keys`).

    Args:
        cfg (Config | dict): The merged config.
        loaders (Sequence[str]): The evaluation dataloader keys the tool
            runs (``val_dataloader``, ``test_dataloader``).
        config (str, optional): The config file, for the message.

    Raises:
        UserError: Naming the loader and the option.
    """
    check_loader_keys(cfg, loaders, config)
    check_batch_sizes(cfg, loaders, config)
    check_loader_workers(cfg, loaders, config)
    where = f'{config}: ' if config else ''
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if isinstance(loader_cfg, dict) and loader_cfg.get('drop_last'):
            raise UserError(
                f'{where}{loader}.drop_last is True: the last incomplete '
                'batch of the split would never be scored, so the figures '
                'would be of part of it; set --cfg-options '
                f'{loader}.drop_last=False')


def check_images_scored_once(cfg, loaders):
    """Refuse, before any run, a validation or test loader whose dataset
    gives an image more than once (a ``RepeatDataset``, a ``ConcatDataset``
    of splits that share images): each copy would be scored, so the image
    would weigh that many times in the figures (and in the choice of the
    best checkpoint), exit 0
    (:func:`~mmseg_dsnet.evaluation.lesion_metric.check_each_image_once`).
    The datasets are built (their split files read), so data roots must be
    final.

    Args:
        cfg (Config): The merged config.
        loaders (Sequence[str]): The evaluation loaders the tool runs
            (``val_dataloader``, ``test_dataloader``).

    Raises:
        UserError: Naming the loader and the most repeated images.
    """
    from mmseg.registry import DATASETS

    from ...evaluation.lesion_metric import check_each_image_once
    from .model import build_scope
    for loader in loaders:
        dataset_cfg = (cfg.get(loader) or {}).get('dataset')
        if not isinstance(dataset_cfg, dict):
            continue
        with build_scope(cfg):
            dataset = DATASETS.build(dataset_cfg)
        paths = (dataset.get_data_info(i).get('img_path')
                 for i in range(len(dataset)))
        check_each_image_once([path for path in paths if path], loader)


def check_training_batches(cfg, world_size=1):
    """Refuse an epoch-based training whose loader would give no batch: a
    training split of fewer images per process than ``batch_size`` with
    ``drop_last=True``. mmengine's loop would then run its epochs without
    a single step, save the initial weights as the epochs' checkpoints
    and validate them, exit 0. Without ``drop_last`` every image is trained,
    so only then is the dataset built (its split read) here.

    Args:
        cfg (Config): The merged config, its data root final.
        world_size (int): The training processes; each takes its share of
            the images (mmengine's ``DefaultSampler`` rounds it up).
            Default: 1.

    Raises:
        UserError: Naming the images, the batch size and the option.
    """
    from mmseg.registry import DATASETS

    from .model import build_scope
    loader = cfg.get('train_dataloader')
    train = cfg.get('train_cfg')
    if not isinstance(loader, dict) or not loader.get('drop_last') or \
            not isinstance(train, dict):
        return
    # An iteration loop's InfiniteSampler repeats the split: it fills a
    # batch from any images.
    loop = train.get('type')
    if not (loop in ('EpochBasedTrainLoop', 'mmengine.EpochBasedTrainLoop')
            or loop is None and train.get('by_epoch')):
        return
    batch = loader.get('batch_size', 1)
    if not isinstance(batch, int) or batch < 2:
        return
    with build_scope(cfg):
        images = len(DATASETS.build(loader['dataset']))
    share = -(-images // max(1, world_size))
    if share >= batch:
        return
    split = loader['dataset'].get('ann_file')
    per = f' ({share} per process of {world_size})' if world_size > 1 \
        else ''
    raise UserError(
        f'train_dataloader gives no batch: its '
        f'{counted(images, "training image")}'
        f'{f" ({split})" if split else ""}{per} '
        f'{"is" if images == 1 else "are"} fewer than '
        f'batch_size={batch} with drop_last=True, so every epoch would '
        'train no step and save the initial weights; set --cfg-options '
        'train_dataloader.drop_last=False or a smaller '
        'train_dataloader.batch_size. Nothing was started.')


def check_held_out_images(cfg, loaders, config=None):
    """Refuse a config whose validation or test loader scores images its
    training loader trains on: a training split file that lists ids of the
    scored split (a test image added to one's own training split), or a
    training dataset without a split file (mmseg then reads every image
    under its image folder) in the scored set's folder, or a scored
    dataset without a split file over the training images' folder.
    ``train.py`` would validate on them, choose the best checkpoint by
    those figures and log them, exit 0 (``tools/test.py`` refuses such a
    test only afterwards, from the checkpoint). Ids are compared as
    ``tools/test.py`` compares them
    (:func:`~mmseg_dsnet.analysis.threshold_sweep.check_not_trained_on`),
    and so are the photos the converter recorded under two ids, one in
    each split (``split_files.photos_under_other_ids``); split
    files that are not there are left to the datasets to name.

    Args:
        cfg (Config): The merged config, its data roots final.
        loaders (Sequence[str]): The evaluation loaders the tool runs
            (``val_dataloader``, ``test_dataloader``).
        config (str, optional): The config file, for the message.

    Raises:
        UserError: Naming the loader, the shared ids and both split files.
    """
    from ...datasets.split_files import (ACROSS_LISTS_RECORD, data_root_of,
                                         ids_also_in, leaf_datasets,
                                         photos_under_other_ids, split_file,
                                         split_ids)
    from ...datasets.synthetic_fallback import is_synthetic
    from ...utils.messages import first_few
    where = config or config_name(cfg)
    # Each split file read once: a training split is compared with every
    # scored one (the validation and test loaders, a ConcatDataset's sets).
    read = {}
    trained = leaf_datasets(
        (cfg.get('train_dataloader') or {}).get('dataset'))
    for loader in loaders:
        without = (', or set --cfg-options val_cfg=None val_dataloader=None '
                   'val_evaluator=None to train without validation'
                   if loader == 'val_dataloader' else '') + \
            '. Nothing was started.'
        fix = 'make the splits disjoint' + without
        best = (' (and so would a best checkpoint chosen by them)'
                if loader == 'val_dataloader' else '')
        for scored in leaf_datasets((cfg.get(loader) or {}).get('dataset')):
            scored_file = split_file(scored)
            if scored_file is None:
                # mmseg then scores every image under its image folder.
                _refuse_folder_scored(where, loader, scored, trained, best,
                                      without)
                continue
            if not osp.isfile(scored_file):
                continue
            scored_ids = split_ids(scored_file, read)
            synthetic = is_synthetic(data_root_of(scored_file))
            for leaf in trained:
                train_file = split_file(leaf)
                if train_file is None:
                    # mmseg then reads every image under its image folder.
                    folder = _image_folder(leaf)
                    if _holds_folder(folder, _image_folder(scored)):
                        raise UserError(
                            f'{where}: {loader} scores the '
                            f'{counted(len(scored_ids), "image")} of '
                            f'{scored_file}, '
                            'and train_dataloader trains on every image '
                            f'under {folder} (it names no ann_file), those '
                            f'among them: figures on images the model '
                            f'learns from favour it{best}; {fix}')
                    continue
                if not osp.isfile(train_file):
                    continue
                shared = ids_also_in(train_file, scored_ids, synthetic,
                                     read)
                if shared:
                    raise UserError(
                        f'{where}: {loader} scores {len(shared)} of the '
                        f'{counted(len(scored_ids), "image")} of '
                        f'{scored_file} that '
                        f'train_dataloader trains on ({train_file}: '
                        f'{first_few(shared, 3)}): figures on images the '
                        f'model learns from favour it{best}; {fix}')
                # One photo under two ids, one in each split.
                copies = photos_under_other_ids(train_file, scored_ids,
                                                synthetic, read)
                if copies:
                    meta = osp.join(data_root_of(train_file), 'meta.json')
                    raise UserError(
                        f'{where}: {loader} scores '
                        f'{counted(len(copies), "photo")} of {scored_file} '
                        'that train_dataloader trains on under another id '
                        f'({train_file}; {meta} records them in '
                        f'{ACROSS_LISTS_RECORD}: {first_few(copies, 3)}): '
                        'figures on images the model learns from favour '
                        f'it{best}; make the splits disjoint (converted '
                        'with another --seed, the set keeps the copies '
                        f'apart){without}')


def _refuse_folder_scored(where, loader, scored, trained, best, without):
    """Refuse a scored dataset without a split file (every image under its
    folder is scored) whose folder holds a training dataset's images."""
    from ...datasets.split_files import split_file
    scored_folder = _image_folder(scored)
    for leaf in trained:
        folder = _image_folder(leaf)
        if _holds_folder(scored_folder, folder) or (
                split_file(leaf) is None
                and _holds_folder(folder, scored_folder)):
            listed = split_file(leaf)
            # There is no second split to make disjoint: the scored set
            # needs one of its own (and so does a training set without).
            fix = (f'give {loader}.dataset a split file (ann_file) of '
                   'images the training does not use' if listed else
                   f'give {loader}.dataset and train_dataloader.dataset '
                   'split files (ann_file) that share no image')
            raise UserError(
                f'{where}: {loader} scores every image under '
                f'{scored_folder} (it names no ann_file), and '
                f'train_dataloader trains on images under {folder}' +
                (f' ({listed})' if listed else '') + ', those among '
                'them: figures on images the model learns from favour '
                f'it{best}; {fix}{without}')


def _image_folder(dataset_cfg):
    """The folder a dataset config reads its images from (``data_root``
    joined with ``data_prefix.img_path``, as mmseg joins them)."""
    prefix = (dataset_cfg.get('data_prefix') or {}).get('img_path') or ''
    return osp.join(dataset_cfg.get('data_root') or '', prefix)


def _holds_folder(folder, inner):
    """Whether ``inner`` is ``folder`` or lies in it (mmseg lists the
    images of a dataset without a split file recursively); both exist."""
    if not (folder and inner and osp.isdir(folder) and osp.isdir(inner)):
        return False
    folder, inner = osp.realpath(folder), osp.realpath(inner)
    return inner == folder or inner.startswith(folder.rstrip(osp.sep) +
                                               osp.sep)
