"""The paper's comparison: every method prunes one baseline to the same parameter, MAC or measured
latency target; runs are saved, reused, and (at a latency target) matched by measuring."""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from smoea import distributed, latency, matching
from smoea.checkpoint import load_model_file
from smoea.data import Splits
from smoea.errors import SmoeaError
from smoea.halp import stem_layer
from smoea.methods import (
    AT_SMOEA,
    HALP_STEPPED,
    LATENCY_ONLY,
    VARIANTS,
    check_methods,
    finish_pruned,
    latency_figures,
    pruning_only,
    run_method,
    schedule_groups,
)
from smoea.prune_config import PruneConfig
from smoea.report import model_figures, versions
from smoea.structure import Structure, minimum_units
from smoea.summary import summarize

# at a latency target, the seed's SMOEA model is what the other methods are matched beside
# (measured in the same rounds as theirs: the machine's drift between runs cancels, and equal
# latency means equal when measured together); `--latency-match baseline`: each beside a
# fresh baseline, the way runs before 2026-12-04 were matched
REFERENCE = "smoea"
MATCH_BESIDE = (REFERENCE, "baseline")


def compare(
    make_model: Callable[[], nn.Module],
    splits: Splits,
    variants: list[str],
    seeds: list[int],
    config: PruneConfig,
    device: torch.device,
    out: Path | None = None,
    log: Callable[[str], None] = print,
    save_model: Callable[[Path, nn.Module], None] | None = None,
    match_beside: str = REFERENCE,
) -> dict:
    """Run every method variant for every seed; a failing one is recorded, the others go on.

    With `out`, each finished run is saved to out/runs/ and a later call with the same `out`
    reuses it (a run that failed runs again), so a long comparison can be stopped and
    continued; with `save_model` too, each run's pruned model goes beside its record
    (out/runs/<method>-seed<k>.pt). Test figures are
    measured after a method finished; nothing is chosen by them. At a latency target with
    `match_beside` "smoea" (and smoea first among the methods), the other methods of a seed
    are matched to SMOEA's model measured together with theirs, else each to the target
    measured beside a fresh baseline.
    """
    config.validate()
    if config.target is None or None not in (config.target_params, config.target_macs):
        raise SmoeaError("smoea compare needs one target: --target-params, -macs or -latency")
    if config.objectives is not None and config.objectives.replace(" ", "") not in (
        "error,params",
        "loss,params",
    ):
        raise SmoeaError(
            "smoea compare runs the two objectives of the paper (error or loss, params)"
        )
    check_methods(variants, config)
    if match_beside not in MATCH_BESIDE:
        raise SmoeaError(f"--latency-match must be one of {', '.join(MATCH_BESIDE)}")
    runs: dict[str, list[dict]] = {}
    setup = _Setup(make_model, splits, device, out, log, save_model)
    with latency.active(_latency_table(make_model, splits, config, device, log)):
        for seed in seeds:
            cfg, reference = replace(config, seed=seed), None
            for name in variants:
                result, pruned = _cached_run(setup, name, cfg, runs, reference)
                if name == REFERENCE and match_beside == REFERENCE and "failed" not in result:
                    reference = _reference_model(pruned, out, seed, cfg, log)
                runs.setdefault(name, []).append(result)
                log(f"seed {seed} {name}: {_short(result)}")
        _add_earlier_runs(runs, out, config, log)
        return summarize(runs, _baseline_row(make_model, splits, config, device), config)


RUN_FILE = re.compile(r"(?P<name>.+)-seed(?P<seed>\d+)\.json")


def _add_earlier_runs(runs: dict[str, list[dict]], out: Path | None, config, log) -> None:
    """Finished runs in out/runs/ that an earlier invocation made with these settings (other
    methods or seeds, e.g. seeds 1-2 added later) join the summary: compare.json and compare.md
    then describe every run in the folder, not only the last command's."""
    if out is None or not (out / "runs").is_dir():
        return
    done = {(name, r["seed"]) for name, results in runs.items() for r in results}
    added = 0
    for path in sorted((out / "runs").glob("*-seed*.json")):
        m = RUN_FILE.fullmatch(path.name)
        if m is None or (m["name"], int(m["seed"])) in done or m["name"] not in VARIANTS:
            continue
        saved = json.loads(path.read_text())
        settings = _settings(replace(config, seed=int(m["seed"])))
        if _same_settings(saved.get("config") or {}, settings):
            runs.setdefault(m["name"], []).append(saved)
            added += 1
    for results in runs.values():
        results.sort(key=lambda r: r["seed"])
    if added:
        log(f"the summary also holds {added} earlier run(s) in {out / 'runs'} with these settings")


