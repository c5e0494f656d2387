"""Collect a run record from a work dir, build the leaderboard files from
the records (and the generated blocks of the README and the model card),
and check those blocks against them.

Every figure comes from what a run wrote (its logs, dumped config and
``tools/test.py`` metrics) or from our own measurements
(:mod:`mmseg_dsnet.analysis`, as ``get_flops.py`` and ``benchmark.py``) —
never typed by hand. Published
figures live only in ``results/reported.json`` and are shown as separate
rows marked ``reported``.

Run record (``results/runs/*.json``): ``metrics`` holds LesionMetric's
figures exactly as logged (percent), with ``metrics_source`` saying where
they were read; ``train_time_s`` with ``train_time_method``; ``device`` from
the training log; ``seed`` from the dumped config; ``train_images`` the
distinct images the training loader reads and ``train_samples_per_epoch``
(absent in older records) the samples an epoch draws of them, repeats
included, which ``train_img_per_s`` counts; ``complexity`` from
get_flops (``flops`` = all counted ops, ``flops_weight_layers`` = conv /
linear / matmul only, both with 1 multiply-add = 1 FLOP, plus ``deploy`` for
re-parameterisable models); ``cpu_latency_ms`` / ``cpu_latency_p90_ms``
(batch 1, 1 thread, 256x256, median / 90th percentile of timed runs) and
``gpu_img_per_s`` from benchmark.py; ``evaluated_data`` (``data_root``,
``split_file``, ``images``, ``synthetic``) names the data the metrics were
computed on (absent in older records); ``model_config`` is the model the
run trained, as its dumped config gives it without the input size (absent in
older records); ``training`` its optimizer, learning-rate schedule and
training pipeline (:func:`training_settings`; absent in older records);
``input_size`` (``train`` and ``test``, ``[height, width]`` of the
pipelines' ``Resize``, :func:`run_input_size`) the size it trained and
tested at (absent in older records: unknown). :func:`collect` refuses
a run trained or evaluated on the synthetic stand-in set, tested with
another pipeline, evaluator or model than its config's (a run never tested,
whose figures are its last validation line: validated so, or on another
split than its test split), or tested on other images than its config's
test split as it is (:func:`check_tested_on_the_test_split`);
:func:`build` refuses a record whose config
now builds another model than ``model_config``, a file that is no run
record or not of the types it reads (:func:`check_run_record`), records
whose FLOPs were counted in different ways (:func:`flops_convention`), runs of
different models that one row would average, and seeds of one row run
differently (:func:`~.table.check_runs_alike`), and one run's test held by
two records (:func:`~.table.check_each_run_once`; :func:`collect` refuses
to write the second). Leaderboard rows aggregate the seeds: see
:mod:`.table` for the format.
"""
import datetime
import json
import math
import os
import os.path as osp
import re
import sys

from mmseg_dsnet.engine.preflight import validates_on_images_of
from mmseg_dsnet.utils.config_diff import config_differences, value_at
from mmseg_dsnet.utils.errors import UserError
from mmseg_dsnet.utils.fileio import atomic_write_together
from mmseg_dsnet.utils.messages import counted, first_few
from mmseg_dsnet.utils.paths import REPO_ROOT, same_folder

from . import blocks, table
from .records import is_number, load_json, read_last_checkpoint, write_json
from .work_dir import (data_year, evaluated_data, loader_data_name,
                       model_name, read_work_dir, resolve_config_path, slug,
                       tested_split)

RUNS_DIR = osp.join(REPO_ROOT, 'results', 'runs')


class SyntheticDataError(UserError, ValueError):
    """A result computed on the synthetic stand-in set is offered where only
    real-data results belong."""


class DesignRunError(UserError, ValueError):
    """A run judged on the design hold-out, given to collect: it chose the
    model, and is no test result."""


class ConfigMismatchError(UserError, ValueError):
    """The config named for a run builds another model than the one the run
    trained, so the row would carry the wrong name, config and budget."""


def _first_difference(given, dumped, path='model'):
    """Dotted path of the first entry where two config dicts differ, or
    None when they are equal."""
    return next(config_differences(given, dumped, path), None)


class StaleRecordError(UserError, ValueError):
    """A record's config now builds another model than the run trained, so
    its row would show old figures under the current design's name."""


def run_input_size(cfg, evaluated_cfg=None, loader='test_dataloader'):
    """The input size a run trained and tested at: ``[height, width]`` of
    the first ``Resize`` of its training and of its test pipeline (mmcv
    scales are ``(width, height)``; an int is square), as
    :func:`~mmseg_dsnet.deploy.deployable.resize_scale` finds it.

    Args:
        cfg (Config): The run's dumped config.
        evaluated_cfg (Config, optional): The config its metrics were
            computed with (a runner's test dump's), when not ``cfg``.
        loader (str): The loader of ``evaluated_cfg`` (or ``cfg``) whose
            pipeline gave the metrics: ``val_dataloader`` for the last
            validation line.

    Returns:
        dict: ``train`` and ``test``, each None where the pipeline sets no
        size (unknown: not taken for 256).
    """
    from mmseg_dsnet.deploy.deployable import loader_pipeline, resize_size

    def size(pipeline):
        found = resize_size(pipeline)
        return None if found is None else list(found)

    # The evaluating loader's pipeline is the one the metrics are of.
    evaluated_cfg = evaluated_cfg or cfg
    evaluated = loader_pipeline(evaluated_cfg, loader) or (
        evaluated_cfg.get('test_pipeline')
        if loader == 'test_dataloader' else None)
    return dict(train=size(loader_pipeline(cfg, 'train_dataloader')),
                test=size(evaluated))


def comparable_model(model):
    """A model config dict without the data preprocessor's ``size``: a run
    at another input size (``check_real_data.py --crop-size``) changes only
    that."""
    model = model.to_dict() if hasattr(model, 'to_dict') else dict(model)
    if isinstance(model.get('data_preprocessor'), dict):
        model['data_preprocessor'] = {
            k: v for k, v in model['data_preprocessor'].items()
            if k != 'size'}
    return model


def training_settings(cfg):
    """What a run trained with besides its model and the facts a record
    holds anyway: the optimizer, the learning-rate schedule and the
    training pipeline of its dumped config (:data:`~.table.TRAINING_PARTS`),
    as JSON values; build compares them across the seeds of a row.

    Args:
        cfg (Config): The run's dumped config.

    Returns:
        dict: ``optim_wrapper``, ``param_scheduler`` and ``train_pipeline``
        (None where the config sets none).
    """
    from mmseg_dsnet.deploy.deployable import loader_pipeline

    def plain(value):
        value = value.to_dict() if hasattr(value, 'to_dict') else value
        # Tuples become lists and other objects their text, as in JSON.
        return json.loads(json.dumps(value, default=str))

    return dict(optim_wrapper=plain(cfg.get('optim_wrapper')),
                param_scheduler=plain(cfg.get('param_scheduler')),
                train_pipeline=plain(loader_pipeline(cfg,
                                                     'train_dataloader')))


def check_config_matches_run(config, dumped_cfg, work_dir):
    """Refuse a config whose model differs from the run's dumped one (input
    size aside, see :func:`comparable_model`).

    Raises:
        ConfigMismatchError: naming the first differing entry.
    """
    from mmengine.config import Config
    diff = _first_difference(comparable_model(Config.fromfile(config).model),
                             comparable_model(dumped_cfg.model))
    if diff:
        raise ConfigMismatchError(
            f'{config} builds another model than the run in {work_dir} '
            f'trained: {diff} differs from its dumped config; collect the '
            'run with the config it was trained with')


def check_records_current(records, root=REPO_ROOT):
    """Refuse measured records whose config no longer builds the model they
    trained (a default changed after the run): their rows would show the old
    model's figures under the config's current name.

    Records without ``model_config`` (collected before it was recorded)
    cannot be checked and pass.

    Raises:
        StaleRecordError: naming every stale record and its first
            difference.
    """
    from mmengine.config import Config
    stale, built = [], {}  # built: config path -> its comparable model
    for record in records:
        trained = record.get('model_config')
        if record.get('source') != 'measured' or trained is None:
            continue
        config = osp.join(root, record['config'])
        if not osp.isfile(config):
            stale.append(f'{record["record_file"]} ({record["config"]} no '
                         'longer exists)')
            continue
        if config not in built:
            built[config] = comparable_model(Config.fromfile(config).model)
        diff = _first_difference(built[config], trained)
        if diff:
            stale.append(f'{record["record_file"]} ({record["config"]}: '
                         f'{diff} differs)')
    if stale:
        one = len(stale) == 1
        raise StaleRecordError(
            f'{counted(len(stale), "run record")} trained another model '
            f'than {"its" if one else "their"} config builds now: '
            f'{"; ".join(stale)}. Re-run {"it" if one else "them"} with the '
            f'current config, or move {"it" if one else "them"} out of '
            'results/runs')


class MixedModelsError(UserError, ValueError):
    """Runs of different models would be averaged into one row under one
    model name (an ablation config collected with its base model's
    default name)."""


def check_one_model_per_row(records):
    """Refuse measured records that one leaderboard row would average
    (same model name, dataset, protocol and schedule) although they trained
    different models: ``model_name`` names ``dsnet_isic2017_no-gate.py``
    ``dsnet`` too, so without ``--label`` an ablation's seeds join the full
    model's row.

    Records without ``model_config`` (collected before it was recorded)
    cannot be compared and pass.

    Args:
        records (list[dict]): Run records.

    Raises:
        MixedModelsError: naming two such records and their first
            difference.
    """
    first = {}  # row key -> the first record with a model_config
    for record in records:
        trained = record.get('model_config')
        if record.get('source') != 'measured' or trained is None:
            continue
        key = table.row_key(record)
        if key not in first:
            first[key] = record
            continue
        diff = _first_difference(first[key]['model_config'], trained)
        if diff:
            other = first[key]
            raise MixedModelsError(
                f'the row {record["model"]} ({record["dataset"]}, '
                f'{record["protocol"]}, {record["schedule"]}) would average '
                'runs of different models: '
                f'{other.get("record_file")} ({other.get("config")}) and '
                f'{record.get("record_file")} ({record.get("config")}): '
                f'{diff} differs; collect each model under its own --label')


