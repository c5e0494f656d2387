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
    'BioMedicalGaussianNoise': (('prob', 0.2), ),
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
    name = str(step.get('type', '')).split('.')[-1]
    chances = RANDOM_TRANSFORMS.get(name, ())
    if chances and all(step.get(key, default) in (0, 0.)
                       for key, default in chances):
        return False  # never applied, nor the transforms it holds
    inner = step.get('transforms')
    if isinstance(inner, (list, tuple)):
        # TestTimeAug holds lists of options; RandomApply, RandomChoice,
        # KeyMapper ... hold steps (RandomChoice: lists of them).
        flat = [option for item in inner for option in (
            item if isinstance(item, (list, tuple)) else [item])]
        if any(draws_at_random(option) for option in flat):
            return True
    elif isinstance(inner, dict) and draws_at_random(inner):
        return True
    if name not in RANDOM_TRANSFORMS:
        return False
    if name == 'RandomFlip' and _flips_always_alike(step):
        return False
    if name == 'RandomChoice' and isinstance(inner, (list, tuple)) and \
            len(inner) == 1:
        return False
    if name == 'RandomApply' and step.get('prob', 0.5) in (1, 1.):
        return False  # its transforms were looked at above
    return True


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
