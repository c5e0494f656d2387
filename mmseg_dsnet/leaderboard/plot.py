"""The leaderboard plot: DSC against GFLOPs (log scale), one panel per
dataset, marker area growing with the parameter count, every point
labelled. Measured rows are filled markers (with the seeds' std as an error
bar), published figures are hollow markers; markers that would hide each
other are set side by side (:func:`_dodge_markers`). A short schedule is marked
``†`` and explained under the legend, as in the tables. Under them, one
panel per measured schedule (of two rows or more) compares its rows as a
dot plot sorted by DSC: mean over seeds, the seeds' std as error bar, the
number of seeds in each row's name."""
import math
import re
import textwrap
from collections import namedtuple

import matplotlib
# A bare Figure draws with Agg on its own: no pyplot, so neither the
# process's matplotlib backend nor a user's open figures are touched.
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from mmseg_dsnet.utils.errors import UserError
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


# Labels: font size, the gap (points) between a marker's edge and its label,
# and the vertical step (points) between the heights a label may take.
FONT_SIZE = 7
GAP = 4
STEP = 9
# Markers: the least room (points) between a marker's edge and the centre
# of any other marker, so that each shows its middle.
CLEAR = 1
# The narrowest DSC range (percentage points) a dot plot spans: rows that
# differ in the third decimal are not spread across the whole panel.
MIN_DOT_SPAN = 0.5
DPI = 130

#: A GFLOPs panel's point: its panel, its label (an Annotation at the
#: point's GFLOPs and DSC), its marker area (points^2), its marker (a
#: PathCollection) and the lines of its error bar (none without one).
Point = namedtuple('Point', 'ax ann area marker error_bar')
#: The legend's words for markers that :func:`_dodge_markers` moved.
DODGE_NOTE = 'markers that would hide each other are set side by side'


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


def _label_slots(y, radius, bounds, px):
    """The places a label may take, nearest first: left edge ``GAP``
    points right of the marker (or right edge left of it), at heights
    stepping ``STEP`` points away from the point's own, within the panel's
    height. Yields ``(offset in points, horizontal alignment)``.

    Args:
        y (float): The point's height in display pixels.
        radius (float): The marker's half width in points.
        bounds (Bbox): The panel in display pixels.
        px (float): Display pixels per point.
    """
    below = (y - bounds.y0) / (STEP * px)
    above = (bounds.y1 - y) / (STEP * px)
    for k in range(int(max(below, above)) + 1):
        for dy in ((0,) if k == 0 else (k, -k)):
            for dx, ha in ((radius + GAP, 'left'), (-radius - GAP, 'right')):
                yield (dx, dy * STEP), ha


def _top_down(point):
    """The order points are placed in: highest DSC first, then by GFLOPs
    and label, so that a cluster's markers and labels stack in the order
    of its points."""
    (x, y), text = point.ann.xy, point.ann.get_text()
    return -y, x, text


