"""A method's setting found so that its pruned model measures at a latency target."""

from __future__ import annotations

from collections.abc import Callable

# methods compared at a latency target are held within 3% of it, measured: a latency model
# off by 6-12% (benchmarks/results/latency-model) would otherwise decide the comparison
MATCH_TOLERANCE = 0.03
# prunings measured per method at most (each without fine-tuning): a MAC target at batch 1
# took 4 tries to bracket the latency target (its latency is flat, then falls, in the MACs)
MATCH_TRIES = 6
SETTING_RANGE = (1e-3, 1.0)  # a setting is a fraction of the baseline's size or latency


def match(
    prune_at: Callable[[float], object],
    measured_ratio: Callable[[object], float | None],
    target: float,
    start: float,
    lowest: float = SETTING_RANGE[0],
) -> tuple[float, list[dict]]:
    """The setting whose pruned model measures nearest `target` (a ratio to the baseline's
    measured latency), and every try as {"setting", "measured_ratio"}.

    Tries `start`, then a setting moved by the measured miss (see next_setting), until one
    lands within MATCH_TOLERANCE
    of the target or MATCH_TRIES ran; never below `lowest` (what the method's minimum widths
    reach). A measurement that cannot be trusted (None) ends it."""
    setting, tries = start, []
    for _ in range(MATCH_TRIES):
        ratio = measured_ratio(prune_at(setting))
        tries.append({"setting": setting, "measured_ratio": ratio})
        if ratio is None or abs(ratio / target - 1) <= MATCH_TOLERANCE:
            break
        setting = next_setting(tries, target, lowest)
        if any(t["setting"] == setting for t in tries):  # pinned at the range's end
            break
    measured = [t for t in tries if t["measured_ratio"] is not None]
    if not measured:
        return tries[-1]["setting"], tries
    best = min(measured, key=lambda t: abs(t["measured_ratio"] / target - 1))
    return best["setting"], tries


def next_setting(tries: list[dict], target: float, lowest: float = SETTING_RANGE[0]) -> float:
    """The next setting to try, from `lowest` to 1: once tries measured on both sides of the
    target, the line between the nearest settings on each side (the smallest measured above
    it, the largest below: where a search's latency is not monotone in its setting, as
    smoea-macs's MAC target, the pair nearest in measurement can lie outside that bracket and
    send the next try back to one made); before, the secant through the last two where they
    rise with the setting, else the last setting scaled by target / measured."""
    last = tries[-1]
    setting = last["setting"] * target / last["measured_ratio"]
    above = [t for t in tries if t["measured_ratio"] > target]
    below = [t for t in tries if t["measured_ratio"] < target]
    if above and below:
        hi = min(above, key=lambda t: t["setting"])
        lo = max(below, key=lambda t: t["setting"])
        share = (target - lo["measured_ratio"]) / (hi["measured_ratio"] - lo["measured_ratio"])
        setting = lo["setting"] + share * (hi["setting"] - lo["setting"])
    elif len(tries) >= 2:
        before = tries[-2]
        rise = last["measured_ratio"] - before["measured_ratio"]
        run = last["setting"] - before["setting"]
        if run != 0 and rise / run > 0:
            setting = last["setting"] + (target - last["measured_ratio"]) * run / rise
    return float(min(max(setting, lowest, SETTING_RANGE[0]), SETTING_RANGE[1]))


def within_tolerance(ratios: list[float | None], target: float) -> bool:
    """Whether every measured ratio lies within MATCH_TOLERANCE of the target."""
    return bool(ratios) and all(
        r is not None and abs(r / target - 1) <= MATCH_TOLERANCE for r in ratios
    )
