"""Would one measured correction fix the latency table's systematic error? (issue "Real speed")

Usage: python benchmarks/latency_calibration.py [RECORD.json ...] [--fit 5]

An offline re-analysis of benchmarks/latency_model.py's records (default: every committed one in
benchmarks/results/latency-model/format5 and epyc): fit one scale `alpha` of the predicted saving
(measured ratio = 1 - alpha * (1 - predicted ratio); smoea.latency.fit_saving_scale, the fit a
format-6 build makes) on the first --fit pruned models of a record, and give the median error
of the latency as a fraction of the baseline's on the others, before and after. Reads records;
times nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from smoea.latency import fit_saving_scale

RESULTS = Path(__file__).parent / "results/latency-model"


def ratios(record: dict) -> tuple[np.ndarray, np.ndarray]:
    configs = record["configs"]
    predicted = np.array([c["predicted_ratio"] for c in configs])
    measured = np.array([c["measured_ratio"] for c in configs])
    return predicted, measured


def median_error(predicted: np.ndarray, measured: np.ndarray) -> float:
    return float(np.median(np.abs(predicted - measured) / measured))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("records", nargs="*")
    p.add_argument("--fit", type=int, default=5)
    args = p.parse_args()
    paths = [Path(r) for r in args.records] or sorted(
        [*RESULTS.glob("format5/*.json"), *RESULTS.glob("epyc/*.json")]
    )
    print(f"| record | alpha (fit on {args.fit}) | median error before | after (on the rest) |")
    print("|---|---|---|---|")
    for path in paths:
        predicted, measured = ratios(json.loads(path.read_text()))
        fit, rest = slice(0, args.fit), slice(args.fit, None)
        alpha = fit_saving_scale(1 - predicted[fit], 1 - measured[fit])  # the build's own fit
        corrected = 1 - alpha * (1 - predicted)
        before = median_error(predicted[rest], measured[rest])
        after = median_error(corrected[rest], measured[rest])
        name = f"{path.parent.name}/{path.stem}"
        print(f"| {name} | {alpha:.2f} | {before:.1%} | {after:.1%} |")


if __name__ == "__main__":
    main()
