"""Does a table's build time the unpruned model as it measures alone? (issue "Real speed", 2)

Usage: python benchmarks/latency_full_model.py [--arch vgg14] [--batch 64] [--builds 2]
           [--out OUT.json]

The format-7 validation of vgg14 w0.5 at batch 64 predicted its pruned models within 3.6% in
ms but put the unpruned model at 31.77 ms where, measured beside the pruned ones, it took 25.43
(benchmarks/results/latency-model). The table's `full_ms` is the whole model timed inside the
build, among thousands of layer probes, with the rounds' drift taken out (latency.time_together).
This builds the table `--builds` times (not cached) and after each times the same model alone
(latency.time_models, whole models only) and beside PRUNED randomly pruned copies (as the
validation times it), then prints the three. Run it with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from smoea.latency import build_table, cut_copy, random_counts, time_models
from smoea.models import build_model, make_arch
from smoea.report import versions
from smoea.structure import Structure

WIDTHS = {"vgg14": 0.5}
PRUNED = 5  # pruned copies the model is timed beside, as in latency_model.py's validation


def one_build(arch: str, batch: int) -> dict:
    """The table's whole-model time, then the same model timed alone and beside PRUNED
    pruned copies."""
    torch.manual_seed(0)
    model = build_model(make_arch(arch, WIDTHS.get(arch, 1.0), 10, 3, 32)).eval()
    s = Structure(model, torch.zeros(1, 3, 32, 32))
    cpu = torch.device("cpu")
    start = time.perf_counter()
    table = build_table(s, batch, cpu, progress=False)
    built = time.perf_counter() - start
    (alone,) = time_models([model], (3, 32, 32), batch, cpu)
    # and beside pruned copies (seed 1's random counts, as the validation draws them)
    rng = np.random.default_rng(1)
    cuts = [cut_copy(s, random_counts(s.units_per_layer, rng))[1] for _ in range(PRUNED)]
    beside, *_ = time_models([model, *cuts], (3, 32, 32), batch, cpu)
    return {
        "table_seconds": built,
        "full_ms_in_build": table.full_ms,
        "rest_ms": table.rest_ms,
        "layers_ms_at_full": table.full_ms - table.rest_ms,
        "full_ms_alone_after": alone,
        "in_build_over_alone": table.full_ms / alone,
        "full_ms_beside_pruned": beside,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="vgg14")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--builds", type=int, default=2)
    p.add_argument("--out")
    args = p.parse_args()
    rows = []
    for k in range(args.builds):
        rows.append(one_build(args.arch, args.batch))
        r = rows[-1]
        print(
            f"build {k}: {r['table_seconds']:.0f} s; whole model in the build "
            f"{r['full_ms_in_build']:.2f} ms (rest {r['rest_ms']:.2f}), alone after it "
            f"{r['full_ms_alone_after']:.2f} ms: {r['in_build_over_alone']:.3f}; beside "
            f"{PRUNED} pruned copies {r['full_ms_beside_pruned']:.2f} ms",
            flush=True,
        )
    if args.out:
        record = {"arch": args.arch, "batch": args.batch, "builds": rows, "versions": versions()}
        Path(args.out).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
