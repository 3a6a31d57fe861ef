"""Counts, versions, compatibility checks and plots for reports."""

from __future__ import annotations

import platform
from pathlib import Path

import torch
import torch.nn as nn
import torch_pruning as tp

from smoea.errors import SmoeaError


def model_counts(model: nn.Module, image_shape: tuple[int, int, int]) -> dict:
    """Parameters and MACs from Torch-Pruning's counter: one counter for every method."""
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    macs, params = tp.utils.count_ops_and_params(model, torch.zeros(1, *image_shape, device=device))
    model.train(was_training)
    return {"params": int(params), "macs": int(macs)}


def model_figures(model: nn.Module, splits, device, held_out=None) -> dict:
    """What prune, evaluate and compare report of a model: test accuracy and loss, parameters
    and MACs; with `held_out` (the validation images outside the search set, the fair ones to
    choose settings by) also the validation accuracy on the whole split and on those."""
    from smoea.train import evaluate

    model.eval()
    figures = {}
    if held_out is not None:
        figures["val_accuracy"] = evaluate(model, splits.val, splits, device)["accuracy"]
        figures["held_out_val_accuracy"] = evaluate(model, held_out, splits, device)["accuracy"]
    test = evaluate(model, splits.test, splits, device)
    figures.update(test_accuracy=test["accuracy"], test_loss=test["loss"])
    return {**figures, **model_counts(model, splits.image_shape)}


def versions() -> dict:
    import numpy
    import pymoo

    import smoea

    return {
        "smoea": smoea.__version__,
        **source_commit(),
        "torch": torch.__version__,
        "torch_pruning": tp.__version__,
        "pymoo": pymoo.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }


def source_commit() -> dict:
    """The git commit of the code that ran and whether its tree had changes: a result can be
    tied to its code. Both None when smoea is not run from a git checkout."""
    import subprocess

    import smoea

    where = Path(smoea.__file__).resolve().parent
    try:
        git = lambda *a: subprocess.run(  # noqa: E731
            ["git", *a], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def check_compatible(record: dict, splits, path) -> None:
    """A data set must match the checkpoint's classes and image shape."""
    arch = record.get("arch")
    if arch is None:
        return
    c, h, _ = splits.image_shape
    if arch["num_classes"] != splits.num_classes:
        raise SmoeaError(
            f"checkpoint {path} has {arch['num_classes']} classes but the data set "
            f"has {splits.num_classes}"
        )
    if arch["in_channels"] != c or arch["image_size"] != h:
        raise SmoeaError(
            f"checkpoint {path} expects {arch['in_channels']}x{arch['image_size']}px "
            f"images but the data set has {c}x{h}px"
        )


def plot_report(report: dict, out) -> None:
    """fronts.png (each group's front, chosen point marked) and filters.png (per layer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _plot_fronts(plt, report, f"{out}/fronts.png")

    fig, ax = plt.subplots(figsize=(7, 3))
    before, after = report["filters_before"], report["filters_after"]
    idx = range(1, len(before) + 1)
    ax.bar([i - 0.2 for i in idx], before, width=0.4, label="before")
    ax.bar([i + 0.2 for i in idx], after, width=0.4, label="after")
    ax.set_xlabel("conv layer")
    ax.set_ylabel("filters")
    ax.set_xticks(list(idx))
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{out}/filters.png", dpi=110)
    plt.close(fig)


def _plot_fronts(plt, report: dict, path: str) -> None:
    """One column per group; one row per pair of objectives (three rows for three objectives)."""
    groups = report["groups"]
    names = report.get("objectives") or ["error", "params"]
    pairs = [(1, 0)] if len(names) == 2 else [(1, 0), (2, 0), (1, 2)]
    fig, axes = plt.subplots(
        len(pairs), len(groups), figsize=(3.2 * len(groups), 3 * len(pairs)), squeeze=False
    )
    for col, group in enumerate(groups):
        front = [tuple(p) for p in group["front"]]
        for row, (x, y) in enumerate(pairs):
            ax = axes[row][col]
            if front:
                ax.scatter([p[x] for p in front], [p[y] for p in front], s=12, label="front")
            chosen = group["chosen"]
            ax.scatter([chosen[x]], [chosen[y]], marker="*", s=120, c="red", label="chosen")
            ax.set_title(f"conv {group['layers'][0]}-{group['layers'][-1]}")
            ax.set_xlabel(_axis_label(names[x]))
            ax.set_ylabel(_axis_label(names[y]))
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _axis_label(name: str) -> str:
    return {"error": "search-set error", "loss": "search-set loss"}.get(name, f"{name} (fraction)")
