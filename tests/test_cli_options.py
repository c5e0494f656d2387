"""mmseg_dsnet.utils.cli: the option checks the tools run before any work,
and their standard output's escaping."""
import io

import pytest

from mmseg_dsnet.utils import cli
from mmseg_dsnet.utils.errors import UserError


def test_shape_takes_one_number_for_a_square_or_two():
    assert cli.input_shape([5]) == (5, 5)
    assert cli.input_shape([3, 4]) == (3, 4)
    assert cli.input_shape([1, 1]) == (1, 1)
    for values in ([0], [4, 0], [1, 2, 3], []):
        with pytest.raises(UserError, match='--shape takes 1 or 2 positive'):
            cli.input_shape(values)


def test_a_shape_whose_input_batch_exceeds_the_memory_left_is_refused(
        monkeypatch):
    monkeypatch.setattr(cli, 'available_memory', lambda: 10**9)
    # 3 x 9000 x 9000 float32 values: 0.972 GB.
    assert cli.input_shape([9000]) == (9000, 9000)
    for values, images, value_bytes, needed in (
            ([100000], 1, 4, '120'), ([9000], 2, 4, '1.94'),
            ([9000, 9000], 1, 8, '1.94')):
        with pytest.raises(UserError) as err:
            cli.input_shape(values, images, value_bytes)
        assert str(err.value) == (
            f'--shape {values[0]} {values[-1]}: the input alone, '
            f'{images}x3x{values[0]}x{values[-1]} values of {value_bytes} '
            f'bytes, takes {needed} GB, more than the 1 GB of memory this '
            'machine has available (the network needs several times its '
            'input); give a smaller --shape')
    # Where the system does not say, the shape is not judged.
    monkeypatch.setattr(cli, 'available_memory', lambda: None)
    assert cli.input_shape([100000]) == (100000, 100000)


# The tools with --shape and their other arguments; CKPT and OUT.* are
# files in the test's tmp_path (see tool_argv).
SHAPE_TOOLS = [
    ('analysis_tools/get_flops.py', []),
    ('analysis_tools/benchmark.py', ['--batch-size', '1']),
    ('analysis_tools/profile_train_step.py',
     ['--batch-size', '1', '--device', 'cpu']),
    ('deployment/export_onnx.py', ['CKPT', 'OUT.onnx']),
    ('deployment/reparameterize.py', ['CKPT', 'OUT.pth'])]


def tool_argv(config, extra, tmp_path, shape):
    """A --shape tool's arguments: ``extra``'s files (CKPT, OUT.*) in
    ``tmp_path``, whose contents the tests check after the refusal."""
    return [config] + [tmp_path / arg if arg[:1].isupper() else arg
                       for arg in extra] + ['--shape', shape]


@pytest.mark.parametrize('tool, extra', SHAPE_TOOLS)
def test_the_tools_refuse_a_shape_too_large_for_memory(
        tool, extra, tmp_path, monkeypatch, capsys):
    """--shape 100000 is refused before the model is built: torch's
    allocation of its input would end in a traceback."""
    from conftest import REPO, load_tool, run_cli
    monkeypatch.setattr(cli, 'available_memory', lambda: 10**9)
    ckpt = tmp_path / 'CKPT'
    ckpt.write_bytes(b'')
    argv = tool_argv(REPO / 'configs/dsnet/dsnet_isic2017.py', extra,
                     tmp_path, '100000')
    code, err = run_cli(load_tool(tool).main, argv, capsys)
    assert code == 2, err
    assert err.startswith('ERROR: --shape 100000 100000: the input alone, ')
    assert err.count('\n') == 1 and 'give a smaller --shape' in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['CKPT']


def test_the_note_names_the_configs_own_size_only_when_it_differs():
    assert cli.other_shape_note([256, 256], (256, 256)) == ''
    assert cli.other_shape_note((256, 512), (256, 512)) == ''
    assert cli.other_shape_note((64, 64), (128, 256)) == (
        ' (--shape; the config runs the model at 128x256)')


