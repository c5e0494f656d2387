"""The figures of README.md and of the model card (configs/dsnet/README.md)
are generated from results/leaderboard.json: each page's block is
regenerated here and compared with the file, so any drift fails. Rebuild
both with:

    python tools/analysis_tools/leaderboard.py build --readme README.md \\
        --model-card configs/dsnet/README.md
"""
import json

import pytest
import torch
import yaml
from conftest import REPO

from mmseg_dsnet.leaderboard import blocks

LEADERBOARD = REPO / 'results' / 'leaderboard.json'
CPU_LATENCY = REPO / 'results' / 'cpu_latency.json'
MODEL_CARD = REPO / 'configs' / 'dsnet' / 'README.md'
REBUILD = ('python tools/analysis_tools/leaderboard.py build --readme '
           'README.md --model-card configs/dsnet/README.md')


@pytest.fixture(scope='module')
def board():
    # Committed: a missing file fails these checks, not skips them.
    assert LEADERBOARD.is_file(), f'{LEADERBOARD} is missing'
    return json.loads(LEADERBOARD.read_text())


@pytest.mark.parametrize('page', ['README.md', 'configs/dsnet/README.md'])
def test_generated_figures_match_leaderboard_json(board, page):
    check = dict(zip(['README.md', 'configs/dsnet/README.md'],
                     [blocks.check_readme, blocks.check_model_card]))[page]
    problems = check((REPO / page).read_text(), board)
    assert not problems, (f'{page} disagrees with results/leaderboard.json; '
                          f'regenerate it with: {REBUILD}\n' +
                          '\n'.join(problems))


def test_leaderboard_json_is_built_from_the_committed_records(board):
    """A run record added (or changed) without rebuilding would leave the
    pages quoting an older board."""
    from mmseg_dsnet.leaderboard.board import board_from_records
    from mmseg_dsnet.leaderboard.records import load_json
    records = [load_json(str(path)) for path in
               sorted((REPO / 'results' / 'runs').glob('*.json'))]
    rebuilt = board_from_records(records,
                                 str(REPO / 'results' / 'reported.json'),
                                 str(CPU_LATENCY))
    assert rebuilt == board, ('results/leaderboard.json is not what the '
                              'records in results/runs give; regenerate it '
                              f'with: {REBUILD}')


def test_leaderboard_quotes_the_current_cpu_latency_json(board):
    """The CPU ms columns quote results/cpu_latency.json as it is now."""
    latency = json.loads(CPU_LATENCY.read_text())
    assert board.get('cpu_latency') == blocks.latency_summary(
        latency, 'results/cpu_latency.json'), (
            f'results/cpu_latency.json changed; regenerate with: {REBUILD}')


def test_released_weights_entry_matches_its_run_record():
    """The metafile's figures for the released weights are those of the run
    they were published from."""
    meta = yaml.safe_load((REPO / 'configs/dsnet/metafile.yaml').read_text())
    entry, = [m for m in meta['Models'] if m['Name'] == 'dsnet_isic2017_256px']
    record = json.loads((REPO / 'results' / 'runs' /
                         'dsnet_isic2017_lightweight_cpu-15ep-256_seed0.json'
                         ).read_text())
    metrics = entry['Results'][0]['Metrics']
    assert metrics['IoU'] == round(record['metrics']['IoU'], 2)
    assert metrics['DSC'] == round(record['metrics']['DSC'], 2)


def test_shipped_weights_load_strictly_into_their_config():
    """The weights under checkpoints/ fit the config the metafile names (a
    change of the default model must ship new weights with it)."""
    from mmseg_dsnet.apis.released_model import released_model
    from mmseg_dsnet.deploy.deployable import build_segmentor
    config, checkpoint = released_model()
    model = build_segmentor(config, checkpoint, reparameterize=False)
    # Every tensor of the model is the checkpoint's, and nothing is left
    # out on either side.
    from mmseg_dsnet.compat import safe_torch_load
    shipped = safe_torch_load(checkpoint, map_location='cpu')['state_dict']
    state = model.state_dict()
    assert state.keys() == shipped.keys()
    assert [k for k in state if not torch.equal(state[k], shipped[k])] == []


def _row(model, tag, values, seeds):
    """A leaderboard row with IoU/DSC statistics over ``values``."""
    import statistics

    def stat(xs):
        return dict(mean=statistics.fmean(xs),
                    std=statistics.stdev(xs) if len(xs) > 1 else None,
                    min=min(xs), max=max(xs), n=len(xs))

    return dict(model=model, config=f'configs/dsnet/{model}.py',
                dataset='ISIC 2017', protocol='lightweight',
                schedule=f'CPU test: {tag}', schedule_tag=tag,
                short_schedule=True, seeds=seeds, device='CPU',
                params=290000, flops=2.8e8, test_images=650,
                iou=stat(values), dsc=stat([v + 8 for v in values]),
                tj=stat(values))


