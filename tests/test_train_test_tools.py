"""End-to-end: tools/train.py, --resume, tools/test.py, inference and
checkpoint safety on a real checkpoint written by our training."""
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import (REPO, load_tool, run_cli, run_tool_in_process,
                      run_tool_process, write_tiny_config,
                      write_wrapped_config)

PY = sys.executable
GET_FLOPS = 'tools/analysis_tools/get_flops.py'
SEGFORMER = 'configs/segformer/segformer_mit-b0_isic2017.py'


@pytest.fixture(scope='module')
def trained(tiny_isic, tmp_path_factory):
    """Two epochs of DSNet on the tiny set, through tools/train.py."""
    tmp = tmp_path_factory.mktemp('train')
    cfg = write_tiny_config(tmp / 'tiny_dsnet.py', tiny_isic, epochs=2)
    work_dir = tmp / 'work'
    run_tool_process('tools/train.py', cfg, '--work-dir', work_dir, check=True)
    return cfg, work_dir


class EvilPayload:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker, ))


@pytest.mark.slow
def test_training_writes_checkpoints_and_logs(trained):
    _, work_dir = trained
    assert (work_dir / 'epoch_2.pth').is_file()
    assert (work_dir / 'last_checkpoint').is_file()
    assert list(work_dir.glob('best_IoU_epoch_*.pth'))
    logs = list(work_dir.glob('*/vis_data/scalars.json'))
    assert logs, 'no scalar log written'
    lines = [json.loads(line) for line in logs[0].read_text().splitlines()]
    assert any('loss' in line for line in lines)
    assert any('IoU' in line for line in lines)


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(trained):
    cfg, work_dir = trained
    proc = run_tool_process('tools/train.py', cfg, '--work-dir', work_dir,
                            '--resume', '--cfg-options',
                            'train_cfg.max_epochs=3', check=True)
    out = proc.stdout + proc.stderr
    assert 'resumed epoch: 2' in out, out[-2000:]
    assert (work_dir / 'epoch_3.pth').is_file()
    from mmseg_dsnet.compat import safe_torch_load
    ckpt = safe_torch_load(str(work_dir / 'epoch_3.pth'))
    assert ckpt['meta']['epoch'] == 3


@pytest.mark.slow
def test_test_tool_writes_lesion_metrics(trained, tiny_isic, tmp_path):
    """Also the masks of ``--out`` (mmseg's flag; LesionMetric refused the
    key with a misleading "check the spelling" error)."""
    import csv
    import os.path as osp
    import statistics

    import numpy as np
    from PIL import Image
    cfg, work_dir = trained
    out = tmp_path / 'metrics.json'
    masks = tmp_path / 'masks'
    run_tool_in_process('tools/test.py', cfg, work_dir / 'epoch_2.pth',
                        '--work-dir', tmp_path / 'test', '--metrics-out', out,
                        '--out', masks, check=True)
    metrics = json.loads(out.read_text())['metrics']
    for key in ('IoU', 'DSC', 'Acc', 'Sen', 'Spe', 'IoU_orig', 'mIoU_img',
                'TJ', 'mIoU', 'mDice'):
        assert 0.0 <= metrics[key] <= 100.0, key
    iou, dsc = metrics['IoU'] / 100, metrics['DSC'] / 100
    assert dsc == pytest.approx(2 * iou / (1 + iou), abs=2e-4)
    # One mask per test image, at its size: the masks the figures count.
    from mmengine.config import Config
    split = Config.fromfile(cfg).test_dataloader.dataset.ann_file
    listed = (tiny_isic / split).read_text().split()
    stems = sorted(listed)
    assert sorted(p.stem for p in masks.glob('*.png')) == stems
    # Beside them, each image's figures, in the split's order.
    with open(masks / 'per_image.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [osp.splitext(row['image'])[0] for row in rows] == listed
    assert sorted(p.name for p in masks.iterdir()) == sorted(
        [f'{stem}.png' for stem in stems] + ['per_image.csv'])
    counts = np.zeros(3)
    for stem, row in zip(listed, rows):
        mask = np.asarray(Image.open(masks / f'{stem}.png'))
        truth = np.asarray(Image.open(
            next((tiny_isic / 'masks').glob(f'{stem}*')))) > 0
        assert mask.shape == truth.shape and set(np.unique(mask)) <= {0, 255}
        pred = mask == 255
        image = [(pred & truth).sum(), (pred & ~truth).sum(),
                 (~pred & truth).sum()]
        assert (int(row['lesion_pixels']), int(row['predicted_pixels']),
                int(row['overlap_pixels'])) == (truth.sum(), pred.sum(),
                                                image[0])
        assert float(row['IoU']) == pytest.approx(
            100 * image[0] / sum(image) if sum(image) else 100, abs=0.006)
        counts += image
    assert 100 * counts[0] / counts.sum() == pytest.approx(
        metrics['IoU_orig'], abs=1e-3)
    assert statistics.mean(float(row['IoU']) for row in rows) == \
        pytest.approx(metrics['mIoU_img'], abs=0.01)
    # A folder that holds files is refused before any work.
    proc = run_tool_in_process('tools/test.py', cfg, work_dir / 'epoch_2.pth',
                               '--work-dir', tmp_path / 'again', '--out',
                               masks)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f'ERROR: Cannot write --out {masks}: the folder already holds files. '
        'Nothing was started; choose a new or empty folder for --out.')
    assert not (tmp_path / 'again').exists()


@pytest.mark.slow
def test_test_tool_with_tta_is_recorded_and_not_collected(trained, tmp_path):
    """``--tta`` used to fail with a traceback (no tta_pipeline); with
    mmseg's SegTTAModel its figures would have been those of one view."""
    import shutil

    from mmseg_dsnet.utils.errors import UserError
    cfg, trained_dir = trained
    work_dir = tmp_path / 'work'
    shutil.copytree(trained_dir, work_dir)
    run_tool_process('tools/test.py', cfg, work_dir / 'epoch_2.pth',
                        '--work-dir', work_dir, '--tta', check=True)
    record = json.loads((work_dir / 'test_metrics.json').read_text())
    assert record['test_time_augmentation'] is True
    plain = tmp_path / 'plain.json'
    run_tool_process('tools/test.py', cfg, work_dir / 'epoch_2.pth',
                        '--work-dir', tmp_path / 'plain', '--metrics-out',
                        plain,
                        check=True)
    assert json.loads(plain.read_text())['test_time_augmentation'] is False
    # Three views averaged: other figures than one pass, same scale.
    assert 0 <= record['metrics']['IoU'] <= 100
    lb = load_tool('analysis_tools/leaderboard.py')
    for source in ('tools/test.py metrics file', 'dumped by the runner'):
        with pytest.raises(UserError, match=f'test-time augmentation.*'
                           f'{source}'):
            lb.main(['collect', str(cfg), str(work_dir), '--no-benchmark',
                     '--runs-dir', str(tmp_path / 'runs')])
        # Without test_metrics.json the runner's dump of the test is read.
        (work_dir / 'test_metrics.json').unlink(missing_ok=True)
    assert not (tmp_path / 'runs').exists()


@pytest.mark.slow
def test_test_tool_keeps_files_that_are_not_its_own(trained, tmp_path):
    """``--metrics-out`` naming the checkpoint replaced the weights with
    the metrics after the evaluation, and ``--show-dir`` painted into a
    folder that held an earlier test's paintings, both with exit 0."""
    import shutil
    cfg, work_dir = trained
    checkpoint = tmp_path / 'weights.pth'
    shutil.copy(work_dir / 'epoch_2.pth', checkpoint)
    weights = checkpoint.read_bytes()
    for out in (checkpoint, cfg):
        proc = run_tool_in_process('tools/test.py', cfg, checkpoint,
                                   '--work-dir', tmp_path / 'work',
                                   '--metrics-out', out)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1] == (
            f'ERROR: --metrics-out {out} holds a file that is not a metrics '
            'record (tools/test.py replaces only the metrics of an earlier '
            'test); give --metrics-out a file name of its own')
    assert checkpoint.read_bytes() == weights
    assert not (tmp_path / 'work').exists()
    show = tmp_path / 'show'
    (show / 'vis_data').mkdir(parents=True)
    (show / 'vis_data' / 'earlier.png').write_bytes(b'')
    proc = run_tool_in_process('tools/test.py', cfg, checkpoint, '--work-dir',
                               tmp_path / 'work', '--show-dir', show)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f'ERROR: Cannot write --show-dir {show}: the folder already holds '
        'files. Nothing was started; choose a new or empty folder for '
        '--show-dir.')
    assert not (tmp_path / 'work').exists()


@pytest.mark.slow
def test_test_options_are_recorded_and_not_collected(trained, tmp_path):
    """A test with a decision threshold of 0.1 given in ``--cfg-options``
    wrote figures labelled with the bare config, which ``leaderboard.py
    collect`` took as the config's own."""
    import shutil

    from mmseg_dsnet.leaderboard.board import result_changing_options
    from mmseg_dsnet.utils.errors import UserError
    cfg, trained_dir = trained
    work_dir = tmp_path / 'work'
    shutil.copytree(trained_dir, work_dir)
    options = ['model.decode_head.threshold=0.1',
               'test_evaluator.threshold=0.1',
               'test_dataloader.num_workers=0']
    run_tool_in_process('tools/test.py', cfg, work_dir / 'epoch_2.pth',
                        '--work-dir', work_dir, '--cfg-options', *options,
                        check=True)
    record = json.loads((work_dir / 'test_metrics.json').read_text())
    assert record['cfg_options'] == {'model.decode_head.threshold': 0.1,
                                     'test_evaluator.threshold': 0.1,
                                     'test_dataloader.num_workers': 0}
    lb = load_tool('analysis_tools/leaderboard.py')
    with pytest.raises(UserError, match=(
            'tested with --cfg-options model.decode_head.threshold=0.1 '
            r'test_evaluator.threshold=0.1 \(tools/test.py metrics file')):
        lb.main(['collect', str(cfg), str(work_dir), '--no-benchmark',
                 '--runs-dir', str(tmp_path / 'runs')])
    assert not (tmp_path / 'runs').exists()
    # Where the data is and how it is read change no figure.
    assert result_changing_options({
        'test_dataloader.dataset.data_root': 'elsewhere',
        'test_dataloader.dataset.ann_file': 'splits/x.txt',
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False}) == []


@pytest.mark.slow
def test_inference_from_checkpoint(trained, tiny_isic):
    import mmseg_dsnet  # noqa: F401
    from mmseg.apis import inference_model, init_model
    cfg, work_dir = trained
    model = init_model(str(cfg), str(work_dir / 'epoch_2.pth'), device='cpu')
    name = (tiny_isic / 'splits' / 'lightweight_test.txt').read_text().split()[0]
    image = str(tiny_isic / 'images' / f'{name}.jpg')
    pred = inference_model(model, image).pred_sem_seg.data
    assert tuple(pred.shape[-2:]) == (48, 64)
    assert set(torch.unique(pred).tolist()) <= {0, 1}


@pytest.mark.slow
def test_malicious_checkpoint_is_refused(trained, tmp_path):
    from mmengine.runner import CheckpointLoader
    from mmseg_dsnet.compat import UnsafeCheckpointError
    marker = tmp_path / 'code_ran'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': EvilPayload(str(marker))}, evil)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        CheckpointLoader.load_checkpoint(str(evil), map_location='cpu')
    assert not marker.exists()
    cfg, _ = trained
    proc = run_tool_in_process('tools/test.py', cfg, evil, '--work-dir',
                               tmp_path / 'w')
    assert proc.returncode != 0
    assert 'Refusing to load checkpoint' in proc.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_checkpoint_loads_with_weights_only(trained):
    """Our allow-list covers everything mmengine writes: a plain
    weights_only load (no custom loader) succeeds after import."""
    import mmseg_dsnet  # noqa: F401
    _, work_dir = trained
    ckpt = torch.load(work_dir / 'epoch_2.pth', weights_only=True,
                      map_location='cpu')
    assert 'message_hub' in ckpt and 'optimizer' in ckpt
    assert all(isinstance(v, torch.Tensor) for v in ckpt['state_dict'].values())