def _place_labels(fig, points):
    """Move every label to the nearest slot where its text overlaps no
    other label and no other point's marker, inside its panel, and draw a
    line from it to its point (see :func:`_top_down` for the order).

    Args:
        fig (Figure): The figure, laid out (its axes limits fixed) and its
            markers placed (:func:`_dodge_markers`).
        points (list[Point]): The GFLOPs panels' points.

    Raises:
        UserError: A label found no free slot (it would be drawn over
            another one).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox
    renderer = FigureCanvasAgg(fig).get_renderer()
    px = fig.dpi / 72  # display pixels per point
    # Where each marker is drawn (display pixels): its centre and box.
    centres = [p.ann.xycoords.transform(p.ann.xy) for p in points]
    markers = []
    for point, (x, y) in zip(points, centres):
        r = math.sqrt(point.area) / 2 * px
        markers.append((point.ax, Bbox([[x - r, y - r], [x + r, y + r]])))
    taken = {}
    for i in sorted(range(len(points)), key=lambda i: _top_down(points[i])):
        ax, ann, area = points[i][:3]
        bounds = ax.get_window_extent(renderer)
        others = [b for j, (a, b) in enumerate(markers)
                  if a is ax and j != i] + taken.setdefault(ax, [])
        y = centres[i][1]
        for offset, ha in _label_slots(y, math.sqrt(area) / 2, bounds, px):
            ann.xyann = offset
            ann.set_horizontalalignment(ha)
            ann.update_positions(renderer)
            # The text alone: an Annotation's own extent adds its line.
            box = Text.get_window_extent(ann, renderer)
            if (bounds.x0 <= box.x0 and box.x1 <= bounds.x1
                    and bounds.y0 <= box.y0 and box.y1 <= bounds.y1
                    and not any(box.overlaps(b) for b in others)):
                taken[ax].append(box)
                _leader_line(ax, ann, box, ha)
                break
        else:
            raise UserError(
                f'leaderboard.png: no free place for the label '
                f'{ann.get_text()!r} in the panel {ax.get_title()!r} (too '
                'many points to label without overlap); nothing was '
                'written (build with --no-plot to skip the figure)')


def _sideways():
    """Sideways shifts in points, smallest first, right before left."""
    shift = 0
    yield 0
    while True:
        shift += 1
        yield shift
        yield -shift


def _covers(x, y, r, other_x, other_y, other_r, px):
    """Whether one of two markers (centres and half widths in display
    pixels) is drawn over the other's middle: their centres lie closer,
    across and up, than the larger half width plus ``CLEAR`` points."""
    apart = max(abs(x - other_x), abs(y - other_y))
    return apart < max(r, other_r) + CLEAR * px


def _dodge_markers(fig, points):
    """Set markers that would hide each other side by side. From the
    highest DSC down (:func:`_top_down`), each marker keeps its place or
    moves sideways by the fewest whole points that leave its centre and
    the centres of the markers placed before it in its panel uncovered
    (:func:`_covers`), staying inside the panel; its height (DSC) is kept
    and its error bar moves with it. Each label's ``xycoords``
    becomes the transform its marker is drawn with, so that the label and
    its line go to where the marker is.

    Args:
        fig (Figure): The figure, laid out (its axes limits fixed).
        points (list[Point]): The GFLOPs panels' points.

    Returns:
        bool: Whether any marker was moved.

    Raises:
        UserError: A marker found no place clear of the others inside its
            panel.
    """
    from matplotlib.transforms import offset_copy
    px = fig.dpi / 72  # display pixels per point
    placed, moved = {}, False
    for point in sorted(points, key=_top_down):
        bounds = point.ax.get_window_extent()
        x, y = point.ax.transData.transform(point.ann.xy)
        r = math.sqrt(point.area) / 2 * px
        others = placed.setdefault(point.ax, [])
        for shift in _sideways():
            cx = x + shift * px
            if abs(shift) * px > bounds.width:
                raise UserError(
                    f'leaderboard.png: no free place for the marker of '
                    f'{point.ann.get_text()!r} in the panel '
                    f'{point.ax.get_title()!r} (too many points to draw '
                    'without overlap); nothing was written (build with '
                    '--no-plot to skip the figure)')
            if (bounds.x0 <= cx - r and cx + r <= bounds.x1
                    and not any(_covers(cx, y, r, *other, px)
                                for other in others)):
                break
        others.append((cx, y, r))
        moved = moved or shift != 0
        to_display = offset_copy(point.ax.transData, fig=fig, x=shift,
                                 units='points')
        point.ann.xycoords = to_display
        point.marker.set_offset_transform(to_display)
        for line in point.error_bar:
            line.set_transform(to_display)
    return moved


def _leader_line(ax, ann, box, ha):
    """A thin line from the label's near edge to its point's marker, under
    the markers and every label (an annotation's own line is drawn with
    its text, over the labels drawn before it). It is drawn with the
    marker's transform (``ann.xycoords``): it starts at ``ann.xy``."""
    edge = box.x0 if ha == 'left' else box.x1
    to_display = ann.xycoords
    end = to_display.inverted().transform((edge, (box.y0 + box.y1) / 2))
    ax.plot([ann.xy[0], end[0]], [ann.xy[1], end[1]], color=ann.get_color(),
            lw=0.5, zorder=2.5, transform=to_display)


