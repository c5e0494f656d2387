"""Aggregate leaderboard run records and render them: JSON, CSV and
Markdown (``results/leaderboard.*``; the README's and the model card's
blocks are rendered by :mod:`.blocks`).

Aggregation: runs are grouped by (model, dataset, protocol, schedule); every
figure becomes ``{"mean", "std", "min", "max", "n"}`` over the group's seeds,
where ``std`` is the sample standard deviation (n - 1 in the denominator)
and is ``null`` for a single seed; a group's seeds must share the facts of
:data:`RUN_FACTS` (input size, device, schedule, data root, test set).
Metric values are in percent, exactly as LesionMetric logged them
(rounding happens only in the Markdown).

Published figures (``results/reported.json``) stay in their own list,
section and CSV file, marked ``source: reported``; they are never mixed into
the measured rows.
"""
import csv
import hashlib
import io
import os.path as osp
import statistics

from mmseg_dsnet.utils.config_diff import config_differences, value_at
from mmseg_dsnet.utils.errors import UserError
from mmseg_dsnet.utils.fileio import json_text
from mmseg_dsnet.utils.paths import folder_key
from mmseg_dsnet.utils.percent import percent_text


# (leaderboard field, LesionMetric key, Markdown header)
METRIC_FIELDS = (
    ('iou', 'IoU', 'IoU'), ('dsc', 'DSC', 'DSC'), ('acc', 'Acc', 'Acc'),
    ('sen', 'Sen', 'Sen'), ('spe', 'Spe', 'Spe'),
    ('iou_orig', 'IoU_orig', None), ('dsc_orig', 'DSC_orig', None),
    ('acc_orig', 'Acc_orig', None), ('sen_orig', 'Sen_orig', None),
    ('spe_orig', 'Spe_orig', None),
    ('miou_img', 'mIoU_img', 'IoU/img'), ('mdsc_img', 'mDSC_img', 'DSC/img'),
    ('tj', 'TJ', 'TJ'), ('mmseg_miou', 'mIoU', 'mmseg mIoU'),
    ('mmseg_mdice', 'mDice', 'mmseg mDice'))
# Per-run figures aggregated over seeds besides the metrics.
RUN_STAT_FIELDS = ('train_time_s', 'train_img_per_s', 'cpu_latency_ms',
                   'cpu_latency_p90_ms', 'gpu_img_per_s')
STATS_NOTE = ('mean over seeds; std = sample standard deviation (n-1), null '
              'for one seed; min/max over seeds; n = runs averaged (for '
              'timings: the runs that were benchmarked); metric values in '
              'percent')
SHORT_NOTE = ('† short schedule (fewer than 300 epochs or a subset of the '
              'training split): a sanity measurement, not comparable with '
              'the published figures.')


def stats(values, skip_missing=False):
    """Mean, sample std, min, max and count of a list of numbers.

    Args:
        values (list): One number (or None) per seed.
        skip_missing (bool): Aggregate the runs that have the figure (e.g.
            only some runs were benchmarked); otherwise any missing value
            makes the result None.
    """
    if skip_missing:
        values = [v for v in values if v is not None]
    if not values or any(v is None for v in values):
        return None
    return dict(mean=statistics.fmean(values),
                std=statistics.stdev(values) if len(values) > 1 else None,
                min=min(values), max=max(values), n=len(values))


def _distinct(values):
    out = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


def _one_or_all(values):
    values = _distinct(values)
    return values[0] if len(values) == 1 else values


def _evaluated_split(record):
    """Base name of the split file a run's metrics were computed on (as
    tools/test.py recorded it, else the test split of its config)."""
    split = (record.get('evaluated_data') or {}).get('split_file') or \
        record.get('test_split')
    return osp.basename(str(split)) if split else None