def test_ablations_show_the_seeds_that_exist_and_the_difference():
    board = dict(reported=[], measured=[
        _row('DSNet', 'cpu-30ep', [81.0, 80.8, 81.2], [0, 1, 2]),
        _row('DSNet (no gate)', 'cpu-30ep', [80.2, 80.4], [0, 1]),
        _row('DSNet (vanilla conv)', 'cpu-30ep', [80.5], [0]),
        _row('DSNet (vanilla conv)', 'cpu-short', [60.0], [0]),
    ])
    text = blocks.model_card_block(board)
    rows = {r[0]: r for r in blocks._tables(text)[-1]}
    header = rows['Variant']
    col = {name: header.index(name) for name in header}
    assert rows['DSNet'][col['Seeds (n)']] == '0, 1, 2 (3)'
    assert rows['DSNet'][col['IoU']] == '81.00 ± 0.20'
    assert rows['DSNet (no gate)'][col['Seeds (n)']] == '0, 1 (2)'
    assert rows['DSNet (no gate)'][col['IoU']] == '80.30 ± 0.14'
    assert rows['DSNet (no gate)'][col['Δ IoU']] == '-0.70'
    assert rows['DSNet (vanilla conv)'][col['IoU']] == '80.50'  # one seed
    assert rows['DSNet (vanilla conv)'][col['Δ IoU']] == '-0.50'
    for label in ('DSNet (BCE+Dice)', 'DSNet (no deep supervision)'):
        assert rows[label][col['Seeds (n)']] == 'no run yet'
    # -0.70 is more than twice the larger std (0.20): a finding.
    assert rows['DSNet (no gate)'][col['Reading (IoU)']] == 'the part helps'
    assert rows['DSNet (vanilla conv)'][col['Reading (IoU)']] == \
        'one seed: no reading yet'
    # Ablations stay out of the README's compact table.
    readme = blocks.readme_block(board)
    assert 'no gate' not in readme and '| DSNet |' in readme
    # A stale figure in a page is named cell by cell.
    page = blocks.replace_block('intro\n<!-- model-card:start -->\n'
                                '<!-- model-card:end -->\n', text,
                                blocks.MODEL_CARD_MARKERS)
    assert blocks.check_model_card(page, board) == []
    stale = page.replace('80.30 ± 0.14', '80.31 ± 0.14')
    problem, = blocks.check_model_card(stale, board)
    assert 'column IoU' in problem and '80.31 ± 0.14' in problem


def test_ablation_reading_needs_a_difference_beyond_the_spread():
    ref = _row('DSNet', 'cpu-30ep', [81.0, 80.8, 81.2], [0, 1, 2])
    close = _row('DSNet (no gate)', 'cpu-30ep', [80.5, 81.1], [0, 1])
    higher = _row('DSNet (BCE+Dice)', 'cpu-30ep', [81.9, 82.0], [0, 1])
    assert 'no measurable effect' in blocks.ablation_reading(close, ref)
    assert 'does not help' in blocks.ablation_reading(higher, ref)
    assert blocks.ablation_reading(None, ref) == '-'


def test_ablations_are_compared_with_dsnet_on_their_own_dataset():
    """DSNet measured on a second dataset (ISIC 2018) on the ablations'
    schedule: the rows were keyed by model alone, so the ISIC 2017
    ablations were compared with DSNet's ISIC 2018 row (10 points lower)
    and read as 'the part does not help here', exit 0."""
    def on(row, dataset):
        return dict(row, dataset=dataset)

    board = dict(reported=[], measured=[
        _row('DSNet', 'cpu-30ep', [81.0, 80.8, 81.2], [0, 1, 2]),
        _row('DSNet (no gate)', 'cpu-30ep', [80.2, 80.4], [0, 1]),
        on(_row('DSNet', 'cpu-30ep', [71.0, 70.8, 71.2], [0, 1, 2]),
           'ISIC 2018'),
    ])
    text = blocks.model_card_block(board)
    table = blocks._tables(text)[-1]
    rows = {r[0]: r for r in table}
    col = {name: rows['Variant'].index(name) for name in rows['Variant']}
    assert rows['DSNet'][col['IoU']] == '81.00 ± 0.20'
    assert rows['DSNet (no gate)'][col['Δ IoU']] == '-0.70'
    assert rows['DSNet (no gate)'][col['Reading (IoU)']] == 'the part helps'
    assert text.count('**Ablations**') == 1
    # Ablations on both datasets: one table each, saying which.
    board['measured'].append(on(
        _row('DSNet (no gate)', 'cpu-30ep', [70.2, 70.4], [0, 1]),
        'ISIC 2018'))
    text = blocks.model_card_block(board)
    assert text.count('**Ablations**') == 2
    assert '(ISIC 2017, lightweight protocol' in text
    assert '(ISIC 2018, lightweight protocol' in text
    deltas = [{r[0]: r for r in t}['DSNet (no gate)'][col['Δ IoU']]
              for t in blocks._tables(text)[-2:]]
    assert deltas == ['-0.70', '-0.70']


