"""Recomputed BatchNorm statistics ("precise BN"): the function, the
training hook and tools/analysis_tools/recalibrate_batch_norm.py."""
import os

import pytest
import torch
from conftest import (REPO, another_run_writes_during_save, load_tool,
                      run_cli, run_tool_process, write_tiny_config)

DSNET = str(REPO / 'configs/dsnet/dsnet_isic2018.py')
EGEUNET = str(REPO / 'configs/egeunet/egeunet_isic2017.py')


def build(config, seed=0):
    import mmseg_dsnet  # noqa: F401
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.manual_seed(seed)
    return MODELS.build(Config.fromfile(config).model)


def batches(count, size=64, seed=1):
    """Loader-like batches of two uint8 pictures with masks."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        inputs, samples = [], []
        for _ in range(2):
            inputs.append(torch.randint(0, 256, (3, size, size),
                                        generator=generator,
                                        dtype=torch.uint8))
            sample = SegDataSample()
            sample.gt_sem_seg = PixelData(
                data=torch.zeros(1, size, size, dtype=torch.long))
            sample.set_metainfo(dict(img_shape=(size, size),
                                     ori_shape=(size, size),
                                     pad_shape=(size, size)))
            samples.append(sample)
        out.append(dict(inputs=inputs, data_samples=samples))
    return out


def bn_buffers(model):
    return {k: v.clone() for k, v in model.state_dict().items()
            if k.endswith(('running_mean', 'running_var',
                           'num_batches_tracked'))}


def test_statistics_become_the_average_over_the_batches():
    from mmseg_dsnet.engine.batch_norm_recalibration import (
        batch_norm_layers, recalibrate_batch_norm)
    model = build(DSNET)
    model.train()
    weights = {k: v.clone() for k, v in model.state_dict().items()
               if k not in bn_buffers(model)}
    first = batch_norm_layers(model)[0]
    seen = []
    handle = first.register_forward_hook(
        lambda module, args, output: seen.append(args[0].detach().clone()))
    assert recalibrate_batch_norm(model, batches(3),
                                  show_progress=False) == 3
    handle.remove()
    assert len(seen) == 3
    expected_mean = torch.stack([x.mean((0, 2, 3)) for x in seen]).mean(0)
    expected_var = torch.stack(
        [x.transpose(0, 1).flatten(1).var(1, unbiased=True)
         for x in seen]).mean(0)
    torch.testing.assert_close(first.running_mean, expected_mean)
    torch.testing.assert_close(first.running_var, expected_var)
    assert int(first.num_batches_tracked) == 3
    # Weights, momentum and the model's mode are as they were.
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in weights.items())
    assert all(layer.momentum == 0.1 for layer in batch_norm_layers(model))
    assert model.training and first.training


def test_max_batches_and_eval_mode_kept():
    from mmseg_dsnet.engine.batch_norm_recalibration import (
        batch_norm_layers, recalibrate_batch_norm)
    model = build(DSNET)
    model.eval()
    assert recalibrate_batch_norm(model, batches(4), max_batches=2,
                                  show_progress=False) == 2
    assert all(int(layer.num_batches_tracked) == 2
               for layer in batch_norm_layers(model))
    assert not model.training
    assert not any(layer.training for layer in batch_norm_layers(model))


def test_an_empty_loader_leaves_the_statistics_as_they_were():
    from mmseg_dsnet.engine.batch_norm_recalibration import \
        recalibrate_batch_norm
    model = build(DSNET)
    with torch.no_grad():
        for key, value in bn_buffers(model).items():
            if key.endswith('running_mean'):
                model.state_dict()[key].uniform_(-1, 1)
    before = bn_buffers(model)
    with pytest.raises(ValueError, match='no batch'):
        recalibrate_batch_norm(model, [], show_progress=False)
    after = bn_buffers(model)
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_a_model_without_batch_norm_is_left_alone():
    from mmseg_dsnet.engine.batch_norm_recalibration import \
        recalibrate_batch_norm

    def never_read():
        raise AssertionError('the loader must not be read')
        yield

    model = build(EGEUNET)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert recalibrate_batch_norm(model, never_read(),
                                  show_progress=False) == 0
    assert all(torch.equal(model.state_dict()[k], v)
               for k, v in before.items())


def test_hook_bad_setting_is_refused():
    from mmseg_dsnet.engine.hooks import BatchNormRecalibrationHook
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match='max_batches'):
            BatchNormRecalibrationHook(max_batches=bad)


@pytest.mark.slow
def test_hook_recalibrates_only_the_last_checkpoint(tiny_isic, tmp_path):
    """12 training pictures in batches of 4: an epoch trains 3 batches. The
    hook averages 2 batches after the last epoch only, so the last
    checkpoint's BatchNorm layers have counted 2 batches and the first
    epoch's the 3 it trained."""
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=2)
    with open(cfg, 'a') as f:
        f.write("custom_hooks = [dict(type='BatchNormRecalibrationHook', "
                "max_batches=2)]\n")
    work_dir = tmp_path / 'work'
    proc = run_tool_process('tools/train.py', cfg, '--work-dir', work_dir,
                            check=True)
    assert 'BatchNorm statistics recomputed over 2 training batches' in (
        proc.stdout + proc.stderr)

    def counts(name):
        state = torch.load(work_dir / name, map_location='cpu',
                           weights_only=False)['state_dict']
        return {int(v) for k, v in state.items()
                if k.endswith('num_batches_tracked')}

    assert counts('epoch_1.pth') == {3}
    assert counts('epoch_2.pth') == {2}


