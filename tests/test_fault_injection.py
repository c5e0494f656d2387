"""Fault injection: every fault tried, what the user sees, and proof that
nothing was lost. ``FAULTS`` below is the list; docs/reliability.md shows it
as a table (a test checks that the two agree).

Training and testing run in this process through the tools' ``main`` (the
runs that must be killed are in test_resume_after_kill.py), on the tiny
64x64 synthetic set, each run with its own work dir and experiment name.
"""
import os
import re
import shutil
import time
import uuid

import cv2
import numpy as np
import pytest
import torch
from conftest import (REPO, load_tool, run_cli, run_tool_process,
                      write_tiny_config)

# (fault, what the user sees, what is kept, test that proves it)
FAULTS = [
    ('SIGKILL in the middle of an epoch',
     'the run dies; `--resume` continues from the last epoch checkpoint',
     'every checkpoint written so far; the resumed run ends with bitwise '
     'the same weights and metrics as an uninterrupted run',
     'test_resume_after_kill.py::test_resumed_run_equals_uninterrupted_run'),
    ('SIGKILL while a checkpoint is being written',
     'the run dies; a hidden `.epoch_N.pth.part-PID` file is removed by the '
     'next `--resume`',
     'the previous checkpoint and `last_checkpoint` (even with '
     '`max_keep_ckpts=1`); the half-written file never gets the real name',
     'test_resume_after_kill.py::'
     'test_kill_while_writing_a_checkpoint_keeps_the_last_good_one'),
    ('disk full (ENOSPC) while writing a checkpoint',
     'the OSError "No space left on device"',
     'the old file byte for byte; no partial file; old checkpoints are '
     'deleted only after the new one is saved',
     'test_resume_after_kill.py::'
     'test_failed_write_leaves_the_old_file_intact'),
    ('truncated checkpoint / broken `last_checkpoint`',
     '`--resume` warns and continues from the newest complete checkpoint; '
     'loading the truncated file names it (CorruptCheckpointError)',
     'all complete checkpoints',
     'test_resume_after_kill.py::test_resume_skips_a_truncated_checkpoint'),
    ('NaN loss in the middle of training',
     '`ERROR: Non-finite loss at epoch 2, iteration 2/3 ...` naming the last '
     'good checkpoint',
     'epoch_1.pth (finite weights, resumable); no checkpoint with NaN is '
     'written',
     'test_nan_loss_stops_and_keeps_the_last_good_checkpoint'),
    ('image becomes unreadable during training (on_bad_sample=raise)',
     '`ERROR: Bad image file <path>: truncated or corrupt ...`',
     'the checkpoints of the epochs before',
     'test_corrupt_image_during_training_stops_with_its_path'),
    ('corrupt image, truncated mask, missing mask (on_bad_sample=skip)',
     'a warning per bad file, then `Epoch N: skipped 3 bad training '
     'samples ...` at the end of every epoch',
     'the run; bad samples are replaced by the next sample, never trained on',
     'test_bad_samples_are_skipped_and_counted_each_epoch'),
    ('truncated or missing mask at load (on_bad_sample=raise)',
     '`ERROR: ... 2 bad files among the samples of <split>: <paths>`',
     'nothing was started',
     'test_bad_masks_are_reported_at_load'),
    ('unconverted 0/255 mask',
     '`ERROR: ... do not hold 0/1 labels: <path>: values {0, 255}: an '
     'unconverted 0/255 mask` and the converter command',
     'nothing was started (the lesion is not silently learned as ignore)',
     'test_unconverted_mask_is_refused_with_the_converter_command'),
    ('mask with unexpected values (interpolated, colour)',
     'the file and its values, and the converter command',
     'nothing was started',
     'test_mask_with_other_values_is_refused'),
    ('malicious checkpoint (pickle that runs code)',
     '`Refusing to load checkpoint <path>: ... GLOBAL posix.makedirs ...` '
     'in train load_from, --resume, test, reparameterize, init_model, '
     'infer, export',
     'nothing from the file is executed',
     'test_malicious_checkpoint_is_refused_everywhere'),
    ('config typo: unknown model type',
     '`ERROR: EncoderDecodr is not in the mmseg::model registry ...`',
     'nothing was started; no run folder is left in the work dir',
     'test_config_typos_are_reported'),
    ('config typo: misspelt top-level key',
     "`ERROR: Config key 'train_dataloadr' ... did you mean "
     "'train_dataloader'?`",
     'nothing was started (the key is not silently ignored)',
     'test_config_typos_are_reported'),
    ('config typo: misspelt argument',
     '`ERROR: ... unexpected keyword argument \'num_clases\' (check the '
     'spelling ...)`',
     'nothing was started; no run folder is left in the work dir',
     'test_config_typos_are_reported'),
    ('config value out of range (a DSNet argument)',
     '`ERROR: ... stem_stride must be 1 or 2, got 3`',
     'nothing was started; no run folder is left in the work dir',
     'test_config_typos_are_reported'),
    ('decode head and metric thresholds differ',
     '`ERROR: the decode head calls lesion above probability 0.4 but '
     'test_evaluator (LesionMetric) above 0.5: ... set both ...` in train '
     'and test',
     'nothing was started (no figures of masks the model does not output)',
     'test_threshold_mismatch_is_reported'),
    ('wrong num_classes',
     '`ERROR: model.decode_head.num_classes=3 but the training dataset ... '
     'has 2 classes` (test: `... the test dataset ...`)',
     'nothing was started; no run folder is left in the work dir',
     'test_wrong_num_classes_is_reported'),
    ('empty split file',
     '`ERROR: ISIC2018Dataset: no samples in <split file> ...`',
     'nothing was started',
     'test_empty_or_missing_split_is_reported'),
    ('missing split file',
     '`ERROR: ISIC2018Dataset: split file <path> does not exist ...`',
     'nothing was started',
     'test_empty_or_missing_split_is_reported'),
    ('unwritable work dir (a path through a file)',
     '`ERROR: Cannot write to the work dir <path>: <file> is a file, not a '
     'folder ...`',
     'nothing is written anywhere',
     'test_unwritable_work_dir_is_reported'),
    ('uneven split over distributed ranks',
     'nothing: each image is evaluated once',
     'the pooled metrics equal a single-process evaluation',
     'test_distributed_eval.py::test_distributed_test_equals_single_process'),
    ('reparameterize.py with a missing checkpoint or an existing output',
     '`ERROR: checkpoint <path> does not exist` (or `... pass --overwrite '
     '...`), '
     'exit 2',
     'nothing is written; an existing output is kept',
     'test_user_error_exits.py::'
     'test_reparameterize_user_error_is_one_error_line'),
    ('restrictive umask (027) while writing deploy files',
     'nothing: the files get mode 0640 (0666 less the umask), not 0600',
     'the deploy checkpoint and config',
     'test_user_error_exits.py::'
     'test_reparameterize_outputs_follow_the_umask'),
    ('truncated or random .onnx file given to infer.py',
     '`ERROR: <file> is not a loadable ONNX model (...)`, exit 2, no '
     'traceback',
     'nothing is written',
     'test_user_error_exits.py::test_broken_onnx_is_one_error_line'),
    ('infer.py given some images that cannot be read (truncated, not an '
     'image, missing)',
     'each named with its reason, then `ERROR: 2 inputs failed or missing '
     '(listed above); the others were written (--allow-failures to exit '
     '0)`, exit 1',
     'the masks and overlays of the readable images; nothing is written for '
     'the failed ones',
     'test_infer.py::test_masks_at_original_size_and_bad_inputs'),
    ('infer.py --recursive with --out-dir inside the input folder',
     '`skipped OUT/masks: an output folder of this run, not read as input`',
     'a second run processes the same images, not its own outputs',
     'test_user_error_exits.py::'
     'test_infer_recursive_does_not_reread_its_outputs'),
    ('exported ONNX graph that differs from the model (one weight off by 0.1)',
     '`FAILED: the ONNX model does not match ...; <out> not written`, exit 1',
     'no .onnx file (the export goes to a temporary name, moved only after '
     'the parity check passes)',
     'test_user_error_exits.py::'
     'test_export_parity_catches_a_real_mismatch_and_leaves_no_file'),
    ('test.py with a data root given by --cfg-options while the default '
     'root is absent',
     'nothing: the given root is evaluated; `test_metrics.json` names its'
     ' `data_root`, `split_file`, `images` and `synthetic: false`',
     'the given data; the synthetic set is not put in its place',
     'test_explicit_data.py::'
     'test_explicit_root_is_used_as_given'),
    ('missing data root given by --cfg-options (test.py, train.py)',
     "`ERROR: test_dataloader.dataset.data_root '<root>' does not exist "
     '... python tools/dataset_converters/isic.py SRC <root>`, exit 2',
     'nothing was started; no synthetic set is used instead',
     'test_explicit_data.py::'
     'test_explicit_missing_root_is_an_error'),
    ('no data location given and the default data root absent',
     '`Using the embedded synthetic ISIC-like set instead: ...`; '
     '`test_metrics.json` says `synthetic: true`',
     'the run, on the synthetic set (marked by its `SYNTHETIC.txt`)',
     'test_explicit_data.py::'
     'test_no_data_named_falls_back_to_synthetic'),
    ('leaderboard.py collect on a run trained or tested on the synthetic '
     'set',
     '`ERROR: <work dir> was trained or evaluated on the synthetic '
     'stand-in set ...`, exit 2',
     'no run record is written',
     'test_explicit_data.py::'
     'test_leaderboard_collect_refuses_a_synthetic_run'),
    ('unwritable test.py --metrics-out (a folder, or a path through a '
     'file)',
     '`ERROR: Cannot write --metrics-out <path>: ...`, exit 2, before the'
     ' evaluation starts',
     'nothing was evaluated or written',
     'test_explicit_data.py::'
     'test_unwritable_metrics_out_fails_before_evaluating'),
    ('checkpoint of another model given to test.py (infer, export, '
     'benchmark alike)',
     '`ERROR: Checkpoint <path> does not match the model of <config>: 299 '
     'missing keys (<first 5>, ... (294 more)); 312 unexpected keys (...); '
     '1 key of another shape (...)`, exit 2',
     'nothing is evaluated; no metrics file is written',
     'test_strict_checkpoints.py::'
     'test_test_tool_refuses_a_checkpoint_of_another_model'),
    ('checkpoint of another model as load_from or in --resume',
     '`ERROR: Checkpoint <path> does not match the model of <config>: ...`,'
     ' exit 2, before the first iteration',
     'nothing is trained; the work dir keeps its checkpoints',
     'test_strict_checkpoints.py::'
     'test_train_refuses_a_wrong_load_from_or_resume_checkpoint'),
    ('backbone-only (partial) checkpoint as load_from',
     'without a flag: `ERROR: ... missing keys (decode_head....) ... pass '
     '--partial-checkpoint ...`, exit 2; with `--partial-checkpoint` or '
     '`load_from_strict=False`: trains from the matching weights',
     'nothing is trained unless asked; a partial load matching no key is '
     'still refused',
     'test_strict_checkpoints.py::'
     'test_partial_checkpoint_loads_only_when_asked'),
    ('full DSNet checkpoint given to reparameterize.py with an ablation '
     'config (vanilla-conv, no-gate)',
     '`ERROR: Checkpoint <path> does not match the model of <config>: 72 '
     'unexpected keys (...) ... Give the training config ...`, exit 2',
     'no deploy checkpoint or config is written',
     'test_strict_checkpoints.py::'
     'test_reparameterize_refuses_a_checkpoint_of_another_variant'),
    ('Git LFS pointer, HTML page, text file or other binary data given as '
     'a checkpoint',
     '`ERROR: Checkpoint <path> is a Git LFS pointer, not the weights: run '
     'git lfs pull ...` (or `is an HTML page ...`, `is a text file, not a '
     'PyTorch checkpoint`, `is not a PyTorch checkpoint (neither a zip '
     'archive nor a pickle; it starts with the bytes ...)`), exit 2, in '
     'test, train, reparameterize, infer',
     'nothing is written; the file is left as it was',
     'test_strict_checkpoints.py::test_non_checkpoint_file_is_named'),
    ('missing checkpoint file (test.py, train.py load_from)',
     '`ERROR: checkpoint <path> does not exist`, exit 2',
     'nothing was started (no work dir is created)',
     'test_strict_checkpoints.py::test_missing_checkpoint_file_is_one_line'),
    ('config path typo (train.py, test.py, benchmark.py)',
     '`ERROR: config file <path> does not exist`, exit 2',
     'nothing was started',
     'test_strict_checkpoints.py::test_config_typo_is_one_line'),
    ('JPEG with an EXIF orientation tag (converter)',
     'the image is written upright, listed as fixed ("EXIF orientation '
     'applied"); a mask fitting only the unturned pixels is skipped as '
     '`size mismatch ... after its EXIF orientation 6 (stored WxH)`',
     'the aligned pairs; loader, inference and export read images upright '
     'through one reader (mmseg_dsnet/rgb_reader.py)',
     'test_converter_hardening.py::'
     'test_exif_rotated_image_is_written_upright_and_aligned'),
    ('unsafe id in a file name (space, line break, separator, leading dot)',
     '`[unsafe id] <folder>/<escaped name> ...: whitespace ... in the id` '
     'among the skipped pairs; `--strict` exits 2',
     'the other pairs; split files hold one safe id per line',
     'test_converter_hardening.py::test_unsafe_ids_are_skipped_naming_the_file'
     ),
    ('SIGTERM or SIGHUP during conversion',
     '`ERROR: interrupted by SIGTERM; nothing written`, exit 143 (SIGHUP: '
     '129)',
     'no OUT, no OUT.tmp-PID folder, no worker process (also when only the '
     'parent was signalled)',
     'test_converter_hardening.py::'
     'test_sigterm_or_sighup_cleans_up_and_stops_the_workers'),
    ('converter killed with SIGKILL',
     'its workers die with it; the next run prints `note: removed '
     'OUT.tmp-PID, left by an interrupted conversion (process PID is gone)`',
     'temporary folders of conversions still running',
     'test_converter_hardening.py::'
     'test_stale_tmp_folder_is_removed_by_the_next_run'),
    ('converter OUT reaching into SRC through a symlink',
     '`ERROR: OUT (<path>, which resolves to <path>) and SRC (<path>) must '
     'not contain one another ...`, exit 2',
     'SRC untouched; nothing written',
     'test_converter_hardening.py::'
     'test_out_reaching_into_src_through_a_symlink_is_refused'),
    ('zip member larger than the per-file limit (converter)',
     '`[file too large] <zip>:<member> ... is larger than the limit of 200 '
     'MB per file (MAX_MEMBER_BYTES ...)` among the skipped pairs',
     'the other pairs; memory stays bounded (members are streamed and cut '
     'at the limit)',
     'test_converter_hardening.py::'
     'test_zip_member_over_the_limit_is_skipped_naming_it'),
    ('`leaderboard.py collect` given a config of another model than the run '
     'trained',
     '`ERROR: CONFIG builds another model than the run in WORK_DIR trained: '
     'model.decode_head.use_gate differs from its dumped config; ...`, exit '
     '2 (a config that changes only the input size is accepted)',
     'no record written',
     'test_leaderboard.py::test_collect_refuses_a_config_of_another_model'),
]