def test_get_flops_json_and_text():
    proc = run_tool_in_process(GET_FLOPS, SEGFORMER, '--shape', '256', '256',
                               '--json', check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # SegFormer-B0 with a 2-class head: ~3.7 M parameters.
    assert 3.5e6 < result['params'] < 3.9e6
    assert result['flops'] > 1e9
    text = run_tool_in_process(GET_FLOPS, SEGFORMER, check=True).stdout
    assert 'Flops: ' in text and 'Params: ' in text and '1 multiply-add' in text
    assert f'Config: {SEGFORMER}\n' in text
    # --json prints the JSON object alone: a table asked for beside it
    # was dropped, exit 0.
    both = run_tool_in_process(GET_FLOPS, SEGFORMER, '--json', '--show-table')
    assert both.returncode == 2 and not both.stdout
    assert '--show-table prints text tables' in both.stderr


def test_get_flops_labels_and_refuses_cfg_options(capsys):
    from mmseg_dsnet.engine.cli_errors import UserError
    flops = load_tool('analysis_tools/get_flops.py')
    dsnet = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    # Only cfg.model is counted: a key outside it (the config's variables
    # were resolved when it was read) printed the unchanged model's count.
    for key in ('crop_size=(512,512)', 'modle.backbone.widths=[8]'):
        with pytest.raises(UserError, match='only the model is counted'):
            flops.main([dsnet, '--cfg-options', key])
    # Nor is the preprocessor: its size printed beside 64x64 figures.
    with pytest.raises(UserError, match='the data preprocessor is not '
                       'counted'):
        flops.main([dsnet, '--shape', '64', '--cfg-options',
                    'model.data_preprocessor.size=(512,512)'])
    # Overrides of the model are part of the result's label.
    widths = '[16,32,48,64,80]'
    capsys.readouterr()
    flops.main([dsnet, '--shape', '64', '--json', '--cfg-options',
                f'model.backbone.widths={widths}',
                f'model.decode_head.in_channels={widths}'])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result['cfg_options'] == {
        'model.backbone.widths': [16, 32, 48, 64, 80],
        'model.decode_head.in_channels': [16, 32, 48, 64, 80]}


def test_get_flops_refuses_test_and_train_settings(capsys):
    """``model.test_cfg`` and ``model.train_cfg`` are not counted either:
    ``model.test_cfg.mode=slide`` was printed as a config option beside
    the figures of one whole-image pass, exit 0."""
    from mmseg_dsnet.analysis.flops import get_flops
    from mmseg_dsnet.engine.cli_errors import UserError
    flops = load_tool('analysis_tools/get_flops.py')
    dsnet = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    capsys.readouterr()
    with pytest.raises(UserError, match=r'--cfg-options model\.test_cfg\.'
                       'mode: the test-time settings are not counted'):
        flops.main([dsnet, '--shape', '64', '--cfg-options',
                    'model.test_cfg.mode=slide',
                    'model.test_cfg.crop_size=(32,32)',
                    'model.test_cfg.stride=(16,16)'])
    with pytest.raises(UserError, match=r'model\.train_cfg\.x: the '
                       'training settings are not counted'):
        flops.main([dsnet, '--shape', '64', '--cfg-options',
                    'model.train_cfg.x=1'])
    assert 'Flops' not in capsys.readouterr().out
    # The same parts set through a dict under ``model`` (the API).
    with pytest.raises(UserError, match='model.test_cfg: the test-time'):
        get_flops(dsnet, (64, 64), {'model': dict(test_cfg=dict(
            mode='slide', crop_size=(32, 32), stride=(16, 16)))})


def test_get_flops_labels_a_deploy_config(tmp_path, capsys):
    """A deploy config (``deploy=True``, as reparameterize.py writes it):
    the re-parameterised model's figures were printed as the model's, above
    a "Deployed (re-parameterised) model" section with the same figures,
    exit 0; now they are labelled as the re-parameterised model's."""
    from mmseg_dsnet.deploy.deploy_checkpoint import deploy_config
    from mmseg_dsnet.engine.preflight import load_config
    dsnet = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    deploy = tmp_path / 'dsnet_deploy.py'
    deploy.write_text(deploy_config(load_config(dsnet)).dump())
    flops = load_tool('analysis_tools/get_flops.py')
    trained = flops.main([dsnet, '--shape', '64', '--json'])
    capsys.readouterr()
    result = flops.main([str(deploy), '--shape', '64'])
    text = capsys.readouterr().out
    assert result['deploy_config'] is True and 'deploy' not in result
    assert result['params'] == trained['deploy']['params']
    assert result['flops'] == trained['deploy']['flops']
    assert ('Model: re-parameterised (the config sets deploy=True); count '
            'its training config for the model as trained\n') in text
    assert 'Deployed (re-parameterised) model' not in text
    assert 'deploy_config' not in trained


def test_get_flops_titles_its_per_module_tables(capsys):
    """``--show-table`` printed the table of the model as trained and the
    deployed model's (its ``model`` row at 0.242 M) one under the other
    with nothing saying which was which."""
    flops = load_tool('analysis_tools/get_flops.py')
    dsnet = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    capsys.readouterr()
    result = flops.main([dsnet, '--shape', '64', '--show-table'])
    lines = capsys.readouterr().out.splitlines()
    titles = [i for i, line in enumerate(lines)
              if line.startswith('Per module, ')]
    assert [lines[i] for i in titles] == [
        'Per module, the model as trained:',
        'Per module, the deployed (re-parameterised) model:']
    totals = [line for line in lines if line.startswith('| model ')]
    # Each title heads the table of its model.
    assert titles[0] < lines.index(totals[0]) < titles[1] < lines.index(
        totals[1])
    assert f'{result["params"] / 1e6:.3f}M' in totals[0]
    assert f'{result["deploy"]["params"] / 1e6:.3f}M' in totals[1]


def test_a_partly_re_parameterised_config_is_refused(capsys):
    """``--cfg-options model.backbone.deploy=True`` alone: the head stayed
    as trained, and the figures of that mix (0.259 M, 0.277 G at 256x256)
    were labelled as the re-parameterised model's by get_flops.py and
    benchmark.py, exit 0."""
    from mmseg_dsnet.analysis.benchmark import benchmark
    from mmseg_dsnet.engine.cli_errors import UserError
    from mmseg_dsnet.engine.preflight import load_config
    flops = load_tool('analysis_tools/get_flops.py')
    dsnet = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    capsys.readouterr()
    for part, rest in (('backbone', 'decode_head'),
                       ('decode_head', 'backbone')):
        with pytest.raises(UserError, match=(
                rf'model\.{part}\.deploy=True re-parameterises only part '
                rf'of the model \(model\.{rest} as trained\)')):
            flops.main([dsnet, '--shape', '64', '--cfg-options',
                        f'model.{part}.deploy=True'])
    assert 'Flops' not in capsys.readouterr().out
    cfg = load_config(dsnet)
    cfg.model.backbone.deploy = True
    with pytest.raises(UserError, match='only part of the model'):
        benchmark(cfg, shape=(64, 64), batch_size=1, warmup=1, repeat=1,
                  throughput_repeat=1)
    # --deploy said such a model was re-parameterised already.
    bench = load_tool('analysis_tools/benchmark.py')
    with pytest.raises(UserError, match='only part of the model'):
        bench.main([dsnet, '--shape', '64', '--deploy', '--cfg-options',
                    'model.backbone.deploy=True'])
    # Both parts: the re-parameterised model, counted as before.
    whole = flops.main([dsnet, '--shape', '64', '--json', '--cfg-options',
                        'model.backbone.deploy=True',
                        'model.decode_head.deploy=True'])
    trained = flops.main([dsnet, '--shape', '64', '--json'])
    assert whole['deploy_config'] is True
    assert whole['params'] == trained['deploy']['params']
    assert whole['flops'] == trained['deploy']['flops']


def test_get_flops_and_benchmark_default_to_the_configs_input_size(capsys):
    """Without --shape both counted or timed the model at 256x256 whatever
    the config: the 128 px demo model's FLOPs were printed 4x too high
    (``Flops: 0.286G``), exit 0. Now the config's size is the default, and
    figures at another --shape name the config's size beside theirs."""
    demo = str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')
    flops = load_tool('analysis_tools/get_flops.py')
    own = flops.main([demo, '--json'])
    assert own['input_shape'] == [128, 128]
    assert own['config_input_size'] == [128, 128]
    capsys.readouterr()
    other = flops.main([demo, '--shape', '256'])
    text = capsys.readouterr().out
    assert other['flops'] > 3 * own['flops']
    assert ('Input shape: (256, 256) (--shape; the config runs the model '
            'at 128x128)\n') in text
    bench = load_tool('analysis_tools/benchmark.py')
    timing = ['--repeat', '1', '--warmup', '1', '--batch-size', '1',
              '--throughput-repeat', '1', '--threads', '1']
    result = bench.main([demo, *timing, '--json'])
    assert result['shape'] == [128, 128]
    assert result['config_input_size'] == [128, 128]
    capsys.readouterr()
    result = bench.main([demo, *timing, '--shape', '64'])
    assert result['shape'] == [64, 64]
    assert ('input: random 64x64 (--shape; the config runs the model at '
            '128x128)\n') in capsys.readouterr().out


def test_benchmark_shows_its_progress_on_stderr(capsys):
    """The benchmark's calls (minutes on a CPU at the defaults) ran without
    a line. Now a bar on stderr counts them: the warm-up and timed calls
    of the latency, then of the throughput (half the warm-up, at least 2),
    up to their sum and not past it; with --json, stdout holds the JSON
    alone."""
    import json
    demo = str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')
    bench = load_tool('analysis_tools/benchmark.py')
    bench.main([demo, '--repeat', '3', '--warmup', '2', '--batch-size', '1',
                '--throughput-repeat', '2', '--threads', '1', '--json'])
    printed, err = capsys.readouterr()
    json.loads(printed)
    calls = 2 + 3 + 2 + 2
    assert 'timing as trained: 100%' in err
    assert f'| {calls}/{calls} [' in err and f'{calls + 1}/' not in err


def test_benchmark_labels_its_figures_with_the_options_and_weights(
        tmp_path, capsys):
    """``benchmark.py CONFIG --cfg-options model...`` timed the changed
    model, and its JSON and text named the config alone (as get_flops.py
    did before it kept them), nor which checkpoint was timed, exit 0."""
    demo = str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')
    bench = load_tool('analysis_tools/benchmark.py')
    timing = ['--repeat', '1', '--warmup', '1', '--batch-size', '1',
              '--throughput-repeat', '1', '--threads', '1']
    option = 'model.decode_head.use_gate=False'
    capsys.readouterr()
    result = bench.main([demo, *timing, '--json', '--cfg-options', option])
    written = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert written['cfg_options'] == {'model.decode_head.use_gate': False}
    assert written['checkpoint'] is None and result == written
    # The model timed, with the option in it, for leaderboard.py collect.
    assert written['model_config']['decode_head']['use_gate'] is False
    assert written['model_config']['type'] == 'EncoderDecoder'
    bench.main([demo, *timing, '--cfg-options', option])
    assert ("Config options: {'model.decode_head.use_gate': False}\n"
            in capsys.readouterr().out)
    plain = bench.main([demo, *timing, '--json'])
    assert 'cfg_options' not in plain
    assert plain['model_config']['decode_head']['use_gate'] is True


def test_benchmark_refuses_options_that_change_nothing_timed(capsys):
    """``benchmark.py CONFIG --cfg-options model.test_cfg.mode=slide`` (or
    ``test_dataloader.batch_size=8``) timed one whole-image pass of the
    network at the usual batch and printed the figures under ``Config
    options: {'model.test_cfg.mode': 'slide', ...}``, exit 0, as if the
    option had changed what was timed."""
    import re

    from mmseg_dsnet.analysis.benchmark import check_timed_options
    from mmseg_dsnet.utils.errors import UserError
    demo = str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')
    bench = load_tool('analysis_tools/benchmark.py')
    timing = ['--repeat', '1', '--warmup', '1', '--batch-size', '1',
              '--throughput-repeat', '1', '--threads', '1']
    capsys.readouterr()
    for option, message in (
            ('model.test_cfg.mode=slide', 'the test-time settings are not '
             'timed'),
            ('model.train_cfg.x=1', 'the training settings are not timed'),
            ('test_dataloader.batch_size=8', 'the batch sizes, repeats and '
             'threads are its own options'),
            ('model.data_preprocessor.mean=[0,0,0]', 'the data '
             'preprocessor does not run')):
        key = option.split('=')[0]
        with pytest.raises(UserError, match=(
                rf'--cfg-options {re.escape(key)}: .*{message}.*so this '
                'key would change nothing')):
            bench.main([demo, *timing, '--cfg-options', option])
    assert 'Latency' not in capsys.readouterr().out
    # The test set only matters when it is timed (--data), its pipeline
    # only when it sets the size (no --shape); dict values alike.
    with pytest.raises(UserError, match='dataset.data_root: the benchmark'):
        check_timed_options({'test_dataloader.dataset.data_root': 'x'})
    with pytest.raises(UserError, match=r'model\.test_cfg\.mode: the test'):
        check_timed_options({'model': {'test_cfg': {'mode': 'slide'}}})
    with pytest.raises(UserError, match='dataset.pipeline: the benchmark'):
        check_timed_options({'test_dataloader.dataset.pipeline': []},
                            shape=(64, 64))
    check_timed_options({'test_dataloader.dataset.pipeline': []})
    check_timed_options({'test_dataloader.dataset.data_root': 'x',
                         'model.data_preprocessor.std': [1, 1, 1]}, data=True)
    # What is timed stays allowed, and labelled.
    result = bench.main([demo, *timing, '--json', '--cfg-options',
                         'model.decode_head.use_gate=False'])
    assert result['cfg_options'] == {'model.decode_head.use_gate': False}


def test_benchmark_labels_a_deploy_config_as_re_parameterised(tmp_path,
                                                             capsys):
    """A deploy config (``deploy=True``, as reparameterize.py writes it)
    was timed as ``Model: CONFIG`` with ``"deploy": false`` in the JSON,
    the re-parameterised model's figures read as those of the model as
    trained, exit 0; ``--deploy`` on it said the model had no
    re-parameterisable block."""
    from mmseg_dsnet.deploy.deploy_checkpoint import deploy_config
    from mmseg_dsnet.engine.cli_errors import UserError
    from mmseg_dsnet.engine.preflight import load_config
    demo = str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')
    deploy = tmp_path / 'dsnet_deploy.py'
    deploy.write_text(deploy_config(load_config(demo)).dump())
    bench = load_tool('analysis_tools/benchmark.py')
    timing = ['--repeat', '1', '--warmup', '1', '--batch-size', '1',
              '--throughput-repeat', '1', '--threads', '1']
    capsys.readouterr()
    result = bench.main([str(deploy), *timing])
    assert result['deploy'] is True and result['deploy_config'] is True
    printed, err = capsys.readouterr()
    assert (f'Model: {deploy} (re-parameterised: the config sets '
            'deploy=True)\n') in printed
    # The progress bar names the form timed too.
    assert 'timing re-parameterised: 100%' in err
    assert 'timing as trained' not in err
    for option in ('--deploy', '--compare-deploy'):
        with pytest.raises(UserError, match=f'{option}: .* is a deploy '
                           'config'):
            bench.main([str(deploy), *timing, option])
    trained = bench.main([demo, *timing, '--json'])
    assert trained['deploy'] is False and 'deploy_config' not in trained


def test_benchmark_compare_deploy_says_what_it_timed(capsys):
    """``benchmark.py CONFIG --compare-deploy`` printed its milliseconds
    and speed-up with nothing saying the config, device, threads or input
    size they were measured at (a --shape other than the config's
    included), exit 0."""
    demo = str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')
    bench = load_tool('analysis_tools/benchmark.py')
    capsys.readouterr()
    bench.main([demo, '--repeat', '1', '--warmup', '1', '--batch-size', '1',
                '--throughput-repeat', '1', '--threads', '1', '--shape', '64',
                '--compare-deploy'])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f'Model: {demo}'
    assert lines[1].startswith('Device: cpu (') and lines[1].endswith(
        'threads: 1, input: random 64x64 (--shape; the config runs the '
        'model at 128x128)')
    assert lines[2].startswith('As trained: ')
    assert lines[4].startswith('Speed-up (batch 1 median latency')


def test_benchmark_refuses_deploy_with_compare_deploy(capsys):
    """``benchmark.py CONFIG --deploy --compare-deploy`` printed ``Model:
    CONFIG (re-parameterised)`` above ``As trained: ...`` and
    ``Re-parameterised: ...``, exit 0: the label said the figures were of
    the re-parameterised model."""
    from mmseg_dsnet.utils.errors import UserError
    demo = str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')
    bench = load_tool('analysis_tools/benchmark.py')
    capsys.readouterr()
    with pytest.raises(UserError, match='--deploy and --compare-deploy: '
                       '.*give one of them'):
        bench.main([demo, '--repeat', '1', '--warmup', '1', '--batch-size',
                    '1', '--throughput-repeat', '1', '--threads', '1',
                    '--deploy', '--compare-deploy'])
    assert 'Model:' not in capsys.readouterr().out


def test_get_flops_refuses_a_config_without_a_model():
    """A dataset or schedule base config ended in an AttributeError
    traceback (``'ConfigDict' object has no attribute 'model'``), exit 1."""
    config = 'configs/_base_/datasets/isic_256x256.py'
    run = run_tool_in_process(GET_FLOPS, config)
    assert run.returncode == 2, run.output[-2000:]
    assert 'Traceback' not in run.stderr and 'Flops' not in run.stdout
    assert run.stderr.strip().splitlines()[-1] == (
        f'ERROR: config file {config} sets no model: the count builds the '
        'model of the config; give a model or training config such as '
        'configs/dsnet/dsnet_isic2017.py')


def test_get_flops_refuses_a_shape_the_model_cannot_take():
    from mmseg_dsnet.engine.cli_errors import UserError
    flops = load_tool('analysis_tools/get_flops.py')
    # A size the network refuses (UNet: divisible by 16) was a traceback.
    unet = str(REPO / 'configs/unet/unet-s5-d16_fcn_isic2017.py')
    with pytest.raises(UserError, match='cannot take a 100x100 input'):
        flops.main([unet, '--shape', '100', '--json'])


@pytest.mark.slow
def test_benchmark_json(trained):
    cfg, work_dir = trained
    proc = run_tool_in_process('tools/analysis_tools/benchmark.py', cfg,
                               work_dir / 'epoch_2.pth', '--shape', '64',
                               '64', '--repeat', '5', '--warmup', '1',
                               '--batch-size', '2', '--throughput-repeat',
                               '2', '--threads', '1', '--data', '--json',
                               check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    lat = result['latency_ms']
    assert 0 < lat['min'] <= lat['median'] <= lat['p90'] <= lat['p99']
    assert result['throughput']['img_per_s'] > 0
    assert result['threads'] == 1 and result['input'] == 'test images'


def test_analysis_tools_refuse_bad_arguments_before_any_work(tmp_path):
    from mmseg_dsnet.engine.cli_errors import UserError
    from mmseg_dsnet.engine.preflight import MissingInputError
    missing = str(tmp_path / 'missing.py')
    with pytest.raises(MissingInputError, match='does not exist'):
        load_tool('analysis_tools/get_flops.py').main([missing])
    errors = load_tool('analysis_tools/error_by_position.py')
    with pytest.raises(UserError, match='--rings must be at least 1'):
        errors.main([missing, missing, '--rings', '0'])
    profile = load_tool('analysis_tools/profile_train_step.py')
    config = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    with pytest.raises(MissingInputError, match='does not exist'):
        profile.main([missing, '--device', 'cpu'])
    # A form the CPU cannot run, or a misspelt one, would otherwise be
    # timed as plain eager steps under its name.
    with pytest.raises(UserError, match='CUDA graphs need a CUDA device'):
        profile.main([config, '--device', 'cpu', '--variants', 'eager',
                      'graph+bf16'])
    with pytest.raises(UserError, match='eager[+]chanels_last: 1 unknown '
                       'part chanels_last; known: '):
        profile.main([config, '--device', 'cpu', '--variants',
                      'eager+chanels_last'])
    with pytest.raises(UserError, match='a form is given twice'):
        profile.main([config, '--device', 'cpu', '--variants', 'eager',
                      'channels_last', 'eager'])
    # Without 'graph' a form is eager: the two are one form.
    with pytest.raises(UserError, match='a form is given twice'):
        profile.main([config, '--device', 'cpu', '--variants',
                      'channels_last', 'eager+channels_last'])
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match='CUDA is not available'):
            profile.main([config])
    # A zero batch or step count ended in a traceback after the model was
    # built; a zero-sized shape likewise.
    for option, value in (('--batch-size', '0'), ('--steps', '0'),
                          ('--top', '0')):
        with pytest.raises(UserError, match=f'{option} must be at least 1'):
            profile.main([config, '--device', 'cpu', option, value])
    with pytest.raises(UserError, match='--shape takes 1 or 2 positive'):
        profile.main([config, '--device', 'cpu', '--shape', '0', '128'])
    with pytest.raises(UserError,
                       match='--profile-steps must be at least 0, got -1'):
        profile.main([config, '--device', 'cpu', '--profile-steps', '-1'])
    # A zero batch printed "Throughput (batch 0): 0.0 img/s" with exit 0.
    bench = load_tool('analysis_tools/benchmark.py')
    for option, value in (('--batch-size', '0'), ('--repeat', '0'),
                          ('--throughput-repeat', '0'), ('--threads', '0'),
                          ('--warmup', '-1')):
        with pytest.raises(UserError, match=f'{option} must be at least'):
            bench.main([config, option, value])


def test_benchmark_refuses_a_deploy_form_the_model_lacks(capsys):
    """EGE-UNet and MALUNet have nothing to re-parameterise: ``--deploy``
    labelled the trained model's latency as re-parameterised and
    ``--compare-deploy`` reported a "0.74x speed-up" between two runs of the
    same model, both with exit 0."""
    bench = load_tool('analysis_tools/benchmark.py')
    for name in ('egeunet/egeunet_isic2017.py', 'malunet/malunet_isic2017.py'):
        config = str(REPO / 'configs' / name)
        for option in ('--deploy', '--compare-deploy'):
            code, err = run_cli(bench.main, [config, option, '--repeat', '1'],
                                capsys)
            assert (code, err) == (2, (
                f'ERROR: {option}: {config} builds a model that '
                're-parameterisation leaves unchanged (no re-parameterisable '
                'block, no BatchNorm after a convolution); time it without '
                f'{option}\n'))
            assert capsys.readouterr().out == ''


def test_reparameterization_changes_what_it_folds():
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.models.utils import reparameterization_changes
    register_all_modules()

    def build(name):
        return MODELS.build(Config.fromfile(REPO / 'configs' / name).model)

    assert reparameterization_changes(build('dsnet/dsnet_isic2017.py'))
    assert not reparameterization_changes(build('egeunet/egeunet_isic2017.py'))
    # A plain BatchNorm after a convolution is folded; GroupNorm is not.
    assert reparameterization_changes(torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)))
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),
                                torch.nn.GroupNorm(2, 4))
    assert not reparameterization_changes(plain)
    # Checked on a copy: the model itself is left as it was.
    model = build('dsnet/dsnet_isic2017.py')
    types = [type(m) for m in model.modules()]
    reparameterization_changes(model)
    assert [type(m) for m in model.modules()] == types


