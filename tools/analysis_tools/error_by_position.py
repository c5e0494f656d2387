"""Where a trained segmentor errs on its config's test images: the lesion it
misses and the background it calls lesion, by distance from the image
centre, and how much of the error the worst images hold
(:mod:`mmseg_dsnet.analysis.error_position`). Pixels are counted as the
config's ``test_evaluator`` (a ``LesionMetric``) counts them for
``tools/test.py``; the rings are at the original size, and the pooled IoU is
given there and at the evaluator's ``low_res_size``.

    python tools/analysis_tools/error_by_position.py CONFIG CHECKPOINT
        [--rings 5] [--worst 10] [--out errors.json] [--plot errors.png]
        [--overwrite] [--allow-training-images]
        [--cfg-options test_dataloader.dataset.ann_file=...]

``--plot`` draws the rings' figures as bars, from the centre to the
corners (:mod:`mmseg_dsnet.analysis.plots`).
"""
import argparse

from mmseg_dsnet.analysis.plots import check_png_name
from mmseg_dsnet.engine.cli_errors import run_reporting_user_errors
from mmseg_dsnet.engine.preflight import (ConfigOptionsAction,
                                          check_batch_sizes,
                                          check_dataset_classes,
                                          check_pipelines_build,
                                          check_decision_thresholds,
                                          check_images_scored_once,
                                          check_input_file,
                                          check_lesion_metrics,
                                          check_new_output_file,
                                          load_tool_config)
from mmseg_dsnet.utils.cli import check_at_least
from mmseg_dsnet.utils.fileio import (atomic_write_together, json_text,
                                      refuse_same_file)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Errors of a segmentor by distance from the centre')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--rings', type=int, default=5,
                        help='rings between the centre and the corners '
                        '(default: 5)')
    parser.add_argument('--worst', type=int, default=10,
                        help='report the share of the error in this many '
                        'worst images (default: 10)')
    parser.add_argument('--out', help='also write the figures (per ring and '
                        'per image) to this JSON file')
    parser.add_argument('--plot', help='also draw the figures per ring '
                        '(lesion missed, background called lesion, share '
                        'of the lesion) to this PNG file')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --out or --plot file')
    parser.add_argument(
        '--allow-training-images', action='store_true',
        help='score the checkpoint also on images its run trained on '
        '(refused by default: its errors there are smaller than on new '
        'images)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=ConfigOptionsAction,
        help='override some settings in the used config')
    return parser.parse_args(argv)


def output_hint(args):
    """What to do about an output that is another file."""
    given = [o for o, path in (('--out', args.out), ('--plot', args.plot))
             if path]
    if len(given) == 1:
        return f'give {given[0]} a file name of its own'
    return 'give --out and --plot file names of their own'


