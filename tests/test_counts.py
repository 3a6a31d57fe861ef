"""The counts genome: candidates are each layer's top-k by L1; operators move whole counts."""

import copy

import numpy as np
import pytest
import torch

import smoea
from smoea.counts import CountCrossover, CountMutation, CountSampling, RankedRepair, counts_of
from smoea.errors import SmoeaError
from smoea.search import Genome, run_nsga2
from smoea.select import non_dominated
from smoea.structure import Structure
from tests.test_search import _problem

GENOME = Genome([0, 1, 2], [12, 8, 16], [2, 1, 3])
ORDER = [np.random.default_rng(j).permutation(n) for j, n in enumerate(GENOME.units)]


def _is_ranked(X: np.ndarray, genome: Genome, order: list[np.ndarray]) -> bool:
    """Every layer's block keeps exactly its top-`count` units of `order`, count >= minimum."""
    for x in X:
        for j, mask in enumerate(genome.split(x).values()):
            k = int(mask.sum())
            top = np.zeros_like(mask)
            top[order[j][:k]] = True
            if k < genome.min_keep[j] or not np.array_equal(mask, top):
                return False
    return True


def test_sampling_gives_ranked_candidates_with_keep_all_first():
    X = CountSampling(GENOME, ORDER)._do(None, 20, random_state=np.random.default_rng(0))
    assert X.dtype == bool and X.shape == (20, GENOME.n_var)
    assert X[0].all()
    assert _is_ranked(X, GENOME, ORDER)
    assert len({tuple(c) for c in counts_of(X, GENOME)}) > 10


def test_crossover_children_lie_between_their_parents_count_by_count():
    rng = np.random.default_rng(1)
    parents = CountSampling(GENOME, ORDER)._do(None, 16, random_state=rng)
    X = np.stack([parents[:8], parents[8:]])
    children = CountCrossover(GENOME, ORDER)._do(None, X, random_state=rng)
    a, b = counts_of(X[0], GENOME), counts_of(X[1], GENOME)
    for child in children:
        c = counts_of(child, GENOME)
        assert (c >= np.minimum(a, b)).all() and (c <= np.maximum(a, b)).all()
        assert _is_ranked(child, GENOME, ORDER)


def test_mutation_moves_at_least_one_count_and_keeps_the_minimum():
    rng = np.random.default_rng(2)
    X = CountSampling(GENOME, ORDER)._do(None, 30, random_state=rng)
    M = CountMutation(GENOME, ORDER)._do(None, X, random_state=rng)
    before, after = counts_of(X, GENOME), counts_of(M, GENOME)
    moved = (before != after).any(1)
    # only a count already at a bound can be pushed into it and stay
    at_bound = ((before == GENOME.min_keep) | (before == GENOME.units)).any(1)
    assert (moved | at_bound).all() and moved.mean() > 0.8
    assert _is_ranked(M, GENOME, ORDER)


def test_repair_ranks_any_bits_and_rounds_to_allowed_counts():
    genome = Genome([0, 1], [12, 8], [2, 1], round_to=4)
    order = [np.arange(12), np.arange(8)[::-1]]
    X = np.random.default_rng(3).random((40, 20)) < 0.4
    X[0] = False
    R = RankedRepair(genome, order)._do(None, X)
    assert _is_ranked(R, genome, order)
    for j, counts in enumerate(counts_of(R, genome).T):
        assert set(counts) <= set(genome.allowed(j).tolist())
    assert counts_of(R[:1], genome).tolist() == [[4, 4]]  # nothing kept: the smallest allowed


def test_search_over_counts_is_ranked_non_dominated_and_reproducible(trained_tiny):
    results = []
    for _ in range(2):
        problem, s = _problem(trained_tiny, budget=0.985)
        l1 = [s.l1_norms(i) for i in problem.evaluator.genome.layers]
        results.append(run_nsga2(problem, l1, 8, 4, seed=3, genome_kind="counts"))
    first, second = results
    order = [np.argsort(-n, kind="stable") for n in l1]
    assert _is_ranked(first.X, problem.evaluator.genome, order)
    assert len(non_dominated(first.F)) == len(first.F)
    assert (first.F[:, 1] <= 0.985 + 1e-12).all()
    assert np.array_equal(first.X, second.X) and first.evaluations > 8


@pytest.mark.slow
def test_prune_with_the_counts_genome_keeps_the_strongest_filters(trained_tiny):
    model, splits = copy.deepcopy(trained_tiny[0]), trained_tiny[1]
    s = Structure(model, torch.zeros(1, 3, 16, 16))
    first_conv = s.layers[0].conv.weight.detach().clone()
    top = np.argsort(-s.l1_norms(0), kind="stable")
    config = smoea.PruneConfig(
        target_params=0.5, genome="counts", pop_size=6, generations=2, search_size=40
    )
    config.finetune.epochs = 0
    config.final.epochs = 0
    pruned, report = smoea.prune(model, splits.train, splits.val, config, "cpu", log=lambda m: None)
    assert 0.49 <= report["params_ratio"] <= 0.5
    # conv 1 is pruned first, on the unpruned model: its kept filters are its strongest by L1
    kept = report["groups"][0]["filters_after"][0]
    after = Structure(pruned, torch.zeros(1, 3, 16, 16)).layers[0].conv.weight
    assert kept < len(top)
    assert torch.equal(after, first_conv[np.sort(top[:kept])])


def test_an_unknown_genome_is_refused():
    with pytest.raises(SmoeaError, match="--genome"):
        smoea.PruneConfig(genome="floats").validate()
