"""The paper's comparison: every method prunes one baseline to the same parameter (or MAC) count."""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from smoea import distributed, latency, matching
from smoea.allocations import halp, ratio_search, sensitivity
from smoea.baselines import (
    CRITERIA,
    RANKINGS,
    RAW,
    criterion_at_counts,
    criterion_progressive,
    criterion_prune,
    whole_model_nsga2,
)
from smoea.checkpoint import load_model_file
from smoea.data import Splits, outside_subset
from smoea.errors import SmoeaError
from smoea.pipeline import PruneConfig, prune
from smoea.report import model_figures, versions
from smoea.structure import Structure, minimum_units, plan_groups
from smoea.train import TrainConfig, train, what_ran

METHODS = ("smoea", *CRITERIA, "whole-nsga2")
AT_SMOEA = tuple(f"{c}-at-smoea" for c in CRITERIA)  # SMOEA's per-layer counts, given filters
PROGRESSIVE = tuple(f"{c}-progressive" for c in CRITERIA)  # SMOEA's group budgets and schedule
ADAPTIVE = ("lamp", *(f"{c}-global-raw" for c in RAW), "sensitivity", "ratio-search", "halp")
# SMOEA with a MAC target, the MAC ratio found so that it measures at the latency target
LATENCY_ONLY = ("smoea-macs",)
# at a latency target, the seed's SMOEA model is what the other methods are matched beside
# (measured in the same rounds as theirs: the machine's drift between runs cancels, and equal
# latency means equal when measured together); `--latency-match baseline`: each beside a
# fresh baseline, the way runs before 2026-12-04 were matched
REFERENCE = "smoea"
MATCH_BESIDE = (REFERENCE, "baseline")
VARIANTS = (
    "smoea",
    *LATENCY_ONLY,
    *AT_SMOEA,
    *PROGRESSIVE,
    *(f"{c}-{r}" for c in CRITERIA for r in RANKINGS),
    *ADAPTIVE,
    "whole-nsga2",
)


def parse_methods(text: str) -> list[str]:
    """Method variants to run, in a fixed order (smoea first: whole-nsga2 takes its budget).

    A criterion name alone (`l1`) means both its uniform and its global variant.
    """
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS and m not in VARIANTS]
    if unknown or not names:
        raise SmoeaError(
            f"unknown method {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(METHODS)}, {', '.join(ADAPTIVE[:1] + ADAPTIVE[-3:] + LATENCY_ONLY)} "
            "(a criterion may carry -uniform, -global, -global-raw, -at-smoea or -progressive)"
        )
    chosen = set()
    for name in names:
        chosen |= {f"{name}-{r}" for r in RANKINGS} if name in CRITERIA else {name}
    return [v for v in VARIANTS if v in chosen]


def check_methods(variants: list[str], config: PruneConfig) -> None:
    """Methods that need a setting the comparison lacks are refused before anything runs."""
    if config.target_latency is None and set(variants) & set(LATENCY_ONLY):
        raise SmoeaError(
            "smoea-macs needs --target-latency: it is SMOEA with the MAC target that measures "
            "at that latency"
        )


def finetune_schedule(config: PruneConfig, n_groups: int) -> list[tuple[int, TrainConfig]]:
    """SMOEA's fine-tuning steps as (step, config): one after each group but the last, then the
    final one. The step numbers seed the data order, so every method sees the same batches."""
    steps = [(g + 1, config.finetune) for g in range(n_groups - 1)]
    steps.append((n_groups + 1, config.final))
    return [(step, tc) for step, tc in steps if tc.epochs > 0]


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
    reuses it, so a long comparison can be stopped and continued; with `save_model` too, each
    run's pruned model goes beside its record (out/runs/<method>-seed<k>.pt). Test figures are
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
    with latency.active(_latency_table(make_model, splits, config, device, log)):
        for seed in seeds:
            cfg, reference = replace(config, seed=seed), None
            for name in variants:
                result, pruned = _cached_run(
                    name,
                    seed,
                    out,
                    make_model,
                    splits,
                    cfg,
                    device,
                    runs,
                    log,
                    save_model,
                    reference,
                )
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
    return {**model_figures(baseline, splits, device), **_latency_figures(baseline, splits, config)}


