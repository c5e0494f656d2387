"""The split files of a dataset config, read as the ISIC datasets read
them: which file a config names, the ids it lists, the data root it lies
in and the ids two splits share. Used by the checks that keep scored
images apart from trained ones (the pre-flight checks of ``train.py``,
``tools/test.py`` and the analysis tools)."""
import os.path as osp
from typing import Optional


def split_file(dataset_cfg: dict) -> Optional[str]:
    """The split file a dataset config reads (``ann_file`` under
    ``data_root``, as mmseg joins them), or None without one."""
    ann_file = dataset_cfg.get('ann_file')
    if not ann_file:
        return None
    root = dataset_cfg.get('data_root') or ''
    return ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)


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


def leaf_datasets(dataset_cfg) -> list:
    """The datasets a (possibly wrapped: Repeat, Concat ...) dataset config
    reads from."""
    if not isinstance(dataset_cfg, dict):
        return []
    if 'ann_file' in dataset_cfg or 'data_root' in dataset_cfg:
        return [dataset_cfg]
    inner = dataset_cfg.get('datasets') or [dataset_cfg.get('dataset')]
    return [leaf for cfg in inner for leaf in leaf_datasets(cfg)]


def data_root_of(split: str) -> str:
    """The data root a split file lies in (``<root>/splits/<name>.txt``)."""
    folder = osp.dirname(osp.abspath(split))
    return osp.dirname(folder) if osp.basename(folder) == 'splits' \
        else folder


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
    from .synthetic_fallback import is_synthetic
    if found is None or is_synthetic(data_root_of(found)) != synthetic:
        return []
    listed = set(split_ids(found, read))
    return [i for i in scored_ids if i in listed]
