"""``train_and_evaluate`` (check_real_data.py, design_sweep.py) scores the
weights its final checkpoint holds."""
import json

import pytest
import torch
from conftest import load_tool, write_tiny_config

from mmseg_dsnet.leaderboard.real_data_check import train_and_evaluate

# A fast average, so that after six iterations it differs from the last
# weights.
EMA_HOOK = '''
custom_hooks = _base_.custom_hooks + [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.5)
]
'''


def _test_py_metrics(config, checkpoint, work_dir):
    out = work_dir / 'metrics.json'
    load_tool('test.py').main([str(config), str(checkpoint), '--work-dir',
                               str(work_dir), '--metrics-out', str(out)])
    return json.loads(out.read_text())['metrics']


def test_a_run_with_weight_averaging_scores_the_average(tiny_isic, tmp_path):
    """The training runner's own ``test()`` re-ran EMAHook's ``before_run``,
    which rebuilt the average from the last weights: the record scored the
    last weights while the checkpoint (and every later tools/test.py) held
    the average."""
    config = write_tiny_config(tmp_path / 'tiny_ema.py', tiny_isic)
    config.write_text(config.read_text() + EMA_HOOK)
    work = tmp_path / 'work'
    result = train_and_evaluate(str(config), str(tiny_isic), str(work),
                                epochs=2, seed=0, lr=0.02)
    checkpoint = work / 'epoch_2.pth'
    record = json.loads((work / 'test_metrics.json').read_text())
    assert record['checkpoint'] == str(checkpoint)
    # The checkpoint's state_dict is the average; EMAHook keeps the last
    # weights under ema_state_dict's 'module.' keys.
    saved = torch.load(checkpoint, map_location='cpu', weights_only=False)
    last = {k[len('module.'):]: v
            for k, v in saved['ema_state_dict'].items()
            if k.startswith('module.')}
    weight = 'decode_head.conv_seg.weight'
    assert not torch.equal(saved['state_dict'][weight], last[weight])
    dumped = work / 'tiny_ema.py'
    average = _test_py_metrics(dumped, checkpoint, tmp_path / 'average')
    last_only = tmp_path / 'last.pth'
    torch.save(dict(meta=saved['meta'], state_dict=last), last_only)
    of_last = _test_py_metrics(dumped, last_only, tmp_path / 'last')
    assert of_last != average  # the two weights score apart here
    assert result['metrics'] == {k: round(v, 2) for k, v in average.items()}
    assert record['metrics'] == average
    # Without subsets, the images of the splits it read, as counted there.
    from mmengine.config import Config
    ran = Config.fromfile(str(dumped))
    for part, images, split in (('train', 'train_images', 'train_split'),
                                ('test', 'test_images', 'eval_split')):
        ann_file = ran[f'{part}_dataloader'].dataset.ann_file
        names = (tiny_isic / ann_file).read_text().split()
        assert (result[split], result[images]) == (ann_file, len(names))


def test_design_record_holds_the_learning_rate_it_ran_with(tiny_isic,
                                                           tmp_path):
    """Design records did not hold the learning rate, so the design table
    pooled runs of ``--lr 0.02`` with runs at the config's own rate."""
    from mmengine.config import Config

    from mmseg_dsnet.leaderboard.real_data_check import write_design_record
    from mmseg_dsnet.leaderboard.records import load_json
    from mmseg_dsnet.utils.code_revision import running_code_revision
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    own = Config.fromfile(config).optim_wrapper.optimizer.lr
    assert own != 0.02
    for lr, expected in ((None, own), (0.02, 0.02)):
        result = train_and_evaluate(str(config), str(tiny_isic),
                                    str(tmp_path / f'work_{lr}'), epochs=1,
                                    seed=0, lr=lr, train_images=8,
                                    test_images=4)
        assert result['lr'] == expected
        write_design_record(str(tmp_path / f'records_{lr}'), 'tiny', result)
        record, = (tmp_path / f'records_{lr}').glob('*.json')
        assert load_json(record)['lr'] == expected
        # The model it trained, which the design tables compare across the
        # seeds of a candidate.
        assert load_json(record)['model_config']['type'] == \
            Config.fromfile(config).model.type
        # The code that trained it.
        assert load_json(record)['code_revision'] == running_code_revision()


