"""Export a segmentor to ONNX and prove the file computes the same thing.

The exported graph is :class:`~.deployable.DeployableSegmentor` of the
re-parameterised model (DESDConv branches folded, BatchNorm folded):

* input ``image``: float32 ``(N, 3, H, W)``, **RGB**, pixel values 0..255
  (mean/std normalisation and channel order are inside the graph);
* output ``logits``: float32 ``(N, C, H, W)`` at the input size
  (``C = 1``: lesion logit, lesion where ``sigmoid > threshold``;
  ``C = 2``: background/lesion logits, argmax);
* batch, height and width are dynamic. DSNet, EGE-UNet and MALUNet accept
  any size; multiples of 32 (DSNet's deepest stride) keep every level an
  exact 2x of the next and are what we check. mmseg's UNet and SegFormer
  trace their sizes as constants: export them with ``dynamic_size=False``
  (only the batch is dynamic); the check at a second size catches this.
* opset 17 by default (the TorchScript exporter, ``dynamo=False``: it
  keeps dynamic sizes without guards and needs no ``torch.export``
  tracing of mmseg's code); onnxruntime >= 1.12 runs it;
* exact CPU rewrites (:mod:`.graph_rewrites`) are applied by default.

The check compares onnxruntime's logits with the model *as trained*
(eval mode, not re-parameterised), so it covers the re-parameterisation and
the export at once; a deploy config's model (``deploy=True``) is compared as
it is.
"""
import contextlib
import copy
import math
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..engine.preflight import check_new_output_file, load_config
from ..models.utils import reparameterize_model
from ..utils.cli import check_at_least
from ..utils.config_diff import UNREAD
from ..utils.errors import UserError
from ..utils.fileio import (atomic_write, refuse_existing,
                            remove_stale_partials, sha256_of)
from ..utils.memory import check_forward_memory, reporting_out_of_memory
from ..utils import messages
from ..utils.messages import counted
from .deployable import (META_INPUT_FORMAT, META_INPUT_SIZE, META_THRESHOLD,
                         META_FLIP_TTA, META_PRECISION, META_WEIGHTS,
                         RANDOM_WEIGHTS,
                         DeployableSegmentor,
                         build_segmentor,
                         check_runs_as_tested, input_format, input_size_of,
                         refusing_input_size,
                         threshold_of)
from .graph_rewrites import optimize_for_cpu
from .int8 import compare_int8, int8_rejection, quantize_int8
from .ort_session import ort_session
from .parity import (DEFAULT_ATOL, DEFAULT_RTOL, NOISE_FACTOR, check_parity,
                     config_samples, convolutions_not_seen,
                     explicit_check_pairs, load_batches, random_inputs)

DEFAULT_OPSET = 17
# Per-channel int8 weights (DequantizeLinear with an axis) need opset 13.
INT8_MIN_OPSET = 13
# Least IoU (%) of the int8 model's lesion masks with the float model's,
# pooled over the check images and mean per image. The shipped recipe on
# the released DSNet: 99.5 pooled and 99.5 mean per image on 128 ISIC 2017
# test images, worst image 97.1 (16 calibration images: 99.4, 99.4, 96.9;
# DSNet v1: 99.4 % pixel agreement); a collapsed int8 model measured far
# lower (35.6 % on random noise, 0 % at opset 18 at 64 px).
INT8_MIN_MASK_IOU = 90.0


def check_opset(opset: int) -> None:
    """Refuse an opset torch's exporter does not write at all, before the
    model is built (torch failed only inside the export, with a
    ``RuntimeError`` traceback after its dump of the traced graph).

    Args:
        opset (int): The ONNX opset asked for.

    Raises:
        UserError: ``opset`` is below 1 or above the highest opset this
            torch writes.
    """
    import torch
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET as highest
    except ImportError:  # another torch: its exporter will say
        highest = None
    if opset < 1 or (highest is not None and opset > highest):
        raise UserError(
            f'--opset {opset}: torch {torch.__version__} writes ONNX opsets '
            f'1 to {highest or "?"} (the default is {DEFAULT_OPSET})')


