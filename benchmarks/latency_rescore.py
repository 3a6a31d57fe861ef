"""Score latency_model.py records against one careful measurement of their pruned models.

Usage: python benchmarks/latency_rescore.py OUT.json RECORD.json [RECORD.json ...]
           [--measurements 8] [--span 120]

latency_model.py measures its 20 pruned models once, beside the baseline (one time_models
call), so each record's error mixes the table's error with that measurement's: on the
project's VM the same baseline measured 32.6-53.0 ms over an hour of vgg14 w0.5 batch-64
records. The records of one architecture, batch and seed hold the same configurations (the same
random weights and draws), so this script measures those models once, carefully: the baseline
and the pruned models together, `--measurements` times in the machine's fast state over at
least `--span` seconds (latency.fast_state_times, as `smoea prune` and `smoea compare` measure
a ratio), each model's ratio the median over them; then it scores every record's predicted
ratios against those. It checks that the records' configurations are the ones it rebuilt.
Writes OUT.json (the careful ratios and each record's score) and prints a table. Run it with
nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch
from latency_model import validation_set  # benchmarks/ is on sys.path

from smoea.latency import fast_state_times
from smoea.report import versions


def careful_ratios(arch: str, batch: int, seed: int, configs: int, measurements, span) -> dict:
    """The pruned models of latency_model.py's run (same weights, same draws), measured."""
    s, cut = validation_set(arch, seed, configs)
    models = [s.model, *(m for _, m in cut)]
    cpu = torch.device("cpu")
    made = np.array(
        fast_state_times(models, (3, 32, 32), batch, cpu, repeats=measurements, span_s=span)
    )
    ratios = made[:, 1:] / made[:, :1]
    return {
        "kept": [k.tolist() for k, _ in cut],
        "ratio": np.median(ratios, axis=0).tolist(),
        "ratio_spread": ((ratios.max(0) - ratios.min(0)) / np.median(ratios, 0)).tolist(),
        "baseline_ms": made[:, 0].tolist(),
        "measurements": len(made),
    }


def score(record: dict, careful: dict) -> dict:
    """The record's median and largest error of the ratio, against its own measurement and
    against the careful one."""
    rows = record["configs"]
    if [r["kept"] for r in rows] != careful["kept"]:
        raise SystemExit("a record's configurations differ from the ones rebuilt here")
    predicted = np.array([r["predicted_ratio"] for r in rows])
    own = np.array([r["measured_ratio"] for r in rows])
    measured = np.array(careful["ratio"])
    error = np.abs(predicted - measured) / measured
    return {
        "format": record["key"]["format"],
        "own_median": record["median_abs_ratio_error"],
        "median": float(np.median(error)),
        "max": float(error.max()),
        "own_against_careful": float(np.median(np.abs(own - measured) / measured)),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("records", nargs="+")
    p.add_argument("--measurements", type=int, default=8)
    p.add_argument("--span", type=float, default=120.0)
    args = p.parse_args()
    records = {path: json.loads(Path(path).read_text()) for path in args.records}
    first = next(iter(records.values()))
    arch, batch, configs = first["arch"], first["batch"], len(first["configs"])
    out = Path(args.out)
    if out.exists():
        careful = json.loads(out.read_text())["careful"]  # measured before: rescore only
    else:
        careful = careful_ratios(arch, batch, 1, configs, args.measurements, args.span)
    scores = {path: score(r, careful) for path, r in records.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"careful": careful, "scores": scores, "versions": versions()}))
    spread = statistics.median(careful["ratio_spread"])
    print(
        f"{arch} batch {batch}: {careful['measurements']} fast-state measurements, "
        f"median spread of a ratio over them {spread:.1%}"
    )
    print(
        "| record | format | median error, own measurement | median / max error, careful "
        "| own measurement against careful |"
    )
    print("|---|---|---|---|---|")
    for path, sc in scores.items():
        print(
            f"| {path} | {sc['format']} | {sc['own_median']:.1%} | {sc['median']:.1%} / "
            f"{sc['max']:.1%} | {sc['own_against_careful']:.1%} |"
        )
    for fmt in sorted({sc["format"] for sc in scores.values()}):
        m = [sc["median"] for sc in scores.values() if sc["format"] == fmt]
        print(
            f"format {fmt}: {len(m)} builds, median error against careful "
            f"{statistics.median(m):.1%} ({min(m):.1%}-{max(m):.1%})"
        )


if __name__ == "__main__":
    main()
