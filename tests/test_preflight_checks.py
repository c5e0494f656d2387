"""The pre-flight checks (``mmseg_dsnet.engine.preflight``), the checkpoint
and resume checks and the run-stopping hooks on small real objects: plain
config dicts, files in ``tmp_path`` and small modules, no training. The
tool-level tests (test_user_error_exits.py, test_strict_checkpoints.py,
test_resume_check.py ...) show the same checks through the command
lines."""
import argparse

import pytest
import torch
from mmengine.config import Config

from mmseg_dsnet.engine.preflight import (ConfigOptionsAction,
                                          MissingInputError,
                                          check_config_keys,
                                          check_config_sets,
                                          check_input_file,
                                          check_options_take_effect)
from mmseg_dsnet.engine.preflight.config import (ConfigFileError,
                                                 ConfigKeyError,
                                                 ConfigOptionError)


def parse_cfg_options(*values):
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+',
                        action=ConfigOptionsAction)
    return parser.parse_args(['--cfg-options', *values]).cfg_options


def test_cfg_options_paths_and_lists():
    """A quoted path keeps its spaces (the quotes dropped, as mmengine
    drops them), a Windows path with a comma too; a list of paths in
    brackets, a word with a space and ``a, b`` are read as the user meant
    them."""
    assert parse_cfg_options(
        'work_dir="/x/My Runs/r1"', 'data_root=C:\\data\\Müller, A',
        'imports=[a/b,c/d]', 'name=My Runs', 'pair=a, b') == {
            'work_dir': '/x/My Runs/r1', 'data_root': 'C:\\data\\Müller, A',
            'imports': ['a/b', 'c/d'], 'name': 'My Runs',
            'pair': ['a', 'b']}


def test_cfg_options_of_a_path_key_keep_a_comma_and_space(capsys):
    """``--cfg-options "work_dir=Müller, A"`` (a relative folder: no ``/``)
    was split into the list ``['Müller', 'A']`` (a ``TypeError``
    traceback, or a work dir of another name). A key naming a file or
    folder now takes its value whole; other keys read ``a, b`` as a list,
    as before. Unbalanced brackets and a pair without ``=`` are usage
    errors (exit 2), not tracebacks."""
    assert parse_cfg_options(
        'work_dir=Müller, A', 'test_dataloader.dataset.data_root=Clinic,2',
        'model.init_cfg.checkpoint=w, 1.pth', 'load_from=None',
        'pair=a, b', 'size=(32, 32)', 'dirs=[x, y]') == {
            'work_dir': 'Müller, A',
            'test_dataloader.dataset.data_root': 'Clinic,2',
            'model.init_cfg.checkpoint': 'w, 1.pth', 'load_from': None,
            'pair': ['a', 'b'], 'size': (32, 32), 'dirs': ['x', 'y']}
    for value, message in (('x=[1,2', "x=[1,2: unbalanced brackets in "
                            "'[1,2'"),
                           ('x', "'x' is not KEY=VALUE")):
        with pytest.raises(SystemExit) as stop:
            parse_cfg_options(value)
        assert stop.value.code == 2
        assert capsys.readouterr().err.endswith(
            f'error: argument --cfg-options: {message}\n')


def test_config_key_typos_and_pipeline_variables():
    """A key two letters swapped from a runner key is refused; the
    pipeline variables every config has pass, though ``test_pipeline`` is
    spelt almost like the runner key ``tta_pipeline``."""
    with pytest.raises(ConfigKeyError, match="'defualt_hooks' is not used "
                       "by the runner .* did you mean 'default_hooks'"):
        check_config_keys(dict(defualt_hooks=dict()))
    check_config_keys(dict(test_pipeline=[], train_pipeline=[],
                           val_pipeline=[], _private=1, crop_size=(1, 1)))


def test_cfg_options_of_list_items_and_runner_keys():
    """A list item past the end is a new value, not an error; a runner key
    set on the command line (``load_from``) is no variable even when a
    section holds its value; a variable held by no section (only by
    another variable) may be set; one a section holds is refused."""
    cfg = Config(dict(pipeline=[dict(scale=(1, 2))], load_from=None,
                      model=dict(init_cfg=None), crop_size=(4, 4),
                      train_pipeline=[dict(scale=(4, 4))],
                      data_root='d',
                      train_dataloader=dict(dataset=dict(data_root='d'))))
    check_options_take_effect(cfg, {'pipeline.1.scale': 'x',
                                    'load_from': 'a.pth',
                                    'crop_size': (8, 8)})
    with pytest.raises(ConfigOptionError, match=(
            r"^--cfg-options data_root=e sets the config variable "
            r"'data_root', .* \(they keep 'd'\); set the keys that hold its "
            r'value instead: train_dataloader\.dataset\.data_root=e$')):
        check_options_take_effect(cfg, {'data_root': 'e'})


def test_input_file_and_config_sets(tmp_path):
    """A folder given as a config is named as one; a key holding a string
    (not a dict or list) or a key under a missing parent is lacking."""
    with pytest.raises(MissingInputError, match=f'^config file {tmp_path} '
                       'is a folder, not a file$'):
        check_input_file(tmp_path, 'config file')
    with pytest.raises(MissingInputError, match='does not exist$'):
        check_input_file(tmp_path / 'none.py', 'config file')
    check_config_sets(dict(model=dict(), data=[1]), 'c.py', ['model', 'data'],
                      'n')
    with pytest.raises(ConfigFileError, match=(
            r'^config file c\.py sets no model, train_dataloader\.dataset'
            r'\.pipeline: it builds one$')):
        check_config_sets(dict(model='dsnet', train_dataloader=dict(
            dataset=dict())), 'c.py', ['model', 'train_dataloader.dataset.'
                                       'pipeline'], 'it builds one')


