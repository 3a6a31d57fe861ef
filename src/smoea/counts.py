"""The counts genome: NSGA-II over how many filters each layer keeps, the filters ranked by L1.

Measured on vgg14 w0.5 (benchmarks/results/search-earns): at SMOEA's own per-layer counts, filters
chosen by L1 norm or at random land within 0.3 points of the bit-level search, while how many
filters each layer keeps moves accuracy by points. So this genome spends the search on the counts.
A candidate is still a bool vector over the group's units (every layer's block is the top-k of its
ranking), so scoring, the size objectives, the choice on the front and removal are unchanged;
only the operators differ: they sample, cross and mutate whole counts.
"""

from __future__ import annotations

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.mutation import Mutation
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling

from smoea.structure import nearest_allowed

MUTATION_SCALE = 0.1  # a count moves by a normal step of this fraction of the layer's units


def counts_of(X: np.ndarray, genome) -> np.ndarray:
    """Kept units per layer of the group, one row per decision vector."""
    o = genome.offsets
    return np.stack([X[:, o[j] : o[j + 1]].sum(1) for j in range(len(genome.units))], axis=1)


def ranked(C: np.ndarray, genome, order: list[np.ndarray]) -> np.ndarray:
    """Decision vectors keeping, in every layer j, the C[:, j] top-ranked units (rounded to an
    allowed count)."""
    X = np.zeros((len(C), genome.n_var), dtype=bool)
    o = genome.offsets
    for j in range(len(genome.units)):
        allowed = genome.allowed(j)
        for row, count in enumerate(C[:, j]):
            X[row, o[j] + order[j][: nearest_allowed(allowed, int(count))]] = True
    return X


class CountSampling(Sampling):
    """Keep-all, one ratio for every layer at ratios spread over the range, and independent
    random counts per layer."""

    def __init__(self, genome, order: list[np.ndarray]):
        super().__init__()
        self.genome, self.order = genome, order

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        g = self.genome
        units, low = np.array(g.units), np.array(g.min_keep)
        C = np.empty((n_samples, len(units)))
        C[0] = units
        n_even = max(1, (n_samples - 1) // 2)
        ratios = np.linspace(0.0, 1.0, n_even, endpoint=False)
        C[1 : 1 + n_even] = low + ratios[:, None] * (units - low)
        rest = n_samples - 1 - n_even
        C[1 + n_even :] = low + random_state.random((rest, len(units))) * (units - low)
        return ranked(np.round(C).astype(int), g, self.order)


class CountCrossover(Crossover):
    """Two parents, two children: every layer's count is a random blend of the parents' counts
    (the children mirror each other), so a child lies between its parents count by count."""

    def __init__(self, genome, order: list[np.ndarray]):
        super().__init__(n_parents=2, n_offsprings=2)
        self.genome, self.order = genome, order

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        _, n_matings, _ = X.shape
        a = counts_of(X[0].astype(bool), self.genome)
        b = counts_of(X[1].astype(bool), self.genome)
        u = random_state.random(a.shape)
        first = np.round(a + u * (b - a)).astype(int)
        second = np.round(b + u * (a - b)).astype(int)
        out = np.empty((2, n_matings, self.genome.n_var), dtype=bool)
        out[0] = ranked(first, self.genome, self.order)
        out[1] = ranked(second, self.genome, self.order)
        return out


class CountMutation(Mutation):
    """Each layer's count moves, with probability 1/layers (at least one layer per child), by a
    normal step of MUTATION_SCALE of its units, never by zero, within [minimum, units]."""

    def __init__(self, genome, order: list[np.ndarray]):
        super().__init__(prob=1.0)
        self.genome, self.order = genome, order

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        g = self.genome
        C = counts_of(np.asarray(X, dtype=bool), g)
        n, layers = C.shape
        units = np.array(g.units)
        move = random_state.random((n, layers)) < 1.0 / layers
        move[np.arange(n), random_state.integers(0, layers, n)] = True
        step = np.round(random_state.normal(0.0, 1.0, (n, layers)) * MUTATION_SCALE * units)
        step = np.where(step == 0, random_state.choice([-1, 1], (n, layers)) * g.round_to, step)
        C = np.clip(C + move * step, np.array(g.min_keep), units).astype(int)
        return ranked(C, g, self.order)


class RankedRepair(Repair):
    """Every layer keeps its top-ranked units, as many as it holds rounded to an allowed count
    (which starts at the per-layer minimum)."""

    def __init__(self, genome, order: list[np.ndarray]):
        super().__init__()
        self.genome, self.order = genome, order

    def _do(self, problem, X, **kwargs):
        X = np.asarray(X, dtype=bool)
        return ranked(counts_of(X, self.genome), self.genome, self.order)
