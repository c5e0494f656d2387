"""Safe checkpoint loading: weights_only plus a minimal allow-list."""
import os

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _apply():
    from mmseg_dsnet import compat
    compat.apply()
    compat.apply()  # idempotent


class RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker, ))


class WalksFromHistoryBuffer:
    """getattr on an allowed class towards something else than a
    statistics method: the first step of a sandbox escape."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


def test_mmengine_objects_roundtrip(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmseg_dsnet.compat import safe_torch_load
    buf = HistoryBuffer()
    for value in (1.0, 2.0, 4.0):
        buf.update(value)
    obj = dict(
        buf=buf,
        array=np.arange(6, dtype=np.float32).reshape(2, 3),
        scalar=np.float64(0.25),
        count=np.int64(3),
        dtype=np.dtype('int16'),
        weight=torch.ones(2))
    path = tmp_path / 'ok.pth'
    torch.save(obj, path)
    loaded = safe_torch_load(str(path))
    assert loaded['buf'].mean() == pytest.approx(7 / 3)
    assert loaded['buf'].max() == 4.0
    np.testing.assert_array_equal(loaded['array'], obj['array'])
    assert loaded['scalar'] == 0.25 and loaded['count'] == 3
    assert loaded['dtype'] == np.dtype('int16')
    # The allow-list is global: plain weights_only loads work too.
    assert torch.load(path, weights_only=True)['buf'].current() == 4.0


@pytest.mark.parametrize('payload', ['runs_code', 'getattr_escape'])
def test_code_executing_pickles_are_refused(tmp_path, payload):
    from mmengine.runner import CheckpointLoader, load_checkpoint
    from mmseg_dsnet.compat import UnsafeCheckpointError, safe_torch_load
    marker = tmp_path / 'code_ran'
    evil = RunsCode(str(marker)) if payload == 'runs_code' \
        else WalksFromHistoryBuffer()
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': evil}, path)
    for load in (lambda: safe_torch_load(str(path)),
                 lambda: CheckpointLoader.load_checkpoint(str(path)),
                 lambda: load_checkpoint(torch.nn.Linear(1, 1), str(path))):
        with pytest.raises(UnsafeCheckpointError) as info:
            load()
        assert 'evil.pth' in str(info.value)
        assert 'Refusing to load checkpoint' in str(info.value)
    assert not marker.exists()


def test_missing_checkpoint_is_named(tmp_path):
    from mmengine.runner import CheckpointLoader
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'nope.pth'))
