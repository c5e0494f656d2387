"""The ISIC datasets (registered in mmseg's ``DATASETS``) and the data tools:
:mod:`.converters` (official downloads -> our layout, a synthetic
download), :mod:`.synthetic_fallback` and the ``RandomZoom`` and
``ResizeLabels`` training transforms.

The dataset classes need mmseg; the converter needs only numpy and Pillow,
so they are imported here only when mmseg is installed."""
from mmseg_dsnet import MMSEG_INSTALLED

if MMSEG_INSTALLED:
    from .isic import ISIC2016Dataset, ISIC2017Dataset, ISIC2018Dataset
    from .random_zoom import RandomZoom
    from .resize_labels import ResizeLabels
    from .sample_checks import BadSampleError, MaskSizeError, MaskValueError

__all__ = [
    'ISIC2016Dataset', 'ISIC2017Dataset', 'ISIC2018Dataset', 'BadSampleError',
    'MaskSizeError', 'MaskValueError', 'RandomZoom', 'ResizeLabels'
] if MMSEG_INSTALLED else []
