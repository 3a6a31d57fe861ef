"""HALP, the latency-aware baseline: the knapsack, its importances, its steps and its stem."""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from smoea import allocations, halp
from smoea.errors import SmoeaError
from smoea.models import build_model, make_arch
from smoea.structure import Structure
from tests.test_compare import tiny_config


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def tiny_resnet() -> nn.Module:
    torch.manual_seed(0)
    return build_model(make_arch("resnet20", 0.5, 3, 3, 16)).eval()


def test_halp_computes_no_search_features(tiny_splits, monkeypatch):
    """halp scores no candidate, so it must not pay for the evaluator's search-set features."""

    def no_evaluator(*args, **kwargs):
        raise AssertionError("halp built an evaluator")

    monkeypatch.setattr(allocations, "make_evaluator", no_evaluator)
    model, splits = tiny_splits
    model = copy.deepcopy(model)
    base = n_params(model)
    info = halp.halp(model, splits, tiny_config(target_params=0.5))
    assert info["evaluations"] == 0
    assert n_params(model) <= 0.5 * base
    model = copy.deepcopy(tiny_splits[0])
    info = halp.halp_steps(model, splits, tiny_config(target_params=0.5), steps=3)
    assert info["evaluations"] == 0 and n_params(model) <= 0.5 * base


def test_halp_taylor_keeps_the_filters_its_importance_ranks_highest(tiny_splits, monkeypatch):
    """halp-taylor's knapsack and its choice of filters follow the Taylor scores, not L1: given
    scores that rank the filters in reverse L1 order, every layer keeps its weakest by L1."""
    model, splits = tiny_splits
    model = copy.deepcopy(model)
    s = Structure(model, torch.zeros(1, *splits.image_shape))
    convs = [layer.conv for layer in s.layers]
    weights = [c.weight.detach().clone() for c in convs]
    l1 = [s.l1_norms(i) for i in range(len(convs))]

    def reversed_l1(s, criterion, splits, seed, normalizer="mean"):
        assert criterion == "taylor" and normalizer is None  # raw: one scale for every layer
        return [n.max() + 1 - n for n in l1]

    monkeypatch.setattr(halp, "filter_scores", reversed_l1)
    info = halp.halp(model, splits, tiny_config(target_params=0.5), "taylor")
    assert info["importance"] == "taylor"
    assert any(c.out_channels < len(n) for c, n in zip(convs, l1))  # the target removes filters
    kept_in = torch.arange(3)  # a plain chain: each conv reads the one before it
    for conv, weight, norms in zip(convs, weights, l1):
        weakest = torch.as_tensor(np.sort(np.argsort(norms, kind="stable")[: conv.out_channels]))
        assert torch.equal(conv.weight, weight[weakest][:, kept_in])
        kept_in = weakest


def test_halp_taylor_reaches_the_target_with_real_gradients(tiny_splits):
    model, splits = tiny_splits
    model = copy.deepcopy(model)
    base = n_params(model)
    info = halp.halp(model, splits, tiny_config(target_params=0.5), "taylor")
    assert info["evaluations"] == 0
    assert 0.45 * base <= n_params(model) <= 0.5 * base
    assert all(p.grad is None for p in model.parameters())  # the gradients are not left behind


def test_halp_refuses_an_unknown_importance(tiny_splits):
    model, splits = tiny_splits
    with pytest.raises(SmoeaError, match="l1 or taylor"):
        halp.halp(copy.deepcopy(model), splits, tiny_config(), "fpgm")


def test_exponential_schedule_ends_on_the_target_in_shrinking_cuts():
    """HALP's schedule: each step a constant fraction of the last, the last one the target."""
    goals = halp.exponential_schedule(0.4, 5)
    assert len(goals) == 5 and goals[-1] == 0.4
    assert np.allclose(np.array(goals[1:]) / np.array(goals[:-1]), 0.4 ** (1 / 5))
    assert np.all(-np.diff([1.0, *goals]) > 0)  # always lower
    assert -np.diff([1.0, *goals])[0] > -np.diff(goals)[-1]  # larger cuts first
    assert halp.exponential_schedule(0.7, 1) == [0.7]