def _evaluated_split_images(record):
    """The images a run's evaluated split file lists, as their number and
    a digest of their sorted ids, where the file is found here; None
    otherwise (not compared). Seeds tested on other images under one file
    name (two conversions, an edited split) measured different things."""
    # Read as collect reads the split files (the ids as the datasets read
    # them, each file of a wrapped loader).
    from .board import _split_ids
    split = (record.get('evaluated_data') or {}).get('split_file')
    ids = _split_ids(split) if split else None
    if ids is None:
        return None
    digest = hashlib.sha1('\n'.join(sorted(ids)).encode()).hexdigest()
    return f'{len(ids)} ids (sha1 {digest[:12]})'


def _input_size(part):
    """How a record gives the ``'train'`` or ``'test'`` input size
    (``HxW``); None where it is not recorded: records collected before
    ``input_size`` was recorded lack it, and a size they do not hold is
    unknown, not 256."""
    def value_of(record):
        size = (record.get('input_size') or {}).get(part)
        return 'x'.join(map(str, size)) if size else None
    return value_of


def _data_root(part):
    """How a record gives the data root it ``'trained'`` or was
    ``'evaluated'`` on, normalised (a relative root is taken from the
    repository root, as the tools resolve it); None where it is not
    recorded (``evaluated_data`` is absent in older records): unknown, not
    a difference."""
    def value_of(record):
        if part == 'trained':
            root = record.get('data_root')
        else:
            root = (record.get('evaluated_data') or {}).get('data_root')
        if not root:
            return None
        # Two spellings of one folder, or a link to it, are one data root.
        return folder_key(str(root))
    return value_of


# What ``platform`` gave for a CPU before benchmark.py read its model name:
# the architecture, which does not tell two CPUs apart.
_ARCHITECTURES = {'x86_64', 'amd64', 'i386', 'i686', 'aarch64', 'arm64',
                  'armv7l', 'ppc64le', 's390x', ''}


def _benchmark_cpu(record):
    """The CPU a record's latency was measured on; None where not
    measured, or named by its architecture alone (older records)."""
    cpu = (record.get('cpu_benchmark') or {}).get('cpu')
    if cpu is None or str(cpu).strip().lower() in _ARCHITECTURES:
        return None
    return cpu


# What a row's seeds must share besides its key: seeds that differ in one
# of these measured different things, and their mean is no figure of the
# row. (fact, how a record gives it; None: not recorded, not compared.)
def _checkpoint_tested(record):
    """Which checkpoint a run's figures are of: ``best_*.pth`` (chosen on
    validation) or the final weights; None where the record does not say
    (records before ``checkpoint`` was recorded)."""
    name = osp.basename(str(record.get('checkpoint') or ''))
    if name.startswith('best_'):
        return 'best on validation (best_*.pth)'
    # collect refuses the checkpoint of an earlier epoch; a validation
    # line of the last epoch is of its final weights.
    if name or record.get('metrics_source_kind') == 'last validation line':
        return 'final'
    return None


RUN_FACTS = (
    ('input size (training)', _input_size('train')),
    ('input size (test)', _input_size('test')),
    ('device', lambda r: r.get('device')),
    ('epochs', lambda r: r.get('epochs')),
    ('iterations', lambda r: r.get('iterations')),
    ('batch size', lambda r: r.get('batch_size')),
    ('train images', lambda r: r.get('train_images')),
    ('train samples per epoch', lambda r: r.get('train_samples_per_epoch')),
    ('data root (training)', _data_root('trained')),
    ('train split', lambda r: osp.basename(str(r['train_split']))
     if r.get('train_split') else None),
    ('test images', lambda r: r.get('test_images')),
    # The split files' base names alone match on two conversions (or
    # another set) of one layout.
    ('data root (evaluated)', _data_root('evaluated')),
    ('evaluated images',
     lambda r: (r.get('evaluated_data') or {}).get('images')),
    ('evaluated split', _evaluated_split),
    # By content: one file name may list other images.
    ('images of the evaluated split', _evaluated_split_images),
    # The mean of a best-on-validation model and a final one is neither.
    ('checkpoint tested', _checkpoint_tested),
    # The row's CPU ms and GPU img/s are means over its seeds' benchmarks:
    # seeds collected on two machines (or GPU batches) averaged both.
    ('BatchNorm statistics recomputed after training',
     lambda r: None if r.get('batch_norm_recalibration') is None else
     bool(r['batch_norm_recalibration'])),
    ('CPU of the latency benchmark', _benchmark_cpu),
    ('GPU of the throughput benchmark',
     lambda r: (r.get('gpu_benchmark') or {}).get('gpu')),
    ('batch of the GPU throughput',
     lambda r: (r.get('gpu_benchmark') or {}).get('batch_size')))


