"""The DSNet weights that ship in the repository (``checkpoints/``).

``configs/dsnet/metafile.yaml`` lists them (``Weights``, ``SHA256``);
:func:`released_model` finds the entry, checks that the file is there and
is the file the metafile names (a Git LFS pointer or a damaged download
is refused by its hash), and returns the config and checkpoint paths, so
``tools/infer.py`` can segment a photo with no model given.
"""
import os.path as osp
from typing import Optional, Tuple

from ..utils.fileio import sha256_of
from ..utils.paths import REPO_ROOT

METAFILE = osp.join(REPO_ROOT, 'configs', 'dsnet', 'metafile.yaml')
# The model tools use when none is given.
DEFAULT_RELEASE = 'dsnet_isic2017_256px'


class ReleasedModelError(RuntimeError):
    """The released weights are missing, unlisted or not the listed file."""


def released_model(name: Optional[str] = None,
                   metafile: Optional[str] = None) -> Tuple[str, str]:
    """Config and checkpoint of a released model, checked against the
    metafile.

    Args:
        name (str, optional): ``Name`` of the metafile entry.
            Default: :data:`DEFAULT_RELEASE`.
        metafile (str, optional): The metafile. Default: DSNet's
            (:data:`METAFILE`).

    Returns:
        tuple[str, str]: Absolute paths of the config and the checkpoint.

    Raises:
        ReleasedModelError: No such entry, no weights listed, the file is
            missing, or its SHA-256 differs from the listed one.
    """
    import yaml
    name = name or DEFAULT_RELEASE
    metafile = metafile or METAFILE
    with open(metafile) as file:
        models = yaml.safe_load(file).get('Models') or []
    entry = next((m for m in models if m.get('Name') == name), None)
    if entry is None or not entry.get('Weights'):
        raise ReleasedModelError(
            f'{metafile} lists no released weights named {name}')
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(metafile))))
    config = osp.join(root, entry['Config'])
    checkpoint = osp.join(root, entry['Weights'])
    for path, what in ((config, 'config'), (checkpoint, 'weights')):
        if not osp.isfile(path):
            raise ReleasedModelError(
                f'the released {what} of {name} are missing: {path}')
    expected = str(entry.get('SHA256', '')).lower()
    actual = sha256_of(checkpoint)
    if actual != expected:
        raise ReleasedModelError(
            f'{checkpoint} is not the released file (SHA-256 {actual}, the '
            f'metafile lists {expected or "none"}); restore it with git '
            'checkout')
    return config, checkpoint


def publish_weights(config: str, checkpoint: str, out_file: str) -> str:
    """Write the weights of a training checkpoint as a weights-only state
    dict (no optimizer, no message hub, no pickled objects), the form that
    ships under ``checkpoints/``.

    The checkpoint is loaded strictly into the config's model first, so a
    file that does not belong to the config is refused instead of being
    published.

    Args:
        config (str): The config the weights belong to.
        checkpoint (str): A checkpoint written by training.
        out_file (str): Where to write the state dict (atomically).

    Returns:
        str: Hex SHA-256 of the written file (for the metafile's
        ``SHA256``).
    """
    import io

    import torch

    from ..deploy.deployable import build_segmentor
    from ..utils.fileio import atomic_write

    model = build_segmentor(config, checkpoint, reparameterize=False)
    state = {
        name: tensor.detach().cpu().clone()
        for name, tensor in model.state_dict().items()
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(buffer.getvalue(), out_file)
    return sha256_of(out_file)
