"""A segmentor's figures at several decision thresholds from one pass over
its test images: each threshold gets its own :class:`LesionMetric`, fed the
same lesion probabilities, so every figure is the one ``tools/test.py``
would report with the head and the metric set to that threshold."""
import os.path as osp
from typing import Dict, Optional, Sequence

import torch

from ..datasets.split_files import (ACROSS_LISTS_RECORD, data_root_of,
                                    ids_also_in, leaf_datasets,
                                    photos_under_other_ids, split_file,
                                    split_ids, test_split_files)
from ..evaluation.lesion_metric import (LesionMetric,
                                        check_every_image_scored,
                                        lesion_free_size)
from ..utils.errors import UserError
from ..utils.messages import counted, first_few


def lesion_metric_args(evaluator_cfg) -> dict:
    """The :class:`LesionMetric` arguments of a config's evaluator, less
    ``type`` and ``threshold``.

    Raises:
        ValueError: The evaluator is not one LesionMetric, or it writes
            masks (``output_dir``).
    """
    if not isinstance(evaluator_cfg, dict) or \
            evaluator_cfg.get('type') not in ('LesionMetric', LesionMetric):
        raise ValueError('the config\'s test_evaluator must be one '
                         f'LesionMetric, got {evaluator_cfg!r}')
    # Each threshold's metric would write its masks into that one folder:
    # the second refused the first one's file as an image scored twice,
    # and a folder of an earlier tools/test.py --out (whose config dump
    # holds it) was refused at its first file.
    if evaluator_cfg.get('output_dir') is not None:
        raise ValueError(
            f"test_evaluator.output_dir is {evaluator_cfg['output_dir']!r} "
            '(tools/test.py --out sets it, and the config it dumps keeps '
            'it), but the sweep writes no masks; pass --cfg-options '
            'test_evaluator.output_dir=None, and write the masks of one '
            'threshold with tools/test.py --out')
    return {key: value for key, value in evaluator_cfg.items()
            if key not in ('type', 'threshold')}


def check_sweepable(model_cfg, thresholds: Sequence[float],
                    config: str = 'the config') -> None:
    """Refuse thresholds the model's masks cannot be cut at.

    A decode head with two or more output channels makes its masks by
    ``argmax`` (lesion probability above 0.5) and refuses any other
    ``threshold``: ``tools/test.py`` and ``tools/infer.py`` stop at
    ``model.decode_head.threshold=0.3``. Scored at 0.3 its probabilities
    gave figures no tool reproduces, and the rule could choose a threshold
    the model cannot be run at.

    Args:
        model_cfg (dict): The config's ``model``.
        thresholds (Sequence[float]): The thresholds to score.
        config (str): The config file, for the message.

    Raises:
        UserError: A multi-channel head and a threshold other than 0.5.
    """
    from ..engine.preflight import mask_threshold
    model_cfg = model_cfg or {}
    head = model_cfg.get('module', model_cfg).get('decode_head')
    if not isinstance(head, dict):
        return
    channels = head.get('out_channels') or head.get('num_classes')
    if channels == 1:
        return
    others = [t for t in thresholds if t != mask_threshold(head)]
    if others:
        raise UserError(
            f'{config}: the decode head has out_channels={channels}, so its '
            'masks are the argmax of the channels (lesion probability above '
            '0.5) and tools/test.py and tools/infer.py refuse any other '
            'threshold; --thresholds '
            f'{" ".join(f"{t:g}" for t in others)} would give figures of '
            'masks this model cannot output. Sweep a model with '
            'out_channels=1 (a sigmoid), or score 0.5 only')


