"""Evaluate a finished run's final checkpoint in a runner of its own, as
``tools/test.py`` evaluates it.

The training runner's ``test()`` calls every hook's ``before_run`` a second
time; mmengine's ``EMAHook`` then rebuilds its average from the last weights,
so a run with weight averaging would be scored on weights that its checkpoint
does not hold. A fresh runner loads the checkpoint and scores exactly that.
"""
import os.path as osp

from ..utils.errors import UserError


class FinalCheckpointError(UserError):
    """The run saved no checkpoint of its final weights."""


def final_checkpoint(cfg, runner):
    """The checkpoint the run ``runner`` trained saved after its last
    iteration.

    It is the checkpoint mmengine's ``CheckpointHook`` saved last in this
    run, wherever it saved it (``out_dir``), not the file that would be
    ``<work_dir>/epoch_<max_epochs>.pth``: that may be another run's, left
    in the work dir, while this run saved elsewhere or not after its last
    epoch (``save_last=False``).

    Args:
        cfg (Config): The run's config, with ``work_dir`` set.
        runner (Runner): The runner that trained, after ``train()``.

    Returns:
        str: The checkpoint's path.

    Raises:
        FinalCheckpointError: The run saved no checkpoint, or its last one
            is not of its final weights (nothing is scored).
    """
    from mmengine.runner.checkpoint import _load_checkpoint

    from ..compat import checkpoint_meta
    last = runner.message_hub.get_info('last_ckpt')
    fix = ('nothing was scored; let default_hooks.checkpoint save the last '
           'epoch (save_last=True)')
    if last is None:
        raise FinalCheckpointError(
            f'the run in {cfg.work_dir} saved no checkpoint; {fix}')
    # mmengine's loader: the checkpoint hook may save to a remote backend.
    meta = checkpoint_meta(_load_checkpoint(last, map_location='cpu'))
    if meta.get('iter') != runner.iter:
        raise FinalCheckpointError(
            f'the last checkpoint of the run in {cfg.work_dir}, {last}, is '
            f'of epoch {meta.get("epoch")}, not of its final weights (epoch '
            f'{runner.epoch}); {fix}')
    # Named as the work dir was given (mmengine makes it absolute).
    if osp.dirname(osp.abspath(last)) == osp.abspath(cfg.work_dir):
        return osp.join(cfg.work_dir, osp.basename(last))
    return last


def evaluate_final_checkpoint(cfg, runner):
    """Score the final checkpoint of the run ``cfg`` trained.

    Args:
        cfg (Config): The training config, with ``work_dir`` set.
        runner (Runner): The runner that trained, after ``train()``
            (:func:`final_checkpoint`).

    Returns:
        tuple[Runner, dict, str]: The evaluating runner (its ``model`` holds
        the checkpoint's weights), the test evaluator's metrics and the
        checkpoint's path.

    Raises:
        FinalCheckpointError: See :func:`final_checkpoint`.
    """
    from .log_dir import build_runner
    checkpoint = final_checkpoint(cfg, runner)
    test_cfg = cfg.copy()
    test_cfg.load_from = checkpoint
    test_cfg.resume = False
    # A visualizer of its own: mmengine keeps one instance per name.
    if test_cfg.get('visualizer') is not None:
        test_cfg.visualizer.name = (
            f'{test_cfg.visualizer.get("name", "visualizer")}_final_test')
    # A log folder of its own: a training done within the second it
    # started in shared its folder with this test (one log, and its
    # vis_data/config.py replaced by this test's config).
    tester = build_runner(test_cfg)
    return tester, tester.test(), checkpoint
