"""The DSNet weights that ship in the repository (``checkpoints/``).

``configs/dsnet/metafile.yaml`` lists them (``Weights``, ``SHA256``);
:func:`released_model` finds the entry, checks that the file is there and
is the file the metafile names (a Git LFS pointer or a damaged download
is refused by its hash), and returns the config and checkpoint paths, so
``tools/infer.py`` can segment a photo with no model given.
"""
import ast
import hashlib
import os
import os.path as osp
from typing import Optional, Tuple

from ..utils.errors import UserError
from ..utils.fileio import sha256_of
from ..utils.paths import REPO_ROOT

METAFILE = osp.join(REPO_ROOT, 'configs', 'dsnet', 'metafile.yaml')
# The model tools use when none is given.
DEFAULT_RELEASE = 'dsnet_isic2017_256px'


class ReleasedModelError(UserError, RuntimeError):
    """The released weights are missing, unlisted or not the listed file,
    or the metafile that lists them is not one."""


def metafile_models(metafile: str) -> list:
    """The entries of a metafile's ``Models`` list.

    Args:
        metafile (str): The metafile.

    Returns:
        list[dict]: The entries, as written.

    Raises:
        ReleasedModelError: The file cannot be read, is not YAML, or holds
            no ``Models`` list of mappings (an empty or half-merged file):
            its entries are not known.
    """
    import yaml
    try:
        with open(metafile, encoding='utf-8') as file:
            content = yaml.safe_load(file)
    except (OSError, UnicodeDecodeError) as err:
        raise ReleasedModelError(
            f'metafile {metafile} cannot be read: {err}') from None
    except yaml.YAMLError as err:
        where = getattr(err, 'problem_mark', None)
        raise ReleasedModelError(
            f'metafile {metafile} is not YAML'
            + (f' (line {where.line + 1})' if where else '')
            + '; restore it with git checkout') from None
    models = content.get('Models') if isinstance(content, dict) else None
    if not (isinstance(models, list)
            and all(isinstance(entry, dict) for entry in models)):
        raise ReleasedModelError(
            f'metafile {metafile} lists no Models (a list of entries with '
            'Name, Config, Weights and SHA256); restore it with git '
            'checkout')
    return models


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
        ReleasedModelError: The metafile is not one
            (:func:`metafile_models`), no such entry, no weights or config
            listed, a file is missing, or the weights' SHA-256 differs from
            the listed one.
    """
    name = name or DEFAULT_RELEASE
    metafile = metafile or METAFILE
    models = metafile_models(metafile)
    entry = next((m for m in models if m.get('Name') == name), None)
    if entry is None or not entry.get('Weights'):
        raise ReleasedModelError(
            f'{metafile} lists no released weights named {name}')
    if not entry.get('Config'):
        raise ReleasedModelError(
            f'{metafile} lists no Config for the released weights named '
            f'{name}; restore it with git checkout')
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(metafile))))
    config = osp.join(root, str(entry['Config']))
    checkpoint = osp.join(root, str(entry['Weights']))
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
    check_release_input_size(entry, config)
    return config, checkpoint


def metafile_field(path: str, advice: str) -> str:
    """How the metafile lists ``path`` (a ``Config`` or ``Weights`` field):
    relative to the repository root, as :func:`released_model` reads it;
    ``(none: why)`` for a file it cannot list: one outside the repository
    (a path as typed would not be found), or one git ignores (never
    committed, so missing from every other copy of the repository).

    Args:
        path (str): The file, as the user gave it.
        advice (str): Where to put the file instead of an ignored place
            (``'write the weights under checkpoints/'``).
    """
    from ..utils.paths import git_ignores
    relative = osp.relpath(osp.realpath(path), osp.realpath(REPO_ROOT))
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return (f'(none: {path} is outside the repository {REPO_ROOT}; '
                'the metafile lists files in it)')
    if git_ignores(osp.join(REPO_ROOT, relative)):
        return (f'(none: git ignores {relative}, so it would be missing '
                f'from every other copy of the repository; {advice})')
    return relative


def check_release_input_size(entry: dict, config: str) -> None:
    """Refuse a config that sets another input size than the metafile
    entry's ``crop size`` (the size the released weights were trained at):
    the weights carry no training config, so they would load strictly and
    run at the config's size, giving other masks with no error. An entry
    without ``crop size`` passes.

    Raises:
        ReleasedModelError: Naming each setting that differs.
    """
    listed = (entry.get('Metadata') or {}).get('crop size')
    if listed is None:
        return
    try:
        size = ast.literal_eval(str(listed))
    except (ValueError, SyntaxError):
        size = None
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    # YAML writes a list where the metafile's text writes a tuple.
    size = tuple(size) if isinstance(size, list) else size
    if not (isinstance(size, tuple) and len(size) == 2 and all(
            isinstance(side, int) and not isinstance(side, bool)
            and side > 0 for side in size)):
        raise ReleasedModelError(
            f"the metafile's crop size of {entry.get('Name')} is not "
            f'(height, width): {listed!r}')
    from ..engine.preflight import load_config
    found = input_size_settings(load_config(config))
    # mmcv's Resize scale is (width, height); the preprocessor's size and
    # the metafile's crop size are (height, width).
    if INPUT_SIZE_FIELDS[1] in found:
        found[INPUT_SIZE_FIELDS[1]] = found[INPUT_SIZE_FIELDS[1]][::-1]
    differences = [
        f'{field} is {value} (height, width)'
        for field, value in found.items() if tuple(value) != tuple(size)
    ]
    if differences:
        raise ReleasedModelError(
            f'config {config} does not run the released weights of '
            f"{entry.get('Name')} at the size they were trained at "
            f'({size[0]}x{size[1]}, the metafile\'s crop size): ' +
            '; '.join(differences) + '; they would run at another size '
            'and give other masks; restore the config with git checkout')


def release_meta(config) -> dict:
    """What mmseg's ``init_model`` and ``MMSegInferencer`` read from a
    checkpoint's ``meta``: the class names and palette of the config's test
    dataset. Without them ``init_model`` fails (``KeyError: 'meta'``) and
    ``MMSegInferencer`` names and colours the masks with Cityscapes' 19
    classes.

    Args:
        config (str | Config): The config the weights belong to.

    Returns:
        dict: ``{'dataset_meta': {'classes': ..., 'palette': ...}}``, of
        strings and integers only (loadable with ``weights_only=True``).
    """
    from mmseg.registry import DATASETS

    from ..engine.preflight import dataset_classes, load_config
    dataset_cfg = load_config(config).test_dataloader.dataset
    _, classes = dataset_classes(dataset_cfg)
    dataset_class = DATASETS.get(dataset_cfg.get('type'))
    palette = ((dataset_cfg.get('metainfo') or {}).get('palette')
               or getattr(dataset_class, 'METAINFO', {}).get('palette'))
    dataset_meta = dict(classes=tuple(classes or ()))
    if palette:
        dataset_meta['palette'] = [[int(v) for v in colour]
                                   for colour in palette]
    return dict(dataset_meta=dataset_meta)


# What a model's input size is set by, and where in a config.
INPUT_SIZE_FIELDS = ('model.data_preprocessor.size',
                     "the test pipeline's Resize scale")


def _literal(node):
    """The value of a config expression made of literals, tuples, lists,
    dicts and ``dict(key=...)`` calls (what mmengine's ``pretty_text``
    writes); anything else raises :class:`ValueError`. Nothing is run."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == 'dict' and not node.args \
            and all(k.arg for k in node.keywords):
        return {k.arg: _literal(k.value) for k in node.keywords}
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_literal(item) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v)
                for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)