def test_strict_check_counts_and_refuses_extra_keys():
    """BatchNorm's ``num_batches_tracked`` may be absent (a checkpoint of
    an older torch) and is not counted; a key the model lacks refuses a
    strict load (the checkpoint is of a larger or other model)."""
    from mmseg_dsnet.engine.checkpoint_match import (CheckpointMismatchError,
                                                     check_checkpoint_matches)
    model = torch.nn.BatchNorm1d(2)
    state = {k: v for k, v in model.state_dict().items()
             if k != 'num_batches_tracked'}
    assert check_checkpoint_matches(model, dict(state_dict=state)) == (4, 4)
    # DDP's prefix, which mmengine removes as it loads.
    assert check_checkpoint_matches(model, {
        f'module.{k}': v for k, v in state.items()}) == (4, 4)
    with pytest.raises(CheckpointMismatchError, match=(
            r'^Checkpoint c\.pth does not match the model of c\.py: 1 '
            r'unexpected key \(extra\.weight\)\. ')):
        check_checkpoint_matches(model, dict(state, **{
            'extra.weight': torch.ones(1)}), 'c.py', 'c.pth')


def _message_hub(last_ckpt=None):
    """A MessageHub of its own (mmengine keeps one instance per name)."""
    import uuid

    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance(f'preflight_{uuid.uuid4().hex}')
    if last_ckpt is not None:
        hub.update_info('last_ckpt', str(last_ckpt))
    return hub


def test_final_checkpoint_is_the_runs_last_of_its_final_weights(
        tmp_path, monkeypatch):
    """The checkpoint a run saved last is scored only when it holds the
    final weights (its iteration is the run's last); one in the work dir is
    named as the work dir was given, one saved elsewhere as saved."""
    from types import SimpleNamespace

    from mmseg_dsnet.engine.final_checkpoint import (FinalCheckpointError,
                                                     final_checkpoint)
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'work').mkdir()
    (tmp_path / 'out').mkdir()
    cfg = Config(dict(work_dir='work'))
    for name, epoch, iteration in (('work/epoch_1.pth', 1, 3),
                                   ('work/epoch_2.pth', 2, 6),
                                   ('out/epoch_2.pth', 2, 6)):
        torch.save(dict(state_dict={}, meta=dict(epoch=epoch,
                                                 iter=iteration)),
                   tmp_path / name)

    def runner(last):
        return SimpleNamespace(message_hub=_message_hub(last), epoch=2,
                               iter=6)

    assert final_checkpoint(cfg, runner(tmp_path / 'work/epoch_2.pth')) == \
        'work/epoch_2.pth'
    assert final_checkpoint(cfg, runner(tmp_path / 'out/epoch_2.pth')) == \
        str(tmp_path / 'out/epoch_2.pth')
    with pytest.raises(FinalCheckpointError, match=(
            r'^the last checkpoint of the run in work, .*work/epoch_1\.pth, '
            r'is of epoch 1, not of its final weights \(epoch 2\); nothing '
            'was scored')):
        final_checkpoint(cfg, runner(tmp_path / 'work/epoch_1.pth'))
    with pytest.raises(FinalCheckpointError,
                       match='^the run in work saved no checkpoint; '):
        final_checkpoint(cfg, runner(None))


def test_non_finite_loss_stops_at_its_iteration(tmp_path):
    """An infinite loss (not only a NaN) stops the run naming where, and
    which checkpoint is the last good one; finite losses, an empty tensor
    and whole numbers pass; the weights check can be turned off."""
    from types import SimpleNamespace

    from mmseg_dsnet.engine.hooks.non_finite_loss_hook import (
        NonFiniteLossError, NonFiniteLossHook)
    runner = SimpleNamespace(
        epoch=1, iter=4, message_hub=_message_hub(tmp_path / 'epoch_1.pth'),
        train_loop=SimpleNamespace(dataloader=[0, 1, 2]))
    hook = NonFiniteLossHook()
    hook.after_train_iter(runner, 1, outputs=dict(
        loss=torch.tensor(0.5), empty=torch.tensor([]), count=3))
    with pytest.raises(NonFiniteLossError, match=(
            r'^Non-finite loss at epoch 2, iteration 2/3 of the epoch '
            r'\(global iteration 5\): loss_dice=-inf\. Training stopped\. '
            f'The last good checkpoint is {tmp_path}/epoch_1.pth; ')):
        hook.after_train_iter(runner, 1, outputs=dict(
            loss_ce=torch.tensor(0.5),
            loss_dice=torch.tensor([1.0, float('-inf')])))
    bad = dict(state_dict=dict(w=torch.tensor([1.0, float('inf')])))
    NonFiniteLossHook(check_checkpoint=False).before_save_checkpoint(
        runner, bad)
    with pytest.raises(NonFiniteLossError, match="weight 'w' holds NaN or "
                       'inf'):
        hook.before_save_checkpoint(runner, bad)


