"""Table of prune runs (report.json files): accuracies, sizes, per-group budgets, search time.

Usage: python benchmarks/earn_summary.py RUN_DIR [RUN_DIR ...]
Prints one Markdown row per run and, per run, each group's planned share, what it spent and its
search seconds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def row(name: str, r: dict) -> str:
    p, c = r["pruned"], r["config"]
    evals = sum(g["evaluations"] for g in r["groups"])
    return (
        f"| {name} | {c['budget']} | {c.get('calibration_images', 0)} | "
        f"{pct(p.get('held_out_val_accuracy'))} | {pct(p.get('val_accuracy'))} | "
        f"{pct(p['test_accuracy'])} | {r['params_ratio']:.4f} | {r['macs_ratio']:.4f} | "
        f"{r['search_seconds']:.0f} | {evals} | {r.get('peak_memory_mb', 0):.0f} |"
    )


def groups(name: str, r: dict) -> list[str]:
    lines = [f"{name}:"]
    for g in r["groups"]:
        share = g.get("planned_share")
        lines.append(
            f"  conv {g['layers'][0]}-{g['layers'][-1]}: {g['filters_before']} -> "
            f"{g['filters_after']}, planned share {'' if share is None else f'{share:.4f}'}, "
            f"spent {g.get('spent', float('nan')):.4f}, search-set f1 {g['chosen'][0]:.4f}, "
            f"{g['seconds']:.0f} s ({g.get('evaluator', 'masked')})"
        )
    return lines


def main(paths: list[str]) -> None:
    reports = {Path(p).name: json.loads((Path(p) / "report.json").read_text()) for p in paths}
    print(
        "| run | budget | calibration | held-out val. % | val. % | test % | params ratio | "
        "MACs ratio | search s | evaluations | peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in reports.items():
        print(row(name, r))
    print()
    for name, r in reports.items():
        print("\n".join(groups(name, r)))


if __name__ == "__main__":
    main(sys.argv[1:])
