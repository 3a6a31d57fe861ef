"""How much each group may remove: the budget rules, re-planned before every group."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from smoea.plan import Curve, allocate, allocate_level, lower_envelope, top_k_masks
from smoea.search import Genome, GroupProblem, run_nsga2
from smoea.structure import Structure

if TYPE_CHECKING:
    from smoea.prune_config import PruneConfig

BUDGET_RULES = {
    "proportional": 1.0,
    "heavy-late": 2.0,
    "fronts": None,
    "search-fronts": None,
    "level": None,
    "search": None,
}
PLAN_POINTS = 9  # ratios per group curve of the `fronts` budget rule
PLAN_SEARCH = (16, 4)  # population, generations of a `search-fronts` curve's short NSGA-II


@dataclass
class Planner:
    """The whole-model fraction each group may keep the model at. `fronts`, `level` and
    `search-fronts` measure every remaining group's error curve (L1 top-k at PLAN_POINTS
    ratios, scored by `evaluator_for`) and spread what is still to remove over them;
    `proportional` and `heavy-late` weigh the groups' removable mass; `search` leaves it to
    the group's search. `fraction(s, kept)` is the target's measure as a fraction."""

    config: PruneConfig
    groups: list[list[int]]
    min_keep: list[int]
    original: dict
    evaluator_for: Callable  # (Structure, Genome) -> a candidate evaluator
    genome_for: Callable[[Structure, list[int]], Genome]
    fraction: Callable[[Structure, np.ndarray], float]
    log: Callable[[str], None]

    def budget(self, s: Structure, g: int) -> tuple[float | None, dict | None]:
        """Whole-model fraction allowed after group g (see docs/method.md: budget rules), and the
        measured plan behind it with `--budget fronts`."""
        r = self.config.target
        if r is None:
            return None, None
        if g == len(self.groups) - 1:
            return r, None
        full = s.units_per_layer
        now = self.fraction(s, full)
        need = max(0.0, now - r)
        if self.config.budget_rule in ("fronts", "search-fronts", "level"):
            return self._planned_budget(s, g, now, need)
        if self.config.budget_rule == "search":  # the search's constraint is the target itself
            return r, None
        masses = []
        for layers in self.groups[g:]:
            kept = full.copy()
            kept[layers] = [self.min_keep[i] for i in layers]
            masses.append(now - self.fraction(s, kept))
        power = BUDGET_RULES[self.config.budget_rule]
        weights = np.array(masses) ** power
        share = need * weights[0] / max(weights.sum(), 1e-12)
        share = max(share, need - sum(masses[1:]))  # what later groups cannot remove
        return float(now - min(share, masses[0])), None

    def _planned_budget(self, s: Structure, g: int, now: float, need: float):
        """Measure every remaining group's curve on the current model, spread `need` over them
        with the least predicted error rise, and give group g its share."""
        start = time.perf_counter()
        measured = [self._curve(s, layers, now, g) for layers in self.groups[g:]]
        curves = [curve for curve, _ in measured]
        shares = (allocate_level if self.config.budget_rule == "level" else allocate)(curves, need)
        share = min(float(shares[0]), float(curves[0].removed[-1]))
        share = max(share, need - sum(float(c.removed[-1]) for c in curves[1:]))
        plan = {
            "need": need,
            "shares": shares.tolist(),
            "curves": [c.as_dict() for c in curves],
            "evaluations": sum(n for _, n in measured),
            "seconds": time.perf_counter() - start,
        }
        self.log(
            f"plan before group {g + 1}: remove {need:.4f} of the {self.config.measure} in all, "
            "shares " + ", ".join(f"{v:.4f}" for v in shares)
        )
        return float(now - share), plan

    def _curve(self, s: Structure, layers: list[int], now: float, g: int) -> tuple[Curve, int]:
        """One group's f1 at L1 top-k ratios, calibrated, with every other layer as it is;
        with `--budget search-fronts`, the lower envelope of those points and a short NSGA-II
        front of the group (so the plan sees what the group's search can reach). Also returns
        how many candidates it scored."""
        genome = self.genome_for(s, layers)
        evaluator = self.evaluator_for(s, genome)
        l1 = [s.l1_norms(i) for i in layers]
        candidates = top_k_masks(l1, genome.units, genome.min_keep, PLAN_POINTS)
        error = evaluator.score_masks([dict(zip(layers, masks)) for masks in candidates])
        removed = []
        for masks in candidates:
            kept = s.units_per_layer.copy()
            kept[layers] = [int(m.sum()) for m in masks]
            removed.append(now - self.fraction(s, kept))
        removed = np.maximum.accumulate(np.array(removed))
        if self.config.budget_rule == "search-fronts":
            removed, error = self._with_front(s, evaluator, l1, now, g, removed, error)
        return Curve(list(layers), removed, error), evaluator.evaluations

    def _with_front(self, s, evaluator, l1, now: float, g: int, removed, error):
        """The curve's points joined with a short unconstrained NSGA-II front of the group,
        reduced to the lower envelope: at each size removed, the least error of any point
        that removes at least as much."""
        pop, generations = PLAN_SEARCH
        problem = GroupProblem(
            evaluator,
            s.units_per_layer,
            self.original,
            None,
            self.config.measure,
            (self.config.measure,),
        )
        seed = self.config.seed + 1000 * (g + 1) + evaluator.genome.layers[0]
        kind = self.config.genome
        result = run_nsga2(problem, l1, pop, generations, seed, "plan", genome_kind=kind)
        removed = np.concatenate([removed, now - result.F[:, 1]])
        return lower_envelope(removed, np.concatenate([error, result.F[:, 0]]))
