"""Fall back to the embedded synthetic ISIC-like set when a config's data is
absent, so ``python tools/train.py configs/dsnet/dsnet_isic2018.py`` runs on a
fresh clone. The user is told how to prepare the real data."""
import os.path as osp
import re
import sys

TOOLS_DIR = osp.dirname(osp.abspath(__file__))
REPO_ROOT = osp.dirname(TOOLS_DIR)
sys.path.insert(0, osp.join(TOOLS_DIR, 'dataset_converters'))

from isic import convert  # noqa: E402
from make_synthetic_isic import generate  # noqa: E402

HOW_TO_PREPARE = """\
The real ISIC {year} data is not at '{root}'. To train on it, download the
official ISIC {year} Task 1 zip files (https://challenge.isic-archive.com/data/)
into a folder, e.g. ~/Downloads/isic{year}, and run

    python tools/dataset_converters/isic.py ~/Downloads/isic{year} {root}
"""

# Size of the embedded default: big enough to learn lesions in a few CPU
# minutes, small enough to make in seconds.
SYNTHETIC_COUNTS = dict(num_train=96, num_val=16, num_test=32)


def _loaders(cfg):
    return [
        cfg.get(name) for name in ('train_dataloader', 'val_dataloader',
                                   'test_dataloader') if cfg.get(name)
    ]


def dataset_year(cfg):
    """The ISIC year a config trains on, from its dataset type name."""
    match = re.search(r'(20\d\d)', cfg.train_dataloader.dataset.type)
    return int(match.group(1)) if match else 2018


def synthetic_root(year, base=osp.join(REPO_ROOT, 'data')):
    """Where the converted synthetic set for ``year`` lives."""
    return osp.join(base, f'synthetic_isic{year}')


def prepare_synthetic(year, out_root=None, seed=0, counts=None):
    """Generate the synthetic set in the official layout and convert it with
    the real converter; reuse it when already there.

    Returns:
        str: The converted data root.
    """
    out_root = out_root or synthetic_root(year)
    if osp.isfile(osp.join(out_root, 'meta.json')):
        return out_root
    # The generator writes the 2017 or 2018 official layout.
    layout_year = 2018 if year == 2018 else 2017
    raw = out_root + '_official_layout'
    if not osp.isdir(raw):
        generate(raw, year=layout_year, seed=seed,
                 **(counts or SYNTHETIC_COUNTS))
    convert(raw, out_root, year=layout_year, seed=seed)
    return out_root


def ensure_data(cfg, allow_synthetic=True):
    """Point ``cfg``'s data loaders at the synthetic set when the configured
    data is missing.

    Args:
        cfg (Config): A training/testing config; changed in place.
        allow_synthetic (bool): If False, raise instead of falling back.

    Returns:
        bool: True when the synthetic set is used.
    """
    dataset = cfg.train_dataloader.dataset
    root = dataset.get('data_root', '')
    split = osp.join(root, dataset.get('ann_file', ''))
    if osp.isfile(split):
        return False
    year = dataset_year(cfg)
    message = HOW_TO_PREPARE.format(year=year, root=root)
    if not allow_synthetic:
        raise FileNotFoundError(f'Missing split file {split}.\n' + message)
    new_root = prepare_synthetic(year)
    print(message + f'Using the embedded synthetic ISIC-like set instead: '
          f'{osp.relpath(new_root)}\n', flush=True)
    for loader in _loaders(cfg):
        loader.dataset.data_root = new_root
    return True
