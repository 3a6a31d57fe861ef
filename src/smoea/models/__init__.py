"""Model zoo: build a model from its architecture record, a plain dict that loads as data."""

from __future__ import annotations

import torch.nn as nn

from smoea.errors import SmoeaError
from smoea.models.vgg import build_vgg, vgg_filters

MODELS = ("vgg14", "vgg16")


def make_arch(name: str, width: float, num_classes: int, in_channels: int, image_size: int) -> dict:
    """The architecture record of a fresh model: everything needed to rebuild it."""
    if name not in MODELS:
        raise SmoeaError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if not width > 0:
        raise SmoeaError(f"--width must be positive, got {width}")
    return {
        "name": name,
        "width": width,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
        "filters": vgg_filters(width),
        "hidden": max(1, round(512 * width)) if name == "vgg16" else None,
    }


def build_model(arch: dict) -> nn.Module:
    """Rebuild a model (fresh weights) from its architecture record."""
    name = arch.get("name")
    if name not in MODELS:
        raise SmoeaError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    head = "mlp" if name == "vgg16" else "linear"
    return build_vgg(
        list(arch["filters"]),
        arch["num_classes"],
        arch["in_channels"],
        arch["image_size"],
        head=head,
        hidden=arch.get("hidden"),
    )


def conv_filters(model: nn.Module) -> list[int]:
    """Output channels of every Conv2d, in module order."""
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