def test_benchmark_refuses_a_device_it_cannot_use(tmp_path):
    """``--device cuda`` on a machine without CUDA ended in torch's
    traceback once the model was built."""
    from mmseg_dsnet.engine.cli_errors import UserError
    config = REPO / 'configs/dsnet/dsnet_isic2017.py'
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(
        [PY, 'tools/analysis_tools/benchmark.py', str(config), '--device',
         'cuda', '--json'], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr == ('ERROR: --device cuda: CUDA is not available '
                           'here; pass --device cpu\n')
    assert proc.stdout == ''
    bench = load_tool('analysis_tools/benchmark.py')
    with pytest.raises(UserError, match='--device gpu: not a device; give '
                       'cuda, cuda:N or cpu'):
        bench.main([str(config), '--device', 'gpu'])


def test_benchmark_refuses_threads_on_cuda(monkeypatch):
    """``--device cuda --threads 4``: the thread count sets torch's CPU
    threads, which do not run the timed network, yet it was printed
    (``threads: 4``) and recorded beside the GPU figures, exit 0."""
    import torch

    from mmseg_dsnet.analysis.benchmark import benchmark
    from mmseg_dsnet.engine.cli_errors import UserError
    config = REPO / 'configs/dsnet/dsnet_isic2017.py'
    bench = load_tool('analysis_tools/benchmark.py')
    # As on a machine with CUDA: the refusal comes before anything is built.
    monkeypatch.setattr(bench, 'device_option',
                        lambda name, task: torch.device(name))
    with pytest.raises(UserError, match=r'^--threads 4: it sets the CPU '
                       'threads, and the network is timed on cuda, so it '
                       'would change nothing; leave it out, or time the CPU '
                       'with --device cpu$'):
        bench.main([str(config), '--device', 'cuda', '--threads', '4'])
    with pytest.raises(UserError, match='^threads 4: '):
        benchmark(None, device='cuda:0', threads=4)


def test_benchmark_refuses_a_timing_without_warm_up(monkeypatch, capsys):
    """``--warmup 0``: the first call, with its one-off costs, was timed
    (``--repeat 3``: mean 42 ms and p90 74 ms beside 19 and 21 ms after a
    warm-up), exit 0."""
    from conftest import run_cli
    bench = load_tool('analysis_tools/benchmark.py')

    def timed(*args, **kwargs):
        raise AssertionError('benchmarked')

    monkeypatch.setattr(bench, 'benchmark', timed)
    code, stderr = run_cli(
        bench.main, [REPO / 'configs/dsnet/dsnet_isic2017.py', '--warmup',
                     '0', '--repeat', '3'], capsys)
    assert code == 2
    assert stderr == (
        'ERROR: --warmup must be at least 1, got 0: the first call of a '
        'model pays one-off costs (memory and kernel set-up; torch.compile '
        'recompiles at a new thread count, which takes seconds), and '
        'without a warm-up it would be timed and raise the figures\n')


def test_benchmark_function_refuses_a_timing_without_warm_up():
    """``benchmark(..., warmup=0)`` from Python (as ``leaderboard.py
    collect`` calls it) timed the first call, with its one-off costs, into
    the figures it returned."""
    from mmengine.config import Config

    from mmseg_dsnet.analysis.benchmark import benchmark
    from mmseg_dsnet.utils.errors import UserError
    cfg = Config.fromfile(str(REPO / 'configs/dsnet/dsnet_isic2017.py'))
    with pytest.raises(UserError, match='^warmup must be at least 1, got 0: '
                       'the first call of a model pays one-off costs'):
        benchmark(cfg, None, 'cpu', (32, 32), batch_size=1, warmup=0,
                  repeat=1, throughput_repeat=1)


def test_leaderboard_collect_refuses_a_timing_without_warm_up(
        tmp_path, capsys):
    """``collect --bench-warmup 0`` timed the first call of the model into
    the row's latency and throughput, exit 0."""
    lb = load_tool('analysis_tools/leaderboard.py')
    config = REPO / 'configs/dsnet/dsnet_isic2017.py'
    code, stderr = run_cli(
        lb.main, ['collect', config, tmp_path / 'work', '--bench-warmup',
                  '0', '--runs-dir', tmp_path / 'runs'], capsys)
    assert code == 2
    assert stderr == (
        'ERROR: --bench-warmup must be at least 1, got 0: the first call of '
        'a model pays one-off costs (memory and kernel set-up; '
        'torch.compile recompiles at a new thread count, which takes '
        'seconds), and without a warm-up it would be timed and raise the '
        'figures\n')
    assert not (tmp_path / 'runs').exists()


def test_benchmark_refuses_more_threads_than_cpus_it_may_use(
        monkeypatch, capsys):
    """``taskset -c 0 benchmark.py CONFIG --threads 2``: two threads took
    turns on one CPU and the figures were recorded as of ``threads: 2``,
    exit 0."""
    import os

    from conftest import run_cli
    bench = load_tool('analysis_tools/benchmark.py')

    def timed(*args, **kwargs):
        raise AssertionError('benchmarked')

    monkeypatch.setattr(bench, 'benchmark', timed)
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0},
                        raising=False)
    code, stderr = run_cli(
        bench.main, [REPO / 'configs/dsnet/dsnet_isic2017.py', '--threads',
                     '2'], capsys)
    assert code == 2
    assert stderr == (
        "ERROR: --threads 2: this process may run on 1 CPU (its CPU "
        "affinity: taskset, a container's cpuset), so 2 threads would take "
        'turns on them and the figures would be of that, not of 2 threads; '
        'give counts up to 1\n')


def test_benchmark_json_is_all_that_stdout_holds():
    """``benchmark.py CONFIG CKPT --json > FILE`` (as
    tools/device/isic2017_fast_protocol.sh measures the GPU throughput for
    ``leaderboard.py collect --gpu-json``): mmengine's ``Loads checkpoint by
    _local backend from path: CKPT`` line came first on stdout, so FILE was
    no JSON, exit 0."""
    checkpoint = REPO / 'checkpoints/dsnet_isic2017_256px.pth'
    for extra in ([], ['--compare-deploy']):
        proc = run_tool_process(
            'tools/analysis_tools/benchmark.py',
            REPO / 'configs/dsnet/dsnet_isic2017.py', checkpoint, '--json',
            '--shape', '32', '--warmup', '1', '--repeat', '1',
            '--batch-size', '1', '--throughput-repeat', '1', *extra,
            check=True)
        result = json.loads(proc.stdout)
        figures = result['trained'] if extra else result
        assert figures['params'] == 289108 and figures['shape'] == [32, 32]
        assert f'Loads checkpoint by _local backend from path: {checkpoint}' \
            in proc.stderr


def test_benchmark_refuses_an_input_size_the_model_cannot_take(capsys):
    """``benchmark.py UNET_CONFIG --shape 100``: UNet-S5-D16 takes multiples
    of 16 only; an ``AssertionError`` traceback from inside mmseg, exit 1."""
    bench = load_tool('analysis_tools/benchmark.py')
    config = 'configs/unet/unet-s5-d16_fcn_isic2017.py'
    argv = [config, '--warmup', '1', '--repeat', '1', '--batch-size', '1',
            '--throughput-repeat', '1']
    code, stderr = run_cli(bench.main, [*argv, '--shape', '100'], capsys)
    assert code == 2
    assert stderr == (
        f'ERROR: --shape 100 100: the model of {config} cannot run at this '
        'input size (AssertionError: The input image size (100, 100) should '
        'be divisible by the whole downsample rate 16, when num_stages is 5, '
        'strides is (1, 1, 1, 1, 1), and downsamples is (True, True, True, '
        'True).); give a size it takes, such as its 256 256\n')
    # A size it takes is timed as before.
    code, _ = run_cli(bench.main, [*argv, '--shape', '32', '--json'], capsys)
    assert code == 0


def test_check_real_data_refuses_settings_it_would_not_follow(
        tmp_path, capsys, monkeypatch, tiny_isic):
    from mmseg_dsnet.engine.cli_errors import UserError
    from mmseg_dsnet.engine.preflight import MissingInputError
    check = load_tool('check_real_data.py')
    work = ['--work-dir', str(tmp_path / 'work')]
    # A zero count or size used to mean "all images" or "256 px".
    for option in ('--epochs', '--train-images', '--test-images'):
        with pytest.raises(UserError, match=f'{option} must be at least 1'):
            check.main(work + [option, '0'])
    with pytest.raises(UserError, match='--seed must be an integer from 0'):
        check.main(work + ['--seed', '-1'])
    with pytest.raises(UserError, match='multiple of 32'):
        check.main(work + ['--crop-size', '0'])
    for lr in ('0', 'nan'):
        with pytest.raises(UserError, match=f'--lr must be positive, got {lr}'):
            check.main(work + ['--lr', lr])
    with pytest.raises(MissingInputError, match='does not exist'):
        check.main(work + ['--configs', str(tmp_path / 'missing.py')])
    # A --record-dir that cannot take the design records failed only when
    # they were written, after the trainings.
    from mmseg_dsnet.engine.preflight import WorkDirError
    blocker = tmp_path / 'afile'
    blocker.write_text('')
    with pytest.raises(WorkDirError, match=f'Cannot write --record-dir '
                       f'{blocker}/records/egeunet_128px_2ep_seed0.json: '
                       f'{blocker} is a file'):
        check.main(work + ['--split', 'design', '--models', 'egeunet',
                           '--crop-size', '128', '--record-dir',
                           str(blocker / 'records')])
    assert not (tmp_path / 'work').exists()
    # The data: a --src that is given must exist; the default may be absent.
    nowhere = str(tmp_path / 'nowhere')
    with pytest.raises(UserError, match='not at .*nowhere.*--src'):
        check.main(work + ['--src', nowhere, '--data-root', nowhere])
    monkeypatch.setattr(check, 'DEFAULT_SRC', nowhere)
    monkeypatch.setattr(check, 'DEFAULT_DATA_ROOT', nowhere)
    capsys.readouterr()
    assert check.main(work) is None
    assert capsys.readouterr().out.startswith('SKIP: ')
    # A --data-root that is given must hold a converted set (or be made
    # from the source): a mistyped one was a SKIP, exit 0.
    with pytest.raises(UserError, match='--data-root .*typo holds no '
                       'converted set'):
        check.main(work + ['--data-root', str(tmp_path / 'typo')])
    # A converted set other than the --src named would be used silently.
    with pytest.raises(UserError, match='holds a conversion of .*raw, not of '
                       '--src .*nowhere'):
        check.main(work + ['--src', nowhere, '--data-root', str(tiny_isic)])
    # More images than the split holds: mmengine would take them all.
    with pytest.raises(UserError, match='--train-images 9999: .*lightweight_'
                       'train.txt holds only 1[0-9] images'):
        check.main(work + ['--data-root', str(tiny_isic), '--train-images',
                           '9999'])
    with pytest.raises(UserError, match='--test-images 9999: .*lightweight_'
                       'design_val.txt holds only'):
        check.main(work + ['--data-root', str(tiny_isic), '--split', 'design',
                           '--test-images', '9999'])
    assert not (tmp_path / 'work').exists()