def test_values_below_their_minimum_or_not_positive_are_refused():
    cli.check_at_least(('--n', 1, 1), ('--m', None, 5))
    with pytest.raises(UserError, match=r'^--n must be at least 1, got 0$'):
        cli.check_at_least(('--ok', 2, 1), ('--n', 0, 1))
    cli.check_positive(('--lr', 1e-3), ('--tol', None))
    for value, shown in ((0.0, '0'), (-1.0, '-1'), (float('inf'), 'inf'),
                         (float('nan'), 'nan')):
        with pytest.raises(UserError,
                           match=f'^--lr must be positive, got {shown}$'):
            cli.check_positive(('--lr', value))
    cli.check_warmup(1)
    with pytest.raises(UserError, match='^--runs must be at least 1, got 0'):
        cli.check_warmup(0, '--runs')


def test_a_seed_is_an_integer_numpy_takes():
    """numpy takes seeds 0 .. 2**32 - 1; a bool or a float is no seed."""
    for seed in (None, 0, 1, 2**32 - 1):
        cli.check_seed(seed)
    for seed in (-1, 2**32, True, 1.0):
        with pytest.raises(UserError, match='must be an integer from 0 to '
                           rf'2\*\*32 - 1, got {seed!r}$'):
            cli.check_seed(seed)


def test_a_device_that_is_neither_cuda_nor_cpu_is_refused():
    assert str(cli.device_option('cpu')) == 'cpu'
    for name in ('meta', 'xla'):
        with pytest.raises(UserError, match=f'^--device {name}: '):
            cli.device_option(name)


def test_a_character_the_output_encoding_lacks_is_escaped():
    """A Chinese file name printed to a cp1252 console was a
    UnicodeEncodeError."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding='cp1252')
    cli.escape_unencodable_output(stream)
    stream.write('\u75c5.jpg caf\xe9\n')
    stream.flush()
    assert raw.getvalue() == b'\\u75c5.jpg caf\xe9\n'
    cli.escape_unencodable_output(io.StringIO())  # no reconfigure: kept


def build_config_model(config):
    from mmseg_dsnet.analysis.flops import build_model
    from mmseg_dsnet.engine.preflight import load_config
    from conftest import REPO
    return build_model(load_config(str(REPO / config)))


def test_a_shape_whose_pass_exceeds_the_memory_left_is_refused(
        monkeypatch):
    """The estimate is the model's own pass at the shape (on the meta
    device): 16x its bytes at 256x256 for 1024x1024, refused against 50
    MB while the input alone (12.6 MB) passes."""
    from mmseg_dsnet.utils import memory
    model = build_config_model('configs/dsnet/dsnet_isic2017.py')
    small = memory.forward_memory(model, (256, 256))
    large = memory.forward_memory(model, (1024, 1024))
    assert 4e6 < small < 4e7 and 15 * small < large < 17 * small
    stats = [b.clone() for b in model.buffers()]
    assert memory.forward_memory(model, (256, 256), images=8,
                                 training=True) > 8 * small
    # The training estimate runs on a copy: batch norm's statistics stay.
    assert all(torch_equal(a, b) for a, b in zip(stats, model.buffers()))
    monkeypatch.setattr(cli, 'available_memory', lambda: 50 * 10**6)
    assert cli.input_shape([1024]) == (1024, 1024)
    assert memory.check_forward_memory(model, (256, 256)) == small
    with pytest.raises(UserError) as err:
        memory.check_forward_memory(model, (1024, 1024))
    assert str(err.value) == (
        '--shape 1024 1024: the forward pass of the network on '
        f'1x3x1024x1024 values of 4 bytes needs about {large / 1e9:.3g} '
        'GB, more than the 0.05 GB of the memory this machine has '
        'available; give a smaller --shape (e.g. --shape 384 384, whose '
        'pass needs about half of it)')


def torch_equal(a, b):
    import torch
    return torch.equal(a, b)


@pytest.mark.parametrize('config', [
    'configs/dsnet/dsnet_isic2017.py', 'configs/dsnet/dsnet-v1_isic2017.py',
    'configs/egeunet/egeunet_isic2017.py'])
def test_shapes_that_fit_are_not_refused(config, monkeypatch):
    """2048x2048 needs 0.5 to 1.7 GB in these networks: it passes against
    8 GB, as the protocol's 256x256 does in training at batch 8."""
    from mmseg_dsnet.utils import memory
    model = build_config_model(config)
    monkeypatch.setattr(cli, 'available_memory', lambda: 8 * 10**9)
    assert memory.check_forward_memory(model, (2048, 2048)) < 2e9
    assert memory.check_forward_memory(model, (256, 256), images=8,
                                       training=True) < 2e9


