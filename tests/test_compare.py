"""The comparison: every method lands on the target, the same fine-tuning, the same budget."""

import copy
import json

import pytest
import torch

from smoea import baselines
from smoea.cli import main
from smoea.compare import compare
from smoea.data import TensorData
from smoea.errors import SmoeaError
from smoea.methods import AT_SMOEA, LATENCY_ONLY, PROGRESSIVE, VARIANTS, parse_methods
from smoea.prune_config import PruneConfig
from smoea.summary import write_table
from smoea.train import TrainConfig

TARGET = 0.5
AT_A_SIZE = [v for v in VARIANTS if v not in LATENCY_ONLY]  # every method a size target runs


def tiny_config(**changes) -> PruneConfig:
    tune = TrainConfig(epochs=1, lr=0.01, batch_size=64, schedule="cosine")
    config = PruneConfig(
        target_params=TARGET,
        pop_size=6,
        generations=2,
        search_size=40,
        finetune=tune,
        final=tune,
    )
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def run_compare(model, splits, methods, config, **options) -> dict:
    """One seed of `compare` on fresh copies of `model`, on the CPU, quietly (`options`: more
    of compare's arguments, e.g. out, save_model, match_beside)."""
    options = {"log": lambda m: None, **options}
    return compare(
        lambda: copy.deepcopy(model), splits, methods, [0], config, torch.device("cpu"), **options
    )


@pytest.fixture(scope="module")
def comparison(tiny_splits):
    model, splits = tiny_splits
    return run_compare(model, splits, AT_A_SIZE, tiny_config())


@pytest.mark.slow
def test_every_method_reaches_the_target_within_one_percent(comparison):
    base = comparison["baseline"]["params"]
    assert set(comparison["methods"]) == set(AT_A_SIZE)
    for name, m in comparison["methods"].items():
        assert "failed" not in m, (name, m)
        assert (TARGET - 0.01) * base <= m["params"] <= TARGET * base, name
        info = m["runs"][0].get("method_info", {})
        if "params_ratio" in info:  # the criteria's own count agrees with the counter's
            assert info["params_ratio"] == pytest.approx(m["params"] / base, abs=1e-9)
    assert comparison["params_within_1pct"]


@pytest.mark.slow
def test_whole_nsga2_spends_the_budget_it_was_given(comparison):
    whole = comparison["methods"]["whole-nsga2"]["runs"][0]
    smoea = comparison["methods"]["smoea"]["runs"][0]
    assert whole["method_info"]["evaluation_budget"] == smoea["evaluations"]
    # it stops at the end of the generation that crossed the budget
    assert smoea["evaluations"] <= whole["evaluations"] < smoea["evaluations"] + 6


@pytest.mark.slow
def test_the_fine_tuning_each_method_ran_is_identical(comparison):
    """Captured inside the training loop (steps, learning rates, data-order seeds, distillation),
    not rebuilt from the configuration."""
    ran = {name: m["runs"][0]["finetune_ran"] for name, m in comparison["methods"].items()}
    first = ran["smoea"]
    assert [r["step"] for r in first] == [1, 2, 3, 4, 6]
    assert all(r["steps"] > 0 and r["data_seeds"] and not r["distill"] for r in first)
    assert len({tuple(r["data_seeds"]) for r in first}) == len(first)  # each step its own order
    for name, records in ran.items():
        assert records == first, name


@pytest.mark.slow
def test_table_has_a_row_per_method(comparison):
    table = write_table(comparison)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(comparison["methods"])
    assert "| smoea | 1 |" in table


def test_parse_methods_expands_criteria_and_rejects_unknown_names():
    assert parse_methods("l1,smoea") == ["smoea", "l1-uniform", "l1-global"]
    assert parse_methods("whole-nsga2,fpgm-global") == ["fpgm-global", "whole-nsga2"]
    with pytest.raises(SmoeaError, match="unknown method magic"):
        parse_methods("smoea,magic")


