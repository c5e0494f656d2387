"""The README's main job (tools/demo.py): trains, evaluates and draws on
the embedded synthetic set; refuses settings it would not follow."""
import hashlib
import io
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stdout

import pytest
from conftest import REPO, load_tool, write_tiny_config

from mmseg_dsnet.engine.cli_errors import UserError
from mmseg_dsnet.engine.preflight import MissingInputError

demo = load_tool('demo.py')


def synthetic_copy(tiny_isic, tmp_path):
    """A copy of the tiny converted set marked as the synthetic stand-in
    set, ``tmp_path/synthetic``."""
    synthetic = tmp_path / 'synthetic'
    shutil.copytree(tiny_isic, synthetic)
    (synthetic / 'SYNTHETIC.txt').write_text('made by a test\n')
    return synthetic


@pytest.fixture(scope='module')
def readme_demo(tmp_path_factory):
    """The README's command (``--epochs 1``, no --work-dir) run once from a
    folder of its own; tests that run into it work on a copy.

    Returns:
        dict: ``cwd`` (the folder it ran from), ``work`` (its run folder,
        relative to ``cwd``), ``result`` (what ``main`` returned) and
        ``printed`` (its stdout).
    """
    cwd = tmp_path_factory.mktemp('readme_demo')
    printed = io.StringIO()
    saved = os.getcwd()
    os.chdir(cwd)
    try:
        with redirect_stdout(printed):
            result = demo.main(['--epochs', '1'])
    finally:
        os.chdir(saved)
    run, = os.listdir(cwd / 'work_dirs' / 'demo')
    return dict(cwd=cwd, work=f'work_dirs/demo/{run}', result=result,
                printed=printed.getvalue())


def test_demo_trains_evaluates_and_draws(readme_demo):
    work = readme_demo['cwd'] / readme_demo['work']
    metrics, guess = readme_demo['result']
    for key in ('IoU', 'DSC', 'Sen', 'Spe'):
        assert 0.0 <= metrics[key] <= 100.0
    # The all-lesion guess scores the lesion share, strictly between.
    assert 0.0 < guess < 100.0
    assert (work / 'overlays.png').stat().st_size > 0
    assert list(work.glob('epoch_1.pth'))
    printed = readme_demo['printed']
    assert 'Training DSNet on the CPU for 1 epoch ...' in printed
    assert f'all-lesion {guess:.2f}' in printed
    # The figures and overlays are of the checkpoint it names.
    assert f'Checkpoint: {readme_demo["work"]}/epoch_1.pth' in printed


def test_trivial_guess_is_the_lesion_share_of_the_labelled_pixels(tmp_path):
    """The all-lesion guess the demo prints beside its IoU: lesion pixels
    over labelled ones, pooled over the split's images; ignored (255)
    pixels count neither way, and images outside the split not at all."""
    import numpy as np
    from PIL import Image
    (tmp_path / 'masks').mkdir()
    first = np.zeros((4, 5), np.uint8)
    first[0, :4] = 1  # 4 lesion pixels
    first[3, :2] = 255  # 2 ignored: 18 labelled
    second = np.zeros((2, 2), np.uint8)  # 4 labelled, no lesion
    other = np.ones((3, 3), np.uint8)  # not in the split
    for name, mask in (('a', first), ('b', second), ('c', other)):
        Image.fromarray(mask).save(tmp_path / 'masks' / f'{name}.png')
    (tmp_path / 'test.txt').write_text('a\nb\n')
    assert demo.trivial_guess_iou(str(tmp_path), 'test.txt') == \
        pytest.approx(100 * 4 / 22)


def test_demo_refuses_what_it_would_not_follow(tmp_path):
    with pytest.raises(UserError, match='--epochs must be at least 1'):
        demo.main(['--epochs', '0', '--work-dir', str(tmp_path / 'a')])
    # numpy's refusal came as a traceback after the set was made.
    with pytest.raises(UserError, match='--seed must be an integer from 0'):
        demo.main(['--seed', '-1', '--work-dir', str(tmp_path / 'a')])
    assert not (tmp_path / 'a').exists()
    with pytest.raises(MissingInputError, match='does not exist'):
        demo.main(['--config', str(tmp_path / 'missing.py'), '--work-dir',
                   str(tmp_path / 'b')])
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(Exception, match='is a file, not a folder'):
        demo.main(['--work-dir', str(blocker / 'work')])
    assert not (tmp_path / 'a').exists() and not (tmp_path / 'b').exists()


