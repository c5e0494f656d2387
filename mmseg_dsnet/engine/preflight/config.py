"""Loading a config and checking its keys and its ``--cfg-options``."""
import argparse
import difflib
import os.path as osp

from mmseg_dsnet.utils.errors import UserError
from mmseg_dsnet.utils.messages import did_you_mean, first_few

from .validation import has_val_loop


#: Top-level config keys that mmengine's Runner, mmseg's tools or our tools
#: read. A config key that is not one of them but is spelt almost like one
#: is almost certainly a typo that would be silently ignored.
RUNNER_KEYS = (
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name',
    'custom_imports', 'model_wrapper_cfg', 'find_unused_parameters',
    'sync_bn', 'tta_model', 'tta_pipeline', 'runner_type', 'compile',
    'strategy', 'vis_backends', 'load_from_strict')

#: Common config variables that are legitimately close to a runner key.
COMMON_VARIABLES = ('train_pipeline', 'val_pipeline', 'test_pipeline')


class ConfigKeyError(KeyError):
    """A config key looks like a misspelt runner key."""

    def __str__(self):
        return str(self.args[0])


class MissingInputError(FileNotFoundError):
    """A config or checkpoint file given to a tool does not exist."""


class ConfigFileError(UserError, ValueError):
    """A file given as a config cannot be read as one."""


#: How ``--cfg-options`` values are read (the tools' ``--help`` says it).
CFG_OPTIONS_RULE = (
    'KEY=VALUE pairs: VALUE is read as a number, true/false, None or text; '
    'a,b and [a, b] are lists, (a, b) a tuple (spaces in them dropped); '
    'a file or folder (a VALUE with / or \\, or a KEY ending in dir, '
    'root, path, file, load_from or checkpoint, e.g. work_dir) and a '
    'VALUE with spaces but no comma are taken whole')

# The last part of a key whose value is a file or folder: its value is
# taken whole, commas and spaces kept (a list is no path).
_PATH_KEY_ENDINGS = ('dir', 'root', 'path', 'file', 'load_from',
                     'checkpoint')


