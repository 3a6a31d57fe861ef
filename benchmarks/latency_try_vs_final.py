"""Does a matching try prune the same model as the finished run of its setting? (issue "Real speed")

Usage: python benchmarks/latency_try_vs_final.py RECORD [CHECKPOINT]

RECORD: a run record of `latency_evidence.sh` (smoea compare --target-latency, a method matched
by measuring, e.g. runs/.../smoea-macs-seed0.json); CHECKPOINT: its baseline (default: the
resnet20 baseline). Prunes the baseline again at the record's chosen setting without
fine-tuning, as a matching try does (the cell's flags, the record's target, batch and seed),
and prints the filters kept beside the finished run's: equal means a finished run that
measures off its try differs by measurement alone. Times nothing.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import torch

from smoea import latency, methods
from smoea.checkpoint import load_model_file
from smoea.cli.commands import _splits, model_from_record
from smoea.cli.flags import parse_args, prune_config
from smoea.compare import _at_setting
from smoea.structure import Structure

RESNET20 = "benchmarks/results/beyond-vgg/baselines/resnet20/model.pt"


def main() -> None:
    run = json.loads(open(sys.argv[1]).read())
    checkpoint = sys.argv[2] if len(sys.argv) > 2 else RESNET20
    name = sys.argv[1].rsplit("/", 1)[-1].rsplit("-seed", 1)[0]
    c = run["config"]
    args = parse_args(
        ["compare", "--checkpoint", checkpoint, "--dataset", "cifar10",
         "--data", "../shared/data/cifar10-jpeg.tar.gz",
         "--target-latency", str(c["target_latency"]), "--latency-batch", str(c["latency_batch"]),
         "--methods", name, "--genome", "counts",
         "--budget", "auto", "--finetune-epochs", "0", "--final-epochs", "3",
         "--calibration-images", "128", "--out", "/tmp/latency-try-vs-final"]
    )  # fmt: skip
    config = replace(prune_config(args), seed=run["seed"])
    record, _ = load_model_file(checkpoint)
    splits = _splits(args, record)
    if "normalize" in record:
        splits.mean, splits.std = record["normalize"]["mean"], record["normalize"]["std"]
    cpu = torch.device("cpu")
    s = Structure(model_from_record(record, checkpoint).eval(), torch.zeros(1, *splits.image_shape))
    at = _at_setting(config, name, run["latency_match"]["setting"])
    dry = replace(at, finetune=replace(at.finetune, epochs=0), final=replace(at.final, epochs=0))
    # a MAC-target method (smoea-macs) needs no latency table; one with a latency target does
    table = latency.table_for(s, c["latency_batch"], cpu) if dry.uses_latency else None
    with latency.active(table), methods.pruning_only():
        info, _ = methods.run_method(name, model_from_record(record, checkpoint), splits, dry, cpu)
    print("finished run:", run["filters_after"])
    print("try again:   ", info["filters_after"])
    print("same filters:", run["filters_after"] == info["filters_after"])


if __name__ == "__main__":
    main()
