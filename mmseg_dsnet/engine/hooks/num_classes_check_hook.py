"""Check before a run that the model predicts the dataset's classes."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


class NumClassesMismatchError(ValueError):
    """The model's head and the dataset disagree on the classes."""


@HOOKS.register_module()
class NumClassesCheckHook(Hook):
    """Fail fast with a clear message when ``decode_head.num_classes`` (or an
    auxiliary head's) differs from the number of classes of the dataset, or
    when ``out_channels`` is neither ``num_classes`` nor 1 (binary).

    mmseg accepts ``num_classes=3, out_channels=1`` silently and the metric
    then counts classes the data does not have.
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
        for name, head in heads:
            if head is None or not hasattr(head, 'num_classes'):
                continue
            if head.num_classes != len(classes):
                raise NumClassesMismatchError(
                    f'model.{name}.num_classes={head.num_classes} but the '
                    f'{phase} dataset {type(dataset).__name__} has '
                    f'{len(classes)} classes {tuple(classes)}. Set '
                    f'num_classes={len(classes)} in the config (binary '
                    'lesion heads: num_classes=2, out_channels=1, '
                    'threshold=0.5).')
            out = getattr(head, 'out_channels', head.num_classes)
            if out not in (1, head.num_classes):
                raise NumClassesMismatchError(
                    f'model.{name}.out_channels={out} must equal num_classes='
                    f'{head.num_classes} or be 1 (binary).')

    def before_train(self, runner) -> None:
        self._check(runner, runner.train_loop.dataloader, 'training')

    def before_val(self, runner) -> None:
        self._check(runner, runner.val_loop.dataloader, 'validation')

    def before_test(self, runner) -> None:
        self._check(runner, runner.test_loop.dataloader, 'test')