def test_design_record_of_a_prefixed_evaluator_keeps_the_figure_names(
        tiny_isic, tmp_path):
    """With ``prefix='lesion'`` in the config's evaluators the record's
    metrics were ``lesion/IoU`` ...: written after the whole run, and
    refused by design_table.py as a record without IoU."""
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    prefixed = tmp_path / 'tiny_prefix.py'
    prefixed.write_text(
        "_base_ = './tiny.py'\n"
        "val_evaluator = dict(prefix='lesion')\n"
        "test_evaluator = dict(prefix='lesion')\n"
        "default_hooks = dict(checkpoint=dict(save_best='lesion/IoU'))\n")
    assert config.exists()
    result = train_and_evaluate(str(prefixed), str(tiny_isic),
                                str(tmp_path / 'work'), epochs=1, seed=0,
                                train_images=8, test_images=4)
    tested = json.loads((tmp_path / 'work' / 'test_metrics.json').read_text())
    assert set(result['metrics']) == {k[len('lesion/'):]
                                      for k in tested['metrics']}
    assert result['metrics']['IoU'] == round(tested['metrics']['lesion/IoU'],
                                             2)


def test_a_run_records_the_input_size_it_ran_at(tiny_isic, tmp_path):
    """Without ``crop_size`` (``check_real_data.py`` without
    ``--crop-size``) the results and the design record said 256 px
    whatever the config's size: the 64 px runs of the tiny config were
    named ``tiny_256px_...`` and shown and compared as 256 px runs."""
    import pytest

    from mmseg_dsnet.leaderboard.real_data_check import write_design_record
    from mmseg_dsnet.utils.errors import UserError
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    result = train_and_evaluate(str(config), str(tiny_isic),
                                str(tmp_path / 'work'), epochs=1, seed=0,
                                train_images=8, test_images=4)
    assert result['input_size'] == 64
    write_design_record(str(tmp_path / 'records'), 'tiny', result)
    record, = (tmp_path / 'records').glob('*.json')
    assert record.name == 'tiny_64px_1ep_seed0.json'
    assert json.loads(record.read_text())['input_size'] == 64
    # A size a record cannot hold (one side) is refused before training.
    wide = tmp_path / 'wide.py'
    wide.write_text(
        "_base_ = './tiny.py'\n"
        "test_dataloader = dict(dataset=dict(pipeline=["
        "dict(type='LoadImageFromFile'), "
        "dict(type='Resize', scale=(96, 64), keep_ratio=False), "
        "dict(type='LoadAnnotations'), dict(type='PackSegInputs')]))\n")
    with pytest.raises(UserError, match='does not run its model at one '
                       'square size \\(train 64x64, test 64x96\\).*give '
                       '--crop-size$'):
        train_and_evaluate(str(wide), str(tiny_isic),
                           str(tmp_path / 'wide_work'), epochs=1, seed=0,
                           train_images=8, test_images=4)
    assert not (tmp_path / 'wide_work').exists()


def test_the_recorded_size_is_the_one_square_side_of_the_run(tmp_path):
    """A record holds one side: a config that trains and tests at one
    size that is not square, or sets no size for its training, is refused
    without ``crop_size`` (its record named one side of it, or the test's
    size for a training at the images' own); ``crop_size`` is the size the
    run is made to take, whatever the config's pipelines."""
    import pytest
    from mmengine.config import Config

    from mmseg_dsnet.leaderboard.real_data_check import design_input_size
    from mmseg_dsnet.utils.errors import UserError
    config = write_tiny_config(tmp_path / 'tiny.py', tmp_path)
    assert design_input_size(Config.fromfile(config)) == 64
    wide = Config.fromfile(config)
    for loader in ('train_dataloader', 'test_dataloader'):
        for step in wide[loader].dataset.pipeline:
            if step['type'] == 'Resize':
                step['scale'] = (96, 64)
    without = Config.fromfile(config)
    pipeline = without.train_dataloader.dataset.pipeline
    without.train_dataloader.dataset.pipeline = [
        step for step in pipeline if step['type'] != 'Resize']
    for cfg, shown in ((wide, 'train 64x96, test 64x96'),
                       (without, 'train no Resize, test 64x64')):
        with pytest.raises(UserError, match=(
                rf'^config file {config} does not run its model at one '
                rf'square size \({shown}\), .*give --crop-size$')):
            design_input_size(cfg, config=str(config))
        assert design_input_size(cfg, 32, str(config)) == 32


