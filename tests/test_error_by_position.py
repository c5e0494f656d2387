"""Errors by distance from the image centre
(mmseg_dsnet.analysis.error_position and
tools/analysis_tools/error_by_position.py)."""
import json

import numpy as np
import pytest
from conftest import load_tool, make_lesion_checkpoint

from mmseg_dsnet.analysis.error_position import ErrorByPosition, error_table

tool = load_tool('analysis_tools/error_by_position.py')


def disc(size, radius):
    """``(size, size)`` bool disc of ``radius`` (in pixels) at the centre."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    return np.hypot(yy, xx) <= radius


def test_a_prediction_that_stops_short_misses_the_outer_rings():
    errors = ErrorByPosition(rings=5)
    gt = np.ones((40, 40), bool)  # a lesion that fills the picture
    pred = disc(40, 12)  # found only in the middle
    errors.update(pred, gt, name='big')
    small = disc(40, 4)
    errors.update(small | disc(40, 8), small, name='small')  # 2x too wide
    summary = errors.summary(worst=1)
    rings = summary['rings']
    # Ring 0 (distance up to 0.2 of the half-diagonal, 5.5 px) is found
    # everywhere; the corners are missed completely.
    assert rings[0]['missed_rate'] == 0
    assert rings[-1]['missed_rate'] == 1
    assert [r['missed_rate'] for r in rings] == sorted(
        r['missed_rate'] for r in rings)
    # The false lesion lies around the small one, near the centre.
    assert rings[0]['false_rate'] > 0 and rings[-1]['false_rate'] == 0
    big, small_image = summary['per_image']
    assert big['missed'] == (gt & ~pred).sum() and big['false'] == 0
    assert small_image['false'] == (disc(40, 8) & ~small).sum()
    wrong = big['missed'] + small_image['false']
    assert summary['worst_share'] == pytest.approx(big['missed'] / wrong)
    assert summary['iou'] == pytest.approx(
        100 * (pred.sum() + small.sum()) / (gt.sum() + disc(40, 8).sum()))
    assert summary['missed_share'] == pytest.approx(big['missed'] / wrong)
    assert sum(r['lesion_share'] for r in rings) == pytest.approx(1)
    table = error_table(summary)
    corners = table.splitlines()[-3]
    assert corners.startswith('| 0.8-1.0 | ')
    assert corners.endswith('| 100.0 % | 0.0 % |')
    # Asked for more worst images than there are: the line names the two
    # there are, which hold all of the wrong pixels.
    every = errors.summary(worst=10)
    assert every['worst'] == 2 and every['worst_share'] == 1
    assert 'and the 2 images with the most wrong pixels hold 100 %' in \
        error_table(every)


def test_ignored_pixels_do_not_count_and_bad_input_is_refused():
    errors = ErrorByPosition(rings=2)
    gt = np.zeros((10, 10), bool)
    pred = np.ones((10, 10), bool)
    valid = np.zeros((10, 10), bool)
    valid[4:6, 4:6] = True
    errors.update(pred, gt, valid)
    assert errors.summary()['per_image'][0]['false'] == 4
    with pytest.raises(ValueError, match='differ in size'):
        errors.update(pred, gt[:5])
    with pytest.raises(ValueError, match='no images'):
        ErrorByPosition().summary()
    with pytest.raises(ValueError, match='rings'):
        ErrorByPosition(rings=0)


def test_tool_reports_a_model_and_keeps_an_existing_output(
        tiny_config, tiny_isic, tmp_path, capsys):
    from test_export_onnx import lesion_image
    checkpoint = make_lesion_checkpoint(str(tiny_config),
                                        tmp_path / 'model.pth',
                                        lesion_image(256, 256, 0))
    import matplotlib
    from PIL import Image

    from mmseg_dsnet.analysis.plots import DPI, RINGS_SIZE
    out, plot = tmp_path / 'errors.json', tmp_path / 'errors.png'
    backend = matplotlib.get_backend()
    summary = tool.main([str(tiny_config), str(checkpoint), '--rings', '3',
                         '--out', str(out), '--plot', str(plot)])
    printed, progress = capsys.readouterr()
    # The plot is a PNG of the figure's size, drawn without touching the
    # process's matplotlib backend; no temporary file is left.
    assert matplotlib.get_backend() == backend
    with Image.open(plot) as image:
        assert image.format == 'PNG'
        assert image.size == (RINGS_SIZE[0] * DPI, RINGS_SIZE[1] * DPI)
        image.load()
        caption = image.text['Title']
    assert f'plot: {plot}' in printed
    # The plot's IoU says at which size it is, as the printed line does:
    # it is not the IoU tools/test.py reports first.
    height, width = summary['low_res_size']
    assert caption.endswith(
        f'{summary["images"]} images, pooled IoU {summary["iou"]:.2f} at the '
        f'original size, {summary["iou_low_res"]:.2f} at {height}x{width}')
    assert str(tiny_config) in caption
    assert not list(tmp_path.glob('.*.part-*'))
    assert '| distance from centre |' in printed and '0.67-1.00' in printed
    # The progress bar goes to stderr: stdout redirected to a file holds
    # the tables only.
    assert 'images: 100%' in progress and '\r' not in printed
    # Every image of the config's test split, once.
    from mmengine.config import Config
    split = Config.fromfile(tiny_config).test_dataloader.dataset.ann_file
    images = (tiny_isic / split).read_text().split()
    assert summary['images'] == len(images) > 0
    saved = json.loads(out.read_text())
    assert saved['iou'] == pytest.approx(summary['iou'])
    # The file says which model and which images its figures are of.
    assert (saved['config'], saved['checkpoint']) == (str(tiny_config),
                                                      str(checkpoint))
    assert saved['split_file'] == str(tiny_isic / split)
    assert saved['data_root'] == str(tiny_isic)
    assert saved['images'] == len(images) and saved['synthetic'] is False
    assert sorted(i['name'].rsplit('/', 1)[-1].split('.')[0]
                  for i in saved['per_image']) == sorted(images)
    out.write_text('keep me')
    with pytest.raises(FileExistsError, match='--overwrite'):
        tool.main([str(tiny_config), str(checkpoint), '--out', str(out)])
    assert out.read_text() == 'keep me'
    # A head that does not predict the test set's classes is refused
    # before any image is read, as test.py refuses it.
    from mmseg_dsnet.engine.hooks.num_classes_check_hook import \
        NumClassesMismatchError
    with pytest.raises(NumClassesMismatchError, match='test dataset'):
        tool.main([str(tiny_config), str(checkpoint), '--cfg-options',
                   'model.decode_head.num_classes=3'])


def test_an_out_it_cannot_or_must_not_write_is_refused_before_work(
        tmp_path):
    """``--out`` naming the checkpoint or the config (with
    ``--overwrite``): the input was replaced by the figures, exit 0;
    ``--out`` in a folder path that runs through a file: a traceback after
    every image was read."""
    from conftest import run_tool_in_process
    config, checkpoint = tmp_path / 'net.py', tmp_path / 'net.pth'
    config.write_text('model = dict()\n')
    checkpoint.write_bytes(b'weights')
    blocker = tmp_path / 'afile'
    blocker.write_text('')
    for out, overwrite, message in (
            (checkpoint, ['--overwrite'],
             f'the checkpoint and --out are the same file, {checkpoint}; '
             'give --out a file name of its own'),
            (config, ['--overwrite'],
             f'the config file and --out are the same file, {config}; '
             'give --out a file name of its own'),
            (blocker / 'errors.json', [],
             f'Cannot write --out {blocker}/errors.json: {blocker} is a '
             'file, not a folder. Nothing was started; choose a writable '
             'file for --out.')):
        run = run_tool_in_process(tool.__file__, config, checkpoint,
                                  '--out', out, *overwrite)
        assert run.returncode == 2, run.output
        assert run.stderr == f'ERROR: {message}\n'
    assert checkpoint.read_bytes() == b'weights'
    assert config.read_text() == 'model = dict()\n'
    assert blocker.read_text() == ''


def test_a_plot_it_cannot_or_must_not_write_is_refused_before_work(
        tmp_path):
    """``--plot`` is checked as ``--out`` is, before the config is read
    (here a config without a model, which would be refused next): an
    existing file without ``--overwrite``, the same file as ``--out`` or an
    input, a folder path through a file, a name that is not a PNG's."""
    from conftest import run_tool_in_process
    config, checkpoint = tmp_path / 'net.py', tmp_path / 'net.pth'
    config.write_text('model = dict()\n')
    checkpoint.write_bytes(b'weights')
    kept = tmp_path / 'kept.png'
    kept.write_bytes(b'old plot')
    blocker = tmp_path / 'afile'
    blocker.write_text('')
    same = tmp_path / 'same.png'
    for args, message in (
            (['--plot', kept],
             f'{kept} already exists (use --overwrite to replace it)'),
            (['--out', same, '--plot', same],
             f'--out and --plot are the same file, {same}; give --out and '
             '--plot file names of their own'),
            (['--plot', checkpoint, '--overwrite'],
             f'the checkpoint and --plot are the same file, {checkpoint}; '
             'give --plot a file name of its own'),
            (['--plot', blocker / 'errors.png'],
             f'Cannot write --plot {blocker}/errors.png: {blocker} is a '
             'file, not a folder. Nothing was started; choose a writable '
             'file for --plot.'),
            (['--plot', tmp_path / 'errors.svg'],
             f'--plot {tmp_path}/errors.svg: the figure is written as a '
             'PNG; give a file name ending with .png')):
        run = run_tool_in_process(tool.__file__, config, checkpoint, *args)
        assert run.returncode == 2, run.output
        assert run.stderr == f'ERROR: {message}\n'
    assert checkpoint.read_bytes() == b'weights'
    assert kept.read_bytes() == b'old plot' and blocker.read_text() == ''
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'afile', 'kept.png', 'net.pth', 'net.py']


