"""One model trained by the fast loop: its optimizer, schedule and step."""
import copy
from typing import Dict, List

import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

from .decoded_cache import DecodedImageCache
from .errors import FastTrainingError
from .gpu_augmentation import BatchedSegAugmentation
from .graph_safe_losses import graph_safe_losses

SUPPORTED_OPTIMIZERS = ('AdamW', 'Adam')


def scale_learning_rates(optim_wrapper, auto_scale_lr,
                         batch_size: int) -> float:
    """Scale the rates of ``optim_wrapper``'s parameter groups as mmengine's
    ``Runner.scale_lr`` does on one process when the config's
    ``auto_scale_lr`` is enabled: by ``batch_size / base_batch_size``,
    after the optimizer is built and before its schedulers are.

    Args:
        optim_wrapper (OptimWrapper): The built optimizer wrapper.
        auto_scale_lr (dict | None): The config's ``auto_scale_lr``.
        batch_size (int): Images per step (one process).

    Returns:
        float: The ratio applied (1.0 when scaling is off).
    """
    if not auto_scale_lr or not auto_scale_lr.get('enable', False):
        return 1.0
    ratio = float(batch_size) / float(auto_scale_lr['base_batch_size'])
    for group in optim_wrapper.optimizer.param_groups:
        group['lr'] = group['lr'] * ratio
    return ratio


def learning_rate_table(optim_wrapper, scheduler_cfgs: List[dict],
                        iters_per_epoch: int, max_epochs: int) -> Tensor:
    """Learning rate of every parameter group at every iteration.

    Steps the config's own mmengine schedulers exactly as mmengine's
    ``ParamSchedulerHook`` does (epoch-based ones after each epoch,
    iteration-based ones after each iteration) and records the rate each
    iteration trains with. The optimizer's rates are restored afterwards.

    Returns:
        Tensor: float64 ``(max_epochs * iters_per_epoch, num_groups)``.
    """
    optimizer = optim_wrapper.optimizer
    saved = [copy.copy(group) for group in optimizer.param_groups]
    schedulers = []
    if isinstance(scheduler_cfgs, dict):
        # mmengine's runner takes one scheduler as a dict (iterating it
        # gives its keys: an AttributeError once the images are decoded).
        scheduler_cfgs = [scheduler_cfgs]
    for cfg in copy.deepcopy(scheduler_cfgs or []):
        if cfg.pop('convert_to_iter_based', False):
            cls = PARAM_SCHEDULERS.get(cfg.pop('type'))
            schedulers.append(
                cls.build_iter_from_epoch(
                    optim_wrapper, **cfg, epoch_length=iters_per_epoch))
        else:
            schedulers.append(
                PARAM_SCHEDULERS.build(dict(cfg, optimizer=optim_wrapper)))
    rows = []
    for _ in range(max_epochs):
        for _ in range(iters_per_epoch):
            rows.append([group['lr'] for group in optimizer.param_groups])
            for scheduler in schedulers:
                if not scheduler.by_epoch:
                    scheduler.step()
        for scheduler in schedulers:
            if scheduler.by_epoch:
                scheduler.step()
    for group, old in zip(optimizer.param_groups, saved):
        group.clear()
        group.update(old)
    return torch.tensor(rows, dtype=torch.float64)