def _latency_table(make_model, splits: Splits, config: PruneConfig, device, log):
    """One latency table for every method (a latency target or objective), else None."""
    if not config.uses_latency:
        return None
    baseline = make_model().to(device).eval()
    s = Structure(baseline, torch.zeros(1, *splits.image_shape, device=device))
    return latency.table_for(s, config.latency_batch, device, log)


def _baseline_row(make_model, splits: Splits, config: PruneConfig, device) -> dict:
    """The unpruned model's test accuracy and sizes, measured after every method finished."""
    baseline = make_model().to(device)
    return {**model_figures(baseline, splits, device), **latency_figures(baseline, splits, config)}


@dataclass(frozen=True)
class _Setup:
    """What every run of one comparison shares (see compare's arguments)."""

    make_model: Callable[[], nn.Module]
    splits: Splits
    device: torch.device
    out: Path | None
    log: Callable[[str], None]
    save_model: Callable[[Path, nn.Module], None] | None


def _cached_run(
    setup: _Setup, name: str, cfg: PruneConfig, runs: dict, reference
) -> tuple[dict, nn.Module | None]:
    """The run's record and pruned model (None for a reused run) at cfg.seed; `runs`: the
    records so far (a method at SMOEA's counts reads its seed's); `reference`: the model to
    match beside (see compare)."""
    make_model, splits, log, seed = setup.make_model, setup.splits, setup.log, cfg.seed
    path, save_model = _run_path(setup.out, name, seed), setup.save_model
    settings = _settings(cfg)
    reused = _reused_run(path, name, settings, cfg, reference, log)
    if reused is not None:
        return reused, None
    smoea_run = next((r for r in runs.get("smoea", []) if r["seed"] == seed), None)
    pruned = None
    try:
        teacher = make_model() if cfg.distill else None  # the unpruned baseline teaches
        result, pruned = _run_matched(setup, name, cfg, smoea_run, teacher, reference)
        result.update(_measured_with_baseline(pruned, make_model, splits))
        if _matched(cfg, name) and reference is not None:
            result["measured_beside_smoea"] = _measured_beside(reference, pruned, splits)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a failing method is reported, the comparison goes on
        reason = " ".join(str(exc).split()) or type(exc).__name__
        result = {"failed": f"{type(exc).__name__}: {reason}", "trace": traceback.format_exc()}
    if pruned is not None and save_model is not None and path is not None:
        save_model(path.with_suffix(".pt"), pruned)  # before the record: a reused run has it
    result.update(seed=seed, config=settings, versions=versions())
    if path is not None and distributed.is_main():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(result, indent=2))
        tmp.replace(path)
    return result, pruned


def _reused_run(path: Path | None, name: str, settings: dict, cfg, reference, log) -> dict | None:
    """A finished run's record, if it ran with these settings and was matched the same way;
    None where there is none or it failed (it runs again: its cause, a missing smoea run say,
    may be gone; its record is replaced only when the new run is saved)."""
    if path is None or not path.exists():
        return None
    saved = json.loads(path.read_text())
    if saved.get("failed"):
        log(f"seed {cfg.seed} {name}: failed before ({saved['failed']}); running it again")
        return None
    if not _same_settings(saved.get("config") or {}, settings):
        raise SmoeaError(f"{path} was run with other settings; use another --out or --force")
    if _matched(cfg, name):
        now, then = _beside_name(reference), matched_beside(saved)
        if now != then:
            raise SmoeaError(
                f"{path} was matched beside the {then} model, this comparison matches beside "
                f"the {now} model; use --latency-match {then} or another --out"
            )
    log(f"seed {cfg.seed} {name}: reusing {path}")
    return saved


def _run_path(out: Path | None, name: str, seed: int) -> Path | None:
    return out / "runs" / f"{name}-seed{seed}.json" if out is not None else None


def _reference_model(pruned, out: Path | None, seed: int, cfg, log) -> nn.Module | None:
    """The seed's SMOEA model to match the other methods beside (a reused run's read back
    from its .pt file); None (each matched beside a fresh baseline) where there is none."""
    if cfg.target_latency is None:
        return None
    if pruned is not None:
        return pruned
    path = _run_path(out, REFERENCE, seed).with_suffix(".pt")
    try:
        return load_model_file(path)[1]
    except SmoeaError as exc:  # saved without --save-models, or not loadable safely
        log(f"seed {seed}: {exc}; the other methods are matched beside a fresh baseline")
        return None


