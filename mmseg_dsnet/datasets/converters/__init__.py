"""Data preparation that runs before mmcv and torch are installed.

:mod:`.isic` converts the official ISIC 2016/2017/2018 Task 1 downloads to
our layout (numpy and Pillow only); :mod:`.synthetic_isic` writes a
synthetic download in the official layout (numpy and OpenCV). Their command
lines are ``tools/dataset_converters/isic.py`` and
``tools/dataset_converters/make_synthetic_isic.py``."""