def test_large_finite_losses_do_not_stop_the_run():
    """The hook summed a loss tensor in float32: finite values whose sum
    passes float32's range, or a float64 loss beyond it, read as
    ``loss=inf`` and stopped a finite run. Each element is checked in its
    own dtype now; a NaN among large values still stops it."""
    from types import SimpleNamespace

    from mmseg_dsnet.engine.hooks.non_finite_loss_hook import (
        NonFiniteLossError, NonFiniteLossHook)
    runner = SimpleNamespace(
        epoch=0, iter=0, message_hub=_message_hub(None),
        train_loop=SimpleNamespace(dataloader=[0]))
    hook = NonFiniteLossHook()
    hook.after_train_iter(runner, 0, outputs=dict(
        loss=torch.full((4, ), 2e38),
        loss_ce=torch.tensor(1e39, dtype=torch.float64)))
    with pytest.raises(NonFiniteLossError,
                       match=r'\): loss_dice=nan\. Training stopped\. '):
        hook.after_train_iter(runner, 0, outputs=dict(
            loss=torch.full((4, ), 2e38),
            loss_dice=torch.tensor([2e38, float('nan')])))


def test_head_classes_against_the_dataset():
    """A head predicts the dataset's classes with ``num_classes`` outputs
    or one (binary); fewer classes than the dataset's are refused as more
    are."""
    from mmseg_dsnet.engine.hooks.num_classes_check_hook import (
        NumClassesMismatchError, check_head_classes)
    classes = ('background', 'lesion')
    check_head_classes([('decode_head', 2, 1), ('auxiliary_head[0]', 2,
                                                None)],
                       classes, 'training', 'ISIC')
    with pytest.raises(NumClassesMismatchError, match=(
            r'^model\.decode_head\.num_classes=1 but the test dataset ISIC '
            r"has 2 classes \('background', 'lesion'\)\. Set num_classes=2")):
        check_head_classes([('decode_head', 1, 1)], classes, 'test', 'ISIC')
    for out_channels in (2, 4):
        with pytest.raises(NumClassesMismatchError, match=(
                rf'^model\.decode_head\.out_channels={out_channels} must '
                r'equal num_classes=3 or be 1')):
            check_head_classes([('decode_head', 3, out_channels)],
                               classes + ('hair', ), 'training', 'ISIC')


def test_dataset_classes_are_read_through_wrappers_and_head_lists():
    """The classes of a wrapped training set (``RepeatDataset``,
    ``ConcatDataset``) are its inner dataset's, and each head of a list of
    auxiliary heads (of a wrapped model too) is checked against them, so a
    mismatch is refused before the runner makes its run folder."""
    from conftest import REPO

    from mmseg_dsnet.engine.hooks.num_classes_check_hook import \
        NumClassesMismatchError
    from mmseg_dsnet.engine.preflight import (check_dataset_classes,
                                              dataset_classes)
    cfg = Config.fromfile(str(REPO / 'configs/demo/dsnet_synthetic_cpu.py'))
    isic = cfg.train_dataloader.dataset
    lesion = ('background', 'lesion')
    assert tuple(dataset_classes(isic)[1]) == lesion
    for wrapper in (dict(type='RepeatDataset', times=2, dataset=isic),
                    dict(type='ConcatDataset', datasets=[isic, isic])):
        assert dataset_classes(wrapper)[0] == 'ISIC2018Dataset'
        assert tuple(dataset_classes(wrapper)[1]) == lesion
        cfg.train_dataloader.dataset = wrapper
        cfg.model.decode_head.num_classes = 3
        with pytest.raises(NumClassesMismatchError, match=(
                r'^model\.decode_head\.num_classes=3 but the training '
                r'dataset ISIC2018Dataset has 2 classes')):
            check_dataset_classes(cfg, ('train_dataloader', ))
        cfg.model.decode_head.num_classes = 2
        check_dataset_classes(cfg, ('train_dataloader', ))
    cfg.model.auxiliary_head = [dict(num_classes=2), dict(num_classes=3)]
    for model in (cfg.model, dict(type='Wrapper', module=cfg.model)):
        with pytest.raises(NumClassesMismatchError, match=(
                r'^model\.auxiliary_head\[1\]\.num_classes=3 but the '
                r'training dataset')):
            check_dataset_classes(dict(cfg, model=model),
                                  ('train_dataloader', ))


def test_each_evaluation_loader_is_checked_for_dropped_images():
    """``drop_last=True`` on any of the evaluation loaders given is
    refused, naming that loader; ``drop_last=False`` or unset passes."""
    from mmseg_dsnet.engine.preflight import check_evaluation_loaders
    from mmseg_dsnet.utils.errors import UserError
    loaders = ('val_dataloader', 'test_dataloader')
    cfg = dict(val_dataloader=dict(batch_size=4, drop_last=False),
               test_dataloader=dict(batch_size=4))
    check_evaluation_loaders(cfg, loaders)
    cfg['test_dataloader']['drop_last'] = True
    with pytest.raises(UserError, match=r'^test_dataloader\.drop_last is '
                       'True: the last incomplete batch'):
        check_evaluation_loaders(cfg, loaders)
    check_evaluation_loaders(cfg, ('val_dataloader', ))


