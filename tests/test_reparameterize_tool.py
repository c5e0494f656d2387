"""tools/deployment/reparameterize.py writes a deploy checkpoint and config
that reproduce the trained model with fewer parameters."""
import re

import pytest
import torch
from conftest import REPO, load_tool

CONFIG = str(REPO / 'configs/dsnet/dsnet_isic2018.py')


@pytest.fixture(scope='module')
def trained_checkpoint(tmp_path_factory):
    """DSNet with random weights and non-trivial BatchNorm statistics."""
    import mmseg_dsnet  # noqa: F401
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 3, 64, 64) * 2 + 0.5, mode='tensor')
    path = tmp_path_factory.mktemp('reparam') / 'trained.pth'
    meta = dict(dataset_meta=dict(classes=('background', 'lesion'),
                                  palette=[[0, 0, 0], [255, 64, 64]]))
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, path)
    return path


def test_deploy_checkpoint_reproduces_the_model(trained_checkpoint, tmp_path):
    import mmseg_dsnet  # noqa: F401
    from mmseg.apis import init_model
    tool = load_tool('deployment/reparameterize.py')
    out = tmp_path / 'deploy' / 'dsnet_deploy.pth'
    result = tool.main([CONFIG, str(trained_checkpoint), str(out),
                        '--shape', '64', '64'])
    assert result['max_abs_diff_float64'] <= 1e-5
    assert result['max_abs_diff'] <= 1e-5
    assert result['params_deployed'] < result['params']
    assert out.is_file() and out.with_suffix('.py').is_file()
    trained = init_model(CONFIG, str(trained_checkpoint), device='cpu')
    deployed = init_model(str(out.with_suffix('.py')), str(out), device='cpu')
    assert deployed.cfg.model.backbone.deploy is True
    assert deployed.dataset_meta['classes'] == ('background', 'lesion')
    n_params = sum(p.numel() for p in deployed.parameters())
    assert n_params == result['params_deployed']
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        diff = (trained(x, mode='tensor') - deployed(x, mode='tensor')).abs()
    assert float(diff.max()) <= 1e-5
    # The reported float32 difference is the trained and the written
    # network's on the check's seeded inputs (mutation testing: the
    # folded network's float32 vs float64 rounding passed for it).
    checked = torch.randn(2, 3, 64, 64, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(0)).float()
    with torch.no_grad():
        diff = (trained(checked, mode='tensor') -
                deployed(checked, mode='tensor')).abs().max()
    assert result['max_abs_diff'] == pytest.approx(float(diff), rel=1e-6)
    # Nothing is overwritten without --overwrite.
    with pytest.raises(FileExistsError, match='dsnet_deploy'):
        tool.main([CONFIG, str(trained_checkpoint), str(out)])
    # A folder where the deploy config would go is refused before any
    # work, even with --overwrite: no checkpoint without its config.
    other = tmp_path / 'other.pth'
    (tmp_path / 'other.py').mkdir()
    from mmseg_dsnet.utils.errors import UserError
    with pytest.raises(UserError, match='other.py is a folder'):
        tool.main([CONFIG, str(trained_checkpoint), str(other),
                   '--overwrite'])
    assert not other.exists()


def test_one_shape_number_checks_a_square(trained_checkpoint, tmp_path):
    """``--shape 64`` (one number, as get_flops.py and benchmark.py take
    it) was refused by argparse (``expected 2 arguments``): the parity
    check now runs on a 64x64 input."""
    tool = load_tool('deployment/reparameterize.py')
    assert tool.parse_args(['c.py', 'k.pth', 'o.pth', '--shape', '64'
                            ]).shape == [64]
    out = tmp_path / 'square.pth'
    result = tool.main([CONFIG, str(trained_checkpoint), str(out),
                        '--shape', '64'])
    assert result['max_abs_diff_float64'] <= 1e-5
    assert out.is_file() and out.with_suffix('.py').is_file()


