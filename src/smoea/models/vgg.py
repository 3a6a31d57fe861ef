"""VGG-14 and VGG-16 for small images, built as one flat nn.Sequential."""

from __future__ import annotations

import torch.nn as nn

# 13 convolutions 3x3; "M" is a 2x2 max-pool.
VGG_CONFIG = [
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
]


def vgg_filters(width: float) -> list[int]:
    """Filters per conv layer at a width multiplier (at least one filter each)."""
    return [max(1, round(c * width)) for c in VGG_CONFIG if c != "M"]


def build_vgg(
    filters: list[int],
    num_classes: int,
    in_channels: int,
    image_size: int,
    head: str = "linear",
    hidden: int | None = None,
) -> nn.Sequential:
    """A flat Sequential so that any prefix of it is a valid sub-model.

    A max-pool is skipped once the feature map is down to 1x1 (28x28 inputs reach 1x1 after four
    pools), and a global average pool before the head makes any input size work.
    """
    layers: list[nn.Module] = []
    it = iter(filters)
    channels, size = in_channels, image_size
    for item in VGG_CONFIG:
        if item == "M":
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            continue
        out = next(it)
        layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out)]
        layers.append(nn.ReLU(inplace=True))
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if head == "linear":
        layers.append(nn.Linear(channels, num_classes))
    elif head == "mlp":
        hidden = hidden or channels
        layers += [nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(hidden, num_classes))
    else:
        raise ValueError(f"unknown head {head!r}")
    return nn.Sequential(*layers)
