"""Is a zoo model's reload difference rounding? The zoo's steps, then float32 against float64.

Usage: python benchmarks/zoo_float_check.py efficientnet_b7   (about 4 minutes)
Prunes the model as benchmarks/torchvision_zoo.py does, saves and reloads it, and prints: the
reload's largest difference in float32 and in float64, the float32 model's distance from its
own float64 output, and what switching its memory format alone changes. Equal in float64 and
a memory-format change as large as the reload's means float32 rounding, not the model file.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

import torch
from torchvision_zoo import _one_step  # a sibling script: benchmarks/ is on the path

from smoea.checkpoint import load, save_model
from smoea.data import TensorData
from smoea.models import build_model, make_arch
from smoea.pipeline import prune
from smoea.prune_config import PruneConfig
from smoea.train import TrainConfig


def pruned_and_reloaded(name: str, size: int = 64):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (24, 3, size, size), generator=gen, dtype=torch.uint8)
    y = torch.arange(24) % 3
    arch = make_arch(f"torchvision:{name}", 1.0, 3, 3, size)
    model = build_model(arch)
    _one_step(model, x[:8].float() / 255, y[:8])
    config = PruneConfig(
        target_macs=0.6, pop_size=4, generations=1, effort="fixed", budget="level",
        search_size=8, calibration_images=8, eval_batch_size=8, final=TrainConfig(epochs=0),
    )  # fmt: skip
    train, val = TensorData(x[:16], y[:16]), TensorData(x[16:], y[16:])
    pruned, _ = prune(model, train, val, config, "cpu", log=lambda m: None)
    with tempfile.TemporaryDirectory() as tmp:
        save_model(Path(tmp) / "model.pt", pruned, arch, {})
        return pruned.eval(), load(Path(tmp) / "model.pt").eval()


def main() -> None:
    pruned, loaded = pruned_and_reloaded(sys.argv[1])
    probe = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        p32, l32 = pruned(probe), loaded(probe)
        p64 = copy.deepcopy(pruned).double()(probe.double())
        l64 = copy.deepcopy(loaded).double()(probe.double())
        other = copy.deepcopy(pruned).to(memory_format=torch.contiguous_format)(probe)
    print(f"largest logit {p32.abs().max().item():.4g}")
    print(f"reload difference: float32 {(l32 - p32).abs().max().item():.4g}, "
          f"float64 {(l64 - p64).abs().max().item():.4g}")  # fmt: skip
    print(f"float32 pruned against its float64 output {(p32.double() - p64).abs().max():.4g}")
    print(f"memory format alone changes float32 by {(other - p32).abs().max().item():.4g}")


if __name__ == "__main__":
    main()
