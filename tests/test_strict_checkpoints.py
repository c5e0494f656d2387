"""Strict checkpoint loading and files that are no checkpoint.

A checkpoint of another model (or variant) must stop every tool with one
``ERROR:`` line naming the config, the checkpoint and the first few keys,
exit status 2, and nothing written; a partial checkpoint loads only when
asked for. A Git LFS pointer, an HTML page, a text file or binary data of
another format given as a checkpoint is named as such. Missing files and
config typos are one line too. The cases are listed in ``FAULTS`` of
test_fault_injection.py and in docs/reliability.md.
"""
import re
import uuid

import pytest
import torch
from conftest import REPO, load_tool, run_cli, write_tiny_config

NOT_CHECKPOINTS = {
    'lfs': ('version https://git-lfs.github.com/spec/v1\n'
            'oid sha256:' + '4d7a2146' * 8 + '\nsize 1234567\n',
            'is a Git LFS pointer, not the weights: run `git lfs pull`'),
    'html': ('<!DOCTYPE html>\n<html><head><title>Sign in</title></head>'
             '<body>Please sign in to download.</body></html>\n',
             'is an HTML page, not a PyTorch checkpoint'),
    'text': ('These are not the weights you are looking for.\n',
             'is a text file, not a PyTorch checkpoint'),
    # Binary data of another format (no zip or pickle signature).
    'binary': (bytes(range(0x90, 0xff)) * 30,
               'is not a PyTorch checkpoint (neither a zip archive nor a '
               'pickle; it starts with the bytes 90 91 92 93 94 95 96 97)'),
}


@pytest.fixture(scope='module')
def tools():
    return dict(
        train=load_tool('train.py'), test=load_tool('test.py'),
        reparameterize=load_tool('deployment/reparameterize.py'),
        benchmark=load_tool('analysis_tools/benchmark.py'))


def random_checkpoint(config, path, keep=None):
    """Random weights of ``config``'s model saved as mmengine does;
    ``keep(key)`` selects the keys to save."""
    import mmseg_dsnet  # noqa: F401
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    state = {k: v for k, v in model.state_dict().items()
             if keep is None or keep(k)}
    save_checkpoint(dict(state_dict=state, meta=dict(epoch=1, iter=1)),
                    str(path))
    return path


@pytest.fixture(scope='module')
def setup(tiny_isic, tmp_path_factory):
    """A tiny DSNet config and checkpoints: DSNet (matching), EGE-UNet
    (another model), DSNet backbone only (partial)."""
    tmp = tmp_path_factory.mktemp('strict')
    cfg = write_tiny_config(tmp / 'tiny.py', tiny_isic, epochs=1)
    return dict(
        tmp=tmp, cfg=cfg, root=tiny_isic,
        dsnet=random_checkpoint(cfg, tmp / 'dsnet.pth'),
        egeunet=random_checkpoint(
            REPO / 'configs/egeunet/egeunet_isic2018.py', tmp / 'ege.pth'),
        backbone=random_checkpoint(cfg, tmp / 'backbone.pth',
                                   lambda k: k.startswith('backbone.')))


def eval_argv(cfg, ckpt, work_dir, *options):
    return [cfg, ckpt, '--work-dir', work_dir, '--no-synthetic-fallback',
            '--cfg-options', f'experiment_name=strict_{uuid.uuid4().hex[:8]}',
            *options]


def train_argv(cfg, work_dir, *options, extra=()):
    return [cfg, '--work-dir', work_dir, '--no-synthetic-fallback', *extra,
            '--cfg-options', f'experiment_name=strict_{uuid.uuid4().hex[:8]}',
            *options]


def assert_one_short_error(err, *parts):
    lines = [line for line in err.splitlines() if line.startswith('ERROR: ')]
    assert len(lines) == 1, err
    for part in parts:
        assert part in lines[0], err
    assert 'Traceback' not in err
    return lines[0]


def test_test_tool_refuses_a_checkpoint_of_another_model(
        setup, tools, tmp_path, capsys):
    cfg, work_dir = setup['cfg'], tmp_path / 'test'
    code, err = run_cli(tools['test'].main, eval_argv(
        cfg, setup['egeunet'], work_dir), capsys)
    assert code == 2
    line = assert_one_short_error(
        err, f'ERROR: Checkpoint {setup["egeunet"]} does not match the model '
        f'of {cfg}', 'missing keys (backbone.', 'unexpected keys (backbone.',
        'load_from_strict=False')
    # The first few keys of each kind, not hundreds, and how many of
    # each there are (a missing num_batches_tracked is allowed).
    from mmseg_dsnet.compat import safe_torch_load
    from mmseg_dsnet.engine.checkpoint_match import SHOWN_KEYS
    ours, theirs = (set(safe_torch_load(str(setup[name]))['state_dict'])
                    for name in ('dsnet', 'egeunet'))
    missing = {k for k in ours - theirs
               if not k.endswith('.num_batches_tracked')}
    for count, what in ((len(missing), 'missing keys'),
                        (len(theirs - ours), 'unexpected keys')):
        assert count > SHOWN_KEYS
        assert f'{count} {what} (' in line, line
        assert f'... ({count - SHOWN_KEYS} more)' in line, line
    assert len(line) < 2000, len(line)
    assert not (work_dir / 'test_metrics.json').exists()
    # The matching checkpoint is evaluated (the check is not just strict).
    code, err = run_cli(tools['test'].main, eval_argv(
        cfg, setup['dsnet'], work_dir), capsys)
    assert code == 0, err
    assert (work_dir / 'test_metrics.json').is_file()