def test_a_pipeline_that_resizes_the_ground_truth_is_one_error_line(
        tiny_config, tmp_path):
    """A test pipeline that loads the annotations before ``Resize``: the
    masks no longer have the predictions' (original) size; before, a
    ValueError traceback."""
    from conftest import run_tool_in_process
    from test_export_onnx import lesion_image
    checkpoint = make_lesion_checkpoint(str(tiny_config),
                                        tmp_path / 'model.pth',
                                        lesion_image(256, 256, 0))
    config = tmp_path / 'resized_masks.py'
    config.write_text(
        f"_base_ = '{tiny_config}'\n"
        'test_dataloader = dict(dataset=dict(pipeline=['
        "dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), "
        "dict(type='Resize', scale=(64, 64), keep_ratio=False), "
        "dict(type='PackSegInputs')]))\n")
    out = tmp_path / 'errors.json'
    run = run_tool_in_process(tool.__file__, config, checkpoint, '--out', out)
    assert run.returncode == 2, run.output
    error = [line for line in run.stderr.splitlines()
             if 'ERROR' in line]
    assert len(error) == 1 and error[0].startswith('ERROR: ')
    assert 'differ in size' in error[0]
    assert 'put LoadAnnotations after Resize' in error[0]
    assert not out.exists()
    # tools/test.py scores through LesionMetric, which raised a plain
    # ValueError: a traceback too.
    metrics = tmp_path / 'metrics.json'
    run = run_tool_in_process('tools/test.py', config, checkpoint,
                              '--work-dir', tmp_path / 'w', '--metrics-out',
                              metrics)
    assert run.returncode == 2, run.output[-2000:]
    assert 'Traceback' not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith('ERROR: ') and 'does not match ground truth' in last
    assert 'put LoadAnnotations after Resize' in last
    assert not metrics.exists()


