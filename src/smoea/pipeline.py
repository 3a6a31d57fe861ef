"""The progressive SMOEA loop: search each group on its sub-network, remove, fine-tune, report."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import torch
import torch.nn as nn

from smoea import interrupt
from smoea.budget import Planner
from smoea.data import (
    Splits,
    StreamData,
    TensorData,
    calibration_set,
    channel_stats,
    draw_subset,
    normalize,
)
from smoea.errors import SmoeaError
from smoea.evaluator import ScoredEvaluator, recalibrate
from smoea.loop import UserLoop, chunks, evaluate_batches, take, train_batches
from smoea.prune_config import MIN_SEARCH_GENERATIONS, MIN_SEARCH_SHARE, PruneConfig
from smoea.refit import LatencyRefit
from smoea.search import (
    Genome,
    GroupProblem,
    SearchResult,
    make_evaluator,
    run_nsga2,
)
from smoea.select import choose, fit_to_budget
from smoea.structure import (
    Structure,
    allowed_counts,
    minimum_units,
    plan_groups,
)
from smoea.train import (
    TrainConfig,
    evaluate,
    train,
    what_ran,
)


def prune(
    model: nn.Module,
    train_data,
    val_data,
    config: PruneConfig | None = None,
    device: torch.device | str | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    log: Callable[[str], None] = print,
    on_group_done: Callable[[nn.Module, dict], None] | None = None,
    resume_report: dict | None = None,
    teacher: nn.Module | None = None,
    *,
    search=None,
    score: Callable | None = None,
    higher_is_better: bool = False,
    finetune: Callable[[nn.Module, int], None] | None = None,
) -> tuple[nn.Module, dict]:
    """Prune `model` in place with SMOEA; returns it and the report.

    Works for any CNN that Torch-Pruning can trace. Data are either uint8 images (TensorData,
    N x C x H x W; the search set is drawn from `val_data`), or your own data loaders: any
    iterables of `(images, labels)` batches, already transformed and normalised, for training,
    validation and (optionally) `search`. `score(model, batches) -> float` replaces the error
    as f1 (lower is better unless `higher_is_better`); the candidate then runs as the whole
    model with its channels zeroed. `finetune(model, step)` replaces the built-in fine-tuning.
    No test data enters: report test figures afterwards.

    With `config.distill`, `teacher` (default: a frozen copy of `model` as given, which a
    resumed run cannot take: pass the unpruned model) teaches every fine-tuning.
    `on_group_done(model, report)` runs after every completed group (to save state); passing a
    saved report as `resume_report` (with the model saved beside it) continues after its last
    completed group.
    """
    config = config or PruneConfig()
    config.validate()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    loop = UserLoop(train_data, val_data, search, score, higher_is_better, finetune)
    own_loop = not isinstance(val_data, (TensorData, StreamData))
    # channels_last from the start: the same layout (and float order) whether a run is fresh or
    # resumed from a saved state, and the faster one for convolutions
    model.to(device).to(memory_format=torch.channels_last).eval()
    if config.distill and teacher is None:
        if resume_report is not None:
            raise SmoeaError("resuming a distilled prune needs the unpruned model as teacher")
        teacher = copy.deepcopy(model)
    distill = config.distillation(teacher)
    if own_loop:
        run = _LoopRun(model, loop, config, device, log, resume_report, distill)
    else:
        if mean is None or std is None:
            sample = (
                train_data
                if isinstance(train_data, TensorData)
                else draw_subset(train_data, 5000, 0)
            )
            mean, std = channel_stats(sample.x)
        splits = Splits(train_data, val_data, None, [], mean, std)
        run = _Run(model, splits, config, device, log, resume_report, distill, loop)
    if distill is not None:
        _check_teacher(distill.teacher, model, run.example, device)
    return run.execute(on_group_done)


def _check_teacher(teacher: nn.Module, model: nn.Module, example: torch.Tensor, device) -> None:
    """The teacher must give as many class scores as the model."""
    teacher.to(device).eval()
    with torch.inference_mode():
        got, want = teacher(example).shape[-1], model(example).shape[-1]
    if got != want:
        raise SmoeaError(f"the teacher gives {got} class scores, the model {want}")


class _Run:
    """State of one progressive run; each method is one step of the loop."""

    def __init__(self, model, splits: Splits, config, device, log, resume, distill, loop=None):
        self.model, self.splits, self.cfg = model, splits, config
        self.distill, self.loop = distill, loop or UserLoop()
        self.device, self.log = device, log
        self.example = torch.zeros(1, *splits.train.shape, device=device)
        first = None if resume is not None else Structure(model, self.example)
        self.elementwise = None if first is None else first.elementwise
        self.latency = self._latency_table(first, resume)
        # the unpruned model, to measure the pruned one against it together (the machine's
        # speed drifts between the start and the end of a run); a resumed run has only the
        # baseline's time measured at its start
        self.unpruned = None
        if config.target_latency is not None and resume is None:
            self.unpruned = copy.deepcopy(model)
        self.report = resume or self._plan(first)
        self.layer_names = self.report.get("layer_names")
        self.original = self.report["original"]
        self.groups = self.report["group_layers"]
        self.min_keep = self.report["min_keep"]
        self.search = draw_subset(splits.val, config.search_size, config.seed)
        self.calibration = calibration_set(splits.train, config.calibration_images, config.seed)
        self.planner = Planner(
            config,
            self.groups,
            self.min_keep,
            self.original,
            self._evaluator,
            self._genome,
            self._fraction,
            log,
        )

    def _plan(self, first: Structure) -> dict:
        """What stays fixed for the whole run: original counts, groups, per-layer minimums."""
        full = first.units_per_layer
        groups = plan_groups(first, self.cfg.groups)
        first.latency = self.latency
        measures = ("params", "macs") + (("latency",) if self.latency is not None else ())
        report = {
            "config": self.cfg.as_dict(),
            "objectives": self.cfg.objective_list(),
            "target_measure": self.cfg.measure,
            "budget_rule": self.cfg.budget_rule,
            "seed": self.cfg.seed,
            "original": {w: float(first.count(full, w)[0]) for w in measures},
            "filters_before": full.tolist(),
            "layer_names": [layer.name for layer in first.layers],
            "group_layers": groups,
            "min_keep": minimum_units(full, self.cfg.min_keep),
            "distill": self._distill_record(),
            "latency_table": None if self.latency is None else asdict(self.latency),
            "measured_baseline": self._measured_baseline(first),
            "groups": [],
        }
        self._check_target(first, report)
        return report

    def _distill_record(self) -> dict:
        """Whether distillation is on, its settings and the teacher's validation accuracy."""
        if self.distill is None:
            return {"on": False}
        teacher = evaluate(self.distill.teacher, self.splits.val, self.splits, self.device)
        return {
            "on": True,
            "temperature": self.distill.temperature,
            "weight": self.distill.weight,
            "teacher_val_accuracy": teacher["accuracy"],
        }

    def _check_target(self, s: Structure, report: dict) -> None:
        r, what = self.cfg.target, self.cfg.measure
        if r is None:
            return
        floor = s.count(np.array(report["min_keep"]), what)[0] / report["original"][what]
        if floor > r:
            raise SmoeaError(
                f"--target-{what} {r} is below {floor:.4f}, the smallest model the "
                f"per-layer minimum (--min-keep {self.cfg.min_keep}) allows"
            )

    def execute(self, on_group_done=None) -> tuple[nn.Module, dict]:
        start = time.perf_counter()
        for g in range(len(self.report["groups"]), len(self.groups)):
            self._stage(g, self.groups[g])
            if g < len(self.groups) - 1 and self.cfg.finetune.epochs > 0:
                tuned = self._finetune(self.cfg.finetune, f"fine-tune after group {g + 1}", g + 1)
                self.report["groups"][-1]["finetune"] = tuned
            elif g < len(self.groups) - 1 or self.cfg.final.epochs == 0:
                group = self.report["groups"][-1]
                removed = group["filters_after"] != group["filters_before"]
                group["norms_reestimated"] = self._reestimate_norms() if removed else 0
            if on_group_done is not None:
                on_group_done(self.model, self.report)
            interrupt.check()
        refit = self.cfg.target_latency is not None and self.cfg.latency_refit
        if refit and "latency_refit" not in self.report:
            self.report["latency_refit"] = self._refit_latency()
        if self.cfg.final.epochs > 0:
            tuned = self._finetune(self.cfg.final, "final fine-tune", len(self.groups) + 1)
            self.report["final_finetune"] = tuned
        s = self._structure()
        kept = s.units_per_layer
        plan_seconds = self._plan_total("seconds")
        self.report.update(
            filters_after=kept.tolist(),
            params_ratio=float(s.count(kept, "params")[0] / self.original["params"]),
            macs_ratio=float(s.count(kept, "macs")[0] / self.original["macs"]),
            **self._latency_ratio(s, kept),
            plan_seconds=plan_seconds,
            plan_evaluations=int(self._plan_total("evaluations")),
            search_seconds=sum(gr["seconds"] for gr in self.report["groups"]) + plan_seconds,
            total_seconds=time.perf_counter() - start,
        )
        r, what = self.cfg.target, self.cfg.measure
        refitted = len(self.report.get("latency_refit") or []) > 1
        if r is not None and self.report[f"{what}_ratio"] < r - 0.01 and not refitted:
            self.log(
                f"note: the model keeps {self.report[f'{what}_ratio']:.4f} of its {what}, "
                f"below {r - 0.01:.4f}: its filters are too coarse to land nearer {r}"
            )
        return self.model.eval(), self.report

    def _refit_latency(self) -> list[dict]:
        """Measure the pruned model as deployed and cut it further while it is over the latency
        target (smoea.refit); the BatchNorm statistics follow a cut when no fine-tune comes."""
        cfg = self.cfg
        refit = LatencyRefit(
            cfg.target_latency,
            cfg.latency_batch,
            cfg.round_to,
            self.min_keep,
            self.original["latency"],
            self.device,
            self.log,
            self.unpruned,
        )
        steps = refit.do(self._structure, self.report["measured_baseline"])
        if len(steps) > 1 and cfg.final.epochs == 0:
            self._reestimate_norms()
        return steps

    def _latency_ratio(self, s: Structure, kept: np.ndarray) -> dict:
        """The predicted latency as a fraction of the original (with a latency table)."""
        if self.latency is None:
            return {}
        return {"latency_ratio": float(s.count(kept, "latency")[0] / self.original["latency"])}

    def _plan_total(self, key: str) -> float:
        """Seconds or evaluations the measured plans (`fronts` and the like) spent in all."""
        plans = [gr.get("plan") or {} for gr in self.report["groups"]]
        return float(sum(p.get(key, 0) for p in plans))

    def _structure(self) -> Structure:
        """The current model's layers, the same ones in the same order as at the start."""
        s = Structure(
            self.model, self.example, layer_names=self.layer_names, elementwise=self.elementwise
        )
        s.latency = self.latency
        self.elementwise = s.elementwise
        return s

    def _measured_baseline(self, first: Structure) -> dict | None:
        """The unpruned model measured as deployed at the latency batch (a latency target), and
        where: a resumed run measures its pruned model against it only on the same machine."""
        if self.cfg.target_latency is None:
            return None
        from smoea.latency import time_model, where_measured

        shape, batch = self.example.shape[1:], self.cfg.latency_batch
        ms = time_model(first.model, shape, batch, self.device)
        return {"ms": ms, **where_measured(self.device)}

    def _latency_table(self, first: Structure | None, resume: dict | None):
        """The latency table when the run needs one: a resumed run's own, else this machine's
        for the model and batch (cached; measured once)."""
        if not self.cfg.uses_latency:
            return None
        from smoea import distributed
        from smoea.latency import LatencyTable, table_for

        if distributed.world() > 1:
            raise SmoeaError(
                "a latency target or objective runs in one process (its timings would differ "
                "between ranks); run it without torchrun"
            )
        if resume is not None:
            return LatencyTable.from_dict(resume["latency_table"])
        return table_for(first, self.cfg.latency_batch, self.device, self.log)

    def _stage(self, g: int, layers: list[int]) -> None:
        s = self._structure()
        base = s.units_per_layer
        span = self._span(g, layers)
        genome = self._genome(s, span)
        budget, plan = self.planner.budget(s, g)
        budget = self._reachable(s, span, budget)
        evaluator = self._evaluator(s, genome)
        if evaluator.mode == "masked":
            self.log(f"note: group {g + 1} is scored masked: {evaluator.masked_because}")
        names = self.cfg.objective_list()
        problem = GroupProblem(
            evaluator, base, self.original, budget, self.cfg.measure, tuple(names[1:])
        )
        desc = f"group {g + 1}/{len(self.groups)} (conv {layers[0] + 1}-{layers[-1] + 1})"
        effort = self._effort(s, g, span, budget, evaluator)
        l1 = [s.l1_norms(i) for i in span]
        if effort["searched"]:
            result, x = self._search(problem, l1, g, desc, effort["evaluations"])
        else:
            result, x = self._plan_point(problem, l1, g, desc, effort)
        chosen = [float(evaluator(x[None])[0])]
        chosen += [float(problem.fraction(x[None], what)[0]) for what in problem.sizes]
        if not effort["searched"]:
            result.F = np.array([chosen])
        masks = {i: m for i, m in genome.split(x).items() if i in layers}
        before = self._fraction(s, base)
        after = base.copy()
        after[layers] = [int(m.sum()) for m in masks.values()]
        spent = before - self._fraction(s, after)
        if span != layers:  # the group's part of a plan for every remaining layer
            plan = {"rule": "search", "kept": genome.kept(x[None], base)[0][span].tolist()}
            budget = before - spent
        s.remove(masks)
        self.report["groups"].append(
            {
                "layers": [i + 1 for i in layers],
                "searched_layers": [i + 1 for i in span],
                "filters_before": [int(base[i]) for i in layers],
                "filters_after": [int(m.sum()) for m in masks.values()],
                "budget": budget,
                "planned_share": None if budget is None else before - budget,
                "spent": spent,
                "plan": plan,
                "front": result.F.tolist(),
                "chosen": chosen,
                "evaluations": evaluator.evaluations,
                "effort": effort,
                "evaluator": evaluator.mode,
                "masked_because": evaluator.masked_because if evaluator.mode == "masked" else None,
                "seconds": result.seconds,
                "evaluations_per_second": result.evaluations / max(result.seconds, 1e-9),
            }
        )
        sizes = ", ".join(f"{n} {v:.4f}" for n, v in zip(problem.sizes, chosen[1:]))
        how = "searched" if effort["searched"] else "the plan's point, not searched"
        self.log(
            f"{desc}: {names[0]} {chosen[0]:.4f} on the search set, {sizes}, "
            f"{evaluator.evaluations} evaluations in {result.seconds:.1f}s ({how})"
        )

    def _effort(
        self, s: Structure, g: int, span: list[int], budget: float | None, evaluator
    ) -> dict:
        """How many candidates group g's search may score. With effort "plan" and a target, the
        total is counted in evaluations of the whole unpruned model (a candidate of this group
        costs its sub-network's MACs over that model's, `_candidate_cost`): the group gets the total
        still left times its planned share of what is still to remove (the last group all that
        is left), at most pop_size x generations. A group allotted fewer than
        MIN_SEARCH_GENERATIONS generations is not searched (its plan point is applied), unless
        it is planned to remove at least MIN_SEARCH_SHARE of what is still to remove: then it
        gets those generations (as far as the total left allows). Without a
        target, with effort "fixed" or with `--budget search` (whose search is the plan),
        pop_size x generations."""
        c = self.cfg
        if c.effort_rule == "fixed" or budget is None or span != self.groups[g]:
            return {"rule": "fixed", "searched": True, "evaluations": None}
        before = self._fraction(s, s.units_per_layer)
        need, share = before - c.target, before - budget
        left = max(0.0, c.evaluation_total - self._effort_spent())
        last, cost = g == len(self.groups) - 1, self._candidate_cost(evaluator)
        planned = share / need if need > 1e-12 else 0.0  # of what is still to remove
        units = left if last else left * planned
        allotted = min(int(units / cost), c.pop_size * c.generations)
        threshold = MIN_SEARCH_GENERATIONS * c.pop_size
        if planned >= MIN_SEARCH_SHARE and allotted < threshold:
            allotted = min(threshold, int(left / cost))  # a large cut is searched, from the total
        return {
            "rule": "plan",
            "searched": allotted >= threshold,
            "evaluations": allotted,
            "cost": cost,
            "threshold": threshold,
            "floor": MIN_SEARCH_SHARE,
            "share": share,
            "need": need,
            "total": c.evaluation_total,
            "left": left,
        }

    def _candidate_cost(self, evaluator) -> float:
        """A candidate's share of one evaluation of the unpruned model: the unit stays fixed
        while the model shrinks (1.0 where the whole model runs, as with the user's score)."""
        macs = evaluator.macs
        return 1.0 if macs is None else min(1.0, macs / self.original["macs"])

    def _effort_spent(self) -> float:
        """Whole-model evaluations the earlier groups' searches spent (a group applied without
        search scored its point once: that is not search effort)."""
        return sum(
            gr["evaluations"] * gr["effort"].get("cost", 1.0)
            for gr in self.report["groups"]
            if gr.get("effort", {}).get("searched", True)
        )

    def _plan_point(self, problem: GroupProblem, l1: list[np.ndarray], g: int, desc, effort):
        """The group's cut without a search: its weakest units by L1, layer by layer at about
        one ratio (the plan curve's family), down to the group's budget."""
        start = time.perf_counter()
        x = np.ones(problem.evaluator.genome.n_var, dtype=bool)
        if problem.budget is not None:
            x = self._fit(problem, problem.evaluator.genome, x, l1, problem.budget, g)
            self._note_unrounded(problem.evaluator.genome, x)
        self.log(
            f"{desc}: planned share {effort['share']:.4f} of {effort['need']:.4f} gets "
            f"{effort['evaluations']} candidates ({effort['cost']:.2f} of a whole-model "
            f"evaluation each; {effort['left']:.0f} left), under {effort['threshold']} "
            f"({MIN_SEARCH_GENERATIONS} generations): not searched"
        )
        F = np.zeros((0, 1 + len(problem.sizes)))  # the chosen point, once scored
        return SearchResult(x[None], F, 0, time.perf_counter() - start), x

    def _search(
        self,
        problem: GroupProblem,
        l1: list[np.ndarray],
        g: int,
        desc: str,
        evaluations: int | None = None,
    ):
        """NSGA-II on the problem (for `evaluations` distinct candidates, or pop_size x
        generations), then the choice on its front, fitted to the budget (a plan of every
        remaining layer is filled up to the target too)."""
        c, genome = self.cfg, problem.evaluator.genome
        result = run_nsga2(
            problem,
            l1,
            c.pop_size,
            c.generations,
            c.seed + g,
            desc,
            max_evaluations=evaluations,
            genome_kind=c.genome,
        )
        budget = problem.budget
        x = result.X[choose(result.F, c.select, budget, c.tolerance, problem.size_column)]
        if budget is not None:
            x = self._fit(problem, genome, x, l1, budget, g)
            self._note_unrounded(genome, x)
        return result, x

    def _span(self, g: int, layers: list[int]) -> list[int]:
        """The layers group g's search decides: the group's own, or with `--budget search` and
        a target, every layer still to prune (the search plans the whole rest of the model to
        the target; only the group's part is applied, the rest is planned again after the
        fine-tune)."""
        if self.cfg.budget_rule != "search" or self.cfg.target is None:
            return list(layers)
        return [i for rest in self.groups[g:] for i in rest]

    def _genome(self, s: Structure, layers: list[int]) -> Genome:
        base = s.units_per_layer
        units = [int(base[i]) for i in layers]
        return Genome(layers, units, [self.min_keep[i] for i in layers], self.cfg.round_to)

    def _evaluator(self, s: Structure, genome: Genome):
        """Scores on the sub-network from the genome's group, calibrated on training images;
        with a user's `score`, the whole model scored by it."""
        c = self.cfg
        if self.loop.score is not None:
            batches = chunks(self.search_normalised(), c.eval_batch_size, self.device)
            calib = self._calibration_batches() or None
            return ScoredEvaluator(
                s, genome, batches, self.loop.score, self.loop.higher_is_better, calib
            )
        return make_evaluator(
            s,
            genome,
            self.search,
            self.splits.mean,
            self.splits.std,
            c.objective,
            c.eval_batch_size,
            self.calibration,
            sliced=False if c.scoring == "masked" else None,
        )

    def search_normalised(self) -> TensorData:
        return TensorData(
            normalize(self.search.x, self.splits.mean, self.splits.std), self.search.y
        )

    def calibration_normalised(self) -> TensorData:
        c = self.calibration
        return TensorData(normalize(c.x, self.splits.mean, self.splits.std), c.y)

    def _calibration_batches(self) -> list[torch.Tensor]:
        """The calibration images, normalised, in batches on the device (none without them)."""
        if self.calibration is None or not len(self.calibration):
            return []
        data = self.calibration_normalised()
        return [x for x, _ in chunks(data, self.cfg.eval_batch_size, self.device)]

    def _fraction(self, s: Structure, kept: np.ndarray) -> float:
        """The target's measure of the whole model with `kept` units, as a fraction."""
        what = self.cfg.measure
        return float(s.count(kept, what)[0] / self.original[what])

    def _fit(self, problem, genome, x, l1, budget: float, g: int):
        """Keep the choice within the group's budget and not below the target r: later groups
        only remove, so a group that overshot would leave the final model below it. The last
        group (budget r) gives back its strongest dropped units while they fit, so the final
        model lands as near r as single filters allow (the comparison needs one size).

        Then keep r reachable: cutting a layer's filters also cuts the next layer's inputs, so
        what a later group can remove shrinks as this one cuts its last layer, and a budget
        planned before may leave too much for the later groups even at their minimum. This
        group gives up its weakest units until the later groups at their minimum reach r."""
        floor = self.cfg.target
        order = [np.argsort(-n, kind="stable") for n in l1]
        x = fit_to_budget(x, genome, lambda v: problem.f2(v[None])[0], budget, floor, order)
        later = [i for layers in self.groups[g + 1 :] for i in layers]
        if not later:
            return x
        s = problem.evaluator.structure
        smallest = {i: int(self._allowed_minimum(s, i)) for i in later}

        def later_at_minimum(v: np.ndarray) -> float:
            kept = genome.kept(v[None], problem.base_kept)[0]
            kept[later] = [smallest[i] for i in later]
            return self._fraction(s, kept)

        return fit_to_budget(x, genome, later_at_minimum, floor, 0.0, order)

    def _reachable(self, s: Structure, layers: list[int], budget: float | None) -> float | None:
        """The budget, or what the group reaches at its minimum if the budget asks more: what
        a group can remove depends on the others (a layer's inputs are the previous one's
        filters; a ResNet's residual stream couples groups), so a plan made from curves measured
        one group at a time can ask too much. The later groups, kept able to reach the target
        (see _fit), remove the rest."""
        if budget is None:
            return None
        kept = s.units_per_layer.copy()
        kept[layers] = [self._allowed_minimum(s, i) for i in layers]
        return max(budget, self._fraction(s, kept))

    def _allowed_minimum(self, s: Structure, i: int) -> int:
        """The fewest units layer i may keep (its minimum, rounded up to --round-to)."""
        units = int(s.units_per_layer[i])
        return int(allowed_counts(units, self.cfg.round_to, self.min_keep[i])[0])

    def _note_unrounded(self, genome: Genome, x: np.ndarray) -> None:
        """Say so when single filters had to finish the fit and a count left the multiples."""
        counts = [int(m.sum()) for m in genome.split(x).values()]
        off = [c for j, c in enumerate(counts) if c not in genome.allowed(j)]
        if genome.round_to > 1 and off:
            self.log(
                f"note: to land on the target, {len(off)} layer(s) keep a count that is not a "
                f"multiple of --round-to {genome.round_to}: {off}"
            )

    def _reestimate_norms(self) -> int:
        """With no fine-tune after a group removed filters, every BatchNorm re-estimates its
        statistics on the calibration images (training split; reset, then a cumulative average),
        so the saved model and the next group's search see statistics that fit the pruned layers
        (without it a heavily pruned model can sit at chance). Returns how many images were
        used (0 with --calibration-images 0)."""
        batches = self._calibration_batches()
        if not batches:
            return 0
        with torch.no_grad():
            recalibrate(self.model, batches)
        self.model.eval()
        return len(self.calibration)

    def _finetune(self, cfg: TrainConfig, desc: str, step: int) -> dict:
        """Fine-tune in place (each step draws its own seeded data order), or run the user's
        `finetune(model, step)`."""
        start = time.perf_counter()
        if self.loop.finetune is not None:
            self.loop.finetune(self.model, step)
            self.model.eval()
            ran = {"step": step, "custom": True}
            return {"epochs": None, "seconds": time.perf_counter() - start, "ran": ran}
        history = self._train(cfg, desc, step)
        self.model.eval()
        return {
            "epochs": cfg.epochs,
            "seconds": time.perf_counter() - start,
            "val_accuracy": history[-1]["val_accuracy"] if history else None,
            "ran": {"step": step, **what_ran(history)},
        }

    def _train(self, cfg: TrainConfig, desc: str, step: int) -> list[dict]:
        seed = self.cfg.seed * 1000 + step
        return train(
            self.model, self.splits, cfg, self.device, seed, desc=desc, distill=self.distill
        )


