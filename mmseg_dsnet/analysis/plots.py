"""Figures of the analyses, for ``--plot`` of ``threshold_sweep.py`` and
``error_by_position.py``: the lesion figures against the decision threshold
(:func:`plot_threshold_sweep`) and the errors per ring from the centre to
the corners (:func:`plot_error_by_position`).

As the leaderboard plot (:mod:`mmseg_dsnet.leaderboard.plot`), they draw on
a bare :class:`~matplotlib.figure.Figure` (Agg on its own): no pyplot, so
neither the process's matplotlib backend nor a user's open figures are
touched. Each writes a PNG whatever the file name ends with (the temporary
file of :func:`~mmseg_dsnet.utils.fileio.atomic_write` has a suffix of its
own).
"""
import math
from typing import Dict, Optional, Sequence

from matplotlib.figure import Figure

from ..utils.messages import counted

#: Pixels per inch of the PNGs: the sweep's is 1000x750, the rings'
#: 900x500.
DPI = 100
SWEEP_SIZE = (10, 7.5)
RINGS_SIZE = (9, 5)
#: The sweep's panels: figure name -> axis label.
SWEEP_FIGURES = (('IoU', 'lesion IoU (%)'), ('DSC', 'lesion DSC (%)'),
                 ('Sen', 'sensitivity (%)'), ('Spe', 'specificity (%)'))
# One line style and marker per checkpoint, cycled.
STYLES = (('-', 'o'), ('--', 's'), (':', '^'), ('-.', 'D'))


def _percent(value) -> float:
    """A fraction as percent; None (a JSON null) and nan as nan."""
    return math.nan if value is None else 100 * float(value)


def plot_threshold_sweep(scores: Dict[str, dict],
                         thresholds: Sequence[float],
                         path: str,
                         title: str,
                         reference: Optional[float] = None,
                         model_threshold: Optional[float] = None) -> list:
    """Draw each checkpoint's lesion IoU, DSC, sensitivity and specificity
    against the decision threshold, one panel each, to ``path`` (PNG).

    Args:
        scores (dict): Checkpoint label -> threshold -> LesionMetric
            figures (percent), as
            :func:`~mmseg_dsnet.analysis.threshold_sweep.scores_by_threshold`
            gives them per checkpoint.
        thresholds (Sequence[float]): The thresholds scored.
        path (str): The PNG file.
        title (str): The figure's title (:func:`sweep_plot_title`).
        reference (float, optional): The threshold the others are judged
            against, marked with a dashed line.
        model_threshold (float, optional): The threshold of the model's
            own decode head, marked with a dotted line.

    Returns:
        list[tuple]: The lines drawn as ``(figure, label, xs, ys)``.
    """
    xs = sorted(thresholds)
    fig = Figure(figsize=SWEEP_SIZE)
    axes = fig.subplots(2, 2, sharex=True).ravel()
    drawn = []
    for ax, (name, axis_label) in zip(axes, SWEEP_FIGURES):
        for i, (label, by_t) in enumerate(scores.items()):
            style, marker = STYLES[i % len(STYLES)]
            ys = [float(by_t[t][name]) for t in xs]
            ax.plot(xs, ys, linestyle=style, marker=marker, label=label)
            drawn.append((name, label, xs, ys))
        marks = []
        if reference is not None:
            marks.append((reference, '--', f'reference {reference:g}'))
        if model_threshold is not None:
            same = reference is not None and model_threshold == reference
            marks.append((model_threshold, ':', f"model's own "
                          f'{model_threshold:g}' + (' (= reference)'
                                                    if same else '')))
        for x, style, label in marks:
            ax.axvline(x, color='grey', linestyle=style, linewidth=1,
                       label=label)
        ax.set_ylabel(axis_label)
        ax.grid(True, alpha=0.3)
    for ax in axes[2:]:
        ax.set_xlabel('decision threshold (lesion probability)')
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center',
               ncol=min(len(labels), 4), fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    # The title is also the PNG's Title text, readable without the image.
    fig.savefig(path, dpi=DPI, format='png',
                metadata={'Title': ' '.join(title.split())})
    return drawn


def sweep_plot_title(config: str, provenance: Dict,
                     low_res_size: Sequence[int]) -> str:
    """The title of :func:`plot_threshold_sweep`: the config, the images
    scored (the split file under its data root, as ``data_provenance``
    records it, and whether the set is synthetic) and the size the pooled
    figures are counted at (``LesionMetric``'s ``low_res_size``: they are
    ``tools/test.py``'s ``IoU`` ..., not its ``IoU_orig`` ...)."""
    height, width = low_res_size
    return (f'{config}: {scored_split(provenance)}\n({provenance["images"]} '
            f'images{synthetic_note(provenance)}; '
            f'lesion figures pooled over all pixels at {height}x{width})')


