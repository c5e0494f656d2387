"""Real-data check: convert the real ISIC 2017 set (when present) and run a
short training (on the GPU when one is visible, else the CPU) and evaluation
of DSNet and the baselines on the lightweight-literature split, printing the
lesion metrics.

A sanity check of the whole chain on real lesions, NOT a benchmark: the
schedule is far shorter than the protocol's 300 epochs (the numbers are said
with their schedule). Skips cleanly when the data is absent from its
default place (``--src`` not given and the default ``--data-root`` not
converted); a ``--src`` that is given must exist, and so must a
``--data-root`` that is given, unless it is made from the source.

    python tools/check_real_data.py --models dsnet segformer unet

``--split design`` trains on ``lightweight_design_train`` (the training
split less a seeded 10 %) and evaluates on ``lightweight_design_val`` (that
10 %): the runs that choose designs and settings, never looking at the test
split. Their records go to ``--record-dir`` (default ``results/design``).

Each run keeps its newest checkpoint (one each epoch): a check stopped
part-way goes on with the same command and ``--resume``, each run from where
its checkpoint left it, as it would have gone on uninterrupted.
"""
import argparse
import os.path as osp

import mmseg_dsnet  # noqa: F401  (registration)
from mmseg_dsnet.datasets.converters.isic import ConversionError, convert
from mmseg_dsnet.engine.cli_errors import UserError, run_reporting_user_errors
from mmseg_dsnet.engine.preflight import (check_output_file, check_work_dir,
                                          training_work_dir_lock)
from mmseg_dsnet.leaderboard.real_data_check import (CONFIGS, DEFAULT_SRC,
                                                DESIGN_SPLITS, RESULTS_FILE,
                                                check_data_root,
                                                check_design_data_root,
                                                check_no_earlier_check,
                                                check_short_schedule,
                                                check_run_config,
                                                check_subset_sizes,
                                                describe_data,
                                                design_input_size,
                                                design_record_path,
                                                earlier_results,
                                                load_run_config,
                                                results_table, run_device,
                                                short_schedule_cfg,
                                                train_and_evaluate,
                                                write_design_record)
from mmseg_dsnet.leaderboard.design import DESIGN_DIR
from mmseg_dsnet.leaderboard.records import load_json, write_json
from mmseg_dsnet.utils.messages import counted
from mmseg_dsnet.utils.paths import REPO_ROOT


# Where the real set is converted to (and read from) unless --data-root.
DEFAULT_DATA_ROOT = osp.join(REPO_ROOT, 'data', 'isic2017')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--src', default=None,
                        help='the real ISIC 2017 set (official layout); '
                        f'default: {DEFAULT_SRC}, skipped '
                        'when absent')
    parser.add_argument('--data-root', default=None,
                        help='the converted set (made from --src when it '
                        'holds none); default: data/isic2017')
    parser.add_argument('--models', nargs='+', default=None,
                        choices=sorted(CONFIGS),
                        help='shipped models to train (DSNet when neither '
                        '--models nor --configs is given)')
    parser.add_argument('--configs', nargs='+', default=[],
                        help='further config files, named by their stem')
    parser.add_argument('--split', choices=['test', 'design'],
                        default='test',
                        help="'test': train on lightweight_train, evaluate "
                        "on lightweight_test; 'design': train on "
                        'lightweight_design_train, evaluate on '
                        'lightweight_design_val (for choosing designs); '
                        "default: 'test'")
    parser.add_argument('--record-dir', default=None,
                        help='where --split design writes one record per '
                        f'run (default: {osp.relpath(DESIGN_DIR, REPO_ROOT)})')
    parser.add_argument('--epochs', type=int, default=2,
                        help='training epochs of each run (default: 2)')
    parser.add_argument('--train-images', type=int, default=None,
                        help='train on the first N images of the split '
                        '(default: all)')
    parser.add_argument('--test-images', type=int, default=None,
                        help='evaluate on the first N test images '
                        '(default: all)')
    parser.add_argument('--lr', type=float, default=None,
                        help="override the learning rate (default: the "
                        "config's)")
    parser.add_argument('--crop-size', type=int, default=None,
                        help='train and predict at this square size instead '
                        "of the config's own (256 for the shipped configs; "
                        'metrics stay at 256x256 and original size)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed of each run (default: 0)')
    parser.add_argument('--work-dir', default='work_dirs/real_check',
                        help='one folder per run is made in it (default: '
                        'work_dirs/real_check)')
    parser.add_argument('--resume', action='store_true',
                        help='continue each run stopped part-way from the '
                        'newest checkpoint in its folder (a run without one '
                        'starts anew)')
    args = parser.parse_args(argv)
    args.data_root_given = args.data_root is not None
    if args.data_root is None:
        args.data_root = DEFAULT_DATA_ROOT
    return args


