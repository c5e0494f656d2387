"""mmseg_dsnet.apis.released_model: the metafile's released weights are
found, and a missing or altered file is refused by name."""
import hashlib

import pytest

from mmseg_dsnet.apis.released_model import (ReleasedModelError,
                                             released_model, sha256_of)


def make_release(root, payload=b'weights', listed_hash=None):
    (root / 'configs' / 'dsnet').mkdir(parents=True)
    (root / 'checkpoints').mkdir()
    (root / 'configs' / 'dsnet' / 'net.py').write_text('model = dict()\n')
    (root / 'checkpoints' / 'net.pth').write_bytes(payload)
    listed = listed_hash or hashlib.sha256(payload).hexdigest()
    metafile = root / 'configs' / 'dsnet' / 'metafile.yaml'
    metafile.write_text(
        'Models:\n'
        '- Name: other\n  Config: configs/dsnet/net.py\n'
        '- Name: net\n  Config: configs/dsnet/net.py\n'
        f'  Weights: checkpoints/net.pth\n  SHA256: {listed}\n')
    return metafile


def test_finds_the_listed_weights(tmp_path):
    metafile = make_release(tmp_path)
    config, checkpoint = released_model('net', str(metafile))
    assert config == str(tmp_path / 'configs' / 'dsnet' / 'net.py')
    assert checkpoint == str(tmp_path / 'checkpoints' / 'net.pth')
    assert sha256_of(checkpoint) == hashlib.sha256(b'weights').hexdigest()


def test_refuses_an_altered_file(tmp_path):
    metafile = make_release(tmp_path, listed_hash='0' * 64)
    with pytest.raises(ReleasedModelError, match='not the released file'):
        released_model('net', str(metafile))


def test_refuses_a_missing_file_or_entry(tmp_path):
    metafile = make_release(tmp_path)
    with pytest.raises(ReleasedModelError, match='no released weights'):
        released_model('other', str(metafile))
    with pytest.raises(ReleasedModelError, match='no released weights'):
        released_model('absent', str(metafile))
    (tmp_path / 'checkpoints' / 'net.pth').unlink()
    with pytest.raises(ReleasedModelError, match='missing'):
        released_model('net', str(metafile))