def test_uniform_ranking_drops_the_same_fraction_of_every_layer():
    scores = [torch.rand(n).numpy() for n in (8, 16, 32)]
    masks = baselines.uniform_keep(scores, 0.5, [1, 1, 1])
    assert [int(m.sum()) for m in masks] == [4, 8, 16]
    for score, mask in zip(scores, masks):
        assert score[mask].min() >= score[~mask].max()  # the best-scored are kept


def test_global_ranking_respects_the_minimum_per_layer():
    scores = [torch.full((8,), 0.01).numpy(), torch.rand(16).numpy() + 1]
    masks = baselines.global_keep(scores, 0.6, [2, 1])
    assert int(masks[0].sum()) == 2  # every score there is below the threshold


def test_a_failing_method_is_reported_and_the_others_go_on(tiny_splits, monkeypatch):
    model, splits = tiny_splits

    def broken(*args, **kwargs):
        raise RuntimeError("criterion exploded")

    monkeypatch.setattr("smoea.methods.criterion_prune", broken)
    result = run_compare(model, splits, ["l1-uniform", "whole-nsga2"], tiny_config(generations=1))
    assert "criterion exploded" in result["methods"]["l1-uniform"]["failed"]
    assert result["methods"]["whole-nsga2"]["test_accuracy_mean"] > 0


@pytest.mark.slow
def test_compare_command_writes_json_table_and_plot_and_resumes(baseline, image_archive, tmp_path):
    out = tmp_path / "cmp"
    args = [
        "compare",
        "--checkpoint",
        str(baseline / "model.pt"),
        "--data",
        str(image_archive),
        "--val-size",
        "40",
        "--target-params",
        "0.5",
        "--methods",
        "l1-uniform,random-global",
        "--seeds",
        "0,1",
        "--pop-size",
        "6",
        "--generations",
        "1",
        "--search-size",
        "30",
        "--finetune-epochs",
        "0",
        "--final-epochs",
        "1",
        "--batch-size",
        "32",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    result = json.loads((out / "compare.json").read_text())
    for name in ("l1-uniform", "random-global"):
        m = result["methods"][name]
        for key in ("test_accuracy_mean", "test_accuracy_std", "params", "macs"):
            assert key in m
        assert m["seeds"] == [0, 1]
        assert [s["step"] for s in m["runs"][0]["finetune_schedule"]] == [6]
    for key in ("test_accuracy", "params", "macs"):
        assert key in result["baseline"]
    assert (out / "compare.md").read_text().count("| l1-uniform |") == 1
    assert (out / "compare.png").stat().st_size > 0

    assert main(args) == 2  # a finished comparison is never overwritten silently
    saved = (out / "runs" / "l1-uniform-seed1.json").read_text()
    run_versions = json.loads(saved)["versions"]  # every run record names the code that ran
    assert {"commit", "dirty", "torch", "torch_pruning", "pymoo"} <= set(run_versions)
    assert main([*args, "--resume"]) == 0  # finished runs are reused, not rerun
    assert (out / "runs" / "l1-uniform-seed1.json").read_text() == saved
    assert main([*args[:-2], "--final-epochs", "2", "--out", str(out), "--resume"]) == 2
    # a resume naming one seed still summarizes every run of the folder made with its settings
    one_seed = [*args, "--resume"]
    one_seed[one_seed.index("0,1")] = "1"
    assert main(one_seed) == 0
    result = json.loads((out / "compare.json").read_text())
    assert [result["methods"][n]["seeds"] for n in ("l1-uniform", "random-global")] == [[0, 1]] * 2
    assert (out / "runs" / "l1-uniform-seed1.json").read_text() == saved
    # ... but not the runs made with other settings
    other = [*args[:-2], "--final-epochs", "2", "--seeds", "2", "--methods", "l1-uniform"]
    assert main([*other, "--out", str(out), "--resume"]) == 0
    result = json.loads((out / "compare.json").read_text())
    assert list(result["methods"]) == ["l1-uniform"]
    assert result["methods"]["l1-uniform"]["seeds"] == [2]


def test_saved_models_load_with_the_figures_their_runs_recorded(baseline, image_archive, tmp_path):
    from smoea.checkpoint import load_record, model_from_record
    from smoea.report import model_counts

    out = tmp_path / "cmp"
    args = ["compare", "--checkpoint", str(baseline / "model.pt"), "--data", str(image_archive)]
    args += ["--val-size", "40", "--target-params", "0.5", "--methods", "l1-uniform"]
    args += ["--seeds", "0", "--finetune-epochs", "0", "--final-epochs", "1"]
    args += ["--batch-size", "32", "--device", "cpu", "--out", str(out), "--save-models"]
    assert main(args) == 0
    run = json.loads((out / "runs" / "l1-uniform-seed0.json").read_text())
    record = load_record(out / "runs" / "l1-uniform-seed0.pt")
    model = model_from_record(record)
    assert model_counts(model, tuple(record["image_shape"]))["params"] == run["params"]
    assert record["split"] == load_record(baseline / "model.pt")["split"]
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(out / "runs" / "l1-uniform-seed0.pt"),
                "--data",
                str(image_archive),
                "--device",
                "cpu",
            ]
        )
        == 0
    )


