"""Table and plot of the recovery curve (recovery.sh, recovery_gpu.sh): accuracy against epochs.

Usage: python benchmarks/recovery_summary.py RUNS_DIR [BASELINE_TEST_ACCURACY]"""

import json
import re
import sys
from pathlib import Path

# <method>-<kind>-<epochs>-seed<k>: no method prefix is SMOEA's model, l1p- l1-progressive's;
# distillT2 / distillW05: distillation at temperature 2 / weight 0.5 (the defaults otherwise)
NAME = re.compile(r"(?:(l1p)-)?(plain|distill(?:T\d+|W\d+)?|control)-(\d+)-seed(\d+)")
METHODS = {None: "smoea", "l1p": "l1-progressive"}


def load(runs: Path) -> list[dict]:
    rows = []
    for path in sorted(runs.glob("*-seed*/train.json")):
        m = NAME.fullmatch(path.parent.name)
        if not m:
            continue
        record = json.loads(path.read_text())
        method = "baseline" if m.group(2) == "control" else METHODS[m.group(1)]
        rows.append(
            {
                "method": method,
                "kind": m.group(2),
                "epochs": int(m.group(3)),
                "seed": int(m.group(4)),
                "test": record["test_accuracy"],
                "val": record["history"][-1]["val_accuracy"],
                "params": record["params"],
                "seconds": record["seconds"],
            }
        )
    return rows


def table(rows: list[dict], baseline_test: float) -> str:
    control = {(r["epochs"], r["seed"]): r for r in rows if r["kind"] == "control"}
    lines = [
        f"Baseline test accuracy {100 * baseline_test:.2f}%.",
        "",
        "| model | fine-tune | epochs | seed | test % | val. % | drop vs baseline | "
        "drop vs control | params | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["epochs"], r["method"], r["kind"], r["seed"])):
        c = control.get((r["epochs"], r["seed"]))
        vs_control = "" if c is None else f"{100 * (c['test'] - r['test']):.2f}"
        lines.append(
            f"| {r['method']} | {r['kind']} | {r['epochs']} | {r['seed']} | "
            f"{100 * r['test']:.2f} | {100 * r['val']:.2f} | "
            f"{100 * (baseline_test - r['test']):.2f} | {vs_control} | "
            f"{r['params']:,} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


CURVES = [("smoea", "plain"), ("smoea", "distill"), ("baseline", "control")]
CURVES += [("l1-progressive", "plain"), ("l1-progressive", "distill")]


def plot(rows: list[dict], baseline_test: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, split in zip(axes, ("test", "val")):
        for method, kind in CURVES:
            points = sorted(
                (r["epochs"], 100 * r[split])
                for r in rows
                if r["kind"] == kind and r["method"] == method
            )
            if points:
                label = kind if method == "baseline" else f"{method} {kind}"
                ax.plot(*zip(*points), marker="o", label=label)
        ax.set_xlabel("fine-tuning epochs")
        ax.set_ylabel(f"{'test' if split == 'test' else 'validation'} accuracy (%)")
    axes[0].axhline(100 * baseline_test, color="grey", linestyle="--", label="baseline")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(runs: Path, baseline_test: float | None = None) -> None:
    """With no baseline accuracy given, it is read from runs/pruned-seed*/report.json."""
    rows = load(runs)
    if baseline_test is None:
        pruned = next(runs.glob("pruned-seed*/report.json"), None)
        if pruned is None:
            sys.exit(f"{runs} holds no pruned-seed*/report.json: give the baseline's accuracy")
        baseline_test = json.loads(pruned.read_text())["baseline"]["test_accuracy"]
    text = table(rows, baseline_test)
    (runs / "recovery.md").write_text(text)
    (runs / "recovery.json").write_text(json.dumps(rows, indent=2))
    if rows:
        plot(rows, baseline_test, runs / "recovery.png")
    print(text)


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else None)
