"""A checkpoint given as an ``http(s)://`` URL: every tool that takes a
checkpoint downloads it once into torch's hub cache and loads it as a local
file (``weights_only=True``); a failed download is one ``ERROR:`` line.
The URLs are served from this machine (no network needed)."""
import functools
import http.server
import os
import socket
import threading

import pytest
import torch
from conftest import REPO, run_tool_in_process

RELEASED = REPO / 'checkpoints' / 'dsnet_isic2017_256px.pth'
CONFIG = 'configs/dsnet/dsnet_isic2017.py'


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(folder served over http, its base URL); the hub cache in
    ``tmp_path/hub``."""
    root = tmp_path / 'served'
    root.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def closed_port_url():
    """A URL nothing answers at (like an offline machine)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    return f'http://127.0.0.1:{port}/dsnet.pth'


class RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker, )


def test_a_served_checkpoint_loads_safely_once(served, tmp_path):
    """mmengine's ``http://`` scheme loaded a download with ``torch.hub``'s
    ``weights_only=False``: a served pickle ran its code."""
    import mmseg_dsnet  # noqa: F401
    from mmengine.runner.checkpoint import _load_checkpoint

    from mmseg_dsnet.compat import UnsafeCheckpointError, safe_torch_load
    root, base = served
    marker = tmp_path / 'ran'
    torch.save({'state_dict': {}, 'meta': RunsCode(str(marker))},
               root / 'evil.pth')
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        _load_checkpoint(f'{base}/evil.pth', map_location='cpu')
    assert not marker.exists()
    # A genuine checkpoint: the same as the local file, downloaded once.
    (root / 'dsnet.pth').write_bytes(RELEASED.read_bytes())
    url = f'{base}/dsnet.pth'
    loaded = _load_checkpoint(url, map_location='cpu')
    local = safe_torch_load(str(RELEASED), map_location='cpu')
    assert loaded['state_dict'].keys() == local['state_dict'].keys()
    (root / 'dsnet.pth').unlink()
    assert safe_torch_load(url)['meta'].keys() == local['meta'].keys()


def test_two_urls_with_one_file_name_are_two_checkpoints(served):
    """The download was cached by its file name alone (as torch.hub does):
    ``.../a/model.pth`` after ``.../b/model.pth`` loaded b's weights, with
    no word of it."""
    from mmseg_dsnet.compat import safe_torch_load, url_cache_path
    root, base = served
    for name, value in (('a', 1.0), ('b', 2.0)):
        (root / name).mkdir()
        torch.save({'w': torch.tensor([value])}, root / name / 'model.pth')
    first = safe_torch_load(f'{base}/a/model.pth')['w'].item()
    second = safe_torch_load(f'{base}/b/model.pth')['w'].item()
    assert (first, second) == (1.0, 2.0)
    assert url_cache_path(f'{base}/a/model.pth') != url_cache_path(
        f'{base}/b/model.pth')
    # Each is still downloaded once.
    (root / 'a' / 'model.pth').unlink()
    assert safe_torch_load(f'{base}/a/model.pth')['w'].item() == 1.0


def test_a_served_checkpoint_works_in_a_tool(served, tmp_path):
    """test.py read the training config from the URL as a local path
    (``FileNotFoundError`` traceback, exit 1); reparameterize.py and the
    other tools with their own file check refused it as "not found"."""
    root, base = served
    (root / 'dsnet.pth').write_bytes(RELEASED.read_bytes())
    out = tmp_path / 'deploy.pth'
    run = run_tool_in_process('tools/deployment/reparameterize.py', CONFIG,
                              f'{base}/dsnet.pth', out)
    assert run.returncode == 0, run.output[-3000:]
    assert out.is_file() and out.with_suffix('.py').is_file()
    # Of the served weights: the same file as from the local checkpoint
    # (a model left at its initial weights also passes the parity check).
    local = tmp_path / 'local.pth'
    run = run_tool_in_process('tools/deployment/reparameterize.py', CONFIG,
                              RELEASED, local)
    assert run.returncode == 0, run.output[-3000:]
    from mmseg_dsnet.compat import safe_torch_load
    got = safe_torch_load(str(out))['state_dict']
    want = safe_torch_load(str(local))['state_dict']
    assert got.keys() == want.keys()
    assert [k for k in want if not torch.equal(got[k], want[k])] == []


# Each tool that takes a checkpoint, with URL and OUT in its arguments.
CHECKPOINT_READERS = {
    'tools/test.py': [CONFIG, 'URL', '--work-dir', 'OUT'],
    'tools/infer.py': [CONFIG, 'URL', 'IMAGE', '--out-dir', 'OUT'],
    'tools/analysis_tools/benchmark.py': [CONFIG, 'URL', '--device', 'cpu'],
    'tools/analysis_tools/error_by_position.py': [CONFIG, 'URL'],
    'tools/analysis_tools/threshold_sweep.py': [CONFIG, 'URL',
                                                '--thresholds', '0.5'],
    'tools/analysis_tools/recalibrate_batch_norm.py': [CONFIG, 'URL',
                                                       'OUT/r.pth'],
    'tools/deployment/reparameterize.py': [CONFIG, 'URL', 'OUT/d.pth'],
    'tools/deployment/export_onnx.py': [CONFIG, 'URL', 'OUT/m.onnx'],
    'tools/misc/publish_model.py': [CONFIG, 'URL', 'OUT/n.pth'],
}