def plot_leaderboard(board, path):
    """Draw the leaderboard to ``path`` (PNG); returns the points drawn as
    (panel, label, gflops, dsc, source). No marker overlaps another
    marker (see :func:`_dodge_markers`), no label another label or another
    point's marker (see :func:`_place_labels`)."""
    panels = _panels(board)
    per_panel = [_panel_points(board, panel) for panel in panels]
    schedules = _schedule_groups(board)
    # Room for every label of the most crowded panel stacked in a column.
    most = max([len(p) for p in per_panel] + [1])
    top = max(5.5, 2.5 + most * 0.2)
    bottom = max([1.2 + 0.3 * len(rows) for _, rows in schedules] + [2.5])
    # A dot plot's row names need about 4.5 inches of width per panel.
    fig = Figure(figsize=(max(7 * len(panels), 4.5 * len(schedules)),
                          top + (bottom if schedules else 0)), dpi=DPI)
    # Columns enough to split the width evenly in both rows.
    cols = math.lcm(len(panels), len(schedules) or 1)
    grid = fig.add_gridspec(2 if schedules else 1, cols,
                            height_ratios=(top, bottom) if schedules
                            else None)
    step = cols // len(panels)
    axes = [[fig.add_subplot(grid[0, i * step:(i + 1) * step])
             for i in range(len(panels))]]
    names = sorted({family(r['model'])
                    for r in board['measured'] + board['reported']})
    tab10 = matplotlib.colormaps['tab10']
    colours = {n: tab10(i % 10) for i, n in enumerate(names)}
    drawn, short, points = [], [], []
    for ax, panel, rows in zip(axes[0], panels, per_panel):
        for gflops, dsc, row in rows:
            measured = row['source'] == 'measured'
            colour = colours[family(row['model'])]
            error_bar = []
            if measured and row['dsc']['std'] is not None:
                error_bar = ax.errorbar(
                    gflops, dsc, yerr=row['dsc']['std'], fmt='none',
                    ecolor=colour, capsize=3, zorder=2).get_children()
            area = marker_area(row['params'] or 1)
            marker = ax.scatter(
                gflops, dsc, s=area,
                marker='o' if measured else 's',
                facecolors=colour if measured else 'none',
                # A filled marker's pale rim shows where it meets another.
                edgecolors='white' if measured else colour,
                linewidths=1 if measured else 1.5, zorder=3)
            label = _label(row) + ('' if row['dataset'] else
                                   f' ({NOT_STATED})')
            # Placed once the panels are laid out (_place_labels).
            # Over the other labels' lines, on a pale ground so that a
            # line passing under it does not strike it through.
            ann = ax.annotate(label, (gflops, dsc), xytext=(0, 0),
                              textcoords='offset points', va='center',
                              fontsize=FONT_SIZE, color=colour, zorder=5,
                              bbox=dict(boxstyle='square,pad=0.05',
                                        fc='white', ec='none', alpha=0.8))
            # Left out of the layout: it is placed inside its panel later.
            ann.set_in_layout(False)
            points.append(Point(ax, ann, area, marker, error_bar))
            drawn.append((panel, label, gflops, dsc, row['source']))
            short.append(measured and bool(row['short_schedule']))
        ax.margins(x=0.25, y=0.1)
        ax.set_xscale('log')
        ax.set_xlabel('GFLOPs at 1x3x256x256 (log scale; 1 multiply-add '
                      '= 1 FLOP)')
        ax.set_ylabel('pooled lesion DSC (%)')
        ax.set_title(panel)
        ax.grid(True, which='both', alpha=0.3)
    dot_axes = []
    if schedules:
        step = cols // len(schedules)
        for i, (title, rows) in enumerate(schedules):
            dot_axes.append(
                fig.add_subplot(grid[1, i * step:(i + 1) * step]))
            _dot_plot(dot_axes[-1], title, rows, colours)
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
    # The dot plots' markers are all of one size.
    area_note = 'marker area grows with log(params)' + (
        ' (GFLOPs panels)' if schedules else '')
    # Anchored in inches (0.22 above the note), whatever the figure height.
    legend = fig.legend(
        handles=handles, loc='lower center', ncol=2, fontsize=8,
        bbox_to_anchor=(0.5, (0.22 if note else 0) / fig.get_figheight()),
        title=area_note, title_fontsize=8)
    # The layout first, then the markers and labels: their places depend
    # on where the points are drawn.
    foot = 0.8 if note else 0.55  # inches under the panels: legend, note
    rect = (0, foot / fig.get_figheight(), 1, 1)
    fig.tight_layout(rect=rect)
    texts = [(ax, text, text.get_text()) for ax in dot_axes
             for text in (ax.title, ax.xaxis.label)]
    # A wrapped text is taller: the layout again, until every one fits.
    for _ in range(4):
        if not _wrap_to_panels(fig, texts):
            break
        fig.tight_layout(rect=rect)
    for ax in axes[0]:
        ax.set_xlim(ax.get_xlim())
        ax.set_ylim(ax.get_ylim())
    if _dodge_markers(fig, points):
        legend.set_title(f'{area_note}; {DODGE_NOTE}')
    _place_labels(fig, points)
    # PNG whatever the name ends with (a hidden temporary file's does not).
    fig.savefig(path, dpi=DPI, format='png')
    return drawn