def test_demo_refuses_a_config_of_real_data(tmp_path, tiny_isic):
    """``--config`` of a converted (real) set, or of the real data's default
    root: refused before anything is written. The demo used to train on
    the real set as 'synthetic' and mark it so, and every later metric on
    it said ``synthetic: true``."""
    from mmseg_dsnet.datasets.synthetic_fallback import (
        SyntheticTargetError, is_synthetic, prepare_synthetic)
    real = tmp_path / 'isic2018'
    shutil.copytree(tiny_isic, real)
    config = write_tiny_config(tmp_path / 'real.py', real, epochs=1)
    work = tmp_path / 'work'
    with pytest.raises(SyntheticTargetError, match='converted from'):
        demo.main(['--config', str(config), '--work-dir', str(work)])
    assert not is_synthetic(str(real)) and not work.exists()
    # An ISIC config of the real data's default root: nothing is
    # generated there.
    default = REPO / 'data' / 'isic2018'
    existed = default.exists()
    with pytest.raises(SyntheticTargetError, match='real ISIC 2018 data'):
        demo.main(['--config', str(REPO / 'configs/dsnet/dsnet_isic2018.py'),
                   '--work-dir', str(work)])
    assert default.exists() == existed and not work.exists()
    # The synthetic set itself is still reused (and stays marked).
    synthetic = synthetic_copy(tiny_isic, tmp_path)
    assert prepare_synthetic(2018, str(synthetic)) == str(synthetic)


def test_demo_refuses_a_config_of_a_folder_of_other_files(tmp_path):
    """``--config`` whose data_root is a folder of other files (no
    ``meta.json``; a raw download, notes) or a file: the synthetic
    download was generated beside it, then the converter's
    ``ConversionError`` traceback offered an ``--overwrite`` the demo does
    not have. Now refused before anything is written."""
    from mmseg_dsnet.datasets.synthetic_fallback import SyntheticTargetError
    folder = tmp_path / 'mine'
    folder.mkdir()
    (folder / 'notes.txt').write_text('mine')
    work = tmp_path / 'work'
    config = write_tiny_config(tmp_path / 'mine.py', folder, epochs=1)
    with pytest.raises(SyntheticTargetError,
                       match='holds files but no converted set'):
        demo.main(['--config', str(config), '--work-dir', str(work)])
    blocker = tmp_path / 'afile'
    blocker.write_text('')
    config = write_tiny_config(tmp_path / 'file.py', blocker, epochs=1)
    with pytest.raises(SyntheticTargetError, match='is a file, not a folder'):
        demo.main(['--config', str(config), '--work-dir', str(work)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'afile', 'file.py', 'mine', 'mine.py']
    assert [p.name for p in folder.iterdir()] == ['notes.txt']


def test_demo_reads_the_set_it_made_from_any_folder(tmp_path, monkeypatch,
                                                    capsys):
    """From another folder the demo made the synthetic set under the
    repository but trained on the config's relative data_root, so the
    training found no split file (exit 2, a log folder and a dumped
    config left); relative --work-dir is of the caller's folder."""
    monkeypatch.chdir(tmp_path)
    metrics, guess = demo.main(['--epochs', '1', '--work-dir', 'demo'])
    assert 0.0 <= metrics['IoU'] <= 100.0 and 0.0 < guess < 100.0
    assert (tmp_path / 'demo' / 'epoch_1.pth').is_file()
    assert (tmp_path / 'demo' / 'overlays.png').stat().st_size > 0
    assert 'Checkpoint: demo/epoch_1.pth' in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ['demo']


def test_run_demo_sh_keeps_the_callers_folder(tmp_path):
    """run_demo.sh changed to the repository root, so a relative --config
    was looked for there: ``ERROR: config file tiny.py does not exist``."""
    parts = sorted((REPO / 'requirements').glob('*.txt')) + [
        REPO / 'setup.py', REPO / 'tools' / 'setup_env.sh']
    stamp = hashlib.sha1(b''.join(p.read_bytes() for p in parts)).hexdigest()
    if not (REPO / '.venv' / f'.mmseg-dsnet-{stamp[:16]}').exists():
        pytest.skip('.venv is not up to date: run_demo.sh would install it')
    (tmp_path / 'tiny.py').write_text('model = dict(\n')
    done = subprocess.run(
        ['bash', str(REPO / 'tools' / 'run_demo.sh'), '--config', 'tiny.py',
         '--epochs', '1', '--work-dir', 'demo3'], cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        'ERROR: config file tiny.py cannot be read as a config: '
        "SyntaxError: '(' was never closed (<unknown>, line 1)")
    assert os.listdir(tmp_path) == ['tiny.py']


def test_demo_refuses_loaders_of_different_folders(tmp_path, tiny_isic):
    """The demo makes one synthetic set and tests on it; a test loader of
    another folder was tested on as it was, as 'synthetic'."""
    synthetic = synthetic_copy(tiny_isic, tmp_path)
    config = write_tiny_config(tmp_path / 'mixed.py', synthetic, epochs=1)
    other = tmp_path / 'other'
    with open(config, 'a') as f:
        f.write(f'test_dataloader = dict(dataset=dict(data_root={str(other)!r}'
                '))\n')
    work = tmp_path / 'work'
    with pytest.raises(UserError) as err:
        demo.main(['--config', str(config), '--work-dir', str(work)])
    assert str(err.value) == (
        f'config file {config}: the demo makes one synthetic set and tests '
        f'on it, but the loaders read different folders (train_dataloader '
        f'{synthetic}, val_dataloader {synthetic}, test_dataloader {other})'
        '; give them one data_root')
    assert sorted(os.listdir(tmp_path)) == ['mixed.py', 'synthetic']


def test_epochs_sets_the_span_of_the_cosine_after_a_warmup(tmp_path,
                                                           monkeypatch):
    """``--epochs`` changed ``param_scheduler[0]`` only: a warmup first got
    the cosine's ``T_max`` (``LinearParamScheduler.__init__() got an
    unexpected keyword argument 'T_max'``, after the set was made) and the
    cosine kept the config's span."""
    import torch
    from mmengine.optim import CosineAnnealingLR, LinearLR

    class Built(Exception):
        pass

    built = {}

    def from_cfg(cfg):
        built['cfg'] = cfg
        raise Built

    monkeypatch.setattr(demo, 'prepare_synthetic', lambda *args: None)
    monkeypatch.setattr(demo, 'build_runner', from_cfg)
    config = tmp_path / 'warmup.py'
    config.write_text(
        f"_base_ = [{str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')!r}]\n"
        "param_scheduler = [\n"
        "    dict(type='LinearLR', start_factor=0.1, begin=0, end=2),\n"
        "    dict(type='CosineAnnealingLR', T_max=18, eta_min=1e-5,\n"
        "         by_epoch=True, begin=2, end=20)]\n")
    with pytest.raises(Built):
        demo.main(['--config', str(config), '--epochs', '6', '--work-dir',
                   str(tmp_path / 'work')])
    cfg = built['cfg']
    assert cfg.train_cfg.max_epochs == 6
    warmup, cosine = cfg.param_scheduler
    assert 'T_max' not in warmup and warmup.end == 2
    assert (cosine.begin, cosine.T_max, cosine.end) == (2, 4, 6)
    # The rates mmengine gives: warmup to 3e-3, then down to eta_min.
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)],
                                lr=3e-3)
    schedulers = [
        LinearLR(optimizer, start_factor=0.1, begin=0, end=2),
        CosineAnnealingLR(optimizer, T_max=cosine.T_max, eta_min=1e-5,
                          begin=2, end=cosine.end)]
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]['lr'])
        for scheduler in schedulers:
            scheduler.step()
    assert rates[2] == pytest.approx(3e-3)
    assert rates[:3] == sorted(rates[:3]) and rates[-1] < 1e-3
    assert rates[2:] == sorted(rates[2:], reverse=True)
    # No epoch left for the cosine, or a schedule it cannot adjust: one
    # error before the set is made.
    with pytest.raises(UserError, match=r'--epochs 2: .* anneals from '
                       r'epoch 2 on .*give more than 2 epochs'):
        demo.main(['--config', str(config), '--epochs', '2', '--work-dir',
                   str(tmp_path / 'refused')])
    with open(config, 'a') as f:
        f.write("param_scheduler.append(dict(type='ConstantLR', begin=20))\n")
    with pytest.raises(UserError, match=r'--epochs 6: cannot adjust '
                       r'param_scheduler .*the last scheduler is ConstantLR'):
        demo.main(['--config', str(config), '--epochs', '6', '--work-dir',
                   str(tmp_path / 'refused')])
    assert not (tmp_path / 'refused').exists()