class RunsCode:
    """Unpickling this creates a folder: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker, ))


@pytest.fixture(scope='module')
def tools():
    return dict(train=load_tool('train.py'), test=load_tool('test.py'),
                reparameterize=load_tool('deployment/reparameterize.py'))


def train_argv(cfg, work_dir, *cfg_options, extra=()):
    return [cfg, '--work-dir', work_dir, '--no-synthetic-fallback', *extra,
            '--cfg-options', f'experiment_name=fault_{uuid.uuid4().hex[:8]}',
            *cfg_options]


def run_log(work_dir):
    logs = sorted(work_dir.glob('*/*.log'))
    return logs[-1].read_text() if logs else ''


def copy_data(src, dst):
    shutil.copytree(src, dst)
    return dst


def train_names(root):
    return (root / 'splits' / 'lightweight_train.txt').read_text().split()


@pytest.fixture(scope='module')
def base(tiny_isic, tmp_path_factory):
    """A tiny config on a private copy of the tiny set."""
    tmp = tmp_path_factory.mktemp('faults')
    root = copy_data(tiny_isic, tmp / 'data')
    return tmp, root, write_tiny_config(tmp / 'tiny.py', root, epochs=2)


@pytest.fixture(scope='module')
def trained_checkpoint(base, tools):
    """One epoch of training, for the tests that need a real checkpoint."""
    tmp, _, cfg = base
    work_dir = tmp / 'one_epoch'
    tools['train'].main([str(a) for a in train_argv(
        cfg, work_dir, 'train_cfg.max_epochs=1')])
    return work_dir / 'epoch_1.pth'


# -- numerical faults ---------------------------------------------------------


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
        base, tools, tmp_path, monkeypatch, capsys):
    from mmengine.runner import EpochBasedTrainLoop
    from mmseg_dsnet.compat import safe_torch_load
    _, _, cfg = base
    run_iter = EpochBasedTrainLoop.run_iter

    def poisoning_run_iter(self, idx, data_batch):
        if self._epoch == 1 and idx == 1:  # epoch 2, iteration 2
            with torch.no_grad():
                next(self.runner.model.parameters()).fill_(float('nan'))
        return run_iter(self, idx, data_batch)

    monkeypatch.setattr(EpochBasedTrainLoop, 'run_iter', poisoning_run_iter)
    work_dir = tmp_path / 'work'
    code, err = run_cli(tools['train'].main, train_argv(cfg, work_dir), capsys)
    assert code == 2
    assert 'ERROR: Non-finite loss at epoch 2, iteration 2/3' in err, err
    assert '(global iteration 5)' in err and 'loss=nan' in err
    assert f'last good checkpoint is {work_dir / "epoch_1.pth"}' in err
    assert not (work_dir / 'epoch_2.pth').exists()
    assert (work_dir / 'last_checkpoint').read_text().endswith('epoch_1.pth')
    ckpt = safe_torch_load(str(work_dir / 'epoch_1.pth'))
    assert ckpt['meta']['epoch'] == 1
    assert all(torch.isfinite(t).all() for t in ckpt['state_dict'].values()
               if t.is_floating_point())


def test_checkpoint_with_nan_weights_is_not_written(tmp_path):
    from mmseg_dsnet.engine.hooks.non_finite_loss_hook import (
        NonFiniteLossError, NonFiniteLossHook)

    class Runner:
        epoch, iter = 1, 6

    hook = NonFiniteLossHook()
    good = dict(state_dict=dict(w=torch.ones(3), n=torch.tensor(4)))
    hook.before_save_checkpoint(Runner(), good)
    bad = dict(state_dict=dict(w=torch.tensor([1.0, float('inf')])))
    with pytest.raises(NonFiniteLossError, match="weight 'w' holds NaN"):
        hook.before_save_checkpoint(Runner(), bad)


# -- bad data -----------------------------------------------------------------


@pytest.mark.slow
def test_corrupt_image_during_training_stops_with_its_path(
        base, tools, tmp_path, monkeypatch, capsys):
    """The image goes bad after epoch 1 (a flaky network disk): epoch 2
    stops at it, naming it; epoch 1's checkpoint stays."""
    from mmengine.runner import EpochBasedTrainLoop
    tmp, root, _ = base
    data = copy_data(root, tmp_path / 'data')
    cfg = write_tiny_config(tmp_path / 'tiny.py', data, epochs=2)
    image = data / 'images' / f'{train_names(data)[3]}.jpg'
    run_epoch = EpochBasedTrainLoop.run_epoch

    def corrupting_run_epoch(self):
        if self._epoch == 1:
            image.write_bytes(b'\xff\xd8 not really a jpeg' * 20)
        return run_epoch(self)

    monkeypatch.setattr(EpochBasedTrainLoop, 'run_epoch', corrupting_run_epoch)
    work_dir = tmp_path / 'work'
    code, err = run_cli(tools['train'].main, train_argv(cfg, work_dir), capsys)
    assert code == 2
    assert f'ERROR: Bad image file {image}: truncated or corrupt' in err, err
    assert "on_bad_sample='skip'" in err
    assert (work_dir / 'epoch_1.pth').is_file()
    assert not (work_dir / 'epoch_2.pth').exists()