def _matched(cfg: PruneConfig, name: str) -> bool:
    """Whether the method is brought to the latency target by measuring (not SMOEA's counts)."""
    return cfg.target_latency is not None and name not in AT_SMOEA


def _beside_name(reference: nn.Module | None) -> str:
    return "baseline" if reference is None else REFERENCE


def matched_beside(record: dict) -> str:
    """What a run was matched beside: "smoea" (the seed's SMOEA model) or "baseline" (every
    record before 2026-12-04)."""
    return (record.get("latency_match") or {}).get("beside", "baseline")


def _run_matched(setup: _Setup, name: str, cfg: PruneConfig, smoea_run, teacher, reference):
    """run_method; at a latency target, at the setting (the method's predicted latency target,
    or smoea-macs's MAC target) whose pruning, without fine-tuning, measures within
    matching.MATCH_TOLERANCE of the target (or, with a `reference` model, of the reference's
    time, measured together): methods are compared at the same measured latency,
    not at the same prediction of an imperfect latency model. The -at-smoea methods keep
    SMOEA's counts, so its latency. With fine-tuning only after the last group (the default)
    the kept try's pruning is the run's: it is fine-tuned, not pruned again; fine-tuning between
    groups can change what later groups cut, so there the run prunes again at the setting."""
    make_model, splits, device, log = setup.make_model, setup.splits, setup.device, setup.log
    if not _matched(cfg, name):
        return run_method(name, make_model(), splits, cfg, device, smoea_run, teacher)
    pruned_at: dict[float, tuple[dict, nn.Module]] = {}  # each try's record and model

    def prune_at(setting: float) -> nn.Module:
        at = _at_setting(cfg, name, setting)
        dry = replace(
            at, finetune=replace(at.finetune, epochs=0), final=replace(at.final, epochs=0)
        )
        with pruning_only():
            runs = _scaled_budgets(smoea_run, setting, cfg)
            pruned_at[setting] = run_method(name, make_model(), splits, dry, device, runs)
        return pruned_at[setting][1]

    def ratio_of(model: nn.Module) -> float | None:
        if reference is not None:
            return _measured_beside(reference, model, splits).get("ratio")
        return _measured_with_baseline(model, make_model, splits).get("measured_latency_ratio")

    r, lowest = cfg.target_latency, _lowest_setting(make_model, splits, cfg, name, device)
    goal = r if reference is None else 1.0  # the reference's own time
    setting, tries = matching.match(prune_at, ratio_of, goal, start=max(r, lowest), lowest=lowest)
    log(
        f"seed {cfg.seed} {name}: setting {setting:.4f} measures nearest {goal} of the "
        f"{_beside_name(reference)} model's latency ({len(tries)} tries)"
    )
    at, runs = _at_setting(cfg, name, setting), _scaled_budgets(smoea_run, setting, cfg)
    kept = at.finetune.epochs == 0  # else fine-tuning between groups changes what is cut
    if kept:
        n_groups = schedule_groups(make_model(), splits, cfg)
        dry_record, model = pruned_at[setting]
        result, pruned = finish_pruned(model, dry_record, splits, at, device, n_groups, teacher)
    else:
        result, pruned = run_method(name, make_model(), splits, at, device, runs, teacher)
    result["latency_match"] = {
        "setting": setting,
        "tries": tries,
        "beside": _beside_name(reference),
        "pruned_again": not kept,
    }
    return result, pruned


def _lowest_setting(make_model, splits: Splits, cfg: PruneConfig, name: str, device) -> float:
    """The smallest setting the method can be given: every layer at its minimum width (a
    measured miss must not push a method's target below what it can reach)."""
    model = make_model().to(device).eval()
    s = Structure(model, torch.zeros(1, *splits.image_shape, device=device))
    floors = np.array(minimum_units(s.units_per_layer, cfg.min_keep))
    if name in HALP_STEPPED:  # the stem whole
        stem = stem_layer(s)
        floors[stem] = s.units_per_layer[stem]
    measure = "macs" if name in LATENCY_ONLY else "latency"
    lowest = s.count(floors, measure)[0] / s.count(s.units_per_layer, measure)[0]
    return float(lowest) * 1.001  # counted the same way as the method's own check