def _cached_run(
    name, seed, out, make_model, splits, cfg, device, runs, log, save_model, reference
) -> tuple[dict, nn.Module | None]:
    """The run's record and pruned model (None for a reused run); `reference`: the model to
    match beside (see compare)."""
    path = _run_path(out, name, seed)
    settings = _settings(cfg)
    if path is not None and path.exists():
        return _reused_run(path, name, settings, cfg, reference, log), None
    smoea_run = next((r for r in runs.get("smoea", []) if r["seed"] == seed), None)
    pruned = None
    try:
        teacher = make_model() if cfg.distill else None  # the unpruned baseline teaches
        result, pruned = _run_matched(
            name, make_model, splits, cfg, device, smoea_run, teacher, log, reference
        )
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


def _reused_run(path: Path, name: str, settings: dict, cfg, reference, log) -> dict:
    """A finished run's record, if it ran with these settings and was matched the same way."""
    saved = json.loads(path.read_text())
    if not _same_settings(saved.get("config") or {}, settings):
        raise SmoeaError(f"{path} was run with other settings; use another --out or --force")
    if _matched(cfg, name) and "failed" not in saved:
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


def _run_matched(name, make_model, splits, cfg, device, smoea_run, teacher, log, reference):
    """run_method; at a latency target, at the setting (the method's predicted latency target,
    or smoea-macs's MAC target) whose pruning, without fine-tuning, measures within
    matching.MATCH_TOLERANCE of the target (or, with a `reference` model, of the reference's
    time, measured together): methods are compared at the same measured latency,
    not at the same prediction of an imperfect latency model. The -at-smoea methods keep
    SMOEA's counts, so its latency. Exact with fine-tuning only after the last group (the
    default); fine-tuning between groups can change what later groups cut."""
    if not _matched(cfg, name):
        return run_method(name, make_model(), splits, cfg, device, smoea_run, teacher)

    def prune_at(setting: float) -> nn.Module:
        at = _at_setting(cfg, name, setting)
        dry = replace(
            at, finetune=replace(at.finetune, epochs=0), final=replace(at.final, epochs=0)
        )
        with _pruning_only():
            runs = _scaled_budgets(smoea_run, setting, cfg)
            return run_method(name, make_model(), splits, dry, device, runs)[1]

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
    result, pruned = run_method(name, make_model(), splits, at, device, runs, teacher)
    result["latency_match"] = {
        "setting": setting,
        "tries": tries,
        "beside": _beside_name(reference),
    }
    return result, pruned


def _lowest_setting(make_model, splits: Splits, cfg: PruneConfig, name: str, device) -> float:
    """The smallest setting the method can be given: every layer at its minimum width (a
    measured miss must not push a method's target below what it can reach)."""
    model = make_model().to(device).eval()
    s = Structure(model, torch.zeros(1, *splits.image_shape, device=device))
    floors = np.array(minimum_units(s.units_per_layer, cfg.min_keep))
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


# inside _pruning_only(): a method's run is measured for its latency alone (no accuracy)
_PRUNING_ONLY = contextvars.ContextVar("pruning_only", default=False)


@contextlib.contextmanager
def _pruning_only():
    token = _PRUNING_ONLY.set(True)
    try:
        yield
    finally:
        _PRUNING_ONLY.reset(token)


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