@contextlib.contextmanager
def _export_errors_named(opset: int):
    """Report an operator the exporter cannot write at ``opset`` as a
    :class:`UserError` (an opset choice the user can change)."""
    from torch.onnx.errors import OnnxExporterError
    try:
        yield
    except OnnxExporterError as err:
        raise UserError(f'ONNX export at opset {opset} failed: {err} '
                        f'(the default is {DEFAULT_OPSET})') from err
    except RuntimeError as err:
        # An opset outside the exporter's range (check_opset passed it).
        if 'Unsupported onnx_opset_version' not in str(err):
            raise
        raise UserError(f'ONNX export at opset {opset} failed: {err} '
                        f'(the default is {DEFAULT_OPSET})') from err


def export_network(network,
                   out_file: str,
                   shape: Tuple[int, int] = (256, 256),
                   opset: int = DEFAULT_OPSET,
                   overwrite: bool = False,
                   metadata: Optional[Dict[str, str]] = None,
                   optimize: bool = True,
                   dynamic_size: bool = True) -> Dict[str, int]:
    """Export a :class:`DeployableSegmentor` with dynamic batch (and size,
    unless ``dynamic_size`` is False).

    The file is written to a temporary name next to ``out_file``, checked
    with ``onnx.checker`` and moved into place
    (:func:`~mmseg_dsnet.utils.fileio.atomic_write`): a reader never sees a
    half-written model.

    Args:
        network (nn.Module): RGB 0..255 in, logits out.
        out_file (str): The ONNX file.
        shape (tuple[int, int]): ``(H, W)`` of the tracing input.
        opset (int): ONNX opset. Default: 17.
        overwrite (bool): Replace an existing ``out_file``.
        metadata (dict[str, str], optional): Stored in ``metadata_props``.
        optimize (bool): Apply the exact CPU rewrites of
            :func:`~.graph_rewrites.optimize_for_cpu`. Default: True.
        dynamic_size (bool): Dynamic height and width (else only the batch
            is dynamic; for models whose trace fixes the size, e.g. mmseg's
            UNet and SegFormer). Default: True.

    Returns:
        dict[str, int]: The rewrites applied, by kind.

    Raises:
        FileExistsError: ``out_file`` exists and ``overwrite`` is False.
    """
    import onnx
    import torch

    rewrites = {}

    def write(temp):
        dummy = torch.rand(1, 3, *shape) * 255
        axes = {0: 'batch', 2: 'height', 3: 'width'} if dynamic_size \
            else {0: 'batch'}
        with torch.no_grad(), _export_errors_named(opset):
            torch.onnx.export(
                network.eval(), (dummy, ),
                temp,
                dynamo=False,
                opset_version=opset,
                input_names=['image'],
                output_names=['logits'],
                dynamic_axes={'image': axes, 'logits': axes},
                do_constant_folding=True)
        proto = onnx.load(temp)
        if optimize:
            rewrites.update(optimize_for_cpu(proto, (1, 3, *shape)))
        for key, value in (metadata or {}).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, str(value)
        # A fixed-size graph says its size: "dynamic height and width"
        # would tell a reader it takes any.
        proto.doc_string = input_format(dynamic_size, shape)
        onnx.checker.check_model(proto)
        onnx.save(proto, temp)

    atomic_write(write, out_file, overwrite)
    return rewrites

def weights_record(checkpoint: Optional[str]) -> str:
    """``META_WEIGHTS`` of a model exported from ``checkpoint``: its file
    name and SHA-256, or :data:`~.deployable.RANDOM_WEIGHTS` for None."""
    if not checkpoint:
        return RANDOM_WEIGHTS
    checkpoint = os.fspath(checkpoint)
    if not osp.isfile(checkpoint):  # a URL mmengine loaded
        return checkpoint
    return f'{osp.basename(checkpoint)} sha256 {sha256_of(checkpoint)}'


def flips_are_its_tta(cfg) -> bool:
    """Whether ``tools/test.py --tta`` runs the config as ``infer.py
    --tta`` does (the image and its two flips), i.e. the config sets no
    ``tta_pipeline`` of other views
    (:func:`~mmseg_dsnet.datasets.flip_tta_pipeline.check_flip_tta`)."""
    from ..datasets.flip_tta_pipeline import check_flip_tta
    try:
        check_flip_tta(cfg, 'the config')
    except UserError:
        return False
    return True


