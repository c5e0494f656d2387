"""A segmentor's test figures at several decision thresholds, for one or
more checkpoints of one config (e.g. the seeds of a design run), with the
paired selection rule of docs/design_study.md judging each threshold
against the first (:mod:`mmseg_dsnet.analysis.threshold_sweep`). Each figure
equals ``tools/test.py`` with ``model.decode_head.threshold=T
test_evaluator.threshold=T``; the images are read once per checkpoint.

    python tools/analysis_tools/threshold_sweep.py CONFIG CKPT [CKPT ...] \
        --thresholds 0.5 0.4 0.3 [--labels "seed 4" ...] \
        [--out sweep.json] [--plot sweep.png] [--overwrite] \
        [--cfg-options ...]

``--plot`` draws the figures against the threshold, one line style per
checkpoint, the reference (the first threshold) and the model's own
threshold marked (:mod:`mmseg_dsnet.analysis.plots`).

The checkpoints are averaged and judged as seeds: two saved by one training
run (the same ``experiment_name`` and ``seed`` in their ``meta``) are
refused.

Thresholds are chosen on a validation split: a config whose test loader
reads a test split (``official_test.txt``, ``lightweight_test.txt``), or
a split file of its images (a subset of it, or any of them that the
checkpoints' runs held out), is refused unless ``--allow-test-split`` asks
for its figures only. So is a split whose masks hold no lesion pixel: its
IoU and DSC measure the false lesion alone.
"""
import argparse
import math

from mmseg_dsnet.compat import resolve_checkpoint
from mmseg_dsnet.engine.cli_errors import UserError, run_reporting_user_errors
from mmseg_dsnet.analysis.plots import check_png_name
from mmseg_dsnet.engine.preflight import (ConfigOptionsAction,
                                          check_batch_sizes,
                                          check_dataset_classes,
                                          check_images_scored_once,
                                          check_pipelines_build,
                                          check_input_file,
                                          check_lesion_metrics,
                                          check_new_output_file,
                                          load_tool_config)
from mmseg_dsnet.models.utils.lesion_logit import check_threshold
from mmseg_dsnet.utils.cli import check_at_least
from mmseg_dsnet.utils.fileio import (atomic_write_together, json_text,
                                      refuse_same_file)

FIGURES = ('IoU', 'DSC', 'Sen', 'Spe')
# The selection rule's defaults.
MIN_GAIN, SE_FACTOR = 0.3, 2.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test figures at several decision thresholds')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoints', nargs='+',
                        help='checkpoint files of the config (one per seed)')
    parser.add_argument('--thresholds', type=float, nargs='+', required=True,
                        help='lesion above this probability; the first is '
                        'the reference the others are judged against')
    parser.add_argument('--labels', nargs='+',
                        help='a column name per checkpoint (default: '
                        'checkpoint 1, 2, ...)')
    parser.add_argument('--min-gain', type=float, default=MIN_GAIN,
                        help='IoU points a threshold must gain (default: '
                        f'{MIN_GAIN})')
    parser.add_argument('--se-factor', type=float, default=SE_FACTOR,
                        help='standard errors the gain must exceed '
                        f'(default: {SE_FACTOR})')
    parser.add_argument('--out', help='also write every figure to this JSON '
                        'file')
    parser.add_argument('--plot', help='also draw IoU, DSC, sensitivity '
                        'and specificity against the threshold (one line '
                        'per checkpoint) to this PNG file')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --out or --plot file')
    parser.add_argument(
        '--allow-test-split', action='store_true',
        help="report the figures on the config's test split (no threshold "
        'is judged there: choose one on a validation split)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=ConfigOptionsAction,
        help='override some settings in the used config')
    return parser.parse_args(argv)


def rule_options_given(args):
    """The options of the selection rule given other values than their
    defaults."""
    return [option for option, on in (
        ('--min-gain', args.min_gain != MIN_GAIN),
        ('--se-factor', args.se_factor != SE_FACTOR)) if on]