@pytest.fixture(scope='module')
def bad_data(base):
    """The tiny set with a corrupt image, a truncated mask and a missing
    mask among the training samples (spread out, so that no bad sample
    stands in for another)."""
    tmp, root, _ = base
    data = copy_data(root, tmp / 'bad_data')
    names = train_names(data)
    corrupt = data / 'images' / f'{names[0]}.jpg'
    corrupt.write_bytes(b'this is not an image' * 50)
    truncated = data / 'masks' / f'{names[4]}.png'
    truncated.write_bytes(truncated.read_bytes()[:60])
    missing = data / 'masks' / f'{names[8]}.png'
    missing.unlink()
    return data, dict(corrupt=corrupt, truncated=truncated, missing=missing)


def test_bad_masks_are_reported_at_load(base, bad_data, tools, tmp_path,
                                        capsys):
    tmp, _, _ = base
    data, bad = bad_data
    cfg = write_tiny_config(tmp_path / 'tiny.py', data)
    work_dir = tmp_path / 'work'
    code, err = run_cli(tools['train'].main, train_argv(cfg, work_dir), capsys)
    assert code == 2
    assert '2 bad files among the samples of' in err, err
    assert f'{bad["truncated"]}: truncated or corrupt' in err
    assert f'{bad["missing"]}: missing' in err
    assert not list(work_dir.glob('*.pth'))


