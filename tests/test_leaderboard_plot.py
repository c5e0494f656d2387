"""The leaderboard figure (mmseg_dsnet.leaderboard.plot) on small boards
written out by hand: which rows each panel draws, where, with which error
bar, marker and label. The figure's data are read back from its Axes (a
real matplotlib Figure), not from the image."""
import math

import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from mmseg_dsnet.leaderboard import plot


def measured(model, dataset, flops, dsc, std, params=300_000,
             protocol='lightweight', schedule='cpu-30ep: 30 epochs',
             spread=None, short_schedule=False):
    """A measured row as the board holds it (only what the plot reads);
    ``spread`` gives the seeds' min and max where they matter."""
    low, high = spread or (dsc, dsc)
    return dict(model=model, dataset=dataset, source='measured',
                protocol=protocol, schedule=schedule,
                short_schedule=short_schedule, flops=flops,
                params=params, dsc=dict(mean=dsc, std=std, min=low,
                                        max=high, n=1 if std is None else 2))


def reported(model, dataset, flops, dsc, params=50_000):
    return dict(model=model, dataset=dataset, source='reported',
                protocol='lightweight', flops=flops, params=params, dsc=dsc)


@pytest.fixture
def figures(monkeypatch):
    """The Figures plot_leaderboard makes (real ones, kept for reading)."""
    made = []

    class Kept(Figure):

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(plot, 'Figure', Kept)
    return made


def _panel_axes(fig):
    # The legend's empty scatters sit on the last panel; every panel has a
    # title.
    return {ax.get_title(): ax for ax in fig.axes}


def _points(ax):
    """(x, y, size, filled, round) of every non-empty scatter of ``ax``
    (a square marker's path has 5 vertices, a circle's many more)."""
    out = []
    for coll in ax.collections:
        if not isinstance(coll, PathCollection) or not len(
                coll.get_offsets()):
            continue
        (x, y), = coll.get_offsets()
        face = coll.get_facecolors()
        filled = len(face) > 0 and face[0][3] > 0
        round_marker = len(coll.get_paths()[0].vertices) > 5
        out.append((round(float(x), 6), round(float(y), 6),
                    round(float(coll.get_sizes()[0]), 6), filled,
                    round_marker))
    return sorted(out)


def test_each_row_is_drawn_in_its_datasets_panel_at_its_figures(
        tmp_path, figures):
    board = dict(
        measured=[measured('dsnet', 'ISIC 2018', 0.4e9, 88.0, 0.5,
                           params=290_000)],
        reported=[reported('EGE-UNet', 'ISIC 2017', 72e6, 88.77,
                           params=53_000),
                  reported('EGE-UNet', 'ISIC 2018', 72e6, 89.46,
                           params=53_000),
                  reported('DSNet (paper)', None, 0.5e9, 90.0,
                           params=10_000)])
    drawn = plot.plot_leaderboard(board, tmp_path / 'board.png')
    fig, = figures
    axes = _panel_axes(fig)
    # One panel per named dataset, in alphabetical order, left to right
    # (not in the order the rows name them).
    assert [ax.get_title() for ax in fig.axes] == ['ISIC 2017', 'ISIC 2018']
    assert all(ax.get_xscale() == 'log' for ax in fig.axes)
    # Area 40 + 90 * log10(params / 1e4) points^2, at least 40.
    area_290k = round(40 + 90 * math.log10(29), 6)
    area_53k = round(40 + 90 * math.log10(5.3), 6)
    # Measured: filled circles; published: hollow squares.
    assert _points(axes['ISIC 2018']) == sorted([
        (0.4, 88.0, area_290k, True, True),
        (0.072, 89.46, area_53k, False, False),
        (0.5, 90.0, 40.0, False, False)])
    # The published row that names no dataset is in every panel; no other
    # panel's row is.
    assert _points(axes['ISIC 2017']) == sorted([
        (0.072, 88.77, area_53k, False, False),
        (0.5, 90.0, 40.0, False, False)])
    assert sorted((p, label, s) for p, label, _, _, s in drawn) == [
        ('ISIC 2017', 'DSNet (paper) [reported] (dataset not stated)',
         'reported'),
        ('ISIC 2017', 'EGE-UNet [reported]', 'reported'),
        ('ISIC 2018', 'DSNet (paper) [reported] (dataset not stated)',
         'reported'),
        ('ISIC 2018', 'EGE-UNet [reported]', 'reported'),
        ('ISIC 2018', 'dsnet (cpu-30ep)', 'measured')]


