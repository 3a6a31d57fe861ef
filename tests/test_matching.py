"""Methods compared at a latency target meet it measured, not only as the latency model predicts."""

import copy
from dataclasses import replace

import pytest
import torch

from smoea import compare as compare_module
from smoea import latency
from smoea import methods as methods_module
from smoea.checkpoint import save_model
from smoea.compare import compare
from smoea.errors import SmoeaError
from smoea.matching import MATCH_TOLERANCE, MATCH_TRIES, match, next_setting, within_tolerance
from smoea.methods import parse_methods
from smoea.models import make_arch
from smoea.summary import write_table
from tests.test_compare import run_compare, tiny_config

ARCH = make_arch("vgg14", 0.125, 3, 3, 16)  # trained_tiny's

TARGET = 0.6


def test_match_lands_within_the_tolerance_on_a_bent_curve():
    """Measured latency that bends away from the setting (a rest that does not shrink, steps):
    proportional then secant steps land within the tolerance in a few tries."""
    curve = lambda s: 0.3 + 0.5 * s**1.5  # noqa: E731
    setting, tries = match(lambda s: s, curve, TARGET, start=TARGET)
    assert abs(curve(setting) / TARGET - 1) <= MATCH_TOLERANCE
    assert 2 <= len(tries) <= MATCH_TRIES
    assert abs(curve(TARGET) / TARGET - 1) > MATCH_TOLERANCE  # the first try had missed


def test_match_keeps_the_nearest_try_and_stops_on_an_untrusted_measurement():
    flat = lambda s: 0.9  # noqa: E731  # nothing the setting does reaches the target
    setting, tries = match(lambda s: s, flat, TARGET, start=TARGET)
    assert len(tries) == MATCH_TRIES and all(t["measured_ratio"] == 0.9 for t in tries)
    assert [t["setting"] for t in tries] == sorted((t["setting"] for t in tries), reverse=True)
    assert setting == TARGET  # none nearer than the first
    pinned = lambda s: 0.1  # noqa: E731  # far under: the setting rises to the whole model
    setting, tries = match(lambda s: s, pinned, TARGET, start=TARGET)
    assert [t["setting"] for t in tries] == [TARGET, 1.0]  # pinned at the range's end: stop
    noisy = [0.8, None]
    setting, tries = match(lambda s: s, lambda s: noisy.pop(0), TARGET, start=TARGET)
    assert len(tries) == 2 and setting == TARGET  # the one trusted try


def test_next_setting_follows_the_secant_and_stays_in_range():
    tries = [{"setting": 0.5, "measured_ratio": 0.7}, {"setting": 0.4, "measured_ratio": 0.65}]
    assert next_setting(tries, 0.6) == pytest.approx(0.3)  # the line through both
    assert next_setting(tries[:1], 0.6) == pytest.approx(0.5 * 0.6 / 0.7)
    assert next_setting([{"setting": 0.9, "measured_ratio": 0.1}], 0.6) == 1.0
    assert next_setting([{"setting": 0.5, "measured_ratio": 0.9}], 0.6, lowest=0.45) == 0.45
    # the tries of smoea-macs at batch 1 on resnet20 (MAC ratio -> measured latency ratio):
    # once 0.195 fell below 0.8 and 0.549 stayed above, the next lies between them
    seen = [(0.8, 0.947), (0.676, 0.984), (0.549, 0.936), (0.195, 0.701)]
    seen = [{"setting": s, "measured_ratio": m} for s, m in seen]
    assert next_setting(seen, 0.8) == pytest.approx(0.195 + (0.099 / 0.235) * 0.354)
    # smoea-macs seed 0 on resnet20 (ratio to SMOEA's model, target 1): not monotone; the
    # nearest in measurement (0.369 -> 0.944, 0.543 -> 1.144) sent the try back to 0.418
    seen = [(0.8, 1.169), (0.684, 1.26), (0.543, 1.144), (0.369, 0.944), (0.418, 0.941)]
    seen = [{"setting": s, "measured_ratio": m} for s, m in seen]
    assert next_setting(seen, 1.0) == pytest.approx(0.418 + (0.059 / 0.203) * 0.125)
    assert within_tolerance([0.59, 0.61], 0.6) and not within_tolerance([0.59, None], 0.6)
    assert not within_tolerance([0.65], 0.6) and not within_tolerance([], 0.6)


def _measured_slower(monkeypatch, tmp_path, model, splits, factor: float):
    """An exact latency table, then every pruned model measures `factor` times its prediction
    (the latency model is off); the unpruned one measures as predicted."""
    from tests.test_latency import _cache_exact_table, _deterministic_timing

    monkeypatch.setenv("SMOEA_CACHE", str(tmp_path))
    _deterministic_timing(monkeypatch)
    exact = latency.measure
    full = sum(p.numel() for p in model.parameters())

    def slower(probes, *args, **kwargs):
        ms = exact(probes, *args, **kwargs)
        cut = [
            p.shape is None and sum(q.numel() for q in p.module.parameters()) < full for p in probes
        ]
        return [t * (factor if c else 1.0) for t, c in zip(ms, cut)]

    _cache_exact_table(model, splits)
    monkeypatch.setattr(latency, "measure", slower)