def scores_by_threshold(model, loader, thresholds: Sequence[float],
                        metric_args: dict = None,
                        progress=None) -> Dict[float, Dict[str, float]]:
    """Evaluate ``model`` on ``loader`` once, scored at every threshold.

    Args:
        model (BaseSegmentor): A segmentor in eval mode whose 1-channel head
            outputs probabilities (or a multi-channel head).
        loader (DataLoader): Test images with ground truth.
        thresholds (Sequence[float]): Lesion above this probability.
        metric_args (dict, optional): Further :class:`LesionMetric`
            arguments (``low_res_size``, ``ignore_index`` ...).
        progress (optional): A bar (:func:`~mmseg_dsnet.progress.
            progress_bar`) updated once per image.

    Returns:
        dict[float, dict[str, float]]: Threshold -> LesionMetric's figures
        (percent).

    Raises:
        IncompleteEvaluationError: The loader gave fewer images than its
            dataset holds (``drop_last=True``).
        UserError: A bad sample was replaced by another
            (``on_bad_sample='skip'``), or the ground truth holds no lesion
            pixel (:func:`check_ground_truth_holds_lesion`).
    """
    from ..engine.hooks.bad_sample_summary_hook import \
        check_no_replaced_sample
    metrics = {t: LesionMetric(threshold=t, **(metric_args or {}))
               for t in thresholds}
    with torch.no_grad():
        for data in loader:
            # A bad sample replaced by the next one (on_bad_sample='skip')
            # scores that one twice and itself not at all, as tools/test.py
            # refuses.
            check_no_replaced_sample(data, 'Threshold sweep')
            samples = [s.to_dict() for s in model.test_step(data)]
            for metric in metrics.values():
                metric.process(data, samples)
            if progress is not None:
                for _ in samples:
                    progress.update()
    # A loader with drop_last=True leaves its last incomplete batch out.
    dataset = getattr(loader, 'dataset', None)
    first = next(iter(metrics.values()))
    if dataset is not None:
        check_every_image_scored(len(first.results), len(dataset))
    check_ground_truth_holds_lesion(first)
    # Each LesionMetric logs its table to MMEngine's current logger.
    return {threshold: metric.compute_metrics(metric.results)
            for threshold, metric in metrics.items()}


def check_ground_truth_holds_lesion(metric: LesionMetric) -> None:
    """Refuse to judge thresholds on ground truth without lesion pixels.

    Where the scored masks hold no lesion, the pooled IoU and DSC are 0 at
    every threshold that calls any pixel lesion and 100 at one that calls
    none, and the sensitivity is 100 (0 / 0) at all: figures of the false
    lesion alone, whose sweep favours the threshold that finds nothing.

    Args:
        metric (LesionMetric): A metric that processed the scored images.

    Raises:
        UserError: No lesion pixel in the ground truth at the original size
            or at the metric's ``low_res_size``.
    """
    where = lesion_free_size(metric.results, metric.low_res_size)
    if where:
        images = counted(len(metric.results), 'scored image')
        raise UserError(
            f'Threshold sweep: the ground truth of the {images} holds no '
            f'lesion pixel {where}; there IoU and DSC read 0 at every '
            'threshold that calls a pixel lesion and 100 at one that calls '
            'none, and sensitivity 100 at all, so no threshold can be '
            'judged. Score a split whose masks hold lesions')


def threshold_rule_table(scores: Dict[str, dict], thresholds: Sequence[float],
                         labels: Sequence[str], min_gain: float,
                         se_factor: float) -> str:
    """The selection rule of docs/design_study.md judging each threshold
    against the first, paired over the checkpoints (one column each).

    The rule decides on :data:`~mmseg_dsnet.leaderboard.design.MIN_SEEDS`
    checkpoints or more, as ``design_table.py`` does: with fewer, a
    threshold that meets it reads ``too few seeds``, not ``yes``.

    Args:
        scores (dict): Checkpoint label -> threshold -> LesionMetric figures
            (from :func:`scores_by_threshold`).
        thresholds (Sequence[float]): The thresholds, the reference first.
        labels (Sequence[str]): The checkpoints' labels, at least two.
        min_gain (float): IoU points a threshold must gain.
        se_factor (float): Standard errors the gain must exceed.

    Returns:
        str: The markdown table.
    """
    from ..leaderboard.design import MIN_SEEDS, rule_table
    names = [f'{t:g}' for t in thresholds]
    ious = {name: {label: scores[label][t]['IoU'] for label in labels}
            for name, t in zip(names, thresholds)}
    return rule_table(ious, names[0], names[1:],
                      [(label, label) for label in labels], min_gain,
                      se_factor, paired=True, row_header='threshold',
                      min_columns=MIN_SEEDS)