def test_train_refuses_a_wrong_load_from_or_resume_checkpoint(
        setup, tools, tmp_path, capsys):
    cfg = setup['cfg']
    work_dir = tmp_path / 'load_from'
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, f'load_from={setup["egeunet"]}'), capsys)
    assert code == 2
    assert_one_short_error(
        err, f'Checkpoint {setup["egeunet"]} does not match the model of '
        f'{cfg}')
    # Refused before the runner made its log folder and config dump.
    assert not work_dir.exists()
    # --resume from a work dir whose last checkpoint is another model's.
    work_dir = tmp_path / 'resume'
    work_dir.mkdir()
    wrong = work_dir / 'epoch_1.pth'
    wrong.write_bytes(setup['egeunet'].read_bytes())
    (work_dir / 'last_checkpoint').write_text(str(wrong))
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, extra=['--resume']), capsys)
    assert code == 2
    assert_one_short_error(err, f'Checkpoint {wrong} does not match')
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['epoch_1.pth']


def test_train_refuses_load_from_weights_of_another_network(
        setup, tools, tmp_path, capsys):
    """Weights that fit the keys but were trained with other dilations (a
    setting holding no weights) are refused before the run makes anything;
    a partial load on purpose still starts from them."""
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint
    cfg = setup['cfg']
    trained = Config.fromfile(str(cfg))
    trained.model.backbone.dilations = [1, 2, 2, 2, 1]
    checkpoint = tmp_path / 'other_network.pth'
    loaded = torch.load(setup['dsnet'], map_location='cpu')
    save_checkpoint(dict(state_dict=loaded['state_dict'],
                         meta=dict(cfg=trained.pretty_text)),
                    str(checkpoint))
    work_dir = tmp_path / 'work'
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, f'load_from={checkpoint}'), capsys)
    assert code == 2
    assert_one_short_error(
        err, f'checkpoint {checkpoint} was trained in another network than '
        f'config {cfg} builds: model.backbone.dilations[1] is 2',
        '--partial-checkpoint')
    assert not work_dir.exists()
    # On purpose: the preflight lets it through (the run itself is
    # test_partial_checkpoint_loads_only_when_asked's).
    from mmseg_dsnet.engine.preflight import check_load_from
    options = Config.fromfile(str(cfg))
    options.load_from, options.load_from_strict = str(checkpoint), False
    check_load_from(options)


def test_check_load_from_is_strict_unless_the_config_says_otherwise(
        setup, tmp_path):
    """``check_load_from`` on a config that does not set
    ``load_from_strict`` (a Python caller's, before a Runner whose hook
    loads strictly) refuses a partial checkpoint and weights trained in
    another network; ``load_from_strict=False`` lets both through (the
    partial-load rule only)."""
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint

    from mmseg_dsnet.engine.checkpoint_match import CheckpointMismatchError
    from mmseg_dsnet.engine.preflight import check_load_from
    from mmseg_dsnet.utils.errors import UserError
    cfg = Config.fromfile(str(setup['cfg']))
    # The project's configs set it; mmseg's own (and a user's) do not.
    cfg.pop('load_from_strict')
    cfg.load_from = str(setup['backbone'])
    with pytest.raises(CheckpointMismatchError, match='missing keys'):
        check_load_from(cfg)
    trained = Config.fromfile(str(setup['cfg']))
    trained.model.backbone.dilations = [1, 2, 2, 2, 1]
    other = tmp_path / 'other_network.pth'
    save_checkpoint(dict(state_dict=torch.load(
        setup['dsnet'], map_location='cpu')['state_dict'],
        meta=dict(cfg=trained.pretty_text)), str(other))
    cfg.load_from = str(other)
    with pytest.raises(UserError, match='trained in another network'):
        check_load_from(cfg)
    cfg.load_from, cfg.load_from_strict = str(setup['backbone']), False
    check_load_from(cfg)
    # A partial load on purpose keeps the partial-load rule only.
    cfg.load_from = str(other)
    check_load_from(cfg)


