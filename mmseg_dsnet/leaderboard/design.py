"""The table of the design runs (``tools/check_real_data.py --split
design``): every candidate's metrics on the design hold-out, mean and
spread over seeds, best first."""
import difflib
import os.path as osp
import statistics
from collections import defaultdict

from mmseg_dsnet.engine.preflight import check_input_file
from mmseg_dsnet.utils.errors import UserError
from mmseg_dsnet.utils.messages import counted, first_few
from mmseg_dsnet.utils.paths import REPO_ROOT, folder_key
from mmseg_dsnet.utils.percent import percent_text

from .real_data_check import DESIGN_SPLITS
from .records import is_finite_number, load_json

#: Where ``check_real_data.py --split design`` writes its records.
DESIGN_DIR = osp.join(REPO_ROOT, 'results', 'design')
KEYS = ('IoU', 'DSC', 'Sen', 'Spe', 'mIoU_img', 'TJ')
#: What else two runs must share to be seeds of one experiment (besides the
#: candidate and the device), and candidates to be compared: the schedule
#: and the data they trained and were judged on.
RUN_SETTING = ('input_size', 'epochs', 'train_images', 'test_images', 'lr',
               'data_root', 'train_split', 'eval_split')
#: The settings of :data:`RUN_SETTING` that records written before they were
#: recorded lack (the committed ones have no ``lr``, a few no
#: ``data_root``), and :data:`CANDIDATE_SETTING`. Such a record's value is
#: unknown, and an unknown value is no difference: it is not taken for any
#: value, so the record joins the runs it is otherwise alike.
OPTIONAL_SETTING = ('lr', 'data_root', 'train_split', 'eval_split', 'config')
#: What the runs of one candidate share but a reference and its
#: candidates do not: the config file (the record's ``name`` is its stem,
#: so files of one name in two folders give records of one name).
CANDIDATE_SETTING = ('config', )
#: The seeds a comparison needs before the selection rule decides
#: (docs/design_study.md: "at least four; with fewer the round decides
#: nothing"): a standard error from two or three seeds rests on one or two
#: degrees of freedom, and twice it passes a difference of nothing far more
#: often than the rule means to.
MIN_SEEDS = 4
#: Averages of the missing per-seed differences that
#: :func:`still_passing_averages` tries: lowest, highest, step.
STILL_PASSING_SCAN = (-5.0, 20.0, 0.01)


def mean_and_spread(values, percentage=True):
    """``'m'`` for one value, ``'m ± s'`` (sample std) for more.

    Args:
        values (list[float]): The figures of the seeds (or checkpoints).
        percentage (bool): Whether they are percentages: then a mean that
            is not perfect reads ``>99.99``, never ``100.00`` (a non-zero
            one ``<0.01``), as LesionMetric's table; False for other
            figures (seconds). Defaults to True.
    """
    mean = statistics.mean(values)
    text = percent_text(mean) if percentage else f'{mean:.2f}'
    if len(values) == 1:
        return text
    return f'{text} ± {statistics.stdev(values):.2f}'


#: What every design record holds besides the split: the facts a row of
#: :func:`design_table` shows (each ``metrics`` entry of :data:`KEYS` too).
RECORD_FIELDS = ('name', 'seed', 'device',
                 *(k for k in RUN_SETTING if k not in OPTIONAL_SETTING),
                 'train_time_s', 'metrics')


class DesignRecordError(UserError, ValueError):
    """A file given as a design record is none the tables can read (not a
    JSON object, of another split, a field missing or of another type)."""


#: The settings of :data:`OPTIONAL_SETTING` that are paths (strings).
PATH_SETTING = ('data_root', 'train_split', 'eval_split', 'config')


def _setting_kinds():
    """:data:`RUN_SETTING` and :data:`CANDIDATE_SETTING` key -> (type, what
    the message calls it)."""
    kinds = {}
    for key in (*RUN_SETTING, *CANDIDATE_SETTING):
        if key == 'lr':
            kinds[key] = (float, 'a number')
        elif key in PATH_SETTING:
            kinds[key] = (str, 'a string')
        else:
            kinds[key] = (int, 'an integer')
    return kinds


