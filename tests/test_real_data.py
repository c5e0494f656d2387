"""Slow real-data check: skips cleanly when ../shared/data is absent."""
import json

import pytest
from conftest import SHARED_ISIC2017, load_tool

from mmseg_dsnet.datasets.converters.isic import convert

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not SHARED_ISIC2017.is_dir(),
    reason=f'real ISIC 2017 set not found at {SHARED_ISIC2017}')]


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """The real ISIC 2017 set, converted once for this file's tests."""
    root = tmp_path_factory.mktemp('real') / 'isic2017'
    convert(str(SHARED_ISIC2017), str(root), year=2017, seed=0)
    return root


def test_real_isic2017_converts_and_trains(converted, tmp_path):
    root = converted
    count = {
        name: len((root / 'splits' / f'{name}.txt').read_text().split())
        for name in ('official_train', 'official_val', 'official_test',
                     'lightweight_train', 'lightweight_test')
    }
    assert count == dict(official_train=2000, official_val=150,
                         official_test=600, lightweight_train=1500,
                         lightweight_test=650)
    meta = json.loads((root / 'meta.json').read_text())
    assert meta['seed'] == 0
    check = load_tool('check_real_data.py')
    results = check.main([
        '--data-root', str(root), '--models', 'dsnet', '--epochs', '1',
        '--train-images', '64', '--test-images', '32', '--work-dir',
        str(tmp_path / 'work')
    ])
    metrics = results['dsnet']['metrics']
    assert results['dsnet']['train_images'] == 64
    assert results['dsnet']['test_images'] == 32
    for key in ('IoU', 'DSC', 'Sen', 'Spe', 'mIoU'):
        assert 0.0 <= metrics[key] <= 100.0


def test_design_runs_train_and_judge_inside_the_training_split(
        converted, tmp_path):
    root = converted

    def ids(name):
        return set((root / 'splits' / f'{name}.txt').read_text().split())

    design_train = ids('lightweight_design_train')
    design_val = ids('lightweight_design_val')
    assert (len(design_train), len(design_val)) == (1350, 150)
    assert design_train | design_val == ids('lightweight_train')
    assert not design_val & ids('lightweight_test')

    check = load_tool('check_real_data.py')
    records = tmp_path / 'records'
    results = check.main([
        '--data-root', str(root), '--models', 'dsnet', '--split', 'design',
        '--epochs', '1', '--train-images', '32', '--test-images', '16',
        '--work-dir', str(tmp_path / 'work'), '--record-dir', str(records)
    ])
    result = results['dsnet']
    assert result['train_split'] == 'splits/lightweight_design_train.txt'
    assert result['eval_split'] == 'splits/lightweight_design_val.txt'
    record, = records.glob('*.json')
    assert record.name == 'dsnet_256px_1ep_seed0.json'
    assert json.loads(record.read_text())['split'] == 'design'