class TrainingRun:
    """A model, its optimizer and one training step on cached batches.

    The step gathers a batch from the :class:`DecodedImageCache` by a
    device index tensor, augments and normalises it on the device, and runs
    mmseg's own ``model.loss`` / ``parse_losses``, backward and the
    optimizer. With ``cuda_graph=True`` the whole step is captured once and
    replayed, so each iteration costs one launch instead of thousands.

    Args:
        cfg (Config): The run's config (model, optim_wrapper,
            param_scheduler).
        cache (DecodedImageCache): Training data on ``device``.
        augmentation (BatchedSegAugmentation): The random transforms.
        batch_size (int): Images per step.
        iters_per_epoch (int): Steps per epoch.
        max_epochs (int): Epochs.
        device (torch.device): Where to train.
        cuda_graph (bool): Capture the step in a CUDA graph (CUDA only).
        channels_last (bool): Feed the model channels-last inputs.
        fused_optimizer (bool): Use torch's fused Adam(W) kernels on CUDA.
        amp (bool): Run forward and loss under bfloat16 autocast (CUDA).
            Default: False.
        compile (bool): ``torch.compile`` the backbone and decode head in
            place (fewer, fused kernels; slow first step). Default: False.
        seed (int): Seed of the run's own generator for the augmentation,
            so a run does not depend on the runs trained beside it.
            Default: 0.
    """

    def __init__(self,
                 cfg,
                 cache: DecodedImageCache,
                 augmentation: BatchedSegAugmentation,
                 batch_size: int,
                 iters_per_epoch: int,
                 max_epochs: int,
                 device: torch.device,
                 cuda_graph: bool = False,
                 channels_last: bool = False,
                 fused_optimizer: bool = True,
                 amp: bool = False,
                 compile: bool = False,
                 seed: int = 0):
        if cuda_graph and device.type != 'cuda':
            raise FastTrainingError('cuda_graph needs a CUDA device')
        self.cfg = cfg
        self.cache = cache
        self.augmentation = augmentation
        self.batch_size = batch_size
        self.device = device
        self.cuda_graph = cuda_graph
        self.channels_last = channels_last
        self.amp = amp

        self.model = MODELS.build(cfg.model)
        self.model.init_weights()
        self.model.to(device).train()
        if compile:
            for name in ('backbone', 'neck', 'decode_head', 'auxiliary_head'):
                module = getattr(self.model, name, None)
                if isinstance(module, torch.nn.Module):
                    module.compile()  # in place: state-dict keys unchanged
        preprocessor = cfg.model.get('data_preprocessor') or {}
        size = preprocessor.get('size')
        if size is not None and tuple(size) != tuple(cache.images.shape[2:]):
            raise FastTrainingError(
                f'data_preprocessor.size {tuple(size)} differs from the '
                f'cached image size {tuple(cache.images.shape[2:])}: fast '
                'training does not pad; make the Resize scale and the '
                'preprocessor size equal')
        divisor = preprocessor.get('size_divisor')
        if size is None and divisor and any(
                side % divisor for side in cache.images.shape[2:]):
            raise FastTrainingError(
                f'data_preprocessor.size_divisor {divisor} pads the cached '
                f'image size {tuple(cache.images.shape[2:])} (tools/train.py '
                'trains on the padded images), and fast training does not '
                'pad; make the Resize scale a multiple of it')
        # mmseg's SegDataPreProcessor reverses the channels for either
        # (reading only bgr_to_rgb, rgb_to_bgr=True would train on the
        # other channel order than tools/train.py).
        self.bgr_to_rgb = bool(preprocessor.get('bgr_to_rgb', False)
                               or preprocessor.get('rgb_to_bgr', False))
        mean = preprocessor.get('mean')
        std = preprocessor.get('std')
        self.mean = None if mean is None else torch.tensor(
            mean, device=device, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(
            std, device=device, dtype=torch.float32).view(1, -1, 1, 1)

        optim_cfg = cfg.optim_wrapper
        wrapper_type = optim_cfg.get('type', 'OptimWrapper')
        if wrapper_type != 'OptimWrapper' or optim_cfg.get('clip_grad') or \
                optim_cfg.get('accumulative_counts', 1) != 1:
            raise FastTrainingError(
                'fast training supports a plain OptimWrapper without '
                f'clip_grad or accumulation, got {dict(optim_cfg)}')
        optimizer_type = optim_cfg.optimizer['type']
        if optimizer_type not in SUPPORTED_OPTIMIZERS:
            raise FastTrainingError(f'fast training supports the optimizers '
                             f'{SUPPORTED_OPTIMIZERS}, got {optimizer_type}')
        # mmengine builds the parameter groups (paramwise_cfg included) and
        # its schedulers give the rates; the step itself uses torch's
        # optimizer with the same groups.
        wrapper = build_optim_wrapper(self.model, optim_cfg)
        # The config's auto_scale_lr, as tools/train.py on one GPU applies
        # it (left out, the run would train at another learning rate than
        # the config's).
        self.lr_scale = scale_learning_rates(
            wrapper, cfg.get('auto_scale_lr'), batch_size)
        self.lr_table = learning_rate_table(
            wrapper, cfg.get('param_scheduler'), iters_per_epoch, max_epochs)
        self.optimizer = self._make_optimizer(
            optimizer_type, wrapper.optimizer.param_groups, fused_optimizer)
        self._current_lr = None

        # Inputs of the step: which cached images form the batch, and the
        # uniform numbers of its augmentation (from the run's generator).
        self.batch_index = torch.zeros(
            batch_size, dtype=torch.long, device=device)
        self.generator = torch.Generator(device)
        self.generator.manual_seed(seed)
        self.draws = torch.zeros(
            batch_size, augmentation.num_draws, device=device)
        self.graph = None
        self.loss = None
        self.log_vars: Dict[str, Tensor] = {}
        self.stream = torch.cuda.Stream(device) if cuda_graph else None

    def _make_optimizer(self, optimizer_type, groups, fused):
        cls = getattr(torch.optim, optimizer_type)
        on_cuda = self.device.type == 'cuda'
        keep = ('betas', 'eps', 'weight_decay', 'amsgrad')
        new_groups = []
        for group in groups:
            new = {k: group[k] for k in keep if k in group}
            new['params'] = group['params']
            # A tensor rate can change between replays of a captured step.
            new['lr'] = torch.tensor(
                float(group['lr']), device=self.device) if self.cuda_graph \
                else float(group['lr'])
            new_groups.append(new)
        options = {}
        if on_cuda:
            options = dict(capturable=self.cuda_graph)
            options['fused' if fused else 'foreach'] = True
        return cls(new_groups, **options)

    def set_iteration(self, iteration: int) -> None:
        """Set the learning rates the given (0-based) iteration uses."""
        rates = self.lr_table[iteration].tolist()
        if rates == self._current_lr:
            return
        for group, rate in zip(self.optimizer.param_groups, rates):
            if isinstance(group['lr'], Tensor):
                group['lr'].fill_(rate)
            else:
                group['lr'] = rate
        self._current_lr = rates

    @property
    def learning_rate(self) -> float:
        return self._current_lr[0] if self._current_lr else float('nan')

    def _batch(self):
        images = self.cache.images.index_select(0, self.batch_index).float()
        labels = self.cache.labels.index_select(0, self.batch_index)
        images, labels = self.augmentation(images, labels, self.draws)
        if self.bgr_to_rgb:
            images = images.flip(1)
        if self.mean is not None:
            images = (images - self.mean) / self.std
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        height, width = images.shape[2:]
        samples = []
        for i in range(images.shape[0]):
            sample = SegDataSample(
                metainfo=dict(img_shape=(height, width),
                              pad_shape=(height, width),
                              ori_shape=(height, width)))
            sample.gt_sem_seg = PixelData(data=labels[i:i + 1])
            samples.append(sample)
        return images, samples

    def _forward_backward(self) -> None:
        images, samples = self._batch()
        # No autocast weight cache: it cannot live across graph replays.
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.amp, cache_enabled=False):
            losses = self.model.loss(images, samples)
            loss, log_vars = self.model.parse_losses(losses)
        loss.backward()
        self.optimizer.step()
        self.loss = loss.detach()
        self.log_vars = {k: v.detach() for k, v in log_vars.items()}

    def eager_step(self) -> None:
        """One step without a graph (also the warm-up before capture)."""
        self.optimizer.zero_grad(set_to_none=True)
        with graph_safe_losses(self.model):
            self._forward_backward()

    def capture(self) -> None:
        """Record the step in a CUDA graph (after at least one eager step,
        which creates the optimizer state and picks the cuDNN kernels)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with graph_safe_losses(self.model), torch.cuda.graph(
                self.graph, stream=self.stream):
            self._forward_backward()

    def draw(self) -> None:
        """Fill ``draws`` for the next step (outside any graph)."""
        torch.rand(self.draws.shape, generator=self.generator,
                   device=self.device, out=self.draws)

    def step(self, iteration: int) -> None:
        """Train on the batch in ``batch_index`` with the rates of
        ``iteration``."""
        self.set_iteration(iteration)
        self.draw()
        if self.graph is None:
            self.eager_step()
        else:
            self.graph.replay()

    def scalars(self) -> Dict[str, float]:
        """The last step's loss terms as floats (waits for the device)."""
        if self.stream is not None:
            self.stream.synchronize()
        values = {k: float(v) for k, v in self.log_vars.items()}
        values['lr'] = self.learning_rate
        return values
