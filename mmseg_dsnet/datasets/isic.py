"""ISIC skin-lesion segmentation datasets (Task 1 of the ISIC 2016, 2017 and
2018 challenges) in the layout written by
``tools/dataset_converters/isic.py``::

    data_root/images/<id>.jpg
    data_root/masks/<id>.png          # uint8, 0 = background, 1 = lesion
    data_root/splits/<protocol>_<split>.txt
"""
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS


class ISICDataset(BaseSegDataset):
    """Binary lesion segmentation on ISIC dermoscopy images.

    Masks on disk must hold 0 (background) and 1 (lesion); 255 is the ignore
    index, so the official 0/255 masks must go through the converter first.

    Args:
        img_suffix (str): Image file suffix. Defaults to '.jpg'.
        seg_map_suffix (str): Mask file suffix. Defaults to '.png'.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`
            (``data_root``, ``ann_file`` = a split file, ``data_prefix``,
            ``pipeline`` ...).
    """
    METAINFO = dict(
        classes=('background', 'lesion'), palette=[[0, 0, 0], [255, 64, 64]])

    def __init__(self,
                 img_suffix='.jpg',
                 seg_map_suffix='.png',
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=False,
            **kwargs)


@DATASETS.register_module()
class ISIC2016Dataset(ISICDataset):
    """ISIC 2016 Task 1 (900 training, 379 test images)."""


@DATASETS.register_module()
class ISIC2017Dataset(ISICDataset):
    """ISIC 2017 Task 1 (2000 training, 150 validation, 600 test images)."""


@DATASETS.register_module()
class ISIC2018Dataset(ISICDataset):
    """ISIC 2018 Task 1 (2594 training, 100 validation, 1000 test images)."""