def test_corrupt_image_in_a_dataset_names_the_file(bad_data):
    from mmseg.registry import DATASETS
    from mmseg_dsnet.datasets import BadSampleError
    data, bad = bad_data
    dataset = DATASETS.build(dict(
        type='ISIC2018Dataset', data_root=str(data),
        ann_file='splits/lightweight_train.txt',
        data_prefix=dict(img_path='images', seg_map_path='masks'),
        check_masks=False,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations'),
                  dict(type='PackSegInputs')]))
    with pytest.raises(BadSampleError) as info:
        dataset[0]
    assert info.value.path == str(bad['corrupt'])
    assert 'truncated or corrupt' in str(info.value)
    sample = dataset[1]  # good samples load as before
    assert set(np.unique(sample['data_samples'].gt_sem_seg.data)) <= {0, 1}


@pytest.mark.slow
def test_bad_samples_are_skipped_and_counted_each_epoch(
        bad_data, tools, tmp_path, capsys):
    data, bad = bad_data
    cfg = write_tiny_config(tmp_path / 'tiny.py', data)
    work_dir = tmp_path / 'work'
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, 'train_dataloader.dataset.on_bad_sample=skip'), capsys)
    assert code == 0, err
    log = run_log(work_dir)
    assert 'They will be skipped' in log  # the warning at load
    for epoch in (1, 2):
        line = re.search(rf'Epoch {epoch}: skipped (\d+) bad training '
                         r'samples[^\n]*', log)
        assert line and int(line.group(1)) == 3, log[-3000:]
        for path in bad.values():
            assert str(path) in line.group(0)
    # Each epoch still trains on full batches of good samples.
    assert 'Epoch(train) [2][3/3]' in log
    assert (work_dir / 'epoch_2.pth').is_file()