def test_demo_scores_the_checkpoint_its_run_saved(tmp_path, tiny_isic,
                                                  capsys):
    """The final test scored ``<work_dir>/epoch_<max_epochs>.pth``: an
    earlier run's, left in the work dir, when this run saved into
    ``out_dir`` or not after its last epoch (``save_last=False``). (A work
    dir of an earlier run is now refused before training:
    :func:`test_demo_refuses_the_work_dir_of_an_earlier_run`.)"""
    work = tmp_path / 'demo'
    base = str(write_tiny_config(tmp_path / 'tiny.py',
                                 synthetic_copy(tiny_isic, tmp_path),
                                 epochs=1))
    elsewhere = tmp_path / 'elsewhere'
    config = tmp_path / 'out_dir.py'
    config.write_text(
        f'_base_ = [{base!r}]\n'
        'default_hooks = dict(checkpoint=dict(\n'
        f'    out_dir={str(elsewhere)!r}))\n')
    demo.main(['--config', str(config), '--seed', '5', '--work-dir',
               str(work)])
    saved = elsewhere / 'demo' / 'epoch_1.pth'
    assert saved.is_file() and not list(work.glob('*.pth'))
    assert f'Checkpoint: {saved}' in capsys.readouterr().out
    # This run saves epoch 2 only, of 3.
    work = tmp_path / 'no_last'
    config = tmp_path / 'no_last.py'
    config.write_text(
        f'_base_ = [{base!r}]\n'
        'train_cfg = dict(max_epochs=3, val_interval=3)\n'
        'default_hooks = dict(checkpoint=dict(interval=2, '
        'save_last=False, save_best=None))\n')
    with pytest.raises(UserError, match=r'the last checkpoint of the run '
                       r'in .*epoch_2\.pth, is of epoch 2, not of its final '
                       r'weights \(epoch 3\); nothing was scored'):
        demo.main(['--config', str(config), '--work-dir', str(work)])
    assert 'Checkpoint:' not in capsys.readouterr().out