def training_config_of(checkpoint: str) -> Optional[dict]:
    """The training config a checkpoint holds (``meta['cfg']``, written by
    mmengine's Runner and ``fast_train.py``) as :func:`config_from_text`
    reads it; for released weights, which hold none, their metafile entry's
    ``Config`` (:func:`released_training_config`); else None.

    Args:
        checkpoint (str): The checkpoint file.
    """
    from ..compat import safe_torch_load
    return training_config_in(
        safe_torch_load(checkpoint, map_location='cpu'), checkpoint)


def training_config_in(loaded, checkpoint: Optional[str] = None
                       ) -> Optional[dict]:
    """:func:`training_config_of` a checkpoint loaded already.

    Args:
        loaded (dict): The loaded checkpoint (or bare state dict).
        checkpoint (str, optional): Its file, to recognise released
            weights by their SHA-256; None skips that.
    """
    text = training_config_text(loaded, checkpoint)
    return None if text is None else config_from_text(text)


# The ``training_cfg`` a check is given when its caller has not read the
# checkpoint's training config: the check reads it itself.
from ..utils.config_diff import UNREAD  # noqa: E402


def _given_or_read(checkpoint: str, loaded, training_cfg) -> Optional[dict]:
    """``training_cfg`` when the caller read it (what
    :func:`training_config_in` returns, None included); else the training
    config of ``loaded``, or of the file when ``loaded`` is None."""
    if training_cfg is not UNREAD:
        return training_cfg
    return training_config_of(checkpoint) if loaded is None \
        else training_config_in(loaded, checkpoint)


def training_config_text(loaded, checkpoint: Optional[str] = None
                         ) -> Optional[str]:
    """The training config text to carry into a file made from a checkpoint
    (published, re-parameterised or recalibrated weights): its
    ``meta['cfg']``, or for released weights their metafile entry's
    ``Config`` as mmengine's ``pretty_text`` writes it; else None. With
    it the new file is held to every check that reads the training config.

    Args:
        loaded (dict): The loaded checkpoint (or bare state dict).
        checkpoint (str, optional): Its file, to recognise released
            weights by their SHA-256; None skips that.
    """
    from ..compat import checkpoint_meta
    text = checkpoint_meta(loaded).get('cfg')
    if isinstance(text, str):
        return text
    return released_config_text(checkpoint) if checkpoint else None


#: The ``Metadata`` key of a metafile entry that records the ``model`` of
#: the config its weights were trained in.
RECORDED_MODEL_KEY = 'model config'