def test_a_run_reads_the_split_it_is_named_for(tmp_path):
    """A design config reads the design splits itself: a ``split='test'``
    run of it trains and is scored on the literature's split, as its
    results say, and a ``split='design'`` run of any config on the design
    hold-out. The training validates at no epoch (the final checkpoint is
    scored once, after it: a validation would count as training time)."""
    from mmseg_dsnet.leaderboard.real_data_check import short_schedule_cfg
    design = 'configs/dsnet/design/dsnet-design-b_isic2017.py'
    literature = ('splits/lightweight_train.txt',
                  'splits/lightweight_test.txt',
                  'splits/lightweight_test.txt')
    hold_out = ('splits/lightweight_design_train.txt',
                'splits/lightweight_design_val.txt',
                'splits/lightweight_design_val.txt')
    for config, split, expected in (
            (design, 'test', literature), (design, 'design', hold_out),
            ('configs/dsnet/dsnet_isic2017.py', 'design', hold_out)):
        cfg = short_schedule_cfg(config, str(tmp_path), str(tmp_path / 'w'),
                                 2, None, None, 0, split=split)
        assert tuple(cfg[f'{part}_dataloader'].dataset.ann_file
                     for part in ('train', 'val', 'test')) == expected
        # The rate anneals over the 2 epochs trained, to their end.
        assert cfg.train_cfg.max_epochs == 2
        assert [(s['T_max'], s['end']) for s in cfg.param_scheduler] == [
            (2, 2)]
        assert cfg.train_cfg.val_begin > 2


def test_recorded_figures_are_never_rounded_to_perfect_or_zero():
    """The figures a run's result and design record keep (``recorded_
    metrics``, of ``train_and_evaluate`` and the fast design runs): 2
    decimals (a half-way 87.125 as the tables' ``.2f`` shows it), but an
    imperfect 99.996 % is 99.99, not 100.0, and a non-zero
    0.004 % is 0.01, not 0.0 (Python's ``round`` gave both); an evaluator's
    prefix is taken off, as the tables read the names."""
    from mmseg_dsnet.leaderboard.real_data_check import recorded_metrics
    figures = dict(IoU=99.996, DSC=0.004, Acc=99.995, Sen=100.0, Spe=0.0,
                   TJ=87.125)
    assert recorded_metrics(figures, 'c.py') == dict(
        IoU=99.99, DSC=0.01, Acc=99.99, Sen=100.0, Spe=0.0, TJ=87.12)
    prefixed = {f'val/{k}': v for k, v in figures.items()}
    assert recorded_metrics(prefixed, 'c.py') == recorded_metrics(
        figures, 'c.py')


class _Stopped(Exception):
    """Stands in for a run stopped after its first epoch's checkpoint."""


def test_a_run_stopped_and_resumed_ends_as_the_run_never_stopped(
        tiny_isic, tmp_path, monkeypatch):
    """check_real_data.py and design_sweep.py kept only the final
    checkpoint, so a run stopped part-way (a session's end) started over.
    Now each epoch's checkpoint is kept and ``resume`` continues from it:
    the run ends with the weights and figures of the run that was never
    stopped. A resume of a run that trained all its epochs is refused; a
    folder without a checkpoint starts anew."""
    from mmengine.hooks import CheckpointHook

    from mmseg_dsnet.engine.hooks.atomic_checkpoint_hook import \
        AtomicCheckpointHook
    from mmseg_dsnet.engine.resume_check import ResumeMismatchError
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic)
    run = dict(epochs=2, seed=0, lr=0.02, train_images=4, test_images=2)
    whole = tmp_path / 'whole'
    # Nothing to resume from: the run starts anew.
    never_stopped = train_and_evaluate(str(config), str(tiny_isic),
                                       str(whole), resume=True, **run)

    def stop_after_first_epoch(self, runner):
        CheckpointHook.after_train_epoch(self, runner)
        raise _Stopped

    parts = tmp_path / 'parts'
    with monkeypatch.context() as patch:
        patch.setattr(AtomicCheckpointHook, 'after_train_epoch',
                      stop_after_first_epoch)
        try:
            train_and_evaluate(str(config), str(tiny_isic), str(parts),
                               **run)
        except _Stopped:
            pass
    assert sorted(p.name for p in parts.glob('*.pth')) == ['epoch_1.pth']
    resumed = train_and_evaluate(str(config), str(tiny_isic), str(parts),
                                 resume=True, **run)
    # The second part trained the second epoch only, from the checkpoint.
    from mmseg_dsnet.leaderboard.work_dir import find_runs, parse_log
    infos = [parse_log(part['log']) for part in find_runs(str(parts))[0]]
    assert [(info['first_epoch'], info['resumed']) for info in infos] == [
        (1, False), (2, True)]
    assert resumed['metrics'] == never_stopped['metrics']
    ends = [torch.load(work / 'epoch_2.pth', map_location='cpu',
                       weights_only=False)['state_dict']
            for work in (whole, parts)]
    assert ends[0].keys() == ends[1].keys()
    assert all(torch.equal(ends[0][k], ends[1][k]) for k in ends[0])
    # More epochs would change the cosine schedule: not offered.
    with pytest.raises(ResumeMismatchError,
                       match='nothing is left to train; train anew in '
                       r'another --work-dir$'):
        train_and_evaluate(str(config), str(tiny_isic), str(parts),
                           resume=True, **run)


