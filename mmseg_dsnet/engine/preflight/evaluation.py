"""The evaluators a config scores with: arguments, figures, thresholds."""
from mmseg_dsnet.utils.errors import UserError


class ThresholdMismatchError(UserError, ValueError):
    """The model and its evaluator call lesion at different probabilities."""


#: The ``type`` names of a ``LesionMetric`` evaluator config (mmengine
#: builds either).
LESION_METRIC_TYPES = ('LesionMetric', 'mmseg.LesionMetric')


def check_lesion_metrics(cfg, evaluators):
    """Refuse, before the runner exists, a ``LesionMetric`` evaluator whose
    arguments would give figures of nothing
    (:func:`~mmseg_dsnet.evaluation.lesion_metric.check_metric_args`: a
    threshold outside (0, 1), a TJ threshold in percent, a lesion label
    other than 0 or 1 ...); the metric itself refuses them only when the
    evaluation starts, or (``low_res_size=(0, 0)``) at its first image.

    Args:
        cfg (Config | dict): The merged config.
        evaluators (Sequence[str]): The evaluator keys the tool runs.

    Raises:
        UserError: Naming the evaluator and the argument.
    """
    import inspect

    from mmseg_dsnet.evaluation.lesion_metric import (MetricArgumentError,
                                                      check_metric_args)
    accepted = inspect.signature(check_metric_args).parameters
    for name in evaluators:
        metrics = cfg.get(name) or []
        if isinstance(metrics, dict):
            metrics = [metrics]
        for metric in metrics:
            if not isinstance(metric, dict) or \
                    metric.get('type') not in LESION_METRIC_TYPES:
                continue
            try:
                check_metric_args(**{k: v for k, v in metric.items()
                                     if k in accepted})
            except MetricArgumentError as err:
                raise UserError(f'{name} (LesionMetric): {err}; nothing was '
                                'started') from None
            if metric.get('single_channel_input') == 'logit':
                _check_logit_input(cfg.get('model'), name)
        check_distinct_figure_names(name, metrics)


def _check_logit_input(model, name):
    """Refuse ``single_channel_input='logit'`` for a model that stores
    its 1-channel output as probabilities: every MMSegmentation segmentor
    does (``BaseSegmentor.postprocess_result`` applies the sigmoid), so the
    metric would apply a second sigmoid and every pixel (probability >= 0
    gives sigmoid >= 0.5) would be lesion: Sen 100, Spe 0, exit 0.

    Args:
        model (dict): The config's ``model``.
        name (str): The evaluator key, for the message.

    Raises:
        UserError: A segmentor of MMSegmentation's post-processing with a
            1-channel decode head.
    """
    from mmseg.models.segmentors.base import BaseSegmentor
    from mmseg.registry import MODELS
    if not isinstance(model, dict):
        return
    kind = model.get('type')
    try:
        segmentor = MODELS.get(kind) if isinstance(kind, str) else kind
    except Exception:  # a scope that is not registered: not known here
        return
    if not (isinstance(segmentor, type)
            and issubclass(segmentor, BaseSegmentor)
            and segmentor.postprocess_result is
            BaseSegmentor.postprocess_result):
        return
    head = model.get('decode_head')
    head = head[-1] if isinstance(head, (list, tuple)) and head else head
    if not isinstance(head, dict) or \
            (head.get('out_channels') or head.get('num_classes')) != 1:
        return
    raise UserError(
        f"{name} (LesionMetric): single_channel_input='logit', but the "
        f'model ({segmentor.__name__}) stores its 1-channel output as '
        "sigmoid probabilities (mmseg's postprocess_result), so the sigmoid "
        'would be applied twice and every pixel scored as lesion; leave '
        "single_channel_input unset ('probability'); nothing was started")


#: The figures of MMSegmentation's ``IoUMetric`` for each of its
#: ``iou_metrics`` (``aAcc`` comes with all).
_IOU_METRIC_FIGURES = {'mIoU': ('mIoU', 'mAcc'), 'mDice': ('mDice', 'mAcc'),
                       'mFscore': ('mFscore', 'mPrecision', 'mRecall')}