def test_a_run_saved_before_a_new_setting_existed_is_reused_only_at_its_default():
    from smoea.compare import _same_settings

    current = json.loads(json.dumps(tiny_config().as_dict()))
    older = {k: v for k, v in current.items() if k != "target_macs"}
    assert _same_settings(older, current)
    assert not _same_settings(older, dict(current, target_macs=0.5))
    assert not _same_settings(current, dict(current, pop_size=7))


def test_distillation_settings_count_only_when_distillation_was_on():
    from smoea.compare import _same_settings

    current = json.loads(json.dumps(tiny_config().as_dict()))
    assert not current["distill"]
    assert _same_settings(dict(current, distill_weight=0.9), current)  # off: no effect
    on = dict(current, distill=True)
    assert not _same_settings(dict(on, distill_weight=0.9), dict(on, distill_weight=0.5))


@pytest.mark.slow
def test_at_smoea_keeps_exactly_smoeas_counts(comparison):
    smoea = comparison["methods"]["smoea"]["runs"][0]["filters_after"]
    for name in AT_SMOEA:
        run = comparison["methods"][name]["runs"][0]
        assert run["filters_after"] == smoea, name
    l1 = comparison["methods"]["l1-at-smoea"]["runs"][0]
    rnd = comparison["methods"]["random-at-smoea"]["runs"][0]
    assert l1["params"] == smoea_params(comparison) == rnd["params"]


def smoea_params(comparison):
    return comparison["methods"]["smoea"]["runs"][0]["params"]


def test_at_smoea_without_smoea_is_reported_as_failed(tiny_splits):
    model, splits = tiny_splits
    result = run_compare(model, splits, parse_methods("l1-at-smoea"), tiny_config())
    assert "needs a finished smoea run" in result["methods"]["l1-at-smoea"]["failed"]


def test_a_failed_run_runs_again_when_the_comparison_is_resumed(tiny_splits, tmp_path):
    """A method that failed (l1-at-smoea without smoea's run) is not reused as failed once
    its cause is gone: the resumed comparison with smoea added runs it."""
    model, splits = tiny_splits
    out = tmp_path / "cmp"
    first = run_compare(model, splits, parse_methods("l1-at-smoea"), tiny_config(), out=out)
    assert "failed" in first["methods"]["l1-at-smoea"]
    assert "failed" in json.loads((out / "runs" / "l1-at-smoea-seed0.json").read_text())
    again = run_compare(model, splits, parse_methods("smoea,l1-at-smoea"), tiny_config(), out=out)
    rerun = again["methods"]["l1-at-smoea"]
    assert "failed" not in rerun and rerun["runs"][0]["params"] == smoea_params(again)
    assert "failed" not in json.loads((out / "runs" / "l1-at-smoea-seed0.json").read_text())