def test_the_error_bar_is_the_seeds_std(tmp_path, figures):
    """A measured row's bar spans mean - std to mean + std (seeds 87.0 and
    88.5: mean 87.75, sample std 1.5 / sqrt(2)), not the seeds' range; a
    single seed (no std) and a published row get none."""
    board = dict(measured=[
        measured('dsnet', 'ISIC 2017', 0.4e9, 87.75, 1.5 / math.sqrt(2),
                 spread=(87.0, 88.5)),
        measured('dsnet', 'ISIC 2017', 0.4e9, 85.0, None,
                 schedule='cpu-short: 2 epochs')],
        reported=[reported('MALUNet', 'ISIC 2017', 83e6, 88.13)])
    plot.plot_leaderboard(board, tmp_path / 'board.png')
    ax, = figures[0].axes
    bars = [c for c in ax.containers if hasattr(c, 'has_yerr')]
    assert len(bars) == 1 and bars[0].has_yerr and not bars[0].has_xerr
    (start, end), = bars[0].lines[2][0].get_segments()
    assert (start[0], end[0]) == pytest.approx((0.4, 0.4))
    assert sorted((start[1], end[1])) == pytest.approx(
        [86.68934, 88.81066], abs=1e-5)


def test_labels_name_schedule_and_protocol_at_their_points(
        tmp_path, figures):
    """A measured label is ``model (schedule name[, protocol])`` (the
    protocol only when it is not the lightweight one), its line drawn to
    its own point."""
    board = dict(measured=[
        measured('dsnet', 'ISIC 2017', 0.3e9, 80.0, None,
                 protocol='official', schedule='cpu-30ep: 30 epochs, '
                 'batch 8'),
        measured('dsnet-v1', 'ISIC 2017', 0.1e9, 81.0, None),
        measured('egeunet', 'ISIC 2017', 0.2e9, 82.0, None,
                 schedule='tiny schedule')], reported=[])
    plot.plot_leaderboard(board, tmp_path / 'board.png')
    ax, = figures[0].axes
    texts = sorted((t.xy, t.get_text()) for t in ax.texts)
    assert texts == [
        (pytest.approx((0.1, 81.0)), 'dsnet-v1 (cpu-30ep)'),
        (pytest.approx((0.2, 82.0)), 'egeunet (tiny schedule)'),
        (pytest.approx((0.3, 80.0)), 'dsnet (cpu-30ep, official)')]
    # One line per label, from its point, in its colour.
    lines = sorted((tuple(line.get_xydata()[0]), line.get_color())
                   for line in ax.lines)
    assert lines == sorted((tuple(t.xy), t.get_color()) for t in ax.texts)