def check_args(args):
    """Refuse what the run would not follow, before any conversion or
    training.

    Returns:
        dict: The results of earlier checks in ``--work-dir`` (of other
        runs), kept in its results file.
    """
    check_short_schedule(args.epochs, args.train_images, args.test_images,
                         args.lr, args.crop_size, args.seed)
    if args.record_dir is not None and args.split != 'design':
        # Taken, it would be ignored: no record is written.
        raise UserError(f'--record-dir {args.record_dir}: only --split '
                        'design writes records; a --split test run writes '
                        'its results into --work-dir')
    args.record_dir = args.record_dir or DESIGN_DIR
    names = configs_to_run(args)  # two runs of one name are refused
    for path in args.configs:
        # Each run read its config only when it started, after the runs
        # before it: a file that is no config ended in a traceback there.
        # (A base config ended in a KeyError or AttributeError traceback.)
        load_run_config(path)
    if not args.resume:
        # A second check into a work dir mixed its runs with the earlier
        # ones.
        check_no_earlier_check(args.work_dir, names)
    check_data_root(args.data_root)
    if args.split == 'design':
        # design_table.py refuses the record of such a run: it failed
        # only there, after the trainings.
        check_design_data_root(args.data_root)
        # The records are written after the trainings: a --record-dir that
        # cannot take them failed only then.
        name = next(iter(names))
        check_output_file(
            design_record_path(args.record_dir, name, args.crop_size or 256,
                               args.epochs, args.seed, run_device()),
            '--record-dir')
    return earlier_results(args.work_dir)


def configs_to_run(args):
    """Run name -> config (relative to the repository root): the
    ``--models``, then the ``--configs`` named by their stem; DSNet when
    neither is given."""
    configs = {name: CONFIGS[name] for name in args.models or []}
    given = {name: f'--models {name}' for name in configs}
    for path in args.configs:
        name = osp.splitext(osp.basename(path))[0]
        if name in configs:
            # The later one would replace the earlier: one run.
            raise UserError(
                f'--configs {path} has the run name {name} of {given[name]} '
                "(a run, its work dir and its record are named by its "
                "config's stem); only one of them would run. Give each "
                'config once, with a stem of its own')
        configs[name] = osp.relpath(osp.abspath(path), REPO_ROOT)
        given[name] = f'--configs {path}'
    if not configs:
        configs['dsnet'] = CONFIGS['dsnet']
    return configs