def test_an_evaluator_threshold_of_its_own_is_refused(tiny_config,
                                                     tmp_path):
    """``--cfg-options test_evaluator.threshold=0.3`` (which test.py
    refuses unless the decode head's threshold is set alike) was ignored:
    the figures were of the head's masks at 0.5, exit 0."""
    from conftest import run_tool_in_process
    from test_export_onnx import lesion_image
    checkpoint = make_lesion_checkpoint(str(tiny_config),
                                        tmp_path / 'model.pth',
                                        lesion_image(256, 256, 0))
    out = tmp_path / 'errors.json'
    run = run_tool_in_process(tool.__file__, tiny_config, checkpoint,
                              '--out', out, '--cfg-options',
                              'test_evaluator.threshold=0.3')
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr.strip().splitlines()[-1] == (
        'ERROR: the decode head calls lesion above probability 0.5 but '
        'test_evaluator (LesionMetric) above 0.3: its figures would not '
        "describe the model's masks; set both to one value T (--cfg-options "
        'model.decode_head.threshold=T test_evaluator.threshold=T)')
    assert not out.exists()
    # Both set to one value: the figures are of the masks at 0.3.
    run = run_tool_in_process(tool.__file__, tiny_config, checkpoint,
                              '--out', out, '--cfg-options',
                              'test_evaluator.threshold=0.3',
                              'model.decode_head.threshold=0.3')
    assert run.returncode == 0, run.output[-2000:]
    assert out.exists()