def _label_boxes(fig):
    """(panel, label, text extent in display pixels) of every label, as
    the saved PNG draws them (same renderer, same dpi)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text
    renderer = FigureCanvasAgg(fig).get_renderer()
    boxes = []
    for ax in fig.axes:
        for t in ax.texts:
            t.update_positions(renderer)
            # The text alone: an Annotation's extent adds its line.
            boxes.append((ax.get_title(), t.get_text(),
                          Text.get_window_extent(t, renderer)))
    return boxes


def _overlapping(boxes):
    return [(a[1], b[1]) for i, a in enumerate(boxes)
            for b in boxes[i + 1:] if a[2].overlaps(b[2])]


def _inside_their_panels(fig, boxes):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    panels = {ax.get_title(): ax.get_window_extent(renderer)
              for ax in fig.axes}
    return all(panels[p].x0 <= b.x0 and b.x1 <= panels[p].x1 and
               panels[p].y0 <= b.y0 and b.y1 <= panels[p].y1
               for p, _, b in boxes)


def test_no_two_labels_overlap_on_the_committed_records(tmp_path, figures):
    """The committed runs and published rows, built as ``leaderboard.py
    build`` builds them: about twelve rows sit within 0.1-0.3 GFLOPs and
    88-90 % DSC in the ISIC 2017 panel, and each label stays readable."""
    import glob
    import os.path as osp

    from mmseg_dsnet.leaderboard.board import build
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    runs = sorted(glob.glob(osp.join(root, 'results', 'runs', '*.json')))
    assert len(runs) > 10
    out = build(runs, osp.join(root, 'results', 'reported.json'),
                str(tmp_path / 'out'), plot=True)
    fig, = figures
    boxes = _label_boxes(fig)
    assert sorted(label for _, label, _ in boxes) == sorted(
        label for _, label, _, _, _ in out['plot_points'])
    assert len(boxes) > 20
    assert _overlapping(boxes) == []
    assert _inside_their_panels(fig, boxes)
    # Seven DSNet rows lie within 0.281-0.287 GFLOPs and 88.3-89.9 %
    # DSC (two at the very same place): each marker's middle shows.
    markers = _marker_boxes(fig, fig.dpi)
    assert len(markers) == len(boxes)
    assert _hidden_marker_centres(markers) == []


def _hidden_marker_centres(markers):
    """(panel, point, point) of every two markers of a panel of which one
    is drawn over the other's centre."""
    return [(a[0], a[1], b[1]) for i, a in enumerate(markers)
            for b in markers[i + 1:] if a[0] == b[0] and (
                b[2].x0 < a[2].x0 + a[2].width / 2 < b[2].x1 and
                b[2].y0 < a[2].y0 + a[2].height / 2 < b[2].y1 or
                a[2].x0 < b[2].x0 + b[2].width / 2 < a[2].x1 and
                a[2].y0 < b[2].y0 + b[2].height / 2 < a[2].y1)]


def test_no_two_labels_overlap_on_crowded_rows(tmp_path, figures):
    """Sixteen rows within 0.28-0.31 GFLOPs and 88-90 % DSC (some at the
    very same point), with long labels: none is drawn over another."""
    rows = [measured(f'dsnet-variant-{i}', 'ISIC 2017', (0.28 + i * 0.002)
                     * 1e9, 88.0 + (i % 8) * 0.25, 0.4,
                     schedule=f'cpu-{10 + i}ep: long description')
            for i in range(14)]
    rows.append(measured('dsnet-twin', 'ISIC 2017', 0.3e9, 89.0, 0.3))
    rows.append(measured('dsnet-twin-b', 'ISIC 2017', 0.3e9, 89.0, 0.3))
    board = dict(measured=rows, reported=[
        reported('EGE-UNet', 'ISIC 2017', 72e6, 88.77)])
    drawn = plot.plot_leaderboard(board, tmp_path / 'board.png')
    fig, = figures
    boxes = _label_boxes(fig)
    assert len(boxes) == len(drawn) == 17
    assert _overlapping(boxes) == []
    assert _inside_their_panels(fig, boxes)


def test_short_schedules_are_marked_as_in_the_tables(tmp_path, figures):
    """A short-schedule row's label carries the tables' ``†`` (after the
    schedule, as in leaderboard.md) and the figure says what it means, as
    the tables' footnote does; it was drawn like a full-protocol row."""
    from mmseg_dsnet.leaderboard.table import MEASURED_COLUMNS, SHORT_NOTE
    short = measured('dsnet', 'ISIC 2017', 0.3e9, 80.0, None,
                     schedule='cpu-30ep: 30 epochs', short_schedule=True)
    full = measured('egeunet', 'ISIC 2017', 0.1e9, 82.0, None,
                    protocol='official', schedule='paper-300ep: 300 epochs')
    board = dict(measured=[short, full], reported=[
        reported('MALUNet', 'ISIC 2017', 83e6, 88.13)])
    drawn = plot.plot_leaderboard(board, tmp_path / 'board.png')
    fig, = figures
    ax, = fig.axes
    assert sorted(t.get_text() for t in ax.texts) == [
        'MALUNet [reported]', 'dsnet (cpu-30ep †)',
        'egeunet (paper-300ep, official)']
    assert sorted(label for _, label, _, _, _ in drawn) == sorted(
        t.get_text() for t in ax.texts)
    # The same rows carry the dagger in the table.
    schedule_cell = dict(MEASURED_COLUMNS)['Schedule']
    assert [schedule_cell(r).endswith(' †') for r in (short, full)] == [
        True, False]
    assert [t.get_text() for t in fig.texts] == [SHORT_NOTE]
    # The footnote is not drawn over the legend (nor the legend over the
    # panels' axis labels).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    legend, = fig.legends
    legend_box = legend.get_window_extent(renderer)
    assert not legend_box.overlaps(fig.texts[0].get_window_extent(renderer))
    assert not legend_box.overlaps(ax.xaxis.label.get_window_extent(renderer))
    assert legend.get_title().get_text() == (
        'marker area grows with log(params)')
    # No short row, no footnote.
    figures.clear()
    plot.plot_leaderboard(dict(measured=[full], reported=[]),
                          tmp_path / 'full.png')
    assert [t.get_text() for t in figures[0].texts] == []

