"""One SGD loop for training a baseline and for fine-tuning a pruned model, plus evaluation."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from smoea import distributed, interrupt
from smoea.config import option
from smoea.data import Splits, TensorData, batches
from smoea.errors import SmoeaError


@dataclass
class TrainConfig:
    """SGD with Nesterov momentum; `lr` is the peak rate of the schedule."""

    epochs: int = option(30, "epochs")
    batch_size: int = option(128, "images per batch")
    lr: float = option(0.1, "peak learning rate of SGD")
    momentum: float = 0.9
    weight_decay: float = option(5e-4, "SGD weight decay")
    schedule: str = option(
        "onecycle",
        "learning-rate schedule: onecycle | cosine | step (x0.1 at 60% and 80% of the epochs, "
        "Torch-Pruning's CIFAR fine-tune recipe)",
    )
    label_smoothing: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


# distillation defaults, chosen on validation after 10 epochs (benchmarks/results/recovery)
DISTILL_TEMPERATURE = 4.0
DISTILL_WEIGHT = 0.5


@dataclass
class Distill:
    """Distillation from a frozen teacher: the loss is (1 - weight) * label loss + weight * T^2 *
    KL(teacher || student) on logits softened by the temperature T (Hinton et al., 2015). The
    teacher runs once per step on the student's own augmented batch, in eval mode, without
    gradients; its weights and BatchNorm statistics never change."""

    teacher: nn.Module
    temperature: float = DISTILL_TEMPERATURE
    weight: float = DISTILL_WEIGHT

    def validate(self) -> None:
        if not self.temperature > 0:
            raise SmoeaError(f"--distill-temperature must be > 0, got {self.temperature}")
        if not 0 <= self.weight <= 1:
            raise SmoeaError(f"--distill-weight must be in [0, 1], got {self.weight}")

    def prepare(self, device: torch.device) -> None:
        self.teacher.to(device).to(memory_format=torch.channels_last).eval()
        self.teacher.requires_grad_(False)

    def loss(self, logits: torch.Tensor, hard: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The mixed loss; with weight 0 exactly the label loss (the teacher is not run)."""
        if self.weight == 0:
            return hard
        with torch.no_grad(), autocast(x.device):
            target = self.teacher(x).float()
        t = self.temperature
        soft = F.kl_div(
            F.log_softmax(logits / t, 1),
            F.log_softmax(target / t, 1),
            log_target=True,
            reduction="batchmean",
        )
        return (1 - self.weight) * hard + self.weight * t * t * soft


class TrainingDiverged(SmoeaError):
    """The loss became NaN or infinite; the model holds its last good weights."""


def autocast(device: torch.device):
    """bf16 mixed precision on a GPU, plain float32 on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum, as every training and fine-tuning in smoea uses."""
    return torch.optim.SGD(
        model.parameters(),
        cfg.lr,
        momentum=cfg.momentum,
        nesterov=True,
        weight_decay=cfg.weight_decay,
    )


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=max(1, steps))
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    if (
        cfg.schedule == "step"
    ):  # Torch-Pruning's CIFAR recipe: x0.1 at 60% and 80% (epochs 60, 80 of 100)
        milestones = [int(0.6 * steps), int(0.8 * steps)]
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
    raise SmoeaError(f"unknown schedule {cfg.schedule!r}; choose onecycle, cosine or step")


def train(
    model: nn.Module,
    splits: Splits,
    cfg: TrainConfig,
    device: torch.device,
    seed: int = 0,
    desc: str = "train",
    on_epoch: Callable[[dict, dict], None] | None = None,
    resume: dict | None = None,
    distill: Distill | None = None,
) -> list[dict]:
    """Train in place; returns one record per epoch (loss, train and validation accuracy, time).

    With `distill`, the label loss is mixed with distillation from its frozen teacher.

    `on_epoch(record, state)` gets the optimiser and schedule state after every epoch; passing
    that state back as `resume` continues exactly where it stopped (every epoch draws its own
    seeded shuffle and augmentation, so a resumed run equals an uninterrupted one on the CPU).
    """
    model.to(device).to(memory_format=torch.channels_last)
    if distill is not None:
        distill.validate()
        distill.prepare(device)
    opt = make_optimizer(model, cfg)
    net = model  # under torchrun: DistributedDataParallel, each rank on its shard of a batch
    if distributed.world() > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    steps_per_epoch = math.ceil(len(splits.train) / cfg.batch_size)
    sched = make_scheduler(opt, cfg, cfg.epochs * steps_per_epoch)
    history = []
    if resume is not None:
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        history = list(resume["history"])
    for epoch in range(len(history), cfg.epochs):
        data_seed = seed * 100_003 + epoch
        generator = torch.Generator().manual_seed(data_seed)
        lr_start = opt.param_groups[0]["lr"]
        record = _train_epoch(net, splits, cfg, opt, sched, device, generator, desc, epoch, distill)
        record.update(data_seed=data_seed, lr_start=lr_start, distill=_distill_record(distill))
        record["val_accuracy"] = evaluate(model, splits.val, splits, device)["accuracy"]
        history.append(record)
        if on_epoch is not None:
            state = {
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "history": history,
            }
            on_epoch(record, state)
    return history