def export_onnx(config,
                checkpoint: Optional[str],
                out_file: str,
                opset: int = DEFAULT_OPSET,
                shape: Tuple[int, int] = (256, 256),
                reparameterize: bool = True,
                overwrite: bool = False,
                optimize: bool = True,
                dynamic_size: bool = True,
                loaded=None,
                training_cfg=UNREAD):
    """Build, re-parameterise and export a config's model.

    Args:
        loaded (dict, optional): ``checkpoint`` loaded already, with
            ``training_cfg`` its training config (:func:`~mmseg_dsnet.
            engine.checkpoint_match.read_checkpoint_and_training_config`);
            read from the file when not given.

    Returns:
        tuple: ``(reference, deployed, cfg, info)``: the model as trained
        and as exported (both :class:`DeployableSegmentor`), the config
        and a dict describing the file.
    """
    refuse_existing(out_file, overwrite)
    cfg = load_config(config)
    trained = build_segmentor(cfg, checkpoint, reparameterize=False,
                              loaded=loaded, training_cfg=training_cfg)
    # Before any input is made: the parity check's batch of 2 at ``shape``
    # too large for the memory left fails in the allocator or gets the
    # process killed.
    check_forward_memory(trained, shape, images=2)
    reference = DeployableSegmentor.from_segmentor(trained, cfg).eval()
    segmentor = copy.deepcopy(trained)
    if reparameterize:
        segmentor = reparameterize_model(segmentor)
    from ..models.utils import reparameterization_changes
    from .deploy_checkpoint import is_deploy_config
    # What the graph is, not what was asked: a deploy config's model is
    # re-parameterised already (its file said ``reparameterized`` False
    # under ``reparameterize=False``, and its report "as trained").
    from_deploy_config = is_deploy_config(cfg)
    reparameterized = bool(reparameterize) or not reparameterization_changes(
        segmentor)
    deployed = DeployableSegmentor.from_segmentor(segmentor, cfg).eval()
    threshold = threshold_of(trained)
    test_size = input_size_of(cfg)
    metadata = {
        META_INPUT_FORMAT: input_format(dynamic_size, shape),
        # A fixed-size graph must be fed its trace size.
        META_INPUT_SIZE: (f'{test_size[0]},{test_size[1]}' if dynamic_size
                          else f'{shape[0]},{shape[1]}'),
        'mmseg_dsnet.dynamic_size': str(bool(dynamic_size)),
        # Every digit: ':g' kept six, and the onnxruntime backend's masks
        # were cut at another threshold than the config's.
        META_THRESHOLD: repr(float(threshold)),
        'mmseg_dsnet.out_channels': str(trained.decode_head.out_channels),
        'mmseg_dsnet.config': str(getattr(cfg, 'filename', '') or ''),
        'mmseg_dsnet.reparameterized': str(reparameterized),
        # Without a checkpoint the file holds random weights: the record
        # lets infer.py refuse it instead of writing meaningless masks.
        META_WEIGHTS: weights_record(checkpoint),
        META_PRECISION: 'float32',
        # The file has no config: this record tells infer.py --tta whether
        # flips are the views the config's test.py --tta scores.
        META_FLIP_TTA: str(flips_are_its_tta(cfg)),
    }
    check_sizes_see_every_weight(
        (trained, segmentor), shape, dynamic_size, test_size,
        config if isinstance(config, str) else
        messages.config_name(cfg))
    rewrites = export_network(deployed, out_file, shape, opset, overwrite,
                              metadata, optimize, dynamic_size)
    params = dict(
        trained=sum(p.numel() for p in trained.parameters()),
        deployed=sum(p.numel() for p in segmentor.parameters()))
    info = dict(onnx_file=out_file, opset=opset, trace_shape=list(shape),
                bytes=osp.getsize(out_file), params=params,
                threshold=threshold, test_size=list(test_size),
                input=input_format(dynamic_size, shape),
                reparameterized=reparameterized,
                # The PyTorch model the check compares the file with.
                reference=('deploy config' if from_deploy_config else
                           'as trained'),
                cpu_rewrites=rewrites, dynamic_size=dynamic_size)
    return reference, deployed, cfg, info


