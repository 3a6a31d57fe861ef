"""What SMOEA is compared with: filter criteria and whole-model NSGA-II, at a parameter target."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

from smoea.data import Splits, batches, draw_subset
from smoea.errors import SmoeaError
from smoea.search import GroupProblem, run_nsga2
from smoea.select import choose, fit_to_budget
from smoea.structure import Structure, minimum_units

CRITERIA = ("l1", "l2", "fpgm", "taylor", "bn-scale", "random")
RANKINGS = ("uniform", "global")
# one threshold over raw scores (no per-layer normalisation); LAMP's scores are layer-adaptive
RAW = tuple(c for c in CRITERIA if c != "random")


def make_importance(name: str, normalizer: str | None = "mean") -> tp.importance.Importance:
    """Torch-Pruning's importance class for a criterion name; `normalizer` None gives the raw
    scores (Torch-Pruning's default divides each layer's scores by their mean)."""
    n = normalizer
    factories = {
        "l1": lambda: tp.importance.MagnitudeImportance(p=1, normalizer=n),
        "l2": lambda: tp.importance.MagnitudeImportance(p=2, normalizer=n),
        "fpgm": lambda: tp.importance.FPGMImportance(normalizer=n),
        "taylor": lambda: tp.importance.TaylorImportance(normalizer=n),
        "bn-scale": lambda: tp.importance.BNScaleImportance(normalizer=n),
        "random": lambda: tp.importance.RandomImportance(),
        "lamp": lambda: tp.importance.LAMPImportance(p=2),
    }
    if name not in factories:
        raise SmoeaError(f"unknown criterion {name!r}; choose one of {', '.join(CRITERIA)}")
    return factories[name]()


def filter_scores(
    s: Structure, criterion: str, splits: Splits, seed: int, normalizer: str | None = "mean"
) -> list[np.ndarray]:
    """One score per unit and layer, from Torch-Pruning's importance on each coupled group."""
    importance = make_importance(criterion, normalizer)
    if criterion == "taylor":
        _accumulate_gradients(s.model, splits, seed)
    torch.manual_seed(seed)  # the random criterion draws its scores here
    scores = []
    for layer in s.layers:
        group = s.graph.get_pruning_group(
            layer.conv, tp.prune_conv_out_channels, list(range(layer.conv.out_channels))
        )
        score = importance(group)
        if score is None:
            raise SmoeaError(f"{criterion} gives no score for layer {layer.index + 1}")
        scores.append(layer.unit_scores(score.detach().float().cpu().numpy()))
    s.model.zero_grad(set_to_none=True)
    return scores


def _accumulate_gradients(model: nn.Module, splits: Splits, seed: int, images: int = 512) -> None:
    """First-order Taylor needs gradients: one pass over a few training images, in eval mode
    so that the BatchNorm statistics stay as they are."""
    model.eval()
    model.zero_grad(set_to_none=True)
    device = next(model.parameters()).device
    data = draw_subset(splits.train, min(images, len(splits.train)), seed)
    for x, y in batches(data, 128, splits.mean, splits.std, device):
        F.cross_entropy(model(x), y).backward()


def uniform_keep(scores: list[np.ndarray], ratio: float, min_keep: list[int]) -> list[np.ndarray]:
    """Keep masks that drop the same fraction `ratio` of every layer's lowest-scoring units."""
    masks = []
    for score, floor in zip(scores, min_keep):
        n = len(score)
        keep = max(floor, n - math.floor(n * ratio))
        masks.append(_top(score, keep))
    return masks


def global_keep(scores: list[np.ndarray], quantile: float, min_keep: list[int]) -> list[np.ndarray]:
    """Keep masks from one threshold over all layers' (normalised) scores."""
    threshold = np.quantile(np.concatenate(scores), quantile)
    masks = []
    for score, floor in zip(scores, min_keep):
        keep = max(floor, int((score > threshold).sum()))
        masks.append(_top(score, keep))
    return masks


def _top(score: np.ndarray, keep: int) -> np.ndarray:
    mask = np.zeros(len(score), dtype=bool)
    mask[np.argsort(-score, kind="stable")[:keep]] = True
    return mask