def _rel(path):
    path = osp.abspath(path)
    return osp.relpath(path, REPO_ROOT) if path.startswith(
        REPO_ROOT + os.sep) else path


def _checkpoint(record, work_dir):
    """The evaluated checkpoint, else the work dir's last one (timing does
    not depend on the weights; loading them only proves they load)."""
    path = record.get('checkpoint')
    if path and osp.isfile(path):
        return path
    path = read_last_checkpoint(work_dir)
    return path if path and osp.isfile(path) else None


def measure_complexity(cfg):
    """Parameters and FLOPs at 256x256 (``get_flops.py``'s figures), without
    the per-module tables."""
    from mmseg_dsnet.analysis.flops import get_flops
    result = get_flops(cfg, (256, 256))
    result.pop('table', None)
    if 'deploy' in result:
        result['deploy'].pop('table', None)
    return result


def measure_speed(cfg, checkpoint, device, deploy, batch_size, warmup,
                  repeat):
    """Latency and throughput at 256x256 (``benchmark.py``'s figures); one
    thread on the CPU (the process's count is put back by :func:`benchmark`).
    """
    from mmseg_dsnet.analysis.benchmark import benchmark
    return benchmark(cfg, checkpoint, device, (256, 256),
                     batch_size=batch_size, warmup=warmup, repeat=repeat,
                     throughput_repeat=max(1, repeat // 5),
                     threads=1 if device == 'cpu' else None, deploy=deploy)


def check_gpu_options(gpu_benchmark, gpu_json):
    """Refuse GPU-throughput options :func:`collect` could not follow,
    before any work: ``--gpu-benchmark`` without CUDA wrote a record that
    only said so, exit 0; beside ``--gpu-json`` it was ignored; a
    ``--gpu-json`` of the re-parameterised model would stand for the model
    as trained.

    Args:
        gpu_benchmark (bool): ``--gpu-benchmark``.
        gpu_json (str | None): ``--gpu-json``.

    Returns:
        dict | None: The ``--gpu-json`` measurement.

    Raises:
        UserError: Naming what to do instead.
    """
    if gpu_benchmark and gpu_json:
        raise UserError('--gpu-benchmark measures here and --gpu-json reads '
                        'a measurement made elsewhere: give one of them')
    if gpu_benchmark:
        import torch
        if not torch.cuda.is_available():
            raise UserError(
                '--gpu-benchmark needs CUDA, which this machine does not '
                'have; measure on a GPU machine with tools/analysis_tools/'
                'benchmark.py --device cuda --shape 256 256 --json FILE and '
                'pass --gpu-json FILE, or leave out --gpu-benchmark')
    if not gpu_json:
        return None
    out = load_json(gpu_json)
    if not str(out.get('device', '')).startswith('cuda') or \
            list(out.get('shape', [])) != [256, 256]:
        raise UserError(f'{gpu_json}: not a benchmark.py --device cuda '
                        '--shape 256 256 --json result')
    if out.get('deploy'):
        raise UserError(
            f'{gpu_json} times the re-parameterised model (benchmark.py '
            '--deploy); the row\'s GPU throughput is of the model as '
            'trained: measure it without --deploy')
    if out.get('channels_last'):
        # --gpu-benchmark, and the CPU latency, time the default memory
        # format: rows measured both ways would be compared as one.
        raise UserError(
            f'{gpu_json} times the model in the channels-last memory format '
            '(benchmark.py --channels-last); the row\'s GPU throughput is '
            'of the default format, as --gpu-benchmark measures it: measure '
            'it without --channels-last')
    return out


def check_gpu_json_model(gpu_out, gpu_json, params, config,
                         model_config=None):
    """Refuse a ``--gpu-json`` measurement of another model than the
    row's: its parameter count differs, or (for a file that records it) its
    model config does. A model changed by ``benchmark.py --cfg-options``
    with the same parameters (no gate, another activation) passed the
    count and its throughput stood for the row's model, exit 0.

    Args:
        gpu_out (dict | None): From :func:`check_gpu_options`.
        gpu_json (str): Its file, for the message.
        params (int | None): The row model's parameters.
        config (str): The row's config, for the message.
        model_config (dict, optional): The row's
            :func:`comparable_model`.
    """
    if gpu_out is None:
        return
    if params is not None and gpu_out.get('params') is not None and \
            gpu_out['params'] != params:
        raise UserError(
            f'{gpu_json} times a model of {gpu_out["params"]} parameters but '
            f'{config} builds one of {params}: it measured another model')
    timed = gpu_out.get('model_config')
    if model_config is None or timed is None:
        return  # a file from before benchmark.py recorded its model
    # Both as JSON values: the file's tuples were read back as lists.
    diff = _first_difference(json.loads(json.dumps(model_config)), timed)
    if diff:
        options = gpu_out.get('cfg_options')
        how = f'; measured with --cfg-options {options}' if options else ''
        raise UserError(
            f'{gpu_json} times another model than the run\'s ({diff} '
            f'differs{how}): measure {config} as the run trained it')


# The parts of a config a test reads: options on others (the training
# schedule, the seed) leave its figures as they are.
TEST_PARTS = ('model', 'test_dataloader', 'test_evaluator', 'test_cfg',
              'tta_model', 'tta_pipeline')
# Those the validation loop reads, for metrics from the last validation
# line; the model is check_config_matches_run's.
VAL_PARTS = ('val_dataloader', 'val_evaluator', 'val_cfg')
# Settings of those parts that change no figure: how many processes read
# the data (where it is, names_data, is checked against the record).
LOADER_KEYS = ('num_workers', 'persistent_workers')


def result_changing_options(cfg_options, parts=TEST_PARTS):
    """The ``--cfg-options`` (``{key: value}``) that change what a test of
    the config measures: the model, the test pipeline and data other than
    their location and loader workers, the evaluator and the test loop.

    Args:
        cfg_options (dict): The options.
        parts (tuple[str]): The parts of a config the evaluation reads:
            :data:`VAL_PARTS` for a validation.

    Returns:
        list[str]: Those options as ``key=value``.
    """
    from mmseg_dsnet.datasets.synthetic_fallback import names_data
    return [f'{key}={value}' for key, value in cfg_options.items()
            if key.split('.', 1)[0] in parts
            and not names_data({key: value})
            and key.rsplit('.', 1)[-1] not in LOADER_KEYS]


# Entries of TEST_PARTS (VAL_PARTS) an evaluating config may hold unlike
# the named config without another figure: the input size (the record
# holds it, build compares it, and check_config_matches_run lets it
# differ) and where tools/test.py --out writes the predictions.
NOT_RESULT_CHANGING = (
    re.compile(r'model\.data_preprocessor\.size(\[\d+\])?$'),
    re.compile(r'(test|val)_evaluator\.output_dir$'))
# A pipeline step's scale: the input size on the Resize step that
# run_input_size reads, a change of the figures on another (a RandomResize).
PIPELINE_SCALE = re.compile(r'((?:test|val)_dataloader\.dataset\.pipeline)'
                            r'\[\d+\]\.scale(\[\d+\])?$')


def _changes_no_figure(path, tested):
    """Whether a difference of :func:`config_differences` at ``path``
    between the named config and ``tested`` (a config dict) leaves the
    figures as they are: an entry of :data:`NOT_RESULT_CHANGING`, or the
    scale of the ``Resize`` step whose scale is the recorded input size
    (:func:`run_input_size`)."""
    from mmseg_dsnet.deploy.deployable import resize_step
    if any(p.match(path) for p in NOT_RESULT_CHANGING):
        return True
    scale = PIPELINE_SCALE.match(path)
    if not scale:
        return False
    step = value_at(tested, path[:path.index('.scale')])
    return step is not None and \
        step is resize_step(value_at(tested, scale.group(1)))


def tested_config_changes(config, tested_cfg, parts=TEST_PARTS):
    """What the config a runner tested with (its own test dump, without
    ``tools/test.py``'s metrics file, which records the ``--cfg-options``)
    changes in ``parts`` of ``config``, judged as
    :func:`result_changing_options` judges options; the differences of
    :func:`_changes_no_figure` aside.

    Args:
        config (str): The config named for the run.
        tested_cfg (Config): The config the run tested with (for
            :data:`VAL_PARTS`, the config it trained and validated with).
        parts (tuple[str]): The parts compared: :data:`TEST_PARTS`, or
            :data:`VAL_PARTS` for the last validation line.

    Returns:
        list[str]: The changes as ``key=value`` (the tested value).
    """
    from mmengine.config import Config
    named, tested = Config.fromfile(config).to_dict(), tested_cfg.to_dict()
    changed = {}
    for part in parts:
        for path in config_differences(named.get(part), tested.get(part),
                                       part):
            if not _changes_no_figure(path, tested):
                changed[path] = value_at(tested, path)
    return result_changing_options(changed, parts)


def metrics_file_config(config, tested_file, cfg_options):
    """The config a ``tools/test.py`` metrics file was computed with, when
    it names another config file than ``config``: that file with the
    ``--cfg-options`` the test was given, as ``tools/test.py`` built it.
    (A file of the config's own is the config and those options, which
    :func:`result_changing_options` judges; ``check_real_data.py`` names
    the config its final test dumped, as its run changed it.)

    Args:
        config (str): The config named for the run.
        tested_file (str | None): The config file the metrics file names,
            as it was given to ``tools/test.py``.
        cfg_options (dict): The ``--cfg-options`` it records.

    Returns:
        tuple: The tested config (None when it is ``config`` itself or
        cannot be read here) and the file it was read from (None when
        ``tested_file`` is None or not found here).
    """
    from mmengine.config import Config
    found = resolve_config_path(tested_file) if tested_file else None
    if found is None or not osp.isfile(found):
        return None, None
    if osp.isfile(config) and osp.samefile(found, config):
        return None, found
    tested = Config.fromfile(found)
    if cfg_options:
        tested.merge_from_dict(cfg_options)
    return tested, found


def collect(config, work_dir, measure_complexity=measure_complexity,
            measure_speed=measure_speed, label=None, schedule=None,
            schedule_tag=None,
            seed_from_config=False, benchmark=True, gpu_benchmark=False,
            runs_dir=RUNS_DIR, metrics_file=None, warmup=10, repeat=50,
            gpu_batch_size=32, gpu_json=None, overwrite=False):
    """Read a work dir, measure the model, write and return its record.

    Args:
        config (str): The run's config file (names the model).
        work_dir (str): The run's work dir.
        measure_complexity (callable): ``cfg -> dict`` of ``params``,
            ``flops``, ... Default: :func:`measure_complexity`.
        measure_speed (callable): ``(cfg, checkpoint, device, deploy,
            batch_size, warmup, repeat) -> dict`` as ``benchmark.py``
            returns it. Default: :func:`measure_speed`.
        gpu_json (str, optional): A ``benchmark.py --device cuda --json``
            result measured on a GPU machine, used for the GPU throughput
            when this machine has no GPU.
        overwrite (bool): A record of the same model, dataset, protocol,
            schedule tag and seed collected from another work dir is only
            replaced with it; one from the same work dir is refreshed.

    The other arguments are ``leaderboard.py collect``'s flags.

    Returns:
        dict: The record written to ``runs_dir``.
    """
    gpu_out = check_gpu_options(gpu_benchmark, gpu_json)
    rec = read_work_dir(work_dir, seed_from_config, metrics_file)
    cfg = rec.pop('_config')
    tested_cfg = rec.pop('_tested_config')
    # A recalibrate_batch_norm.py output scores another model than the
    # training left: the record says so, and build keeps it apart.
    rec['batch_norm_recalibration'] = batch_norm_recalibration(rec)
    if rec.pop('test_time_augmentation'):
        # Every row is one pass over each test image, as the published
        # figures are.
        raise UserError(
            f'{work_dir} was tested with test-time augmentation '
            f'({rec["metrics_source"]}); leaderboard rows are single-pass '
            'results: run tools/test.py without --tta, then collect')
    test_options = rec.pop('test_cfg_options')
    tested_file = rec.pop('_tested_config_file')
    changed = result_changing_options(test_options)
    if changed:
        # The figures are of another model, pipeline or evaluator than the
        # config's (a decision threshold of 0.1, say).
        raise UserError(
            f'{work_dir} was tested with --cfg-options {" ".join(changed)} '
            f'({rec["metrics_source"]}); a leaderboard row is the config as '
            'it is: run tools/test.py without them (data locations and '
            'loader workers may be given), then collect')
    check_config_matches_run(config, cfg, work_dir)
    tested_with = None
    if tested_cfg is None and tested_file:
        # tools/test.py may have been given another config file than the
        # one named here (one with another evaluator, threshold or test
        # pipeline): its figures, and the size it tested at, are that
        # file's.
        tested_cfg, found = metrics_file_config(config, tested_file,
                                                test_options)
        if found is None:
            rec['warnings'].append(
                f'the config the test used, {tested_file} (named in '
                f'{rec["metrics_source"]}), is not found here: its test '
                f'settings were not compared with {config}')
        elif tested_cfg is not None:
            tested_with = found
    changed = tested_config_changes(config, tested_cfg) \
        if tested_cfg is not None else []
    if changed:
        # As options given to tools/test.py: figures of another pipeline
        # or evaluator than the config's.
        what = (f'{tested_with}, which differs from {config} in '
                f'{" ".join(changed)}' if tested_with else
                f'{" ".join(changed)}, unlike {config}')
        raise UserError(
            f'{work_dir} was tested with {what} '
            f'({rec["metrics_source"]}); a leaderboard row is the '
            'config as it is: test the checkpoint with tools/test.py and '
            'the config as it is (data locations and loader workers may '
            'be given), then collect')
    # Before the checks that compare with the config's test split.
    check_config_names_a_test_split(config, rec, work_dir)
    # The checks below meet the same split files: each is read once.
    read = {}
    if rec['metrics_source_kind'] == 'last validation line':
        check_validation_result(config, cfg, rec, work_dir, read)
    check_final_test_result(rec, cfg, work_dir, read)
    check_not_evaluated_on_trained_images(rec, work_dir, cfg, read)
    check_data_is_the_dataset(rec, work_dir)
    if rec['synthetic_data']:
        raise SyntheticDataError(
            f'{work_dir} was trained or evaluated on the synthetic stand-in '
            f'set (evaluated on {rec["evaluated_data"]["data_root"]}); its '
            'figures say nothing about real lesions and are not collected. '
            'Convert the real data (python tools/dataset_converters/isic.py '
            'SRC ROOT), train and test on it, then collect')
    check_tested_on_the_test_split(config, rec, work_dir, read)
    model = label or model_name(config)
    gpu = not rec['device'].startswith('CPU')
    if schedule is None:
        schedule = default_schedule(rec)
        if rec['batch_norm_recalibration']:
            # Another model than the training's: a row of its own.
            schedule += ', BatchNorm statistics recomputed'
    tag = schedule_tag or slug(schedule)[:48].strip('-')
    record = dict(record_version=1, source='measured', model=model,
                  config=_rel(config), schedule=schedule, schedule_tag=tag)
    record.update(rec)
    record['model_config'] = comparable_model(cfg.model)
    record['training'] = training_settings(cfg)
    record['input_size'] = run_input_size(
        cfg, tested_cfg, 'val_dataloader'
        if rec['metrics_source_kind'] == 'last validation line' else
        'test_dataloader')
    # Checked before the (slow) measurements.
    check_schedule_text(schedule, record)
    name = (f'{slug(model)}_{rec["dataset_key"]}_{slug(rec["protocol"])}_'
            f'{tag}_seed{rec["seed"]}.json')
    path = osp.join(runs_dir, name)
    check_run_not_recorded_elsewhere(record, runs_dir, name)
    if osp.isfile(path):
        held = load_json(path)
        previous = held.get('work_dir')
        diff = previous != record['work_dir'] and \
            held.get('model_config') is not None and _first_difference(
                held['model_config'], record['model_config'])
        if diff:
            # Not even with --overwrite: this run's figures would replace
            # another model's under its name (an ablation config collected
            # without --label is named like its base model).
            raise MixedModelsError(
                f'{path} holds a run of another model ({held.get("config")}, '
                f'collected from {previous}; {diff} differs): this run of '
                f'{record["config"]} would replace it under the name '
                f'{model!r}; give this run its own --label')
        if previous != record['work_dir'] and not overwrite:
            raise FileExistsError(
                f'{path} already holds the run collected from {previous}; '
                f'pass --overwrite to replace it with {record["work_dir"]}, '
                'or give this run another --schedule-tag')
        print(f'Replacing {path} (collected before from {previous})')
    record['complexity'] = measure_complexity(cfg)
    check_gpu_json_model(gpu_out, gpu_json,
                         record['complexity'].get('params'), config,
                         record['model_config'])
    record.update(cpu_latency_ms=None, cpu_latency_p90_ms=None,
                  gpu_img_per_s=None)
    ckpt = _checkpoint(rec, work_dir)
    if benchmark:
        runs = {}
        modes = [False, True] if 'deploy' in record['complexity'] else \
            [False]
        for deploy in modes:
            out = measure_speed(cfg, ckpt, 'cpu', deploy, 1, warmup, repeat)
            runs['deployed' if deploy else 'as_trained'] = dict(
                median=out['latency_ms']['median'],
                p90=out['latency_ms']['p90'], runs=out['latency_ms']['runs'])
        record.update(
            cpu_latency_ms=runs['as_trained']['median'],
            cpu_latency_p90_ms=runs['as_trained']['p90'],
            cpu_benchmark=dict(batch_size=1, threads=1, shape=[256, 256],
                               warmup=warmup, cpu=out['device_name'],
                               input='random', **runs))
    # The GPU throughput, measured elsewhere (--gpu-json) or here.
    gpu_out = gpu_out or (measure_speed(
        cfg, ckpt, 'cuda', False, gpu_batch_size, warmup, repeat)
        if gpu_benchmark else None)
    if gpu_out:
        record.update(
            gpu_img_per_s=gpu_out['throughput']['img_per_s'],
            gpu_benchmark=dict(
                gpu=gpu_out['device_name'],
                batch_size=gpu_out['throughput']['batch_size'],
                img_per_s=gpu_out['throughput']['img_per_s'],
                latency_ms_b1=gpu_out['latency_ms']['median'],
                shape=[256, 256],
                **(dict(source=_rel(gpu_json)) if gpu_json else {})))
    record['collected_at'] = datetime.datetime.now().isoformat(
        timespec='seconds')
    record['record_file'] = name
    record['gpu_run'] = gpu
    write_json(record, path)
    for warning in record['warnings']:
        print(f'WARNING ({work_dir}): {warning}', file=sys.stderr)
    print(f'Run record written to {osp.join(runs_dir, name)}')
    return record


def default_schedule(rec):
    """The schedule text of a run collected without ``--schedule``: its
    epochs, distinct training images and batch size (``30 epochs, 1500
    train images, batch 8``). An epoch that draws another number of
    samples than there are images (a ``RepeatDataset``, a split joined to
    itself) says both (``30 epochs of 3000 samples (1500 images), batch
    8``), so that it is neither taken for a run on that many images nor
    shares a row with a run that draws each image once.

    Args:
        rec (dict): The run's record (``epochs``, ``train_images``,
            ``train_samples_per_epoch``, ``batch_size``).

    Returns:
        str: The text.
    """
    epochs, images = rec['epochs'], rec['train_images']
    samples = rec.get('train_samples_per_epoch')
    if samples is None or samples == images:
        drawn = (f'{counted(epochs, "epoch")}, '
                 f'{counted(images, "train image")}')
    else:
        drawn = (f'{counted(epochs, "epoch")} of '
                 f'{counted(samples, "sample")} '
                 f'({counted(images, "image")})')
    return f'{drawn}, batch {rec["batch_size"]}'


# What a --schedule text may say of a run, and where its record holds it:
# (what, pattern, the record's value).
SCHEDULE_FACTS = (
    ('epochs', r'(\d+) epochs?\b', lambda r: r.get('epochs')),
    ('iterations', r'(\d+) iter(?:ation)?s\b', lambda r: r.get('iterations')),
    ('batch size', r'\bbatch (?:size )?(\d+)\b',
     lambda r: r.get('batch_size')),
    ('input size', r'\b(\d+x\d+) input\b',
     lambda r: 'x'.join(map(str, (r.get('input_size') or {}).get('train')
                             or ())) or None))


def check_schedule_text(schedule, record, option='--schedule',
                        fix='give the description of its own schedule (or '
                        'leave --schedule out)'):
    """Refuse a schedule description that names the run's epochs,
    iterations, batch size or training input size (``30 epochs``,
    ``5640 iterations``, ``batch 8``, ``128x128 input``) and never its own:
    the text of another schedule, copied with the collect command, labelled
    the row and the README's footnote, exit 0.

    Args:
        schedule (str): The description.
        record (dict): The run's record (``epochs``, ``iterations``,
            ``batch_size``, ``input_size``).
        option (str): What gave the text, for the message.
        fix (str): What to do about it, for the message.

    Raises:
        UserError: Naming each such fact, the text's values and the run's.
    """
    wrong = []
    for what, pattern, value_of in SCHEDULE_FACTS:
        said = re.findall(pattern, schedule)
        value = value_of(record)
        if said and value is not None and str(value) not in said:
            wrong.append(f'{what} {"/".join(table._distinct(said))} (the '
                         f'run: {value})')
    if wrong:
        raise UserError(
            f'{option} {schedule!r} does not describe the run collected from '
            f'{record.get("work_dir")}: it says {"; ".join(wrong)}; {fix}')


def check_run_not_recorded_elsewhere(record, runs_dir, name):
    """Refuse to record a run's test under ``name`` when another record
    of ``runs_dir`` holds it (collected before under another
    ``--schedule``, ``--schedule-tag`` or ``--label``): both records were
    kept and build showed the run in two rows.

    Args:
        record (dict): The record being collected (``work_dir``,
            ``metrics_source``).
        runs_dir (str): Where the records go.
        name (str): The file name it would get.

    Raises:
        UserError: Naming the other record and what to do.
    """
    run = table.measurement_of(record)
    if run is None or not osp.isdir(runs_dir):
        return
    for other in sorted(os.listdir(runs_dir)):
        path = osp.join(runs_dir, other)
        if other == name or not other.endswith('.json') or \
                not osp.isfile(path):
            continue
        try:
            held = load_json(path)
        except (OSError, UserError):
            continue  # build names files that are no run record
        if isinstance(held, dict) and table.measurement_of(held) == run:
            raise UserError(
                f'{path} already holds this test of {record["work_dir"]} '
                f'(as {held.get("model")!r}, {held.get("schedule")!r}); a run '
                f'is counted once: remove that record first to record the '
                f'run as {name}')


def check_validation_result(config, cfg, rec, work_dir, read=None):
    """Raise :class:`~mmseg_dsnet.utils.errors.UserError` unless a run's
    last validation line, its metrics when it was never tested, is what a
    test of ``config`` gives: validated on its test split (as the
    lightweight protocols do), with the validation pipeline, evaluator and
    loop of ``config`` (``tools/train.py --cfg-options`` on them are
    judged as :func:`tested_config_changes` judges a tested config).

    Args:
        config (str): The config named for the run.
        cfg (Config): The run's dumped (training) config.
        rec (dict): The run as :func:`~.work_dir.read_work_dir` reads it.
        work_dir (str): Its work dir, for the messages.
        read (dict, optional): Split ids read so far (see
            :func:`~mmseg_dsnet.datasets.split_files.split_ids`).
    """
    changed = tested_config_changes(config, cfg, VAL_PARTS)
    if changed:
        # The figures are of another pipeline, evaluator or loop than a
        # test of the config would use.
        raise UserError(
            f'{work_dir} was validated with {" ".join(changed)}, unlike '
            f'{config} ({rec["metrics_source"]}); a leaderboard row is the '
            'config as it is: test the final checkpoint with tools/test.py '
            'and the config as it is (data locations and loader workers '
            'may be given), then collect')
    validated = validation_scores_the_test_images(cfg, read)
    if not validated:
        # The official protocols validate on a split of their own: its
        # figures are no test result.
        val_split = loader_data_name(
            (cfg.get('val_dataloader') or {}).get('dataset') or {})
        # Judged by content: a file named like the test split may list
        # other images.
        unlike = 'the images of ' if validated is False else ''
        raise UserError(
            f'{work_dir} was never tested and validated on {val_split}, not '
            f'on {unlike}its test split {rec.get("test_split")} '
            f'({rec["metrics_source"]}); its figures are no test result: '
            'test the final checkpoint with tools/test.py, then collect')


def validation_scores_the_test_images(cfg, read=None):
    """Whether the validation of a (training) config scores the images a
    test of it scores, so that its last validation line is a test result:
    the validation loader compared with the test split as a test's data
    is (:func:`compare_with_test_split`: the same ids, cut by each
    loader's ``indices``, under one data root). A wrapped validation
    dataset is judged by the split files of the datasets it holds, each
    cut by its own ``indices``, and by the number of images it scores
    (:func:`~.work_dir.loader_size`: a ``RepeatDataset`` scores each of
    them ``times`` times); one whose number is not known here (another
    wrapper, a split file not found) is no test result.

    Args:
        cfg (Config | dict): The run's dumped (training) config.
        read (dict, optional): Split ids read so far (see
            :func:`~mmseg_dsnet.datasets.split_files.split_ids`).

    Returns:
        bool | None: True when it does; False when it does not, judged by
        content; None when it does not, judged by name or not at all.
    """
    from mmseg_dsnet.datasets.split_files import dataset_leaves
    val, test = (((cfg.get(loader) or {}).get('dataset') or {})
                 for loader in ('val_dataloader', 'test_dataloader'))
    scored = evaluated_data(val)
    wrapped = [path for path, _ in dataset_leaves(val)] != ['dataset']
    if wrapped and scored['images'] is None:
        return None
    comparison = compare_with_test_split(test, scored, read, scored_cfg=val)
    if comparison['same']:
        return True
    return False if comparison['by_content'] else None


def batch_norm_recalibration(rec):
    """What ``recalibrate_batch_norm.py`` wrote into the tested checkpoint's
    ``meta`` (its source checkpoint, batches, seed, split); False for a
    checkpoint without it or metrics of the training's own validation;
    None where the checkpoint is not there to read (unknown).

    Args:
        rec (dict): The run as :func:`~.work_dir.read_work_dir` reads it.
    """
    if rec['metrics_source_kind'] == 'last validation line':
        return False
    path = rec.get('checkpoint')
    if not path or not osp.isfile(str(path)):
        return None
    from mmseg_dsnet.compat import checkpoint_meta
    return checkpoint_meta(path).get('batch_norm_recalibration') or False


def _same_weights(path, other):
    """Whether two checkpoint files hold the same ``state_dict`` (a copy,
    or one stripped of its optimizer by publish_model.py)."""
    import torch

    from mmseg_dsnet.compat import safe_torch_load
    first, second = (safe_torch_load(p, map_location='cpu') for p in
                     (path, other))
    first, second = (c.get('state_dict', c) if isinstance(c, dict) else c
                     for c in (first, second))
    return (isinstance(first, dict) and isinstance(second, dict)
            and first.keys() == second.keys()
            and all(torch.equal(first[k], second[k]) for k in first))


def check_tested_checkpoint_is_the_runs(rec, work_dir):
    """Raise :class:`~mmseg_dsnet.utils.errors.UserError` when the
    checkpoint a run's metrics are of is another run's: ``tools/test.py
    CONFIG OTHER/epoch_30.pth --work-dir W`` wrote the other run's figures
    into W, and collect recorded them under W's seed (only the file name
    ``epoch_30.pth`` was compared with W's epochs), exit 0.

    A checkpoint outside the work dir passes when its weights are those
    of the work dir's file of that name (a copy, a published copy without
    the optimizer); one that is no longer there cannot be compared.

    Args:
        rec (dict): The run as :func:`~.work_dir.read_work_dir` reads it.
        work_dir (str): Its work dir.
    """
    path = rec.get('checkpoint')
    if not path or not osp.isfile(str(path)):
        return
    # A recalibrate_batch_norm.py output is judged by the checkpoint it
    # was made from (its statistics are recorded, not hidden).
    source = (rec.get('batch_norm_recalibration') or {}).get('source')
    for tested in (path, source):
        if tested and osp.realpath(osp.dirname(osp.abspath(tested))) == \
                osp.realpath(work_dir):
            return
    own = osp.join(work_dir, osp.basename(path))
    if osp.isfile(own) and _same_weights(path, own):
        return
    what = (f'its weights differ from {own}' if osp.isfile(own) else
            f'{work_dir} holds no {osp.basename(path)}')
    raise UserError(
        f'{work_dir}: the test metrics are of {path}, a checkpoint of '
        f'another folder ({what}): they are another run\'s figures; test '
        'this run\'s final checkpoint (in its work dir) with tools/test.py, '
        'then collect')


def check_not_evaluated_on_the_design_hold_out(rec, work_dir, read=None):
    """Raise :class:`DesignRunError` when a run's metrics were computed on
    the design hold-out: its test split is named like it
    (``lightweight_design_val.txt``), or the split its metrics were
    computed on lists images of the design hold-out of its data root (a
    copy under another name), where both files are found here. Design
    runs choose the model; a leaderboard row is a test result.

    Args:
        rec (dict): The run as :func:`~.work_dir.read_work_dir` reads it.
        work_dir (str): Its work dir, for the messages.
        read (dict, optional): Split ids read so far (see
            :func:`~mmseg_dsnet.datasets.split_files.split_ids`).
    """
    from .real_data_check import DESIGN_SPLITS
    advice = ('design runs are recorded by tools/check_real_data.py '
              '--split design, not collected')
    if 'design' in osp.basename(str(rec.get('test_split') or '')):
        raise DesignRunError(
            f'{work_dir} was evaluated on the design hold-out '
            f'({rec["test_split"]}), not on a test split; {advice}')
    evaluated = rec['evaluated_data']
    scored = _split_ids(evaluated.get('split_file'), read)
    roots = _recorded_paths(evaluated.get('data_root')) if scored else []
    for root in roots:
        hold_out_file = osp.join(root, DESIGN_SPLITS[1])
        hold_out = _split_ids(hold_out_file, read)
        shared = sorted(hold_out & scored) if hold_out else []
        if shared:
            raise DesignRunError(
                f'{work_dir} was evaluated on {evaluated["split_file"]}, '
                f'which lists {len(shared)} of the '
                f'{counted(len(hold_out), "image")} of the design hold-out '
                f'{hold_out_file} ({first_few(shared, SHOWN_IDS)}), not on '
                f'a test split; {advice}')


def check_final_test_result(rec, cfg, work_dir, read=None):
    """Raise :class:`~mmseg_dsnet.utils.errors.UserError` unless a run's
    metrics are a test result of its final model: of the last epoch's
    checkpoint (or of a best one chosen on another split than the test
    split), computed on a split it did not train on and not on the design
    hold-out.

    Args:
        rec (dict): The run as :func:`~.work_dir.read_work_dir` reads it.
        cfg (Config): Its training config.
        work_dir (str): Its work dir, for the messages.
        read (dict, optional): Split ids read so far (see
            :func:`~mmseg_dsnet.datasets.split_files.split_ids`).
    """
    check_tested_checkpoint_is_the_runs(rec, work_dir)
    tested = re.fullmatch(r'epoch_(\d+)\.pth',
                          osp.basename(str(rec.get('checkpoint') or '')))
    if tested and rec['epochs'] and int(tested.group(1)) != rec['epochs']:
        # The row would say the run's epochs beside an earlier model's
        # figures.
        raise UserError(
            f'{work_dir}: the test metrics are of {rec["checkpoint"]} but '
            f'the run trained {counted(rec["epochs"], "epoch")}; test its '
            'final '
            f'checkpoint (epoch_{rec["epochs"]}.pth), then collect')
    evaluated_files = _recorded_paths(
        rec['evaluated_data'].get('split_file'))
    evaluated = {osp.basename(str(name)) for name in (
        rec.get('test_split'), *evaluated_files) if name}
    check_not_chosen_on_test(cfg, rec.get('checkpoint'),
                             evaluated | set(evaluated_files), work_dir)
    # A wrapped training loader's record joins its split files.
    trained = [osp.basename(str(name))
               for name in _recorded_paths(rec.get('train_split'))]
    seen = sorted(name for name in evaluated
                  if 'train' in name or name in trained)
    if seen:
        # Figures on images the model learned from overstate it.
        raise UserError(
            f'{work_dir} was evaluated on a training split '
            f'({", ".join(seen)}; trained on {" + ".join(trained)}), not on '
            'a test split; test the checkpoint on the test split with '
            'tools/test.py, then collect')
    # After the training splits: the full training split lists the
    # hold-out's images too, and is refused as what it is.
    check_not_evaluated_on_the_design_hold_out(rec, work_dir, read)


def _config_test_split(leaf, tested_roots):
    """The split file a dataset of a config's test loader reads, found
    here, and the data root it was found in: under the config's data
    root, else under the data root it was tested at (a data location may
    be given to a test); ``(None, None)`` where it is found nowhere."""
    from mmseg_dsnet.datasets.split_files import split_file
    ann_file = leaf.get('ann_file')
    if not ann_file:
        return None, None
    found = resolve_config_path(split_file(leaf))
    if found and osp.isfile(found):
        return found, str(leaf.get('data_root') or '')
    if osp.isabs(str(ann_file)) or len(tested_roots) != 1:
        return None, None
    moved = osp.join(tested_roots[0], str(ann_file))
    return (moved, tested_roots[0]) if osp.isfile(moved) else (None, None)


def _one_folder(first, second):
    """Whether two data roots name one folder: one path, or one existing
    folder under two spellings (a link; a config's relative path is found
    from here, else from the repository root)."""
    if osp.normpath(first) == osp.normpath(second):
        return True
    return same_folder(*(resolve_config_path(path) or ''
                         for path in (first, second)))


def compare_with_test_split(test_dataset, scored, read=None,
                            scored_cfg=None):
    """Compare the data a loader scored with a config's test split as it
    is: every image it lists (cut by the config's own ``indices``), no
    other.

    Judged by content where the split files of both are found here: the
    ids they list (a copy of the test split under another name is the
    test split; a file named like it that lists other images is not),
    cut by the ``indices`` of each dataset the scored loader reads (those
    a wrapper holds) where its config is given, else whole, with the
    number of images scored. The config's split is
    looked for under its data root, and for a test also under the data
    root it was tested at (a test may be given a data location); a loader
    of the same config (``scored_cfg``) must read the data root the test
    split is found in (the same ids in another folder are other files).
    Judged by the split files' names (relative to their data roots)
    otherwise, and by the number of images scored where the config's
    split is found here. Not judged where the config's test loader reads
    no split file.

    Args:
        test_dataset (dict): The config's ``test_dataloader.dataset``.
        scored (dict): What was scored, as a run record's
            ``evaluated_data`` holds it (``data_root``, ``split_file``,
            ``images``; a wrapped loader's paths joined by ``' + '``).
        read (dict, optional): Split ids read so far (see
            :func:`~mmseg_dsnet.datasets.split_files.split_ids`).
        scored_cfg (dict, optional): The scored loader's dataset config,
            where it is of the same config as ``test_dataset`` (a
            validation); None for data known by its record alone (a
            test's metrics file, which holds no ``indices``).

    Returns:
        dict: ``same`` (True, False, or None where not judged),
        ``by_content``, ``found`` (the config's split files here, None
        for one found nowhere), ``expected_count`` (the images of the
        config's split, None where not found) and ``outside`` (how many
        ids the scored split lists that the test split does not, where
        judged by content).
    """
    from mmseg_dsnet.datasets.split_files import (cut_by_indices,
                                                  data_root_of,
                                                  dataset_leaves,
                                                  leaf_datasets,
                                                  name_in_root, split_ids,
                                                  split_name)
    leaves = leaf_datasets(test_dataset)
    tested_files = _recorded_paths(scored.get('split_file'))
    tested_roots = _recorded_paths(scored.get('data_root'))
    # Only a test may read the config's split in another data location.
    same_config = scored_cfg is not None
    located = [_config_test_split(leaf, [] if same_config else tested_roots)
               for leaf in leaves]
    found = [path for path, _ in located]
    comparison = dict(same=None, by_content=False, found=found,
                      expected_count=None, outside=None)
    if not any(leaf.get('ann_file') for leaf in leaves):
        return comparison  # a config reading no split file names no split
    expected = None
    if None not in found:
        expected = [cut_by_indices(split_ids(path, read),
                                    leaf.get('indices'))
                    for path, leaf in zip(found, leaves)]
        comparison['expected_count'] = sum(map(len, expected))
    tested_ids = _split_ids(scored.get('split_file'), read)
    if same_config and tested_ids is not None:
        # Each dataset the loader reads (those a wrapper holds, in the
        # order its record joins their files), cut by its own indices.
        scored_leaves = [leaf for _, leaf in dataset_leaves(scored_cfg)]
        tested_ids = set().union(*(
            cut_by_indices(split_ids(resolve_config_path(path), read),
                            leaf.get('indices'))
            for path, leaf in zip(tested_files, scored_leaves))) \
            if len(tested_files) == len(scored_leaves) else None
    if expected is not None and tested_ids is not None:
        if same_config:
            expected_ids = set().union(*expected)
        else:
            # Whole files: a test cut by other indices than the config's
            # scored another number of images, compared below.
            expected_ids = set().union(
                *(split_ids(path, read) for path in found))
        comparison['outside'] = len(tested_ids - expected_ids)
        in_test_roots = not same_config or all(
            any(_one_folder(root, tested) for tested in tested_roots)
            for _, root in located)
        same = tested_ids == expected_ids and in_test_roots
        comparison['by_content'] = True
    else:
        names = sorted(split_name(leaf) or '' for leaf in leaves)
        tested_names = sorted(
            name_in_root(path, tested_roots[0] if len(tested_roots) == 1
                         else data_root_of(path)) for path in tested_files)
        same = names == tested_names
    images = scored.get('images')
    comparison['same'] = same and (
        comparison['expected_count'] is None or images is None
        or images == comparison['expected_count'])
    return comparison


def tested_split_difference(test_dataset, evaluated, read=None):
    """How the data a run's figures were computed on differs from its
    config's test split as it is (:func:`compare_with_test_split`), or
    None when they are that split (or the config reads no split file).

    Args:
        test_dataset (dict): The config's ``test_dataloader.dataset``.
        evaluated (dict): What the figures were computed on, as a run
            record's ``evaluated_data`` holds it (``data_root``,
            ``split_file``, ``images``; a wrapped loader's paths joined by
            ``' + '``).
        read (dict, optional): Split ids read so far (see
            :func:`~mmseg_dsnet.datasets.split_files.split_ids`).

    Returns:
        str | None: E.g. ``'/x/sub.txt (2 images), not on the test split
        of the config, /d/splits/lightweight_test.txt (5 images)'``.
    """
    from mmseg_dsnet.datasets.split_files import leaf_datasets
    comparison = compare_with_test_split(test_dataset, evaluated, read)
    if comparison['same'] is not False:
        return None
    leaves = leaf_datasets(test_dataset)
    config_files = ' + '.join(
        path or str(leaf.get('ann_file')) for path, leaf in
        zip(comparison['found'], leaves))
    expected_count = comparison['expected_count']
    listed = f' ({counted(expected_count, "image")})' \
        if expected_count is not None else ''
    # Named like the test split, with as many images, it may list others.
    images = evaluated.get('images')
    scored = [counted(images, 'image')] if images is not None else []
    if comparison['outside']:
        scored.append(f'it lists {counted(comparison["outside"], "image")} '
                      'the test split does not')
    scored = f' ({"; ".join(scored)})' if scored else ''
    tested = evaluated.get('split_file') or \
        f'every image of {evaluated.get("data_root")}'
    return (f'{tested}{scored}, not on the test split of the config, '
            f'{config_files}{listed}')


def datasets_without_split(test_dataset):
    """The datasets of a config's test loader that read no split file
    (``ann_file`` empty or not set), as dotted paths: mmseg's dataset
    then reads every image of its image folder, the training images too,
    so the config names no test split a row could be of.

    Args:
        test_dataset (dict): The config's ``test_dataloader.dataset``
            (the datasets a wrapper holds are each judged).

    Returns:
        list[str]: E.g. ``['test_dataloader.dataset']``; empty when each
        reads a split file.
    """
    from mmseg_dsnet.datasets.split_files import dataset_leaves
    return [f'test_dataloader.{path}' for path, leaf in
            dataset_leaves(test_dataset or {}) if not leaf.get('ann_file')]


def check_config_names_a_test_split(config, rec, work_dir):
    """Raise :class:`~mmseg_dsnet.utils.errors.UserError` when the named
    config's test loader reads no split file
    (:func:`datasets_without_split`): its test scores every image of the
    data root's image folder, training images included, and no
    comparison with a test split can be made.

    Args:
        config (str): The config named for the run.
        rec (dict): The run as :func:`~.work_dir.read_work_dir` reads it.
        work_dir (str): Its work dir, for the messages.
    """
    from mmengine.config import Config
    test = (Config.fromfile(config).get('test_dataloader') or {}).get(
        'dataset')
    unsplit = datasets_without_split(test)
    if not unsplit:
        return
    evaluated = rec['evaluated_data']
    what = evaluated.get('split_file') or \
        f'every image under {evaluated.get("data_root")}'
    if evaluated.get('images') is not None:
        what += f' ({counted(evaluated["images"], "image")})'
    raise UserError(
        f'{config}: {" and ".join(unsplit)} reads no split file (no '
        'ann_file): a test of it scores every image of its data root\'s '
        f'image folder, the training images too; {work_dir} was evaluated '
        f'on {what} ({rec["metrics_source"]}). A leaderboard row is the '
        "protocol's test split, every image of it and no other: set its "
        'ann_file to that split (splits/lightweight_test.txt or '
        'splits/official_test.txt), test the checkpoint with tools/test.py '
        'and that config, then collect')


def check_tested_on_the_test_split(config, rec, work_dir, read=None):
    """Raise :class:`~mmseg_dsnet.utils.errors.UserError` unless a run's
    figures were computed on its config's test split as it is
    (:func:`tested_split_difference`): a data location given to
    ``tools/test.py`` passes as one, so ``--cfg-options
    test_dataloader.dataset.ann_file=SUBSET`` (part of the test split,
    another split) gave figures of other images under the config's row.

    Args:
        config (str): The config named for the run.
        rec (dict): The run as :func:`~.work_dir.read_work_dir` reads it.
        work_dir (str): Its work dir, for the messages.
        read (dict, optional): Split ids read so far (see
            :func:`~mmseg_dsnet.datasets.split_files.split_ids`).
    """
    from mmengine.config import Config
    test = (Config.fromfile(config).get('test_dataloader') or {}).get(
        'dataset') or {}
    difference = tested_split_difference(test, rec['evaluated_data'], read)
    if difference:
        raise UserError(
            f'{work_dir} was tested on {difference} '
            f'({rec["metrics_source"]}); a leaderboard row is the config\'s '
            'test split as it is, every image of it: test the checkpoint '
            'on it with tools/test.py (data locations and loader workers '
            'may be given), then collect')


def check_options_keep_the_test_split(test_dataset, cfg, config=None):
    """Raise :class:`~mmseg_dsnet.utils.errors.UserError` when ``cfg``, a
    config with the ``--cfg-options`` that ``leaderboard.py run`` gives its
    seeds' tests, tests on another split than the config's test split as
    it is (:func:`tested_split_difference`), the config's test loader
    reads no split file (:func:`datasets_without_split`), or it wraps
    datasets that score no test split, each image once
    (:func:`~.work_dir.tested_split`): collect refuses each seed's
    figures, but only after the trainings.

    Args:
        test_dataset (dict): The config's ``test_dataloader.dataset``,
            without the options.
        cfg (Config): The config with the options merged.
        config (str, optional): The config file, for the message.
    """
    from mmseg_dsnet.datasets.synthetic_fallback import data_provenance
    unsplit = datasets_without_split(test_dataset)
    if unsplit:
        # collect refuses such figures (check_config_names_a_test_split).
        raise UserError(
            f'{" and ".join(unsplit)} of the config reads no split file (no '
            "ann_file): the seeds' tests would score every image of its "
            "data root's image folder, the training images too. A "
            "leaderboard row is the protocol's test split: set its "
            'ann_file to that split (splits/lightweight_test.txt or '
            'splits/official_test.txt), then run')
    tested = cfg.test_dataloader.dataset
    # The count is the options' indices, refused as result-changing.
    planned = dict(data_provenance(tested, 0), images=None)
    difference = tested_split_difference(test_dataset, planned)
    if difference:
        raise UserError(
            f'--cfg-options would test the seeds on {difference}; a '
            'leaderboard row is the config\'s test split as it is: give '
            'only its data location, or put the split into a config of '
            'its own (_base_ = the config) and run that')
    # collect reads a wrapped test loader so (dataset_facts).
    tested_split(tested, config or 'the config', advice=(
        'give run a config whose test loader reads that split '
        '(splits/lightweight_test.txt or splits/official_test.txt)'))


def _recorded_paths(recorded):
    """The paths a record's ``split_file`` (or ``data_root``) names:
    itself, or each of those of the datasets a wrapped loader holds, which
    a metrics file joins
    (:data:`~mmseg_dsnet.datasets.synthetic_fallback.JOINED_PATHS`);
    empty for None."""
    from mmseg_dsnet.datasets.synthetic_fallback import JOINED_PATHS
    if not recorded:
        return []
    if JOINED_PATHS in recorded and resolve_config_path(recorded) is None:
        return recorded.split(JOINED_PATHS)
    return [recorded]


def _split_ids(path, read=None):
    """The ids a split file lists, read as the ISIC datasets read them
    (:func:`~mmseg_dsnet.datasets.split_files.split_ids`: ``./ISIC_1`` is
    ``ISIC_1``), or None when it is not found here. The split files of a
    wrapped loader's datasets, as a metrics file joins them
    (:func:`_recorded_paths`), give the ids of all of them (None
    when one is not found).

    Args:
        path (str | None): The split file, or those joined.
        read (dict, optional): Split ids read so far (see
            :func:`~mmseg_dsnet.datasets.split_files.split_ids`).
    """
    from mmseg_dsnet.datasets.split_files import split_ids
    parts = _recorded_paths(path)
    if len(parts) > 1:
        listed = [_split_ids(part, read) for part in parts]
        return None if None in listed else set().union(*listed)
    found = resolve_config_path(path) if path else None
    if found is None or not osp.isfile(found):
        return None
    return set(split_ids(found, read))


# Ids named in the message; the rest are counted.
SHOWN_IDS = 3


def check_not_evaluated_on_trained_images(rec, work_dir, cfg=None,
                                          read=None):
    """Raise :class:`~mmseg_dsnet.utils.errors.UserError` when the split a
    run's metrics were computed on lists images of a split it trained
    on, by their ids. :func:`check_final_test_result` tells a training
    split by its name only, so a run trained on ``official_train.txt``
    and tested on ``lightweight_test.txt`` (whose images come from the
    official train and validation sets), or tested on the
    ``lightweight_test.txt`` of a conversion with another seed, passed
    with figures on images it learned from. Ids are read as the datasets
    read them (``./ISIC_1`` is ``ISIC_1``); split files not found here are
    not compared, one that is not plain UTF-8 text is refused.

    Args:
        rec (dict): The run as :func:`~.work_dir.read_work_dir` reads it.
        work_dir (str): Its work dir, for the messages.
        cfg (Config | dict, optional): Its training config: the split
            file of each dataset its training loader reads (those a
            wrapper, Repeat or Concat, holds, which name no split in
            ``rec``) is compared too.
        read (dict, optional): Split ids read so far (see
            :func:`~mmseg_dsnet.datasets.split_files.split_ids`).
    """
    from mmseg_dsnet.datasets.split_files import leaf_datasets
    # A wrapped training loader's record joins its data roots and split
    # files: those of several data roots are paired by the config below.
    roots = _recorded_paths(rec.get('data_root'))
    train_files = [osp.join(roots[0] if roots else '', str(split))
                   for split in _recorded_paths(rec.get('train_split'))] \
        if len(roots) <= 1 else []
    loader = (cfg or {}).get('train_dataloader') or {}
    train_files += [
        osp.join(str(leaf.get('data_root') or ''), str(leaf['ann_file']))
        for leaf in leaf_datasets(loader.get('dataset'))
        if leaf.get('ann_file')]
    evaluated_file = rec['evaluated_data'].get('split_file')
    evaluated = _split_ids(evaluated_file, read)
    if not evaluated:
        return
    for train_file in dict.fromkeys(train_files):
        seen = sorted((_split_ids(train_file, read) or set()) & evaluated)
        if seen:
            shown = first_few(seen, SHOWN_IDS)
            raise UserError(
                f'{work_dir} was evaluated on {evaluated_file}, which lists '
                f'{len(seen)} of its {counted(len(evaluated), "image")} in '
                'the split the '
                f'run trained on ({train_file}: {shown}); figures on images '
                'the model learned from overstate it: test on a split '
                'disjoint from the training split, then collect')


def check_data_is_the_dataset(rec, work_dir):
    """Raise :class:`~mmseg_dsnet.utils.errors.UserError` when the data a
    run trained or was evaluated on is, by its ``meta.json``, another ISIC
    year than the dataset its config names (the row takes its dataset from
    the config: ISIC 2017 data converted into ``data/isic2018`` would be
    shown as an ISIC 2018 result).

    Args:
        rec (dict): The run as :func:`~.work_dir.read_work_dir` reads it.
        work_dir (str): Its work dir, for the messages.
    """
    named = re.fullmatch(r'isic(\d{4})', str(rec.get('dataset_key')))
    if not named:
        return
    # A wrapped loader's record joins the data roots of its datasets.
    roots = [('trained on', root) for root in
             _recorded_paths(rec.get('data_root'))] + [
        ('evaluated on', root) for root in
        _recorded_paths(rec['evaluated_data'].get('data_root'))]
    for what, root in roots:
        year = data_year(root)
        if year is not None and year != int(named.group(1)):
            raise UserError(
                f'{work_dir} was {what} {root}, whose meta.json says ISIC '
                f'{year} data, but its config names {rec["dataset_type"]}; '
                f'the row would call it {rec["dataset"]}. Convert the '
                f'{rec["dataset"]} data there, or use an ISIC {year} config')


def check_not_chosen_on_test(cfg, checkpoint, test_splits, where):
    """Raise :class:`~mmseg_dsnet.utils.errors.UserError` when
    ``checkpoint`` is a ``best_*.pth`` that the run chose by validating on
    one of ``test_splits``: in the lightweight protocols the validation
    split is the test split, and a checkpoint picked on the test images
    overstates the model.

    Args:
        cfg (Config): The training config (its ``val_dataloader``).
        checkpoint (str | None): The checkpoint the metrics are of, or the
            one that will be tested.
        test_splits (Iterable[str]): The splits it is (or will be) tested
            on: paths (a validation split of another name holding their
            images is found by content), or file names.
        where (str): The work dir or config, for the message.
    """
    if not osp.basename(str(checkpoint or '')).startswith('best_'):
        return
    val_split = validates_on_images_of(cfg, test_splits)
    if val_split:
        raise UserError(
            f'{where}: the best checkpoint was chosen by validating on '
            f'{val_split}, the split it is tested on; figures of a '
            'checkpoint picked on the test images overstate the model: '
            'test the last checkpoint (leaderboard.py run --checkpoint '
            'last)')


CPU_LATENCY = osp.join(REPO_ROOT, 'results', 'cpu_latency.json')


class RecordKindError(UserError, ValueError):
    """A JSON file given to build or check is not the kind of record they
    read (a design record as a run record, a run record as the
    leaderboard), or lacks a key they read: it ended in a KeyError."""


# The keys of a run record that build reads without a default
# (table.row_key and table.aggregate, check_records_current).
RUN_RECORD_KEYS = ('source', 'model', 'config', 'dataset', 'protocol',
                   'schedule', 'seed', 'device', 'metrics',
                   'metrics_source_kind', 'record_file')


def _of(*kinds, null=True):
    """A test of a JSON value: one of ``kinds`` (``'number'``: a finite int
    or float, not a boolean; ``int``: not a boolean), or None when ``null``."""
    def test(value):
        # NaN and infinity are no figures: a mean of them printed 'nan' in
        # the tables, and stdev over them ended in a traceback.
        return (null and value is None) or any(
            is_number(value) and math.isfinite(value)
            if kind == 'number' else isinstance(value, kind) and not (
                kind is int and isinstance(value, bool))
            for kind in kinds)
    return test


def _size(value):
    """A test of a recorded input size: ``[height, width]`` or None."""
    return value is None or isinstance(value, list) and len(value) == 2 \
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                for v in value)