def _figure_names(metric):
    """The figure names an evaluator config reports (with its ``prefix``),
    or None when its type's names are not known here."""
    from mmseg_dsnet.evaluation.lesion_metric import METRIC_NAMES
    kind = metric.get('type')
    if kind in LESION_METRIC_TYPES:
        names = METRIC_NAMES
    elif kind in ('IoUMetric', 'mmseg.IoUMetric'):
        asked = metric.get('iou_metrics', ['mIoU'])
        asked = [asked] if isinstance(asked, str) else list(asked or [])
        names = ('aAcc', ) + tuple(
            n for key in asked for n in _IOU_METRIC_FIGURES.get(key, ()))
    else:
        return None
    prefix = metric.get('prefix')
    return [f'{prefix}/{n}' if prefix else n for n in names]


def check_distinct_figure_names(name, metrics):
    """Refuse evaluators that report a figure of one name: mmengine's
    ``Evaluator`` stops with a ``ValueError`` traceback only after the whole
    evaluation (in training, after the first epoch's). ``LesionMetric`` and
    ``IoUMetric`` both report ``mIoU``; two ``LesionMetric`` (say at two
    thresholds) report every figure twice.

    Args:
        name (str): The evaluator key (``test_evaluator`` ...).
        metrics (list): Its metric configs.

    Raises:
        UserError: Naming both metrics, the shared figures and the fix.
    """
    seen = {}
    for index, metric in enumerate(metrics):
        if not isinstance(metric, dict):
            continue
        names = _figure_names(metric)
        for other, other_names in seen.items():
            shared = [n for n in names or () if n in other_names]
            if shared:
                raise UserError(
                    f'{name}[{other}] ({metrics[other].get("type")}) and '
                    f'{name}[{index}] ({metric.get("type")}) both report '
                    f'{", ".join(shared)}: mmengine refuses figures of one '
                    'name, after the whole evaluation; give each a prefix of '
                    "its own (prefix='lesion', ...) or leave one out; nothing "
                    'was started')
        if names is not None:
            seen[index] = names


def check_one_lesion_figure_set(name, metrics):
    """Refuse evaluators whose figures a run record cannot take: it keeps
    one ``LesionMetric``'s figures (its ``IoU``, or the one prefix's
    ``prefix/IoU``), and the record of a design run or real-data check
    would be refused only after the training, with none written (two
    prefixed ``LesionMetric``, or none). Evaluators of a type whose
    figures are not known here pass.

    Args:
        name (str): The evaluator key (``test_evaluator`` ...).
        metrics (dict | list): Its metric config(s).

    Raises:
        UserError: Naming the key and the ``LesionMetric`` prefixes.
    """
    metrics = [metrics] if isinstance(metrics, dict) else list(metrics or [])
    names = [_figure_names(m) if isinstance(m, dict) else None
             for m in metrics]
    if any(n is None for n in names) or \
            any('IoU' in n for n in names):
        return
    prefixes = [m.get('prefix') for m in metrics
                if m.get('type') in LESION_METRIC_TYPES]
    if len(prefixes) == 1:
        return
    found = (f'{len(prefixes)} LesionMetric (prefixes '
             f'{", ".join(map(repr, prefixes))})' if prefixes else
             'no LesionMetric')
    raise UserError(
        f'{name} holds {found}: the run record keeps the figures of one '
        'LesionMetric, and it would have been refused only after the '
        f'training; give {name} one LesionMetric (other metrics may stay); '
        'nothing was started')


def check_tta_model(cfg, config):
    """Refuse a ``tta_model`` that ``tools/test.py --tta`` cannot score a
    lesion model with: none (``tta_model=None``, or a config without our
    ``default_runtime``) is an ``AttributeError`` traceback; mmseg's
    ``SegTTAModel`` (its own ``default_runtime``) keeps the last view's
    ``seg_logits``, which the metric reads, so the figures, recorded as
    test-time augmented, would be of the vertically flipped view alone
    (exit 0).

    Args:
        cfg (Config): The merged config.
        config (str): Its file, for the message.

    A ``tta_pipeline`` whose views rotate, crop or zoom is refused too
    (:func:`~mmseg_dsnet.datasets.flip_tta_pipeline.check_tta_views`).

    Raises:
        UserError: Naming the ``tta_model`` and ``LesionTTAModel``, or
            the view the segmentor cannot turn back.
    """
    from mmseg.registry import MODELS

    from mmseg_dsnet.datasets.flip_tta_pipeline import check_tta_views
    from mmseg_dsnet.models.segmentors import LesionTTAModel
    check_tta_views(cfg.get('tta_pipeline'), config)
    tta = cfg.get('tta_model')
    kind = tta.get('type') if isinstance(tta, dict) else None
    try:
        model = MODELS.get(kind) if isinstance(kind, str) else kind
    except Exception:  # an unknown scope: refused below as not ours
        model = None
    if isinstance(model, type) and issubclass(model, LesionTTAModel):
        return
    given = f'type={kind!r}' if isinstance(tta, dict) else repr(tta)
    why = ("mmseg's SegTTAModel scores a lesion model on its last view "
           'only (after a second sigmoid)' if isinstance(tta, dict) else
           'the views need a model that averages them')
    raise UserError(
        f'--tta: tta_model of {config} is {given}, not LesionTTAModel: '
        f"{why}; set tta_model = dict(type='LesionTTAModel') in it (as "
        'configs/_base_/default_runtime.py does); nothing was started')


