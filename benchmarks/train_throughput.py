"""Training throughput of vgg14 (width 0.5, 32x32, batch 128) on this machine: where the time goes.

Usage: python benchmarks/train_throughput.py [steps]
Prints images/s for the model step alone (channels_last and contiguous) and the cost of
drawing, augmenting and normalising a batch. Run it with nothing else on the machine.
"""

import sys
import time

import torch
import torch.nn.functional as F

from smoea.data import augment, normalize
from smoea.models import build_model, make_arch


def step_rate(model, x, y, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), 0.01, momentum=0.9, nesterov=True)
    model.train()
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * len(x) / (time.perf_counter() - start)


def main(steps: int = 20) -> None:
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    x8 = torch.randint(0, 256, (50_000 // 10, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 10, (128,))
    for layout in ("channels_last", "contiguous"):
        model = build_model(make_arch("vgg14", 0.5, 10, 3, 32))
        x = normalize(x8[:128], [0.5] * 3, [0.25] * 3)
        if layout == "channels_last":
            model = model.to(memory_format=torch.channels_last)
        else:
            x = x.contiguous()
        print(f"model step, {layout}: {step_rate(model, x, y, steps):.0f} images/s")
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randperm(len(x8), generator=g)[:128]
        normalize(augment(x8[idx], g), [0.5] * 3, [0.25] * 3)
    per_batch = (time.perf_counter() - start) / steps
    print(f"draw + augment + normalise: {1000 * per_batch:.1f} ms a batch of 128")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
