"""How repeatable is a pruned model's measured latency ratio? (issue "Real speed", item 5)

Usage: python benchmarks/latency_repeat.py OUT.json [--arch resnet20] [--batch 1]
           [--repeats 8] [--rounds 27] [--configs 3] [--model PRUNED.pt ...] [--seed 0]
           [--ways once,fresh]

`smoea compare --target-latency` measures each pruned model together with a fresh baseline
(smoea.latency.time_models, 27 interleaved rounds) and calls the pair matched when the ratio is
within 3% of the target. On resnet20 at batch 1 the same architecture measured up to 4% apart
minutes later (benchmarks/results/latency-evidence). This script measures the same pairs again
and again (new copies of both models each repeat), in the ways --ways names, alternated so that
the machine's drift falls on each alike:
- once:  one measurement: each model folded once and called in every round (compare's way
         until 2026-12-04);
- fresh: one measurement with a new copy folded (new memory) for every round, so that one
         allocation's luck (alignment, cache placement) is averaged over the rounds;
- mean:  latency.time_ratio, the mean of latency.REPEATS measurements made the `once` way
         (compare's way since 2026-12-04).
The pruned models: random ones (every layer keeps 40-100% of its units, the strongest by L1)
and any given with --model (a pruned model file written by smoea). The baseline is the
committed trained one for resnet20 and mobilenetv2 (random weights for others). Prints each
pair's ratios per way: mean, standard deviation and range over repeats. Run it alone.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from smoea import checkpoint
from smoea.deploy import fold_batchnorm
from smoea.errors import SmoeaError
from smoea.latency import cut_copy, random_counts, time_models, time_ratio, time_together
from smoea.models import build_model, make_arch
from smoea.report import versions
from smoea.structure import Structure

BASELINES = Path(__file__).parent / "results/beyond-vgg/baselines"
WIDTHS = {"vgg14": 0.5, "mobilenetv2": 0.5}
SHAPE = (3, 32, 32)


def baseline_model(arch: str) -> nn.Module:
    path = BASELINES / arch / "model.pt"
    if path.exists():
        return checkpoint.load(path).eval()
    return build_model(make_arch(arch, WIDTHS.get(arch, 1.0), 10, 3, 32)).eval()


def random_pruned(model: nn.Module, rng: np.random.Generator) -> nn.Module:
    """A copy with every layer cut to a random 40-100% of its units, the strongest by L1."""
    s = Structure(model, torch.zeros(1, *SHAPE))
    return cut_copy(s, random_counts(s.units_per_layer, rng, low=0.4))[1].eval()


def fresh_maker(model: nn.Module, batch: int):
    """A new folded copy and input for every round (new memory each time)."""

    def make():
        folded = fold_batchnorm(copy.deepcopy(model).eval()).to(memory_format=torch.channels_last)
        x = torch.randn(batch, *SHAPE).contiguous(memory_format=torch.channels_last)
        return lambda: folded(x)

    return make


def ratio(base: nn.Module, pruned: nn.Module, way: str, batch: int, rounds: int) -> float | None:
    cpu = torch.device("cpu")
    models = [copy.deepcopy(base), copy.deepcopy(pruned)]  # new memory, as compare has
    try:
        if way == "mean":  # compare's own call
            return time_ratio(*models, SHAPE, batch, cpu, rounds, log=lambda line: None)["ratio"]
        if way == "once":
            base_ms, ms = time_models(models, SHAPE, batch, cpu, rounds)
        else:
            base_ms, ms = time_together([fresh_maker(m, batch) for m in models], cpu, rounds)
    except SmoeaError:  # too noisy (compare would record no ratio): counted as refused
        return None
    return ms / base_ms


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--arch", default="resnet20")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--rounds", type=int, default=27)
    p.add_argument("--configs", type=int, default=3)
    p.add_argument("--model", action="append", default=[])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ways", default="once,fresh", help="from once, fresh, mean")
    args = p.parse_args()
    ways = args.ways.split(",")
    if not ways or not set(ways) <= {"once", "fresh", "mean"}:
        p.error("--ways: a comma-separated list from once, fresh, mean")
    torch.manual_seed(args.seed)
    base = baseline_model(args.arch)
    rng = np.random.default_rng(args.seed)
    pairs = {f"random{i}": random_pruned(base, rng) for i in range(args.configs)}
    pairs.update({Path(m).stem: checkpoint.load(m).eval() for m in args.model})
    ratios = {name: {way: [] for way in ways} for name in pairs}
    for r in range(args.repeats):
        for name, pruned in pairs.items():
            for way in ways if r % 2 == 0 else ways[::-1]:
                ratios[name][way].append(ratio(base, pruned, way, args.batch, args.rounds))
        print(f"repeat {r + 1}/{args.repeats} done", flush=True)
    print(f"\n{args.arch} batch {args.batch}, {args.rounds} rounds, {args.repeats} repeats")
    print("| pruned model | way | mean ratio | std | min-max | range / mean | refused |")
    print("|---|---|---|---|---|---|---|")
    for name, ways in ratios.items():
        for way, measured in ways.items():
            rs = np.array([r for r in measured if r is not None])
            refused = len(measured) - len(rs)
            if len(rs) < 2:
                print(f"| {name} | {way} | - | - | - | - | {refused} |")
                continue
            print(
                f"| {name} | {way} | {rs.mean():.3f} | {rs.std(ddof=1):.3f} | "
                f"{rs.min():.3f}-{rs.max():.3f} | {(rs.max() - rs.min()) / rs.mean():.1%} "
                f"| {refused} |"
            )
    record = {**vars(args), "ratios": ratios, "threads": torch.get_num_threads()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({**record, "versions": versions()}, indent=1))


if __name__ == "__main__":
    main()
