"""The test-time augmentation pipeline of ``tools/test.py --tta``, derived
from a config's own test pipeline."""
import copy
from typing import List

from ..utils.errors import UserError

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
    types = [step.get('type') for step in steps]
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