def test_stem_layer_is_the_group_of_the_first_convolution_run():
    """On resnet20 the stem's channels are stage 1's residual channels (identity shortcuts): the
    stem's group is the one that holds the first convolution the input meets."""
    s = Structure(tiny_resnet(), torch.zeros(1, 3, 16, 16))
    i = halp.stem_layer(s)
    assert s.layers[i].units == 8  # width 0.5 of 16
    stem = next(m for m in s.model.modules() if isinstance(m, nn.Conv2d))
    assert stem in s.coupled_outputs(i)
    coupled = [m for m in s.coupled_outputs(i) if m is not stem]
    assert sum(isinstance(m, nn.Conv2d) for m in coupled) == 3  # each stage-1 block's 2nd conv


def test_stem_layer_follows_the_forward_order_not_the_module_order():
    class LateStem(nn.Module):  # the head conv is registered first, runs second
        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(8, 8, 3, padding=1)
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(self.body(self.stem(x).relu()).relu().mean((2, 3)))

    s = Structure(LateStem().eval(), torch.zeros(1, 3, 8, 8))
    assert s.layers[halp.stem_layer(s)].conv is s.model.stem


def test_halp_steps_keeps_the_stem_and_reaches_the_target(tiny_splits):
    """On a residual network: the stem's group (stage 1's residual channels) keeps every
    filter, the parameter target is met, and no mask hook or gradient is left behind."""
    _, splits = tiny_splits
    model = tiny_resnet()
    base = n_params(model)
    units = Structure(tiny_resnet(), torch.zeros(1, 3, 16, 16)).units_per_layer
    norms = [m.running_mean.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    info = halp.halp_steps(model, splits, tiny_config(target_params=0.5), steps=4)
    assert all(not m._forward_hooks for m in model.modules())  # no mask hook left
    assert all(p.grad is None for p in model.parameters())
    stem = info["stem_layer"]
    assert info["counts"][stem] == units[stem] == 8
    assert 0.45 * base <= n_params(model) <= 0.5 * base
    assert any(c < u for c, u in zip(info["counts"], units))
    assert all(c >= max(1, int(np.ceil(0.05 * u))) for c, u in zip(info["counts"], units))
    after = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert torch.equal(after[0].running_mean, norms[0])  # the stem's statistics restored


def test_halp_steps_measures_importance_again_on_the_masked_network(tiny_splits, monkeypatch):
    """Each step's Taylor scores come from the network the steps before it left: the filters
    they dropped score zero (masked: no output, no gradient), and each step draws new images."""
    _, splits = tiny_splits
    calls = []
    real = halp.taylor_scores

    def recording(s, splits, seed):
        scores = real(s, splits, seed)
        calls.append((seed, [v.copy() for v in scores]))
        return scores

    monkeypatch.setattr(halp, "taylor_scores", recording)
    info = halp.halp_steps(tiny_resnet(), splits, tiny_config(target_params=0.4), steps=3)
    assert [seed for seed, _ in calls] == [0, 1, 2]
    zeroed = [sum(int((v == 0).sum()) for v in scores) for _, scores in calls]
    assert zeroed[0] < zeroed[1] < zeroed[2]  # each step sees the cuts of the steps before it
    assert info["steps"] == 3


def test_halp_steps_same_seed_same_model(tiny_splits):
    _, splits = tiny_splits
    a = halp.halp_steps(tiny_resnet(), splits, tiny_config(target_params=0.5), steps=3)
    b = halp.halp_steps(tiny_resnet(), splits, tiny_config(target_params=0.5), steps=3)
    assert a["counts"] == b["counts"]


def test_halp_steps_refuses_zero_steps(tiny_splits):
    _, splits = tiny_splits
    with pytest.raises(SmoeaError, match="at least 1"):
        halp.halp_steps(tiny_resnet(), splits, tiny_config(), steps=0)


def test_knapsack_goes_on_from_the_units_its_scores_cover():
    """Scores for fewer units than a layer had (those an earlier step left): it starts from
    their counts, only removes more, never below the floors, and stops at the target."""
    s = Structure(tiny_resnet(), torch.zeros(1, 3, 16, 16))
    units = s.units_per_layer
    original = float(s.count(units[None], "params")[0])
    fraction = lambda C: s.count(np.atleast_2d(C), "params") / original  # noqa: E731
    start = np.maximum(units // 2, 1)
    start[0] = units[0]
    scores = [np.arange(1, k + 1, dtype=float) for k in start]
    scores[0] = np.full(units[0], 1e9)  # too important to cut
    floors = np.ones_like(units)
    kept = halp.knapsack(s, floors, fraction, 0.2, scores=scores)
    assert np.all(kept <= start) and np.all(kept >= floors)
    assert kept[0] == units[0] and np.any(kept[1:] < start[1:])
    assert fraction(kept)[0] <= 0.2