@pytest.mark.slow
def test_tool_writes_a_recalibrated_checkpoint(tiny_isic, tmp_path, capsys):
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    model = build(str(cfg))
    source = tmp_path / 'trained.pth'
    torch.save(dict(meta=dict(seed=7), state_dict=model.state_dict()),
                source)
    out = tmp_path / 'recalibrated.pth'
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    code, err = run_cli(tool.main, [cfg, source, out], capsys)
    assert code == 0, err
    written = torch.load(out, map_location='cpu', weights_only=False)
    assert written['meta']['seed'] == 7
    record = written['meta']['batch_norm_recalibration']
    assert record['batches'] == 3 and record['seed'] == 0
    old, new = model.state_dict(), written['state_dict']
    assert old.keys() == new.keys()
    for key, value in old.items():
        if key.endswith('running_mean'):
            assert not torch.equal(value, new[key]), key
        elif key.endswith('num_batches_tracked'):
            assert int(new[key]) == 3
        elif not key.endswith('running_var'):
            assert torch.equal(value, new[key]), key
    # Nothing is replaced without --overwrite.
    stamp = out.stat().st_mtime_ns
    code, err = run_cli(tool.main, [cfg, source, out], capsys)
    assert code == 2 and 'ERROR:' in err and 'recalibrated.pth' in err
    assert out.stat().st_mtime_ns == stamp
    # A model without BatchNorm: one ERROR line, nothing written.
    code, err = run_cli(tool.main, [EGEUNET, source, tmp_path / 'e.pth'],
                        capsys)
    assert code == 2 and 'without BatchNorm' in err
    assert not (tmp_path / 'e.pth').exists()
    # Weights of another model are refused before any work.
    other = tmp_path / 'egeunet.pth'
    torch.save(dict(state_dict=build(EGEUNET).state_dict()), other)
    code, err = run_cli(tool.main, [cfg, other, tmp_path / 'd.pth'], capsys)
    assert code == 2 and 'ERROR:' in err
    assert not (tmp_path / 'd.pth').exists()
    code, err = run_cli(tool.main, [cfg, source, tmp_path / 'z.pth',
                                    '--max-batches', '0'], capsys)
    assert code == 2 and '--max-batches' in err


def test_tool_refuses_another_input_size_and_an_unwritable_output(
        tmp_path, capsys):
    """A checkpoint trained at 128 px, recalibrated with a 256 px config,
    had its statistics recomputed on 256 px crops and was written as if
    nothing but the statistics had changed, exit 0; an output under a
    file failed only after the pass. Both are refused before any work."""
    from conftest import DEMO_128PX, make_128px_checkpoint, trained_size_error
    checkpoint = make_128px_checkpoint(tmp_path / 'c128.pth')
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    out = tmp_path / 'out.pth'
    code, err = run_cli(tool.main, [DSNET, checkpoint, out], capsys)
    assert code == 2
    assert err.splitlines()[-1] == trained_size_error(
        checkpoint, DSNET,
        'recalibrate it with the config it was trained with')
    blocked = tmp_path / 'c128.pth' / 'out.pth'
    code, err = run_cli(tool.main, [DEMO_128PX, checkpoint, blocked], capsys)
    assert code == 2
    assert err.splitlines()[-1] == (
        f'ERROR: Cannot write OUT {blocked}: {checkpoint} is a file, not a '
        'folder. Nothing was started; choose a writable file for OUT.')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['c128.pth']


def trained_and_bare_checkpoints(tiny_isic, tmp_path):
    """A tiny config and two checkpoints of one model: one that records its
    training config (``meta['cfg']``, as tools/train.py saves it) and one
    without it (as released weights are)."""
    from mmengine.config import Config
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    state = build(str(cfg)).state_dict()
    trained = tmp_path / 'trained.pth'
    torch.save(dict(meta=dict(cfg=Config.fromfile(cfg).pretty_text),
                    state_dict=state), trained)
    bare = tmp_path / 'bare.pth'
    torch.save(dict(state_dict=state), bare)
    return cfg, trained, bare


def test_tool_refuses_images_the_checkpoint_did_not_train_on(
        tiny_isic, tmp_path, capsys):
    """Statistics recomputed on the test split, or on validation images
    outside the split the checkpoint trained on, were written as a new
    checkpoint, exit 0: held-out images shaped the model scored on them."""
    cfg, trained, bare = trained_and_bare_checkpoints(tiny_isic, tmp_path)
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    out = tmp_path / 'out.pth'
    test_split = tiny_isic / 'splits' / 'official_test.txt'
    for checkpoint in (trained, bare):
        code, err = run_cli(tool.main, [
            cfg, checkpoint, out, '--cfg-options',
            'train_dataloader.dataset.ann_file=splits/official_test.txt'],
            capsys)
        assert code == 2
        assert err.splitlines()[-1] == (
            f'ERROR: {cfg}: train_dataloader reads the test split '
            f'{test_split}: BatchNorm statistics recomputed on test images '
            'let them shape the model that is then scored on them; '
            'recompute them on the images it trained on (the '
            'train_dataloader of the config it was trained with)')
    val_split = tiny_isic / 'splits' / 'official_val.txt'
    train_ids = set((tiny_isic / 'splits' /
                     'lightweight_train.txt').read_text().split())
    unseen = [i for i in val_split.read_text().split()
              if i not in train_ids]
    assert unseen
    code, err = run_cli(tool.main, [
        cfg, trained, out, '--cfg-options',
        'train_dataloader.dataset.ann_file=splits/official_val.txt'], capsys)
    assert code == 2
    line = err.splitlines()[-1]
    assert line.startswith(
        f'ERROR: {cfg}: train_dataloader reads {len(unseen)} of '
        f'{len(val_split.read_text().split())} images ({val_split}: '
        f'{unseen[0]}')
    assert f'that checkpoint {trained} did not train on; its training ' \
        f"split is {tiny_isic / 'splits' / 'lightweight_train.txt'}" in line
    assert not out.exists()


