"""One row per latency_model.py record: how a build's unpruned-model time and its ratio error vary.

Usage: python benchmarks/latency_builds.py RECORD.json [RECORD.json ...]

Prints a markdown table, a row per record in the order given: the table's format, the build's
seconds, the unpruned model's time in the table and as measured beside the 20 pruned models,
their quotient (a table in the VM's slow state puts it well over 1), and the median and largest
error of the latency as a fraction of the baseline's (the form a --target-latency takes); then,
per format, the median and the spread of those. Reads the records only; measures nothing.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def row(path: Path) -> dict:
    r = json.loads(path.read_text())
    return {
        "record": str(path),
        "format": r["key"]["format"],
        "seconds": r["table_seconds"],
        "table_ms": r["full_ms"],
        "measured_ms": r["baseline_ms"],
        "quotient": r["full_ms"] / r["baseline_ms"],
        "median": r["median_abs_ratio_error"],
        "max": r["max_abs_ratio_error"],
    }


def main() -> None:
    rows = [row(Path(p)) for p in sys.argv[1:]]
    print(
        "| record | format | table s | unpruned ms: table; measured | table / measured "
        "| median / max error of the ratio |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['record']} | {r['format']} | {r['seconds']:.0f} | {r['table_ms']:.2f}; "
            f"{r['measured_ms']:.2f} | {r['quotient']:.3f} | {r['median']:.1%} / {r['max']:.1%} |"
        )
    print()
    print("| format | builds | table / measured: range | median error: median (range) |")
    print("|---|---|---|---|")
    for fmt in sorted({r["format"] for r in rows}):
        of = [r for r in rows if r["format"] == fmt]
        q, m = [r["quotient"] for r in of], [r["median"] for r in of]
        print(
            f"| {fmt} | {len(of)} | {min(q):.3f}-{max(q):.3f} | {statistics.median(m):.1%} "
            f"({min(m):.1%}-{max(m):.1%}) |"
        )


if __name__ == "__main__":
    main()
