"""Layer-adaptive allocations SMOEA is compared with: how many filters per layer, filters by L1.

- `sensitivity` (NVIDIA Model Optimizer's FastNAS, in spirit): every layer's calibrated
  search-set error against its keep ratio with the other layers whole, then one allowed error
  rise, found by bisection, sets every layer's count.
- `ratio_search` (EagleEye, ECCV 2020): random per-layer keep ratios, each scaled to the target,
  scored with adaptive BatchNorm on the search set; the best one wins.
(HALP, the knapsack on the latency table, is smoea.halp; it uses `whole_model` too.)

Both score whole-model candidates with the evaluator SMOEA uses (same search set, calibration
images and f1) and end with the same fill up to the target as whole-model NSGA-II.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from smoea import interrupt
from smoea.counts import ranked
from smoea.data import Splits, calibration_set, draw_subset
from smoea.errors import SmoeaError
from smoea.search import Genome, make_evaluator
from smoea.select import fit_to_budget
from smoea.structure import Structure, minimum_units

SENSITIVITY_POINTS = 10  # keep ratios measured per layer


@dataclass
class WholeModel:
    """A whole-model search's pieces: structure, one genome over every layer, its evaluator,
    each layer's units from strongest to weakest by L1, and the counter of the target."""

    s: Structure
    genome: Genome
    evaluator: object | None  # None for a method that scores no candidate (halp)
    order: list[np.ndarray]
    measure: str
    original: float

    def fraction(self, counts: np.ndarray) -> np.ndarray:
        """The target's measure for rows of per-layer counts, as a fraction of the original."""
        return self.s.count(np.atleast_2d(counts), self.measure) / self.original

    def finish(self, counts: np.ndarray, target: float) -> np.ndarray:
        """Remove all but each layer's strongest `counts`, after filling up to `target`."""
        x = ranked(np.asarray(counts)[None], self.genome, self.order)[0]
        count = lambda v: self.fraction(self.genome.kept(v[None], self.s.units_per_layer))[0]  # noqa: E731
        x = fit_to_budget(x, self.genome, count, target, target, self.order)
        kept = self.genome.kept(x[None], self.s.units_per_layer)[0]
        self.s.remove(self.genome.split(x))
        return kept


def whole_model(model: nn.Module, splits: Splits, config, scored: bool = True) -> WholeModel:
    """Set up a whole-model search on `model` with `config`'s search set and calibration;
    without `scored`, no evaluator (its search-set features would be computed for nothing)."""
    device = next(model.parameters()).device
    s = Structure(model, torch.zeros(1, *splits.image_shape, device=device))
    base = s.units_per_layer
    floors = minimum_units(base, config.min_keep)
    genome = Genome(list(range(len(base))), base.tolist(), floors)
    evaluator = _evaluator(s, genome, splits, config) if scored else None
    order = [np.argsort(-s.l1_norms(i), kind="stable") for i in range(len(base))]
    original = float(s.count(base, config.measure)[0])
    return WholeModel(s, genome, evaluator, order, config.measure, original)


def _evaluator(s: Structure, genome: Genome, splits: Splits, config):
    """SMOEA's evaluator over the whole model: the same search set, calibration and f1."""
    return make_evaluator(
        s,
        genome,
        draw_subset(splits.val, config.search_size, config.seed),
        splits.mean,
        splits.std,
        config.objective,
        config.eval_batch_size,
        calibration_set(splits.train, config.calibration_images, config.seed),
    )