@pytest.mark.parametrize('batch_size', [0, -2, 2.5, True, '4'])
def test_a_batch_size_below_one_or_not_whole_is_refused(batch_size):
    """``--cfg-options test_dataloader.batch_size=0`` (or below 0) ended
    in torch's ``ValueError`` traceback once the model and checkpoint were
    loaded (tools/test.py, the BatchNorm recalibration, the threshold
    sweep, the error-by-position analysis). Now refused by name; an unset
    batch size (mmengine's 1) passes."""
    from mmseg_dsnet.engine.preflight import (check_batch_sizes,
                                              check_evaluation_loaders)
    from mmseg_dsnet.utils.errors import UserError
    loaders = ('val_dataloader', 'test_dataloader')
    cfg = dict(val_dataloader=dict(batch_size=1), test_dataloader=dict())
    check_batch_sizes(cfg, loaders)
    cfg['test_dataloader']['batch_size'] = batch_size
    message = (f'^c.py: test_dataloader.batch_size={batch_size!r} must be a '
               'whole number of at least 1: the images of a step')
    with pytest.raises(UserError, match=message):
        check_batch_sizes(cfg, loaders, 'c.py')
    with pytest.raises(UserError, match=message[len('^c.py: '):]):
        check_evaluation_loaders(cfg, loaders)
    # Named by its config, as the tools' other config refusals are.
    with pytest.raises(UserError, match=message):
        check_evaluation_loaders(cfg, loaders, 'c.py')
    cfg['test_dataloader'] = dict(batch_size=2, drop_last=True)
    with pytest.raises(UserError, match=r'^c\.py: test_dataloader\.drop_last '
                       'is True'):
        check_evaluation_loaders(cfg, loaders, 'c.py')
    cfg['test_dataloader']['batch_size'] = batch_size
    check_batch_sizes(cfg, ('val_dataloader', ))
    # A loader the config lacks is passed over, and the next one checked.
    with pytest.raises(UserError, match=message[len('^c.py: '):]):
        check_batch_sizes(dict(test_dataloader=cfg['test_dataloader']),
                          loaders)


def test_a_run_record_takes_the_figures_of_one_lesion_metric():
    """The figures a run record keeps: one LesionMetric (a dict or a list,
    other metrics beside it), or an unprefixed one beside prefixed ones;
    none (an IoUMetric alone) or two prefixed ones are refused."""
    from mmseg_dsnet.engine.preflight import check_one_lesion_figure_set
    from mmseg_dsnet.utils.errors import UserError
    lesion, iou = dict(type='LesionMetric'), dict(type='IoUMetric')
    check_one_lesion_figure_set('test_evaluator', lesion)
    check_one_lesion_figure_set('test_evaluator', [dict(lesion, prefix='a'),
                                                   iou])
    check_one_lesion_figure_set('test_evaluator', [lesion,
                                                   dict(lesion, prefix='b')])
    for metrics in (iou, [iou]):
        with pytest.raises(UserError, match=(
                '^test_evaluator holds no LesionMetric: the run record')):
            check_one_lesion_figure_set('test_evaluator', metrics)
    with pytest.raises(UserError, match=(
            r"^val_evaluator holds 2 LesionMetric \(prefixes 'a', 'b'\)")):
        check_one_lesion_figure_set('val_evaluator', [
            dict(lesion, prefix='a'), dict(lesion, prefix='b')])


