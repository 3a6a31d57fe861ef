"""How much each group removes, decided from measured error curves (the `fronts` budget rule).

Before each group, every group still to prune gets an error-against-size curve on the current
model: its layers cut to L1 top-k at a few ratios (the others whole), each scored on the search
set with calibrated BatchNorm on the sub-network from that group. What the target still asks
is then spread over those groups so that the sum of the predicted error rises is least (dynamic
programming over the interpolated curves). Only the current group's share is used; the plan is
made again before the next group, on the model as it was actually pruned and fine-tuned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smoea.errors import SmoeaError


@dataclass
class Curve:
    """One group's measured curve: whole-model fraction removed (ascending from 0) and f1."""

    layers: list[int]
    removed: np.ndarray
    error: np.ndarray

    @property
    def rise(self) -> np.ndarray:
        """f1 above the keep-all point, made non-decreasing (removing more never helps)."""
        return np.maximum.accumulate(self.error) - self.error[0]

    def as_dict(self) -> dict:
        return {
            "layers": [i + 1 for i in self.layers],
            "removed": self.removed.tolist(),
            "error": self.error.tolist(),
        }


def top_k_masks(
    l1: list[np.ndarray], units: list[int], min_keep: list[int], points: int
) -> list[list[np.ndarray]]:
    """Per ratio in [0, 1] (`points` of them): each layer keeps its top units by L1, from all
    of them (ratio 0) down to its minimum (ratio 1)."""
    out = []
    for ratio in np.linspace(0.0, 1.0, points):
        masks = []
        for norms, n, low in zip(l1, units, min_keep):
            k = int(round(n - ratio * (n - low)))
            keep = np.zeros(n, dtype=bool)
            keep[np.argsort(-norms, kind="stable")[:k]] = True
            masks.append(keep)
        out.append(masks)
    return out


def lower_envelope(removed: np.ndarray, error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points sorted by size removed, each error replaced by the least error of any point that
    removes at least as much (a group that can remove more at that error can remove less)."""
    order = np.argsort(removed, kind="stable")
    removed, error = np.asarray(removed)[order], np.asarray(error)[order]
    return removed, np.minimum.accumulate(error[::-1])[::-1]


def allocate(curves: list[Curve], need: float, steps: int = 200) -> np.ndarray:
    """Shares of `need` (whole-model fraction to remove) per curve, summing to `need`, that
    minimise the summed predicted rise; a share never exceeds what its group can remove."""
    if need <= 0:
        return np.zeros(len(curves))
    capacity = sum(float(c.removed[-1]) for c in curves)
    if capacity < need - 1e-9:
        raise SmoeaError(f"the groups can remove {capacity:.4f} of the model, not {need:.4f}")
    grid = np.arange(steps + 1) * (need / steps)
    costs = [_cost_on_grid(c, grid) for c in curves]
    best, choices = costs[0].copy(), []
    for cost in costs[1:]:
        total = best[:, None] + cost[None, :]  # total[j - i, i]: earlier groups j - i, this i
        new, pick = np.full(steps + 1, np.inf), np.zeros(steps + 1, dtype=int)
        for j in range(steps + 1):
            options = total[j - np.arange(j + 1), np.arange(j + 1)]
            pick[j] = int(np.argmin(options))
            new[j] = options[pick[j]]
        best, choices = new, [*choices, pick]
    return _backtrack(choices, steps, need / steps, len(curves))


def allocate_level(curves: list[Curve], need: float, steps: int = 60) -> np.ndarray:
    """Shares of `need` per curve at one common predicted rise (FastNAS's rule: every group
    may lose as much, found by bisection on that level); summing to `need`, within capacity."""
    if need <= 0:
        return np.zeros(len(curves))
    capacity = sum(float(c.removed[-1]) for c in curves)
    if capacity < need - 1e-9:
        raise SmoeaError(f"the groups can remove {capacity:.4f} of the model, not {need:.4f}")
    free = _removed_at(curves, 0.0)
    if free.sum() >= need:  # removal predicted to cost nothing covers it: share it out
        return free * (need / free.sum())
    low, high = 0.0, max(float(c.rise[-1]) for c in curves)
    for _ in range(steps):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if _removed_at(curves, mid).sum() < need else (low, mid)
    below, above = _removed_at(curves, low), _removed_at(curves, high)
    # between the two levels, interpolate so that the shares sum to `need` exactly
    t = (need - below.sum()) / max(above.sum() - below.sum(), 1e-12)
    return below + np.clip(t, 0.0, 1.0) * (above - below)


def _removed_at(curves: list[Curve], level: float, points: int = 1001) -> np.ndarray:
    """Per curve, the most it removes with a predicted rise at most `level`."""
    out = []
    for c in curves:
        x = np.linspace(0.0, float(c.removed[-1]), points)
        ok = np.interp(x, c.removed, c.rise) <= level + 1e-12
        out.append(float(x[ok].max()) if ok.any() else 0.0)
    return np.array(out)


def _cost_on_grid(curve: Curve, grid: np.ndarray) -> np.ndarray:
    """The curve's rise interpolated at the grid; infinite where the group cannot remove that
    much. A group whose capacity falls between grid points may take its last point too."""
    cost = np.interp(grid, curve.removed, curve.rise)
    step = grid[1] - grid[0] if len(grid) > 1 else 1.0
    cost[grid > curve.removed[-1] + 0.5 * step] = np.inf
    return cost


def _backtrack(choices: list[np.ndarray], steps: int, unit: float, n: int) -> np.ndarray:
    shares = np.zeros(n)
    j = steps
    for h in range(n - 1, 0, -1):
        i = int(choices[h - 1][j])
        shares[h] = i * unit
        j -= i
    shares[0] = j * unit
    return shares