def test_check_real_data_refuses_sizes_and_results_it_cannot_use(tmp_path):
    """A crop size the models cannot halve five times, and earlier results
    that are not one dict per run (they could not be kept beside the new
    ones), are refused; whole results are read back as they are."""
    from mmseg_dsnet.leaderboard.real_data_check import (RESULTS_FILE,
                                                         check_short_schedule,
                                                         earlier_results)
    from mmseg_dsnet.utils.errors import UserError
    for size in (16, 48, 100):
        with pytest.raises(UserError, match=f'multiple of 32, got {size}$'):
            check_short_schedule(crop_size=size)
    check_short_schedule(crop_size=32)
    check_short_schedule(crop_size=96)
    with pytest.raises(UserError, match='--lr must be positive, got 0'):
        check_short_schedule(lr=0.0)
    path = tmp_path / RESULTS_FILE
    for text in ('{"dsnet": {"epochs": 1}, "unet": 3}', '[{"epochs": 1}]'):
        path.write_text(text)
        with pytest.raises(UserError, match='does not hold the results of '
                           'runs'):
            earlier_results(str(tmp_path))
    path.write_text('{"dsnet": {"epochs": 1}}')
    assert earlier_results(str(tmp_path)) == {'dsnet': {'epochs': 1}}


def test_check_real_data_refuses_a_configs_file_that_is_no_config(
        tmp_path, tiny_isic):
    """A --configs file that is no config (a syntax error, a checkpoint
    given in its place) or no whole one (a base config) was read only when
    its run started, after the runs before it: a SyntaxError, OSError or
    KeyError traceback, exit 1. Now one line naming the file, before any
    training."""
    broken = tmp_path / 'broken.py'
    broken.write_text('x = (\n')
    checkpoint = tmp_path / 'dsnet.pth'
    torch.save(dict(state_dict={}), checkpoint)
    work = tmp_path / 'work'
    expected = {
        broken: f'ERROR: config file {broken} cannot be read as a config: '
        "SyntaxError: '(' was never closed (<unknown>, line 1)",
        checkpoint: f'ERROR: config file {checkpoint} cannot be read as a '
        'config: OSError: Only py/yml/yaml/json type are supported now! '
        '(configs are .py files, e.g. configs/dsnet/dsnet_isic2017.py; was '
        'a checkpoint given in its place?)',
        # A base config: a KeyError traceback when its run started.
        'configs/_base_/models/dsnet.py': 'ERROR: config file '
        'configs/_base_/models/dsnet.py sets no train_dataloader.dataset, '
        'val_dataloader.dataset, test_dataloader.dataset, optim_wrapper, '
        'train_cfg, visualizer, default_hooks.logger: a run trains and tests '
        "the config's model on its data pipelines with its optimizer; give "
        'a whole training config such as configs/dsnet/dsnet_isic2017.py'}
    for config, line in expected.items():
        run = run_tool_in_process(
            'tools/check_real_data.py', '--configs', config, '--data-root',
            tiny_isic, '--epochs', '1', '--train-images', '2',
            '--test-images', '1', '--crop-size', '32', '--work-dir', work)
        assert run.returncode == 2, run.output[-2000:]
        assert run.stdout == ''
        assert run.stderr == line + '\n'
    assert not work.exists()


def test_check_real_data_refuses_two_runs_of_one_name(tmp_path, tiny_isic):
    """A --configs file named like a --models name or another --configs
    file replaced it: one run trained, exit 0, and the other was dropped
    without a word."""
    other = tmp_path / 'other'
    other.mkdir()
    first = write_tiny_config(tmp_path / 'egeunet.py', tiny_isic, epochs=1)
    second = write_tiny_config(other / 'egeunet.py', tiny_isic, epochs=1)
    work = tmp_path / 'work'
    args = ['--data-root', tiny_isic, '--epochs', '1', '--train-images', '2',
            '--test-images', '1', '--crop-size', '32', '--work-dir', work]
    for given, earlier in ((['--models', 'egeunet', '--configs', first],
                            '--models egeunet'),
                           (['--configs', first, second],
                            f'--configs {first}')):
        run = run_tool_in_process('tools/check_real_data.py', *given, *args)
        assert run.returncode == 2, run.output[-2000:]
        assert run.stderr == (
            f'ERROR: --configs {given[-1]} has the run name egeunet of '
            f"{earlier} (a run, its work dir and its record are named by its "
            "config's stem); only one of them would run. Give each config "
            'once, with a stem of its own\n')
        assert not work.exists()


def test_check_real_data_refuses_the_work_dir_of_an_earlier_check(
        tmp_path, tiny_isic):
    """A second check into the work dir of an earlier one overwrote only
    what it wrote itself: ``epoch_1.pth`` of a 1-epoch run stayed beside
    ``epoch_2.pth``, ``test_metrics.json`` and the dump of a 2-epoch run,
    exit 0; a check of other models replaced ``real_check.json``. Now a
    run's folder of an earlier run is refused before any training, and the
    results of earlier runs of other names are kept."""
    from conftest import tree_hashes

    from mmseg_dsnet.leaderboard.records import load_json
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    other = write_tiny_config(tmp_path / 'other.py', tiny_isic, epochs=1)
    work = tmp_path / 'work'
    args = ['--data-root', tiny_isic, '--train-images', '2', '--test-images',
            '1', '--crop-size', '32', '--work-dir', work]
    run_tool_in_process('tools/check_real_data.py', '--configs', config,
                        '--epochs', '1', *args, check=True)
    before = tree_hashes(work)
    first = load_json(work / 'real_check.json')
    run = run_tool_in_process('tools/check_real_data.py', '--configs',
                              config, '--epochs', '2', *args)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stdout == ''
    assert run.stderr == (
        f'ERROR: The work dir {work / "tiny"} already holds the checkpoints '
        'of a run (epoch_1.pth, last_checkpoint); a new run would overwrite '
        'some of them and leave the others beside its own. Nothing was '
        'started; continue that run with --resume, choose another '
        '--work-dir, or remove them.\n')
    assert tree_hashes(work) == before
    # A run of another name beside it: the earlier results are kept.
    run = run_tool_in_process('tools/check_real_data.py', '--configs',
                              other, '--epochs', '1', *args, check=True)
    assert run.stdout.rstrip().endswith(
        f'Written to {work / "real_check.json"} (beside the results of '
        'earlier runs in it: tiny)')
    both = load_json(work / 'real_check.json')
    assert sorted(both) == ['other', 'tiny'] and both['tiny'] == first['tiny']
    assert {path: digest for path, digest in tree_hashes(work).items()
            if path.startswith('tiny/')} == {
                path: digest for path, digest in before.items()
                if path.startswith('tiny/')}
    # Results it could not add to are refused before any training.
    odd = tmp_path / 'odd'
    odd.mkdir()
    (odd / 'real_check.json').write_text('[]\n')
    run = run_tool_in_process('tools/check_real_data.py', '--configs',
                              other, '--epochs', '1', *args[:-1], odd)
    assert run.returncode == 2 and run.stderr == (
        f'ERROR: {odd / "real_check.json"} does not hold the results of runs '
        '(run name -> results), so the results of this check could not be '
        'added to it; choose another --work-dir, or remove it\n')
    assert os.listdir(odd) == ['real_check.json']



@pytest.mark.parametrize('earlier', ['first', 'second'])
def test_check_real_data_refuses_an_earlier_run_of_any_of_its_runs(
        tmp_path, tiny_isic, earlier):
    """With several ``--configs``, the folder of each run is checked for an
    earlier run's checkpoints, the first one's and the last one's alike,
    before any training (a check that looked at one run's folder only
    trained the others on top of their earlier checkpoints)."""
    from conftest import tree_hashes
    configs = [write_tiny_config(tmp_path / f'{name}.py', tiny_isic,
                                 epochs=1) for name in ('first', 'second')]
    work = tmp_path / 'work'
    run_dir = work / earlier
    run_dir.mkdir(parents=True)
    torch.save(dict(state_dict={'w': torch.zeros(1)}, meta=dict(epoch=1)),
               run_dir / 'epoch_1.pth')
    (run_dir / 'last_checkpoint').write_text(str(run_dir / 'epoch_1.pth'))
    before = tree_hashes(work)
    run = run_tool_in_process(
        'tools/check_real_data.py', '--configs', *configs, '--epochs', '1',
        '--data-root', tiny_isic, '--train-images', '2', '--test-images',
        '1', '--crop-size', '32', '--work-dir', work)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr == (
        f'ERROR: The work dir {run_dir} already holds the checkpoints of a '
        'run (epoch_1.pth, last_checkpoint); a new run would overwrite some '
        'of them and leave the others beside its own. Nothing was started; '
        'continue that run with --resume, choose another --work-dir, or '
        'remove them.\n')
    assert tree_hashes(work) == before

def test_check_real_data_refuses_folders_it_cannot_use(tmp_path, tiny_isic):
    """A --data-root that is a file or a folder of other files (the raw set
    given as --data-root), a --src the converter cannot read, or a
    --work-dir through a file: each ended in a traceback (the converter's
    ``ConversionError``, which offered an --overwrite this tool does not
    have, or ``NotADirectoryError`` when the first run started), exit 1."""
    afile = tmp_path / 'afile'
    afile.write_text('')
    full = tmp_path / 'full'
    full.mkdir()
    (full / 'ISIC_0000000.jpg').write_text('')
    new = tmp_path / 'new'
    short = ['--models', 'egeunet', '--epochs', '1', '--train-images', '2',
             '--test-images', '1', '--crop-size', '32']
    what = ('a converted ISIC 2017 set (a folder with meta.json, made by '
            'tools/dataset_converters/isic.py), or a new or empty folder to '
            'convert the set into')
    cases = [
        (['--src', full, '--data-root', afile, '--work-dir', tmp_path / 'w'],
         f'--data-root {afile} is a file, not a folder; give {what}'),
        (['--src', full, '--data-root', full, '--work-dir', tmp_path / 'w'],
         f'--data-root {full} is not a converted set (it has no meta.json) '
         'and it holds files, so the set cannot be converted into it; give '
         f'{what}'),
        (['--src', tiny_isic, '--data-root', new, '--work-dir',
          tmp_path / 'w'],
         f'cannot convert {tiny_isic} (--src) into {new} (--data-root): no '
         f'ISIC 2017 folder or zip found in {tiny_isic} (expected: '
         'ISIC-2017_Training_Data, ISIC-2017_Training_Part1_GroundTruth, '
         'ISIC-2017_Validation_Data, ISIC-2017_Validation_Part1_GroundTruth, '
         'ISIC-2017_Test_v2_Data, ISIC-2017_Test_v2_Part1_GroundTruth)'),
        (['--data-root', tiny_isic, '--work-dir', afile / 'w'],
         f'Cannot write to the work dir {afile / "w"}: {afile} is a file, '
         'not a folder. Nothing was started or changed; choose a writable '
         'folder with --work-dir.')]
    for args, line in cases:
        run = run_tool_in_process('tools/check_real_data.py', *short, *args)
        assert run.returncode == 2, run.output[-2000:]
        assert run.stderr.splitlines()[-1] == 'ERROR: ' + line
        assert 'Traceback' not in run.stderr
    assert sorted(os.listdir(full)) == ['ISIC_0000000.jpg']
    assert not new.exists() and afile.read_text() == ''
    # No run was started in the work dir made before the conversion.
    assert not (tmp_path / 'w').exists() or not os.listdir(tmp_path / 'w')


def test_check_real_data_refuses_a_last_batch_its_model_cannot_train(
        tmp_path, tiny_isic):
    """``--train-images 9 --crop-size 32`` (batch size 8): DSNet's batch
    norm got one value per channel from the last batch of one image and
    the run failed at the end of its first epoch with a ValueError
    traceback, exit 1. Now refused before any training; a model that
    trains on a batch of one is let through."""
    from mmseg_dsnet.leaderboard.real_data_check import (
        CONFIGS, check_training_batches, short_schedule_cfg)
    work = tmp_path / 'work'
    run = run_tool_in_process(
        'tools/check_real_data.py', '--models', 'dsnet', '--data-root',
        tiny_isic, '--epochs', '1', '--train-images', '9', '--test-images',
        '1', '--crop-size', '32', '--work-dir', work)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stdout == ''
    assert run.stderr == (
        'ERROR: dsnet: each epoch would end with a training batch of one '
        'image (9 training images, batch_size 8), and its model cannot '
        'train on one at 32x32 (ValueError: Expected more than 1 value per '
        'channel when training, got input size torch.Size([1, 128, 1, 1])); '
        'give --train-images a count that leaves more than one image for '
        'the last batch (not 8k + 1) or a larger --crop-size\n')
    assert not work.exists()
    for name, images in (('egeunet', 9), ('dsnet', 10)):
        check_training_batches(short_schedule_cfg(
            CONFIGS[name], str(tiny_isic), str(work), 1, images, 1, 0,
            crop_size=32), name)


def test_check_real_data_refuses_a_record_dir_it_would_not_write(
        tmp_path, tiny_isic):
    """--record-dir without --split design was ignored: the run trained
    and wrote no record, exit 0."""
    records, work = tmp_path / 'records', tmp_path / 'work'
    run = run_tool_in_process(
        'tools/check_real_data.py', '--models', 'egeunet', '--data-root',
        tiny_isic, '--epochs', '1', '--train-images', '2', '--test-images',
        '1', '--crop-size', '32', '--record-dir', records, '--work-dir',
        work)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr == (
        f'ERROR: --record-dir {records}: only --split design writes '
        'records; a --split test run writes its results into --work-dir\n')
    assert not work.exists() and not records.exists()


def test_check_real_data_checks_every_config_before_the_first_run(
        tmp_path, tiny_isic):
    """A --configs file whose model cannot be built (a misspelt type) was
    met when its run started: the runs before it trained first, then an
    ERROR line that named no file, a log folder left. Now refused before
    any training, naming the file."""
    bad = write_tiny_config(tmp_path / 'bad.py', tiny_isic, epochs=1)
    bad.write_text(bad.read_text() +
                   "model = dict(backbone=dict(type='NoSuchBackbone'))\n")
    work = tmp_path / 'work'
    run = run_tool_in_process(
        'tools/check_real_data.py', '--models', 'egeunet', '--configs', bad,
        '--data-root', tiny_isic, '--epochs', '1', '--train-images', '2',
        '--test-images', '1', '--crop-size', '32', '--work-dir', work)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stdout == ''
    assert run.stderr.splitlines()[-1].startswith(
        f'ERROR: config file {bad} (run bad): NoSuchBackbone is not in the '
        'mmseg::model registry.')
    assert run.stderr.endswith(
        '(check the spelling of this type in the config)\n')
    assert not work.exists()
    # A runner_type that cannot run: refused before the first run too.
    flexible = write_tiny_config(tmp_path / 'flexible.py', tiny_isic,
                                 epochs=1)
    flexible.write_text(flexible.read_text() +
                        "runner_type = 'FlexibleRunner'\n")
    run = run_tool_in_process(
        'tools/check_real_data.py', '--models', 'egeunet', '--configs',
        flexible, '--data-root', tiny_isic, '--epochs', '1',
        '--train-images', '2', '--test-images', '1', '--crop-size', '32',
        '--work-dir', work)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stdout == ''
    assert run.stderr.splitlines()[-1].startswith(
        f'ERROR: config file {flexible} (run flexible): '), run.stderr
    assert "runner_type 'FlexibleRunner' is not a subclass of mmengine's " \
        'Runner' in run.stderr.splitlines()[-1], run.stderr
    assert not work.exists()
    # Another evaluator: every run trained, then the summary table failed
    # with a KeyError traceback, exit 1.
    other = write_tiny_config(tmp_path / 'iou.py', tiny_isic, epochs=1)
    other.write_text(other.read_text() +
                     "test_evaluator = dict(type='IoUMetric')\n")
    run = run_tool_in_process(
        'tools/check_real_data.py', '--configs', other, '--data-root',
        tiny_isic, '--epochs', '1', '--train-images', '2', '--test-images',
        '1', '--crop-size', '32', '--work-dir', work)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr == (
        f'ERROR: config file {other}: its test_evaluator is '
        'IoUMetric, not LesionMetric; the check reports the lesion metrics '
        '(IoU, DSC, Acc, Sen, Spe, mIoU_img, TJ, mIoU) and only LesionMetric '
        'gives them; give a config that tests with LesionMetric, such as '
        'configs/dsnet/dsnet_isic2017.py\n')
    assert not work.exists()