def check_split_given(dataset_cfg: dict, config: str,
                      where: str = 'test_dataloader.dataset') -> None:
    """Refuse a test loader that reads a converted ISIC set without a split
    file: mmseg then takes every image under ``data_root``, the test and
    training images among them, which the sweep's checks (no test split,
    no image the checkpoint trained on) look for in the split file only.

    Args:
        dataset_cfg (dict): The dataset config of the sweep's test loader.
        config (str): The swept config, for the message.
        where (str): The dataset's dotted path in the config, for the
            message (a dataset inside a wrapper: e.g.
            ``'test_dataloader.dataset.datasets[1]'``). Defaults to
            ``'test_dataloader.dataset'``.

    Raises:
        UserError: No ``ann_file`` and ``data_root/splits`` holds a test
            split.
    """
    if not isinstance(dataset_cfg, dict) or 'data_root' not in dataset_cfg \
            or split_file(dataset_cfg) is not None:
        return
    root = dataset_cfg.get('data_root') or ''
    found = test_split_files(root)
    if found:
        raise UserError(
            f'{config}: {where}.ann_file is not set, so every image under '
            f'{root} is scored: the test split ({found[0]}) and the training '
            'images among them. Give a validation split, e.g. '
            f'--cfg-options {where}.ann_file='
            'splits/lightweight_design_val.txt (design runs) or '
            'splits/official_val.txt')


def _training_leaves(training_cfg: dict) -> list:
    """The dataset configs a training config's loader reads from."""
    loader = training_cfg.get('train_dataloader')
    return leaf_datasets(
        loader.get('dataset') if isinstance(loader, dict) else None)


def split_less_training_roots(checkpoint: str) -> list:
    """The ``data_root`` of each dataset a checkpoint's run trained on
    without a split file (mmseg then reads every image under it), from its
    training config (``meta['cfg']``); empty without one."""
    from ..apis.released_model import training_config_of
    training_cfg = training_config_of(checkpoint)
    if training_cfg is None:
        return []
    return [dataset.get('data_root') or ''
            for dataset in _training_leaves(training_cfg)
            if split_file(dataset) is None]


def training_split_files(checkpoint: str,
                         data_root: Optional[str] = None) -> Optional[list]:
    """The split files a checkpoint's run trained on, read from its training
    config (``meta['cfg']``, which mmengine's Runner writes); each file is
    looked for where that config names it, else under ``data_root`` (a run
    trained on another machine).

    Args:
        checkpoint (str): The checkpoint file.
        data_root (str, optional): Where else to look for the files.

    Returns:
        list[str | None] | None: One path per dataset its training loader
        read (None for one found nowhere), or None when the checkpoint holds
        no training config and is no released weights
        (:func:`~mmseg_dsnet.apis.released_model.training_config_of`).
    """
    from ..apis.released_model import training_config_of
    training_cfg = training_config_of(checkpoint)
    if training_cfg is None:
        return None
    files = []
    for dataset in _training_leaves(training_cfg):
        named = split_file(dataset)
        if named is None:
            continue
        found = [path for path in (named, osp.join(
            data_root or '', dataset['ann_file'])) if osp.isfile(path)]
        files.append(found[0] if found else None)
    return files


def test_images_scored(dataset_cfg, checkpoints: Sequence[str] = ()
                       ) -> Optional[str]:
    """What test images a loader's dataset scores, if any, in any dataset
    a wrapper (Concat, Repeat ...) holds: a test split file
    (:func:`~mmseg_dsnet.datasets.converters.isic.is_test_split`), or a
    split file of another name that lists images of a test split of its
    data root and is a subset of it (written to go faster), or lists any
    image of one that a checkpoint's run held out (no training split of
    its training config lists an image of that test split), a link to a
    test split under another name included: by name alone such a split
    passes for a validation split.

    A test split a run trained on is no test split of its protocol: the
    official validation split holds images of ``lightweight_test.txt``,
    which official-protocol runs train on.

    Args:
        dataset_cfg (dict): The dataset config of the scored loader.
        checkpoints (Sequence[str]): The scored checkpoints. Default: ().

    Returns:
        str | None: E.g. ``'the test split splits/lightweight_test.txt'``
        or ``'20 images of the test split data/isic2017/splits/
        lightweight_test.txt (sub.txt: ISIC_0000000, ...)'``; None when it
        scores none (or reads no split file:
        :func:`check_split_given`).
    """
    from ..datasets.converters.isic import is_test_split
    from ..datasets.synthetic_fallback import is_synthetic
    for leaf in leaf_datasets(dataset_cfg):
        scored = split_file(leaf)
        if scored is None:
            continue
        if is_test_split(scored):
            return f"the test split {leaf['ann_file']}"
        if not osp.isfile(scored):
            continue
        root = leaf.get('data_root') or data_root_of(scored)
        scored_ids = split_ids(scored)
        # A link to the test split under another name is no other file to
        # pass over: it lists the test split's images, all of them.
        for test in test_split_files(root):
            test_ids = split_ids(test)
            listed = set(test_ids)
            shared = [i for i in scored_ids if i in listed]
            if shared and (len(shared) == len(scored_ids) or _held_out(
                    test_ids, checkpoints, root, is_synthetic(root))):
                return (f'{counted(len(shared), "image")} of the test split '
                        f'{test} ({scored}: {first_few(shared, 3)})')
    return None


