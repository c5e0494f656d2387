"""Real-data check: convert the real ISIC 2017 set (when present) and run a
short CPU training and evaluation of DSNet and the baselines on the
lightweight-literature split, printing the lesion metrics.

A sanity check of the whole chain on real lesions, NOT a benchmark: the
schedule is far shorter than the protocol's 300 epochs (the numbers are said
with their schedule). Skips cleanly when the data is absent.

    python tools/check_real_data.py --models dsnet segformer unet
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
from data_fallback import REPO_ROOT, convert  # noqa: E402

DEFAULT_SRC = osp.join(REPO_ROOT, '..', 'shared', 'data', 'isic2017_256x192')
CONFIGS = dict(
    dsnet='configs/dsnet/dsnet_isic2017.py',
    unet='configs/unet/unet-s5-d16_fcn_isic2017.py',
    segformer='configs/segformer/segformer_mit-b0_isic2017.py',
    egeunet='configs/egeunet/egeunet_isic2017.py',
    malunet='configs/malunet/malunet_isic2017.py',
    dsnet_no_gate='configs/dsnet/dsnet_isic2017_no-gate.py',
    dsnet_bce_dice='configs/dsnet/dsnet_isic2017_bce-dice.py',
    dsnet_vanilla_conv='configs/dsnet/dsnet_isic2017_vanilla-conv.py',
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--src', default=DEFAULT_SRC,
                        help='the real ISIC 2017 set (official layout)')
    parser.add_argument('--data-root', default=osp.join(REPO_ROOT,
                                                        'data/isic2017'))
    parser.add_argument('--models', nargs='+', default=['dsnet'],
                        choices=sorted(CONFIGS))
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


def short_schedule_cfg(config, data_root, work_dir, epochs, train_images,
                       test_images, seed, lr=None, crop_size=None):
    """The config with the real data root, a short cosine schedule and
    optional subsets."""
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


def main(argv=None):
    args = parse_args(argv)
    if not osp.isdir(args.src):
        print(f'SKIP: the real ISIC 2017 set is not at {args.src}')
        return None
    if not osp.isfile(osp.join(args.data_root, 'meta.json')):
        print(f'Converting {args.src} -> {args.data_root} ...', flush=True)
        convert(args.src, args.data_root, year=2017, seed=0)
    results = {}
    for name in args.models:
        cfg = short_schedule_cfg(CONFIGS[name], args.data_root,
                                 osp.join(args.work_dir, name), args.epochs,
                                 args.train_images, args.test_images,
                                 args.seed, args.lr, args.crop_size)
        start = time.time()
        runner = Runner.from_cfg(cfg)
        runner.train()
        train_time = time.time() - start
        metrics = runner.test()
        # The same record tools/test.py writes, for the leaderboard tool.
        with open(osp.join(cfg.work_dir, 'test_metrics.json'), 'w') as f:
            json.dump(dict(config=CONFIGS[name], checkpoint=None,
                           metrics={k: float(v) for k, v in metrics.items()}),
                      f, indent=2)
        results[name] = dict(
            config=CONFIGS[name], epochs=args.epochs, seed=args.seed,
            train_images=len(runner.train_dataloader.dataset),
            test_images=len(runner.test_dataloader.dataset),
            input_size=args.crop_size or 256, device='cpu',
            threads=torch.get_num_threads(),
            train_time_s=round(train_time, 1),
            metrics={k: round(float(v), 2) for k, v in metrics.items()})
    os.makedirs(args.work_dir, exist_ok=True)
    out = osp.join(args.work_dir, 'real_check.json')
    with open(out, 'w') as f:
        json.dump(results, f, indent=2)
    keys = ('IoU', 'DSC', 'Acc', 'Sen', 'Spe', 'mIoU_img', 'TJ', 'mIoU')
    print(f'\nShort CPU schedule on real ISIC 2017 (lightweight split), '
          f'{args.epochs} epoch(s), input {args.crop_size or 256}px, '
          f'seed {args.seed}:')
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