def test_check_real_data_refuses_settings_met_only_in_a_run(tmp_path,
                                                             tiny_isic):
    """A --configs file with a test mode mmseg cannot score with, or an
    optimizer value torch refuses: the runs before it trained, then its
    own run trained until it scored (or built its optimizer) and stopped
    with a traceback. Now refused before any training, naming the file."""
    work = tmp_path / 'work'
    for setting, fault in (
            ("model = dict(test_cfg=dict(mode='slid'))",
             "model.test_cfg.mode='slid' is neither 'whole' nor 'slide'; "),
            ('optim_wrapper = dict(optimizer=dict(lr=-0.1))',
             'optim_wrapper: Invalid learning rate: -0.1. Nothing was '
             'started.')):
        bad = write_tiny_config(tmp_path / 'bad.py', tiny_isic, epochs=1)
        bad.write_text(bad.read_text() + setting + '\n')
        run = run_tool_in_process(
            'tools/check_real_data.py', '--models', 'egeunet', '--configs',
            bad, '--data-root', tiny_isic, '--epochs', '1',
            '--train-images', '2', '--test-images', '1', '--crop-size', '32',
            '--work-dir', work)
        assert run.returncode == 2, run.output[-2000:]
        assert run.stdout == ''
        assert run.stderr.splitlines()[-1].startswith(
            f'ERROR: config file {bad} (run bad): {fault}'), run.stderr
        assert not work.exists()


def test_check_real_data_refuses_keys_its_runs_would_ignore(tmp_path,
                                                            tiny_isic):
    """A --configs file with an ``env_cfg`` key mmengine ignores
    (``cudnn_benchmrk``), or a misspelt ``train_cfg`` key: the first ran
    without it, exit 0; the second stopped its own run after the runs
    before it had trained. Both are refused before any training."""
    work = tmp_path / 'work'
    for setting, fault in (
            ('env_cfg = dict(cudnn_benchmrk=True)',
             "env_cfg.cudnn_benchmrk=True is not read by mmengine's "
             'runner, '),
            ('train_cfg = dict(max_epoch=1)', 'train_cfg.max_epoch=1 is no '
             "argument of EpochBasedTrainLoop; did you mean 'max_epochs'?")):
        bad = write_tiny_config(tmp_path / 'bad.py', tiny_isic, epochs=1)
        bad.write_text(bad.read_text() + setting + '\n')
        run = run_tool_in_process(
            'tools/check_real_data.py', '--models', 'egeunet', '--configs',
            bad, '--data-root', tiny_isic, '--epochs', '1',
            '--train-images', '2', '--test-images', '1', '--crop-size', '32',
            '--work-dir', work)
        assert run.returncode == 2, run.output[-2000:]
        assert run.stdout == ''
        assert run.stderr.splitlines()[-1].startswith(
            f'ERROR: config file {bad} (run bad): {fault}'), run.stderr
        assert not work.exists()


def test_check_real_data_refuses_a_work_dir_another_run_holds(tmp_path,
                                                              tiny_isic):
    """A check into a work dir another check writes now, or whose run
    folder a training writes now, is refused before its first run
    trains: the two wrote their checkpoints and results over one
    another."""
    from mmseg_dsnet.engine.preflight import training_work_dir_lock
    work = tmp_path / 'work'
    (work / 'egeunet').mkdir(parents=True)
    for held in (work, work / 'egeunet'):
        with training_work_dir_lock(str(held)):
            run = run_tool_in_process(
                'tools/check_real_data.py', '--models', 'egeunet',
                '--data-root', tiny_isic, '--epochs', '1',
                '--train-images', '2', '--test-images', '1',
                '--crop-size', '32', '--work-dir', work)
        assert run.returncode == 2, run.output[-2000:]
        assert run.stderr.splitlines()[-1] == (
            f'ERROR: The work dir {held} is being written by another '
            'training now: two trainings at once would save their '
            'checkpoints over one another. Nothing was started; wait for '
            'it to end, or choose another --work-dir.')
        assert sorted(p.name for p in work.rglob('*')) == ['egeunet']


def test_check_real_data_refuses_a_design_run_on_the_synthetic_set(
        tmp_path, tiny_isic):
    """--split design on the synthetic stand-in set trained, wrote a
    record that design_table.py refuses, and printed 'Short schedule on
    real ISIC 2017', exit 0. Now nothing is trained."""
    import shutil

    from mmseg_dsnet.datasets.synthetic_fallback import SYNTHETIC_MARKER
    root = tmp_path / 'synthetic_isic'
    shutil.copytree(tiny_isic, root)
    (root / SYNTHETIC_MARKER).write_text('synthetic\n')
    work, records = tmp_path / 'work', tmp_path / 'records'
    proc = run_tool_in_process(
        'tools/check_real_data.py', '--split', 'design', '--data-root',
        root, '--epochs', '1', '--train-images', '4', '--test-images', '1',
        '--crop-size', '32', '--work-dir', work, '--record-dir', records)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout == ''
    assert proc.stderr == (
        f'ERROR: --data-root {root} is the synthetic stand-in set (it '
        f'holds {SYNTHETIC_MARKER}), not the real ISIC images: a design run '
        'on it says nothing about a design, and design_table.py refuses its '
        'record; give --data-root the converted real ISIC 2017 set\n')
    assert not work.exists() and not records.exists()


def test_check_real_data_refuses_a_design_hold_out_of_test_images(
        tmp_path, tiny_isic):
    """--split design on a set whose lightweight_design_val.txt is a copy
    of its test split (made by hand for a set converted before the design
    splits): the runs were judged on the test images and their records
    passed design_table.py by the file name, exit 0. Now nothing is
    trained."""
    import shutil
    root = tmp_path / 'isic'
    shutil.copytree(tiny_isic, root)
    splits = root / 'splits'
    shutil.copy(splits / 'lightweight_test.txt',
                splits / 'lightweight_design_val.txt')
    count = len((splits / 'lightweight_test.txt').read_text().split())
    work, records = tmp_path / 'work', tmp_path / 'records'
    proc = run_tool_in_process(
        'tools/check_real_data.py', '--split', 'design', '--data-root',
        root, '--epochs', '1', '--train-images', '4', '--test-images', '1',
        '--crop-size', '32', '--work-dir', work, '--record-dir', records)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.startswith(
        f'ERROR: the design hold-out {splits / "lightweight_design_val.txt"}'
        f' lists {count} images of the test split '
        f'{splits / "lightweight_test.txt"} ('), proc.stderr
    assert 'design choices made on it would be made on test images' in \
        proc.stderr
    assert not work.exists() and not records.exists()


def test_check_real_data_names_the_set_it_ran_on(tmp_path, tiny_isic):
    """``--split test`` on the synthetic stand-in set (a smoke test) printed
    ``Short schedule on real ISIC 2017`` above its figures, exit 0; a set
    of another year was called ISIC 2017 too."""
    import shutil

    from mmseg_dsnet.datasets.synthetic_fallback import SYNTHETIC_MARKER
    root = tmp_path / 'synthetic_isic'
    shutil.copytree(tiny_isic, root)
    (root / SYNTHETIC_MARKER).write_text('synthetic\n')
    args = ['--models', 'egeunet', '--epochs', '1', '--train-images', '2',
            '--test-images', '1', '--crop-size', '32']
    run = run_tool_in_process('tools/check_real_data.py', *args,
                              '--data-root', root, '--work-dir',
                              tmp_path / 'w1', check=True)
    assert (f'Short schedule on the SYNTHETIC stand-in set {root} (not '
            f'real lesions; it holds {SYNTHETIC_MARKER}) (') in run.stdout
    assert 'real ISIC' not in run.stdout
    # tiny_isic is converted as ISIC 2018 (its meta.json) and not marked.
    run = run_tool_in_process('tools/check_real_data.py', *args,
                              '--data-root', tiny_isic, '--work-dir',
                              tmp_path / 'w2', check=True)
    assert 'Short schedule on real ISIC 2018 (' in run.stdout


def test_check_real_data_names_the_size_each_config_ran_at(tmp_path,
                                                          tiny_isic):
    """Without ``--crop-size`` each config runs at its own size: the
    summary line named one size for configs of two (the first said 256 px
    whatever the configs)."""
    configs = []
    for side in (64, 32):
        configs.append(tmp_path / f'tiny{side}.py')
        write_tiny_config(configs[-1], tiny_isic, epochs=1)
        configs[-1].write_text(configs[-1].read_text().replace(
            'crop_size = (64, 64)', f'crop_size = ({side}, {side})'))
    args = ['--epochs', '1', '--train-images', '4', '--test-images', '1',
            '--data-root', tiny_isic]
    run = run_tool_in_process('tools/check_real_data.py', '--configs',
                              *configs, *args, '--work-dir', tmp_path / 'w1',
                              check=True)
    assert ', input 64px (tiny64), 32px (tiny32), seed 0:' in run.stdout
    run = run_tool_in_process('tools/check_real_data.py', '--configs',
                              configs[1], *args, '--work-dir',
                              tmp_path / 'w2', check=True)
    assert ', input 32px, seed 0:' in run.stdout


def test_profile_train_step_reports_a_step_that_fails(capsys):
    """A step the model cannot take (a batch of one through batch norm at
    a 1x1 map) was reported for each timed form, then ended in the
    profiler's traceback (exit 1)."""
    from mmseg_dsnet.engine.cli_errors import UserError
    profile = load_tool('analysis_tools/profile_train_step.py')
    config = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    with pytest.raises(UserError, match='^1 of 1 form could not be '
                       'timed: eager; the eager step could not be profiled'):
        profile.main([config, '--device', 'cpu', '--shape', '32', '32',
                      '--batch-size', '1', '--steps', '1', '--variants',
                      'eager'])
    printed = capsys.readouterr().out
    assert 'profile of eager             failed: ValueError: Expected more ' \
        'than 1 value per channel' in printed
    # A size the network cannot run at (an empty map at 1/32) failed every
    # form alike without naming the size; it is refused before timing.
    with pytest.raises(UserError, match=r'^--shape 16 16: the model of '
                       f'{config} cannot run at this input size '
                       r'\(RuntimeError: .*\); give a size it takes, such '
                       'as its 256 256$'):
        profile.main([config, '--device', 'cpu', '--shape', '16', '16',
                      '--steps', '1', '--variants', 'eager'])
    assert 'ms/step' not in capsys.readouterr().out


def test_profile_train_step_refuses_a_wrapped_training_dataset(
        tiny_config, tmp_path):
    """A ``MultiImageMixDataset``'s own pipeline (its mixing step, here a
    flip) was profiled as the training augmentation, and the wrapped
    dataset's left out, exit 0; a ``RepeatDataset`` was refused as a config
    that ``sets no train_dataloader.dataset.pipeline``."""
    for wrapper in ('MultiImageMixDataset', 'RepeatDataset'):
        config = write_wrapped_config(tmp_path / f'{wrapper}.py',
                                      tiny_config, wrapper)
        run = run_tool_in_process(
            'tools/analysis_tools/profile_train_step.py', config,
            '--device', 'cpu', '--steps', '1', '--variants', 'eager')
        assert run.returncode == 2, run.output[-2000:]
        assert run.stderr.startswith(
            f'ERROR: {config}: train_dataloader.dataset is a {wrapper} ('), \
            run.stderr
        assert "which profile_train_step.py (the fast trainer's step) does " \
            'not read' in run.stderr
        assert 'ms/step' not in run.stdout


def test_profile_train_step_refuses_a_config_without_a_training_step():
    """A model or dataset base config ended in an AttributeError traceback
    (``'ConfigDict' object has no attribute 'train_dataloader'``), exit
    1."""
    for config, missing in (
            ('configs/_base_/models/dsnet.py',
             'train_dataloader.dataset.pipeline, optim_wrapper'),
            ('configs/_base_/datasets/isic_256x256.py',
             'model, optim_wrapper')):
        run = run_tool_in_process('tools/analysis_tools/profile_train_step.py',
                                  config, '--device', 'cpu', '--steps', '1')
        assert run.returncode == 2, run.output[-2000:]
        assert 'Traceback' not in run.stderr
        assert run.stderr.strip().splitlines()[-1] == (
            f'ERROR: config file {config} sets no {missing}: a training '
            "step needs the config's model, training augmentation and "
            'optimizer; give a training config such as '
            'configs/dsnet/dsnet_isic2017.py')
        assert 'ms/step' not in run.stdout


def test_profile_train_step_refuses_a_deploy_form(tmp_path):
    """A config with ``model.backbone.deploy=True`` had its step timed and
    profiled, exit 0: the step of the re-parameterised backbone (no
    BatchNorm, no difference branches), another network than the model's,
    printed as the config's training step (fast_train.py refuses to train
    it). A whole deploy config failed in each form instead of one line."""
    from mmseg_dsnet.deploy.deploy_checkpoint import deploy_config
    from mmseg_dsnet.engine.preflight import load_config
    demo = str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')
    backbone = tmp_path / 'backbone_deploy.py'
    backbone.write_text(f"_base_ = '{demo}'\n"
                        'model = dict(backbone=dict(deploy=True))\n')
    whole = tmp_path / 'deploy.py'
    whole.write_text(deploy_config(load_config(demo)).dump())
    for config, parts in ((backbone, 'model.backbone.deploy=True'),
                          (whole, 'model.backbone.deploy=True, '
                           'model.decode_head.deploy=True')):
        run = run_tool_in_process(
            'tools/analysis_tools/profile_train_step.py', str(config),
            '--device', 'cpu', '--shape', '32', '--batch-size', '2',
            '--steps', '1', '--variants', 'eager', '--top', '1')
        assert run.returncode == 2, run.output[-2000:]
        # The advice names what the tool does (it trains nothing).
        assert run.stderr.strip().splitlines()[-1] == (
            f'ERROR: {config}: {parts}: this config builds the '
            're-parameterised (inference) form of the model, without its '
            'BatchNorms, difference branches and deep-supervision '
            'classifiers, which cannot be trained as the model; profile '
            'the training config (deploy=False)'), run.stderr
        assert 'ms/step' not in run.stdout
        assert 'torch.profiler' not in run.stdout


