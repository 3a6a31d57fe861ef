"""Does measuring in the fast state steady a latency ratio? (issue "Real speed", 5)

Usage: python benchmarks/latency_state_filter.py BASELINE.pt MODEL.pt [--batch 1]
           [--seconds 300] [--out OUT.json]

Alternates two ways of measuring the model's latency ratio to the baseline for `--seconds`:
`smoea.latency.time_ratio` as it is (the mean of REPEATS measurements made in the machine's
fast state, see latency.STATE_SLACK) and the same with the state filter off (every measurement
averaged, as before 2026-12-04), each with compare's 27 rounds. Prints every ratio, then each
way's mean, std and range over its calls, and the seconds a call took. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from smoea import checkpoint, latency
from smoea.report import versions

ROUNDS = 27  # what smoea compare measures a pair with (compare.MEASURE_ROUNDS)


def one_ratio(baseline, model, shape, batch: int, filtered: bool) -> tuple[float, float]:
    """(ratio, seconds) of one time_ratio call, with the fast-state filter on or off."""
    slack = latency.STATE_SLACK
    latency.STATE_SLACK = slack if filtered else math.inf
    try:
        start = time.perf_counter()
        m = latency.time_ratio(baseline, model, shape, batch, torch.device("cpu"), ROUNDS)
        return m["ratio"], time.perf_counter() - start
    finally:
        latency.STATE_SLACK = slack


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("baseline", type=Path)
    p.add_argument("model", type=Path)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seconds", type=float, default=300)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    record, baseline = checkpoint.load_model_file(args.baseline)
    shape = tuple(record.get("image_shape") or (3, 32, 32))  # older files: CIFAR-10's
    model = checkpoint.load(args.model)
    runs: dict[str, list] = {"fast state": [], "all": []}
    start = time.time()
    while time.time() - start < args.seconds:
        for name, filtered in (("fast state", True), ("all", False)):
            ratio, seconds = one_ratio(baseline, model, shape, args.batch, filtered)
            runs[name].append([ratio, seconds])
            print(f"{name}: {ratio:.4f} ({seconds:.1f} s)", flush=True)
    summary = {}
    for name, rows in runs.items():
        ratios = [r for r, _ in rows]
        summary[name] = {
            "calls": len(rows),
            "mean": statistics.fmean(ratios),
            "std": statistics.stdev(ratios) if len(ratios) > 1 else 0.0,
            "range": [min(ratios), max(ratios)],
            "seconds_per_call": statistics.fmean(s for _, s in rows),
        }
        s = summary[name]
        print(
            f"{name}: {s['calls']} calls, ratio {s['mean']:.4f} ± {s['std']:.4f} (range "
            f"{s['range'][0]:.3f}-{s['range'][1]:.3f}), {s['seconds_per_call']:.1f} s a call"
        )
    if args.out:
        out = {
            "baseline": str(args.baseline),
            "model": str(args.model),
            "batch": args.batch,
            "runs": runs,
            "summary": summary,
            "versions": versions(),
            "threads": torch.get_num_threads(),
            "state_slack": latency.STATE_SLACK,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