def corrupt_third_test_image(base, tmp_path):
    """A tiny config over a copy of the data whose third test image is
    truncated; returns the config and that image."""
    _, root, _ = base
    data = copy_data(root, tmp_path / 'data')
    cfg = write_tiny_config(tmp_path / 'tiny.py', data)
    name = (data / 'splits' / 'lightweight_test.txt').read_text().split()[2]
    image = data / 'images' / f'{name}.jpg'
    image.write_bytes(image.read_bytes()[:300])
    return cfg, image


@pytest.mark.slow
def test_a_test_that_would_score_a_replaced_sample_stops(
        base, tools, trained_checkpoint, tmp_path, capsys):
    """``on_bad_sample='skip'`` on the test split: the corrupt image was
    replaced by the next one, scored twice, and ``test_metrics.json`` said
    the figures were of the split's 5 images, exit 0 (a warning in the
    log). Now the test stops at it; no figures are written anywhere."""
    cfg, image = corrupt_third_test_image(base, tmp_path)
    work_dir = tmp_path / 'work'
    code, err = run_cli(tools['test'].main, [
        cfg, trained_checkpoint, '--work-dir', work_dir, '--cfg-options',
        'test_dataloader.dataset.on_bad_sample=skip'], capsys)
    assert (code, err.splitlines()[-1]) == (2, (
        f'ERROR: Test: the bad sample {image} was replaced by the next '
        "sample (on_bad_sample='skip'), so that one would be scored twice "
        f'and {image} not at all; a test scores every image of its split. '
        'Fix or remove the file (and its line in the split file); nothing '
        'was reported'))
    assert not list(work_dir.rglob('*.json'))


@pytest.mark.slow
def test_a_validation_over_a_replaced_sample_stops_the_run(
        base, tools, tmp_path, capsys):
    """``on_bad_sample='skip'`` on the validation split: the corrupt image
    was replaced by the next one, a warning was logged, and the figures were
    logged as the epoch's and chose ``best_IoU_epoch_1.pth``, exit 0. Now
    the run stops before they are recorded or pick a best checkpoint; the
    epoch's checkpoint stays for a resume."""
    cfg, image = corrupt_third_test_image(base, tmp_path)  # val = test split
    work_dir = tmp_path / 'work'
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, 'val_dataloader.dataset.on_bad_sample=skip'), capsys)
    assert (code, err.splitlines()[-1]) == (2, (
        'ERROR: Validation after epoch 1: 1 bad sample was replaced by '
        f"another sample (on_bad_sample='skip'): {image}. Its figures are "
        'therefore not over the whole validation split; they were not '
        'recorded and chose no best checkpoint. Fix or remove the file '
        '(and its line in the split file), then train again or --resume '
        '(the checkpoints saved so far are kept)'))
    assert not list(work_dir.glob('best_*.pth'))
    assert (work_dir / 'epoch_1.pth').is_file()
    assert not (work_dir / 'epoch_2.pth').exists()
    assert not re.search(r'Epoch\(val\) \[1\]\[\d+/\d+\]\s+IoU',
                         run_log(work_dir))
    scalars = list(work_dir.glob('*/vis_data/scalars.json'))
    assert all('"IoU"' not in path.read_text() for path in scalars)