def run_method(
    name: str,
    model: nn.Module,
    splits: Splits,
    cfg: PruneConfig,
    device: torch.device,
    smoea_run: dict | None = None,
    teacher: nn.Module | None = None,
) -> tuple[dict, nn.Module]:
    """Prune a fresh copy of the baseline with one method variant, fine-tune, measure; returns
    the figures and the pruned model. With `cfg.distill`, `teacher` (the unpruned baseline)
    teaches every method's fine-tuning."""
    model.to(device).eval()
    if name in ("smoea", *LATENCY_ONLY):
        return _run_smoea(model, splits, cfg, device, teacher)
    distill = cfg.distillation(teacher)
    s = Structure(model, torch.zeros(1, *splits.image_shape, device=device))
    n_groups = len(plan_groups(s, cfg.groups))  # the groups SMOEA would use: its schedule
    if name in ("whole-nsga2", "ratio-search"):
        budget = smoea_run["evaluations"] if smoea_run and "evaluations" in smoea_run else None
        budget = budget or cfg.pop_size * (cfg.generations + 1) * n_groups
        if name == "whole-nsga2":
            model, info = whole_model_nsga2(model, splits, cfg, budget)
        else:
            info = ratio_search(model, splits, cfg, budget)
        info["evaluation_budget"] = budget
        return _tune_and_measure(model, splits, cfg, device, n_groups, info, distill)
    if name in PROGRESSIVE:
        return _run_progressive(name, model, s, splits, cfg, device, smoea_run, distill)
    if name in ("sensitivity", "halp"):
        info = (sensitivity if name == "sensitivity" else halp)(model, splits, cfg)
        return _tune_and_measure(model, splits, cfg, device, n_groups, info, distill)
    if name in AT_SMOEA:
        if not smoea_run or "filters_after" not in smoea_run:
            raise SmoeaError(f"{name} needs a finished smoea run of the same seed; add smoea")
        criterion = name.removesuffix("-at-smoea")
        info = criterion_at_counts(model, criterion, smoea_run["filters_after"], splits, cfg.seed)
        info["evaluations"] = 0
        return _tune_and_measure(model, splits, cfg, device, n_groups, info, distill)
    criterion, ranking = _criterion_and_ranking(name)
    info = criterion_prune(
        model, criterion, ranking, cfg.target, splits, cfg.min_keep, cfg.seed, cfg.measure
    )
    info["evaluations"] = 0
    return _tune_and_measure(model, splits, cfg, device, n_groups, info, distill)


def _criterion_and_ranking(name: str) -> tuple[str, str]:
    """`l1-uniform` -> (l1, uniform); `l1-global-raw` -> (l1, global-raw); `lamp` -> global."""
    if name == "lamp":
        return "lamp", "global"
    if name.endswith("-global-raw"):
        return name.removesuffix("-global-raw"), "global-raw"
    criterion, ranking = name.rsplit("-", 1)
    return criterion, ranking


def _run_progressive(name, model, s, splits, cfg, device, smoea_run, distill):
    """The criterion group by group to SMOEA's group budgets, fine-tuned between groups with
    SMOEA's steps (the same data-order seeds)."""
    if not smoea_run or not smoea_run.get("group_budgets"):
        raise SmoeaError(f"{name} needs a finished smoea run of the same seed; add smoea")
    groups = plan_groups(s, cfg.groups)
    schedule = finetune_schedule(cfg, len(groups))
    steps = dict(schedule)

    ran = []

    def after_group(g: int) -> None:
        step = g + 1 if g < len(groups) - 1 else len(groups) + 1
        if step in steps:
            tc = steps[step]
            ran.append(_finetune_step(model, splits, tc, device, cfg, step, distill))

    start = time.perf_counter()
    criterion = name.removesuffix("-progressive")
    info = criterion_progressive(
        model, criterion, groups, smoea_run["group_budgets"], splits, cfg, after_group
    )
    info["evaluations"] = 0
    info["finetune_ran"] = ran
    tuned = time.perf_counter() - start - info["seconds"]
    return _measure_tuned(model, splits, cfg, device, schedule, tuned, info)