def _bisect(fits, lo: float, hi: float, steps: int = 40) -> float:
    """The largest setting in [lo, hi] for which `fits(setting)` holds (it holds at lo)."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _score(w: WholeModel, C: np.ndarray, chunk: int, desc: str) -> np.ndarray:
    """f1 of each row of per-layer counts, a chunk at a time (progress, interruptible)."""
    F = np.empty(len(C))
    with tqdm(total=len(C), desc=desc, leave=False, dynamic_ncols=True) as bar:
        for start in range(0, len(C), chunk):
            interrupt.check()
            rows = C[start : start + chunk]
            F[start : start + chunk] = w.evaluator(ranked(rows, w.genome, w.order))
            bar.update(len(rows))
    return F


def sensitivity(model: nn.Module, splits: Splits, config, points: int = SENSITIVITY_POINTS):
    """Prune `model` in place to the target by per-layer sensitivity and one threshold."""
    start = time.perf_counter()
    w = whole_model(model, splits, config)
    base, floors = np.array(w.genome.units), np.array(w.genome.min_keep)
    grid = [np.unique(np.linspace(f, u, points).round().astype(int)) for u, f in zip(base, floors)]
    rows = [np.where(np.arange(len(base)) == j, k, base) for j, g in enumerate(grid) for k in g]
    F = _score(w, np.array(rows), config.pop_size, "sensitivity")
    full = float(w.evaluator(ranked(base[None], w.genome, w.order))[0])
    rises, at = [], 0
    for g in grid:  # rise at count k: the worst rise at k or above (removing more never helps)
        r = F[at : at + len(g)] - full
        rises.append(np.maximum.accumulate(r[::-1])[::-1])
        at += len(g)

    def counts_at(threshold: float) -> np.ndarray:
        return np.array([g[np.argmax(r <= threshold)] for g, r in zip(grid, rises)])

    limit = max(float(r.max()) for r in rises)
    if w.fraction(counts_at(limit))[0] > config.target:
        raise SmoeaError("the per-layer minimum keeps more than the target")
    threshold = -_bisect(lambda t: w.fraction(counts_at(-t))[0] <= config.target, -limit, 0.0)
    kept = w.finish(counts_at(threshold), config.target)
    info = {"threshold": threshold, "grid_counts": counts_at(threshold).tolist()}
    return info_of(w, start, kept, info)


def ratio_search(model: nn.Module, splits: Splits, config, evaluations: int):
    """Prune `model` in place by the best of `evaluations` random per-layer ratio vectors, each
    scaled (one factor for all layers, by bisection) to reach the target."""
    start = time.perf_counter()
    w = whole_model(model, splits, config)
    base, floors = np.array(w.genome.units), np.array(w.genome.min_keep)
    rng = np.random.default_rng(config.seed)
    C, seen = [], set()
    for _ in range(20 * evaluations):
        if len(C) == evaluations:
            break
        counts = _scaled(w, rng.uniform(floors / base, 1.0), config.target)
        if counts is not None and counts.tobytes() not in seen:
            seen.add(counts.tobytes())
            C.append(counts)
    C = np.array(C)
    F = _score(w, C, config.pop_size, "ratio search")
    best = int(np.argmin(F))
    kept = w.finish(C[best], config.target)
    info = {"best_search_score": float(F[best]), "sampled_counts": C[best].tolist()}
    return info_of(w, start, kept, info)


def _scaled(w: WholeModel, ratios: np.ndarray, target: float) -> np.ndarray | None:
    """Counts from keep ratios times the largest common factor that meets the target."""
    base, floors = np.array(w.genome.units), np.array(w.genome.min_keep)

    def counts(factor: float) -> np.ndarray:
        return np.clip(np.round(factor * ratios * base), floors, base).astype(int)

    if w.fraction(counts(0.0))[0] > target:
        return None
    factor = _bisect(lambda f: w.fraction(counts(f))[0] <= target, 0.0, 1.0 / ratios.min())
    return counts(factor)


def info_of(w: WholeModel, start: float, kept: np.ndarray, extra: dict) -> dict:
    """The fields every whole-model method records, with its own `extra`."""
    return {
        "evaluations": w.evaluator.evaluations if w.evaluator else 0,
        "seconds": time.perf_counter() - start,
        "counts": kept.tolist(),
        **extra,
    }
