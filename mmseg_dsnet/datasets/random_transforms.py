"""The transforms of mmcv, MMSegmentation and this project that draw at
random, which an evaluation or inference pipeline must not hold."""

#: Random transforms by class name, each with the arguments that, all 0,
#: make it a no-op (``prob=0``), and their defaults; an empty tuple: it
#: always draws (a crop's place, a resize's scale, a distortion's values).
RANDOM_TRANSFORMS = {
    # mmcv
    'RandomApply': (('prob', 0.5), ),
    'RandomChoice': (),
    'RandomChoiceResize': (),
    'RandomFlip': (('prob', None), ),
    'RandomGrayscale': (('prob', 0.1), ),
    'RandomResize': (),
    # MMSegmentation
    'BioMedical3DRandomCrop': (),
    'BioMedical3DRandomFlip': (('prob', None), ),
    'BioMedicalGaussianBlur': (('prob', 0.2), ),
    'BioMedicalGaussianNoise': (('prob', 0.1), ),
    'BioMedicalRandomGamma': (('prob', 0.5), ),
    'PhotoMetricDistortion': (),
    'RandomCrop': (),
    'RandomCutOut': (('prob', None), ),
    'RandomDepthMix': (('prob', 0.25), ),
    'RandomMosaic': (('prob', None), ),
    'RandomRotate': (('prob', None), ),
    'RandomRotFlip': (('rotate_prob', 0.5), ('flip_prob', 0.5)),
    # this project
    'RandomZoom': (('prob', 0.5), ),
}


#: Transforms that move the pixels of the image and of the masks loaded
#: before them, by class name, with what they do (for the messages).
MOVING_TRANSFORMS = {
    'RandomFlip': 'flip', 'RandomRotate': 'rotate', 'RandomRotFlip':
    'rotate and flip', 'RandomCrop': 'crop', 'CenterCrop': 'crop',
    'RandomZoom': 'zoom', 'RandomMosaic': 'mix', 'BioMedical3DRandomCrop':
    'crop', 'BioMedical3DRandomFlip': 'flip'}


def _name(step) -> str:
    """A step's class name, without its scope (``mmseg.RandomFlip``)."""
    return str(step.get('type', '')).split('.')[-1]


def _never_applied(step) -> bool:
    """Whether a random step's probabilities are all 0 (``prob=0``, or
    ``prob=[0., 0.]`` for a flip in two directions)."""
    chances = RANDOM_TRANSFORMS.get(_name(step), ())

    def zero(chance):
        if isinstance(chance, (list, tuple)):
            return len(chance) > 0 and all(zero(item) for item in chance)
        return chance in (0, 0.)

    return bool(chances) and all(zero(step.get(key, default))
                                 for key, default in chances)


#: albumentations transforms that always do the same when applied, with
#: the default of their ``p``; any other one (``HorizontalFlip``,
#: ``CLAHE``, whose clip limit is drawn, ``OneOf`` ...) in mmseg's ``Albu``
#: is taken as drawing at random.
ALBU_FIXED = {
    'Normalize': 1., 'ToFloat': 1., 'FromFloat': 1., 'Resize': 1.,
    'LongestMaxSize': 1., 'SmallestMaxSize': 1., 'PadIfNeeded': 1.,
    'CenterCrop': 1., 'Crop': 1., 'ToGray': .5, 'Equalize': .5,
    'InvertImg': .5, 'ToSepia': .5, 'Compose': 1., 'Sequential': 1.}


def _albu_drawing(step):
    """The name of the first albumentations transform in an ``Albu`` step
    (or an albumentations ``Compose`` in it) that may draw: one not in
    :data:`ALBU_FIXED` or applied with a chance ``p`` below 1; or None."""
    for inner in _held_steps(step):
        if not isinstance(inner, dict):
            return str(inner)
        name = _name(inner)
        chance = inner.get('p', ALBU_FIXED.get(name, .5))
        if chance in (0, 0.):
            continue  # never applied
        if name not in ALBU_FIXED or chance < 1:
            return str(inner.get('type'))
        inside = _albu_drawing(inner)
        if inside:
            return inside
    return None


def _flips_always_alike(step) -> bool:
    """Whether a ``RandomFlip`` always does the same: ``prob=1.`` with one
    direction (the views of ``tools/test.py --tta``), as mmcv draws it."""
    prob, direction = step.get('prob'), step.get('direction', 'horizontal')
    directions = [direction] if isinstance(direction, str) else list(
        direction or [])
    if isinstance(prob, (list, tuple)):
        chances = list(prob) + [1 - sum(prob)]
    else:
        chances = [1.] if prob in (1, 1.) and len(directions) == 1 else []
    return 1 in chances


def _held_steps(step) -> list:
    """The steps a wrapper step holds, flattened: TestTimeAug holds lists of
    options; RandomApply, RandomChoice, KeyMapper ... hold steps
    (RandomChoice: lists of them), or one step."""
    inner = step.get('transforms')
    if isinstance(inner, dict):
        return [inner]
    if not isinstance(inner, (list, tuple)):
        return []
    return [option for item in inner for option in (
        item if isinstance(item, (list, tuple)) else [item])]


