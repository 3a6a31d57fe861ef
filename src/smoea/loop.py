"""Bring your own loop: `smoea.prune` with the user's data loaders, score and fine-tuning.

A data loader here is any iterable of `(images, labels)` batches whose images are already
transformed and normalised float tensors (a torch DataLoader over a torchvision ImageFolder,
say). The search set and the calibration images are taken from the loaders once; fine-tuning
either runs the user's `finetune(model, step)` or the built-in SGD loop over the train loader.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from smoea import interrupt
from smoea.data import TensorData
from smoea.errors import SmoeaError
from smoea.train import Distill, TrainConfig, autocast, make_optimizer, make_scheduler, train_step


@dataclass
class UserLoop:
    """What the user's own loop brings to a prune (see `smoea.prune`)."""

    train: Iterable | None = None  # batches for the built-in fine-tuning and calibration
    val: Iterable | None = None  # validation batches; the search set comes from them
    search: Iterable | None = None  # the batches candidates are scored on (default: from val)
    score: Callable[[nn.Module, list], float] | None = None  # f1 instead of the error
    higher_is_better: bool = False  # the score is maximised (accuracy, mAP)
    finetune: Callable[[nn.Module, int], None] | None = None  # replaces the built-in one


def take(batches: Iterable, limit: int) -> TensorData:
    """The first `limit` images of a loader, in memory (float images, int64 labels)."""
    xs, ys, n = [], [], 0
    for batch in batches:
        x, y = _pair(batch)
        xs.append(x.detach().float().cpu())
        ys.append(torch.as_tensor(y).long().cpu())
        n += len(ys[-1])
        if n >= limit:
            break
    if not xs:
        raise SmoeaError("a data loader given to smoea.prune yielded no batches")
    return TensorData(torch.cat(xs)[:limit], torch.cat(ys)[:limit])


def _pair(batch):
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise SmoeaError("data loaders must yield (images, labels) batches")
    return batch[0], batch[1]


def chunks(data: TensorData, batch_size: int, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`data` as a list of batches on `device` (what a user's score function receives)."""
    return [
        (data.x[i : i + batch_size].to(device), data.y[i : i + batch_size].to(device))
        for i in range(0, len(data), batch_size)
    ]


def train_batches(
    model: nn.Module,
    loader: Iterable,
    cfg: TrainConfig,
    device: torch.device,
    distill: Distill | None = None,
    val: Iterable | None = None,
) -> list[dict]:
    """The built-in fine-tuning (SGD, Nesterov, cfg's schedule) over a user's train loader."""
    if loader is None or not hasattr(loader, "__len__"):
        raise SmoeaError(
            "the built-in fine-tuning needs a train loader with len(); or pass finetune="
        )
    model.to(device)
    if distill is not None:
        distill.validate()
        distill.prepare(device)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, cfg.epochs * max(1, len(loader)))
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        start, lr_start, steps = time.perf_counter(), opt.param_groups[0]["lr"], 0
        loss_sum = torch.zeros((), device=device)
        for batch in loader:
            x, y = (t.to(device) for t in _pair(batch))
            _, loss = train_step(model, x, y, opt, sched, cfg, distill)
            steps += 1
            loss_sum += loss.detach()  # on the device: no host sync per step
            if steps % 20 == 0:
                interrupt.check()
        model.eval()
        history.append(
            {
                "epoch": epoch + 1,
                "steps": steps,
                "loss": loss_sum.item() / max(1, steps),
                "seconds": time.perf_counter() - start,
                "data_seed": None,  # the user's loader decides the order
                "lr_start": lr_start,
                "distill": False
                if distill is None
                else {"temperature": distill.temperature, "weight": distill.weight},
                "val_accuracy": None
                if val is None
                else evaluate_batches(model, val, device)["accuracy"],
            }
        )
    return history


@torch.inference_mode()
def evaluate_batches(model: nn.Module, batches: Iterable, device: torch.device) -> dict:
    """Top-1 accuracy and mean cross-entropy over a user's loader."""
    model.eval()
    correct, loss, n = 0, 0.0, 0
    for batch in batches:
        x, y = (t.to(device) for t in _pair(batch))
        with autocast(device):
            logits = model(x).float()
        correct += int((logits.argmax(1) == y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        n += len(y)
    return {"accuracy": correct / max(1, n), "loss": loss / max(1, n) if n else math.nan}