def export_and_check(config,
                     checkpoint: Optional[str],
                     out_file: str,
                     opset: int = DEFAULT_OPSET,
                     shape: Optional[Tuple[int, int]] = None,
                     reparameterize: bool = True,
                     overwrite: bool = False,
                     int8_file: Optional[str] = None,
                     check_images: Optional[Sequence[str]] = None,
                     num_check_images: int = 64,
                     num_calib_images: int = 32,
                     atol: float = DEFAULT_ATOL,
                     optimize: bool = True,
                     dynamic_size: bool = True,
                     noise_factor: float = NOISE_FACTOR,
                     log: Callable[[str], None] = print,
                     rtol: float = DEFAULT_RTOL,
                     int8_min_mask_iou: float = INT8_MIN_MASK_IOU,
                     progress: bool = False) -> Dict:
    """Export, check parity on random and real images, optionally quantize.

    The model is exported to a hidden temporary file next to ``out_file``
    and moved into place only when the parity check passes: a failed
    export leaves no file (nor an int8 model) that looks usable.

    Args:
        config (str | Config): Model config.
        checkpoint (str, optional): Checkpoint (None: random weights).
        out_file (str): The ONNX file.
        opset (int): ONNX opset. Default: 17.
        shape (tuple[int, int], optional): ``(H, W)`` of tracing and
            checks; default: the size the config runs the model at
            (:func:`~.deployable.input_size_of`). With ``dynamic_size``
            False it must be that size.
        reparameterize (bool): Export the re-parameterised form.
        overwrite (bool): Replace existing output files.
        int8_file (str, optional): Also write a static int8 model here.
        check_images (Sequence[str], optional): Files, folders or globs of
            real images for the checks; default: the config's test set
            when its data exists.
        num_check_images (int): Real images checked (<= 0: all).
        num_calib_images (int): Calibration images for int8 (taken from
            the config's training set, else the check images).
        atol (float): Absolute part of the parity tolerance.
        optimize (bool): Apply the exact onnxruntime CPU rewrites.
        dynamic_size (bool): Dynamic height and width (else batch only).
        noise_factor (float): Accept differences up to this multiple of
            the float32 noise floor when larger (0: no such allowance).
        log (callable): Where progress messages go.
        rtol (float): Part of the parity tolerance relative to the largest
            exact ``|logit|`` (see :func:`parity_tolerance`).
        int8_min_mask_iou (float): Least pooled IoU (%) of the int8
            model's lesion masks with the float model's on the check
            images; below it the int8 model is not written (0: no limit).
        progress (bool): A bar on stderr over the parity check's batches
            (see :func:`check_parity`). Default: False.

    Returns:
        dict: ``export`` (file info), ``parity`` (see
        :func:`check_parity`), ``real_images`` (source), ``int8`` (when
        asked, with its own ``passed``), ``passed`` (the parity check
        and, when asked, the int8 model's), ``written`` (the files this
        run wrote) and ``not_written`` (those it did not: a file there is
        an earlier run's, see ``earlier_file_kept``).
    """
    # A negative tolerance cannot be met.
    check_at_least(('atol', atol, 0), ('rtol', rtol, 0),
                   ('int8_min_mask_iou', int8_min_mask_iou, 0),
                   ('noise_factor', noise_factor, 0))
    check_opset(opset)
    if int8_file and opset < INT8_MIN_OPSET:
        # onnxruntime's quantizer wrote a graph it cannot load itself (the
        # per-channel weights' DequantizeLinear needs an axis), after the
        # fp32 model: the broken file stayed, exit 2.
        raise UserError(
            f'--int8 {int8_file}: int8 models need --opset '
            f'{INT8_MIN_OPSET} or later (per-channel int8 weights), got '
            f'--opset {opset}')
    for path, option in ((out_file, 'OUT'), (int8_file, '--int8')):
        if path:
            # A path through a file failed only when it was written: the
            # int8 model after the export and its check.
            check_new_output_file(path, option, overwrite)
            # A hidden temporary file of an export that was killed.
            for stale in remove_stale_partials(osp.dirname(osp.abspath(path))):
                log(f'Removed {stale}, left by an interrupted export.')
    # Named images are read before the export: a missing or unreadable one
    # is refused, not dropped from the check.
    check_pairs = explicit_check_pairs(check_images, num_check_images) \
        if check_images else None
    cfg = load_config(config)
    # Before any work: whole-image inference is what is exported.
    check_runs_as_tested(cfg)
    shape = check_export_shape(cfg, config, shape, dynamic_size)
    if checkpoint:
        # The file records the config's input size (infer.py resizes to
        # it): weights trained at another size would run at the wrong one.
        from ..apis.released_model import (check_trained_input_size,
                                           check_trained_model)
        check_trained_input_size(
            cfg, messages.config_name(cfg, config), checkpoint,
            advice='export it with the config it was trained with')
        # Weights trained in another network (other dilations) load
        # strictly, and the parity check would compare that network with
        # its own export and pass.
        check_trained_model(
            cfg, messages.config_name(cfg, config), checkpoint,
            advice='export it with the config it was trained with')
    if int8_file and not check_images:
        check_calibration_images(cfg, int8_file)
    checked = {}

    def export_and_check_at(temp):
        checked.update(_export_and_check_at(
            config, checkpoint, out_file, temp, opset, shape, reparameterize,
            check_images, check_pairs, num_check_images, atol, optimize,
            dynamic_size, noise_factor, log, rtol, progress))
        if not checked['result']['passed']:
            raise _CheckFailed

    # Exported to a hidden temporary file, moved into place if it passes.
    try:
        # Out of memory (the estimate of export_onnx passed the size):
        # said in one line, the temporary file removed.
        with reporting_out_of_memory(shape):
            atomic_write(export_and_check_at, out_file, overwrite)
    except _CheckFailed:
        log(f'Not writing {out_file}: the exported model failed the check')
        # The report names the files it is about: under --overwrite an
        # earlier run's model (and int8 model) stays at OUT, and a report
        # of a FAILED export beside it read as that file's.
        return _record_files(checked['result'], [],
                             [p for p in (out_file, int8_file) if p], log)
    result = checked['result']
    if int8_file:
        try:
            with reporting_out_of_memory(shape):
                result['int8'] = _quantize_and_compare(
                    out_file, int8_file, checked, shape, num_calib_images,
                    overwrite, log, int8_min_mask_iou)
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM) or failed while quantizing: the
            # new OUT is in place, and an earlier int8 model stayed
            # beside it.
            _remove_earlier_int8(int8_file, out_file, log)
            raise
        result['passed'] = result['int8']['passed']
        if not result['passed']:
            _remove_earlier_int8(int8_file, out_file, log)
        return _record_files(result, [out_file] + (
            [int8_file] if result['passed'] else []),
            [] if result['passed'] else [int8_file], log)
    return _record_files(result, [out_file], [], log)


