"""The split files of a dataset config, read as the ISIC datasets read
them: the datasets a wrapper holds, which file a config names, the ids it
lists, the data root it lies in and the ids two splits share. Used by the
checks that keep scored images apart from trained ones (the pre-flight
checks of ``train.py``, ``tools/test.py`` and the analysis tools) and by
those of the data a config names; and which images of a test split a
split file lists."""
import os
import os.path as osp
from typing import Optional, Sequence


def split_file(dataset_cfg: dict) -> Optional[str]:
    """The split file a dataset config reads (``ann_file`` under
    ``data_root``, as mmseg joins them), or None without one."""
    ann_file = dataset_cfg.get('ann_file')
    if not ann_file:
        return None
    root = dataset_cfg.get('data_root') or ''
    return ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)


def split_name(dataset_cfg: dict) -> Optional[str]:
    """The split file a dataset config reads (``ann_file``) as
    :func:`name_in_root` names it, or None without one.

    Args:
        dataset_cfg (dict): A dataset config (``ann_file``,
            ``data_root``).
    """
    ann_file = dataset_cfg.get('ann_file')
    return name_in_root(ann_file, dataset_cfg.get('data_root')) \
        if ann_file else None


def name_in_root(path: str, data_root: Optional[str]) -> str:
    """A path of a dataset config (its split file, its image folder) named
    relative to its data root where it lies under it
    (``splits/a_train.txt``), so configs whose data moved to another
    folder name the same file alike; as given (normalised) otherwise.

    An absolute path lies under an absolute data root also when one of
    them is reached through a symbolic link. A relative data root is
    relative to the folder its run started in, which the config does not
    record: it is found as whole folders in the path (the last place they
    appear).

    Args:
        path (str): The path as the config names it; a relative one is
            relative to the data root already.
        data_root (str, optional): The config's ``data_root``.
    """
    name = osp.normpath(path)
    if not osp.isabs(name) or not data_root:
        return name
    root = osp.normpath(data_root)
    if osp.isabs(root):
        for inside, folder in ((name, root),
                               (osp.realpath(name), osp.realpath(root))):
            inner = osp.relpath(inside, folder)
            if inner != os.pardir and not inner.startswith(os.pardir +
                                                           os.sep):
                return inner
        return name
    # Leading '..' steps climb out of the run's folder: the folders after
    # them are the ones the path holds.
    root_parts = [part for part in root.split(os.sep)
                  if part not in (os.curdir, os.pardir)]
    parts = name.split(os.sep)
    # The root itself too ('.', as an absolute root names it).
    last = len(parts) - len(root_parts)
    for start in range(last, 0, -1):
        if root_parts and \
                parts[start:start + len(root_parts)] == root_parts:
            inner = parts[start + len(root_parts):]
            return osp.join(*inner) if inner else os.curdir
    return name


def split_ids(path: str, read: Optional[dict] = None) -> list:
    """The ids a split file lists, as the ISIC datasets read them
    (``./ISIC_0000000`` is ``ISIC_0000000``; blank lines are none).

    Args:
        path (str): The split file.
        read (dict, optional): The ids of the split files read so far, by
            absolute path, filled here: a check that meets one split file
            several times (a training split against each scored one) reads
            it once.

    Returns:
        list[str]: The ids, in the file's order.

    Raises:
        UserError: The file is not plain UTF-8 text.
    """
    key = osp.abspath(path)
    if read is not None and key in read:
        return read[key]
    from .isic import check_split_encoding
    check_split_encoding(path)
    with open(path, encoding='utf-8') as f:
        ids = [osp.normpath(line.strip()) for line in f if line.strip()]
    if read is not None:
        read[key] = ids
    return ids


def dataset_leaves(dataset_cfg, path='dataset', naming_data=False) -> list:
    """``(dotted path, config)`` of the datasets a loader's dataset config
    reads from: itself, or those a wrapper holds (``RepeatDataset.dataset``,
    ``ConcatDataset.datasets``, nested).

    Args:
        dataset_cfg (dict): A loader's ``dataset`` config.
        path (str): Its dotted path, for messages.
        naming_data (bool): Only the datasets that set ``data_root`` or
            ``ann_file`` (:func:`leaf_datasets`); a config that sets one is
            a dataset, not a wrapper. Defaults to False.

    Returns:
        list[tuple[str, dict]]: The datasets.
    """
    if not isinstance(dataset_cfg, dict):
        return []
    if naming_data and ('ann_file' in dataset_cfg
                        or 'data_root' in dataset_cfg):
        return [(path, dataset_cfg)]
    inner = dataset_cfg.get('datasets')
    if isinstance(inner, (list, tuple)):
        return [leaf for index, cfg in enumerate(inner)
                for leaf in dataset_leaves(cfg, f'{path}.datasets[{index}]',
                                           naming_data)]
    if isinstance(dataset_cfg.get('dataset'), dict):
        return dataset_leaves(dataset_cfg['dataset'], f'{path}.dataset',
                              naming_data)
    return [] if naming_data else [(path, dataset_cfg)]


def leaf_datasets(dataset_cfg) -> list:
    """The datasets a (possibly wrapped: Repeat, Concat ...) dataset config
    reads from that set ``data_root`` or ``ann_file``."""
    return [leaf for _, leaf in dataset_leaves(dataset_cfg,
                                               naming_data=True)]