def mask_threshold(head, lesion_index=1):
    """The lesion probability above which the decode head config ``head``
    calls a pixel lesion in its masks: its ``threshold`` for one output
    channel (MMSegmentation's 0.3 when unset), 0.5 (``argmax``) for two.

    Args:
        head (dict): The decode head's config.
        lesion_index (int): The lesion label, as ``LesionMetric`` takes
            it. A 1-channel head calls label 1 above its threshold T, so
            with ``lesion_index=0`` the lesion probability (1 - p) is
            above 1 - T in its masks. Defaults to 1.
    """
    out_channels = head.get('out_channels') or head.get('num_classes')
    if out_channels != 1:
        return 0.5
    threshold = head.get('threshold')
    threshold = 0.3 if threshold is None else float(threshold)
    return round(1 - threshold, 12) if lesion_index == 0 else threshold


def check_decision_thresholds(cfg, evaluators=('val_evaluator',
                                             'test_evaluator')):
    """Raise :class:`ThresholdMismatchError` when a ``LesionMetric``
    evaluator thresholds the lesion probability elsewhere than the model's
    decode head: its figures would describe masks the model never outputs
    (the metric rebuilds the mask from the probabilities). A 1-channel
    head calls label 1 above its threshold T; a metric scoring label 0
    (``lesion_index=0``) reads the lesion probability as 1 - p, so its
    threshold must be 1 - T.

    Args:
        cfg (Config | dict): The merged config.
        evaluators (Sequence[str]): The evaluator keys the tool runs
            (``train.py`` validates, ``test.py`` tests).
    """
    model = cfg.get('model') or {}
    head = model.get('module', model).get('decode_head')
    if not isinstance(head, dict):
        return
    head_threshold = mask_threshold(head)
    one_channel = (head.get('out_channels') or head.get('num_classes')) == 1
    for name in evaluators:
        metrics = cfg.get(name) or []
        if isinstance(metrics, dict):
            metrics = [metrics]
        for evaluator in metrics:
            # The scoped name builds the same metric, whose figures must
            # describe the head's masks too.
            if not isinstance(evaluator, dict) or \
                    evaluator.get('type') not in LESION_METRIC_TYPES:
                continue
            threshold = float(evaluator.get('threshold', 0.5))
            expected = mask_threshold(head,
                                      evaluator.get('lesion_index', 1))
            if one_channel and evaluator.get('lesion_index', 1) == 0:
                # The head calls label 1 above T; the metric reads the
                # lesion (label 0) probability as 1 - p, so its T is 1 - T.
                if abs(threshold - expected) > 1e-9:
                    raise ThresholdMismatchError(
                        f'the decode head calls label 1 above probability '
                        f'{head_threshold}, so its lesion (label 0, '
                        f'{name}.lesion_index=0) is where the lesion '
                        f'probability 1 - p is above {expected}, but {name} '
                        f'(LesionMetric) calls lesion above {threshold}: its '
                        "figures would not describe the model's masks; set "
                        f'{name}.threshold={expected} (or '
                        'model.decode_head.threshold='
                        f'{round(1 - threshold, 12)})')
            elif threshold != expected:
                raise ThresholdMismatchError(
                    f'the decode head calls lesion above probability '
                    f'{expected} but {name} (LesionMetric) above '
                    f'{threshold}: its figures would not describe the '
                    "model's masks; set both to one value T "
                    '(--cfg-options model.decode_head.threshold=T '
                    f'{name}.threshold=T)')
