"""The whole SMOEA search of one model, before and after "Search where the cuts are".

Usage: python benchmarks/search_time.py [--model resnet56] [--target-macs 0.5] [--seed 0]
           [--configs old,new]

old: every group searched pop x generations (--effort fixed), candidates scored masked (what
non-chain models got before); new: the defaults (effort follows the plan, sliced-graph scoring).
Random weights (seeded) and random 32 px images of 10 classes stand in for a trained model and
CIFAR-10: the time per candidate does not depend on the weights, but a trained model's search
may find other shares and so other group efforts. No fine-tuning (--final-epochs 0). Prints the
search seconds (plans included), evaluations and each group's scoring; nothing else may run.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform

import torch

from smoea.data import TensorData
from smoea.models import build_model, make_arch
from smoea.pipeline import prune
from smoea.prune_config import PruneConfig
from smoea.train import TrainConfig

CONFIGS = {
    "old": {"effort": "fixed", "scoring": "masked"},
    "new": {},
}


def images(n: int, seed: int) -> TensorData:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)
    return TensorData(x, torch.randint(0, 10, (n,), generator=gen))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet56")
    parser.add_argument("--target-macs", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", default="old,new")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model = build_model(make_arch(args.model, 1.0, 10, 3, 32)).eval()
    train, val = images(2000, 1), images(1000, 2)
    print(
        f"{args.model}, random weights, --target-macs {args.target_macs}, seed {args.seed}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}"
    )
    for name in args.configs.split(","):
        config = PruneConfig(
            target_macs=args.target_macs,
            target_params=None,
            seed=args.seed,
            final=TrainConfig(epochs=0),
            **CONFIGS[name],
        )
        _, report = prune(copy.deepcopy(model), train, val, config, "cpu", log=lambda m: None)
        groups = [
            {
                "layers": f"{g['layers'][0]}-{g['layers'][-1]}",
                "evaluator": g["evaluator"],
                "searched": g["effort"]["searched"],
                "evaluations": g["evaluations"],
                "seconds": round(g["seconds"], 1),
            }
            for g in report["groups"]
        ]
        print(
            f"{name}: search {report['search_seconds']:.1f} s (plans {report['plan_seconds']:.1f} s"
            f", {report['plan_evaluations']} evaluations), group evaluations "
            f"{sum(g['evaluations'] for g in report['groups'])}, MACs ratio "
            f"{report['macs_ratio']:.4f}"
        )
        print("  " + json.dumps(groups), flush=True)


if __name__ == "__main__":
    main()
