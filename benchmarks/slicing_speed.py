"""Candidate scoring speed on residual and depthwise networks: sliced, masked, physically pruned.

Usage: python benchmarks/slicing_speed.py [--models resnet20,resnet56,mobilenetv2,tv_resnet18,
           tv_mobilenet_v3_small] [--keep 0.4] [--images 500] [--calibration 128] [--repeats 3]
           [--large-images 500] [--large-groups 2]

Random weights (speed only). Per group (the default groups; for the 224 px torchvision models
the first `--large-groups` of them), a candidate keeps `keep` of each group layer's filters by
L1. Timed, all with adaptive BatchNorm on `calibration` images then the score on `images`
search images at batch 500: the physically pruned sub-network (a pruned copy, made once: what
that candidate costs at inference), the evaluator's default scoring (sliced: the plain chain or
the dependency graph's slicing) and the masked scoring. Medians over `repeats` after a warm-up;
nothing else may run meanwhile. Prints candidates per second and sliced / pruned throughput.
"""

from __future__ import annotations

import argparse
import copy
import platform

import numpy as np
import torch
import torchvision
from evaluator_speed import timed  # a sibling script: benchmarks/ is on the path

from smoea.data import TensorData
from smoea.evaluator import make_evaluator, recalibrate
from smoea.models import build_model, make_arch
from smoea.search import Genome
from smoea.structure import Structure, default_groups, split_at

MODELS = {  # name: (builder, image size)
    "resnet20": (lambda: build_model(make_arch("resnet20", 1.0, 10, 3, 32)), 32),
    "resnet56": (lambda: build_model(make_arch("resnet56", 1.0, 10, 3, 32)), 32),
    "mobilenetv2": (lambda: build_model(make_arch("mobilenetv2", 1.0, 10, 3, 32)), 32),
    "tv_resnet18": (lambda: torchvision.models.resnet18(num_classes=10), 224),
    "tv_mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(num_classes=10), 224),
}


def images(n: int, size: int, seed: int) -> TensorData:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)
    return TensorData(x, torch.randint(0, 10, (n,), generator=gen))


def time_group(model, s: Structure, layers, search, calib, keep: float, repeats: int):
    """Seconds per candidate: pruned sub-network, default (sliced) scoring, masked scoring."""
    genome = Genome(layers, [s.layers[i].units for i in layers], [1] * len(layers))
    x = np.concatenate(
        [
            np.isin(np.arange(u), np.argsort(-s.l1_norms(i))[: max(1, round(keep * u))])
            for i, u in zip(layers, genome.units)
        ]
    )
    kw = dict(structure=s, genome=genome, search=search, mean=[0.5] * 3, std=[0.25] * 3)
    default = make_evaluator(**kw, calibration=calib)
    masked = make_evaluator(**kw, calibration=calib, sliced=False)
    pruned = copy.deepcopy(model)
    ps = Structure(pruned, s.example)
    ps.remove(genome.split(x))
    _, suffix = split_at(pruned, ps.layers[layers[0]].conv)
    feats, calib_feats = default.features, default.calibration

    def reference():
        with torch.inference_mode():
            recalibrate(suffix, [calib_feats[i : i + 500] for i in range(0, len(calib_feats), 500)])
            suffix.eval()
            for i in range(0, len(feats), 500):
                suffix(feats[i : i + 500]).argmax(1)

    masks = [genome.split(x)]
    t_ref = timed(reference, repeats)
    t_default = timed(lambda: default.score_masks(masks), repeats)
    t_masked = timed(lambda: masked.score_masks(masks), repeats)
    return t_ref, t_default, t_masked, default.mode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--keep", type=float, default=0.4)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--calibration", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-images", type=int, default=500)
    parser.add_argument("--large-groups", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(
        f"keep {args.keep:.0%} of each group layer by L1, calibration {args.calibration}, batch "
        f"500, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}"
    )
    print("model  group  layers  mode  images  pruned/s  default/s  masked/s  default/pruned")
    for name in args.models.split(","):
        build, size = MODELS[name]
        model = build().eval().to(memory_format=torch.channels_last)
        s = Structure(model, torch.zeros(1, 3, size, size))
        n = args.images if size <= 64 else args.large_images
        search, calib = images(n, size, 0), images(args.calibration, size, 1)
        groups = default_groups(s)
        if size > 64:
            groups = groups[: args.large_groups]
        for g, layers in enumerate(groups):
            t_ref, t_def, t_mask, mode = time_group(
                model, s, layers, search, calib, args.keep, args.repeats
            )
            print(
                f"{name}  {g + 1}  {layers[0] + 1}-{layers[-1] + 1}  {mode}  {n}  "
                f"{1 / t_ref:.3f}  {1 / t_def:.3f}  {1 / t_mask:.3f}  {t_ref / t_def:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
