"""Print the benchmark figures of a baseline (train.json) and a prune run (report.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(base_dir: str, prune_dir: str) -> None:
    train = json.loads((Path(base_dir) / "train.json").read_text())
    report = json.loads((Path(prune_dir) / "report.json").read_text())
    b, p = report["baseline"], report["pruned"]
    evals = sum(g["evaluations"] for g in report["groups"])
    search = report["search_seconds"]
    lines = [
        f"command (prune): {report['command']}",
        f"baseline: test accuracy {b['test_accuracy']:.4f}, params {b['params']:,}, "
        f"MACs {b['macs']:,} ({len(train['history'])} epochs, {train['seconds']:.0f} s)",
        f"pruned:   test accuracy {p['test_accuracy']:.4f}, params {p['params']:,} "
        f"({report['params_ratio']:.2%}), MACs {p['macs']:,} ({report['macs_ratio']:.2%})",
        f"drop: {100 * (b['test_accuracy'] - p['test_accuracy']):.2f} points",
        f"search: {search:.0f} s for {evals} candidate evaluations "
        f"({evals / search:.1f} per second)",
        f"total wall time of prune: {report['wall_seconds']:.0f} s; "
        f"peak memory {report.get('peak_memory_mb', float('nan')):.0f} MB",
        "per group: layers, filters before -> after, seconds, evaluations, chosen [f1, f2]",
    ]
    for g in report["groups"]:
        lines.append(
            f"  conv {g['layers'][0]}-{g['layers'][-1]}: {g['filters_before']} -> "
            f"{g['filters_after']}, {g['seconds']:.0f} s, {g['evaluations']} evals, "
            f"chosen [{g['chosen'][0]:.4f}, {g['chosen'][1]:.4f}]"
        )
    if "final_finetune" in report:
        f = report["final_finetune"]
        lines.append(
            f"final fine-tune: {f['epochs']} epochs, {f['seconds']:.0f} s, "
            f"validation accuracy {f['val_accuracy']:.4f}"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