def _run_smoea(model, splits, cfg, device, teacher):
    model, report = prune(
        model,
        splits.train,
        splits.val,
        replace(cfg, latency_refit=False),  # _run_matched brings every method to the target
        device,
        splits.mean,
        splits.std,
        log=lambda m: None,
        teacher=teacher,
    )
    steps = [g["finetune"] for g in report["groups"] if "finetune" in g]
    steps += [report["final_finetune"]] if "final_finetune" in report else []
    tuned = [t["seconds"] for t in steps]
    schedule = finetune_schedule(cfg, len(report["groups"]))
    return _measure(
        model,
        splits,
        cfg,
        device,
        {
            "search_seconds": report["search_seconds"],
            "evaluations": sum(g["evaluations"] for g in report["groups"]),
            "finetune_seconds": sum(tuned),
            "finetune_schedule": _schedule_record(schedule),
            "finetune_ran": [t["ran"] for t in steps],
            "filters_after": report["filters_after"],
            "group_budgets": [g["budget"] for g in report["groups"]],
            # where the search time went: seconds, evaluations and the effort rule per group
            "group_search": [
                {k: g.get(k) for k in ("seconds", "evaluations", "effort")}
                for g in report["groups"]
            ],
        },
    )


def _tune_and_measure(model, splits, cfg, device, n_groups: int, info: dict, distill):
    """Fine-tune with SMOEA's schedule, back to back with the same seeds, then measure."""
    schedule = finetune_schedule(cfg, n_groups)
    start = time.perf_counter()
    info["finetune_ran"] = [
        _finetune_step(model, splits, tc, device, cfg, step, distill) for step, tc in schedule
    ]
    tuned = time.perf_counter() - start
    return _measure_tuned(model, splits, cfg, device, schedule, tuned, info)


def _finetune_step(model, splits, tc: TrainConfig, device, cfg, step: int, distill) -> dict:
    """One fine-tuning step of the schedule; returns what it actually ran."""
    seed, desc = cfg.seed * 1000 + step, f"fine-tune step {step}"
    history = train(model, splits, tc, device, seed, desc=desc, distill=distill)
    return {"step": step, **what_ran(history)}


def _measure_tuned(model, splits, cfg, device, schedule, tuned: float, info: dict):
    example = torch.zeros(1, *splits.image_shape, device=device)
    return _measure(
        model,
        splits,
        cfg,
        device,
        {
            "search_seconds": info.get("seconds", 0.0),
            "evaluations": info["evaluations"],
            "finetune_seconds": tuned,
            "finetune_schedule": _schedule_record(schedule),
            "finetune_ran": info.pop("finetune_ran"),
            "filters_after": Structure(model, example).units_per_layer.tolist(),
            "method_info": info,
        },
    )


def _schedule_record(schedule: list[tuple[int, TrainConfig]]) -> list[dict]:
    return [{"step": step, **tc.as_dict()} for step, tc in schedule]


def _measure(model, splits, cfg, device, extra: dict) -> tuple[dict, nn.Module]:
    """Accuracies after pruning and fine-tuning (validation outside SMOEA's search set is the
    fair one between methods) and sizes; returned with the model. Inside _pruning_only(),
    only the model (no accuracy is measured: nothing is chosen by it)."""
    if _PRUNING_ONLY.get():
        return extra, model
    held_out = outside_subset(splits.val, cfg.search_size, cfg.seed)
    figures = model_figures(model, splits, device, held_out)
    return {**figures, **_latency_figures(model, splits, cfg), **extra}, model


def _latency_figures(model: nn.Module, splits: Splits, cfg: PruneConfig) -> dict:
    """With a latency table active: the model's predicted latency ("latency", ms, the size the
    methods are brought to)."""
    table = latency.current()
    if table is None:
        return {}
    device = next(model.parameters()).device
    s = Structure(model, torch.zeros(1, *splits.image_shape, device=device))
    return {"latency": float(s.count(s.units_per_layer, "latency")[0])}


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


SUMMED = (
    "params",
    "macs",
    "latency",
    "measured_latency",
    "measured_latency_ratio",
    "search_seconds",
    "evaluations",
    "finetune_seconds",
)


