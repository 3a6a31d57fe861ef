"""fit_to_budget on a wide last group: the bisection against the one-step greedy it replaced.

Usage: python benchmarks/fit_speed.py [--old-up-to 0.25]

A synthetic group shaped like efficientnet_v2_l's last stage at 64 px (32 blocks: a 3840- or
2304-unit expansion and its 160/96-unit squeeze layer, a 1280-unit head), a random search
choice keeping about half, and a count in which each layer's cost grows with its neighbour's
width. The fit restores units up to 90% of the full count. Scaled widths (--scales) show how
each grows; the old greedy (tests/test_fit.py) runs only up to --old-up-to, being quadratic.
Both return the same mask (asserted).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from smoea.search import Genome  # noqa: E402
from smoea.select import fit_to_budget  # noqa: E402
from test_fit import greedy_fit  # noqa: E402


def case(scale: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    widths = [3840, 160] * 7 + [2304, 96] * 25 + [1280]
    units = [max(2, int(w * scale)) for w in widths]
    genome = Genome(list(range(len(units))), units, [1] * len(units))
    order = [rng.permutation(u) for u in units]
    o = genome.offsets

    def count(x):
        kept = np.add.reduceat(x.astype(float), o[:-1])
        return float(kept.sum() + (kept[:-1] * kept[1:]).sum() * 1e-3)

    x = rng.random(genome.n_var) < 0.5
    return x, genome, count, 0.9 * count(np.ones(genome.n_var, bool)), order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="0.05,0.1,0.25,1.0")
    parser.add_argument("--old-up-to", type=float, default=0.25)
    args = parser.parse_args()
    print("| scale | units | bisection s | one-step greedy s |")
    print("|---|---|---|---|")
    for scale in (float(s) for s in args.scales.split(",")):
        x, genome, count, target, order = case(scale)
        start = time.perf_counter()
        new = fit_to_budget(x, genome, count, target, target, order)
        new_s = time.perf_counter() - start
        old_s = "not run"
        if scale <= args.old_up_to:
            start = time.perf_counter()
            old = greedy_fit(x, genome, count, target, target, order)
            old_s = f"{time.perf_counter() - start:.2f}"
            assert (old == new).all(), "the bisection and the greedy disagree"
        print(f"| {scale} | {genome.n_var} | {new_s:.3f} | {old_s} |")


if __name__ == "__main__":
    main()