def test_partial_checkpoint_loads_only_when_asked(setup, tools, tmp_path,
                                                  capsys):
    from mmseg_dsnet.apis import build_segmentor
    from mmseg_dsnet.engine.checkpoint_match import (CheckpointMismatchError,
                                                     load_checkpoint_strictly)
    cfg, backbone = setup['cfg'], setup['backbone']
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, tmp_path / 'strict', f'load_from={backbone}'), capsys)
    assert code == 2
    assert_one_short_error(err, 'missing keys (decode_head.',
                           '--partial-checkpoint')
    assert 'unexpected keys' not in err
    # On purpose: the flag, or the config setting.
    work_dir = tmp_path / 'partial'
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, f'load_from={backbone}',
        extra=['--partial-checkpoint']), capsys)
    assert code == 0, err
    assert (work_dir / 'epoch_1.pth').is_file()
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, tmp_path / 'setting', f'load_from={backbone}',
        'load_from_strict=False'), capsys)
    assert code == 0, err
    # The backbone really is loaded; a partial load that matches nothing
    # is still refused.
    model = build_segmentor(str(cfg), None, reparameterize=False)
    load_checkpoint_strictly(model, str(backbone), strict=False)
    saved = torch.load(backbone, weights_only=True)['state_dict']
    for key, value in model.state_dict().items():
        if key.startswith('backbone.'):
            assert torch.equal(value, saved[key]), key
    unknown = tmp_path / 'unknown.pth'
    torch.save(dict(state_dict={'head.fc.weight': torch.zeros(2, 2),
                                'head.fc.bias': torch.zeros(2)}), unknown)
    with pytest.raises(CheckpointMismatchError, match='none of which'):
        load_checkpoint_strictly(model, str(unknown), strict=False)
    # Inference never loads a partial model.
    with pytest.raises(CheckpointMismatchError, match='missing keys'):
        build_segmentor(str(cfg), str(backbone))


def narrow_dsnet_checkpoint(config, tmp_path):
    """Random weights of ``config``'s DSNet at other widths: every key of
    the model, none of its shape."""
    narrow = tmp_path / 'narrow.py'
    narrow.write_text(
        f"_base_ = '{config}'\nwidths = [8, 40, 48, 64, 80]\n"
        'model = dict(backbone=dict(widths=widths), '
        'decode_head=dict(in_channels=widths, channels=8))\n')
    return random_checkpoint(narrow, tmp_path / 'narrow.pth')


def test_partial_checkpoint_of_other_shapes_is_refused(setup, tools,
                                                        tmp_path, capsys):
    # Before, --partial-checkpoint with a DSNet of other widths (every
    # key shared, every shape different) loaded nothing behind mmengine's
    # log warnings and trained from random weights, exit 0.
    cfg = setup['cfg']
    narrow = narrow_dsnet_checkpoint(cfg, tmp_path)
    work_dir = tmp_path / 'narrow'
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, f'load_from={narrow}',
        extra=['--partial-checkpoint']), capsys)
    assert code == 2
    assert_one_short_error(
        err, f'ERROR: Checkpoint {narrow} does not match the model of {cfg}',
        'keys of another shape (backbone.', 'initial weights')
    assert not list(work_dir.rglob('*.pth'))
    # A partial load that fits says how much of the model it loaded.
    from mmseg_dsnet.apis import build_segmentor
    from mmseg_dsnet.engine.checkpoint_match import check_checkpoint_matches
    model = build_segmentor(str(cfg), None, reparameterize=False)
    saved = torch.load(setup['backbone'], weights_only=True)
    loaded, total = check_checkpoint_matches(model, saved, strict=False)
    backbone = [k for k in model.state_dict() if k.startswith('backbone.')
                and not k.endswith('num_batches_tracked')]
    assert loaded == len(backbone) < total
    work_dir = tmp_path / 'partial'
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, f'load_from={setup["backbone"]}',
        extra=['--partial-checkpoint']), capsys)
    assert code == 0, err
    log = next(work_dir.rglob('*.log')).read_text()
    assert (f'Partial checkpoint {setup["backbone"]}: {loaded} of the '
            f"model's {total} tensors loaded from it") in log


def pretrained(checkpoint, part='backbone', prefix=None):
    """``--cfg-options`` giving ``model.<part>`` a Pretrained init."""
    options = [f'model.{part}.init_cfg.type=Pretrained',
               f'model.{part}.init_cfg.checkpoint={checkpoint}']
    return options + ([f'model.{part}.init_cfg.prefix={prefix}']
                      if prefix else [])


