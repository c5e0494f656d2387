"""Which images make runs of one design differ: from the ``per_image.csv``
of several runs (``tools/test.py --out``, one run per seed), each image's
share of the spread of the pooled error over the runs.

The pooled IoU of a run is ``1 - E / U`` for its wrong pixels ``E`` (lesion
missed plus background called lesion) and the union ``U``; over runs of one
design ``E`` moves far more than ``U``, so its spread is what spreads the
score. ``E`` is the sum of the images' wrong pixels ``e_i``, and its variance
splits exactly into the images' covariances with it:
``var(E) = sum_i cov(e_i, E)``. An image's share ``cov(e_i, E) / var(E)`` is
how much of the spread it carries (negative when its errors go against the
rest's).

The sum of the images' own variances, ``sum_i var(e_i)``, is the spread the
runs would have if each image's error moved on its own, with nothing
shared by a run's images (no run that is wider or narrower on all of
them); its fraction of ``var(E)`` tells the two apart: near 1, the runs
differ image by image, as independent draws; well below 1, a run's errors
move together across its images."""
import csv
import statistics
from typing import Dict, Sequence

from ..evaluation.lesion_metric import confusion_to_scores
from ..utils.errors import UserError
from ..utils.messages import first_few

#: The columns of ``per_image.csv`` read here
#: (:func:`~mmseg_dsnet.evaluation.lesion_metric.write_per_image_table`).
COLUMNS = ('image', 'lesion_pixels', 'predicted_pixels', 'overlap_pixels')


def read_per_image_table(path: str) -> Dict[str, tuple]:
    """Image -> (lesion, predicted, overlapping pixels) of one run.

    Raises:
        UserError: The file cannot be read, lacks a column, holds an
            image twice or a count that is not a whole number.
    """
    try:
        with open(path, newline='') as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f'{path}: cannot be read as a per-image table '
                        f'({type(err).__name__}: {err})') from None
    missing = [c for c in COLUMNS if not rows or c not in rows[0]]
    if missing:
        raise UserError(
            f'{path}: no {", ".join(missing)} column'
            f'{"" if len(missing) == 1 else "s"}; give the per_image.csv '
            'that tools/test.py --out DIR writes into DIR')
    table = {}
    for line, row in enumerate(rows, start=2):
        if row['image'] in table:
            raise UserError(f'{path}: line {line} lists {row["image"]} a '
                            'second time')
        try:
            counts = tuple(int(row[c]) for c in COLUMNS[1:])
        except (TypeError, ValueError):
            raise UserError(f'{path}: line {line} ({row["image"]}) holds a '
                            'pixel count that is not a whole number') from None
        table[row['image']] = counts
    return table


