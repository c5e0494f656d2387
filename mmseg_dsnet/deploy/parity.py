"""Does an exported model compute what the trained one does?

:func:`check_parity` runs onnxruntime, the deployed (re-parameterised)
PyTorch model and the model as trained in float32 and float64 on random and
real images, and judges the logit difference against a tolerance set by the
float64 reference alone (:func:`parity_tolerance`), so a wrong export cannot
widen its own tolerance.
"""
import copy
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..image_io import ImageReadError, read_image, read_unchanged
from ..models.utils.lesion_logit import decision_map
from ..utils.messages import counted
from .deployable import to_model_input
from .ort_session import run_ort

DEFAULT_ATOL = 1e-4
# float32 rounding grows with the size of the logits (a trained network's
# reach 10-50): the tolerance is ``atol + rtol * max|logit|``. 3e-4 (0.03 %
# of the largest logit) is twice the largest share seen on the models of
# the repository, trained or not (EGE-UNet trained 30 epochs: 6.4e-4 at
# logits up to 10.5, onnxruntime's fused kernels round differently), and
# far below a real export fault (a wrong weight, a missing op or another
# model move logits by 1e-2 or more).
DEFAULT_RTOL = 3e-4
# Deeper networks may amplify rounding further: differences up to this
# multiple of the measured float32 noise floor (PyTorch float32 vs float64
# on the same inputs) are accepted too, when larger.
NOISE_FACTOR = 4.0


def within(diff: float, tolerance: float) -> bool:
    """Whether a difference passes a tolerance. A non-finite one never
    does: ``diff > tolerance`` is False for a NaN (NaN compares False with
    everything), and an inf passes an inf tolerance.

    Args:
        diff (float): The measured difference.
        tolerance (float): The largest difference allowed.
    """
    return bool(np.isfinite(diff) and diff <= tolerance)


def convolutions_not_seen(model, inputs) -> List[str]:
    """The convolutions of ``model`` some weight of whose kernel meets no
    pixel of its input in any of its calls when ``model`` runs on
    ``inputs`` (only the zero padding, given as numbers or as ``'same'``
    or ``'valid'``; reflect, replicate or circular padding copies pixels,
    so every tap of such a convolution reads some): on an input that
    small, a parity check cannot see a wrong value of that weight (a
    re-parameterisation that broke every off-centre tap of a 3x3 kernel
    differed by 7e-16 on a 2x2 input).

    Args:
        model (nn.Module): The model, run once in tensor mode, no grad.
        inputs (torch.Tensor): Its input, ``N, C, H, W``.

    Returns:
        list[str]: The names of those convolutions, in the order they ran.
    """
    import torch
    from torch import nn
    # The (row, column) taps of each convolution that met a pixel, over all
    # its calls: a convolution shared by several feature maps (MALUNet's
    # spatial bridge) sees on the large ones what the small ones miss.
    seen = {}

    def hook(name, conv, args, out):
        kernel = conv.kernel_size
        if conv.padding_mode != 'zeros':
            # Reflect, replicate or circular padding copies pixels of the
            # input: every tap reads real values.
            seen.setdefault(name, set()).update(
                (row, col) for row in range(kernel[0])
                for col in range(kernel[1]))
            return
        taps = []
        for axis in (0, 1):
            size, outs = args[0].shape[2 + axis], out.shape[2 + axis]
            stride, dilation = conv.stride[axis], conv.dilation[axis]
            pad = conv.padding
            if pad == 'valid':
                pad = 0
            elif pad == 'same':
                # torch pads dilation * (k - 1) in all, the odd one at the
                # end: the first output reads from half of it before row 0.
                pad = dilation * (kernel[axis] - 1) // 2
            else:
                pad = pad[axis]
            # Tap ``tap`` reads input row o * stride - pad + tap * dilation.
            taps.append([tap for tap in range(kernel[axis])
                         if any(0 <= o * stride - pad + tap * dilation < size
                                for o in range(outs))])
        seen.setdefault(name, set()).update(
            (row, col) for row in taps[0] for col in taps[1])

    handles = [
        conv.register_forward_hook(
            lambda module, args, out, name=name: hook(name, module, args,
                                                      out))
        for name, conv in model.named_modules()
        if isinstance(conv, nn.Conv2d) and max(conv.kernel_size) > 1]
    try:
        with torch.no_grad():
            model(inputs, mode='tensor')
    finally:
        for handle in handles:
            handle.remove()
    kernels = {name: conv.kernel_size for name, conv in model.named_modules()
               if name in seen}
    # In the order they first ran (dicts keep it).
    return [name for name, taps in seen.items()
            if len(taps) < kernels[name][0] * kernels[name][1]]