@pytest.mark.slow
def test_table_and_plot_show_macs(comparison, tmp_path):
    from smoea.summary import plot_compare

    table = write_table(comparison)
    assert "MACs ratio" in table and "held-out val. %" in table
    row = next(line for line in table.splitlines() if line.startswith("| smoea |"))
    ratio = comparison["methods"]["smoea"]["macs"] / comparison["baseline"]["macs"]
    assert f"{ratio:.4f}" in row
    plot_compare(comparison, tmp_path / "compare.png")
    assert (tmp_path / "compare.png").stat().st_size > 10_000


@pytest.mark.slow
def test_ratio_search_spends_the_evaluations_it_was_given(comparison):
    ratio = comparison["methods"]["ratio-search"]["runs"][0]
    smoea = comparison["methods"]["smoea"]["runs"][0]
    assert ratio["method_info"]["evaluation_budget"] == smoea["evaluations"]
    assert ratio["evaluations"] == smoea["evaluations"]


@pytest.mark.slow
def test_sensitivity_finds_one_threshold_for_every_layer(comparison):
    info = comparison["methods"]["sensitivity"]["runs"][0]["method_info"]
    assert info["threshold"] >= 0
    # the fill up to the target only gives filters back
    assert all(a >= b for a, b in zip(info["counts"], info["grid_counts"]))
    assert info["evaluations"] > 0


def test_raw_global_scores_are_not_normalised_per_layer(trained_tiny, tiny_splits):
    from smoea.structure import Structure

    model, splits = tiny_splits
    s = Structure(copy.deepcopy(model), torch.zeros(1, 3, 16, 16))
    normalised = baselines.filter_scores(s, "l1", splits, 0)
    raw = baselines.filter_scores(s, "l1", splits, 0, normalizer=None)
    means = [r.mean() for r in raw]
    assert len(set(round(float(m), 6) for m in means)) > 1  # layers differ in scale
    for n, r in zip(normalised, raw):
        assert n == pytest.approx(r / r.mean(), rel=1e-5)


@pytest.mark.slow
def test_every_method_meets_a_mac_target_within_one_percent(tiny_splits):
    model, splits = tiny_splits
    config = tiny_config(target_params=None, target_macs=TARGET, generations=1)
    methods = "smoea,l1-uniform,l1-global,lamp,sensitivity,ratio-search,whole-nsga2,l1-at-smoea"
    result = run_compare(model, splits, parse_methods(methods), config)
    base = result["baseline"]["macs"]
    for name, m in result["methods"].items():
        assert "failed" not in m, (name, m)
        assert (TARGET - 0.01) * base <= m["macs"] <= TARGET * base, name
    assert result["macs_within_1pct"] and result["measure"] == "macs"
    assert "of the MACs" in write_table(result)


def test_both_targets_at_once_are_refused(tiny_splits):
    model, splits = tiny_splits
    with pytest.raises(SmoeaError, match="one target"):
        run_compare(model, splits, ["l1-uniform"], tiny_config(target_macs=0.5))


@pytest.mark.slow
def test_progressive_uses_smoeas_group_budgets(comparison):
    smoea = comparison["methods"]["smoea"]["runs"][0]
    assert len(smoea["group_budgets"]) == 5
    for name in PROGRESSIVE:
        info = comparison["methods"][name]["runs"][0]["method_info"]
        assert info["budgets"] == smoea["group_budgets"], name
        # a budget the group cannot reach at its minimum (other earlier counts) gives way
        assert all(u >= b for u, b in zip(info["budgets_used"], info["budgets"])), name
        assert all(r <= u + 1e-12 for r, u in zip(info["reached"], info["budgets_used"])), name
        # filters come back while they fit: each group lands just under its budget
        assert all(u - r < 0.05 for r, u in zip(info["reached"], info["budgets_used"])), name