def test_tool_refuses_a_seed_numpy_cannot_take(tmp_path, capsys):
    from conftest import DEMO_128PX, make_128px_checkpoint
    checkpoint = make_128px_checkpoint(tmp_path / 'c128.pth')
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    code, err = run_cli(tool.main, [DEMO_128PX, checkpoint,
                                    tmp_path / 'out.pth', '--seed', '-1'],
                        capsys)
    assert code == 2
    assert err.splitlines()[-1] == (
        'ERROR: --seed must be an integer from 0 to 2**32 - 1, got -1')
    assert not (tmp_path / 'out.pth').exists()


@pytest.mark.parametrize('batch_size', [0, -1])
def test_tool_refuses_a_batch_size_below_one(tmp_path, capsys, batch_size):
    """``--cfg-options train_dataloader.batch_size=0`` ended in torch's
    ``ValueError: batch_size should be a positive integer value``
    traceback after the model and checkpoint were loaded."""
    from conftest import DEMO_128PX
    checkpoint = tmp_path / 'c.pth'
    checkpoint.write_bytes(b'never read: refused before')
    out = tmp_path / 'out.pth'
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    code, err = run_cli(tool.main, [
        DEMO_128PX, checkpoint, out, '--cfg-options',
        f'train_dataloader.batch_size={batch_size}'], capsys)
    assert code == 2, err
    assert err.count('ERROR:') == 1 and 'Traceback' not in err
    assert err.splitlines()[-1] == (
        f'ERROR: {DEMO_128PX}: train_dataloader.batch_size={batch_size} '
        'must be a whole number of at least 1: the images of a step. '
        'Nothing was started.')
    assert not out.exists()


def test_one_pass_of_a_loader_whose_sampler_repeats():
    """A loader with mmengine's InfiniteSampler (iteration-based configs)
    never ends by itself: the pass ran until the dataset refused a fourth
    round. One pass is len(loader) batches."""
    from mmengine.dataset import InfiniteSampler, pseudo_collate
    from torch.utils.data import DataLoader

    from mmseg_dsnet.engine.batch_norm_recalibration import (
        batch_norm_layers, recalibrate_batch_norm)

    samples = [dict(inputs=inputs, data_samples=sample)
               for batch in batches(3) for inputs, sample in
               zip(batch['inputs'], batch['data_samples'])]

    class Dataset(torch.utils.data.Dataset):
        reads = 0

        def __len__(self):
            return len(samples)

        def __getitem__(self, index):
            Dataset.reads += 1
            assert Dataset.reads <= 3 * len(samples), 'read past a pass'
            return samples[index]

    dataset = Dataset()
    loader = DataLoader(dataset, batch_size=2, collate_fn=pseudo_collate,
                        sampler=InfiniteSampler(dataset, shuffle=False))
    assert len(loader) == 3
    model = build(DSNET)
    assert recalibrate_batch_norm(model, loader, show_progress=False) == 3
    assert all(int(layer.num_batches_tracked) == 3
               for layer in batch_norm_layers(model))


def test_tool_refuses_statistics_that_overflow(tiny_isic, tmp_path, capsys):
    """Finite weights whose activations overflow on the training images
    gave infinite running variances, written as a checkpoint, exit 0."""
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    state = build(str(cfg)).state_dict()
    state['backbone.stem.conv.weight'] *= 1e25
    checkpoint = tmp_path / 'big.pth'
    torch.save(dict(state_dict=state), checkpoint)
    out = tmp_path / 'out.pth'
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    code, err = run_cli(tool.main, [cfg, checkpoint, out], capsys)
    assert code == 2
    assert err.splitlines()[-1] == (
        f'ERROR: the BatchNorm statistics recomputed for checkpoint '
        f'{checkpoint} hold NaN or infinite values in 1 tensor '
        '(backbone.stem.bn.running_var (16 of 16 values)): its activations '
        'overflow on the training images, as those of a diverging training '
        f'do; {out} was not written. Use an earlier checkpoint of the run')
    assert not out.exists()


def test_tool_refuses_the_synthetic_set_for_a_checkpoint_not_trained_on_it(
        tiny_isic, tmp_path, capsys):
    """The released (real ISIC 2017) weights recalibrated with the demo
    config had their statistics recomputed on the synthetic stand-in set,
    written as a recalibrated checkpoint, exit 0."""
    import shutil

    from mmengine.config import Config
    synthetic = tmp_path / 'synthetic'
    shutil.copytree(tiny_isic, synthetic)
    (synthetic / 'SYNTHETIC.txt').write_text('synthetic\n')
    real_cfg = write_tiny_config(tmp_path / 'real.py', tiny_isic, epochs=1)
    cfg = write_tiny_config(tmp_path / 'synthetic.py', synthetic, epochs=1)
    state = build(str(cfg)).state_dict()
    checkpoints = {}
    for name, meta in (('bare', None), ('real', real_cfg),
                       ('synthetic', cfg)):
        checkpoints[name] = tmp_path / f'{name}.pth'
        torch.save(dict(state_dict=state, **(
            dict(meta=dict(cfg=Config.fromfile(meta).pretty_text))
            if meta else {})), checkpoints[name])
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    out = tmp_path / 'out.pth'
    head = f'ERROR: {cfg}: train_dataloader reads the synthetic stand-in ' \
        f'set {synthetic} (it holds SYNTHETIC.txt), and checkpoint '
    tail = (': statistics of synthetic pictures would replace those of its '
            'training images; recompute them on the images it trained on '
            '(the train_dataloader of the config it was trained with)')
    code, err = run_cli(tool.main, [cfg, checkpoints['bare'], out], capsys)
    assert code == 2
    assert err.splitlines()[-1] == (
        f"{head}{checkpoints['bare']} holds no training config "
        "(meta['cfg']) that names it"
        f'{tail}')
    code, err = run_cli(tool.main, [cfg, checkpoints['real'], out], capsys)
    assert code == 2
    assert err.splitlines()[-1] == (
        f"{head}{checkpoints['real']} trained on "
        f"{tiny_isic / 'splits' / 'lightweight_train.txt'}{tail}")
    assert not out.exists()
    # A run trained on the synthetic set is recalibrated on it.
    code, err = run_cli(tool.main, [cfg, checkpoints['synthetic'], out],
                        capsys)
    assert code == 0, err
    assert out.exists()