def check_design_record(path, record, read=None):
    """Refuse a record the tables cannot read: not a JSON object, of
    another split, of a run on the synthetic stand-in set, without one of
    :data:`RECORD_FIELDS` (a key a table would fail on with a traceback, or
    name alone, as ``'IoU'``), or with
    a setting of :data:`OPTIONAL_SETTING` that is there but of another
    type (an ``lr`` that is not a number, a ``config`` that is no string).

    Args:
        path (str): The record's file, for the messages.
        record: What the file holds.
        read (dict, optional): The ids of the split files read so far
            (``split_files.split_ids``), filled here: records of one
            design study name the same few split files.

    Raises:
        DesignRecordError: Naming the file and what it lacks.
    """
    if not isinstance(record, dict):
        raise DesignRecordError(
            f'{path} is not a design record (it holds a '
            f'{type(record).__name__}, not a JSON object)')
    if record.get('split') != 'design':
        raise DesignRecordError(f'{path} is not a design-split record')
    if record.get('synthetic') is True:
        # Figures of the stand-in set say nothing about a design, and the
        # table would show them as a candidate's (leaderboard.py collect
        # refuses such runs too).
        raise DesignRecordError(
            f'{path} is the record of a run on the synthetic stand-in set '
            f'({record.get("data_root")}), not on the real ISIC images: its '
            'figures say nothing about a design; leave it out, and run '
            'tools/check_real_data.py --split design on the converted '
            'real set')
    kinds = dict(name=(str, 'a string'), device=(str, 'a string'),
                 seed=(int, 'an integer'), train_time_s=(float, 'a number'),
                 metrics=(dict, 'an object'), **_setting_kinds())
    bad = []
    for key in (*RECORD_FIELDS,
                *(k for k in OPTIONAL_SETTING if k in record)):
        kind, what = kinds[key]
        value = record.get(key)
        if kind is float:
            # NaN or infinity: one seed's row read 'nan', several ended in
            # a statistics traceback.
            ok = is_finite_number(value)
        else:
            ok = isinstance(value, kind) and not isinstance(value, bool)
        if not ok:
            bad.append(f'{key} ({what})')
    together = record.get('runs_together', 1)
    if not (isinstance(together, int) and not isinstance(together, bool)
            and together >= 1):
        bad.append('runs_together (a positive integer)')
    metrics = record.get('metrics')
    if isinstance(metrics, dict):
        bad += [f'metrics.{k} (a number)' for k in KEYS
                if not is_finite_number(metrics.get(k))]
    if bad:
        raise DesignRecordError(f'{path} is not a complete design record: '
                                f'no valid {", ".join(bad)}')
    check_design_splits(path, record, read)


#: The split files a design run must have trained and been judged on
#: (record key -> split file relative to the data root); ``split_file``,
#: the evaluated split's absolute path, is compared by its file name.
DESIGN_SPLIT_KEYS = dict(train_split=DESIGN_SPLITS[0],
                         eval_split=DESIGN_SPLITS[1],
                         split_file=DESIGN_SPLITS[1])


def check_design_splits(path, record, read=None):
    """Refuse a record whose run was judged on another split than the
    design hold-out (the test split, say) or trained on another than the
    design-train split (the full training split holds the hold-out's
    images): ``split: design`` alone does not say what the run read, and
    design choices must never be made on the test split.

    Judged by content where the split files are found here
    (:func:`design_splits_by_content`): a hold-out of any name that lists
    no test image, and a training split of any name that lists no
    hold-out image, pass; one named like the design's split that does,
    another folder's copy of the test split as
    ``lightweight_design_val.txt`` say, is refused. Where they are not
    found, judged by the split files' names.

    Args:
        path (str): The record's file, for the messages.
        record (dict): A record that passed the type checks of
            :func:`check_design_record`.
        read (dict, optional): The ids of the split files read so far,
            filled here.

    Raises:
        DesignRecordError: Naming the file, the key and the split.
    """
    by_content = design_splits_by_content(record, read)
    wrong = []
    for key, expected in DESIGN_SPLIT_KEYS.items():
        value = record.get(key)
        if not isinstance(value, str):
            continue  # records written before the key was recorded
        if key in by_content:
            if by_content[key]:
                wrong.append(f'{key} {value} ({by_content[key]})')
            continue
        if key == 'split_file':
            same = osp.basename(value) == osp.basename(expected)
        else:
            same = osp.normpath(value) == osp.normpath(expected)
        if not same:
            wrong.append(f'{key} {value} (a design run: {expected})')
    if wrong:
        raise DesignRecordError(
            f'{path} says split design but its run read other splits: '
            f'{", ".join(wrong)}; its figures are no design-hold-out '
            'result (design choices are never made on the test split); '
            'leave it out')


