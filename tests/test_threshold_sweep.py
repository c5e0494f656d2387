"""Figures at several decision thresholds
(mmseg_dsnet.analysis.threshold_sweep and
tools/analysis_tools/threshold_sweep.py)."""
import json
import os.path as osp
import re
import uuid
from pathlib import Path

import pytest
from conftest import REPO, load_tool, make_lesion_checkpoint

from mmseg_dsnet.engine.cli_errors import UserError
from mmseg_dsnet.leaderboard.design import rule_table

tool = load_tool('analysis_tools/threshold_sweep.py')


@pytest.fixture(scope='module')
def two_checkpoints(tiny_isic, tmp_path_factory):
    """A tiny config and two differently seeded checkpoints of it whose
    lesion probabilities straddle 0.5."""
    from conftest import write_tiny_config
    from test_export_onnx import lesion_image
    tmp = tmp_path_factory.mktemp('threshold_sweep')
    cfg = write_tiny_config(tmp / 'tiny_dsnet.py', tiny_isic)
    # Thresholds are judged on a split that is not a test split.
    with open(cfg, 'a') as f:
        f.write("test_dataloader = dict(val_dataloader, dataset=dict("
                "val_dataloader['dataset'], "
                "ann_file='splits/official_val.txt'))\n")
    checkpoints = [
        make_lesion_checkpoint(str(cfg), tmp / f'model_{seed}.pth',
                               lesion_image(256, 256, seed), seed=seed)
        for seed in (0, 1)]
    return tmp, cfg, checkpoints


def test_the_record_names_the_data_it_scored(two_checkpoints, tiny_isic,
                                             tmp_path):
    """``--out F``: the record held the split file as the config names it
    (``splits/official_val.txt``), without the data root, so the file did
    not say which data set its figures were of (error_by_position.py's and
    test.py's records do). Now it holds the data root, the split file
    under it (absolute) and whether the set is synthetic."""
    _, cfg, checkpoints = two_checkpoints
    out = tmp_path / 'sweep.json'
    tool.main([str(cfg), str(checkpoints[0]), '--thresholds', '0.5',
               '--out', str(out)])
    record = json.loads(out.read_text())
    assert record['data_root'] == osp.abspath(tiny_isic)
    assert record['split_file'] == osp.join(osp.abspath(tiny_isic), 'splits',
                                            'official_val.txt')
    assert record['synthetic'] is False
    assert record['images'] == len(
        (tiny_isic / 'splits' / 'official_val.txt').read_text().split())


def test_the_plot_names_the_data_and_the_size_it_scored(two_checkpoints,
                                                         tiny_isic, tmp_path):
    """``--plot F``: the title named the split file as the config gives it
    (``splits/official_val.txt``), not which data set, and not the size the
    pooled figures are counted at (LesionMetric's ``low_res_size``: they
    are tools/test.py's ``IoU``, not its ``IoU_orig``). Now the title,
    also the PNG's Title text, names both."""
    from PIL import Image
    _, cfg, checkpoints = two_checkpoints
    plot = tmp_path / 'sweep.png'
    tool.main([str(cfg), str(checkpoints[0]), '--thresholds', '0.5', '0.4',
               '--plot', str(plot), '--cfg-options',
               'test_evaluator.low_res_size=(48,40)'])
    with Image.open(plot) as image:
        title = image.info['Title']
    split = osp.join(osp.abspath(tiny_isic), 'splits', 'official_val.txt')
    images = len((tiny_isic / 'splits' /
                  'official_val.txt').read_text().split())
    assert title == (f'{cfg}: {split} ({images} images; lesion figures '
                     'pooled over all pixels at 48x40)')


def test_the_plot_title_says_synthetic_and_names_a_root_without_split(
        tmp_path):
    """The title names the synthetic stand-in set as such, and the data
    root when the loader reads a whole folder (no ``ann_file``; the split
    file is then None, which the title must not print)."""
    from mmseg_dsnet.analysis.plots import sweep_plot_title
    from mmseg_dsnet.datasets.synthetic_fallback import data_provenance
    root = _splits(tmp_path / 'fake', synthetic=True, val=[1, 2])
    split = str(root / 'splits' / 'val.txt')
    title = sweep_plot_title('c.py', data_provenance(
        dict(data_root=str(root), ann_file='splits/val.txt'), 2), (32, 24))
    assert title == (f'c.py: {split}\n(2 images, SYNTHETIC set; lesion '
                     'figures pooled over all pixels at 32x24)')
    title = sweep_plot_title('c.py', data_provenance(
        dict(data_root=str(root), ann_file=''), 5), (32, 24))
    assert title.startswith(f'c.py: {root}\n(5 images, SYNTHETIC set;')


def test_each_threshold_scores_what_test_py_reports_at_it(two_checkpoints,
                                                          capsys):
    import matplotlib
    from PIL import Image

    from mmseg_dsnet.analysis.plots import DPI, SWEEP_SIZE
    tmp, cfg, checkpoints = two_checkpoints
    out, plot = tmp / 'sweep.json', tmp / 'sweep.png'
    backend = matplotlib.get_backend()
    scores = tool.main([str(cfg), *map(str, checkpoints), '--thresholds',
                        '0.5', '0.4', '--labels', 'seed 0', 'seed 1',
                        '--out', str(out), '--plot', str(plot)])
    printed, progress = capsys.readouterr()
    # The plot is a PNG of the figure's size, drawn without touching the
    # process's matplotlib backend.
    assert matplotlib.get_backend() == backend
    with Image.open(plot) as image:
        assert image.format == 'PNG'
        assert image.size == (SWEEP_SIZE[0] * DPI, SWEEP_SIZE[1] * DPI)
        image.load()
    assert f'plot: {plot}' in printed
    assert not list(tmp.glob('.*.part-*'))
    # The progress bars go to stderr: stdout holds the tables only.
    assert 'seed 1: 100%' in progress and '\r' not in printed
    for threshold in (0.5, 0.4):
        metrics = load_tool('test.py').main([
            str(cfg), str(checkpoints[1]), '--work-dir', str(tmp / 'test'),
            '--metrics-out', str(tmp / f'test_{threshold}.json'),
            '--cfg-options', f'model.decode_head.threshold={threshold}',
            f'test_evaluator.threshold={threshold}',
            f'experiment_name=sweep_{uuid.uuid4().hex[:8]}'])
        for name in ('IoU', 'Sen', 'Spe', 'TJ', 'mIoU'):
            assert scores['seed 1'][threshold][name] == pytest.approx(
                float(metrics[name]), abs=1e-4)
    # A lower threshold finds at least as much lesion and background.
    for label in ('seed 0', 'seed 1'):
        assert scores[label][0.4]['Sen'] >= scores[label][0.5]['Sen']
        assert scores[label][0.4]['Spe'] <= scores[label][0.5]['Spe']
    assert any(scores[label][0.4]['IoU'] != scores[label][0.5]['IoU']
               for label in scores)
    # The rule's table: 0.4 judged against 0.5 over the two checkpoints.
    gain = sum(scores[label][0.4]['IoU'] - scores[label][0.5]['IoU']
               for label in scores) / 2
    # The figures table's row comes first, the rule table's last.
    row = [line for line in printed.splitlines()
           if line.startswith('| 0.4 | ')][-1]
    assert f'| {gain:+.2f} |' in row
    assert '| threshold | seed 0 | seed 1 | mean ± std | difference to 0.5 |'\
        in printed
    saved = json.loads(out.read_text())
    assert saved['checkpoints']['seed 0'] == str(checkpoints[0])
    assert saved['scores']['seed 0']['0.4']['IoU'] == pytest.approx(
        scores['seed 0'][0.4]['IoU'])


