"""Read one mmengine work dir into a leaderboard run record.

Everything comes from what the run wrote — the text log, ``scalars.json``,
the dumped config, ``test_metrics.json`` — never from typed-in numbers. The
record says where each figure came from (``*_source`` / ``*_method`` keys).

Used by :func:`mmseg_dsnet.leaderboard.board.collect`; no torch import
(the complexity and timing measurements are the tools').
"""
import glob
import json
import os.path as osp
import re

from mmseg_dsnet.datasets.synthetic_fallback import is_synthetic
from mmseg_dsnet.engine.log_dir import log_dir_order, log_dirs
from mmseg_dsnet.utils.code_revision import LOG_PREFIX
from mmseg_dsnet.utils.errors import UserError
from mmseg_dsnet.utils.messages import counted, first_few
from mmseg_dsnet.utils.paths import REPO_ROOT

from .records import load_json
from .table import METRIC_FIELDS
# LesionMetric's keys, in the order of its log line.
METRIC_KEYS = ('IoU', 'DSC', 'Acc', 'Sen', 'Spe', 'IoU_orig', 'DSC_orig',
               'Acc_orig', 'Sen_orig', 'Spe_orig', 'mIoU_img', 'mDSC_img',
               'TJ', 'mIoU', 'mDice')
# The literature protocol's length; shorter runs are flagged as short.
PROTOCOL_EPOCHS = 300


class IncompleteWorkDirError(UserError, FileNotFoundError):
    """A work dir lacks what a run record is read from (the training log,
    the test metrics): the run did not happen there or did not finish."""


class MissingSeedError(UserError, ValueError):
    """The run's dumped config sets no seed and the seed was asked to come
    from it (``--seed-from-config``)."""


_TIMESTAMP = re.compile(r'^(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) - ')
_EPOCH_TRAIN = re.compile(r'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]')
_ITER_TRAIN = re.compile(r'Iter\(train\)\s*\[\s*(\d+)/(\d+)\]')
_SAVED_EPOCH = re.compile(r'Saving checkpoint at (\d+) epochs')
_GPU = re.compile(r'^\s*GPU ([\d,]+): (.+?)\s*$')
_RUNTIME_SEED = re.compile(r'^\s+seed: (\d+)\s*$')
# mmengine's runtime environment: the processes of the run.
_RUNTIME_WORLD = re.compile(r'^\s+GPU number: (\d+)\s*$')
# fast_train.py's runtime environment: the device it trained on.
_RUNTIME_DEVICE = re.compile(r'^\s+device: (.+?)\s*$')


def _seconds(line):
    """Seconds since an arbitrary origin of a timestamped log line."""
    match = _TIMESTAMP.match(line)
    if not match:
        return None
    import datetime
    return datetime.datetime(*map(int, match.groups())).timestamp()


def _read_json_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _dumped_config(work_dir, ts_dir):
    """The config a run used: the runner's own dump at the work-dir root
    (``<work_dir>/<config name>.py``) when there is exactly one, else the
    visualizer's copy in ``<ts>/vis_data/config.py``. (Several runners in
    one process share the first one's visualizer, so its ``vis_data`` may
    hold another run's config and scalars.)"""
    dumps = glob.glob(osp.join(work_dir, '*.py'))
    if len(dumps) == 1:
        return dumps[0]
    return osp.join(ts_dir, 'vis_data', 'config.py')


def _log_has_training(log):
    with open(log, errors='replace') as f:
        return 'Epoch(train)' in f.read()


def find_runs(work_dir):
    """The timestamped run folders of a work dir, split into training runs
    (their text log has ``Epoch(train)`` lines) and test runs
    (``tools/test.py`` writes ``<ts>/<ts>.json``), oldest first."""
    train, test = [], []
    # In start order: as strings, <ts>_10 (the 11th run of a second) came
    # before <ts>_2, and the latest training or test was misread.
    for ts_dir in log_dirs(work_dir) if osp.isdir(work_dir) else []:
        ts = osp.basename(ts_dir)
        log = osp.join(ts_dir, f'{ts}.log')
        if not osp.isfile(log):
            continue
        scalars = osp.join(ts_dir, 'vis_data', 'scalars.json')
        lines = _read_json_lines(scalars) if osp.isfile(scalars) else []
        run = dict(dir=ts_dir, log=log, scalars=scalars, lines=lines,
                   config=_dumped_config(work_dir, ts_dir),
                   test_json=osp.join(ts_dir, f'{ts}.json'))
        if _log_has_training(log):
            train.append(run)
        elif osp.isfile(run['test_json']):
            test.append(run)
    return train, test