def design_splits_by_content(record, read=None):
    """The split keys of a design record (:data:`DESIGN_SPLIT_KEYS`) that
    can be judged by the images their split files list, each with what is
    wrong with it (None: nothing).

    The hold-out (``split_file``, or ``eval_split`` under ``data_root``)
    must list no image of a test split of its data root or of the
    record's; judged where it and a test split are found. The training
    split (``train_split`` under ``data_root``) must list no image of the
    hold-out; judged where both are found.

    Args:
        record (dict): A design record.
        read (dict, optional): The ids of the split files read so far,
            filled here.

    Returns:
        dict: Key -> None, or e.g. ``'lists 2 images of the test split
        /d/splits/lightweight_test.txt (/e/val.txt: ISIC_1, ISIC_2)'``.
    """
    from mmseg_dsnet.datasets.split_files import (data_root_of, split_ids,
                                                  test_images_listed,
                                                  test_split_files)

    from .work_dir import resolve_config_path
    root = record.get('data_root')
    # Where the run read it: from where it ran, or the repository root.
    root = resolve_config_path(root) if isinstance(root, str) else None

    def found(key):
        value = record.get(key)
        if not isinstance(value, str):
            return None
        if key != 'split_file' and not osp.isabs(value):
            if root is None:
                return None
            value = osp.join(root, value)
        return value if osp.isfile(value) else None

    judged = {}
    for key in ('split_file', 'eval_split'):
        hold_out = found(key)
        if hold_out is None:
            continue
        roots = [data_root_of(hold_out), root]
        if any(test_split_files(folder) for folder in roots if folder):
            found_test = test_images_listed(hold_out, roots, read)
            judged[key] = f'lists {found_test}' if found_test else None
    hold_out = found('split_file') or found('eval_split')
    trained = found('train_split')
    if hold_out and trained:
        held = set(split_ids(hold_out, read))
        shared = [i for i in split_ids(trained, read) if i in held]
        judged['train_split'] = (
            f'lists {counted(len(shared), "image")} of the hold-out '
            f'{hold_out} ({first_few(shared, 3)})') if shared else None
    return judged


def load_design_records(paths):
    """The records at ``paths``; a record of another split, an incomplete
    one (:func:`check_design_record`) or a file given twice is refused."""
    records, seen, read = [], {}, {}
    for path in paths:
        check_input_file(path, 'design record')
        # One run read twice (a path and a glob that both name it) would
        # count as two seeds.
        real = osp.realpath(path)
        if real in seen:
            also = '' if seen[real] == path else f' (also as {seen[real]})'
            raise ValueError(f'design record {path} is given twice{also}')
        seen[real] = path
        record = load_json(path)
        check_design_record(path, record, read)
        if 'config' in record:
            record = dict(record, config=_config_key(record['config']))
        if record.get('data_root') is not None:
            record = dict(record, data_root=folder_key(
                record['data_root']))
        records.append(record)
    check_one_model_per_candidate(paths, records)
    return records


def check_one_model_per_candidate(paths, records):
    """Refuse runs of one candidate (name and config file) that trained
    different models: the config was edited between its seeds, and the
    tables would pool the seeds of both models into one row. Records
    without ``model_config`` (written before it was recorded) cannot be
    compared and pass.

    Args:
        paths (list[str]): The records' files, for the messages.
        records (list[dict]): Their records, in the same order.

    Raises:
        DesignRecordError: Naming two such records and their first
            difference.
    """
    from mmseg_dsnet.utils.config_diff import config_differences
    first = {}  # (name, config) -> (file, model_config) of its first run
    for path, record in zip(paths, records):
        trained = record.get('model_config')
        if not isinstance(trained, dict):
            continue
        key = (record['name'], record.get('config'))
        if key not in first:
            first[key] = (path, trained)
            continue
        diff = next(config_differences(first[key][1], trained, 'model'),
                    None)
        if diff:
            raise DesignRecordError(
                f'{first[key][0]} and {path} are runs of {record["name"]} '
                f'that trained different models ({diff} differs): its config '
                'was changed between them, and their seeds would be pooled '
                'into one row; give the records of one version only (rerun '
                'the others with the current config)')


def _config_key(config):
    """A record's ``config`` as the tables compare it: relative to the
    repository root when it lies there (``check_real_data.py`` writes it
    so, the fast sweep as it was given, which may be absolute)."""
    path = osp.normpath(config)
    if osp.isabs(path) and not osp.relpath(path, REPO_ROOT).startswith('..'):
        return osp.relpath(path, REPO_ROOT)
    return path