@pytest.mark.slow
def test_no_method_reads_the_test_split_before_it_is_pruned_and_fine_tuned(
    tiny_splits, monkeypatch
):
    """A tripwire on the test split: reads count as early unless they come from the final
    measurement of a finished method (or the baseline's row, after every method)."""
    import smoea.compare as cmp
    import smoea.methods as methods_module

    model, splits = tiny_splits
    state = {"measuring": False, "early": 0, "late": 0}

    class Tripwire(TensorData):
        def __getattribute__(self, name):
            if name in ("x", "y"):
                state["late" if state["measuring"] else "early"] += 1
            return object.__getattribute__(self, name)

    def measuring(real):
        def wrapped(*args, **kwargs):
            state["measuring"] = True
            try:
                return real(*args, **kwargs)
            finally:
                state["measuring"] = False

        return wrapped

    monkeypatch.setattr(methods_module, "_measure", measuring(methods_module._measure))
    monkeypatch.setattr(cmp, "_baseline_row", measuring(cmp._baseline_row))
    splits_with_wire = copy.copy(splits)
    splits_with_wire.test = Tripwire(splits.test.x, splits.test.y)
    methods = "smoea,l1-uniform,taylor-global,l1-global-raw,lamp,sensitivity,ratio-search"
    methods += ",whole-nsga2,l1-at-smoea,l1-progressive"
    result = run_compare(
        model, splits_with_wire, parse_methods(methods), tiny_config(generations=1)
    )
    assert not [n for n, m in result["methods"].items() if "failed" in m]
    assert state["early"] == 0 and state["late"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("genome", ["bits", "counts"])
def test_progressive_reaches_the_target_after_a_fronts_plan(tiny_splits, genome):
    """A group cut to one ratio keeps other counts than SMOEA's, so SMOEA's budgets can be out
    of reach for it: it then takes its minimum and keeps the target reachable (this failed)."""
    model, splits = tiny_splits
    config = tiny_config(target_params=0.1, genome=genome, budget="fronts")
    result = run_compare(model, splits, ["smoea", "l1-progressive"], config)
    base = result["baseline"]["params"]
    for name, m in result["methods"].items():
        assert "failed" not in m, (name, m)
        assert 0.09 * base <= m["params"] <= 0.1 * base, name


@pytest.mark.slow
def test_every_method_meets_a_latency_target_with_one_table(tiny_splits, monkeypatch, tmp_path):
    """`compare --target-latency`: every method reaches the target (one table for all,
    measured once; the stand-in timing is exact, so predicted and measured agree), and each run
    records its latency measured as deployed."""
    from tests.test_latency import _deterministic_timing

    monkeypatch.setenv("SMOEA_CACHE", str(tmp_path))
    _deterministic_timing(monkeypatch)
    model, splits = tiny_splits
    config = tiny_config(target_params=None, target_latency=TARGET, generations=1)
    methods = "smoea,l1-uniform,l1-global,sensitivity,ratio-search,halp,l1-progressive,l1-at-smoea"
    result = run_compare(model, splits, parse_methods(methods), config)
    base = result["baseline"]["latency"]
    for name, m in result["methods"].items():
        assert "failed" not in m, (name, m)
        assert (TARGET - 0.01) * base <= m["latency"] <= TARGET * base, name
        assert m["measured_latency"] == pytest.approx(m["latency"], rel=1e-6)  # exact stand-in
        # measured together with a baseline: the same ratio as the prediction's
        assert m["measured_latency_ratio"] == pytest.approx(m["latency"] / base, rel=1e-6)
        assert m["measured_latency_repeat_std"] == pytest.approx(0.0, abs=1e-9)
    assert result["measured_latency_agrees"] and result["measure"] == "latency"
    assert result["methods"]["halp"]["evaluations"] == 0  # the cost model alone decides
    assert result["methods"]["sensitivity"]["evaluations"] > 0
    table = write_table(result)
    assert "of the latency" in table and "| l1-uniform | " in table.split("Latency (ms")[1]
    assert "measured ratio to the baseline" in table and "std of one measurement" in table
    assert len(list((tmp_path / "latency").glob("*.json"))) == 1  # one table, for every method