def main(argv=None):
    args = parse_args(argv)
    earlier = check_args(args)
    src = args.src or DEFAULT_SRC
    meta_file = osp.join(args.data_root, 'meta.json')
    if args.src and osp.isfile(meta_file):
        # The set already converted there must be the one named.
        converted_from = load_json(meta_file).get('source')
        if converted_from and osp.realpath(converted_from) != \
                osp.realpath(args.src):
            raise UserError(
                f'{args.data_root} holds a conversion of {converted_from}, '
                f'not of --src {args.src}; choose another --data-root (or '
                'leave out --src to use it)')
    if not osp.isfile(meta_file):
        if not osp.isdir(src):
            if args.src:
                raise UserError(f'the real ISIC 2017 set is not at {src} '
                                f'(--src), and {args.data_root} holds no '
                                'converted set')
            if args.data_root_given:
                # A mistyped --data-root is no SKIP: the data is not where
                # the user said.
                raise UserError(
                    f'--data-root {args.data_root} holds no converted set '
                    f'(no meta.json), and the real ISIC 2017 set to convert '
                    f'into it is not at {src} either; give the folder '
                    'tools/dataset_converters/isic.py wrote, or --src')
            print(f'SKIP: the real ISIC 2017 set is not at {src}')
            return None
        # Before the conversion: a work dir through a file failed only
        # when the first run started, with a traceback.
        check_work_dir(args.work_dir)
        print(f'Converting {src} -> {args.data_root} ...', flush=True)
        try:
            convert(src, args.data_root, year=2017, seed=0)
        except ConversionError as err:
            raise UserError(f'cannot convert {src} (--src) into '
                            f'{args.data_root} (--data-root): {err}') from None
    if args.split == 'design' and not osp.isfile(
            osp.join(args.data_root, DESIGN_SPLITS[1])):
        # The download and seed it was converted from (the default --src
        # may be another download; another seed makes other splits).
        meta = load_json(meta_file)
        raise UserError(
            f'{args.data_root} has no {DESIGN_SPLITS[1]}; it was converted '
            'by an older converter. Convert it again: python '
            'tools/dataset_converters/isic.py '
            f'{osp.normpath(meta.get("source") or src)} {args.data_root} '
            f'--year 2017 --seed {meta.get("seed", 0)} --overwrite')
    check_subset_sizes(args.data_root, args.split, args.train_images,
                       args.test_images)
    configs = configs_to_run(args)
    given = {osp.splitext(osp.basename(path))[0]: path
             for path in args.configs}
    sizes = {}
    for name, config in configs.items():
        # Each was met only when its run started, after the runs before it.
        cfg = short_schedule_cfg(config, args.data_root,
                                 osp.join(args.work_dir, name), args.epochs,
                                 args.train_images, args.test_images,
                                 args.seed, args.lr, args.crop_size,
                                 args.split)
        check_run_config(cfg, name, given.get(name, config))
        sizes[name] = design_input_size(cfg, args.crop_size,
                                        given.get(name, config))
    check_work_dir(args.work_dir)
    results = {}
    out = osp.join(args.work_dir, RESULTS_FILE)
    # The work dir held for the whole check (its results file is read,
    # then written with the runs' results), and each run's folder while
    # it trains (as tools/train.py holds it): two at once would write
    # their checkpoints and results over one another.
    with training_work_dir_lock(args.work_dir):
        if not args.resume:
            # Again, held: another check may have written them meanwhile.
            check_no_earlier_check(args.work_dir, configs)
        earlier = earlier_results(args.work_dir)
        for name, config in configs.items():
            run_dir = osp.join(args.work_dir, name)
            check_work_dir(run_dir)
            with training_work_dir_lock(run_dir):
                results[name] = train_and_evaluate(
                    config, args.data_root, run_dir, args.epochs,
                    seed=args.seed, train_images=args.train_images,
                    test_images=args.test_images, lr=args.lr,
                    crop_size=args.crop_size, split=args.split,
                    resume=args.resume)
            if args.split == 'design':
                write_design_record(args.record_dir, name, results[name])
        kept = [name for name in earlier if name not in results]
        write_json({**earlier, **results}, out)
    evaluated_on = ('design hold-out (lightweight_design_val)'
                    if args.split == 'design' else 'lightweight test split')
    # Each config's own size without --crop-size (it said 256px for all).
    size_text = ', '.join(sorted({f'{s}px' for s in sizes.values()})) if \
        len(set(sizes.values())) == 1 else ', '.join(
            f'{s}px ({name})' for name, s in sizes.items())
    print(f'\nShort schedule on {describe_data(args.data_root)} '
          f'({run_device()}), evaluated on the '
          f'{evaluated_on}, {counted(args.epochs, "epoch")}, input '
          f'{size_text}, seed {args.seed}:')
    print(results_table(results))
    print(f'Written to {out}' + (
        f' (beside the results of earlier runs in it: {", ".join(kept)})'
        if kept else ''))
    return results


if __name__ == '__main__':
    run_reporting_user_errors(main)