def test_what_the_sweep_cannot_do_is_refused_before_any_work(
        two_checkpoints, tmp_path):
    tmp, cfg, checkpoints = two_checkpoints
    base = [str(cfg), str(checkpoints[0])]
    for bad in ('1.2', 'nan', '0'):
        with pytest.raises(UserError,
                           match=rf'lesion probability in \(0, 1\), got {bad}'):
            tool.main(base + ['--thresholds', '0.5', bad])
    with pytest.raises(UserError, match='repeats'):
        tool.main(base + ['--thresholds', '0.5', '0.5'])
    with pytest.raises(UserError, match='--se-factor must be at least 0'):
        tool.main(base + ['--thresholds', '0.5', '0.4', '--se-factor', '-1'])
    for option in ('--se-factor', '--min-gain'):
        with pytest.raises(UserError,
                           match=f'{option} must be a finite number, got nan'):
            tool.main(base + ['--thresholds', '0.5', '0.4', option, 'nan'])
    with pytest.raises(UserError, match='1 distinct names'):
        tool.main(base + ['--thresholds', '0.5', '--labels', 'a', 'b'])
    with pytest.raises(Exception, match='does not exist'):
        tool.main([str(cfg), str(tmp_path / 'missing.pth'),
                   '--thresholds', '0.5'])
    with pytest.raises(UserError, match='one LesionMetric'):
        tool.main(base + ['--thresholds', '0.5', '--cfg-options',
                          'test_evaluator.type=IoUMetric'])
    with pytest.raises(UserError, match='does not exist'):
        tool.main(base + ['--thresholds', '0.5', '--cfg-options',
                          f'test_dataloader.dataset.data_root={tmp_path}/no'])
    from mmseg_dsnet.engine.hooks.num_classes_check_hook import \
        NumClassesMismatchError
    with pytest.raises(NumClassesMismatchError, match='test dataset'):
        tool.main(base + ['--thresholds', '0.5', '--cfg-options',
                          'model.decode_head.num_classes=3'])
    out = tmp_path / 'sweep.json'
    out.write_text('keep me')
    with pytest.raises(FileExistsError, match='--overwrite'):
        tool.main(base + ['--thresholds', '0.5', '--out', str(out)])
    assert out.read_text() == 'keep me'


def test_rule_table_needs_two_paired_columns():
    values = {'a': {0: 80.0, 1: 81.0}, 'b': {0: 81.0, 1: 82.5}}
    table = rule_table(values, 'a', ['b'], [(0, 'x'), (1, 'y')],
                       paired=True, row_header='name')
    assert table.splitlines()[0].startswith('| name | x | y | mean ± std |')
    # Gain 1.25, paired std of (1.0, 1.5) 0.354: 2 SE = 0.50.
    assert table.splitlines()[-1] == (
        '| b | 81.00 | 82.50 | 81.75 ± 1.06 | +1.25 | 0.50 | yes |')
    with pytest.raises(ValueError, match='at least two'):
        rule_table(values, 'a', ['b'], [(0, 'x')])


def test_outputs_and_options_it_would_not_follow_are_refused_first(
        two_checkpoints, tmp_path):
    """An --out whose folder runs through a file failed only after every
    checkpoint was evaluated (a traceback); a checkpoint given twice was
    two identical paired columns of the rule; --min-gain or --se-factor
    with one checkpoint (no rule table) was dropped: exit 0."""
    from mmseg_dsnet.engine.preflight import WorkDirError
    tmp, cfg, checkpoints = two_checkpoints
    base = [str(cfg), str(checkpoints[0])]
    blocker = tmp_path / 'afile'
    blocker.write_text('')
    with pytest.raises(WorkDirError, match='afile is a file, not a folder'):
        tool.main(base + ['--thresholds', '0.5', '--out',
                          str(blocker / 'sweep.json')])
    with pytest.raises(UserError, match='checkpoint 1 and checkpoint 2 are '
                       'the same file'):
        tool.main(base + [str(checkpoints[0]), '--thresholds', '0.5', '0.4'])
    with pytest.raises(UserError, match='checkpoint 1 and --out are the '
                       'same file'):
        tool.main(base + ['--thresholds', '0.5', '--out',
                          str(checkpoints[0]), '--overwrite'])
    with pytest.raises(UserError, match='--min-gain: the rule judges '
                       'thresholds over checkpoints'):
        tool.main(base + ['--thresholds', '0.5', '0.4', '--min-gain', '1'])
    with pytest.raises(UserError, match='--se-factor: .* got 1 threshold'):
        tool.main([*base, str(checkpoints[1]), '--thresholds', '0.5',
                   '--se-factor', '3'])


def test_a_plot_it_cannot_or_must_not_write_is_refused_first(
        two_checkpoints, tmp_path):
    """--plot is checked as --out is, before a model is built: a file that
    exists (without --overwrite), one that is --out or an input, a folder
    path through a file, a name that is not a PNG's; nothing is left."""
    from conftest import run_tool_in_process
    _, cfg, checkpoints = two_checkpoints
    base = [cfg, checkpoints[0], '--thresholds', '0.5']
    kept = tmp_path / 'kept.png'
    kept.write_text('keep me')
    blocker = tmp_path / 'afile'
    blocker.write_text('')
    same = tmp_path / 'same.png'
    for args, message in (
            (['--plot', kept], f'{kept} already exists'),
            (['--out', same, '--plot', same],
             f'--out and --plot are the same file, {same}'),
            (['--plot', checkpoints[0], '--overwrite'],
             'checkpoint 1 and --plot are the same file'),
            (['--plot', blocker / 'sweep.png'],
             f'Cannot write --plot {blocker}/sweep.png: {blocker} is a '
             'file, not a folder'),
            (['--plot', tmp_path / 'sweep.pdf'],
             'written as a PNG; give a file name ending with .png')):
        run = run_tool_in_process(tool.__file__, *base, *args)
        assert run.returncode == 2, run.output
        assert run.stderr.startswith('ERROR: ') and message in run.stderr
        assert run.stderr.count('\n') == 1, run.stderr
        # Refused before any checkpoint was read.
        assert 'checkpoint 1:' not in run.stdout
    assert kept.read_text() == 'keep me' and blocker.read_text() == ''
    assert sorted(p.name for p in tmp_path.iterdir()) == ['afile',
                                                          'kept.png']


def test_the_test_split_gives_figures_only_on_request(two_checkpoints,
                                                      capsys):
    """A config scoring its test split was swept and a threshold judged
    there ("passes": yes), exit 0: a choice made on the test images. Now
    refused; --allow-test-split gives the figures without the rule."""
    tmp, cfg, checkpoints = two_checkpoints
    on_test = ['--cfg-options',
               'test_dataloader.dataset.ann_file=splits/lightweight_test.txt']
    base = [str(cfg), *map(str, checkpoints), '--thresholds', '0.5', '0.4']
    with pytest.raises(UserError, match='scores the test split '
                       'splits/lightweight_test.txt: a threshold chosen'):
        tool.main(base + on_test)
    with pytest.raises(UserError, match='--min-gain: no threshold is judged'):
        tool.main(base + ['--allow-test-split', '--min-gain', '0.5']
                  + on_test)
    capsys.readouterr()
    scores = tool.main(base + ['--allow-test-split'] + on_test)
    printed = capsys.readouterr().out
    assert set(scores) == {'checkpoint 1', 'checkpoint 2'}
    assert 'tiny_dsnet.py, splits/lightweight_test.txt (' in printed
    assert 'On the test split: figures only' in printed
    assert 'difference to 0.5' not in printed