@pytest.mark.slow
def test_a_test_that_fails_leaves_no_masks_of_part_of_the_split(
        base, tools, trained_checkpoint, tmp_path, capsys):
    """``test.py --out MASKS`` stopped at a corrupt third image after the
    masks of the first two were written; they stayed in MASKS, a result of
    part of the split. Now they are removed, and MASKS too if the run made
    it (an empty folder given stays)."""
    cfg, image = corrupt_third_test_image(base, tmp_path)
    given = tmp_path / 'given'
    given.mkdir()
    for masks in (tmp_path / 'masks', given):
        code, err = run_cli(tools['test'].main, [
            cfg, trained_checkpoint, '--work-dir', tmp_path / 'work',
            '--out', masks], capsys)
        assert code == 2
        assert f'ERROR: Bad image file {image}: truncated or corrupt' in err
    assert not (tmp_path / 'masks').exists()
    assert given.is_dir() and not list(given.iterdir())
    assert not list((tmp_path / 'work').rglob('*.json'))


@pytest.mark.slow
def test_a_test_that_fails_leaves_no_paintings_of_part_of_the_split(
        base, tools, trained_checkpoint, tmp_path, capsys):
    """``test.py --show-dir SHOW`` stopped at a corrupt third image after
    the first two were painted; their paintings (and ``vis_data/config.py``)
    stayed in SHOW, which looked like a test's paintings and refused the
    same command again. Now they are removed, and SHOW too if the run made
    it (an empty folder given stays)."""
    cfg, image = corrupt_third_test_image(base, tmp_path)
    given = tmp_path / 'given'
    given.mkdir()
    for show in (tmp_path / 'show', given):
        # A process of its own: run in this one after the training, the
        # test painted nothing.
        proc = run_tool_process(
            'tools/test.py', cfg, trained_checkpoint, '--work-dir',
            tmp_path / 'work', '--show-dir', show, '--cfg-options',
            'default_hooks.visualization.interval=1',
            'test_dataloader.batch_size=1')
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert f'ERROR: Bad image file {image}: truncated or corrupt' in \
            proc.stderr
    assert not (tmp_path / 'show').exists()
    assert given.is_dir() and not list(given.iterdir())


def make_mask(path, values):
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = values[0]
    if len(values) > 1:
        mask[0:5, 0:5] = values[1]
    cv2.imwrite(str(path), mask)


def test_unconverted_mask_is_refused_with_the_converter_command(
        base, tools, tmp_path, capsys):
    _, root, _ = base
    data = copy_data(root, tmp_path / 'data')
    mask = data / 'masks' / f'{train_names(data)[2]}.png'
    make_mask(mask, [255])  # the official 0/255 format
    cfg = write_tiny_config(tmp_path / 'tiny.py', data)
    code, err = run_cli(tools['train'].main, train_argv(cfg, tmp_path / 'w'),
                        capsys)
    assert code == 2
    assert f'{mask}: values {{0, 255}}: an unconverted 0/255 mask' in err
    assert 'python tools/dataset_converters/isic.py RAW_DIR DATA_ROOT' in err
    # The check can be turned off (then 255 is mmseg's ignore label).
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(dict(
        type='ISIC2018Dataset', data_root=str(data),
        ann_file='splits/lightweight_train.txt', check_masks=False,
        data_prefix=dict(img_path='images', seg_map_path='masks')))
    assert len(dataset) == len(train_names(data))


def test_mask_with_other_values_is_refused(tmp_path):
    from mmseg_dsnet.datasets.sample_checks import check_masks
    ok = tmp_path / 'ok.png'
    ignore = tmp_path / 'ok_with_ignore.png'
    blurred = tmp_path / 'blurred.png'
    colour = tmp_path / 'colour.png'
    make_mask(ok, [1])
    make_mask(ignore, [1, 255])
    make_mask(blurred, [255, 128])
    cv2.imwrite(str(colour), np.zeros((8, 8, 3), np.uint8))
    bad_values, unreadable = check_masks(
        [str(p) for p in (ok, ignore, blurred, colour)])
    assert unreadable == []
    assert [p for p, _ in bad_values] == [str(blurred), str(colour)]
    assert 'unexpected values {128}' in bad_values[0][1]
    assert '3 channels' in bad_values[1][1]


def test_mask_check_is_fast_enough_for_isic(tmp_path):
    """2750 masks of 256x192 (ISIC 2018 train+val at the shared size) are
    checked in seconds."""
    from mmseg_dsnet.datasets.sample_checks import check_masks
    mask = np.zeros((192, 256), np.uint8)
    cv2.ellipse(mask, (128, 96), (60, 40), 0, 0, 360, 1, -1)
    paths = []
    for i in range(2750):
        path = str(tmp_path / f'{i}.png')
        cv2.imwrite(path, np.roll(mask, i % 50, axis=1))
        paths.append(path)
    start = time.perf_counter()
    assert check_masks(paths) == ([], [])
    assert time.perf_counter() - start < 15


def test_empty_or_missing_split_is_reported(base, tools, tmp_path, capsys):
    _, root, _ = base
    data = copy_data(root, tmp_path / 'data')
    split = data / 'splits' / 'lightweight_train.txt'
    split.write_text('\n')
    cfg = write_tiny_config(tmp_path / 'tiny.py', data)
    code, err = run_cli(tools['train'].main, train_argv(cfg, tmp_path / 'w'),
                        capsys)
    assert code == 2
    assert f'ERROR: ISIC2018Dataset: no samples in {split}' in err, err
    (data / 'splits' / 'lightweight_test.txt').unlink()
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, tmp_path / 'w', 'train_dataloader.dataset.ann_file='
        'splits/official_train.txt'), capsys)
    assert code == 2
    assert 'split file' in err and 'lightweight_test.txt does not exist' \
        in err, err