@pytest.mark.slow
def test_test_tool_refuses_mask_names_that_clash_before_scoring(
        trained, tiny_isic, tmp_path):
    """Two images of one stem (``x`` and ``sub/x``) would both be masked
    as ``x.png``: the metric refused the second only when it came, after
    the masks scored before it were written. Now nothing is scored."""
    import shutil
    cfg, work_dir = trained
    root = tmp_path / 'isic'
    shutil.copytree(tiny_isic, root)
    ids = (root / 'splits' / 'lightweight_test.txt').read_text().split()
    for folder, suffix in (('images', '.jpg'), ('masks', '.png')):
        (root / folder / 'sub').mkdir()
        shutil.copy(root / folder / (ids[0] + suffix),
                    root / folder / 'sub' / (ids[0] + suffix))
    split = root / 'splits' / 'clash.txt'
    split.write_text('\n'.join(ids + ['sub/' + ids[0]]) + '\n')
    out = tmp_path / 'masks'
    proc = run_tool_in_process(
        'tools/test.py', cfg, work_dir / 'epoch_2.pth', '--work-dir',
        tmp_path / 'work', '--out', out, '--cfg-options',
        f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.dataset.ann_file=splits/clash.txt')
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('ERROR: ') and 'share the stem' in last
    assert f'sub/{ids[0]}.jpg' in last and 'nothing was scored' in last
    assert not out.exists() or not any(out.iterdir())
    assert not (tmp_path / 'work' / 'test_metrics.json').exists()


@pytest.mark.slow
def test_resume_refuses_another_config_or_a_finished_run(tiny_isic,
                                                         tmp_path, capsys):
    """mmengine resumes the optimizer (its rates), the schedule and the
    seed from the checkpoint and the rest from the config: a resume with
    other options trained a mix of two runs, exit 0, and a resume of a
    finished run trained nothing, exit 0; both replaced the work dir's
    config dump. Now both are refused before the runner exists, and the
    run's own config resumes (with a longer schedule) as before. A new run
    over the old one without ``--resume`` is refused too."""
    import uuid

    from conftest import tree_hashes
    train = load_tool('train.py').main
    cfg = write_tiny_config(tmp_path / 'tiny_dsnet.py', tiny_isic, epochs=2)
    work = tmp_path / 'work'

    def run(*options, resume=True):
        return run_cli(train, [
            cfg, '--work-dir', work, '--no-synthetic-fallback',
            *(['--resume'] if resume else []), '--cfg-options',
            f'experiment_name=resume_{uuid.uuid4().hex[:8]}', *options],
            capsys)

    assert run('train_cfg.max_epochs=1', resume=False)[0] == 0
    kept = tree_hashes(work)
    last = work / 'epoch_1.pth'
    # A new run over it (no --resume) overwrote some of its files and left
    # the rest beside its own, exit 0.
    code, err = run('train_cfg.max_epochs=1', resume=False)
    assert code == 2, err[-2000:]
    assert err.splitlines()[-1] == (
        f'ERROR: The work dir {work} already holds the checkpoints of a run '
        '(best_IoU_epoch_1.pth, epoch_1.pth, last_checkpoint); a new run '
        'would overwrite some of them and leave the others beside its own. '
        'Nothing was started; continue that run with --resume, choose '
        'another --work-dir, or remove them.')
    code, err = run('optim_wrapper.optimizer.lr=0.5',
                    'train_dataloader.batch_size=2')
    assert code == 2, err[-2000:]
    assert err.splitlines()[-1] == (
        f'ERROR: --resume: {last} was trained with another config than '
        f'{cfg}: train_dataloader.batch_size=2 (the checkpoint\'s: 4); '
        "optim_wrapper.optimizer.lr=0.5 (the checkpoint's: 0.001). "
        "Resuming would mix two runs (the optimizer's state and settings "
        'come from the checkpoint, the rest from the config); resume with '
        'the config and --cfg-options the run was started with (data '
        'locations, loader workers and a longer train_cfg.max_epochs may '
        'differ), or train the changed config in another --work-dir')
    assert run('randomness.seed=3')[0] == 2
    code, err = run('train_cfg.max_epochs=1')
    assert code == 2, err[-2000:]
    assert err.splitlines()[-1] == (
        f'ERROR: --resume: {last} has trained 1 epoch and {cfg} trains 1 '
        '(train_cfg.max_epochs): nothing is left to train; raise '
        'train_cfg.max_epochs to train on, or train anew in another '
        '--work-dir')
    assert tree_hashes(work) == kept  # no run folder, dump kept
    # The config as it was, its loaders elsewhere, trained on to 2 epochs.
    code, err = run('train_dataloader.num_workers=1')
    assert code == 0, err[-2000:]
    from mmseg_dsnet.compat import safe_torch_load
    assert safe_torch_load(str(work / 'epoch_2.pth'))['meta']['epoch'] == 2


@pytest.mark.slow
def test_resume_set_in_the_config_resumes(tiny_isic, tmp_path, capsys):
    """``--cfg-options resume=True`` (or ``resume = True`` in a config) was
    replaced by the absent ``--resume``: a new run started over the work
    dir and replaced its checkpoints, exit 0. Now it resumes."""
    import uuid
    train = load_tool('train.py').main
    cfg = write_tiny_config(tmp_path / 'tiny_dsnet.py', tiny_isic, epochs=2)
    work = tmp_path / 'work'
    argv = [cfg, '--work-dir', work, '--no-synthetic-fallback',
            '--cfg-options']
    code, err = run_cli(train, argv + [
        f'experiment_name=resume_{uuid.uuid4().hex[:8]}',
        'train_cfg.max_epochs=1'], capsys)
    assert code == 0, err[-2000:]
    first = (work / 'epoch_1.pth').read_bytes()
    code, err = run_cli(train, argv + [
        f'experiment_name=resume_{uuid.uuid4().hex[:8]}', 'resume=True'],
        capsys)
    assert code == 0, err[-2000:]
    assert (work / 'epoch_1.pth').read_bytes() == first  # not trained anew
    logs = sorted(work.glob('*/*.log'))
    assert len(logs) == 2 and 'resumed epoch: 1' in logs[1].read_text()
    assert (work / 'epoch_2.pth').is_file()


def test_resume_refuses_another_validation_of_a_run_that_keeps_its_best(
        tiny_isic, tmp_path, capsys):
    """mmengine restores the best score so far from the checkpoint and
    compares later validations with it: a resume with another validation
    split, evaluator or ``save_best`` (the stored IoU compared with Spe)
    chose the best checkpoint across two criteria, exit 0. Refused before
    the runner exists; data locations and loader workers may differ."""
    import mmseg_dsnet  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    from conftest import tree_hashes
    from mmseg_dsnet.engine.resume_check import (ResumeMismatchError,
                                                 check_resume_checkpoint)
    cfg_file = write_tiny_config(tmp_path / 'tiny_dsnet.py', tiny_isic,
                                 epochs=2)
    cfg = Config.fromfile(str(cfg_file))
    work = tmp_path / 'work'
    work.mkdir()
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    last = work / 'epoch_1.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(epoch=1, iter=3, cfg=cfg.pretty_text)), last)
    (work / 'last_checkpoint').write_text(str(last))
    kept = tree_hashes(work)
    code, err = run_cli(load_tool('train.py').main, [
        cfg_file, '--work-dir', work, '--resume', '--cfg-options',
        'val_dataloader.dataset.ann_file=splits/official_test.txt',
        'default_hooks.checkpoint.save_best=Spe'], capsys)
    assert (code, err.splitlines()[-1]) == (2, (
        f'ERROR: --resume: {last} was validated with another config than '
        f"{cfg_file}: val_dataloader.dataset.ann_file='splits/"
        "official_test.txt' (the checkpoint's: 'splits/"
        "lightweight_test.txt'); default_hooks.checkpoint.save_best='Spe' "
        "(the checkpoint's: 'IoU'). The run keeps its best checkpoint "
        "(default_hooks.checkpoint.save_best='IoU'): the best score so far "
        "comes from the checkpoint and was reached on the checkpoint's "
        'validation, so later epochs would be compared with it on another; '
        'resume with the validation the run was started with (data '
        'locations and loader workers may differ), or train the changed '
        'config in another --work-dir'))
    assert tree_hashes(work) == kept

    def resume(*options, save_best='IoU'):
        changed = Config.fromfile(str(cfg_file))
        changed.merge_from_dict(dict(options))
        changed.default_hooks.checkpoint.save_best = save_best
        check_resume_checkpoint(changed, str(last))

    with pytest.raises(ResumeMismatchError, match=r'val_evaluator\.'
                       r'low_res_size\[0\]=32 \(the checkpoint\'s: 64\)'):
        resume(('val_evaluator.low_res_size', (32, 32)))
    # Loader workers and data locations of the validation may differ.
    resume(('val_dataloader.num_workers', 1),
           ('val_dataloader.dataset.data_root', str(tiny_isic) + '/'))
    # A run that keeps no best checkpoint has no score to compare with.
    stored = Config.fromstring(cfg.pretty_text, file_format='.py')
    stored.default_hooks.checkpoint.save_best = None
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(epoch=1, iter=3, cfg=stored.pretty_text)), last)
    resume(('val_evaluator.low_res_size', (32, 32)), save_best=None)


@pytest.mark.slow
def test_resume_of_a_run_that_starts_from_pretrained_weights(
        tiny_isic, tmp_path, capsys):
    """A config with ``load_from`` (weights to fine-tune from, no training
    state): mmengine resumes from ``load_from`` when it is set, so
    ``--resume`` ended in a ``KeyError: 'meta'`` traceback, exit 1, and the
    run could not be continued. Now it continues from the work dir's newest
    checkpoint, or starts anew from the weights when there is none."""
    import uuid

    from mmseg_dsnet.compat import safe_torch_load
    train = load_tool('train.py').main
    base = write_tiny_config(tmp_path / 'tiny_dsnet.py', tiny_isic, epochs=2)
    work = tmp_path / 'work'
    code, err = run_cli(train, [base, '--work-dir', tmp_path / 'pre',
                                '--cfg-options', 'train_cfg.max_epochs=1'],
                        capsys)
    assert code == 0, err[-2000:]
    weights = tmp_path / 'weights.pth'
    state = safe_torch_load(str(tmp_path / 'pre' / 'epoch_1.pth'))
    torch.save({'state_dict': state['state_dict']}, weights)
    cfg = tmp_path / 'finetune.py'
    cfg.write_text(f"_base_ = './tiny_dsnet.py'\nload_from = '{weights}'\n")

    def run(*options):
        """The run's console output (the notes come before its log)."""
        capsys.readouterr()
        train([str(cfg), '--work-dir', str(work), '--resume',
               '--cfg-options', f'experiment_name=ft_{uuid.uuid4().hex[:8]}',
               *options])
        captured = capsys.readouterr()
        return captured.out + captured.err

    err = run('train_cfg.max_epochs=1')
    assert (f'--resume: {work} holds no checkpoint to resume from; the run '
            f'starts anew from load_from {weights}') in err
    assert safe_torch_load(str(work / 'epoch_1.pth'))['meta']['epoch'] == 1
    err = run()
    assert (f'load_from {weights} holds weights only, no training state to '
            f'resume: --resume continues the run in {work} from '
            f'{work}/epoch_1.pth') in err
    assert 'resumed epoch: 1' in err
    assert safe_torch_load(str(work / 'epoch_2.pth'))['meta']['epoch'] == 2


def test_test_tool_refuses_images_the_checkpoint_trained_on(
        tiny_isic, tmp_path, capsys):
    """A checkpoint tested on a split that shares images with its training
    split (an official-protocol run tested with a lightweight config, a
    split given with --cfg-options) gave figures on images it learned from
    as test figures, exit 0. Refused (its training split is read from
    ``meta['cfg']``) before the work dir is made, unless
    ``--allow-training-images``."""
    import mmseg_dsnet  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope
    cfg_file = write_tiny_config(tmp_path / 'tiny_dsnet.py', tiny_isic)
    cfg = Config.fromfile(str(cfg_file))
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'epoch_2.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(epoch=2, iter=6, cfg=cfg.pretty_text)), ckpt)
    train_split = tiny_isic / 'splits' / 'lightweight_train.txt'
    scored = tiny_isic / 'splits' / 'official_val.txt'
    shared = [i for i in scored.read_text().split()
              if i in set(train_split.read_text().split())]
    assert 0 < len(shared) < len(scored.read_text().split())
    work = tmp_path / 'work'
    argv = [cfg_file, ckpt, '--work-dir', work, '--cfg-options',
            'test_dataloader.dataset.ann_file=splits/official_val.txt']
    code, err = run_cli(load_tool('test.py').main, argv, capsys)
    assert (code, err) == (2, (
        f'ERROR: checkpoint {ckpt} was trained on {len(shared)} of the '
        f'{len(scored.read_text().split())} images that {cfg_file} scores '
        f'({scored}: {", ".join(shared[:3])}); its training split is '
        f"{train_split} (its training config, meta['cfg']). Test figures "
        'on images the model learned from favour it. Test it on a split it '
        'did not train on, or pass --allow-training-images to score them '
        'anyway\n'))
    assert not work.exists()
    # The flag scores them anyway.
    code, err = run_cli(load_tool('test.py').main,
                        argv + ['--allow-training-images'], capsys)
    assert code == 0, err[-2000:]
    record = json.loads((work / 'test_metrics.json').read_text())
    assert record['split_file'] == str(scored)


def test_resume_refuses_another_number_of_processes(tiny_isic, tmp_path,
                                                    monkeypatch):
    """``tools/dist_train.sh CONFIG 2 --resume`` of a run one process
    trained (or the reverse) went on with twice (half) the images per step
    and half (twice) the steps per epoch, exit 0: mmengine compares only a
    ``gpu_ids`` key these configs lack. Checkpoints now record the number
    of processes (``meta['world_size']``) and a resume with another is
    refused; older checkpoints without it pass."""
    from types import SimpleNamespace

    import mmseg_dsnet  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    from mmseg_dsnet.engine.hooks import StrictCheckpointHook
    from mmseg_dsnet.engine.resume_check import (ResumeMismatchError,
                                                 check_resume_checkpoint)
    checkpoint = {'meta': {'epoch': 1}}
    StrictCheckpointHook().before_save_checkpoint(
        SimpleNamespace(world_size=2), checkpoint)
    assert checkpoint['meta'] == {'epoch': 1, 'world_size': 2}

    cfg_file = write_tiny_config(tmp_path / 'tiny_dsnet.py', tiny_isic,
                                 epochs=2)
    cfg = Config.fromfile(str(cfg_file))
    with DefaultScope.overwrite_default_scope('mmseg'):
        state = MODELS.build(cfg.model).state_dict()
    path = tmp_path / 'epoch_1.pth'

    def save(**meta):
        torch.save(dict(state_dict=state, meta=dict(
            epoch=1, iter=3, cfg=cfg.pretty_text, **meta)), path)

    save(world_size=2)
    with pytest.raises(ResumeMismatchError, match=(
            f'^--resume: {path} was trained by 2 processes and this run has '
            '1: with train_dataloader.batch_size images per process and '
            'step, the resumed epochs would train with another batch size '
            r'and number of steps than the run did; resume with 2 processes '
            r'\(tools/dist_train.sh CONFIG N, or tools/train.py for one\)$')):
        check_resume_checkpoint(cfg, str(path))
    # Two torchrun processes resume it; one process resumes its own.
    monkeypatch.setenv('WORLD_SIZE', '2')
    check_resume_checkpoint(Config(dict(cfg.to_dict(), launcher='pytorch'),
                                   filename=str(cfg_file)), str(path))
    save(world_size=1)
    check_resume_checkpoint(cfg, str(path))
    save()
    check_resume_checkpoint(cfg, str(path))


def test_benchmark_json_records_the_warm_up_and_the_torch_it_ran(capsys):
    """``benchmark.py --json`` (kept for ``leaderboard.py collect
    --gpu-json``) did not record the warm-up calls before its figures nor
    the torch it ran: figures after one warm-up call read like those after
    ten."""
    import torch
    bench = load_tool('analysis_tools/benchmark.py')
    config = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    capsys.readouterr()
    bench.main([config, '--shape', '32', '--repeat', '1', '--warmup', '5',
                '--batch-size', '1', '--throughput-repeat', '1',
                '--threads', '1', '--json'])
    result = json.loads(capsys.readouterr().out)
    assert result['latency_ms']['warmup'] == 5
    assert result['throughput']['warmup'] == 2
    assert result['torch'] == torch.__version__
    assert 'cuda' not in result
    # The throughput warm-up is half the latency one, at least 2: 7 // 2.
    from mmseg_dsnet.analysis.benchmark import benchmark
    from mmseg_dsnet.engine.preflight import load_config
    result = benchmark(load_config(config), shape=(32, 32), batch_size=1,
                       warmup=7, repeat=1, throughput_repeat=1)
    assert result['latency_ms']['warmup'] == 7
    assert result['throughput']['warmup'] == 3