def _split_by_optional_setting(runs, shown=(), texts=None):
    """The runs of one candidate that are alike in every setting all
    records hold, split by the :data:`OPTIONAL_SETTING` values they hold
    (a run that does not hold one joins the others, see there).

    Args:
        runs (list[tuple[str, dict]]): (file, record) pairs.
        shown (Sequence[str]): Settings of :data:`OPTIONAL_SETTING` to
            name in the label of every part whose runs hold one, split or
            not (those that differ between the rows of a table).

    Returns:
        list[tuple[str, list]]: For each part, a label for the row's
        candidate cell (the name, with the settings it is split by when
        split) and its (file, record) pairs.

    Raises:
        DesignRecordError: The runs hold several values of a setting and
            some run does not hold it: which part it belongs to is
            unknown.
    """
    name = runs[0][1]['name']
    split_by = [k for k in OPTIONAL_SETTING if len(
        {r[k] for _, r in runs if r.get(k) is not None}) > 1]
    if not split_by:
        return [(_label(name, runs, shown, texts), runs)]
    unknown = [path for path, r in runs
               if any(r.get(k) is None for k in split_by)]
    if unknown:
        raise DesignRecordError(
            f'{name} has runs of several {"/".join(split_by)} and runs that '
            f'do not record it ({", ".join(unknown)}): which of them they '
            'were run with is unknown; give the records of one setting only')
    parts = defaultdict(list)
    for path, record in runs:
        parts[tuple(record[k] for k in split_by)].append((path, record))
    return [(_label(name, part, [*split_by, *shown], texts), part)
            for part in parts.values()]


def _setting_texts(values):
    """How a label writes each number of ``values``: ``:g`` (``0.002``),
    unless two distinct values would read alike in it (they differ past
    its sixth digit), then ``repr`` (``0.0020000001``): rows of two
    settings read as one setting under one label.

    Args:
        values (Iterable): Values of one setting (strings are left out).

    Returns:
        dict: Value -> its text.
    """
    alike = defaultdict(set)
    for value in values:
        if not isinstance(value, str):
            alike[f'{value:g}'].add(value)
    return {value: text if len(same) == 1 else repr(value)
            for text, same in alike.items() for value in same}


def _label(name, runs, keys, texts=None):
    """``name``, with the values of the settings ``keys`` that ``runs``
    hold (one each), in the order of :data:`OPTIONAL_SETTING`:
    ``'cand (lr 0.002, data_root /data/x)'``; ``texts`` maps a setting to
    :func:`_setting_texts` of the values the table holds."""
    held = [(k, next(r[k] for _, r in runs if r.get(k) is not None))
            for k in OPTIONAL_SETTING if k in keys and any(
                r.get(k) is not None for _, r in runs)]
    if not held:
        return name
    texts = texts or {}

    def text(key, value):
        if isinstance(value, str):
            return value
        return texts.get(key, {}).get(value) or _setting_texts([value])[value]

    return f'{name} (' + ', '.join(f'{k} {text(k, v)}'
                                   for k, v in held) + ')'


def design_table(paths):
    """Group the records by candidate, device and :data:`RUN_SETTING` and
    render them, best mean IoU first. Records of another split, and two
    records of one seed in a group (a rerun of that seed), are refused."""
    alike = defaultdict(list)
    for path, record in zip(paths, load_design_records(paths)):
        # Runs on other data or another device are other experiments (and
        # so are runs of other config files or data roots, which
        # _split_by_optional_setting keeps apart).
        key = (record['name'], record['device'],
               *(record[k] for k in RUN_SETTING
                 if k not in OPTIONAL_SETTING))
        alike[key].append((path, record))
    # A learning rate or data the rows do not share is named in each row
    # that records it: rows of two rates or hold-outs read as runs of
    # one setting.
    shown = [k for k in OPTIONAL_SETTING if k not in CANDIDATE_SETTING
             and len({r[k] for runs in alike.values() for _, r in runs
                      if r.get(k) is not None}) > 1]
    texts = {k: _setting_texts(r[k] for runs in alike.values()
                               for _, r in runs if r.get(k) is not None)
             for k in OPTIONAL_SETTING}
    groups = []
    for runs in alike.values():
        for label, part in _split_by_optional_setting(runs, shown, texts):
            where = {}
            for path, record in part:
                # A rerun of a seed would count twice in the mean and the
                # spread.
                if record['seed'] in where:
                    raise ValueError(
                        f'{record["name"]} has two runs of seed '
                        f'{record["seed"]} on {record["device"]} with one '
                        f'setting: {where[record["seed"]]} and {path}; '
                        'give one of them')
                where[record['seed']] = path
            groups.append((label, [record for _, record in part]))
    rows = sorted(groups, key=lambda group: -statistics.mean(
        r['metrics']['IoU'] for r in group[1]))
    lines = [
        '| candidate | input | epochs | device | train / val images | '
        'seeds | ' + ' | '.join(KEYS) + ' | train time (s) |',
        '|' + '---|' * (7 + len(KEYS))
    ]
    for label, records in rows:
        records.sort(key=lambda r: r['seed'])
        first = records[0]
        seeds = ', '.join(str(r['seed']) for r in records)
        images = f'{first["train_images"]} / {first["test_images"]}'
        cells = [mean_and_spread([r['metrics'][k] for r in records])
                 for k in KEYS]
        time_s = train_time_text(records)
        lines.append(f'| {label} | {first["input_size"]}px | '
                     f'{first["epochs"]} | {first["device"]} | {images} '
                     f'| {seeds} | ' + ' | '.join(cells) + f' | {time_s} |')
    return '\n'.join(lines) + '\n'