def recorded_model(entry: dict) -> Optional[dict]:
    """The ``model`` a metafile entry records its weights were trained in
    (``Metadata`` :data:`RECORDED_MODEL_KEY`), or None when it records
    none. The entry's ``Config`` file can be edited after the release; this
    record is what a config that runs the weights is compared with.

    Args:
        entry (dict): A metafile entry.

    Raises:
        ReleasedModelError: The record is there but is not a mapping.
    """
    metadata = entry.get('Metadata')
    model = metadata.get(RECORDED_MODEL_KEY) \
        if isinstance(metadata, dict) else None
    if model is None:
        return None
    if not isinstance(model, dict):
        raise ReleasedModelError(
            f"the metafile's {RECORDED_MODEL_KEY} of {entry.get('Name')} "
            f'is not a mapping of model settings: {model!r}; restore it '
            'with git checkout')
    return model


def released_config_text(checkpoint: str,
                         metafile: Optional[str] = None) -> Optional[str]:
    """The ``Config`` of the metafile entry of released weights
    (:func:`released_entry`) as mmengine's ``pretty_text`` dumps it, with
    the ``model`` the entry records (:func:`recorded_model`) in place of
    the file's, or None for other files.

    Args:
        checkpoint (str): A checkpoint file.
        metafile (str, optional): The metafile. Default: DSNet's
            (:data:`METAFILE`).
    """
    entry = released_entry(checkpoint, metafile)
    if entry is None:
        return None
    from mmengine.config import Config
    from ..utils.config_diff import config_differences
    cfg = Config.fromfile(entry['Config'])
    model = recorded_model(entry)
    # The file may have been edited since the release; the record holds
    # the network the weights were trained in. A file that agrees keeps
    # its own text (tuples, which YAML writes as lists).
    if model is not None and next(config_differences(
            cfg.model.to_dict(), model, 'model'), None) is not None:
        cfg.model = model
    return cfg.pretty_text


def released_entry(checkpoint: str,
                   metafile: Optional[str] = None) -> Optional[dict]:
    """The metafile entry whose ``Weights`` file is ``checkpoint``'s content
    (the same size and SHA-256, wherever it was copied), with ``Config``
    made an absolute path; None when no entry's weights are this file.

    Args:
        checkpoint (str): A checkpoint file.
        metafile (str, optional): The metafile. Default: DSNet's
            (:data:`METAFILE`).

    Raises:
        ReleasedModelError: The metafile is there but is not one
            (:func:`metafile_models`).
    """
    metafile = metafile or METAFILE
    if not (osp.isfile(checkpoint) and osp.isfile(metafile)):
        return None
    models = metafile_models(metafile)
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(metafile))))
    size, digest = osp.getsize(checkpoint), None
    for entry in models:
        weights = osp.join(root, str(entry.get('Weights') or ''))
        config = osp.join(root, str(entry.get('Config') or ''))
        # The size first: a training checkpoint is not hashed.
        if not (entry.get('Weights') and osp.isfile(weights) and
                osp.isfile(config) and osp.getsize(weights) == size):
            continue
        digest = digest or sha256_of(checkpoint)
        if digest == str(entry.get('SHA256', '')).lower():
            return dict(entry, Config=config)
    return None


def released_training_config(checkpoint: str,
                             metafile: Optional[str] = None
                             ) -> Optional[dict]:
    """The training config of released weights: their metafile entry's
    ``Config`` (:func:`released_entry`) with the ``model`` the entry
    records (:func:`released_config_text`), as :func:`config_from_text`
    reads a dump of it. Released weights are weights-only and hold no
    ``meta['cfg']``; this config is what the checks compare them with when
    they are loaded under a config whose network differs in a setting
    without weights (a dilation), or tested on images they trained on.

    Args:
        checkpoint (str): A checkpoint file.
        metafile (str, optional): The metafile. Default: DSNet's
            (:data:`METAFILE`).

    Returns:
        dict | None: The settings, or None for other files.
    """
    text = released_config_text(checkpoint, metafile)
    return None if text is None else config_from_text(text)


def training_config_source(checkpoint: str, loaded=None) -> str:
    """Where :func:`training_config_of` finds ``checkpoint``'s training
    config, as messages name it: ``meta['cfg']``, or the config of the
    metafile entry of released weights.

    Args:
        checkpoint (str): The checkpoint file.
        loaded (dict, optional): ``checkpoint`` loaded already; it is read
            from the file when None.
    """
    from ..compat import checkpoint_meta
    if loaded is not None:
        meta = checkpoint_meta(loaded)
    else:
        meta = checkpoint_meta(checkpoint) if osp.isfile(checkpoint) else {}
    entry = None if isinstance(meta.get('cfg'), str) \
        else released_entry(checkpoint)
    if entry is None:
        return "meta['cfg']"
    recorded = '' if recorded_model(entry) is None else (
        f', with the {RECORDED_MODEL_KEY} the entry records')
    return (f"{osp.relpath(entry['Config'], REPO_ROOT)}, the Config of its "
            f"metafile entry {entry.get('Name')}{recorded}")