def test_a_split_listing_test_images_is_refused_as_the_test_split(
        two_checkpoints, tiny_isic, tmp_path, capsys):
    """A split file of another name that is a subset of the test split
    (written to go faster) passed for a validation split: the rule judged
    the thresholds on test images, exit 0. Now refused as the test split
    is, before any image is read; --allow-test-split gives its figures
    only, and its --out record says they are of test images."""
    tmp, cfg, checkpoints = two_checkpoints
    splits = tiny_isic / 'splits'
    test_ids = (splits / 'lightweight_test.txt').read_text().split()[:2]
    mine = tmp_path / 'quick_val.txt'
    mine.write_text('\n'.join(test_ids) + '\n')
    base = [str(cfg), *map(str, checkpoints), '--thresholds', '0.5', '0.4',
            '--cfg-options', f'test_dataloader.dataset.ann_file={mine}']
    with pytest.raises(UserError, match=(
            f'scores 2 images of the test split {splits}/lightweight_test'
            rf'.txt \({mine}: {", ".join(test_ids)}\): a threshold chosen '
            'there')):
        tool.main(base)
    assert 'checkpoint 1:' not in capsys.readouterr().out
    # Its --out record says its figures are of test images: the split
    # file it names bears a name of its own.
    out = tmp_path / 'sweep.json'
    tool.main(base[:-2] + ['--allow-test-split', '--out', str(out)]
              + base[-2:])
    printed = capsys.readouterr().out
    assert 'On the test split: figures only' in printed
    assert 'difference to 0.5' not in printed
    record = json.loads(out.read_text())
    assert record['split_file'] == str(mine)
    assert record['test_images'] == (
        f'2 images of the test split {splits}/lightweight_test.txt '
        f'({mine}: {", ".join(test_ids)})')
    # A link to the test split under another name is the test split's
    # images, all of them (it was passed over as the test file itself).
    link = tmp_path / 'linked_val.txt'
    link.symlink_to(splits / 'lightweight_test.txt')
    listed = (splits / 'lightweight_test.txt').read_text().split()
    with pytest.raises(UserError, match=(
            f'scores {len(listed)} images of the test split {splits}/'
            rf'lightweight_test.txt \({link}: {", ".join(listed[:3])}, '
            rf'\.\.\. \({len(listed) - 3} more\)\): a threshold chosen '
            'there')):
        tool.main(base[:-1] + [f'test_dataloader.dataset.ann_file={link}'])
    assert 'checkpoint 1:' not in capsys.readouterr().out


def test_test_images_among_validation_ones_are_found_by_the_protocol(
        tiny_isic, tmp_path):
    """A validation split with test images added passed for a validation
    split. They are refused where a checkpoint's run held that test split
    out (its training split lists none of its images); the official
    validation split, which shares images with lightweight_test.txt, stays
    a validation split for an official-protocol run, which trained on
    them."""
    import torch
    from mmengine.config import Config

    from mmseg_dsnet.analysis.threshold_sweep import test_images_scored
    splits = tiny_isic / 'splits'

    def trained_on(split):
        cfg = Config(dict(train_dataloader=dict(dataset=dict(
            type='ISIC2018Dataset', data_root=str(tiny_isic),
            ann_file=split))))
        path = tmp_path / f'{split.split("/")[-1]}.pth'
        torch.save(dict(state_dict={}, meta=dict(cfg=cfg.pretty_text)), path)
        return str(path)

    design, official = (trained_on('splits/lightweight_design_train.txt'),
                        trained_on('splits/official_train.txt'))
    test_id = (splits / 'lightweight_test.txt').read_text().split()[0]
    mixed = tmp_path / 'val_and_one_test.txt'
    mixed.write_text((splits / 'lightweight_design_val.txt').read_text()
                     + f'{test_id}\n')
    scored = dict(data_root=str(tiny_isic), ann_file=str(mixed))
    assert test_images_scored(scored, [design]) == (
        f'1 image of the test split {splits}/lightweight_test.txt '
        f'({mixed}: {test_id})')
    # Without a training split known, only a subset of a test split.
    assert test_images_scored(scored, []) is None
    val = dict(data_root=str(tiny_isic), ann_file='splits/official_val.txt')
    listed = set((splits / 'lightweight_test.txt').read_text().split())
    assert listed & set((splits / 'official_val.txt').read_text().split())
    assert test_images_scored(val, [official]) is None
    # A run that trained on some test images (one of its splits lists
    # them) held none out; one whose split file is found nowhere cannot
    # be told apart: neither makes the mixed split a test split.
    mixed_run = tmp_path / 'mixed_run.pth'
    torch.save(dict(state_dict={}, meta=dict(cfg=Config(dict(
        train_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
            dict(data_root=str(tiny_isic),
                 ann_file='splits/lightweight_design_train.txt'),
            dict(data_root=str(tiny_isic),
                 ann_file='splits/lightweight_test.txt')])))).pretty_text)),
               mixed_run)
    assert test_images_scored(scored, [str(mixed_run)]) is None
    unknown_run = tmp_path / 'unknown_run.pth'
    torch.save(dict(state_dict={}, meta=dict(cfg=Config(dict(
        train_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
            dict(data_root=str(tiny_isic),
                 ann_file='splits/lightweight_design_train.txt'),
            dict(data_root=str(tmp_path / 'nowhere'),
                 ann_file='splits/gone.txt')])))).pretty_text)),
               unknown_run)
    assert test_images_scored(scored, [str(unknown_run)]) is None
    # One checkpoint that held the test split out is enough, after any.
    assert test_images_scored(scored, [str(unknown_run), design]) == (
        f'1 image of the test split {splits}/lightweight_test.txt '
        f'({mixed}: {test_id})')
    # A test split by its name, behind a dataset without a split file and
    # one whose split file is missing, in a wrapper.
    wrapped = dict(type='ConcatDataset', datasets=[
        dict(data_root=str(tiny_isic)),
        dict(data_root=str(tiny_isic), ann_file='splits/missing.txt'),
        dict(data_root=str(tiny_isic),
             ann_file='splits/lightweight_test.txt')])
    assert test_images_scored(wrapped) == (
        'the test split splits/lightweight_test.txt')


def test_a_wrapped_test_loader_is_checked_and_named_by_its_datasets(
        two_checkpoints, tiny_isic, tmp_path, capsys):
    """A test loader whose dataset is a wrapper (a ConcatDataset of the
    validation split) names no split file itself: the check of the images
    a checkpoint trained on passed it, its images were all scored, and
    the sweep ended in an AttributeError (``ann_file``) with no figures.
    Now each dataset it holds is checked, and the table names their split
    files."""
    import torch
    from mmengine.config import Config
    _, cfg, checkpoints = two_checkpoints
    config = Config.fromfile(cfg)
    leaf = config.test_dataloader.dataset
    config.test_dataloader.dataset = dict(type='ConcatDataset',
                                          datasets=[leaf])
    wrapped = tmp_path / 'wrapped.py'
    config.dump(str(wrapped))
    val = tiny_isic / 'splits' / 'official_val.txt'
    images = len(val.read_text().split())
    tool.main([str(wrapped), *map(str, checkpoints), '--thresholds', '0.5',
               '0.4'])
    assert (f'{wrapped}, {osp.abspath(val)} ({images} images), mean over 2'
            in capsys.readouterr().out)
    # A checkpoint whose run trained on those images.
    trained = Config.fromfile(cfg)
    trained.merge_from_dict(
        {'train_dataloader.dataset.ann_file': 'splits/official_val.txt'})
    weights = torch.load(checkpoints[0], map_location='cpu',
                         weights_only=True)['state_dict']
    on_val = tmp_path / 'trained_on_val.pth'
    torch.save(dict(state_dict=weights,
                    meta=dict(cfg=trained.pretty_text)), on_val)
    with pytest.raises(UserError, match=f'checkpoint {on_val} was trained '
                       f'on {images} of the {images} images that {wrapped} '
                       'scores'):
        tool.main([str(wrapped), str(on_val), '--thresholds', '0.5', '0.4'])
    assert 'checkpoint 1:' not in capsys.readouterr().out


def test_every_dataset_of_a_wrapper_and_the_runs_held_out_images_count(
        two_checkpoints, tiny_isic, tmp_path, capsys):
    """The checks of the scored split run on each dataset a wrapper holds,
    not on its first alone (a second one the checkpoint trained on, or
    one without a split file), and test images among validation ones are
    refused when the swept checkpoint's run held their test split out
    (the tool gives its checkpoints to the check); all before any image
    is scored."""
    import torch
    from mmengine.config import Config
    _, cfg, checkpoints = two_checkpoints
    config = Config.fromfile(cfg)
    leaf = dict(config.test_dataloader.dataset,
                ann_file='splits/lightweight_design_val.txt')
    trained = Config.fromfile(cfg)
    trained.merge_from_dict({'train_dataloader.dataset.ann_file':
                             'splits/lightweight_design_train.txt'})
    weights = torch.load(checkpoints[0], map_location='cpu',
                         weights_only=True)['state_dict']
    design = tmp_path / 'design.pth'
    torch.save(dict(state_dict=weights, meta=dict(cfg=trained.pretty_text)),
               design)

    def sweep(name, *datasets):
        config.test_dataloader.dataset = dict(type='ConcatDataset',
                                              datasets=[leaf, *datasets])
        path = tmp_path / f'{name}.py'
        config.dump(str(path))
        return tool.main([str(path), str(design), '--thresholds', '0.5',
                          '0.4'])

    train = tiny_isic / 'splits' / 'lightweight_design_train.txt'
    images = len(train.read_text().split())
    with pytest.raises(UserError, match=f'checkpoint {design} was trained '
                       f'on {images} of the '):
        sweep('second_trained', dict(
            leaf, ann_file='splits/lightweight_design_train.txt'))
    no_split = {key: value for key, value in leaf.items()
                if key != 'ann_file'}
    # The dataset without one is named, not the wrapper.
    with pytest.raises(UserError, match=re.escape(
            'test_dataloader.dataset.datasets[1].ann_file is not set, so '
            f'every image under {tiny_isic} is scored')):
        sweep('second_without_split', no_split)
    test_id = (tiny_isic / 'splits' / 'lightweight_test.txt'
               ).read_text().split()[0]
    mixed = tmp_path / 'val_and_one_test.txt'
    mixed.write_text((tiny_isic / 'splits' / 'lightweight_design_val.txt'
                      ).read_text() + f'{test_id}\n')
    with pytest.raises(UserError, match='scores 1 image of the test split '
                       f'.*lightweight_test.txt \\({mixed}: {test_id}\\)'):
        sweep('mixed', dict(leaf, ann_file=str(mixed)))
    assert 'checkpoint 1:' not in capsys.readouterr().out