def cut_by_indices(ids: list, indices) -> list:
    """The ids a dataset reads of ``ids`` (a split file's) with its
    config's ``indices``: the first N for an int, those at the listed
    places for a list, all of them for None."""
    if isinstance(indices, int):
        return ids[:indices]
    if isinstance(indices, (list, tuple)):
        return [ids[i] for i in indices if -len(ids) <= i < len(ids)]
    return ids


def data_root_of(split: str) -> str:
    """The data root a split file lies in (``<root>/splits/<name>.txt``)."""
    folder = osp.dirname(osp.abspath(split))
    return osp.dirname(folder) if osp.basename(folder) == 'splits' \
        else folder


def _comparable(found, synthetic) -> bool:
    """Whether split file ``found`` (None: found nowhere) lies in the same
    kind of set as a scored split: the synthetic stand-in set or real
    data, whose ids coincide but whose images do not.

    Args:
        found (str | None): A split file (of a training run).
        synthetic (bool): Whether the scored split is of the synthetic
            stand-in set.
    """
    from .synthetic_fallback import is_synthetic
    return found is not None and \
        is_synthetic(data_root_of(found)) == synthetic


def ids_also_in(found, scored_ids, synthetic, read=None):
    """The ids of ``scored_ids`` that split file ``found`` lists too; none
    for a split of the other kind of set (synthetic or real, whose ids
    coincide) or for a split found nowhere (None).

    Args:
        found (str | None): A split file (of a training run).
        scored_ids (Sequence[str]): The ids of the scored split
            (:func:`split_ids`).
        synthetic (bool): Whether the scored split is of the synthetic
            stand-in set.
        read (dict, optional): Split ids read so far (see
            :func:`split_ids`).

    Returns:
        list[str]: The shared ids, in the order of ``scored_ids``.
    """
    if not _comparable(found, synthetic):
        return []
    listed = set(split_ids(found, read))
    return [i for i in scored_ids if i in listed]


#: The record of a converted set's ``meta.json`` that names each photo a
#: seeded split put, under two ids, into a list trained on and into the
#: list scored against it (the converter warns of it; ``--strict`` refuses).
ACROSS_LISTS_RECORD = 'identical_images_across_lists'


def photos_under_other_ids(found, scored_ids, synthetic, read=None):
    """The photos of ``scored_ids`` that split file ``found`` lists under
    another id, as the converter recorded them in its data root's
    ``meta.json`` (:data:`ACROSS_LISTS_RECORD`): a scored image trained
    on that :func:`ids_also_in` cannot see. None for a split of the other
    kind of set, found nowhere, or in a root without that record (a
    ``meta.json`` that cannot be read records nothing).

    Args:
        found (str | None): A split file (of a training run).
        scored_ids (Sequence[str]): The ids of the scored split
            (:func:`split_ids`).
        synthetic (bool): Whether the scored split is of the synthetic
            stand-in set.
        read (dict, optional): Split ids read so far (see
            :func:`split_ids`).

    Returns:
        list[str]: ``'<scored id> = <trained id>'`` per photo, in the
        order of ``scored_ids``.
    """
    import json
    if not _comparable(found, synthetic):
        return []
    try:
        with open(osp.join(data_root_of(found), 'meta.json'),
                  encoding='utf-8') as file:
            groups = json.load(file).get(ACROSS_LISTS_RECORD) or []
    except (OSError, ValueError, AttributeError):
        return []
    trained = set(split_ids(found, read))
    scored = set(scored_ids)
    # The id each scored copy shares its photo with in the training split.
    other_id = {}
    for group in groups:
        ids = {copy.get('id') for copy in group if isinstance(copy, dict)}
        for scored_id in ids & scored:
            others = sorted((ids & trained) - {scored_id})
            if others:
                other_id.setdefault(scored_id, others[0])
    return [f'{i} = {other_id[i]}' for i in scored_ids if i in other_id]


def test_split_files(data_root: str) -> list:
    """The test split files the converter wrote into ``data_root``
    (``splits/official_test.txt``, ``splits/lightweight_test.txt``) that
    are there; a link to one counts as the file."""
    from .converters.isic import TEST_SPLIT_FILES
    found = [osp.join(data_root or '', 'splits', name)
             for name in TEST_SPLIT_FILES]
    return [path for path in found if osp.isfile(path)]


def test_images_listed(split: str, data_roots: Sequence[str],
                       read: Optional[dict] = None) -> Optional[str]:
    """Which images of a test split of ``data_roots``
    (:func:`test_split_files`) split file ``split`` lists, if any: for a
    split that must hold none (the design hold-out), one is too many.

    Args:
        split (str): The split file.
        data_roots (Sequence[str]): The data roots whose test splits it is
            compared with (a root given twice, or under two spellings, is
            read once).

    Returns:
        str | None: E.g. ``'2 images of the test split data/isic2017/
        splits/lightweight_test.txt (val.txt: ISIC_0000000,
        ISIC_0000003)'``; None when it lists none.
    """
    from ..utils.messages import counted, first_few
    ids = split_ids(split, read)
    tests = {osp.realpath(test): test for root in data_roots if root
             for test in test_split_files(root)}
    for test in tests.values():
        listed = set(split_ids(test, read))
        shared = [i for i in ids if i in listed]
        if shared:
            return (f'{counted(len(shared), "image")} of the test split '
                    f'{test} ({split}: {first_few(shared, 3)})')
    return None