@pytest.mark.parametrize('tool', sorted(CHECKPOINT_READERS))
def test_an_unreachable_checkpoint_url_is_one_error_line(
        tool, tmp_path, monkeypatch):
    """Offline (or a wrong host), error_by_position.py and benchmark.py
    ended in a ``URLError`` traceback, exit 1."""
    import cv2
    import numpy as np
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    url = closed_port_url()
    image = tmp_path / 'lesion.png'
    cv2.imwrite(str(image), np.full((32, 32, 3), 128, np.uint8))
    out = tmp_path / 'out'
    names = dict(URL=url, IMAGE=image, OUT=out)
    argv = [out / arg[4:] if arg.startswith('OUT/') else names.get(arg, arg)
            for arg in CHECKPOINT_READERS[tool]]
    run = run_tool_in_process(tool, *argv)
    assert run.returncode == 2, run.output[-3000:]
    assert 'Traceback' not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f'ERROR: checkpoint {url} cannot be downloaded '
                           '(URLError: '), last
    assert last.endswith('download it where the network allows and give '
                         'the local file'), last
    assert not out.exists() or not any(out.rglob('*.*'))
    assert not any((tmp_path / 'hub').rglob('*.pth'))


@pytest.mark.parametrize('prefix,table', [
    ('torchvision://', 'get_torchvision_models'),
    ('modelzoo://', 'get_torchvision_models'),
    ('open-mmlab://', 'get_external_models'),
    ('openmmlab://', 'get_external_models'),
    ('mmcls://', 'get_mmcls_models'),
])
def test_a_model_zoo_name_loads_safely(prefix, table, served, tmp_path,
                                       monkeypatch):
    """mmengine resolved ``torchvision://`` ... to a URL and loaded the
    download with ``torch.hub``'s ``weights_only=False``: a served pickle
    (``load_from``, an ``init_cfg`` ``Pretrained`` checkpoint) ran its
    code."""
    import mmseg_dsnet  # noqa: F401
    from mmengine.runner import checkpoint as mm_checkpoint

    from mmseg_dsnet.compat import UnsafeCheckpointError
    root, base = served
    marker = tmp_path / 'ran'
    torch.save({'state_dict': {}, 'meta': RunsCode(str(marker))},
               root / 'evil.pth')
    torch.save({'state_dict': {'backbone.w': torch.ones(1)}},
               root / 'good.pth')
    monkeypatch.setattr(mm_checkpoint, table, lambda: {
        'evil': f'{base}/evil.pth', 'good': f'{base}/good.pth'})
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        mm_checkpoint._load_checkpoint(f'{prefix}evil', map_location='cpu')
    assert not marker.exists()
    loaded = mm_checkpoint._load_checkpoint(f'{prefix}good',
                                            map_location='cpu')
    # mmcls:// checkpoints keep mmengine's key conversion.
    key = 'w' if prefix == 'mmcls://' else 'backbone.w'
    assert list(loaded['state_dict']) == [key]


def test_an_s3_checkpoint_loads_with_weights_only(tmp_path, monkeypatch):
    """mmengine's ``s3://`` loader left ``weights_only`` to torch's default,
    which ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` turns off: the pickle ran
    its code."""
    import io

    import mmseg_dsnet  # noqa: F401
    from mmengine.runner import checkpoint as mm_checkpoint

    from mmseg_dsnet.compat import UnsafeCheckpointError
    marker = tmp_path / 'ran'
    buffer = io.BytesIO()
    torch.save({'meta': RunsCode(str(marker))}, buffer)

    class Backend:

        def get(self, filename):
            return buffer.getvalue()

    monkeypatch.setattr(mm_checkpoint, 'get_file_backend',
                        lambda *args, **kwargs: Backend())
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(UnsafeCheckpointError, match='s3://bucket/evil.pth'):
        mm_checkpoint._load_checkpoint('s3://bucket/evil.pth',
                                       map_location='cpu')
    assert not marker.exists()


def test_an_unsupported_scheme_is_refused_by_name():
    """``pavi://`` (and any scheme registered before ours) went to
    mmengine's loader, which unpickles with torch's default: refused now,
    one message naming the scheme."""
    import mmseg_dsnet  # noqa: F401
    from mmengine.runner.checkpoint import _load_checkpoint

    from mmseg_dsnet.compat import UnsupportedCheckpointSchemeError
    from mmseg_dsnet.engine.cli_errors import describe_user_error
    with pytest.raises(UnsupportedCheckpointSchemeError) as err:
        _load_checkpoint('pavi://model/1', map_location='cpu')
    text = describe_user_error(err.value)
    assert text.startswith('checkpoint pavi://model/1: the pavi:// scheme '
                           'is not supported'), text
    with pytest.raises(UnsupportedCheckpointSchemeError, match='no model'):
        _load_checkpoint('mmcls://no_such_net', map_location='cpu')