def _scalar(text):
    """``text`` as a number, a bool, None or itself (mmengine's reading
    of a single value)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.lower() in ('true', 'false'):
        return text.lower() == 'true'
    return None if text == 'None' else text


def _next_comma(text):
    """The index of the first comma outside brackets (``len(text)`` when
    there is none)."""
    depth = 0
    for index, char in enumerate(text):
        if char in '([':
            depth += 1
        elif char in ')]':
            depth -= 1
        elif char == ',' and depth == 0:
            return index
    return len(text)


def _items(text):
    """mmengine's ``DictAction`` grammar: spaces dropped, ``(...)`` a
    tuple, ``[...]`` or a comma a list (nested), else one value."""
    text = text.replace(' ', '')
    is_tuple = text.startswith('(') and text.endswith(')')
    if is_tuple or (text.startswith('[') and text.endswith(']')):
        text = text[1:-1]
    elif ',' not in text:
        return _scalar(text)
    if text.count('(') != text.count(')') or \
            text.count('[') != text.count(']'):
        raise ValueError(f'unbalanced brackets in {text!r}')
    values = []
    while text:
        comma = _next_comma(text)
        values.append(_items(text[:comma]))
        text = text[comma + 1:]
    return tuple(values) if is_tuple else values


def parse_cfg_option(key, text):
    """Read one ``--cfg-options KEY=VALUE`` value (:data:`CFG_OPTIONS_RULE`).

    mmengine's ``DictAction`` removes every space of a value and splits it
    at each comma, so that ``work_dir=/data/My Runs/r1`` would train into
    ``/data/MyRuns/r1``, exit 0, ``data_root=/data/Patient Müller`` be
    reported missing as ``/data/PatientMüller``, and a folder named
    ``Müller, Anna`` become a list (a ``TypeError`` traceback), also
    without a ``/`` (``work_dir=Müller, A``); such a value is read whole
    here. A value in brackets
    (``[1, 2]``, ``(32, 32)``) or with a comma (``a,b``, ``a, b``) for any
    other key is read as mmengine reads it.

    Args:
        key (str): The dotted key.
        text (str): The value as given.

    Returns:
        The value.

    Raises:
        ValueError: Unbalanced brackets.
    """
    whole = text.strip().strip('\'"').strip()
    if not whole.startswith(('[', '(')) and (
            key.rsplit('.', 1)[-1].endswith(_PATH_KEY_ENDINGS) or
            any(sep in whole for sep in '/\\') or
            (' ' in whole and ',' not in whole)):
        return _scalar(whole)
    return _items(text.strip().strip('\'"'))


class ConfigOptionsAction(argparse.Action):
    """``--cfg-options KEY=VALUE ...`` as mmengine's ``DictAction`` reads
    it, but a file or folder and a value that is no list taken whole
    (:func:`parse_cfg_option`); its rule (:data:`CFG_OPTIONS_RULE`) ends
    the option's help.
    """

    def __init__(self, *args, help=None, **kwargs):
        help = f'{help} ({CFG_OPTIONS_RULE})' if help else CFG_OPTIONS_RULE
        super().__init__(*args, help=help, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        options = dict(getattr(namespace, self.dest, None) or {})
        for pair in values or []:
            key, sep, text = pair.partition('=')
            if not sep or not key:
                raise argparse.ArgumentError(
                    self, f'{pair!r} is not KEY=VALUE')
            try:
                options[key] = parse_cfg_option(key, text)
            except ValueError as err:
                raise argparse.ArgumentError(self, f'{pair}: {err}')
        setattr(namespace, self.dest, options)


def check_config_keys(cfg, known=RUNNER_KEYS, cutoff=0.85):
    """Raise :class:`ConfigKeyError` for a top-level key that is not used but
    is spelt almost like one that is (``train_dataloadr``, ``optim_wraper``).

    Args:
        cfg (Config | dict): The merged config.
        known (Sequence[str]): The keys that are read.
        cutoff (float): Similarity (0..1) above which a key is a typo.
    """
    for key in cfg.keys():
        if key in known or key in COMMON_VARIABLES or key.startswith('_'):
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=cutoff)
        if close:
            raise ConfigKeyError(
                f'Config key {key!r} is not used by the runner and would be '
                f'silently ignored; did you mean {close[0]!r}?')


class ConfigOptionError(UserError, ValueError):
    """A ``--cfg-options`` key that would change nothing."""


def _paths_holding(node, value, path=''):
    """Dotted paths below ``node`` whose value equals ``value``."""
    found = []
    if isinstance(node, dict):
        for key, item in node.items():
            found += _paths_holding(item, value, f'{path}.{key}'.lstrip('.'))
    elif isinstance(node, (list, tuple)) and node != value:
        for index, item in enumerate(node):
            found += _paths_holding(item, value, f'{path}.{index}')
    elif node == value and path:
        found.append(path)
    return found


def _config_value(cfg, key):
    """The value at a dotted ``--cfg-options`` key (list items by index),
    or ``_MISSING`` when the config holds none there."""
    node = cfg
    for part in key.split('.'):
        # A Config is no dict, but reads like one.
        if hasattr(node, 'items') and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


_MISSING = object()


def _check_option_type(cfg, key, value):
    """Refuse a ``--cfg-options`` value of another kind than the one it
    replaces: a word for a number or a switch (``train_cfg.max_epochs=abc``,
    ``train_dataloader.batch_size=two``), or anything but a dict (or None)
    for a dict (``train_cfg=[1,2]``; ``key="dict(a=1)"``, which
    ``DictAction`` keeps as a string). mmengine meets them only once the
    runner builds that part, after the work dir and its log are made, with
    a traceback (``ValueError: invalid literal for int()``, ``TypeError``).
    """
    old = _config_value(cfg, key)
    if old is _MISSING or old is None or value is None:
        return
    if isinstance(old, (int, float)):
        wanted = isinstance(value, str) and (
            'True or False' if isinstance(old, bool) else 'a number')
    elif isinstance(old, dict):
        wanted = (f'a dict (set its keys one by one: {key}.KEY=VALUE)'
                  if not isinstance(value, dict) else None)
    else:
        wanted = None
    if wanted:
        raise ConfigOptionError(
            f'--cfg-options {key}={value} gives {type(value).__name__} '
            f'{value!r}, but the config holds {old!r} there; give {wanted}')


def check_options_take_effect(cfg, cfg_options):
    """Refuse a ``--cfg-options`` key that sets a config variable
    (``data_root=X``, ``crop_size=...``) before it is merged.

    mmengine copies a variable's value into the sections that use it when
    it reads the file, so setting the variable afterwards changes nothing:
    ``test.py CONFIG CKPT --cfg-options data_root=other`` would score the
    config's own data set, exit 0, while ``test_metrics.json`` recorded
    ``data_root=other`` among the options it was computed with.

    Args:
        cfg (Config): The config as read, before the options are merged.
        cfg_options (dict | None): The ``--cfg-options`` (dotted keys).

    Raises:
        ConfigOptionError: Naming the option and the keys to set instead.
    """
    for key, value in (cfg_options or {}).items():
        _check_option_type(cfg, key, value)
        if '.' in key or key in RUNNER_KEYS or key not in cfg:
            continue
        old = cfg[key]
        # A variable no section holds may be read by a tool as it is.
        users = [path for path in _paths_holding(
            {k: v for k, v in cfg.items() if k != key}, old)
            if path.split('.')[0] in RUNNER_KEYS]
        if not users:
            continue
        # Keys of its name first: a value like 0.5 is held by others too.
        named = [path for path in users if path.split('.')[-1] == key]
        users = named or users
        shown = first_few([f'{path}={value}' for path in users], 4, sep=' ')
        raise ConfigOptionError(
            f'--cfg-options {key}={value} sets the config variable {key!r}, '
            'whose value was copied into the sections that use it when the '
            'config was read, so it would change nothing (they keep '
            f'{old!r}); set the keys that hold its value instead: '
            f'{shown}')


def check_input_file(path, what):
    """Raise :class:`MissingInputError` (``<what> <path> does not exist``)
    unless ``path`` is a file; a URL (``https://``, ``s3://`` ...) is left to
    the loader.

    A path starting with a ``~`` that names no file is read as the user
    most likely meant it: the message says that ``~`` is not expanded
    (``--cfg-options 'load_from=~/x.pth'``: the shell left it as it is),
    and names the expanded path when that file exists; the path is not
    expanded here.

    Args:
        path (str): The config or checkpoint path the user gave.
        what (str): How the message names it (``'config file'``,
            ``'checkpoint'``).
    """
    path = str(path)
    if '://' in path or osp.isfile(path):
        return
    reason = 'is a folder, not a file' if osp.isdir(path) else \
        'does not exist'
    if path.split('/', 1)[0].startswith('~'):
        expanded = osp.expanduser(path)
        reason += (': the shell left its "~" unexpanded (quoted, after '
                   '"--option=", or in a config file), and it is not '
                   'expanded here')
        reason += (f'; {expanded} exists: give it in full'
                   if expanded != path and osp.isfile(expanded) else
                   '; give the path in full')
    raise MissingInputError(f'{what} {path} {reason}')


#: The endings of the config files mmengine's ``Config.fromfile`` reads.
CONFIG_SUFFIXES = ('.py', '.json', '.yml', '.yaml')


def load_config(path, what='config file'):
    """Read the config at ``path`` (``Config.fromfile``), refusing a file
    that is not one with :class:`ConfigFileError` naming it.

    Reading a config runs it, so a checkpoint given in its place, a syntax
    error or a missing ``_base_`` file would end in a traceback from deep
    in mmengine, which does not say which file to fix.

    Args:
        path (str | Path | Config): The config path the user gave; a
            ``Config`` is returned as it is.
        what (str): How the message names it. Default: 'config file'.

    Returns:
        Config: The config.
    """
    from mmengine.config import Config
    if isinstance(path, Config):
        return path
    path = str(path)
    check_input_file(path, what)
    try:
        return Config.fromfile(path)
    except Exception as err:  # noqa: BLE001  (any fault of the file)
        first = str(err).strip().splitlines()
        reason = f'{type(err).__name__}: {first[0] if first else ""}'
        hint = ''
        if osp.splitext(path)[1] not in CONFIG_SUFFIXES:
            hint = ' (configs are .py files, e.g. configs/dsnet/' \
                   'dsnet_isic2017.py; was a checkpoint given in its place?)'
        raise ConfigFileError(f'{what} {path} cannot be read as a config: '
                              f'{reason}{hint}') from err


def check_config_sets(cfg, config, keys, needs):
    """Refuse a config that lacks what a tool runs (a model or dataset base
    config given to a tool that needs a whole one), before any work: the
    config object raised an ``AttributeError`` traceback where the tool
    first read the key.

    Args:
        cfg (Config): The loaded config.
        config (str): Its file, for the message.
        keys (Sequence[str]): Dotted keys the tool reads (``model``,
            ``train_dataloader.dataset.pipeline``); each must hold a dict or
            a list.
        needs (str): What the tool needs them for and which config to give
            (the message's second half).

    Raises:
        ConfigFileError: ``config file <config> sets no <keys>: <needs>``,
        naming every key it lacks.
    """
    missing = []
    for key in keys:
        first, *rest = key.split('.')
        value = cfg.get(first)
        for part in rest:
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, (dict, list, tuple)):
            missing.append(key)
    if missing:
        raise ConfigFileError(f'config file {config} sets no '
                              f'{", ".join(missing)}: {needs}')


def apply_cfg_options(cfg, cfg_options):
    """Merge ``--cfg-options`` into ``cfg`` once
    :func:`check_options_take_effect` has passed them.

    Args:
        cfg (Config): The config as read.
        cfg_options (dict | None): The ``--cfg-options`` (dotted keys).

    Returns:
        Config: ``cfg``, changed in place.
    """
    if cfg_options:
        check_options_take_effect(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    return cfg


def load_tool_config(config, cfg_options=None, keys=(), needs='',
                     launcher=None):
    """The config a tool runs: read (:func:`load_config`), its
    ``--cfg-options`` checked and merged (:func:`apply_cfg_options`), and
    the keys the tool reads checked (:func:`check_config_sets`).

    Args:
        config (str): The config file the user gave.
        cfg_options (dict | None): The ``--cfg-options``.
        keys (Sequence[str]): Dotted keys the tool reads; none checked when
            empty.
        needs (str): What the tool needs them for (see
            :func:`check_config_sets`).
        launcher (str | None): ``cfg.launcher`` to set, before the options
            (so that ``--cfg-options launcher=...`` still wins).

    Returns:
        Config: The config.
    """
    cfg = load_config(config)
    if launcher is not None:
        cfg.launcher = launcher
    apply_cfg_options(cfg, cfg_options)
    if keys:
        # A model or dataset base config: an AttributeError traceback (or a
        # registry error with a spelling hint) where the key is first read.
        check_config_sets(cfg, config, keys, needs)
    return cfg


def set_work_dir(cfg, work_dir, config):
    """Set ``cfg.work_dir``: the command line's, else the config's, else
    ``./work_dirs/<config name>`` (as mmseg's tools choose it).

    Args:
        cfg (Config): The config.
        work_dir (str | None): ``--work-dir``.
        config (str): The config file, whose name names the default.
    """
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])


#: The keys mmengine's ``Runner.scale_lr`` reads from ``auto_scale_lr``.
AUTO_SCALE_LR_KEYS = ('enable', 'base_batch_size')


def check_auto_scale_lr(cfg, config=None):
    """Refuse an ``auto_scale_lr`` mmengine would not apply as written: a
    key it does not read (``enabled=True``: the rate would be left
    unscaled without a word, exit 0), or scaling enabled without a
    positive ``base_batch_size`` (an ``AssertionError`` or
    ``ZeroDivisionError`` traceback once the run has started).

    Args:
        cfg (Config | dict): The merged config.
        config (str, optional): The config file, for the message.

    Raises:
        UserError: Naming the key and what to set.
    """
    scale = cfg.get('auto_scale_lr')
    if not scale:
        return
    where = f'{config}: ' if config else ''
    if not isinstance(scale, dict):
        raise UserError(
            f'{where}auto_scale_lr={scale!r} must be a dict such as '
            'dict(enable=True, base_batch_size=16)')
    for key in scale:
        if key not in AUTO_SCALE_LR_KEYS:
            hint = did_you_mean(key, AUTO_SCALE_LR_KEYS)
            raise UserError(
                f'{where}auto_scale_lr.{key} is not read by mmengine, which '
                f'takes only {" and ".join(AUTO_SCALE_LR_KEYS)}{hint} (the '
                'learning rate would not be scaled as meant)')
    base = scale.get('base_batch_size')
    if scale.get('enable', False) and (
            isinstance(base, bool) or not isinstance(base, int) or base < 1):
        raise UserError(
            f'{where}auto_scale_lr is enabled with '
            f'base_batch_size={base!r}; give the batch size the '
            'learning rate is set for (a positive integer), or set '
            'auto_scale_lr.enable=False')


#: The ``env_cfg`` keys mmengine's ``Runner.setup_env`` reads; it
#: ignores any other without a word.
ENV_CFG_KEYS = ('cudnn_benchmark', 'mp_cfg', 'dist_cfg', 'resource_limit')


def check_env_cfg_keys(cfg, config=None):
    """Refuse an ``env_cfg`` key mmengine's runner does not read
    (``cudnn_benchmrk``: ignored without a word, the run going on with
    mmengine's default), or an ``env_cfg.mp_cfg`` key its
    ``set_multi_processing`` does not take (``mp_start_methd``: the
    runner stops on it once it has made the work dir). ``dist_cfg`` goes
    to the distributed launcher as it is, and is left to it; a runner
    class that sets up its environment its own way is left to itself.

    Args:
        cfg (Config | dict): The merged config.
        config (str, optional): The config file, for the message.

    Raises:
        UserError: Naming the key and the closest one read.
    """
    from mmengine.runner import Runner
    from mmengine.utils.dl_utils import set_multi_processing

    from ..log_dir import SeparateLogDirRunner, runner_class
    from .validation import _named_parameters
    env = cfg.get('env_cfg')
    if not isinstance(env, dict):
        return
    if any('setup_env' in vars(klass) and
           klass not in (Runner, SeparateLogDirRunner)
           for klass in runner_class(cfg).__mro__):
        return
    where = f'{config}: ' if config else ''
    # The runner gives 'distributed' itself.
    mp_keys, _ = _named_parameters(set_multi_processing)
    mp_keys = sorted(mp_keys - {'distributed'})
    mp_cfg = env.get('mp_cfg')
    for prefix, keys, node, reader, effect in (
            ('env_cfg', ENV_CFG_KEYS, env, "mmengine's runner",
             'it would be ignored'),
            ('env_cfg.mp_cfg', mp_keys,
             mp_cfg if isinstance(mp_cfg, dict) else {},
             "mmengine's set_multi_processing",
             'the runner would stop on it')):
        for key in node:
            if key in keys:
                continue
            hint = did_you_mean(key, keys)
            raise UserError(
                f'{where}{prefix}.{key}={node[key]!r} is not read by '
                f'{reader}, which reads {", ".join(keys)}{hint} '
                f'({effect}). Nothing was started.')


def train_loop_class(cfg):
    """The loop class mmengine's runner builds from ``cfg.train_cfg``: the
    registered ``type``, else ``EpochBasedTrainLoop`` or
    ``IterBasedTrainLoop`` by ``by_epoch``.

    Args:
        cfg (Config | dict): The merged config.

    Returns:
        type | None: The class; None for a ``train_cfg`` that is no dict,
        a ``type`` that names no registered loop, or a runner class that
        builds its loop its own way.
    """
    from mmengine.registry import LOOPS
    from mmengine.runner import (EpochBasedTrainLoop, IterBasedTrainLoop,
                                 Runner)

    from ..log_dir import runner_class
    train = cfg.get('train_cfg')
    if not isinstance(train, dict) or \
            runner_class(cfg).build_train_loop is not Runner.build_train_loop:
        return None
    kind = train.get('type')
    if kind is None:
        return (EpochBasedTrainLoop if train.get('by_epoch')
                else IterBasedTrainLoop)
    if isinstance(kind, type):
        return kind
    scope = cfg.get('default_scope')
    with LOOPS.switch_scope_and_registry(scope) as registry:
        return registry.get(kind) if isinstance(kind, str) else None


def check_loop_keys(cfg, config=None):
    """Refuse a ``train_cfg`` key the training loop does not take
    (``max_epoch``, ``val_intervl``): mmengine builds the loop only when
    the training starts, and refuses such a key with ``unexpected keyword
    argument`` after the runner has made the work dir, its log folder and
    the dumped config.

    mmengine's runner takes ``by_epoch`` in place of ``type`` (it then
    builds ``EpochBasedTrainLoop`` or ``IterBasedTrainLoop``) and stops
    with a ``RuntimeError`` on both or a ``KeyError`` on neither: these
    are refused with what to set, not with a loop argument spelt alike.

    Args:
        cfg (Config | dict): The merged config.
        config (str, optional): The config file, for the message.

    Raises:
        UserError: Naming the key and the closest argument.
    """
    from .validation import _named_parameters
    loop = train_loop_class(cfg)
    if not isinstance(loop, type):
        return
    train = cfg['train_cfg']
    where = f'{config}: ' if config else ''
    if 'type' in train and 'by_epoch' in train:
        raise UserError(
            f'{where}train_cfg.by_epoch={train["by_epoch"]!r} is given '
            f'beside train_cfg.type={train["type"]!r}, and mmengine\'s '
            'runner takes only one of them (by_epoch picks '
            'EpochBasedTrainLoop or IterBasedTrainLoop when no type is '
            'given); remove train_cfg.by_epoch. Nothing was started.')
    if 'type' not in train and 'by_epoch' not in train:
        raise UserError(
            f'{where}train_cfg gives neither type nor by_epoch, and '
            "mmengine's runner needs one of them to pick the training "
            "loop; set train_cfg.type='EpochBasedTrainLoop' (or "
            "'IterBasedTrainLoop'). Nothing was started.")
    taken, takes_more = _named_parameters(loop.__init__)
    if takes_more:
        return
    # The runner passes these itself; 'by_epoch' picks the class when no
    # 'type' is given.
    taken = sorted(taken - {'runner', 'dataloader'} |
                   {'type' if 'type' in train else 'by_epoch'})
    for key in train:
        if key in taken:
            continue
        # Suggested among the loop's arguments only: the key that picks
        # the loop is given already ('by_epoch' is no guess for
        # 'max_epochs' of an iteration loop).
        hint = did_you_mean(key, [name for name in taken if name not in
                                  ('type', 'by_epoch')]) or '.'
        raise UserError(
            f'{where}train_cfg.{key}={train[key]!r} is no argument of '
            f'{loop.__name__}{hint} Nothing was started.')


def check_training_schedule(cfg, config=None):
    """Refuse a ``train_cfg`` key the loop does not take
    (:func:`check_loop_keys`) and counts of mmengine's epoch or iteration
    loop that it would not run as meant: ``max_epochs`` / ``max_iters``
    below 1 (the run would make its work dir and end at once, with no
    checkpoint and exit 0) or not whole (``2.5``: mmengine asserts it once
    the work dir is made), a ``val_interval`` below 1 or not whole when
    the run validates (``0``: a ``ZeroDivisionError`` after the first
    epoch, its checkpoint left behind; below 0: every epoch validated), a
    ``train_dataloader`` key no one reads (:func:`~.data.check_loader_keys`),
    a ``batch_size`` below 1 (torch's ``ValueError`` once the runner is
    built) or workers torch refuses (:func:`~.data.check_loader_workers`).
    Other loops' counts are left to themselves.

    Args:
        cfg (Config | dict): The merged config.
        config (str, optional): The config file, for the message.

    Raises:
        UserError: Naming the key, its value and what to set.
    """
    check_loop_keys(cfg, config)
    where = f'{config}: ' if config else ''
    train = cfg.get('train_cfg')
    if not isinstance(train, dict) or train.get('type') not in (
            None, 'EpochBasedTrainLoop', 'IterBasedTrainLoop',
            'mmengine.EpochBasedTrainLoop', 'mmengine.IterBasedTrainLoop'):
        return
    from .data import (check_batch_sizes, check_loader_keys,
                       check_loader_workers)
    keys = ['max_epochs', 'max_iters']
    if has_val_loop(cfg):
        keys.append('val_interval')
    for key in keys:
        value = train.get(key)
        # mmengine asserts whole max_epochs / max_iters once the work dir
        # is made; a fractional val_interval skips the epochs it does not
        # divide.
        whole = isinstance(value, int) and not isinstance(value, bool)
        if value is not None and (not whole or value < 1):
            what = ('an epoch or iteration count that validation comes '
                    'at (to train without validation set val_cfg=None '
                    'val_dataloader=None val_evaluator=None)'
                    if key == 'val_interval' else 'how long to train')
            raise UserError(
                f'{where}train_cfg.{key}={value} must be a whole number of '
                f'at least 1: {what}. Nothing was started.')
    check_loader_keys(cfg, ('train_dataloader', ), config)
    check_batch_sizes(cfg, ('train_dataloader', ), config)
    check_loader_workers(cfg, ('train_dataloader', ), config)