def parse_log(path):
    """Facts of one text log: device, seed, training-loop wall time, epochs
    and iterations seen (``first_epoch``: the first epoch it trained;
    ``resumed``: it says it resumed from a checkpoint; ``saved_at``: when it
    began its last checkpoint save)."""
    with open(path, errors='replace') as f:
        lines = f.read().splitlines()
    info = dict(cuda=None, gpu=None, seed=None, loop_start=None, last=None,
                epoch=0, epoch_idx=0, iters_per_epoch=None, iter=0,
                saved_epoch=0, saved_at=None, first=None, first_epoch=None,
                resumed=False, world_size=None, device=None, code=None)
    in_runtime = False
    for line in lines:
        if LOG_PREFIX in line and info['code'] is None:
            info['code'] = line.split(LOG_PREFIX, 1)[1].strip()
        if 'CUDA available:' in line and info['cuda'] is None:
            info['cuda'] = line.split(':', 1)[1].strip() == 'True'
        gpu = _GPU.match(line)
        if gpu and info['gpu'] is None:
            info['gpu'] = gpu.group(2)
        if line.strip() == 'Runtime environment:':
            in_runtime = True
        seed = _RUNTIME_SEED.match(line)
        if in_runtime and seed and info['seed'] is None:
            info['seed'] = int(seed.group(1))
        world = _RUNTIME_WORLD.match(line)
        if in_runtime and world and info['world_size'] is None:
            info['world_size'] = int(world.group(1))
        device = _RUNTIME_DEVICE.match(line)
        if in_runtime and device and info['device'] is None:
            info['device'] = device.group(1)
        stamp = _seconds(line)
        if stamp is None:
            continue
        in_runtime = False
        info['last'] = stamp
        if info['first'] is None:
            info['first'] = stamp
        # mmengine's 'resumed epoch: N, iter: M' / 'Auto resumed from ...',
        # fast_train.py's 'resumed from PATH (epoch N)'; mmengine's 'Auto
        # resumed from the latest checkpoint None.' is a --resume that found
        # nothing and started anew.
        if ('resumed epoch: ' in line or 'resumed from ' in line) and \
                not line.rstrip().endswith('the latest checkpoint None.'):
            info['resumed'] = True
        if 'Checkpoints will be saved to' in line:
            info['loop_start'] = stamp
        match = _EPOCH_TRAIN.search(line)
        if match:
            epoch, idx, total = map(int, match.groups())
            info['epoch'], info['epoch_idx'] = epoch, idx
            if info['first_epoch'] is None:
                info['first_epoch'] = epoch
            info['iters_per_epoch'] = total
        match = _ITER_TRAIN.search(line)
        if match:
            info['iter'] = max(info['iter'], int(match.group(1)))
        match = _SAVED_EPOCH.search(line)
        if match:
            info['saved_epoch'] = max(info['saved_epoch'], int(match.group(1)))
            info['saved_at'] = stamp
    return info


def code_revision_of(infos):
    """The code that trained a run, as its training logs name it: one
    commit, or each part's in order where a resumed run changed code
    (``', '``-joined); None for logs that name none (runs before the logs
    named their code)."""
    named = []
    for info in infos:
        code = info.get('code') or 'not named in its log'
        if code not in named:
            named.append(code)
    known = [code for code in named if code != 'not named in its log']
    return ', '.join(named) if known else None


def training_device(work_dir, train_runs, infos, fast_facts=None):
    """The device the latest training ran on, as a record names it: the
    GPU's name (``'4 x NVIDIA H100'`` for four processes) or ``'CPU'``.

    The log's environment says only whether CUDA was there: a
    ``fast_train.py --device cpu`` run on a GPU machine was recorded as a
    run on that GPU. fast_train.py's own line (``device: CPU``) or, in
    logs written before it, its ``fast_train.json`` say what ran.

    Args:
        work_dir (str): The work dir, for the message.
        train_runs (list[dict]): The latest training's runs, oldest first.
        infos (list[dict]): Their :func:`parse_log` facts.
        fast_facts (dict, optional): ``fast_train.json`` of the work dir.

    Returns:
        str: The device.

    Raises:
        UserError: The runs (a training and its resumptions) ran on
            different devices or numbers of processes: the record's
            training time would add up both under one name.
    """
    devices = []
    for index, info in enumerate(infos):
        device = info['device']
        if device is None and fast_facts is not None:
            # fast_train.json is of the last run; older fast_train.py logs
            # do not say their device.
            device = fast_facts.get('device') \
                if index == len(infos) - 1 else None
        elif device is None:
            device = (info['gpu'] or 'GPU') if info['cuda'] else 'CPU'
        if device is not None and (info['world_size'] or 1) > 1:
            device = (f'{info["world_size"]} x {device}'
                      if device != 'CPU' else
                      f'CPU, {info["world_size"]} processes')
        devices.append(device)
    known = [(run, device) for run, device in zip(train_runs, devices)
             if device is not None]
    if len({device for _, device in known}) > 1:
        raise UserError(
            f'{work_dir}: its training ran on different devices: '
            + '; '.join(f'{osp.relpath(run["log"], work_dir)}: {device}'
                        for run, device in known)
            + '; the record\'s training time and device would mix them. '
            'Collect runs that trained on one device (train again, or '
            'resume on the device the run started on)')
    return known[-1][1] if known else 'CPU'


def latest_training(train_runs, infos):
    """The runs of a work dir's latest training: from the last run that
    started at epoch 1 without resuming a checkpoint on.
    Runs before it belong to an earlier training in the same work dir (a
    second ``train.py`` without ``--resume``): their epochs, times and
    checkpoints are not this training's.

    Args:
        train_runs (list[dict]): Training runs, oldest first
            (:func:`find_runs`).
        infos (list[dict]): Their :func:`parse_log` facts.

    Returns:
        tuple: The latest training's runs and facts, and the earlier runs.
    """
    start = max((index for index, info in enumerate(infos)
                 if info['first_epoch'] == 1 and not info['resumed']),
                default=0)
    return train_runs[start:], infos[start:], train_runs[:start]


def time_to_last_checkpoints(work_dir):
    """Seconds the runs of the latest training in ``work_dir`` (a training
    and its resumptions, :func:`latest_training`) trained up to their last
    checkpoint: what a run resumed from the newest one has trained so far.
    The epochs a stopped run trained after its last checkpoint are trained
    again by the resumed run and are not counted twice.

    Args:
        work_dir (str): The run's work dir, before the resumed run starts.

    Returns:
        float: Seconds from each run's training-loop start to the start of
        its last checkpoint save (1 s resolution), summed; 0.0 when no run
        saved one.
    """
    train_runs, _ = find_runs(work_dir)
    infos = [parse_log(run['log']) for run in train_runs]
    if not infos:
        return 0.0
    _, latest, _ = latest_training(train_runs, infos)
    return float(sum(info['saved_at'] - info['loop_start'] for info in latest
                     if info['saved_at'] is not None
                     and info['loop_start'] is not None))