def test_tool_refuses_an_out_that_names_a_folder(tmp_path, capsys):
    """An OUT ending in a separator (``new/``, no such folder yet) passed
    the output checks: the whole pass ran, then the write ended in a
    NotADirectoryError traceback, exit 1."""
    from conftest import DEMO_128PX, make_128px_checkpoint
    checkpoint = make_128px_checkpoint(tmp_path / 'c128.pth')
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    out = f'{tmp_path / "new"}/'
    code, err = run_cli(tool.main, [DEMO_128PX, checkpoint, out], capsys)
    assert code == 2
    assert err.splitlines()[-1] == (
        f'ERROR: {out} names a folder (it ends in /); give the path of the '
        'file to write')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['c128.pth']


def test_a_loader_of_no_batch_whose_sampler_repeats_is_refused():
    """A training split smaller than a batch, with drop_last and an
    InfiniteSampler, has a length of 0, read as "no length": the pass ran
    without end, repeating the images."""
    from mmengine.dataset import InfiniteSampler, pseudo_collate
    from torch.utils.data import DataLoader

    from mmseg_dsnet.engine.batch_norm_recalibration import \
        recalibrate_batch_norm

    samples = [dict(inputs=inputs, data_samples=sample)
               for inputs, sample in zip(batches(1)[0]['inputs'],
                                         batches(1)[0]['data_samples'])]

    class Dataset(torch.utils.data.Dataset):
        reads = 0

        def __len__(self):
            return len(samples)

        def __getitem__(self, index):
            Dataset.reads += 1
            assert Dataset.reads <= 20, 'read without end'
            return samples[index]

    dataset = Dataset()
    loader = DataLoader(dataset, batch_size=4, drop_last=True,
                        collate_fn=pseudo_collate,
                        sampler=InfiniteSampler(dataset, shuffle=False))
    assert len(loader) == 0
    model = build(DSNET)
    before = bn_buffers(model)
    with pytest.raises(ValueError, match='no batch'):
        recalibrate_batch_norm(model, loader, show_progress=False)
    assert Dataset.reads == 0
    after = bn_buffers(model)
    assert all(torch.equal(after[k], v) for k, v in before.items())


@pytest.mark.parametrize('sampler', ['DefaultSampler', 'InfiniteSampler'])
def test_tool_refuses_a_training_loader_of_no_batch(tiny_isic, tmp_path,
                                                    capsys, sampler):
    """Fewer training images than a batch with drop_last: a ValueError
    traceback after the checkpoint was loaded, exit 1 (DefaultSampler), or
    a pass that never ended (InfiniteSampler)."""
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    checkpoint = tmp_path / 'trained.pth'
    torch.save(dict(state_dict=build(str(cfg)).state_dict()), checkpoint)
    out = tmp_path / 'out.pth'
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    code, err = run_cli(tool.main, [
        cfg, checkpoint, out, '--cfg-options',
        'train_dataloader.batch_size=100', 'train_dataloader.drop_last=True',
        f'train_dataloader.sampler.type={sampler}'
    ], capsys)
    assert code == 2, err
    last = err.splitlines()[-1]
    assert last.startswith(f'ERROR: {cfg}: train_dataloader gives no batch: '
                           'its ')
    assert 'fewer than batch_size=100 with drop_last=True' in last
    assert not out.exists()


UNET = str(REPO / 'configs/unet/unet-s5-d16_fcn_isic2017.py')


def test_layers_the_pass_does_not_run_keep_their_statistics():
    """mmseg's auxiliary head (UNet's FCN head) runs in training only: its
    BatchNorm statistics were reset to mean 0, variance 1 and counted as
    recomputed."""
    from mmseg_dsnet.engine.batch_norm_recalibration import (
        batch_norm_layers, recalibrate_batch_norm)
    model = build(UNET)
    aux = model.auxiliary_head.convs[0].bn
    with torch.no_grad():
        aux.running_mean.uniform_(-1, 1)
        aux.running_var.uniform_(1, 2)
        aux.num_batches_tracked.fill_(500)
    before = {k: v.clone() for k, v in aux.state_dict().items()}
    not_run = []
    assert recalibrate_batch_norm(model, batches(1), show_progress=False,
                                  not_run=not_run) == 1
    assert not_run == ['auxiliary_head.convs.0.bn']
    assert all(torch.equal(aux.state_dict()[k], v)
               for k, v in before.items())
    others = [layer for layer in batch_norm_layers(model) if layer is not aux]
    assert others and all(int(layer.num_batches_tracked) == 1
                          for layer in others)