def test_compact_tables_name_the_data_of_rows_on_two_datasets():
    """DSNet on ISIC 2017 and on ISIC 2018 with one schedule: the README's
    and the model card's tables have no dataset column, so they showed two
    'DSNet | CPU 30 epochs' rows with different figures that no reader
    could tell apart, exit 0. A Data column now says which is which; rows
    of one dataset and protocol render as before."""
    one = dict(reported=[], measured=[
        _row('DSNet', 'cpu-30ep', [81.0, 80.8], [0, 1]),
        _row('EGE-UNet', 'cpu-30ep', [80.0, 80.2], [0, 1])])
    for render in (blocks.readme_block, blocks.model_card_block):
        assert 'Data' not in blocks._tables(render(one))[0][0]
    two = dict(reported=[], measured=[
        _row('DSNet', 'cpu-30ep', [81.0, 80.8], [0, 1]),
        dict(_row('DSNet', 'cpu-30ep', [71.0, 70.8], [0, 1]),
             dataset='ISIC 2018')])
    for render in (blocks.readme_block, blocks.model_card_block):
        table = blocks._tables(render(two))[0]
        data = table[0].index('Data')
        assert [(row[0], row[data]) for row in table[1:]] == [
            ('DSNet', 'ISIC 2017, lightweight'),
            ('DSNet', 'ISIC 2018, lightweight')]


def test_check_names_a_column_added_to_a_generated_table():
    """A column added by hand at the end of a generated table (figures
    typed into the README) passed ``leaderboard.py check``: only the
    expected cells of each row were compared."""
    board = dict(reported=[], measured=[
        _row('DSNet', 'cpu-30ep', [81.0, 80.8], [0, 1])])
    page = blocks.replace_block(
        'intro\n<!-- leaderboard:start -->\n<!-- leaderboard:end -->\n',
        blocks.readme_block(board))
    assert blocks.check_readme(page, board) == []
    lines = page.splitlines()
    table = [n for n, line in enumerate(lines) if line.startswith('|')]
    lines[table[0]] += ' Paper DSC |'
    lines[table[1]] += ' --- |'
    lines[table[2]] += ' 89.81 |'
    problems = blocks.check_readme('\n'.join(lines) + '\n', board)
    assert problems == [
        'table 1, row 0: 9 cells in the file, 8 in the leaderboard '
        "(extra: 'Paper DSC')",
        'table 1, row 1: 9 cells in the file, 8 in the leaderboard '
        "(extra: '89.81')"]


def test_an_ablation_difference_of_exactly_twice_the_std_is_no_finding():
    """The model card's reading: a Δ IoU of the means within (up to and
    including) twice the larger seed std is no finding; beyond it, the
    sign says which side scores higher."""
    def iou(mean, std, n=3):
        return dict(iou=dict(mean=mean, std=std, min=mean, max=mean, n=n))

    ref = iou(82.0, 0.5)
    assert blocks.ablation_reading(iou(80.0, 1.0), ref) == \
        "within the seeds' spread: no measurable effect"  # |Δ| = 2 = 2 x 1
    assert blocks.ablation_reading(iou(84.0, 1.0), ref) == \
        "within the seeds' spread: no measurable effect"
    assert blocks.ablation_reading(iou(79.75, 1.0), ref) == 'the part helps'
    assert blocks.ablation_reading(iou(84.25, 1.0), ref) == \
        'the variant scores higher: the part does not help here'
    assert blocks.ablation_reading(iou(70.0, None, 1), ref) == \
        'one seed: no reading yet'