def training_progress(infos):
    """Epochs and iterations completed over (possibly resumed) runs."""
    last = infos[-1]
    per_epoch = next((i['iters_per_epoch'] for i in reversed(infos)
                      if i['iters_per_epoch']), None)
    if per_epoch:
        done = last['epoch'] if last['epoch_idx'] == per_epoch else \
            last['epoch'] - 1
        epochs = max([done] + [i['saved_epoch'] for i in infos])
        return dict(epochs=epochs, iterations=epochs * per_epoch,
                    iters_per_epoch=per_epoch)
    return dict(epochs=None, iterations=max(i['iter'] for i in infos),
                iters_per_epoch=None)


def check_training_finished(work_dir, cfg, epochs):
    """Refuse a run that trained fewer epochs than its config sets (stopped
    by ``fast_train.py --time-limit``, or a training that was killed, then
    tested): its record would stand under an ``N epochs`` schedule as if it
    had trained one, while its learning rate followed the longer schedule
    and never reached its end.

    Args:
        work_dir (str): The run's work dir (its ``fast_train.json`` says why
            a fast run stopped).
        cfg (Config): The run's dumped config.
        epochs (int | None): The epochs it trained
            (:func:`training_progress`); None when unknown.

    Raises:
        IncompleteWorkDirError: Naming the epochs trained and planned.
    """
    train_cfg = cfg.get('train_cfg') or {}
    planned = train_cfg.get('max_epochs')
    if epochs is None or not isinstance(planned, int) or epochs >= planned:
        return
    hooks = cfg.get('custom_hooks') or []
    if any(isinstance(hook, dict) and 'EarlyStopping' in str(hook.get('type'))
           for hook in hooks):
        return  # stopping early is what the config asks for
    why = ''
    fast = osp.join(work_dir, 'fast_train.json')
    if osp.isfile(fast):
        stopped = load_json(fast).get('stopped')
        if stopped:
            why = f' (fast_train.json: {stopped})'
    raise IncompleteWorkDirError(
        f'{work_dir}: its training stopped after epoch {epochs} of the '
        f'{planned} its config sets{why}: it is a run cut short, not one of '
        f'a {epochs}-epoch schedule; finish it (tools/train.py or '
        'tools/fast_train.py with --resume), test its final checkpoint, '
        'then collect')


def training_time(train_runs, infos):
    """Wall time of the training loops (from log timestamps) and the sum of
    the logged iteration times (from scalars.json).

    mmengine logs ``time`` as a moving mean over the last iterations, so the
    sum weights each logged value by the iterations since the previous
    logged line: exact for constant step time, an estimate otherwise.
    """
    walls = [i['last'] - i['loop_start'] for i in infos
             if i['loop_start'] is not None and i['last'] is not None]
    by_step = {}
    for run in train_runs:
        for line in run['lines']:
            if 'loss' in line and 'time' in line and 'step' in line:
                by_step[int(line['step'])] = float(line['time'])
    iter_sum, previous = 0.0, 0
    for step in sorted(by_step):
        iter_sum += by_step[step] * (step - previous)
        previous = step
    result = dict(iter_time_sum_s=round(iter_sum, 3) if by_step else None)
    if len(walls) == len(infos):
        result.update(
            train_time_s=float(sum(walls)),
            train_time_method=(
                'wall clock of the training loop from the log timestamps '
                "('Checkpoints will be saved to' to the last line, incl. "
                'in-training validation and checkpointing; 1 s resolution)'
                + (f', summed over {len(walls)} resumed runs'
                   if len(walls) > 1 else '')))
    else:
        result.update(
            train_time_s=result['iter_time_sum_s'],
            train_time_method=(
                'sum over logged train lines of the logged (moving-mean) '
                'iteration time x iterations since the previous line'))
    return result


def final_metrics(work_dir, train_runs, test_runs, metrics_file=None):
    """Test metrics and where they came from: ``test_metrics.json`` (written
    by tools/test.py), else the newest test-run dump, else the last
    validation line of the training log.

    Returns:
        tuple: metrics (LesionMetric key -> percent), source kind, source
        description, evaluated checkpoint (a runner dump's: the test's
        ``load_from``; or None).
    """
    path = metrics_file or osp.join(work_dir, 'test_metrics.json')
    if osp.isfile(path):
        record = load_json(path)
        metrics, source = lesion_figures(
            record['metrics'], f'tools/test.py metrics file '
            f'{osp.abspath(path)}', path)
        return (metrics, 'test_metrics.json', source,
                record.get('checkpoint'))
    if metrics_file:
        raise IncompleteWorkDirError(f'metrics file {metrics_file} does not '
                                     'exist')
    # mmengine's LoggerHook dumps test results to <ts>/<ts>.json (also
    # when a script trains and tests with one runner).
    dumps = sorted(((log_dir_order(osp.basename(run['dir'])),
                     run['test_json']) for run in train_runs + test_runs
                    if osp.isfile(run['test_json'])))
    if dumps:
        dump = dumps[-1][1]
        line = load_json(dump)
        if _has_iou(line):
            metrics, source = lesion_figures(
                _metric_subset(line), 'test results dumped by the runner, '
                f'{osp.relpath(dump, work_dir)}', dump)
            # Unnamed, a test of epoch_1.pth (--metrics-out elsewhere)
            # passed the checks of the tested checkpoint as the final one's.
            tested = next((_tested_checkpoint(run) for run in test_runs
                           if run['test_json'] == dump), None)
            return metrics, 'runner test dump', source, tested
    for run in reversed(train_runs):
        val = [line for line in run['lines'] if _has_iou(line)]
        if val:
            metrics, source = lesion_figures(
                _metric_subset(val[-1]), 'last validation line of '
                f'{osp.relpath(run["scalars"], work_dir)} '
                f'(epoch/step {val[-1].get("step")})', run['scalars'])
            return metrics, 'last validation line', source, None
    raise IncompleteWorkDirError(
        f'no test or validation metrics in {work_dir}: test the run first '
        '(tools/test.py CONFIG CHECKPOINT --work-dir WORK_DIR)')