def _panel_points(board, panel):
    """``(gflops, dsc, row)`` of the rows drawn in ``panel``, by GFLOPs."""
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
    return sorted(points, key=lambda p: (p[0], p[1]))


def _schedule_groups(board):
    """``(title, rows)`` per measured schedule with two rows or more: the
    rows of one dataset, protocol and schedule, sorted by mean DSC
    (highest first; ties by model)."""
    groups = {}
    for row in board['measured']:
        if row['dsc'] is None:
            continue
        key = (row['dataset'] or NOT_STATED, row['protocol'],
               row['schedule'])
        groups.setdefault(key, []).append(row)
    out = []
    for (dataset, protocol, schedule), rows in sorted(groups.items()):
        if len(rows) < 2:
            continue
        name = schedule.split(':')[0] + (
            ' †' if rows[0]['short_schedule'] else '')
        rows = sorted(rows, key=lambda r: (-r['dsc']['mean'], r['model']))
        out.append((f'{dataset}: {name} ({protocol} protocol)', rows))
    return out


def dot_plot_range(rows):
    """The DSC range a dot plot spans: every row's mean and error bar,
    widened to ``MIN_DOT_SPAN`` about their middle when they lie closer,
    with a tenth of that width to spare on either side.

    Args:
        rows (list[dict]): The schedule's measured rows.

    Returns:
        tuple[float]: The lowest and highest DSC of the axis.
    """
    low = min(r['dsc']['mean'] - (r['dsc']['std'] or 0) for r in rows)
    high = max(r['dsc']['mean'] + (r['dsc']['std'] or 0) for r in rows)
    half = max(high - low, MIN_DOT_SPAN) / 2
    middle = (low + high) / 2
    return middle - 1.2 * half, middle + 1.2 * half


def _wrap_to_panels(fig, texts):
    """Wrap each text onto as many lines as it takes to be no wider than
    its panel: a title or axis label wider than a narrow panel runs over
    its neighbour's or off the figure (the layout makes room for an axis
    label's height, not its width).

    Args:
        fig (Figure): The figure, laid out.
        texts (list[tuple]): ``(axes, Text, its words on one line)``.

    Returns:
        bool: Whether any text was wrapped anew.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    changed = False
    for ax, text, words in texts:
        before = text.get_text()
        width = ax.get_window_extent(renderer).width
        # From the one-line words: the panel may have grown wider.
        chars = len(words)
        text.set_text(words)
        while text.get_window_extent(renderer).width > width and chars > 1:
            chars -= 1
            text.set_text(textwrap.fill(words, chars))
        changed = changed or text.get_text() != before
    return changed


def _dot_plot(ax, title, rows, colours):
    """One schedule's rows, best at the top: mean DSC with the seeds' std
    as error bar, each row named with its number of seeds."""
    for i, row in enumerate(reversed(rows)):
        colour = colours[family(row['model'])]
        if row['dsc']['std'] is not None:
            ax.errorbar(row['dsc']['mean'], i, xerr=row['dsc']['std'],
                        fmt='none', ecolor=colour, capsize=3, zorder=2)
        ax.scatter(row['dsc']['mean'], i, s=30, marker='o',
                   facecolors=colour, edgecolors=colour, zorder=3)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f'{r["model"]} (n={r["dsc"]["n"]})'
                        for r in reversed(rows)], fontsize=FONT_SIZE)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlim(*dot_plot_range(rows))
    # DSC as it is, not as an offset from it ('0.002' and '+8.9e1').
    ax.xaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    ax.set_xlabel('pooled lesion DSC (%), mean ± std over n seeds',
                  fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis='x', alpha=0.3)