# What each entry of a run record that build reads must be: (test, what
# the message calls it). Entries other than RUN_RECORD_KEYS may be absent.
# A wrong one ended in a traceback (a string metric in statistics.fmean) or
# was rendered as it was.
RUN_RECORD_TYPES = dict(
    source=(_of(str, null=False), 'a string'),
    model=(_of(str, null=False), 'a string'),
    config=(_of(str, null=False), 'a string'),
    dataset=(_of(str, null=False), 'a string'),
    protocol=(_of(str), 'a string or null'),
    schedule=(_of(str, null=False), 'a string'),
    seed=(_of(int), 'an integer or null'),
    device=(_of(str, null=False), 'a string'),
    metrics=(_of(dict, null=False), 'an object'),
    metrics_source_kind=(_of(str, null=False), 'a string'),
    record_file=(_of(str, null=False), 'a string'),
    collected_at=(_of(str, null=False), 'a string'),
    **{key: (_of(str), 'a string or null') for key in (
        'schedule_tag', 'work_dir', 'train_time_method', 'train_split',
        'test_split')},
    **{key: (_of(int), 'an integer or null') for key in (
        'epochs', 'iterations', 'batch_size', 'train_images',
        'train_samples_per_epoch', 'test_images')},
    **{key: (_of('number'), 'a number or null')
       for key in table.RUN_STAT_FIELDS},
    **{key: (_of(bool), 'true, false or null')
       for key in ('short_schedule', 'synthetic_data')},
    **{key: (_of(dict), 'an object or null') for key in (
        'complexity', 'evaluated_data', 'model_config', 'input_size',
        'training')})