def train_time_text(records):
    """The train time cell of one row: the mean and spread over the seeds
    of runs trained one by one; for runs the fast trainer trained together
    (``runs_together`` > 1), the time of each such loop, marked with the
    number of runs it trained: that time is all of theirs, not one run's
    (shown as a mean ± 0.00 it read as the time of each run).

    Args:
        records (list[dict]): The design records of the row.
    """
    alone = [r['train_time_s'] for r in records
             if r.get('runs_together', 1) == 1]
    loops = sorted({(float(r['train_time_s']), r['runs_together'])
                    for r in records if r.get('runs_together', 1) > 1})
    parts = ([mean_and_spread(alone, percentage=False) + (
        ' (per run)' if loops else '')] if alone else []) + [
        f'{seconds:.2f} ({together} runs together)'
        for seconds, together in loops]
    return ', '.join(parts)


def _seed_values(records, name, metric='IoU'):
    """Seed -> design-val ``metric`` of one candidate's runs."""
    values = {}
    for record in records:
        if record['seed'] in values:
            raise ValueError(f'{name} has two runs of seed {record["seed"]} '
                             'on this device')
        values[record['seed']] = record['metrics'][metric]
    return values


def _no_runs_message(records, name, device):
    """Why ``name`` has no runs on ``device``: the devices its runs are on
    (records name them in full, e.g. ``'cuda: NVIDIA H200 (fast_train)'``),
    or, when no record is of that name, the record names nearest to it."""
    elsewhere = sorted({r['device'] for r in records if r['name'] == name})
    if elsewhere:
        return (f'no design runs of {name} on {device}; its runs are on '
                + ', '.join(map(repr, elsewhere)) + ': give one of these '
                'as --device')
    known = sorted({r['name'] for r in records})
    # A stem without its data set (``dsnet-design-e`` for
    # ``dsnet-design-e_isic2017``) first, then names spelt alike.
    near = sorted((k for k in known if k.startswith(name)), key=len)[:3]
    near += [k for k in difflib.get_close_matches(name, known, n=3)
             if k not in near][:3 - len(near)]
    return (f'no design runs of {name} on {device}: none of the '
            f'{counted(len(records), "record")} given is of that name (a '
            'record\'s name '
            'is its config\'s stem' + (f'; nearest: {", ".join(near)}'
                                       if near else '') + ')')


def _seed_values_of(records, reference, names, device, metric='IoU'):
    """Name -> seed -> design-val ``metric`` for ``names``, from the runs on
    ``device``; every run must have the reference's setting (a setting of
    :data:`OPTIONAL_SETTING` a run does not hold is not compared)."""
    runs = defaultdict(list)
    for record in records:
        if record['name'] in names and record['device'] == device:
            runs[record['name']].append(record)
    for name in names:
        if not runs[name]:
            raise ValueError(_no_runs_message(records, name, device))
        for key in CANDIDATE_SETTING:
            # Seeds of two config files are no seeds of one design.
            held = sorted({r[key] for r in runs[name]
                           if r.get(key) is not None})
            if len(held) > 1:
                raise DesignRecordError(
                    f'{name} names runs of {len(held)} {key} files '
                    f'({", ".join(held)}) on {device}: they are runs of '
                    'different designs; give the records of one of them')
    # Each setting as the first run that holds it has it, the reference's
    # first; a run without an OPTIONAL_SETTING is not compared on it.
    setting = {}
    for record in (r for name in names for r in runs[name]):
        for key in RUN_SETTING:
            if record.get(key) is not None:
                setting.setdefault(key, (record[key], record['name']))
    for name in names:
        for record in runs[name]:
            keys = [key for key in RUN_SETTING
                    if record.get(key) is not None
                    and record[key] != setting[key][0]]
            differs = [f'{key} {record[key]} ({setting[key][1]}: '
                       f'{setting[key][0]})' for key in keys]
            if differs:
                raise ValueError(
                    f'a run of {name} (seed {record["seed"]}) has another '
                    f'{"/".join(keys)} than {reference}\'s '
                    f'({", ".join(differs)}); give the records of one '
                    'setting only (e.g. results/design/*_128px_30ep_*.json)')
    return {name: _seed_values(runs[name], name, metric) for name in names}