# The training settings a record holds (``training``, absent in older
# records) that the facts above do not cover: seeds of one row trained
# with another learning rate, scheduler or augmentation (``leaderboard.py
# run --cfg-options optim_wrapper.optimizer.lr=0.01`` under one
# ``--schedule``) measured another setting.
TRAINING_PARTS = ('optim_wrapper', 'param_scheduler', 'train_pipeline')


def _training_difference(runs):
    """The first training setting (:data:`TRAINING_PARTS`) in which the
    runs that record them differ, as ``path value (files) vs value
    (files)``, or None."""
    known = [run for run in runs if isinstance(run.get('training'), dict)]
    if len(known) < 2:
        return None
    first = known[0]['training']
    for run in known[1:]:
        other = run['training']
        for part in TRAINING_PARTS:
            path = next(config_differences(first.get(part), other.get(part),
                                           part), None)
            if path is None:
                continue
            sides = {}
            for each in known:
                value = repr(value_at(each['training'], path))
                sides.setdefault(value, []).append(
                    str(each.get('record_file')))
            return f'training setting {path} ' + ' vs '.join(
                f'{value} ({", ".join(files)})'
                for value, files in sides.items())
    return None


class MixedRunsError(UserError, ValueError):
    """The seeds of one row were run differently (another input size,
    device, schedule, data root or test set), so their mean would be no
    figure of one setting."""


def check_runs_alike(runs):
    """Refuse the runs of one row unless they share every known fact of
    :data:`RUN_FACTS` and the training settings they record
    (:data:`TRAINING_PARTS`).

    Args:
        runs (list[dict]): The run records of one row.

    Raises:
        MixedRunsError: naming the row, each differing fact with its values
            and the record files that hold them.
    """
    differing = []
    for fact, value_of in RUN_FACTS:
        values = [value_of(run) for run in runs]
        known = _distinct(v for v in values if v is not None)
        if len(known) > 1:
            differing.append(f'{fact} ' + ' vs '.join(
                f'{value} (' + ', '.join(
                    str(run.get('record_file')) for run, v in
                    zip(runs, values) if v == value) + ')'
                for value in known))
    training = _training_difference(runs)
    if training:
        differing.append(training)
    if differing:
        first = runs[0]
        raise MixedRunsError(
            f'the row {first["model"]} ({first["dataset"]}, '
            f'{first["protocol"]}, {first["schedule"]}) would average seeds '
            f'run differently: {"; ".join(differing)}; give only runs of '
            'one setting (collect the others under another --schedule or '
            '--label)')


class DuplicateRunError(UserError, ValueError):
    """One test of one run is held by two records that the leaderboard
    would count as two runs (two rows, or two seeds of one row)."""


def measurement_of(record):
    """What identifies the test of a run a record holds: its work dir and
    where its metrics were read; None when the record names no work dir."""
    work_dir = record.get('work_dir')
    if not work_dir:
        return None
    return osp.normpath(str(work_dir)), record.get('metrics_source')


def _run_name(record):
    """How messages name a record: its file, model and seed."""
    return (f'{record.get("record_file")} ({record["model"]}, seed '
            f'{record["seed"]})')


