"""Real-data check: convert the real ISIC 2017 set (when present) and run a
short CPU training and evaluation of DSNet and the baselines on the
lightweight-literature split, printing the lesion metrics.

A sanity check of the whole chain on real lesions, NOT a benchmark: the
schedule is far shorter than the protocol's 300 epochs (the numbers are said
with their schedule). Skips cleanly when the data is absent.

    python tools/check_real_data.py --models dsnet segformer unet

``--split design`` trains on ``lightweight_design_train`` (the training
split less a seeded 10 %) and evaluates on ``lightweight_design_val`` (that
10 %): the runs that choose designs and settings, never looking at the test
split. Their records go to ``--record-dir`` (default ``results/design``).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

import torch
from mmengine.config import Config
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import mmseg_dsnet  # noqa: E402,F401
from data_fallback import REPO_ROOT, convert, data_provenance  # noqa: E402

DEFAULT_SRC = osp.join(REPO_ROOT, '..', 'shared', 'data', 'isic2017_256x192')
CONFIGS = dict(
    dsnet='configs/dsnet/dsnet_isic2017.py',
    dsnet_v1='configs/dsnet/dsnet-v1_isic2017.py',
    unet='configs/unet/unet-s5-d16_fcn_isic2017.py',
    segformer='configs/segformer/segformer_mit-b0_isic2017.py',
    egeunet='configs/egeunet/egeunet_isic2017.py',
    malunet='configs/malunet/malunet_isic2017.py',
    dsnet_no_gate='configs/dsnet/dsnet_isic2017_no-gate.py',
    dsnet_bce_dice='configs/dsnet/dsnet_isic2017_bce-dice.py',
    dsnet_vanilla_conv='configs/dsnet/dsnet_isic2017_vanilla-conv.py',
    dsnet_no_deep_supervision=(
        'configs/dsnet/dsnet_isic2017_no-deep-supervision.py'),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--src', default=DEFAULT_SRC,
                        help='the real ISIC 2017 set (official layout)')
    parser.add_argument('--data-root', default=osp.join(REPO_ROOT,
                                                        'data/isic2017'))
    parser.add_argument('--models', nargs='+', default=None,
                        choices=sorted(CONFIGS))
    parser.add_argument('--configs', nargs='+', default=[],
                        help='further config files, named by their stem')
    parser.add_argument('--split', choices=['test', 'design'],
                        default='test',
                        help="'test': train on lightweight_train, evaluate "
                        "on lightweight_test; 'design': train on "
                        'lightweight_design_train, evaluate on '
                        'lightweight_design_val (for choosing designs)')
    parser.add_argument('--record-dir',
                        default=osp.join(REPO_ROOT, 'results', 'design'),
                        help='where --split design writes one record per '
                        'run')
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--train-images', type=int, default=None,
                        help='train on the first N images of the split')
    parser.add_argument('--test-images', type=int, default=None,
                        help='evaluate on the first N test images')
    parser.add_argument('--lr', type=float, default=None,
                        help='override the learning rate')
    parser.add_argument('--crop-size', type=int, default=None,
                        help='train and predict at this square size instead '
                        'of 256 (metrics stay at 256x256 and original size)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--work-dir', default='work_dirs/real_check')
    return parser.parse_args(argv)


def set_input_size(cfg, size):
    """Train and predict at ``size`` x ``size``: every Resize of the
    pipelines and the data preprocessor's padding size."""
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for step in cfg[name].dataset.pipeline:
            if step['type'] == 'Resize':
                step['scale'] = (size, size)
    cfg.model.data_preprocessor['size'] = (size, size)


DESIGN_SPLITS = ('splits/lightweight_design_train.txt',
                 'splits/lightweight_design_val.txt')