def train_step(model, x, y, opt, sched, cfg: TrainConfig, distill: Distill | None = None):
    """One SGD step on a batch (label loss, mixed with distillation when given); returns the
    logits and the loss, both still on the device (no host sync)."""
    with autocast(x.device):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
    if distill is not None:
        loss = distill.loss(logits.float(), loss, x)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return logits, loss


def _distill_record(distill: Distill | None) -> dict | bool:
    if distill is None:
        return False
    return {"temperature": distill.temperature, "weight": distill.weight}


def _train_epoch(model, splits, cfg, opt, sched, device, generator, desc, epoch, distill) -> dict:
    """One epoch; `model` may be a DistributedDataParallel wrapper."""
    model.train()
    last_good = copy.deepcopy(model.state_dict())
    start, seen = time.perf_counter(), 0
    loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
    bar = tqdm(
        batches(splits.train, cfg.batch_size, splits.mean, splits.std, device, generator),
        total=math.ceil(len(splits.train) / cfg.batch_size),
        desc=f"{desc} {epoch + 1}/{cfg.epochs}",
        leave=False,
        dynamic_ncols=True,
    )
    rows = distributed.my_rows()
    for step, (x, y) in enumerate(bar):
        x, y = x[rows], y[rows]  # the whole batch under one process
        logits, loss = train_step(model, x, y, opt, sched, cfg, distill)
        loss_sum += loss.detach() * len(y)  # summed on the device: no host sync per step
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if step % 20 == 0:  # one host sync every 20 steps for the bar and the NaN check
            interrupt.check()
            if not torch.isfinite(loss_sum):
                model.load_state_dict(last_good)
                raise TrainingDiverged(
                    f"{desc}: loss became {loss_sum.item()} in epoch {epoch + 1}; weights rolled "
                    "back to the last good epoch (lower the learning rate)"
                )
            bar.set_postfix(
                loss=f"{loss_sum.item() / seen:.3f}", acc=f"{correct.item() / seen:.3f}"
            )
    if not torch.isfinite(loss_sum):
        model.load_state_dict(last_good)
        raise TrainingDiverged(f"{desc}: loss became non-finite in epoch {epoch + 1}; rolled back")
    return {
        "epoch": epoch + 1,
        "steps": step + 1,
        "loss": loss_sum.item() / seen,
        "train_accuracy": correct.item() / seen,
        "seconds": time.perf_counter() - start,
    }


def what_ran(history: list[dict]) -> dict:
    """What a training run actually executed, from its epoch records (not from its config):
    epochs, optimiser steps, the learning rate at each epoch's first step, the data-order seeds
    and whether distillation was on. Comparisons check these agree across methods."""
    return {
        "epochs": len(history),
        "steps": sum(r.get("steps", 0) for r in history),
        "lr_start": [r.get("lr_start") for r in history],
        "data_seeds": [r.get("data_seed") for r in history],
        "distill": next((r["distill"] for r in history if r.get("distill")), False),
    }


@torch.inference_mode()
def evaluate(
    model: nn.Module, data: TensorData, splits: Splits, device: torch.device, batch_size: int = 500
) -> dict:
    """Top-1 accuracy and mean cross-entropy on a split."""
    model.eval().to(device)
    loss, correct = torch.zeros((), device=device), torch.zeros((), device=device)
    for x, y in batches(data, batch_size, splits.mean, splits.std, device):
        with autocast(device):
            logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    n = max(1, len(data))
    return {"accuracy": correct.item() / n, "loss": loss.item() / n}
