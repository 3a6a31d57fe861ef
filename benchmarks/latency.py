"""CPU latency of a baseline and its pruned model, next to their MAC ratio.

Usage: python benchmarks/latency.py BASE_MODEL.pt PRUNED_MODEL.pt [repeats] [rounds]
Run it with nothing else on the machine. Prints batch-1 and batch-64 medians and the speedups:
each model's time is the median over `rounds` (default 5) rounds that alternate the two models,
each round the median of `repeats` passes, so that a drift of the machine hits both alike.
"""

import statistics
import sys

import torch

import smoea
from smoea.deploy import measure_latency
from smoea.report import model_counts


def main(base_path: str, pruned_path: str, repeats: int = 50, rounds: int = 5) -> None:
    shape = tuple(torch.load(base_path, weights_only=True).get("image_shape") or (3, 32, 32))
    models = {"baseline": smoea.load(base_path), "pruned": smoea.load(pruned_path)}
    runs = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            runs[name].append(measure_latency(model, shape, "cpu", (1, 64), repeats, warmup=10))
    rows = {}
    for name, model in models.items():
        rows[name] = {**model_counts(model, shape), "threads": runs[name][0]["threads"]}
        for key in ("batch_1_ms", "batch_64_ms"):
            rows[name][key] = statistics.median(r[key] for r in runs[name])
    b, p = rows["baseline"], rows["pruned"]
    print(
        f"torch {torch.__version__}, {b['threads']} threads, input {shape}, "
        f"median of {rounds} alternating rounds of {repeats} passes"
    )
    for name, r in rows.items():
        print(
            f"{name:9s} params {r['params']:>10,}  MACs {r['macs']:>12,}  "
            f"batch 1 {r['batch_1_ms']:8.2f} ms  batch 64 {r['batch_64_ms']:8.2f} ms"
        )
    print(
        f"MAC ratio pruned/baseline: {p['macs'] / b['macs']:.3f} (ideal speedup "
        f"{b['macs'] / p['macs']:.2f}x)"
    )
    for batch in (1, 64):
        key = f"batch_{batch}_ms"
        print(f"speedup at batch {batch}: {b[key] / p[key]:.2f}x")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[3:5]]
    main(sys.argv[1], sys.argv[2], *args)
