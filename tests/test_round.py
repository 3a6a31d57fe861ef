"""--round-to: kept filters per layer a multiple of k (or the whole layer), targets still met."""

import copy

import numpy as np
import pytest
import torch

import smoea
from smoea.search import Genome, MinKeepRepair
from smoea.select import fit_to_budget
from smoea.structure import allowed_counts, round_count


def test_allowed_counts_are_multiples_above_the_minimum_and_the_whole_layer():
    assert allowed_counts(30, 8, 2).tolist() == [8, 16, 24, 30]
    assert allowed_counts(30, 8, 9).tolist() == [16, 24, 30]
    assert allowed_counts(6, 8, 1).tolist() == [6]
    assert allowed_counts(5, 1, 2).tolist() == [2, 3, 4, 5]


def test_round_count_nearest_ties_up_and_up():
    assert round_count(13, 8, 64) == 16
    assert round_count(11, 8, 64) == 8
    assert round_count(12, 8, 64) == 16  # tie: up
    assert round_count(3, 8, 64, "up") == 8
    assert round_count(62, 8, 64) == 64
    assert round_count(59, 8, 60) == 60
    assert round_count(1, 8, 64, low=9) == 16


def test_repair_rounds_every_layer_by_l1_rank():
    genome = Genome([0, 1], [20, 12], [2, 2], round_to=4)
    l1 = [np.arange(20.0), np.arange(12.0)[::-1]]  # layer 0: unit 19 strongest; layer 1: unit 0
    X = np.random.default_rng(0).random((60, 32)) < 0.4
    X[0] = False
    X[0, [0, 1, 2, 3, 4, 5]] = True  # layer 0 keeps 6 weakest: rounds to 8, adds 19 and 18
    X[0, 20 + np.arange(5)] = True  # layer 1 keeps 5: rounds to 4, drops its weakest (unit 4)
    R = MinKeepRepair(genome, l1)._do(None, X)
    for j, (lo, hi) in enumerate([(0, 20), (20, 32)]):
        assert np.isin(R[:, lo:hi].sum(1), genome.allowed(j)).all()
    assert np.flatnonzero(R[0, :20]).tolist() == [0, 1, 2, 3, 4, 5, 18, 19]
    assert np.flatnonzero(R[0, 20:]).tolist() == [0, 1, 2, 3]
    on_grid = np.isin(X[:, :20].sum(1), [4, 8, 12, 16, 20]) & np.isin(X[:, 20:].sum(1), [4, 8, 12])
    assert (R[on_grid] == X[on_grid]).all()  # rows already rounded are left alone


def test_fit_to_budget_moves_in_steps_and_falls_back_to_single_units():
    genome = Genome([0, 1], [16, 16], [1, 1], round_to=4)
    order = [np.arange(16), np.arange(16)]
    count = lambda x: x.sum() / 32  # noqa: E731
    x = fit_to_budget(np.ones(32, bool), genome, count, upper=0.5, lower=0.45, order=order)
    assert count(x) == 0.5 and x[:16].sum() % 4 == 0 and x[16:].sum() % 4 == 0
    # no sum of multiples of 4 lies in [0.44, 0.47]: single units finish the fit
    x = fit_to_budget(np.ones(32, bool), genome, count, upper=0.47, lower=0.44, order=order)
    assert 0.44 <= count(x) <= 0.47
    assert x.sum() == 15
    assert sorted([x[:16].sum() % 4, x[16:].sum() % 4]) == [0, 3]  # one layer off, not both


@pytest.mark.slow
@pytest.mark.parametrize("genome,budget", [("counts", "fronts"), ("bits", "heavy-late")])
def test_prune_with_round_to_keeps_multiples_and_meets_the_target(trained_tiny, genome, budget):
    model, splits = copy.deepcopy(trained_tiny[0]), trained_tiny[1]
    config = smoea.PruneConfig(
        target_params=0.5,
        pop_size=6,
        generations=2,
        search_size=40,
        round_to=4,
        genome=genome,
        budget=budget,
    )
    config.finetune.epochs = config.final.epochs = 0
    notes = []
    pruned, report = smoea.prune(
        model, splits.train, splits.val, config, "cpu", splits.mean, splits.std, log=notes.append
    )
    assert 0.49 <= report["params_ratio"] <= 0.5
    off = [  # counts off the multiples: only where single filters had to finish a group's fit
        a
        for g in report["groups"]
        for b, a in zip(g["filters_before"], g["filters_after"])
        if a % 4 and a != b
    ]
    noted = [n for n in notes if "not a multiple of --round-to 4" in n]
    assert [int(c) for n in noted for c in n.split("[")[1].rstrip("]").split(",")] == off
    assert len(off) <= len(report["groups"]) - 2  # most groups' steps of 4 fit their budget
    if genome == "bits":  # bit flips fit by single filters in one layer; counts may touch two
        assert all("," not in n.split("[")[1] for n in noted)
    assert pruned(torch.zeros(2, 3, 16, 16)).shape == (2, 3)
