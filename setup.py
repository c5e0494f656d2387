"""Install mmseg-dsnet: ``pip install -e .`` (the stack itself is pinned in
``requirements/runtime.txt`` and installed by ``tools/setup_env.sh``)."""
from setuptools import find_packages, setup

setup(
    name='mmseg-dsnet',
    version='0.1.0',
    description='DSNet: a 0.29 M-parameter skin-lesion segmentation network, '
    'as an MMSegmentation 1.x plugin',
    packages=find_packages(include=['mmseg_dsnet', 'mmseg_dsnet.*']),
    python_requires='>=3.8',
    install_requires=[
        'mmengine==0.10.7', 'mmcv>=2.0.0rc4,<2.2.0', 'mmsegmentation==1.2.2'
    ],
    license='Apache-2.0',
)
