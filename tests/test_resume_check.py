"""mmseg_dsnet.engine.resume_check: which differences between a resumed
run's config and its checkpoint's refuse ``--resume``, on plain config
dicts."""
import copy

from mmseg_dsnet.engine.resume_check import (best_selection_changes,
                                             resume_config_changes)


def _run_config(save_best='IoU'):
    hooks = dict(logger=dict(type='LoggerHook', interval=10),
                 checkpoint=dict(type='CheckpointHook', interval=1))
    if save_best is not None:
        hooks['checkpoint'].update(save_best=save_best, rule='greater')
    return dict(
        model=dict(type='EncoderDecoder', decode_head=dict(threshold=0.5)),
        train_dataloader=dict(batch_size=4, num_workers=2, dataset=dict(
            data_root='data/isic2017/',
            data_prefix=dict(img_path='images', seg_map_path='masks'),
            ann_file='splits/lightweight_train.txt')),
        val_dataloader=dict(batch_size=1, num_workers=2, dataset=dict(
            data_root='data/isic2017/',
            data_prefix=dict(img_path='images', seg_map_path='masks'),
            ann_file='splits/lightweight_test.txt')),
        val_evaluator=dict(type='LesionMetric'),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        param_scheduler=[dict(type='PolyLR', power=1.0, eta_min=0.0)],
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=2,
                       val_interval=1),
        randomness=dict(seed=0),
        auto_scale_lr=dict(enable=False, base_batch_size=4),
        default_hooks=hooks)


def _changed(cfg, path, value):
    cfg = copy.deepcopy(cfg)
    *parents, last = path
    entry = cfg
    for key in parents:
        entry = entry[key]
    entry[last] = value
    return cfg


def test_each_training_part_is_compared():
    """The learning-rate schedule and the batch-size scaling of the
    learning rate are part of what a run trains with, as are the model,
    the loader, the optimizer, the loop and the seed."""
    before = _run_config()
    cases = [
        (('param_scheduler', 0, 'power'), 0.9,
         "param_scheduler[0].power=0.9 (the checkpoint's: 1.0)"),
        (('auto_scale_lr', 'enable'), True,
         "auto_scale_lr.enable=True (the checkpoint's: False)"),
        (('randomness', 'seed'), 3,
         "randomness.seed=3 (the checkpoint's: 0)"),
        (('model', 'decode_head', 'threshold'), 0.3,
         "model.decode_head.threshold=0.3 (the checkpoint's: 0.5)"),
        (('train_dataloader', 'batch_size'), 2,
         "train_dataloader.batch_size=2 (the checkpoint's: 4)"),
        (('train_dataloader', 'dataset', 'ann_file'), 'splits/x.txt',
         "train_dataloader.dataset.ann_file='splits/x.txt' (the "
         "checkpoint's: 'splits/lightweight_train.txt')"),
        (('optim_wrapper', 'optimizer', 'lr'), 0.5,
         "optim_wrapper.optimizer.lr=0.5 (the checkpoint's: 0.001)"),
        (('train_cfg', 'type'), 'IterBasedTrainLoop',
         "train_cfg.type='IterBasedTrainLoop' (the checkpoint's: "
         "'EpochBasedTrainLoop')"),
    ]
    for path, value, expected in cases:
        assert resume_config_changes(_changed(before, path, value),
                                     before) == [expected], path


def test_data_locations_workers_and_validation_timing_may_differ():
    """Where the data lies (``data_root`` and ``data_prefix``), how many
    processes load it, when the run validates and a longer schedule do not
    change what is trained; nor do the validation and hooks, which a run
    without ``save_best`` does not compare."""
    before = _run_config(save_best=None)
    for path, value in [
            (('train_dataloader', 'dataset', 'data_root'), '/mnt/isic/'),
            (('train_dataloader', 'dataset', 'data_prefix', 'img_path'),
             'jpg'),
            (('train_dataloader', 'num_workers'), 0),
            (('train_cfg', 'val_interval'), 5),
            (('train_cfg', 'max_epochs'), 4),
            (('val_dataloader', 'dataset', 'ann_file'), 'splits/x.txt'),
            (('default_hooks', 'logger', 'interval'), 1)]:
        given = _changed(before, path, value)
        assert resume_config_changes(given, before) == [], path
        assert best_selection_changes(given, before) == [], path


