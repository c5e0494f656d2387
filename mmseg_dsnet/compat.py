"""Safe checkpoint loading for the pinned stack (torch 2.13, mmengine 0.10.7,
mmcv 2.1.0, mmsegmentation 1.2.2): the one thing ``import mmseg_dsnet``
turns on (:func:`enable_safe_loading`), through public hooks only.

torch >= 2.6 unpickles with ``weights_only=True``; checkpoints written by
mmengine 0.10.7 also hold a few plain objects (the message hub's
``HistoryBuffer``, numpy arrays and scalars), so ``load_from``, ``--resume``
and inference would fail. We allow-list exactly those types with
``torch.serialization.add_safe_globals`` (``getattr`` only in the one form
``HistoryBuffer`` needs) and keep ``weights_only=True``: a checkpoint that
asks to run anything else is refused with :class:`UnsafeCheckpointError`,
which names the file and the offending global. mmengine's local-file scheme
is replaced, with ``CheckpointLoader.register_scheme``, by one that loads
through :func:`safe_torch_load`, and so is ``http(s)://``: mmengine's
loads a download with ``torch.hub``'s ``weights_only=False`` default, any
pickle; ours downloads it into torch's hub cache
(:func:`resolve_checkpoint`) and loads it as a local file. The model-zoo names (``torchvision://``,
``modelzoo://``, ``open-mmlab://``, ``openmmlab://``, ``mmcls://``), which
mmengine resolves to a URL it loads with that same ``weights_only=False``,
are resolved with mmengine's own tables and loaded the same way;
``s3://`` and ``petrel://`` read the bytes with mmengine's file backend and
load them through :func:`safe_torch_load` (mmengine relies on torch's
default, which ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` turns off). Any other
scheme (``pavi://``, or one another package registered before ours) is
refused with :class:`UnsupportedCheckpointSchemeError`, which names the
scheme: download the file and give its local path. The local and
``http(s)://`` loaders also hand the checkpoint's training settings to our
modules, which refuse weights trained in another network
(:func:`~mmseg_dsnet.models.utils.strict_loading.carry_training_settings`).
A truncated or empty
checkpoint raises
:class:`CorruptCheckpointError` naming the file; a URL that cannot be
downloaded, :class:`CheckpointDownloadError` naming the URL.

Everything else the stack needs is a component our configs turn on, not a
patch: crash-safe checkpoints are
:class:`~mmseg_dsnet.engine.hooks.AtomicCheckpointHook`
(``default_hooks.checkpoint`` in ``configs/_base_/default_runtime.py``) and
distributed runs without CUDA are set up by
:func:`~mmseg_dsnet.engine.cpu_distributed.setup_cpu_distributed`
(``env_cfg.dist_cfg``, ``model_wrapper_cfg``) in ``tools/train.py`` and
``tools/test.py``.
"""
import errno
import os
import os.path as osp
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside the allow-list."""


def _numpy_globals():
    """numpy objects that mmengine checkpoints contain (arrays, scalars and
    their dtypes), under both module paths numpy pickles them with (numpy 1.x:
    ``numpy.core``, numpy 2.x: ``numpy._core``), so a checkpoint written with
    either loads with either."""
    major = int(np.__version__.split('.')[0])
    multiarray = np._core.multiarray if major >= 2 else np.core.multiarray
    found = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        obj = getattr(multiarray, name)
        found += [(obj, f'numpy.core.multiarray.{name}'),
                  (obj, f'numpy._core.multiarray.{name}')]
    # Concrete dtype classes (``numpy.dtypes.Float64DType`` ...) are pickled
    # when a dtype object is stored.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return found


def history_buffer_getattr(obj, name):
    """Stands in for ``builtins.getattr`` while unpickling.

    mmengine's ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. Allowing the real ``getattr`` would
    let a crafted file walk from any allowed object to ``eval``, so only
    that one lookup is permitted.
    """
    if obj is HistoryBuffer and (name in HistoryBuffer._statistics_methods
                                 or name in ('min', 'max', 'current',
                                             'mean')):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'GLOBAL getattr({obj!r}, {name!r}) is not allowed')


SAFE_GLOBALS = [HistoryBuffer, (history_buffer_getattr, 'builtins.getattr')
                ] + _numpy_globals()


def _unsafe_message(filename, err):
    # torch's message names the global the file asked for; keep that line.
    detail = str(err).strip().splitlines()
    detail = next((line for line in detail
                   if 'GLOBAL' in line or 'Unsupported' in line),
                  detail[0] if detail else '')
    return (f'Refusing to load checkpoint {filename!s}: it contains a pickled '
            f'object outside the allow-list of mmseg-dsnet ({detail}). '
            'Unpickling it could execute arbitrary code. Load only '
            'checkpoints you trust; if this is a genuine mmengine checkpoint '
            'holding a new harmless type, add that type to '
            'mmseg_dsnet.compat.SAFE_GLOBALS.')


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is empty, truncated or otherwise unreadable."""


