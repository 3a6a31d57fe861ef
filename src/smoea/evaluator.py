"""f1 of candidate masks on a group's sub-network: sliced or masked, with adaptive BatchNorm.

A candidate runs only the sub-network from its group on, on features of the search set computed
once per group. Two ways to run it give the same logits (tested):

- *sliced*: a plain chain of modules (VGG's flat Sequential) is run functionally with each
  kept filter's weights sliced out, so a candidate computes only what it keeps;
- *masked*: any other model runs at full width with the dropped channels zeroed by hooks.

With calibration images (from the training split), every BatchNorm of the sub-network first
re-estimates its statistics with the candidate in place (adaptive BatchNorm, EagleEye): reset,
then a cumulative average over fixed batches, so a score never depends on evaluation order.
Without it a pruned candidate is scored with the unpruned network's statistics, which puts the
late groups' candidates near chance.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

from smoea import distributed
from smoea.data import TensorData, normalize
from smoea.slicing import SlicedGraph
from smoea.structure import Structure, split_at
from smoea.train import autocast

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
ELEMENTWISE = (
    nn.ReLU,
    nn.ReLU6,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.Identity,
)


class SubnetEvaluator:
    """f1 of candidate decision vectors; `__call__` takes a population X and returns f1 per row.

    `features` and `calibration` are the search set's and the calibration images' activations
    at the group's input; `suffix` is the rest of the model. Scores are cached per mask.
    """

    def __init__(
        self,
        structure: Structure,
        genome,
        suffix: nn.Module,
        features: torch.Tensor,
        labels: torch.Tensor,
        objective: str = "error",
        batch_size: int = 500,
        calibration: torch.Tensor | None = None,
        sliced: bool | None = None,
    ):
        self.structure, self.genome, self.suffix = structure, genome, suffix
        self.features, self.labels = features, labels
        self.objective, self.batch_size = objective, batch_size
        self.calibration = calibration if calibration is not None and len(calibration) else None
        self.runner, self.masked_because = None, "masked on request"
        if sliced is not False:
            self.runner, self.masked_because = _sliced_runner(suffix, structure)
        if sliced and self.runner is None:
            raise ValueError(f"this sub-network cannot slice: {self.masked_because}")
        self.cache: dict[bytes, float] = {}
        self.evaluations = 0
        self._macs: int | None = None  # counted once, when the plan effort asks

    @property
    def macs(self) -> int | None:
        """One image's MACs through the sub-network at the current widths: what a candidate
        costs, at most (the plan effort counts the search in these, see PruneConfig.effort)."""
        if self._macs is None:
            with torch.inference_mode():
                self._macs = int(tp.utils.count_ops_and_params(self.suffix, self.features[:1])[0])
        return self._macs

    @property
    def mode(self) -> str:
        if isinstance(self.runner, SlicedChain):
            return "sliced"
        return "sliced-graph" if self.runner is not None else "masked"

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """f1 for every row; masks seen before come from the cache."""
        keys = [np.packbits(x).tobytes() for x in X]
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        todo = [i for k, i in first.items() if k not in self.cache]
        if todo:
            values = self._evaluate(X[todo])
            for i, v in zip(todo, values):
                self.cache[keys[i]] = float(v)
        return np.array([self.cache[k] for k in keys])

    def score_masks(self, masks: list[dict[int, np.ndarray]]) -> np.ndarray:
        """f1 for candidates given as {layer index: keep mask} (layers outside the genome too).
        Under torchrun each rank scores its share and all get every score."""
        if distributed.world() > 1:
            mine = distributed.my_share(len(masks))
            local = self._score_local([masks[i] for i in mine]) if len(mine) else np.zeros(0)
            out = np.array(distributed.gathered(local.tolist()), dtype=float)
        else:
            out = self._score_local(masks)
        self.evaluations += len(masks)
        return out

    def _score_local(self, masks: list[dict[int, np.ndarray]]) -> np.ndarray:
        with torch.inference_mode():
            if self.runner is not None:
                out = [self._score_sliced(m) for m in masks]
            else:
                with self.structure.masking(), kept_norm_stats(self.suffix):
                    out = [self._score_masked(m) for m in masks]
        return torch.stack(out).float().cpu().numpy()  # one host sync per population

    def _evaluate(self, X: np.ndarray) -> np.ndarray:
        return self.score_masks([self.genome.split(x) for x in X])

    def _score_sliced(self, masks: dict[int, np.ndarray]) -> torch.Tensor:
        params = self.runner.slice(masks)
        if self.calibration is not None:
            params = self.runner.calibrate(params, self._chunks(self.calibration))
        return self._total(lambda x: self.runner.forward(params, x))

    def _score_masked(self, masks: dict[int, np.ndarray]) -> torch.Tensor:
        self.structure.set_masks(masks)
        if self.calibration is not None:
            recalibrate(self.suffix, self._chunks(self.calibration))
        return self._total(self.suffix)

    def _chunks(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x[i : i + self.batch_size] for i in range(0, len(x), self.batch_size)]

    def _total(self, forward) -> torch.Tensor:
        total = torch.zeros((), device=self.features.device)
        for start in range(0, len(self.labels), self.batch_size):
            x = self.features[start : start + self.batch_size]
            y = self.labels[start : start + self.batch_size]
            with autocast(x.device):
                logits = forward(x).float()
            if self.objective == "loss":
                total += F.cross_entropy(logits, y, reduction="sum")
            else:
                total += (logits.argmax(1) != y).sum()
        return total / len(self.labels)


def make_evaluator(
    structure: Structure,
    genome,
    search: TensorData,
    mean: list[float],
    std: list[float],
    objective: str = "error",
    batch_size: int = 500,
    calibration: TensorData | None = None,
    sliced: bool | None = None,
) -> SubnetEvaluator:
    """The search set's (and calibration images') features at the group's input, computed once;
    candidates run the rest. `calibration` must come from the training split."""
    model = structure.model
    prefix, suffix = split_at(model, structure.layers[genome.layers[0]].conv)
    device = next(model.parameters()).device
    features = prefix_features(prefix, search, mean, std, device, batch_size)
    calib = None
    if calibration is not None and len(calibration):
        calib = prefix_features(prefix, calibration, mean, std, device, batch_size)
    labels = search.y.to(device)
    return SubnetEvaluator(
        structure, genome, suffix, features, labels, objective, batch_size, calib, sliced
    )


@torch.inference_mode()
def prefix_features(prefix, data: TensorData, mean, std, device, batch_size: int) -> torch.Tensor:
    """The fixed layers' output on `data`, in eval mode (their statistics stay as they are)."""
    prefix.eval()
    feats = [
        prefix(normalize(data.x[i : i + batch_size].to(device), mean, std))
        for i in range(0, len(data), batch_size)
    ]
    return torch.cat(feats).contiguous(memory_format=torch.channels_last)