def _remove_earlier_int8(int8_file, out_file, log):
    """Remove an earlier run's int8 model: it is not of the model now at
    ``out_file``, and beside it, it passed for its quantized form."""
    if osp.isfile(int8_file):
        os.remove(int8_file)
        log(f'Removed {int8_file}: an earlier int8 model, not of the '
            f'model now at {out_file}')


def _record_files(result, written, not_written, log):
    """Add ``written``, ``not_written`` and ``earlier_file_kept`` (the
    files of ``not_written`` that exist: an earlier run's, not this
    export) to ``result``; say which files were kept."""
    kept = [path for path in not_written if osp.isfile(path)]
    for path in kept:
        log(f'{path} is an earlier file, kept: it is not this export')
    result.update(written=list(written), not_written=list(not_written),
                  earlier_file_kept=kept)
    return result


def check_export_shape(cfg, config, shape: Optional[Tuple[int, int]],
                       dynamic_size: bool) -> Tuple[int, int]:
    """The ``(H, W)`` to trace and check at: ``shape``, else the size the
    config runs the model at.

    A fixed-size file is fed its trace size (``infer.py`` resizes every
    image to the size in its metadata): traced at another size than the
    config's, the model ran at a size it was neither trained nor tested
    at, after a PASSED check (the released DSNet at 128 px instead of 256:
    lesion IoU 85.5 -> 75.1 on 60 ISIC 2017 test images), exit 0.

    Args:
        cfg (Config): The exported model's config.
        config (str | Config): It as given, for the message.
        shape (tuple[int, int], optional): The ``--shape`` asked for.
        dynamic_size (bool): Whether height and width stay dynamic.

    Raises:
        UserError: A fixed-size export at another size than the config's.
    """
    size = tuple(input_size_of(cfg))
    if shape is None:
        return size
    if not dynamic_size and tuple(shape) != size:
        name = config if isinstance(config, str) else getattr(
            cfg, 'filename', None) or 'the config'
        raise UserError(
            f'--static-size --shape {shape[0]} {shape[1]}: the file would '
            f'take {shape[0]}x{shape[1]} images only (infer.py resizes to '
            f'that size), but {name} runs the model at {size[0]}x{size[1]} '
            f'(its test pipeline); leave out --shape or give --shape '
            f'{size[0]} {size[1]}')
    return tuple(shape)