def check_args(args):
    """Refuse what the sweep cannot do, before anything is loaded."""
    from mmseg_dsnet.utils.messages import counted
    check_input_file(args.config, 'config file')
    # An http(s) URL stands for the file it names (downloaded once, cached).
    args.checkpoints = [resolve_checkpoint(c) for c in args.checkpoints]
    for checkpoint in args.checkpoints:
        # The training config it holds is read from a local file (to refuse
        # images it trained on): another scheme (s3:// ...) ended in a
        # FileNotFoundError traceback.
        if '://' in checkpoint:
            raise UserError(
                f'checkpoint {checkpoint}: the sweep reads the training '
                'config a checkpoint holds, to refuse images it trained on, '
                'from a local file; download it and give the file')
        check_input_file(checkpoint, 'checkpoint')
    for threshold in args.thresholds:
        check_threshold(threshold, 'each of --thresholds')
    if len(set(args.thresholds)) != len(args.thresholds):
        raise UserError(f'--thresholds repeats a value: {args.thresholds}')
    # The tables and the --out record name each threshold by '%g' (six
    # digits): two that print alike were one row name and one JSON key,
    # and the second's figures replaced the first's.
    names = [f'{t:g}' for t in args.thresholds]
    if len(set(names)) != len(names):
        raise UserError(f'--thresholds {" ".join(map(repr, args.thresholds))}'
                        f': two are the same to six digits ({" ".join(names)}'
                        '), which name the rows and the --out keys; give '
                        'thresholds that differ within six digits')
    # A negative factor would let gains below the noise pass; a nan in
    # either failed every threshold.
    check_at_least(('--se-factor', args.se_factor, 0),
                   ('--min-gain', args.min_gain, -math.inf))
    labels = args.labels or [
        f'checkpoint {i + 1}' for i in range(len(args.checkpoints))]
    if len(labels) != len(args.checkpoints) or len(set(labels)) != len(
            labels):
        raise UserError(f'--labels needs {len(args.checkpoints)} distinct '
                        f'names, one per checkpoint, got {labels}')
    # The rule table judges thresholds over checkpoints: without two of
    # each it is not printed, and its options would be dropped.
    unused = rule_options_given(args)
    if unused and (len(args.checkpoints) < 2 or len(args.thresholds) < 2):
        raise UserError(f'{", ".join(unused)}: the rule judges thresholds '
                        'over checkpoints and needs at least two of each, '
                        f'got {counted(len(args.thresholds), "threshold")} '
                        f'and {counted(len(args.checkpoints), "checkpoint")}')
    # One checkpoint twice would be two identical paired columns; an --out
    # that is an input would replace it.
    refuse_same_file([('config file', args.config),
                      *((f'checkpoint {i + 1}', path)
                        for i, path in enumerate(args.checkpoints)),
                      ('--out', args.out), ('--plot', args.plot)],
                     'give each checkpoint once and --out and --plot new '
                     'files')
    check_png_name(args.plot)
    # Written after all the evaluation.
    for option, path in (('--out', args.out), ('--plot', args.plot)):
        if path:
            check_new_output_file(path, option, args.overwrite)
    return labels


