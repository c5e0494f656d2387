"""The test-time augmentation pipeline of ``tools/test.py --tta``, derived
from a config's own test pipeline."""
import copy
from typing import List

from ..utils.errors import UserError
# The one reading of a step's name, its options and a prob=0 no-op.
from .random_transforms import _held_steps, _name, _never_applied

# The image as it is and flipped either way; the segmentor flips each
# prediction back before LesionTTAModel averages them.
FLIPS = [
    dict(type='RandomFlip', prob=0., direction='horizontal'),
    dict(type='RandomFlip', prob=1., direction='horizontal'),
    dict(type='RandomFlip', prob=1., direction='vertical'),
]


def flip_tta_pipeline(test_pipeline: List[dict]) -> List[dict]:
    """The test pipeline with the three flips as its augmented views.

    The views share every transform of ``test_pipeline`` (so the input size
    is the one the model is tested at); the flips come right before
    ``LoadAnnotations``, so the ground truth is never flipped.

    Args:
        test_pipeline (list[dict]): A test pipeline that starts with
            ``LoadImageFromFile`` and ends with ``PackSegInputs``.

    Returns:
        list[dict]: ``LoadImageFromFile`` and a ``TestTimeAug`` whose
        ``transforms`` hold one option per step, three at the flip.

    Raises:
        UserError: A test pipeline of another shape, or one that already
            flips.
    """
    steps = copy.deepcopy(list(test_pipeline))
    # Without their scope: flips put after 'mmseg.LoadAnnotations' flipped
    # the ground truth of the flipped views.
    types = [_name(step) for step in steps]
    if len(steps) < 2 or types[0] != 'LoadImageFromFile' or \
            types[-1] != 'PackSegInputs':
        raise UserError(
            '--tta needs a test pipeline that starts with LoadImageFromFile '
            f'and ends with PackSegInputs, got {types}; set tta_pipeline in '
            'the config instead')
    if 'RandomFlip' in types:
        raise UserError(f'the test pipeline already flips ({types}); set '
                        'tta_pipeline in the config instead')
    at = types.index('LoadAnnotations') if 'LoadAnnotations' in types \
        else len(steps) - 1
    views = [[step] for step in steps[1:at]] + [copy.deepcopy(FLIPS)] + \
        [[step] for step in steps[at:]]
    return [steps[0], dict(type='TestTimeAug', transforms=views)]


# Transforms that move pixels in a way the segmentor does not undo: it
# turns back flips and resizes only (mmseg's ``postprocess_result``).
UNDONE_ONLY_BY_HAND = ('RandomRotate', 'RandomRotFlip', 'RandomCrop',
                       'CenterCrop', 'RandomZoom', 'RandomMosaic')


def check_tta_views(tta_pipeline, config: str) -> None:
    """Refuse a ``tta_pipeline`` whose views rotate, crop or zoom the
    image: the segmentor turns each view's prediction back by its flip and
    size only, so such a view's prediction would be averaged, misplaced,
    with the others and scored (exit 0). Refuse one that loads no ground
    truth too (a ``KeyError`` traceback at the first image).

    Args:
        tta_pipeline (list[dict] | None): The config's ``tta_pipeline``.
        config (str): Its file, for the message.

    Raises:
        UserError: Naming the step and the transform, or the missing
            ``LoadAnnotations``.
    """
    def moves(step):
        # A step that never fires (prob=0) leaves the view as it is.
        return _name(step) in UNDONE_ONLY_BY_HAND and \
            not _never_applied(step)

    names = []
    for index, step in enumerate(tta_pipeline or []):
        if not isinstance(step, dict):
            continue
        options = [option for option in _held_steps(step)
                   if isinstance(option, dict)] \
            if _name(step) == 'TestTimeAug' else [step]
        for option in options:
            names.append(_name(option))
            if moves(option):
                raise UserError(
                    f'--tta: tta_pipeline[{index}] of {config} holds '
                    f"{option['type']}, whose views' predictions are not "
                    'turned back (the segmentor undoes flips and resizes '
                    'only): they would be averaged misplaced and scored; '
                    'use flips and scales as views, or remove tta_pipeline '
                    'from the config (--tta then flips its test pipeline)')
    if tta_pipeline and 'LoadAnnotations' not in names:
        # The metric then failed at the first image with a KeyError
        # 'gt_sem_seg' traceback.
        raise UserError(
            f'--tta: tta_pipeline of {config} loads no ground truth (no '
            'LoadAnnotations), which tools/test.py scores the views\' mean '
            'against; add LoadAnnotations after the flips, or remove '
            'tta_pipeline from the config (--tta then flips its test '
            'pipeline)')


def check_flip_tta(cfg, config: str, what: str = 'infer.py --tta') -> None:
    """Refuse to run the three flips for a config whose ``tools/test.py
    --tta`` runs other views: its own ``tta_pipeline`` (other scales,
    flips or transforms). ``infer.py --tta`` averaged the flips anyway, so
    its masks were not those of the figures test.py reported for the
    config with test-time augmentation.

    Args:
        cfg (Config): The config the model runs with.
        config (str): Its file, for the message.
        what (str): The caller, for the message.

    Raises:
        UserError: The config's ``tta_pipeline`` is not the flips of its
            test pipeline.
    """
    own = cfg.get('tta_pipeline')
    if not own:
        return
    test = ((cfg.get('test_dataloader') or {}).get('dataset') or {}).get(
        'pipeline') or cfg.get('test_pipeline')
    try:
        flips = flip_tta_pipeline(test) if test else None
    except UserError:
        flips = None
    if flips is not None and list(own) == flips:
        return
    raise UserError(
        f'{what}: {config} sets its own tta_pipeline, which tools/test.py '
        '--tta scores, while this averages the image and its horizontal and '
        'vertical flips at the test size only: the masks would not be '
        'those of its test-time augmented figures; leave out test-time '
        'augmentation, or remove tta_pipeline from the config (test.py '
        '--tta then averages the same flips)')