class NotACheckpointError(CorruptCheckpointError):
    """The file given as a checkpoint is something else: a Git LFS pointer,
    an HTML page, a text file, binary data of another format."""


#: The first bytes of a zip archive, which ``torch.save`` writes.
ZIP_SIGNATURE = b'PK\x03\x04'


def describe_non_checkpoint(filename, head_size=4096):
    """What a file that failed to load as a checkpoint looks like instead.

    Only called after ``torch.load`` failed, so a genuine checkpoint is never
    judged by its first bytes.

    Args:
        filename (str | Path | file-like): The file; anything but a local
            path gives None.
        head_size (int): How many leading bytes to look at.

    Returns:
        str | None: E.g. ``'is a Git LFS pointer, not the weights ...'``, or
        None when the file is none of the known impostors (or unreadable).
    """
    if not isinstance(filename, (str, os.PathLike)):
        return None
    try:
        with open(filename, 'rb') as f:
            head = f.read(head_size)
    except OSError:
        return None
    text = head.lstrip(b'\xef\xbb\xbf \t\r\n')  # BOM, blank lines
    if not text or head.startswith(ZIP_SIGNATURE):
        return None  # empty, or a zip archive cut short: truncated
    if text.startswith(b'version https://git-lfs'):
        return ('is a Git LFS pointer, not the weights: run `git lfs pull` '
                '(in the repository that holds it) to fetch the file')
    lower = text[:512].lower()
    if lower.startswith((b'<!doctype html', b'<html', b'<head', b'<?xml')) \
            or b'<html' in lower:
        return ('is an HTML page, not a PyTorch checkpoint (a download error '
                'or login page?); download the weights again')
    if b'\0' not in head:
        try:
            head.decode('utf-8')
            return 'is a text file, not a PyTorch checkpoint'
        except UnicodeDecodeError as err:
            # Only a multi-byte character cut at the end of the head is text.
            if len(head) >= head_size and err.start >= len(head) - 3:
                return 'is a text file, not a PyTorch checkpoint'
    # torch.save writes a zip archive (or, before torch 1.6, a pickle, whose
    # first opcode is PROTO); a damaged file of either kind is "corrupt".
    if not head.startswith((ZIP_SIGNATURE, b'\x80')):
        return ('is not a PyTorch checkpoint (neither a zip archive nor a '
                f'pickle; it starts with the bytes {head[:8].hex(" ")})')
    return None


class CheckpointDownloadError(OSError):
    """A checkpoint given as a URL cannot be downloaded (no network, a
    wrong address, an HTTP error)."""


URL_PREFIXES = ('http://', 'https://')


def url_cache_path(url):
    """Where :func:`resolve_checkpoint` keeps the download of ``url``:
    ``<hub dir>/checkpoints/mmseg_dsnet/<hash of the URL>/<file name>``.

    A folder per URL: cached by file name alone (as ``torch.hub`` and
    mmengine do), ``https://a/v1/model.pth`` and ``https://a/v2/model.pth``
    were one file, and the second URL silently loaded the first one's
    weights.
    """
    import hashlib
    from urllib.parse import urlparse
    name = osp.basename(urlparse(url).path)
    if not name:
        raise CheckpointDownloadError(
            f'checkpoint {url} names no file (the URL ends in "/")')
    key = hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'mmseg_dsnet', key,
                    name)