class ScoredEvaluator(SubnetEvaluator):
    """f1 from the user's `score(model, batches) -> float` (lower is better, or negated with
    `higher_is_better`): the whole model runs with the candidate's channels zeroed, so any
    metric works (mAP, a task loss), without the sub-network's speed-up. With calibration
    batches, the BatchNorm statistics are re-estimated per candidate and restored after."""

    def __init__(self, structure, genome, batches, score, higher_is_better=False, calibration=None):
        self.structure, self.genome, self.suffix = structure, genome, structure.model
        self.batches, self.score = batches, score
        self.sign = -1.0 if higher_is_better else 1.0
        self.calibration = calibration or None
        self.runner, self.cache, self.evaluations = None, {}, 0
        self.masked_because = "the user's score runs the whole model"

    @property
    def mode(self) -> str:
        return "scored"

    @property
    def macs(self) -> None:
        return None  # the user's score runs the whole model

    def _score_local(self, masks: list[dict[int, np.ndarray]]) -> np.ndarray:
        model, out = self.structure.model, []
        with torch.inference_mode(), self.structure.masking(), kept_norm_stats(model):
            for m in masks:
                self.structure.set_masks(m)
                if self.calibration is not None:
                    recalibrate(model, self.calibration)
                model.eval()
                out.append(self.sign * float(self.score(model, self.batches)))
        return np.array(out)


# ---- adaptive BatchNorm on the module itself (masked path) -----------------------------------


def norm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, NORMS) and m.track_running_stats]


@contextmanager
def kept_norm_stats(module: nn.Module):
    """Restore every BatchNorm's running statistics (and counter) on exit, whatever happened."""
    saved = [
        (m, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
        for m in norm_layers(module)
    ]
    try:
        yield
    finally:
        for m, mean, var, count in saved:
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)


