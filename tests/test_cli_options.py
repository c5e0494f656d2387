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


@pytest.mark.parametrize('tool, extra', [
    ('analysis_tools/get_flops.py', []),
    ('analysis_tools/benchmark.py', ['--batch-size', '1']),
    ('analysis_tools/profile_train_step.py', ['--batch-size', '1']),
    ('deployment/export_onnx.py', ['CKPT', 'OUT.onnx']),
    ('deployment/reparameterize.py', ['CKPT', 'OUT.pth'])])
def test_the_tools_refuse_a_shape_too_large_for_memory(
        tool, extra, tmp_path, monkeypatch, capsys):
    """--shape 100000 is refused before the model is built: torch's
    allocation of its input would end in a traceback."""
    from conftest import REPO, load_tool, run_cli
    monkeypatch.setattr(cli, 'available_memory', lambda: 10**9)
    ckpt = tmp_path / 'CKPT'
    ckpt.write_bytes(b'')
    argv = [REPO / 'configs/dsnet/dsnet_isic2017.py'] + [
        tmp_path / arg if arg.isupper() else arg for arg in extra] + [
            '--shape', '100000']
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