def test_a_split_the_checkpoint_trained_on_is_refused(two_checkpoints,
                                                      tmp_path):
    """A checkpoint trained on lightweight_train (which holds the design
    hold-out) swept on splits/lightweight_design_val.txt, as the test-split
    refusal suggests for design runs: the thresholds were judged on images
    the model had learned from, exit 0. Its training split is read from
    its training config (``meta['cfg']``)."""
    import torch
    from conftest import run_tool_in_process
    from mmengine.config import Config
    tmp, cfg, checkpoints = two_checkpoints
    weights = torch.load(checkpoints[0], map_location='cpu',
                         weights_only=True)['state_dict']

    def trained_on(split, root=None):
        """The checkpoint with a training config that trained on
        ``split`` (of ``root``, default the swept data)."""
        config = Config.fromfile(cfg)
        config.merge_from_dict({'train_dataloader.dataset.ann_file': split})
        if root is not None:
            config.merge_from_dict({'train_dataloader.dataset.data_root':
                                    root})
        path = tmp_path / f'{osp.basename(split)}_{root is None}.pth'
        torch.save(dict(state_dict=weights,
                        meta=dict(cfg=config.pretty_text)), path)
        return path

    data_root = Config.fromfile(cfg).test_dataloader.dataset.data_root
    val = 'splits/lightweight_design_val.txt'
    held_out = (Path(data_root) / val).read_text().split()
    assert len(held_out) == 1  # the tiny set's design hold-out
    # The first three ids, and how many more (named the same way as in
    # every message).
    named = ', '.join(held_out[:3]) + (
        f', ... ({len(held_out) - 3} more)' if len(held_out) > 3 else '')
    out = tmp_path / 'sweep.json'
    for checkpoint, train_file in (
            (trained_on('splits/lightweight_train.txt'),
             f'{data_root}/splits/lightweight_train.txt'),
            # Trained on another machine: the file of that name here.
            (trained_on('splits/lightweight_train.txt', '/elsewhere/isic'),
             f'{data_root}/splits/lightweight_train.txt')):
        run = run_tool_in_process(
            tool.__file__, cfg, checkpoints[1], checkpoint, '--thresholds',
            '0.5', '0.4', '--out', out, '--cfg-options',
            f'test_dataloader.dataset.ann_file={val}')
        assert run.returncode == 2, run.output[-2000:]
        assert run.stderr.strip().splitlines()[-1] == (
            f'ERROR: checkpoint {checkpoint} was trained on '
            f'1 of the 1 image that {cfg} '
            f'scores ({data_root}/{val}: {named}); its training split '
            f"is {train_file} (its training config, meta['cfg']). A "
            'threshold chosen on images the model learned from, and its '
            'figures, favour the model. Score a split it did not train on: '
            'runs trained on splits/lightweight_design_train.txt on '
            'splits/lightweight_design_val.txt, official-protocol runs on '
            'splits/official_val.txt')
        assert not out.exists()
    # A design run, trained without the hold-out, is swept there.
    design = trained_on('splits/lightweight_design_train.txt')
    scores = tool.main([str(cfg), str(design), '--thresholds', '0.5',
                        '--cfg-options',
                        f'test_dataloader.dataset.ann_file={val}'])
    assert set(scores) == {'checkpoint 1'}


def test_an_evaluator_that_writes_masks_is_refused(two_checkpoints,
                                                   tmp_path):
    """A config whose ``test_evaluator`` has an ``output_dir`` (as the
    config ``tools/test.py --out`` dumps into its work dir has): every
    threshold's metric wrote its masks into that folder, so the second
    threshold (or, in the folder of that test, the first) stopped with
    ``ERROR: LesionMetric: ... share the stem ...; Give each image its own
    file name``, blaming the data, and left its masks behind."""
    from conftest import run_tool_in_process, tree_hashes
    tmp, cfg, checkpoints = two_checkpoints
    earlier = tmp_path / 'test_masks'
    earlier.mkdir()
    (earlier / 'ISIC_0000012.png').write_bytes(b'a mask of tools/test.py')
    dumped = tmp_path / 'dumped.py'
    dumped.write_text(f"_base_ = '{cfg}'\n"
                      f"test_evaluator = dict(output_dir='{earlier}')\n")
    new = tmp_path / 'new_masks'
    for config, options, masks in (
            (cfg, ['--cfg-options', f'test_evaluator.output_dir={new}'],
             new),
            (dumped, [], earlier)):
        before = tree_hashes(tmp_path)
        run = run_tool_in_process(tool.__file__, config, *checkpoints,
                                  '--thresholds', '0.5', '0.4', *options)
        assert run.returncode == 2, run.output[-2000:]
        assert run.stderr.strip().splitlines()[-1] == (
            f"ERROR: {config}: test_evaluator.output_dir is '{masks}' "
            '(tools/test.py --out sets it, and the config it dumps keeps '
            'it), but the sweep writes no masks; pass --cfg-options '
            'test_evaluator.output_dir=None, and write the masks of one '
            'threshold with tools/test.py --out')
        assert tree_hashes(tmp_path) == before
        assert not new.exists()
    # As the message says: the figures, and no mask written.
    run = run_tool_in_process(tool.__file__, dumped, *checkpoints,
                              '--thresholds', '0.5', '0.4', '--cfg-options',
                              'test_evaluator.output_dir=None')
    assert run.returncode == 0, run.output[-2000:]
    assert '| 0.4 | ' in run.stdout
    assert sorted(p.name for p in earlier.iterdir()) == ['ISIC_0000012.png']


def test_a_loader_that_leaves_images_out_is_refused():
    """``--cfg-options test_dataloader.drop_last=True test_dataloader.
    batch_size=2`` on 3 images: the thresholds were judged on 2 of them
    (on none, every figure 100, when the batch exceeded the split)."""
    from types import SimpleNamespace

    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from mmseg_dsnet.analysis.threshold_sweep import scores_by_threshold
    from mmseg_dsnet.evaluation.lesion_metric import \
        IncompleteEvaluationError

    def sample():
        s = SegDataSample()
        s.seg_logits = PixelData(data=torch.full((1, 4, 4), 0.7))
        s.gt_sem_seg = PixelData(data=torch.ones(1, 4, 4, dtype=torch.long))
        return s

    model = SimpleNamespace(test_step=lambda batch: [sample(), sample()])
    batches = [{}]
    loader = type('Loader', (), {'dataset': [None] * 3,
                                 '__iter__': lambda self: iter(batches)})()
    with pytest.raises(IncompleteEvaluationError,
                       match='results for 2 of the 3 images'):
        scores_by_threshold(model, loader, [0.5],
                            dict(low_res_size=(4, 4)))
    loader.dataset = [None] * 2
    assert scores_by_threshold(model, loader, [0.5], dict(
        low_res_size=(4, 4)))[0.5]['IoU'] == 100.0