def test_a_deploy_checkpoint_is_not_reparameterised_again(
        trained_checkpoint, tmp_path):
    """The deploy config and checkpoint given back to the tool wrote a
    second "deploy checkpoint" after a parity check of the plain model
    against itself (``Params: N -> N``), its ``source_checkpoint`` naming
    the deploy checkpoint instead of the trained one, exit 0."""
    from conftest import run_tool_in_process
    tool = 'tools/deployment/reparameterize.py'
    out = tmp_path / 'deploy.pth'
    done = run_tool_in_process(tool, CONFIG, trained_checkpoint, out,
                               '--shape', 64, 64)
    assert done.returncode == 0, done.stderr[-2000:]
    deploy_cfg = out.with_suffix('.py')
    again = tmp_path / 'again' / 'deploy.pth'
    again.parent.mkdir()
    done = run_tool_in_process(tool, deploy_cfg, out, again, '--shape', 64,
                               64)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f'ERROR: {deploy_cfg} is a deploy config (deploy=True): its model '
        'is re-parameterised already, so there is nothing to fold; a '
        'deploy checkpoint and its config are used as they are. To write '
        'one, give the training config and the trained checkpoint')
    assert list(again.parent.iterdir()) == []


def test_outputs_that_would_replace_each_other_or_an_input_are_refused(
        trained_checkpoint, tmp_path, capsys):
    """OUT ``x.py`` was written, then replaced by its own deploy config
    (``x.py`` too), exit 0; OUT the checkpoint itself, or OUT.py the
    training config, replaced the input with ``--overwrite``. All are
    refused before any work, with or without ``--overwrite``."""
    import shutil

    from test_user_error_exits import run_cli
    tool = load_tool('deployment/reparameterize.py')
    checkpoint = tmp_path / 'trained.pth'
    shutil.copy(trained_checkpoint, checkpoint)
    config = tmp_path / 'train_cfg.py'
    config.write_text(f"_base_ = '{CONFIG}'\n")
    hint = 'give the deploy checkpoint a new name ending in .pth'
    for out, message in (
            (tmp_path / 'deploy.py', 'the deploy checkpoint and the deploy '
             'config written beside it (its name with .py) are the same '
             f'file, {tmp_path}/deploy.py'),
            (checkpoint, 'the trained checkpoint and the deploy checkpoint '
             f'are the same file, {checkpoint}'),
            (tmp_path / 'train_cfg.pth', 'the training config and the '
             'deploy config written beside it (its name with .py) are the '
             f'same file, {tmp_path}/train_cfg.py')):
        for extra in ([], ['--overwrite']):
            code, err = run_cli(tool.main, [config, checkpoint, out,
                                            '--shape', '64', '64'] + extra,
                                capsys)
            assert (code, err) == (2, f'ERROR: {message}; {hint}\n')
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'train_cfg.py', 'trained.pth']
    assert config.read_text() == f"_base_ = '{CONFIG}'\n"
    assert checkpoint.read_bytes() == trained_checkpoint.read_bytes()


def test_a_model_without_a_deploy_form_is_refused_by_name(tmp_path, capsys):
    """An EGE-UNet config and checkpoint were loaded and checked, then
    refused as ``EGEUNet.__init__() got an unexpected keyword argument
    'deploy' (check the spelling of this key in the config)``."""
    from test_user_error_exits import random_checkpoint, run_cli
    tool = load_tool('deployment/reparameterize.py')
    config = str(REPO / 'configs/egeunet/egeunet_isic2018.py')
    checkpoint = random_checkpoint(config, tmp_path / 'ege.pth')
    code, err = run_cli(tool.main, [config, checkpoint,
                                    tmp_path / 'out' / 'ege_deploy.pth'],
                        capsys)
    assert (code, err) == (2, (
        f'ERROR: {config} builds a model without a re-parameterised form '
        "(EGEUNet.__init__() got an unexpected keyword argument 'deploy'); "
        'reparameterize.py is for DSNet models: use its trained checkpoint '
        'as it is\n'))
    assert [p.name for p in tmp_path.iterdir()] == ['ege.pth']


def test_weights_trained_at_another_input_size_are_refused(tmp_path):
    """A checkpoint trained at 128 px (its ``meta['cfg']``) given with a
    256 px training config passed the parity check and its deploy
    checkpoint was written beside a deploy config that runs it at 256 px,
    exit 0."""
    from conftest import (DEMO_128PX, make_128px_checkpoint,
                          run_tool_in_process, trained_size_error)
    from mmengine.config import Config
    demo = DEMO_128PX
    trained = make_128px_checkpoint(tmp_path / 'epoch_1.pth')
    out = tmp_path / 'deploy.pth'
    tool = 'tools/deployment/reparameterize.py'
    done = run_tool_in_process(tool, CONFIG, trained, out, '--shape', 64, 64)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == trained_size_error(
        trained, CONFIG, 'give the training config it was trained with')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']
    # With the config it was trained with, the deploy config keeps 128 px.
    done = run_tool_in_process(tool, demo, trained, out, '--shape', 64, 64)
    assert done.returncode == 0, done.stderr[-2000:]
    written = Config.fromfile(str(out.with_suffix('.py')))
    assert tuple(written.model.data_preprocessor.size) == (128, 128)


