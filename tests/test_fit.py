"""fit_to_budget's bisection over the greedy's steps gives what the one-step greedy gave."""

from dataclasses import replace

import numpy as np
import pytest

from smoea.errors import SmoeaError
from smoea.search import Genome, set_count
from smoea.select import fit_to_budget


def greedy_fit(x, genome, count, upper, lower, order):
    """The one-step greedy fit_to_budget replaced: one allowed step per count() call."""
    x = np.array(x, dtype=bool)
    o = genome.offsets
    rank = np.empty(genome.n_var)
    for j, ordr in enumerate(order):
        rank[o[j] + ordr] = np.arange(len(ordr)) / max(1, len(ordr))
    while count(x) > upper:
        j = _best(x, genome, rank, True, set())
        if j is None:
            raise SmoeaError("unreachable")
        _step(x, genome, order, j, True)
    _greedy_restore(x, genome, count, upper, lower, order, rank, set())
    if count(x) < lower and genome.round_to > 1:
        single, layers = replace(genome, round_to=1), set(range(len(genome.units)))
        for j in sorted(layers, key=lambda j: _strongest_dropped(x, genome, rank, j)):
            trial = x.copy()
            _greedy_restore(trial, single, count, upper, lower, order, rank, layers - {j})
            if count(trial) >= lower:
                return trial
        _greedy_restore(x, single, count, upper, lower, order, rank, set())
    return x


def _greedy_restore(x, genome, count, upper, lower, order, rank, skip):
    blocked = set(skip)
    while count(x) < lower:
        j = _best(x, genome, rank, False, blocked)
        if j is None:
            return
        before = x.copy()
        _step(x, genome, order, j, False)
        if count(x) > upper:
            x[:] = before
            blocked.add(j)


def _strongest_dropped(x, genome, rank, j):
    o = genome.offsets
    dropped = rank[o[j] : o[j + 1]][~x[o[j] : o[j + 1]]]
    return float(dropped.min()) if len(dropped) else np.inf


def _best(x, genome, rank, down, skip):
    o, best, best_score = genome.offsets, None, None
    for j in range(len(genome.units)):
        if j in skip or _next(x, genome, j, down) is None:
            continue
        r, keep = rank[o[j] : o[j + 1]], x[o[j] : o[j + 1]]
        score = r[keep].max() if down else -r[~keep].min()
        if best_score is None or score > best_score:
            best, best_score = j, score
    return best


def _next(x, genome, j, down):
    o = genome.offsets
    now = int(x[o[j] : o[j + 1]].sum())
    allowed = genome.allowed(j)
    options = allowed[allowed < now] if down else allowed[allowed > now]
    return None if not len(options) else int(options[-1] if down else options[0])


def _step(x, genome, order, j, down):
    o = genome.offsets
    set_count(x[o[j] : o[j + 1]], _next(x, genome, j, down), order[j])


def _case(seed: int):
    """Random layers, random masks and a count in which a layer's units cost differently and
    a layer's cost also grows with its neighbour's width (like MACs of chained convolutions)."""
    rng = np.random.default_rng(seed)
    units = rng.integers(3, 40, size=rng.integers(2, 7)).tolist()
    min_keep = [int(rng.integers(1, u // 2 + 2)) for u in units]
    genome = Genome(list(range(len(units))), units, min_keep, round_to=int(rng.choice([1, 1, 4])))
    order = [rng.permutation(u) for u in units]
    weight = rng.uniform(0.5, 3.0, size=len(units))
    o = genome.offsets

    def count(x):
        kept = np.array([x[o[j] : o[j + 1]].sum() for j in range(len(units))], dtype=float)
        chained = kept[:-1] * kept[1:] * 0.01
        return float((kept * weight).sum() + chained.sum()) / 100

    x = rng.random(genome.n_var) < rng.uniform(0.05, 0.95)
    for j in range(len(units)):  # the search's choices respect the minimum
        seg = x[o[j] : o[j + 1]]
        if seg.sum() < min_keep[j]:
            seg[order[j][: min_keep[j]]] = True
    full = count(np.ones(genome.n_var, bool))
    upper = float(rng.uniform(0.1, 1.0) * full)
    lower = float(upper * rng.choice([1.0, 0.97, 0.8]))
    return x, genome, count, upper, lower, order


@pytest.mark.parametrize("seed", range(300))
def test_the_bisection_fit_equals_the_one_step_greedy(seed):
    x, genome, count, upper, lower, order = _case(seed)
    try:
        expected = greedy_fit(x, genome, count, upper, lower, order)
    except SmoeaError:
        with pytest.raises(SmoeaError):
            fit_to_budget(x, genome, count, upper, lower, order)
        return
    got = fit_to_budget(x, genome, count, upper, lower, order)
    assert (got == expected).all()