def largest(values: Sequence[float], default: float = 0.0) -> float:
    """The largest of ``values`` (``default`` when there are none), NaN if
    any is NaN: Python's ``max()`` drops a NaN that is not first."""
    if not len(values):
        return default
    return float(np.max(np.asarray(values, dtype=np.float64)))


def non_finite(array: np.ndarray) -> int:
    """How many values of ``array`` are NaN or infinite."""
    return int(np.size(array) - np.isfinite(array).sum())


def random_inputs(shape: Tuple[int, int], seed: int = 0,
                  dynamic_size: bool = True
                  ) -> List[Tuple[str, np.ndarray]]:
    """Random RGB batches that exercise the dynamic axes: batch 1 and 2 at
    ``shape`` and, with ``dynamic_size``, batch 1 at a second size (other
    multiples of 32)."""
    rng = np.random.default_rng(seed)
    height, width = shape
    other = (height + 64, width - 64 if width > 96 else width + 32)
    cases = [(1, height, width), (2, height, width)]
    if dynamic_size:
        cases.append((1, *other))
    return [(f'random {n}x3x{h}x{w}',
             rng.uniform(0, 255, (n, 3, h, w)).astype(np.float32))
            for n, h, w in cases]


def config_samples(cfg, split: str = 'test', limit: int = 64
                   ) -> Tuple[List[Tuple[str, Optional[str]]], str]:
    """``(image, mask)`` file pairs of the config's ``split`` set.

    Returns:
        tuple: The pairs (``mask`` None when the set has none) and a
        message that says where they come from or why there are none.
    """
    loader = cfg.get(f'{split}_dataloader')
    if not loader:
        return [], f'the config has no {split}_dataloader'
    dataset_cfg = copy.deepcopy(loader['dataset'])
    root = dataset_cfg.get('data_root', '')
    if root and not osp.isdir(root):
        return [], f'{split} data not found at {root}'
    try:
        import mmseg_dsnet  # noqa: F401
        from mmseg.registry import DATASETS

        from ..engine.preflight import build_scope
        dataset_cfg['lazy_init'] = False
        with build_scope(cfg):
            dataset = DATASETS.build(dataset_cfg)
    except Exception as err:  # noqa: BLE001  (any reason: say it, go on)
        return [], f'cannot build the {split} set at {root}: {err}'
    count = len(dataset) if limit <= 0 else min(limit, len(dataset))
    pairs = []
    for index in range(count):
        info = dataset.get_data_info(index)
        pairs.append((info['img_path'], info.get('seg_map_path')))
    return pairs, (f'{count} of {counted(len(dataset), split + " image")} '
                   f'of {root}')


def explicit_check_pairs(inputs: Sequence[str], limit: int = 64
                         ) -> List[Tuple[str, None]]:
    """The images a user named for a parity check, all of them readable.

    Images the user named are the check they asked for: one that is
    missing or unreadable would otherwise be dropped and the check would
    pass on random inputs alone.

    Args:
        inputs (Sequence[str]): Files, folders or globs (``--check-images``).
        limit (int): Images taken, in order (<= 0: all).

    Returns:
        list[tuple[str, None]]: ``(image, None)`` pairs (no masks).

    Raises:
        UserError: An input matched nothing, or a taken file is not a
        readable image.
    """
    from ..image_io import find_images
    from ..utils.errors import UserError
    found = find_images(inputs)
    if found.problems:
        raise UserError('--check-images: ' + '; '.join(
            message for _, message in found.problems))
    files = found.files if limit <= 0 else found.files[:limit]
    unreadable = []
    for path in files:
        try:
            read_image(path)
        except ImageReadError as err:
            unreadable.append(str(err))
    if unreadable:
        raise UserError(f'--check-images: {counted(len(unreadable), "file")} '
                        + ('is not a readable image: ' if len(unreadable) == 1
                           else 'are not readable images: ') +
                        f'{"; ".join(unreadable)}')
    return [(path, None) for path in files]


