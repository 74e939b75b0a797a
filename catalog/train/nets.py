"""Embedding networks: a small fast CNN, a torchvision ResNet, and the seed study's Siamese CNN."""

from __future__ import annotations

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


def build_backbone(name: str, embedding_dim: int, in_channels: int) -> nn.Module:
    if name == "small":
        return SmallFishNet(embedding_dim, in_channels)
    if name == "resnet18":
        if in_channels != 3:
            raise ValueError("resnet18 takes colour input")
        return ResNetEmbedder(embedding_dim)
    raise ValueError(f"unknown backbone {name!r} (choose small or resnet18)")