def _held_out(test_ids, checkpoints, data_root, synthetic) -> bool:
    """Whether a checkpoint's run trained on split files (its training
    config names them all) none of which lists an image of ``test_ids``."""
    for checkpoint in checkpoints:
        trained = training_split_files(checkpoint, data_root)
        if not trained or None in trained:
            continue
        if not any(ids_also_in(found, test_ids, synthetic)
                   for found in trained):
            return True
    return False


def recalibration_split_files(checkpoint: str,
                              data_root: Optional[str] = None) -> list:
    """The split files a checkpoint's BatchNorm statistics were recomputed
    on (``recalibrate_batch_norm.py``: ``meta['batch_norm_recalibration']``),
    each where the record names it, else under ``data_root``; empty for a
    checkpoint as trained or one whose file is found nowhere.

    Args:
        checkpoint (str): The checkpoint file.
        data_root (str, optional): Where else to look for the files.
    """
    from ..compat import checkpoint_meta
    record = checkpoint_meta(checkpoint).get('batch_norm_recalibration')
    if not isinstance(record, dict):
        return []
    # ``split_files``: the joined paths (written since); ``split``: the
    # loader's ann_file alone, relative to a data root it did not record.
    named = [path for path in record.get('split_files') or ()
             if isinstance(path, str)]
    split = record.get('split')
    if not named and isinstance(split, str) and split:
        named = [split]
    files = []
    for path in named:
        found = [candidate for candidate in (
            path, osp.join(data_root or '', path),
            osp.join(data_root or '', 'splits', osp.basename(path)))
            if osp.isfile(candidate)]
        if found:
            files.append(found[0])
    return files


#: Why figures on training images are refused, and what to do, by the
#: sweep (:func:`check_not_trained_on`'s defaults).
SWEEP_CONSEQUENCE = ('A threshold chosen on images the model learned from, '
                     'and its figures, favour the model')
SWEEP_FIX = ('Score a split it did not train on: runs trained on '
             'splits/lightweight_design_train.txt on '
             'splits/lightweight_design_val.txt, official-protocol runs on '
             'splits/official_val.txt')


def training_run_of(checkpoint: str) -> Optional[tuple]:
    """The training run a checkpoint was saved by: the ``experiment_name``
    and ``seed`` of its ``meta`` (mmengine's Runner and ``fast_train.py``
    write both), or None when either is missing (released or bare
    weights)."""
    from ..compat import checkpoint_meta
    meta = checkpoint_meta(checkpoint)
    if meta.get('experiment_name') is None or meta.get('seed') is None:
        return None
    return str(meta['experiment_name']), meta['seed']


def check_separate_runs(checkpoints: Sequence[str],
                        labels: Sequence[str]) -> None:
    """Refuse two checkpoints saved by one training run (``epoch_20.pth``
    and ``epoch_30.pth`` of one work dir): the sweep averages its columns
    as seeds and the rule judges thresholds paired over them, so the
    spread of one run's epochs passed for the spread between seeds.

    Args:
        checkpoints (Sequence[str]): The checkpoint files.
        labels (Sequence[str]): Their column names, for the message.

    Raises:
        UserError: Naming the two checkpoints and the run.
    """
    seen = {}
    for label, checkpoint in zip(labels, checkpoints):
        run = training_run_of(checkpoint)
        if run is None:
            continue
        if run in seen:
            raise UserError(
                f'{seen[run][1]} ({seen[run][0]}) and {checkpoint} ({label}) '
                f'were saved by one training run ({run[0]}, seed {run[1]}): '
                'the columns are averaged and the thresholds judged as '
                'seeds; give one checkpoint per training run (e.g. the '
                'last of each seed), and sweep other checkpoints of a run '
                'one at a time')
        seen[run] = (label, checkpoint)


