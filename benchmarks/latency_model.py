"""Does the latency table predict a pruned model's measured latency? (issue "Real speed")

Usage: python benchmarks/latency_model.py OUT_DIR [--archs vgg14,resnet20,mobilenetv2]
           [--batches 1,64] [--configs 20] [--seed 1]

For each architecture (random weights at CIFAR size, 3x32x32; vgg14 at width 0.5 as the shared
baseline, the others at width 1) and batch size: build the latency table (smoea.latency), then
draw `--configs` random pruned configurations (every layer keeps a random 5-100% of its units,
the strongest by L1; smoea.latency.random_counts, seeded by --seed: 1 by default, since
seed 0's first five are the build's own calibration models), prune a copy physically, fold its
BatchNorm and measure it as deployed, all of them and the baseline together in the same
interleaved rounds (smoea.latency.time_models: the machine's drift cancels in their ratios);
record predicted against measured, and as fractions of the baseline (the form a latency target
takes). Writes
OUT_DIR/<arch>-b<batch>.json and prints a table with the median and largest absolute errors.
Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from smoea.latency import build_table, cut_copy, random_counts, time_models
from smoea.models import build_model, make_arch
from smoea.report import versions
from smoea.structure import Structure

WIDTHS = {"vgg14": 0.5}


def validation_set(arch: str, seed: int, configs: int) -> tuple[Structure, list]:
    """The unpruned model (random weights from `seed`) as a Structure, and `configs` pruned
    copies (kept units per layer, model) drawn with `seed`: what a run validates on, and what
    latency_rescore.py measures again. Seed 0's first draws are a build's own calibration
    models: validate with another seed."""
    torch.manual_seed(seed)
    model = build_model(make_arch(arch, WIDTHS.get(arch, 1.0), 10, 3, 32)).eval()
    s = Structure(model, torch.zeros(1, 3, 32, 32))
    rng = np.random.default_rng(seed)
    return s, [cut_copy(s, random_counts(s.units_per_layer, rng)) for _ in range(configs)]


def run(arch: str, batch: int, configs: int, seed: int) -> dict:
    s, cut = validation_set(arch, seed, configs)
    model = s.model
    cpu = torch.device("cpu")
    start = time.perf_counter()
    table = build_table(s, batch, cpu)
    built = time.perf_counter() - start
    kept_rows, pruned_models = [k for k, _ in cut], [m for _, m in cut]
    # the baseline and every pruned model measured together, in the same interleaved rounds:
    # this VM's speed drifts by 20-100% between minutes, and a latency target is a fraction
    # of the baseline's latency
    baseline, *measured = time_models([model, *pruned_models], (3, 32, 32), batch, cpu)
    full = float(table.predict(s.units_per_layer)[0])
    rows = []
    for kept, ms in zip(kept_rows, measured):
        predicted = float(table.predict(kept)[0])
        rows.append(
            {
                "kept": kept.tolist(),
                "predicted_ms": predicted,
                "measured_ms": ms,
                "baseline_ms": baseline,
                "predicted_ratio": predicted / full,
                "measured_ratio": ms / baseline,
            }
        )
    errors = [abs(r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] for r in rows]
    ratio_errors = [
        abs(r["predicted_ratio"] - r["measured_ratio"]) / r["measured_ratio"] for r in rows
    ]
    return {
        "arch": arch,
        "batch": batch,
        "table_seconds": built,
        "full_ms": table.full_ms,
        "rest_ms": table.rest_ms,
        "saving_scale": table.saving_scale,
        "median_abs_error": statistics.median(errors),
        "max_abs_error": max(errors),
        "median_abs_ratio_error": statistics.median(ratio_errors),
        "max_abs_ratio_error": max(ratio_errors),
        "baseline_ms": baseline,
        "configs": rows,
        "key": table.key,
        "versions": versions(),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--archs", default="vgg14,resnet20,mobilenetv2")
    p.add_argument("--batches", default="1,64")
    p.add_argument("--configs", type=int, default=20)
    # not 0: a table's build fits its saving scale to seed 0's first draws (format 6), and
    # a validation must score configurations the table never saw
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        "| arch | batch | table s | baseline ms (table; measured with the pruned models) "
        "| median / max abs error of the latency | of the latency as a fraction of the "
        "baseline's |"
    )
    print("|---|---|---|---|---|---|")
    for arch in args.archs.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            path = out / f"{arch}-b{batch}.json"
            r = json.loads(path.read_text()) if path.exists() else None
            if r is None:
                r = run(arch, batch, args.configs, args.seed)
                path.write_text(json.dumps(r, indent=1))
            print(
                f"| {arch} | {batch} | {r['table_seconds']:.0f} | {r['full_ms']:.2f}; "
                f"{r['baseline_ms']:.2f} | "
                f"{r['median_abs_error']:.1%} / {r['max_abs_error']:.1%} | "
                f"{r['median_abs_ratio_error']:.1%} / {r['max_abs_ratio_error']:.1%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