@pytest.mark.slow
def test_compare_brings_every_method_to_the_measured_latency_target(
    trained_tiny, monkeypatch, tmp_path
):
    """The latency model underestimates pruned models by 20%: held to the predicted target,
    every method would measure 20% over it. Matched, every run measures within 3% of it, the
    MAC-target SMOEA included; the matching prunings measure no accuracy."""
    model, splits = trained_tiny
    splits = copy.copy(splits)
    splits.test = splits.val
    _measured_slower(monkeypatch, tmp_path, model, splits, 1.2)
    figures = []
    real_figures = compare_module.model_figures
    for module in (compare_module, methods_module):  # each finished run's, the baseline's
        monkeypatch.setattr(
            module, "model_figures", lambda *a, **k: figures.append(1) or real_figures(*a, **k)
        )
    config = tiny_config(target_params=None, target_latency=TARGET, generations=1)
    config.finetune.epochs = config.final.epochs = 0
    methods = parse_methods("smoea,smoea-macs,halp,l1-progressive,l1-at-smoea")
    result = run_compare(model, splits, methods, config, match_beside="baseline")
    assert result["measured_latency_agrees"]
    for name, m in result["methods"].items():
        assert "failed" not in m, (name, m)
        assert abs(m["measured_latency_ratio"] / TARGET - 1) <= MATCH_TOLERANCE, name
    runs = {name: m["runs"][0] for name, m in result["methods"].items()}
    assert runs["smoea"]["latency_match"]["tries"][0]["measured_ratio"] > TARGET * 1.1
    assert runs["smoea"]["latency_match"]["setting"] < TARGET / 1.1  # cut harder than predicted
    assert "latency_match" not in runs["l1-at-smoea"]  # SMOEA's counts: SMOEA's latency
    macs = runs["smoea-macs"]["macs"] / result["baseline"]["macs"]
    assert macs <= runs["smoea-macs"]["latency_match"]["setting"] + 1e-6  # a MAC target
    assert len(figures) == len(methods) + 1  # each finished run and the baseline, no more
    table = write_table(result)
    assert "of the latency (measured)" in table and "measured within 3% of the target: yes" in table


@pytest.mark.slow
def test_other_methods_are_matched_beside_the_seeds_smoea_model(
    trained_tiny, monkeypatch, tmp_path
):
    """By default a method is brought to the time of its seed's SMOEA model measured together
    with it (the machine's drift between runs cancels); a resumed comparison reads SMOEA's
    saved model back to match an added method beside it, and refuses runs matched otherwise."""
    model, splits = trained_tiny
    splits = copy.copy(splits)
    splits.test = splits.val
    _measured_slower(monkeypatch, tmp_path, model, splits, 1.2)
    config = tiny_config(target_params=None, target_latency=TARGET, generations=1)
    config.finetune.epochs = config.final.epochs = 0
    out = tmp_path / "cmp"
    saver = lambda path, m: save_model(path, m, None, {})  # noqa: E731  # pickled: refused back
    arch_saver = lambda path, m: save_model(path, m, ARCH, {})  # noqa: E731

    def run(methods: str, save=arch_saver, beside="smoea"):
        methods = parse_methods(methods)
        return run_compare(
            model, splits, methods, config, out=out, save_model=save, match_beside=beside
        )

    result = run("smoea,halp")
    smoea, halp = (result["methods"][n]["runs"][0] for n in ("smoea", "halp"))
    assert smoea["latency_match"]["beside"] == "baseline"  # the reference meets the target
    assert halp["latency_match"]["beside"] == "smoea"
    beside = halp["measured_beside_smoea"]["ratio"]
    assert abs(beside - 1) <= MATCH_TOLERANCE  # matched to SMOEA's time, not the target's
    # the stand-in timing is exact: beside SMOEA = (to the baseline) / (SMOEA's to the baseline)
    expect = halp["measured_latency_ratio"] / smoea["measured_latency_ratio"]
    assert beside == pytest.approx(expect, rel=1e-6)
    assert halp["latency_match"]["tries"][-1]["measured_ratio"] == pytest.approx(beside)
    assert result["measured_latency_agrees"]
    assert "ratio to the seed's smoea model" in write_table(result)
    with pytest.raises(SmoeaError, match="matched beside the smoea model.*--latency-match smoea"):
        run("smoea,halp", beside="baseline")
    added = run("smoea,halp,l1-uniform")  # smoea and halp reused, SMOEA's model read back
    l1 = added["methods"]["l1-uniform"]["runs"][0]
    assert l1["latency_match"]["beside"] == "smoea"
    assert abs(l1["measured_beside_smoea"]["ratio"] - 1) <= MATCH_TOLERANCE
    (out / "runs" / "smoea-seed0.pt").unlink()  # no saved model: beside a fresh baseline
    (out / "runs" / "l1-uniform-seed0.json").unlink()
    again = run("smoea,l1-uniform", save=saver)
    assert again["methods"]["l1-uniform"]["runs"][0]["latency_match"]["beside"] == "baseline"


