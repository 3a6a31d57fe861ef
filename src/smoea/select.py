"""Choosing one compromise on a front, and fitting the final choice to the parameter target."""

from __future__ import annotations

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from smoea.errors import SmoeaError

RULES = ("target", "tolerance", "knee")


def non_dominated(F: np.ndarray) -> np.ndarray:
    """Indices of the rows of F (minimised) that no other row dominates."""
    return NonDominatedSorting().do(np.asarray(F, dtype=float), only_non_dominated_front=True)


def choose(
    F: np.ndarray,
    rule: str,
    budget: float | None = None,
    tolerance: float = 0.01,
    column: int = 1,
) -> int:
    """Index of the chosen point of a front F = [f1 error, size, ...].

    `column` is the size the budget is on (the others, with three objectives, only shape the
    front). target: lowest f1 within the budget; tolerance: smallest size whose f1 is within
    `tolerance` of the best f1 within the budget; knee: the point farthest from the line
    joining the ends of the (f1, size) projection.
    """
    if rule not in RULES:
        raise SmoeaError(f"unknown --select {rule!r}; choose one of {', '.join(RULES)}")
    F = np.asarray(F, dtype=float)[:, [0, column]]
    ok = np.flatnonzero(F[:, 1] <= budget + 1e-12) if budget is not None else np.arange(len(F))
    if len(ok) == 0:
        return int(np.argmin(F[:, 1]))
    sub = F[ok]
    if rule == "target":
        pick = np.lexsort((sub[:, 1], sub[:, 0]))[0]
    elif rule == "tolerance":
        near = np.flatnonzero(sub[:, 0] <= sub[:, 0].min() + tolerance)
        pick = near[np.argmin(sub[near, 1])]
    else:
        pick = _knee(sub)
    return int(ok[pick])


def _knee(F: np.ndarray) -> int:
    if len(F) < 3:
        return int(np.argmin(F[:, 0]))
    span = np.ptp(F, axis=0)
    N = (F - F.min(0)) / np.where(span > 0, span, 1)
    a, b = N[np.argmin(N[:, 1])], N[np.argmin(N[:, 0])]
    direction = (b - a) / max(np.linalg.norm(b - a), 1e-12)
    rel = N - a
    distance = np.abs(rel[:, 0] * direction[1] - rel[:, 1] * direction[0])
    return int(np.argmax(distance))


def fit_to_budget(x, genome, count, upper: float, lower: float, order: list[np.ndarray]):
    """Greedily drop weakest / restore strongest units until lower <= count(x) <= upper.

    Used on the last group's choice so the final model meets the target exactly; `order` ranks
    each layer's units from strongest to weakest (L1 norm). With lower == upper it restores
    every unit that still fits: the count lands as near `upper` as single units allow.
    """
    x = np.array(x, dtype=bool)
    o = genome.offsets
    rank = np.empty(genome.n_var)
    for j, ordr in enumerate(order):
        rank[o[j] + ordr] = np.arange(len(ordr)) / max(1, len(ordr))  # 0 strongest .. 1 weakest
    while count(x) > upper:
        kept = [i for i in np.argsort(-rank) if x[i] and _can_drop(x, i, genome)]
        if not kept:
            raise SmoeaError("the parameter target cannot be reached with the per-layer minimum")
        x[kept[0]] = False
    for i in np.argsort(rank):
        if count(x) >= lower:
            break
        if not x[i]:
            x[i] = True
            if count(x) > upper:
                x[i] = False
    return x


def _can_drop(x: np.ndarray, i: int, genome) -> bool:
    o = genome.offsets
    j = int(np.searchsorted(o, i, side="right") - 1)
    return x[o[j] : o[j + 1]].sum() > genome.min_keep[j]