def _tested_checkpoint(run):
    """The checkpoint a test run scored: the ``load_from`` of its own
    config copy, ``<ts>/vis_data/config.py`` (``tools/test.py`` sets it to
    its CHECKPOINT argument, as given), or None when the copy is not there
    or names none.

    Args:
        run (dict): A test run of :func:`find_runs` (not a training: its
            ``load_from`` is where the training started).
    """
    from mmengine.config import Config
    path = osp.join(run['dir'], 'vis_data', 'config.py')
    if not osp.isfile(path):
        return None
    return Config.fromfile(path).get('load_from') or None


def _metric_subset(line):
    return {k: float(v) for k, v in line.items()
            if k not in ('data_time', 'time', 'step', 'epoch', 'iter')}


#: The figures of a run record: LesionMetric's, by their own names.
LESION_KEYS = tuple(key for _, key, _ in METRIC_FIELDS)


def _has_iou(line):
    """Whether a logged line holds LesionMetric's IoU, with or without an
    evaluator's ``prefix/``."""
    return any(key.rpartition('/')[2] == 'IoU' for key in line)


def lesion_figures(metrics, source, path):
    """LesionMetric's figures among an evaluation's ``metrics``, by the
    names a run record keeps them under.

    An evaluator's ``prefix`` names each figure ``prefix/IoU``: read as
    they were, a record held none of the keys the leaderboard shows, and
    its row showed ``-`` for every figure (exit 0).

    Args:
        metrics (dict): The evaluation's figures.
        source (str): Where they were read, for the record.
        path (str): Their file, for the message.

    Returns:
        tuple: The figures (the metrics as they were when they hold
        ``IoU`` unprefixed; else the one prefixed LesionMetric's, the
        prefix taken off) and ``source`` (naming the prefix taken off).

    Raises:
        UserError: When no LesionMetric's figures are there, or those of
            several prefixes (which one is the row's is not known).
    """
    if 'IoU' in metrics:
        return metrics, source
    groups = {}
    for key, value in metrics.items():
        prefix, slash, name = key.rpartition('/')
        if slash and name in LESION_KEYS:
            groups.setdefault(prefix, {})[name] = value
    found = sorted(prefix for prefix, group in groups.items()
                   if 'IoU' in group)
    if not found:
        keys = first_few(sorted(metrics), 8) or 'none'
        raise UserError(
            f'{path} holds no LesionMetric figures (no IoU; its keys: '
            f'{keys}): a leaderboard row shows LesionMetric\'s IoU, DSC, '
            '... ; test the checkpoint with a config whose test_evaluator '
            'is LesionMetric')
    if len(found) > 1:
        raise UserError(
            f'{path} holds the figures of {len(found)} LesionMetric '
            f'evaluators (prefixes {", ".join(map(repr, found))}): a '
            'leaderboard row has one set of figures and which is the '
            "config's is not known; test with one LesionMetric")
    prefix, = found
    return groups[prefix], (f'{source} (evaluator prefix {prefix!r} '
                            'taken off the figure names)')


def resolve_config_path(path):
    """A path from a config: as written (absolute or relative to the
    current directory), else relative to the repository root."""
    for candidate in (path, osp.join(REPO_ROOT, path)):
        if osp.exists(candidate):
            return candidate
    return None


def split_size(dataset_cfg):
    """Number of images a dataset config uses: the ids its split file
    lists, as the ISIC datasets read them, cut by ``indices``; None when
    the split file is not readable here.

    Args:
        dataset_cfg (dict): A dataset config (``data_root``, ``ann_file``,
            ``indices``).

    Raises:
        UserError: The split file is one the datasets refuse (not plain
            UTF-8 text, an id listed more than once): no run reads it.
    """
    from mmseg_dsnet.datasets.isic import check_split_repeats
    from mmseg_dsnet.datasets.split_files import split_ids
    root = dataset_cfg.get('data_root', '') or ''
    ann = dataset_cfg.get('ann_file', '') or ''
    path = resolve_config_path(osp.join(root, ann)) if ann else None
    if path is None or not osp.isfile(path):
        return None
    ids = split_ids(path)
    check_split_repeats(ids, path)
    count = len(ids)
    indices = dataset_cfg.get('indices')
    if isinstance(indices, int):
        count = min(count, indices)
    elif indices is not None:
        count = len(indices)
    return count


def data_meta(found):
    """The ``meta.json`` the converter wrote into the resolved data root
    ``found``, or an empty dict when there is none."""
    meta_file = osp.join(found, 'meta.json') if found else None
    return load_json(meta_file) if meta_file and osp.isfile(meta_file) \
        else {}


def looks_synthetic(root):
    """Whether a config's data root holds a synthetic set: its marker, or
    (sets made before the marker) the name of the set or of its source."""
    found = resolve_config_path(root) if root else None
    if not found:
        return 'synthetic' in str(root).lower()
    meta = data_meta(found)
    return is_synthetic(found) or 'synthetic' in str(root).lower() or \
        'synthetic' in str(meta.get('source', '')).lower()