def check_each_run_once(groups):
    """Refuse a run's test held by records in two places of the board: a
    run collected again under another ``--schedule`` (or ``--label``)
    keeps its first record beside the new one, so its figures were shown
    in two rows (and counted twice in the runs the board is built from);
    a record copied under another seed was averaged with itself.

    Args:
        groups (dict): Row key -> {seed: record}, as :func:`aggregate`
            groups them.

    Raises:
        DuplicateRunError: Naming both record files and the run.
    """
    seen = {}
    for by_seed in groups.values():
        for rec in by_seed.values():
            run = measurement_of(rec)
            if run is None:
                continue
            other = seen.setdefault(run, rec)
            if other is not rec:
                raise DuplicateRunError(
                    f'{_run_name(other)} and {_run_name(rec)} hold the same '
                    f'test of one run ({run[0]}, {run[1]}); it would be '
                    'counted as two runs: keep one of the records (move the '
                    'other out of the records given to build)')


def row_key(record):
    """The row a run record is averaged into: model, dataset, protocol and
    schedule (the seeds are its runs)."""
    return (record['model'], record['dataset'], record['protocol'],
            record['schedule'])


def aggregate(records):
    """Leaderboard rows (one per model, dataset, protocol and schedule) from
    per-run records; a seed collected twice from one work dir counts once
    (the newest). Two runs of one seed from different work dirs are
    refused: which of them the row shows would be an accident of order,
    and so are seeds run differently (:func:`check_runs_alike`) and one
    run's test in two rows or under two seeds
    (:func:`check_each_run_once`)."""
    groups = {}
    for rec in sorted(records, key=lambda r: r.get('collected_at', '')):
        key = row_key(rec)
        earlier = groups.setdefault(key, {}).get(rec['seed'])
        if earlier and earlier.get('work_dir') != rec.get('work_dir'):
            raise UserError(
                f'two runs of {rec["model"]} seed {rec["seed"]} '
                f'({rec["schedule"]}): {earlier.get("work_dir")} and '
                f'{rec.get("work_dir")}; give the records of one of them')
        groups[key][rec['seed']] = rec
    check_each_run_once(groups)
    rows = []
    for (model, dataset, protocol, schedule), by_seed in groups.items():
        runs = [by_seed[s] for s in sorted(by_seed, key=lambda s: (
            s is None, s))]
        check_runs_alike(runs)
        complexity = runs[0].get('complexity') or {}
        deploy = complexity.get('deploy') or {}
        row = dict(
            model=model, config=_one_or_all(r['config'] for r in runs),
            dataset=dataset, protocol=protocol, schedule=schedule,
            schedule_tag=_one_or_all(r.get('schedule_tag') for r in runs),
            short_schedule=any(r.get('short_schedule') for r in runs),
            source='measured', seeds=[r['seed'] for r in runs],
            device=' / '.join(_distinct(r['device'] for r in runs)),
            params=complexity.get('params'), flops=complexity.get('flops'),
            flops_weight_layers=complexity.get('flops_weight_layers'),
            params_deployed=deploy.get('params'),
            flops_deployed=deploy.get('flops'),
            epochs=_one_or_all(r.get('epochs') for r in runs),
            iterations=_one_or_all(r.get('iterations') for r in runs),
            batch_size=_one_or_all(r.get('batch_size') for r in runs),
            train_images=_one_or_all(r.get('train_images') for r in runs),
            test_images=_one_or_all(r.get('test_images') for r in runs),
            synthetic_data=any(r.get('synthetic_data') for r in runs),
            metrics_source=_one_or_all(
                r['metrics_source_kind'] for r in runs),
            train_time_method=_one_or_all(
                r.get('train_time_method') for r in runs))
        for field, key, _ in METRIC_FIELDS:
            row[field] = stats([r['metrics'].get(key) for r in runs])
        for field in RUN_STAT_FIELDS:
            row[field] = stats([r.get(field) for r in runs],
                               skip_missing=True)
        row['runs'] = [r['record_file'] for r in runs]
        rows.append(row)
    rows.sort(key=lambda r: (r['dataset'], r['protocol'], r['schedule'],
                             -(r['dsc'] or {}).get('mean', 0.0)))
    return rows