# -- configuration and environment -------------------------------------------


@pytest.mark.parametrize('option, message', [
    ('model.type=EncoderDecodr',
     'EncoderDecodr is not in the mmseg::model registry'),
    ('train_dataloadr.batch_size=2',
     "Config key 'train_dataloadr' is not used by the runner and would be "
     "silently ignored; did you mean 'train_dataloader'?"),
    ('model.decode_head.num_clases=2',
     "unexpected keyword argument 'num_clases' (check the spelling of this "
     'key in the config)'),
    ('model.backbone.stem_stride=3', 'stem_stride must be 1 or 2, got 3'),
])
def test_config_typos_are_reported(base, tools, tmp_path, capsys, option,
                                   message):
    _, _, cfg = base
    work_dir = tmp_path / 'work'
    code, err = run_cli(tools['train'].main, train_argv(cfg, work_dir, option),
                        capsys)
    assert code == 2
    assert err.startswith('ERROR: ') and message in err, err
    # Not even the log folder mmengine's runner makes before the model.
    assert not work_dir.exists() or not any(work_dir.iterdir())


def test_training_the_re_parameterised_form_is_refused(base, tools,
                                                       tmp_path, capsys):
    """A deploy config (deploy=True, as reparameterize.py writes one) used
    to train a network without BatchNorms, difference branches or deep
    supervision under the model's name, exit 0."""
    _, _, cfg = base
    work_dir = tmp_path / 'work'
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, 'model.backbone.deploy=True',
        'model.decode_head.deploy=True'), capsys)
    assert code == 2 and err.startswith(
        'ERROR: model.backbone.deploy=True, model.decode_head.deploy=True: '
        'this config builds the re-parameterised (inference) form'), err
    assert err.endswith('train the training config (deploy=False) and '
                        're-parameterise its checkpoint with '
                        'tools/deployment/reparameterize.py\n'), err
    assert not work_dir.exists() or not any(work_dir.iterdir())
    from mmengine.config import Config
    from mmseg_dsnet.engine.fast_training import check_fast_run_config
    from mmseg_dsnet.utils.errors import UserError
    fast = Config.fromfile(str(cfg))
    fast.model.decode_head.deploy = True
    with pytest.raises(UserError, match=r'model\.decode_head\.deploy=True: '
                       'this config builds the re-parameterised'):
        check_fast_run_config(fast, str(cfg))


def test_test_tool_refuses_a_bad_model_argument_before_the_runner(
        base, tools, trained_checkpoint, tmp_path, capsys):
    _, _, cfg = base
    work_dir = tmp_path / 'work'
    argv = [cfg, trained_checkpoint, '--work-dir', work_dir,
            '--no-synthetic-fallback', '--cfg-options',
            'model.backbone.stem_stride=3']
    code, err = run_cli(tools['test'].main, argv, capsys)
    assert code == 2 and 'ERROR: ' in err and \
        'stem_stride must be 1 or 2, got 3' in err, err
    assert not work_dir.exists()


def test_threshold_mismatch_is_reported(base, tools, trained_checkpoint,
                                        tmp_path, capsys):
    _, _, cfg = base
    work_dir = tmp_path / 'work'
    expected = ('ERROR: the decode head calls lesion above probability 0.4 '
                'but {} (LesionMetric) above 0.5')
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, 'model.decode_head.threshold=0.4'), capsys)
    assert code == 2 and expected.format('val_evaluator') in err, err
    assert not list(work_dir.glob('*.pth'))
    argv = [cfg, trained_checkpoint, '--work-dir', work_dir,
            '--no-synthetic-fallback', '--cfg-options',
            'model.decode_head.threshold=0.4']
    code, err = run_cli(tools['test'].main, argv, capsys)
    assert code == 2 and expected.format('test_evaluator') in err, err
    assert 'test_evaluator.threshold=T' in err
    assert not (work_dir / 'test_metrics.json').exists()
    # Both set: the figures are of the masks the model outputs.
    code, err = run_cli(tools['test'].main, argv + ['test_evaluator.threshold=0.4'],
                        capsys)
    assert code == 0, err
    assert (work_dir / 'test_metrics.json').is_file()
    # A second test into the same file says what it replaces.
    capsys.readouterr()
    tools['test'].main([str(a) for a in argv] +
                       ['test_evaluator.threshold=0.4'])
    said = capsys.readouterr().out
    assert f'(replacing the metrics of {trained_checkpoint} on ' in said


def test_wrong_num_classes_is_reported(base, tools, trained_checkpoint,
                                       tmp_path, capsys):
    _, _, cfg = base
    work_dir = tmp_path / 'work'
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, 'model.decode_head.num_classes=3'), capsys)
    assert code == 2
    assert ('ERROR: model.decode_head.num_classes=3 but the training dataset'
            ' ISIC2018Dataset has 2 classes') in err, err
    # Refused from the config, before the runner makes its run folder.
    assert not work_dir.exists()
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, 'model.decode_head.out_channels=3'), capsys)
    assert code == 2
    assert 'out_channels' in err and 'num_classes' in err, err
    # Classes given as the dataset's metainfo count as the dataset's.
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir,
        'train_dataloader.dataset.metainfo.classes=[skin,lesion,hair]'),
        capsys)
    assert code == 2 and 'has 3 classes' in err, err
    assert not work_dir.exists()
    argv = [cfg, trained_checkpoint, '--work-dir', work_dir,
            '--no-synthetic-fallback', '--cfg-options',
            'model.decode_head.num_classes=3']
    code, err = run_cli(tools['test'].main, argv, capsys)
    assert code == 2 and ('ERROR: model.decode_head.num_classes=3 but the '
                          'test dataset ISIC2018Dataset') in err, err
    assert not work_dir.exists()


