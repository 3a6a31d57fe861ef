"""Whether this machine times the same models in more than one state (issue "Real speed", 5)

Usage: python benchmarks/latency_states.py BASELINE.pt MODEL.pt [MODEL.pt ...] [--batch 1]
           [--seconds 100] [--out OUT.json]

Measures the baseline and the models together (smoea.latency.time_models, the measurement
compare and the table use, 27 rounds) again and again for `--seconds`, and prints each
measurement: the baseline's ms and every model's ratio to the baseline (and to the first
model). A machine in one state gives ratios that scatter around one value; on the project's
2-core VM they fall into two groups that last tens of seconds each, marked by the baseline's
own time. Then: the correlation of the baseline's ms with each ratio, and each ratio's mean and
std over all measurements and over those in the fast state (baseline within 15% of its
fastest). Run it alone.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from smoea import checkpoint
from smoea.latency import time_models
from smoea.report import versions

FAST = 1.15  # a measurement is in the fast state when the baseline ran within this of its fastest


def measure(baseline, models: list, shape: tuple, batch: int, seconds: float) -> np.ndarray:
    """Rows: the baseline's ms, then each model's time over the baseline's."""
    rows, start = [], time.time()
    while time.time() - start < seconds:
        t = time_models([baseline, *models], shape, batch, torch.device("cpu"), 27)
        rows.append([t[0], *(x / t[0] for x in t[1:])])
        print(" ".join(f"{x:.3f}" for x in rows[-1]), flush=True)
    return np.array(rows)


def summary(a: np.ndarray, names: list[str]) -> dict:
    """Per model: correlation of its ratio with the baseline's ms; mean and std of the ratio,
    over all measurements and over the fast state's."""
    fast = a[:, 0] <= FAST * a[:, 0].min()
    out = {"measurements": len(a), "fast": int(fast.sum())}
    for k, name in enumerate(names, start=1):
        out[name] = {
            "corr_with_baseline_ms": float(np.corrcoef(a[:, 0], a[:, k])[0, 1]),
            "all": [float(a[:, k].mean()), float(a[:, k].std(ddof=1))],
            "fast": [float(a[fast, k].mean()), float(a[fast, k].std(ddof=1))],
            "slow": [float(a[~fast, k].mean()), float(a[~fast, k].std(ddof=1))]
            if (~fast).sum() > 1
            else None,
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("baseline", type=Path)
    p.add_argument("models", type=Path, nargs="+")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seconds", type=float, default=100)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    record, baseline = checkpoint.load_model_file(args.baseline)
    shape = tuple(record.get("image_shape") or (3, 32, 32))  # older files: CIFAR-10's
    models = [checkpoint.load(m) for m in args.models]
    names = [f"{m.parent.parent.name}/{m.stem}" for m in args.models]
    print("baseline ms, then each model's ratio to the baseline:", ", ".join(names))
    a = measure(baseline, models, shape, args.batch, args.seconds)
    result = summary(a, names)
    print(f"{result['measurements']} measurements, {result['fast']} in the fast state")
    for name in names:
        r = result[name]
        slow = "" if r["slow"] is None else f", slow {r['slow'][0]:.3f} ± {r['slow'][1]:.3f}"
        print(
            f"{name}: corr with the baseline's ms {r['corr_with_baseline_ms']:.2f}; all "
            f"{r['all'][0]:.3f} ± {r['all'][1]:.3f}, fast {r['fast'][0]:.3f} ± {r['fast'][1]:.3f}"
            + slow
        )
    if args.out:
        result.update(
            rows=a.tolist(),
            names=names,
            batch=args.batch,
            versions=versions(),
            threads=torch.get_num_threads(),
            baseline=str(args.baseline),
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
