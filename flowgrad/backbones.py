"""ResNet-18 built from torch alone, with torchvision's parameter names.

torchvision does not import next to the CPU torch build we use, and published
checkpoints (RCGrad, FlowGrad, Hear The Flow) name their tensors the torchvision
way (``conv1.weight``, ``layer1.0.bn2.running_var``, ...), so this module keeps
those names exactly; the classifier ``fc`` is left out because no localiser uses it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

POOLS = ("avg", "max", "none")


class BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that can be told to normalise with the statistics of its input.

    The RCGrad/FlowGrad reference never switches its audio encoder to eval mode,
    so at inference each clip is normalised by its own statistics. Setting
    ``use_input_stats`` reproduces that without touching the running buffers.
    Parameter and buffer names are those of ``nn.BatchNorm2d``.

    ``traceable`` (set by :meth:`flowgrad.models.base.Localiser.tracing`) writes
    the input-statistics normalisation out as ReduceMean, Sub, Mul, Sqrt, Div:
    the exporter's training-mode BatchNormalization needs a static batch and
    TensorRT does not parse it.
    """

    use_input_stats: bool = False
    traceable: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_input_stats and not self.training:
            if self.traceable:
                mean = x.mean(dim=(0, 2, 3), keepdim=True)
                dev = x - mean
                var = (dev * dev).mean(dim=(0, 2, 3), keepdim=True)
                y = dev / torch.sqrt(var + self.eps)
                return y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return super().forward(x)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (torchvision layout)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


@dataclass(frozen=True)
class ResNetConfig:
    """Options of :func:`resnet18`.

    in_channels: channels of the input image (3 RGB, 1 spectrogram or flow
        magnitude, 2 flow u/v, 4 RGB + flow).
    layer4_stride: 2 is the standard total stride 32 (224 -> 7x7); 1 gives
        total stride 16 (224 -> 14x14), as RCGrad's image encoder.
    pool: "avg" or "max" global pooling in :meth:`ResNet18.forward`, or "none"
        to return the feature map.
    width: channel multiplier; 1.0 is the published size (64..512 channels),
        smaller values give small demo and test models.
    """

    in_channels: int = 3
    layer4_stride: int = 2
    pool: str = "avg"
    width: float = 1.0

    def __post_init__(self):
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels}")
        if self.layer4_stride not in (1, 2):
            raise ValueError(f"layer4_stride must be 1 or 2, got {self.layer4_stride}")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if not 0 < self.width <= 4:
            raise ValueError(f"width must be in (0, 4], got {self.width}")

    def channels(self, base: int) -> int:
        """Channels of a stage whose full-width size is ``base``."""
        return max(4, int(round(base * self.width)))


class ResNet18(nn.Module):
    """ResNet-18 trunk (BasicBlocks [2, 2, 2, 2]) with torchvision names, no fc.

    Input (B, in_channels, H, W) float32. :meth:`features` returns the output of
    the last layer4 block after its ReLU, (B, C, H/s, W/s) with C = 512 * width
    and s = 32 (or 16 with layer4_stride 1); :meth:`forward` pools it to (B, C)
    unless pool is "none".
    """

    def __init__(self, config: ResNetConfig):
        super().__init__()
        self.config = config
        c1, c2, c3, c4 = (config.channels(b) for b in (64, 128, 256, 512))
        self.out_channels = c4
        self.conv1 = nn.Conv2d(config.in_channels, c1, 7, 2, 3, bias=False)
        self.bn1 = BatchNorm2d(c1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(c1, c1), BasicBlock(c1, c1))
        self.layer2 = nn.Sequential(BasicBlock(c1, c2, 2), BasicBlock(c2, c2))
        self.layer3 = nn.Sequential(BasicBlock(c2, c3, 2), BasicBlock(c3, c3))
        self.layer4 = nn.Sequential(
            BasicBlock(c3, c4, config.layer4_stride), BasicBlock(c4, c4)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> last layer4 activation (B, C, h, w)."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected input (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}"
            )
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, C) pooled, or the feature map if pool is "none"."""
        a = self.features(x)
        if self.config.pool == "avg":
            return a.mean(dim=(2, 3))
        if self.config.pool == "max":
            return a.amax(dim=(2, 3))
        return a

    def use_input_stats(self, enabled: bool) -> None:
        """Make every BatchNorm use its input's statistics in eval mode (reference quirk)."""
        for m in self.modules():
            if isinstance(m, BatchNorm2d):
                m.use_input_stats = enabled


def resnet18(
    in_channels: int = 3, layer4_stride: int = 2, pool: str = "avg", width: float = 1.0
) -> ResNet18:
    """Build a :class:`ResNet18`; see :class:`ResNetConfig` for the options."""
    return ResNet18(ResNetConfig(in_channels, layer4_stride, pool, width))