def parity_sizes(shape: Tuple[int, int], dynamic_size: bool,
                 runs_at: Tuple[int, int]) -> List[Tuple[int, int]]:
    """The ``(H, W)`` sizes the parity check runs the model at: those of
    :func:`~.parity.random_inputs` (real images are read at ``shape``)
    and, with dynamic sizes, ``runs_at``, the config's size."""
    sizes = [tuple(batch.shape[2:]) for _, batch in
             random_inputs(shape, dynamic_size=dynamic_size)]
    if dynamic_size:
        sizes.append(tuple(runs_at))
    return list(dict.fromkeys(sizes))


def check_sizes_see_every_weight(models, shape: Tuple[int, int],
                                 dynamic_size: bool,
                                 runs_at: Tuple[int, int],
                                 config_name: str = 'the config') -> None:
    """Refuse a check whose inputs are all too small for some weight: a
    kernel weight that meets only the zero padding at every size the
    parity check runs (:func:`parity_sizes`), but meets pixels of a larger
    input, could be wrong in the file (or in the fold) and the check would
    still pass.

    Args:
        models (Sequence[nn.Module]): The segmentors compared (as trained
            and as exported), each run once per size in tensor mode.
        shape (tuple[int, int]): The ``--shape`` of the check.
        dynamic_size (bool): Whether height and width stay dynamic.
        runs_at (tuple[int, int]): The config's input size.
        config_name (str): The config, as a message names it.

    Raises:
        UserError: Naming the shape and the convolutions, or a shape the
            model cannot run at.
    """
    import torch
    sizes = parity_sizes(shape, dynamic_size, runs_at)
    unseen = set()
    for model in models:
        common, training = None, model.training
        # In eval mode: a run in training mode would move BatchNorm's
        # running statistics of the model compared.
        model.eval()
        try:
            for size in sizes:
                with refusing_input_size(shape, config_name, runs_at,
                                         running=size):
                    names = set(convolutions_not_seen(
                        model, torch.zeros(1, 3, *size)))
                # Seen at one size is seen by the check.
                common = names if common is None else common & names
                if not common:
                    break
            if common:
                # Only what a larger input would show: a weight that meets
                # only padding at any size changes no output.
                larger = tuple(max(2 * max(size[axis] for size in sizes),
                                   256) for axis in (0, 1))
                common -= set(convolutions_not_seen(
                    model, torch.zeros(1, 3, *larger)))
        finally:
            model.train(training)
        unseen |= common or set()
    if unseen:
        from ..utils.messages import first_few
        checked = ', '.join(f'{h}x{w}' for h, w in sizes)
        raise UserError(
            f'--shape {shape[0]} {shape[1]} is too small for the parity '
            f'check: at every size it runs ({checked}) weights of '
            f'{counted(len(unseen), "convolution")} '
            f'({first_few(sorted(unseen), 3)})'
            ' meet only the zero padding, so a wrong value of them in the '
            'file would pass; give a larger --shape (with --static-size: '
            'a config of a larger input size)')


class _CheckFailed(Exception):
    """The exported model failed the parity check (nothing is written)."""