def data_year(root):
    """The ISIC year the converter wrote into ``root``'s ``meta.json``, or
    None (no such folder or file, no year)."""
    year = data_meta(resolve_config_path(root) if root else None).get('year')
    return int(year) if isinstance(year, int) else None


def test_protocol(dataset_cfg):
    """The protocol whose test split a test dataset config reads: that of
    the converter's test split of its data root (``official_test.txt``,
    ``lightweight_test.txt``) that lists the same images, where both are
    found here, so a copy under another name is labelled by what it
    holds; else the first word of its split file's name
    (``lightweight_test.txt``: ``lightweight``).

    Args:
        dataset_cfg (dict): A ``test_dataloader.dataset`` config.

    Returns:
        str | None: The protocol; None without a split file.
    """
    from mmseg_dsnet.datasets.split_files import (split_file, split_ids,
                                                  test_split_files)
    split = osp.basename(dataset_cfg.get('ann_file', '') or '')
    path = split_file(dataset_cfg)
    found = resolve_config_path(path) if path else None
    if found and osp.isfile(found):
        root = resolve_config_path(dataset_cfg.get('data_root') or '')
        ids = set(split_ids(found))
        for test in test_split_files(root or ''):
            if set(split_ids(test)) == ids:
                split = osp.basename(test)
                break
    return split.split('_')[0] if '_' in split else \
        osp.splitext(split)[0] or None


def loader_data_name(dataset_cfg):
    """The split file a loader's dataset config reads as the config names
    it (``ann_file``); for a wrapper, its type and the split files of the
    datasets it holds: ``'RepeatDataset (times=3) of
    splits/lightweight_test.txt'``.

    Args:
        dataset_cfg (dict): A loader's ``dataset`` config.

    Returns:
        str | None: The name; None for a dataset without a split file.
    """
    from mmseg_dsnet.datasets.split_files import dataset_leaves
    leaves = dataset_leaves(dataset_cfg)
    if [path for path, _ in leaves] == ['dataset']:
        return dataset_cfg.get('ann_file')
    kind = dataset_cfg.get('type')
    kind = getattr(kind, '__name__', kind)
    times = f' (times={dataset_cfg["times"]})' \
        if 'times' in dataset_cfg else ''
    files = ' + '.join(str(leaf.get('ann_file')) for _, leaf in leaves)
    return f'{kind}{times} of {files}'


#: What :func:`tested_split` tells to do of a run whose test loader
#: scores no test split.
TEST_ON_THE_SPLIT = ('test the checkpoint with tools/test.py and a config '
                     'whose test loader reads that split '
                     '(splits/lightweight_test.txt or '
                     'splits/official_test.txt), then collect')


def tested_split(dataset_cfg, where, advice=TEST_ON_THE_SPLIT):
    """The dataset config of the split a test loader's dataset config
    scores: itself; for a wrapper (Concat, Repeat ...), one of the
    converter's test split of its data root
    (:func:`~mmseg_dsnet.datasets.split_files.test_split_files`) when the
    datasets it holds, each cut by its own ``indices``, score each image
    of that split once and no other (a ``ConcatDataset`` of it or of its
    parts, a ``RepeatDataset`` with ``times=1``).

    A ``RepeatDataset`` with ``times`` above 1 scores each image that
    many times: LesionMetric's pooled and per-image figures are those of
    one pass, but ``tools/test.py`` refuses such a loader
    (:func:`~mmseg_dsnet.evaluation.lesion_metric.check_each_image_once`),
    a validation of it is no test result and its record would count
    each image ``times`` times; it is refused like another split, splits
    joined and a wrapper whose number of images its config does not
    give.

    Args:
        dataset_cfg (dict): A ``test_dataloader.dataset`` config.
        where (str): The work dir (or config), for the message.
        advice (str): What the message tells to do. Default: test the
            checkpoint on the split, then collect.

    Returns:
        dict: A dataset config (``data_root``, ``ann_file``) of the split.

    Raises:
        UserError: For a wrapper that scores anything else, naming it, the
            split files it reads and why it is no test split.
    """
    from mmseg_dsnet.datasets.split_files import (cut_by_indices,
                                                  dataset_leaves,
                                                  split_file, split_ids,
                                                  test_split_files)
    leaves = dataset_leaves(dataset_cfg)
    if [path for path, _ in leaves] == ['dataset']:
        return dataset_cfg
    leaves = [leaf for _, leaf in leaves]
    roots = list(dict.fromkeys(str(leaf.get('data_root') or '')
                               for leaf in leaves))
    files = [split_file(leaf) for leaf in leaves]
    found = [resolve_config_path(path) if path else None for path in files]
    missing = [str(path) for path, here in zip(files, found)
               if here is None or not osp.isfile(here)]
    samples = loader_size(dataset_cfg) if not missing else None
    if len(roots) > 1:
        reason = f'it reads {len(roots)} data roots ({" + ".join(roots)})'
    elif missing:
        reason = f'{" + ".join(missing)} is not found here'
    elif samples is None:
        reason = 'its config does not give how many images it scores'
    else:
        scored = set().union(*(
            cut_by_indices(split_ids(path), leaf.get('indices'))
            for path, leaf in zip(found, leaves)))
        root = resolve_config_path(roots[0]) or ''
        tests = [test for test in test_split_files(root)
                 if set(split_ids(test)) == scored]
        if not tests:
            reason = ('its images are not those of a test split of its '
                      f'data root ({counted(len(scored), "image")})')
        elif samples != len(scored):
            reason = (f'it scores {samples} samples of the '
                      f'{counted(len(scored), "image")} of '
                      f'{osp.relpath(tests[0], root)}: each would weigh '
                      f'{samples / len(scored):g} times in the figures')
        else:
            split = {key: value for key, value in leaves[0].items()
                     if key != 'indices'}
            split['ann_file'] = osp.relpath(tests[0], root)
            return split
    raise UserError(
        f'{where}: its test loader reads '
        f'{loader_data_name(dataset_cfg)} (test_dataloader.dataset): '
        f'{reason}. A leaderboard row is the protocol\'s test split, each '
        f'image of it scored once: {advice}')