def criterion_prune(
    model: nn.Module,
    criterion: str,
    ranking: str,
    target: float,
    splits: Splits,
    min_keep: float = 0.05,
    seed: int = 0,
    measure: str = "params",
) -> dict:
    """Prune `model` in place by a criterion to at most `target` of its parameters (or MACs).

    `ranking`: uniform (one ratio in every layer), global (one threshold over the layer-
    normalised scores) or global-raw (one threshold over the raw scores; LAMP's scores are
    layer-adaptive by construction). The ratio or quantile is found by bisection on the exact
    counts, so no trial model is built; the smallest setting that meets the target wins.
    """
    start = time.perf_counter()
    device = next(model.parameters()).device
    s = Structure(model, torch.zeros(1, *splits.image_shape, device=device))
    normalizer = None if ranking == "global-raw" else "mean"
    scores = filter_scores(s, criterion, splits, seed, normalizer)
    floors = minimum_units(s.units_per_layer, min_keep)
    keep_fn = uniform_keep if ranking == "uniform" else global_keep
    original = s.count(s.units_per_layer, measure)[0]

    def ratio_of_kept(kept: np.ndarray) -> float:
        return s.count(kept, measure)[0] / original

    def ratio_of(setting: float) -> float:
        return ratio_of_kept(np.array([m.sum() for m in keep_fn(scores, setting, floors)]))

    setting = _bisect(ratio_of, target)
    masks = keep_fn(scores, setting, floors)
    refilled = fill_up(masks, scores, ratio_of_kept, target)
    kept = np.array([m.sum() for m in masks])
    s.remove(dict(enumerate(masks)))
    return {
        "criterion": criterion,
        "ranking": ranking,
        "setting": setting,
        "refilled_filters": refilled,
        f"{measure}_ratio": float(ratio_of_kept(kept)),
        "seconds": time.perf_counter() - start,
    }


def criterion_at_counts(
    model: nn.Module, criterion: str, counts: list[int], splits: Splits, seed: int = 0
) -> dict:
    """Prune `model` in place so that layer i keeps exactly `counts[i]` filters, the best by a
    criterion: which filters, with how many per layer fixed (SMOEA's own counts, say)."""
    start = time.perf_counter()
    device = next(model.parameters()).device
    s = Structure(model, torch.zeros(1, *splits.image_shape, device=device))
    if len(counts) != len(s.layers) or any(
        not 1 <= k <= u for k, u in zip(counts, s.units_per_layer)
    ):
        raise SmoeaError(f"per-layer counts {counts} do not fit this model's layers")
    scores = filter_scores(s, criterion, splits, seed)
    masks = [_top(score, int(k)) for score, k in zip(scores, counts)]
    s.remove(dict(enumerate(masks)))
    return {"criterion": criterion, "counts": list(counts), "seconds": time.perf_counter() - start}


def fill_up(masks: list[np.ndarray], scores: list[np.ndarray], ratio_of, target: float) -> int:
    """Give back dropped filters, best (normalised) score first, while the model stays within
    `target`. One ratio moves every layer of equal width at once, which on small models can
    land well below the target; this puts the model into the target window. Returns how many
    filters came back; `masks` change in place."""
    dropped = [
        (-score[j], i, j) for i, score in enumerate(scores) for j in np.flatnonzero(~masks[i])
    ]
    kept = np.array([m.sum() for m in masks])
    back = 0
    for _, i, j in sorted(dropped):
        kept[i] += 1
        if ratio_of(kept) <= target:
            masks[i][j] = True
            back += 1
        else:
            kept[i] -= 1
    return back