def resolve_checkpoint(filename):
    """The local file for a checkpoint given as an ``http(s)://`` URL,
    downloaded once into torch's hub cache, in a folder of its own for each
    URL (:func:`url_cache_path`); any other ``filename`` is returned
    unchanged.

    Tools call it before their own checks of the file, so a URL behaves as
    the local file it names; in a distributed run rank 0 downloads first.

    Args:
        filename (str | Path | file-like): The checkpoint.

    Returns:
        The local path, or ``filename`` itself.

    Raises:
        CheckpointDownloadError: The download failed; the message names the
            URL and why.
    """
    if not (isinstance(filename, str) and filename.startswith(URL_PREFIXES)):
        return filename
    from mmengine.dist import barrier, get_dist_info
    cached = url_cache_path(filename)
    cache = osp.dirname(cached)
    rank, world_size = get_dist_info()
    for turn in ((0, 1) if world_size > 1 else (rank, )):
        if turn == rank and not osp.isfile(cached):
            try:
                os.makedirs(cache, exist_ok=True)
                # Downloads to a temporary file and renames it: an
                # interrupted download leaves nothing in the cache.
                torch.hub.download_url_to_file(filename, cached,
                                               progress=False)
            except Exception as err:  # URLError, HTTPError, timeouts ...
                reason = getattr(err, 'reason', None) or err
                raise CheckpointDownloadError(
                    f'checkpoint {filename} cannot be downloaded '
                    f'({type(err).__name__}: {reason}); download it where '
                    'the network allows and give the local file') from None
        if world_size > 1 and turn == 0:
            barrier()
    return cached


def safe_torch_load(filename, map_location=None, name=None):
    """``torch.load`` with ``weights_only=True`` and our allow-list.

    Args:
        filename (str | Path | file-like): The checkpoint; an
            ``http(s)://`` URL is downloaded first
            (:func:`resolve_checkpoint`).
        map_location (str | torch.device | None): As in :func:`torch.load`.
        name (str | None): What messages call the checkpoint (e.g. the
            ``s3://`` path a buffer was read from); ``filename`` if None.

    Returns:
        object: The loaded checkpoint.

    Raises:
        UnsafeCheckpointError: The file asks to unpickle something outside
            the allow-list (it could run code); nothing from it is executed.
        CheckpointDownloadError: A URL cannot be downloaded.
        CorruptCheckpointError: The file is empty or truncated.
        NotACheckpointError: The file is a Git LFS pointer, an HTML page or
            a text file.
    """
    filename = resolve_checkpoint(filename)
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except Exception as err:
        cut = _cut_zip_archive(err, filename)
        if cut:
            raise CorruptCheckpointError(_corrupt_message(
                name or filename, cut)) from None
        # A text file fails with "Unsupported operand", an IndexError or a
        # KeyError; a refused GLOBAL means a real pickle that asks for code.
        looks_like = None if 'GLOBAL' in str(err) else \
            describe_non_checkpoint(filename)
        if looks_like:
            raise NotACheckpointError(
                f'Checkpoint {name or filename!s} {looks_like}.') from None
        if not isinstance(err, (pickle.UnpicklingError, EOFError,
                                RuntimeError)):
            raise
        _raise_load_error(name or filename, err)


def _cut_zip_archive(err, filename):
    """How ``torch.load`` failing with ``err`` shows a zip archive (what
    ``torch.save`` writes) cut short, where torch's own message does not
    say so; None otherwise.

    Cut inside its zip directory, torch's reader raises a bare
    ``OSError: [Errno 22] Invalid argument`` for a file (``ValueError:
    negative seek value`` for a buffer); cut inside the 4-byte zip
    signature, torch reads the bytes as a pickle and refuses its first
    opcode, and the bytes (``PK``) read as a text file. Other ``OSError``
    (a missing file, a folder, no permission) are not cuts.

    Args:
        err (Exception): What ``torch.load`` raised.
        filename (str | Path | file-like): The checkpoint.

    Returns:
        str | None: What is wrong, for :class:`CorruptCheckpointError`.
    """
    if (type(err) is OSError and err.errno == errno.EINVAL) or (
            isinstance(err, ValueError)
            and 'negative seek value' in str(err)):
        return ('its zip directory is cut short or damaged: '
                f'{type(err).__name__}: {err}')
    if not isinstance(err, pickle.UnpicklingError):
        return None
    try:
        if isinstance(filename, (str, os.PathLike)):
            with open(filename, 'rb') as f:
                head = f.read(len(ZIP_SIGNATURE))
        else:
            filename.seek(0)
            head = filename.read(len(ZIP_SIGNATURE))
    except (OSError, ValueError, AttributeError):
        return None
    if head and len(head) < len(ZIP_SIGNATURE) and \
            ZIP_SIGNATURE.startswith(head):
        return f'only {len(head)} bytes, cut inside the zip signature'
    return None