def test_rows_of_two_protocols_or_test_sets_are_told_apart():
    """Rows of one dataset under two protocols get a Data column; the line
    under a table names a number of test images only when all its rows
    share it."""
    def row(protocol, test_images):
        return dict(dataset='ISIC 2017', protocol=protocol, device='cpu',
                    test_images=test_images)

    rows = [row('lightweight', 650), row('official', 600)]
    (header, cell), = blocks._data_columns(rows)
    assert header == 'Data' and cell(rows[1]) == 'ISIC 2017, official'
    assert blocks._data_columns(rows[:1] * 2) == []
    assert blocks._where(rows) == \
        'ISIC 2017, lightweight, official protocol, device cpu'
    assert blocks._where(rows[:1] * 2) == \
        'ISIC 2017, lightweight protocol, 650 test images, device cpu'


def test_build_reproduces_the_committed_tables_and_pages(tmp_path):
    """``leaderboard.py build`` on the committed records writes the
    committed results/leaderboard.{json,csv,md}, leaderboard_reported.csv
    and both pages byte for byte: a change to how a figure is rounded,
    ordered or labelled in the Markdown or the CSV (which the checks of the
    JSON and of the pages' table cells do not read) shows here."""
    import shutil
    from conftest import load_tool
    readme, card = tmp_path / 'README.md', tmp_path / 'card.md'
    shutil.copy(REPO / 'README.md', readme)
    shutil.copy(MODEL_CARD, card)
    out = tmp_path / 'results'
    load_tool('analysis_tools/leaderboard.py').main([
        'build', '--out-dir', str(out), '--readme', str(readme),
        '--model-card', str(card), '--no-plot'])
    for name in ('leaderboard.json', 'leaderboard.csv', 'leaderboard.md',
                 'leaderboard_reported.csv'):
        assert (out / name).read_bytes() == \
            (REPO / 'results' / name).read_bytes(), (
                f'results/{name} is not what build writes; regenerate it '
                f'with: {REBUILD}')
    assert readme.read_bytes() == (REPO / 'README.md').read_bytes()
    assert card.read_bytes() == MODEL_CARD.read_bytes()


def test_an_ablation_against_one_seed_of_dsnet_has_no_reading():
    """One seed of DSNet has no spread to judge a difference by, whatever
    the seeds of the variant: no reading, as for one seed of the variant."""
    def iou(mean, std, n):
        return dict(iou=dict(mean=mean, std=std, min=mean, max=mean, n=n))

    assert blocks.ablation_reading(iou(75.0, 0.5, 3), iou(82.0, None, 1)) \
        == 'one seed: no reading yet'
    assert blocks.ablation_reading(iou(75.0, None, 1), iou(82.0, 0.5, 3)) \
        == 'one seed: no reading yet'


def test_schedules_of_no_set_order_follow_the_ordered_ones():
    """The README shows the schedules of SCHEDULE_ORDER first, in that
    order, then any other schedule in the board's order."""
    board = dict(reported=[], measured=[
        _row('DSNet', 'gpu-300ep', [84.0], [0]),
        _row('DSNet', 'cpu-15ep-256', [79.0], [0]),
        _row('EGE-UNet', 'gpu-100ep', [83.0], [0]),
        _row('DSNet', 'cpu-30ep', [81.0], [0])])
    assert [row['schedule_tag'] for row in blocks.readme_rows(board)] == [
        'cpu-30ep', 'cpu-15ep-256', 'gpu-300ep', 'gpu-100ep']
    table = blocks._tables(blocks.readme_block(board))[0]
    assert [row[1] for row in table[1:]] == [
        'CPU test ¹', 'CPU test ²', 'CPU test ³', 'CPU test ⁴']