def reported_rows(reported):
    """One row per published (model, dataset) figure of reported.json."""
    rows = []
    for entry in reported['models']:
        for result in entry['results']:
            rows.append(dict(
                model=entry['model'], dataset=result.get('dataset'),
                protocol=result.get('protocol'), source='reported',
                params=entry.get('params'), flops=entry.get('flops'),
                approx=entry.get('approx', False), iou=result.get('iou'),
                dsc=result.get('dsc'), citation=entry['citation'],
                note=result.get('note', entry.get('note'))))
    return rows


# ---------------------------------------------------------------- formatting
def _num(value, digits=2):
    return '-' if value is None else f'{value:.{digits}f}'


def _stat(value, digits=2):
    if value is None:
        return '-'
    if value['std'] is None:
        return _num(value['mean'], digits)
    return f'{value["mean"]:.{digits}f} ± {value["std"]:.{digits}f}'


def _timing(field, digits=2):
    """A timing column's cell: :func:`_stat`, and how many of the row's
    seeds it is over where some were not timed (``leaderboard.py collect
    --no-benchmark``), as the Seeds column beside it names them all."""
    def cell(row):
        value = row[field]
        text = _stat(value, digits)
        if value is not None and value['n'] < len(row['seeds']):
            text += f' ({value["n"]} of {len(row["seeds"])} seeds)'
        return text
    return cell


def _percent_stat(value):
    """A metric's mean (± std) in percent: a mean that is not perfect
    never shows as ``100.00`` (``>99.99``), as LesionMetric's own table."""
    if value is None:
        return '-'
    if value['std'] is None:
        return percent_text(value['mean'])
    return f'{percent_text(value["mean"])} ± {value["std"]:.2f}'


def _mega(value, approx=False):
    return '-' if value is None else \
        ('~' if approx else '') + f'{value / 1e6:.3f}'


def _giga(value, approx=False):
    return '-' if value is None else \
        ('~' if approx else '') + f'{value / 1e9:.3f}'


MEASURED_COLUMNS = (
    [('Model', lambda r: r['model']), ('Dataset', lambda r: r['dataset']),
     ('Protocol', lambda r: r['protocol']),
     ('Schedule', lambda r: r['schedule'] + (' †' if r['short_schedule']
                                             else '')),
     ('Seeds', lambda r: ', '.join(str(s) for s in r['seeds'])),
     ('Device', lambda r: r['device']),
     ('Params (M)', lambda r: _mega(r['params'])),
     ('GFLOPs', lambda r: _giga(r['flops'])),
     ('GFLOPs conv/linear', lambda r: _giga(r['flops_weight_layers']))] +
    [(header, lambda r, f=field: _percent_stat(r[f]))
     for field, _, header in METRIC_FIELDS if header] +
    [('CPU ms (b1, 1 thread)', _timing('cpu_latency_ms')),
     ('GPU img/s', _timing('gpu_img_per_s', 0)),
     ('Train time (s)', _timing('train_time_s', 0))])
REPORTED_COLUMNS = (
    ('Model', lambda r: r['model']),
    ('Dataset', lambda r: r['dataset'] or 'not stated'),
    ('Protocol', lambda r: r['protocol'] or '-'),
    ('Params (M)', lambda r: _mega(r['params'], r['approx'])),
    ('GFLOPs', lambda r: _giga(r['flops'], r['approx'])),
    ('IoU', lambda r: _num(r['iou'])), ('DSC', lambda r: _num(r['dsc'])),
    ('Source', lambda r: 'reported'), ('Citation', lambda r: r['citation']))


def markdown_table(columns, rows):
    cells = [[str(fn(row)).replace('|', '/') for _, fn in columns]
             for row in rows]
    lines = ['| ' + ' | '.join(h for h, _ in columns) + ' |',
             '|' + '|'.join(' --- ' for _ in columns) + '|']
    lines += ['| ' + ' | '.join(c) + ' |' for c in cells]
    return '\n'.join(lines)