def test_pretrained_init_that_does_not_fit_is_refused(setup, tools, tmp_path,
                                                      capsys):
    # mmengine's PretrainedInit loads with strict=False. Before: a stock
    # UNet backbone given DSNet weights loaded nothing behind log warnings
    # and trained from random weights, exit 0; a missing file, a prefix
    # that no key has, and EGE-UNet weights for DSNet's backbone were
    # tracebacks (or an error not naming init_cfg) after the run's folder
    # was made. The fast trainer (which calls init_weights too) likewise.
    cfg = setup['cfg']
    fast = load_tool('fast_train.py')
    missing = tmp_path / 'missing.pth'
    cases = [
        (cfg, pretrained(setup['egeunet']),
         f'ERROR: Checkpoint {setup["egeunet"]} (model.backbone.init_cfg '
         f'Pretrained) does not match model.backbone (DSNet) of {cfg}: '),
        (cfg, pretrained(missing),
         f'ERROR: model.backbone.init_cfg: Pretrained checkpoint {missing} '
         'does not exist'),
        (cfg, pretrained(setup['dsnet'], prefix='encoder'),
         f'ERROR: model.backbone.init_cfg: Pretrained checkpoint '
         f"{setup['dsnet']} holds no key starting with prefix 'encoder.' "
         '(its keys start with backbone., decode_head.)'),
        (cfg, pretrained(narrow_dsnet_checkpoint(cfg, tmp_path),
                         prefix='backbone'), 'keys of another shape'),
    ]
    for config, options, message in cases:
        for tool, argv in (
                (tools['train'], train_argv(config, tmp_path / 'w',
                                            *options)),
                (fast, [config, '--work-dir', tmp_path / 'w', '--device',
                        'cpu', '--cfg-options', *options])):
            code, err = run_cli(tool.main, argv, capsys)
            assert code == 2, (options, err)
            assert_one_short_error(err, message)
            assert not (tmp_path / 'w').exists()
    # A stock module (no check of its own): weights of another network.
    from mmseg.registry import MODELS
    from mmseg_dsnet.engine.checkpoint_match import (CheckpointMismatchError,
                                                     check_pretrained_inits)
    from mmseg_dsnet.engine.preflight import build_scope
    other = tmp_path / 'other.pth'
    with build_scope():
        model = MODELS.build(dict(
            type='ResNetV1c', depth=18, init_cfg=dict(
                type='Pretrained', checkpoint=str(setup['dsnet']),
                prefix='backbone')))
        torch.save(dict(state_dict=MODELS.build(dict(
            type='ResNetV1c', depth=18, base_channels=16)).state_dict()),
            other)
    with pytest.raises(CheckpointMismatchError,
                       match='none of which is in the model'):
        check_pretrained_inits(model)
    model.init_cfg['checkpoint'], model.init_cfg['prefix'] = str(other), None
    with pytest.raises(CheckpointMismatchError,
                       match='keys of another shape'):
        check_pretrained_inits(model)
    # Part of it (the stem): loaded, and said how much.
    stem = {k: v for k, v in model.state_dict().items()
            if k.startswith('stem.')}
    torch.save(dict(state_dict=stem), other)
    notes = check_pretrained_inits(model)
    total = len([k for k in model.state_dict()
                 if not k.endswith('num_batches_tracked')])
    loaded = len([k for k in stem if not k.endswith('num_batches_tracked')])
    assert notes == [
        f'model.init_cfg: {loaded} of the {total} tensors of model '
        f'(ResNetV1c) are loaded from Pretrained checkpoint {other}; the '
        f'other {total - loaded} keep their initial weights.']
    # The backbone of a whole DSNet checkpoint (prefix) trains, exit 0.
    work_dir = tmp_path / 'ok'
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, *pretrained(setup['dsnet'], prefix='backbone.')),
        capsys)
    assert code == 0, err
    assert (work_dir / 'epoch_1.pth').is_file()


@pytest.mark.parametrize('config', ['dsnet_isic2017_vanilla-conv.py',
                                    'dsnet_isic2017_no-gate.py'])
def test_reparameterize_refuses_a_checkpoint_of_another_variant(
        setup, tools, tmp_path, capsys, config):
    full = random_checkpoint(REPO / 'configs/dsnet/dsnet_isic2017.py',
                             tmp_path / 'dsnet_full.pth')
    out_dir = tmp_path / 'deploy'
    config = REPO / 'configs/dsnet' / config
    code, err = run_cli(tools['reparameterize'].main,
                        [config, full, out_dir / 'deploy.pth'], capsys)
    assert code == 2
    assert_one_short_error(
        err, f'Checkpoint {full} does not match the model of {config}',
        'unexpected keys (', 'Give the training config')
    assert not out_dir.exists() or not list(out_dir.iterdir())
    # The same checkpoint with its own config is re-parameterised.
    code, err = run_cli(tools['reparameterize'].main, [
        REPO / 'configs/dsnet/dsnet_isic2017.py', full,
        out_dir / 'deploy.pth', '--shape', '64', '64'], capsys)
    assert code == 0, err
    assert (out_dir / 'deploy.pth').is_file()


