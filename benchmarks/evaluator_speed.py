"""Candidate scoring speed: sliced and masked evaluator against the pruned sub-network itself.

Usage: python benchmarks/evaluator_speed.py [--width 0.5] [--keep 0.4] [--images 500]
           [--calibration 256] [--repeats 5]

Per default group of vgg14, a candidate keeps `keep` of each group layer's filters. Timed, at the
same batch size (500): the physically pruned sub-network's own forward over the search-set
features (the reference: what inference of that candidate costs), the sliced evaluator's score
(slicing the weights included), the masked evaluator's score, and the calibrated sliced score
(adaptive BatchNorm on `calibration` training-like images, then the score). Medians over
`repeats` runs after a warm-up; nothing else may run meanwhile.
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import numpy as np
import torch

from smoea.data import TensorData
from smoea.evaluator import make_evaluator
from smoea.models import build_model, make_arch
from smoea.search import Genome
from smoea.structure import Structure, default_groups, split_at


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_group(model, s: Structure, layers: list[int], search, calib, args) -> tuple:
    """Seconds for: the pruned sub-network, sliced, masked, calibrated sliced scoring."""
    genome = Genome(layers, [s.layers[i].units for i in layers], [1] * len(layers))
    x = np.concatenate([np.arange(u) < round(args.keep * u) for u in genome.units])
    kw = dict(structure=s, genome=genome, search=search, mean=[0.5] * 3, std=[0.25] * 3)
    sliced = make_evaluator(**kw, sliced=True)
    masked = make_evaluator(**kw, sliced=False)
    calibrated = make_evaluator(**kw, calibration=calib, sliced=True)
    pruned = copy.deepcopy(model)
    ps = Structure(pruned, s.example)
    ps.remove(genome.split(x))
    _, pruned_suffix = split_at(pruned, ps.layers[layers[0]].conv)
    feats = sliced.features

    def reference():
        with torch.inference_mode():
            for i in range(0, len(feats), 500):
                pruned_suffix(feats[i : i + 500]).argmax(1)

    masks = [genome.split(x)]
    return (
        timed(reference, args.repeats),
        timed(lambda: sliced.score_masks(masks), args.repeats),
        timed(lambda: masked.score_masks(masks), args.repeats),
        timed(lambda: calibrated.score_masks(masks), args.repeats),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--keep", type=float, default=0.4)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--calibration", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model(make_arch("vgg14", args.width, 10, 3, 32)).eval()
    model = model.to(memory_format=torch.channels_last)
    example = torch.zeros(1, 3, 32, 32)
    s = Structure(model, example)
    gen = torch.Generator().manual_seed(0)
    search = TensorData(
        torch.randint(0, 256, (args.images, 3, 32, 32), generator=gen, dtype=torch.uint8),
        torch.randint(0, 10, (args.images,), generator=gen),
    )
    calib = TensorData(
        torch.randint(0, 256, (args.calibration, 3, 32, 32), generator=gen, dtype=torch.uint8),
        torch.zeros(args.calibration, dtype=torch.int64),
    )
    print(
        f"vgg14 width {args.width}, {args.images} search images, {args.calibration} calibration "
        f"images, batch 500, keep {args.keep:.0%} of each group layer, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}"
    )
    print("group  layers  pruned_s  sliced_s  sliced/pruned  masked_s  calibrated_sliced_s")
    for g, layers in enumerate(default_groups(s)):
        t_ref, t_sl, t_ma, t_ca = time_group(model, s, layers, search, calib, args)
        print(
            f"{g + 1:>5}  {layers[0] + 1:>2}-{layers[-1] + 1:<3}  {t_ref:8.4f}  {t_sl:8.4f}  "
            f"{t_ref / t_sl:13.2f}  {t_ma:8.4f}  {t_ca:19.4f}"
        )
    print("sliced/pruned is throughput relative to the pruned sub-network (1.00 = as fast)")


if __name__ == "__main__":
    main()