# The same for the entries of a record's objects.
RUN_RECORD_PART_TYPES = dict(
    metrics=dict.fromkeys((key for _, key, _ in table.METRIC_FIELDS),
                          (_of('number'), 'a number or null')),
    complexity=dict(**dict.fromkeys(
        ('params', 'flops', 'flops_weight_layers'),
        (_of('number'), 'a number or null')),
        deploy=(_of(dict), 'an object or null')),
    input_size=dict.fromkeys(('train', 'test'), (
        _size, 'a list of two positive integers (height, width) or null')))


def _json_kind(value):
    """How JSON names the kind of ``value``, with the value."""
    kind = {str: 'a string', bool: 'a boolean', int: 'an integer',
            float: 'a number', list: 'a list', dict: 'an object'}.get(
                type(value), type(value).__name__)
    if isinstance(value, float) and not math.isfinite(value):
        kind = 'a number that is not finite'
    shown = repr(value)
    return 'null' if value is None else \
        f'{kind} ({shown[:40] + "..." if len(shown) > 40 else shown})'


def check_run_record_types(path, record, fix):
    """Refuse a run record with an entry of :data:`RUN_RECORD_TYPES` (or of
    :data:`RUN_RECORD_PART_TYPES`) of another type.

    Raises:
        RecordKindError: Naming the file and every such entry, its value
            and what it should be.
    """
    bad = []
    for key, (test, what) in RUN_RECORD_TYPES.items():
        if key in record and not test(record[key]):
            bad.append(f'{key} is {_json_kind(record[key])}, not {what}')
    for part, specs in RUN_RECORD_PART_TYPES.items():
        if not isinstance(record.get(part), dict):
            continue
        for key, (test, what) in specs.items():
            value = record[part].get(key)
            if not test(value):
                bad.append(f'{part}.{key} is {_json_kind(value)}, not {what}')
    if bad:
        raise RecordKindError(f'{path} is not a valid run record: '
                              f'{"; ".join(bad)}; {fix}')


