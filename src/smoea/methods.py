"""One method's run: prune a fresh copy of the baseline, fine-tune on SMOEA's schedule, measure."""

from __future__ import annotations

import contextlib
import contextvars
import time
from dataclasses import replace

import torch
import torch.nn as nn

from smoea import latency
from smoea.allocations import ratio_search, sensitivity
from smoea.baselines import (
    CRITERIA,
    RANKINGS,
    RAW,
    criterion_at_counts,
    criterion_progressive,
    criterion_prune,
    whole_model_nsga2,
)
from smoea.data import Splits, outside_subset
from smoea.errors import SmoeaError
from smoea.halp import HALP_STEPS, halp, halp_steps
from smoea.pipeline import prune
from smoea.prune_config import PruneConfig
from smoea.report import model_figures
from smoea.structure import Structure, plan_groups
from smoea.train import TrainConfig, train, what_ran

METHODS = ("smoea", *CRITERIA, "whole-nsga2")
AT_SMOEA = tuple(f"{c}-at-smoea" for c in CRITERIA)  # SMOEA's per-layer counts, given filters
PROGRESSIVE = tuple(f"{c}-progressive" for c in CRITERIA)  # SMOEA's group budgets and schedule
# the knapsack halp with each importance (L1 over its layer's mean, or HALP's Taylor)
HALP_IMPORTANCE = {"halp": "l1", "halp-taylor": "taylor"}
# HALP as its code runs it (Taylor, the stem whole), in steps: its schedule, and one (ablation)
HALP_STEPPED = {"halp-steps": HALP_STEPS, "halp-stem": 1}
ADAPTIVE = (
    "lamp",
    *(f"{c}-global-raw" for c in RAW),
    "sensitivity",
    "ratio-search",
    *HALP_IMPORTANCE,
    *HALP_STEPPED,
)
# SMOEA with a MAC target, the MAC ratio found so that it measures at the latency target
LATENCY_ONLY = ("smoea-macs",)
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
            f"{', '.join(METHODS)}, {', '.join(ADAPTIVE[:1] + ADAPTIVE[-6:] + LATENCY_ONLY)} "
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


# inside pruning_only(): a method's run is measured for its latency alone (no accuracy)
_PRUNING_ONLY = contextvars.ContextVar("pruning_only", default=False)


@contextlib.contextmanager
def pruning_only():
    token = _PRUNING_ONLY.set(True)
    try:
        yield
    finally:
        _PRUNING_ONLY.reset(token)


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
    if name in ("sensitivity", *HALP_IMPORTANCE, *HALP_STEPPED):
        info = _allocate(name, model, splits, cfg)
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


def schedule_groups(model: nn.Module, splits: Splits, cfg: PruneConfig) -> int:
    """How many groups SMOEA would prune `model` (unpruned) in: its fine-tuning schedule."""
    device = next(model.parameters()).device
    s = Structure(model, torch.zeros(1, *splits.image_shape, device=device))
    return len(plan_groups(s, cfg.groups))


def finish_pruned(
    model: nn.Module,
    dry_record: dict,
    splits: Splits,
    cfg: PruneConfig,
    device: torch.device,
    n_groups: int,
    teacher: nn.Module | None = None,
) -> tuple[dict, nn.Module]:
    """Fine-tune and measure a model that run_method pruned inside pruning_only() with no
    fine-tuning (`dry_record`, its record): the run run_method makes with `cfg`, without
    pruning again, where `cfg` fine-tunes only after the last group (between groups it
    would change what later groups cut). The fine-tuning's seeds are the schedule's, so the
    weights are those a fresh run gets; the BatchNorm statistics it starts from are the
    pruning's last re-estimate, which fine-tuning's running averages soon replace."""
    if cfg.finetune.epochs > 0:
        raise ValueError("finish_pruned: fine-tuning between groups needs the run itself")
    model.to(device).eval()
    schedule = finetune_schedule(cfg, n_groups)
    distill = cfg.distillation(teacher)
    ran, tuned = _finetune_all(model, splits, cfg, device, schedule, distill)
    extra = {
        **dry_record,
        "finetune_seconds": tuned,
        "finetune_schedule": _schedule_record(schedule),
        "finetune_ran": ran,
    }
    return _measure(model.eval(), splits, cfg, device, extra)


def _allocate(name: str, model: nn.Module, splits: Splits, cfg: PruneConfig) -> dict:
    """Prune `model` in place by a method that scores no group search: sensitivity or a HALP."""
    if name in HALP_IMPORTANCE:
        return halp(model, splits, cfg, HALP_IMPORTANCE[name])
    if name in HALP_STEPPED:
        return halp_steps(model, splits, cfg, HALP_STEPPED[name])
    return sensitivity(model, splits, cfg)


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
    info["finetune_ran"], tuned = _finetune_all(model, splits, cfg, device, schedule, distill)
    return _measure_tuned(model, splits, cfg, device, schedule, tuned, info)


def _finetune_all(model, splits, cfg, device, schedule, distill) -> tuple[list[dict], float]:
    """Every fine-tuning step of `schedule`, back to back; what each ran, and the seconds."""
    start = time.perf_counter()
    ran = [_finetune_step(model, splits, tc, device, cfg, step, distill) for step, tc in schedule]
    return ran, time.perf_counter() - start


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
    fair one between methods) and sizes; returned with the model. Inside pruning_only(),
    only the model (no accuracy is measured: nothing is chosen by it)."""
    if _PRUNING_ONLY.get():
        return extra, model
    held_out = outside_subset(splits.val, cfg.search_size, cfg.seed)
    figures = model_figures(model, splits, device, held_out)
    return {**figures, **latency_figures(model, splits, cfg), **extra}, model


def latency_figures(model: nn.Module, splits: Splits, cfg: PruneConfig) -> dict:
    """With a latency table active: the model's predicted latency ("latency", ms, the size the
    methods are brought to)."""
    table = latency.current()
    if table is None:
        return {}
    device = next(model.parameters()).device
    s = Structure(model, torch.zeros(1, *splits.image_shape, device=device))
    return {"latency": float(s.count(s.units_per_layer, "latency")[0])}
