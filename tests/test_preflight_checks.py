"""The pre-flight checks (``mmseg_dsnet.engine.preflight``), the checkpoint
and resume checks and the run-stopping hooks on small real objects: plain
config dicts, files in ``tmp_path`` and small modules, no training. The
tool-level tests (test_user_error_exits.py, test_strict_checkpoints.py,
test_resume_check.py ...) show the same checks through the command
lines."""
import argparse

import pytest
import torch
from mmengine.config import Config

from mmseg_dsnet.engine.preflight import (ConfigOptionsAction,
                                          MissingInputError,
                                          check_config_keys,
                                          check_config_sets,
                                          check_input_file,
                                          check_options_take_effect)
from mmseg_dsnet.engine.preflight.config import (ConfigFileError,
                                                 ConfigKeyError,
                                                 ConfigOptionError)


def parse_cfg_options(*values):
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+',
                        action=ConfigOptionsAction)
    return parser.parse_args(['--cfg-options', *values]).cfg_options


def test_cfg_options_paths_and_lists():
    """A quoted path keeps its spaces (the quotes dropped, as mmengine
    drops them), a Windows path too; a list of paths in brackets, a word
    with a space and ``a, b`` are read as the user meant them."""
    assert parse_cfg_options(
        'work_dir="/x/My Runs/r1"', 'data_root=C:\\data\\My Set',
        'imports=[a/b,c/d]', 'name=My Runs', 'pair=a, b') == {
            'work_dir': '/x/My Runs/r1', 'data_root': 'C:\\data\\My Set',
            'imports': ['a/b', 'c/d'], 'name': 'My Runs',
            'pair': ['a', 'b']}


def test_config_key_typos_and_pipeline_variables():
    """A key two letters swapped from a runner key is refused; the
    pipeline variables every config has pass, though ``test_pipeline`` is
    spelt almost like the runner key ``tta_pipeline``."""
    with pytest.raises(ConfigKeyError, match="'defualt_hooks' is not used "
                       "by the runner .* did you mean 'default_hooks'"):
        check_config_keys(dict(defualt_hooks=dict()))
    check_config_keys(dict(test_pipeline=[], train_pipeline=[],
                           val_pipeline=[], _private=1, crop_size=(1, 1)))


def test_cfg_options_of_list_items_and_runner_keys():
    """A list item past the end is a new value, not an error; a runner key
    set on the command line (``load_from``) is no variable even when a
    section holds its value; a variable held by no section (only by
    another variable) may be set; one a section holds is refused."""
    cfg = Config(dict(pipeline=[dict(scale=(1, 2))], load_from=None,
                      model=dict(init_cfg=None), crop_size=(4, 4),
                      train_pipeline=[dict(scale=(4, 4))],
                      data_root='d',
                      train_dataloader=dict(dataset=dict(data_root='d'))))
    check_options_take_effect(cfg, {'pipeline.1.scale': 'x',
                                    'load_from': 'a.pth',
                                    'crop_size': (8, 8)})
    with pytest.raises(ConfigOptionError, match=(
            r"^--cfg-options data_root=e sets the config variable "
            r"'data_root', .* \(they keep 'd'\); set the keys that hold its "
            r'value instead: train_dataloader\.dataset\.data_root=e$')):
        check_options_take_effect(cfg, {'data_root': 'e'})


def test_input_file_and_config_sets(tmp_path):
    """A folder given as a config is named as one; a key holding a string
    (not a dict or list) or a key under a missing parent is lacking."""
    with pytest.raises(MissingInputError, match=f'^config file {tmp_path} '
                       'is a folder, not a file$'):
        check_input_file(tmp_path, 'config file')
    with pytest.raises(MissingInputError, match='does not exist$'):
        check_input_file(tmp_path / 'none.py', 'config file')
    check_config_sets(dict(model=dict(), data=[1]), 'c.py', ['model', 'data'],
                      'n')
    with pytest.raises(ConfigFileError, match=(
            r'^config file c\.py sets no model, train_dataloader\.dataset'
            r'\.pipeline: it builds one$')):
        check_config_sets(dict(model='dsnet', train_dataloader=dict(
            dataset=dict())), 'c.py', ['model', 'train_dataloader.dataset.'
                                       'pipeline'], 'it builds one')


def test_strict_check_counts_and_refuses_extra_keys():
    """BatchNorm's ``num_batches_tracked`` may be absent (a checkpoint of
    an older torch) and is not counted; a key the model lacks refuses a
    strict load (the checkpoint is of a larger or other model)."""
    from mmseg_dsnet.engine.checkpoint_match import (CheckpointMismatchError,
                                                     check_checkpoint_matches)
    model = torch.nn.BatchNorm1d(2)
    state = {k: v for k, v in model.state_dict().items()
             if k != 'num_batches_tracked'}
    assert check_checkpoint_matches(model, dict(state_dict=state)) == (4, 4)
    with pytest.raises(CheckpointMismatchError, match=(
            r'^Checkpoint c\.pth does not match the model of c\.py: 1 '
            r'unexpected key \(extra\.weight\)\. ')):
        check_checkpoint_matches(model, dict(state, **{
            'extra.weight': torch.ones(1)}), 'c.py', 'c.pth')