def test_demo_refuses_the_work_dir_of_an_earlier_run(tmp_path, readme_demo):
    """A second demo into the work dir of an earlier one overwrote only
    what it wrote itself: ``epoch_2.pth`` of a 2-epoch run stayed beside
    ``epoch_1.pth`` and the dumped config of a 1-epoch run, exit 0 (the
    README's command run twice with other --epochs). Now refused before
    the set is made, the earlier run left as it was."""
    from conftest import run_tool_in_process, tree_hashes
    work = tmp_path / 'demo'
    shutil.copytree(readme_demo['cwd'] / readme_demo['work'], work)
    before = tree_hashes(work)
    run = run_tool_in_process('tools/demo.py', '--epochs', '2',
                              '--work-dir', work)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stdout == ''
    assert run.stderr == (
        f'ERROR: The work dir {work} already holds the checkpoints of a run '
        '(epoch_1.pth, last_checkpoint); a new run would overwrite some of '
        'them and leave the others beside its own. Nothing was started; '
        'choose another --work-dir, or remove them.\n')
    assert tree_hashes(work) == before


def test_demo_refuses_a_base_config(tmp_path):
    """A model, data set or schedule base config given as --config ended
    in a ``KeyError: 'train_dataloader'`` traceback (with --epochs an
    ``AttributeError``), exit 1."""
    from conftest import run_tool_in_process
    work = tmp_path / 'demo'
    for config, missing in (
            ('configs/_base_/models/dsnet.py',
             'train_dataloader.dataset, test_dataloader.dataset, '
             'optim_wrapper, train_cfg, default_hooks.checkpoint'),
            ('configs/_base_/schedules/schedule_300e_adamw_cosine.py',
             'model, train_dataloader.dataset, test_dataloader.dataset, '
             'default_hooks.checkpoint')):
        for epochs in ([], ['--epochs', '1']):
            run = run_tool_in_process('tools/demo.py', '--config', config,
                                      *epochs, '--work-dir', work)
            assert run.returncode == 2, run.output[-2000:]
            assert run.stderr == (
                f'ERROR: config file {config} sets no {missing}: the demo '
                "trains, tests and draws with the config's model, data and "
                'schedule; give a whole training config such as '
                'configs/demo/dsnet_synthetic_cpu.py\n')
    assert not work.exists()


def test_demo_names_the_model_it_trains(tmp_path, tiny_isic, capsys):
    """``--config`` of another model (EGE-UNet here) was trained and
    reported as ``Training DSNet ...`` and ``DSNet on the synthetic test
    split``, exit 0."""
    synthetic = synthetic_copy(tiny_isic, tmp_path)
    config = write_tiny_config(tmp_path / 'tiny_egeunet.py', synthetic,
                               base='configs/egeunet/egeunet_isic2017.py',
                               epochs=1)
    demo.main(['--config', str(config), '--work-dir', str(tmp_path / 'w')])
    printed = capsys.readouterr().out
    assert 'Training EGEUNet on the CPU for 1 epoch ...' in printed
    assert ('EGEUNet on splits/lightweight_test.txt of the synthetic set '
            '(percent):') in printed
    assert 'DSNet' not in printed


@pytest.mark.slow
def test_each_demo_run_gets_a_folder_of_its_own(tmp_path, monkeypatch,
                                                capsys, readme_demo):
    """Without --work-dir every run wrote into ``work_dirs/demo``, so the
    README's command run a second time was refused (the folder held the
    first run). Each run now writes under a folder of its own there."""
    # The first run: a copy of the folder the README's command ran from.
    shutil.copytree(readme_demo['cwd'], tmp_path, dirs_exist_ok=True)
    first = readme_demo['printed']
    monkeypatch.chdir(tmp_path)
    demo.main(['--epochs', '1'])
    second = capsys.readouterr().out
    runs = sorted(os.listdir(tmp_path / 'work_dirs' / 'demo'))
    assert len(runs) == 2
    for run, out in zip(runs, (first, second)):
        folder = tmp_path / 'work_dirs' / 'demo' / run
        assert (folder / 'epoch_1.pth').is_file()
        assert (folder / 'overlays.png').stat().st_size > 0
        assert f'Checkpoint: work_dirs/demo/{run}/epoch_1.pth' in out


def test_demo_names_the_device_it_trains_on(monkeypatch):
    assert demo.training_device() == 'the CPU'
    # On a GPU machine the runner trains there; the demo said "the CPU".
    monkeypatch.setattr(demo, 'get_device', lambda: 'cuda')
    assert demo.training_device() == 'the CUDA device'


def _tiny_model(tmp_path, tiny_isic):
    """An untrained DSNet of the tiny config, as the demo draws with it."""
    from mmseg.apis import init_model
    config = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    return init_model(str(config), None, device='cpu')