def _export_and_check_at(config, checkpoint, out_file, temp, opset, shape,
                         reparameterize, check_images, check_pairs,
                         num_check_images, atol, optimize, dynamic_size,
                         noise_factor, log, rtol, progress=False) -> Dict:
    """Export to ``temp`` (to become ``out_file``) and check parity.

    Returns:
        dict: ``result`` (as :func:`export_and_check` returns it) and what
        the int8 step reuses: ``session``, ``real``, ``cfg``, ``source``.
    """
    reference, deployed, cfg, info = export_onnx(
        config, checkpoint, temp, opset, shape, reparameterize, True,
        optimize, dynamic_size)
    info['onnx_file'] = out_file
    # Not yet at out_file: it is moved there only if the checks pass.
    params = info['params']
    # Re-parameterised here only from a training config, and only when
    # asked: otherwise "after re-parameterisation ... as trained" named a
    # fold that did not happen.
    folded = reparameterize and info['reference'] == 'as trained'
    if info['reference'] == 'deploy config':
        params_text = (f'{params["deployed"]} parameters, the deploy '
                       'config\'s model: re-parameterised already')
    elif folded:
        params_text = (f'{params["deployed"]} parameters after '
                       f're-parameterisation, {params["trained"]} as trained')
    else:
        params_text = (f'{params["deployed"]} parameters, not '
                       're-parameterised')
    log(f'Exported the graph for {out_file}, written there only if the '
        f'checks below pass (opset {opset}, {info["bytes"] / 1e6:.2f} MB, '
        f'{params_text})')
    threshold = info['threshold']
    if check_pairs:
        pairs = check_pairs
        source = (f'{counted(len(pairs), "file")} from '
                  f'{", ".join(check_images)}')
    else:
        pairs, source = config_samples(cfg, 'test', num_check_images)
    real = load_batches(pairs, shape)
    log(f'Real images: {source}' + ('' if real else ' (none usable)'))
    session = ort_session(temp)
    cases = random_inputs(shape, dynamic_size=dynamic_size)
    runs_at = tuple(info['test_size'])
    if dynamic_size and runs_at not in {b.shape[2:] for _, b in cases}:
        # The file runs at the config's size (its mmseg_dsnet.input_size):
        # checked at --shape and a second size only, it would pass
        # without one run at the size infer.py feeds it.
        rng = np.random.default_rng(1)
        cases.append((f'random 1x3x{runs_at[0]}x{runs_at[1]}',
                      rng.uniform(0, 255, (1, 3, *runs_at)).astype(
                          np.float32)))
    cases += [(label, batch) for label, batch, _ in real]
    sizes = list(dict.fromkeys(f'{b.shape[2]}x{b.shape[3]}'
                               for _, b in cases))
    parity = check_parity(reference, deployed, session, cases, threshold,
                          atol, noise_factor, rtol, progress=progress)
    parity['real_images'] = sum(b.shape[0] for _, b, _ in real)
    result = dict(export=info, parity=parity, real_images=source)
    strict = ('within' if parity['within_atol'] else 'ABOVE')
    reference = ('the deploy config\'s model' if info['reference'] ==
                 'deploy config' else 'as trained')
    fold = (f're-parameterised vs trained '
            f'{parity["max_abs_diff_reparameterized_vs_trained"]:.2e}; '
            if folded else '')
    log(f'Parity (onnxruntime vs PyTorch {reference}, '
        f'{counted(len(cases), "batch", "batches")} '
        f'at {", ".join(sizes)}, '
        f'{counted(parity["real_images"], "real image")}): max '
        f'|logit diff| '
        f'{parity["max_abs_diff"]:.2e}, {strict} {atol:.0e}; '
        f'largest exact |logit| {parity["logit_scale"]:.3g}; '
        f'PyTorch float32 vs float64 (noise floor) '
        f'{parity["float32_noise"]:.2e}; tolerance applied '
        f'{parity["tolerance"]:.2e} (max({atol:g} + {rtol:g} * |logit|, '
        f'{noise_factor:g} * noise)); {fold}mask '
        f'pixels that differ: {parity["mask_mismatch_pixels"]} '
        f'({parity["mask_mismatch_borderline"]} within the tolerance of the '
        f'threshold) -> {"PASS" if parity["passed"] else "FAIL"}')
    for error in parity['errors']:
        log(f'FAILED {error}')
    result['passed'] = parity['passed']
    return dict(result=result, session=session, real=real, cfg=cfg,
                source=source, threshold=threshold)


def check_calibration_images(cfg, int8_file):
    """Refuse an int8 model with no image to calibrate it on, or none to
    measure it on.

    Calibration takes the config's training images, else the check images
    (named ones, else the config's test images). With neither, the int8
    model was calibrated on random noise and written beside a PASSED fp32
    model (exit 0), though its masks differ from fp32's far more. Its masks
    are compared with fp32's on the check images; without the config's
    test images that comparison ran on random noise, and its figures
    (the released DSNet: 97.5 % pixel agreement, 35.6 % mask IoU) were
    printed as the int8 model's, exit 0.

    Args:
        cfg (Config): The exported model's config.
        int8_file (str): The int8 model asked for, for the message.

    Raises:
        UserError: Neither the training nor the test images are there, or
            the test images are not.
    """
    train, train_why = config_samples(cfg, 'train', 1)
    test, test_why = config_samples(cfg, 'test', 1)
    if not train and not test:
        raise UserError(
            f'--int8 {int8_file}: no images to calibrate it on ({train_why}; '
            f'{test_why}); give photos with --check-images, or convert the '
            'data the config names')
    if not test:
        raise UserError(
            f'--int8 {int8_file}: no images to measure it on ({test_why}): '
            'its masks would be compared with the float model\'s on random '
            'noise, which says nothing of photos; give photos with '
            '--check-images, or convert the data the config names')