def main(argv=None):
    args = parse_args(argv)
    check_at_least(('--rings', args.rings, 1), ('--worst', args.worst, 1))
    check_input_file(args.config, 'config file')
    check_input_file(args.checkpoint, 'checkpoint')
    # Checked now, not when the figures are written after every image was
    # read: an --out (--plot) that is an input (with --overwrite) would
    # replace it, one whose folder cannot be made fail at the end.
    refuse_same_file((('the config file', args.config),
                      ('the checkpoint', args.checkpoint),
                      ('--out', args.out), ('--plot', args.plot)),
                     hint=output_hint(args))
    check_png_name(args.plot)
    for option, path in (('--out', args.out), ('--plot', args.plot)):
        if path:
            check_new_output_file(path, option, args.overwrite)
    cfg = load_tool_config(args.config, args.cfg_options,
                           ('model', 'test_dataloader.dataset'),
                           'the analysis runs the model of the config on its '
                           'test images; give a training config such as '
                           'configs/dsnet/dsnet_isic2017.py')
    # A random step (RandomFlip, PhotoMetricDistortion ...) in the test
    # pipeline: figures of random views of the images, new at each run.
    check_batch_sizes(cfg, ('test_dataloader', ), args.config)
    check_pipelines_build(cfg, ('test_dataloader', ))
    check_dataset_classes(cfg, ('test_dataloader', ))
    # The figures are of the model's masks: an evaluator threshold of its
    # own (test.py refuses it) would be ignored without a word.
    check_decision_thresholds(cfg, ('test_evaluator', ))
    # 'logit' input of a model that stores probabilities: every pixel
    # lesion.
    check_lesion_metrics(cfg, ('test_evaluator', ))
    from mmseg_dsnet.analysis.error_position import (ErrorByPosition,
                                                     error_table,
                                                     evaluator_metric,
                                                     scored_iou)
    # The pixels tools/test.py scores: the evaluator's lesion and ignore
    # labels, not the decode head's.
    metric = evaluator_metric(cfg.get('test_evaluator'), args.config)
    if not args.allow_training_images:
        # As tools/test.py: errors on images the checkpoint learned from
        # are smaller than on new ones, ring by ring.
        from mmseg_dsnet.analysis.threshold_sweep import \
            check_not_tested_on_training_images
        check_not_tested_on_training_images(
            args.checkpoint, cfg.test_dataloader.dataset, args.config)

    import torch
    from mmengine.runner import Runner
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.datasets.synthetic_fallback import data_provenance
    from mmseg_dsnet.engine.checkpoint_match import load_checkpoint_strictly
    from mmseg_dsnet.progress import progress_bar
    register_all_modules()
    model = MODELS.build(cfg.model)
    load_checkpoint_strictly(model, args.checkpoint, config=args.config,
                             cfg=cfg)
    model.eval()
    # A RepeatDataset (a ConcatDataset of splits sharing images) was scored
    # in full before the tool failed on it. Here, once the checkpoint is
    # read: the check builds the dataset, whose missing data would hide a
    # checkpoint that cannot be read.
    check_images_scored_once(cfg, ('test_dataloader', ))
    loader = Runner.build_dataloader(cfg.test_dataloader)
    errors = ErrorByPosition(args.rings)
    # On stderr: the tables on stdout stay clean when redirected.
    progress = progress_bar(len(loader.dataset), 'images')
    # Closed also on an error, whose line then starts a line of its own.
    from mmseg_dsnet.engine.hooks.bad_sample_summary_hook import \
        check_no_replaced_sample
    try:
        with torch.no_grad():
            for data in loader:
                # A bad sample replaced by the next one (on_bad_sample=
                # 'skip') would be counted twice, itself not at all.
                check_no_replaced_sample(data, 'Error by position')
                for sample in model.test_step(data):
                    sample = sample.to_dict()
                    pred, gt, valid = (mask.cpu().numpy() for mask in
                                       metric.scored_masks(sample))
                    errors.update(pred, gt, valid, sample['img_path'])
                    metric.process(data, [sample])
                    progress.update()
    finally:
        progress.close()
    # A loader with drop_last=True (or a sampler that skips images) leaves
    # images out: the figures would be of part of the split.
    from mmseg_dsnet.evaluation.lesion_metric import check_every_image_scored
    check_every_image_scored(len(metric.results), len(loader.dataset))
    summary = {**errors.summary(args.worst), **scored_iou(metric)}
    # A wrapper's split files are its datasets' (it has no ann_file).
    from mmseg_dsnet.analysis.plots import scored_split
    scored = cfg.test_dataloader.dataset.get('ann_file') or scored_split(
        data_provenance(cfg.test_dataloader.dataset, summary['images']))
    print(f'{args.config} ({args.checkpoint}), {scored}:\n')
    print(error_table(summary), end='')
    outputs = []
    if args.out:
        # Which model and which images the figures are of, as in the
        # metrics file tools/test.py writes.
        record = {'config': args.config, 'checkpoint': args.checkpoint,
                  **data_provenance(cfg.test_dataloader.dataset,
                                    summary['images']),
                  **summary}
        outputs.append((json_text(record, indent=1), args.out))
    if args.plot:
        from mmseg_dsnet.analysis.plots import plot_error_by_position
        # The split file as the config gives it did not say which data set
        # (nor a synthetic one) the figure is of: the --out record's data.
        provenance = data_provenance(cfg.test_dataloader.dataset,
                                     summary['images'])
        outputs.append((lambda tmp: plot_error_by_position(
            summary, tmp, f'{args.config} ({args.checkpoint}):',
            provenance), args.plot))
    # Together: a failed plot leaves no --out of this run either.
    atomic_write_together(outputs, overwrite=args.overwrite)
    for name, path in (('figures', args.out), ('plot', args.plot)):
        if path:
            print(f'{name}: {path}')
    return summary


if __name__ == '__main__':
    run_reporting_user_errors(main)