def spread_by_image(tables: Dict[str, Dict[str, tuple]]) -> dict:
    """Each image's share of the spread of the pooled error over runs.

    Args:
        tables (dict): Run -> :func:`read_per_image_table` of that run; at
            least two runs, all of the same images.

    Returns:
        dict: ``pooled`` (run -> pooled IoU in percent),
        ``independent_fraction`` (``sum_i var(e_i) / var(E)``), ``rows``
        (one dict
        per image, largest share first: ``image``, ``lesion_pixels``,
        ``iou_mean``, ``iou_std`` (percent over runs), ``wrong_mean``
        (wrong pixels, mean over runs), ``share`` (of ``var(E)``)).

    Raises:
        UserError: Fewer than two runs, runs of other images, or runs whose
            pooled error does not vary.
    """
    runs = list(tables)
    if len(runs) < 2:
        raise UserError('the spread over runs needs the tables of at least '
                        f'two runs, got {len(runs)}')
    images = list(tables[runs[0]])
    for run in runs[1:]:
        if set(tables[run]) != set(images):
            other = sorted(set(tables[run]) ^ set(images))
            raise UserError(
                f'{run} and {runs[0]} score other images '
                f'({first_few(other)} in one only): the runs must be '
                'tested on one split')
    # Lesion missed plus background called lesion: the union less the
    # overlap.
    wrong = {run: [_union(*tables[run][i]) - tables[run][i][2]
                   for i in images] for run in runs}
    totals = [sum(wrong[run]) for run in runs]
    variance = statistics.variance(totals)
    if variance == 0:
        raise UserError('the runs\' pooled error does not vary: there is no '
                        'spread to share out')
    pooled = {
        run: _iou(*(sum(tables[run][i][k] for i in images)
                    for k in range(3)))
        for run in runs
    }
    rows = []
    own_variance = 0.0
    for index, image in enumerate(images):
        errors = [wrong[run][index] for run in runs]
        own_variance += statistics.variance(errors)
        ious = [_iou(*tables[run][image]) for run in runs]
        rows.append(dict(
            image=image, lesion_pixels=tables[runs[0]][image][0],
            iou_mean=statistics.mean(ious), iou_std=statistics.stdev(ious),
            wrong_mean=statistics.mean(errors),
            share=statistics.covariance(errors, totals) / variance))
    rows.sort(key=lambda row: -row['share'])
    return dict(pooled=pooled, independent_fraction=own_variance / variance,
                rows=rows)


def _union(lesion: int, predicted: int, overlap: int) -> int:
    """Pixels that are lesion or predicted lesion."""
    return lesion + predicted - overlap


def _iou(lesion: int, predicted: int, overlap: int) -> float:
    """IoU in percent; 100 where neither lesion nor prediction is (as the
    per-image means count it)."""
    return 100 * confusion_to_scores(overlap, predicted - overlap,
                                     lesion - overlap, 0)['IoU']


def spread_table(spread: dict, top: int = 10) -> str:
    """Markdown: the pooled IoU over runs, then the ``top`` images by their
    share of the spread, with the running total.

    Args:
        spread (dict): :func:`spread_by_image`'s result.
        top (int): Images shown. Default: 10.
    """
    pooled = list(spread['pooled'].values())
    spread_std = statistics.stdev(pooled)
    fraction = spread['independent_fraction']
    rows = spread['rows']
    lines = [
        f'Pooled IoU over {len(pooled)} runs: {statistics.mean(pooled):.2f}'
        f' ± {spread_std:.2f} (std); {len(rows)} images.', '',
        'Images on their own: the images\' own variances of the wrong '
        f'pixels make up {100 * fraction:.0f} % of the pooled error\'s '
        + ('(the rest moves together across a run\'s images)'
           if fraction <= 1 else
           '(more than all of it: within a run some images\' errors '
           'offset others\')') +
        '; with each image\'s error moving on its own, the pooled IoU '
        f'would spread about {spread_std * fraction**0.5:.2f}.', '',
        '| image | lesion pixels | IoU mean ± std over runs | wrong pixels '
        '(mean) | share of the spread | cumulative |',
        '|---|---|---|---|---|---|'
    ]
    cumulative = 0.0
    for row in rows[:top]:
        cumulative += row['share']
        lines.append(
            f'| {row["image"]} | {row["lesion_pixels"]} | '
            f'{row["iou_mean"]:.2f} ± {row["iou_std"]:.2f} | '
            f'{row["wrong_mean"]:.0f} | {100 * row["share"]:.1f} % | '
            f'{100 * cumulative:.1f} % |')
    return '\n'.join(lines) + '\n'


def read_tables(paths: Sequence[str]) -> Dict[str, Dict[str, tuple]]:
    """:func:`read_per_image_table` of each path, by path.

    Raises:
        UserError: A path given twice, or one that cannot be read.
    """
    twice = sorted({p for p in paths if list(paths).count(p) > 1})
    if twice:
        raise UserError(f'{", ".join(twice)} given twice: each run counts '
                        'once')
    return {path: read_per_image_table(path) for path in paths}
