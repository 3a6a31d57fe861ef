"""Choosing one compromise on a front, and fitting the final choice to the parameter target."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from smoea.errors import SmoeaError
from smoea.search import set_count

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
    every unit that still fits: the count lands as near `upper` as single units allow. With
    `genome.round_to` > 1 a layer moves from one allowed count to the next; if such steps cannot
    reach `lower`, single units finish the job (and that layer's count is no longer rounded).
    """
    x = np.array(x, dtype=bool)
    rank = _ranks(genome, order)
    while count(x) > upper:
        j = _best_move(x, genome, rank, down=True)
        if j is None:
            raise SmoeaError("the target cannot be reached with the per-layer minimum")
        _move(x, genome, order, j, down=True)
    _restore(x, genome, count, upper, lower, order, rank)
    if count(x) < lower and genome.round_to > 1:
        _restore_single_units(x, genome, count, upper, lower, order, rank)
    return x


def _restore_single_units(x, genome, count, upper, lower, order, rank) -> None:
    """Finish the fit with single units, in one layer if one suffices (fewer odd counts)."""
    single = replace(genome, round_to=1)
    layers = set(range(len(genome.units)))
    for j in sorted(layers, key=lambda j: _strongest_dropped(x, genome, rank, j)):
        trial = x.copy()
        _restore(trial, single, count, upper, lower, order, rank, skip=layers - {j})
        if count(trial) >= lower:
            x[:] = trial
            return
    _restore(x, single, count, upper, lower, order, rank)


def _strongest_dropped(x, genome, rank, j: int) -> float:
    o = genome.offsets
    dropped = rank[o[j] : o[j + 1]][~x[o[j] : o[j + 1]]]
    return float(dropped.min()) if len(dropped) else np.inf


def _restore(x, genome, count, upper, lower, order, rank, skip=frozenset()) -> None:
    """Add back the strongest dropped units, one allowed step at a time, while they fit."""
    blocked: set[int] = set(skip)
    while count(x) < lower:
        j = _best_move(x, genome, rank, down=False, skip=blocked)
        if j is None:
            return
        before = x.copy()
        _move(x, genome, order, j, down=False)
        if count(x) > upper:
            x[:] = before
            blocked.add(j)  # every unit of a layer costs the same: none of them fits


def _ranks(genome, order: list[np.ndarray]) -> np.ndarray:
    """Each unit's place in its layer, 0 (strongest) .. 1 (weakest)."""
    o = genome.offsets
    rank = np.empty(genome.n_var)
    for j, ordr in enumerate(order):
        rank[o[j] + ordr] = np.arange(len(ordr)) / max(1, len(ordr))
    return rank


def _best_move(x, genome, rank, down: bool, skip=frozenset()) -> int | None:
    """The layer whose weakest kept (down) or strongest dropped (up) unit ranks first."""
    o, best, best_score = genome.offsets, None, None
    for j in range(len(genome.units)):
        if j in skip or _next_count(x, genome, j, down) is None:
            continue
        r, keep = rank[o[j] : o[j + 1]], x[o[j] : o[j + 1]]
        score = r[keep].max() if down else -r[~keep].min()
        if best_score is None or score > best_score:
            best, best_score = j, score
    return best


def _next_count(x, genome, j: int, down: bool) -> int | None:
    o = genome.offsets
    count = int(x[o[j] : o[j + 1]].sum())
    allowed = genome.allowed(j)
    options = allowed[allowed < count] if down else allowed[allowed > count]
    if not len(options):
        return None
    return int(options[-1] if down else options[0])


def _move(x, genome, order, j: int, down: bool) -> None:
    o = genome.offsets
    set_count(x[o[j] : o[j + 1]], _next_count(x, genome, j, down), order[j])
