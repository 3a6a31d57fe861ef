"""The `fronts` budget rule: allocation from measured curves, and calibration's data."""

import copy

import numpy as np
import pytest
import torch

from smoea import compare, pipeline
from smoea.errors import SmoeaError
from smoea.pipeline import prune
from smoea.plan import Curve, allocate, allocate_level, lower_envelope, top_k_masks
from smoea.prune_config import PruneConfig
from smoea.train import TrainConfig


def _curve(capacity, slope, points=9):
    removed = np.linspace(0, capacity, points)
    return Curve([0], removed, 0.1 + slope * removed**2)


def test_allocation_spends_exactly_the_need_within_each_capacity():
    curves = [_curve(0.05, 40.0), _curve(0.3, 1.0), _curve(0.4, 2.0)]
    shares = allocate(curves, 0.35)
    assert shares.sum() == pytest.approx(0.35)
    assert all(0 <= s <= c.removed[-1] + 1e-9 for s, c in zip(shares, curves))
    # the steep, small group gives least; the flattest group gives most
    assert shares[0] < shares[2] < shares[1]


def test_allocation_minimises_the_summed_rise_on_the_grid():
    curves = [_curve(0.2, 3.0), _curve(0.2, 1.0)]
    need = 0.2
    shares = allocate(curves, need, steps=100)
    cost = sum(np.interp(s, c.removed, c.rise) for s, c in zip(shares, curves))
    for a in np.linspace(0, need, 101):  # every split of the need costs at least as much
        other = np.interp(a, curves[0].removed, curves[0].rise)
        other += np.interp(need - a, curves[1].removed, curves[1].rise)
        assert cost <= other + 1e-9


def test_level_allocation_gives_every_group_the_same_predicted_rise():
    curves = [_curve(0.05, 40.0), _curve(0.3, 1.0), _curve(0.4, 2.0)]
    shares = allocate_level(curves, 0.35)
    assert shares.sum() == pytest.approx(0.35)
    assert all(0 <= s <= c.removed[-1] + 1e-9 for s, c in zip(shares, curves))
    rises = [np.interp(s, c.removed, c.rise) for s, c in zip(shares, curves)]
    assert max(rises) - min(rises) < 1e-3  # one level for all (no group at its capacity here)
    # unlike the least-sum rule, the steep group is not spared: it loses as much as the others
    assert np.interp(allocate(curves, 0.35)[0], curves[0].removed, curves[0].rise) < rises[0]


def test_level_allocation_caps_a_group_at_its_capacity():
    curves = [_curve(0.02, 0.1), _curve(0.4, 5.0)]
    shares = allocate_level(curves, 0.3)
    assert shares[0] == pytest.approx(0.02, abs=1e-3) and shares.sum() == pytest.approx(0.3)


def test_allocation_refuses_a_need_beyond_the_capacity():
    with pytest.raises(Exception, match="can remove"):
        allocate([_curve(0.1, 1.0), _curve(0.1, 1.0)], 0.3)


def test_rise_never_falls_with_more_removed():
    curve = Curve([0], np.array([0, 0.1, 0.2, 0.3]), np.array([0.2, 0.18, 0.3, 0.25]))
    assert np.all(np.diff(curve.rise) >= 0) and curve.rise[0] == 0


def test_top_k_masks_run_from_everything_to_the_minimum():
    l1 = [np.array([3.0, 1.0, 2.0, 0.5]), np.arange(10.0)]
    masks = top_k_masks(l1, [4, 10], [1, 2], 5)
    assert [m.sum() for m in masks[0]] == [4, 10]
    assert [m.sum() for m in masks[-1]] == [1, 2]
    assert masks[-1][0].tolist() == [True, False, False, False]  # the largest L1 norm stays
    assert np.flatnonzero(masks[-1][1]).tolist() == [8, 9]


def _config(**kw):
    tune = TrainConfig(epochs=1, batch_size=32, lr=0.01, schedule="cosine")
    base = dict(
        target_params=0.4,
        pop_size=8,
        generations=2,
        search_size=40,
        calibration_images=32,
        budget="fronts",
        finetune=tune,
        final=TrainConfig(epochs=0),
    )
    return PruneConfig(**{**base, **kw})


def test_lower_envelope_never_exceeds_a_point_that_removes_as_much():
    removed = np.array([0.0, 0.3, 0.1, 0.2, 0.25, 0.4])
    error = np.array([0.1, 0.3, 0.25, 0.15, 0.4, 0.5])
    x, e = lower_envelope(removed, error)
    assert np.all(np.diff(x) >= 0) and np.all(np.diff(e) >= 0)
    for r, f in zip(removed, error):  # every point is at or above the envelope where it lies
        assert e[np.searchsorted(x, r, side="left")] <= f
    assert e.tolist() == [0.1, 0.15, 0.15, 0.3, 0.3, 0.5]


