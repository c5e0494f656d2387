"""The leaderboard plot: DSC against GFLOPs (log scale), one panel per
dataset, marker area growing with the parameter count, every point
labelled. Measured rows are filled markers (with the seeds' std as an error
bar), published figures are hollow markers. A short schedule is marked
``†`` and explained under the legend, as in the tables."""
import math
import re

import matplotlib
# A bare Figure draws with Agg on its own: no pyplot, so neither the
# process's matplotlib backend nor a user's open figures are touched.
from matplotlib.figure import Figure

from .table import SHORT_NOTE

NOT_STATED = 'dataset not stated'


def marker_area(params):
    """Marker area in points^2: grows with log10(params), readable from
    0.05 M to 30 M parameters."""
    return 40 + 90 * max(0.0, math.log10(max(params, 1) / 1e4))


def _panels(board):
    datasets = []
    for row in board['measured'] + board['reported']:
        if row['dataset'] and row['dataset'] not in datasets:
            datasets.append(row['dataset'])
    return sorted(datasets) or [NOT_STATED]


def family(name):
    """Colour key shared by a measured model and its published row:
    'EGE-UNet' and 'egeunet' -> 'egeunet', 'DSNet (paper)' -> 'dsnet'."""
    return re.split(r'[ _(]', name.lower().replace('-', ''))[0]


# Label offsets (points) cycled through, so neighbours do not overprint.
OFFSETS = ((10, 6), (10, -14), (10, 20), (10, -28))


def _label(row):
    if row['source'] == 'reported':
        return f'{row["model"]} [reported]'
    tag = '' if row['protocol'] == 'lightweight' else f', {row["protocol"]}'
    # A schedule description "NAME: details" is labelled by NAME only; the
    # tables carry the details. A short schedule is marked as the tables
    # mark it.
    schedule = row['schedule'].split(':')[0] + (
        ' †' if row['short_schedule'] else '')
    return f'{row["model"]} ({schedule}{tag})'


def plot_leaderboard(board, path):
    """Draw the leaderboard to ``path`` (PNG); returns the points drawn as
    (panel, label, gflops, dsc, source)."""
    panels = _panels(board)
    fig = Figure(figsize=(7 * len(panels), 5.5))
    axes = fig.subplots(1, len(panels), squeeze=False)
    names = sorted({family(r['model'])
                    for r in board['measured'] + board['reported']})
    colours = {n: matplotlib.colormaps['tab10'](i % 10) for i, n in enumerate(names)}
    drawn, short = [], []
    for ax, panel in zip(axes[0], panels):
        points = []
        for row in board['measured'] + board['reported']:
            measured = row['source'] == 'measured'
            if row['dataset'] != panel and not (
                    row['dataset'] is None and not measured):
                continue
            if row['flops'] is None or row['dsc'] is None:
                continue
            dsc = row['dsc']['mean'] if measured else row['dsc']
            points.append((row['flops'] / 1e9, dsc, row))
        # Neighbours in x get different label heights.
        for i, (gflops, dsc, row) in enumerate(sorted(
                points, key=lambda p: (p[0], p[1]))):
            measured = row['source'] == 'measured'
            colour = colours[family(row['model'])]
            if measured and row['dsc']['std'] is not None:
                ax.errorbar(gflops, dsc, yerr=row['dsc']['std'], fmt='none',
                            ecolor=colour, capsize=3, zorder=2)
            ax.scatter(gflops, dsc, s=marker_area(row['params'] or 1),
                       marker='o' if measured else 's',
                       facecolors=colour if measured else 'none',
                       edgecolors=colour, linewidths=1.5, zorder=3)
            label = _label(row) + ('' if row['dataset'] else
                                   f' ({NOT_STATED})')
            ax.annotate(label, (gflops, dsc), xytext=OFFSETS[i % len(OFFSETS)],
                        textcoords='offset points', fontsize=7, color=colour,
                        arrowprops=dict(arrowstyle='-', lw=0.5,
                                        color=colour))
            drawn.append((panel, label, gflops, dsc, row['source']))
            short.append(measured and bool(row['short_schedule']))
        ax.margins(x=0.25, y=0.1)
        ax.set_xscale('log')
        ax.set_xlabel('GFLOPs at 1x3x256x256 (log scale; 1 multiply-add '
                      '= 1 FLOP)')
        ax.set_ylabel('pooled lesion DSC (%)')
        ax.set_title(panel)
        ax.grid(True, which='both', alpha=0.3)
    # Empty scatters on the last panel, as pyplot's current axes drew them.
    last = axes[0][-1]
    handles = [
        last.scatter([], [], marker='o', c='grey', label='measured here '
                     '(mean over seeds, error bar = std)'),
        last.scatter([], [], marker='s', facecolors='none', edgecolors='grey',
                     label='reported (published figure)')]
    # The tables' footnote for the rows marked †, under the legend.
    note = SHORT_NOTE if any(short) else None
    if note:
        fig.text(0.5, 0.01, note, ha='center', va='bottom', fontsize=7)
    fig.legend(handles=handles, loc='lower center', ncol=2, fontsize=8,
               bbox_to_anchor=(0.5, 0.04 if note else 0),
               title='marker area grows with log(params)', title_fontsize=8)
    fig.tight_layout(rect=(0, 0.14 if note else 0.1, 1, 1))
    # PNG whatever the name ends with (a hidden temporary file's does not).
    fig.savefig(path, dpi=130, format='png')
    return drawn
