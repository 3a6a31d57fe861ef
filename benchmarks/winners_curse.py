"""Does the search's choice hold up on images it never scored? The winner's curse in one group.

Usage: python benchmarks/winners_curse.py BASE_MODEL.pt DATA [--group 8-10] [--keep 0.4]
           [--seeds 0 1 2] [--genome counts]

On the unpruned baseline, one group is searched the way SMOEA searches it (NSGA-II, default
population and generations, 500-image search set, adaptive BatchNorm on 128 training images)
to a parameter budget: the whole model with the group cut to `keep` of its filters by one
uniform L1 ratio. Then, with the same calibration, the search's choice (lowest search-set
error within the budget), every front point within the budget, and the one-L1-ratio cut at
that budget (what l1-progressive keeps) are scored on the 4,500 validation images outside the
search set. If the choice beats the uniform cut on the search set but not outside it, the
search is choosing noise. No test image is read; no fine-tuning (a score before it).
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
from calibration_fidelity import finetuned_accuracy  # benchmarks/ is on sys.path

import smoea
from smoea.baselines import GroupCut
from smoea.data import calibration_set, draw_subset, load_splits, outside_subset
from smoea.evaluator import make_evaluator
from smoea.search import Genome, GroupProblem, run_nsga2
from smoea.select import choose
from smoea.structure import Structure


def one_seed(model, splits, layers, keep, seed, genome_kind, steps) -> dict:
    s = Structure(model, torch.zeros(1, *splits.image_shape))
    units = [int(s.units_per_layer[i]) for i in layers]
    floors = [max(1, math.ceil(0.05 * u)) for u in units]
    genome = Genome(layers, units, floors)
    search = draw_subset(splits.val, 500, seed)
    held = outside_subset(splits.val, 500, seed)
    calib = calibration_set(splits.train, 128, seed)
    ev = make_evaluator(s, genome, search, splits.mean, splits.std, "error", 500, calib)
    ev_held = make_evaluator(s, genome, held, splits.mean, splits.std, "error", 500, calib)
    full = s.units_per_layer
    original = {w: float(s.count(full, w)[0]) for w in ("params", "macs")}
    cut = GroupCut(s, layers, "params", original["params"])
    budget = cut.fraction([max(f, round(keep * u)) for f, u in zip(floors, units)])
    problem = GroupProblem(ev, full, original, budget, "params", ("params",))
    l1 = [s.l1_norms(i) for i in layers]
    result = run_nsga2(problem, l1, 24, 20, seed, genome_kind=genome_kind)
    pick = choose(result.F, "target", budget, 0.01, problem.size_column)
    within = np.flatnonzero(result.F[:, 1] <= budget + 1e-12)
    uniform = np.concatenate(cut.to_budget(l1, floors, budget))
    X = np.vstack([result.X[pick][None], uniform[None], result.X[within]])
    on_search, on_held = ev(X), ev_held.score_masks([genome.split(x) for x in X])
    after = (
        [finetuned_accuracy(model, splits, held, genome.split(x), steps, seed) for x in X[:2]]
        if steps
        else []
    )
    return {
        "seed": seed,
        "finetune_steps": steps,
        "held_out_accuracy_after_finetune": {"chosen": after[:1], "uniform": after[1:]},
        "budget": budget,
        "evaluations": result.evaluations,
        "chosen": {
            "search": float(on_search[0]),
            "held_out": float(on_held[0]),
            "kept": [int(m.sum()) for m in genome.split(X[0]).values()],
        },
        "uniform": {
            "search": float(on_search[1]),
            "held_out": float(on_held[1]),
            "kept": [int(m.sum()) for m in genome.split(X[1]).values()],
        },
        "front_within_budget": {"search": on_search[2:].tolist(), "held_out": on_held[2:].tolist()},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--group", default="8-10", help="conv layers, 1-based (default 8-10)")
    p.add_argument("--keep", type=float, default=0.4)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--genome", default="counts")
    p.add_argument("--finetune-steps", type=int, default=0, help="then fine-tune both (0: no)")
    a = p.parse_args()
    first, last = (int(v) for v in a.group.split("-"))
    layers = list(range(first - 1, last))
    torch.manual_seed(0)
    model = smoea.load(a.model).eval()
    splits = load_splits("cifar10", a.data, 5000, 0)
    for seed in a.seeds:
        row = one_seed(model, splits, layers, a.keep, seed, a.genome, a.finetune_steps)
        c, u = row["chosen"], row["uniform"]
        print(json.dumps(row))
        print(
            f"group conv {a.group}, keep {a.keep}, seed {seed}: chosen {c['kept']} "
            f"search {c['search']:.4f} held-out {c['held_out']:.4f} | uniform {u['kept']} "
            f"search {u['search']:.4f} held-out {u['held_out']:.4f}; after fine-tuning "
            f"{row['held_out_accuracy_after_finetune']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
