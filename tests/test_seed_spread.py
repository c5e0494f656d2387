"""seed_spread.py: which images carry the spread of the pooled error over
runs of one design, from the per_image.csv of each run
(mmseg_dsnet.analysis.seed_spread)."""
import json
import statistics

import pytest
from conftest import load_tool

from mmseg_dsnet.analysis.seed_spread import (read_tables, spread_by_image,
                                              spread_table)
from mmseg_dsnet.utils.errors import UserError

tool = load_tool('analysis_tools/seed_spread.py')

HEADER = 'image,lesion_pixels,predicted_pixels,overlap_pixels,IoU,DSC,Sen\n'


def write_run(path, rows):
    """A per_image.csv of (image, lesion, predicted, overlap) rows (the
    figure columns are not read)."""
    path.write_text(HEADER + ''.join(
        f'{image},{lesion},{predicted},{overlap},0,0,0\n'
        for image, lesion, predicted, overlap in rows))
    return str(path)


@pytest.fixture
def three_runs(tmp_path):
    # Wrong pixels (lesion + predicted - 2 overlap) per run: a.jpg 0, 0, 0;
    # b.jpg 8, 14, 3; c.jpg 0, 2, 3; totals 8, 16, 6.
    return [write_run(tmp_path / f'run{k}.csv', rows) for k, rows in enumerate(
        [[('a.jpg', 10, 10, 10), ('b.jpg', 10, 14, 8), ('c.jpg', 5, 5, 5)],
         [('a.jpg', 10, 10, 10), ('b.jpg', 10, 20, 8), ('c.jpg', 5, 7, 5)],
         [('a.jpg', 10, 10, 10), ('b.jpg', 10, 11, 9), ('c.jpg', 5, 6, 4)]])]


def test_each_image_carries_its_covariance_with_the_total_error(three_runs):
    """The shares are cov(e_i, E) / var(E), which add up to 1: here b.jpg
    moves with the total (share 1), c.jpg's errors cancel against it
    (share 0), a.jpg never errs."""
    spread = spread_by_image(read_tables(three_runs))
    shares = {row['image']: row['share'] for row in spread['rows']}
    assert [row['image'] for row in spread['rows']][0] == 'b.jpg'
    assert shares == pytest.approx({'a.jpg': 0.0, 'b.jpg': 1.0,
                                    'c.jpg': 0.0})
    # Pooled IoU of run 0: overlap 23 over union 10 + 16 + 5.
    assert spread['pooled'][three_runs[0]] == pytest.approx(100 * 23 / 31)
    b = next(row for row in spread['rows'] if row['image'] == 'b.jpg')
    assert b['wrong_mean'] == pytest.approx((8 + 14 + 3) / 3)
    assert b['iou_mean'] == pytest.approx(
        100 * (8 / 16 + 8 / 22 + 9 / 12) / 3)
    # c.jpg's errors go against b.jpg's, so the images' own variances
    # (30.33 and 2.33) add up to more than the total's (28).
    assert spread['independent_fraction'] == pytest.approx(
        (91 / 3 + 7 / 3) / 28)
    table = spread_table(spread, top=2)
    assert table.splitlines()[0].startswith('Pooled IoU over 3 runs: ')
    assert table.splitlines()[2].startswith(
        "Images on their own: the images' own variances of the wrong pixels "
        "make up 117 % of the pooled error's (more than all of it: within a "
        "run some images' errors offset others'); with each image's error "
        'moving on its own, the pooled IoU would spread about ')
    assert table.splitlines()[6].startswith('| b.jpg | 10 | ')
    assert table.splitlines()[6].endswith('| 100.0 % | 100.0 % |')
    assert len(table.splitlines()) == 8  # the top two images