def test_an_out_path_through_a_file_is_refused_before_the_check(
        trained_checkpoint, tmp_path):
    """OUT under a path that runs through a file failed with a
    ``FileExistsError`` traceback, exit 1, after the model was loaded and
    checked."""
    from conftest import run_tool_in_process
    afile = tmp_path / 'afile'
    afile.write_text('a file, not a folder')
    out = afile / 'deploy.pth'
    done = run_tool_in_process('tools/deployment/reparameterize.py', CONFIG,
                               trained_checkpoint, out, '--shape', 64, 64)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f'ERROR: Cannot write OUT {out}: {afile} is a file, not a folder. '
        'Nothing was started; choose a writable file for OUT.')
    assert afile.read_text() == 'a file, not a folder'


def fold_with_a_spoiled_logit(monkeypatch, tmp_path, checkpoint, spoil):
    """Run reparameterize.py with a fold whose model's outputs pass through
    ``spoil`` (output -> output or None to keep it); returns the exit
    status and the output path."""
    from mmseg_dsnet.deploy import deploy_checkpoint
    fold = deploy_checkpoint.reparameterize_model

    def spoiled_fold(model):
        model = fold(model)
        model.register_forward_hook(
            lambda module, inputs, output: spoil(output.clone()))
        return model

    monkeypatch.setattr(deploy_checkpoint, 'reparameterize_model',
                        spoiled_fold)
    tool = load_tool('deployment/reparameterize.py')
    out = tmp_path / 'dsnet_deploy.pth'
    return tool.main([CONFIG, str(checkpoint), str(out), '--shape', '64',
                      '64']), out


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_a_fold_that_makes_non_finite_logits_fails_the_check(
        trained_checkpoint, tmp_path, monkeypatch, capsys, bad):
    """A fold whose model gives a NaN logit: every difference was NaN,
    which compares False with the tolerance, so the check passed and the
    deploy checkpoint was written, exit 0."""
    def spoil(output):
        output[0, 0, 0, 0] = bad
        return output

    status, out = fold_with_a_spoiled_logit(monkeypatch, tmp_path,
                                            trained_checkpoint, spoil)
    assert status == 1
    error = capsys.readouterr().err
    assert error.startswith(f'ERROR: Re-parameterised logits differ by '
                            f'{bad:.3g} (NaN or inf logits), more than '
                            f'1e-05, in float64; not writing {out}.')
    assert not out.exists() and not out.with_suffix('.py').exists()


def test_a_failed_write_under_overwrite_keeps_the_previous_pair(
        trained_checkpoint, tmp_path, monkeypatch):
    """The .pth was written, then the .py: a failure in between (a full
    disk, an interrupt, a config that cannot be written) under --overwrite
    left the new weights beside the previous run's config, a pair that does
    not match. Now both are written to temporaries first, then renamed."""
    from mmengine.config import Config
    tool = load_tool('deployment/reparameterize.py')
    out = tmp_path / 'dsnet_deploy.pth'
    out.write_bytes(b'previous weights')
    out.with_suffix('.py').write_text('# previous config\n')

    def full_disk(self, file=None):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(Config, 'dump', full_disk)
    with pytest.raises(OSError, match='No space left'):
        tool.main([CONFIG, str(trained_checkpoint), str(out), '--shape',
                   '64', '64', '--overwrite'])
    assert out.read_bytes() == b'previous weights'
    assert out.with_suffix('.py').read_text() == '# previous config\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'dsnet_deploy.pth', 'dsnet_deploy.py']
    monkeypatch.undo()
    tool.main([CONFIG, str(trained_checkpoint), str(out), '--shape', '64',
               '64', '--overwrite'])
    assert out.read_bytes() != b'previous weights'
    assert 'deploy=True' in out.with_suffix('.py').read_text()