def test_a_two_channel_head_is_swept_at_its_argmax_only(two_checkpoints,
                                                        tmp_path):
    """A decode head with two output channels (DSNet with
    ``out_channels=2``, the UNet and SegFormer baselines) makes its masks by
    argmax, and tools/test.py refuses ``model.decode_head.threshold=0.3``
    for it; the sweep scored its probabilities at 0.3 anyway, exit 0, with
    figures no tool reproduces (and a threshold the rule could choose that
    the model cannot be run at)."""
    from conftest import run_tool_in_process, tree_hashes
    tmp, cfg, checkpoints = two_checkpoints
    two = ['--cfg-options', 'model.decode_head.out_channels=2',
           'model.decode_head.threshold=None']
    out = tmp_path / 'sweep.json'
    before = tree_hashes(tmp_path)
    run = run_tool_in_process(tool.__file__, cfg, checkpoints[0],
                              '--thresholds', '0.5', '0.3', '--out', out,
                              *two)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr.strip().splitlines()[-1] == (
        f'ERROR: {cfg}: the decode head has out_channels=2, so its masks '
        'are the argmax of the channels (lesion probability above 0.5) and '
        'tools/test.py and tools/infer.py refuse any other threshold; '
        '--thresholds 0.3 would give figures of masks this model cannot '
        'output. Sweep a model with out_channels=1 (a sigmoid), or score '
        '0.5 only')
    assert tree_hashes(tmp_path) == before
    # mmseg's heads without out_channels: num_classes=2 is two channels.
    with pytest.raises(UserError, match='out_channels=2, so its masks'):
        tool.main([str(REPO / 'configs/unet/unet-s5-d16_fcn_isic2017.py'),
                   str(checkpoints[0]), '--thresholds', '0.5', '0.4'])


def test_a_test_loader_without_a_split_file_is_refused(two_checkpoints,
                                                       tmp_path):
    """``--cfg-options test_dataloader.dataset.ann_file=`` (no split file):
    mmseg scored every image of the converted set, test and training
    images included, exit 0, past the checks for a test split and for the
    checkpoint's training images (both read the split file)."""
    from conftest import run_tool_in_process
    tmp, cfg, checkpoints = two_checkpoints
    for extra in ([], ['--allow-test-split']):
        run = run_tool_in_process(tool.__file__, cfg, checkpoints[0],
                                  '--thresholds', '0.5', *extra,
                                  '--out', tmp_path / 'sweep.json',
                                  '--cfg-options',
                                  'test_dataloader.dataset.ann_file=')
        assert run.returncode == 2, run.output[-2000:]
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith(
            f'ERROR: {cfg}: test_dataloader.dataset.ann_file is not set, so '
            'every image under ') and 'official_test.txt' in last, last
        assert 'loads checkpoint' not in run.output.lower()
        assert not (tmp_path / 'sweep.json').exists()


def test_thresholds_that_print_alike_are_refused(two_checkpoints, tmp_path):
    """``--thresholds 0.5 0.5000001``: both rows of the table were named
    ``0.5``, and the ``--out`` record kept one of them (its key ``0.5``
    written twice), exit 0."""
    tmp, cfg, checkpoints = two_checkpoints
    out = tmp_path / 'sweep.json'
    with pytest.raises(UserError, match=r'--thresholds 0.5 0.5000001: two '
                       r'are the same to six digits \(0.5 0.5\)'):
        tool.main([str(cfg), str(checkpoints[0]), '--thresholds', '0.5',
                   '0.5000001', '--out', str(out)])
    assert not out.exists()


def test_rule_options_without_two_of_each_count_them_in_words(
        two_checkpoints):
    """``--min-gain 1`` with one checkpoint: the refusal counted
    ``2 threshold(s) and 1 checkpoint(s)``."""
    tmp, cfg, checkpoints = two_checkpoints
    with pytest.raises(UserError, match=re.escape(
            'got 2 thresholds and 1 checkpoint')):
        tool.main([str(cfg), str(checkpoints[0]), '--thresholds', '0.5',
                   '0.4', '--min-gain', '1'])


def test_a_checkpoint_trained_on_every_image_is_refused(two_checkpoints,
                                                        tmp_path):
    """A run trained without a split file
    (``train_dataloader.dataset.ann_file=''``: mmseg reads every image of
    the set) swept on a validation split of the same set: its training
    split was taken as unknown and the thresholds were judged on images
    it had learned from, exit 0."""
    import torch
    from conftest import run_tool_in_process
    from mmengine.config import Config
    tmp, cfg, checkpoints = two_checkpoints
    config = Config.fromfile(cfg)
    config.merge_from_dict({'train_dataloader.dataset.ann_file': ''})
    weights = torch.load(checkpoints[0], map_location='cpu',
                         weights_only=True)['state_dict']
    every = tmp_path / 'every.pth'
    torch.save(dict(state_dict=weights, meta=dict(cfg=config.pretty_text)),
               every)
    data_root = config.test_dataloader.dataset.data_root
    val = 'splits/lightweight_design_val.txt'
    out = tmp_path / 'sweep.json'
    run = run_tool_in_process(tool.__file__, cfg, every, '--thresholds',
                              '0.5', '0.4', '--out', out, '--cfg-options',
                              f'test_dataloader.dataset.ann_file={val}')
    assert run.returncode == 2, run.output[-2000:]
    held_out = (Path(data_root) / val).read_text().split()
    assert len(held_out) == 1  # the tiny set's design hold-out
    assert run.stderr.strip().splitlines()[-1].startswith(
        f'ERROR: checkpoint {every} was trained on every image under '
        f"{data_root} (its training config, meta['cfg'], gives "
        'train_dataloader.dataset no ann_file), the '
        f'1 image that {cfg} scores ({data_root}/{val}) '
        'among them.')
    assert not out.exists()
    # Trained on every image of another set: swept as before.
    config.merge_from_dict({'train_dataloader.dataset.data_root':
                            str(tmp_path)})
    torch.save(dict(state_dict=weights, meta=dict(cfg=config.pretty_text)),
               every)
    scores = tool.main([str(cfg), str(every), '--thresholds', '0.5',
                        '--cfg-options',
                        f'test_dataloader.dataset.ann_file={val}'])
    assert set(scores) == {'checkpoint 1'}


def test_a_checkpoint_url_is_refused_with_a_message(two_checkpoints):
    """A checkpoint given as a URL passed the input check (URLs are left
    to the loader) and ended in ``FileNotFoundError: ... 'https://...'``
    (a traceback, exit 1) where its training config was read. An
    http(s) URL is downloaded now (tests/test_checkpoint_urls.py); another
    scheme is refused."""
    from conftest import run_tool_in_process
    tmp, cfg, checkpoints = two_checkpoints
    url = 's3://bucket/dsnet.pth'
    run = run_tool_in_process(tool.__file__, cfg, url, '--thresholds', '0.5')
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr.strip().splitlines()[-1] == (
        f'ERROR: checkpoint {url}: the sweep reads the training config a '
        'checkpoint holds, to refuse images it trained on, from a local '
        'file; download it and give the file')


def test_the_rule_decides_thresholds_on_four_checkpoints_or_more():
    """Two checkpoints on which 0.4 gains 1.25 with a paired 2 SE of 0.50:
    the table said ``yes``, where docs/design_study.md's rule needs four
    seeds (design_table.py says ``too few seeds``); on four it decides."""
    from mmseg_dsnet.analysis.threshold_sweep import threshold_rule_table
    ious = {'s0': (80.0, 81.0), 's1': (81.0, 82.5), 's2': (80.5, 81.75),
            's3': (79.5, 80.75)}
    scores = {label: {0.5: {'IoU': a}, 0.4: {'IoU': b}}
              for label, (a, b) in ious.items()}
    two = threshold_rule_table(scores, [0.5, 0.4], ['s0', 's1'], 0.3, 2.0)
    assert two.splitlines()[-1].endswith('| too few seeds (2 < 4) |'), two
    four = threshold_rule_table(scores, [0.5, 0.4], list(ious), 0.3, 2.0)
    assert four.splitlines()[-1].endswith('| yes |'), four
    # The reference is a row of its own, judged against nothing; the other
    # threshold is the one row judged: its mean and paired gain (the mean
    # of 1.0, 1.5, 1.25, 1.25).
    rows = [line for line in four.splitlines()
            if line.startswith('| 0.')]
    assert [r.split(' | ')[0] for r in rows] == ['| 0.5', '| 0.4']
    assert rows[0].endswith('| - | - | - |'), four
    assert '| +1.25 |' in rows[1], four