def test_check_names_a_row_a_table_or_a_line_left_out_of_a_page():
    """A page whose block lacks a table row, a whole table or a line of
    text the leaderboard gives disagrees with it: the cells of the rows
    (tables, lines) that are there all match, so only the counts tell."""
    board = dict(reported=[], measured=[
        _row('DSNet', 'cpu-30ep', [81.0, 80.8], [0, 1]),
        _row('EGE-UNet', 'cpu-30ep', [80.0, 80.2], [0, 1])])
    page = blocks.replace_block(
        'intro\n<!-- leaderboard:start -->\n<!-- leaderboard:end -->\n',
        blocks.readme_block(board))
    assert blocks.check_readme(page, board) == []
    lines = page.splitlines(keepends=True)
    ege, = [n for n, line in enumerate(lines) if line.startswith(
        '| EGE-UNet |')]
    assert blocks.check_readme(''.join(lines[:ege] + lines[ege + 1:]),
                               board) == [
        'table 1: 1 row in the file, 2 in the leaderboard']
    # A line of text edited (the table's cells as they were).
    assert blocks.check_readme(page.replace('650 test images',
                                            '600 test images'), board) == [
        "text differs: the file has 'All rows: ISIC 2017, lightweight "
        "protocol, 600 test images, device CPU. " + blocks.METRICS_NOTE +
        ". GFLOPs: 1 multiply-add = 1 FLOP at 256x256.', the leaderboard "
        "'All rows: ISIC 2017, lightweight protocol, 650 test images, "
        "device CPU. " + blocks.METRICS_NOTE + ". GFLOPs: 1 multiply-add = "
        "1 FLOP at 256x256.'"]
    # The block's last line of text (the comment, the schedule, the data
    # and this one before it).
    note, = [n for n, line in enumerate(lines)
             if line.startswith('Shortened schedules')]
    assert blocks.check_readme(''.join(lines[:note] + lines[note + 1:]),
                               board) == [
        '3 lines of text in the file, 4 expected']
    # The model card: DSNet's table, then the ablations' (DSNet and the
    # four variants); the ablations' table taken out.
    card = blocks.replace_block(
        '<!-- model-card:start -->\n<!-- model-card:end -->\n',
        blocks.model_card_block(board), blocks.MODEL_CARD_MARKERS)
    assert blocks.check_model_card(card, board) == []
    lines = card.splitlines(keepends=True)
    heading, = [n for n, line in enumerate(lines)
                if line.startswith('**Ablations**')]
    # The heading, a blank line, the table (header, rule, five rows).
    assert lines[heading + 2].startswith('| Variant |')
    kept = lines[:heading + 2] + lines[heading + 9:]
    assert blocks.check_model_card(''.join(kept), board) == [
        '1 table in the file, 2 expected']


def test_a_row_quoted_with_pytorch_latency_says_so():
    """The CPU ms column quotes onnxruntime fp32; a model that has only a
    PyTorch figure in cpu_latency.json is marked ``(PyTorch)``."""
    def form(model, name, ms):
        return dict(model=model, config=f'configs/dsnet/{model}.py',
                    form=name, gmacs=0.1, median_ms=ms, p90_ms=ms + 1)

    board = dict(reported=[], measured=[
        _row('DSNet', 'cpu-30ep', [81.0], [0]),
        _row('EGE-UNet', 'cpu-30ep', [80.0], [0])],
        cpu_latency=dict(source='results/cpu_latency.json', machine={},
                         forms=[form('DSNet', 'PyTorch', 9.5),
                                form('DSNet', 'onnxruntime fp32', 4.25),
                                form('EGE-UNet', 'PyTorch', 12.0)]))
    table = blocks._tables(blocks.readme_block(board))[0]
    ms = table[0].index('CPU ms')
    assert [(row[0], row[ms]) for row in table[1:]] == [
        ('DSNet', '4.25'), ('EGE-UNet', '12.00 (PyTorch)')]


def test_one_short_row_gets_the_readme_note_on_short_schedules():
    """The README says that shortened schedules are not comparable with
    the published figures when any row shown ran one, not only when all
    did."""
    note = 'Shortened schedules (the protocol is 300 epochs at 256x256)'
    full = dict(_row('DSNet', 'gpu-300ep', [84.0], [0]),
                short_schedule=False)
    short = _row('DSNet', 'cpu-30ep', [81.0], [0])
    assert note in blocks.readme_block(dict(reported=[],
                                            measured=[full, short]))
    assert note not in blocks.readme_block(dict(reported=[],
                                                measured=[full]))


def test_ablations_are_compared_with_dsnet_under_their_own_protocol():
    """DSNet on one dataset and schedule under a second protocol: the
    ablations (lightweight protocol) are compared with DSNet's
    lightweight row, not with whichever DSNet row comes last."""
    board = dict(reported=[], measured=[
        _row('DSNet', 'cpu-30ep', [81.0, 80.8, 81.2], [0, 1, 2]),
        _row('DSNet (no gate)', 'cpu-30ep', [80.2, 80.4], [0, 1]),
        dict(_row('DSNet', 'cpu-30ep', [71.0, 70.8, 71.2], [0, 1, 2]),
             protocol='official')])
    table = blocks._tables(blocks.model_card_block(board))[-1]
    rows = {r[0]: r for r in table}
    col = {name: rows['Variant'].index(name) for name in rows['Variant']}
    assert rows['DSNet'][col['IoU']] == '81.00 ± 0.20'
    # 80.30 - 81.00
    assert rows['DSNet (no gate)'][col['Δ IoU']] == '-0.70'
