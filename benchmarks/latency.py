"""CPU latency of a baseline and its pruned model, next to their MAC ratio.

Usage: python benchmarks/latency.py BASE_MODEL.pt PRUNED_MODEL.pt [repeats]
Run it with nothing else on the machine. Prints batch-1 and batch-64 medians and the speedups.
"""

import sys

import torch

import smoea
from smoea.deploy import measure_latency
from smoea.report import model_counts


def main(base_path: str, pruned_path: str, repeats: int = 50) -> None:
    shape = tuple(torch.load(base_path, weights_only=True).get("image_shape") or (3, 32, 32))
    rows = {}
    for name, path in (("baseline", base_path), ("pruned", pruned_path)):
        model = smoea.load(path)
        rows[name] = {
            **model_counts(model, shape),
            **measure_latency(model, shape, "cpu", (1, 64), repeats=repeats, warmup=10),
        }
    b, p = rows["baseline"], rows["pruned"]
    print(f"torch {torch.__version__}, {b['threads']} threads, input {shape}, {repeats} repeats")
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
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 50)