def test_a_checkpoint_recalibrated_on_the_scored_split_is_refused(
        two_checkpoints, tmp_path):
    """A checkpoint without a training config (released weights,
    ``fast_train.py`` runs) whose BatchNorm statistics
    ``recalibrate_batch_norm.py`` recomputed on the validation split, then
    swept (or tested) there: the images had shaped the model, yet the sweep
    read only ``meta['cfg']`` and scored them, exit 0. The recalibration's
    split is read from ``meta['batch_norm_recalibration']`` now."""
    from conftest import run_tool_in_process
    from mmengine.config import Config

    from mmseg_dsnet.analysis.threshold_sweep import check_not_trained_on
    from mmseg_dsnet.engine.batch_norm_recalibration import \
        write_recalibrated_checkpoint
    tmp, cfg, checkpoints = two_checkpoints
    val = 'splits/official_val.txt'
    recalibrated = tmp_path / 'precise.pth'
    write_recalibrated_checkpoint(
        str(cfg), str(checkpoints[0]), str(recalibrated), max_batches=1,
        cfg_options={'train_dataloader.dataset.ann_file': val})
    data_root = Config.fromfile(cfg).test_dataloader.dataset.data_root
    ids = (Path(data_root) / val).read_text().split()
    out = tmp_path / 'sweep.json'
    run = run_tool_in_process(tool.__file__, cfg, checkpoints[1],
                              recalibrated, '--thresholds', '0.5', '0.4',
                              '--out', out)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr.strip().splitlines()[-1] == (
        f'ERROR: checkpoint {recalibrated} had its BatchNorm statistics '
        f'recomputed on {len(ids)} of the {len(ids)} images that {cfg} '
        f'scores ({data_root}/{val}: {", ".join(ids[:3])}'
        + (f', ... ({len(ids) - 3} more)' if len(ids) > 3 else '')
        + f'); its recalibration split is {data_root}/{val} '
        "(meta['batch_norm_recalibration']). A threshold chosen on images "
        'the model learned from, and its figures, favour the model. Score a '
        'split it did not train on: runs trained on '
        'splits/lightweight_design_train.txt on '
        'splits/lightweight_design_val.txt, official-protocol runs on '
        'splits/official_val.txt')
    assert not out.exists()
    # Recalibrated on the training split: swept on the validation split.
    train = tmp_path / 'precise_train.pth'
    write_recalibrated_checkpoint(
        str(cfg), str(checkpoints[0]), str(train), max_batches=1,
        cfg_options={'train_dataloader.dataset.ann_file':
                     'splits/official_train.txt'})
    check_not_trained_on(str(train), Config.fromfile(
        cfg).test_dataloader.dataset, str(cfg))


def test_a_bad_sample_replaced_by_another_is_refused(two_checkpoints,
                                                     tmp_path):
    """``--cfg-options test_dataloader.dataset.on_bad_sample=skip`` with a
    split that lists a missing image: it was replaced by the next image,
    which was scored twice, and the table gave the figures as the split's
    (``(5 images)``), exit 0; ``tools/test.py`` stops there."""
    from conftest import run_tool_in_process
    from mmengine.config import Config
    tmp, cfg, checkpoints = two_checkpoints
    data_root = Config.fromfile(cfg).test_dataloader.dataset.data_root
    split = tmp_path / 'val_and_missing.txt'
    split.write_text((Path(data_root) / 'splits' / 'official_val.txt')
                     .read_text().strip() + '\nISIC_9999999\n')
    out = tmp_path / 'sweep.json'
    run = run_tool_in_process(
        tool.__file__, cfg, checkpoints[0], '--thresholds', '0.5', '0.4',
        '--out', out, '--cfg-options',
        f'test_dataloader.dataset.ann_file={split}',
        'test_dataloader.dataset.on_bad_sample=skip')
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr.strip().splitlines()[-1] == (
        f'ERROR: Threshold sweep: the bad sample {data_root}/images/'
        "ISIC_9999999.jpg was replaced by the next sample (on_bad_sample="
        "'skip'), so that one would be scored twice and "
        f'{data_root}/images/ISIC_9999999.jpg not at all; a test scores '
        'every image of its split. Fix or remove the file (and its line '
        'in the split file); nothing was reported')
    assert not out.exists() and '| threshold |' not in run.stdout


def test_evaluator_arguments_leave_its_threshold_out():
    """Each threshold's LesionMetric gets the sweep's threshold: one the
    evaluator gives too would be passed twice (a TypeError)."""
    from mmseg_dsnet.analysis.threshold_sweep import lesion_metric_args
    assert lesion_metric_args(dict(type='LesionMetric', threshold=0.3,
                                   low_res_size=64)) == dict(low_res_size=64)


def test_a_two_channel_head_refuses_thresholds_on_either_side():
    """Above 0.5 as below: the argmax head's masks are cut at 0.5 only."""
    from mmseg_dsnet.analysis.threshold_sweep import check_sweepable
    head = dict(decode_head=dict(type='X', out_channels=2))
    check_sweepable(head, [0.5], 'c.py')
    for thresholds, named in (([0.5, 0.7], '0.7'), ([0.3, 0.5], '0.3'),
                              ([0.4, 0.6], '0.4 0.6')):
        with pytest.raises(UserError, match=f'--thresholds {named} would'):
            check_sweepable(head, thresholds, 'c.py')


def test_split_ids_read_as_the_datasets_read_them(tmp_path):
    from mmseg_dsnet.datasets.split_files import split_ids
    path = tmp_path / 's.txt'
    path.write_text('./ISIC_0000001\n\n  ISIC_0000002  \nISIC_0000003\n\n')
    assert split_ids(str(path)) == ['ISIC_0000001', 'ISIC_0000002',
                                    'ISIC_0000003']


def test_split_ids_given_what_was_read_read_each_file_once(tmp_path):
    """A check that compares one training split with several scored ones
    passes the ids read so far: a file met again is not read again (the
    second read here would give the changed file's ids)."""
    from mmseg_dsnet.datasets.split_files import split_ids
    path = tmp_path / 'splits' / 's.txt'
    path.parent.mkdir()
    path.write_text('ISIC_0000001\nISIC_0000002\n')
    read = {}
    assert split_ids(str(path), read) == ['ISIC_0000001', 'ISIC_0000002']
    path.write_text('ISIC_0000003\n')
    assert split_ids(str(tmp_path / 'splits' / '..' / 'splits' / 's.txt'),
                     read) == ['ISIC_0000001', 'ISIC_0000002']
    assert list(read) == [str(path)]
    assert split_ids(str(path)) == ['ISIC_0000003']


def test_leaf_datasets_of_concatenated_and_repeated_sets():
    from mmseg_dsnet.datasets.split_files import leaf_datasets
    a = dict(type='ISICDataset', data_root='/a', ann_file='splits/x.txt')
    b = dict(type='ISICDataset', data_root='/b', ann_file='splits/y.txt')
    assert leaf_datasets(dict(type='ConcatDataset', datasets=[
        a, dict(type='RepeatDataset', times=2, dataset=b)])) == [a, b]


def test_ids_also_in_compares_splits_of_one_kind_of_set(tmp_path):
    """The synthetic set's ids coincide with the real set's: a synthetic
    training split shares none with a real scored one (and the reverse),
    also for a split file lying at its set's root, not in ``splits/``; a
    dataset that names only its data root (every image) is a leaf."""
    from mmseg_dsnet.datasets.split_files import (data_root_of, ids_also_in,
                                                  leaf_datasets)
    real = _splits(tmp_path / 'real', train=[1, 2])
    synthetic = _splits(tmp_path / 'synthetic', synthetic=True, train=[2, 3])
    (synthetic / 'flat.txt').write_text('ISIC_0000002\n')
    scored = ['ISIC_0000002', 'ISIC_0000003']
    real_train = str(real / 'splits' / 'train.txt')
    synthetic_train = str(synthetic / 'splits' / 'train.txt')
    assert ids_also_in(real_train, scored, False) == ['ISIC_0000002']
    assert ids_also_in(real_train, scored, True) == []
    assert ids_also_in(synthetic_train, scored, False) == []
    assert ids_also_in(synthetic_train, scored, True) == scored
    assert ids_also_in(None, scored, False) == []
    assert data_root_of(synthetic_train) == str(synthetic)
    assert data_root_of(str(synthetic / 'flat.txt')) == str(synthetic)
    assert ids_also_in(str(synthetic / 'flat.txt'), scored, True) == [
        'ISIC_0000002']
    every_image = dict(type='ISICDataset', data_root=str(real))
    assert leaf_datasets(dict(type='RepeatDataset', times=2,
                              dataset=every_image)) == [every_image]