@pytest.mark.slow
def test_a_matched_run_fine_tunes_the_pruning_it_measured(trained_tiny, monkeypatch, tmp_path):
    """With fine-tuning after the last group only, the try the matching kept is the run's model:
    each method prunes once per try, not once more, and the run equals one pruned again at the
    kept setting (halp's entirely; SMOEA's weights exactly, its BatchNorm statistics being the
    pruning's last re-estimate). Fine-tuned between groups, the run prunes again."""
    model, splits = trained_tiny
    splits = copy.copy(splits)
    splits.test = splits.val
    _measured_slower(monkeypatch, tmp_path, model, splits, 1.2)
    config = tiny_config(target_params=None, target_latency=TARGET, generations=1)
    config.finetune = replace(config.final, epochs=0)  # final: 1 epoch
    prunings, saved = [], {}
    real_run = compare_module.run_method
    monkeypatch.setattr(
        compare_module, "run_method", lambda name, *a: prunings.append(name) or real_run(name, *a)
    )
    keep = lambda path, m: saved.__setitem__(path.stem, copy.deepcopy(m))  # noqa: E731
    options = dict(out=tmp_path / "cmp", save_model=keep, match_beside="baseline")
    result = run_compare(model, splits, parse_methods("smoea,halp"), config, **options)
    fresh, quiet = (lambda: copy.deepcopy(model)), (lambda m: None)
    table = compare_module._latency_table(fresh, splits, config, torch.device("cpu"), quiet)
    for name in ("smoea", "halp"):
        run = result["methods"][name]["runs"][0]
        assert "failed" not in run, run
        match = run["latency_match"]
        assert prunings.count(name) == len(match["tries"]) and not match["pruned_again"]
        at, cpu = compare_module._at_setting(config, name, match["setting"]), torch.device("cpu")
        with latency.active(table):  # the comparison's: what a run inside it predicts with
            again, model_again = real_run(name, copy.deepcopy(model), splits, at, cpu)
        assert again["filters_after"] == run["filters_after"]
        assert again["finetune_ran"] == run["finetune_ran"]
        kept = dict(saved[f"{name}-seed0"].named_parameters())
        for key, weight in model_again.named_parameters():
            assert torch.equal(weight, kept[key]), (name, key)
    halp, halp_again = result["methods"]["halp"]["runs"][0], again
    for key in ("test_accuracy", "val_accuracy", "held_out_val_accuracy", "test_loss"):
        assert halp[key] == halp_again[key], key
    config.finetune = config.final  # 1 epoch after every group
    prunings.clear()
    result = run_compare(model, splits, parse_methods("halp"), config)
    match = result["methods"]["halp"]["runs"][0]["latency_match"]
    assert prunings.count("halp") == len(match["tries"]) + 1 and match["pruned_again"]


@pytest.mark.slow
def test_a_miss_past_the_minimum_widths_stops_there_and_the_run_stands(
    trained_tiny, monkeypatch, tmp_path
):
    """Every pruned model measures 3 times its prediction: no setting reaches the target, and
    one below the minimum widths would fail the method; it stops at the minimum instead."""
    model, splits = trained_tiny
    splits = copy.copy(splits)
    splits.test = splits.val
    _measured_slower(monkeypatch, tmp_path, model, splits, 3.0)
    config = tiny_config(target_params=None, target_latency=TARGET, generations=1, min_keep=0.5)
    config.finetune.epochs = config.final.epochs = 0
    result = compare(
        lambda: copy.deepcopy(model), splits, ["halp"], [0], config, torch.device("cpu"), log=print
    )
    run = result["methods"]["halp"]["runs"][0]
    assert "failed" not in run, run
    settings = [t["setting"] for t in run["latency_match"]["tries"]]
    assert min(settings) > 0.01 and settings[-1] == min(settings)  # stopped at the minimum
    assert len(set(settings)) == len(settings)  # the minimum tried once, then it stopped
    assert not result["measured_latency_agrees"]  # said, not hidden
    assert "measured within 3% of the target: no" in write_table(result)


def test_smoea_macs_needs_a_latency_target(trained_tiny):
    model, splits = trained_tiny
    with pytest.raises(SmoeaError, match="smoea-macs needs --target-latency"):
        compare(
            lambda: copy.deepcopy(model),
            splits,
            ["smoea", "smoea-macs"],
            [0],
            tiny_config(),
            torch.device("cpu"),
            log=lambda m: None,
        )


def test_the_compare_command_refuses_smoea_macs_without_a_latency_target(tmp_path, capsys):
    from smoea.cli import main

    out = tmp_path / "cmp"
    args = ["compare", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(out)]
    assert main([*args, "--methods", "smoea,smoea-macs", "--target-macs", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "smoea-macs needs --target-latency" in err and len(err.splitlines()) == 1
    assert not out.exists()  # refused before anything is written