def test_atomic_write_together_writes_all_or_none(tmp_path):
    from mmseg_dsnet.utils.fileio import atomic_write_together
    first, second = tmp_path / 'a.pth', tmp_path / 'a.py'
    first.write_text('old a')
    second.write_text('old b')

    def failing_writer(path):
        raise OSError('the writer failed')
    with pytest.raises(OSError, match='the writer failed'):
        atomic_write_together([('new a', first), (failing_writer, second)])
    assert (first.read_text(), second.read_text()) == ('old a', 'old b')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.pth', 'a.py']
    with pytest.raises(FileExistsError):
        atomic_write_together([('new a', tmp_path / 'c'), ('new b', second)],
                              overwrite=False)
    assert not (tmp_path / 'c').exists()
    assert atomic_write_together([('new a', first), ('new b', second)]) == [
        str(first), str(second)]
    assert (first.read_text(), second.read_text()) == ('new a', 'new b')


@pytest.mark.parametrize('dtype,message', [
    (torch.float64, 'in float64'),
    (torch.float32,
     "more than four times the trained network's float32 noise floor")])
def test_a_fold_off_by_a_small_finite_amount_fails_the_check(
        trained_checkpoint, tmp_path, monkeypatch, capsys, dtype, message):
    """A fold that moves one logit by 1e-4 (ten times ``--atol``) in
    float64, or in float32 only, is not written."""
    def shift(output):
        if output.dtype != dtype:
            return None
        output[0, 0, 0, 0] += 1e-4
        return output

    status, out = fold_with_a_spoiled_logit(monkeypatch, tmp_path,
                                            trained_checkpoint, shift)
    assert status == 1
    error = capsys.readouterr().err
    assert error.startswith('ERROR: Re-parameterised ') and message in error
    assert not out.exists() and not out.with_suffix('.py').exists()


def test_an_out_not_named_pth_is_refused(trained_checkpoint, tmp_path,
                                         capsys):
    """OUT ``model.onnx`` was written as a PyTorch checkpoint beside
    ``model.py``, exit 0 (infer.py then read it as a broken ONNX model);
    with ``--overwrite`` it replaced an exported ONNX model of that name.
    An OUT not named as a checkpoint (``.pth``, ``.pt``, ``.ckpt``, the
    names infer.py takes for one) is refused before any work."""
    from test_user_error_exits import run_cli
    tool = load_tool('deployment/reparameterize.py')
    exported = tmp_path / 'model.onnx'
    exported.write_bytes(b'an exported ONNX model')
    for out in (exported, tmp_path / 'model', tmp_path / 'model.json'):
        for extra in ([], ['--overwrite']):
            code, err = run_cli(tool.main, [CONFIG, trained_checkpoint, out,
                                            '--shape', '64'] + extra, capsys)
            assert (code, err) == (
                2, f'ERROR: OUT {out}: the deploy checkpoint is written in '
                'PyTorch format; give a file name ending with .pth, .pt or '
                '.ckpt\n')
    assert [p.name for p in tmp_path.iterdir()] == ['model.onnx']
    assert exported.read_bytes() == b'an exported ONNX model'


@pytest.mark.parametrize('name', ['deploy.pt', 'deploy.CKPT'])
def test_an_out_of_another_checkpoint_name_is_written(
        trained_checkpoint, tmp_path, name):
    """OUT ``deploy.pt`` or ``deploy.ckpt``, names infer.py and the other
    tools take for a checkpoint, was refused as not ``.pth``; it is
    written, with its deploy config beside it, and loads."""
    from mmseg.apis import init_model

    from mmseg_dsnet.utils.fileio import CHECKPOINT_SUFFIXES
    assert load_tool('infer.py').CHECKPOINT_EXTENSIONS == CHECKPOINT_SUFFIXES
    tool = load_tool('deployment/reparameterize.py')
    out = tmp_path / name
    result = tool.main([CONFIG, str(trained_checkpoint), str(out),
                        '--shape', '64'])
    assert result['checkpoint'] == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ['deploy.py', name])
    deployed = init_model(str(tmp_path / 'deploy.py'), str(out),
                          device='cpu')
    assert deployed.cfg.model.backbone.deploy is True


