"""One SMOEA stage: binary NSGA-II (pymoo) over the units of a group, scored on its sub-network."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.callback import Callback
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling
from pymoo.core.termination import Termination
from pymoo.operators.crossover.ux import UniformCrossover
from pymoo.operators.mutation.bitflip import BitflipMutation
from pymoo.optimize import minimize
from tqdm import tqdm

from smoea import interrupt
from smoea.counts import CountCrossover, CountMutation, CountSampling, RankedRepair
from smoea.evaluator import SubnetEvaluator, make_evaluator
from smoea.structure import allowed_counts, nearest_allowed

__all__ = ["Genome", "GroupProblem", "SubnetEvaluator", "make_evaluator", "run_nsga2"]


@dataclass
class Genome:
    """How a group's decision vector maps onto layers: layer i owns bits [start, start+units)."""

    layers: list[int]
    units: list[int]
    min_keep: list[int]
    round_to: int = 1  # kept counts are multiples of this (or the whole layer)

    def allowed(self, j: int) -> np.ndarray:
        """Kept counts layer j (of this group) may take."""
        return allowed_counts(self.units[j], self.round_to, self.min_keep[j])

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.units)])

    @property
    def n_var(self) -> int:
        return int(sum(self.units))

    def split(self, x: np.ndarray) -> dict[int, np.ndarray]:
        """One decision vector to {layer index: keep mask}."""
        o = self.offsets
        return {layer: x[o[j] : o[j + 1]] for j, layer in enumerate(self.layers)}

    def kept(self, X: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Units kept per layer of the whole model for each row of X (others as in `base`)."""
        K = np.repeat(base[None, :], len(X), axis=0)
        o = self.offsets
        for j, layer in enumerate(self.layers):
            K[:, layer] = X[:, o[j] : o[j + 1]].sum(1)
        return K


class GroupProblem(Problem):
    """Minimise f1 and one or two size fractions over the group's bits.

    `sizes` names the size objectives after f1 ("params", "macs" or both), each the whole
    model's count as a fraction of the original; with a budget, the `measure` fraction (params
    or MACs, the one the target is on) <= budget is a constraint.
    """

    def __init__(
        self,
        evaluator: SubnetEvaluator,
        base_kept: np.ndarray,
        original: float | dict[str, float],
        budget: float | None,
        measure: str = "params",
        sizes: tuple[str, ...] = ("params",),
    ):
        self.evaluator, self.base_kept = evaluator, base_kept
        if not isinstance(original, dict):
            original = {measure: float(original)}
        self.original, self.budget = original, budget
        self.measure, self.sizes = measure, tuple(sizes)
        n_constr = 0 if budget is None else 1
        super().__init__(
            n_var=evaluator.genome.n_var,
            n_obj=1 + len(self.sizes),
            n_ieq_constr=n_constr,
            xl=0,
            xu=1,
            vtype=bool,
        )

    @property
    def size_column(self) -> int:
        """The column of F that holds the constrained measure."""
        return 1 + self.sizes.index(self.measure) if self.measure in self.sizes else 1

    def fraction(self, X: np.ndarray, what: str) -> np.ndarray:
        kept = self.evaluator.genome.kept(X, self.base_kept)
        return self.evaluator.structure.count(kept, what) / self.original[what]

    def f2(self, X: np.ndarray) -> np.ndarray:
        """The constrained measure's fraction (parameters unless the target is on MACs)."""
        return self.fraction(X, self.measure)

    def _evaluate(self, X, out, *args, **kwargs):
        X = X.astype(bool)
        sizes = [self.fraction(X, what) for what in self.sizes]
        f1 = np.full(len(X), np.inf)
        feasible = np.ones(len(X), dtype=bool)
        if self.budget is not None:
            G = self.f2(X) - self.budget
            out["G"] = G[:, None]
            feasible = G <= 0
        # NSGA-II ranks a candidate over the budget by its violation alone (survival and
        # tournament), so its f1 is never read: it is not computed (inf stands in)
        if feasible.any():
            f1[feasible] = self.evaluator(X[feasible])
        out["F"] = np.column_stack([f1, *sizes])


