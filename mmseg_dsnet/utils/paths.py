"""Where the checkout is: the package is installed from it in place
(``pip install -e .``), and the tools' defaults (``data/``, ``results/``,
``configs/``, ``README.md``) are folders of it."""
import os.path as osp

#: The repository root (the folder holding ``mmseg_dsnet/``).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