def test_the_check_gives_one_verdict_whatever_the_callers_random_state(
        trained_checkpoint, tmp_path):
    """The check's random inputs were drawn from the caller's random state:
    the released weights' correct fold passed or was refused (float32
    difference over twice the noise floor) depending on what ran before in
    the process. The inputs are seeded now: two calls after different
    random states report the same figures."""
    from mmseg_dsnet.deploy.deploy_checkpoint import write_deploy_checkpoint
    results = []
    for index, seed in enumerate((1, 2)):
        torch.manual_seed(seed)
        result = write_deploy_checkpoint(
            CONFIG, str(trained_checkpoint),
            str(tmp_path / f'deploy{index}.pth'), shape=(64, 64))
        results.append({key: value for key, value in result.items()
                        if key not in ('checkpoint', 'config')})
    assert results[0] == results[1]


def test_the_float32_tolerance_is_four_times_the_noise_floor(
        trained_checkpoint, tmp_path, monkeypatch):
    """With ``atol`` below the noise floor, the float32 check's tolerance
    is four times the trained network's noise floor: a fold whose float32
    logits move by eight times it is refused (the tolerance is not a
    looser multiple), one that moves nothing is written."""
    from mmseg_dsnet.deploy import deploy_checkpoint
    from mmseg_dsnet.deploy.deploy_checkpoint import ParityError
    write = deploy_checkpoint.write_deploy_checkpoint
    floor = write(CONFIG, str(trained_checkpoint), str(tmp_path / 'a.pth'),
                  shape=(64, 64), atol=1e-9)['float32_noise_floor']
    assert floor > 1e-9
    fold = deploy_checkpoint.reparameterize_model

    def spoiled_fold(model):
        model = fold(model)

        def shift(module, inputs, output):
            if output.dtype == torch.float32:
                output = output.clone()
                output[0, 0, 0, 0] += 8 * floor
                return output

        model.register_forward_hook(shift)
        return model

    monkeypatch.setattr(deploy_checkpoint, 'reparameterize_model',
                        spoiled_fold)
    out = tmp_path / 'b.pth'
    with pytest.raises(ParityError, match='more than four times'):
        write(CONFIG, str(trained_checkpoint), str(out), shape=(64, 64),
              atol=1e-9)
    assert not out.exists()


def test_a_deploy_config_that_builds_another_network_is_not_written(
        trained_checkpoint, tmp_path, monkeypatch):
    """The deploy config is checked by running it with the folded weights:
    one whose network loads them strictly but computes something else
    (here its decoder upsamples with ``align_corners=True``) is refused
    and nothing is written (mutation testing: without that check the
    pair was written, exit 0)."""
    from mmseg_dsnet.deploy import deploy_checkpoint
    from mmseg_dsnet.deploy.deploy_checkpoint import ParityError
    make = deploy_checkpoint.deploy_config

    def other_network(cfg):
        cfg = make(cfg)
        cfg.model.decode_head.align_corners = True
        return cfg

    monkeypatch.setattr(deploy_checkpoint, 'deploy_config', other_network)
    out = tmp_path / 'dsnet_deploy.pth'
    with pytest.raises(ParityError,
                       match='deploy config does not reproduce the model'):
        deploy_checkpoint.write_deploy_checkpoint(
            CONFIG, str(trained_checkpoint), str(out), shape=(64, 64))
    assert not out.exists() and not out.with_suffix('.py').exists()