def test_tool_names_the_layers_it_kept(tiny_isic, tmp_path, capsys):
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, base=UNET,
                            epochs=1)
    model = build(str(cfg))
    aux = model.auxiliary_head.convs[0].bn
    with torch.no_grad():
        aux.running_mean.uniform_(-1, 1)
        aux.num_batches_tracked.fill_(500)
    layers = len([k for k in model.state_dict()
                  if k.endswith('num_batches_tracked')])
    checkpoint = tmp_path / 'trained.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    out = tmp_path / 'out.pth'
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    capsys.readouterr()
    assert tool.main([str(cfg), str(checkpoint), str(out),
                      '--max-batches', '1']) == 0
    printed = capsys.readouterr().out
    # One batch, in the singular ('1 training batches' read as a slip).
    assert (f'BatchNorm statistics of {layers - 1} layers recomputed over 1 '
            'training batch\nKept as they were (not run by the forward '
            'pass, e.g. a training-only auxiliary head): '
            'auxiliary_head.convs.0.bn\n') in printed
    state = torch.load(out, map_location='cpu',
                       weights_only=False)['state_dict']
    old = model.state_dict()
    for key in ('running_mean', 'running_var', 'num_batches_tracked'):
        name = f'auxiliary_head.convs.0.bn.{key}'
        assert torch.equal(state[name], old[name]), name


def test_a_second_run_writing_the_same_out_is_not_replaced(
        tiny_isic, tmp_path, capsys, monkeypatch):
    """Two copies of the tool with one OUT (no --overwrite): both passed
    the check at the start, the later one replaced the other's checkpoint,
    and both said ``Checkpoint: OUT``, exit 0."""
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    checkpoint = tmp_path / 'trained.pth'
    torch.save(dict(state_dict=build(str(cfg)).state_dict()), checkpoint)
    out = tmp_path / 'out.pth'
    another_run_writes_during_save(monkeypatch, out)
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    code, err = run_cli(tool.main, [cfg, checkpoint, out, '--max-batches',
                                    '1'], capsys)
    assert code == 2
    assert err.splitlines()[-1] == (
        f'ERROR: {out} already exists (use --overwrite to replace it)')
    assert out.read_bytes() == b'the other run'
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'out.pth', 'tiny.py', 'trained.pth']


def test_tool_refuses_a_training_loader_without_a_split_file(
        tiny_isic, tmp_path, capsys):
    """``--cfg-options train_dataloader.dataset.ann_file=''`` (no split
    file: mmseg reads every image under the data root, the test and
    validation images among them): the split checks looked at split files
    only, so the statistics were recomputed on every image and written,
    exit 0."""
    cfg, trained, bare = trained_and_bare_checkpoints(tiny_isic, tmp_path)
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    out = tmp_path / 'out.pth'
    for checkpoint in (trained, bare):
        code, err = run_cli(tool.main, [
            cfg, checkpoint, out, '--max-batches', '1', '--cfg-options',
            'train_dataloader.dataset.ann_file='], capsys)
        assert code == 2, err
        assert err.splitlines()[-1] == (
            f'ERROR: {cfg}: train_dataloader.dataset has no split file '
            f'(ann_file), so it reads every image under {tiny_isic}, the '
            'test and validation images among them: BatchNorm statistics '
            'recomputed on them let held-out images shape the model that '
            'is then scored on them; recompute them on the images it '
            'trained on (the train_dataloader of the config it was trained '
            'with)')
        assert not out.exists()
    # A run that trained on every image of the set is recalibrated on them.
    from mmengine.config import Config

    from mmseg_dsnet.engine.batch_norm_recalibration import \
        check_recalibration_images
    config = Config.fromfile(cfg)
    config.merge_from_dict({'train_dataloader.dataset.ann_file': ''})
    every = tmp_path / 'every.pth'
    torch.save(dict(meta=dict(cfg=config.pretty_text),
                    state_dict=torch.load(bare)['state_dict']), every)
    check_recalibration_images(str(every), config.train_dataloader.dataset,
                               str(cfg))


def _hand_made_set(tmp_path):
    """A data root whose splits are written here: a training split of three
    ids, a subset of it, and a split with one id outside it."""
    root = tmp_path / 'isic'
    (root / 'splits').mkdir(parents=True)
    (root / 'splits' / 'train.txt').write_text(
        'ISIC_0000001\nISIC_0000002\nISIC_0000003\n')
    (root / 'splits' / 'subset.txt').write_text(
        'ISIC_0000001\n./ISIC_0000003\n')
    (root / 'splits' / 'one_more.txt').write_text(
        'ISIC_0000001\nISIC_0000002\nISIC_0000009\n')
    return root


def _checkpoint_trained_on(path, data_root, ann_file):
    torch.save(dict(meta=dict(cfg=(
        f'train_dataloader = dict(dataset=dict(type="ISICDataset", '
        f'data_root={str(data_root)!r}, ann_file={ann_file!r}))\n')),
        state_dict={}), path)
    return str(path)


def test_one_image_outside_the_training_split_is_refused(tmp_path):
    """The training split lists three ids; a recalibration split sharing
    two of them and holding one other (ISIC_0000009) reads 1 of 3 unseen
    images: refused, however few they are. The training split is looked
    for under the loader's data root when the path its training config
    names is gone (a run trained on another machine)."""
    from mmseg_dsnet.engine.batch_norm_recalibration import \
        check_recalibration_images
    from mmseg_dsnet.utils.errors import UserError
    root = _hand_made_set(tmp_path)
    for trained_root in (root, tmp_path / 'elsewhere' / 'isic'):
        checkpoint = _checkpoint_trained_on(
            tmp_path / 'trained.pth', trained_root, 'splits/train.txt')
        with pytest.raises(UserError) as error:
            check_recalibration_images(
                checkpoint, dict(data_root=str(root),
                                 ann_file='splits/one_more.txt'), 'c.py')
        assert str(error.value).startswith(
            f"c.py: train_dataloader reads 1 of 3 images "
            f"({root / 'splits' / 'one_more.txt'}: ISIC_0000009) that "
            f'checkpoint {checkpoint} did not train on; its training split '
            f"is {root / 'splits' / 'train.txt'}")
        # A subset of the training split (ids written as ./ISIC_...) passes.
        check_recalibration_images(
            checkpoint,
            dict(data_root=str(root), ann_file='splits/subset.txt'), 'c.py')