def check_not_trained_on(checkpoint: str, scored_cfg: dict, config: str,
                         consequence: str = SWEEP_CONSEQUENCE,
                         fix: str = SWEEP_FIX) -> None:
    """Refuse to score a checkpoint on images its run trained on.

    The training split is read from the checkpoint's training config
    (:func:`training_split_files`); a photo the converter recorded under
    two ids, one in each split, is a shared image too
    (:func:`~mmseg_dsnet.datasets.split_files.photos_under_other_ids`).
    A checkpoint without one (a bare state
    dict that is no released weights) or whose split file is found nowhere
    passes, and so does a training split of the synthetic stand-in set for
    real data or the reverse (their ids are alike, their images are not).

    Args:
        checkpoint (str): The checkpoint file.
        scored_cfg (dict): The dataset config of the scored loader (one
            that names its split file; see :func:`leaf_datasets`).
        config (str): The scored config, for the message.
        consequence (str): Why such figures mislead (a sentence).
        fix (str): What to do instead (a sentence).

    Raises:
        UserError: Naming the shared images and both split files.
    """
    from ..datasets.synthetic_fallback import is_synthetic
    from ..apis.released_model import training_config_source
    from ..utils.paths import same_folder
    scored = split_file(scored_cfg)
    if scored is None or not osp.isfile(scored):
        return
    scored_ids = split_ids(scored)
    synthetic = is_synthetic(data_root_of(scored))
    # Statistics recomputed on the scored images let them shape the model
    # as training on them does; a checkpoint without a training config
    # (released weights) was scored there without a word.
    for found in recalibration_split_files(checkpoint,
                                           scored_cfg.get('data_root')):
        shared = ids_also_in(found, scored_ids, synthetic)
        if shared:
            raise UserError(
                f'checkpoint {checkpoint} had its BatchNorm statistics '
                f'recomputed on {len(shared)} of the '
                f'{counted(len(scored_ids), "image")} that {config} scores '
                f'({scored}: {first_few(shared, 3)}); its recalibration '
                'split is '
                f"{found} (meta['batch_norm_recalibration']). "
                f'{consequence}. {fix}')
    trained = training_split_files(checkpoint, scored_cfg.get('data_root'))
    if trained is None:
        return
    # A run trained without a split file learned every image of its set.
    scored_root = scored_cfg.get('data_root') or ''
    for root in split_less_training_roots(checkpoint):
        if same_folder(root, scored_root):
            raise UserError(
                f'checkpoint {checkpoint} was trained on every image under '
                f'{root} (its training config, '
                f'{training_config_source(checkpoint)}, gives '
                'train_dataloader.dataset no ann_file), the '
                f'{counted(len(scored_ids), "image")} that {config} scores '
                f'({scored}) among them. {consequence}. {fix}')
    for found in trained:
        shared = ids_also_in(found, scored_ids, synthetic)
        if shared:
            raise UserError(
                f'checkpoint {checkpoint} was trained on {len(shared)} of '
                f'the {counted(len(scored_ids), "image")} that {config} '
                f'scores ({scored}: {first_few(shared, 3)}); its training '
                f'split is {found} (its training config, '
                f'{training_config_source(checkpoint)}). '
                f'{consequence}. {fix}')
        # One photo under two ids, one in each split.
        copies = photos_under_other_ids(found, scored_ids, synthetic)
        if copies:
            meta = osp.join(data_root_of(found), 'meta.json')
            raise UserError(
                f'checkpoint {checkpoint} was trained on '
                f'{counted(len(copies), "photo")} that {config} scores '
                f'under another id ({scored} = {found}, its training '
                f'split; {meta} records them in {ACROSS_LISTS_RECORD}: '
                f'{first_few(copies, 3)}). {consequence}. {fix}')


def check_not_tested_on_training_images(checkpoint: str, dataset_cfg: dict,
                                        config: str) -> None:
    """Refuse a test (``tools/test.py``) of a checkpoint on images its run
    trained on (:func:`check_not_trained_on`, for each dataset a wrapper
    holds): a checkpoint of the official protocol tested with a
    lightweight-protocol config, or a test split given as the training one.

    Args:
        checkpoint (str): The checkpoint file.
        dataset_cfg (dict): The test loader's dataset config.
        config (str): The tested config, for the message.

    Raises:
        UserError: Naming the shared images, both split files and
            ``--allow-training-images``.
    """
    for dataset in leaf_datasets(dataset_cfg):
        check_not_trained_on(
            checkpoint, dataset, config,
            consequence='Test figures on images the model learned from '
            'favour it',
            fix='Test it on a split it did not train on, or pass '
            '--allow-training-images to score them anyway')