def test_overlays_name_the_model_split_and_checkpoint(tmp_path, tiny_isic):
    """The figure's title took the model's name from the loop over the
    images (both were ``name``): ``red: ISIC_0000021 prediction``, an image
    id for the model; it now also says which images and checkpoint."""
    model = _tiny_model(tmp_path, tiny_isic)
    out = tmp_path / 'overlays.png'
    fig = demo.draw_overlays(model, str(tiny_isic),
                             'splits/lightweight_test.txt', str(out),
                             count=2, name='DSNet',
                             checkpoint=str(tmp_path / 'w' / 'epoch_1.pth'))
    assert fig._suptitle.get_text() == (
        'green: ground truth, red: DSNet prediction\n'
        'first 2 images of splits/lightweight_test.txt, epoch_1.pth')
    ids = (tiny_isic / 'splits' / 'lightweight_test.txt').read_text().split()
    assert [ax.get_title() for ax in fig.axes] == ids[:2]
    assert out.read_bytes().startswith(b'\x89PNG\r\n\x1a\n')


def test_overlays_are_written_whole_or_not_at_all(tmp_path, tiny_isic,
                                                  monkeypatch):
    """A write of ``overlays.png`` that failed part-way (a full disk) left
    the truncated PNG, which looked like the run's overlays."""
    import errno

    from matplotlib.figure import Figure
    model = _tiny_model(tmp_path, tiny_isic)
    savefig = Figure.savefig

    def savefig_then_disk_full(self, fname, *args, **kwargs):
        savefig(self, fname, *args, **kwargs)
        with open(fname, 'r+b') as f:
            f.truncate(64)
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(Figure, 'savefig', savefig_then_disk_full)
    out = tmp_path / 'work' / 'overlays.png'
    out.parent.mkdir()
    with pytest.raises(OSError, match='No space left'):
        demo.draw_overlays(model, str(tiny_isic),
                           'splits/lightweight_test.txt', str(out), count=2)
    assert os.listdir(out.parent) == []


def test_demo_keeps_the_configs_randomness(tmp_path, monkeypatch):
    """The demo set ``randomness = dict(seed=--seed)`` with --seed 0 by
    default: a config's own seed was replaced by 0 and its
    ``deterministic=True`` dropped, exit 0. Now --seed sets the seed alone,
    and without it the config's seed is used."""

    class Built(Exception):
        pass

    built = []

    def from_cfg(cfg):
        built.append(cfg.randomness.to_dict())
        raise Built

    monkeypatch.setattr(demo, 'prepare_synthetic', lambda *args: None)
    monkeypatch.setattr(demo, 'build_runner', from_cfg)
    config = tmp_path / 'seeded.py'
    config.write_text(
        f"_base_ = [{str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')!r}]\n"
        'randomness = dict(seed=7, deterministic=True)\n')
    for seed, work in (([], 'a'), (['--seed', '3'], 'b')):
        with pytest.raises(Built):
            demo.main(['--config', str(config), '--work-dir',
                       str(tmp_path / work), *seed])
    assert built == [dict(seed=7, deterministic=True),
                     dict(seed=3, deterministic=True)]
    # A config that leaves the seed unset (mmengine would draw one) gets
    # the demo's 0, so that its run repeats.
    unseeded = tmp_path / 'unseeded.py'
    unseeded.write_text(
        f"_base_ = [{str(REPO / 'configs/demo/dsnet_synthetic_cpu.py')!r}]\n"
        'randomness = dict(seed=None)\n')
    with pytest.raises(Built):
        demo.main(['--config', str(unseeded), '--work-dir',
                   str(tmp_path / 'c')])
    assert built[-1] == dict(seed=0)


def test_demo_names_the_split_it_scores(tmp_path, tiny_isic, capsys):
    """A config whose test loader reads another split file than
    lightweight_test.txt (here the official validation set) was scored
    and printed as ``DSNet on the synthetic test split``, exit 0; the
    all-lesion guess beside it did not say at which size it is (that of
    IoU_orig, not of IoU)."""
    synthetic = synthetic_copy(tiny_isic, tmp_path)
    tiny = write_tiny_config(tmp_path / 'tiny.py', synthetic, epochs=1)
    config = tmp_path / 'val.py'
    config.write_text(f'_base_ = [{str(tiny)!r}]\n'
                      'test_dataloader = dict(dataset=dict('
                      "ann_file='splits/official_val.txt'))\n")
    metrics, guess = demo.main(['--config', str(config), '--work-dir',
                                str(tmp_path / 'w')])
    printed = capsys.readouterr().out
    assert '[3/4] Evaluating on splits/official_val.txt ...' in printed
    assert ('DSNet on splits/official_val.txt of the synthetic set '
            '(percent):') in printed
    assert 'test split' not in printed
    assert guess == demo.trivial_guess_iou(str(synthetic),
                                           'splits/official_val.txt')
    assert ('Trivial guesses, pooled lesion IoU at the original size (as '
            f'IoU_orig): all-background 0.00, all-lesion {guess:.2f}'
            ) in printed