@pytest.mark.parametrize('tool, extra', SHAPE_TOOLS)
def test_the_tools_refuse_a_shape_whose_network_exceeds_memory(
        tool, extra, tmp_path, monkeypatch, capsys):
    """--shape 1024 fits as an input (12.6 MB) but not as the network's
    pass against 60 MB: refused before the input is made."""
    from conftest import REPO, load_tool, run_cli
    monkeypatch.setattr(cli, 'available_memory', lambda: 60 * 10**6)
    config = REPO / 'configs/dsnet/dsnet_isic2017.py'
    save_checkpoint(config, tmp_path / 'CKPT')
    argv = tool_argv(config, extra, tmp_path, '1024')
    code, err = run_cli(load_tool(tool).main, argv, capsys)
    assert code == 2, err
    assert err.startswith('ERROR: --shape 1024 1024: the '), err
    assert ' needs about ' in err and 'give a smaller --shape' in err
    assert err.count('\n') == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['CKPT']


def save_checkpoint(config, path):
    import torch
    model = build_config_model(str(config))
    meta = dict(dataset_meta=dict(classes=('background', 'lesion'),
                                  palette=[[0, 0, 0], [255, 64, 64]]))
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, path)


def refuses_huge_allocations():
    """Whether the system refuses an allocation larger than its memory at
    once (Linux's overcommit modes 0 and 2), not when it is touched."""
    try:
        with open('/proc/sys/vm/overcommit_memory') as file:
            return file.read().strip() in ('0', '2')
    except OSError:
        return False


@pytest.mark.skipif(not refuses_huge_allocations(),
                    reason='the system may grant a 12 TB allocation')
@pytest.mark.parametrize('tool, extra', SHAPE_TOOLS)
def test_running_out_of_memory_is_said_in_one_line(
        tool, extra, tmp_path, monkeypatch, capsys):
    """A pass whose memory the estimate lets through (here: memory said
    to be 1 EB) and the system refuses: one line that says so, not a size
    the model cannot take (get_flops, benchmark), a traceback or a failed
    form (profile_train_step). A 10^6 x 10^6 input
    (12 TB) is refused by the system at once, nothing allocated."""
    from conftest import REPO, load_tool, run_cli
    monkeypatch.setattr(cli, 'available_memory', lambda: 10**18)
    config = REPO / 'configs/dsnet/dsnet_isic2017.py'
    save_checkpoint(config, tmp_path / 'CKPT')
    argv = tool_argv(config, extra, tmp_path, '1000000')
    code, err = run_cli(load_tool(tool).main, argv, capsys)
    assert code == 2, err
    assert err.startswith(
        'ERROR: --shape 1000000 1000000: this machine ran out of memory at '
        'this input size ('), err
    # torch's allocator, or numpy's (the export's random check images).
    assert ("(RuntimeError: [enforce fail at alloc_cpu.cpp" in err
            or '(MemoryError: Unable to allocate 21.8 TiB' in err), err
    assert err.endswith('; give a smaller --shape, or free memory\n'), err
    assert err.count('\n') == 1 and 'multiples of 32' not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['CKPT']
