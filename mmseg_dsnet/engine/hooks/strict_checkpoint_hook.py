"""Refuse a ``load_from`` / ``--resume`` checkpoint that does not fit the
model, before any weight is copied."""
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..checkpoint_match import check_checkpoint_matches, mark_partial_load


@HOOKS.register_module()
class StrictCheckpointHook(Hook):
    """Check every checkpoint the Runner loads (``load_from``, ``resume``,
    ``tools/test.py``) against the model: a missing, unexpected or mis-shaped
    key raises :class:`~mmseg_dsnet.engine.checkpoint_match.
    CheckpointMismatchError`.

    mmengine's Runner loads with ``strict=False`` and only logs the
    differences, so a checkpoint of another model would be trained on or
    evaluated as a randomly initialised network. The Runner calls
    ``after_load_checkpoint`` after reading the file and before copying the
    weights.

    The top-level config key ``load_from_strict`` (default True) set to
    False allows a partial checkpoint on purpose (e.g. backbone weights
    only): at least one tensor must match by name and shape, no shared key
    may have another shape, and how many of the model's tensors were
    loaded is logged.

    Each checkpoint saved records in its ``meta`` the number of processes
    that trained it (``world_size``), which ``--resume`` compares.
    """

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint):
        # How many processes trained (each with batch_size images a step):
        # a resume with another number trains with another batch and
        # schedule (resume_check.check_resume_checkpoint).
        checkpoint.setdefault('meta', {})['world_size'] = runner.world_size

    def after_load_checkpoint(self, runner, checkpoint):
        cfg = runner.cfg
        strict = bool(cfg.get('load_from_strict', True))
        filename = cfg.get('load_from')
        if not filename and cfg.get('resume'):
            # mmengine's own auto-resume reads the same pointer file.
            from mmengine.runner import find_latest_checkpoint
            filename = find_latest_checkpoint(runner.work_dir)
        loaded, total = check_checkpoint_matches(
            runner.model, checkpoint, getattr(cfg, 'filename', None),
            filename, strict)
        if not strict:
            # mmengine lists the keys it left among many log lines; say
            # once how much of the model starts from the checkpoint.
            rest = total - loaded
            runner.logger.info(
                f'Partial checkpoint {filename}: {loaded} of the model\'s '
                f'{total} tensors loaded from it; the other {rest} '
                f'{"keeps its" if rest == 1 else "keep their"} initial '
                'weights.')
            # Checked as a partial load on purpose: the model's own check
            # (StrictLoadingMixin) lets it through.
            mark_partial_load(checkpoint, runner.model)