class _Int8Failed(Exception):
    """The int8 model's masks are too far from fp32's (not written)."""


def _quantize_and_compare(out_file, int8_file, checked, shape,
                          num_calib_images, overwrite, log,
                          min_mask_iou=INT8_MIN_MASK_IOU) -> Dict:
    """Quantize the checked ``out_file`` to ``int8_file`` and compare the
    two models' masks (see :func:`~.int8.compare_int8`); written only when
    the pooled mask IoU is at least ``min_mask_iou`` (%) and every logit
    finite."""
    cfg, real, source = checked['cfg'], checked['real'], checked['source']
    if not real:
        # Figures on random noise say nothing of photos (the config's test
        # images were there, but none could be read).
        raise UserError(
            f'--int8 {int8_file}: none of the check images could be read '
            f'({source}), so the int8 model cannot be measured; not writing '
            f'it ({out_file} passed its check and is kept)')
    calib_pairs, calib_source = config_samples(cfg, 'train', num_calib_images)
    calibration = [b for _, b, _ in load_batches(calib_pairs, shape)]
    if not calibration:
        # `real` is not empty (refused above).
        calibration = [b for _, b, _ in real][:max(
            1, math.ceil(num_calib_images / 4))]
        calib_source = f'the check images ({source})'
    # Fewer than asked (a small set, unreadable files, three check images
    # for 32): the label named the set alone, as if all were used.
    calib_count = sum(b.shape[0] for b in calibration)
    if calib_count < num_calib_images:
        calib_source += (f': {counted(calib_count, "image")}, '
                         f'{num_calib_images} '
                         'asked')
    int8, rejected = {}, [None]

    def quantize_and_measure(temp):
        # Measured before it is moved into place: a model onnxruntime
        # cannot run (or that fails while measured) is not left behind.
        quantize_int8(out_file, temp, calibration, overwrite=True)
        int8.update(compare_int8(checked['session'], ort_session(temp), real,
                                 checked['threshold']))
        int8['bytes'] = osp.getsize(temp)
        # An int8 model whose masks collapse is rejected, not written
        # beside a PASSED float32 check.
        rejected.append(int8_rejection(int8, min_mask_iou))
        int8['passed'] = rejected[-1] is None
        if not int8['passed']:
            raise _Int8Failed

    try:
        atomic_write(quantize_and_measure, int8_file, overwrite)
    except _Int8Failed:
        pass
    # --shape sets the size of the checks; the file runs at the config's
    # (its mmseg_dsnet.input_size): "the model's input size" named that
    # one for figures measured at the other.
    runs_at = tuple(checked['result']['export']['test_size'])
    int8.update(int8_file=int8_file, calibration=calib_source,
                calibration_images=calib_count,
                evaluated_on=source, min_mask_iou=min_mask_iou,
                measured_at=list(shape))
    size = f'{shape[0]}x{shape[1]}' + (
        '' if tuple(shape) == runs_at else
        f' (--shape; the model runs at {runs_at[0]}x{runs_at[1]})')
    text = (f'int8 model {int8_file} ({int8["bytes"] / 1e6:.2f} MB, '
            f'calibrated on {calib_source}), on {source} at {size}: mask '
            f'pixel agreement with fp32 {int8["pixel_agreement"]:.2f} %, mask IoU '
            f'fp32 vs int8 {int8["mask_iou_fp32_vs_int8"]:.2f} % pooled, '
            f'{int8["mean_image_mask_iou"]:.2f} % mean per image (worst '
            f'{int8["worst_image_mask_iou"]:.2f} %)')
    if 'iou_drop' in int8:
        # Scored on the model-size masks, not resized to each image as
        # tools/test.py scores: a drop to compare, not a test figure.
        text += (f'; lesion IoU vs ground truth at {shape[0]}x{shape[1]}, '
                 f'fp32 {int8["iou_fp32"]:.2f} -> int8 '
                 f'{int8["iou_int8"]:.2f} (drop {int8["iou_drop"]:.2f} '
                 'points; tools/test.py scores at each image\'s size)')
    log(text)
    if not int8['passed']:
        log(f'FAILED int8: {rejected[-1]}; {int8_file} not written')
    return int8