def load_batches(pairs: Sequence[Tuple[str, Optional[str]]],
                 shape: Tuple[int, int],
                 batch_size: int = 4):
    """Read images (skipping unreadable ones) into model-size batches.

    Returns:
        list[tuple[str, np.ndarray, list[np.ndarray | None]]]: label,
        ``(n, 3, H, W)`` float32 RGB batch and the ground-truth masks
        (nearest-resized to ``shape``, values 0/1/255) or None.
    """
    batches, images, labels, truths = [], [], [], []
    for image_file, mask_file in pairs:
        try:
            images.append(to_model_input(read_image(image_file).rgb, shape))
        except ImageReadError:
            continue
        labels.append(osp.basename(image_file))
        truth = None
        if mask_file and osp.isfile(mask_file):
            import cv2
            raw = read_unchanged(mask_file)
            if raw is not None:
                truth = cv2.resize(raw, shape[::-1],
                                   interpolation=cv2.INTER_NEAREST)
        truths.append(truth)
        if len(images) == batch_size:
            batches.append((', '.join(labels), np.stack(images), truths))
            images, labels, truths = [], [], []
    if images:
        batches.append((', '.join(labels), np.stack(images), truths))
    return batches


def compare_logits(reference: np.ndarray, candidate: np.ndarray,
                   threshold: float, atol: float,
                   exact: Optional[np.ndarray] = None) -> Dict[str, float]:
    """Logit difference and mask agreement of two ``(N, C, H, W)`` arrays.

    Args:
        reference (np.ndarray): The logits compared against.
        candidate (np.ndarray): The logits checked.
        threshold (float): Lesion probability threshold (decision_map).
        atol (float): Decision margin that rounding may flip.
        exact (np.ndarray, optional): float64 logits of the reference
            model; where given, they decide which pixels are borderline.

    Returns:
        dict: ``max_abs_diff``; ``mask_mismatch``, the pixels whose
        lesion/background decision differs; ``mask_mismatch_decisive``,
        those whose exact (else reference) logit is more than ``atol`` away
        from the threshold (a decision that rounding cannot flip); and
        ``pixels``.
    """
    diff = float(np.abs(reference - candidate).max())
    mismatch = decisive = 0
    exact = reference if exact is None else exact
    for ref, cand, ref64 in zip(reference, candidate, exact):
        ref_d, cand_d = decision_map(ref, threshold), decision_map(
            cand, threshold)
        differs = (ref_d > 0) != (cand_d > 0)
        mismatch += int(differs.sum())
        margin = np.abs(decision_map(ref64, threshold))
        decisive += int((differs & (margin > atol)).sum())
    return dict(max_abs_diff=diff, mask_mismatch=mismatch,
                mask_mismatch_decisive=decisive,
                pixels=int(reference.shape[0] * reference.shape[2] *
                           reference.shape[3]))


def parity_tolerance(logit_scale: float, float32_noise: float,
                     atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL,
                     noise_factor: float = NOISE_FACTOR) -> float:
    """The largest logit difference an export may show:
    ``max(atol + rtol * logit_scale, noise_factor * float32_noise)``.

    Args:
        logit_scale (float): Largest ``|logit|`` of the exact (float64)
            reference on the checked inputs.
        float32_noise (float): Largest PyTorch float32 vs float64 logit
            difference on the same inputs.
        atol (float): Absolute part.
        rtol (float): Part relative to the logit scale.
        noise_factor (float): Allowed multiple of the float32 noise (0:
            none).
    """
    return max(atol + rtol * logit_scale, noise_factor * float32_noise)


def _counted(items, bar):
    """Yield ``items``, one step of ``bar`` once each is done (when the
    next is asked for, also after a ``continue``)."""
    for item in items:
        yield item
        bar.update()