def test_the_best_checkpoint_rule_and_a_save_best_set_on_one_side():
    """A run that keeps its best checkpoint compares ``save_best`` and
    ``rule`` (not the other hooks, nor where the validation data lies);
    ``save_best`` set by the resumed run alone, or by the checkpoint's
    alone, is compared too."""
    before = _run_config()
    assert best_selection_changes(
        _changed(before, ('default_hooks', 'checkpoint', 'rule'), 'less'),
        before) == ["default_hooks.checkpoint.rule='less' (the "
                    "checkpoint's: 'greater')"]
    assert best_selection_changes(
        _changed(before, ('default_hooks', 'logger', 'interval'), 1),
        before) == []
    assert best_selection_changes(
        _changed(before, ('val_dataloader', 'dataset', 'data_prefix',
                          'img_path'), 'jpg'), before) == []
    assert best_selection_changes(
        _changed(before, ('val_dataloader', 'dataset', 'ann_file'),
                 'splits/x.txt'), before) == [
        "val_dataloader.dataset.ann_file='splits/x.txt' (the checkpoint's: "
        "'splits/lightweight_test.txt')"]
    without = _run_config(save_best=None)
    assert best_selection_changes(_run_config('Dice'), without) == [
        "default_hooks.checkpoint.rule='greater' (the checkpoint's: "
        "<not set>)",
        "default_hooks.checkpoint.save_best='Dice' (the checkpoint's: "
        "<not set>)"]
    assert best_selection_changes(without, _run_config('Dice')) == [
        "default_hooks.checkpoint.rule=<not set> (the checkpoint's: "
        "'greater')",
        "default_hooks.checkpoint.save_best=<not set> (the checkpoint's: "
        "'Dice')"]


def test_a_finished_iteration_based_run_is_refused(tiny_isic, tmp_path):
    """A run counted in iterations that trained its ``max_iters`` has
    nothing left to train, as an epoch-based one that trained its
    ``max_epochs``; one iteration short it resumes."""
    import pytest
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    import mmseg_dsnet  # noqa: F401
    from conftest import write_tiny_config
    from mmseg_dsnet.engine.resume_check import (ResumeMismatchError,
                                                 check_resume_checkpoint)
    cfg_file = write_tiny_config(tmp_path / 'tiny_dsnet.py', tiny_isic)
    cfg = Config.fromfile(str(cfg_file))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=6)
    with DefaultScope.overwrite_default_scope('mmseg'):
        state = MODELS.build(cfg.model).state_dict()
    path = tmp_path / 'iter_6.pth'
    torch.save(dict(state_dict=state, meta=dict(iter=6)), path)
    with pytest.raises(ResumeMismatchError, match=(
            f'^--resume: {path} has trained 6 iters and {cfg_file} trains 6 '
            r'\(train_cfg.max_iters\): nothing is left to train')):
        check_resume_checkpoint(cfg, str(path))
    cfg.train_cfg.max_iters = 7
    check_resume_checkpoint(cfg, str(path))


def test_training_state_needs_progress_and_optimizer(tmp_path):
    """A checkpoint resumes with both its progress (meta iter) and its
    optimizer state; weights with a meta but no optimizer cannot."""
    import torch

    from mmseg_dsnet.engine.resume_check import holds_training_state
    cases = {'full': (dict(meta=dict(epoch=1, iter=3), optimizer={},
                           state_dict={}), True),
             'no_optimizer': (dict(meta=dict(epoch=1, iter=3),
                                   state_dict={}), False),
             'no_iter': (dict(meta=dict(epoch=1), optimizer={},
                              state_dict={}), False)}
    for name, (content, expected) in cases.items():
        torch.save(content, tmp_path / f'{name}.pth')
        assert holds_training_state(str(tmp_path / f'{name}.pth')) \
            is expected, name


def test_weights_only_load_from_and_an_empty_work_dir_start_anew(tmp_path):
    import torch
    from mmengine.config import Config

    from mmseg_dsnet.engine.resume_check import resume_checkpoint
    weights = tmp_path / 'weights.pth'
    torch.save(dict(state_dict={}), weights)
    cfg = Config(dict(load_from=str(weights), resume=True,
                      work_dir=str(tmp_path / 'work')))
    assert resume_checkpoint(cfg, lambda work_dir: None) is None
    assert cfg.resume is False and cfg.load_from == str(weights)
    cfg = Config(dict(load_from=str(weights), resume=True,
                      work_dir=str(tmp_path / 'work')))
    assert resume_checkpoint(cfg, lambda work_dir: 'latest.pth') == \
        'latest.pth'
    assert cfg.resume is True and cfg.load_from == 'latest.pth'


def test_values_of_exactly_the_limit_are_shown_whole():
    from mmseg_dsnet.engine.resume_check import _short
    assert _short('a' * 58) == repr('a' * 58)  # 60 characters
    assert _short('a' * 59) == repr('a' * 59)[:57] + '...'