@pytest.mark.slow
def test_search_fronts_curves_join_a_search_front_and_are_recorded(trained_tiny):
    model, splits = trained_tiny
    _, plain = prune(
        copy.deepcopy(model), splits.train, splits.val, _config(), "cpu", log=lambda m: None
    )
    config = _config(budget="search-fronts")
    _, report = prune(
        copy.deepcopy(model), splits.train, splits.val, config, "cpu", log=lambda m: None
    )
    first, first_plain = report["groups"][0]["plan"], plain["groups"][0]["plan"]
    curve, curve_plain = first["curves"][0], first_plain["curves"][0]
    assert len(curve["removed"]) > len(curve_plain["removed"])  # the front's points joined
    assert np.all(np.diff(curve["error"]) >= 0)
    # the envelope only lowers the L1 curve: at each L1 point, at most its error
    x, e = np.array(curve["removed"]), np.array(curve["error"])
    for r, f in zip(curve_plain["removed"], curve_plain["error"]):
        assert e[np.searchsorted(x, r - 1e-12)] <= f + 1e-9
    assert first["evaluations"] > first_plain["evaluations"]
    assert report["plan_evaluations"] == sum(
        g["plan"]["evaluations"] for g in report["groups"][:-1]
    )
    assert report["search_seconds"] >= report["plan_seconds"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["fronts", "level", "search-fronts"])
def test_fronts_plan_is_recorded_spent_and_reproducible(trained_tiny, rule):
    model, splits = trained_tiny
    runs = []
    for _ in range(2):
        config = _config(budget=rule)
        pruned, report = prune(
            copy.deepcopy(model), splits.train, splits.val, config, "cpu", log=lambda m: None
        )
        runs.append(report)
    report = runs[0]
    assert 0.39 <= report["params_ratio"] <= 0.4
    groups = report["groups"]
    for g in groups[:-1]:
        plan = g["plan"]
        assert sum(plan["shares"]) == pytest.approx(plan["need"], abs=1e-9)
        # the share is capped at the group's capacity, and may only rise to what the later
        # groups cannot remove
        capacity = plan["curves"][0]["removed"][-1]
        assert g["planned_share"] >= min(plan["shares"][0], capacity) - 1e-9
        assert g["planned_share"] <= capacity + 1e-9
        assert len(plan["curves"]) == len(report["group_layers"]) - groups.index(g)
        assert g["spent"] >= g["planned_share"] - 1e-9  # the budget is an upper bound on size
    assert groups[-1]["budget"] == 0.4
    minimum = report["min_keep"]
    assert all(k >= m for k, m in zip(report["filters_after"], minimum))
    assert report["filters_after"] == runs[1]["filters_after"]
    assert [g["front"] for g in groups] == [g["front"] for g in runs[1]["groups"]]


@pytest.mark.slow
@pytest.mark.parametrize("measure", ["params", "macs"])
def test_search_rule_plans_every_remaining_layer_and_lands_on_the_target(trained_tiny, measure):
    model, splits = trained_tiny
    target = {"target_params": 0.4} if measure == "params" else {"target_params": None}
    if measure == "macs":
        target["target_macs"] = 0.5
    r = 0.4 if measure == "params" else 0.5
    runs = []
    for _ in range(2):
        config = _config(budget="search", **target)
        _, report = prune(
            copy.deepcopy(model), splits.train, splits.val, config, "cpu", log=lambda m: None
        )
        runs.append(report)
    report = runs[0]
    groups, layers = report["groups"], report["group_layers"]
    assert r - 0.01 <= report[f"{measure}_ratio"] <= r + 1e-9
    for g, group in enumerate(groups):
        remaining = [i + 1 for rest in layers[g:] for i in rest]
        assert group["searched_layers"] == remaining  # the search planned all that is left
        if g < len(groups) - 1:
            plan = group["plan"]
            assert plan["rule"] == "search" and len(plan["kept"]) == len(remaining)
            # the group applies exactly its part of the plan, and the plan met the target
            assert group["filters_after"] == plan["kept"][: len(group["layers"])]
            assert group["chosen"][1 + report["objectives"][1:].index(measure)] <= r + 1e-9
            assert group["spent"] == pytest.approx(group["planned_share"])
    assert groups[-1]["budget"] == r
    assert all(k >= m for k, m in zip(report["filters_after"], report["min_keep"]))
    assert report["filters_after"] == runs[1]["filters_after"]  # same seed, same masks


