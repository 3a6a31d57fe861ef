"""Table and plot of the recovery curve (benchmarks/recovery.sh): accuracy against epochs."""

import json
import re
import sys
from pathlib import Path


def load(runs: Path) -> list[dict]:
    rows = []
    for path in sorted(runs.glob("*-seed*/train.json")):
        m = re.fullmatch(r"(plain|distill|control)-(\d+)-seed(\d+)", path.parent.name)
        if not m:
            continue
        record = json.loads(path.read_text())
        rows.append(
            {
                "kind": m.group(1),
                "epochs": int(m.group(2)),
                "seed": int(m.group(3)),
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
        "| fine-tune | epochs | seed | test % | val. % | drop vs baseline | drop vs control | "
        "params | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["epochs"], r["kind"], r["seed"])):
        c = control.get((r["epochs"], r["seed"]))
        vs_control = "" if c is None else f"{100 * (c['test'] - r['test']):.2f}"
        lines.append(
            f"| {r['kind']} | {r['epochs']} | {r['seed']} | {100 * r['test']:.2f} | "
            f"{100 * r['val']:.2f} | {100 * (baseline_test - r['test']):.2f} | {vs_control} | "
            f"{r['params']:,} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], baseline_test: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind in ("plain", "distill", "control"):
        points = sorted((r["epochs"], 100 * r["test"]) for r in rows if r["kind"] == kind)
        if points:
            ax.plot(*zip(*points), marker="o", label=kind)
    ax.axhline(100 * baseline_test, color="grey", linestyle="--", label="baseline")
    ax.set_xlabel("fine-tuning epochs")
    ax.set_ylabel("test accuracy (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(runs: Path) -> None:
    rows = load(runs)
    pruned = next(runs.glob("pruned-seed*/report.json"), None)
    if pruned is None:
        sys.exit(f"{runs} holds no finished pruned-seed*/report.json")
    baseline_test = json.loads(pruned.read_text())["baseline"]["test_accuracy"]
    text = table(rows, baseline_test)
    (runs / "recovery.md").write_text(text)
    (runs / "recovery.json").write_text(json.dumps(rows, indent=2))
    if rows:
        plot(rows, baseline_test, runs / "recovery.png")
    print(text)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