def test_a_shape_too_small_to_check_every_weight_is_refused(
        trained_checkpoint, tmp_path, capsys):
    """On a small input some kernels' off-centre weights meet only the
    zero padding (at 32x32, those at 1/32, on 1x1 maps): a fold that broke
    them passed the parity check (7e-16 on 2x2 with stride-2
    downsampling), and the tool wrote the deploy checkpoint, exit 0. Such
    a shape is refused before any work; 64x64 meets every weight. A shape
    the model cannot run at (2x2: pooled downsampling empties the map) is
    refused as such."""
    import copy

    from mmengine.config import Config
    from mmseg.registry import MODELS
    from test_user_error_exits import run_cli

    from mmseg_dsnet.deploy.parity import convolutions_not_seen
    from mmseg_dsnet.models.utils import reparameterize_model
    model = MODELS.build(Config.fromfile(CONFIG).model).eval()
    deployed = reparameterize_model(copy.deepcopy(model))
    # The premise: off-centre weights broken where 32x32 leaves them
    # unseen change nothing there; 64x64 sees every weight.
    with torch.no_grad():
        unseen_on_32 = set(convolutions_not_seen(
            deployed, torch.zeros(1, 3, 32, 32)))
        assert unseen_on_32
        for name, conv in deployed.named_modules():
            if name in unseen_on_32:
                conv.weight[..., 0, 0] += 1
        x = torch.randn(1, 3, 32, 32)
        assert float((deployed(x, mode='tensor') -
                      model(x, mode='tensor')).abs().max()) < 1e-4
        assert convolutions_not_seen(deployed, torch.randn(1, 3, 64, 64)) \
            == []
    tool = load_tool('deployment/reparameterize.py')
    out = tmp_path / 'deploy.pth'
    code, err = run_cli(tool.main, [CONFIG, trained_checkpoint, out,
                                    '--shape', '2'], capsys)
    assert code == 2, err
    assert err.startswith(
        f'ERROR: --shape 2 2: the model of {CONFIG} cannot run at this '
        'input size (RuntimeError: ') and err.endswith(
        '); give a size it takes, such as its 256 256\n'), err
    code, err = run_cli(tool.main, [CONFIG, trained_checkpoint, out,
                                    '--shape', '32'], capsys)
    assert code == 2, err
    assert err.startswith(
        'ERROR: --shape 32 32 is too small for the parity check: on it, '
        'weights of ') and err.endswith(
        'meet only the zero padding, so a wrong re-parameterisation of '
        'them would pass; give a larger --shape (the default 256 256 '
        'meets them all)\n'), err
    # Counted in words (it said ``N convolution(s)``).
    assert re.search(r'weights of \d+ convolutions \(', err), err
    assert list(tmp_path.iterdir()) == []


class _Convs(torch.nn.Module):
    """Convolutions, each run on its own corner of the input."""

    # name: (kernel, stride, padding, dilation, height, width of its input)
    SPECS = dict(
        wide_one_row=(3, 1, 1, 1, 1, 8), tall_one_column=(3, 1, 1, 1, 8, 1),
        two_by_two=(3, 1, 1, 1, 2, 2), strided_five=(5, 2, 2, 1, 3, 3),
        dilated_two=(2, 3, 2, 2, 2, 2), strided_three=(3, 2, 1, 1, 2, 2),
        column_kernel=((3, 1), 1, (1, 0), 1, 1, 8),
        row_kernel=((1, 3), 1, (0, 1), 1, 1, 8),
        one_pixel=(3, 1, 1, 1, 1, 1))

    def __init__(self):
        super().__init__()
        for name, (kernel, stride, pad, dilation, _, _) in self.SPECS.items():
            self.add_module(name, torch.nn.Conv2d(
                1, 1, kernel, stride, pad, dilation, bias=False))

    def forward(self, inputs, mode='tensor'):
        return [getattr(self, name)(inputs[..., :h, :w])
                for name, (*_, h, w) in self.SPECS.items()]


def test_convolutions_not_seen_are_those_with_a_weight_on_padding_alone():
    """Each axis, stride, padding and dilation decides which input rows a
    kernel tap reads; a convolution is named, once, when some weight of
    it reads only the zero padding. Worked out by hand (tap t of output o
    reads row o * stride - padding + t * dilation) and checked against
    the gradient on an input of ones: a weight that meets no pixel gets
    none."""
    from mmseg_dsnet.deploy.parity import convolutions_not_seen
    model = _Convs()
    inputs = torch.ones(1, 1, 8, 8)
    expected = ['wide_one_row', 'tall_one_column', 'strided_three',
                'column_kernel', 'one_pixel']
    assert convolutions_not_seen(model, inputs) == expected
    outputs = model(inputs)
    torch.stack([out.sum() for out in outputs]).sum().backward()
    assert [name for name in _Convs.SPECS
            if (getattr(model, name).weight.grad == 0).any()] == expected


class _PaddedConvs(torch.nn.Module):
    """Convolutions padded in the other ways Conv2d allows, each run on a
    2x2 input."""

    def __init__(self):
        super().__init__()
        self.same = torch.nn.Conv2d(1, 1, 5, padding='same', bias=False)
        self.same_dilated = torch.nn.Conv2d(1, 1, 3, padding='same',
                                            dilation=2, bias=False)
        self.valid = torch.nn.Conv2d(1, 1, 2, padding='valid', bias=False)
        self.reflect = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False,
                                       padding_mode='reflect')
        self.replicate = torch.nn.Conv2d(1, 1, 5, padding=2, bias=False,
                                         padding_mode='replicate')

    def forward(self, inputs, mode='tensor'):
        return [conv(inputs) for conv in self.children()]