def _run_setting(records, names, device):
    """:data:`RUN_SETTING` key -> value of the runs of ``names`` on
    ``device`` (one value each, as :func:`_seed_values_of` checks); a key
    no run holds is left out."""
    setting = {}
    for record in records:
        if record['name'] in names and record['device'] == device:
            for key in RUN_SETTING:
                if record.get(key) is not None:
                    setting.setdefault(key, record[key])
    return setting


def paired_spread_table(paths, pairs, device='cpu', seed_counts=(4, 8, 16),
                        min_gain=0.3, se_factor=2.0, metric='IoU'):
    """How large a difference the paired selection rule can see: the
    per-seed differences of each (reference, candidate) pair on the seeds
    both ran, their std, the std pooled over the pairs (weighted by their
    degrees of freedom), and for each seed count n the mean difference the
    rule needs at that spread, ``max(min_gain, se_factor * s / sqrt(n))``
    (a true difference of that size passes about half the time).

    Args:
        paths (Sequence[str]): Design records.
        pairs (Sequence[tuple[str, str]]): (reference, candidate) names.
        device (str): Compare the runs of this device only. Default: 'cpu'.
        seed_counts (Sequence[int]): Seed counts to report.
            Default: (4, 8, 16).
        min_gain (float): The rule's minimum gain. Default: 0.3.
        se_factor (float): The rule's standard errors. Default: 2.0.
        metric (str): The figure compared, one of :data:`KEYS`.
            Default: 'IoU' (pooled), the selection rule's.

    Returns:
        str: Two markdown tables, the pairs and the needed differences.
    """
    # A pair of one design has zero differences, and a pair given twice
    # weighs twice: either would bias the pooled spread.
    seen = set()
    for reference, candidate in pairs:
        if reference == candidate:
            raise ValueError(f'the pair {reference}:{candidate} compares a '
                             'design with itself')
        if frozenset((reference, candidate)) in seen:
            raise ValueError(f'the pair {reference}:{candidate} is given '
                             'twice (in either order)')
        seen.add(frozenset((reference, candidate)))
    records = load_design_records(paths)
    lines = [f'| reference | candidate | seeds | {figure_label(metric)}'
             'differences | std |', '|---|---|---|---|---|']
    weighted, freedom = 0.0, 0
    # Each setting as the first pair that holds it has it: the spread of
    # pairs of other schedules or data is no spread of one experiment.
    setting = {}
    for reference, candidate in pairs:
        by_seed = _seed_values_of(records, reference,
                                  [reference, candidate], device, metric)
        held = _run_setting(records, (reference, candidate), device)
        keys = [key for key, value in held.items()
                if key in setting and setting[key][0] != value]
        if keys:
            differs = ', '.join(f'{key} {held[key]} ({setting[key][1]}: '
                                f'{setting[key][0]})' for key in keys)
            raise ValueError(
                f'the pair {reference}:{candidate} has another '
                f'{"/".join(keys)} than the pairs before it ({differs}): '
                'the pooled spread would mix different experiments; give '
                'pairs of one setting (e.g. the records '
                'results/design/*_128px_30ep_*.json)')
        for key, value in held.items():
            setting.setdefault(key, (value, f'{reference}:{candidate}'))
        common = sorted(set(by_seed[reference]) & set(by_seed[candidate]))
        if len(common) < 2:
            raise ValueError(f'fewer than two seeds that {reference} and '
                             f'{candidate} both ran on {device}')
        diffs = [by_seed[candidate][s] - by_seed[reference][s]
                 for s in common]
        spread = statistics.stdev(diffs)
        weighted += spread**2 * (len(diffs) - 1)
        freedom += len(diffs) - 1
        lines.append(f'| {reference} | {candidate} | '
                     f'{", ".join(map(str, common))} | '
                     f'{", ".join(f"{d:+.2f}" for d in diffs)} | '
                     f'{spread:.2f} |')
    pooled = (weighted / freedom)**0.5
    lines += ['', 'Pooled std of the per-seed '
              f'{figure_label(metric)}differences: {pooled:.2f} '
              f'({counted(freedom, "degree")} of freedom).', '',
              '| seeds | difference the rule needs |', '|---|---|']
    lines += [f'| {n} | {max(min_gain, se_factor * pooled / n**0.5):.2f} |'
              for n in seed_counts]
    return '\n'.join(lines) + '\n'