class SeededSampling(Sampling):
    """Keep-all, L1 top-k masks for k spread over the allowed range, and random masks."""

    def __init__(self, genome: Genome, l1: list[np.ndarray]):
        super().__init__()
        self.genome, self.l1 = genome, l1

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        g = self.genome
        X = np.zeros((n_samples, g.n_var), dtype=bool)
        X[0] = True
        n_l1 = max(1, (n_samples - 1) // 2)
        for row, ratio in enumerate(np.linspace(0.0, 1.0, n_l1, endpoint=False), start=1):
            X[row] = self._top_k(ratio)
        for row in range(1 + n_l1, n_samples):
            X[row] = random_state.random(g.n_var) < random_state.uniform(0.05, 1.0)
        return X

    def _top_k(self, ratio: float) -> np.ndarray:
        parts = []
        for units, low, norms in zip(self.genome.units, self.genome.min_keep, self.l1):
            k = int(round(low + ratio * (units - low)))
            keep = np.zeros(units, dtype=bool)
            keep[np.argsort(-norms, kind="stable")[:k]] = True
            parts.append(keep)
        return np.concatenate(parts)


class MinKeepRepair(Repair):
    """Keep at least the minimum number of units in every layer (the largest-L1 ones), and, with
    `round_to`, a multiple of it (strongest dropped units back, or weakest kept ones out)."""

    def __init__(self, genome: Genome, l1: list[np.ndarray]):
        super().__init__()
        self.genome = genome
        self.order = [np.argsort(-n, kind="stable") for n in l1]

    def _do(self, problem, X, **kwargs):
        # the allowed counts start at the minimum, so rounding also restores it
        repair = repair_round if self.genome.round_to > 1 else repair_min_keep
        return repair(np.asarray(X, dtype=bool), self.genome, self.order)


def repair_min_keep(X: np.ndarray, genome: Genome, order: list[np.ndarray]) -> np.ndarray:
    X = X.copy()
    o = genome.offsets
    for j, low in enumerate(genome.min_keep):
        block = X[:, o[j] : o[j + 1]]
        for row in np.flatnonzero(block.sum(1) < low):
            missing = low - block[row].sum()
            candidates = [u for u in order[j] if not block[row, u]][:missing]
            block[row, candidates] = True
        X[:, o[j] : o[j + 1]] = block
    return X


def repair_round(X: np.ndarray, genome: Genome, order: list[np.ndarray]) -> np.ndarray:
    """Move every layer's kept count to the nearest allowed one (ties up), by L1 rank."""
    X = X.copy()
    o = genome.offsets
    for j in range(len(genome.units)):
        allowed = genome.allowed(j)
        block = X[:, o[j] : o[j + 1]]
        for row, count in enumerate(block.sum(1)):
            set_count(block[row], nearest_allowed(allowed, count), order[j])
        X[:, o[j] : o[j + 1]] = block
    return X


def set_count(keep: np.ndarray, target: int, order: np.ndarray) -> None:
    """Change `keep` in place to `target` units: add the strongest dropped or drop the weakest."""
    count = int(keep.sum())
    if target > count:
        keep[[u for u in order if not keep[u]][: target - count]] = True
    elif target < count:
        keep[[u for u in order[::-1] if keep[u]][: count - target]] = False


@dataclass
class SearchResult:
    X: np.ndarray  # final non-dominated decision vectors (bool)
    F: np.ndarray  # their (f1, f2)
    evaluations: int
    seconds: float


class _Progress(Callback):
    def __init__(self, bar: tqdm):
        super().__init__()
        self.bar = bar

    def notify(self, algorithm):
        interrupt.check()
        F = algorithm.opt.get("F")
        if F is not None and len(F):
            self.bar.set_postfix(best_f1=f"{F[:, 0].min():.4f}", front=len(F))
        self.bar.update(1)


class EvaluationBudget(Termination):
    """Stop once the evaluator has run `budget` distinct candidates (whole-model baseline).

    Offspring already seen cost nothing, so a converged population could stall the count: a cap
    of generations (enough for the budget ten times over) ends the run in any case.
    """

    def __init__(self, evaluator: SubnetEvaluator, budget: int, pop_size: int):
        super().__init__()
        self.evaluator, self.budget = evaluator, budget
        self.max_generations = 10 * max(1, budget // max(1, pop_size))

    def _update(self, algorithm) -> float:
        spent = self.evaluator.evaluations / self.budget
        return max(spent, algorithm.n_gen / self.max_generations)


def run_nsga2(
    problem: GroupProblem,
    l1: list[np.ndarray],
    pop_size: int,
    generations: int,
    seed: int,
    desc: str = "search",
    max_evaluations: int | None = None,
    genome_kind: str = "bits",
) -> SearchResult:
    """NSGA-II with the operators of `genome_kind` passed explicitly, seeded through minimize.

    Runs `generations` generations, or, with `max_evaluations`, until that many distinct
    candidates have been evaluated.
    """
    genome = problem.evaluator.genome
    algorithm = NSGA2(
        pop_size=pop_size, eliminate_duplicates=True, **operators(genome_kind, genome, l1)
    )
    if max_evaluations is None:
        termination = ("n_gen", generations)
    else:
        termination = EvaluationBudget(problem.evaluator, max_evaluations, pop_size)
    start = time.perf_counter()
    total = generations if max_evaluations is None else math.ceil(max_evaluations / pop_size)
    with tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True) as bar:
        # copy_termination=False: the evaluation budget holds the evaluator (and the model)
        res = minimize(
            problem,
            algorithm,
            termination,
            seed=seed,
            callback=_Progress(bar),
            verbose=False,
            copy_termination=False,
        )
    seconds = time.perf_counter() - start
    X, F = _front(res, problem.evaluator)
    return SearchResult(X, F, problem.evaluator.evaluations, seconds)


GENOMES = ("bits", "counts")


def operators(kind: str, genome: Genome, l1: list[np.ndarray]) -> dict:
    """Sampling, crossover, mutation and repair for a genome kind.

    bits: a bit per unit, uniform crossover and bit flips (the paper's framing); counts: the
    same bit vectors restricted to each layer's top-k by L1, searched by moving whole counts
    (smoea.counts).
    """
    if kind == "bits":
        return {
            "sampling": SeededSampling(genome, l1),
            "crossover": UniformCrossover(),
            "mutation": BitflipMutation(prob=1.0, prob_var=min(0.5, 1.0 / genome.n_var)),
            "repair": MinKeepRepair(genome, l1),
        }
    if kind == "counts":
        order = [np.argsort(-n, kind="stable") for n in l1]
        return {
            "sampling": CountSampling(genome, order),
            "crossover": CountCrossover(genome, order),
            "mutation": CountMutation(genome, order),
            "repair": RankedRepair(genome, order),
        }
    raise ValueError(f"unknown genome {kind!r}; choose one of {', '.join(GENOMES)}")


def _front(res, evaluator) -> tuple[np.ndarray, np.ndarray]:
    """The final non-dominated set; if nothing met the budget, the least-violating candidates
    (their f1 computed now: the search skipped it)."""
    if res.X is not None:
        X, F = np.atleast_2d(res.X).astype(bool), np.atleast_2d(res.F)
    else:
        pop = res.pop
        cv = pop.get("CV").ravel()
        best = cv <= cv.min() + 1e-12
        X, F = pop.get("X")[best].astype(bool), pop.get("F")[best].copy()
        F[:, 0] = evaluator(X)
    order = np.lexsort((F[:, 0], F[:, 1]))
    return X[order], F[order]