def test_pixels_are_counted_as_the_test_evaluator_counts_them(
        tiny_config, tmp_path):
    """``--cfg-options test_evaluator.ignore_index=0
    test_evaluator.low_res_size=(32,32)``: before, the ignored label was the
    decode head's (255) and ``low_res_size`` was never read, so the figures
    were not of the pixels ``tools/test.py`` scores for the same config."""
    from conftest import run_tool_in_process
    from test_export_onnx import lesion_image
    checkpoint = make_lesion_checkpoint(str(tiny_config),
                                        tmp_path / 'model.pth',
                                        lesion_image(256, 256, 0))
    options = ['--cfg-options', 'test_evaluator.ignore_index=0',
               'test_evaluator.low_res_size=(32,32)']
    out = tmp_path / 'errors.json'
    summary = tool.main([str(tiny_config), str(checkpoint), '--out',
                         str(out), *options])
    # Background (label 0) is ignored: only lesion pixels count.
    assert all(image['pixels'] == image['lesion'] and image['false'] == 0
               for image in summary['per_image'])
    assert summary['low_res_size'] == [32, 32]
    metrics = tmp_path / 'metrics.json'
    run = run_tool_in_process('tools/test.py', tiny_config, checkpoint,
                              '--work-dir', tmp_path / 'w', '--metrics-out',
                              metrics, *options)
    assert run.returncode == 0, run.output[-2000:]
    scored = json.loads(metrics.read_text())['metrics']
    assert summary['iou'] == pytest.approx(scored['IoU_orig'], abs=1e-3)
    assert summary['iou_low_res'] == scored['IoU']
    assert json.loads(out.read_text())['iou_low_res'] == scored['IoU']
    # An evaluator whose figures cannot be matched is refused.
    run = run_tool_in_process(tool.__file__, tiny_config, checkpoint,
                              '--cfg-options', 'test_evaluator.type=IoUMetric')
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr.strip().splitlines()[-1].startswith(
        f'ERROR: {tiny_config}: test_evaluator: the config\'s '
        'test_evaluator must be one LesionMetric')


def strict_json(text):
    """``json.loads`` as jq or JavaScript read JSON: ``NaN`` and
    ``Infinity`` are not JSON."""
    def refuse(name):
        raise ValueError(f'{name} is not JSON')
    return json.loads(text, parse_constant=refuse)


def test_a_ring_without_lesion_is_written_as_null(tiny_config, tmp_path,
                                                  capsys):
    """A ring that holds no lesion has no missed rate: ``--out`` wrote
    ``NaN``, which strict JSON readers (jq, JavaScript) refuse, whole
    file and all; now ``null`` (``utils.fileio.json_text``, which every
    JSON writer of the package uses)."""
    from test_export_onnx import lesion_image
    checkpoint = make_lesion_checkpoint(str(tiny_config),
                                        tmp_path / 'model.pth',
                                        lesion_image(256, 256, 0))
    out = tmp_path / 'errors.json'
    tool.main([str(tiny_config), str(checkpoint), '--rings', '40',
               '--out', str(out)])
    saved = strict_json(out.read_text())
    assert None in [ring['missed_rate'] for ring in saved['rings']]


def test_json_text_writes_numbers_that_are_not_finite_as_null():
    from mmseg_dsnet.utils.fileio import json_text
    text = json_text({'a': float('nan'), 'b': [float('inf'), 1.5, 2],
                      'c': (np.float32('-inf'), np.float64(0.25)),
                      'd': True, 'e': None})
    assert strict_json(text) == {'a': None, 'b': [None, 1.5, 2],
                                 'c': [None, 0.25], 'd': True, 'e': None}


