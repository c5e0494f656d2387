"""``leaderboard.py collect``'s GPU options, called directly on hand-made
``--gpu-json`` files (mutation testing: the shape, deploy, channels-last,
parameter and model-config checks were reached only through a training
fixture)."""
import json

import pytest

from mmseg_dsnet.leaderboard.board import (check_gpu_json_model,
                                           check_gpu_options)
from mmseg_dsnet.utils.errors import UserError

GOOD = dict(device='cuda:0', shape=[256, 256], params=1000)


def write(tmp_path, **record):
    path = tmp_path / 'gpu.json'
    path.write_text(json.dumps(record))
    return str(path)


def test_a_cuda_256_measurement_is_returned(tmp_path):
    assert check_gpu_options(False, None) is None
    assert check_gpu_options(False, write(tmp_path, **GOOD)) == GOOD
    assert check_gpu_options(False, write(
        tmp_path, **dict(GOOD, device='cuda')))['device'] == 'cuda'


@pytest.mark.parametrize('changes', [
    dict(device='cpu'), dict(device='cu'), dict(device=None),
    dict(shape=[256, 128]),
    dict(shape=[128, 256]), dict(shape=[256]), dict(shape=None)])
def test_another_device_or_shape_is_refused(tmp_path, changes):
    record = dict(GOOD, **changes)
    record = {k: v for k, v in record.items() if v is not None}
    with pytest.raises(UserError, match=r'not a benchmark.py --device cuda '
                       r'--shape 256 256 --json result'):
        check_gpu_options(False, write(tmp_path, **record))


@pytest.mark.parametrize('key, match', [
    ('deploy', r'times the re-parameterised model'),
    ('channels_last', r'channels-last memory format')])
def test_a_deploy_or_channels_last_measurement_is_refused(tmp_path, key,
                                                          match):
    with pytest.raises(UserError, match=match):
        check_gpu_options(False, write(tmp_path, **dict(GOOD, **{key: True})))
    assert check_gpu_options(False, write(
        tmp_path, **dict(GOOD, **{key: False})))[key] is False


def test_both_gpu_options_are_refused(tmp_path):
    with pytest.raises(UserError, match=r'give one of them'):
        check_gpu_options(True, write(tmp_path, **GOOD))


def test_a_measurement_of_another_model_is_refused():
    check_gpu_json_model(None, 'g.json', 5, 'c.py')  # no file: passes
    check_gpu_json_model(dict(GOOD), 'g.json', 1000, 'c.py')
    check_gpu_json_model(dict(GOOD), 'g.json', None, 'c.py')
    with pytest.raises(UserError, match=r'g.json times a model of 1000 '
                       r'parameters but c.py builds one of 1001'):
        check_gpu_json_model(dict(GOOD), 'g.json', 1001, 'c.py')
    own = dict(type='DSNet', act=('relu', 2))
    timed = dict(GOOD, model_config=dict(type='DSNet', act=['relu', 2]))
    # Tuples read back from JSON as lists are the same model.
    check_gpu_json_model(timed, 'g.json', 1000, 'c.py', own)
    check_gpu_json_model(dict(GOOD), 'g.json', 1000, 'c.py', own)
    other = dict(timed, model_config=dict(type='DSNet', act=['gelu', 2]),
                 cfg_options='model.act=gelu')
    with pytest.raises(UserError, match=r'g.json times another model than '
                       r"the run's \(.*act.* differs; measured with "
                       r'--cfg-options model.act=gelu\): measure c.py'):
        check_gpu_json_model(other, 'g.json', 1000, 'c.py', own)
