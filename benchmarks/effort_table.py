"""Table of `benchmarks/effort.sh` runs: search seconds, evaluations, accuracy per effort rule.

Usage: python benchmarks/effort_table.py RUNS_DIR [EXTRA_RECORD_DIR:EFFORT:TARGET ...]
  RUNS_DIR holds <effort>/<target>/runs/smoea-seed<N>.json (from effort.sh); each extra folder
  of records (e.g. an earlier session's run of the old behaviour) is added under its effort and
  target. Prints one markdown row per run, then per effort and target the mean and the range
  over seeds.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def rows(runs: Path, extra: list[str]) -> list[dict]:
    found = []
    for path in sorted(runs.glob("*/*/runs/smoea-seed*.json")):
        found.append(_row(path, path.parts[-4], path.parts[-3], str(path.parent)))
    for spec in extra:
        folder, effort, target = spec.split(":")
        for path in sorted(Path(folder).glob("smoea-seed*.json")):
            found.append(_row(path, effort, target, folder))
    return found


def _row(path: Path, effort: str, target: str, source: str) -> dict:
    r = json.loads(path.read_text())
    return {
        "effort": effort,
        "target": target,
        "seed": r["seed"],
        "search_s": r["search_seconds"],
        "evaluations": r["evaluations"],
        "test": 100 * r["test_accuracy"],
        "held_out": 100 * r["held_out_val_accuracy"],
        "params": r["params"],
        "macs": r["macs"],
        "source": source,
    }


def main() -> None:
    table = rows(Path(sys.argv[1]), sys.argv[2:])
    print(
        "| effort | target | seed | search s | evaluations | test % | held-out % | params |"
        " MACs | record |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(table, key=lambda r: (r["target"], r["effort"], r["seed"])):
        print(
            f"| {r['effort']} | {r['target']} | {r['seed']} | {r['search_s']:.0f} | "
            f"{r['evaluations']} | {r['test']:.2f} | {r['held_out']:.2f} | {r['params']:,} | "
            f"{r['macs']:,} | {r['source']} |"
        )
    groups = defaultdict(list)
    for r in table:
        groups[(r["target"], r["effort"])].append(r)
    print(
        "\n| target | effort | seeds | search s (mean) | test % (mean, range) |"
        " held-out % (mean, range) |"
    )
    print("|---|---|---|---|---|---|")
    for (target, effort), rs in sorted(groups.items()):
        seeds = ",".join(str(r["seed"]) for r in sorted(rs, key=lambda r: r["seed"]))
        search = sum(r["search_s"] for r in rs) / len(rs)
        print(
            f"| {target} | {effort} | {seeds} | {search:.0f} | {_spread(rs, 'test')} | "
            f"{_spread(rs, 'held_out')} |"
        )


def _spread(rs: list[dict], key: str) -> str:
    """Mean and the range over seeds (max - min): the seed spread the issue compares against."""
    values = [r[key] for r in rs]
    return f"{sum(values) / len(values):.2f} ({max(values) - min(values):.2f})"


if __name__ == "__main__":
    main()