def test_a_loader_that_leaves_images_out_is_refused(tiny_config, tiny_isic,
                                                    tmp_path):
    """``--cfg-options test_dataloader.batch_size=4
    test_dataloader.drop_last=True`` on a 5-image split: the figures (table,
    ``--out``) were of the 4 images of the full batch, exit 0."""
    from conftest import run_tool_in_process
    from mmengine.config import Config
    from test_export_onnx import lesion_image
    checkpoint = make_lesion_checkpoint(str(tiny_config),
                                        tmp_path / 'model.pth',
                                        lesion_image(256, 256, 0))
    split = Config.fromfile(tiny_config).test_dataloader.dataset.ann_file
    images = len((tiny_isic / split).read_text().split())
    assert images % 4
    out, plot = tmp_path / 'errors.json', tmp_path / 'errors.png'
    run = run_tool_in_process(
        tool.__file__, tiny_config, checkpoint, '--out', out, '--plot', plot,
        '--cfg-options', 'test_dataloader.batch_size=4',
        'test_dataloader.drop_last=True')
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr.strip().splitlines()[-1].startswith(
        f'ERROR: LesionMetric: the evaluation loop gave results for '
        f'{images // 4 * 4} of the {images} images of its dataset')
    assert not out.exists() and not plot.exists()
    assert '| distance from centre |' not in run.stdout


def test_a_bad_sample_replaced_by_another_is_refused(tiny_config, tiny_isic,
                                                     tmp_path):
    """``--cfg-options test_dataloader.dataset.on_bad_sample=skip`` with a
    split that lists a missing image: it was replaced by the next image,
    counted twice, and the figures were written as the split's, exit 0."""
    from conftest import run_tool_in_process
    from test_export_onnx import lesion_image
    checkpoint = make_lesion_checkpoint(str(tiny_config),
                                        tmp_path / 'model.pth',
                                        lesion_image(256, 256, 0))
    split = tmp_path / 'val_and_missing.txt'
    split.write_text((tiny_isic / 'splits' / 'official_val.txt')
                     .read_text().strip() + '\nISIC_9999999\n')
    out = tmp_path / 'errors.json'
    run = run_tool_in_process(
        tool.__file__, tiny_config, checkpoint, '--out', out,
        '--cfg-options', f'test_dataloader.dataset.ann_file={split}',
        'test_dataloader.dataset.on_bad_sample=skip')
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr.strip().splitlines()[-1].startswith(
        f'ERROR: Error by position: the bad sample {tiny_isic}/images/'
        "ISIC_9999999.jpg was replaced by the next sample")
    assert not out.exists()


def test_rates_are_per_ring_and_an_all_wrong_image_has_iou_zero():
    """Everything called lesion on a picture without lesion: every ring's
    background is all false lesion (rate 1 in each ring, not its share of
    the whole picture). Nothing found of an all-lesion picture: every ring
    misses all, and the IoU is 0 (no pixel right), not undefined."""
    counter = ErrorByPosition(rings=3)
    counter.update(np.ones((9, 12), bool), np.zeros((9, 12), bool))
    summary = counter.summary()
    assert [r['false_rate'] for r in summary['rings']] == [1.0, 1.0, 1.0]
    assert summary['iou'] == 0.0 and summary['missed_share'] == 0.0
    counter = ErrorByPosition(rings=3)
    counter.update(np.zeros((9, 12), bool), np.ones((9, 12), bool))
    summary = counter.summary()
    assert [r['missed_rate'] for r in summary['rings']] == [1.0, 1.0, 1.0]
    assert summary['iou'] == 0.0 and summary['missed_share'] == 1.0


def test_a_prediction_of_another_width_is_refused():
    from mmseg_dsnet.utils.errors import SizeMismatchError
    with pytest.raises(SizeMismatchError, match='a.png'):
        ErrorByPosition().update(np.zeros((8, 8), bool),
                                 np.zeros((8, 9), bool), name='a.png')


def test_the_evaluator_threshold_and_low_res_size_are_its_own(tmp_path):
    """The errors are counted at the evaluator's threshold, and no mask
    folder it names is made; the table gives its low_res_size as
    height x width."""
    from mmseg_dsnet.analysis.error_position import evaluator_metric
    folder = tmp_path / 'masks'
    metric = evaluator_metric(dict(type='LesionMetric', threshold=0.3,
                                   low_res_size=(32, 48),
                                   output_dir=str(folder)))
    assert metric.threshold == 0.3 and not folder.exists()
    counter = ErrorByPosition(rings=1)
    counter.update(disc(8, 2), disc(8, 3))
    table = error_table(dict(counter.summary(), low_res_size=[32, 48],
                             iou_low_res=50.0))
    assert ', 50.00 at 32x48 (its IoU)' in table