@pytest.mark.parametrize('kind', sorted(NOT_CHECKPOINTS))
def test_non_checkpoint_file_is_named(setup, tools, tmp_path, capsys, kind):
    from mmseg_dsnet.apis import build_segmentor
    from mmseg_dsnet.compat import NotACheckpointError
    content, says = NOT_CHECKPOINTS[kind]
    fake = tmp_path / 'weights.pth'
    if isinstance(content, bytes):
        fake.write_bytes(content)
    else:
        fake.write_text(content)
    cfg = setup['cfg']
    expected = f'ERROR: Checkpoint {fake} {says}'
    code, err = run_cli(tools['test'].main, eval_argv(cfg, fake, tmp_path / 't'),
                        capsys)
    assert code == 2
    assert_one_short_error(err, expected)
    assert 'arbitrary code' not in err
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, tmp_path / 'w', f'load_from={fake}'), capsys)
    assert code == 2
    assert_one_short_error(err, expected)
    code, err = run_cli(tools['reparameterize'].main,
                        [cfg, fake, tmp_path / 'd' / 'deploy.pth'], capsys)
    assert code == 2
    assert_one_short_error(err, expected)
    assert not (tmp_path / 'd').exists()
    with pytest.raises(NotACheckpointError,
                       match=re.escape(says.split(':')[0])):
        build_segmentor(str(cfg), str(fake))
    infer = load_tool('infer.py')
    image = sorted((setup['root'] / 'images').glob('*.jpg'))[0]
    capsys.readouterr()
    code = infer.main([str(cfg), str(fake), str(image), '--out-dir',
                       str(tmp_path / 'infer'), '--no-progress'])
    err = capsys.readouterr().err
    assert code == 2 and f'ERROR: Checkpoint {fake} {says}' in err, err
    assert fake.read_bytes() == (content if isinstance(content, bytes) else
                                 content.encode())  # left as it was



