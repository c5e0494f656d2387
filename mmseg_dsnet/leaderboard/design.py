"""The table of the design runs (``tools/check_real_data.py --split
design``): every candidate's metrics on the design hold-out, mean and
spread over seeds, best first."""
import os.path as osp
import statistics
from collections import defaultdict

from mmseg_dsnet.utils.paths import REPO_ROOT

from .records import load_json

#: Where ``check_real_data.py --split design`` writes its records.
DESIGN_DIR = osp.join(REPO_ROOT, 'results', 'design')
KEYS = ('IoU', 'DSC', 'Sen', 'Spe', 'mIoU_img', 'TJ')


def mean_and_spread(values):
    """``'m'`` for one value, ``'m ± s'`` (sample std) for more."""
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def design_table(paths):
    """Group the records by candidate, input size, epochs, device and
    image counts and render them, best mean IoU first. Records of another
    split are refused."""
    groups = defaultdict(list)
    for path in paths:
        record = load_json(path)
        if record.get('split') != 'design':
            raise ValueError(f'{path} is not a design-split record')
        # Runs on other data or another device are other experiments.
        key = (record['name'], record['input_size'], record['epochs'],
               record['device'], record['train_images'],
               record['test_images'])
        groups[key].append(record)
    rows = sorted(groups.items(), key=lambda kv: -statistics.mean(
        r['metrics']['IoU'] for r in kv[1]))
    lines = [
        '| candidate | input | epochs | device | train / val images | '
        'seeds | ' + ' | '.join(KEYS) + ' | train time (s) |',
        '|' + '---|' * (7 + len(KEYS))
    ]
    for (name, size, epochs, device, _, _), records in rows:
        records.sort(key=lambda r: r['seed'])
        seeds = ', '.join(str(r['seed']) for r in records)
        images = f'{records[0]["train_images"]} / {records[0]["test_images"]}'
        cells = [mean_and_spread([r['metrics'][k] for r in records])
                 for k in KEYS]
        time_s = mean_and_spread([r['train_time_s'] for r in records])
        lines.append(f'| {name} | {size}px | {epochs} | {device} | {images} '
                     f'| {seeds} | ' + ' | '.join(cells) + f' | {time_s} |')
    return '\n'.join(lines) + '\n'