def test_a_model_and_its_published_row_share_a_colour(tmp_path, figures):
    board = dict(
        measured=[measured('egeunet', 'ISIC 2017', 72e6, 87.0, 0.4)],
        reported=[reported('EGE-UNet', 'ISIC 2017', 72e6, 88.77),
                  reported('MALUNet', 'ISIC 2017', 83e6, 88.13)])
    plot.plot_leaderboard(board, tmp_path / 'board.png')
    ax, = figures[0].axes
    colours = {t.get_text(): tuple(t.get_color()) for t in ax.texts}
    assert colours['egeunet (cpu-30ep)'] == colours['EGE-UNet [reported]']
    assert colours['MALUNet [reported]'] != colours['EGE-UNet [reported]']
    assert plot.family('DSNet (paper)') == plot.family('dsnet') == 'dsnet'
    assert plot.family('VM-UNet') == 'vmunet'
    # A --label with a suffix keeps its model's colour.
    assert plot.family('egeunet_tiny') == 'egeunet'


def test_rows_without_flops_or_dsc_are_not_drawn(tmp_path, figures):
    board = dict(measured=[measured('dsnet', 'ISIC 2017', None, 88.0, 0.5)],
                 reported=[reported('X', 'ISIC 2017', 1e9, None),
                           reported('Y', 'ISIC 2017', 2e9, 85.0)])
    drawn = plot.plot_leaderboard(board, tmp_path / 'board.png')
    assert [label for _, label, _, _, _ in drawn] == ['Y [reported]']
    with open(tmp_path / 'board.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_a_board_without_datasets_has_one_panel_saying_so(tmp_path,
                                                          figures):
    board = dict(measured=[],
                 reported=[reported('DSNet (paper)', None, 0.5e9, 90.0)])
    drawn = plot.plot_leaderboard(board, tmp_path / 'board.png')
    assert [ax.get_title() for ax in figures[0].axes] == [
        'dataset not stated']
    assert [(p, label) for p, label, _, _, _ in drawn] == [
        ('dataset not stated',
         'DSNet (paper) [reported] (dataset not stated)')]


