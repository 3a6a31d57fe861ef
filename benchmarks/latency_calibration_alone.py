"""A build's calibration models measured again among whole models only (issue "Real speed")

Usage: python benchmarks/latency_calibration_alone.py [--arch resnet20] [--batch 64] [--seed 1]
           [--repeats 2]

Builds the latency table of latency_model.py's model (random weights, torch seed --seed), then
measures the build's own CALIBRATION_MODELS pruned models together with the whole model only
(no layer probes in the rounds), --repeats times, and fits the saving scale to each: is a
build's scale an artefact of timing whole models among thousands of layer probes? Run alone.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from smoea import latency
from smoea.models import build_model, make_arch
from smoea.structure import Structure

WIDTHS = {"vgg14": 0.5}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="resnet20")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    model = build_model(make_arch(args.arch, WIDTHS.get(args.arch, 1.0), 10, 3, 32)).eval()
    s, cpu = Structure(model, torch.zeros(1, 3, 32, 32)), torch.device("cpu")
    table = latency.build_table(s, args.batch, cpu, progress=False)
    print(f"scale fitted in the build: {table.saving_scale:.3f}")
    calibration = latency._calibration_models(s)
    kept = np.array([k for k, _ in calibration], dtype=np.float64)
    predicted = 1 - table.unscaled(kept) / table.full_ms
    probes = [latency.Probe(model)] + [latency.Probe(m) for _, m in calibration]
    for _ in range(args.repeats):
        full, *ms = latency.measure(
            probes, args.batch, cpu, (3, 32, 32), latency.ROUNDS, False, range(len(probes))
        )
        saved = 1 - np.array(ms) / full
        scale = latency.fit_saving_scale(predicted, saved)
        print(
            f"whole models only: scale {scale:.3f}; predicted saving {predicted.round(3)}, "
            f"measured {saved.round(3)}"
        )


if __name__ == "__main__":
    main()