def still_passing_averages(diffs, planned, min_gain=0.3, se_factor=2.0):
    """Whether a paired comparison stopped after ``len(diffs)`` seeds could
    still pass with ``planned`` seeds: the averages ``x`` of the missing
    per-seed differences with which the rule would pass.

    For a given average, missing differences that all equal it give the
    smallest spread, so scanning equal values is exact: an average that
    fails with equal values fails with any. The averages tried are those
    of ``STILL_PASSING_SCAN``.

    Args:
        diffs (Sequence[float]): The per-seed differences so far.
        planned (int): The seeds the comparison was planned with.
        min_gain (float): The rule's minimum gain. Default: 0.3.
        se_factor (float): The rule's standard errors. Default: 2.0.

    Returns:
        tuple[float, float] | None: The lowest and highest passing average
        on the scan, or None if none passes.
    """
    missing = planned - len(diffs)
    if missing < 1:
        raise ValueError(f'{planned} planned seeds leave none to run after '
                         f'{len(diffs)}')
    low, high, step = STILL_PASSING_SCAN
    passing = []
    for i in range(int(round((high - low) / step)) + 1):
        x = low + i * step
        full = [*diffs, *[x] * missing]
        gain = statistics.mean(full)
        bound = se_factor * statistics.stdev(full) / planned**0.5
        if gain > min_gain and gain > bound:
            passing.append(x)
    return (passing[0], passing[-1]) if passing else None


def comparison_table(paths, reference, candidates, device='cpu', seeds=None,
                     min_gain=0.3, se_factor=2.0, paired=False,
                     planned_seeds=None, metric='IoU', min_seeds=MIN_SEEDS):
    """Candidates against a reference on the seeds all of them ran, with the
    selection rule of docs/design_study.md: a candidate passes if its mean
    design-val IoU beats the reference's by more than ``min_gain`` and by
    more than ``se_factor`` standard errors of the difference
    (``sqrt(s_ref**2 / n + s_cand**2 / n)``, sample stds over n seeds;
    with ``paired``, ``s_d / sqrt(n)`` for the std ``s_d`` of the per-seed
    differences, as the runs of one seed share their data order and
    augmentation draws).

    Args:
        paths (Sequence[str]): Design records.
        reference (str): The reference's record name (the default design).
        candidates (Sequence[str]): Record names to compare with it.
        device (str): Compare the runs of this device only. Default: 'cpu'.
        seeds (Sequence[int], optional): The seeds to compare; every name
            needs a run of each. Default: None (the seeds all names ran).
        min_gain (float): IoU points a candidate must gain. Default: 0.3.
        se_factor (float): Standard errors the gain must exceed.
            Default: 2.0.
        paired (bool): Take the standard error of the per-seed differences.
            Default: False.
        planned_seeds (int, optional): With ``paired``, the seeds the
            comparison was planned with: a line per candidate says with
            which average of the missing differences it could still pass
            (:func:`still_passing_averages`). Default: None.
        metric (str): The figure compared, one of :data:`KEYS`.
            Default: 'IoU' (pooled), the selection rule's.
        min_seeds (int): The seeds the rule needs to decide: a candidate
            that meets it on fewer is shown as undecided, not as passing,
            and fewer ``planned_seeds`` are refused. Default:
            :data:`MIN_SEEDS`.

    Returns:
        str: A markdown table, the reference first (and the lines of
        ``planned_seeds``).
    """
    names = [reference, *candidates]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        # The reference as a candidate, or a candidate twice, adds rows
        # that compare a design with itself.
        raise ValueError(f'{", ".join(twice)} is given twice (the reference '
                         'and the candidates must be different designs)')
    if paired and planned_seeds is not None and planned_seeds < min_seeds:
        # "Can still pass with 3 seeds" would promise a decision that
        # three seeds cannot make.
        raise ValueError(f'{planned_seeds} planned seeds are fewer than the '
                         f'{min_seeds} the rule needs to decide')
    if seeds is not None and len(set(seeds)) != len(seeds):
        # A repeated seed would count as another paired unit.
        raise ValueError(f'the seeds repeat a value: '
                         f'{" ".join(map(str, seeds))}')
    by_seed = _seed_values_of(load_design_records(paths), reference, names,
                              device, metric)
    common = sorted(set.intersection(*(set(i) for i in by_seed.values())))
    if seeds is not None:
        missing = [(n, s) for n in names for s in seeds
                   if s not in by_seed[n]]
        if missing:
            raise ValueError('no run of ' + ', '.join(
                f'{n} seed {s}' for n, s in missing))
        common = sorted(seeds)
    if len(common) < 2:
        raise ValueError(f'fewer than two seeds that {", ".join(names)} '
                         f'all ran on {device}: {common}')
    return rule_table(by_seed, reference, candidates,
                      [(s, f'seed {s}') for s in common], min_gain,
                      se_factor, paired, planned_seeds,
                      min_columns=min_seeds, figure=metric)