def test_num_classes_hook_stops_a_runner_built_without_the_tools(
        base, tmp_path):
    """Code that builds its own runner skips the tools' pre-flight checks;
    the hook of the base runtime still refuses the run before training."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    from mmseg_dsnet.engine.hooks.num_classes_check_hook import \
        NumClassesMismatchError
    _, _, cfg_path = base
    cfg = Config.fromfile(cfg_path)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = f'fault_{uuid.uuid4().hex[:8]}'
    cfg.model.decode_head.num_classes = 3
    runner = Runner.from_cfg(cfg)
    with pytest.raises(NumClassesMismatchError,
                       match='num_classes=3 but the training dataset'):
        runner.train()
    assert not list((tmp_path / 'work').glob('*.pth'))


def test_unwritable_work_dir_is_reported(base, tools, tmp_path, capsys):
    """Tests may run as root, for whom no folder is read-only: the work dir
    goes through a regular file instead."""
    _, _, cfg = base
    blocker = tmp_path / 'afile'
    blocker.write_text('not a folder')
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, blocker / 'sub'), capsys)
    assert code == 2
    assert (f'ERROR: Cannot write to the work dir {blocker / "sub"}: '
            f'{blocker} is a file, not a folder') in err, err
    assert blocker.read_text() == 'not a folder'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['afile']


# -- malicious checkpoints ----------------------------------------------------

ENTRY_POINTS = ['train_load_from', 'train_resume', 'test', 'reparameterize',
                'init_model', 'infer', 'export_onnx']


@pytest.mark.slow
@pytest.mark.parametrize('entry', ENTRY_POINTS)
def test_malicious_checkpoint_is_refused_everywhere(
        base, tools, trained_checkpoint, tmp_path, capsys, entry):
    from mmseg_dsnet.compat import UnsafeCheckpointError
    _, _, cfg = base
    marker = tmp_path / 'code_ran'
    # A real checkpoint with one poisoned entry.
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    ckpt['meta']['note'] = RunsCode(str(marker))
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    evil = work_dir / ('epoch_1.pth' if entry == 'train_resume' else
                       'evil.pth')
    torch.save(ckpt, evil)
    refusal = f'Refusing to load checkpoint {evil}'
    if entry in ('train_load_from', 'train_resume'):
        if entry == 'train_resume':
            (work_dir / 'last_checkpoint').write_text(str(evil))
            argv = train_argv(cfg, work_dir, extra=['--resume'])
        else:
            argv = train_argv(cfg, work_dir, f'load_from={evil}')
        code, err = run_cli(tools['train'].main, argv, capsys)
        assert code == 2 and f'ERROR: {refusal}' in err, err
        assert 'GLOBAL' in err and 'makedirs' in err
    elif entry == 'test':
        code, err = run_cli(tools['test'].main, [
            cfg, evil, '--work-dir', tmp_path / 'test', '--cfg-options',
            f'experiment_name=fault_{uuid.uuid4().hex[:8]}'], capsys)
        assert code == 2 and f'ERROR: {refusal}' in err, err
    elif entry == 'reparameterize':
        with pytest.raises(UnsafeCheckpointError, match=re.escape(refusal)):
            tools['reparameterize'].main(
                [str(cfg), str(evil), str(tmp_path / 'deploy.pth'),
                 '--shape', '64', '64'])
        assert not (tmp_path / 'deploy.pth').exists()
    elif entry == 'init_model':
        from mmseg.apis import init_model
        with pytest.raises(UnsafeCheckpointError, match=re.escape(refusal)):
            init_model(str(cfg), str(evil), device='cpu')
    else:
        script = dict(infer='infer.py',
                      export_onnx='deployment/export_onnx.py')[entry]
        tool = load_tool(script)
        if entry == 'infer':
            images = sorted((base[1] / 'images').glob('*.jpg'))[:1]
            argv = [cfg, evil, *images, '--out-dir', tmp_path / 'out']
        else:
            argv = [cfg, evil, tmp_path / 'model.onnx', '--shape', '64', '64']
        capsys.readouterr()
        code = tool.main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert code == 2 and refusal in err, err
    assert not marker.exists(), 'the checkpoint ran code'
    # The checkpoint given is left as it was.
    assert evil.is_file()


# -- the list itself ---------------------------------------------------------


def test_fault_list_is_documented_and_each_fault_has_a_test():
    here = {name for name in globals() if name.startswith('test_')}
    for fault, _, _, test in FAULTS:
        module, _, name = test.rpartition('::')
        if module:
            source = (REPO / 'tests' / module).read_text()
            assert f'def {name}(' in source, test
        else:
            assert name in here, test
    assert len(FAULTS) >= 12
    doc = (REPO / 'docs' / 'reliability.md').read_text()
    rows = [line for line in doc.splitlines() if line.startswith('| ')]
    for fault, _, _, _ in FAULTS:
        assert any(line.startswith(f'| {fault} |') for line in rows), fault
