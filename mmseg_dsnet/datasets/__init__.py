from .isic import ISIC2016Dataset, ISIC2017Dataset, ISIC2018Dataset
from .sample_checks import BadSampleError, MaskValueError

__all__ = [
    'ISIC2016Dataset', 'ISIC2017Dataset', 'ISIC2018Dataset', 'BadSampleError',
    'MaskValueError'
]