def summarize(runs: dict[str, list[dict]], baseline: dict, config: PruneConfig) -> dict:
    """Mean and spread over seeds per method, and whether all sizes agree within 1%."""
    methods = {}
    for name, results in runs.items():
        ok = [r for r in results if "failed" not in r]
        if not ok:
            methods[name] = {"failed": results[0]["failed"], "runs": results}
            continue
        acc = np.array([r["test_accuracy"] for r in ok])
        val = np.array([r["val_accuracy"] for r in ok])
        methods[name] = {
            "test_accuracy_mean": float(acc.mean()),
            "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "val_accuracy_mean": float(val.mean()),
            "held_out_val_accuracy_mean": _mean_of(ok, "held_out_val_accuracy"),
            "drop": float(baseline["test_accuracy"] - acc.mean()),
            **{k: _mean_of(ok, k) for k in SUMMED if all(k in r for r in ok)},
            "measured_latency_ratio_std": _std_of(ok, "measured_latency_ratio"),
            "measured_latency_repeat_std": _repeat_std(ok),
            **_beside_figures(ok),
            "seeds": [r["seed"] for r in ok],
            "failed_seeds": [r["seed"] for r in results if "failed" in r],
            "runs": results,
        }
    return {
        "baseline": baseline,
        "target_params": config.target_params,
        "target_macs": config.target_macs,
        "target_latency": config.target_latency,
        "measure": config.measure,
        "config": config.as_dict(),
        "methods": methods,
        **_sizes_agree(runs, methods, config),
    }


def _sizes_agree(runs: dict[str, list[dict]], methods: dict, config: PruneConfig) -> dict:
    """Whether every method reached the same size: its count within 1% of each other's, or at a
    latency target every run measured within matching.MATCH_TOLERANCE of it."""
    if config.measure == "latency":
        ok = [r for rs in runs.values() for r in rs if "failed" not in r]
        beside = [r["measured_beside_smoea"].get("ratio") for r in ok if _beside(r)]
        alone = [r.get("measured_latency_ratio") for r in ok if not _beside(r)]
        agrees = (bool(beside) or bool(alone)) and all(
            matching.within_tolerance(ratios, goal)
            for ratios, goal in ((beside, 1.0), (alone, config.target_latency))
            if ratios
        )
        return {"measured_latency_agrees": agrees}
    sizes = [m[config.measure] for m in methods.values() if config.measure in m]
    return {f"{config.measure}_within_1pct": bool(sizes) and max(sizes) <= 1.01 * min(sizes)}


def _beside(run: dict) -> bool:
    return "measured_beside_smoea" in run


def _beside_figures(runs: list[dict]) -> dict:
    """The runs' time as a ratio to their seed's SMOEA model measured together (mean and std
    over seeds), where every run was matched beside it."""
    ratios = [r["measured_beside_smoea"].get("ratio") for r in runs if _beside(r)]
    if not ratios or len(ratios) < len(runs) or None in ratios:
        return {}
    std = float(np.std(ratios, ddof=1)) if len(ratios) > 1 else None
    return {"measured_beside_smoea_ratio": float(np.mean(ratios)), "beside_smoea_std": std}


def _std_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return float(np.std(values, ddof=1)) if len(values) == len(runs) > 1 else None


def _repeat_std(runs: list[dict]) -> float | None:
    """How far one measurement of a run's latency ratio strays: the std over its repeated
    measurements, averaged over runs (None for records with fewer than two)."""
    stds = [
        np.std(r["measured_latency_ratios"], ddof=1)
        for r in runs
        if len(r.get("measured_latency_ratios") or []) > 1
    ]
    return float(np.mean(stds)) if stds else None


def _mean_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return float(np.mean(values)) if len(values) == len(runs) else None