def test_demo_refuses_a_work_dir_in_the_synthetic_set(tmp_path, tiny_isic):
    """``--work-dir`` of the synthetic set itself (or a folder in it) was
    trained into: the checkpoints, logs, config dump and overlays went
    among its images, exit 0. Now refused before anything is written."""
    from conftest import run_tool_in_process, tree_hashes
    synthetic = synthetic_copy(tiny_isic, tmp_path)
    before = tree_hashes(synthetic)
    config = write_tiny_config(tmp_path / 'tiny.py', synthetic, epochs=1)
    for work, inside in ((synthetic, ''),
                         (synthetic / 'run', ' or a folder inside it')):
        run = run_tool_in_process('tools/demo.py', '--config', config,
                                  '--work-dir', work)
        assert run.returncode == 2, run.output[-2000:]
        assert run.stderr == (
            f'ERROR: --work-dir {work} is the synthetic set {synthetic}'
            f"{inside}: the run's checkpoints, logs and figures would be "
            'mixed into it. Nothing was started; choose another '
            '--work-dir.\n')
    assert tree_hashes(synthetic) == before
    assert sorted(os.listdir(synthetic)) == sorted(
        os.listdir(tiny_isic) + ['SYNTHETIC.txt'])


def test_work_dir_outside_resolves_links_and_compares_whole_folders(
        tmp_path):
    """A link into the set is the set; a sibling whose name merely starts
    with the set's (``synthetic_runs`` beside ``synthetic``) is outside."""
    from mmseg_dsnet.engine.preflight.work_dir import (WorkDirError,
                                                       check_work_dir_outside)
    synthetic = tmp_path / 'synthetic'
    synthetic.mkdir()
    link = tmp_path / 'link'
    link.symlink_to(synthetic)
    with pytest.raises(WorkDirError, match=' or a folder inside it: '):
        check_work_dir_outside(str(link / 'run'), str(synthetic), 'the set')
    with pytest.raises(WorkDirError, match=r'is the set \S+synthetic: '):
        check_work_dir_outside(str(link), str(synthetic), 'the set')
    check_work_dir_outside(str(tmp_path / 'synthetic_runs'), str(synthetic),
                           'the set')
    check_work_dir_outside(str(tmp_path), str(synthetic), 'the set')


def test_demos_started_in_the_same_second_get_folders_of_their_own(
        tmp_path, monkeypatch):
    """The run's folder was named but not made: two demos started in the
    same second (two terminals, a job started twice) were both given
    ``work_dirs/demo/<stamp>`` and trained into it, and the first to
    finish named a checkpoint the other then replaced. Each name is now
    taken by making the folder."""
    import time
    monkeypatch.setattr(time, 'localtime', lambda *args: time.struct_time(
        (2026, 12, 4, 19, 15, 2, 4, 338, 0)))
    parent = tmp_path / 'runs'
    first = demo.new_run_dir(str(parent))
    second = demo.new_run_dir(str(parent))
    assert (first, second) == (str(parent / '20261204_191502'),
                               str(parent / '20261204_191502_1'))
    assert sorted(os.listdir(parent)) == ['20261204_191502',
                                          '20261204_191502_1']
    # A file where the runs' folder goes is named, nothing made.
    from mmseg_dsnet.engine.preflight.work_dir import WorkDirError
    (tmp_path / 'file').write_text('x\n')
    for where in ('file', 'file/runs'):
        with pytest.raises(WorkDirError, match=f'work dir {tmp_path}/{where}: '
                           f'{tmp_path}/file is a file, not a folder'):
            demo.new_run_dir(str(tmp_path / where))
    assert (tmp_path / 'file').read_text() == 'x\n'


def test_demo_trains_on_a_wrapped_training_set(tmp_path, tiny_isic, capsys):
    """A config whose training set is wrapped (``RepeatDataset``, to train
    on more images per epoch) ended in an ``AttributeError: 'ConfigDict'
    object has no attribute 'data_root'`` traceback, exit 1: the wrapper
    names no data_root. The wrapped set is now pointed at the synthetic
    set as the others are."""
    synthetic = synthetic_copy(tiny_isic, tmp_path)
    tiny = write_tiny_config(tmp_path / 'tiny.py', synthetic, epochs=1)
    config = tmp_path / 'repeat.py'
    config.write_text(
        f'_base_ = [{str(tiny)!r}]\n'
        "train_dataloader = dict(dataset=dict(_delete_=True, "
        "type='RepeatDataset', times=2, "
        'dataset={{_base_.train_dataloader.dataset}}))\n')
    metrics, _ = demo.main(['--config', str(config), '--work-dir',
                            str(tmp_path / 'w')])
    assert 0.0 <= metrics['IoU'] <= 100.0
    printed = capsys.readouterr().out
    assert 'Training DSNet on the CPU for 1 epoch ...' in printed
    # A test loader of two sets has no one split to score and draw:
    # refused before anything is written.
    concat = tmp_path / 'concat.py'
    concat.write_text(
        f'_base_ = [{str(tiny)!r}]\n'
        "test_dataloader = dict(dataset=dict(_delete_=True, "
        "type='ConcatDataset', datasets=[{{_base_.val_dataloader.dataset}}, "
        '{{_base_.val_dataloader.dataset}}]))\n')
    with pytest.raises(UserError) as err:
        demo.main(['--config', str(concat), '--work-dir',
                   str(tmp_path / 'w2')])
    assert str(err.value) == (
        f'config file {concat}: the demo scores and draws one split file, '
        'but the test loader reads 2 data sets')
    assert not (tmp_path / 'w2').exists()