def scored_split(provenance: Dict) -> str:
    """The images a figure is of, as its title names them: the split file
    under its data root, or the data root when the loader reads a whole
    folder (``data_provenance``'s ``split_file`` is then None).

    Args:
        provenance (dict): ``data_provenance`` of the scored dataset.

    Returns:
        str: The path.
    """
    return provenance.get('split_file') or provenance.get('data_root')


def synthetic_note(provenance: Dict) -> str:
    """``', SYNTHETIC set'`` for figures of the synthetic stand-in set (its
    split files bear the real sets' names), else ``''``."""
    return ', SYNTHETIC set' if provenance.get('synthetic') else ''


def plot_error_by_position(summary: Dict, path: str, title: str,
                           provenance: Optional[Dict] = None) -> list:
    """Draw the errors per ring of :meth:`ErrorByPosition.summary
    <mmseg_dsnet.analysis.error_position.ErrorByPosition.summary>` to
    ``path`` (PNG): per ring from the centre to the corners, the lesion it
    misses, the background it calls lesion and its share of the lesion
    pixels (the columns ``error_by_position.py`` prints). A ring without
    lesion (or background) has no bar of that rate and reads ``no
    lesion``.

    Args:
        summary (dict): The summary (or the ``--out`` record).
        path (str): The PNG file.
        title (str): The figure's title (the config and checkpoint).
        provenance (dict, optional): ``data_provenance`` of the scored
            dataset, whose split file (under its data root) and synthetic
            marker the title names.

    Returns:
        list[tuple]: The bars drawn as ``(series, heights)``, percent.
    """
    rings = summary['rings']
    from .error_position import ring_names
    names = ring_names(rings)
    series = (('lesion missed (% of the ring\'s lesion)', 'missed_rate'),
              ('background called lesion (% of the ring\'s background)',
               'false_rate'),
              ('share of all lesion pixels (%)', 'lesion_share'))
    fig = Figure(figsize=RINGS_SIZE)
    ax = fig.subplots()
    width = 0.8 / len(series)
    drawn = []
    for i, (label, key) in enumerate(series):
        heights = [_percent(r[key]) for r in rings]
        xs = [j + (i - 1) * width for j in range(len(rings))]
        # nan bars are not drawn; a zero-height bar of 0 is.
        ax.bar(xs, [0 if math.isnan(h) else h for h in heights], width,
               label=label)
        for x, h in zip(xs, heights):
            if math.isnan(h):
                ax.annotate('no background' if key == 'false_rate' else
                            'no lesion', (x, 0), rotation=90,
                            ha='center', va='bottom', fontsize=7)
        drawn.append((key, heights))
    ax.set_xticks(range(len(rings)), names,
                  rotation=45 if len(rings) > 10 else 0, fontsize=8)
    ax.set_xlabel('distance from the image centre (0 = centre, '
                  '1 = corners)')
    ax.set_ylabel('%')
    ax.set_ylim(0, 100)
    ax.grid(True, axis='y', alpha=0.3)
    # Below the axes: a rate of 100 % is not hidden behind it.
    fig.legend(loc='lower center', ncol=len(series), fontsize=8)
    caption = error_plot_title(summary, title, provenance)
    fig.suptitle(caption, fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    # The caption is also the PNG's Title text, readable without the image.
    fig.savefig(path, dpi=DPI, format='png',
                metadata={'Title': ' '.join(caption.split())})
    return drawn


def error_plot_title(summary: Dict, title: str,
                     provenance: Optional[Dict] = None) -> str:
    """The title of :func:`plot_error_by_position`: ``title``, the images
    (with ``provenance``, the split file under its data root and whether
    the set is synthetic: the config's split file alone did not say which
    data set) and the pooled IoU at the size each is counted at, as the
    printed table says them (the rings' IoU at the original size is
    ``tools/test.py``'s ``IoU_orig``, its ``IoU`` is at the evaluator's
    ``low_res_size``)."""
    if provenance is not None:
        title = f'{title}\n{scored_split(provenance)}'
    iou, text = summary.get('iou'), ''
    if iou is not None and not math.isnan(iou):
        text = f', pooled IoU {iou:.2f} at the original size'
        low = summary.get('iou_low_res')
        if low is not None and not math.isnan(low):
            height, width = summary['low_res_size']
            text += f', {low:.2f} at {height}x{width}'
    note = synthetic_note(provenance) if provenance is not None else ''
    return f'{title}\n{counted(summary["images"], "image")}{note}{text}'


def check_png_name(path: Optional[str], option: str = '--plot') -> None:
    """Refuse a plot file name that does not end with ``.png``: the figure
    is a PNG whatever the name says.

    Raises:
        UserError: ``path`` has another suffix.
    """
    from ..utils.fileio import refuse_other_suffix
    refuse_other_suffix(path, '.png', option,
                        'the figure is written as a PNG')