def write_table(result: dict) -> str:
    """compare.md: one row per method."""
    b = result["baseline"]
    lines = [
        f"Baseline: test accuracy {100 * b['test_accuracy']:.2f}%, params {b['params']:,}, "
        f"MACs {b['macs']:,}. Target: {_target_text(result)}.",
        "",
        "| method | seeds | test acc. % (mean ± std) | drop (points) | held-out val. % | params | "
        "MACs | MACs ratio | search s | evaluations | fine-tune s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["methods"].items():
        if "failed" in m:
            lines.append(f"| {name} | | failed: {m['failed']} | | | | | | | | |")
            continue
        h = m.get("held_out_val_accuracy_mean")
        held = "" if h is None else f"{100 * h:.2f}"
        lines.append(
            f"| {name} | {len(m['seeds'])} | {100 * m['test_accuracy_mean']:.2f} ± "
            f"{100 * m['test_accuracy_std']:.2f} | {100 * m['drop']:.2f} | {held} | "
            f"{m['params']:,.0f} | {m['macs']:,.0f} | {m['macs'] / b['macs']:.4f} | "
            f"{m['search_seconds']:.0f} | {m['evaluations']:.0f} | {m['finetune_seconds']:.0f} |"
        )
    return "\n".join(lines + _latency_lines(result)) + "\n"


def _latency_lines(result: dict) -> list[str]:
    """With latency figures: each method's predicted latency (ms, the batch of the table) and
    its measured latency, as ms and as a ratio to a baseline measured with it (blank where a
    measurement was too noisy to keep), and how far one measurement of that ratio strays
    (blank for records measured once)."""
    b = result["baseline"]
    if "latency" not in b:
        return []
    lines = [
        "",
        f"Latency (ms, as deployed; baseline predicted {b['latency']:.2f}; each pruned model "
        "measured together with the baseline; setting: the target the method was given so that "
        "it measures at the comparison's, mean over seeds):",
        "",
        "| method | setting | predicted ms | measured ms | measured ratio to the baseline "
        "(mean ± std over seeds) | std of one measurement | ratio to the seed's smoea model, "
        "measured together |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in result["methods"].items():
        if "latency" in m:
            ratio, spread = m.get("measured_latency_ratio"), m.get("measured_latency_ratio_std")
            ratio = "" if ratio is None else f"{ratio:.4f}"
            ratio += "" if spread is None or not ratio else f" ± {spread:.4f}"
            repeat = m.get("measured_latency_repeat_std")
            lines.append(
                f"| {name} | {_setting(m)} | {m['latency']:.2f} | "
                f"{_ms(m.get('measured_latency'))} | {ratio} | "
                f"{'' if repeat is None else f'{repeat:.4f}'} | {_beside_text(m)} |"
            )
    if "measured_latency_agrees" in result:
        agrees = "yes" if result["measured_latency_agrees"] else "no"
        lines += [
            "",
            f"Every run measured within {matching.MATCH_TOLERANCE:.0%} of the target: {agrees} "
            "(a run matched beside its seed's smoea model: of that model's time, measured "
            "together).",
        ]
    return lines


def _beside_text(m: dict) -> str:
    ratio, std = m.get("measured_beside_smoea_ratio"), m.get("beside_smoea_std")
    if ratio is None:
        return ""
    return f"{ratio:.4f}" + ("" if std is None else f" ± {std:.4f}")


def _setting(m: dict) -> str:
    """The mean matched setting over seeds (a MAC ratio for smoea-macs), blank if none."""
    found = [r["latency_match"]["setting"] for r in m["runs"] if "latency_match" in r]
    return f"{np.mean(found):.4f}" if found else ""


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _target_text(result: dict) -> str:
    if result.get("measure") == "latency":
        return f"{result['target_latency']} of the latency (measured)"
    if result.get("measure") == "macs":
        return f"{result['target_macs']} of the MACs"
    return f"{result['target_params']} of the parameters"


def plot_compare(result: dict, path: Path) -> None:
    """Test accuracy against MACs and against parameters (two panels), one marker per method,
    the spread over seeds as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, size in zip(axes, ("macs", "params")):
        for name, m in result["methods"].items():
            if "failed" in m:
                continue
            smoea = name == "smoea"
            ax.errorbar(
                m[size],
                100 * m["test_accuracy_mean"],
                yerr=100 * m["test_accuracy_std"],
                fmt="*" if smoea else "o",
                markersize=12 if smoea else 6,
                capsize=3,
                label=name,
            )
        ax.set_xlabel("MACs" if size == "macs" else "parameters")
    axes[0].set_ylabel("test accuracy (%)")
    base = result["baseline"]["test_accuracy"]
    fig.suptitle(f"pruned to {_target_text(result)} (baseline {base:.2%})")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