def recalibrate(module: nn.Module, chunks: list[torch.Tensor]) -> None:
    """Reset the BatchNorm statistics of `module` and re-estimate them on `chunks` as a
    cumulative average (momentum None); only the BatchNorm layers switch to train mode."""
    norms = norm_layers(module)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for x in chunks:
            module(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            m.eval()


# ---- the sliced chain -------------------------------------------------------------------------


def _sliced_runner(suffix: nn.Module, structure: Structure):
    """The fastest runner that computes only what a candidate keeps: the plain chain, else the
    dependency graph's slicing; (None, the reason) when neither applies."""
    chain = SlicedChain.build(suffix, structure)
    if chain is not None:
        return chain, ""
    graph, reason = SlicedGraph.build(suffix, structure)
    return graph, reason


class SlicedChain:
    """A chain of Conv2d, BatchNorm, Linear and element-wise modules run with sliced weights.

    Each convolution that roots a layer keeps the filters its mask keeps; the BatchNorm after it
    and the input channels of the next convolution or Linear follow. Only plain chains qualify
    (`build` returns None otherwise), where this coupling is the whole story.
    """

    def __init__(self, modules: list[nn.Module], layer_of: dict[nn.Module, int]):
        self.modules, self.layer_of = modules, layer_of

    @classmethod
    def build(cls, suffix: nn.Module, structure: Structure) -> SlicedChain | None:
        modules = list(suffix) if isinstance(suffix, nn.Sequential) else [suffix]
        flat: list[nn.Module] = []
        for m in modules:
            if isinstance(m, nn.Sequential):
                flat += list(m)
            else:
                flat.append(m)
        for m in flat:
            plain_conv = isinstance(m, nn.Conv2d) and m.groups == 1
            if not (plain_conv or isinstance(m, (nn.Linear, *NORMS, *ELEMENTWISE))):
                return None
        layer_of = {layer.conv: layer.index for layer in structure.layers}
        return cls(flat, layer_of)

    def slice(self, masks: dict[int, np.ndarray]) -> list:
        """Per module: its sliced tensors (or None for element-wise modules)."""
        params: list = []
        idx = None  # kept indices of the channels flowing into the next module
        for m in self.modules:
            if isinstance(m, nn.Conv2d):
                keep = masks.get(self.layer_of.get(m, -1))
                out = None if keep is None else _index(keep, m.weight.device)
                w = m.weight if idx is None else m.weight[:, idx]
                w = w if out is None else w[out]
                b = None if m.bias is None else (m.bias if out is None else m.bias[out])
                params.append((w.contiguous(memory_format=torch.channels_last), b))
                idx = out
            elif isinstance(m, NORMS):
                params.append(tuple(_take(t, idx) for t in _norm_tensors(m)))
            elif isinstance(m, nn.Linear):
                params.append((m.weight, idx))  # input index expanded at run time (flatten)
                idx = None
            else:
                params.append(None)
        return params

    def forward(self, params: list, x: torch.Tensor, momentum: float | None = None):
        """Logits with the sliced `params`; with `momentum`, BatchNorm runs in training mode and
        folds this batch's statistics into its (fresh) buffers at that momentum."""
        training = momentum is not None
        for m, p in zip(self.modules, params):
            if isinstance(m, nn.Conv2d):
                x = F.conv2d(x, p[0], p[1], m.stride, m.padding, m.dilation)
            elif isinstance(m, NORMS):
                weight, bias, mean, var = p
                x = F.batch_norm(x, mean, var, weight, bias, training, momentum or 0.0, m.eps)
            elif isinstance(m, nn.Linear):
                weight, idx = p
                if idx is not None:
                    weight = _linear_input(weight, idx, x.shape[1])
                x = F.linear(x, weight, m.bias)
            elif not isinstance(m, nn.Dropout):
                x = m(x)
        return x

    def calibrate(self, params: list, chunks: list[torch.Tensor]) -> list:
        """New statistics for every BatchNorm, re-estimated on `chunks` with this candidate:
        fresh buffers, a cumulative average over the chunks, the module's own left untouched."""
        params = list(params)
        for k, m in enumerate(self.modules):
            if isinstance(m, NORMS):
                weight, bias, mean, var = params[k]
                params[k] = (weight, bias, torch.zeros_like(mean), torch.ones_like(var))
        for step, x in enumerate(chunks, start=1):
            self.forward(params, x, momentum=1.0 / step)  # a cumulative average over chunks
        return params


def _norm_tensors(m: nn.Module) -> tuple:
    return (m.weight, m.bias, m.running_mean, m.running_var)


def _take(t: torch.Tensor | None, idx: torch.Tensor | None):
    return t if t is None or idx is None else t[idx]


def _index(keep: np.ndarray, device) -> torch.Tensor:
    return torch.as_tensor(np.flatnonzero(np.asarray(keep, dtype=bool)), device=device)


def _linear_input(weight: torch.Tensor, idx: torch.Tensor, in_features: int) -> torch.Tensor:
    """The Linear's columns for kept channels; with a flatten over space, each channel owns a
    block of `weight.shape[1] / channels` consecutive columns."""
    per_channel = in_features // len(idx)
    channels = weight.shape[1] // per_channel
    w = weight.view(weight.shape[0], channels, per_channel)[:, idx]
    return w.reshape(weight.shape[0], -1)
