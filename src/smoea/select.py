"""Choosing one compromise on a front, and fitting the final choice to the parameter target."""

from __future__ import annotations

from dataclasses import replace

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
    every unit that still fits: the count lands as near `upper` as single units allow. With
    `genome.round_to` > 1 a layer moves from one allowed count to the next; if such steps cannot
    reach `lower`, single units finish the job (and that layer's count is no longer rounded).
    """
    x = np.array(x, dtype=bool)
    rank = _ranks(genome, order)
    if count(x) > upper:
        moves = _Moves(x, genome, order, rank, down=True)
        t = _first(lambda t: count(moves.state(t)) <= upper, 0, moves.n)
        if t is None:
            raise SmoeaError("the target cannot be reached with the per-layer minimum")
        x = moves.state(t)
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
    """Add back the strongest dropped units, one allowed step at a time, while they fit.

    The steps go in the order the one-step greedy takes them (the layer whose strongest dropped
    unit ranks first, the lower layer on a tie); a step that overshoots `upper` blocks its layer.
    Counts only grow along that order, so the stop is found by bisection, not step by step:
    the widest layers have thousands of single-unit steps (efficientnet_v2_l, regnet_y_128gf).
    """
    if count(x) >= lower:
        return
    moves = _Moves(x, genome, order, rank, down=False, skip=skip)
    start = 0
    while True:
        t = _first(lambda t: count(moves.state(t)) >= lower, start, moves.n)
        if t is None:
            x[:] = moves.state(moves.n - 1)
            return
        if count(moves.state(t)) <= upper:
            x[:] = moves.state(t)
            return
        moves.block(t)  # this step overshoots: its layer keeps what it had before it
        start = t + 1


def _first(ok, start: int, stop: int) -> int | None:
    """The first t in [start, stop) with ok(t), for ok false then true; None if none."""
    if start >= stop or not ok(stop - 1):
        return None
    lo, hi = start, stop - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


class _Moves:
    """Every allowed step of every layer, in the order the one-step greedy would take them.

    A step restores a layer's strongest dropped units (or, down, drops its weakest kept) up to
    its next allowed count. A layer's steps score ever lower, so the greedy's order is all steps
    sorted by score, the lower layer first on a tie. `state(t)` is x after steps 0..t.
    """

    def __init__(self, x, genome, order, rank, down: bool, skip=frozenset()):
        self.x, self.down, self.offsets = x.copy(), down, genome.offsets
        self.go, self.changed = {}, {}  # per layer: units in order, how many each step changed
        score, layer = [], []
        for j in range(len(genome.units)):
            if j in skip:
                continue
            changed, units, first = self._layer_steps(x, genome, order[j], j)
            if len(changed):
                self.go[j], self.changed[j] = units, changed
                score.append(rank[self.offsets[j] + units[first]] * (1 if down else -1))
                layer.append(np.full(len(changed), j))
        score = np.concatenate(score) if score else np.zeros(0)
        layer = np.concatenate(layer) if layer else np.zeros(0, dtype=int)
        self.layer = layer[np.lexsort((layer, -score))]  # stable: a layer's steps stay in order
        self.n = len(self.layer)
        self.position = {j: np.flatnonzero(self.layer == j) for j in self.go}
        self.limit = {j: len(self.changed[j]) for j in self.go}

    def _layer_steps(self, x, genome, layer_order, j):
        """How many of layer j's units have changed after each step, the units in the order
        they change, and how many had changed before each step (the next one's rank is the
        step's score)."""
        o = self.offsets
        keep = x[o[j] : o[j + 1]]
        now = int(keep.sum())
        allowed = genome.allowed(j)
        if self.down:
            steps, units = allowed[allowed < now][::-1], layer_order[::-1][keep[layer_order[::-1]]]
        else:
            steps, units = allowed[allowed > now], layer_order[~keep[layer_order]]
        changed = np.abs(steps - now)
        return changed, units, np.concatenate([[0], changed[:-1]]).astype(int)

    def block(self, t: int) -> None:
        """Step t and every later step of its layer are not taken."""
        j = int(self.layer[t])
        self.limit[j] = min(self.limit[j], int(np.searchsorted(self.position[j], t)))

    def state(self, t: int) -> np.ndarray:
        x, o = self.x.copy(), self.offsets
        for j, units in self.go.items():
            taken = min(self.limit[j], int(np.searchsorted(self.position[j], t, side="right")))
            if taken:
                x[o[j] + units[: self.changed[j][taken - 1]]] = not self.down
        return x


def _ranks(genome, order: list[np.ndarray]) -> np.ndarray:
    """Each unit's place in its layer, 0 (strongest) .. 1 (weakest)."""
    o = genome.offsets
    rank = np.empty(genome.n_var)
    for j, ordr in enumerate(order):
        rank[o[j] + ordr] = np.arange(len(ordr)) / max(1, len(ordr))
    return rank