def test_benchmark_names_the_cpu_it_timed_on():
    """A CPU benchmark recorded ``platform.processor() or
    platform.machine()``, which is ``x86_64`` on Linux for every CPU: the
    leaderboard's records (``cpu_benchmark.cpu``) could not tell two
    machines' latencies apart."""
    from mmengine.config import Config

    from mmseg_dsnet.analysis.benchmark import benchmark
    cfg = Config.fromfile(str(REPO / 'configs/dsnet/dsnet_isic2017.py'))
    result = benchmark(cfg, shape=(32, 32), batch_size=1, warmup=1,
                       repeat=1, throughput_repeat=1, threads=1)
    with open('/proc/cpuinfo') as file:
        names = [line.split(':', 1)[1].strip() for line in file
                 if line.startswith('model name')]
    assert result['device_name'] == names[0]
    assert result['device_name'] not in ('x86_64', 'aarch64', '')


def test_profile_train_step_prints_what_it_timed(capsys):
    """The step times were printed without the batch size, input shape,
    steps, threads or (on the CPU) the device they were measured with."""
    import torch
    profile = load_tool('analysis_tools/profile_train_step.py')
    config = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    profile.main([config, '--device', 'cpu', '--shape', '32', '48',
                  '--batch-size', '2', '--steps', '1', '--variants',
                  'eager', '--top', '1', '--profile-steps', '0'])
    printed = capsys.readouterr().out.splitlines()
    # --profile-steps 0: the step times only, no profiler table.
    assert not any(line.startswith('torch.profiler') for line in printed)
    timed = next(i for i, line in enumerate(printed)
                 if line.startswith('eager ') and 'ms/step' in line)
    header = next(line for line in printed[:timed]
                  if line.startswith('batch size'))
    assert header.startswith('batch size 2, input 2x3x32x48 (random uint8 '
                             'images and masks; --shape: the config trains '
                             'at 256x256), 1 timed step after 3 '
                             'untimed; device cpu ('), header
    from mmseg_dsnet.utils.messages import counted
    assert f'{counted(torch.get_num_threads(), "CPU thread")}; torch' in \
        header


def test_profile_train_step_needs_a_shape_without_a_train_resize(
        tmp_path, capsys):
    """A config whose training pipeline has no Resize to a scale (images
    trained at their own size, a set resized beforehand) had its step
    timed at 256x256 without a word, as the config's step. Now refused
    without --shape, before anything is built; with one, the line says
    the config trains each image at its own size."""
    from mmseg_dsnet.engine.cli_errors import UserError
    profile = load_tool('analysis_tools/profile_train_step.py')
    demo = REPO / 'configs/demo/dsnet_synthetic_cpu.py'
    config = tmp_path / 'own_size.py'
    config.write_text(
        f"_base_ = '{demo}'\ntrain_dataloader = dict(dataset=dict(pipeline=["
        "dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), "
        "dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]))\n")
    with pytest.raises(UserError, match=(
            f'^{config}: its training pipeline has no Resize to a scale, so '
            'it trains each image at its own size; give the size to time at '
            'with --shape H W$')):
        profile.main([str(config), '--device', 'cpu', '--steps', '1'])
    assert 'batch size' not in capsys.readouterr().out
    args = profile.parse_args([str(config), '--device', 'cpu',
                               '--shape', '32'])
    args.shape, args.train_size = (32, 32), None
    assert '(random uint8 images and masks; --shape: the config trains ' \
        'each image at its own size)' in profile.setup_line(args, False)


@pytest.fixture(scope='module')
def square_profile():
    """What ``profile_train_step.py --shape 32 --variants
    eager+channels_last`` printed (exit 0): one run for the tests of its
    one-number shape and of its profiler table's title (torch.profiler's
    table of ten steps takes most of a run's time)."""
    config = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    return run_tool_in_process(
        'tools/analysis_tools/profile_train_step.py', config, '--device',
        'cpu', '--shape', '32', '--batch-size', '2', '--steps', '1',
        '--variants', 'eager+channels_last', '--top', '2',
        '--profile-steps', '1', check=True).stdout


def test_profile_train_step_takes_one_shape_number_for_a_square(
        square_profile):
    """``--shape 32`` (one number, as get_flops.py, benchmark.py and
    MMSegmentation's get_flops.py take it) was refused by argparse
    (``expected 2 arguments``, exit 2): every tool with ``--shape`` now
    takes one number (a square) or two."""
    assert 'batch size 2, input 2x3x32x32 (' in square_profile, \
        square_profile


def test_profile_train_step_names_the_form_it_profiled(square_profile):
    """The profiler's table, always of the plain eager step, came right
    under the timed forms without a word, so after ``--variants
    eager+channels_last`` it read as that form's kernels."""
    printed = square_profile.splitlines()
    timed = next(i for i, line in enumerate(printed)
                 if line.startswith('eager+channels_last ')
                 and 'ms/step' in line)
    title = next(i for i, line in enumerate(printed)
                 if line.startswith('torch.profiler of '))
    assert title > timed
    assert printed[title] == (
        'torch.profiler of 1 step of the plain eager form (no CUDA graph, '
        'float32, channels-first inputs), whatever --variants timed; top 2 '
        'by cpu_time_total:')
    assert 'Self CPU' in printed[title + 2]


def test_profile_train_step_never_prints_a_slow_step_as_0_img_per_s():
    """A CPU step of batch 2 in 5.8 s (0.35 img/s) printed ``0 img/s``
    (``.0f``): a throughput of nothing, beside a real step time."""
    profile = load_tool('analysis_tools/profile_train_step.py')
    line = profile.step_line('eager', 5.764, 2)
    assert line.split()[1:] == ['5764.00', 'ms/step', '0.347', 'img/s'], line
    assert profile.step_line('graph', 0.0125, 8).split()[3] == '640'
    assert profile.step_line('eager', 0.1, 8).split()[3] == '80'
    assert profile.step_line('eager', 0.65, 8).split()[3] == '12.3'


def test_profile_train_step_defaults_to_the_configs_training_size(capsys):
    """Without --shape the step was timed at 256x256 whatever the config:
    the 128 px demo config's step at 4x its work, its header reading
    ``input 2x3x256x256``, exit 0. Now the config's training size."""
    profile = load_tool('analysis_tools/profile_train_step.py')
    demo = str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')
    profile.main([demo, '--device', 'cpu', '--batch-size', '2', '--steps',
                  '1', '--variants', 'eager', '--top', '1',
                  '--profile-steps', '0'])
    header = next(line for line in capsys.readouterr().out.splitlines()
                  if line.startswith('batch size'))
    assert header.startswith('batch size 2, input 2x3x128x128 (random uint8 '
                             'images and masks), 1 timed step after'), header


def test_profile_train_step_refuses_a_form_both_eager_and_graph():
    """``--variants eager+graph`` was timed as a CUDA graph and printed as
    ``eager+graph``; now refused before anything is built, on any device
    (on the CPU it was refused only for its graph)."""
    from mmseg_dsnet.engine.cli_errors import UserError
    profile = load_tool('analysis_tools/profile_train_step.py')
    config = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    with pytest.raises(UserError, match=r'^--variants graph\+bf16\+eager: a '
                       'form is eager or a CUDA graph, not both'):
        profile.main([config, '--device', 'cpu', '--variants', 'eager',
                      'graph+bf16+eager'])