def test_each_schedule_of_two_rows_or_more_gets_a_dot_plot(tmp_path,
                                                           figures):
    """Under the GFLOPs panels, one panel per dataset, protocol and
    schedule holding two measured rows or more: its rows sorted by mean
    DSC (best at the top), the seeds' std as a horizontal error bar and
    the number of seeds in each row's name; a row of another schedule,
    protocol or dataset is not in it."""
    cpu30 = 'cpu-30ep: 30 epochs'
    board = dict(measured=[
        measured('malunet', 'ISIC 2017', 83e6, 88.7, 0.2, schedule=cpu30,
                 short_schedule=True),
        measured('dsnet', 'ISIC 2017', 0.3e9, 89.4, 0.25, schedule=cpu30,
                 short_schedule=True),
        measured('dsnet-v1', 'ISIC 2017', 0.3e9, 88.3, None,
                 schedule=cpu30, short_schedule=True),
        measured('dsnet', 'ISIC 2017', 0.3e9, 80.0, None,
                 schedule='cpu-short: 2 epochs'),
        measured('egeunet', 'ISIC 2017', 72e6, 87.0, None, schedule=cpu30,
                 protocol='official'),
        measured('dsnet', 'ISIC 2018', 0.3e9, 90.0, 0.1, schedule=cpu30),
        measured('egeunet', 'ISIC 2018', 72e6, 90.5, 0.3,
                 schedule=cpu30)],
        reported=[reported('EGE-UNet', 'ISIC 2017', 72e6, 88.77)])
    plot.plot_leaderboard(board, tmp_path / 'board.png')
    fig, = figures
    dots = {ax.get_title(): ax for ax in fig.axes if ': ' in ax.get_title()}
    assert sorted(dots) == ['ISIC 2017: cpu-30ep † (lightweight protocol)',
                            'ISIC 2018: cpu-30ep (lightweight protocol)']
    ax = dots['ISIC 2017: cpu-30ep † (lightweight protocol)']
    # Bottom to top: worst to best, each named with its number of seeds.
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        'dsnet-v1 (n=1)', 'malunet (n=2)', 'dsnet (n=2)']
    assert _points(ax) == [(88.3, 0.0, 30.0, True, True),
                           (88.7, 1.0, 30.0, True, True),
                           (89.4, 2.0, 30.0, True, True)]
    bars = sorted((seg[0][1], seg[0][0], seg[1][0])
                  for c in ax.containers if hasattr(c, 'has_xerr')
                  for seg in c.lines[2][0].get_segments())
    assert bars == [pytest.approx((1.0, 88.5, 88.9)),
                    pytest.approx((2.0, 89.15, 89.65))]
    ax = dots['ISIC 2018: cpu-30ep (lightweight protocol)']
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        'dsnet (n=2)', 'egeunet (n=2)']
    # Every row's dot (and its name) inside its panel, the best one too.
    for ax in dots.values():
        low, high = ax.get_ylim()
        assert low <= -0.5 and high >= len(ax.get_yticks()) - 0.5
    # The dot plots' markers are of one size: the legend says which
    # panels' marker area means the parameter count.
    legend, = fig.legends
    assert legend.get_title().get_text() == (
        'marker area grows with log(params) (GFLOPs panels)')


def test_a_row_without_dsc_is_left_out_of_its_dot_plot(tmp_path, figures):
    """A measured row whose runs recorded no DSC (the tables show it with
    an empty DSC) has no dot: its schedule's dot plot shows the other
    rows, and a schedule left with one row has none."""
    no_dsc = measured('malunet', 'ISIC 2017', 83e6, 0.0, None)
    no_dsc['dsc'] = None
    board = dict(measured=[
        no_dsc, measured('dsnet', 'ISIC 2017', 0.3e9, 89.4, 0.25),
        measured('egeunet', 'ISIC 2017', 72e6, 88.0, 0.3)], reported=[])
    drawn = plot.plot_leaderboard(board, tmp_path / 'board.png')
    assert sorted(label for _, label, _, _, _ in drawn) == [
        'dsnet (cpu-30ep)', 'egeunet (cpu-30ep)']
    dots = [ax for ax in figures[0].axes if ': ' in ax.get_title()]
    assert [t.get_text() for t in dots[0].get_yticklabels()] == [
        'egeunet (n=2)', 'dsnet (n=2)']
    figures.clear()
    plot.plot_leaderboard(dict(measured=board['measured'][:2], reported=[]),
                          tmp_path / 'two.png')
    assert [ax.get_title() for ax in figures[0].axes] == ['ISIC 2017']


def test_a_label_with_no_free_place_stops_the_plot(tmp_path, figures):
    """A label wider than the room on either side of its point would be
    drawn over the panel's edge or another label: refused, no PNG."""
    from mmseg_dsnet.utils.errors import UserError
    board = dict(measured=[measured('dsnet-' + 'x' * 300, 'ISIC 2017',
                                    0.3e9, 89.0, 0.2)], reported=[])
    with pytest.raises(UserError, match=r"^leaderboard.png: no free place "
                       r"for the label 'dsnet-x+ \(cpu-30ep\)' in the "
                       r"panel 'ISIC 2017'"):
        plot.plot_leaderboard(board, tmp_path / 'board.png')
    assert not (tmp_path / 'board.png').exists()


