"""Image context: a summary of the whole image added to every pixel."""
import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from ...utils.errors import ModelArgumentError


@MODELS.register_module()
class ImageContext(nn.Module):
    """``out = x + expand(relu(reduce(mean_hw(x))))``.

    The feature map is averaged over all pixels, passed through two 1x1
    convolutions (a ``hidden_channels`` bottleneck) and added back to every
    pixel, so each position knows what the whole image holds (for a
    lesion, how much of the picture it fills) however far its receptive
    field reaches. ``expand`` starts at zero: the block starts as the
    identity. It has no norm layer, so it is already in deploy form.

    Args:
        channels (int): Channels of the input and output.
        hidden_channels (int): Channels of the bottleneck.
    """

    def __init__(self, channels: int, hidden_channels: int):
        super().__init__()
        if channels < 1 or hidden_channels < 1:
            raise ModelArgumentError(
                'ImageContext needs channels and hidden_channels >= 1, got '
                f'{channels} and {hidden_channels}')
        self.reduce = nn.Conv2d(channels, hidden_channels, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(hidden_channels, channels, 1)
        nn.init.zeros_(self.expand.weight)
        nn.init.zeros_(self.expand.bias)

    def forward(self, x: Tensor) -> Tensor:
        summary = x.mean(dim=(2, 3), keepdim=True)
        return x + self.expand(self.act(self.reduce(summary)))