def _splits(root, synthetic=False, **files):
    (root / 'splits').mkdir(parents=True)
    if synthetic:
        (root / 'SYNTHETIC.txt').write_text('synthetic\n')
    for name, ids in files.items():
        (root / 'splits' / f'{name}.txt').write_text(''.join(
            f'ISIC_000000{i}\n' for i in ids))
    return root


def _checkpoint(path, train=None, recalibration=None):
    """A checkpoint whose training config names ``train`` (data_root,
    ann_file) and whose recalibration record is ``recalibration``."""
    import torch
    meta = {}
    if train:
        meta['cfg'] = ('train_dataloader = dict(dataset=dict(data_root='
                       f'{str(train[0])!r}, ann_file={train[1]!r}))\n')
    if recalibration is not None:
        meta['batch_norm_recalibration'] = recalibration
    torch.save(dict(meta=meta, state_dict={}), path)
    return str(path)


def test_recalibration_split_files_of_old_and_moved_records(tmp_path):
    """The record's ``split_files`` where they are named, else under the
    data root (as named there, or by file name in its splits folder); a
    record without ``split_files`` (written before) by its ``split``."""
    from mmseg_dsnet.analysis.threshold_sweep import \
        recalibration_split_files
    root = _splits(tmp_path / 'isic', val=[1, 2])
    val = str(root / 'splits' / 'val.txt')
    for record in (dict(split_files=[val]),
                   dict(split_files=['/other/machine/isic/splits/val.txt']),
                   dict(split='splits/val.txt'),
                   dict(split_files=[], split='splits/val.txt')):
        checkpoint = _checkpoint(tmp_path / 'c.pth', recalibration=record)
        assert recalibration_split_files(checkpoint, str(root)) == [val], \
            record
    checkpoint = _checkpoint(tmp_path / 'c.pth',
                             recalibration=dict(split='splits/gone.txt'))
    assert recalibration_split_files(checkpoint, str(root)) == []


def test_training_split_files_keep_a_place_for_one_found_nowhere(tmp_path):
    from mmseg_dsnet.analysis.threshold_sweep import training_split_files
    root = _splits(tmp_path / 'isic', train=[1])
    checkpoint = tmp_path / 'c.pth'
    import torch
    torch.save(dict(meta=dict(cfg=(
        'train_dataloader = dict(dataset=dict(type="ConcatDataset", '
        f'datasets=[dict(data_root={str(root)!r}, ann_file="splits/'
        'train.txt"), dict(data_root="/nowhere", ann_file="splits/'
        'gone.txt")]))\n')), state_dict={}), checkpoint)
    assert training_split_files(str(checkpoint)) == [
        str(root / 'splits' / 'train.txt'), None]


def test_one_shared_image_and_the_synthetic_set_apart(tmp_path):
    """One scored image the checkpoint trained on, or had its statistics
    recomputed on, is refused; the synthetic stand-in set's ids are the
    real set's ids but not its images, so a checkpoint of one scored on
    the other passes."""
    from mmseg_dsnet.analysis.threshold_sweep import check_not_trained_on
    real = _splits(tmp_path / 'real', val=[1, 2, 3], train=[3, 4, 5])
    fake = _splits(tmp_path / 'fake', synthetic=True, val=[1, 2, 3],
                   train=[3, 4, 5])
    scored = {root: dict(data_root=str(root), ann_file='splits/val.txt')
              for root in (real, fake)}
    for root in (real, fake):
        trained = _checkpoint(tmp_path / 't.pth',
                              train=(root, 'splits/train.txt'))
        recalibrated = _checkpoint(tmp_path / 'r.pth', recalibration=dict(
            split_files=[str(root / 'splits' / 'train.txt')]))
        other = fake if root == real else real
        for checkpoint, what in ((trained, 'was trained on 1 of the 3'),
                                 (recalibrated, 'had its BatchNorm '
                                  'statistics recomputed on 1 of the 3')):
            with pytest.raises(UserError) as error:
                check_not_trained_on(checkpoint, scored[root], 'c.py')
            assert f'{what} images that c.py scores ' \
                f"({root / 'splits' / 'val.txt'}: ISIC_0000003)" \
                in str(error.value)
            check_not_trained_on(checkpoint, scored[other], 'c.py')


def test_a_split_file_beside_the_images_belongs_to_its_own_set(tmp_path):
    """A training split file kept in the data root itself (not under
    ``splits/``) belongs to that root: one of the synthetic set shares ids
    with, but no image of, a real set scored; one of the real set shares
    its images."""
    from mmseg_dsnet.datasets.split_files import data_root_of, ids_also_in
    real = _splits(tmp_path / 'real', val=[1, 2])
    fake = _splits(tmp_path / 'fake', synthetic=True)
    for root in (real, fake):
        (root / 'train.txt').write_text('ISIC_0000002\nISIC_0000001\n')
        assert data_root_of(str(root / 'train.txt')) == str(root)
        assert data_root_of(str(root / 'splits' / 'val.txt')) == str(root)
    scored = ['ISIC_0000001', 'ISIC_0000002']
    assert ids_also_in(str(fake / 'train.txt'), scored, False) == []
    # Every shared id, in the order of the scored split.
    assert ids_also_in(str(real / 'train.txt'), scored, False) == scored
    assert ids_also_in(str(real / 'train.txt'), scored[1:], False) == \
        scored[1:]


def test_the_datasets_a_wrapper_holds_are_found_by_their_data():
    """A dataset that names only its data root (every image under it, no
    split file) is one of the datasets a wrapper holds; a wrapper naming
    neither is looked into."""
    from mmseg_dsnet.datasets.split_files import leaf_datasets
    folder = dict(type='ISIC2017Dataset', data_root='data/isic2017',
                  data_prefix=dict(img_path='images'))
    listed = dict(type='ISIC2017Dataset', ann_file='/s/val.txt')
    wrapper = dict(type='ConcatDataset', datasets=[
        folder, dict(type='RepeatDataset', times=2, dataset=listed)])
    assert leaf_datasets(wrapper) == [folder, listed]


def test_a_test_of_a_concatenated_set_checks_each_dataset(tmp_path):
    from mmseg_dsnet.analysis.threshold_sweep import \
        check_not_tested_on_training_images
    root = _splits(tmp_path / 'isic', val=[1], train=[3, 4], more=[4])
    trained = _checkpoint(tmp_path / 't.pth',
                          train=(root, 'splits/train.txt'))
    leaf = dict(data_root=str(root), ann_file='splits/val.txt')
    check_not_tested_on_training_images(trained, leaf, 'c.py')
    with pytest.raises(UserError,
                       match='was trained on 1 of the 1 image that'):
        check_not_tested_on_training_images(trained, dict(
            type='ConcatDataset', datasets=[leaf, dict(
                leaf, ann_file='splits/more.txt')]), 'c.py')


def test_same_folder_knows_other_spellings_and_links(tmp_path):
    """One folder spelt another way, or through a link, is the same; a
    missing or empty path, a file or another folder is not."""
    from mmseg_dsnet.utils.paths import same_folder
    root = tmp_path / 'data'
    (root / 'sub').mkdir(parents=True)
    (tmp_path / 'other').mkdir()
    (tmp_path / 'link').symlink_to(root)
    assert same_folder(str(root), str(root / 'sub' / '..'))
    assert same_folder(str(root) + '/', str(tmp_path / 'link'))
    assert not same_folder(str(root), str(tmp_path / 'other'))
    assert not same_folder(str(root), str(root / 'sub'))
    assert not same_folder(str(root), str(tmp_path / 'missing'))
    assert not same_folder(str(tmp_path / 'missing'), str(root))
    assert not same_folder('', '')
    (tmp_path / 'file').write_text('x')
    assert not same_folder(str(tmp_path / 'file'), str(tmp_path / 'file'))