def trained_config_advice(config: str, checkpoint: str,
                          loaded=None) -> str:
    """What to do about a checkpoint refused under ``config`` for another
    network or input size than it was trained in: give the config its
    training dumped into its work dir
    (:data:`~mmseg_dsnet.engine.checkpoint_match.TRAINED_CONFIG_HINT`);
    released weights have no work dir, and run with the config their
    metafile entry names, as released.

    Args:
        config (str): The config file the checkpoint was refused under.
        checkpoint (str): The checkpoint file.
        loaded (dict, optional): ``checkpoint`` loaded already; it is read
            from the file when None.
    """
    from ..compat import checkpoint_meta
    from ..engine.checkpoint_match import TRAINED_CONFIG_HINT
    meta = checkpoint_meta(checkpoint if loaded is None else loaded)
    entry = None if isinstance(meta.get('cfg'), str) \
        else released_entry(checkpoint)
    if entry is None:
        return TRAINED_CONFIG_HINT
    release_config = osp.relpath(entry['Config'], REPO_ROOT)
    if osp.realpath(config) == osp.realpath(entry['Config']):
        # The entry's own file was edited since the release.
        return (f'restore {release_config} as released (git checkout -- '
                f'{release_config}): released weights run in the network '
                f"its metafile entry {entry.get('Name')} records")
    return (f'give the config its metafile entry {entry.get("Name")} '
            f'names ({release_config})')