def figures_table(scores, thresholds, labels):
    """Markdown: mean ± std over the checkpoints of each figure."""
    from mmseg_dsnet.leaderboard.design import mean_and_spread
    lines = ['| threshold | ' + ' | '.join(FIGURES) + ' |',
             '|---' * (len(FIGURES) + 1) + '|']
    for t in thresholds:
        cells = [mean_and_spread([scores[label][t][f] for label in labels])
                 for f in FIGURES]
        lines.append(f'| {t:g} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = parse_args(argv)
    labels = check_args(args)
    cfg = load_tool_config(args.config, args.cfg_options,
                           ('model', 'test_dataloader.dataset'),
                           'the sweep runs the model of the config on its '
                           'test images; give a training config such as '
                           'configs/dsnet/dsnet_isic2017.py')

    from mmengine.logging import MMLogger
    from mmengine.runner import Runner
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.analysis.threshold_sweep import (check_not_trained_on,
                                                      check_separate_runs,
                                                      check_split_given,
                                                      check_sweepable,
                                                      lesion_metric_args,
                                                      scores_by_threshold,
                                                      test_images_scored,
                                                      threshold_rule_table)
    from mmseg_dsnet.datasets.synthetic_fallback import (ensure_data,
                                                         names_data)
    from mmseg_dsnet.apis.released_model import (check_trained_model,
                                                 trained_config_advice)
    from mmseg_dsnet.engine.checkpoint_match import load_checkpoint_strictly
    from mmseg_dsnet.progress import progress_bar
    try:
        metric_args = lesion_metric_args(cfg.get('test_evaluator'))
    except ValueError as error:
        raise UserError(f'{args.config}: {error}') from None
    # Arguments that give figures of nothing ('logit' input of a model
    # that stores probabilities: every pixel lesion).
    check_lesion_metrics(cfg, ('test_evaluator', ))
    # A 2-channel head's masks are its argmax, whatever the threshold.
    check_sweepable(cfg.get('model'), args.thresholds, args.config)
    # A random step (RandomFlip, PhotoMetricDistortion ...) in the test
    # pipeline: figures of random views of the images, new at each run.
    check_batch_sizes(cfg, ('test_dataloader', ), args.config)
    check_pipelines_build(cfg, ('test_dataloader', ))
    check_dataset_classes(cfg, ('test_dataloader', ))
    # Without a split file every image of the set is scored.
    # Each dataset a wrapper (Concat, Repeat ...) holds: the wrapper names
    # no split file of its own.
    from mmseg_dsnet.datasets.split_files import dataset_leaves
    named = dataset_leaves(cfg.test_dataloader.dataset,
                           'test_dataloader.dataset', naming_data=True)
    for where, leaf in named:
        check_split_given(leaf, args.config, where)
    leaves = [leaf for _, leaf in named]
    # A threshold chosen on the test images makes their figures optimistic.
    # Test images under another split name, or in a wrapper, are test
    # images too.
    on_test_split = test_images_scored(cfg.test_dataloader.dataset,
                                       args.checkpoints)
    if on_test_split and not args.allow_test_split:
        raise UserError(
            f"{args.config} scores {on_test_split}: a threshold chosen "
            'there makes the test figures optimistic. Score a validation '
            'split the checkpoints did not train on (design runs: '
            '--cfg-options test_dataloader.dataset.ann_file='
            'splits/lightweight_design_val.txt), or pass --allow-test-split '
            'to report figures only')
    if on_test_split:
        dropped = rule_options_given(args)
        if dropped:
            raise UserError(f'{", ".join(dropped)}: no threshold is judged '
                            f'on test images ({on_test_split})')
    # Thresholds of the synthetic stand-in set would mean nothing.
    ensure_data(cfg, allow_synthetic=False, loaders=('test_dataloader', ),
                explicit=names_data(args.cfg_options))
    # A RepeatDataset (a ConcatDataset of splits sharing images) was scored
    # in full, for every checkpoint, before the tool failed on it.
    check_images_scored_once(cfg, ('test_dataloader', ))
    # Epochs of one run would pass for seeds in the mean ± std and the rule.
    check_separate_runs(args.checkpoints, labels)
    # Figures on images a checkpoint learned from favour it.
    for checkpoint in args.checkpoints:
        for leaf in leaves:
            check_not_trained_on(checkpoint, leaf, args.config)
        # Before any is scored: one trained in another network (other
        # dilations) would be scored in this one.
        check_trained_model(cfg, args.config, checkpoint,
                            trained_config_advice(args.config, checkpoint))
    register_all_modules()
    # The per-threshold tables of LesionMetric are left out of the output.
    MMLogger.get_instance('threshold_sweep', log_level='WARNING')
    model = MODELS.build(cfg.model)
    model.eval()
    loader = Runner.build_dataloader(cfg.test_dataloader)
    scores = {}
    for label, checkpoint in zip(labels, args.checkpoints):
        load_checkpoint_strictly(model, checkpoint, config=args.config,
                                 cfg=cfg)
        print(f'{label}: {checkpoint}')
        # On stderr: the tables on stdout stay clean when redirected.
        progress = progress_bar(len(loader.dataset), label)
        scores[label] = scores_by_threshold(model, loader, args.thresholds,
                                            metric_args, progress)
        progress.close()

    # A wrapper's split files are its datasets' (it has no ann_file).
    from mmseg_dsnet.analysis.plots import scored_split
    from mmseg_dsnet.datasets.synthetic_fallback import data_provenance
    from mmseg_dsnet.utils.messages import counted
    scored = cfg.test_dataloader.dataset.get('ann_file') or scored_split(
        data_provenance(cfg.test_dataloader.dataset, len(loader.dataset)))
    print(f'\n{args.config}, {scored} '
          f'({counted(len(loader.dataset), "image")}), mean over '
          f'{counted(len(labels), "checkpoint")}:\n')
    print(figures_table(scores, args.thresholds, labels))
    if on_test_split:
        print('On the test split: figures only, no threshold is judged.')
    elif len(labels) > 1:
        print(threshold_rule_table(scores, args.thresholds, labels,
                                   args.min_gain, args.se_factor))
    outputs = []
    if args.out:
        # Which images were scored (data root, the split file under it,
        # synthetic or not), as error_by_position.py and test.py record it:
        # the split file alone did not say which data set it was of.
        from mmseg_dsnet.datasets.synthetic_fallback import data_provenance
        record = {'config': args.config,
                  **data_provenance(cfg.test_dataloader.dataset,
                                    len(loader.dataset)),
                  'checkpoints': dict(zip(labels, args.checkpoints)),
                  # Figures of test images (--allow-test-split) say so: a
                  # subset of the test split bears a name of its own.
                  **({'test_images': on_test_split} if on_test_split
                     else {}),
                  'scores': {label: {f'{t:g}': figures
                                     for t, figures in by_t.items()}
                             for label, by_t in scores.items()}}
        outputs.append((json_text(record, indent=1), args.out))
    if args.plot:
        from mmseg_dsnet.analysis.plots import plot_threshold_sweep
        from mmseg_dsnet.engine.preflight import mask_threshold
        head = cfg.model.get('module', cfg.model).get('decode_head')
        # In the metric's terms: 1 - T for a 1-channel head scored on
        # masks whose lesion is label 0.
        own = mask_threshold(head, metric_args.get('lesion_index', 1)) \
            if isinstance(head, dict) else None
        from mmseg_dsnet.analysis.plots import sweep_plot_title
        from mmseg_dsnet.datasets.synthetic_fallback import data_provenance
        from mmseg_dsnet.evaluation.lesion_metric import LesionMetric
        # The split file alone did not say which data set, nor at which
        # size the pooled figures are counted (tools/test.py has both).
        title = sweep_plot_title(
            args.config,
            data_provenance(cfg.test_dataloader.dataset, len(loader.dataset)),
            LesionMetric(**metric_args).low_res_size)
        outputs.append((lambda tmp: plot_threshold_sweep(
            scores, args.thresholds, tmp, title,
            reference=args.thresholds[0], model_threshold=own), args.plot))
    # Together: a failed plot leaves no --out of this run either.
    atomic_write_together(outputs, overwrite=args.overwrite)
    for name, path in (('figures', args.out), ('plot', args.plot)):
        if path:
            print(f'{name}: {path}')
    return scores


if __name__ == '__main__':
    run_reporting_user_errors(main)