def test_a_random_step_in_the_test_pipeline_is_refused(two_checkpoints,
                                                       tmp_path):
    """A test pipeline that flips at random after LoadAnnotations: each
    threshold was scored on random views of the images, other figures at
    each run, exit 0 (tools/test.py refused it, the sweep built no
    pipeline before running it)."""
    from conftest import run_tool_in_process, tree_hashes
    tmp, cfg, checkpoints = two_checkpoints
    flipped = tmp_path / 'flipped.py'
    flipped.write_text(
        f"_base_ = '{cfg}'\n"
        'test_dataloader = dict(dataset=dict(pipeline=['
        "dict(type='LoadImageFromFile'), "
        "dict(type='Resize', scale=(64, 64), keep_ratio=False), "
        "dict(type='LoadAnnotations'), "
        "dict(type='RandomFlip', prob=0.5, direction='horizontal'), "
        "dict(type='PackSegInputs')]))\n")
    out = tmp_path / 'sweep.json'
    before = tree_hashes(tmp_path)
    run = run_tool_in_process(tool.__file__, flipped, checkpoints[0],
                              '--thresholds', '0.5', '--out', out)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr.strip().splitlines()[-1].startswith(
        f'ERROR: test_dataloader.dataset.pipeline[3] of {flipped}: '
        'RandomFlip draws at random (a training augmentation); in the test '
        'pipeline it would score a random view of each image')
    assert tree_hashes(tmp_path) == before


def test_the_models_own_threshold_in_the_metrics_terms():
    """A 1-channel head calls label 1 above its threshold T: with masks
    whose lesion is label 0 (``LesionMetric(lesion_index=0)``) its masks
    are the lesion probability above 1 - T, where the sweep's plot now
    marks the model's own threshold (it marked T); 2 channels: 0.5."""
    from mmseg_dsnet.engine.preflight import mask_threshold
    head = dict(out_channels=1, threshold=0.42)
    assert mask_threshold(head) == 0.42
    assert mask_threshold(head, lesion_index=0) == 0.58
    assert mask_threshold(dict(out_channels=1), lesion_index=0) == 0.7
    assert mask_threshold(dict(num_classes=2, threshold=0.2),
                          lesion_index=0) == 0.5


def test_the_plot_marks_the_models_own_threshold_in_the_metrics_terms(
        two_checkpoints, tmp_path, monkeypatch):
    """With masks whose lesion is label 0, the plot marked the head's T
    as the model's own threshold, where its masks are at 1 - T."""
    from mmseg_dsnet.analysis import plots
    tmp, cfg, checkpoints = two_checkpoints
    label_0 = tmp_path / 'label_0.py'
    label_0.write_text(f"_base_ = '{cfg}'\n"
                       'model = dict(decode_head=dict(threshold=0.4))\n'
                       "test_evaluator = dict(type='LesionMetric', "
                       'lesion_index=0)\n')
    marked = []
    draw = plots.plot_threshold_sweep

    def recording(*args, **kwargs):  # draws, and keeps what it marked
        marked.append(kwargs['model_threshold'])
        return draw(*args, **kwargs)

    monkeypatch.setattr(plots, 'plot_threshold_sweep', recording)
    tool.main([str(label_0), str(checkpoints[0]), '--thresholds', '0.5',
               '--plot', str(tmp_path / 'sweep.png')])
    assert marked == [0.6]
    assert (tmp_path / 'sweep.png').is_file()


def test_checkpoints_of_one_training_run_are_refused(two_checkpoints,
                                                     tmp_path):
    """``epoch_20.pth`` and ``epoch_30.pth`` of one work dir: their columns
    were averaged (mean ± std) and the rule judged the thresholds paired
    over them as over seeds, exit 0. Runs are told apart by the
    ``experiment_name`` and ``seed`` of their ``meta``: fast_train.py's
    seeds of one config share the name, not the seed."""
    import torch
    from mmseg_dsnet.analysis.threshold_sweep import check_separate_runs
    tmp, cfg, checkpoints = two_checkpoints
    saved = []
    for epoch, (checkpoint, seed) in zip((20, 30, 30),
                                         zip(checkpoints * 2, (4, 4, 5))):
        loaded = torch.load(checkpoint, map_location='cpu')
        path = tmp_path / f'epoch_{epoch}_seed{seed}.pth'
        torch.save(dict(loaded, meta=dict(
            experiment_name='tiny_dsnet_20260101_120000', seed=seed,
            epoch=epoch)), path)
        saved.append(str(path))
    out = tmp_path / 'sweep.json'
    with pytest.raises(UserError) as error:
        tool.main([str(cfg), saved[0], saved[1], '--thresholds', '0.5',
                   '0.4', '--out', str(out)])
    assert str(error.value) == (
        f'{saved[0]} (checkpoint 1) and {saved[1]} (checkpoint 2) were '
        'saved by one training run (tiny_dsnet_20260101_120000, seed 4): '
        'the columns are averaged and the thresholds judged as seeds; give '
        'one checkpoint per training run (e.g. the last of each seed), and '
        'sweep other checkpoints of a run one at a time')
    assert not out.exists()
    # Two seeds under one name, and checkpoints without a run record, pass.
    check_separate_runs([saved[0], saved[2], *map(str, checkpoints)],
                        ['a', 'b', 'c', 'd'])
    # So do checkpoints whose meta names half a run: one seed, or one name
    # (another trainer's files), which different runs share.
    for key, value in (('seed', 0), ('experiment_name', 'tiny_dsnet')):
        halves = []
        for index, checkpoint in enumerate(checkpoints):
            path = tmp_path / f'{key}_{index}.pth'
            torch.save(dict(torch.load(checkpoint, map_location='cpu'),
                            meta={key: value}), path)
            halves.append(str(path))
        check_separate_runs(halves, ['a', 'b'])


def test_a_split_without_lesion_pixels_judges_no_threshold():
    """Masks without lesion: IoU and DSC were 0 at every threshold that
    called a pixel lesion and 100 at one that called none, sensitivity
    100 (0 / 0) at all, so the sweep favoured the threshold that finds
    nothing (exit 0). It is refused, also where the lesion vanishes at
    the metric's ``low_res_size``."""
    from types import SimpleNamespace

    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from mmseg_dsnet.analysis.threshold_sweep import scores_by_threshold

    probabilities = torch.full((1, 8, 8), 0.3)
    probabilities[:, :4] = 0.7
    truth = {}

    def sample():
        s = SegDataSample()
        s.seg_logits = PixelData(data=probabilities)
        s.gt_sem_seg = PixelData(data=truth['mask'])
        return s

    model = SimpleNamespace(test_step=lambda batch: [sample(), sample()])
    loader = type('Loader', (), {'dataset': [None] * 2,
                                 '__iter__': lambda self: iter([{}])})()
    truth['mask'] = torch.zeros(1, 8, 8, dtype=torch.long)
    with pytest.raises(UserError, match=re.escape(
            'the ground truth of the 2 scored images holds no lesion pixel '
            'at the original size; there IoU and DSC read 0 at every')):
        scores_by_threshold(model, loader, [0.5, 0.9],
                            dict(low_res_size=(8, 8)))
    # One lesion pixel that nearest-neighbour resizing to 2x2 skips.
    truth['mask'] = torch.zeros(1, 8, 8, dtype=torch.long)
    truth['mask'][0, 1, 1] = 1
    with pytest.raises(UserError, match='holds no lesion pixel at '
                       'low_res_size 2x2, where the masks are resized'):
        scores_by_threshold(model, loader, [0.5, 0.9],
                            dict(low_res_size=(2, 2)))
    # With lesion pixels every threshold is scored.
    scores = scores_by_threshold(model, loader, [0.5, 0.9],
                                 dict(low_res_size=(8, 8)))
    assert scores[0.5]['Sen'] == 100.0 and scores[0.9]['Sen'] == 0.0
    assert scores[0.5]['IoU'] == pytest.approx(100 / 32, abs=1e-4)