def test_convolutions_not_seen_by_string_and_copying_padding():
    """``padding='same'`` on a 2x2 input leaves taps on the zero padding
    alone (they were never checked: only numeric padding was); 'valid'
    reads pixels only; reflect or replicate padding copies pixels, so
    every tap reads one (they were named, and a deployable model refused).
    Checked against the gradient on an input of ones."""
    from mmseg_dsnet.deploy.parity import convolutions_not_seen
    model = _PaddedConvs()
    inputs = torch.ones(1, 1, 2, 2)
    expected = ['same', 'same_dilated']
    assert convolutions_not_seen(model, inputs) == expected
    torch.stack([out.sum() for out in model(inputs)]).sum().backward()
    assert [name for name, conv in model.named_children()
            if (conv.weight.grad == 0).any()] == expected


def write_deploy_pair(trained_checkpoint, out_dir, config=CONFIG):
    """The deploy checkpoint and config of ``trained_checkpoint`` (of
    ``config``) as reparameterize.py writes them (``deploy.pth``,
    ``deploy.py`` in ``out_dir``), without its parity check (seconds)."""
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from mmseg_dsnet.deploy.deploy_checkpoint import (deploy_checkpoint_meta,
                                                      deploy_config)
    from mmseg_dsnet.models.utils import reparameterize_model
    cfg = Config.fromfile(config)
    trained = torch.load(trained_checkpoint)
    model = MODELS.build(cfg.model)
    model.load_state_dict(trained['state_dict'])
    deployed = out_dir / 'deploy.pth'
    torch.save(dict(state_dict=reparameterize_model(model).state_dict(),
                    meta=deploy_checkpoint_meta(trained,
                                                str(trained_checkpoint))),
               deployed)
    config = out_dir / 'deploy.py'
    deploy_config(cfg).dump(str(config))
    return deployed, config