def test_errors_that_move_together_across_a_runs_images_are_told_apart(
        tmp_path):
    """Two images whose errors rise and fall together in every run: their
    own variances are half the total's, and the spread each image alone
    would give is the runs' spread times the root of that half."""
    runs = [write_run(tmp_path / f'run{k}.csv',
                      [('a.jpg', 10, 10 + extra, 10),
                       ('b.jpg', 10, 10 + extra, 10)])
            for k, extra in enumerate((0, 2, 4))]
    spread = spread_by_image(read_tables(runs))
    assert spread['independent_fraction'] == pytest.approx(0.5)
    pooled = list(spread['pooled'].values())
    assert pooled == pytest.approx([100.0, 100 * 20 / 24, 100 * 20 / 28])
    stdev = statistics.stdev(pooled)
    assert (f'make up 50 % of the pooled error\'s (the rest moves together '
            "across a run's images); with each image's error moving on its "
            f'own, the pooled IoU would spread about {stdev * 0.5**0.5:.2f}.'
            ) in spread_table(spread)


def test_the_cli_prints_the_table_and_refuses_what_it_cannot_compare(
        three_runs, tmp_path, capsys):
    assert tool.main([*three_runs, '--top', '1']) == 0
    assert '| b.jpg | 10 |' in capsys.readouterr().out
    other = write_run(tmp_path / 'other.csv',
                      [('a.jpg', 10, 10, 10), ('d.jpg', 1, 1, 1),
                       ('c.jpg', 5, 5, 5)])
    bad = tmp_path / 'bad.csv'
    bad.write_text('image,IoU\na.jpg,50\n')
    for argv, message in (
            ([three_runs[0]], 'the spread over runs needs the tables of at '
             'least two runs, got 1'),
            ([three_runs[0], three_runs[0]], f'{three_runs[0]} given twice'),
            ([three_runs[0], other], f'{other} and {three_runs[0]} score '
             'other images (b.jpg, d.jpg in one only)'),
            ([three_runs[0], str(bad)], f'{bad}: no lesion_pixels, '
             'predicted_pixels, overlap_pixels columns; give the '
             'per_image.csv that tools/test.py --out DIR writes into DIR'),
            ([three_runs[0], str(tmp_path / 'none.csv')],
             f'{tmp_path / "none.csv"}: cannot be read'),
            ([*three_runs, '--top', '0'], '--top must be at least 1, got 0')):
        assert tool.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f'ERROR: {message}') and err.count('\n') == 1
    # Runs whose error does not vary have no spread to share out.
    with pytest.raises(UserError, match='does not vary'):
        spread_by_image(read_tables([three_runs[0], write_run(
            tmp_path / 'same.csv', [('a.jpg', 10, 10, 10),
                                    ('b.jpg', 10, 14, 8),
                                    ('c.jpg', 5, 5, 5)])]))


def test_benchmarks_quote_the_seed_spread_of_the_test_runs():
    """docs/benchmarks.md quotes seed_spread.py's output for the committed
    per-image tables of the cpu-30ep runs: DSNet's three runs of the
    leaderboard, EGE-UNet's three seeds trained again, and six seeds of
    each."""
    from conftest import REPO
    doc = (REPO / 'docs' / 'benchmarks.md').read_text()
    section = doc.split('### How closely three seeds measure the spread')[1]
    folder = REPO / 'results' / 'per_image_test'
    assert len(list(folder.glob('*.csv'))) == 12

    def spread(model, seeds):
        return spread_by_image(read_tables(
            [str(folder / f'{model}_isic2017_cpu-30ep_s{s}.csv')
             for s in seeds]))

    for model, seeds, top in (('dsnet', range(3), 5),
                              ('egeunet', range(3), 3),
                              ('dsnet', range(6), 3),
                              ('egeunet', range(6), 3)):
        assert spread_table(spread(model, seeds), top=top) in section

    # The tables score each picture at its original size: their pooled
    # IoU is the IoU_orig of the runs' records (DSNet's three runs, and
    # EGE-UNet's seed 2, trained again with the same result).
    def recorded(name, seed):
        return json.loads((REPO / 'results' / 'runs' /
                           f'{name}_isic2017_lightweight_cpu-30ep_seed{seed}'
                           '.json').read_text())['metrics']['IoU_orig']

    assert list(spread('dsnet', range(3))['pooled'].values()) == \
        pytest.approx([recorded('dsnet', s) for s in range(3)], abs=5e-5)
    ege = list(spread('egeunet', range(3))['pooled'].values())
    assert ege[2] == pytest.approx(recorded('ege-unet', 2), abs=5e-5)