def test_demo_refuses_a_work_dir_holding_earlier_overlays(tmp_path,
                                                         tiny_isic):
    """A work dir holding the ``overlays.png`` of an earlier demo whose
    checkpoints went elsewhere (``default_hooks.checkpoint.out_dir``),
    given again: the new run trained, saved over that run's checkpoint
    there and replaced its overlays, exit 0. Now refused first."""
    from conftest import run_tool_in_process
    synthetic = synthetic_copy(tiny_isic, tmp_path)
    config = write_tiny_config(tmp_path / 'tiny.py', synthetic, epochs=1)
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'overlays.png').write_bytes(b'earlier run')
    run = run_tool_in_process('tools/demo.py', '--config', config,
                              '--work-dir', work)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr == (
        f'ERROR: The work dir {work} already holds overlays.png of an '
        'earlier demo run (its checkpoints may be in '
        'default_hooks.checkpoint.out_dir); a new run would replace it. '
        'Nothing was started; choose another --work-dir, or remove it.\n')
    assert os.listdir(work) == ['overlays.png']
    assert (work / 'overlays.png').read_bytes() == b'earlier run'


def test_demo_refuses_a_work_dir_another_training_holds(tmp_path,
                                                       tiny_isic):
    """A demo into a work dir another training (a demo, tools/train.py)
    writes now is refused, changing nothing there: the two would save
    their checkpoints and overlays over one another."""
    from conftest import run_tool_in_process

    from mmseg_dsnet.engine.preflight import training_work_dir_lock
    synthetic = synthetic_copy(tiny_isic, tmp_path)
    config = write_tiny_config(tmp_path / 'tiny.py', synthetic, epochs=1)
    work = tmp_path / 'work'
    work.mkdir()
    with training_work_dir_lock(str(work)):
        run = run_tool_in_process('tools/demo.py', '--config', config,
                                  '--work-dir', work)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr == (
        f'ERROR: The work dir {work} is being written by another training '
        'now: two trainings at once would save their checkpoints over one '
        'another. Nothing was started; wait for it to end, or choose '
        'another --work-dir.\n')
    assert os.listdir(work) == []


def test_demo_refuses_a_work_dir_where_its_dump_replaces_the_config(
        tmp_path, tiny_isic):
    """``--config exp/tiny.py --work-dir exp``: the runner dumps its config
    to ``<work dir>/<config file name>``, so the flattened config replaced
    the user's file (its ``_base_`` inheritance gone), exit 0. Refused
    before anything is written (as train.py does)."""
    from conftest import run_tool_in_process
    synthetic = synthetic_copy(tiny_isic, tmp_path)
    exp = tmp_path / 'exp'
    exp.mkdir()
    config = write_tiny_config(exp / 'tiny.py', synthetic, epochs=1)
    text = config.read_text()
    run = run_tool_in_process('tools/demo.py', '--config', config,
                              '--work-dir', exp)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr.startswith(
        f'ERROR: --work-dir {exp} holds the config file {config}: the '
        f'runner writes its config dump to {config}, which would replace ')
    assert config.read_text() == text and os.listdir(exp) == ['tiny.py']


def test_demo_refuses_a_random_test_pipeline(tmp_path):
    """``--config`` whose test pipeline flips at random after
    LoadAnnotations: the demo trained and reported the figures of random
    views of the test images, other figures at each run, exit 0
    (tools/test.py refuses such a config). Now refused before anything
    is written."""
    from mmseg_dsnet.engine.preflight import PipelineConfigError
    config = tmp_path / 'flipped_demo.py'
    config.write_text(
        f"_base_ = '{REPO / 'configs/demo/dsnet_synthetic_cpu.py'}'\n"
        'test_dataloader = dict(dataset=dict(pipeline=['
        "dict(type='LoadImageFromFile'), "
        "dict(type='Resize', scale=(128, 128), keep_ratio=False), "
        "dict(type='LoadAnnotations'), "
        "dict(type='RandomFlip', prob=0.5, direction='vertical'), "
        "dict(type='PackSegInputs')]))\n")
    work = tmp_path / 'work'
    with pytest.raises(PipelineConfigError) as info:
        demo.main(['--config', str(config), '--epochs', '1', '--work-dir',
                   str(work)])
    assert str(info.value).startswith(
        f'test_dataloader.dataset.pipeline[3] of {config}: RandomFlip draws '
        'at random (a training augmentation); in the test pipeline')
    assert not work.exists()