def _marker_boxes(fig, dpi):
    """(panel, (x, y) in data, marker box in display pixels) of every
    GFLOPs panel's point (not the dot plots'), where it is drawn (its
    collection's own offset transform): a marker of area ``s`` points^2
    is ``sqrt(s)`` points wide, 72 points to the inch."""
    from matplotlib.transforms import Bbox
    out = []
    for ax in fig.axes:
        if ax.get_xscale() != 'log':  # a dot plot
            continue
        for coll in ax.collections:
            if not isinstance(coll, PathCollection) or not len(
                    coll.get_offsets()):
                continue
            (x, y), = coll.get_offsets()
            cx, cy = coll.get_offset_transform().transform((x, y))
            half = math.sqrt(coll.get_sizes()[0]) / 2 * dpi / 72
            out.append((ax.get_title(), (float(x), float(y)),
                        Bbox([[cx - half, cy - half],
                              [cx + half, cy + half]])))
    return out


def _crowded_board(std=0.4):
    rows = [measured(f'dsnet-variant-{i}', 'ISIC 2017', (0.28 + i * 0.002)
                     * 1e9, 88.0 + (i % 8) * 0.25, std,
                     params=3_000_000,
                     schedule=f'cpu-{10 + i}ep: long description')
            for i in range(14)]
    return dict(measured=rows, reported=[
        reported('EGE-UNet', 'ISIC 2017', 72e6, 88.77)])


def test_no_label_covers_another_points_marker(tmp_path, figures):
    """A label drawn over a neighbour's marker hides that point (or reads
    as its label): every label's text box stays off every other point's
    marker, big 3 M-parameter markers in a crowded cluster included."""
    plot.plot_leaderboard(_crowded_board(), tmp_path / 'board.png')
    fig, = figures
    boxes = _label_boxes(fig)
    xy = {t.get_text(): tuple(map(float, t.xy))
          for ax in fig.axes for t in ax.texts}
    hits = [(label, point) for panel, label, box in boxes
            for p, point, marker in _marker_boxes(fig, fig.dpi)
            if p == panel and point != pytest.approx(xy[label])
            and box.overlaps(marker)]
    assert len(boxes) == 15
    assert hits == []


def test_each_leader_line_runs_from_its_point_to_its_labels_near_edge(
        tmp_path, figures):
    """A label away from its point is tied to it by a line from the point
    to the middle of the label's edge nearest the point: a line ending at
    the far edge crosses the label, one ending elsewhere points at
    another label."""
    plot.plot_leaderboard(_crowded_board(std=None), tmp_path / 'board.png')
    fig, = figures
    ax, = fig.axes
    boxes = {label: box for _, label, box in _label_boxes(fig)}
    ends = []
    for line in ax.lines:
        start, end = line.get_transform().transform(line.get_xydata())
        ends.append((tuple(line.get_xydata()[0]), tuple(end),
                     tuple(start)))
    assert len(ends) == len(ax.texts) == 15
    for t in ax.texts:
        box = boxes[t.get_text()]
        (_, end, start), = [e for e in ends
                            if e[0] == pytest.approx(tuple(t.xy))]
        near = box.x0 if box.x0 >= start[0] else box.x1
        assert end == pytest.approx((near, (box.y0 + box.y1) / 2), abs=0.5)



def _flat(pairs):
    """Pairs sorted and laid end to end, for pytest.approx."""
    return [v for pair in sorted(pairs) for v in pair]