def test_images_the_checkpoint_trained_on_are_refused(tiny_config, tiny_isic,
                                                      tmp_path, capsys):
    """A checkpoint scored on a split sharing images with its training split
    (``--cfg-options test_dataloader.dataset.ann_file=splits/
    official_val.txt`` for a lightweight run) gave the smaller errors of
    images it learned from, ring by ring, exit 0. Refused as
    ``tools/test.py`` refuses it, before any image is read, unless
    ``--allow-training-images``."""
    from conftest import run_cli
    from mmengine.config import Config
    from test_export_onnx import lesion_image
    cfg = Config.fromfile(str(tiny_config))
    checkpoint = make_lesion_checkpoint(
        str(tiny_config), tmp_path / 'model.pth', lesion_image(256, 256, 0),
        meta=dict(cfg=cfg.pretty_text))
    train_split = tiny_isic / 'splits' / 'lightweight_train.txt'
    scored = tiny_isic / 'splits' / 'official_val.txt'
    scored_ids = scored.read_text().split()
    shared = [i for i in scored_ids
              if i in set(train_split.read_text().split())]
    assert 0 < len(shared) < len(scored_ids)
    out, plot = tmp_path / 'errors.json', tmp_path / 'errors.png'
    argv = [str(tiny_config), str(checkpoint), '--out', str(out), '--plot',
            str(plot), '--cfg-options',
            'test_dataloader.dataset.ann_file=splits/official_val.txt']
    code, err = run_cli(tool.main, argv, capsys)
    assert (code, err.splitlines()[-1]) == (2, (
        f'ERROR: checkpoint {checkpoint} was trained on {len(shared)} of the '
        f'{len(scored_ids)} images that {tiny_config} scores ({scored}: '
        f'{", ".join(shared[:3])}); its training split is {train_split} '
        "(its training config, meta['cfg']). Test figures on images the "
        'model learned from favour it. Test it on a split it did not train '
        'on, or pass --allow-training-images to score them anyway'))
    assert 'images:' not in err
    assert not out.exists() and not plot.exists()
    # The flag scores them anyway: every image of the split.
    code, err = run_cli(tool.main, argv + ['--allow-training-images'], capsys)
    assert code == 0, err[-2000:]
    assert json.loads(out.read_text())['images'] == len(scored_ids)


def test_a_random_step_in_the_test_pipeline_is_refused(tiny_config,
                                                       tmp_path):
    """A test pipeline that distorts the colours at random: the errors
    were counted on random views of the images, other figures at each
    run, exit 0 (tools/test.py refused it)."""
    from conftest import run_tool_in_process
    from test_export_onnx import lesion_image
    checkpoint = make_lesion_checkpoint(str(tiny_config),
                                        tmp_path / 'model.pth',
                                        lesion_image(256, 256, 0))
    distorted = tmp_path / 'distorted.py'
    distorted.write_text(
        f"_base_ = '{tiny_config}'\n"
        'test_dataloader = dict(dataset=dict(pipeline=['
        "dict(type='LoadImageFromFile'), "
        "dict(type='Resize', scale=(64, 64), keep_ratio=False), "
        "dict(type='LoadAnnotations'), dict(type='PhotoMetricDistortion'), "
        "dict(type='PackSegInputs')]))\n")
    out = tmp_path / 'errors.json'
    run = run_tool_in_process(tool.__file__, distorted, checkpoint,
                              '--out', out)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr.strip().splitlines()[-1].startswith(
        f'ERROR: test_dataloader.dataset.pipeline[3] of {distorted}: '
        'PhotoMetricDistortion draws at random (a training augmentation); '
        'in the test pipeline it would score a random view of each image')
    assert not out.exists()
    assert '| distance from centre |' not in run.stdout


def test_a_ring_without_lesion_is_named_not_printed_as_nan():
    """A lesion in the middle only: the outer ring has no lesion pixels,
    so its missed rate is undefined; the table printed ``nan %``."""
    errors = ErrorByPosition(rings=5)
    lesion = disc(40, 8)
    errors.update(lesion, lesion, name='centred')
    table = error_table(errors.summary())
    corners = table.splitlines()[-3]
    assert corners == '| 0.8-1.0 | 0.0 % | no lesion | 0.0 % |'
    # A perfect prediction has no wrong pixels to share out.
    assert table.endswith('; no pixel is wrong.\n')
    assert 'nan' not in table