def _record_kind(obj):
    """What a JSON object from results/ is, by the keys only that kind has
    (a design record: split ``design``, as design.check_design_record
    tests), or None."""
    if not isinstance(obj, dict):
        return None
    if obj.get('split') == 'design':
        return ('a design record (results/design/: '
                'tools/analysis_tools/design_table.py reads those)')
    if 'measured' in obj:
        return 'a leaderboard (what leaderboard.py build writes)'
    if 'record_version' in obj:
        return 'a run record (results/runs/*.json)'
    return None


def _check_keys(path, obj, keys, what, fix):
    """Raise :class:`RecordKindError` naming ``path`` unless ``obj`` is a
    JSON object holding every key of ``keys``.

    Args:
        path (str): The file, for the message.
        obj: What it holds (or a part of it).
        keys (tuple[str]): The keys the reader needs.
        what (str): What ``obj`` should be (``'run record'``).
        fix (str): What to give instead.
    """
    if not isinstance(obj, dict):
        raise RecordKindError(f'{path} is not a {what}: it holds a '
                              f'{type(obj).__name__}, not a JSON object; '
                              f'{fix}')
    missing = [key for key in keys if key not in obj]
    if missing:
        raise RecordKindError(f'{path} is not a complete {what}: it lacks '
                              f'{", ".join(missing)}; {fix}')