def test_markers_at_one_place_are_set_side_by_side(tmp_path, figures):
    """Three rows at one GFLOPs and (nearly) one DSC would be drawn as one
    marker: they are set side by side at their own heights, each with its
    error bar and its label's line, while a row elsewhere stays where its
    figures put it; the legend says markers were moved, and the figure is
    the same bytes when drawn again."""
    # Each of its own schedule: no dot plot under the panel.
    rows = [measured(name, 'ISIC 2017', 0.3e9, dsc, 0.3,
                     schedule=f'{name}-30ep: 30 epochs')
            for name, dsc in (('dsnet', 89.0), ('dsnet-b', 89.0),
                              ('dsnet-c', 89.05))]
    board = dict(measured=rows, reported=[
        reported('EGE-UNet', 'ISIC 2017', 72e6, 80.0)])
    plot.plot_leaderboard(board, tmp_path / 'board.png')
    fig, = figures
    ax, = fig.axes
    markers = _marker_boxes(fig, fig.dpi)
    assert _hidden_marker_centres(markers) == []
    # The data stay the rows' figures; only where they are drawn moves,
    # sideways alone.
    assert _flat(point for _, point, _ in markers) == pytest.approx(
        _flat([(0.3, 89.0), (0.3, 89.0), (0.3, 89.05), (0.072, 80.0)]))
    centres, moved = [], []
    for _, (x, y), box in markers:
        true_x, true_y = ax.transData.transform((x, y))
        centre = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
        assert centre[1] == pytest.approx(true_y)
        centres.append(centre)
        if x == 0.3:
            moved.append(round(centre[0] - true_x, 3))
        else:
            assert centre[0] == pytest.approx(true_x)
    assert len(set(moved)) == 3
    # Placed from the highest DSC down: the highest keeps its place.
    top, = [centre[0] - ax.transData.transform(point)[0]
            for (_, point, _), centre in zip(markers, centres)
            if point[1] == 89.05]
    assert top == pytest.approx(0)
    # Each error bar (its line and caps) and each label's line is drawn
    # from its own marker's centre (the published row, leftmost, has no
    # error bar).
    bars = [c.get_transform().transform(c.get_segments()[0])
            for c in ax.collections if not isinstance(c, PathCollection)]
    assert _flat((x0, (y0 + y1) / 2) for (x0, y0), (_, y1) in bars) == \
        pytest.approx(_flat(sorted(centres)[1:]))
    caps = [line.get_transform().transform(line.get_xydata())[0][0]
            for line in ax.lines if len(line.get_xydata()) == 1]
    assert sorted(caps) == pytest.approx(sorted(
        x for x, _ in sorted(centres)[1:] for _ in range(2)))
    starts = [tuple(line.get_transform().transform(line.get_xydata())[0])
              for line in ax.lines if len(line.get_xydata()) == 2]
    assert _flat(starts) == pytest.approx(_flat(centres))
    legend, = fig.legends
    assert legend.get_title().get_text() == (
        'marker area grows with log(params); markers that would hide each '
        'other are set side by side')
    plot.plot_leaderboard(board, tmp_path / 'again.png')
    assert (tmp_path / 'again.png').read_bytes() == (
        tmp_path / 'board.png').read_bytes()


def test_markers_with_no_room_side_by_side_stop_the_plot(tmp_path,
                                                         figures):
    """More big markers at one place than the panel is wide: they cannot
    all show, so the plot stops before writing anything."""
    from mmseg_dsnet.utils.errors import UserError
    # Markers 49 points wide: 15 fit across the panel.
    rows = [measured(f'm{i}', 'ISIC 2017', 0.3e9, 89.0, None,
                     params=10 ** 30) for i in range(18)]
    with pytest.raises(UserError, match=r"^leaderboard.png: no free place "
                       r"for the marker of 'm\d+ \(cpu-30ep\)' in the "
                       r"panel 'ISIC 2017'"):
        plot.plot_leaderboard(dict(measured=rows, reported=[]),
                              tmp_path / 'board.png')
    assert not (tmp_path / 'board.png').exists()