def figure_label(metric):
    """How a table's headers name the figure compared: nothing for pooled
    IoU, the selection rule's figure (the tables in docs/design_study.md),
    ``'<metric> '`` for another, which without it read as IoU.

    Args:
        metric (str): One of :data:`KEYS`.
    """
    return '' if metric == 'IoU' else f'{metric} '


def rule_table(values, reference, candidates, columns, min_gain=0.3,
               se_factor=2.0, paired=False, planned_seeds=None,
               row_header='candidate', min_columns=None, figure='IoU'):
    """Render candidates against a reference under the selection rule (see
    :func:`comparison_table`), from IoUs already gathered.

    Args:
        values (dict): Name -> column key -> design-val IoU; every name
            has a value in every column.
        reference (str): The reference's name.
        candidates (Sequence[str]): Names to compare with it.
        columns (Sequence[tuple]): (column key, header) pairs, at least two:
            the paired units (seeds, or the runs of one seed each).
        min_gain (float): IoU points a candidate must gain. Default: 0.3.
        se_factor (float): Standard errors the gain must exceed.
            Default: 2.0.
        paired (bool): Take the standard error of the per-column
            differences. Default: False.
        planned_seeds (int, optional): With ``paired``, the columns the
            comparison was planned with (see :func:`comparison_table`).
        row_header (str): Header of the first column.
            Default: 'candidate'.
        min_columns (int, optional): The columns the rule needs to decide:
            a candidate that meets it on fewer is shown as ``too few seeds
            (n < min_columns)``, not ``yes``. Default: None (two suffice).
        figure (str): The figure ``values`` hold, named in the headers
            when it is not pooled IoU (:func:`figure_label`).
            Default: 'IoU'.

    Returns:
        str: A markdown table, the reference first.
    """
    if planned_seeds is not None and not paired:
        raise ValueError('planned seeds are judged by the paired rule only')
    if len(columns) < 2:
        raise ValueError('the rule needs at least two seeds (columns), got '
                         f'{len(columns)}')
    names = [reference, *candidates]
    count = len(columns)
    keys = [key for key, _ in columns]
    base = [values[reference][k] for k in keys]
    errors = f'{se_factor:g} standard errors' + (' (paired)' if paired
                                                  else '')
    diffs = {}
    lines = [
        f'| {row_header} | ' + ' | '.join(h for _, h in columns) +
        f' | {figure_label(figure)}mean ± std | difference to {reference} '
        f'| {errors} | passes |',
        '|---' * (count + 5) + '|'
    ]
    for name in names:
        row = [values[name][k] for k in keys]
        cells = [percent_text(v) for v in row]
        cells.append(mean_and_spread(row))
        if name == reference:
            cells += ['-', '-', '-']
        else:
            gain = statistics.mean(row) - statistics.mean(base)
            diffs[name] = [v - b for v, b in zip(row, base)]
            if paired:
                bound = se_factor * statistics.stdev(diffs[name]) / count**0.5
            else:
                bound = se_factor * (statistics.variance(base) / count +
                                     statistics.variance(row) / count)**0.5
            passes = gain > min_gain and gain > bound
            verdict = 'yes' if passes else 'no'
            if passes and min_columns is not None and count < min_columns:
                # The rule is met, but on too few seeds to decide.
                verdict = f'too few seeds ({count} < {min_columns})'
            cells += [f'{gain:+.2f}', f'{bound:.2f}', verdict]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    if planned_seeds is not None:
        lines.append('')
        for name in candidates:
            lines.append(_still_passing_line(name, diffs[name], planned_seeds,
                                             min_gain, se_factor))
    return '\n'.join(lines) + '\n'


def _still_passing_line(name, diffs, planned, min_gain, se_factor):
    """One sentence: can ``name`` still pass with ``planned`` seeds?"""
    missing = planned - len(diffs)
    # One missing difference is a value, not an average of several.
    one = missing == 1
    differences = counted(missing, 'missing difference')
    averages = still_passing_averages(diffs, planned, min_gain, se_factor)
    if averages is None:
        low, high, step = STILL_PASSING_SCAN
        return (f'{name} cannot pass with {planned} seeds: no '
                f'{"value" if one else "average"} of the {differences} '
                f'from {low:g} to {high:g} (steps of {step:g}) passes.')
    first, last = averages
    if last > STILL_PASSING_SCAN[1] - STILL_PASSING_SCAN[2] / 2:
        # Passing up to the end of the scan: no upper bound was found.
        needed = f'at least {first:+.2f}'
    else:
        needed = f'{first:+.2f} to {last:+.2f}'
    return (f'{name} can still pass with {planned} seeds only if the '
            f'{differences} {"is" if one else "average"} {needed}.')
