"""Design runs trained together by the fast trainer (``tools/fast_train.py``:
decoded-image cache, device augmentation, CUDA-graph step, one stream per
run), each judged once on the design hold-out after its last epoch and
recorded as ``tools/check_real_data.py --split design`` records its runs.
The command line is ``tools/analysis_tools/design_sweep.py --fast``.

The fast trainer drops the last partial batch of each epoch and keeps
rotated images in float, so its runs are another experiment than the
runs of mmengine's loop: their records say ``(fast_train)`` in ``device``
and the design tables compare them only with each other.
"""
import os.path as osp
from typing import Dict, Sequence

from ..utils.code_revision import running_code_revision
from .real_data_check import (CONFIGS, FAST_TRAINER_TAG,
                              design_model_config, optimizer_lr,
                              recorded_metrics, short_schedule_cfg,
                              write_design_record)
from .records import metrics_record
from .sweep import SweepJob


def fast_device_name(device) -> str:
    """The ``device`` of a fast design record: ``'cpu (fast_train)'`` or
    ``'cuda: <name> (fast_train)'``.

    Args:
        device (torch.device): Where the runs train.
    """
    import torch
    if device.type == 'cuda':
        return f'cuda: {torch.cuda.get_device_name(device)} ' \
            f'{FAST_TRAINER_TAG}'
    return f'cpu {FAST_TRAINER_TAG}'


def fast_design_specs(jobs: Sequence[SweepJob], data_root: str,
                      work_dir: str, epochs: int, crop_size: int,
                      train_images: int = None) -> list:
    """One fast-training run per design job, with the design runs' short
    schedule (:func:`short_schedule_cfg` with ``split='design'``), each
    checked as ``tools/fast_train.py`` checks its configs, and all sharing
    their training data, batch size and epochs.

    Args:
        jobs (Sequence[SweepJob]): The runs, most important first (a time
            limit stops runs from the end).
        data_root (str): The converted ISIC 2017 set.
        work_dir (str): The sweep's work dir (one folder per run).
        epochs (int): The schedule's epochs.
        crop_size (int): The square input size.
        train_images (int, optional): Train on the first N design-train
            images.

    Returns:
        list[RunSpec]: In the order of ``jobs``.
    """
    from mmseg_dsnet.engine.fast_training import (RunSpec,
                                                  check_fast_run_config,
                                                  shared_training_setup)
    from mmseg_dsnet.engine.preflight import (ConfigFileError,
                                              check_no_earlier_run,
                                              check_one_lesion_figure_set)
    from mmseg_dsnet.utils.errors import UserError
    specs = []
    for job in jobs:
        # A model name is a config of the repository; a file is read where
        # it was given (short_schedule_cfg reads a relative path from the
        # repository root: a sweep run elsewhere trained the repository's
        # file of that path, not the one given).
        config = CONFIGS.get(job.candidate) or osp.abspath(job.candidate)
        run_dir = osp.join(work_dir, job.name)
        check_no_earlier_run(run_dir, resumable=False)
        cfg = short_schedule_cfg(config, data_root, run_dir, epochs,
                                 train_images, None, job.seed,
                                 crop_size=crop_size, split='design')
        # Judged in the trainer's own process, one run after the other:
        # loader workers would be started for each.
        cfg.val_dataloader.num_workers = 0
        cfg.val_dataloader.persistent_workers = False
        check_fast_run_config(cfg, config, validate=True)
        # Its record keeps the validation's figures, refused after the
        # training when they are not one LesionMetric's.
        try:
            check_one_lesion_figure_set('val_evaluator', cfg.val_evaluator)
        except UserError as err:
            raise ConfigFileError(f'config file {config}: {err}') from None
        specs.append(RunSpec(cfg, config, job.seed, run_dir))
    # Runs trained together share one image cache and iteration count.
    shared_training_setup(specs)
    return specs


def fast_design_record(job: SweepJob, spec, summary: dict,
                       device_name: str, input_size: int) -> dict:
    """The design record of a finished fast run: the fields of
    ``check_real_data.py``'s records, the metrics of its validation after
    the last epoch on the design hold-out.

    Args:
        job (SweepJob): The run's job.
        spec (RunSpec): Its spec (the config it trained).
        summary (dict): Its summary from :meth:`FastTrainer.train`.
        device_name (str): :func:`fast_device_name`.
        input_size (int): The square input size it trained at.
    """
    import torch
    cfg = spec.cfg
    validation = summary['last_validation']
    evaluated = metrics_record(spec.config_path, summary['checkpoint'],
                               validation['metrics'],
                               cfg.val_dataloader.dataset,
                               validation['images'])
    lr = optimizer_lr(cfg)
    return dict(
        config=spec.config_path, epochs=summary['epochs'], seed=job.seed,
        split='design', train_split=cfg.train_dataloader.dataset.ann_file,
        eval_split=cfg.val_dataloader.dataset.ann_file,
        train_images=summary['train_images'],
        test_images=evaluated['images'],
        input_size=input_size,
        device=device_name, **({} if lr is None else dict(lr=lr)),
        threads=torch.get_num_threads(),
        model_config=design_model_config(cfg),
        # The code that trained it (its last part, if resumed).
        code_revision=running_code_revision(),
        # The runs trained together: the loop's time is all of theirs.
        train_time_s=summary['loop_seconds'],
        runs_together=summary['runs_together'],
        trainer=dict(tool='tools/fast_train.py',
                     cuda_graph=summary['cuda_graph'],
                     channels_last=summary['channels_last'],
                     batches_per_epoch=summary['iters_per_epoch']),
        metrics=recorded_metrics(validation['metrics'], spec.config_path),
        **{k: v for k, v in evaluated.items()
           if k not in ('config', 'checkpoint', 'metrics', 'cfg_options',
                        'test_time_augmentation')})


def run_fast_design(jobs: Sequence[SweepJob], specs: Sequence,
                    record_dir: str, device, input_size: int,
                    time_limit: float = None,
                    progress: bool = True) -> Dict[str, str]:
    """Train ``specs`` together, validate each once after its last epoch
    and write a design record for every run that finished.

    Args:
        jobs (Sequence[SweepJob]): The runs' jobs.
        specs (Sequence[RunSpec]): :func:`fast_design_specs` of ``jobs``.
        record_dir (str): Where the records go.
        device (torch.device): Where to train.
        input_size (int): The square input size of ``specs``.
        time_limit (float, optional): Seconds the training loop may take
            (runs are stopped from the end of the list).
        progress (bool): Console progress. Default: True.

    Returns:
        dict: Job name -> ``'done'`` or ``'stopped (<why>)'``.
    """
    from mmseg_dsnet.engine.fast_training import FastTrainer
    epochs = specs[0].cfg.train_cfg.max_epochs
    trainer = FastTrainer(specs, device=device, val_interval=epochs,
                          time_limit=time_limit, progress=progress)
    summaries = trainer.train()
    device_name = fast_device_name(trainer.device)
    statuses = {}
    for job, spec, summary in zip(jobs, specs, summaries):
        if not summary['completed']:
            statuses[job.name] = f'stopped ({summary["stopped"]})'
            continue
        record = fast_design_record(job, spec, summary, device_name,
                                    input_size)
        write_design_record(record_dir, job.record_name, record)
        statuses[job.name] = 'done'
    return statuses