def draws_at_random(step) -> bool:
    """Whether a pipeline step (a transform's config) may give another
    result at each call: a transform of :data:`RANDOM_TRANSFORMS` that is
    not a no-op, or a wrapper (``TestTimeAug``, ``RandomApply`` ...)
    holding one.

    Args:
        step (dict): A transform's config; anything else (a callable) is
            taken as deterministic.

    Returns:
        bool: Whether it draws.
    """
    if not isinstance(step, dict):
        return False
    name = _name(step)
    if _never_applied(step):
        return False  # nor the transforms it holds
    if name == 'Albu':  # it holds albumentations' transforms, not ours
        return _albu_drawing(step) is not None
    if any(draws_at_random(option) for option in _held_steps(step)):
        return True
    if name not in RANDOM_TRANSFORMS:
        return False
    return not _FIXED.get(name, lambda step: False)(step)


def drawing_transform(step) -> str:
    """What makes a step draw at random, for messages: the class name of the
    transform a wrapper holds that draws, ``'RandomZoom (in TestTimeAug)'``,
    or the step's own.

    Args:
        step (dict): A transform's config that :func:`draws_at_random`.
    """
    own = str(step.get('type'))  # as the config writes it
    inside = _drawing_inside(step)
    return f'{inside} (in {own})' if inside else own


def _drawing_inside(step):
    """The class name of the innermost transform that draws among those a
    wrapper step holds, or None."""
    if _name(step) == 'Albu':
        return _albu_drawing(step)
    for option in _held_steps(step):
        if draws_at_random(option):
            return _drawing_inside(option) or str(option.get('type'))
    return None


def _fixed_resize(step) -> bool:
    """Whether a ``RandomResize`` always gives one size: one scale and a
    ``ratio_range`` of one ratio, as mmcv samples it."""
    scale, ratio = step.get('scale'), step.get('ratio_range')
    return isinstance(scale, (list, tuple)) and all(
        isinstance(side, int) for side in scale) and isinstance(
            ratio, (list, tuple)) and len(ratio) == 2 and ratio[0] == ratio[1]


#: Random transforms that, with these arguments, always do the same.
_FIXED = {
    'RandomFlip': _flips_always_alike,
    'RandomResize': _fixed_resize,
    'RandomChoiceResize': lambda step: len(
        {tuple(scale) if isinstance(scale, (list, tuple)) else scale
         for scale in step.get('scales') or []}) == 1,
    'RandomChoice': lambda step: len(step.get('transforms') or []) == 1,
    # Its transforms were looked at above.
    'RandomApply': lambda step: step.get('prob', 0.5) in (1, 1.),
}


def random_step(pipeline) -> int:
    """The position of the first step of a pipeline that draws at random
    (:func:`draws_at_random`). An evaluation pipeline must not hold one:
    it would score a random view of each image, other figures at each
    run.

    Args:
        pipeline (list[dict]): A data pipeline's configs.

    Returns:
        int: That position, or -1.
    """
    return next((index for index, step in enumerate(pipeline or [])
                 if draws_at_random(step)), -1)


def steps_around_masks(pipeline):
    """A pipeline's steps (a callable as ``{}``), their class names and the
    position of its ``LoadAnnotations`` (-1 without one)."""
    steps = [step if isinstance(step, dict) else {} for step in pipeline]
    names = [_name(step) for step in steps]
    loads = names.index('LoadAnnotations') if 'LoadAnnotations' in names \
        else -1
    return steps, names, loads


def moved_before_masks(pipeline, kinds=tuple(MOVING_TRANSFORMS)) -> int:
    """The position of a step that moves pixels (a transform of ``kinds``
    that is not a no-op) before the pipeline's ``LoadAnnotations``: it
    would move the image but not the mask loaded after it (same size, so
    nothing fails: a misaligned ground truth).

    Args:
        pipeline (list[dict]): A data pipeline's configs.
        kinds (Sequence[str]): The class names to look for (a flip before
            the masks is right in a test pipeline: the segmentor flips its
            prediction back).

    Returns:
        int: That position, or -1.
    """
    steps, names, loads = steps_around_masks(pipeline)
    if loads < 0:
        return -1
    return next((index for index in range(loads) if names[index] in kinds
                 and not _never_applied(steps[index])), -1)


def flip_after_masks(pipeline) -> int:
    """The position of a flip (``RandomFlip`` that is not a no-op) after
    the pipeline's ``LoadAnnotations``. In a test pipeline it flips the
    ground truth with the image, while the segmentor flips its prediction
    back to the image as it was loaded: each flipped image is scored
    against a mirrored mask (same size, so nothing fails).

    Args:
        pipeline (list[dict]): A data pipeline's configs.

    Returns:
        int: That position, or -1.
    """
    steps, names, loads = steps_around_masks(pipeline)
    if loads < 0:
        return -1
    return next((index for index in range(loads + 1, len(steps))
                 if names[index] == 'RandomFlip'
                 and not _never_applied(steps[index])), -1)
