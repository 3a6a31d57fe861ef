"""Where one candidate's sliced scoring spends its time: resnet56's last group, random weights.

Usage: python benchmarks/slicing_profile.py   (figures of 2026-12-02: results/slicing-speed)
Prints slice, calibration and scoring ms a candidate (medians of 7), a 2-image forward through
the sliced runner against the plain module and through `functional_call` alone, then the
pruned / sliced / masked timing of slicing_speed.py for the same group. Run nothing else.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from slicing_speed import MODELS, images, time_group  # a sibling script: benchmarks/ is on the path
from torch.func import functional_call

from smoea.evaluator import make_evaluator
from smoea.search import Genome
from smoea.structure import Structure, default_groups


def median_seconds(fn, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    model = MODELS["resnet56"][0]().eval().to(memory_format=torch.channels_last)
    s = Structure(model, torch.zeros(1, 3, 32, 32))
    layers = default_groups(s)[2]
    search, calib = images(500, 32, 0), images(128, 32, 1)
    genome = Genome(layers, [s.layers[i].units for i in layers], [1] * len(layers))
    keep = [
        np.argsort(-s.l1_norms(i))[: max(1, round(0.4 * u))] for i, u in zip(layers, genome.units)
    ]
    x = np.concatenate([np.isin(np.arange(u), k) for u, k in zip(genome.units, keep)])
    ev = make_evaluator(s, genome, search, [0.5] * 3, [0.25] * 3, calibration=calib)
    masks, runner, feats = genome.split(x), ev.runner, ev.features
    with torch.inference_mode():
        sliced = runner.slice(masks)
        chunks = ev._chunks(ev.calibration)
        fresh = runner.calibrate(sliced, chunks)
        ms = {
            "slice": median_seconds(lambda: runner.slice(masks)),
            "calibrate": median_seconds(lambda: runner.calibrate(sliced, chunks)),
            "score": median_seconds(lambda: ev._total(lambda xx: runner.forward(fresh, xx))),
            "all": median_seconds(lambda: ev._score_sliced(masks)),
            "forward 2 images, sliced": median_seconds(
                lambda: runner.forward(fresh, feats[:2]), 20
            ),
            "forward 2 images, module": median_seconds(lambda: runner.suffix(feats[:2]), 20),
            "forward 2 images, functional_call": median_seconds(
                lambda: functional_call(
                    runner.suffix, fresh.tensors, (feats[:2],), strict=False, tie_weights=False
                ),
                20,
            ),
        }
    print(f"{torch.get_num_threads()} threads, {ev.mode}, {len(fresh.tensors)} tensors swapped")
    for what, seconds in ms.items():
        print(f"{what}: {1e3 * seconds:.1f} ms")
    pruned, default, masked, _ = time_group(model, s, layers, search, calib, 0.4, 7)
    print(f"pruned {1e3 * pruned:.1f} ms, sliced {1e3 * default:.1f}, masked {1e3 * masked:.1f}")
    print(f"sliced / pruned throughput {pruned / default:.2f}")


if __name__ == "__main__":
    main()