def summary_line(rows):
    """Device, protocol, seeds and schedule of the measured rows."""
    if not rows:
        return 'No measured runs yet.'

    def join(values):
        return '; '.join(_distinct(str(v) for v in values))

    seeds = sorted({s for r in rows for s in r['seeds']},
                   key=lambda s: (s is None, s))
    line = (f'Measured here — device: {join(r["device"] for r in rows)}; '
            f'dataset: {join(r["dataset"] for r in rows)}; protocol: '
            f'{join(r["protocol"] for r in rows)}; seeds: '
            f'{", ".join(map(str, seeds))}; schedule: '
            f'{join(r["schedule"] for r in rows)}.')
    if any(r['synthetic_data'] for r in rows):
        line += ' Some rows use the synthetic stand-in data set.'
    return line


def leaderboard_markdown(board):
    parts = ['# Leaderboard', '',
             f'Generated by `tools/analysis_tools/leaderboard.py build` from '
             f'{sum(len(r["runs"]) for r in board["measured"])} logged runs '
             f'(`results/runs/*.json`). Values: {STATS_NOTE}. FLOPs: '
             f'{board["flops_convention"]}. CPU latency: batch 1, 1 thread, '
             '256x256, median over timed runs.', '',
             '## Measured', '', summary_line(board['measured']), '',
             markdown_table(MEASURED_COLUMNS, board['measured'])]
    if any(r['short_schedule'] for r in board['measured']):
        parts += ['', SHORT_NOTE]
    parts += ['', '## Reported (published figures, not measured here)', '',
              board.get('reported_note', ''), '',
              markdown_table(REPORTED_COLUMNS, board['reported']), '']
    return '\n'.join(parts)


STAT_FIELDS = tuple(f for f, _, _ in METRIC_FIELDS) + RUN_STAT_FIELDS


def _flat(row, fields):
    """A CSV row: each statistic becomes field (the mean), field_std,
    field_min, field_max and field_n."""
    out = {}
    for field in fields:
        value = row.get(field)
        if field in STAT_FIELDS and row.get('source') == 'measured':
            value = value or {}
            out[field] = value.get('mean')
            for part in ('std', 'min', 'max', 'n'):
                out[f'{field}_{part}'] = value.get(part)
        elif isinstance(value, list):
            out[field] = ' '.join(map(str, value))
        else:
            out[field] = value
    return out


def csv_text(rows):
    """The rows as the text of a CSV file (a header of every field)."""
    flat = [_flat(r, list(r)) for r in rows]
    header = _distinct(k for r in flat for k in r)
    text = io.StringIO(newline='')
    writer = csv.DictWriter(text, fieldnames=header)
    writer.writeheader()
    writer.writerows(flat)
    return text.getvalue()


def build_board(records, reported, flops_convention=''):
    return dict(
        description='DSNet leaderboard, generated by '
        'tools/analysis_tools/leaderboard.py build from logged runs',
        stats=STATS_NOTE, flops_convention=flops_convention,
        metric_fields={field: key for field, key, _ in METRIC_FIELDS},
        measured=aggregate(records),
        reported_note=reported.get('description', '') if reported else '',
        reported=reported_rows(reported) if reported else [])


def output_files(board, out_dir):
    """The leaderboard files of ``board`` in ``out_dir``, unwritten.

    Returns:
        tuple[dict, list]: The paths by kind (json, csv, reported_csv, md),
        and ``(text, path)`` pairs for
        :func:`~mmseg_dsnet.utils.fileio.atomic_write_together`.
    """
    paths = dict(json=osp.join(out_dir, 'leaderboard.json'),
                 csv=osp.join(out_dir, 'leaderboard.csv'),
                 reported_csv=osp.join(out_dir, 'leaderboard_reported.csv'),
                 md=osp.join(out_dir, 'leaderboard.md'))
    texts = dict(json=json_text(board, indent=2, ensure_ascii=False) + '\n',
                 csv=csv_text(board['measured']),
                 reported_csv=csv_text(board['reported']),
                 md=leaderboard_markdown(board))
    return paths, [(texts[kind], path) for kind, path in paths.items()]