def test_the_demo_trains_into_a_log_folder_of_its_own(tiny_isic, tmp_path,
                                                     monkeypatch):
    """The demo's training, started in the second of another run into its
    ``--work-dir`` (a ``tools/test.py`` run there, whose folder is made
    here), shared that run's log folder (its log opened over the other's).
    It claims its own, as its final test does."""
    import time

    from test_train_test_tools import hold_runner_clock
    synthetic = synthetic_copy(tiny_isic, tmp_path)
    config = write_tiny_config(tmp_path / 'tiny.py', synthetic, epochs=1)
    second = hold_runner_clock(monkeypatch)
    stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime(second))
    work_dir = tmp_path / 'w'
    (work_dir / stamp).mkdir(parents=True)
    (work_dir / stamp / f'{stamp}.log').write_text('another run\n')
    demo.main(['--config', str(config), '--work-dir', str(work_dir)])
    assert os.listdir(work_dir / stamp) == [f'{stamp}.log']
    assert (work_dir / stamp / f'{stamp}.log').read_text() == 'another run\n'
    assert 'Epoch(train)' in (work_dir / f'{stamp}_1' /
                              f'{stamp}_1.log').read_text()


def test_the_demo_trains_with_the_configs_runner_type(tiny_isic, tmp_path,
                                                      monkeypatch):
    """A demo config's own ``runner_type`` (a Runner subclass of a
    ``custom_imports`` module) was left out of the demo's training (mmengine's
    Runner trained, the config's runner ran its final test only). The
    training now runs as the config's runner, once the class of every run
    of it, and that class pickles."""
    import pickle

    from mmengine.registry import RUNNERS

    from test_train_test_tools import write_own_runner_config

    from mmseg_dsnet.engine.config_text import FormattedOnceConfig
    from mmseg_dsnet.engine.log_dir import SeparateLogDirRunner, build_runner
    name = 'DemoAuditRunner'
    base = write_tiny_config(tmp_path / 'tiny.py',
                             synthetic_copy(tiny_isic, tmp_path), epochs=1)
    config = write_own_runner_config(
        tmp_path, monkeypatch, base, name, 'demo_runner_plugin',
        'from mmengine.registry import RUNNERS\n'
        'from mmengine.runner import Runner\n\n\n'
        'class Trained(Exception):\n'
        '    pass\n\n\n'
        '@RUNNERS.register_module(force=True)\n'
        f'class {name}(Runner):\n'
        '    def train(self):\n'
        '        raise Trained(self)\n')
    try:
        with pytest.raises(Exception) as info:
            demo.main(['--config', str(config), '--work-dir',
                       str(tmp_path / 'w')])
        assert type(info.value).__name__ == 'Trained'
        runner = info.value.args[0]
        plugin = sys.modules['demo_runner_plugin']
        assert isinstance(runner, getattr(plugin, name))
        assert isinstance(runner, SeparateLogDirRunner)
        # Its config formats its text once (engine/config_text.py).
        assert isinstance(runner.cfg, FormattedOnceConfig)
        # One class for every run of the config, named as what it is.
        from mmengine.config import Config
        cfg = Config.fromfile(str(config))
        cfg.work_dir = str(tmp_path / 'w2')
        again = build_runner(cfg)
        assert type(again) is type(runner)
        assert type(runner).__name__ == f'SeparateLogDir{name}'
        assert pickle.loads(pickle.dumps(type(runner))) is type(runner)
    finally:
        RUNNERS._module_dict.pop(name, None)
    # A runner_type that cannot run is refused before the run's folder
    # (work_dirs/demo/<ts>) is made.
    from mmseg_dsnet.utils.errors import UserError
    flexible = tmp_path / 'flexible.py'
    flexible.write_text(f"_base_ = '{base}'\nrunner_type = 'FlexibleRunner'\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="runner_type 'FlexibleRunner' is "
                       "not a subclass of mmengine's Runner"):
        demo.main(['--config', str(flexible)])
    assert not (tmp_path / 'work_dirs').exists()


def test_demo_refuses_settings_read_only_after_training(tmp_path,
                                                       monkeypatch):
    """``--config`` with a misspelt checkpoint-hook key or a test mode
    mmseg cannot score with: the demo made its set and trained, then
    stopped when it saved the first checkpoint (or scored the first
    image). Now refused before the set is made."""
    def made_the_set(*args, **kwargs):
        raise AssertionError('the demo went on to make its set')

    monkeypatch.setattr(demo, 'prepare_synthetic', made_the_set)
    base = REPO / 'configs/demo/dsnet_synthetic_cpu.py'
    work = tmp_path / 'work'
    for setting, message in (
            ('default_hooks = dict(checkpoint=dict(intervl=1))',
             "default_hooks.checkpoint.intervl=1 is no argument of "
             "AtomicCheckpointHook nor of the runner's save_checkpoint"),
            ("model = dict(test_cfg=dict(mode='slid'))",
             "model.test_cfg.mode='slid' is neither 'whole' nor 'slide'")):
        config = tmp_path / 'demo_setting.py'
        config.write_text(f"_base_ = '{base}'\n{setting}\n")
        with pytest.raises(UserError) as info:
            demo.main(['--config', str(config), '--epochs', '1',
                       '--work-dir', str(work)])
        assert message in str(info.value)
    assert not work.exists()
