"""HALP (NeurIPS 2022), the latency-aware baseline: a knapsack over filters on a cost model.

- `halp`: one knapsack down to the target. Importance: L1 over its layer's mean (`halp`) or,
  as HALP has it, first-order Taylor, raw (`halp-taylor`).
- `halp_steps` (`halp-steps`): as HALP's own code runs it (github.com/NVlabs/HALP,
  prune/pruner.py): the target reached in `steps` knapsacks on an exponential schedule, Taylor
  importance measured again on the pruned network before each, and the stem's group never
  pruned. HALP trains 40 iterations between its 30 steps; here nothing trains: each step scores
  the masked network with its BatchNorm statistics re-estimated (the model's own are restored
  before the removal), and every method gets the same fine-tuning after.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn as nn

from smoea.allocations import WholeModel, info_of, whole_model
from smoea.baselines import filter_scores
from smoea.data import Splits, batches, calibration_set
from smoea.errors import SmoeaError
from smoea.evaluator import kept_norm_stats, recalibrate
from smoea.structure import Structure

HALP_STEPS = 30  # HALP's ResNet-50 recipe: prune_steps 30 (one every 40 iterations)


def halp(model: nn.Module, splits: Splits, config, criterion: str = "l1") -> dict:
    """Prune `model` in place by a greedy knapsack: filters removed one at a time, always the
    one with the least importance per unit of the target's measure its removal saves (predicted
    latency with a latency table: HALP's latency-aware knapsack), down to the target. No
    candidate is scored: the cost model alone decides, as in HALP. Importance: `l1` divides
    each layer's L1 norms by their mean, so that layers compare; `taylor` is HALP's own, the
    first-order Taylor estimate of the loss change (Torch-Pruning's, on the filter's whole
    coupled group, from a few training images' gradients), on one scale for every layer."""
    if criterion not in ("l1", "taylor"):
        raise SmoeaError(f"halp's importance is l1 or taylor, got {criterion!r}")
    start = time.perf_counter()
    w = whole_model(model, splits, config, scored=False)
    scores = None
    if criterion == "taylor":
        scores = taylor_scores(w.s, splits, config.seed)
        w = replace(w, order=[np.argsort(-v, kind="stable") for v in scores])
    floors = np.array(w.genome.min_keep)
    kept = knapsack(w.s, floors, w.fraction, config.target, scores=scores)
    kept = w.finish(kept, config.target)
    return info_of(w, start, kept, {"knapsack_counts": kept.tolist(), "importance": criterion})


def halp_steps(model: nn.Module, splits: Splits, config, steps: int = HALP_STEPS) -> dict:
    """Prune `model` in place as HALP's code does: `steps` Taylor knapsacks down an exponential
    schedule of targets (HALP's `set_latency_prune_target`), each on the network the ones
    before it left (masked, BatchNorm re-estimated, Taylor measured again on fresh training
    images), the stem's group whole; then remove what the last one dropped."""
    if steps < 1:
        raise SmoeaError(f"halp's steps must be at least 1, got {steps}")
    start = time.perf_counter()
    w = whole_model(model, splits, config, scored=False)
    floors = np.array(w.genome.min_keep)
    stem = stem_layer(w.s)
    floors[stem] = w.genome.units[stem]
    keep = [np.ones(u, dtype=bool) for u in w.genome.units]
    dropped_at = [np.full(u, steps, dtype=int) for u in w.genome.units]  # `steps`: kept
    last_score = [np.zeros(u) for u in w.genome.units]  # each unit's score when last measured
    with kept_norm_stats(w.s.model):  # re-estimated under each step's mask, then restored
        for step, goal in enumerate(exponential_schedule(config.target, steps)):
            scores = _masked_taylor(w, keep, splits, config, seed=config.seed + step)
            remaining = [np.flatnonzero(k) for k in keep]
            left = [v[r] for v, r in zip(scores, remaining)]
            counts = knapsack(w.s, floors, w.fraction, goal, scores=left)
            for j, (r, v) in enumerate(zip(remaining, left)):
                last_score[j][r] = v
                drop = r[np.argsort(-v, kind="stable")[counts[j] :]]
                keep[j][drop], dropped_at[j][drop] = False, step
    # strongest first: the kept by their last scores, then the latest dropped (finish's fill)
    order = [np.lexsort((-v, -d)) for v, d in zip(last_score, dropped_at)]
    w = replace(w, order=order)
    kept = w.finish(_counts(keep), config.target)
    return info_of(w, start, kept, {"steps": steps, "stem_layer": stem, "importance": "taylor"})


def _counts(keep: list[np.ndarray]) -> np.ndarray:
    return np.array([int(k.sum()) for k in keep])


def _masked_taylor(w: WholeModel, keep, splits: Splits, config, seed: int) -> list[np.ndarray]:
    """Taylor scores of the network that `keep` leaves: its dropped filters masked to zero and
    its BatchNorm statistics re-estimated on the calibration images under the mask (while
    nothing is dropped, the model as it is: the first step scores as halp-taylor does)."""
    if all(k.all() for k in keep):
        return taylor_scores(w.s, splits, seed)
    device = next(w.s.model.parameters()).device
    calibration = calibration_set(splits.train, max(config.calibration_images, 1), seed)
    chunks = [x for x, _ in batches(calibration, 128, splits.mean, splits.std, device)]
    w.s.set_masks(dict(enumerate(keep)))
    with w.s.masking():
        with torch.no_grad():
            recalibrate(w.s.model, chunks)
        return taylor_scores(w.s, splits, seed)


def taylor_scores(s: Structure, splits: Splits, seed: int) -> list[np.ndarray]:
    """HALP's importance: first-order Taylor per filter, raw (one scale for every layer)."""
    return filter_scores(s, "taylor", splits, seed, normalizer=None)


def exponential_schedule(target: float, steps: int) -> list[float]:
    """The fraction of the original each step prunes down to: HALP's schedule, exponential from
    1 to `target` (larger cuts first, in proportion), the last step at `target` exactly."""
    return [target ** ((t + 1) / steps) for t in range(steps - 1)] + [target]


def stem_layer(s: Structure) -> int:
    """The layer whose coupled channels hold the first convolution the input meets (the stem).
    HALP never prunes it ("for resnet first layer, set to high importance score")."""
    order: list[nn.Module] = []
    convs = [m for m in s.model.modules() if isinstance(m, nn.Conv2d)]
    handles = [c.register_forward_hook(lambda m, i, o: order.append(m)) for c in convs]
    try:
        with torch.no_grad():
            s.model(s.example)
    finally:
        for h in handles:
            h.remove()
    for i in range(len(s.layers)):
        if order and order[0] in s.coupled_outputs(i):
            return i
    raise SmoeaError("the model's first convolution is not prunable: halp-steps has no stem")


def knapsack(
    s: Structure,
    floors: np.ndarray,
    fraction,
    target: float,
    strict: bool = True,
    scores: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Kept units per layer after removing, one at a time, the unit with the least importance
    (`scores` per unit and layer, by default L1 over its layer's mean; weakest first) per unit
    of `fraction` (of rows of counts) its removal saves, until `fraction` is at most `target`;
    never below `floors` (where the floors stop it short of the target: an error, or with
    `strict` off the floors' counts). `scores` may cover fewer units than a layer had (those
    still there after earlier cuts): it starts from their counts."""
    if scores is None:
        scores = [n / max(n.mean(), 1e-12) for n in map(s.l1_norms, range(len(s.layers)))]
    weakest = [np.sort(v) for v in scores]
    base = np.array([len(v) for v in scores])
    kept = base.copy()
    now = float(fraction(kept[None])[0])
    while now > target:
        C = np.repeat(kept[None], len(kept), 0) - np.eye(len(kept), dtype=int)
        saving = now - fraction(C)
        importance = np.array(
            [o[b - k] if k > f else np.inf for o, b, k, f in zip(weakest, base, kept, floors)]
        )
        if not np.isfinite(importance).any():
            if not strict:
                return kept
            raise SmoeaError("the per-layer minimum keeps more than the target")
        useful = saving > 0
        ratio = np.where(useful, importance / np.where(useful, saving, 1.0), np.inf)
        j = int(np.argmin(ratio if np.isfinite(ratio).any() else importance))
        kept[j] -= 1
        now = float(fraction(kept[None])[0])
    return kept