def check_parity(reference, deployed, session,
                 cases: Sequence[Tuple[str, np.ndarray]],
                 threshold: float,
                 atol: float = DEFAULT_ATOL,
                 noise_factor: float = NOISE_FACTOR,
                 rtol: float = DEFAULT_RTOL,
                 progress: bool = False) -> Dict:
    """Compare onnxruntime with PyTorch on every case.

    The same model as trained is also run in float64, the exact answer up
    to rounding. Its largest ``|logit|`` sets the scale of the tolerance
    (:func:`parity_tolerance`: float32 rounding is relative), and its
    distance from PyTorch float32 (the *float32 noise floor*) may widen it
    for networks that amplify rounding. The rule for masks: every pixel's
    lesion/background decision must agree, except pixels whose exact logit
    lies within the tolerance of the threshold (a decision rounding can
    flip). Neither figure depends on the exported file, so a wrong export
    cannot widen its own tolerance.

    Args:
        reference (nn.Module): The model as trained (eval mode).
        deployed (nn.Module): The re-parameterised model that was exported.
        session: onnxruntime session of the exported file.
        cases (Sequence[tuple[str, np.ndarray]]): ``(label, batch)``.
        threshold (float): Lesion probability threshold (decision_map).
        atol (float): Absolute part of the tolerance.
        noise_factor (float): Allowed multiple of the float32 noise floor;
            0 disables the noise-floor rule.
        rtol (float): Part of the tolerance relative to the largest
            ``|logit|``; with ``noise_factor`` 0, 0 gives a strict
            ``atol``.
        progress (bool): A bar on stderr, one step per case (three
            models and onnxruntime run on each: minutes for a test set).
            Default: False.

    Returns:
        dict: per case figures; ``max_abs_diff`` (ONNX vs trained),
        ``logit_scale`` (largest exact ``|logit|``), ``float32_noise``
        (PyTorch float32 vs float64), ``tolerance`` (the limit applied),
        ``within_atol`` (the strict test), mismatching mask pixels and
        ``passed``: within ``tolerance``, no onnxruntime error, and
        identical masks except pixels whose exact logit is within
        ``tolerance`` of the threshold (``mask_mismatch_borderline``).
    """
    import torch

    from ..progress import progress_bar
    exact = copy.deepcopy(reference).double()
    rows, outputs = [], []
    bar = progress_bar(len(cases), 'parity check', progress, unit='batch')
    try:
        for label, batch in _counted(cases, bar):
            with torch.no_grad():
                ref = reference(torch.from_numpy(batch)).numpy()
                dep = deployed(torch.from_numpy(batch)).numpy()
                ref64 = exact(torch.from_numpy(batch).double()).numpy()
            row = dict(case=label, shape=list(batch.shape))
            rows.append(row)
            try:
                ort_out = run_ort(session, batch)
            except Exception as err:  # noqa: BLE001  (report which case)
                last = str(err).strip().splitlines()[-1]
                row['error'] = (
                    f'onnxruntime failed: {last}. If only other input sizes '
                    'fail, the traced graph fixed the size (mmseg UNet/'
                    'SegFormer do): export with --static-size.')
                continue
            # The decisions pass NaN by (a NaN pixel is background), and a
            # difference with a NaN is never above a tolerance: an output
            # that is not all finite is a failed case.
            bad = [f'{name} gave {counted(count, "non-finite logit")} '
                   '(nan or inf)'
                   for name, count in (
                       ('onnxruntime', non_finite(ort_out)),
                       ('PyTorch (the model as trained, float32)',
                        non_finite(ref)),
                       ('PyTorch (the model as trained, float64)',
                        non_finite(ref64)),
                       ('PyTorch (the re-parameterised model)',
                        non_finite(dep)))
                   if count]
            if bad:
                row['error'] = '; '.join(bad)
                continue
            row['float32_noise'] = float(np.abs(ref - ref64).max())
            row['logit_scale'] = float(np.abs(ref64).max())
            row['reparameterized_vs_trained'] = float(
                np.abs(ref - dep).max())
            row['onnx_vs_reparameterized'] = float(
                np.abs(dep - ort_out).max())
            outputs.append((row, ref, ref64, ort_out))
    finally:
        bar.close()
    noise = largest([r['float32_noise'] for r, *_ in outputs])
    scale = largest([r['logit_scale'] for r, *_ in outputs])
    tolerance = parity_tolerance(scale, noise, atol, rtol, noise_factor)
    for row, ref, ref64, ort_out in outputs:
        row['onnx_vs_trained'] = compare_logits(ref, ort_out, threshold,
                                                tolerance, exact=ref64)
    errors = [f'{r["case"]}: {r["error"]}' for r in rows if 'error' in r]
    ok = [row for row, *_ in outputs]
    worst = largest([r['onnx_vs_trained']['max_abs_diff'] for r in ok],
                    float('inf'))
    mismatch = sum(r['onnx_vs_trained']['mask_mismatch'] for r in ok)
    decisive = sum(r['onnx_vs_trained']['mask_mismatch_decisive']
                   for r in ok)
    return dict(
        cases=rows,
        atol=atol,
        rtol=rtol,
        logit_scale=scale,
        float32_noise=noise,
        tolerance=tolerance,
        max_abs_diff=worst,
        within_atol=within(worst, atol),
        max_abs_diff_reparameterized_vs_trained=largest(
            [r['reparameterized_vs_trained'] for r in ok], float('inf')),
        errors=errors,
        mask_mismatch_pixels=mismatch,
        mask_mismatch_borderline=mismatch - decisive,
        masks_identical=mismatch == 0,
        passed=bool(ok and within(worst, tolerance) and decisive == 0
                    and not errors))
