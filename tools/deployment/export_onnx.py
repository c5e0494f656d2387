"""Export a segmentor to ONNX and check it with onnxruntime.

    python tools/deployment/export_onnx.py \
        configs/dsnet/dsnet_isic2017.py work_dirs/dsnet/best.pth dsnet.onnx \
        [--opset 17] [--shape 256 256] [--no-reparameterize] \
        [--int8 dsnet_int8.onnx] [--check-images DIR_OR_GLOB] [--overwrite]

The exported network is the re-parameterised model (DESDConv branches and
BatchNorm folded) with the config's preprocessing inside:

* input ``image``: float32 ``(N, 3, H, W)`` RGB pixel values 0..255;
* output ``logits``: float32 ``(N, C, H, W)`` at the input size
  (``C = 1``: lesion where ``sigmoid(logit) > 0.5``; ``C = 2``: argmax);
* dynamic batch, height and width (DSNet: any size, multiples of 32
  recommended; the model was trained at 256x256); ``--static-size`` keeps
  only the batch dynamic, at the config's input size, and the file's
  ``mmseg_dsnet.input_format`` says that size (mmseg's UNet and SegFormer trace their sizes
  as constants: exported dynamically they fail the check at the second
  size, and the message says so); opset 17 by default;
* exact graph rewrites for onnxruntime's CPU provider (channel mean/max
  and one-output 7x7 convolutions in faster forms, see
  mmseg_dsnet/deploy/graph_rewrites.py; ``--no-cpu-rewrites`` skips them).

Then onnxruntime runs random inputs (batch 1 and 2, two sizes, and the
config's input size, which the file runs at, when ``--shape`` is another) and
real images (``--check-images``, else the config's test split when its data
is there) and is compared with the PyTorch model as trained. The same model is
also run in float64 (exact up to rounding); the largest logit difference
must be <= ``--atol + --rtol * max|logit|`` (1e-4 + 3e-4 times the largest exact
logit: float32 rounding grows with the logits, and a trained network's
reach 10-50), or ``--noise-factor`` (4) times PyTorch's own float32-vs-
float64 difference when that is larger. Every mask pixel must agree except
pixels whose exact logit lies within that tolerance of the threshold
(reported separately). A real fault (a wrong weight, another model, a
missing op) moves logits by far more. The model is written to a hidden
temporary file and moved into place only when the check passes: a failed
export leaves no file. All figures are printed and the strict ``--atol``
result is kept in the JSON (``within_atol``).
``--int8`` also writes a statically quantized model (onnxruntime QDQ,
opset 13 or later,
calibrated on the config's training images, else on the check images;
refused when there are none) and reports its mask
agreement with the float model on the check images (refused without real
ones: figures on random noise say nothing of photos) and, with ground
truth, the lesion IoU change. It is written only when its lesion masks
overlap the float model's by at least ``--int8-min-mask-iou`` (90 %) in IoU
both pooled over the check images and averaged per image (the pooled figure
alone is filled by the large lesions: an int8 model that lost the small ones
passed it; the shipped recipe reaches 99 % in both on the released DSNet)
and its logits are finite; else ``FAILED`` is printed, exit 1, and the
checked float model is kept.

Exit status: 0 when the checks pass; 1 when they fail (``FAILED`` is
printed and no file is written); 2, after one ``ERROR:`` line, for a user
error (missing files, an existing output without ``--overwrite``, an output
not named ``.onnx``, an output that is an input or another output or under
a path through a file, an unsafe checkpoint, one trained at another input
size than the config, a ``--static-size`` export at another ``--shape``
than the config's input size, an opset torch cannot write, checks at sizes
all too small for some weight: a kernel weight that meets only the zero
padding at every size checked could be wrong in the file and pass; a
dynamic export is also checked at a second size and the config's, so any
``--shape`` passes under the shipped configs).
"""
import argparse
import os
import os.path as osp
import sys

from mmseg_dsnet.compat import UnsafeCheckpointError
from mmseg_dsnet.deploy.onnx_export import (INT8_MIN_MASK_IOU,
                                            export_and_check)
from mmseg_dsnet.engine.cli_errors import run_reporting_user_errors
from mmseg_dsnet.engine.preflight import (check_input_file,
                                          check_new_output_file)