def dataset_facts(cfg, test_cfg=None, where=None):
    """Dataset, protocol, data root and image counts of a dumped config.
    A wrapped loader (Concat, Repeat ...) is read through: the test
    loader's split as :func:`tested_split` finds it; the training's
    dataset type, data roots and split files of the datasets it holds
    (each given once, joined by
    :data:`~mmseg_dsnet.datasets.synthetic_fallback.JOINED_PATHS`), its
    distinct images (``train_images``, :func:`loader_images`) and the
    samples an epoch draws of them (``train_samples_per_epoch``,
    :func:`loader_size`): a ``RepeatDataset`` with ``times=2`` trains on
    its split's images, each twice an epoch.

    Args:
        cfg (Config): The run's dumped (training) config.
        test_cfg (Config, optional): The config it was tested with.
        where (str, optional): The work dir, for the messages.

    Raises:
        UserError: A wrapped test loader scores another split than a test
            split, each image once (:func:`tested_split`); a training
            loader holds datasets of several types (a row is of one
            dataset).
    """
    from mmseg_dsnet.datasets.split_files import dataset_leaves
    from mmseg_dsnet.datasets.synthetic_fallback import JOINED_PATHS
    train = cfg.train_dataloader.dataset
    test = tested_split((test_cfg or cfg).test_dataloader.dataset, where)
    leaves = [leaf for _, leaf in dataset_leaves(train)]
    kinds = list(dict.fromkeys(str(leaf.get('type')) for leaf in leaves))
    if len(kinds) > 1:
        raise UserError(
            f'{where}: its training loader reads '
            f'{loader_data_name(train)} (train_dataloader.dataset), '
            f'datasets of several types ({", ".join(kinds)}): a leaderboard '
            'row is of one dataset; train on datasets of one type')
    kind = leaves[0].get('type')
    year = re.search(r'(20\d\d)', str(kind or ''))
    roots = [str(leaf.get('data_root', '')) for leaf in leaves]
    splits = [str(leaf['ann_file']) for leaf in leaves
              if leaf.get('ann_file')]
    return dict(
        dataset=f'ISIC {year.group(1)}' if year else kind,
        dataset_key=f'isic{year.group(1)}' if year else 'unknown',
        dataset_type=kind,
        protocol=test_protocol(test),
        train_split=leaves[0].get('ann_file') if len(leaves) == 1 else
        JOINED_PATHS.join(dict.fromkeys(splits)) or None,
        test_split=test.get('ann_file'),
        data_root=JOINED_PATHS.join(dict.fromkeys(roots)),
        synthetic_data=any(map(looks_synthetic, roots)),
        train_images=loader_images(train),
        train_samples_per_epoch=loader_size(train),
        test_images=split_size(test))


# The wrappers whose number of samples a config gives: how each counts
# the samples of the datasets it holds.
WRAPPER_SIZES = {
    'ConcatDataset': lambda cfg, sizes: sum(sizes),
    'RepeatDataset': lambda cfg, sizes: cfg.get('times', 1) * sizes[0],
    'MultiImageMixDataset': lambda cfg, sizes: sizes[0],
}


def loader_size(dataset_cfg):
    """Number of samples a loader's dataset config gives: those of its
    split file (:func:`split_size`), or for a wrapper the sum over a
    ``ConcatDataset``'s datasets, ``times`` those of a ``RepeatDataset``'s
    and those of a ``MultiImageMixDataset``'s.

    Args:
        dataset_cfg (dict): A loader's ``dataset`` config.

    Returns:
        int | None: None where a split file is not readable here, or for
        another wrapper (one that scores its images a number of times the
        config does not give, as ``ClassBalancedDataset``).
    """
    inner = dataset_cfg.get('datasets')
    if not isinstance(inner, (list, tuple)):
        inner = [dataset_cfg['dataset']] if isinstance(
            dataset_cfg.get('dataset'), dict) else None
    if inner is None:
        return split_size(dataset_cfg)
    kind = dataset_cfg.get('type')
    count = WRAPPER_SIZES.get(
        kind if isinstance(kind, str) else getattr(kind, '__name__', None))
    sizes = [loader_size(cfg) if isinstance(cfg, dict) else None
             for cfg in inner]
    if count is None or not sizes or None in sizes:
        return None
    return count(dataset_cfg, sizes)


def loader_images(dataset_cfg):
    """Number of distinct images a loader's dataset config reads: the ids
    of the split file of each dataset it holds, cut by that dataset's
    ``indices``, each image (an id under a data root) counted once however
    often wrappers repeat or join it. :func:`loader_size` counts the
    samples an epoch draws of them.

    Args:
        dataset_cfg (dict): A loader's ``dataset`` config.

    Returns:
        int | None: None where :func:`loader_size` is None (a split file
        not readable here, a wrapper whose samples its config does not
        give).
    """
    from mmseg_dsnet.datasets.split_files import (cut_by_indices,
                                                  dataset_leaves, split_ids)
    if loader_size(dataset_cfg) is None:
        return None
    images, read = set(), {}
    for _, leaf in dataset_leaves(dataset_cfg):
        root = leaf.get('data_root', '') or ''
        # loader_size found each split file, so each resolves here.
        path = resolve_config_path(osp.join(root, leaf['ann_file']))
        where = osp.abspath(resolve_config_path(root) or root)
        images.update((where, image) for image in cut_by_indices(
            split_ids(path, read), leaf.get('indices')))
    return len(images)