def test_a_checkpoint_of_the_other_form_is_named_as_such(
        trained_checkpoint, tmp_path, capsys):
    """A deploy checkpoint given with the training config (to
    ``reparameterize.py``, ``export_onnx.py``, ``tools/test.py`` ...), or a
    trained one under the deploy config, was refused with a question, ``Is
    it a checkpoint of another model, or of the deploy (re-parameterised)
    form?``, and ``tools/test.py``'s advice to load it partially. The
    message says which form each is and what to give instead."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from test_user_error_exits import run_cli

    from mmseg_dsnet.engine.checkpoint_match import (CheckpointMismatchError,
                                                     check_checkpoint_matches)
    from mmseg_dsnet.models.utils import reparameterize_model
    cfg = Config.fromfile(CONFIG)
    trained = torch.load(trained_checkpoint)
    deploy_model = reparameterize_model(MODELS.build(cfg.model))
    deployed, deploy_config_file = write_deploy_pair(trained_checkpoint,
                                                     tmp_path)
    tool = load_tool('deployment/reparameterize.py')
    again = tmp_path / 'again.pth'
    code, err = run_cli(tool.main, [CONFIG, deployed, again, '--shape', 64,
                                    64], capsys)
    assert code == 2 and not again.exists()
    assert err.endswith(
        '. It is a deploy checkpoint (re-parameterised by '
        f'tools/deployment/reparameterize.py from {trained_checkpoint}), '
        f'which loads only into its deploy config ({deploy_config_file}): '
        'give it with that config, or give the trained checkpoint '
        f'{trained_checkpoint} with this config.\n')
    assert 'Is it a checkpoint of another model' not in err
    # Its config moved away: the name it was written under, as missing.
    deploy_config_file.rename(tmp_path / 'elsewhere.py')
    with pytest.raises(CheckpointMismatchError, match=re.escape(
            f'deploy config (written beside it as {deploy_config_file}, '
            'not found there)')):
        check_checkpoint_matches(MODELS.build(cfg.model),
                                 torch.load(deployed), CONFIG, str(deployed))
    # A trained checkpoint under the deploy config.
    with pytest.raises(CheckpointMismatchError) as refused:
        check_checkpoint_matches(deploy_model, trained, 'deploy.py',
                                 str(trained_checkpoint),
                                 hint='Set load_from_strict=False.')
    assert str(refused.value).endswith(
        '. The config builds the deploy (re-parameterised) form '
        '(deploy=True), which loads only a deploy checkpoint written by '
        'tools/deployment/reparameterize.py with it: give that checkpoint, '
        'or give this one with the training config it was trained with.')


def test_init_model_names_a_checkpoint_of_the_other_form(
        trained_checkpoint, tmp_path):
    """mmseg's init_model (and so MMSegInferencer) reads the checkpoint's
    ``meta`` from its file, so the modules that refuse weights of the other
    form say which form they are, as the tools do, instead of asking."""
    from mmseg.apis import init_model

    from mmseg_dsnet.engine.checkpoint_match import CheckpointMismatchError
    deployed, deploy_config_file = write_deploy_pair(trained_checkpoint,
                                                     tmp_path)
    with pytest.raises(CheckpointMismatchError) as refused:
        init_model(CONFIG, str(deployed), device='cpu')
    assert str(refused.value).startswith(
        'The weights given for backbone (DSNet) do not match it: ')
    assert str(refused.value).endswith(
        '. It is a deploy checkpoint (re-parameterised by '
        f'tools/deployment/reparameterize.py from {trained_checkpoint}), '
        f'which loads only into its deploy config ({deploy_config_file}): '
        'give it with that config, or give the trained checkpoint '
        f'{trained_checkpoint} with this config.')
    with pytest.raises(CheckpointMismatchError) as refused:
        init_model(str(deploy_config_file), str(trained_checkpoint),
                   device='cpu')
    assert str(refused.value).endswith(
        '. The config builds the deploy (re-parameterised) form '
        '(deploy=True), which loads only a deploy checkpoint written by '
        'tools/deployment/reparameterize.py with it: give that checkpoint, '
        'or give this one with the training config it was trained with.')
    assert '?' not in str(refused.value)
    # Each form loads into its own config.
    init_model(str(deploy_config_file), str(deployed), device='cpu')


def test_init_model_names_a_ddp_checkpoint_of_the_other_form(
        trained_checkpoint, tmp_path):
    """A checkpoint saved from a DistributedDataParallel-wrapped model
    (keys and torch's ``_metadata`` under ``module.``): mmengine's loader
    strips the prefix and loads it whole, but the checkpoint's ``meta``
    was handed to a module named ``module``, so a deploy checkpoint given
    to mmseg's init_model with the training config was met with the
    question ``Is it a checkpoint of another model, or of the deploy
    (re-parameterised) form?``. Its modules are now named as mmengine
    loads them and the message says which form it is."""
    from mmseg.apis import init_model

    from mmseg_dsnet.engine.checkpoint_match import CheckpointMismatchError

    class Wrapped(torch.nn.Module):
        """DDP's layout: the model as ``module``."""

        def __init__(self, module):
            super().__init__()
            self.module = module

    def saved_from_ddp(path, config):
        model = init_model(str(config), str(path), device='cpu')
        checkpoint = torch.load(path)
        checkpoint['state_dict'] = Wrapped(model).state_dict()
        ddp = tmp_path / f'ddp_{path.name}'
        torch.save(checkpoint, ddp)
        return ddp, model

    deployed, deploy_config_file = write_deploy_pair(trained_checkpoint,
                                                     tmp_path)
    ddp_deployed, deploy_model = saved_from_ddp(deployed, deploy_config_file)
    assert next(iter(torch.load(ddp_deployed)['state_dict'])).startswith(
        'module.backbone.')
    with pytest.raises(CheckpointMismatchError) as refused:
        init_model(CONFIG, str(ddp_deployed), device='cpu')
    assert str(refused.value).endswith(
        '. It is a deploy checkpoint (re-parameterised by '
        f'tools/deployment/reparameterize.py from {trained_checkpoint}), '
        'which loads only into its deploy config (written beside it as '
        f'{tmp_path / "ddp_deploy.py"}, not found there): give it with '
        'that config, or give the trained checkpoint '
        f'{trained_checkpoint} with this config.')
    # With its own config it loads whole, the prefix stripped.
    loaded = init_model(str(deploy_config_file), str(ddp_deployed),
                        device='cpu').state_dict()
    assert all(torch.equal(loaded[k], v)
               for k, v in deploy_model.state_dict().items())