def test_a_split_found_nowhere_is_checked_for_test_splits_only(tmp_path):
    """A training split found neither where the checkpoint's config names
    it nor under the loader's data root, and a recalibration split file
    that does not exist (the loader's build reports it), are no reason to
    stop here, nor to fail with a TypeError or FileNotFoundError."""
    from mmseg_dsnet.engine.batch_norm_recalibration import \
        check_recalibration_images
    root = _hand_made_set(tmp_path)
    gone = _checkpoint_trained_on(tmp_path / 'gone.pth',
                                  tmp_path / 'nowhere', 'splits/gone.txt')
    check_recalibration_images(
        gone, dict(data_root=str(root), ann_file='splits/one_more.txt'),
        'c.py')
    trained = _checkpoint_trained_on(tmp_path / 'trained.pth', root,
                                     'splits/train.txt')
    check_recalibration_images(
        trained, dict(data_root=str(root), ann_file='splits/missing.txt'),
        'c.py')


def test_a_failing_pass_restores_every_statistic():
    """A loader that fails after one batch: the running means, variances
    and counts are the ones before the pass, not a half-recomputed mix
    (nor the reset mean 0, variance 1)."""
    from mmseg_dsnet.engine.batch_norm_recalibration import \
        recalibrate_batch_norm
    model = build(DSNET)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key.endswith('running_mean'):
                value.uniform_(-1, 1)
            elif key.endswith('running_var'):
                value.uniform_(2, 3)
            elif key.endswith('num_batches_tracked'):
                value.fill_(41)
    before = bn_buffers(model)

    def one_batch_then_fail():
        yield from batches(1)
        raise OSError('disk gone')

    with pytest.raises(OSError, match='disk gone'):
        recalibrate_batch_norm(model, one_batch_then_fail(),
                               show_progress=False)
    after = bn_buffers(model)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_a_wrapped_model_is_recalibrated(monkeypatch):
    """A model inside a wrapper (DistributedDataParallel in a training run)
    is unwrapped: its statistics are those of the bare model's pass."""
    from mmengine.registry import MODEL_WRAPPERS
    from torch import nn

    from mmseg_dsnet.engine.batch_norm_recalibration import (
        batch_norm_layers, recalibrate_batch_norm)

    class Wrapper(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    monkeypatch.setitem(MODEL_WRAPPERS._module_dict, 'TestOnlyWrapper',
                        Wrapper)
    model = build(DSNET)
    assert recalibrate_batch_norm(Wrapper(model), batches(2),
                                  show_progress=False) == 2
    assert all(int(layer.num_batches_tracked) == 2
               for layer in batch_norm_layers(model))


@pytest.mark.slow
def test_the_record_names_the_split_with_its_data_root(tiny_isic, tmp_path,
                                                       capsys, monkeypatch):
    """The record of the recalibration split: the loader's ann_file as
    given, and the file joined with its data root as an absolute path (a
    config giving a relative data root is run from its folder, the
    threshold sweep or tools/test.py from another)."""
    import os
    monkeypatch.chdir(tiny_isic.parent)
    relative = os.path.relpath(tiny_isic, tiny_isic.parent)
    cfg = write_tiny_config(tmp_path / 'tiny.py', relative, epochs=1)
    model = build(str(cfg))
    source = tmp_path / 'trained.pth'
    torch.save(dict(state_dict=model.state_dict()), source)
    out = tmp_path / 'recalibrated.pth'
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    code, err = run_cli(tool.main, [cfg, source, out, '--max-batches', '1',
                                    '--cfg-options',
                                    'train_dataloader.dataset.ann_file='
                                    'splits/official_train.txt'], capsys)
    assert code == 0, err
    record = torch.load(out, map_location='cpu',
                        weights_only=False)['meta']['batch_norm_recalibration']
    assert record == dict(
        source=str(source), batches=1, seed=0,
        split='splits/official_train.txt',
        split_files=[str(tiny_isic / 'splits' / 'official_train.txt')])


def test_a_model_whose_batch_norm_layers_never_run_writes_nothing(
        tiny_isic, tmp_path, monkeypatch):
    """Every BatchNorm layer left out of the forward pass: nothing was
    recomputed, so no checkpoint is written as recalibrated."""
    from mmseg_dsnet.engine import batch_norm_recalibration as module
    from mmseg_dsnet.utils.errors import UserError
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    source = tmp_path / 'trained.pth'
    torch.save(dict(state_dict=build(str(cfg)).state_dict()), source)

    def runs_none(model, loader, max_batches=None, show_progress=True,
                  not_run=None):
        not_run.extend(name for name, layer in model.named_modules()
                       if layer in module.batch_norm_layers(model))
        return 1

    monkeypatch.setattr(module, 'recalibrate_batch_norm', runs_none)
    out = tmp_path / 'out.pth'
    with pytest.raises(UserError, match='does not run'):
        module.write_recalibrated_checkpoint(str(cfg), str(source), str(out))
    assert not out.exists()


def test_recalibrated_released_weights_keep_their_training_config(
        tiny_isic, tmp_path, monkeypatch):
    """Released weights hold no ``meta['cfg']`` and are known by their
    SHA-256 only; their recalibrated copy, another file, must carry their
    metafile entry's config, or it passed the checks of network, input size
    and training split."""
    from mmengine.config import Config

    from mmseg_dsnet.apis.released_model import training_config_of
    from mmseg_dsnet.engine.batch_norm_recalibration import \
        write_recalibrated_checkpoint
    released = REPO / 'configs/dsnet/dsnet_isic2017.py'
    config = tmp_path / 'tiny_root.py'
    config.write_text(
        f"_base_ = '{released}'\n"
        'train_dataloader = dict(batch_size=2, num_workers=0, '
        f"persistent_workers=False, dataset=dict(data_root='{tiny_isic}'))\n")
    # Not under the repository: the released run's data/isic2017 split is
    # then looked for under the tiny set's root, as on another machine.
    monkeypatch.chdir(tmp_path)
    # Nor found in this repository's data/isic2017 where one was converted
    # (the tiny set's images are not in it, so the run would be refused).
    from mmseg_dsnet.analysis import threshold_sweep
    monkeypatch.setattr(threshold_sweep, 'training_split_files',
                        lambda checkpoint, data_root=None: [None])
    out = tmp_path / 'recalibrated.pth'
    write_recalibrated_checkpoint(
        str(config), str(REPO / 'checkpoints/dsnet_isic2017_256px.pth'),
        str(out), max_batches=1)
    text = torch.load(out, map_location='cpu', weights_only=False)[
        'meta']['cfg']
    carried = Config.fromstring(text, '.py')
    assert carried.model == Config.fromfile(str(released)).model
    # Named from the repository, or there where it was converted.
    assert os.path.join(str(REPO), carried.train_dataloader.dataset.data_root
                        ) == str(REPO / 'data/isic2017')
    assert training_config_of(str(out))['train_dataloader']['dataset'][
        'ann_file'] == 'splits/lightweight_train.txt'


def test_an_unseen_first_image_is_refused(tmp_path):
    """The first id of the recalibration split counts as the others: one
    outside the training split, listed first, is refused."""
    from mmseg_dsnet.engine.batch_norm_recalibration import \
        check_recalibration_images
    from mmseg_dsnet.utils.errors import UserError
    root = _hand_made_set(tmp_path)
    (root / 'splits' / 'first.txt').write_text('ISIC_0000009\nISIC_0000001\n')
    checkpoint = _checkpoint_trained_on(
        tmp_path / 'trained.pth', root, 'splits/train.txt')
    with pytest.raises(UserError, match=r'reads 1 of 2 images \(.*first.txt:'
                       ' ISIC_0000009\\) that checkpoint'):
        check_recalibration_images(
            checkpoint, dict(data_root=str(root), ann_file='splits/first.txt'),
            'c.py')


def test_a_run_that_read_the_whole_synthetic_set_is_recalibrated_on_it(
        tmp_path):
    """A run that trained on every image of the synthetic set (no split
    file) was refused its own set, told it 'trained on : statistics of
    synthetic pictures would replace ...'; one split-less on another root
    is refused, naming that root."""
    from mmseg_dsnet.engine.batch_norm_recalibration import \
        check_recalibration_images
    from mmseg_dsnet.utils.errors import UserError
    root = _hand_made_set(tmp_path)
    (root / 'SYNTHETIC.txt').write_text('synthetic\n')
    elsewhere = tmp_path / 'real'

    def trained_on(data_root):
        path = tmp_path / 'trained.pth'
        torch.save(dict(meta=dict(cfg=(
            'train_dataloader = dict(dataset=dict(type="ISICDataset", '
            f'data_root={str(data_root)!r}))\n')), state_dict={}), path)
        return str(path)

    dataset = dict(data_root=str(root), ann_file='splits/train.txt')
    check_recalibration_images(trained_on(root), dataset, 'c.py')
    checkpoint = trained_on(elsewhere)
    with pytest.raises(UserError) as error:
        check_recalibration_images(checkpoint, dataset, 'c.py')
    assert f'checkpoint {checkpoint} trained on every image under ' \
        f'{elsewhere}: statistics of synthetic pictures' in str(error.value)


def test_the_statistics_a_model_trained_with_are_replaced_not_blended():
    """A trained model's statistics (counted over 41 batches) are
    replaced by the plain average over the 2 batches of the pass, with the
    count of those 2, not folded into the old ones."""
    from mmseg_dsnet.engine.batch_norm_recalibration import (
        batch_norm_layers, recalibrate_batch_norm)
    model = build(DSNET)
    with torch.no_grad():
        for layer in batch_norm_layers(model):
            layer.running_mean.uniform_(-1, 1)
            layer.running_var.uniform_(2, 3)
            layer.num_batches_tracked.fill_(41)
    first = batch_norm_layers(model)[0]
    seen = []
    handle = first.register_forward_hook(
        lambda module, args, output: seen.append(args[0].detach().clone()))
    assert recalibrate_batch_norm(model, batches(2),
                                  show_progress=False) == 2
    handle.remove()
    expected_mean = (seen[0].mean((0, 2, 3)) + seen[1].mean((0, 2, 3))) / 2
    torch.testing.assert_close(first.running_mean, expected_mean)
    assert all(int(layer.num_batches_tracked) == 2
               for layer in batch_norm_layers(model))


def test_a_loader_without_length_that_gives_no_batch_is_refused():
    """A loader without ``len`` (a generator) that gives nothing: refused,
    not reported as 0 batches averaged with the statistics left as they
    were."""
    from mmseg_dsnet.engine.batch_norm_recalibration import \
        recalibrate_batch_norm
    model = build(DSNET)
    before = bn_buffers(model)
    with pytest.raises(ValueError, match='no batch'):
        recalibrate_batch_norm(model, iter([]), show_progress=False)
    after = bn_buffers(model)
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_statistics_are_those_of_the_network_as_evaluated():
    """With stochastic depth (DropPath drops residual branches at random
    in training mode) the pass runs the network as it is evaluated: the
    statistics do not depend on the random generator."""
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from mmseg_dsnet.engine.batch_norm_recalibration import (
        batch_norm_layers, recalibrate_batch_norm)
    build(DSNET)  # registers the modules
    cfg = Config.fromfile(DSNET)
    cfg.model.backbone.update(shortcut=True, drop_path_rate=0.5)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    statistics = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        recalibrate_batch_norm(model, batches(2), show_progress=False)
        statistics.append([layer.running_mean.clone()
                           for layer in batch_norm_layers(model)])
    for first, second in zip(*statistics):
        assert torch.equal(first, second)


def test_tool_refuses_a_variable_option_and_an_out_of_another_format(
        tmp_path, capsys):
    """``--cfg-options data_root=OTHER`` (a config variable, copied into
    the loaders when the config was read) changed nothing: the statistics
    came from the config's own images, exit 0. OUT ``x.onnx`` was written
    as a PyTorch file, exit 0, and read by name as an ONNX model. Both are
    refused before any work, nothing written."""
    from conftest import DEMO_128PX, make_128px_checkpoint
    checkpoint = make_128px_checkpoint(tmp_path / 'c128.pth')
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    other = tmp_path / 'other_set'
    code, err = run_cli(tool.main, [
        DEMO_128PX, checkpoint, tmp_path / 'out.pth', '--max-batches', '1',
        '--cfg-options', f'data_root={other}'], capsys)
    assert code == 2
    assert err.splitlines()[-1].startswith(
        f'ERROR: --cfg-options data_root={other} sets the config variable '
        "'data_root'"), err
    out = tmp_path / 'out.onnx'
    code, err = run_cli(tool.main, [DEMO_128PX, checkpoint, out,
                                    '--max-batches', '1'], capsys)
    assert code == 2
    assert err.splitlines()[-1] == (
        f'ERROR: OUT {out}: the recalibrated checkpoint is written in '
        'PyTorch format; give a file name ending with .pth, .pt or .ckpt')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['c128.pth']


def test_a_test_split_under_another_name_is_refused(tmp_path):
    """A subset of the test split written as ``faster.txt``, and a link to
    it named ``held_out.txt``, passed the name check for a checkpoint that
    holds no training config: BatchNorm statistics were recomputed on test
    images."""
    import os

    from mmseg_dsnet.engine.batch_norm_recalibration import \
        check_recalibration_images
    from mmseg_dsnet.utils.errors import UserError
    root = _hand_made_set(tmp_path)
    splits = root / 'splits'
    (splits / 'lightweight_test.txt').write_text(
        'ISIC_0000007\nISIC_0000008\nISIC_0000009\n')
    (splits / 'faster.txt').write_text('ISIC_0000008\n./ISIC_0000009\n')
    os.symlink('lightweight_test.txt', splits / 'held_out.txt')
    bare = tmp_path / 'bare.pth'
    torch.save(dict(state_dict={}), bare)
    for name, shared in (('faster.txt', '2 images: ISIC_0000008, '
                          'ISIC_0000009'),
                         ('held_out.txt', '3 images: ISIC_0000007, '
                          'ISIC_0000008, ISIC_0000009')):
        with pytest.raises(UserError) as error:
            check_recalibration_images(
                str(bare), dict(data_root=str(root), ann_file=f'splits/'
                                f'{name}'), 'c.py')
        count, ids = shared.split(': ')
        assert str(error.value).startswith(
            f'c.py: train_dataloader reads {count} of the test split '
            f"{splits / 'lightweight_test.txt'} ({splits / name}: {ids}): "
            'BatchNorm statistics recomputed on test images')
    # The training split, which shares no test image, still passes.
    check_recalibration_images(
        str(bare), dict(data_root=str(root), ann_file='splits/train.txt'),
        'c.py')


def test_a_deploy_checkpoint_is_sent_to_the_checkpoint_it_came_from(
        tiny_isic, tmp_path, capsys):
    """A deploy (re-parameterised) checkpoint has no BatchNorm layers: the
    refusal offers only the trained checkpoint its meta records, not the
    deploy config, which is refused for having no BatchNorm."""
    from test_reparameterize_tool import write_deploy_pair
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_isic, epochs=1)
    trained = tmp_path / 'trained.pth'
    torch.save(dict(meta=dict(seed=7), state_dict=build(str(cfg))
                    .state_dict()), trained)
    deployed, deploy_config = write_deploy_pair(trained, tmp_path, str(cfg))
    tool = load_tool('analysis_tools/recalibrate_batch_norm.py')
    out = tmp_path / 'out.pth'
    code, err = run_cli(tool.main, [cfg, deployed, out], capsys)
    assert code == 2 and err.count('\n') == 1, err
    assert err.endswith(
        '. It is a deploy checkpoint (re-parameterised by '
        f'tools/deployment/reparameterize.py from {trained}), and the '
        'deploy form has no BatchNorm layers (they are folded into its '
        'convolutions), so there are no statistics to recompute: give the '
        f'trained checkpoint {trained} with this config.\n')
    assert 'deploy config' not in err
    code, err = run_cli(tool.main, [deploy_config, deployed, out], capsys)
    assert code == 2
    assert err == (
        f'ERROR: {deploy_config} builds a model without BatchNorm layers; '
        'there are no statistics to recompute: it builds the deploy '
        '(re-parameterised) form (deploy=True), whose BatchNorm layers are '
        'folded into its convolutions; recalibrate the trained checkpoint '
        'with its training config, then re-parameterise the result with '
        'tools/deployment/reparameterize.py\n')
    assert not out.exists()
