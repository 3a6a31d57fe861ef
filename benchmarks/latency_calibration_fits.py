"""Least squares or a median for the table's saving scale? Offline (issue "Real speed")

Usage: python benchmarks/latency_calibration_fits.py [FIT]

For each committed latency_model.py record (format5/, epyc/, and the four format-6 records
that store their build's scale, unscaled with it): 300 random draws of FIT pruned models
(default 5, what a build measures), a saving scale fitted on them by least squares
(smoea.latency.fit_saving_scale, what a format-6 build does), by the median of measured over
predicted saving (savings predicted above 2%), and by least squares kept only where it
predicts each fitting model left out better than no scale (smoea.latency.checked_saving_scale,
what a build does since format 7), each scored on the other 20 - FIT models; prints the median
and 90th percentile over draws of the median error of the ratio to the baseline, and the
unscaled table's. Reads records; times nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from smoea.latency import SCALE_RANGE, checked_saving_scale, fit_saving_scale

RESULTS = Path(__file__).parent / "results/latency-model"
DRAWS = 300
FIT = int(sys.argv[1]) if len(sys.argv) > 1 else 5  # models a scale is fitted on


def unscaled_ratios(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(predicted ratio before any scale, measured ratio) per pruned model of a record."""
    record = json.loads(path.read_text())
    predicted = np.array([c["predicted_ratio"] for c in record["configs"]])
    measured = np.array([c["measured_ratio"] for c in record["configs"]])
    scale = record.get("saving_scale")
    return (predicted if scale is None else 1 - (1 - predicted) / scale), measured


def median_fit(predicted_saved: np.ndarray, saved: np.ndarray) -> float:
    ok = predicted_saved > 0.02
    if not ok.any():
        return 1.0
    return float(np.clip(np.median(saved[ok] / predicted_saved[ok]), *SCALE_RANGE))


def main() -> None:
    paths = sorted([*RESULTS.glob("format5/*.json"), *RESULTS.glob("epyc/*.json")])
    paths += [  # the format-6 records that hold their build's scale
        RESULTS / f"format6-epyc/{name}.json"
        for name in ("mobilenetv2-b1", "resnet20-b64", "vgg14-b64", "mobilenetv2-b64")
    ]
    rng = np.random.default_rng(0)
    print(
        "| record | unscaled | least squares: median / p90 | median fit: median / p90 | "
        "checked (what a build does since format 7): median / p90 |"
    )
    print("|---|---|---|---|---|")
    for path in paths:
        predicted, measured = unscaled_ratios(path)
        errors = {"none": [], "lsq": [], "median": [], "checked": []}
        for _ in range(DRAWS):
            order = rng.permutation(len(predicted))
            fit, rest = order[:FIT], order[FIT:]
            fits = (("lsq", fit_saving_scale), ("median", median_fit))
            for name, fn in (*fits, ("checked", checked_saving_scale)):
                scale = fn(1 - predicted[fit], 1 - measured[fit])
                corrected = 1 - scale * (1 - predicted)
                errors[name].append(
                    np.median(abs(corrected[rest] - measured[rest]) / measured[rest])
                )
            errors["none"].append(np.median(abs(predicted[rest] - measured[rest]) / measured[rest]))
        q = {k: (np.median(v), np.percentile(v, 90)) for k, v in errors.items()}
        print(
            f"| {path.parent.name}/{path.stem} | {q['none'][0]:.1%} | {q['lsq'][0]:.1%} / "
            f"{q['lsq'][1]:.1%} | {q['median'][0]:.1%} / {q['median'][1]:.1%} | "
            f"{q['checked'][0]:.1%} / {q['checked'][1]:.1%} |"
        )


if __name__ == "__main__":
    main()
