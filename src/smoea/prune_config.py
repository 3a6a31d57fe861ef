"""The settings of one SMOEA run (`smoea prune`'s flags) and their checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch.nn as nn

from smoea.budget import BUDGET_RULES
from smoea.config import option
from smoea.errors import SmoeaError
from smoea.search import GENOMES
from smoea.select import RULES
from smoea.train import DISTILL_TEMPERATURE, DISTILL_WEIGHT, Distill, TrainConfig

EFFORTS = ("auto", "plan", "fixed")
SCORINGS = ("sliced", "masked")
# the default --evaluations with --effort plan, as a share of one group searched the fixed way
# (pop_size x generations), counted in evaluations of the whole unpruned model
EFFORT_SHARE = 0.5
MIN_SEARCH_GENERATIONS = 2  # a group allotted fewer evaluations than this many generations is
# not searched: the plan's point (L1 top-k at the planned share) is applied instead, unless it is
MIN_SEARCH_SHARE = 0.1  # planned to remove at least this share of what is still to remove: then
# it is searched that many generations, from the same total (a MAC target's costly early groups)
OBJECTIVES = ("error", "loss")
SIZES = ("params", "macs", "latency")


@dataclass
class PruneConfig:
    """Everything that steers one SMOEA run; defaults chosen by measurement (docs/results.md)."""

    target_params: float | None = option(
        0.1656, "fraction of the original parameters to keep", flag_default=None
    )
    target_macs: float | None = option(
        None, "fraction of the original multiply-accumulates to keep (instead of parameters)"
    )
    target_latency: float | None = option(
        None,
        "fraction of the original latency to keep (instead of parameters): predicted by a "
        "latency table measured on this machine (smoea.latency; built once, cached), at "
        "--latency-batch, as `smoea export` deploys the model (BatchNorm folded)",
    )
    # measured over the latency target by more than refit.LATENCY_SLACK: cut further (compare turns
    # it off: it brings every method to the measured target itself, smoea.matching)
    latency_refit: bool = True
    # batch 1: the latency one request sees, where pruning's speed-up is hardest to get (per-op
    # costs dominate); throughput at large batches follows the MACs more closely
    latency_batch: int = option(1, "batch size the latency target and objective are timed at")
    objectives: str | None = option(
        None,
        "error (or loss) and one or more of params, macs, latency; e.g. error,params,macs "
        "(default: --objective and the target's measure)",
    )
    groups: str | None = option(None, "e.g. 1-2,3-4,5-7 (default: one per stage)")
    genome: str = option(
        "counts",
        "what the search decides: bits (one bit per filter, the paper's framing) | counts "
        "(how many filters each layer keeps, the strongest by L1 norm; moves whole counts)",
    )
    pop_size: int = option(24, "candidates per NSGA-II generation")
    generations: int = option(20, "NSGA-II generations per group (with --effort fixed)")
    # measured on vgg14 w0.5, seeds 0-2 (benchmarks/results/search-effort): plan searched in
    # 12% of fixed's seconds at 16.56% of the parameters and 23% at 30% of the MACs, at the same
    # test accuracy (the MAC target needs MIN_SEARCH_SHARE: without it the costly first group
    # went unsearched and every seed lost 0.3-0.6 points). A latency target is not measured
    # yet, so auto keeps fixed there.
    effort: str = option(
        "auto",
        "how the groups' searches share evaluations: plan (in proportion to what each group "
        "is planned to remove, out of --evaluations; a group allotted fewer than "
        f"{MIN_SEARCH_GENERATIONS} generations is not searched, its plan point is applied, "
        f"unless it is planned to remove {MIN_SEARCH_SHARE:.0%} or more of what is left to "
        "remove) | fixed (every group --pop-size x --generations) | auto (plan for a parameter "
        "or MAC target or with --evaluations, fixed for a latency target: as measured)",
    )
    scoring: str = option(
        "sliced",
        "how a candidate runs: sliced (only its kept channels; a model whose layers cannot be "
        "sliced falls back to masked and says why) | masked (full width, dropped channels zeroed)",
    )
    evaluations: int | None = option(
        None,
        "the search effort in all with --effort plan, in evaluations of the whole unpruned "
        "model: a candidate of a later group runs a smaller sub-network and counts as its MACs' "
        "share of the model's (the plan's curves are counted apart) (default --pop-size x "
        f"--generations x {EFFORT_SHARE}: 240, and never under {MIN_SEARCH_GENERATIONS} "
        "generations)",
    )
    search_size: int = option(500, "images in the search set, drawn from the validation split")
    calibration_images: int = option(
        128,
        "training images on which each candidate's BatchNorm statistics are re-estimated "
        "before it is scored (adaptive BatchNorm); 0 turns it off",
    )
    objective: str = option("error", "f1 on the search set: error | loss (cross-entropy)")
    select: str = option(
        "target",
        "the point chosen on each front: target (lowest error within the budget) | "
        "tolerance | knee",
    )
    tolerance: float = option(0.01, "error above the best that --select tolerance accepts")
    budget: str = option(
        "auto",
        "how much each group removes: auto (level with a latency target, fronts otherwise) | "
        "fronts (planned from measured error curves, re-planned "
        "after each group; least summed predicted error rise) | level (the same curves, every "
        "group the same predicted rise) | search-fronts (fronts, each curve joined with a short "
        "NSGA-II front of its group) | search (each group's search plans every remaining layer "
        "to the target; the group's part is applied) | heavy-late | proportional",
    )
    min_keep: float = option(0.05, "smallest fraction of filters any layer keeps")
    round_to: int = option(
        1, "keep a multiple of this many filters per layer (or all), e.g. 8 for CPU kernels"
    )
    eval_batch_size: int = 500
    distill: bool = option(
        False,
        "the unpruned model, frozen, teaches every fine-tuning (softened logits mixed with the "
        "label loss; off by default)",
    )
    distill_temperature: float = option(
        DISTILL_TEMPERATURE, "softening temperature of the distillation"
    )
    distill_weight: float = option(
        DISTILL_WEIGHT, "share of the distillation loss in [0, 1]; the label loss gets the rest"
    )
    seed: int = 0
    # no fine-tune between groups (BatchNorm re-estimated instead), one cycle at the end:
    # measured better than one epoch after each group (benchmarks/results/search-earns)
    finetune: TrainConfig = option(
        factory=lambda: TrainConfig(epochs=0, lr=0.01, schedule="cosine"),
        flags={
            "epochs": (
                "finetune-epochs",
                "fine-tuning epochs after each group but the last; 0: BatchNorm re-estimated on "
                "the calibration images instead",
            ),
            "lr": ("finetune-lr", "peak learning rate of those (cosine schedule)"),
            "batch_size": ("batch-size", "fine-tuning batch size"),
        },
    )
    final: TrainConfig = option(
        factory=lambda: TrainConfig(epochs=9, lr=0.01, schedule="cosine"),
        flags={
            "epochs": ("final-epochs", "fine-tuning epochs after the last group"),
            "lr": ("final-lr", "peak learning rate of the final fine-tune"),
            "batch_size": ("batch-size", "fine-tuning batch size"),
        },
    )

    @property
    def measure(self) -> str:
        """What the target counts: "latency" or "macs" with such a target, else "params"."""
        if self.target_latency is not None:
            return "latency"
        return "macs" if self.target_macs is not None else "params"

    @property
    def evaluation_total(self) -> int:
        """Whole-model evaluations the groups' searches may spend in all with effort "plan"."""
        if self.evaluations is not None:
            return self.evaluations
        share = int(round(EFFORT_SHARE * self.pop_size * self.generations))
        return max(share, MIN_SEARCH_GENERATIONS * self.pop_size)  # a tiny search still runs

    @property
    def effort_rule(self) -> str:
        """The rule that runs: "plan" or "fixed" (auto resolved, see `effort`)."""
        if self.effort != "auto":
            return self.effort
        return "plan" if self.evaluations is not None or self.measure != "latency" else "fixed"

    @property
    def budget_rule(self) -> str:
        """The budget rule that runs ("auto" resolved). With a latency target, `fronts` spent
        its whole share on one group: its curves (error before fine-tuning) saturate near
        chance, so ruining one group looked cheaper than hurting three, and one group could
        meet most of the need; `level` spreads it (benchmarks/results/latency-evidence)."""
        if self.budget != "auto":
            return self.budget
        return "level" if self.measure == "latency" else "fronts"

    @property
    def target(self) -> float | None:
        return {"latency": self.target_latency, "macs": self.target_macs}.get(
            self.measure, self.target_params
        )

    def objective_list(self) -> list[str]:
        """[f1 name, size names...]: --objectives, or the objective and the target's measure."""
        if self.objectives is None:
            return [self.objective, self.measure]
        return [o.strip() for o in self.objectives.split(",") if o.strip()]

    def validate(self) -> None:
        for flag, r in (
            ("--target-params", self.target_params),
            ("--target-macs", self.target_macs),
            ("--target-latency", self.target_latency),
        ):
            if r is not None and not 0 < r <= 1:
                raise SmoeaError(f"{flag} must be in (0, 1], got {r}")
        self._validate_objectives()
        if self.select not in RULES:
            raise SmoeaError(f"unknown --select {self.select!r}; choose one of {', '.join(RULES)}")
        if self.select == "target" and self.target is None:
            raise SmoeaError("--select target needs a --target-params, -macs or -latency")
        if self.budget != "auto" and self.budget not in BUDGET_RULES:
            raise SmoeaError(
                f"unknown --budget {self.budget!r}; choose auto, {', '.join(BUDGET_RULES)}"
            )
        if self.genome not in GENOMES:
            raise SmoeaError(f"unknown --genome {self.genome!r}; choose {', '.join(GENOMES)}")
        if self.pop_size < 4 or self.generations < 1 or self.search_size < 1:
            raise SmoeaError("--pop-size must be >= 4, --generations and --search-size >= 1")
        if self.scoring not in SCORINGS:
            raise SmoeaError(f"unknown --scoring {self.scoring!r}; choose {', '.join(SCORINGS)}")
        if self.effort not in EFFORTS:
            raise SmoeaError(f"unknown --effort {self.effort!r}; choose {', '.join(EFFORTS)}")
        if self.effort == "fixed" and self.evaluations is not None:
            raise SmoeaError(
                "--evaluations is the total that --effort plan shares among the groups; add "
                "--effort plan (with --effort fixed each group scores --pop-size x --generations)"
            )
        too_small = self.evaluation_total < MIN_SEARCH_GENERATIONS * self.pop_size
        if self.effort_rule == "plan" and too_small:
            raise SmoeaError(
                f"--evaluations {self.evaluation_total} is too small to search: give at least "
                f"{MIN_SEARCH_GENERATIONS * self.pop_size} ({MIN_SEARCH_GENERATIONS} generations "
                f"of --pop-size {self.pop_size}), or --effort fixed"
            )
        if self.calibration_images < 0:
            raise SmoeaError(f"--calibration-images must be >= 0, got {self.calibration_images}")
        if not 0 <= self.min_keep < 1:
            raise SmoeaError(f"--min-keep must be in [0, 1), got {self.min_keep}")
        if self.round_to < 1:
            raise SmoeaError(f"--round-to must be >= 1, got {self.round_to}")
        if self.latency_batch < 1:
            raise SmoeaError(f"--latency-batch must be >= 1, got {self.latency_batch}")
        Distill(nn.Identity(), self.distill_temperature, self.distill_weight).validate()

    def distillation(self, teacher: nn.Module | None) -> Distill | None:
        """The fine-tunings' distillation from `teacher`, or None when --distill is off."""
        if not self.distill:
            return None
        if teacher is None:
            raise SmoeaError("--distill needs the unpruned model as teacher")
        return Distill(teacher, self.distill_temperature, self.distill_weight)

    def _validate_objectives(self) -> None:
        names = self.objective_list()
        f1, sizes = (names[0] if names else None), names[1:]
        if f1 not in OBJECTIVES:
            raise SmoeaError(f"--objectives must start with error or loss, got {self.objectives!r}")
        if self.objectives is None:
            return
        if not 1 <= len(sizes) <= len(SIZES) or len(set(sizes)) != len(sizes):
            raise SmoeaError(
                "--objectives takes error (or loss) and one or more of params, macs, latency"
            )
        if any(size not in SIZES for size in sizes):
            raise SmoeaError(
                f"--objectives: unknown size in {self.objectives!r}; use params, macs, latency"
            )
        if self.target is not None and self.measure not in sizes:
            raise SmoeaError(f"--objectives must include {self.measure} to reach its target")

    @property
    def uses_latency(self) -> bool:
        """Whether the run needs a latency table (a latency target or objective)."""
        return "latency" in self.objective_list()[1:]

    def as_dict(self) -> dict:
        return asdict(self)