from mmseg_dsnet.utils.cli import check_at_least, input_shape
from mmseg_dsnet.utils.fileio import (atomic_write, json_text,
                                      refuse_other_suffix, refuse_same_file)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a segmentor to ONNX and check it with '
        'onnxruntime')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument('--opset', type=int, default=17,
                        help='ONNX opset (default: 17)')
    parser.add_argument('--shape', type=int, nargs='+',
                        help='H W of tracing and checks (default: the size '
                        'the config runs the model at, its test pipeline\'s '
                        'Resize; with --static-size it must be that size)')
    parser.add_argument('--no-reparameterize', action='store_true',
                        help='export the model as the config builds it, '
                        'no folding (a deploy config\'s model is folded '
                        'already)')
    parser.add_argument('--int8', metavar='OUT_INT8.onnx',
                        help='also write a static int8 model')
    parser.add_argument('--check-images', nargs='+', metavar='PATH',
                        help='image files, folders or globs to check on '
                        "(default: the config's test split)")
    parser.add_argument('--num-check-images', type=int, default=64,
                        help='real images checked; 0 = all (default: 64)')
    parser.add_argument('--num-calib-images', type=int, default=32,
                        help='int8 calibration images (default: 32)')
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='absolute part of the allowed logit difference '
                        '(default: 1e-4)')
    parser.add_argument('--rtol', type=float, default=3e-4,
                        help='part of the allowed logit difference relative '
                        'to the largest |logit| (0 with --noise-factor 0: '
                        'strict --atol; default: 3e-4)')
    parser.add_argument('--noise-factor', type=float, default=4.0,
                        help='also accept this multiple of the difference '
                        'between PyTorch float32 and float64 when larger '
                        '(0: no such allowance; default: 4.0)')
    parser.add_argument('--static-size', action='store_true',
                        help='fix height and width to the config\'s input '
                        'size (only the batch stays dynamic); needed by models whose '
                        'trace fixes the size (mmseg UNet, SegFormer)')
    parser.add_argument('--no-cpu-rewrites', action='store_true',
                        help='skip the exact graph rewrites that speed up '
                        'onnxruntime on CPU')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing output files')
    parser.add_argument('--int8-min-mask-iou', type=float, metavar='PCT',
                        default=INT8_MIN_MASK_IOU,
                        help='least IoU (%%) of the int8 model\'s '
                        'lesion masks with the float model\'s on the check '
                        'images, pooled and mean per image; below it the '
                        'int8 model is not written (default: %(default)g; '
                        '0: no limit)')
    parser.add_argument('--json', metavar='FILE',
                        help='also write the figures to this JSON file')
    return parser.parse_args(argv)


def _file_identity(path):
    """What tells a file from one written over it since (an atomic write
    gives it a new inode), or None when there is none."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def main(argv=None):
    args = parse_args(argv)
    shape = input_shape(args.shape) if args.shape else None
    check_at_least(('--num-check-images', args.num_check_images, 0),
                   ('--num-calib-images', args.num_calib_images, 1),
                   # A nan tolerance failed every parity test, blaming the
                   # model; a nan factor was skipped by max().
                   ('--atol', args.atol, 0), ('--rtol', args.rtol, 0),
                   ('--noise-factor', args.noise_factor, 0),
                   ('--int8-min-mask-iou', args.int8_min_mask_iou, 0))
    from mmseg_dsnet.compat import resolve_checkpoint
    # A URL stands for the file it names (downloaded once, cached).
    args.checkpoint = resolve_checkpoint(args.checkpoint)
    check_input_file(args.config, 'config file')
    check_input_file(args.checkpoint, 'checkpoint')
    # Each output is written over whatever holds its name: OUT as the
    # checkpoint (with --overwrite) would destroy the weights, and --int8 or
    # --json as OUT would replace the checked model after PASSED.
    refuse_same_file((('the config', args.config),
                      ('the checkpoint', args.checkpoint), ('OUT', args.out),
                      ('--int8', args.int8), ('--json', args.json)),
                     hint='give each output a file name of its own')
    # The tools that read a model go by its name: an ONNX graph written as
    # OUT.pth was read as a checkpoint. After the check above, which names
    # the checkpoint given as OUT.
    for option, path in (('OUT', args.out), ('--int8', args.int8)):
        refuse_other_suffix(path, '.onnx', option,
                            'the model is written in ONNX format')
    earlier_out = _file_identity(args.out)
    try:
        if args.json:
            # Before the export: an existing report is kept unless
            # --overwrite, and a folder or a path through a file is
            # refused before any work.
            check_new_output_file(args.json, '--json', args.overwrite)
        result = export_and_check(
            args.config, args.checkpoint, args.out, opset=args.opset,
            shape=shape, reparameterize=not args.no_reparameterize,
            overwrite=args.overwrite, int8_file=args.int8,
            check_images=args.check_images,
            num_check_images=args.num_check_images,
            num_calib_images=args.num_calib_images, atol=args.atol,
            optimize=not args.no_cpu_rewrites,
            dynamic_size=not args.static_size,
            noise_factor=args.noise_factor, rtol=args.rtol,
            int8_min_mask_iou=args.int8_min_mask_iou,
            # On stderr: minutes over a whole test set (--num-check-images
            # 0) with no line between "Real images" and "Parity".
            progress=True)
        if args.json:
            # In the try: a write that fails (a full disk) after the new
            # OUT is in place left the earlier report beside it.
            atomic_write(json_text(result, indent=2), args.json,
                         overwrite=args.overwrite)
    except (FileExistsError, UnsafeCheckpointError) as err:
        print(f'ERROR: {err}', file=sys.stderr)
        return 2
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM) or failed after the new OUT was
        # written (while quantizing, or writing the report): an earlier
        # report stayed beside it, naming OUT with another model's figures.
        if args.json and osp.isfile(args.json) and \
                _file_identity(args.out) != earlier_out:
            os.remove(args.json)
            print(f'Removed {args.json}: an earlier report, not of the '
                  f'model now at {args.out}')
        raise
    if result['passed']:
        print('PASSED')
    elif not result['parity']['passed']:
        kept = (' (the file there is an earlier one, kept: not this '
                'export)' if result['earlier_file_kept'] else '')
        print('FAILED: the ONNX model does not match the PyTorch model (see '
              f'above); {args.out} not written{kept}')
    else:
        print(f'FAILED: the int8 model\'s masks are too far from the float '
              f'model\'s (see above); {args.int8} not written ({args.out} '
              'passed its check and is written)')
    return 0 if result['passed'] else 1


if __name__ == '__main__':
    sys.exit(run_reporting_user_errors(main))
