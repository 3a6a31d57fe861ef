"""Does the search score rank candidates the way a short fine-tune does? With and without
adaptive BatchNorm, at two calibration sizes.

Usage: python benchmarks/calibration_fidelity.py BASE_MODEL.pt DATA OUT_DIR [candidates] [steps]

For an early (conv 1-2) and a late (conv 8-10) group of the vgg14 baseline it draws candidates
(each layer of the group keeps a random 15-85% of its filters, half by L1 rank, half at random),
scores each on the 500-image search set the way the search does (sub-network, sliced), without
calibration and with 128 and 512 calibration images from the training split, then removes the
filters for real, fine-tunes the pruned model for `steps` SGD steps of 128 training images
(lr 0.01, cosine; the same images and order for every candidate) and measures its accuracy on
the 4,500 validation images outside the search set. Printed: the Spearman rank correlation
between each score and that accuracy. No test image is read. Results are kept per candidate in
OUT_DIR/candidates.json, so an interrupted run continues.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import smoea
from smoea.data import Splits, calibration_set, draw_subset, load_splits, outside_subset
from smoea.evaluator import make_evaluator
from smoea.search import Genome
from smoea.structure import Structure
from smoea.train import TrainConfig, train

GROUPS = {"conv 1-2": [0, 1], "conv 8-10": [7, 8, 9]}
CALIBRATION = (0, 128, 512)


def candidate_masks(s: Structure, layers: list[int], n: int, rng) -> list[dict]:
    masks = []
    for k in range(n):
        mask = {}
        for i in layers:
            units = s.layers[i].units
            keep = max(1, int(round(units * rng.uniform(0.15, 0.85))))
            order = (
                np.argsort(-s.l1_norms(i), kind="stable") if k % 2 == 0 else rng.permutation(units)
            )
            m = np.zeros(units, bool)
            m[order[:keep]] = True
            mask[i] = m
        masks.append(mask)
    return masks


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def scores(model, splits, search, layers, masks, images: int) -> list[float]:
    s = Structure(model, torch.zeros(1, *splits.image_shape))
    genome = Genome(layers, [s.layers[i].units for i in layers], [1] * len(layers))
    calib = calibration_set(splits.train, images, 0) if images else None
    ev = make_evaluator(s, genome, search, splits.mean, splits.std, "error", 500, calib)
    return ev.score_masks(masks).tolist()


def finetuned_accuracy(model, splits, held_out, mask, steps: int, seed: int = 0) -> float:
    """Held-out accuracy after removing `mask` and `steps` SGD steps of 128 training images
    (lr 0.01, cosine; the same images and order for every candidate of one seed)."""
    pruned = copy.deepcopy(model)
    Structure(pruned, torch.zeros(1, *splits.image_shape)).remove(mask)
    subset = splits.train.subset(torch.arange(steps * 128))
    tune = Splits(subset, held_out, None, splits.classes, splits.mean, splits.std)
    cfg = TrainConfig(epochs=1, lr=0.01, schedule="cosine")
    history = train(pruned, tune, cfg, torch.device("cpu"), seed=seed, desc="short fine-tune")
    return history[-1]["val_accuracy"]


def main(model_path: str, data: str, out: str, n: int = 40, steps: int = 80) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    done_file = out_dir / "candidates.json"
    done = json.loads(done_file.read_text()) if done_file.exists() else {}
    model = smoea.load(model_path).eval()
    splits = load_splits("cifar10", data, 5000, 0)
    search = draw_subset(splits.val, 500, 0)
    held_out = outside_subset(splits.val, 500, 0)
    rng = np.random.default_rng(0)
    print(
        f"{n} candidates per group; fine-tune {steps} steps of 128 ({steps * 128} images, "
        f"{steps * 128 / len(splits.train):.2f} epoch); accuracy on {len(held_out)} held-out "
        "validation images"
    )
    for name, layers in GROUPS.items():
        masks = candidate_masks(Structure(model, torch.zeros(1, 3, 32, 32)), layers, n, rng)
        rows = done.setdefault(name, {})
        if "scores" not in rows:
            start = time.perf_counter()
            rows["scores"] = {
                str(c): scores(model, splits, search, layers, masks, c) for c in CALIBRATION
            }
            rows["score_seconds"] = time.perf_counter() - start
        accs = rows.setdefault("accuracy", [])
        for k in range(len(accs), n):
            accs.append(finetuned_accuracy(model, splits, held_out, masks[k], steps))
            done_file.write_text(json.dumps(done, indent=1))
            print(f"  {name} candidate {k + 1}/{n}: held-out accuracy {accs[-1]:.4f}", flush=True)
        done_file.write_text(json.dumps(done, indent=1))
        acc = np.array(accs)
        print(
            f"{name}: held-out accuracy after the short fine-tune {acc.min():.3f}-{acc.max():.3f}"
        )
        for c in CALIBRATION:
            err = np.array(rows["scores"][str(c)])
            rho = spearman(-err, acc)
            label = "no calibration" if c == 0 else f"calibration {c} images"
            print(
                f"  {label:>24}: search-set error {err.min():.3f}-{err.max():.3f}, "
                f"Spearman {rho:.3f}"
            )


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], args[2], *(int(a) for a in args[3:]))
