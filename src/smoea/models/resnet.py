"""CIFAR ResNets (He et al. 2016, 3 stages of basic blocks) and a CIFAR MobileNetV2.

Both are built as one top-level nn.Sequential of blocks, so that SMOEA can compute the features
before a group once and run only the blocks from the group on (see `structure.split_at`).
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(cout)]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(cin, cout, 3, stride), nn.ReLU(inplace=True), *_conv_bn(cout, cout)
        )
        self.shortcut = (
            nn.Sequential(*_conv_bn(cin, cout, 1, stride))
            if stride != 1 or cin != cout
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def build_cifar_resnet(depth: int, width: float, num_classes: int, in_channels: int) -> nn.Module:
    """resnet20 (depth 20) or resnet56: (depth - 2) / 6 blocks per stage, 16/32/64 filters.

    Shortcuts that change shape are 1x1 convolutions with BatchNorm (He et al.'s option B), so
    Torch-Pruning can couple and prune them.
    """
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    widths = [max(1, round(c * width)) for c in (16, 32, 64)]
    layers: list[nn.Module] = [nn.Sequential(*_conv_bn(in_channels, widths[0]), nn.ReLU())]
    cin = widths[0]
    for stage, cout in enumerate(widths):
        for block in range(n):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(cin, cout, stride))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, 3x3 depthwise, 1x1 projection, residual if it fits."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [*_conv_bn(cin, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [*_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers += _conv_bn(hidden, cout, 1)
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


# (expansion, output channels, blocks, stride); CIFAR variant: strides 1 in the stem and stage 2
MOBILENETV2_CONFIG = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def build_cifar_mobilenetv2(width: float, num_classes: int, in_channels: int) -> nn.Module:
    """MobileNetV2 for 32x32 images (stride 1 stem and first stages, as the usual CIFAR port)."""

    def scaled(c: int) -> int:
        return max(1, round(c * width))

    cin = scaled(32)
    layers: list[nn.Module] = [nn.Sequential(*_conv_bn(in_channels, cin), nn.ReLU6())]
    for expand, c, blocks, stride in MOBILENETV2_CONFIG:
        cout = scaled(c)
        for i in range(blocks):
            layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
            cin = cout
    last = max(1280, scaled(1280)) if width > 1 else 1280
    layers.append(nn.Sequential(*_conv_bn(cin, last, 1), nn.ReLU6()))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(last, num_classes)]
    return nn.Sequential(*layers)