def evaluated_data(dataset_cfg, metrics_file=None):
    """The data the final metrics were computed on: as ``tools/test.py``
    wrote it in ``metrics_file``, else from the evaluating loader's config
    (records before the metrics files named their data), as
    :func:`~mmseg_dsnet.datasets.synthetic_fallback.data_provenance`
    names it: for a wrapper (Concat, Repeat ...), the data roots and split
    files of the datasets it holds, joined.

    Args:
        dataset_cfg (dict): The evaluating loader's ``dataset`` config.
        metrics_file (str, optional): A ``tools/test.py`` metrics file.

    Returns:
        dict: ``data_root``, ``split_file``, ``images`` (see
        :func:`loader_size`) and ``synthetic``.
    """
    from mmseg_dsnet.datasets.split_files import dataset_leaves
    from mmseg_dsnet.datasets.synthetic_fallback import JOINED_PATHS
    if metrics_file and osp.isfile(metrics_file):
        written = load_json(metrics_file)
        if 'data_root' in written:
            return {key: written.get(key) for key in
                    ('data_root', 'split_file', 'images', 'synthetic')}
    roots, splits, synthetic = [], [], False
    for _, leaf in dataset_leaves(dataset_cfg):
        root = leaf.get('data_root', '') or ''
        ann = leaf.get('ann_file', '') or ''
        found = resolve_config_path(root)
        roots.append(osp.abspath(found or root))
        splits.append(osp.abspath(osp.join(found or root, ann))
                      if ann else None)
        synthetic = synthetic or looks_synthetic(root)
    return dict(
        data_root=JOINED_PATHS.join(dict.fromkeys(roots)),
        split_file=None if None in splits or not splits else
        JOINED_PATHS.join(splits),
        images=loader_size(dataset_cfg),
        synthetic=synthetic)


def model_name(config_path):
    """Model name from a config file name: ``dsnet_isic2017_official.py``
    -> ``dsnet``."""
    stem = osp.splitext(osp.basename(config_path))[0]
    return re.sub(r'_isic20\d\d.*$', '', stem)


def architecture(cfg):
    model = cfg.model
    head = model.get('decode_head') or {}
    losses = head.get('loss_decode', [])
    losses = losses if isinstance(losses, (list, tuple)) else [losses]
    return dict(segmentor=model.get('type'),
                backbone=(model.get('backbone') or {}).get('type'),
                decode_head=head.get('type'),
                losses=[loss.get('type') for loss in losses],
                pretrained=model.get('pretrained') or (
                    (model.get('backbone') or {}).get('init_cfg') or {}
                ).get('checkpoint'))


def slug(text):
    return re.sub(r'[^a-z0-9.]+', '-', str(text).lower()).strip('-')


def _tested_with_cfg_options(metrics_kind, metrics_file):
    """The ``--cfg-options`` ``tools/test.py`` wrote into its metrics file
    (empty for other metrics sources and for files written before it
    recorded them)."""
    if metrics_kind == 'test_metrics.json':
        return dict(load_json(metrics_file).get('cfg_options') or {})
    return {}


def _dumped_config_of(metrics_source, runs):
    """The config of the run among ``runs`` whose test dump
    ``metrics_source`` names (the runner test dump of
    :func:`final_metrics`), or None: the run's own ``vis_data`` copy when
    it has one (the work dir's root dump is the last runner's), else its
    dumped config."""
    from mmengine.config import Config
    for run in runs:
        if osp.relpath(run['test_json'], osp.dirname(run['dir'])) in \
                metrics_source:
            for path in (osp.join(run['dir'], 'vis_data', 'config.py'),
                         run['config']):
                if osp.isfile(path):
                    return Config.fromfile(path)
    return None


def _config_of_metrics_file(metrics_kind, metrics_file):
    """The config file ``tools/test.py`` wrote into its metrics file (the
    path as it was given, relative to where the test ran), or None for
    other metrics sources and for files that name none."""
    if metrics_kind == 'test_metrics.json':
        return load_json(metrics_file).get('config') or None
    return None


def _evaluated_with_tta(metrics_kind, metrics_file, tested_cfg):
    """Whether the final metrics average test-time augmented views: the
    flag ``tools/test.py --tta`` writes, or for a runner dump the model type
    of the config that tested (``tested_cfg``)."""
    if metrics_kind == 'test_metrics.json':
        return bool(load_json(metrics_file).get('test_time_augmentation'))
    if tested_cfg is not None:
        model = tested_cfg.get('model') or {}
        return 'TTA' in str(model.get('type', ''))
    return False