def checkpoint_meta(checkpoint):
    """The ``meta`` dict of a checkpoint file (:func:`safe_torch_load`) or
    of a checkpoint loaded already, or an empty dict when it has none
    (bare or released weights).

    Args:
        checkpoint (str | os.PathLike | Any): The checkpoint file, or what
            loading one returned (a dict, or a bare state dict).

    Returns:
        dict: Its ``meta``.
    """
    loaded = safe_torch_load(checkpoint, map_location='cpu') \
        if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    meta = loaded.get('meta') if isinstance(loaded, dict) else None
    return meta if isinstance(meta, dict) else {}


def _raise_load_error(filename, err):
    """Raise the error for a checkpoint ``torch.load`` refused: unsafe
    pickles, truncated files; anything else as it was."""
    if isinstance(err, pickle.UnpicklingError):
        raise UnsafeCheckpointError(_unsafe_message(filename, err)) from None
    text = str(err)
    if isinstance(err, RuntimeError) and 'zip archive' not in text \
            and 'PytorchStreamReader' not in text:
        raise err
    raise CorruptCheckpointError(_corrupt_message(
        filename, text.splitlines()[0] if text else 'unexpected end of file'
    )) from None


def _corrupt_message(filename, detail):
    """The message of :class:`CorruptCheckpointError` for ``filename``."""
    return (f'Checkpoint {filename!s} is empty, truncated or corrupt '
            f'({detail}); it was probably written by a run that was '
            'interrupted while saving or copied incompletely. Use an '
            'earlier checkpoint.')