def _tiny_run(tiny_isic, tmp_path):
    """A tiny config of two epochs and its model's state dict."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    import mmseg_dsnet  # noqa: F401
    from conftest import write_tiny_config
    cfg_file = write_tiny_config(tmp_path / 'tiny_dsnet.py', tiny_isic,
                                 epochs=2)
    cfg = Config.fromfile(str(cfg_file))
    with DefaultScope.overwrite_default_scope('mmseg'):
        state = MODELS.build(cfg.model).state_dict()
    return cfg_file, cfg, state


def test_a_run_trained_by_fewer_processes_is_refused(tiny_isic, tmp_path,
                                                     monkeypatch):
    """One process trained the checkpoint: two torchrun processes resuming
    it would train with twice the batch size, refused as the reverse is;
    without a launcher the run has one process, whatever WORLD_SIZE a shell
    left set."""
    import pytest
    import torch
    from mmengine.config import Config

    from mmseg_dsnet.engine.resume_check import (ResumeMismatchError,
                                                 check_resume_checkpoint)
    cfg_file, cfg, state = _tiny_run(tiny_isic, tmp_path)
    assert cfg.get('launcher', 'none') == 'none'
    path = tmp_path / 'epoch_1.pth'

    def save(world_size):
        torch.save(dict(state_dict=state, meta=dict(
            epoch=1, iter=3, world_size=world_size)), path)

    monkeypatch.setenv('WORLD_SIZE', '2')
    save(1)
    torchrun = Config(dict(cfg.to_dict(), launcher='pytorch'),
                      filename=str(cfg_file))
    with pytest.raises(ResumeMismatchError, match=(
            f'^--resume: {path} was trained by 1 process and this run has '
            '2: .* resume with 1 process ')):
        check_resume_checkpoint(torchrun, str(path))
    check_resume_checkpoint(cfg, str(path))  # one process, no launcher
    save(2)
    with pytest.raises(ResumeMismatchError, match=(
            f'^--resume: {path} was trained by 2 processes and this run has '
            '1: ')):
        check_resume_checkpoint(cfg, str(path))
    check_resume_checkpoint(torchrun, str(path))


def test_a_partial_checkpoint_is_refused_unless_load_from_strict_is_off(
        tiny_isic, tmp_path):
    """``--resume`` checks the checkpoint as strictly as the Runner's
    StrictCheckpointHook: one missing tensor refuses it, also from a
    config that does not set ``load_from_strict`` (the default runtime sets
    True); ``load_from_strict=False`` lets a partial one through."""
    import pytest
    import torch
    from mmengine.config import Config

    from mmseg_dsnet.engine.checkpoint_match import CheckpointMismatchError
    from mmseg_dsnet.engine.resume_check import check_resume_checkpoint
    cfg_file, cfg, state = _tiny_run(tiny_isic, tmp_path)
    assert cfg.load_from_strict is True
    cfg = Config({k: v for k, v in cfg.to_dict().items()
                  if k != 'load_from_strict'}, filename=str(cfg_file))
    dropped = next(k for k in state if not k.endswith('num_batches_tracked'))
    del state[dropped]
    path = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=state, meta=dict(epoch=1, iter=3)), path)
    with pytest.raises(CheckpointMismatchError,
                       match=f'1 missing key.*{dropped}'):
        check_resume_checkpoint(cfg, str(path))
    cfg.load_from_strict = False
    check_resume_checkpoint(cfg, str(path))


def test_a_resume_onto_the_synthetic_set_is_refused(tiny_isic, tmp_path,
                                                    capsys):
    """A run trained on real images, resumed where its data is not found:
    the synthetic fallback (or a data root naming the stand-in) took over
    and the run went on from the checkpoint on synthetic images, exit 0,
    since data roots may differ on resume. Refused, both ways; another
    root of real images (the data moved) still resumes."""
    import shutil

    import pytest
    import torch
    from conftest import load_tool, run_cli

    from mmseg_dsnet.datasets.converters.isic import SYNTHETIC_MARKER
    from mmseg_dsnet.engine.resume_check import (ResumeMismatchError,
                                                 check_resume_checkpoint)
    cfg_file, cfg, state = _tiny_run(tiny_isic, tmp_path)
    synthetic = tmp_path / 'synthetic_isic2018'
    shutil.copytree(tiny_isic, synthetic)
    (synthetic / SYNTHETIC_MARKER).write_text('synthetic\n')
    moved = tmp_path / 'moved_isic2018'
    shutil.copytree(tiny_isic, moved)
    work = tmp_path / 'work'
    work.mkdir()
    checkpoint = work / 'epoch_1.pth'
    torch.save(dict(state_dict=state, optimizer={}, meta=dict(
        epoch=1, iter=3, cfg=cfg.pretty_text)), checkpoint)
    (work / 'last_checkpoint').write_text(str(checkpoint))
    roots = [f'{loader}.dataset.data_root={synthetic}'
             for loader in ('train_dataloader', 'val_dataloader')]
    code, err = run_cli(load_tool('train.py').main, [
        cfg_file, '--work-dir', work, '--resume', '--cfg-options'] + roots,
        capsys)
    assert code == 2
    assert err == (
        f'ERROR: --resume: {checkpoint} was trained on other data than '
        f"{cfg_file} reads: train_dataloader.dataset.data_root="
        f"'{synthetic}' (synthetic; the checkpoint's: '{tiny_isic}', not "
        "synthetic); val_dataloader.dataset.data_root="
        f"'{synthetic}' (synthetic; the checkpoint's: '{tiny_isic}', not "
        'synthetic). The resumed epochs would go on from it on other '
        'images (the synthetic stand-in is used when the config\'s data is '
        'not at its default root); give the run\'s data root (--cfg-options '
        'train_dataloader.dataset.data_root=... '
        'val_dataloader.dataset.data_root=...), or train anew in another '
        '--work-dir\n')
    assert sorted(p.name for p in work.iterdir()) == [
        'epoch_1.pth', 'last_checkpoint']
    # Back from the stand-in to real images: refused too.
    cfg.train_dataloader.dataset.data_root = str(synthetic)
    torch.save(dict(state_dict=state, optimizer={}, meta=dict(
        epoch=1, iter=3, cfg=cfg.pretty_text)), checkpoint)
    cfg.train_dataloader.dataset.data_root = str(moved)
    with pytest.raises(ResumeMismatchError,
                       match=r"data_root='.*moved_isic2018' \(not synthetic; "
                       r"the checkpoint's: '.*synthetic_isic2018', "
                       r'synthetic\)'):
        check_resume_checkpoint(cfg, str(checkpoint))
    # Real images moved elsewhere: resumed.
    cfg.train_dataloader.dataset.data_root = str(tiny_isic)
    torch.save(dict(state_dict=state, optimizer={}, meta=dict(
        epoch=1, iter=3, cfg=cfg.pretty_text)), checkpoint)
    cfg.train_dataloader.dataset.data_root = str(moved)
    check_resume_checkpoint(cfg, str(checkpoint))


def test_a_resume_with_no_checkpoint_says_so_or_is_refused(tiny_isic,
                                                          tmp_path, capsys):
    """``--resume`` of a work dir whose ``last_checkpoint`` names a file
    that is gone (checkpoints removed, or never completed) and no other
    complete checkpoint: mmengine read the pointer itself and ended with a
    ``FileNotFoundError`` traceback after the work dir's log was made;
    refused in one line, the work dir as it was. With no checkpoint and no
    pointer the run starts anew, and now says so (mmengine logged ``Auto
    resumed from the latest checkpoint None.``)."""
    import logging

    from conftest import load_tool, run_cli
    from mmengine.config import Config
    from mmengine.logging import MMLogger

    from mmseg_dsnet.engine import pick_resume_checkpoint
    from mmseg_dsnet.engine.resume_check import resume_checkpoint
    cfg_file, _, _ = _tiny_run(tiny_isic, tmp_path)
    work = tmp_path / 'work'
    work.mkdir()
    pointer = work / 'last_checkpoint'
    pointer.write_text(str(work / 'epoch_3.pth'))
    code, err = run_cli(load_tool('train.py').main, [
        cfg_file, '--work-dir', work, '--resume'], capsys)
    assert (code, err) == (2, (
        f"ERROR: --resume: {pointer} names '{work}/epoch_3.pth', which is "
        f'missing or incomplete, and {work} holds no complete checkpoint to '
        'resume from; give one with --cfg-options load_from=..., or remove '
        f'{pointer} to train anew\n'))
    assert [p.name for p in work.iterdir()] == ['last_checkpoint']
    pointer.unlink()
    cfg = Config(dict(load_from=None, resume=True, work_dir=str(work)))
    # The current logger's handlers hold the stream of whichever test made
    # it: read its records.
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        assert resume_checkpoint(cfg, pick_resume_checkpoint) is None
    finally:
        logger.removeHandler(handler)
    assert cfg.resume is False and cfg.load_from is None
    assert [r.getMessage() for r in records] == [
        f'--resume: {work} holds no checkpoint to resume from; the run '
        'starts anew']
