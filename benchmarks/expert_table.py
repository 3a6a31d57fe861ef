"""One table over every run record of a comparison folder, whatever invocation made it.

The expert comparison runs in several invocations into one folder (`--resume` reuses finished
runs; compare.md then summarizes every run made with the last command's settings, but not per
seed, and results committed before 2026-12-03 hold the last invocation's methods only). This reads
every runs/<method>-seed<k>.json and prints test % / held-out validation % per seed,
the means, the spread over seeds, the ratios of the baseline's MACs and parameters, and the mean
search and fine-tune seconds (wall time on the machine the runs name in their README).

Usage: python benchmarks/expert_table.py RUNS_DIR [BASELINE_PARAMS BASELINE_MACS]
  (defaults: the shared vgg14 w0.5 baseline's 3,684,842 parameters and 79,221,514 MACs)
"""

import json
import sys
from pathlib import Path

import numpy as np

from smoea.compare import RUN_FILE


def load(runs: Path) -> dict[str, dict[int, dict]]:
    """{method: {seed: record}} of the finished (not failed) runs."""
    table: dict[str, dict[int, dict]] = {}
    for path in sorted(runs.glob("*-seed*.json")):
        m = RUN_FILE.fullmatch(path.name)
        record = json.loads(path.read_text())
        if m and "failed" not in record:
            table.setdefault(m["name"], {})[int(m["seed"])] = record
    return table


def rows(table: dict[str, dict[int, dict]], params: float, macs: float) -> list[dict]:
    out = []
    for method, runs in table.items():
        test = np.array([r["test_accuracy"] for r in runs.values()])
        held = np.array([r["held_out_val_accuracy"] for r in runs.values()])
        out.append(
            {
                "method": method,
                "seeds": {
                    s: (r["test_accuracy"], r["held_out_val_accuracy"]) for s, r in runs.items()
                },
                "test_mean": float(test.mean()),
                "test_std": float(test.std(ddof=1)) if len(test) > 1 else None,
                "held_out_mean": float(held.mean()),
                "held_out_std": float(held.std(ddof=1)) if len(held) > 1 else None,
                "macs_ratio": float(np.mean([r["macs"] for r in runs.values()]) / macs),
                "params_ratio": float(np.mean([r["params"] for r in runs.values()]) / params),
                "search_seconds": float(np.mean([r["search_seconds"] for r in runs.values()])),
                "finetune_seconds": float(np.mean([r["finetune_seconds"] for r in runs.values()])),
            }
        )
    return sorted(out, key=lambda r: -r["held_out_mean"])


def markdown(rows: list[dict]) -> str:
    seeds = sorted({s for r in rows for s in r["seeds"]})
    head = " | ".join(f"seed {s}" for s in seeds)
    lines = [
        f"| method | {head} | mean test (std) | mean held-out (std) | MACs ratio | params ratio "
        "| search s | fine-tune s |",
        "|---|" + "---|" * (len(seeds) + 6),
    ]
    for r in rows:
        cells = []
        for s in seeds:
            t = r["seeds"].get(s)
            cells.append("-" if t is None else f"{100 * t[0]:.2f} / {100 * t[1]:.2f}")
        lines.append(
            f"| {r['method']} | {' | '.join(cells)} | {_mean(r['test_mean'], r['test_std'])} | "
            f"{_mean(r['held_out_mean'], r['held_out_std'])} | {r['macs_ratio']:.3f} | "
            f"{r['params_ratio']:.3f} | {_seconds(r['search_seconds'])} | "
            f"{_seconds(r['finetune_seconds'])} |"
        )
    return "\n".join(lines) + "\n"


def _seconds(s: float) -> str:
    return f"{s:.1f}" if s < 10 else f"{s:.0f}"


def _mean(mean: float, std: float | None) -> str:
    return f"{100 * mean:.2f}" + ("" if std is None else f" ({100 * std:.2f})")


if __name__ == "__main__":
    runs = Path(sys.argv[1])
    params, macs = (float(v) for v in sys.argv[2:4]) if len(sys.argv) > 3 else (3684842, 79221514)
    print(markdown(rows(load(runs), params, macs)), end="")