@pytest.mark.parametrize('cut', [2, 10000])
def test_a_cut_checkpoint_is_one_error_line_in_every_tool(
        setup, tools, tmp_path, capsys, cut):
    """A checkpoint cut short: inside the zip signature (2 bytes, once
    called a text file), inside its zip directory (10 KB: a bare
    ``OSError: [Errno 22] Invalid argument`` naming no file, a traceback in
    test.py and export_onnx.py). Every tool stops with one line naming the
    file, exit 2, and writes nothing."""
    data = setup['dsnet'].read_bytes()
    cut_file = tmp_path / 'cut.pth'
    cut_file.write_bytes(data[:cut])
    expected = f'ERROR: Checkpoint {cut_file} is empty, truncated or corrupt'
    cfg = setup['cfg']
    code, err = run_cli(tools['test'].main,
                        eval_argv(cfg, cut_file, tmp_path / 'test'), capsys)
    assert code == 2, err
    assert_one_short_error(err, expected)
    image = sorted((setup['root'] / 'images').glob('*.jpg'))[0]
    code, err = run_cli(load_tool('infer.py').main, [
        cfg, cut_file, image, '--out-dir', tmp_path / 'infer',
        '--no-progress'], capsys)
    assert code == 2, err
    assert_one_short_error(err, expected)
    code, err = run_cli(load_tool('deployment/export_onnx.py').main, [
        cfg, cut_file, tmp_path / 'onnx' / 'model.onnx'], capsys)
    assert code == 2, err
    assert_one_short_error(err, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cut.pth']

def test_missing_checkpoint_file_is_one_line(setup, tools, tmp_path, capsys):
    cfg, missing = setup['cfg'], tmp_path / 'nope.pth'
    work_dir = tmp_path / 'test'
    code, err = run_cli(tools['test'].main, eval_argv(cfg, missing, work_dir),
                        capsys)
    assert code == 2
    assert_one_short_error(err, f'ERROR: checkpoint {missing} does not exist')
    assert not work_dir.exists()  # before anything else ran
    work_dir = tmp_path / 'train'
    code, err = run_cli(tools['train'].main, train_argv(
        cfg, work_dir, f'load_from={missing}'), capsys)
    assert code == 2
    assert_one_short_error(err, f'ERROR: checkpoint {missing} does not exist')
    assert not work_dir.exists()


def test_config_typo_is_one_line(setup, tools, tmp_path, capsys):
    typo = setup['cfg'].parent / 'tiny_typo.py'
    for tool, argv in (
            ('train', [typo, '--work-dir', tmp_path / 'w']),
            ('test', [typo, setup['dsnet'], '--work-dir', tmp_path / 'w']),
            ('benchmark', [typo, setup['dsnet']])):
        code, err = run_cli(tools[tool].main, argv, capsys)
        assert code == 2, tool
        assert_one_short_error(err,
                               f'ERROR: config file {typo} does not exist')
    assert not (tmp_path / 'w').exists()


def test_a_checkpoint_with_non_finite_weights_is_refused(
        setup, tools, tmp_path, capsys):
    """A checkpoint of a diverged run (one NaN weight) fits the model's keys
    and shapes, so it loaded: ``infer.py`` wrote empty masks (NaN logits
    threshold to background), ``reparameterize.py`` passed its parity check
    (NaN compares False with the tolerance) and wrote the deploy files,
    ``publish_model.py`` published the weights, all with exit 0."""
    from mmengine.runner import save_checkpoint
    state = torch.load(setup['dsnet'], weights_only=True)['state_dict']
    state['decode_head.conv_seg.weight'].view(-1)[0] = float('nan')
    nan = tmp_path / 'diverged.pth'
    save_checkpoint(dict(state_dict=state), str(nan))
    cfg, out = setup['cfg'], tmp_path / 'out'
    expected = (f'ERROR: Checkpoint {nan} holds NaN or infinite values in 1 '
                'tensor (decode_head.conv_seg.weight (1 of 16 values)): it '
                'is the checkpoint of a diverged training or a damaged file')
    for tool, argv in (
            (tools['reparameterize'], [cfg, nan, out / 'deploy.pth',
                                       '--shape', '64', '64']),
            (load_tool('misc/publish_model.py'), [cfg, nan,
                                                  out / 'weights.pth']),
            (tools['test'], eval_argv(cfg, nan, out / 'test'))):
        code, err = run_cli(tool.main, argv, capsys)
        assert code == 2, err
        assert_one_short_error(err, expected)
    image = sorted((setup['root'] / 'images').glob('*.jpg'))[0]
    capsys.readouterr()
    code = load_tool('infer.py').main([
        str(cfg), str(nan), str(image), '--out-dir', str(out / 'infer'),
        '--no-progress'])
    err = capsys.readouterr().err
    assert code == 2 and expected in err, err
    # Nothing that looks like a result (test.py's runner keeps its log).
    assert not (out / 'test' / 'test_metrics.json').exists()
    assert not [p.name for p in out.rglob('*') if p.is_file() and
                'test' not in p.relative_to(out).parts]


@pytest.mark.parametrize('other', ['egeunet/egeunet_isic2017.py',
                                   'dsnet/dsnet-v1_isic2017.py',
                                   'dsnet/dsnet_isic2017_vanilla-conv.py'])
def test_mmseg_apis_refuse_a_checkpoint_of_another_model(tmp_path, other):
    """mmseg's init_model and MMSegInferencer load with mmengine's
    ``strict=False``: a checkpoint of another model (or DSNet variant)
    given with the DSNet config left the layers it did not fit randomly
    initialised behind a warning, and inference_model returned masks
    without an error. The model's own modules now refuse it."""
    import numpy as np
    from mmengine.runner.checkpoint import load_checkpoint
    from mmseg.apis import MMSegInferencer, init_model

    from mmseg_dsnet.engine.checkpoint_match import CheckpointMismatchError
    config = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    ckpt = str(random_checkpoint(REPO / 'configs' / other,
                                 tmp_path / 'other.pth'))
    with pytest.raises(CheckpointMismatchError,
                       match=r'The weights given for backbone \(DSNet\) do '
                       r'not match it: \d+ missing keys'):
        init_model(config, ckpt, device='cpu')
    with pytest.raises(CheckpointMismatchError, match='another model'):
        MMSegInferencer(model=config, weights=ckpt, device='cpu')
    # The checkpoint with its own config loads and runs.
    model = init_model(str(REPO / 'configs' / other), ckpt, device='cpu')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    load_checkpoint(model, ckpt, map_location='cpu')
    assert all(torch.equal(v, before[k])
               for k, v in model.state_dict().items())
    image = np.zeros((40, 50, 3), np.uint8)
    from mmseg.apis import inference_model
    assert inference_model(model, image).pred_sem_seg.shape == (40, 50)


def test_model_refuses_partial_weights_unless_marked(tmp_path):
    """mmengine's load_checkpoint of a backbone-only checkpoint left the
    head random; a partial load on purpose is marked by the tools that
    check it (mark_partial_load) and loads."""
    from mmengine.runner.checkpoint import (_load_checkpoint,
                                            _load_checkpoint_to_model,
                                            load_checkpoint)

    from mmseg_dsnet.apis import build_segmentor
    from mmseg_dsnet.engine.checkpoint_match import (CheckpointMismatchError,
                                                     mark_partial_load)
    cfg = REPO / 'configs/dsnet/dsnet_isic2017.py'
    backbone = random_checkpoint(cfg, tmp_path / 'backbone.pth',
                                 keep=lambda k: k.startswith('backbone.'))
    model = build_segmentor(str(cfg), None, reparameterize=False)
    with pytest.raises(CheckpointMismatchError,
                       match=r'decode_head \(DSNetHead\) do not match it'):
        load_checkpoint(model, str(backbone), map_location='cpu')
    with pytest.raises(CheckpointMismatchError, match='missing keys'):
        model.load_state_dict(torch.load(backbone)['state_dict'],
                              strict=False)
    checkpoint = _load_checkpoint(str(backbone), map_location='cpu')
    mark_partial_load(checkpoint, model)
    _load_checkpoint_to_model(model, checkpoint)
    saved = torch.load(backbone, weights_only=True)['state_dict']
    assert all(torch.equal(model.state_dict()[k], v)
               for k, v in saved.items())


def test_mmseg_init_model_refuses_nan_weights(tmp_path):
    """A diverged training's checkpoint (NaN weights) loaded with mmseg's
    init_model gave NaN logits, read as background everywhere: empty
    masks, no error."""
    from mmseg.apis import init_model

    from mmseg_dsnet.engine.checkpoint_match import NonFiniteCheckpointError
    config = REPO / 'configs/dsnet/dsnet_isic2017.py'
    path = random_checkpoint(config, tmp_path / 'nan.pth')
    checkpoint = torch.load(path, weights_only=False)
    key = next(k for k in checkpoint['state_dict']
               if k.startswith('decode_head.') and k.endswith('weight'))
    checkpoint['state_dict'][key][...] = float('nan')
    torch.save(checkpoint, path)
    with pytest.raises(NonFiniteCheckpointError,
                       match=r'decode_head \(DSNetHead\) hold NaN or '
                       rf'infinite values in 1 tensor \({re.escape(key)} '):
        init_model(str(config), str(path), device='cpu')


def test_partial_and_wrapped_checks_on_a_small_module():
    """A partial load (strict=False) needs one key in the model, and only
    the keys it loads are checked for NaN (a NaN in a key the model lacks
    loads nothing wrong); wrappers are unwrapped however deep (DDP around
    a test-time augmentation model: here two wrappers)."""
    import torch
    from mmseg.models import SegTTAModel

    from mmseg_dsnet.engine.checkpoint_match import (
        CheckpointMismatchError, NonFiniteCheckpointError,
        check_checkpoint_matches, loaded_segmentor)
    model = torch.nn.Linear(2, 1)
    model.test_step = lambda data: data  # as a segmentor has
    nan = torch.full((3, ), float('nan'))
    check_checkpoint_matches(model, {'weight': torch.zeros(1, 2),
                                     'head.x': nan}, strict=False)
    with pytest.raises(NonFiniteCheckpointError, match=r'in 1 tensor '
                       r'\(weight \(2 of 2 values\)\)'):
        check_checkpoint_matches(
            model, {'weight': torch.full((1, 2), float('inf'))},
            strict=False)
    with pytest.raises(CheckpointMismatchError, match=(
            r'does not match the model: 1 key, which is not in the model '
            r'\(head\.x\)')):
        check_checkpoint_matches(model, {'head.x': nan}, strict=False)
    wrapped = SegTTAModel(module=SegTTAModel(module=model))
    assert loaded_segmentor(wrapped) is model


def test_pretrained_init_rules_on_small_modules(tmp_path):
    """check_pretrained_inits on plain modules (no training): an init
    given in a list is checked; a full load gives no note; the prefix
    matches the start of a key only, and mmengine's ``module.`` revision
    is not applied under a prefix (mmengine's prefix loading does not);
    a module that checks its own weights must match exactly; a partial
    load whose only shared key has another shape says so, and not that
    the key is not in the model."""
    import torch

    from mmseg_dsnet.engine.checkpoint_match import (CheckpointMismatchError,
                                                     check_checkpoint_matches,
                                                     check_pretrained_inits)
    from mmseg_dsnet.engine.preflight.config import MissingInputError
    from mmseg_dsnet.models.utils.strict_loading import StrictLoadingMixin

    def with_init(module, path, prefix=None, listed=False):
        init = dict(type='Pretrained', checkpoint=str(path), prefix=prefix)
        module.init_cfg = [dict(type='Kaiming'), init] if listed else init
        return module

    weights = {'weight': torch.ones(1, 2), 'bias': torch.zeros(1)}
    full = tmp_path / 'full.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v
                                for k, v in weights.items()}), full)
    assert check_pretrained_inits(
        with_init(torch.nn.Linear(2, 1), full, 'backbone')) == []
    with pytest.raises(MissingInputError, match='model.init_cfg: '
                       'Pretrained'):
        check_pretrained_inits(with_init(torch.nn.Linear(2, 1),
                                         tmp_path / 'none.pth', listed=True))
    for name, keys in (('inner', {'head.backbone.weight',
                                  'head.backbone.bias'}),
                       ('wrapped', {'module.backbone.weight',
                                    'module.backbone.bias'})):
        path = tmp_path / f'{name}.pth'
        torch.save(dict(state_dict={k: weights[k.rsplit('.', 1)[1]]
                                    for k in keys}), path)
        with pytest.raises(CheckpointMismatchError,
                           match="holds no key starting with prefix "
                           "'backbone.'"):
            check_pretrained_inits(
                with_init(torch.nn.Linear(2, 1), path, 'backbone'))
    half = tmp_path / 'half.pth'
    torch.save(dict(state_dict={'weight': torch.ones(1, 2)}), half)
    notes = check_pretrained_inits(with_init(torch.nn.Linear(2, 1), half))
    assert notes == [f'model.init_cfg: 1 of the 2 tensors of model (Linear) '
                     f'is loaded from Pretrained checkpoint {half}; the '
                     'other 1 keeps its initial weights.']

    class Strict(StrictLoadingMixin, torch.nn.Linear):
        pass

    with pytest.raises(CheckpointMismatchError, match=r'1 missing key '
                       r'\(bias\)'):
        check_pretrained_inits(with_init(Strict(2, 1), half))
    model = torch.nn.Linear(2, 1)
    model.test_step = lambda data: data
    with pytest.raises(CheckpointMismatchError) as err:
        check_checkpoint_matches(model, {'weight': torch.ones(2, 2)},
                                 strict=False)
    assert 'does not match the model: 1 key of another shape (weight: ' \
        'checkpoint (2, 2), model (1, 2)). Is it' in str(err.value)
    assert 'not in the model' not in str(err.value)


