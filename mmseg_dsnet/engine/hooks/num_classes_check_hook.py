"""Check before a run that the model predicts the dataset's classes."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from mmseg_dsnet.utils.messages import counted


class NumClassesMismatchError(ValueError):
    """The model's head and the dataset disagree on the classes."""


def check_head_classes(heads, classes, phase, dataset_name):
    """Raise :class:`NumClassesMismatchError` when a head's ``num_classes``
    differs from the dataset's classes, or its ``out_channels`` is neither
    ``num_classes`` nor 1 (binary).

    Args:
        heads (Iterable[tuple]): ``(name, num_classes, out_channels)`` of
            each head, ``name`` as in the config (``decode_head``);
            ``out_channels`` None means ``num_classes``.
        classes (Sequence[str]): The dataset's classes.
        phase (str): ``training``, ``validation`` or ``test``.
        dataset_name (str): The dataset's type, for the message.
    """
    for name, num_classes, out_channels in heads:
        if num_classes != len(classes):
            raise NumClassesMismatchError(
                f'model.{name}.num_classes={num_classes} but the {phase} '
                f'dataset {dataset_name} has '
                f'{counted(len(classes), "class", "classes")} '
                f'{tuple(classes)}. Set num_classes={len(classes)} in the '
                'config (binary lesion heads: num_classes=2, '
                'out_channels=1, threshold=0.5).')
        out = num_classes if out_channels is None else out_channels
        if out not in (1, num_classes):
            raise NumClassesMismatchError(
                f'model.{name}.out_channels={out} must equal num_classes='
                f'{num_classes} or be 1 (binary).')


@HOOKS.register_module()
class NumClassesCheckHook(Hook):
    """Fail fast with a clear message when ``decode_head.num_classes`` (or an
    auxiliary head's) differs from the number of classes of the dataset, or
    when ``out_channels`` is neither ``num_classes`` nor 1 (binary).

    mmseg accepts ``num_classes=3, out_channels=1`` silently and the metric
    then counts classes the data does not have. The train and test tools
    run the same check on the config before the runner exists
    (:func:`~mmseg_dsnet.engine.preflight.check_dataset_classes`); this hook
    covers runners built by other code.
    """

    priority = 'VERY_HIGH'

    def _check(self, runner, loader, phase):
        dataset = getattr(loader, 'dataset', None)
        classes = getattr(dataset, 'metainfo', {}).get('classes')
        if not classes:
            return
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        heads = [('decode_head', getattr(model, 'decode_head', None))]
        aux = getattr(model, 'auxiliary_head', None)
        aux = aux if isinstance(aux, (list, tuple)) else [aux]
        heads += [(f'auxiliary_head[{i}]', h) for i, h in enumerate(aux)]
        check_head_classes(
            [(name, head.num_classes, getattr(head, 'out_channels', None))
             for name, head in heads
             if head is not None and hasattr(head, 'num_classes')],
            classes, phase, type(dataset).__name__)

    def before_train(self, runner) -> None:
        self._check(runner, runner.train_loop.dataloader, 'training')

    def before_val(self, runner) -> None:
        self._check(runner, runner.val_loop.dataloader, 'validation')

    def before_test(self, runner) -> None:
        self._check(runner, runner.test_loop.dataloader, 'test')