def test_calibration_reads_training_images_only(trained_tiny, monkeypatch):
    model, splits = trained_tiny
    rows = lambda x: {bytes(r) for r in x.flatten(1).numpy()}  # noqa: E731
    train_rows, val_rows = rows(splits.train.x), rows(splits.val.x)
    seen = []
    real = pipeline.make_evaluator

    def watched(structure, genome, search, mean, std, objective, batch, calibration, *a, **kw):
        seen.append(rows(calibration.x))
        assert rows(search.x) <= val_rows
        return real(structure, genome, search, mean, std, objective, batch, calibration, *a, **kw)

    monkeypatch.setattr(pipeline, "make_evaluator", watched)
    prune(copy.deepcopy(model), splits.train, splits.val, _config(), "cpu", log=lambda m: None)
    assert seen and all(s and s <= train_rows and not s & val_rows for s in seen)


def test_no_calibration_images_means_no_calibration(trained_tiny, monkeypatch):
    model, splits = trained_tiny
    calls = []
    monkeypatch.setattr(
        "smoea.evaluator.recalibrate", lambda *a: calls.append(1) or None, raising=True
    )
    config = _config(calibration_images=0, budget="heavy-late")
    _, report = prune(copy.deepcopy(model), splits.train, splits.val, config, "cpu", log=print)
    assert report["groups"][0]["evaluator"] == "sliced" and not calls
    assert all(g["plan"] is None for g in report["groups"])


@pytest.mark.parametrize("kind", ["sequential", "code"])
def test_statistics_are_restored_after_the_search_when_nothing_is_removed(trained_tiny, kind):
    from tests.test_api import TinyNet

    model, splits = trained_tiny
    model = copy.deepcopy(model) if kind == "sequential" else TinyNet().eval()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    config = _config(target_params=1.0, budget="heavy-late", finetune=TrainConfig(epochs=0))
    pruned, report = prune(model, splits.train, splits.val, config, "cpu", log=lambda m: None)
    assert report["groups"][0]["evaluator"] == (
        "sliced" if kind == "sequential" else "sliced-graph"
    )
    assert report["filters_after"] == report["filters_before"]
    after = {k: v for k, v in pruned.state_dict().items() if "running" in k}
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
@pytest.mark.parametrize("images", [32, 0])
def test_no_final_finetune_reestimates_batchnorm_on_training_images(trained_tiny, images):
    from smoea.data import calibration_set, normalize

    model, splits = trained_tiny
    config = _config(calibration_images=images, finetune=TrainConfig(epochs=0))
    pruned, report = prune(
        copy.deepcopy(model), splits.train, splits.val, config, "cpu", log=lambda m: None
    )
    removed = [g["filters_after"] != g["filters_before"] for g in report["groups"]]
    assert any(removed)
    assert [g["norms_reestimated"] for g in report["groups"]] == [images * r for r in removed]
    conv = next(m for m in pruned.modules() if isinstance(m, torch.nn.Conv2d))
    norm = next(m for m in pruned.modules() if isinstance(m, torch.nn.BatchNorm2d))
    calib = calibration_set(splits.train, 32, config.seed)
    with torch.no_grad():
        out = conv(normalize(calib.x, splits.mean, splits.std))
    # re-estimated: the first BatchNorm's mean is its input's mean over the calibration images;
    # without calibration images the statistics are the trained model's, not that mean
    fits = torch.allclose(norm.running_mean, out.mean((0, 2, 3)), atol=1e-4)
    assert fits == (images > 0)


def _pruned_report(trained_tiny, **kw):
    model, splits = trained_tiny
    config = _config(finetune=TrainConfig(epochs=0), **kw)
    log = lambda m: None  # noqa: E731
    return prune(copy.deepcopy(model), splits.train, splits.val, config, "cpu", log=log)[1]


