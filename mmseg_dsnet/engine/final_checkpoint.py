"""Evaluate a finished run's final checkpoint in a runner of its own, as
``tools/test.py`` evaluates it.

The training runner's ``test()`` calls every hook's ``before_run`` a second
time; mmengine's ``EMAHook`` then rebuilds its average from the last weights,
so a run with weight averaging would be scored on weights that its checkpoint
does not hold. A fresh runner loads the checkpoint and scores exactly that.
"""
import os.path as osp


def final_checkpoint(cfg):
    """The checkpoint an epoch-based run writes after its last epoch
    (mmengine's ``CheckpointHook`` saves the last epoch whatever its
    interval).

    Args:
        cfg (Config): The run's config, with ``work_dir`` set.

    Returns:
        str: ``<work_dir>/epoch_<max_epochs>.pth``.
    """
    return osp.join(cfg.work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')


def evaluate_final_checkpoint(cfg):
    """Score the final checkpoint of the run ``cfg`` trained.

    Args:
        cfg (Config): The training config, with ``work_dir`` set.

    Returns:
        tuple[Runner, dict, str]: The evaluating runner (its ``model`` holds
        the checkpoint's weights), the test evaluator's metrics and the
        checkpoint's path.
    """
    from mmengine.runner import Runner
    checkpoint = final_checkpoint(cfg)
    test_cfg = cfg.copy()
    test_cfg.load_from = checkpoint
    test_cfg.resume = False
    # A visualizer of its own: mmengine keeps one instance per name.
    if test_cfg.get('visualizer') is not None:
        test_cfg.visualizer.name = (
            f'{test_cfg.visualizer.get("name", "visualizer")}_final_test')
    tester = Runner.from_cfg(test_cfg)
    return tester, tester.test(), checkpoint