def _at_setting(cfg: PruneConfig, name: str, setting: float) -> PruneConfig:
    """The method's config at `setting`: smoea-macs's MAC target, else its latency target."""
    if name in LATENCY_ONLY:
        return replace(cfg, target_latency=None, target_macs=setting, latency_refit=False)
    return replace(cfg, target_latency=setting)


def _scaled_budgets(smoea_run: dict | None, setting: float, cfg: PruneConfig) -> dict | None:
    """SMOEA's run with its group budgets scaled to `setting` (a -progressive method follows
    them: the same plan, brought to its own measured latency)."""
    if not smoea_run or not smoea_run.get("group_budgets"):
        return smoea_run
    scale = setting / cfg.target_latency
    return {**smoea_run, "group_budgets": [min(1.0, b * scale) for b in smoea_run["group_budgets"]]}


def _settings(cfg: PruneConfig) -> dict:
    """A run's settings as its record keeps them (JSON types, the effort rule that runs)."""
    settings = json.loads(json.dumps(cfg.as_dict()))
    settings["effort"] = cfg.effort_rule  # the rules that run, "auto" resolved
    settings["budget"] = cfg.budget_rule
    return settings


def _same_settings(saved: dict, current: dict) -> bool:
    """The saved run's settings equal these; keys added to the config since then must still
    hold their defaults (an older run is reused only if nothing it did would differ). Settings
    that had no effect (distillation's, with distillation off) are not compared."""
    saved, current = _in_effect(saved), _in_effect(current)
    defaults = _in_effect(json.loads(json.dumps(PruneConfig().as_dict())))
    defaults.update(SETTINGS_BEFORE_THEIR_FLAG)
    for key, value in current.items():
        if key in saved:
            if saved[key] != value:
                return False
        elif value != defaults.get(key):
            return False
    return True


# what a run recorded before a setting existed did: every group searched pop x generations
SETTINGS_BEFORE_THEIR_FLAG = {"effort": "fixed", "scoring": "sliced"}


def _in_effect(settings: dict) -> dict:
    """The settings that change what a run does (distillation's only with distillation on,
    the evaluation total only with effort "plan")."""
    drop = set()
    if not settings.get("distill"):
        drop |= {k for k in settings if k.startswith("distill_")}
    if settings.get("effort", SETTINGS_BEFORE_THEIR_FLAG["effort"]) != "plan":
        drop.add("evaluations")
    return {k: v for k, v in settings.items() if k not in drop}


def _short(result: dict) -> str:
    if "failed" in result:
        return f"failed: {result['failed']}"
    return f"test {result['test_accuracy']:.4f}, params {result['params']:,}"


# rounds a method's model and its baseline are measured in: at 9, the same resnet20 model
# measured 0.794 then 0.775 of its baseline at batch 1, as much as the 3% methods are held to
MEASURE_ROUNDS = 3 * latency.ROUNDS


def _measured_with_baseline(pruned: nn.Module, make_model, splits: Splits) -> dict:
    """With a latency table active: the pruned model and a fresh baseline measured together
    as deployed at the table's batch (the machine's drift cancels in their ratio; methods run
    minutes or hours apart), the ratio averaged over latency.REPEATS measurements; nothing
    where every measurement was too noisy to keep."""
    table = latency.current()
    if table is None:
        return {}
    baseline = make_model()
    m = _measured_beside(baseline, pruned, splits)
    if m.get("ratio") is None:  # too noisy: the run stands, its measurement is missing
        return {"measured_latency": None, "measured_latency_ratio": None}
    return {
        "measured_latency": m["ms"],
        "measured_baseline_latency": m["baseline_ms"],
        "measured_latency_ratio": m["ratio"],
        "measured_latency_ratios": m["ratios"],
        "measured_latency_spread": m["spread"],
    }


def _measured_beside(other: nn.Module, pruned: nn.Module, splits: Splits) -> dict:
    """latency.time_ratio of `pruned` to `other` (a baseline, or the seed's SMOEA model),
    measured together as deployed at the table's batch; {"ratio": None} where every
    measurement was too noisy to keep."""
    device = next(pruned.parameters()).device
    batch = latency.current().key["batch"]
    try:
        return latency.time_ratio(
            other.to(device), pruned, splits.image_shape, batch, device, MEASURE_ROUNDS
        )
    except SmoeaError:
        return {"ratio": None}
