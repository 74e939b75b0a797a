"""Embedding networks: a small CNN, ImageNet backbones (MobileNetV2, EfficientNet-Lite0), the seed CNN."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

POOL_GRID = (2, 4)


def _conv_block(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallFishNet(nn.Module):
    """Four stride-2 stages (32-256 channels), average+max pooling, L2-normalised embedding."""

    def __init__(self, embedding_dim: int = 128, in_channels: int = 3) -> None:
        super().__init__()
        widths = (32, 64, 128, 256)
        stages: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            stages.append(_conv_block(previous, width, stride=2))
            previous = width
        self.features = nn.Sequential(*stages)
        # BatchNorm on the embedding (a "BN neck") keeps its dimensions centred and spread, which
        # stops the L2-normalised vectors from collapsing onto one direction early in training.
        # Crops are roughly aligned (a fish fills the frame, head to one side), so where a mark
        # sits is part of the fingerprint: pool to a coarse grid instead of one global vector.
        self.pool = nn.AdaptiveAvgPool2d(POOL_GRID)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(previous * POOL_GRID[0] * POOL_GRID[1], embedding_dim),
            nn.BatchNorm1d(embedding_dim),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.pool(self.features(image))), dim=1)


class ResNetEmbedder(nn.Module):
    """A torchvision ResNet-18 trunk with an L2-normalised embedding head."""

    def __init__(self, embedding_dim: int = 128) -> None:
        super().__init__()
        from torchvision.models import resnet18

        self.trunk = resnet18(weights=None)
        features = self.trunk.fc.in_features
        self.trunk.fc = nn.Identity()
        self.head = nn.Sequential(nn.Linear(features, embedding_dim), nn.BatchNorm1d(embedding_dim))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.trunk(image)), dim=1)


class SeedSiamese(nn.Module):
    """The seed study's network: 3 reflection-padded 3x3 convs (4, 8, 8), FC 500-500-5."""

    def __init__(self, input_height: int = 100, input_width: int = 100, embedding_dim: int = 5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = 1
        for width in (4, 8, 8):
            layers += [
                nn.ReflectionPad2d(1),
                nn.Conv2d(previous, width, 3),
                nn.ReLU(inplace=True),
                nn.BatchNorm2d(width),
            ]
            previous = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Linear(8 * input_height * input_width, 500),
            nn.ReLU(inplace=True),
            nn.Linear(500, 500),
            nn.ReLU(inplace=True),
            nn.Linear(500, embedding_dim),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        embedding: torch.Tensor = self.fc(self.features(image).flatten(1))
        return embedding


class GeneralisedMeanPool(nn.Module):
    """GeM pooling (Radenovic et al. 2018): the p-th root of the mean of p-th powers, p learnt
    from 3. p = 1 is average pooling and a large p approaches max pooling: a few bright, distinct
    marks can then outweigh a flank's uniform background."""

    def __init__(self, power: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.power = nn.Parameter(torch.tensor(power))
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = features.clamp_min(self.eps).pow(self.power).mean(dim=(2, 3), keepdim=True)
        out: torch.Tensor = pooled.pow(1.0 / self.power)
        return out


class EmbeddingHead(nn.Module):
    """Pooled trunk features -> linear -> BatchNorm ("BN neck") -> L2-normalised embedding. With
    `parts`, that many strips across the photo's width (along a flank) each get their own, beside
    the whole photo's (as PCB in person re-identification): a pattern near the tail is then
    compared with the other photo's tail, not averaged into the whole."""

    def __init__(
        self, in_features: int, embedding_dim: int, dropout: float = 0.2, pooling: str = "avg", parts: int = 0
    ) -> None:
        super().__init__()
        if pooling not in ("avg", "gem"):
            raise ValueError(f"unknown pooling {pooling!r} (choose avg or gem)")
        # Half the embedding is the whole photo's, the other half the strips' in equal shares.
        part_dim = embedding_dim // (2 * parts) if parts else 0
        if parts and part_dim < 1:
            raise ValueError(f"{parts} parts need an embedding of at least {2 * parts} numbers")
        whole_dim = embedding_dim - parts * part_dim
        self.parts = parts
        self.pool: nn.Module = GeneralisedMeanPool() if pooling == "gem" else nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, whole_dim)
        self.neck = nn.BatchNorm1d(whole_dim)
        self.part_linears = nn.ModuleList(nn.Linear(in_features, part_dim) for _ in range(parts))
        self.part_necks = nn.ModuleList(nn.BatchNorm1d(part_dim) for _ in range(parts))

    def _embed(self, features: torch.Tensor, linear: nn.Module, neck: nn.Module) -> torch.Tensor:
        pooled = self.pool(features).flatten(1)
        embedding: torch.Tensor = F.normalize(neck(linear(self.dropout(pooled))), dim=1)
        return embedding

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        whole = self._embed(features, self.linear, self.neck)
        if not self.parts:
            return whole
        # Each block is a unit vector scaled so that the whole photo weighs as much as all strips
        # together; the concatenation is then itself of length 1.
        # A plain int: the exported graph is traced at the card's fixed input size.
        width = int(features.shape[-1])
        blocks = [whole * math.sqrt(0.5)]
        for number, (linear, neck) in enumerate(zip(self.part_linears, self.part_necks, strict=True)):
            # Never empty: a feature map narrower than the strips gives neighbours a column each.
            start = min(number * width // self.parts, width - 1)
            end = max((number + 1) * width // self.parts, start + 1)
            blocks.append(self._embed(features[..., start:end], linear, neck) * math.sqrt(0.5 / self.parts))
        return torch.cat(blocks, dim=1)


class MobileNetV2Embedder(nn.Module):
    """torchvision's MobileNetV2 1.0 feature trunk (1280 channels) with an embedding head."""

    def __init__(self, embedding_dim: int = 128, pooling: str = "avg", parts: int = 0) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        self.trunk = mobilenet_v2(weights=None).features
        self.head = EmbeddingHead(1280, embedding_dim, pooling=pooling, parts=parts)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        embedding: torch.Tensor = self.head(self.trunk(image))
        return embedding

    def frozen_prefix(self, blocks: int) -> nn.Module:
        """The first `blocks` stages of the trunk (the stem counts as one)."""
        prefix: nn.Module = self.trunk[:blocks]
        return prefix


class Conv2dSame(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding (the extra pixel goes bottom/right), as the
    EfficientNet-Lite weights were trained with; zero padding of k // 2 would shift them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h = self._padding_for(int(height), 0)
        pad_w = self._padding_for(int(width), 1)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        out: torch.Tensor = F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return out

    def _padding_for(self, size: int, axis: int) -> int:
        stride, kernel, dilation = self.stride[axis], self.kernel_size[axis], self.dilation[axis]
        return max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def _tf_batchnorm(channels: int) -> nn.BatchNorm2d:
    """TensorFlow's BatchNorm settings, which the EfficientNet weights' statistics were gathered with."""
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class LiteBlock(nn.Module):
    """An EfficientNet-Lite inverted residual (no squeeze-excitation, ReLU6), in the parameter names
    of the EfficientNet-PyTorch project so that its weights load unchanged."""

    def __init__(self, in_channels: int, out_channels: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = in_channels * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = Conv2dSame(in_channels, hidden, 1, bias=False)
            self._bn0 = _tf_batchnorm(hidden)
        self._depthwise_conv = Conv2dSame(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = _tf_batchnorm(hidden)
        self._project_conv = Conv2dSame(hidden, out_channels, 1, bias=False)
        self._bn2 = _tf_batchnorm(out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand != 1:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        out: torch.Tensor = y + x if self.residual else y
        return out


# EfficientNet-B0/Lite0 stages: (expand ratio, kernel, stride, output channels, repeats).
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))  # fmt: skip


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (ImageNet classifier `_fc` included, so its top classes can be checked)."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, stride=2, bias=False)
        self._bn0 = _tf_batchnorm(32)
        blocks: list[nn.Module] = []
        previous = 32
        for expand, kernel, stride, width, repeats in LITE0_STAGES:
            for repeat in range(repeats):
                blocks.append(LiteBlock(previous, width, expand, kernel, stride if repeat == 0 else 1))
                previous = width
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(previous, 1280, 1, bias=False)
        self._bn1 = _tf_batchnorm(1280)
        self._fc = nn.Linear(1280, classes)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(image)))
        for block in self._blocks:
            x = block(x)
        out: torch.Tensor = F.relu6(self._bn1(self._conv_head(x)))
        return out

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self._fc(self.features(image).mean(dim=(2, 3)))
        return logits


class EfficientNetLite0Embedder(nn.Module):
    """EfficientNet-Lite0's trunk with an embedding head (the ImageNet classifier is dropped)."""

    def __init__(self, embedding_dim: int = 128, pooling: str = "avg", parts: int = 0) -> None:
        super().__init__()
        self.trunk = EfficientNetLite0()
        del self.trunk._fc
        self.head = EmbeddingHead(1280, embedding_dim, pooling=pooling, parts=parts)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        embedding: torch.Tensor = self.head(self.trunk.features(image))
        return embedding

    def frozen_prefix(self, blocks: int) -> nn.Module:
        """The stem and the first `blocks - 1` inverted residuals."""
        return nn.ModuleList([self.trunk._conv_stem, self.trunk._bn0, *self.trunk._blocks[: blocks - 1]])


BACKBONES = ("small", "mobilenetv2", "efficientnet-lite0", "resnet18")


def build_backbone(
    name: str, embedding_dim: int, in_channels: int, pooling: str = "avg", parts: int = 0
) -> nn.Module:
    """The named network; `pooling` (avg or gem) and `parts` (strips with their own embedding)
    apply to the ImageNet backbones' heads."""
    if (pooling != "avg" or parts) and name not in ("mobilenetv2", "efficientnet-lite0"):
        raise ValueError(
            f"{name} pools its own way: --pooling {pooling} and --parts need mobilenetv2 or "
            "efficientnet-lite0"
        )
    if name == "small":
        return SmallFishNet(embedding_dim, in_channels)
    if in_channels != 3:
        raise ValueError(f"{name} takes colour input")
    if name == "mobilenetv2":
        return MobileNetV2Embedder(embedding_dim, pooling, parts)
    if name == "efficientnet-lite0":
        return EfficientNetLite0Embedder(embedding_dim, pooling, parts)
    if name == "resnet18":
        return ResNetEmbedder(embedding_dim)
    raise ValueError(f"unknown backbone {name!r} (choose {', '.join(BACKBONES)})")