class _LoopRun(_Run):
    """A run on the user's own data loaders: the search set (and calibration images) are taken
    from them once; fine-tuning runs over the train loader (or the user's `finetune`)."""

    def __init__(self, model, loop: UserLoop, config, device, log, resume, distill):
        if loop.val is None and loop.search is None:
            raise SmoeaError("smoea.prune needs validation (or search) batches")
        search = take(loop.search if loop.search is not None else loop.val, config.search_size)
        calib = search.subset(torch.arange(0))
        if config.calibration_images and loop.train is not None:
            calib = take(loop.train, config.calibration_images)
        channels = search.x.shape[1]
        splits = Splits(calib, search, None, [], [0.0] * channels, [1.0] * channels)
        super().__init__(model, splits, config, device, log, resume, distill, loop)

    def _train(self, cfg: TrainConfig, desc: str, step: int) -> list[dict]:
        return train_batches(
            self.model, self.loop.train, cfg, self.device, self.distill, self.loop.val
        )

    def _distill_record(self) -> dict:
        if self.distill is None:
            return {"on": False}
        val = self.loop.val if self.loop.val is not None else chunks(self.search, 500, self.device)
        accuracy = evaluate_batches(self.distill.teacher, val, self.device)["accuracy"]
        return {
            "on": True,
            "temperature": self.distill.temperature,
            "weight": self.distill.weight,
            "teacher_val_accuracy": accuracy,
        }