def test_a_split_without_lesion_pixels_is_said_so_not_printed_as_nan():
    """Images without lesion pixels (the lesion share of every ring is
    0 / 0) printed ``nan %`` in each ring's lesion share, ``pooled IoU
    nan`` when nothing was predicted either, and ``1 images``."""
    errors = ErrorByPosition(rings=2)
    errors.update(np.zeros((16, 16), bool), np.zeros((16, 16), bool),
                  name='clear')
    table = error_table(errors.summary())
    assert table.splitlines()[2] == (
        '| 0.0-0.5 | no lesion pixels | no lesion | 0.0 % |')
    assert table.endswith('\n1 image, no pooled IoU (no lesion pixel, true '
                          'or predicted); no pixel is wrong.\n')
    assert 'nan' not in table
    # A false lesion in one image: the one image that holds the errors.
    errors.update(disc(16, 4), np.zeros((16, 16), bool), name='false')
    table = error_table(errors.summary(worst=1))
    assert 'no lesion pixels' in table.splitlines()[2]
    assert table.endswith('\n2 images, pooled IoU 0.00 at the original size '
                          '(IoU_orig of tools/test.py); missed lesion is 0 % '
                          'of the wrong pixels, and the 1 image with the '
                          'most wrong pixels holds 100 % of them.\n')


def test_the_plot_title_says_at_which_size_each_iou_is():
    """The ``--plot`` title said ``pooled IoU X`` alone: the rings' IoU at
    the original size (``tools/test.py``'s IoU_orig), read beside test.py's
    headline IoU (at the evaluator's low_res_size) as that figure. It says
    the size of each now, as the printed table does."""
    from mmseg_dsnet.analysis.plots import error_plot_title
    counter = ErrorByPosition(rings=2)
    counter.update(disc(16, 4), disc(16, 6))
    summary = counter.summary()
    iou = 100 * disc(16, 4).sum() / disc(16, 6).sum()
    assert summary['iou'] == pytest.approx(iou)
    summary.update(low_res_size=[8, 8], iou_low_res=40.5)
    assert error_plot_title(summary, 'cfg.py (m.pth):\nval.txt') == (
        f'cfg.py (m.pth):\nval.txt\n1 image, pooled IoU {iou:.2f} at the '
        'original size, 40.50 at 8x8')
    # No lesion and no prediction anywhere: no IoU to give.
    counter = ErrorByPosition(rings=2)
    counter.update(np.zeros((8, 8), bool), np.zeros((8, 8), bool))
    assert error_plot_title(counter.summary(), 't') == 't\n1 image'


def test_the_plot_names_the_data_set_it_scored(tiny_config, tiny_isic,
                                               tmp_path):
    """The ``--plot`` title named the split file as the config gives it
    (``splits/...txt``): the figure of another data root given with
    ``--cfg-options``, or of the synthetic stand-in set, whose split files
    bear the real sets' names, read as the config's data. It names the
    split file under its data root and a synthetic set as such, as
    ``threshold_sweep.py``'s plot does."""
    import shutil

    from mmengine.config import Config
    from PIL import Image
    from test_export_onnx import lesion_image

    from mmseg_dsnet.datasets.synthetic_fallback import SYNTHETIC_MARKER
    checkpoint = make_lesion_checkpoint(str(tiny_config),
                                        tmp_path / 'model.pth',
                                        lesion_image(256, 256, 0))
    other = tmp_path / 'other_set'
    shutil.copytree(tiny_isic, other)
    (other / SYNTHETIC_MARKER).write_text('synthetic\n')
    split = Config.fromfile(tiny_config).test_dataloader.dataset.ann_file
    plot = tmp_path / 'rings.png'
    summary = tool.main([
        str(tiny_config), str(checkpoint), '--rings', '2', '--plot',
        str(plot), '--cfg-options',
        f'test_dataloader.dataset.data_root={other}'
    ])
    with Image.open(plot) as image:
        caption = image.text['Title']
    assert caption.startswith(f'{tiny_config} ({checkpoint}): '
                              f'{other / split} {summary["images"]} images, '
                              'SYNTHETIC set, pooled IoU ')