def test_a_pretrained_prefix_of_a_ddp_checkpoint_names_the_prefix(
        tmp_path):
    """A ``Pretrained`` init with ``prefix='backbone'`` of a checkpoint
    saved from a DDP-wrapped model (keys ``module.backbone...``, which
    mmengine's prefix loading does not strip) was refused naming only the
    first words of its keys; it says now that they carry DDP's prefix and
    which prefix loads them, and that prefix does."""
    from mmseg_dsnet.engine.checkpoint_match import (CheckpointMismatchError,
                                                     check_pretrained_inits)

    def with_init(prefix):
        module = torch.nn.Linear(2, 1)
        module.init_cfg = dict(type='Pretrained', checkpoint=str(path),
                               prefix=prefix)
        return module

    path = tmp_path / 'ddp.pth'
    torch.save(dict(state_dict={
        'module.backbone.weight': torch.ones(1, 2),
        'module.backbone.bias': torch.zeros(1)}), path)
    with pytest.raises(CheckpointMismatchError) as err:
        check_pretrained_inits(with_init('backbone'))
    assert str(err.value) == (
        f"model.init_cfg: Pretrained checkpoint {path} holds no key "
        "starting with prefix 'backbone.' (its keys start with module.): "
        "its keys carry DDP's 'module.' prefix (saved from a "
        'DistributedDataParallel-wrapped model), which mmengine\'s prefix '
        "loading does not strip; give prefix='module.backbone.'")
    assert check_pretrained_inits(with_init('module.backbone.')) == []


