"""Fall back to the embedded synthetic ISIC-like set when a config's data is
absent and the user named none, so ``python tools/train.py
configs/dsnet/dsnet_isic2018.py`` runs on a fresh clone. A data location the
user gave (a config edit, ``--cfg-options``) is used as given and a missing
one is an error: a metric is never computed on other data than asked for.
Metrics files name their data with :func:`data_provenance`."""
import contextlib
import inspect
import json
import os
import os.path as osp
import re

from ..utils.errors import UserError
from ..utils.paths import REPO_ROOT
from .converters.isic import SYNTHETIC_MARKER, convert
from .converters.synthetic_isic import MARKER_TEXT, generate
from .split_files import dataset_leaves

HOW_TO_PREPARE = """\
The real ISIC {year} data is not at '{root}'. To train on it, download the
official ISIC {year} Task 1 zip files (https://challenge.isic-archive.com/data/)
into a folder, e.g. ~/Downloads/isic{year}, and run

    python tools/dataset_converters/isic.py ~/Downloads/isic{year} {root}
"""
CONVERT_COMMAND = 'python tools/dataset_converters/isic.py SRC {root}'

# Size of the embedded default: big enough to learn lesions in a few CPU
# minutes, small enough to make in seconds.


class DataRootError(UserError, FileNotFoundError):
    """A data root or split file the tool would read is missing."""


SYNTHETIC_COUNTS = dict(num_train=96, num_val=16, num_test=32)
# SYNTHETIC_MARKER is in every synthetic set (the converter copies it from
# the generated download; this module also marks sets made before that), so
# that metrics computed on it say so wherever the set is used from.
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# A --cfg-options key holding one of these names a data location.
DATA_KEYS = ('data_root', 'data_prefix', 'ann_file')


def _loader_leaves(cfg, names):
    """``(dotted path, config)`` of the datasets the loaders ``names``
    read."""
    return [leaf for name in names if cfg.get(name)
            for leaf in dataset_leaves(cfg[name].get('dataset'),
                                       f'{name}.dataset')]


def dataset_year(cfg):
    """The ISIC year a config trains on, from its dataset type name."""
    types = [str(dataset.get('type', ''))
             for _, dataset in _loader_leaves(cfg, LOADERS)]
    match = re.search(r'(20\d\d)', ' '.join(types))
    return int(match.group(1)) if match else 2018


def default_root(year):
    """The data root of the dataset base configs
    (``configs/_base_/datasets/isic{year}_*.py``)."""
    return f'data/isic{year}'


def synthetic_root(year, base=osp.join(REPO_ROOT, 'data')):
    """Where the converted synthetic set for ``year`` lives."""
    return osp.join(base, f'synthetic_isic{year}')


def names_data(cfg_options):
    """Whether ``--cfg-options`` (a dict of dotted keys) sets a data
    location of any loader."""
    return any(word in key for key in (cfg_options or {})
               for word in DATA_KEYS)


def is_synthetic(root):
    """Whether ``root`` holds a synthetic set made by
    :func:`prepare_synthetic`."""
    return bool(root) and osp.isfile(osp.join(root, SYNTHETIC_MARKER))


class SyntheticTargetError(UserError, ValueError):
    """A folder asked to hold the synthetic set is a real data location."""


def _raw_layout(out_root):
    """Where :func:`prepare_synthetic` generates the official layout that it
    converts into ``out_root``."""
    return out_root + '_official_layout'