def _check_kind(path, obj, kind_prefix, label, fix):
    """Refuse ``obj`` when :func:`_record_kind` recognises it as another
    kind of file than the one whose description starts with
    ``kind_prefix`` (``label`` names that kind in the message)."""
    kind = _record_kind(obj)
    if kind and not kind.startswith(kind_prefix):
        raise RecordKindError(f'{path} is {kind}, not {label}; {fix}')


def check_run_record(path, record):
    """Refuse a file that build cannot aggregate: another kind of record
    (a design record), a run record without a key of
    :data:`RUN_RECORD_KEYS`, or one with an entry of another type
    (:func:`check_run_record_types`).

    Raises:
        RecordKindError: naming the file and what it is or lacks.
    """
    fix = ('give the run records leaderboard.py collect writes '
           '(results/runs/*.json)')
    _check_kind(path, record, 'a run record', 'a leaderboard run record',
                fix)
    _check_keys(path, record, RUN_RECORD_KEYS, 'run record', fix)
    if record['source'] != 'measured' or not isinstance(record['metrics'],
                                                        dict):
        raise RecordKindError(
            f'{path} is not a measured run record (source '
            f'{record["source"]!r}, metrics a '
            f'{type(record["metrics"]).__name__}); {fix}')
    check_run_record_types(path, record, fix)
    # One seed without a figure would make the row's mean of it None: '-'
    # in its column for every seed.
    metrics = record['metrics']
    missing = [key for _, key, _ in table.METRIC_FIELDS
               if metrics.get(key) is None]
    if missing:
        keys = first_few(list(metrics), 6) or 'none'
        raise RecordKindError(
            f'{path} holds no {", ".join(missing)} in its metrics (its '
            f'keys: {keys}): the row '
            'of its model would show - for each of them, for all its '
            'seeds; collect the run again from a test with LesionMetric '
            '(collect takes off the prefix of a prefixed evaluator)')


