"""Every pruned model of a latency comparison measured again, all at once (issue "Real speed", 5)

Usage: python benchmarks/latency_side_by_side.py BASELINE.pt RUNS_DIR [RUNS_DIR ...] [--batch 1]
           [--target 0.8] [--repeats 4] [--rounds 27] [--out OUT.json]

`smoea compare --target-latency` measures each method's model with a fresh baseline when that
run ends, minutes or hours apart from the others; on the 2-core VMs the same model measured
4-7% apart minutes later (benchmarks/results/latency-evidence), so ratios recorded that way
differ by the machine's state as well as by the models. Here the baseline and every saved model
in the RUNS_DIRs (`<method>-seed<k>.pt`, written by `smoea compare --save-models`) are measured
together in the same interleaved rounds (smoea.latency.time_models: each round takes one sample
of each, in a shuffled order), `--repeats` times, spread over the run (each repeat is a full
set of rounds of all of them). Prints each model's ratio to the baseline (mean over repeats and
its std), the ratio the compare run recorded, and whether each is within 3% of `--target`;
beside it each model's ratio to the smoea model of its cell and seed in the same rounds, and
the one its run recorded when it was matched beside that model (`--latency-match smoea`); the
same in OUT.json. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from smoea import checkpoint
from smoea.latency import time_models
from smoea.report import versions

TOLERANCE = 0.03  # the "equal measured latency (within 3%)"


def saved_runs(runs_dirs: list[Path]) -> list[tuple[str, Path]]:
    """(cell/run, model file) for every run in the folders that saved its model, in name order
    (a cell: the folder above `runs`, e.g. b1-r0.8-epyc)."""
    return [
        (f"{d.resolve().parent.name}/{p.stem}", p)
        for d in runs_dirs
        for p in sorted(d.glob("*.pt"))
        if p.with_suffix(".json").exists()
    ]


def measure_all(
    baseline, models: list, shape: tuple, batch: int, repeats: int, rounds: int
) -> list[list[float]]:
    """Each repeat: ms per call of the baseline and every model, measured together."""
    cpu = torch.device("cpu")
    out = []
    for k in range(repeats):
        out.append(time_models([baseline, *models], shape, batch, cpu, rounds))
        print(f"repeat {k + 1}/{repeats}: baseline {out[-1][0]:.3f} ms", flush=True)
    return out


def rows(names: list[str], recorded: list[dict], times: list[list[float]], target: float):
    """One row per model: its ratios over repeats, their mean and std, the recorded ratio."""
    result = []
    for i, name in enumerate(names):
        ratios = [t[i + 1] / t[0] for t in times]
        mean = statistics.fmean(ratios)
        ref = _smoea_of(name, names)
        result.append(
            {
                "run": name,
                "ratios": ratios,
                "ratio": mean,
                "std": statistics.stdev(ratios) if len(ratios) > 1 else 0.0,
                "recorded_ratio": recorded[i].get("measured_latency_ratio"),
                "within": abs(mean - target) <= TOLERANCE * target,
                "beside_smoea": None
                if ref is None
                else statistics.fmean(t[i + 1] / t[ref + 1] for t in times),
                "recorded_beside_smoea": (recorded[i].get("measured_beside_smoea") or {}).get(
                    "ratio"
                ),
            }
        )
    return result


def _smoea_of(name: str, names: list[str]) -> int | None:
    """The index of the smoea run of the same cell and seed as `name` (cell/method-seedK)."""
    cell, run = name.split("/", 1)
    seed = run.rsplit("-seed", 1)[1]
    return next((k for k, n in enumerate(names) if n == f"{cell}/smoea-seed{seed}"), None)


def summary(table: list[dict]) -> str:
    """Per cell and method: the mean and std over seeds of the ratio measured together."""
    methods: dict[str, list[float]] = {}
    for r in table:
        methods.setdefault(r["run"].rsplit("-seed", 1)[0], []).append(r["ratio"])
    lines = [
        "| cell/method | seeds | ratio measured together, mean ± std over seeds |",
        "|---|---|---|",
    ]
    for name, ratios in methods.items():
        std = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
        lines.append(f"| {name} | {len(ratios)} | {statistics.fmean(ratios):.3f} ± {std:.3f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("baseline", type=Path)
    p.add_argument("runs_dirs", type=Path, nargs="+")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--target", type=float, default=0.8)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--rounds", type=int, default=27)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    runs = saved_runs(args.runs_dirs)
    if not runs:
        raise SystemExit("no saved models (*.pt with a .json record) in the folders given")
    names = [name for name, _ in runs]
    recorded = [json.loads(path.with_suffix(".json").read_text()) for _, path in runs]
    models = [checkpoint.load(path) for _, path in runs]
    record, baseline = checkpoint.load_model_file(args.baseline)
    shape = tuple(record.get("image_shape") or (3, 32, 32))  # older files: CIFAR-10's
    times = measure_all(baseline, models, shape, args.batch, args.repeats, args.rounds)
    table = rows(names, recorded, times, args.target)
    print(
        "| run | ratio, measured together (mean of repeats) | std | recorded | within 3% "
        "| to its seed's smoea, together | recorded beside smoea |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in table:
        within = "yes" if r["within"] else "no"
        print(
            f"| {r['run']} | {r['ratio']:.3f} | {r['std']:.3f} | {_f(r['recorded_ratio'])} | "
            f"{within} | {_f(r['beside_smoea'])} | {_f(r['recorded_beside_smoea'])} |"
        )
    print(summary(table))
    if args.out:
        record = {
            "runs_dirs": [str(d) for d in args.runs_dirs],
            "baseline": str(args.baseline),
            "batch": args.batch,
            "target": args.target,
            "rounds": args.rounds,
            "baseline_ms": [t[0] for t in times],
            "rows": table,
            "versions": versions(),
            "threads": torch.get_num_threads(),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1))


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