def check_synthetic_target(out_root):
    """Refuse to make (or mark) the synthetic set in a real data location.

    :func:`prepare_synthetic` reuses any converted set it finds and marks it
    synthetic; given a real set's root (``tools/demo.py --config`` of an
    ISIC config), that stamped the user's real data as synthetic, so every
    later metric on it said ``synthetic: true``.

    Args:
        out_root (str): The folder the synthetic set would go to.

    Raises:
        SyntheticTargetError: ``out_root`` is the default root of the real
            ISIC data (:func:`default_root`), holds a conversion of other
            data than the synthetic set made for it, is a file, or is a
            folder of other files (no ``meta.json``).
    """
    target = osp.realpath(out_root)
    for year in (2016, 2017, 2018):
        if target in (osp.realpath(default_root(year)),
                      osp.realpath(osp.join(REPO_ROOT, default_root(year)))):
            raise SyntheticTargetError(
                f'{out_root} is where the real ISIC {year} data goes; the '
                'synthetic set is made only in a folder of its own (e.g. '
                'data/synthetic_isic2018, that of '
                'configs/demo/dsnet_synthetic_cpu.py)')
    meta_file = osp.join(out_root, 'meta.json')
    if is_synthetic(out_root):
        return
    if not osp.isfile(meta_file):
        # The converter refused such a folder only after the synthetic
        # download had been generated beside it, with a traceback that
        # offered an --overwrite the tools do not have.
        if osp.lexists(out_root) and not osp.isdir(out_root):
            raise SyntheticTargetError(
                f'{out_root} is a file, not a folder; the synthetic set is '
                'made in a new or empty folder (give a config whose '
                'data_root is one)')
        if osp.isdir(out_root) and os.listdir(out_root):
            raise SyntheticTargetError(
                f'{out_root} holds files but no converted set (no '
                'meta.json), so the synthetic set cannot be made in it; it '
                'is left as it is. Give a config whose data_root is a new '
                'or empty folder, or the synthetic set (configs/demo/'
                'dsnet_synthetic_cpu.py)')
        return
    try:
        with open(meta_file) as f:
            source = json.load(f).get('source', '')
    except (OSError, ValueError, AttributeError):
        source = ''
    # Sets made before the marker existed name their generated layout (the
    # converter records it resolved).
    if osp.realpath(str(source)) != osp.realpath(_raw_layout(out_root)):
        raise SyntheticTargetError(
            f'{out_root} holds a data set converted from '
            f'{source or "an unknown source"}, not the synthetic set; it is '
            'left as it is (not marked synthetic). Give a config whose '
            'data_root is a synthetic set (configs/demo/'
            'dsnet_synthetic_cpu.py), or train on this data with '
            'tools/train.py')