def config_from_text(text: str) -> dict:
    """The top-level settings of a dumped config (a checkpoint's
    ``meta['cfg']``) read without running it: a checkpoint is loaded
    without running anything in it, and its text is no different.

    Args:
        text (str): The config as mmengine's ``Config.pretty_text``.

    Returns:
        dict: Each ``name = value`` whose value is a literal; other
        statements are left out. Empty when the text is not Python.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    settings = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(
                statement.targets) == 1 and isinstance(
                    statement.targets[0], ast.Name):
            try:
                settings[statement.targets[0].id] = _literal(
                    statement.value)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                pass
    return settings


def input_size_settings(cfg) -> dict:
    """The settings of :data:`INPUT_SIZE_FIELDS` a config has, as tuples
    (an int scale is square); a field it lacks is left out.

    Args:
        cfg (Config | dict): A config, or :func:`config_from_text`'s dict.
    """
    def as_tuple(value):
        if isinstance(value, int) and not isinstance(value, bool):
            return (value, value)
        return tuple(value) if isinstance(value, (list, tuple)) else None

    found = {}
    model = cfg.get('model')
    preprocessor = model.get('data_preprocessor') if isinstance(
        model, dict) else None
    if isinstance(preprocessor, dict) and as_tuple(
            preprocessor.get('size')) is not None:
        found[INPUT_SIZE_FIELDS[0]] = as_tuple(preprocessor['size'])
    # The test loader's pipeline is the one testing ran (and the one
    # --cfg-options change); the top-level test_pipeline otherwise.
    from ..deploy.deployable import loader_pipeline, resize_scale
    pipeline = loader_pipeline(cfg) or cfg.get('test_pipeline') or []
    scale = as_tuple(resize_scale(pipeline))
    if scale is not None:
        found[INPUT_SIZE_FIELDS[1]] = scale
    return found


def check_trained_input_size(
        cfg, config: str, checkpoint: str,
        advice: str = 'publish it with the config it was trained with',
        loaded=None, training_cfg=UNREAD) -> None:
    """Refuse a checkpoint whose training config (``meta['cfg']``, written
    by mmengine's Runner) sets another input size than ``cfg``, or another
    pixel normalisation (``data_preprocessor`` mean, std, channel order);
    a checkpoint without one passes.

    Args:
        cfg (Config): The config the weights are published, exported,
            re-parameterised or run under.
        config (str): Its file, for the message.
        checkpoint (str): The checkpoint file.
        advice (str): What to do instead, ending the message.
        loaded (dict, optional): ``checkpoint`` loaded already; it is read
            from the file when None.
        training_cfg (dict, optional): The checkpoint's training config
            read already (:func:`training_config_in`; None when it has
            none); read from ``loaded`` or the file when not given.

    Raises:
        UserError: Naming each setting that differs with both values.
    """
    training_cfg = _given_or_read(checkpoint, loaded, training_cfg)
    if training_cfg is None:
        return

    def source():
        return training_config_source(checkpoint, loaded)

    trained = input_size_settings(training_cfg)
    given = input_size_settings(cfg)
    differences = [
        f'{field} is {trained[field]} in its training config '
        f'({source()}), {given[field]} in the config'
        for field in INPUT_SIZE_FIELDS if field in trained and field in given
        and trained[field] != given[field]
    ]
    if differences:
        raise UserError(
            f'checkpoint {checkpoint} was trained at another input size '
            f'than config {config} sets: ' + '; '.join(differences) +
            f'; {advice}')
    # Weights learnt on pixels normalised one way (or in one channel
    # order) load strictly under a config that normalises another way, and
    # an export's parity check compares the model with itself under that
    # config: it passes while the masks are wrong.
    trained = normalisation_settings(training_cfg)
    given = normalisation_settings(cfg)
    differences = [
        f'model.data_preprocessor.{key} is {trained[key]} in its training '
        f'config ({source()}), {given[key]} in the config'
        for key in NORMALISATION_FIELDS
        if key in trained and key in given and trained[key] != given[key]
    ]
    if differences:
        raise UserError(
            f'checkpoint {checkpoint} was trained on pixels normalised '
            f'otherwise than config {config} sets: ' +
            '; '.join(differences) + f'; {advice}')


# Model settings that do not change what the network computes at test
# time (training-only, initialisation, or checked elsewhere: the decision
# threshold is the config's own choice, the preprocessor is compared by
# :func:`check_trained_input_size`); any other difference is another model.
# ``fuse_side_outputs`` is the config's own test-time choice too, over the
# same weights: the side classifiers it averages in train with or without it.
NOT_INFERENCE_KEYS = frozenset((
    'train_cfg', 'test_cfg', 'init_cfg', 'pretrained', 'data_preprocessor',
    'aux_loss_weights', 'dropout_ratio', 'drop_path_rate', 'branch_drop',
    'fused_loss_weight', 'distance_loss_weight', 'zero_init_residual',
    'threshold', 'fuse_side_outputs', 'deploy', 'requires_grad'))


def _inference_model(value):
    """``value`` (a model config dict) without :data:`NOT_INFERENCE_KEYS`
    and loss settings, at every depth."""
    if isinstance(value, dict):
        # Models are built in mmseg's scope (build_scope): naming it
        # builds the same classes as leaving it out.
        kept = {key: _inference_model(item) for key, item in value.items()
                if key not in NOT_INFERENCE_KEYS
                and not str(key).startswith('loss')
                and (key, item) != ('_scope_', 'mmseg')}
        # A BatchNorm under any of its names (SyncBN, BN2d) computes at
        # test time what BN computes (running statistics): weights trained
        # with SyncBN on several devices run under a BN config on one, and
        # the reverse.
        from ..models.layers.desd_conv import BATCH_NORMS
        if kept.get('type') in BATCH_NORMS:
            kept['type'] = 'BN'
        return kept
    if isinstance(value, (list, tuple)):
        return [_inference_model(item) for item in value]
    return value


#: The settings that name the kind of network a model config builds, in
#: the order a refusal names the first that differs.
COMPONENT_TYPES = ('model.type', 'model.backbone.type',
                   'model.decode_head.type')


def check_trained_model(
        cfg, config: str, checkpoint: str,
        advice: str = 'publish it with the config it was trained with',
        loaded=None, training_cfg=UNREAD) -> None:
    """Refuse a checkpoint whose training config (``meta['cfg']``) builds
    the network otherwise than ``cfg`` in a setting that holds no weights
    (a dilation, a padding mode, the activation, ``align_corners``): the
    weights load strictly, and would run in a network they were not
    trained in. Training-only settings (:data:`NOT_INFERENCE_KEYS`,
    losses) may differ. Released weights are compared with the ``model``
    their metafile entry records, so an edit of the entry's config file
    is refused too (:func:`training_config_of`); another checkpoint
    without a training config, or whose ``model`` is not a literal,
    passes.

    Args:
        cfg (Config): The config the weights are published or run under.
        config (str): Its file, for the message.
        checkpoint (str): The checkpoint file.
        advice (str): What to do instead, ending the message.
        loaded (dict, optional): ``checkpoint`` loaded already; it is read
            from the file when None.
        training_cfg (dict, optional): The checkpoint's training config
            read already (:func:`training_config_in`; None when it has
            none); read from ``loaded`` or the file when not given.

    Raises:
        UserError: Naming the first differing setting with both values.
    """
    from ..utils.config_diff import NOT_SET, config_differences, value_at
    training_cfg = _given_or_read(checkpoint, loaded, training_cfg)
    trained = (training_cfg or {}).get('model')
    if not isinstance(trained, dict):
        return
    given = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(
        cfg.model)
    # Compared without training-only settings, named as written.
    diffs = list(config_differences(_inference_model(given),
                                    _inference_model(trained), 'model'))
    if not diffs:
        return
    # Another kind of network (DSNet weights, a UNet config) is named by
    # its type, not by the first setting in which the two differ.
    diff = next((path for path in COMPONENT_TYPES if path in diffs),
                diffs[0])
    raise UserError(
        f'checkpoint {checkpoint} was trained in another network than '
        f'config {config} builds: {diff} is '
        f'{value_at({"model": trained}, diff, NOT_SET)!r} in its training '
        f'config ({training_config_source(checkpoint, loaded)}), '
        f"{value_at({'model': given}, diff, NOT_SET)!r}"
        f' in the config; {advice}')


# How a model's input pixels are normalised (``SegDataPreProcessor``).
NORMALISATION_FIELDS = ('mean', 'std', 'bgr_to_rgb', 'rgb_to_bgr')


def normalisation_settings(cfg) -> dict:
    """The :data:`NORMALISATION_FIELDS` of a config's data preprocessor,
    comparable across a config and :func:`config_from_text`'s dict (mean
    and std as tuples of floats, the flags as bools); empty when the config
    sets no preprocessor.

    Args:
        cfg (Config | dict): A config, or :func:`config_from_text`'s dict.
    """
    model = cfg.get('model')
    pre = model.get('data_preprocessor') if isinstance(model, dict) else None
    if not isinstance(pre, dict):
        return {}
    found = {}
    for key in ('mean', 'std'):
        value = pre.get(key)
        try:
            found[key] = None if value is None else tuple(
                float(v) for v in value)
        except (TypeError, ValueError):
            pass  # not a literal list: not compared
    for key in ('bgr_to_rgb', 'rgb_to_bgr'):
        found[key] = bool(pre.get(key, False))
    return found


def training_data_settings(cfg) -> Optional[list]:
    """What a config's training loader reads, as ``(dataset type, split
    file)`` per dataset it reads from (the split file relative to its data
    root, :func:`~mmseg_dsnet.datasets.split_files.split_name`; without
    one, ``'every image in <image folder>'``, the folder named likewise).
    The data root is left out: data moved to another folder is the same
    data.

    Args:
        cfg (Config | dict): A config, or :func:`config_from_text`'s dict.

    Returns:
        list[tuple] | None: One pair per dataset, or None when the config
        has no literal training loader (nothing to compare).
    """
    from ..datasets.split_files import (leaf_datasets, name_in_root,
                                        split_name)
    loader = cfg.get('train_dataloader')
    dataset = loader.get('dataset') if isinstance(loader, dict) else None
    if not isinstance(dataset, dict):
        return None

    def images_read(leaf):
        split = split_name(leaf)
        if split is not None:
            return split
        # Without a split file a dataset reads every image of its folder.
        prefix = leaf.get('data_prefix')
        folder = prefix.get('img_path') if isinstance(prefix, dict) else None
        folder = name_in_root(folder, leaf.get('data_root')) \
            if isinstance(folder, str) and folder else os.curdir
        return 'every image in ' + (
            'the data root' if folder == os.curdir else folder)

    settings = [(leaf.get('type'), images_read(leaf))
                for leaf in leaf_datasets(dataset)]
    return settings or None


def check_trained_data(
        cfg, config: str, checkpoint: str,
        advice: str = 'publish it with the config it was trained with',
        loaded=None, training_cfg=UNREAD) -> None:
    """Refuse a checkpoint whose training config (``meta['cfg']``, or the
    metafile entry's config of released weights) trained on another
    dataset than ``cfg``'s training loader names: another dataset class
    (ISIC 2017 vs 2018) or another split file (protocol). Published under
    that config, the metafile entry would name it as the weights' training
    config: weights of ISIC 2017 listed as ISIC 2018's. The data root may
    differ (data moved): splits are compared by
    :func:`training_data_settings`, the datasets of a wrapper in any
    order. A checkpoint without a training config
    (bare weights) passes: it records nothing to compare.

    Args:
        cfg (Config): The config the weights are published under.
        config (str): Its file, for the message.
        checkpoint (str): The checkpoint file.
        advice (str): What to do instead, ending the message.
        loaded (dict, optional): ``checkpoint`` loaded already; it is read
            from the file when None.
        training_cfg (dict, optional): The checkpoint's training config
            read already (:func:`training_config_in`; None when it has
            none); read from ``loaded`` or the file when not given.

    Raises:
        UserError: Naming both datasets.
    """
    training_cfg = _given_or_read(checkpoint, loaded, training_cfg)
    if training_cfg is None:
        return
    trained = training_data_settings(training_cfg)
    given = training_data_settings(cfg)
    if trained is None or given is None:
        return

    def in_any_order(settings):
        # Concatenated in another order, the datasets hold the same images.
        return sorted(settings, key=lambda pair: tuple(map(str, pair)))

    if in_any_order(trained) == in_any_order(given):
        return

    def named(settings):
        return ' + '.join(f'{kind} ({images})' for kind, images in settings)

    raise UserError(
        f'checkpoint {checkpoint} was trained on {named(trained)} '
        f'(its training config, '
        f'{training_config_source(checkpoint, loaded)}), '
        f'but config {config} trains on {named(given)}; {advice}')


class UnfinishedRunError(UserError):
    """A checkpoint saved before its run ended, neither the run's best nor
    its last, given to be published without ``allow_unfinished``."""


def _is_best_checkpoint(loaded, checkpoint: str) -> bool:
    """Whether ``checkpoint`` is a run's best checkpoint: named so by
    mmengine's ``CheckpointHook`` and ``fast_train.py``
    (``best_<metric>_epoch_<N>.pth``), or the file its message hub records
    as ``best_ckpt`` (mmengine records it before saving it)."""
    name = osp.basename(checkpoint)
    if name.startswith('best_'):
        return True
    hub = loaded.get('message_hub') if isinstance(loaded, dict) else None
    info = hub.get('runtime_info') if isinstance(hub, dict) else None
    return isinstance(info, dict) and any(
        key.startswith('best_ckpt') and isinstance(value, str)
        and osp.basename(value) == name for key, value in info.items())


def training_progress(loaded, checkpoint: str,
                      training_cfg=UNREAD) -> Optional[dict]:
    """How far its run had trained when a checkpoint was saved: the
    ``meta`` epoch and iteration mmengine's Runner and ``fast_train.py``
    write, the run's planned length from the ``train_cfg`` of its training
    config (``meta['cfg']``), and which checkpoint of the run it is.

    Args:
        loaded (dict): The loaded checkpoint.
        checkpoint (str): Its file (a best checkpoint is known by name).
        training_cfg (dict, optional): Its training config read already
            (:func:`training_config_in`; None when it has none); read from
            ``loaded``'s ``meta['cfg']`` when not given.

    Returns:
        dict | None: ``epoch`` and ``iter`` (those recorded),
        ``max_epochs`` or ``max_iters`` (when the training config is
        there), ``early_stopping`` (True when the config stops early, so a
        run may end before its planned length) and ``checkpoint``:
        ``'best'``, ``'last'`` (saved at the planned end), ``'unfinished'``
        (saved before it) or ``'unknown'`` (no planned length). Plain
        strings, integers and bools. None when neither epoch nor iteration
        is recorded (released or bare weights). A file that records
        ``meta['training_progress']`` (one published or recalibrated from
        a checkpoint) gives that record.
    """
    from ..compat import checkpoint_meta
    meta = checkpoint_meta(loaded)
    # A file made from a checkpoint (published, recalibrated) keeps the
    # record of the checkpoint it was made from, best or last by its name.
    if isinstance(meta.get('training_progress'), dict):
        return dict(meta['training_progress'])
    progress = {key: meta[key] for key in ('epoch', 'iter')
                if isinstance(meta.get(key), int)
                and not isinstance(meta.get(key), bool)}
    if not progress:
        return None
    if training_cfg is UNREAD:
        training_cfg = training_config_in(loaded)
    training_cfg = training_cfg or {}
    train_cfg = training_cfg.get('train_cfg')
    train_cfg = train_cfg if isinstance(train_cfg, dict) else {}
    by_epoch = 'Iter' not in str(train_cfg.get('type', '')) and \
        train_cfg.get('by_epoch', True) is not False
    unit, key = ('epoch', 'max_epochs') if by_epoch else ('iter',
                                                          'max_iters')
    planned = train_cfg.get(key)
    if isinstance(planned, int) and not isinstance(planned, bool):
        progress[key] = planned
    hooks = training_cfg.get('custom_hooks')
    if isinstance(hooks, (list, tuple)) and any(
            isinstance(hook, dict) and 'EarlyStopping' in str(
                hook.get('type')) for hook in hooks):
        progress['early_stopping'] = True
    if _is_best_checkpoint(loaded, checkpoint):
        progress['checkpoint'] = 'best'
    elif key not in progress or unit not in progress:
        progress['checkpoint'] = 'unknown'
    else:
        progress['checkpoint'] = 'last' if progress[unit] >= planned \
            else 'unfinished'
    return progress


def progress_text(progress: Optional[dict], checkpoint: str) -> str:
    """:func:`training_progress` in words, for the publish summary, e.g.
    ``epoch 5 of 100 (a checkpoint saved before the training ended)``.

    Args:
        progress (dict | None): :func:`training_progress`'s result.
        checkpoint (str): The checkpoint file, for the message.
    """
    if progress is None:
        return (f'not recorded ({checkpoint} holds no epoch or iteration in '
                'its meta)')
    if 'max_epochs' in progress or ('max_iters' not in progress
                                    and 'epoch' in progress):
        unit, key = 'epoch', 'max_epochs'
    else:
        unit, key = 'iteration', 'max_iters'
    done = progress.get('epoch' if unit == 'epoch' else 'iter')
    text = f'{unit} {done}'
    if key in progress:
        text += (' of at most ' if progress.get('early_stopping')
                 else ' of ') + str(progress[key])
    # An iteration-based run's epoch says nothing.
    if unit == 'epoch' and 'iter' in progress:
        text += f', iteration {progress["iter"]}'
    why = dict(
        best="the run's best checkpoint",
        last="the run's last checkpoint",
        unfinished='a checkpoint saved before the training ended',
        unknown=f"{checkpoint} does not record the run's planned length")[
            progress['checkpoint']]
    if progress['checkpoint'] == 'unfinished' and \
            progress.get('early_stopping'):
        why = ('its config stops early, so the run may have ended here or '
               'later')
    return f'{text} ({why})'


def check_finished(progress: Optional[dict], checkpoint: str) -> None:
    """Refuse a checkpoint saved before its run ended that is neither the
    run's best nor its last (``epoch_5.pth`` of a 100-epoch run): its
    weights are not the run's result, and published by mistake they would
    be released as if they were. A run whose config stops early, or a
    checkpoint that does not record its run's length, passes.

    Args:
        progress (dict | None): :func:`training_progress`'s result.
        checkpoint (str): The checkpoint file, for the message.

    Raises:
        UnfinishedRunError: Naming the epoch (or iteration) of how many.
    """
    if progress is None or progress['checkpoint'] != 'unfinished' or \
            progress.get('early_stopping'):
        return
    raise UnfinishedRunError(
        f'checkpoint {checkpoint} holds '
        f'{progress_text(progress, checkpoint)}: it is not the run\'s best '
        "checkpoint (best_*.pth) either, so its weights are not the run's "
        "result; publish the run's last or best checkpoint, or pass "
        '--allow-unfinished to publish these weights (the file records '
        'their epoch)')


def publish_weights(config: str, checkpoint: str, out_file: str,
                    overwrite: bool = True,
                    allow_unfinished: bool = False,
                    keep_training_config: bool = True) -> str:
    """Write the weights of a training checkpoint as a weights-only
    checkpoint (``state_dict`` and, in ``meta``, the class names and
    palette, the training config ``cfg`` where the checkpoint has one
    (:func:`training_config_text`), ``batch_norm_recalibration`` where
    the checkpoint's statistics were recomputed after training, and
    ``training_progress`` (:func:`training_progress`: the epoch and
    iteration it was saved at, of how many, best or last); no
    optimizer, no message hub, no pickled objects), the form that ships
    under ``checkpoints/``.

    The checkpoint is loaded once and loaded strictly into the config's
    model, so a file that does not belong to the config is refused instead
    of being published; so is one whose training config (``meta['cfg']``,
    read once for every check) sets
    another input size (:func:`check_trained_input_size`), builds another
    network (:func:`check_trained_model`) or trains on another dataset or
    split (:func:`check_trained_data`).

    Args:
        config (str): The config the weights belong to.
        checkpoint (str): A checkpoint written by training.
        out_file (str): Where to write the state dict (atomically).
        overwrite (bool): Replace an existing ``out_file``; when False, a
            file another process wrote there meanwhile raises
            :class:`FileExistsError` instead of being replaced.
        allow_unfinished (bool): Publish a checkpoint saved before its
            run ended that is neither its best nor its last
            (:func:`check_finished`); refused otherwise.
        keep_training_config (bool): Write the training config into the
            file's ``meta['cfg']``. It is checked against ``config``
            either way; without it, the tools that load the file check it
            against the config of its ``configs/dsnet/metafile.yaml``
            entry (found by SHA-256). A release leaves it out: it names
            the folders of the machine that trained. Default: True.

    Returns:
        str: Hex SHA-256 of the written file (for the metafile's
        ``SHA256``).
    """
    import io

    import torch

    from ..compat import checkpoint_meta, safe_torch_load
    from ..deploy.deployable import build_segmentor
    from ..engine.checkpoint_match import load_checkpoint_strictly
    from ..engine.preflight import load_config
    from ..models.utils.strict_loading import carry_training_settings
    from ..utils.fileio import atomic_write
    cfg = load_config(config)
    # One load and one parse serve every check below.
    loaded = safe_torch_load(checkpoint, map_location='cpu')
    cfg_text = training_config_text(loaded, checkpoint)
    training_cfg = None if cfg_text is None else config_from_text(cfg_text)
    # A checkpoint saved midway through a run holds weights that are not
    # the run's result; the published file records which epoch it holds.
    progress = training_progress(loaded, checkpoint, training_cfg)
    if not allow_unfinished:
        check_finished(progress, checkpoint)
    checked = dict(loaded=loaded, training_cfg=training_cfg)
    # Weights trained at another input size or normalisation load strictly
    # and would be released to run on pixels they were not trained on.
    check_trained_input_size(cfg, config, checkpoint, **checked)
    # A network setting without weights (a dilation) loads strictly too.
    check_trained_model(cfg, config, checkpoint, **checked)
    # Weights of another dataset or split would be listed under this
    # config's name in the metafile.
    check_trained_data(cfg, config, checkpoint, **checked)
    model = build_segmentor(cfg, None, reparameterize=False)
    # The modules compare their settings with the training config's as
    # they load, as they do when mmengine's loader reads the file.
    loaded = carry_training_settings(loaded, checkpoint, training_cfg or {})
    load_checkpoint_strictly(model, checkpoint, config, hint=None,
                             loaded=loaded)
    state = {
        name: tensor.detach().cpu().clone()
        for name, tensor in model.state_dict().items()
    }
    buffer = io.BytesIO()
    meta = release_meta(model.cfg)
    # BatchNorm statistics recomputed after training
    # (recalibrate_batch_norm.py) make another model than the training
    # left: the record keeps its test figures apart from the training's,
    # and names the images the statistics come from.
    recalibration = checkpoint_meta(loaded).get('batch_norm_recalibration')
    if recalibration:
        meta['batch_norm_recalibration'] = recalibration
    # The training config travels with the weights, so the tools that
    # load them check network, input size and training split against it.
    if cfg_text is not None and keep_training_config:
        meta['cfg'] = cfg_text
    if progress is not None:
        meta['training_progress'] = progress
    torch.save(dict(state_dict=state, meta=meta), buffer)
    data = buffer.getvalue()
    atomic_write(data, out_file, overwrite)
    # Of what this run wrote: the file may be replaced by now.
    return hashlib.sha256(data).hexdigest()
