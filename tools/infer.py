"""Lesion masks and overlays for image files, folders or globs.

    python tools/infer.py configs/dsnet/dsnet_isic2017.py best.pth \
        photos/ 'more/*.jpg' one.png --out-dir results/infer
    python tools/infer.py dsnet.onnx photos/ --out-dir results/infer
    python tools/infer.py photos/ --out-dir results/infer

The first argument is a config (``.py``, ``.json``, ``.yml`` or
``.yaml``, as mmengine reads them; then the checkpoint follows) or an ONNX
file from ``tools/deployment/export_onnx.py``; when it is neither, the
DSNet released in ``checkpoints/`` is used (trained on the ISIC 2017
lightweight training split at 256x256; see configs/dsnet/README.md) and
every argument is an input. For every image it writes

* ``OUT/masks/<stem>.png``: single-channel 0/255 lesion mask at the image's
  original size;
* ``OUT/overlays/<stem>.jpg``: the image with the lesion tinted and
  outlined (drawn downsized when the image's longer side exceeds
  ``--overlay-max-side``).

Inputs that share a file name (``a/x.jpg``, ``b/x.jpg``; also
``IMG_1.JPG`` and ``img_1.jpg``, one file on a case-insensitive disk) get
the stems ``x``, ``x_2`` ..., and a line names the input behind each
renamed one.
A name belongs to one input across runs too: ``OUT/sources.json`` records
the input (real absolute path) of every output written (also by a run
that was killed: each batch's names are journaled first); a later run gives
a recorded input its recorded name (skipped or, with ``--overwrite``,
replaced there), and a new input never a name recorded for another input
or held by outputs the record does not list (a folder written before the
record existed): it gets the next free suffix, and a line says why.

The model runs at the config's test size (256x256, aspect ratio not kept,
as in training); its logits are resized back to the original size.
Grayscale, palette, RGBA (alpha dropped), CMYK and 16-bit images are
converted to 8-bit RGB (and a note says so); a 1x1 image works. The EXIF
orientation of a JPEG, PNG or TIFF (a phone photo taken upright) is
applied, as OpenCV (the training and test loader) applies it, and noted:
its mask and overlay are upright, at the size viewers show it (a WebP's
tag, which OpenCV ignores, is not applied, and a note says so). Images
above ``--max-pixels`` (default 10000x10000) are refused before decoding.
Folders contribute their image files, HEIC/HEIF photos included (Pillow
reads them only with the pillow-heif plugin, OpenCV not at all: without
it each is listed as failed); other files (e.g. LICENSE.txt,
Thumbs.db), the macOS metadata files beside photos a Mac copied
(``._IMG_0001.JPG``) and sub-folders without ``--recursive`` are listed
as skipped. Explicit files and globs are always tried (a glob through
a folder whose name holds ``[``, where ``[2]`` is a set of characters,
is refused: write each ``[`` of the name as ``[[]``). With ``--out-dir``
inside a searched folder (``--recursive`` or a ``**`` glob),
``OUT/masks`` and ``OUT/overlays`` are skipped (and a line says so): a
second run does not segment the first run's outputs; the run's records
(``OUT/model.json``, ``OUT/sources.json`` ...) are left out silently.

``OUT/model.json`` names the model that wrote the folder's outputs (its
files' SHA-256, the threshold, ``--tta``). A folder holds one model's
outputs: a run with another model is refused while the folder holds
outputs of the first (or of a model it has no record of); with
``--overwrite`` it replaces them, and is refused if some are of images it
does not process, which would stay beside its own. Files it cannot have
written (in a folder with no record: masks that are no 0/255 PNG, such
as a data set's ground truth; overlays that are no JPEG; and any mask or
overlay ``OUT/sources.json`` does not name, such as 0/255 masks of one's
own named like the photos) and inputs inside ``OUT/masks`` or
``OUT/overlays`` are refused, never replaced.

Bad inputs (missing, empty, truncated, not an image, too large) are
reported by name and the run goes on. Existing outputs are never replaced
unless ``--overwrite``; such images are skipped with a message (an image
with its mask but no overlay, or the reverse, gets the missing one), unless
the input file changed since they were made (``OUT/sources.sha256.json``
records its SHA-256; a new photo under an old name): then it counts as
failed and its outputs stay as they are until ``--overwrite``. With
``--no-overlay``, an overlay of an earlier run counts as an output too:
``--overwrite`` removes it with the mask it showed.

Exit status: 0 when every image was processed (or skipped for an existing
output); 1, after one ``ERROR:`` line naming the count, when some images
failed or were missing and the others were written: a partial result is
never reported as success (``--allow-failures`` accepts it with status 0;
the failures are listed either way); 2, after one ``ERROR:`` line, for a
user error: the output folder cannot be written (or another run, of
``infer.py`` or ``run_inference``, is writing it now: one folder takes one
run at a time; where ``flock`` is missing, as on Windows,
``OUT/.infer.lock`` names the run's process, and the file of a killed run
is taken over) or the model cannot be loaded (both checked before any
image is read), or no input could be processed (all missing, unreadable
or too large).
"""
import argparse
import contextlib
import os.path as osp
import sys