def test_resume_picks_the_newest_complete_checkpoint_of_the_work_dir(
        tmp_path):
    """``epoch_10`` is newer than ``epoch_9`` (by number, not by name); a
    cut-short file (no zip directory) is passed over, also when
    ``last_checkpoint`` names it; a pointer to another folder's checkpoint
    is not followed; a pointer to nothing with no checkpoint to fall back
    on is refused, as is one to another folder; no pointer and no
    checkpoint start anew."""
    from mmseg_dsnet.engine.preflight import pick_resume_checkpoint
    from mmseg_dsnet.utils.errors import UserError
    work, other = tmp_path / 'work', tmp_path / 'other'
    work.mkdir()
    other.mkdir()
    assert pick_resume_checkpoint(str(work)) is None
    for epoch in (9, 10, 11):
        torch.save(dict(meta=dict(epoch=epoch)), work / f'epoch_{epoch}.pth')
    torch.save({}, other / 'epoch_12.pth')
    whole = (work / 'epoch_11.pth').read_bytes()
    (work / 'epoch_11.pth').write_bytes(whole[:len(whole) // 2])
    assert pick_resume_checkpoint(str(work)) == str(work / 'epoch_10.pth')
    pointer = work / 'last_checkpoint'
    for named in (work / 'epoch_11.pth', other / 'epoch_12.pth'):
        pointer.write_text(str(named))
        assert pick_resume_checkpoint(str(work)) == str(work /
                                                       'epoch_10.pth')
    pointer.write_text(str(work / 'epoch_9.pth'))
    assert pick_resume_checkpoint(str(work)) == str(work / 'epoch_9.pth')
    for epoch in (9, 10, 11):
        (work / f'epoch_{epoch}.pth').unlink()
    pointer.write_text(str(other / 'epoch_12.pth'))
    with pytest.raises(UserError, match=(
            f'^--resume: {pointer} names {other}/epoch_12.pth, a checkpoint '
            'outside the work dir, and ')):
        pick_resume_checkpoint(str(work))
    pointer.write_text('')
    with pytest.raises(UserError, match=f'^--resume: {pointer} names no '
                       'file, which is missing or incomplete'):
        pick_resume_checkpoint(str(work))


def test_a_work_dir_with_an_earlier_runs_checkpoints_is_refused(tmp_path):
    """Any checkpoint a run leaves (a best one alone too) refuses a new run
    in its work dir; other files do not; a tool that cannot resume does not
    offer it."""
    from mmseg_dsnet.engine.preflight import WorkDirError, check_no_earlier_run
    check_no_earlier_run(str(tmp_path / 'new'))
    (tmp_path / 'notes.txt').write_text('')
    (tmp_path / 'epoch_x.pth').write_text('')
    check_no_earlier_run(str(tmp_path))
    (tmp_path / 'best_Dice_epoch_3.pth').write_text('')
    with pytest.raises(WorkDirError, match=(
            rf'^The work dir {tmp_path} already holds the checkpoints of a '
            r'run \(best_Dice_epoch_3\.pth\); .* Nothing was started; '
            'choose another --work-dir, or remove them.$')):
        check_no_earlier_run(str(tmp_path), resumable=False)


def test_output_files_and_folders_are_checked_before_the_work(tmp_path):
    """An output file that is a folder, lies below a file or exists (no
    overwrite) is refused; an output folder that is a file or holds files,
    or lies below a file, too; a new file below folders still to be made
    passes."""
    from mmseg_dsnet.engine.preflight import (WorkDirError,
                                              check_empty_output_dir,
                                              check_new_output_file,
                                              check_output_file)
    afile = tmp_path / 'afile'
    afile.write_text('')
    check_output_file(str(tmp_path / 'a' / 'b' / 'm.json'))
    for path, reason in ((tmp_path, 'it is a folder, not a file'),
                         (afile / 'm.json', f'{afile} is a file, not a '
                          'folder')):
        with pytest.raises(WorkDirError, match=(
                f'^Cannot write --out {path}: {reason}. Nothing was')):
            check_output_file(str(path), '--out')
    with pytest.raises(FileExistsError, match='already exists'):
        check_new_output_file(str(afile), '--out')
    check_new_output_file(str(afile), '--out', overwrite=True)
    check_empty_output_dir(str(tmp_path / 'new'))
    for path, reason in ((afile, 'it is a file, not a folder'),
                         (tmp_path, 'the folder already holds files'),
                         (afile / 'out', f'{afile} is a file, not a folder')):
        with pytest.raises(WorkDirError, match=(
                f'^Cannot write --out {path}: {reason}. ')):
            check_empty_output_dir(str(path))


def test_strict_checkpoint_hook_on_a_small_module(tmp_path):
    """The hook is added to a config whose ``custom_hooks`` lack it (once);
    it refuses a partial checkpoint unless ``load_from_strict=False``,
    naming the file an auto-resume reads from ``last_checkpoint``; a
    partial load on purpose is logged with its counts and marked for the
    model's own check."""
    import logging
    import uuid
    from types import SimpleNamespace

    from mmengine.logging import MMLogger

    from mmseg_dsnet.engine.checkpoint_match import (
        CheckpointMismatchError, add_strict_checkpoint_hook)
    from mmseg_dsnet.engine.hooks import StrictCheckpointHook
    from mmseg_dsnet.models.utils.strict_loading import (CHECKED_KEY,
                                                         StrictLoadingMixin)
    cfg = Config(dict(custom_hooks=[dict(type='NonFiniteLossHook')]))
    add_strict_checkpoint_hook(cfg)
    add_strict_checkpoint_hook(cfg)
    assert cfg.custom_hooks == [dict(type='NonFiniteLossHook'),
                                dict(type='StrictCheckpointHook')]

    class Strict(StrictLoadingMixin, torch.nn.Linear):
        pass

    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    records = []
    logger = MMLogger.get_instance(f'preflight_{uuid.uuid4().hex}')
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    runner = SimpleNamespace(
        cfg=Config(dict(load_from=None, resume=True)), model=Strict(2, 1),
        work_dir=str(tmp_path), logger=logger)
    checkpoint = dict(state_dict={'weight': torch.ones(1, 2)})
    with pytest.raises(CheckpointMismatchError, match=(
            f'^Checkpoint {tmp_path}/epoch_1.pth does not match the model: '
            r'1 missing key \(bias\)')):
        StrictCheckpointHook().after_load_checkpoint(runner, checkpoint)
    runner.cfg.load_from_strict = False
    StrictCheckpointHook().after_load_checkpoint(runner, checkpoint)
    assert [r.getMessage() for r in records] == [
        f"Partial checkpoint {tmp_path}/epoch_1.pth: 1 of the model's 2 "
        'tensors loaded from it; the other 1 keeps its initial weights.']
    assert checkpoint['state_dict']._metadata[''][CHECKED_KEY] is True


def test_auto_scale_lr_without_enable_is_off():
    """mmengine scales the rate only when ``enable`` is set: a
    ``base_batch_size`` left at 0 with no ``enable`` is never read; a
    non-dict ``auto_scale_lr`` is refused."""
    from mmseg_dsnet.engine.preflight import check_auto_scale_lr
    from mmseg_dsnet.utils.errors import UserError
    check_auto_scale_lr(dict(auto_scale_lr=dict(base_batch_size=0)))
    with pytest.raises(UserError, match=r'^c\.py: auto_scale_lr=16 must be '
                       'a dict'):
        check_auto_scale_lr(dict(auto_scale_lr=16), 'c.py')


def test_save_best_checks_by_who_validates():
    """A tool validating by its own options (``validates=True``) has its
    ``save_best`` key checked without a ``val_cfg``; evaluators other than
    ``LesionMetric`` among them, or a loop of another type, leave it
    unchecked (their figures and validation rules are not known here)."""
    from mmseg_dsnet.engine.preflight import check_save_best, validates_on
    from mmseg_dsnet.utils.errors import UserError

    def cfg(save_best, evaluators, val_cfg=None, **train):
        return dict(default_hooks=dict(checkpoint=dict(save_best=save_best,
                                                       rule='greater')),
                    val_cfg=val_cfg, val_evaluator=evaluators,
                    train_cfg=train)

    lesion = dict(type='LesionMetric')
    with pytest.raises(UserError, match="save_best='iou' is not a figure"):
        check_save_best(cfg('iou', lesion), validates=True)
    check_save_best(cfg('IoU', lesion), validates=True)
    check_save_best(cfg('aAcc', [lesion, dict(type='IoUMetric')],
                        dict(type='ValLoop')))
    check_save_best(cfg('IoU', lesion, dict(type='ValLoop'), type='MyLoop',
                        max_epochs=2, val_begin=5))
    val = dict(val_dataloader=dict(dataset=dict(
        ann_file='data/splits/lightweight_test.txt')))
    assert validates_on(val, ['lightweight_test.txt']) == \
        'lightweight_test.txt'
    assert validates_on(val, ['lightweight_train.txt']) is None
    assert validates_on(dict(val_dataloader=None), ['']) is None


def test_a_wrapped_validation_split_is_judged_by_the_datasets_it_holds(
        tiny_isic, tmp_path):
    """A validation loader whose dataset is a wrapper names no split file
    itself: a best checkpoint chosen through a Repeat of a Concat holding
    the test split (by its name, or a copy under another name) is chosen
    on the test images, and a wrapper of a validation split is not."""
    from mmseg_dsnet.engine.preflight import validates_on_images_of
    from mmseg_dsnet.utils.messages import first_few
    test = tiny_isic / 'splits' / 'lightweight_test.txt'
    copy = tmp_path / 'held_out.txt'
    copy.write_text(test.read_text())

    def wrapped(ann_file):
        held_out = dict(data_root=str(tiny_isic),
                        ann_file='splits/lightweight_design_val.txt')
        return dict(val_dataloader=dict(dataset=dict(
            type='RepeatDataset', times=2, dataset=dict(
                type='ConcatDataset', datasets=[held_out, dict(
                    data_root=str(tiny_isic), ann_file=ann_file)]))))

    ids = test.read_text().split()
    assert validates_on_images_of(wrapped('splits/lightweight_test.txt'),
                                  [str(test)]) == 'lightweight_test.txt'
    assert validates_on_images_of(wrapped(str(copy)), [str(test)]) == (
        f'held_out.txt, which lists {len(ids)} images of {test} '
        f'({first_few(ids, 3)})')
    assert validates_on_images_of(
        wrapped('splits/lightweight_design_val.txt'), [str(test)]) is None



@pytest.fixture
def lesion_checkpoint_hook():
    """A CheckpointHook subclass with its own key lists, registered in
    mmseg's HOOKS (the projects' default scope) for the test only."""
    from mmengine.hooks import CheckpointHook
    from mmseg.registry import HOOKS

    class LesionCheckpointHook(CheckpointHook):
        _default_greater_keys = ['IoU', 'DSC']
        _default_less_keys = ['loss', 'error']

    name = 'TestPreflightLesionCheckpointHook'
    HOOKS.register_module(name=name, module=LesionCheckpointHook)
    try:
        yield name, LesionCheckpointHook
    finally:
        HOOKS._module_dict.pop(name)


def test_save_best_rule_follows_the_configured_hook_class(
        lesion_checkpoint_hook):
    """The rule was inferred with mmengine's plain CheckpointHook whatever
    the config's hook class: with a registered subclass whose own
    ``_default_less_keys`` names ``error``, ``top1_error`` was read as
    'greater' (``top`` is a plain greater key), so fast_train.py kept the
    worst checkpoint, exit 0, while train.py's hook kept the best; ``IoU``,
    one of its greater keys, was refused. Now the rule is the one the
    configured class infers, as the Runner's hook built from the config
    does."""
    from mmengine.config import Config

    from mmseg_dsnet.engine.preflight import check_save_best, save_best_rule
    from mmseg_dsnet.utils.errors import UserError
    name, hook_class = lesion_checkpoint_hook
    for key, rule in (('top1_error', 'less'), ('IoU', 'greater'),
                      ('val_loss', 'less')):
        hook = dict(type=name, interval=1, save_best=key)
        assert save_best_rule(hook, key) == rule
        assert save_best_rule(dict(hook, type=hook_class), key) == rule
        # What the hook itself, built from the config's arguments, keeps.
        built = hook_class(**{k: v for k, v in hook.items() if k != 'type'})
        assert built.rules == [rule]
        # The config's own lists still come first.
        assert save_best_rule(dict(hook, greater_keys=[key]), key) == \
            'greater'
    # The plain hook (no type) keeps mmengine's inference.
    assert save_best_rule(dict(save_best='top1_error'),
                          'top1_error') == 'greater'
    # Looked up under the config's default scope, as the Runner does.
    cfg = Config(dict(
        default_scope='mmseg',
        default_hooks=dict(checkpoint=dict(type=name, save_best='IoU')),
        val_cfg=dict(type='ValLoop'), val_evaluator=dict(type='IoUMetric'),
        train_cfg=dict()))
    check_save_best(cfg)
    with pytest.raises(UserError, match=(
            r"default_hooks\.checkpoint\.type='TestPreflightLesion"
            r"CheckpointHook' is not a registered hook \(default_scope "
            r"'mmengine'\)")):
        check_save_best(Config(dict(cfg.to_dict(), default_scope='mmengine')))


def test_save_best_rule_of_a_key_in_a_list_is_its_own():
    """With ``save_best`` a list and ``rule`` a list of as many, each key
    takes the rule at its own place (a key read with another key's rule
    keeps the worst checkpoint); a list of one rule is every key's. The
    rules are those mmengine's CheckpointHook, built from the same
    arguments, keeps. A rule other than 'greater', 'less' or None is
    refused."""
    from mmengine.hooks import CheckpointHook

    from mmseg_dsnet.engine.preflight import save_best_rule
    from mmseg_dsnet.utils.errors import UserError
    keys = ['IoU', 'DSC', 'loss']
    for rules, want in ((['greater', 'less', 'less'],
                         ['greater', 'less', 'less']),
                        (['less', 'greater', 'greater'],
                         ['less', 'greater', 'greater']),
                        (['less'], ['less', 'less', 'less'])):
        hook = dict(interval=1, save_best=keys, rule=rules)
        assert CheckpointHook(**hook).rules == want
        assert [save_best_rule(hook, key) for key in keys] == want
    for rule in ('max', ['greater', 'max', 'less']):
        with pytest.raises(UserError, match=(
                r"^default_hooks\.checkpoint\.rule=.*: the rule of "
                r"save_best 'DSC' must be 'greater', 'less' or None")):
            save_best_rule(dict(save_best=keys, rule=rule), 'DSC')

def test_deploy_form_parts_in_lists_are_found():
    """``deploy=True`` in a list of heads (``auxiliary_head=[...]``) is
    the re-parameterised form as much as in a dict; ``deploy=False`` is
    not."""
    from mmseg_dsnet.engine.preflight import (check_trainable_model,
                                              deploy_form_parts)
    from mmseg_dsnet.utils.errors import ModelArgumentError
    model = dict(backbone=dict(deploy=False),
                 auxiliary_head=[dict(), dict(deploy=True)])
    assert deploy_form_parts(model) == ['model.auxiliary_head[1].deploy']
    with pytest.raises(ModelArgumentError, match=(
            r'^c\.py: model\.auxiliary_head\[1\]\.deploy=True: this config '
            r'builds the re-parameterised')):
        check_trainable_model(dict(model=model), 'c.py')


def test_num_classes_hook_checks_auxiliary_heads_in_each_phase():
    """The hook of a runner built by other code checks every auxiliary
    head, before training and before a test alike."""
    from types import SimpleNamespace

    from mmseg_dsnet.engine.hooks.num_classes_check_hook import (
        NumClassesCheckHook, NumClassesMismatchError)

    class ISIC:
        metainfo = dict(classes=('background', 'lesion'))

    loader = SimpleNamespace(dataset=ISIC())
    runner = SimpleNamespace(
        model=torch.nn.Module(), train_loop=SimpleNamespace(
            dataloader=loader), test_loop=SimpleNamespace(dataloader=loader))
    runner.model.decode_head = SimpleNamespace(num_classes=2,
                                               out_channels=1)
    runner.model.auxiliary_head = [SimpleNamespace(num_classes=3)]
    for phase, call in (('training', NumClassesCheckHook().before_train),
                        ('test', NumClassesCheckHook().before_test)):
        with pytest.raises(NumClassesMismatchError, match=(
                r'^model\.auxiliary_head\[0\]\.num_classes=3 but the '
                f'{phase} dataset ISIC has 2 classes')):
            call(runner)


@pytest.mark.parametrize('value', ["'ValLoop'", 'True'])
def test_a_val_cfg_that_is_no_dict_is_refused(tmp_path, tiny_config, capsys,
                                              value):
    """``val_cfg = 'ValLoop'`` (or ``True``) was taken for a validation
    loop; mmengine's Runner refused it with a TypeError traceback once
    the training started, after the work dir was made. ``check_val_cfg``
    refuses it, first among train.py's checks; ``has_val_loop`` is a query
    that answers for any value (mmengine tries to build a loop from it)."""
    from conftest import load_tool, run_cli

    from mmseg_dsnet.engine.preflight import check_val_cfg, has_val_loop
    from mmseg_dsnet.utils.errors import UserError
    path = tmp_path / 'bad_val_cfg.py'
    path.write_text(f"_base_ = '{tiny_config}'\n"
                    f'val_cfg = {value}\n')
    cfg = Config.fromfile(str(path))
    assert has_val_loop(cfg)
    expected = (f'{path}: val_cfg={cfg.val_cfg!r} is a '
                f'{type(cfg.val_cfg).__name__}, but ')
    with pytest.raises(UserError) as err:
        check_val_cfg(cfg)
    message = str(err.value)
    assert message.startswith(expected), message
    assert "val_cfg = dict(type='ValLoop')" in message
    work = tmp_path / 'work'
    code, err = run_cli(load_tool('train.py').main,
                        [path, '--work-dir', work], capsys)
    assert code == 2 and err.startswith(f'ERROR: {expected}'), err
    assert not work.exists()
    for good in (dict(), None):
        check_val_cfg(Config(dict(val_cfg=good)))
    assert has_val_loop(Config(dict(val_cfg=dict())))
    assert not has_val_loop(Config(dict(val_cfg=None)))



def test_a_val_cfg_that_is_a_built_loop_passes():
    """mmengine's Runner takes a loop object as ``val_cfg`` as it is:
    ``check_val_cfg`` passes it, and ``has_val_loop`` counts it."""
    from mmengine.runner import BaseLoop

    from mmseg_dsnet.engine.preflight import check_val_cfg, has_val_loop

    class Loop(BaseLoop):

        def run(self):
            pass

    cfg = dict(val_cfg=Loop(None, []))
    check_val_cfg(cfg)
    assert has_val_loop(cfg)


def test_a_misspelt_checkpoint_hook_key_is_refused_before_training(
        tiny_config, tmp_path, capsys):
    """mmengine's CheckpointHook passes the keys it does not know to
    ``runner.save_checkpoint``, which takes none: ``train.py`` trained
    until the first checkpoint, then stopped without saving it. The key is
    refused before the work dir is made; the hook's own keys pass."""
    from conftest import load_tool, run_cli

    from mmseg_dsnet.engine.preflight import check_checkpoint_hook_keys
    from mmseg_dsnet.utils.errors import UserError
    work = tmp_path / 'work'
    code, err = run_cli(load_tool('train.py').main, [
        tiny_config, '--work-dir', work, '--cfg-options',
        'default_hooks.checkpoint.intervl=1'], capsys)
    assert (code, err) == (2, (
        'ERROR: default_hooks.checkpoint.intervl=1 is no argument of '
        "AtomicCheckpointHook nor of the runner's save_checkpoint, to which "
        "the hook passes it; did you mean 'interval'? (the run would train "
        'until its first checkpoint, then stop without saving it)\n'))
    assert not work.exists()
    hook = dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                save_best='IoU', rule='greater', filename_tmpl='e{}.pth')
    check_checkpoint_hook_keys(dict(default_hooks=dict(checkpoint=hook)))
    with pytest.raises(UserError, match=(
            r"checkpoint\.max_keep_ckpt=3 is no argument of CheckpointHook "
            r".*did you mean 'max_keep_ckpts'\?")):
        check_checkpoint_hook_keys(dict(default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', max_keep_ckpt=3))))


def test_a_test_mode_mmseg_cannot_score_with_is_refused_before_the_run(
        tiny_config, tmp_path, capsys):
    """mmseg asserts ``model.test_cfg`` only when it scores the first
    image: ``train.py`` trained until its first validation, then stopped
    with an ``AssertionError`` traceback. Both tools refuse it before the
    work dir is made; whole images and covering windows pass."""
    from conftest import load_tool, run_cli
    from mmengine.config import Config, ConfigDict

    from mmseg_dsnet.engine.preflight import (check_inference_mode,
                                              check_model_builds)
    from mmseg_dsnet.utils.errors import UserError
    work = tmp_path / 'work'
    checkpoint = tmp_path / 'unread.pth'
    checkpoint.write_bytes(b'')
    advice = ("; mmseg scores images whole (model.test_cfg=dict("
              "mode='whole')) or in overlapping windows (mode='slide' with "
              'crop_size and stride), and would stop at the first image it '
              'validates or tests\n')
    for tool, argv in (('train.py', []), ('test.py', [checkpoint])):
        code, err = run_cli(load_tool(tool).main, [
            tiny_config, *argv, '--work-dir', work, '--cfg-options',
            'model.test_cfg.mode=slid'], capsys)
        assert (code, err) == (2, (
            f"ERROR: {tiny_config}: model.test_cfg.mode='slid' is neither "
            f"'whole' nor 'slide'{advice}"))
        assert not work.exists()

    built = check_model_builds(Config.fromfile(tiny_config))

    def model(**test_cfg):
        built.test_cfg = ConfigDict(test_cfg)
        return built

    check_inference_mode(model(mode='whole'))
    check_inference_mode(model(mode='slide', crop_size=(32, 32),
                               stride=(16, 32)))
    with pytest.raises(UserError, match=(
            r"^model.test_cfg.stride=\(16, 48\) is longer than "
            r"crop_size=\(32, 32\): pixels between the windows")):
        check_inference_mode(model(mode='slide', crop_size=(32, 32),
                                   stride=(16, 48)))
    with pytest.raises(UserError, match=(
            r"^model.test_cfg.mode='slide' needs crop_size and stride .* "
            r'got crop_size=None stride=16;')):
        check_inference_mode(model(mode='slide', stride=16))


def test_a_second_training_into_a_work_dir_in_use_is_refused(
        tiny_config, tmp_path, capsys):
    """Two trainings started into one new work dir both found no
    checkpoint there, then saved theirs over one another, exit 0 for
    both. While one holds the work dir, another is refused and changes
    nothing there; once it ends, the work dir is free."""
    from conftest import load_tool, run_cli

    from mmseg_dsnet.engine.preflight import training_work_dir_lock
    work = tmp_path / 'work'
    work.mkdir()
    with training_work_dir_lock(str(work)):
        code, err = run_cli(load_tool('train.py').main, [
            tiny_config, '--work-dir', work], capsys)
    assert (code, err) == (2, (
        f'ERROR: The work dir {work} is being written by another training '
        'now: two trainings at once would save their checkpoints over one '
        'another. Nothing was started; wait for it to end, or choose '
        'another --work-dir.\n'))
    assert list(work.iterdir()) == []
    with training_work_dir_lock(str(work)):
        pass