class _CountedNet(torch.nn.Module):
    """conv 3->4 3x3 (8x8 out), GroupNorm, global mean, linear 4->5,
    matmul with a (5, 2) parameter."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.norm = torch.nn.GroupNorm(2, 4)
        self.fc = torch.nn.Linear(4, 5)
        self.proj = torch.nn.Parameter(torch.ones(5, 2))

    def forward(self, x):
        x = self.norm(self.conv(x)).mean(dim=(2, 3))
        return torch.matmul(self.fc(x), self.proj)


def test_count_splits_weight_layers_from_the_full_count():
    """``flops_weight_layers`` is the papers' count: conv, linear and
    matrix products, one multiply-add = one FLOP; the full count adds the
    normalisation on top."""
    from mmseg_dsnet.analysis.flops import count
    result = count(_CountedNet().eval(), (8, 8))
    conv = 4 * 8 * 8 * 3 * 3 * 3
    linear = 4 * 5
    matmul = 5 * 2
    assert result['flops_weight_layers'] == conv + linear + matmul
    assert result['flops'] > result['flops_weight_layers']
    # conv 3*4*9 + 4, GroupNorm 2 * 4, linear 4*5 + 5, proj 10.
    assert result['params'] == 112 + 8 + 25 + 10
    assert result['table'] == ''


def hold_runner_clock(monkeypatch):
    """Hold the clock mmengine's Runner reads (it names a run's log folder
    after the second it started) at the present second, as for runs
    started together; returns that second."""
    import time
    import types

    from mmengine.runner import runner as mmengine_runner
    second = time.time()
    clock = types.SimpleNamespace(**{
        name: getattr(time, name) for name in dir(time)
        if not name.startswith('_')})
    clock.time = lambda: second
    monkeypatch.setattr(mmengine_runner, 'time', clock)
    return second


def test_two_tests_started_in_one_second_keep_their_own_logs(
        tiny_config, tiny_isic, tmp_path, monkeypatch):
    """Two ``tools/test.py`` runs into one work dir that start in the same
    second: mmengine names the log folder after that second, so they shared
    it, the second log was opened over the first (both runs' lines mixed)
    and one ``<ts>.json`` of metrics replaced the other, exit 0. The clock
    mmengine's Runner reads is held at one second here, so the runs below
    start in it as runs started together would; a training started then
    too gets a folder of its own."""
    import time

    import numpy as np
    from conftest import make_lesion_checkpoint
    checkpoint = make_lesion_checkpoint(
        str(tiny_config), tmp_path / 'net.pth',
        np.zeros((256, 256, 3), np.uint8))
    second = hold_runner_clock(monkeypatch)
    work_dir = tmp_path / 'work'
    for index in (1, 2):
        run_tool_in_process('tools/test.py', tiny_config, checkpoint,
                            '--work-dir', work_dir, '--metrics-out',
                            tmp_path / f'metrics{index}.json', check=True)
    run_tool_in_process('tools/train.py', write_tiny_config(
        tmp_path / 'one_epoch.py', tiny_isic, epochs=1), '--work-dir',
        work_dir, check=True)
    stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime(second))
    assert sorted(p.name for p in work_dir.iterdir() if p.is_dir()) == [
        stamp, f'{stamp}_1', f'{stamp}_2']
    for name in (stamp, f'{stamp}_1'):
        log = (work_dir / name / f'{name}.log').read_text()
        assert log.count('Load checkpoint from') == 1
        assert 'Epoch(train)' not in log
        assert (work_dir / name / f'{name}.json').is_file()
    log = (work_dir / f'{stamp}_2' / f'{stamp}_2.log').read_text()
    assert 'Epoch(train)' in log and 'Load checkpoint from' not in log



CUSTOM_RUNNER = """
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


@RUNNERS.register_module(force=True)
class {name}(Runner):
    \"\"\"A config's own runner: says in its log that it ran.\"\"\"

    def train(self):
        self.logger.info('{name} trained')
        return super().train()

    def test(self):
        self.logger.info('{name} tested')
        return super().test()
"""


def write_own_runner_config(tmp_path, monkeypatch, base, name, plugin,
                            source):
    """Write the module ``plugin`` (``source``, which registers the runner
    class ``name``) importable from ``tmp_path``, and the config
    ``tmp_path/own_runner.py`` of ``base`` whose ``runner_type`` is
    ``name``, imported by its ``custom_imports``; returns its path."""
    (tmp_path / f'{plugin}.py').write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, plugin, raising=False)
    config = tmp_path / 'own_runner.py'
    config.write_text(
        f"_base_ = '{base}'\n"
        f"runner_type = '{name}'\n"
        "custom_imports = dict(imports=['mmseg_dsnet', "
        f"'{plugin}'], allow_failed_imports=False)\n")
    return config


def test_runs_of_a_config_with_its_own_runner_type_keep_their_own_logs(
        tiny_config, tiny_isic, tmp_path, monkeypatch):
    """A config's own ``runner_type`` (a Runner subclass registered by a
    ``custom_imports`` module) was built as it was by ``tools/train.py`` (and
    replaced by ours in ``tools/test.py``): a test and a training started
    in one second into one work dir shared mmengine's log folder, one log
    holding both runs, exit 0. Each run now is of the config's runner class
    and has a folder of its own; a runner_type that is no Runner is
    refused before any folder is made."""
    import time

    import numpy as np
    from conftest import make_lesion_checkpoint
    from mmengine.registry import RUNNERS

    from mmseg_dsnet.engine.log_dir import build_runner
    from mmseg_dsnet.utils.errors import UserError
    name = 'AuditLoggingRunner'
    base = write_tiny_config(tmp_path / 'one_epoch.py', tiny_isic, epochs=1)
    config = write_own_runner_config(tmp_path, monkeypatch, base, name,
                                     'audit_runner_plugin',
                                     CUSTOM_RUNNER.format(name=name))
    checkpoint = make_lesion_checkpoint(
        str(tiny_config), tmp_path / 'net.pth',
        np.zeros((256, 256, 3), np.uint8))
    second = hold_runner_clock(monkeypatch)
    work_dir = tmp_path / 'work'
    try:
        run_tool_in_process('tools/test.py', config, checkpoint,
                            '--work-dir', work_dir, '--metrics-out',
                            tmp_path / 'metrics.json', check=True)
        run_tool_in_process('tools/train.py', config, '--work-dir',
                            work_dir, check=True)
    finally:
        RUNNERS._module_dict.pop(name, None)
    stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime(second))
    assert sorted(p.name for p in work_dir.iterdir() if p.is_dir()) == [
        stamp, f'{stamp}_1']
    log = (work_dir / stamp / f'{stamp}.log').read_text()
    assert f'{name} tested' in log and 'Epoch(train)' not in log
    assert (work_dir / stamp / f'{stamp}.json').is_file()
    log = (work_dir / f'{stamp}_1' / f'{stamp}_1.log').read_text()
    assert f'{name} trained' in log and 'Load checkpoint from' not in log
    # FlexibleRunner keeps its log folder in its strategy: refused.
    from mmengine.config import Config
    cfg = Config.fromfile(str(tiny_config))
    cfg.work_dir = str(tmp_path / 'flexible')
    cfg.runner_type = 'FlexibleRunner'
    with pytest.raises(UserError, match=f'^config {tiny_config}: '
                       "runner_type 'FlexibleRunner' is not a subclass of "
                       "mmengine's Runner"):
        build_runner(cfg)
    assert not (tmp_path / 'flexible').exists()
    # The tools refuse it among their checks, before the work dir is made.
    flexible = tmp_path / 'flexible_runner.py'
    flexible.write_text(f"_base_ = '{base}'\nrunner_type = 'FlexibleRunner'\n")
    for tool, args in (('tools/train.py', ()),
                       ('tools/test.py', (checkpoint, ))):
        run = run_tool_in_process(tool, flexible, *args, '--work-dir',
                                  tmp_path / 'flexible')
        assert run.returncode == 2, run.output[-2000:]
        assert run.stderr.strip().splitlines()[-1].startswith(
            f"ERROR: config {flexible}: runner_type 'FlexibleRunner' is "
            "not a subclass of mmengine's Runner"), run.output[-2000:]
        assert not (tmp_path / 'flexible').exists()


def test_build_runner_gives_each_kind_of_runner_type_its_own_log_folder(
        tiny_config, tmp_path, monkeypatch):
    """``build_runner`` for each runner a config may name: mmengine's
    ``Runner`` is ``SeparateLogDirRunner``; a subclass of
    ``SeparateLogDirRunner`` is built as it is; a runner registered in the
    config's scope (mmseg's registry) is found and built as a subclass of
    ``SeparateLogDirRunner`` then of its own (made once, so its runs are of
    one class); a name no registry holds is refused as such, before any
    folder is made."""
    from mmengine.config import Config
    from mmengine.registry import RUNNERS, DefaultScope
    from mmengine.runner import Runner
    from mmseg.registry import RUNNERS as MMSEG_RUNNERS

    from mmseg_dsnet.engine.log_dir import SeparateLogDirRunner, build_runner
    from mmseg_dsnet.utils.errors import UserError

    class AuditOwnLogRunner(SeparateLogDirRunner):
        pass

    class AuditScopedRunner(Runner):
        pass

    def build(runner_type, name):
        cfg = Config.fromfile(str(tiny_config))
        cfg.work_dir = str(tmp_path / name)
        cfg.runner_type = runner_type
        return build_runner(cfg)

    assert type(build('Runner', 'by_name')) is SeparateLogDirRunner
    RUNNERS.register_module(module=AuditOwnLogRunner, force=True)
    MMSEG_RUNNERS.register_module(module=AuditScopedRunner, force=True)
    try:
        # No scope current yet, as in a new tools/train.py process: the
        # config's default_scope finds mmseg's registry.
        monkeypatch.setattr(DefaultScope, '_instance_dict', {})
        runs = [build('AuditScopedRunner', 'scoped1')]
        assert type(build('AuditOwnLogRunner', 'own')) is AuditOwnLogRunner
        runs.append(build('AuditScopedRunner', 'scoped2'))
    finally:
        RUNNERS._module_dict.pop('AuditOwnLogRunner', None)
        MMSEG_RUNNERS._module_dict.pop('AuditScopedRunner', None)
    assert type(runs[0]) is type(runs[1])
    assert type(runs[0]).__mro__[1:3] == (SeparateLogDirRunner,
                                          AuditScopedRunner)
    assert [os.path.dirname(r.log_dir) for r in runs] == [
        str(tmp_path / 'scoped1'), str(tmp_path / 'scoped2')]
    with pytest.raises(UserError, match=f'^config {tiny_config}: '
                       "runner_type 'AuditNoSuchRunner' is not a registered "
                       'runner'):
        build('AuditNoSuchRunner', 'missing')
    assert not (tmp_path / 'missing').exists()


def test_get_flops_needs_a_shape_for_a_config_of_no_one_input_size(
        tmp_path, capsys):
    """A config whose test Resize keeps the aspect ratio, or whose model
    slides windows (mmseg's stock configs), was counted (benchmark.py:
    timed) without --shape at its Resize scale and labelled as the size it
    runs the model at, exit 0 (mmseg's DRIVE UNet at 565x584, which it only
    ever sees as 64x64 windows); a size the model refuses named a --shape
    never given."""
    from mmseg_dsnet.engine.cli_errors import UserError
    flops = load_tool('analysis_tools/get_flops.py')
    bench = load_tool('analysis_tools/benchmark.py')
    timing = ['--repeat', '1', '--warmup', '1', '--batch-size', '1',
              '--throughput-repeat', '1', '--threads', '1']
    demo = REPO / 'configs/demo/dsnet_synthetic_cpu.py'
    pipeline = ("[dict(type='LoadImageFromFile'), dict(type='Resize', "
                "scale={}, keep_ratio={}), dict(type='LoadAnnotations'), "
                "dict(type='PackSegInputs')]")
    keep = tmp_path / 'keep_ratio.py'
    keep.write_text(f"_base_ = '{demo}'\ntest_dataloader = dict(dataset="
                    f"dict(pipeline={pipeline.format((96, 64), True)}))\n")
    slide = tmp_path / 'slide.py'
    slide.write_text(f"_base_ = '{demo}'\nmodel = dict(test_cfg=dict("
                     "mode='slide', crop_size=(64, 64), stride=(32, 32)))\n")
    for config, why in ((keep, 'its test Resize keeps the aspect ratio '
                         r'\(scale=\(96, 64\), keep_ratio=True\)'),
                        (slide, "model.test_cfg.mode is 'slide'")):
        with pytest.raises(UserError, match=f'^config {config} runs its '
                           f'network at no one input size \\({why}.*give '
                           'the size to count at with --shape H W$'):
            flops.main([str(config), '--json'])
        # At a --shape given, labelled as such alone.
        result = flops.main([str(config), '--shape', '64'])
        assert result['config_input_size'] is None
        assert 'Input shape: (64, 64) (--shape)\n' in capsys.readouterr().out
        # benchmark.py timed it at the Resize scale alike.
        with pytest.raises(UserError, match=f'^config {config} runs its '
                           f'network at no one input size \\({why}.*give '
                           'the size to time at with --shape H W$'):
            bench.main([str(config), *timing])
        result = bench.main([str(config), *timing, '--shape', '64'])
        assert result['config_input_size'] is None
        assert 'input: random 64x64 (--shape)\n' in capsys.readouterr().out
    # A size of the config's own that the model refuses names where it
    # came from (it said '--shape 100 100', never given).
    tiny = tmp_path / 'segformer2.py'
    tiny.write_text(
        f"_base_ = '{REPO / 'configs/segformer/segformer_mit-b0_isic2017.py'}'"
        "\ntest_dataloader = dict(dataset=dict(pipeline="
        f"{pipeline.format((2, 2), False)}))\n")
    with pytest.raises(UserError, match="^the config's input size 2x2 "
                       r'\(its test Resize\): the model cannot take a '
                       '2x2 input'):
        flops.main([str(tiny), '--json'])


def test_flops_and_benchmark_need_a_shape_without_a_test_resize(
        tmp_path):
    """A config whose test pipeline has no Resize to a scale (images scored
    at their own size; the data preprocessor's ``size`` only pads up to
    it) was counted and timed without --shape at 256x256 and labelled as
    the size it runs the model at, exit 0. Now both need --shape."""
    from mmseg_dsnet.deploy.deployable import no_one_input_size
    from mmseg_dsnet.engine.cli_errors import UserError
    from mmseg_dsnet.engine.preflight import load_config
    flops = load_tool('analysis_tools/get_flops.py')
    bench = load_tool('analysis_tools/benchmark.py')
    demo = REPO / 'configs/demo/dsnet_synthetic_cpu.py'
    config = tmp_path / 'own_size.py'
    config.write_text(
        f"_base_ = '{demo}'\ntest_dataloader = dict(dataset=dict(pipeline=["
        "dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), "
        "dict(type='PackSegInputs')]))\n")
    why = ('its test pipeline has no Resize to a scale: each image runs at '
           'its own size')
    assert no_one_input_size(load_config(str(config))) == why
    # The demo config itself runs the network at its Resize scale.
    assert no_one_input_size(load_config(str(demo))) is None
    with pytest.raises(UserError, match=f'^config {config} runs its '
                       f'network at no one input size \\({why}\\); give '
                       'the size to count at with --shape H W$'):
        flops.main([str(config), '--json'])
    with pytest.raises(UserError, match=f'^config {config} runs its '
                       f'network at no one input size \\({why}\\); give '
                       'the size to time at with --shape H W$'):
        bench.main([str(config), '--repeat', '1', '--warmup', '1'])


def test_no_one_input_size_judges_only_a_pipeline_it_can_read():
    """A config without a test pipeline passes (input_size_of names
    256x256), and so does a pipeline holding transforms that are objects,
    not dicts (their scale cannot be read): only a pipeline of dicts
    without a Resize to a scale is refused."""
    from mmcv.transforms import LoadImageFromFile, Resize
    from mmengine.config import Config

    from mmseg_dsnet.deploy.deployable import no_one_input_size
    model = dict(type='EncoderDecoder', test_cfg=dict(mode='whole'))
    assert no_one_input_size(Config(dict(model=model))) is None
    assert no_one_input_size(Config(dict(
        model=model, test_pipeline=[]))) is None
    objects = [dict(type='LoadImageFromFile'), Resize(scale=(64, 64))]
    assert no_one_input_size(dict(model=model,
                                  test_pipeline=objects)) is None
    assert no_one_input_size(dict(
        model=model, test_pipeline=[LoadImageFromFile()])) is None
    assert no_one_input_size(Config(dict(model=model, test_pipeline=[
        dict(type='LoadImageFromFile')]))) == (
        'its test pipeline has no Resize to a scale: each image runs at '
        'its own size')


def test_a_training_and_its_final_test_keep_their_own_logs(
        tiny_isic, tmp_path, monkeypatch):
    """``check_real_data.py`` (``train_and_evaluate``) and the demo train and
    then score the final checkpoint in a runner of its own. Built with
    mmengine's Runner, a training that ended within the second it started
    in shared its log folder with the final test (one log, and the
    training's ``vis_data/config.py`` replaced by the test's config,
    ``load_from`` its checkpoint), and one started in the second of another
    run into the work dir shared that run's folder. Each now claims its
    own. The clock mmengine's Runner reads is held at one second, in which
    another run (its folder made here) started too."""
    import time

    from conftest import write_tiny_config

    from mmseg_dsnet.leaderboard.real_data_check import train_and_evaluate
    second = hold_runner_clock(monkeypatch)
    stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime(second))
    work_dir = tmp_path / 'work'
    (work_dir / stamp).mkdir(parents=True)
    (work_dir / stamp / f'{stamp}.log').write_text('another run\n')
    config = write_tiny_config(tmp_path / 'dsnet.py', tiny_isic, epochs=1)
    train_and_evaluate(str(config), str(tiny_isic), str(work_dir), epochs=1,
                       train_images=2, test_images=1, crop_size=32)
    assert sorted(p.name for p in work_dir.iterdir() if p.is_dir()) == [
        stamp, f'{stamp}_1', f'{stamp}_2']
    assert sorted(os.listdir(work_dir / stamp)) == [f'{stamp}.log']
    assert (work_dir / stamp / f'{stamp}.log').read_text() == 'another run\n'
    trained, tested = work_dir / f'{stamp}_1', work_dir / f'{stamp}_2'
    train_log = (trained / f'{stamp}_1.log').read_text()
    test_log = (tested / f'{stamp}_2.log').read_text()
    assert 'Epoch(train)' in train_log and 'Epoch(test)' not in train_log
    assert 'Epoch(test)' in test_log and 'Epoch(train)' not in test_log
    assert 'load_from = None' in (trained / 'vis_data' / 'config.py'
                                  ).read_text()
    assert (tested / 'tested_config.py').is_file()


def test_runs_of_one_config_name_in_one_second_keep_their_own_visualizers(
        tiny_config, tmp_path, monkeypatch):
    """mmengine hands a Runner the logger, message hub and visualizer named
    as its run (``<config name>_<timestamp>``) if the process holds one: a
    second run of a config of the same name started in the same second
    into another work dir (a final test after its training) took the
    first's, and its ``vis_data`` went into the first run's folder. The
    second run now takes a name (and folder) of its own."""
    import time

    from mmengine.config import Config

    from mmseg_dsnet.engine.log_dir import SeparateLogDirRunner
    second = hold_runner_clock(monkeypatch)
    stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime(second))
    runners = []
    for name in ('first', 'second'):
        cfg = Config.fromfile(str(tiny_config))
        cfg.work_dir = str(tmp_path / name)
        runners.append(SeparateLogDirRunner.from_cfg(cfg))
    first, later = runners
    assert first.timestamp == stamp and later.timestamp == f'{stamp}_1'
    assert later.experiment_name != first.experiment_name
    assert later.visualizer is not first.visualizer
    assert later.logger is not first.logger
    assert later.log_dir == str(tmp_path / 'second' / f'{stamp}_1')


def test_a_third_run_and_runs_named_alike_in_one_second_keep_their_own(
        tiny_config, tmp_path, monkeypatch):
    """A third run of one config name in one second takes a third
    visualizer (not the second run's, whose ``vis_data`` it would write
    into), and runs given one ``experiment_name`` (as the tools'
    ``--cfg-options experiment_name=...`` sets it) take names and loggers
    of their own too."""
    import time

    from mmengine.config import Config

    from mmseg_dsnet.engine.log_dir import SeparateLogDirRunner
    second = hold_runner_clock(monkeypatch)
    stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime(second))

    def runners(names, experiment_name=None):
        made = []
        for name in names:
            cfg = Config.fromfile(str(tiny_config))
            cfg.work_dir = str(tmp_path / name)
            if experiment_name is not None:
                cfg.experiment_name = experiment_name
            made.append(SeparateLogDirRunner.from_cfg(cfg))
        return made

    made = runners(('first', 'second', 'third'))
    assert [r.timestamp for r in made] == [stamp, f'{stamp}_1', f'{stamp}_2']
    assert len({id(r.visualizer) for r in made}) == 3
    assert len({r.visualizer.instance_name for r in made}) == 3
    assert made[2].log_dir == str(tmp_path / 'third' / f'{stamp}_2')
    named = runners(('named_a', 'named_b'), experiment_name='named')
    assert [r.timestamp for r in named] == [stamp, f'{stamp}_1']
    assert [r.experiment_name for r in named] == [
        f'named_{stamp}', f'named_{stamp}_1']
    assert named[0].logger is not named[1].logger


def test_log_folders_claimed_are_held_only_while_a_run_may_be_refused(
        tmp_path):
    """``log_dirs_removed_on_refusal`` removes the log folders claimed in
    its block when the run is refused, and no others; the process kept
    every log folder it had ever claimed (one path more per run in a
    long-lived notebook), and now holds none once the blocks end."""
    from mmseg_dsnet.engine import log_dir
    from mmseg_dsnet.utils.errors import UserError
    stamp = '20260101_000000'
    work = tmp_path / 'work'
    assert log_dir.claim_log_dir(str(work), stamp) == stamp
    with log_dir.log_dirs_removed_on_refusal(work):
        assert log_dir.claim_log_dir(str(work), stamp) == f'{stamp}_1'
    with pytest.raises(UserError):
        with log_dir.log_dirs_removed_on_refusal(work):
            assert log_dir.claim_log_dir(str(work), stamp) == f'{stamp}_2'
            raise UserError('refused')
    assert sorted(os.listdir(work)) == [stamp, f'{stamp}_1']
    assert log_dir._CLAIMED == []
    # Nested blocks: a folder claimed in an inner block is one of each
    # open block's; a refused outer run removes it, a refused inner run
    # leaves the outer one's folder.
    with pytest.raises(UserError):
        with log_dir.log_dirs_removed_on_refusal(work):
            assert log_dir.claim_log_dir(str(work), stamp) == f'{stamp}_2'
            with log_dir.log_dirs_removed_on_refusal(work):
                assert log_dir.claim_log_dir(str(work),
                                             stamp) == f'{stamp}_3'
            raise UserError('refused')
    assert sorted(os.listdir(work)) == [stamp, f'{stamp}_1']
    with log_dir.log_dirs_removed_on_refusal(work):
        assert log_dir.claim_log_dir(str(work), stamp) == f'{stamp}_2'
        with pytest.raises(UserError):
            with log_dir.log_dirs_removed_on_refusal(work):
                assert log_dir.claim_log_dir(str(work),
                                             stamp) == f'{stamp}_3'
                raise UserError('refused')
    assert sorted(os.listdir(work)) == [stamp, f'{stamp}_1', f'{stamp}_2']
    assert log_dir._CLAIMED == []
    # An inner block that ended (claiming nothing, its list equal to the
    # outer one's) leaves the outer block's list in place.
    with pytest.raises(UserError):
        with log_dir.log_dirs_removed_on_refusal(work):
            with log_dir.log_dirs_removed_on_refusal(work):
                pass
            assert log_dir.claim_log_dir(str(work), stamp) == f'{stamp}_3'
            raise UserError('refused')
    assert sorted(os.listdir(work)) == [stamp, f'{stamp}_1', f'{stamp}_2']
    assert log_dir._CLAIMED == []