def read_work_dir(work_dir, seed_from_config=False, metrics_file=None):
    """Everything the leaderboard needs from a work dir, except complexity
    and timing benchmarks.

    Args:
        work_dir (str): The run's ``--work-dir``.
        seed_from_config (bool): Take the seed only from the dumped config's
            ``randomness.seed`` (fail when absent) instead of falling back to
            the seed the runner logged.
        metrics_file (str, optional): A ``tools/test.py --metrics-out`` file
            to use instead of ``<work_dir>/test_metrics.json``.

    Returns:
        dict: The partial run record; ``_config`` holds the dumped config,
        ``_tested_config`` the config of the run whose test dump gave the
        metrics (None for other metrics sources), ``_tested_config_file``
        the config file a ``tools/test.py`` metrics file names (None for
        other metrics sources).
    """
    from mmengine.config import Config

    from mmseg_dsnet.datasets.split_files import dataset_leaves
    train_runs, test_runs = find_runs(work_dir)
    if not train_runs:
        raise IncompleteWorkDirError(
            f'no training log (<timestamp>/<timestamp>.log with train '
            f'lines) under {work_dir}: is it the --work-dir of a training '
            'run?')
    infos = [parse_log(run['log']) for run in train_runs]
    # Summed over, these would give the time of two trainings and the
    # epochs of the longer one, labelled as resumed runs of this one.
    train_runs, infos, earlier = latest_training(train_runs, infos)
    if earlier:
        # Tests before the latest training began were of an earlier model.
        begun = log_dir_order(osp.basename(train_runs[0]['dir']))
        test_runs = [run for run in test_runs
                     if log_dir_order(osp.basename(run['dir'])) > begun]
    cfg = Config.fromfile(train_runs[-1]['config'])
    test_cfg = Config.fromfile(test_runs[-1]['config']) if test_runs and \
        osp.isfile(test_runs[-1]['config']) else None
    seed = (cfg.get('randomness') or {}).get('seed')
    seed_source = 'dumped config randomness.seed'
    if seed is None:
        if seed_from_config:
            raise MissingSeedError(f'{train_runs[-1]["config"]} sets no '
                                   'randomness.seed')
        seed, seed_source = infos[-1]['seed'], 'runtime seed in the log'
    metrics, metrics_kind, metrics_source, checkpoint = final_metrics(
        work_dir, train_runs, test_runs, metrics_file)
    metrics_path = metrics_file or osp.join(work_dir, 'test_metrics.json')
    # Without tools/test.py's metrics file nothing records the options the
    # runner tested with: collect compares its config with the named one.
    # (A runner that trained and tested dumps too.)
    tested_cfg = _dumped_config_of(metrics_source, train_runs + test_runs) \
        if metrics_kind == 'runner test dump' else None
    tta = _evaluated_with_tta(metrics_kind, metrics_path, tested_cfg)
    warnings = []
    if earlier:
        started = osp.relpath(train_runs[0]['log'], work_dir)
        if metrics_kind == 'test_metrics.json' and \
                infos[0]['first'] is not None and \
                osp.getmtime(metrics_path) < infos[0]['first']:
            raise UserError(
                f'{work_dir}: the test metrics '
                f'({metrics_file or "test_metrics.json"}) were written '
                f'before its latest training ({started}) started at epoch '
                f'1 instead of resuming the {counted(len(earlier), "run")} '
                'before '
                'it: they are of an earlier model; test the final '
                'checkpoint of the latest training, then collect')
        left_out = ', '.join(osp.relpath(run['log'], work_dir)
                             for run in earlier)
        warnings.append(
            f'left out {counted(len(earlier), "earlier training run")} in '
            f'the work dir ({left_out}): the latest training, {started}, '
            'started again at epoch 1 instead of resuming them')
    if metrics_kind == 'test_metrics.json' and osp.getmtime(
            metrics_path) < osp.getmtime(train_runs[-1]['log']):
        warnings.append('the test metrics are older than the last training '
                        'log: test the final checkpoint again')
    fast = osp.join(work_dir, 'fast_train.json')
    fast_facts = load_json(fast) if osp.isfile(fast) else None
    record = dict(
        work_dir=osp.abspath(work_dir),
        logs=[osp.relpath(run['log'], work_dir) for run in train_runs],
        architecture=architecture(cfg),
        seed=seed,
        seed_source=seed_source,
        device=training_device(work_dir, train_runs, infos, fast_facts),
        device_source="the training log's environment info (fast_train.py: "
        'its device line, else fast_train.json)',
        code_revision=code_revision_of(infos),
        batch_size=cfg.train_dataloader.get('batch_size'),
        metrics=metrics,
        metrics_source=metrics_source,
        metrics_source_kind=metrics_kind,
        test_time_augmentation=tta,
        test_cfg_options=_tested_with_cfg_options(metrics_kind,
                                                  metrics_path),
        _tested_config_file=_config_of_metrics_file(metrics_kind,
                                                    metrics_path),
        checkpoint=checkpoint,
        warnings=warnings,
        _config=cfg,
        _tested_config=tested_cfg)
    if fast_facts is not None:
        facts = fast_facts
        record['trainer'] = dict(
            tool='tools/fast_train.py',
            **{k: facts.get(k) for k in (
                'cuda_graph', 'channels_last', 'fused_optimizer', 'amp',
                'compile', 'runs_together', 'img_per_s', 'loop_seconds',
                'resumed_from_epoch')})
    else:
        record['trainer'] = dict(tool='tools/train.py')
    record.update(dataset_facts(cfg, test_cfg, work_dir))
    loader = 'val_dataloader' if metrics_kind == 'last validation line' \
        else 'test_dataloader'
    record['evaluated_data'] = evaluated_data(
        (test_cfg if test_cfg and loader == 'test_dataloader' else cfg)[
            loader].dataset,
        (metrics_file or osp.join(work_dir, 'test_metrics.json'))
        if metrics_kind == 'test_metrics.json' else None)
    record['synthetic_data'] = bool(record['synthetic_data'] or
                                    record['evaluated_data']['synthetic'])
    record.update(training_progress(infos))
    check_training_finished(work_dir, cfg, record['epochs'])
    record.update(training_time(train_runs, infos))
    # Throughput counts the samples trained on, repeats included.
    epochs, samples = record['epochs'], record['train_samples_per_epoch']
    if record['train_time_s'] and epochs and samples:
        record['train_img_per_s'] = round(
            epochs * samples / record['train_time_s'], 2)
    record['short_schedule'] = bool(
        epochs is not None and epochs < PROTOCOL_EPOCHS
        or any(leaf.get('indices') is not None for _, leaf in
               dataset_leaves(cfg.train_dataloader.dataset)))
    return record
