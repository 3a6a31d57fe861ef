"""The latency refit: a pruned model measured over its latency target is cut further."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from smoea.errors import SmoeaError
from smoea.structure import Structure, allowed_counts, round_count

LATENCY_SLACK = 0.05  # a model measured over the latency target by more than this is refitted
LATENCY_REFITS = 2  # refits at most, each measured again


@dataclass
class LatencyRefit:
    """What the refit needs from a run: the target, how the model is deployed and timed, and
    the per-layer minimums no cut goes below."""

    target: float  # the latency target r, a fraction of the baseline's measured latency
    batch: int  # the latency batch
    round_to: int
    min_keep: list[int]
    original_latency: float  # the unpruned model's latency in the table (the fractions' base)
    device: torch.device
    log: Callable[[str], None]
    # the unpruned model, measured together with the pruned one (the machine's speed drifts
    # between the start and the end of a run); None for a resumed run, which has only the
    # baseline's time measured at its start
    unpruned: nn.Module | None = None

    def do(self, structure: Callable[[], Structure], baseline: dict | None) -> list[dict]:
        """Measure the pruned model as deployed; while it is over the target by more than
        LATENCY_SLACK, cut more: the table's prediction, scaled by measured over predicted, is
        the goal of a knapsack over every layer (the weakest filters per latency saved go
        first; counts rounded down to round_to, never below the minimum). `structure()` gives
        the current model's layers. Returns every measurement (and what was cut after it); a
        measurement that cannot be trusted (another machine than the baseline's, or too noisy)
        ends it with a note."""
        from smoea.latency import measuring_here

        if baseline is None or not measuring_here(baseline, self.device):
            self.log("note: the latency refit is skipped: the baseline was measured elsewhere")
            return [{"skipped": "the baseline was measured on another machine or thread count"}]
        steps = []
        for attempt in range(LATENCY_REFITS + 1):
            s = structure()
            step = self._measure(s, baseline["ms"])
            steps.append(step)
            if "error" in step or step["measured_ratio"] <= self.target * (1 + LATENCY_SLACK):
                break
            if attempt == LATENCY_REFITS or not self._cut(s, step):
                break
        return steps

    def _predicted(self, s: Structure, kept: np.ndarray) -> np.ndarray:
        """The table's latency with `kept` units (one row per row of kept), as a fraction."""
        return s.count(kept, "latency") / self.original_latency

    def _measure(self, s: Structure, baseline_ms: float) -> dict:
        """The model measured as deployed at the latency batch, together with the unpruned
        model where there is one (else against the baseline's time measured at the start),
        beside its prediction."""
        from smoea.latency import time_model, time_ratio

        model, shape = s.model, s.example.shape[1:]
        try:
            if self.unpruned is not None:
                m = time_ratio(self.unpruned, model, shape, self.batch, self.device, log=self.log)
            else:
                ms = time_model(model, shape, self.batch, self.device)
                m = {"ratio": ms / baseline_ms, "ms": ms, "baseline_ms": baseline_ms}
        except SmoeaError as exc:  # too noisy: keep the model as it is, say so
            self.log(f"note: the pruned model's latency was not measured: {exc}")
            return {"error": str(exc)}
        return {
            "measured_ratio": m["ratio"],
            "predicted_ratio": float(self._predicted(s, s.units_per_layer)[0]),
            "ms": m["ms"],
            "baseline_ms": m["baseline_ms"],
            **({"measured_ratios": m["ratios"]} if "ratios" in m else {}),
        }

    def _cut(self, s: Structure, step: dict) -> bool:
        """Cut the model to the predicted latency that should measure at the target; False
        when the minimum widths leave nothing to cut."""
        from smoea.halp import knapsack

        measured, predicted = step["measured_ratio"], step["predicted_ratio"]
        goal = predicted * self.target / measured
        kept = s.units_per_layer
        predicted_of = lambda C: self._predicted(s, C)  # noqa: E731
        counts = knapsack(s, self._floors(kept), predicted_of, goal, strict=False)
        counts = np.array(
            [
                round_count(int(c), self.round_to, int(u), "down", self.min_keep[i])
                for i, (c, u) in enumerate(zip(counts, kept))
            ]
        )
        if (counts == kept).all():
            self.log("note: the latency is over its target but every layer is at its minimum")
            return False
        step["refit_to"] = counts.tolist()
        order = {i: np.argsort(-s.l1_norms(i), kind="stable") for i in range(len(kept))}
        s.remove({i: np.isin(np.arange(kept[i]), order[i][: counts[i]]) for i in order})
        self.log(
            f"latency measured at {measured:.4f} of the baseline's (predicted {predicted:.4f}), "
            f"over {self.target} by more than {LATENCY_SLACK:.0%}: cut to a predicted "
            f"{goal:.4f}"
        )
        return True

    def _floors(self, kept: np.ndarray) -> np.ndarray:
        """The fewest units each layer may keep: its minimum, rounded up to round_to."""
        return np.array(
            [
                int(allowed_counts(int(u), self.round_to, self.min_keep[i])[0])
                for i, u in enumerate(kept)
            ]
        )