def _load_from_local(filename, map_location):
    """mmengine's local-file scheme, but loading through
    :func:`safe_torch_load` (used by ``load_from``, ``--resume`` and
    ``load_checkpoint``)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return with_training_settings(
        safe_torch_load(filename, map_location=map_location), filename)


def with_training_settings(checkpoint, filename, training_cfg=None):
    """``checkpoint`` with its training config's module settings and its
    form handed to the modules it is loaded into, which refuse weights
    trained in another network (:func:`~mmseg_dsnet.models.utils.
    strict_loading.carry_training_settings`) and name a checkpoint of the
    other form as such (:func:`~mmseg_dsnet.models.utils.strict_loading.
    carry_checkpoint_form`); ``training_cfg`` is its training config read
    already (``{}`` for none), read from ``checkpoint`` when None."""
    from .models.utils.strict_loading import (carry_checkpoint_form,
                                              carry_training_settings)
    return carry_checkpoint_form(
        carry_training_settings(checkpoint, filename, training_cfg), filename)


def _load_from_url(filename, map_location):
    """``http(s)://``: downloaded once (:func:`resolve_checkpoint`), then
    loaded as a local file."""
    return with_training_settings(
        safe_torch_load(filename, map_location=map_location),
        resolve_checkpoint(filename))


_load_from_url.wrapped_by_mmseg_dsnet = True


class UnsupportedCheckpointSchemeError(ValueError):
    """A checkpoint path uses a scheme that mmseg-dsnet cannot load with
    ``weights_only=True`` (``pavi://`` ...), or names no model of a
    model-zoo scheme."""


ZOO_PREFIXES = ('torchvision://', 'modelzoo://', 'open-mmlab://',
                'openmmlab://', 'mmcls://')


def _zoo_target(filename):
    """The URL (or, for an ``open-mmlab://`` entry that is a path, the file
    under mmengine's home) a model-zoo name stands for, looked up in
    mmengine's own tables as its loaders do."""
    from mmengine.runner import checkpoint as mm_checkpoint
    prefix, model = filename.split('://', 1)
    if prefix in ('torchvision', 'modelzoo'):
        try:
            urls = mm_checkpoint.get_torchvision_models()
        except ImportError as err:
            raise UnsupportedCheckpointSchemeError(
                f'checkpoint {filename}: {prefix}:// needs torchvision '
                f'({err}); give a local file or an http(s) URL') from None
    elif prefix == 'mmcls':
        urls = mm_checkpoint.get_mmcls_models()
    else:
        urls = mm_checkpoint.get_external_models()
        model = mm_checkpoint.get_deprecated_model_names().get(model, model)
    if model not in urls:
        raise UnsupportedCheckpointSchemeError(
            f'checkpoint {filename}: mmengine knows no model {model!r} under '
            f'{prefix}://; give a local file or an http(s) URL')
    target = urls[model]
    if not target.startswith(URL_PREFIXES):
        # mmengine has no public name for its home folder.
        target = osp.join(mm_checkpoint._get_mmengine_home(), target)
        if not osp.isfile(target):
            raise FileNotFoundError(f'{target} can not be found.')
    return target


def _load_from_zoo(filename, map_location):
    """``torchvision://``, ``open-mmlab://`` ... : mmengine's name tables,
    then :func:`safe_torch_load` (mmengine's loaders use ``torch.hub``'s
    ``weights_only=False`` for the download)."""
    checkpoint = safe_torch_load(_zoo_target(filename),
                                 map_location=map_location)
    if filename.startswith('mmcls://'):
        from mmengine.runner.checkpoint import _process_mmcls_checkpoint
        checkpoint = _process_mmcls_checkpoint(checkpoint)
    return checkpoint


_load_from_zoo.wrapped_by_mmseg_dsnet = True

BACKEND_PREFIXES = (r'(\S+\:)?s3://', r'(\S+\:)?petrel://')


def _load_from_backend(filename, map_location):
    """``s3://`` / ``petrel://``: the bytes from mmengine's petrel backend,
    loaded by :func:`safe_torch_load` (mmengine's loader leaves
    ``weights_only`` to torch's default, which an environment variable can
    turn off)."""
    import io

    from mmengine.runner import checkpoint as mm_checkpoint
    backend = mm_checkpoint.get_file_backend(
        filename, backend_args={'backend': 'petrel'})
    with io.BytesIO(backend.get(filename)) as buffer:
        return safe_torch_load(buffer, map_location=map_location,
                               name=filename)


_load_from_backend.wrapped_by_mmseg_dsnet = True


def _refusing_scheme(prefix):
    """A loader for a scheme we cannot load safely: refuses every path."""

    def load(filename, map_location):
        raise UnsupportedCheckpointSchemeError(
            f'checkpoint {filename}: the {prefix} scheme is not supported '
            '(mmseg-dsnet loads checkpoints only with weights_only=True, '
            'which this scheme\'s loader does not guarantee); download the '
            'file and give its local path')

    load.__name__ = 'load_from_unsupported'
    load.wrapped_by_mmseg_dsnet = True
    return load


# --- file writing ------------------------------------------------------------

# The one atomic writer lives in ``mmseg_dsnet.utils.fileio``; these names
# stay importable from here.
from .utils.fileio import (PARTIAL_MARK, atomic_write,  # noqa: E402,F401
                           partial_path, remove_stale_partials)

_safe_loading_enabled = False


def enable_safe_loading():
    """Allow-list mmengine's checkpoint contents in ``torch.load``
    (``add_safe_globals``) and load every checkpoint mmengine reads through
    :func:`safe_torch_load` / with our refusal message
    (``CheckpointLoader.register_scheme``). Called by ``import
    mmseg_dsnet``; safe to call repeatedly."""
    global _safe_loading_enabled
    if _safe_loading_enabled:
        return
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
    # mmengine offers no public way to list its schemes; reading the
    # registry is the only access to a private name here.
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if prefix and not getattr(loader, 'wrapped_by_mmseg_dsnet', False):
            CheckpointLoader.register_scheme(
                prefixes=prefix, loader=_refusing_scheme(prefix), force=True)
    CheckpointLoader.register_scheme(
        prefixes=list(URL_PREFIXES), loader=_load_from_url, force=True)
    CheckpointLoader.register_scheme(
        prefixes=list(ZOO_PREFIXES), loader=_load_from_zoo, force=True)
    CheckpointLoader.register_scheme(
        prefixes=list(BACKEND_PREFIXES), loader=_load_from_backend,
        force=True)
    CheckpointLoader.register_scheme(
        prefixes='', loader=_load_from_local, force=True)
    _safe_loading_enabled = True
