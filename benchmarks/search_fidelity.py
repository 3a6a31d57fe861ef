"""How well does the search set rank candidates? Search-set size and objective against the
full validation split.

Usage: python benchmarks/search_fidelity.py BASE_MODEL.pt DATA [candidates]

For two groups of vgg14 (conv 1-2 and conv 8-10) it draws candidate masks the way the search's
initial population does (L1 top-k over the allowed range, and random masks), scores each on every
one of the 5,000 validation images once, and reports, per search-set size (250 ... 5,000) and
objective (error, loss), the Spearman rank correlation between the search-set f1 and the error on
the whole validation split. No test image is read. The figures do not depend on timing.
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F

import smoea
from smoea.data import load_splits, normalize
from smoea.structure import Structure, split_at

SIZES = (250, 500, 1000, 2000, 5000)
GROUPS = {"conv 1-2": [0, 1], "conv 8-10": [7, 8, 9]}


def candidates(s: Structure, layers: list[int], n: int, rng) -> list[dict]:
    masks = []
    for k in range(n):
        mask = {}
        for i in layers:
            units = s.layers[i].units
            if k % 2 == 0:  # L1 top-k, k spread over [5%, 100%]
                keep = max(1, int(round(units * rng.uniform(0.05, 1.0))))
                order = np.argsort(-s.l1_norms(i), kind="stable")
                m = np.zeros(units, bool)
                m[order[:keep]] = True
            else:  # random masks with a random keep probability
                m = rng.random(units) < rng.uniform(0.2, 1.0)
                m[rng.integers(units)] = True
            mask[i] = m
        masks.append(mask)
    return masks


@torch.inference_mode()
def per_image_scores(s: Structure, layers: list[int], masks: list[dict], val, mean, std):
    """(wrong, loss) per candidate and validation image: the sub-network from the group on."""
    prefix, suffix = split_at(s.model, s.layers[layers[0]].conv)
    feats = torch.cat(
        [prefix(normalize(val.x[i : i + 500], mean, std)) for i in range(0, len(val), 500)]
    )
    wrong, loss = [], []
    with s.masking():
        for mask in masks:
            s.set_masks(mask)
            logits = torch.cat([suffix(feats[i : i + 500]) for i in range(0, len(feats), 500)])
            wrong.append((logits.argmax(1) != val.y).float().numpy())
            loss.append(F.cross_entropy(logits, val.y, reduction="none").numpy())
    return np.array(wrong), np.array(loss)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main(model_path: str, data: str, n: int = 40) -> None:
    record = torch.load(model_path, weights_only=True)
    model = smoea.load(model_path)
    splits = load_splits("cifar10", data, 5000, 0)
    mean, std = record["normalize"]["mean"], record["normalize"]["std"]
    s = Structure(model, torch.zeros(1, *splits.image_shape))
    rng = np.random.default_rng(0)
    print(
        f"{n} candidates per group; Spearman rank correlation with the error on all 5,000 "
        "validation images (mean over 5 draws of the search set)"
    )
    for name, layers in GROUPS.items():
        masks = candidates(s, layers, n, rng)
        wrong, loss = per_image_scores(s, layers, masks, splits.val, mean, std)
        reference = wrong.mean(1)
        print(
            f"{name}: full-validation error of the candidates "
            f"{reference.min():.3f}-{reference.max():.3f}"
        )
        for size in SIZES:
            row = []
            for objective, scores in (("error", wrong), ("loss", loss)):
                rhos = []
                for draw in range(5 if size < len(splits.val) else 1):
                    idx = torch.randperm(
                        len(splits.val), generator=torch.Generator().manual_seed(draw + 7919)
                    )[:size]
                    rhos.append(spearman(scores[:, idx.numpy()].mean(1), reference))
                row.append(f"{objective} {np.mean(rhos):.3f} (min {np.min(rhos):.3f})")
            print(f"  search set {size:5d}: " + ", ".join(row))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 40)