def test_a_resumed_run_counts_the_time_trained_up_to_its_checkpoints(
        tmp_path):
    """The train time of a resumed run adds, for each earlier part of its
    training, the time up to that part's last checkpoint: the epoch a
    stopped part trained after it is trained again and counted once. An
    earlier training in the same folder (started anew) is not counted."""
    from mmseg_dsnet.leaderboard.work_dir import time_to_last_checkpoints

    def log(ts, lines):
        (tmp_path / ts).mkdir()
        (tmp_path / ts / f'{ts}.log').write_text(''.join(
            f'2024/01/01 {stamp} - mmengine - INFO - {text}\n'
            for stamp, text in lines))

    start = 'Checkpoints will be saved to x'
    assert time_to_last_checkpoints(str(tmp_path)) == 0.0
    # An earlier training, started anew later.
    log('20240101_000000', [('00:00:00', start),
                            ('00:00:05', 'Epoch(train) [1][1/1]  loss: 1'),
                            ('00:00:06', 'Saving checkpoint at 1 epochs')])
    log('20240101_000100', [('00:01:00', start),
                            ('00:01:30', 'Epoch(train) [1][1/1]  loss: 1'),
                            ('00:01:40', 'Saving checkpoint at 1 epochs'),
                            ('00:01:55', 'Epoch(train) [2][1/2]  loss: 1')])
    assert time_to_last_checkpoints(str(tmp_path)) == 40.0
    log('20240101_000200', [('00:02:00', 'resumed epoch: 1, iter: 1'),
                            ('00:02:00', start),
                            ('00:02:20', 'Epoch(train) [2][1/1]  loss: 1'),
                            ('00:02:30', 'Saving checkpoint at 2 epochs'),
                            ('00:02:50', 'Epoch(train) [3][1/1]  loss: 1')])
    assert time_to_last_checkpoints(str(tmp_path)) == 70.0


def test_a_run_at_another_size_predicts_at_it_through_mmseg_inference(
        tiny_isic, tmp_path):
    """``crop_size`` resized the loaders' pipelines only: the run's dumped
    config kept the top-level ``test_pipeline`` (which mmseg's
    ``inference_model`` reads) at the config's 64 px, so the standard API
    ran weights trained at 32 px on 64 px pictures (design runs: 50 %
    pooled IoU on the hold-out where the record said 82 %), exit 0."""
    from mmengine.config import Config
    from mmseg.apis import inference_model, init_model
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    work = tmp_path / 'work'
    train_and_evaluate(str(config), str(tiny_isic), str(work), epochs=1,
                       seed=0, train_images=2, test_images=1, crop_size=32)
    dumped = Config.fromfile(str(work / 'tiny.py'))
    assert dumped.crop_size == (32, 32)
    for pipeline in (dumped.train_pipeline, dumped.test_pipeline,
                     dumped.test_dataloader.dataset.pipeline):
        assert [step['scale'] for step in pipeline
                if step['type'] == 'Resize'] == [(32, 32)]
    model = init_model(str(work / 'tiny.py'), str(work / 'epoch_1.pth'),
                       device='cpu')
    image = next((tiny_isic / 'images').glob('*.jpg'))
    result = inference_model(model, str(image))
    assert result.metainfo['img_shape'] == (32, 32)