def test_dot_plots_read_as_dsc_within_their_own_panels(tmp_path, figures):
    """Each dot plot spans its own rows' bars with room to spare and its
    ticks read as DSC values: rows 0.0007 apart are not spread across the
    panel under an offset ('0.0003' ... '+8.9e1'), and rows of one DSC
    do not make the axis empty. A long schedule name's title, and the
    axis label, are wrapped to their panel's width, not run over the
    neighbouring panel's or off the figure."""
    long_name = 'at 256x256 with the BCE+Dice loss and random flips: 30 ep'
    close = [measured(name, 'ISIC 2017', 0.3e9, dsc, 0.0002,
                      schedule=f'close rows {long_name}')
             for name, dsc in (('dsnet', 89.0003), ('egeunet', 89.001))]
    tied = [measured(name, 'ISIC 2017', 0.3e9, 75.0, None,
                     schedule=f'tied rows {long_name}')
            for name in ('dsnet', 'egeunet')]
    plot.plot_leaderboard(dict(measured=close + tied, reported=[]),
                          tmp_path / 'board.png')
    fig, = figures
    dots = {ax.get_title().split(':')[1].split()[0]: ax
            for ax in fig.axes if ax.get_xscale() != 'log'}
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    for name, rows in (('close', close), ('tied', tied)):
        ax = dots[name]
        low, high = ax.get_xlim()
        bar_low = min(r['dsc']['mean'] - (r['dsc']['std'] or 0)
                      for r in rows)
        bar_high = max(r['dsc']['mean'] + (r['dsc']['std'] or 0)
                       for r in rows)
        spare = (high - low) * 0.05
        assert low + spare < bar_low and bar_high < high - spare
        # The ticks as saved: no offset, each label its own DSC.
        assert ax.xaxis.get_offset_text().get_text() == ''
        ticks = [(t.get_position()[0], t.get_text())
                 for t in ax.get_xticklabels()
                 if low <= t.get_position()[0] <= high]
        assert len(ticks) >= 3
        for value, text in ticks:
            assert float(text.replace('\u2212', '-')) == pytest.approx(
                value, abs=1e-9)
        boxes = [t.get_window_extent(renderer)
                 for t in ax.get_xticklabels()
                 if low <= t.get_position()[0] <= high]
        assert not any(a.overlaps(b) for i, a in enumerate(boxes)
                       for b in boxes[i + 1:])
        # The title and the axis label within the panel's width.
        panel = ax.get_window_extent(renderer)
        for text in (ax.title, ax.xaxis.label):
            box = text.get_window_extent(renderer)
            assert panel.x0 <= box.x0 and box.x1 <= panel.x1, text
        assert ' '.join(ax.get_title().split()) == (
            f'ISIC 2017: {name} rows at 256x256 with the BCE+Dice loss '
            'and random flips (lightweight protocol)')
    # A schedule's rows far apart keep their own range.
    assert plot.dot_plot_range([
        dict(dsc=dict(mean=60.0, std=None)),
        dict(dsc=dict(mean=80.0, std=1.0))]) == pytest.approx((57.9, 83.1))
    # The lowest error bar, not the lowest mean, sets the low end.
    assert plot.dot_plot_range([
        dict(dsc=dict(mean=60.0, std=2.0)),
        dict(dsc=dict(mean=80.0, std=1.0))]) == pytest.approx((55.7, 83.3))
    # Rows closer than MIN_DOT_SPAN are widened about their middle.
    assert plot.dot_plot_range([
        dict(dsc=dict(mean=75.0, std=0.1)),
        dict(dsc=dict(mean=75.2, std=None))]) == pytest.approx((74.75, 75.35))


def test_a_small_marker_at_a_big_ones_place_is_set_clear_of_it(
        tmp_path, figures):
    """Two rows at one GFLOPs and DSC with markers of very different
    sizes: the small one is set beside the big one, clear of its middle
    by the big marker's half width plus ``CLEAR`` points, not by the
    small one's (its centre would lie under the big marker)."""
    rows = [measured(name, 'ISIC 2017', 0.3e9, 89.0, None, params=params,
                     schedule=f'{name}-30ep: 30 epochs')
            for name, params in (('big', 10 ** 30), ('small', 10))]
    plot.plot_leaderboard(dict(measured=rows, reported=[]),
                          tmp_path / 'board.png')
    fig, = figures
    markers = _marker_boxes(fig, fig.dpi)
    assert len(markers) == 2
    assert _hidden_marker_centres(markers) == []
    (_, _, one), (_, _, other) = markers
    apart = abs((one.x0 + one.x1) / 2 - (other.x0 + other.x1) / 2)
    larger_half = max(one.width, other.width) / 2
    px = fig.dpi / 72
    assert apart >= larger_half + plot.CLEAR * px - 1e-6
    # The clearance is in points: a centre 0.8 points past the larger
    # half width is still too close.
    assert plot._covers(0, 0, 10, 10 + 0.8 * px, 0, 2, px)
    assert not plot._covers(0, 0, 10, 10 + plot.CLEAR * px, 0, 2, px)
