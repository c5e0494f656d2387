from .isic import ISIC2016Dataset, ISIC2017Dataset, ISIC2018Dataset

__all__ = ['ISIC2016Dataset', 'ISIC2017Dataset', 'ISIC2018Dataset']