def test_mmseg_apis_refuse_weights_of_a_network_without_their_settings(
        tmp_path):
    """Weights trained in a network that differs only in a setting holding
    no weights (a design config's dilation or activation) fit the model's
    keys and shapes: mmseg's init_model and MMSegInferencer loaded them and
    gave other masks without an error (the released weights under the
    undilated design config: 1492 pixels of a 601x451 photo). The modules
    now compare the checkpoint's training config (``meta['cfg']``, or the
    released weights' metafile entry) with their own settings;
    training-only settings may differ."""
    import numpy as np
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint
    from mmseg.apis import MMSegInferencer, inference_model, init_model

    from conftest import write_model_variant

    from mmseg_dsnet.apis import build_segmentor
    from mmseg_dsnet.engine.checkpoint_match import TrainedNetworkError
    released = str(REPO / 'checkpoints/dsnet_isic2017_256px.pth')
    undilated = write_model_variant(
        tmp_path / 'undilated.py',
        'dict(backbone=dict(dilations=[1, 1, 2, 1, 1]))')
    with pytest.raises(
            TrainedNetworkError,
            match=r'backbone \(DSNet\) were trained in another network: '
            r'model\.backbone\.dilations\[3\] is 2 in their training config '
            r'\(configs/dsnet/dsnet_isic2017\.py, the Config of its '
            r'metafile entry dsnet_isic2017_256px, with the model config '
            r'the entry records\), 1 in this model'):
        init_model(undilated, released, device='cpu')
    # A checkpoint as mmengine's Runner saves it, with its training config.
    trained = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
    ckpt = str(tmp_path / 'epoch_1.pth')
    save_checkpoint(
        dict(state_dict=build_segmentor(trained, None,
                                        reparameterize=False).state_dict(),
             meta=dict(cfg=Config.fromfile(trained).pretty_text)), ckpt)
    with pytest.raises(TrainedNetworkError,
                       match=r"model\.backbone\.dilations\[3\] is 2 in their "
                       r"training config \(meta\['cfg'\]\), 1 in this model"):
        MMSegInferencer(model=undilated, weights=ckpt, device='cpu')
    # Its own config, one differing in training-only settings
    # (branch_drop) and one averaging the trained side classifiers into the
    # prediction at test time (fuse_side_outputs) load and segment.
    image = np.zeros((40, 50, 3), np.uint8)
    for config in (trained,
                   write_model_variant(
                       tmp_path / 'branch_drop.py',
                       'dict(backbone=dict(branch_drop=0.2), '
                       'decode_head=dict(branch_drop=0.2))'),
                   write_model_variant(
                       tmp_path / 'fused_sides.py',
                       'dict(decode_head=dict(fuse_side_outputs=True))')):
        for weights in (ckpt, released):
            model = init_model(config, weights, device='cpu')
            assert inference_model(model,
                                   image).pred_sem_seg.shape == (40, 50)
