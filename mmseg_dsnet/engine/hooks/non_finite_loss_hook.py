"""Stop training at the first NaN/inf loss, before a checkpoint can hold
corrupted weights."""
import math

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss or weights."""


def _non_finite_entries(values):
    """Names and values of the entries of a loss dict that are not finite
    (of a tensor, its first element that is not)."""
    bad = {}
    for name, value in values.items():
        if isinstance(value, torch.Tensor):
            if value.numel() == 0:
                continue
            # Element by element in the tensor's own dtype: a float32 sum
            # overflows to inf for large finite values (and a float64
            # loss beyond float32's range), a false stop reading "inf".
            value = value.detach()
            finite = torch.isfinite(value)
            if bool(finite.all()):
                continue
            value = float(value[~finite].flatten()[0])
        if isinstance(value, (int, float)) and not math.isfinite(value):
            bad[name] = value
    return bad


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` naming the epoch and iteration as
    soon as a training loss is NaN or infinite, and refuse to write a
    checkpoint whose weights are not finite.

    The run stops before the epoch's checkpoint is written, so the last
    good checkpoint stays the latest one (``--resume`` continues from it).
    In distributed training every rank stops at the same iteration.

    Args:
        check_checkpoint (bool): Also check the weights before each
            checkpoint is saved. Defaults to True.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, check_checkpoint=True):
        self.check_checkpoint = check_checkpoint

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        bad = _non_finite_entries(outputs or {})
        if get_world_size() > 1:
            flag = torch.tensor(float(bool(bad)))
            all_reduce(flag)
            if flag.item() == 0:
                return
        elif not bad:
            return
        where = (f'epoch {runner.epoch + 1}, iteration {batch_idx + 1}'
                 f'/{len(runner.train_loop.dataloader)} of the epoch '
                 f'(global iteration {runner.iter + 1})')
        values = ', '.join(f'{k}={v}' for k, v in bad.items()) or \
            'on another rank'
        last = runner.message_hub.get_info('last_ckpt')
        kept = (f'The last good checkpoint is {last}; nothing was saved '
                'after it.' if last else 'No checkpoint was written.')
        raise NonFiniteLossError(
            f'Non-finite loss at {where}: {values}. Training stopped. '
            f'{kept} Lower the learning rate, check the data, or enable '
            'gradient clipping (optim_wrapper.clip_grad), then continue '
            'with --resume.')

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        if not self.check_checkpoint:
            return
        for name, tensor in checkpoint.get('state_dict', {}).items():
            if not isinstance(tensor, torch.Tensor) or \
                    not tensor.is_floating_point():
                continue
            if not bool(torch.isfinite(tensor).all()):
                raise NonFiniteLossError(
                    'Refusing to save a checkpoint at epoch '
                    f'{runner.epoch + 1} (iteration {runner.iter}): weight '
                    f'{name!r} holds NaN or inf values. The previous '
                    'checkpoints are untouched.')