def check_leaderboard_file(path, board):
    """Refuse a file that check cannot compare the pages with: another kind
    of record (a run record), or a leaderboard whose rows lack a key the
    blocks read (:data:`~.blocks.MEASURED_ROW_KEYS` and the like).

    Raises:
        RecordKindError: naming the file and what it is or lacks.
    """
    fix = ('give the leaderboard.json that leaderboard.py build wrote '
           '(results/leaderboard.json)')
    _check_kind(path, board, 'a leaderboard', 'a leaderboard', fix)
    _check_keys(path, board, ('measured', ), 'leaderboard', fix)
    latency = board.get('cpu_latency')
    if latency is not None:
        _check_keys(path, latency, ('source', 'forms'),
                    'leaderboard (cpu_latency)', fix)
    parts = [('measured', board.get('measured', []),
              blocks.MEASURED_ROW_KEYS),
             ('reported', board.get('reported', []),
              blocks.REPORTED_ROW_KEYS),
             ('cpu_latency forms', (latency or {}).get('forms', []),
              blocks.LATENCY_FORM_KEYS)]
    for name, rows, keys in parts:
        if not isinstance(rows, list):
            raise RecordKindError(f'{path} is not a leaderboard: its {name} '
                                  f'is a {type(rows).__name__}, not a list; '
                                  f'{fix}')
        for index, row in enumerate(rows, 1):
            _check_keys(path, row, keys, f'leaderboard ({name} row {index})',
                        fix)