@contextlib.contextmanager
def _parent_locked(path):
    """Hold an exclusive lock on the folder that holds ``path`` (made if
    needed; a lock on the folder itself leaves no lock file behind). Where
    ``fcntl`` is missing (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    parent = osp.dirname(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd = os.open(parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def prepare_synthetic(year, out_root=None, seed=0, counts=None):
    """Generate the synthetic set in the official layout and convert it with
    the real converter; reuse it when already there.

    Raises:
        SyntheticTargetError: ``out_root`` is a real data location
            (:func:`check_synthetic_target`), or holds a synthetic set of
            another layout year, seed, image counts or image size
            (``size`` in ``counts``, as :func:`generate` takes it) than
            asked (one of an older version: it is not reused as this one),
            when
            ``counts`` is given or ``out_root`` is :func:`synthetic_root`.

    Returns:
        str: The converted data root.
    """
    out_root = out_root or synthetic_root(year)
    check_synthetic_target(out_root)
    # One maker at a time: the processes of a distributed run (and tools
    # started together) each found no set and wrote it at once, so all but
    # one failed (`FileExistsError: ... was filled while the set was
    # written`, a traceback) and the run stopped.
    with _parent_locked(out_root):
        if not osp.isfile(osp.join(out_root, 'meta.json')):
            # The generator writes the 2017 or 2018 official layout.
            layout_year = 2018 if year == 2018 else 2017
            raw = _raw_layout(out_root)
            if not osp.isdir(raw):
                generate(raw, year=layout_year, seed=seed,
                         **(counts or SYNTHETIC_COUNTS))
            convert(raw, out_root, year=layout_year, seed=seed)
        # A set already there (or converted from a download already
        # there) was taken as it was: one of an older version or other
        # arguments, with other images than asked, ran as this one. A
        # synthetic set a config names elsewhere (demo.py --config) is the
        # user's, used as it is.
        if counts is not None or osp.realpath(out_root) == osp.realpath(
                synthetic_root(year)):
            _check_synthetic_set(out_root, 2018 if year == 2018 else 2017,
                                 seed, counts or SYNTHETIC_COUNTS)
    # Also marks sets prepared before the marker existed.
    if not is_synthetic(out_root):
        with open(osp.join(out_root, SYNTHETIC_MARKER), 'w') as f:
            f.write(MARKER_TEXT)
    return out_root


def _image_size(out_root):
    """``'WxH'`` of the first image of a converted set (the generator
    makes them all one size), or None when it holds none."""
    from PIL import Image
    images = osp.join(out_root, 'images')
    names = sorted(os.listdir(images)) if osp.isdir(images) else []
    for name in names:
        try:
            with Image.open(osp.join(images, name)) as image:
                return f'{image.width}x{image.height}'
        except OSError:
            continue
    return None


def _check_synthetic_set(out_root, layout_year, seed, counts):
    """Refuse a converted synthetic set whose ``meta.json`` records another
    layout year, seed or image counts than asked of
    :func:`prepare_synthetic`."""
    try:
        with open(osp.join(out_root, 'meta.json')) as f:
            meta = json.load(f)
        held = meta.get('counts') or {}
    except (OSError, ValueError, AttributeError):
        meta, held = {}, {}
    # A count left out of ``counts`` is generate()'s default (read as 0,
    # the set just made from them was refused as another version's).
    made = inspect.signature(generate).parameters
    asked = {'year': layout_year, 'seed': seed}
    asked.update({
        f'official_{split}': counts.get(f'num_{split}',
                                        made[f'num_{split}'].default)
        for split in ('train', 'val', 'test')})
    found = {key: meta.get(key) if key in ('year', 'seed') else held.get(key)
             for key in asked}
    # meta.json records no image size: it is read from the images, so a
    # set of other sizes (``size`` in ``counts``) is not reused as asked.
    width, height = counts.get('size', made['size'].default)
    asked['image size'] = f'{int(width)}x{int(height)}'
    found['image size'] = _image_size(out_root)
    if found != asked:
        wrong = ', '.join(f'{key} {found[key]} (asked: {asked[key]})'
                          for key in asked if found[key] != asked[key])
        raise SyntheticTargetError(
            f'{out_root} holds a synthetic set of other images than this '
            f'one makes: {wrong} (made by another version or with other '
            'arguments); it is left as it is. Remove it and '
            f'{_raw_layout(out_root)} to make it again')


#: How :func:`data_provenance` joins the data roots and split files of the
#: datasets a wrapper holds.
JOINED_PATHS = ' + '


def synthetic_figures_note(data_root):
    """The line printed under figures computed on a synthetic set: its
    table names no data, and figures on drawn blobs read as a lesion
    result unless it is said.

    Args:
        data_root (str): The synthetic set's folder (or folders, as
            :func:`data_provenance` joins them).

    Returns:
        str: E.g. ``'NOTE: these figures are of the synthetic stand-in set
        data/synthetic_isic2018, not of ISIC data: ...'``.
    """
    return (f'NOTE: these figures are of the synthetic stand-in set '
            f'{data_root}, not of ISIC data: they show that the pipeline '
            'runs, not how well the model segments lesions')


def data_provenance(dataset_cfg, images):
    """What a metric was computed on, for metrics files and run records.

    Args:
        dataset_cfg (dict): The loader's dataset config.
        images (int): Number of images evaluated.

    Returns:
        dict: ``data_root`` and ``split_file`` (absolute paths; those of a
        wrapper's datasets joined by :data:`JOINED_PATHS`), ``images`` and
        ``synthetic`` (any of them).
    """
    # A wrapper (Concat, Repeat ...) reads its datasets' data.
    leaves = [leaf for _, leaf in dataset_leaves(dataset_cfg)]
    roots, splits = [], []
    for leaf in leaves:
        root = leaf.get('data_root', '') or ''
        ann = leaf.get('ann_file', '') or ''
        roots.append(osp.abspath(root))
        splits.append(osp.abspath(osp.join(root, ann)) if ann else None)
    return dict(
        data_root=JOINED_PATHS.join(dict.fromkeys(roots)),
        split_file=None if None in splits else JOINED_PATHS.join(splits),
        images=int(images),
        synthetic=any(is_synthetic(root) for root in roots))


def _check_root(path, dataset, year):
    """Raise DataRootError when ``dataset``'s data root is missing (a
    missing split file in a present root is the dataset's own error);
    ``path`` is its dotted place in the config."""
    root = dataset.get('data_root', '') or ''
    if not osp.isdir(root):
        raise DataRootError(
            f"{path}.data_root '{root}' does not exist. A data "
            'location given in the config or with --cfg-options is used as '
            'given (the synthetic set stands in only when none is given); '
            f'convert the ISIC {year} zip files into it with: '
            f'{CONVERT_COMMAND.format(root=root or "ROOT")}')


def _check_not_a_broken_root(root, year):
    """Raise DataRootError when something is at the default data root but
    is no folder: a link to a drive that is not mounted, a file (a zip saved
    without its extension). The user put it there for the real data, so the
    synthetic set must not stand in for it."""
    if not osp.lexists(root):
        return
    if osp.islink(root):
        what = (f'a link to {osp.realpath(root)}, which does not exist (a '
                'drive not mounted, a moved folder?)')
    else:
        what = 'not a folder'
    raise DataRootError(
        f"The ISIC {year} data root '{root}' is {what}; the synthetic set "
        'does not stand in for data put there. Fix the link, or convert the '
        'ISIC zip files into a folder there with: '
        f'{CONVERT_COMMAND.format(root=root)}')


def _check_not_in_the_repository(root, year):
    """Raise DataRootError when the relative default ``root`` is missing
    from the current folder but present in the repository: mmseg reads data
    roots from the current folder, so a tool run from elsewhere would test
    or train on the synthetic set while the converted data is there."""
    in_repo = osp.join(REPO_ROOT, root)
    if osp.isabs(root) or not osp.isdir(in_repo) or is_synthetic(in_repo):
        return
    raise DataRootError(
        f"The ISIC {year} data root '{root}' is read from the current folder "
        f'{os.getcwd()}, where it does not exist; the converted data is at '
        f'{in_repo}. Run the tool from {REPO_ROOT}, or give the data root '
        'with --cfg-options (e.g. test_dataloader.dataset.data_root='
        f'{in_repo}).')


def ensure_data(cfg, allow_synthetic=True, loaders=LOADERS, explicit=False):
    """Check the data ``loaders`` will read; point every loader at the
    synthetic set when no data location was given and the default one is
    absent.

    A data location counts as given when ``explicit`` is True (the tools
    pass :func:`names_data` of ``--cfg-options``), or when a used loader's
    ``data_root`` or the config's top-level ``data_root`` differs from the
    dataset base config's :func:`default_root`.

    Args:
        cfg (Config): A training/testing config; changed in place.
        allow_synthetic (bool): If False, raise instead of falling back.
        loaders (Sequence[str]): The loaders the tool will use, e.g.
            ``('test_dataloader', )`` for testing.
        explicit (bool): The user named a data location on the command line.

    Returns:
        bool: True when the tool will use a synthetic set.

    Raises:
        DataRootError: A data root to be read is missing.
    """
    used = _loader_leaves(cfg, loaders)
    year = dataset_year(cfg)
    default = default_root(year)
    roots = [dataset.get('data_root', '') or '' for _, dataset in used]
    roots.append(cfg.get('data_root', default) or default)
    explicit = explicit or any(
        osp.normpath(root) != osp.normpath(default) for root in roots)
    if not explicit and not osp.isdir(default):
        _check_not_a_broken_root(default, year)
        _check_not_in_the_repository(default, year)
        message = HOW_TO_PREPARE.format(year=year, root=default)
        if not allow_synthetic:
            raise DataRootError(
                f"The ISIC {year} data is not at '{default}' and the "
                'synthetic fallback is off; convert the official zip files '
                'into it with: '
                f'{CONVERT_COMMAND.format(root=default)}')
        new_root = prepare_synthetic(year)
        print(message + 'Using the embedded synthetic ISIC-like set instead: '
              f'{osp.relpath(new_root)}\n', flush=True)
        for _, dataset in _loader_leaves(cfg, LOADERS):
            dataset.data_root = new_root
        return True
    for path, dataset in used:
        root = dataset.get('data_root', '') or ''
        # A config that names the synthetic set itself (configs/demo/)
        # gets it made on first use.
        if root and osp.abspath(root) == osp.abspath(synthetic_root(year)):
            prepare_synthetic(year, root)
        _check_root(path, dataset, year)
    return any(
        is_synthetic(dataset.get('data_root', '')) for _, dataset in used)
