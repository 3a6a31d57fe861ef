"""The budget planner on its own: given an evaluator factory and a size function."""

import numpy as np
import torch

from smoea.budget import Planner
from smoea.models import build_model, make_arch
from smoea.prune_config import PruneConfig
from smoea.search import Genome
from smoea.structure import Structure, plan_groups


class _Cost:
    """An evaluator whose error rises with the filters dropped, steeply in `steep` layers."""

    def __init__(self, s, genome, steep):
        self.s, self.genome, self.steep, self.evaluations = s, genome, steep, 0

    def score_masks(self, candidates):
        self.evaluations += len(candidates)
        errors = []
        for masks in candidates:
            dropped = [(i, 1 - m.mean()) for i, m in masks.items()]
            errors.append(sum((10.0 if i in self.steep else 0.1) * d for i, d in dropped))
        return np.array(errors)


def _planner(rule: str, steep: set[int]):
    torch.manual_seed(0)
    model = build_model(make_arch("vgg14", 0.25, 10, 3, 32)).eval()
    s = Structure(model, torch.zeros(1, 3, 32, 32))
    full = s.units_per_layer
    original = {w: float(s.count(full, w)[0]) for w in ("params", "macs")}
    config = PruneConfig(target_params=0.3, budget=rule)
    min_keep = [max(1, int(np.ceil(0.05 * u))) for u in full]

    def genome_for(s, layers):
        units = [int(s.units_per_layer[i]) for i in layers]
        return Genome(layers, units, [min_keep[i] for i in layers], 1)

    def fraction(s, kept):
        return float(s.count(kept, "params")[0] / original["params"])

    groups = plan_groups(s, None)
    planner = Planner(
        config,
        groups,
        min_keep,
        original,
        lambda s, g: _Cost(s, g, steep),
        genome_for,
        fraction,
        lambda m: None,
    )
    return planner, s, groups


def test_fronts_spares_the_group_whose_error_rises_steeply():
    flat, s, groups = _planner("fronts", set())
    steep, _, _ = _planner("fronts", set(groups[-1]))  # the last group made costly to cut
    (_, flat_plan), (budget, plan) = flat.budget(s, 0), steep.budget(s, 0)
    assert abs(sum(plan["shares"]) - plan["need"]) < 1e-6
    assert flat_plan["shares"][-1] > 0.1 and plan["shares"][-1] < 0.01
    assert plan["evaluations"] > 0 and 0.3 < budget <= 1.0


def test_the_last_group_gets_the_target_and_no_target_no_budget():
    planner, s, groups = _planner("proportional", set())
    assert planner.budget(s, len(groups) - 1) == (0.3, None)
    planner.config.target_params = None
    assert planner.budget(s, 0) == (None, None)


def test_heavy_late_leaves_more_to_the_later_groups_than_proportional():
    proportional, s, _ = _planner("proportional", set())
    heavy, _, _ = _planner("heavy-late", set())
    # a higher budget for group 1 means it removes less
    assert heavy.budget(s, 0)[0] > proportional.budget(s, 0)[0]
