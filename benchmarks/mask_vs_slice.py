"""Masking vs slicing for candidate evaluation: time one sub-network pass per group.

Masking runs the group's layers at full width and zeroes dropped channels; slicing would run
them at the kept width. The sliced time is measured on a physically pruned copy (the fastest a
sliced evaluation could be, with no slicing overhead), so the gap is an upper bound on what
slicing can save. Usage:
    python benchmarks/mask_vs_slice.py [--width 0.5] [--keep 0.4] [--images 500]
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import numpy as np
import torch

from smoea.models import build_model, make_arch
from smoea.structure import Structure, default_groups, split_at


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--keep", type=float, default=0.4)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model(make_arch("vgg14", args.width, 10, 3, 32)).eval()
    model = model.to(memory_format=torch.channels_last)
    example = torch.zeros(1, 3, 32, 32)
    s = Structure(model, example)
    x = torch.randn(args.images, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    print(
        f"vgg14 width {args.width}, {args.images} images, keep {args.keep:.0%} of each group "
        f"layer, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    print("group  layers    mask_s  slice_s  slice/mask")
    for g, layers in enumerate(default_groups(s)):
        prefix, suffix = split_at(model, s.layers[layers[0]].conv)
        with torch.inference_mode():
            feats = prefix(x).contiguous(memory_format=torch.channels_last)
        masks = {
            i: np.arange(s.layers[i].units) < round(args.keep * s.layers[i].units) for i in layers
        }

        def masked(masks=masks, suffix=suffix, feats=feats):  # timed now, in this loop
            with torch.inference_mode(), s.masking():
                s.set_masks(masks)
                suffix(feats)

        pruned = copy.deepcopy(model)
        ps = Structure(pruned, example)
        ps.remove(masks)
        _, pruned_suffix = split_at(pruned, ps.layers[layers[0]].conv)

        def sliced(pruned_suffix=pruned_suffix, feats=feats):
            with torch.inference_mode():
                pruned_suffix(feats)

        m, sl = timed(masked, args.repeats), timed(sliced, args.repeats)
        span = f"{layers[0] + 1:>2}-{layers[-1] + 1:<5}"
        print(f"{g + 1:>5}  {span}  {m:7.3f}  {sl:7.3f}  {sl / m:9.2f}")


if __name__ == "__main__":
    main()
