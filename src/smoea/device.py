"""Pick the compute device from --device auto|cpu|cuda."""

from __future__ import annotations

import torch

from smoea.errors import SmoeaError


def resolve_device(name: str = "auto") -> torch.device:
    """The device asked for; under torchrun a GPU means this rank's own (LOCAL_RANK)."""
    from smoea.distributed import local_device

    if name == "auto":
        return local_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if name == "cuda" and not torch.cuda.is_available():
        raise SmoeaError("--device cuda was asked for but no GPU is visible; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise SmoeaError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return local_device(torch.device(name))