def test_ignored_lesion_pixels_are_not_counted_as_found():
    """A 4x4 picture, lesion in its two left columns, everything called
    lesion, the first column ignored: 4 lesion pixels found (column 1), 8
    background pixels called lesion (columns 2 and 3), so the IoU is
    4 / 12 (mutation testing: the found pixels counted with the ignored
    column, 8 / 16, passed)."""
    gt = np.zeros((4, 4), bool)
    gt[:, :2] = True
    valid = np.ones((4, 4), bool)
    valid[:, 0] = False
    errors = ErrorByPosition(rings=2)
    errors.update(np.ones((4, 4), bool), gt, valid, name='a')
    summary = errors.summary()
    assert summary['per_image'][0]['hit'] == 4
    assert summary['per_image'][0]['false'] == 8
    assert summary['iou'] == pytest.approx(100 * 4 / 12)


def test_a_wrapped_test_loader_is_named_by_its_datasets(tiny_config,
                                                         tiny_isic, tmp_path,
                                                         capsys):
    """A test loader whose dataset is a wrapper (a ConcatDataset of one
    split) names no split file itself: every image was scored and the
    tool ended in an AttributeError (``ann_file``) before its table, with
    no figures. Now the table is headed by its datasets' split files."""
    from mmengine.config import Config
    from test_export_onnx import lesion_image
    checkpoint = make_lesion_checkpoint(str(tiny_config),
                                        tmp_path / 'model.pth',
                                        lesion_image(256, 256, 0))
    config = Config.fromfile(str(tiny_config))
    config.test_dataloader.dataset = dict(
        type='ConcatDataset', datasets=[config.test_dataloader.dataset])
    wrapped = tmp_path / 'wrapped.py'
    config.dump(str(wrapped))
    split = Config.fromfile(str(tiny_config)).test_dataloader.dataset.ann_file
    summary = tool.main([str(wrapped), str(checkpoint)])
    assert (f'{wrapped} ({checkpoint}), {tiny_isic}/{split}:\n'
            in capsys.readouterr().out)
    assert summary['images'] == len((tiny_isic / split).read_text().split())


def test_rings_of_a_count_that_ten_does_not_divide_are_named_apart(
        tmp_path, monkeypatch):
    """``--rings 12``: the table and the plot wrote each bound with one
    decimal, so the third ring (1/6 to 1/4) read ``0.2-0.2`` and the
    second ``0.1-0.2``. Each name now gives its bounds exactly where a few
    decimals can (quarters, eighths), else rounded finely enough to keep
    the names apart (twelfths)."""
    from matplotlib.axes import Axes

    from mmseg_dsnet.analysis.plots import plot_error_by_position
    lesion = disc(48, 12)
    for rings, third in ((12, '0.167-0.250'), (4, '0.50-0.75'),
                         (8, '0.250-0.375'), (5, '0.4-0.6')):
        errors = ErrorByPosition(rings=rings)
        errors.update(disc(48, 10), lesion, name='centred')
        summary = errors.summary()
        names = [line.split(' | ')[0][2:]
                 for line in error_table(summary).splitlines()[2:]
                 if line.startswith('| ')]
        assert len(names) == rings == len(set(names))
        assert names[2] == third
        # Every name's bounds within rounding of the ring's own.
        for name, ring in zip(names, summary['rings']):
            inner, outer = map(float, name.split('-'))
            places = len(name.split('-')[0].split('.')[1])
            assert inner == pytest.approx(ring['inner'],
                                          abs=0.5 * 10**-places)
            assert outer == pytest.approx(ring['outer'],
                                          abs=0.5 * 10**-places)
    # The plot's bars are named as the table's rows.
    ticks = []
    set_xticks = Axes.set_xticks

    def record_ticks(self, positions, labels=None, **kwargs):
        ticks.append(list(labels))
        return set_xticks(self, positions, labels, **kwargs)

    monkeypatch.setattr(Axes, 'set_xticks', record_ticks)
    errors = ErrorByPosition(rings=12)
    errors.update(disc(48, 10), lesion, name='centred')
    summary = errors.summary()
    plot_error_by_position(summary, str(tmp_path / 'rings.png'), 'title')
    assert ticks == [[line.split(' | ')[0][2:]
                      for line in error_table(summary).splitlines()[2:14]]]
    assert ticks[0][1:3] == ['0.083-0.167', '0.167-0.250']