# Exit status of a run that wrote some outputs but not all.
PARTIAL_RESULT_EXIT = 1
# File endings of PyTorch checkpoints, never images: those of
# mmseg_dsnet.utils.fileio.CHECKPOINT_SUFFIXES (not imported here: the
# arguments are checked before the package's heavy imports).
CHECKPOINT_EXTENSIONS = ('.pth', '.pt', '.ckpt')
# The config files mmengine reads: those of
# mmseg_dsnet.engine.preflight.config.CONFIG_SUFFIXES (not imported here,
# as above).
CONFIG_EXTENSIONS = ('.py', '.json', '.yml', '.yaml')


def refuse(message):
    """Stop the command line with ``message``, the ``ERROR:`` line every
    tool reports a user error with (``run_reporting_user_errors``)."""
    from mmseg_dsnet.utils.errors import UserError
    raise UserError(message)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write lesion masks and overlays for images',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Examples:\n  python tools/infer.py CONFIG CKPT IMG_DIR '
        '--out-dir OUT\n  python tools/infer.py MODEL.onnx "*.jpg" '
        '--out-dir OUT')
    parser.add_argument('model', help='config (.py, .json, .yml, .yaml) '
                        'or exported .onnx; '
                        'anything else is an input, and the released DSNet '
                        'is used')
    parser.add_argument(
        'inputs', nargs='*',
        help='[CHECKPOINT] then image files, folders or glob patterns '
        '(with a config the first one is the checkpoint)')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'],
                        help='default: onnxruntime for .onnx, pytorch for '
                        'a config (a config with onnxruntime is exported '
                        'to a temporary ONNX file first)')
    parser.add_argument('--batch-size', type=int, default=4,
                        help='images per forward pass (default: 4)')
    parser.add_argument('--threshold', type=float, default=None,
                        help='lesion probability threshold, for 1-channel '
                        '(sigmoid) and 2-channel (softmax) models alike '
                        "(default: the model's, 0.5)")
    parser.add_argument('--tta', action='store_true',
                        help='average the lesion probability of each image '
                        'and its two flips (three passes, as test.py --tta)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing masks and overlays (only '
                        "infer.py's own: in a folder without its model.json, "
                        'masks its sources.json does not name are refused)')
    parser.add_argument('--no-overlay', action='store_true',
                        help='write masks only')
    parser.add_argument('--max-pixels', type=int, default=100_000_000,
                        help='refuse larger images (default: 1e8 = '
                        '10000x10000)')
    parser.add_argument('--overlay-max-side', type=int, default=4096,
                        help='longer side of overlays of large images '
                        '(default: 4096)')
    parser.add_argument('--recursive', action='store_true',
                        help='also search sub-folders of given folders')
    parser.add_argument('--device', default='cpu',
                        help='torch device of the pytorch backend '
                        "(onnxruntime runs on the CPU; default: 'cpu')")
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads of either backend (default: all '
                        'cores)')
    parser.add_argument('--allow-failures', action='store_true',
                        help='exit 0 even if some images failed or were '
                        'missing (they are listed; the others are written)')
    # Exiting 1 on a partial result is the default; the flag that asked
    # for it is still accepted.
    parser.add_argument('--strict', action='store_true',
                        help=argparse.SUPPRESS)
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bar')
    args = parser.parse_args(argv)
    args.checkpoint = None
    args.released = not args.model.lower().endswith(
        CONFIG_EXTENSIONS + ('.onnx',))
    if args.released:
        args.inputs.insert(0, args.model)
        args.model = None
    elif not args.model.lower().endswith('.onnx'):
        if len(args.inputs) < 2:
            refuse('a config needs a CHECKPOINT and at least one input')
        args.checkpoint = args.inputs.pop(0)
        if args.checkpoint.lower().endswith(
                ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')):
            refuse(f'{args.checkpoint} looks like an image: with a '
                   'config, the CHECKPOINT comes first')
    if not args.inputs:
        refuse('give at least one image, folder or glob pattern')
    # A checkpoint taken for an input would only be reported as unreadable
    # while the photos are segmented by another model (the released DSNet).
    for path in args.inputs:
        if path.lower().endswith(CHECKPOINT_EXTENSIONS) and \
                not osp.isdir(path):
            if args.released:
                why = ('give its config first (CONFIG CHECKPOINT INPUT ...); '
                       'without a config the released DSNet is used and '
                       'every argument is an input')
            elif args.checkpoint is None:
                why = 'an ONNX file holds its weights'
            else:
                why = 'give one checkpoint, right after the config'
            refuse(f'{path} is a checkpoint, not an image: {why}')
    # Below 1 none of these means anything: --overlay-max-side 0 would
    # write 1x1 overlays, --max-pixels 0 refuse every image, --threads 0
    # use all cores.
    for option, value in (('--batch-size', args.batch_size),
                          ('--max-pixels', args.max_pixels),
                          ('--overlay-max-side', args.overlay_max_side),
                          ('--threads', args.threads)):
        if value is not None and value < 1:
            refuse(f'{option} must be at least 1, got {value}')
    if args.threshold is not None:
        from mmseg_dsnet.models.utils.lesion_logit import check_threshold
        check_threshold(args.threshold, '--threshold')  # a UserError
    onnxruntime = args.backend == 'onnxruntime' or (
        args.model and args.model.lower().endswith('.onnx'))
    if onnxruntime and args.device != 'cpu':
        # Taken silently, it would leave the run on the CPU.
        refuse(f'--device {args.device} applies to the pytorch backend; '
               'onnxruntime runs on the CPU here')
    if not onnxruntime:
        # torch fails only when the model is moved there: a traceback
        # (AssertionError for CUDA on a CPU-only torch) after the output
        # folders are made.
        from mmseg_dsnet.utils.cli import device_option
        device_option(args.device, task='inference')  # a UserError
    return args


def main(argv=None):
    args = parse_args(argv)
    # Holds the output folder for the whole run: a second run into it
    # meanwhile is refused (output_folder_lock).
    with contextlib.ExitStack() as hold:
        return run(args, hold)


def run(args, hold):
    """The run of :func:`main` on parsed arguments, with ``hold`` the
    stack that keeps the output folder's lock."""
    from mmseg_dsnet.apis.inference_backends import make_backend
    from mmseg_dsnet.apis.lesion_inferencer import (LesionInferencer,
                                                    OutputDirError,
                                                    check_backend_flips,
                                                    output_names,
                                                    prepare_output_dir,
                                                    remove_empty_output_dirs,
                                                    run_inference)
    from mmseg_dsnet.apis.output_record import (
        OutputFolderBusyError, check_inputs_outside_outputs,
        claim_output_folder, describe_model, earlier_outputs_among_inputs,
        is_record_of, read_sources, release_output_folder)
    from mmseg_dsnet.engine.cli_errors import USER_ERROR_EXIT, UserError
    from mmseg_dsnet.image_io import find_images
    from mmseg_dsnet.models.utils.lesion_logit import threshold_text
    from mmseg_dsnet.utils.messages import counted

    created = []

    def fail(message):
        # A run that wrote nothing leaves no output folders behind.
        release_output_folder(args.out_dir)
        remove_empty_output_dirs(created)
        print(f'ERROR: {message}', file=sys.stderr)
        return USER_ERROR_EXIT

    try:
        created = prepare_output_dir(args.out_dir,
                                     overlays=not args.no_overlay, hold=hold)
    except OutputFolderBusyError as err:
        # Not fail(): the records and folders are the other run's.
        print(f'ERROR: {err}', file=sys.stderr)
        return USER_ERROR_EXIT
    except OutputDirError as err:
        return fail(err)
    # Our own outputs are images too: never take them as inputs when the
    # output folder lies inside a searched folder (a second run would
    # segment the first run's masks and overlays).
    output_dirs = [osp.join(args.out_dir, 'masks'),
                   osp.join(args.out_dir, 'overlays')]
    found = find_images(args.inputs, recursive=args.recursive,
                        exclude=output_dirs)
    for folder in found.excluded:
        print(f'skipped {folder}: an output folder of this run, not read as '
              'input', file=sys.stderr)
    # With no image at all the run stops on one ERROR line that names them
    # (below), so they are printed here only when there are images.
    problems_listed = bool(found.files)
    if problems_listed:
        for _, message in found.problems:
            print(f'error: {message}', file=sys.stderr)
    # This run's records in a searched folder are no photos left out.
    found.skipped = [path for path in found.skipped
                     if not is_record_of(path, args.out_dir)]
    for path in found.skipped:
        print(f'skipped {path}: not an image file extension',
              file=sys.stderr)
    for path in found.metadata:
        print(f'skipped {path}: macOS metadata (an AppleDouble file), not an '
              'image', file=sys.stderr)
    for path, kept in found.duplicates:
        print(f'skipped {path}: the same file as {kept}, segmented once '
              '(its outputs are named after that one)', file=sys.stderr)
    # Sub-folders not searched are named: their images are left out. The
    # folder that holds this run's outputs is no input.
    out_real = osp.realpath(args.out_dir)
    own = {osp.realpath(folder) for folder in output_dirs}
    for folder in found.subfolders:
        # Not "not searched (--recursive to segment its images too)": the
        # run's own masks are no photos left out.
        if osp.realpath(folder) in own:
            print(f'skipped {folder}: an output folder of this run, not '
                  'read as input', file=sys.stderr)
    subfolders = [
        folder for folder in found.subfolders
        if not (out_real + osp.sep).startswith(osp.realpath(folder) + osp.sep)
        and osp.realpath(folder) not in own
    ]
    for folder in subfolders:
        print(f'skipped {folder}: a sub-folder, not searched (--recursive '
              'to segment its images too)', file=sys.stderr)
    try:
        found.files, earlier = earlier_outputs_among_inputs(
            args.inputs, found.files)
    except UserError as err:
        return fail(err)
    for path in earlier:  # output folders and record files
        what = 'a record' if osp.isfile(path) else 'the outputs'
        print(f'skipped {path}: {what} of an earlier infer.py run, '
              'not read as input', file=sys.stderr)
    if not found.files:
        why = '' if problems_listed else '; '.join(
            message for _, message in found.problems)
        return fail('no images to process' + (f': {why}' if why else ''))
    try:
        check_inputs_outside_outputs(args.out_dir, found.files)
    except UserError as err:
        return fail(err)
    if args.released:
        from mmseg_dsnet.apis.released_model import (ReleasedModelError,
                                                     released_model)
        try:
            args.model, args.checkpoint = released_model()
        except ReleasedModelError as err:
            return fail(f'{err}; give a config and checkpoint, or an .onnx '
                        'file, as the first arguments')
        print(f'model: the released DSNet ({osp.relpath(args.checkpoint)})',
              file=sys.stderr)

    from mmseg_dsnet.compat import CheckpointDownloadError, resolve_checkpoint
    try:
        # A URL stands for the file it names (downloaded once, cached).
        args.checkpoint = resolve_checkpoint(args.checkpoint)
    except CheckpointDownloadError as err:
        return fail(err)
    from mmseg_dsnet.engine.preflight import check_input_file
    for path, what in ((args.model, 'model'),
                       (args.checkpoint, 'checkpoint')):
        try:
            if path:
                check_input_file(path, what)
        except FileNotFoundError as err:
            return fail(err)
    try:
        from mmseg_dsnet.compat import (CorruptCheckpointError,
                                        UnsafeCheckpointError)
        from mmseg_dsnet.engine.checkpoint_match import \
            CheckpointMismatchError
        backend = make_backend(args.model, args.checkpoint, args.backend,
                               args.device, args.threads)
    except (UnsafeCheckpointError, CorruptCheckpointError,
            CheckpointMismatchError, UserError) as err:
        return fail(err)
    except (ValueError, RuntimeError, OSError, KeyError) as err:
        return fail(f'cannot load the model {args.model}: {err}')
    try:  # the model's own threshold (an ONNX file's metadata)
        if args.tta:  # named as the command line gave them
            check_backend_flips(backend, '--tta', args.model)
        inferencer = LesionInferencer(backend, args.threshold,
                                      flips=args.tta)
    except UserError as err:
        return fail(err)
    # One folder holds one model's outputs: skipping the existing masks of
    # another model would leave two models' masks side by side. The names
    # are those after a replacement (which removes the outputs of unknown
    # inputs too): recorded inputs keep theirs.
    record = describe_model(args.model, args.checkpoint,
                            inferencer.threshold, flips=args.tta)
    try:
        replaced = claim_output_folder(
            args.out_dir, record,
            list(output_names(found.files,
                              read_sources(args.out_dir)).values()),
            overwrite=args.overwrite)
    except UserError as err:
        return fail(err)
    if replaced:
        print(f'Removed {counted(len(replaced), "output")} of another '
              'model from '
              f'{args.out_dir} (--overwrite): this run replaces them all',
              file=sys.stderr)
    precision = getattr(backend, 'precision', None)
    print(f'{counted(len(found.files), "image")}, backend {backend.name}'
          + (f' ({precision} model)' if precision else '') + ', model input '
          f'{inferencer.input_size[0]}x{inferencer.input_size[1]}, '
          f'threshold {threshold_text(inferencer.threshold)}',
          file=sys.stderr)

    try:
        summary = run_inference(
            inferencer, found.files, args.out_dir,
            batch_size=args.batch_size, overwrite=args.overwrite,
            overlays=not args.no_overlay, max_pixels=args.max_pixels,
            overlay_max_side=args.overlay_max_side,
            progress=not args.no_progress, model_record=record)
    except UserError as err:  # the record of the inputs behind the outputs
        return fail(err)

    print(f'\nProcessed {len(summary.processed)} of {len(found.files)} '
          f'images; masks in {osp.join(args.out_dir, "masks")}'
          + ('' if args.no_overlay else
             f', overlays in {osp.join(args.out_dir, "overlays")}'))
    if summary.removed_overlays:
        print(f'Removed {len(summary.removed_overlays)} overlays of an '
              'earlier run: the new masks replaced theirs (--no-overlay)')
    if summary.skipped_existing:
        print(f'Skipped {len(summary.skipped_existing)} with existing '
              'outputs (use --overwrite to replace them)')
    if summary.notes:
        print(f'Converted {len(summary.notes)}:')
        for path, notes in summary.notes.items():
            print(f'  {path}: {"; ".join(notes)}')
    if subfolders:
        print(f'Not searched: {counted(len(subfolders), "sub-folder")} of '
              'the input folders (listed above; --recursive to segment '
              'their images)')
    if summary.failed:
        print(f'Failed {len(summary.failed)}:')
        for path, reason in summary.failed:
            print(f'  {reason}' if reason.startswith(path) else
                  f'  {path}: {reason}')
    if not summary.processed and not summary.skipped_existing:
        return fail('no image could be processed')
    problems = len(summary.failed) + len(found.problems)
    if problems and not args.allow_failures:
        print(f'ERROR: {counted(problems, "input")} failed or missing '
              '(listed above); the others were written (--allow-failures '
              'to exit 0)',
              file=sys.stderr)
        return PARTIAL_RESULT_EXIT
    return 0


if __name__ == '__main__':
    from mmseg_dsnet.engine.cli_errors import run_reporting_user_errors

    # Photo names the console cannot show are escaped, not a traceback.
    # What is written is recorded as it is written (sources.json).
    sys.exit(run_reporting_user_errors(
        main, 'the outputs written so far are kept; the same command '
        'again writes the rest'))