def short_schedule_cfg(config, data_root, work_dir, epochs, train_images,
                       test_images, seed, lr=None, crop_size=None,
                       split='test'):
    """The config with the real data root, a short cosine schedule and
    optional subsets (and the design hold-out for ``split='design'``)."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    if crop_size:
        set_input_size(cfg, crop_size)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    # One visualizer per run: runners in one process would otherwise share
    # the first one's, and its vis_data would collect every run's scalars.
    cfg.visualizer.name = f'visualizer_{osp.basename(work_dir)}'
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = data_root
    if split == 'design':
        cfg.train_dataloader.dataset.ann_file = DESIGN_SPLITS[0]
        cfg.val_dataloader.dataset.ann_file = DESIGN_SPLITS[1]
        cfg.test_dataloader.dataset.ann_file = DESIGN_SPLITS[1]
    if train_images:
        cfg.train_dataloader.dataset.indices = train_images
    if test_images:
        cfg.val_dataloader.dataset.indices = test_images
        cfg.test_dataloader.dataset.indices = test_images
    if lr:
        cfg.optim_wrapper.optimizer.lr = lr
    cfg.train_cfg.max_epochs = epochs
    # Evaluate once, by runner.test() after training (mmengine would also
    # validate at the last epoch unless val_begin lies beyond it).
    cfg.train_cfg.val_begin = epochs + 1
    cfg.param_scheduler = [
        dict(type='CosineAnnealingLR', T_max=epochs, eta_min=1e-5,
             by_epoch=True, begin=0, end=epochs)
    ]
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=epochs, max_keep_ckpts=1)
    cfg.default_hooks.logger.interval = 20
    return cfg


def write_design_record(record_dir, name, result):
    """One JSON record per design run, named by config, size, epochs and
    seed; an existing record is never replaced."""
    os.makedirs(record_dir, exist_ok=True)
    path = osp.join(
        record_dir, f'{name}_{result["input_size"]}px_{result["epochs"]}ep_'
        f'seed{result["seed"]}.json')
    if osp.exists(path):
        path = path[:-5] + f'_{time.strftime("%Y%m%d-%H%M%S")}.json'
    with open(path, 'w') as f:
        json.dump(dict(result, name=name), f, indent=2)
    print(f'Design record: {path}')


def main(argv=None):
    args = parse_args(argv)
    if not osp.isdir(args.src):
        print(f'SKIP: the real ISIC 2017 set is not at {args.src}')
        return None
    if not osp.isfile(osp.join(args.data_root, 'meta.json')):
        print(f'Converting {args.src} -> {args.data_root} ...', flush=True)
        convert(args.src, args.data_root, year=2017, seed=0)
    if args.split == 'design' and not osp.isfile(
            osp.join(args.data_root, DESIGN_SPLITS[1])):
        print(f'ERROR: {args.data_root} has no {DESIGN_SPLITS[1]}; it was '
              'converted by an older converter. Convert it again: python '
              f'tools/dataset_converters/isic.py {args.src} '
              f'{args.data_root} --overwrite')
        sys.exit(2)
    configs = {name: CONFIGS[name] for name in args.models or []}
    for path in args.configs:
        configs[osp.splitext(osp.basename(path))[0]] = osp.relpath(
            osp.abspath(path), REPO_ROOT)
    if not configs:
        configs['dsnet'] = CONFIGS['dsnet']
    results = {}
    for name, config in configs.items():
        cfg = short_schedule_cfg(config, args.data_root,
                                 osp.join(args.work_dir, name), args.epochs,
                                 args.train_images, args.test_images,
                                 args.seed, args.lr, args.crop_size,
                                 args.split)
        start = time.time()
        runner = Runner.from_cfg(cfg)
        runner.train()
        train_time = time.time() - start
        metrics = runner.test()
        evaluated = data_provenance(cfg.test_dataloader.dataset,
                                    len(runner.test_dataloader.dataset))
        # The same record tools/test.py writes, for the leaderboard tool.
        with open(osp.join(cfg.work_dir, 'test_metrics.json'), 'w') as f:
            json.dump(dict(config=config, checkpoint=None,
                           metrics={k: float(v) for k, v in metrics.items()},
                           **evaluated),
                      f, indent=2)
        results[name] = dict(
            config=config, epochs=args.epochs, seed=args.seed,
            split=args.split,
            train_split=cfg.train_dataloader.dataset.ann_file,
            eval_split=cfg.test_dataloader.dataset.ann_file,
            train_images=len(runner.train_dataloader.dataset),
            test_images=len(runner.test_dataloader.dataset),
            input_size=args.crop_size or 256, device='cpu',
            threads=torch.get_num_threads(),
            train_time_s=round(train_time, 1),
            metrics={k: round(float(v), 2) for k, v in metrics.items()},
            **evaluated)
        if args.split == 'design':
            write_design_record(args.record_dir, name, results[name])
    os.makedirs(args.work_dir, exist_ok=True)
    out = osp.join(args.work_dir, 'real_check.json')
    with open(out, 'w') as f:
        json.dump(results, f, indent=2)
    keys = ('IoU', 'DSC', 'Acc', 'Sen', 'Spe', 'mIoU_img', 'TJ', 'mIoU')
    evaluated_on = ('design hold-out (lightweight_design_val)'
                    if args.split == 'design' else 'lightweight test split')
    print(f'\nShort CPU schedule on real ISIC 2017, evaluated on the '
          f'{evaluated_on}, {args.epochs} epoch(s), input '
          f'{args.crop_size or 256}px, seed {args.seed}:')
    print(f'{"model":<10} {"train img":>9} {"test img":>8} {"time s":>7} ' +
          ' '.join(f'{k:>8}' for k in keys))
    for name, r in results.items():
        print(f'{name:<10} {r["train_images"]:>9} {r["test_images"]:>8} '
              f'{r["train_time_s"]:>7.0f} ' +
              ' '.join(f'{r["metrics"][k]:>8.2f}' for k in keys))
    print(f'Written to {out}')
    return results


if __name__ == '__main__':
    main()