def _bisect(ratio_of, target: float, steps: int = 40) -> float:
    """The smallest setting in [0, 1] whose parameter fraction is at most `target`."""
    if ratio_of(1.0) > target:
        raise SmoeaError(f"the per-layer minimum keeps more than the target {target}")
    lo, hi = 0.0, 1.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        if ratio_of(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def whole_model_nsga2(
    model: nn.Module, splits: Splits, config, evaluations: int
) -> tuple[nn.Module, dict]:
    """SMOEA's objectives, operators, seeding and choice, but one decision vector over every
    filter and every candidate running the whole model; stops after `evaluations`."""
    from smoea.allocations import whole_model  # the shared whole-model set-up

    w = whole_model(model, splits, config)
    r = config.target
    base = w.s.units_per_layer
    problem = GroupProblem(w.evaluator, base, w.original, r, config.measure, (config.measure,))
    l1 = [w.s.l1_norms(i) for i in range(len(base))]
    result = run_nsga2(
        problem,
        l1,
        config.pop_size,
        config.generations,
        config.seed,
        "whole-model search",
        max_evaluations=evaluations,
    )
    x = result.X[choose(result.F, config.select, r, config.tolerance)]
    x = fit_to_budget(x, w.genome, lambda v: problem.f2(v[None])[0], r, r, w.order)  # fill up
    w.s.remove(w.genome.split(x))
    info = {"evaluations": result.evaluations, "seconds": result.seconds}
    return model.eval(), info


def criterion_progressive(
    model: nn.Module,
    criterion: str,
    groups: list[list[int]],
    budgets: list[float],
    splits: Splits,
    config,
    after_group,
) -> dict:
    """SMOEA's progressive schedule with a criterion in place of the search: group by group,
    one ratio over the group's layers (scores taken on the model as it now is) brings the whole
    model to that group's budget, then `after_group(g)` fine-tunes as SMOEA does."""
    start = time.perf_counter()
    device = next(model.parameters()).device
    example = torch.zeros(1, *splits.image_shape, device=device)
    first = Structure(model, example)
    measure = config.measure
    original = first.count(first.units_per_layer, measure)[0]
    floors = minimum_units(first.units_per_layer, config.min_keep)
    reached, used, tuning = [], [], 0.0
    for g, (layers, budget) in enumerate(zip(groups, budgets)):
        s = Structure(model, example)
        scores = filter_scores(s, criterion, splits, config.seed + g)
        later = {i: floors[i] for rest in groups[g + 1 :] for i in rest}
        group = GroupCut(s, layers, measure, original)
        group_scores, group_floors = [scores[i] for i in layers], [floors[i] for i in layers]
        # as SMOEA's groups do: a budget below what the group reaches at its minimum (the
        # earlier groups kept other counts than SMOEA's) takes that minimum instead
        budget = max(budget, group.fraction(group_floors))
        used.append(budget)
        masks = group.to_budget(group_scores, group_floors, budget)
        leaving = GroupCut(s, layers, measure, original, later)  # later groups at their minimum
        if later and leaving.fraction([int(m.sum()) for m in masks]) > config.target:
            # as SMOEA's groups do: keep the target reachable for the later groups
            tighter = leaving.to_budget(group_scores, group_floors, config.target)
            # both are each layer's top units by score: their intersection meets both limits
            masks = [a & b for a, b in zip(masks, tighter)]
        reached.append(group.fraction([int(m.sum()) for m in masks]))
        s.remove(dict(zip(layers, masks)))
        tick = time.perf_counter()
        after_group(g)
        tuning += time.perf_counter() - tick
    return {
        "criterion": criterion,
        "budgets": list(budgets),
        "budgets_used": used,
        "reached": reached,
        "seconds": time.perf_counter() - start - tuning,
    }


class GroupCut:
    """Cutting one group's layers of `s` while the rest of the model stays as it is."""

    def __init__(self, s, layers: list[int], measure: str, original: float, others=None):
        self.s, self.layers, self.measure, self.original = s, layers, measure, original
        self.others = others or {}  # other layers' counts to assume ({layer: count})

    def fraction(self, group_kept) -> float:
        """The whole model's measure, as a fraction of the original, with `group_kept`."""
        kept = self.s.units_per_layer.copy()
        for i, count in self.others.items():
            kept[i] = count
        kept[self.layers] = group_kept
        return float(self.s.count(kept, self.measure)[0] / self.original)

    def to_budget(self, scores, floors, budget: float) -> list[np.ndarray]:
        """Keep masks: one uniform ratio over the group, then the best-scored dropped filters
        back while the whole model stays within `budget`."""

        def ratio_of(setting: float) -> float:
            return self.fraction([m.sum() for m in uniform_keep(scores, setting, floors)])

        masks = uniform_keep(scores, _bisect(ratio_of, budget), floors)
        fill_up(masks, scores, self.fraction, budget)
        return masks
