"""Turn a training checkpoint into released weights.

    python tools/misc/publish_model.py CONFIG CHECKPOINT OUT_FILE

loads CHECKPOINT strictly into CONFIG's model, writes its weights alone
(a plain state dict: no optimizer state, no training metadata but the
training config, ``meta['cfg']``, which the tools check the weights
against, and ``meta['training_progress']``) to OUT_FILE and prints the
SHA-256 and the ``configs/dsnet/metafile.yaml`` fields that list it
(none for a file outside the repository or one git ignores), and
the epoch (or iteration) of how many the checkpoint was saved at, best or
last, which ``meta['training_progress']`` records. A checkpoint
saved before its run ended that is neither the run's best (``best_*.pth``)
nor its last is refused unless ``--allow-unfinished`` is given: its
weights are not the run's result. ``--no-training-config`` leaves
``meta['cfg']`` out (it names the training machine's folders), as the
released weights under ``checkpoints/`` do: the tools then check the
file against the config of its metafile entry, found by its SHA-256. OUT_FILE must end in ``.pth``, ``.pt``
or ``.ckpt`` (the file is PyTorch's). An existing OUT_FILE is kept unless
``--overwrite`` is given (``--force``, its former name, still works and
says so). A CONFIG that trains on another dataset (class, or split file)
than the checkpoint's training config records is refused, exit 2: the
metafile fields printed would name it as the weights' config. A moved
``data_root`` is the same data; a checkpoint that records no training
config (bare weights) has nothing to compare and is published as given.
"""
import argparse
import os
import os.path as osp
import sys

from mmseg_dsnet.engine.cli_errors import (UserError,
                                          run_reporting_user_errors)
from mmseg_dsnet.engine.preflight import (check_input_file,
                                          check_output_file)
from mmseg_dsnet.utils.fileio import (CHECKPOINT_SUFFIXES, refuse_existing,
                                      refuse_folder, refuse_other_suffix,
                                      refuse_same_file)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write the weights of a training checkpoint as a '
        'weights-only state dict for release')
    parser.add_argument('config', help='the config the checkpoint belongs to')
    parser.add_argument('checkpoint', help='a checkpoint written by training')
    parser.add_argument('out_file', help='where to write the weights')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace OUT_FILE if it exists')
    # The option's former name; every other tool says --overwrite.
    parser.add_argument('--force', action='store_true',
                        help='deprecated name of --overwrite')
    parser.add_argument(
        '--allow-unfinished', action='store_true',
        help="publish a checkpoint saved before its run ended that is "
        "neither the run's best nor its last (epoch_5.pth of a 100-epoch "
        'run); refused otherwise')
    parser.add_argument(
        '--no-training-config', action='store_true',
        help="leave the training config (meta['cfg'], which names this "
        "machine's folders) out of OUT_FILE, as for a release: the tools "
        'then check the weights against the config of their '
        'configs/dsnet/metafile.yaml entry, found by the SHA-256 printed')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.force:
        print('publish_model.py: --force is deprecated; use --overwrite',
              file=sys.stderr)
        args.overwrite = True
    from mmseg_dsnet.compat import resolve_checkpoint
    # A URL stands for the file it names (downloaded once, cached).
    args.checkpoint = resolve_checkpoint(args.checkpoint)
    for path, what in ((args.config, 'config file'),
                       (args.checkpoint, 'checkpoint file')):
        check_input_file(path, what)
    refuse_folder(args.out_file)
    # A file in OUT_FILE's folder path would fail the write only after
    # the checkpoint is loaded.
    check_output_file(args.out_file, 'OUT_FILE')
    # With --overwrite, an OUT_FILE that is the training checkpoint
    # (optimizer state, meta) or the config would be replaced by the bare
    # weights. Pairs with OUT_FILE only: a config given as the checkpoint
    # is refused by the load, by name.
    for what, path in (('the config', args.config),
                       ('the checkpoint', args.checkpoint)):
        refuse_same_file(((what, path), ('OUT_FILE', args.out_file)),
                         hint='write the weights to another file')
    # The tools read a model file by its suffix: a PyTorch file named
    # ``x.onnx`` would be read by infer.py as a broken ONNX model.
    refuse_other_suffix(args.out_file, CHECKPOINT_SUFFIXES, 'OUT_FILE',
                        'the weights are written in PyTorch format')
    refuse_existing(args.out_file, args.overwrite)
    from mmseg_dsnet.apis.released_model import publish_weights
    try:
        # Without --overwrite, a file another run wrote meanwhile stays.
        digest = publish_weights(args.config, args.checkpoint,
                                 args.out_file, overwrite=args.overwrite,
                                 allow_unfinished=args.allow_unfinished,
                                 keep_training_config=not
                                 args.no_training_config)
    except FileExistsError:
        raise UserError(
            f'{args.out_file} was written by another process while this run '
            'worked; not replacing it (nothing written; pass --overwrite to '
            'replace it)') from None
    size_kb = os.path.getsize(args.out_file) / 1024
    print(f'Wrote {args.out_file} ({size_kb:.0f} KiB)')
    print(f'SHA256: {digest}')
    from mmseg_dsnet.apis.released_model import (progress_text,
                                                  training_progress)
    from mmseg_dsnet.compat import safe_torch_load
    # The record the written file holds (the weights alone: the
    # checkpoint, optimizer state and all, is not read a second time).
    print('Trained: ' + progress_text(training_progress(
        safe_torch_load(args.out_file, map_location='cpu'),
        args.checkpoint), args.checkpoint))
    from mmseg_dsnet.apis.released_model import metafile_field
    print('metafile fields:')
    for field, path, advice in (
            ('Config', args.config, 'use a config under configs/'),
            ('Weights', args.out_file,
             'write the weights under checkpoints/')):
        print(f'  {field}: {metafile_field(path, advice)}')
    print(f'  SHA256: {digest}')


if __name__ == '__main__':
    run_reporting_user_errors(main)