@pytest.mark.slow
def test_search_effort_follows_the_plan(trained_tiny):
    report = _pruned_report(
        trained_tiny, target_params=0.3, evaluations=32, effort="plan", generations=4
    )
    efforts = [g["effort"] for g in report["groups"]]
    assert all(e["rule"] == "plan" and e["total"] == 32 and e["threshold"] == 16 for e in efforts)
    # a candidate costs its sub-network's share of the model: the whole model for the first
    # group, less for every later one (a chain: each sub-network is part of the one before)
    costs = [e["cost"] for e in efforts]
    assert costs[0] == pytest.approx(1.0) and all(0 < b < a for a, b in zip(costs, costs[1:]))
    for group, e in zip(report["groups"], efforts):
        assert e["searched"] == (e["evaluations"] >= e["threshold"])
        if not e["searched"]:  # the plan's point: scored once, never searched
            assert group["evaluations"] <= 1 and len(group["front"]) == 1
        last = group is report["groups"][-1]
        units = e["left"] if last else e["left"] * e["share"] / e["need"]
        allotted = min(int(units / e["cost"]), 8 * 4)  # never over pop x gens
        if e["share"] / e["need"] >= e["floor"] and allotted < 16:  # a large cut: searched
            allotted = min(16, int(e["left"] / e["cost"]))
        assert e["evaluations"] == allotted
    assert any(not e["searched"] for e in efforts)
    # the searches stay within the total, give or take one generation's overshoot each
    spent = sum(g["evaluations"] * e["cost"] for g, e in zip(report["groups"], efforts))
    assert spent <= 32 + 8 * sum(costs)
    assert report["params_ratio"] == pytest.approx(0.3, abs=0.02)


@pytest.mark.slow
def test_a_group_planned_to_cut_much_is_searched_however_costly(trained_tiny):
    """A MAC target puts much of the cut in the first, costliest group: its share of the
    total would be under two generations, but it is planned to remove at least
    MIN_SEARCH_SHARE of what is left, so it is searched two generations."""
    report = _pruned_report(
        trained_tiny, target_params=None, target_macs=0.3, evaluations=40, generations=4
    )
    first = report["groups"][0]["effort"]
    by_share = int(first["left"] * first["share"] / first["need"] / first["cost"])
    assert first["share"] / first["need"] >= first["floor"] and by_share < first["threshold"]
    assert first["searched"] and first["evaluations"] == first["threshold"] == 16
    assert report["groups"][0]["evaluations"] >= 16
    assert report["macs_ratio"] == pytest.approx(0.3, abs=0.02)


@pytest.mark.slow
def test_fixed_effort_searches_every_group(trained_tiny):
    report = _pruned_report(trained_tiny, target_params=0.3, effort="fixed")
    assert all(
        g["effort"] == {"rule": "fixed", "searched": True, "evaluations": None}
        for g in report["groups"]
    )
    assert report["params_ratio"] == pytest.approx(0.3, abs=0.02)


def test_auto_effort_plans_size_targets_and_searches_a_latency_target_fully():
    """As measured (benchmarks/results/search-effort): plan as accurate at parameter and MAC
    targets; a latency target is not measured yet. An explicit rule or --evaluations wins."""
    assert _config(target_params=0.3).effort_rule == "plan"
    assert _config(target_params=None, target_macs=0.3).effort_rule == "plan"
    latency = dict(target_params=None, target_latency=0.5)
    assert _config(**latency).effort_rule == "fixed"
    assert _config(**latency, evaluations=64).effort_rule == "plan"
    assert _config(target_params=0.3, effort="fixed").effort_rule == "fixed"


def test_auto_budget_levels_a_latency_target_and_plans_size_targets_by_fronts():
    """As measured (benchmarks/results/latency-evidence): at a latency target `fronts` spent
    its whole share on one group; `level` spread it and kept more accuracy. At parameter and
    MAC targets `fronts` stays (docs/results.md). An explicit rule wins; compare records and
    matches the rule that ran."""
    assert _config(budget="auto").budget_rule == "fronts"
    assert _config(budget="auto", target_params=None, target_macs=0.3).budget_rule == "fronts"
    latency = dict(budget="auto", target_params=None, target_latency=0.5)
    assert _config(**latency).budget_rule == "level"
    assert _config(**{**latency, "budget": "fronts"}).budget_rule == "fronts"
    assert PruneConfig().budget == "auto"
    assert compare._settings(_config(**latency))["budget"] == "level"
    with pytest.raises(SmoeaError, match="unknown --budget 'flat'; choose auto, "):
        _config(budget="flat").validate()


def test_the_default_evaluation_total_lets_a_tiny_search_run():
    assert _config(effort="plan").evaluation_total == 16  # 8 x 2 / 2 = 8, raised to 2 gens
    assert _config(effort="plan", pop_size=24, generations=20).evaluation_total == 240
    _config(effort="plan").validate()


def test_an_evaluation_total_too_small_to_search_is_refused():
    with pytest.raises(Exception, match="too small to search"):
        _config(evaluations=15, effort="plan").validate()  # two generations of 8 are 16
    with pytest.raises(Exception, match="add --effort plan"):
        _config(evaluations=15, effort="fixed").validate()  # a total the rule would not use
