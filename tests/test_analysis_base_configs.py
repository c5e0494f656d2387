"""The analysis tools given a base config (a schedule, a model or a data set
alone): one ``ERROR:`` line naming what it lacks, not an AttributeError
traceback where the tool first read it."""
import pytest
from conftest import REPO, run_tool_in_process

SCHEDULE = 'configs/_base_/schedules/schedule_300e_adamw_cosine.py'
MODEL = 'configs/_base_/models/dsnet.py'
DATA = 'configs/_base_/datasets/isic2018_lightweight.py'
TOOLS = REPO / 'tools' / 'analysis_tools'


@pytest.mark.parametrize('tool, config, options, lacks', [
    ('benchmark.py', SCHEDULE, [], 'model'),
    ('benchmark.py', MODEL, ['--data'], 'test_dataloader.dataset'),
    ('error_by_position.py', DATA, ['CKPT'], 'model'),
    ('error_by_position.py', MODEL, ['CKPT', '--cfg-options',
                                     'test_evaluator.type=LesionMetric'],
     'test_dataloader.dataset'),
    ('threshold_sweep.py', MODEL, ['CKPT', '--thresholds', '0.5',
                                   '--cfg-options',
                                   'test_evaluator.type=LesionMetric'],
     'test_dataloader.dataset'),
])
def test_a_base_config_is_named(tool, config, options, lacks, tmp_path):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')  # never read: refused before
    options = [str(checkpoint) if o == 'CKPT' else o for o in options]
    run = run_tool_in_process(TOOLS / tool, config, *options)
    assert run.returncode == 2, run.output[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f'ERROR: config file {config} sets no {lacks}: '
                           ), last
    assert 'configs/dsnet/dsnet_isic2017.py' in last