class FlopsConventionError(UserError, ValueError):
    """Run records whose FLOPs were counted two ways: the board states one
    way for its FLOPs column."""


def flops_convention(records):
    """How the records' FLOPs were counted (``complexity.convention``, as
    get_flops states it), '' when none says.

    Args:
        records (list[dict]): Run records.

    Raises:
        FlopsConventionError: Two records state different conventions
            (one collected before the counter changed): one FLOPs column
            cannot state both.
    """
    found = {}  # convention -> the first record stating it
    for record in records:
        convention = (record.get('complexity') or {}).get('convention')
        if convention:
            found.setdefault(convention, record.get('record_file'))
    if len(found) > 1:
        (first, one), (second, other) = list(found.items())[:2]
        raise FlopsConventionError(
            f'the run records count FLOPs in different ways: {one} '
            f'({first!r}) and {other} ({second!r}); one FLOPs column cannot '
            'state both: collect the older runs again (collect measures '
            'with the current counter), then build')
    return next(iter(found), '')


def board_from_records(records, reported_path, cpu_latency=CPU_LATENCY):
    """What ``leaderboard.json`` holds for these run records.

    Args:
        records (list[dict]): Run records.
        reported_path (str | None): Published figures (skipped when the
            file is absent).
        cpu_latency (str | None): A ``cpu_latency.py`` result whose 1-thread
            figures are copied in (skipped when the file is absent).
    """
    reported = load_json(reported_path) if reported_path and \
        osp.isfile(reported_path) else None
    board = table.build_board(records, reported,
                              flops_convention(records))
    if cpu_latency and osp.isfile(cpu_latency):
        board['cpu_latency'] = blocks.latency_summary(
            load_json(cpu_latency), _rel(cpu_latency))
    return board


def build(run_files, reported_path, out_dir, readme=None, plot=True,
          model_card=None, cpu_latency=CPU_LATENCY):
    """Aggregate run records into the leaderboard files, and write the
    generated blocks of the README and the model card from them.

    Args:
        cpu_latency (str): A ``cpu_latency.py`` result whose 1-thread
            figures are copied into the board (``cpu_latency``); the pages'
            CPU ms column quotes them. Skipped when the file is absent.

    Returns:
        dict: ``board`` (what leaderboard.json holds), ``paths`` (files
        written) and ``plot_points`` (panel, label, GFLOPs, DSC, source of
        every point drawn).
    """
    records = [load_json(p) for p in sorted(run_files)]
    for path, record in zip(sorted(run_files), records):
        check_run_record(path, record)
        # A record collected before collect compared the two.
        check_schedule_text(
            record['schedule'], record, f'{path}: its schedule',
            'collect the run again with the description of its own '
            'schedule')
    check_records_current(records)
    check_one_model_per_row(records)
    pages = [(path, kind, render, markers) for path, kind, render, markers in
             ((readme, 'readme', blocks.readme_block,
               blocks.README_MARKERS),
              (model_card, 'model_card', blocks.model_card_block,
               blocks.MODEL_CARD_MARKERS)) if path]
    # Every page is read and checked before any output is written: a page
    # that cannot take its block must not leave new files beside old pages.
    texts = {}
    for path, _, _, markers in pages:
        with open(path) as f:
            texts[path] = f.read()
        blocks.check_markers(texts[path], markers, path)
    board = board_from_records(records, reported_path, cpu_latency)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        # A file where the folder (or one above it) goes: a FileExistsError
        # traceback, exit 1.
        from mmseg_dsnet.engine.preflight import _file_in_path
        blocker = _file_in_path(out_dir)
        reason = f'{blocker} is a file, not a folder' if blocker else \
            err.strerror or str(err)
        raise UserError(
            f'--out-dir {out_dir}: cannot make the folder ({reason}); give '
            'a folder for the leaderboard files; nothing was written'
        ) from None
    paths, files = table.output_files(board, out_dir)
    points = None
    png = osp.join(out_dir, 'leaderboard.png')
    if plot:
        from .plot import plot_leaderboard
        paths['png'] = png
        points = []

        def draw(tmp_path):
            points.extend(plot_leaderboard(board, tmp_path))

        files.append((draw, png))
    for path, kind, render, markers in pages:
        files.append((blocks.replace_block(texts[path], render(board),
                                           markers, path), path))
        paths[kind] = path
    # All at once: written one after the other, an interrupt (Ctrl-C,
    # SIGTERM) or a failed plot left the new JSON beside the previous
    # build's tables, plot and README block -- a set that did not match.
    atomic_write_together(files)
    if not plot and osp.isfile(png):
        # An earlier build's plot beside this board would show other rows.
        os.remove(png)
        print(f'Removed {png} of an earlier build: it would not show this '
              'board (build without --no-plot to draw it)')
    for kind, path in paths.items():
        print(f'{kind}: {path}')
    return dict(board=board, paths=paths, plot_points=points)


def check(readme, leaderboard_json, model_card=None):
    """Print every difference between the generated blocks of the README
    (and the model card) and ``leaderboard_json``; returns the exit status
    (1: they differ)."""
    board = load_json(leaderboard_json)
    check_leaderboard_file(leaderboard_json, board)
    pages = [(readme, blocks.check_readme, blocks.README_MARKERS),
             (model_card, blocks.check_model_card, blocks.MODEL_CARD_MARKERS)]
    status = 0
    for path, check_page, markers in pages:
        if not path:
            continue
        with open(path) as f:
            text = f.read()
        # A page whose block cannot be told from its prose is no drift.
        blocks.check_markers(text, markers, path)
        problems = check_page(text, board)
        for problem in problems:
            print(f'MISMATCH ({path}): {problem}', file=sys.stderr)
        if problems:
            status = 1
            print(f'{path} disagrees with {leaderboard_json}; regenerate '
                  'it with: leaderboard.py build --readme README.md '
                  '--model-card configs/dsnet/README.md', file=sys.stderr)
        else:
            print(f'{path} agrees with {leaderboard_json}')
    return status