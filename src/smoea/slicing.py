"""Sliced scoring for any traced sub-network: a candidate runs with only the channels it keeps.

Torch-Pruning's dependency graph knows, for every unit of a layer, which index of which module's
output or input channels it owns (residual additions, depthwise convolutions, concatenations and
flattens included). A candidate's keep masks become kept indices per module, each module's
tensors are sliced along them, and the sub-network runs through `torch.func.functional_call` on
the sliced tensors: a candidate computes only what it keeps, and no model is copied. A depthwise
convolution runs with as many groups as channels it keeps; a grouped one keeps its groups and
loses the same places in each (see `Layer.per_unit`). Modules the slicing does not know
(LayerNorm, PReLU, ...) make `SlicedGraph.build` return a reason instead, and the evaluator
masks.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch_pruning as tp
from torch.func import functional_call

from smoea.structure import Structure

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class _Owned:
    """The channels of one module (`dim` "out" or "in") owned by one layer's units."""

    name: str
    dim: str
    index: np.ndarray  # channel positions in the module
    unit: np.ndarray  # the layer unit that owns each position


@dataclass
class Sliced:
    """One candidate's tensors by name (only those that differ) and depthwise groups."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)


class SlicedGraph:
    """Runs `suffix` on sliced tensors; same interface as the evaluator's `SlicedChain`."""

    def __init__(self, suffix: nn.Module, owned: dict[int, list[_Owned]]):
        self.suffix, self.owned = suffix, owned
        self.modules = dict(suffix.named_modules())

    @classmethod
    def build(cls, suffix: nn.Module, structure: Structure) -> tuple[SlicedGraph | None, str]:
        """The runner, or None and the one-line reason why this sub-network cannot slice."""
        names = {m: n for n, m in suffix.named_modules()}
        owned: dict[int, list[_Owned]] = {}
        for layer in structure.layers:
            if layer.conv not in names:
                continue  # a fixed layer before the sub-network
            channels = list(range(layer.conv.out_channels))
            group = structure.graph.get_pruning_group(
                layer.conv, tp.prune_conv_out_channels, channels
            )
            for item in group.items:
                dep = item.dep
                module = dep.target.module
                if module not in names or not _has_tensors(module):
                    continue  # operations (add, concat, flatten) and parameter-free modules
                reason = _unsupported(module, names[module])
                if reason:
                    return None, reason
                dim = "out" if structure.graph.is_out_channel_pruning_fn(dep.handler) else "in"
                index = np.array(item.idxs, dtype=int)
                unit = np.array(item.root_idxs, dtype=int) % layer.units  # see Layer.per_unit
                owned.setdefault(layer.index, []).append(_Owned(names[module], dim, index, unit))
        return cls(suffix, owned), ""

    def slice(self, masks: dict[int, np.ndarray]) -> Sliced:
        """The candidate's sliced tensors: every module that loses a channel, cut along it."""
        dropped: dict[tuple[str, str], list[np.ndarray]] = {}
        for layer, keep in masks.items():
            gone = np.flatnonzero(~np.asarray(keep, dtype=bool))
            if not len(gone):
                continue
            for o in self.owned.get(layer, []):
                dropped.setdefault((o.name, o.dim), []).append(o.index[np.isin(o.unit, gone)])
        by_module: dict[str, dict[str, np.ndarray]] = {}
        for (name, dim), parts in dropped.items():
            by_module.setdefault(name, {})[dim] = np.concatenate(parts)
        out = Sliced()
        for name, drops in by_module.items():
            _slice_module(self.modules[name], name, drops, out)
        return out

    def forward(self, sliced: Sliced, x: torch.Tensor) -> torch.Tensor:
        with self._groups(sliced.groups):
            return functional_call(self.suffix, sliced.tensors, (x,), strict=False)

    def calibrate(self, sliced: Sliced, chunks: list[torch.Tensor]) -> Sliced:
        """New statistics for every BatchNorm, re-estimated on `chunks` with this candidate:
        fresh buffers, a cumulative average over the chunks, the modules' own untouched."""
        tensors = dict(sliced.tensors)
        norms = [(n, m) for n, m in self.modules.items() if _tracks(m)]
        for name, m in norms:
            channels = len(tensors.get(f"{name}.running_mean", m.running_mean))
            device = m.running_mean.device
            tensors[f"{name}.running_mean"] = torch.zeros(channels, device=device)
            tensors[f"{name}.running_var"] = torch.ones(channels, device=device)
            tensors[f"{name}.num_batches_tracked"] = torch.zeros(
                (), dtype=torch.long, device=device
            )
        fresh = Sliced(tensors, sliced.groups)
        momenta = [m.momentum for _, m in norms]
        for _, m in norms:
            m.momentum = None  # a cumulative average over the chunks
            m.train()
        try:
            for x in chunks:
                self.forward(fresh, x)
        finally:
            for (_, m), momentum in zip(norms, momenta):
                m.momentum = momentum
                m.eval()
        return fresh

    @contextmanager
    def _groups(self, groups: dict[str, int]):
        saved = {name: self.modules[name].groups for name in groups}
        for name, g in groups.items():
            self.modules[name].groups = g
        try:
            yield
        finally:
            for name, g in saved.items():
                self.modules[name].groups = g


def _has_tensors(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(
        b is not None for b in module.buffers(recurse=False)
    )


def _tracks(m: nn.Module) -> bool:
    return isinstance(m, NORMS) and m.track_running_stats and m.running_mean is not None


def _depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels


def _unsupported(module: nn.Module, name: str) -> str:
    """Why `module`'s channels cannot be sliced here ("" when they can)."""
    kind = type(module).__name__
    if isinstance(module, (nn.Conv2d, nn.Linear, *NORMS)):
        return ""
    return f"{kind} {name!r} owns pruned channels and has no sliced form: scored masked"


def _kept(size: int, drop: np.ndarray | None, device) -> torch.Tensor | None:
    if drop is None or not len(drop):
        return None
    keep = np.ones(size, dtype=bool)
    keep[drop] = False
    return torch.as_tensor(np.flatnonzero(keep), device=device)


def _slice_module(m: nn.Module, name: str, drops: dict, out: Sliced) -> None:
    """Write `m`'s tensors cut along its dropped output ("out") and input ("in") channels."""
    device = next(t for t in (*m.parameters(recurse=False), *m.buffers(recurse=False))).device
    if _depthwise(m) or isinstance(m, NORMS):  # one channel axis: in and out are the same
        both = np.union1d(drops.get("out", []), drops.get("in", [])).astype(int)
        size = m.out_channels if isinstance(m, nn.Conv2d) else m.num_features
        keep = _kept(size, both, device)
        for t in ("weight", "bias", "running_mean", "running_var"):
            tensor = getattr(m, t, None)
            if tensor is not None and keep is not None:
                out.tensors[f"{name}.{t}"] = _fmt(tensor.index_select(0, keep))
        if _depthwise(m) and keep is not None:
            out.groups[name] = len(keep)
        return
    w = m.weight
    drop_in = drops.get("in")
    if drop_in is not None and isinstance(m, nn.Conv2d) and m.groups > 1:
        # a grouped convolution loses the same places in every group (Layer.per_unit)
        drop_in = np.unique(drop_in % w.shape[1])
    keep_in = _kept(w.shape[1], drop_in, device)
    keep_out = _kept(w.shape[0], drops.get("out"), device)
    if keep_in is not None:
        w = w.index_select(1, keep_in)
    if keep_out is not None:
        w = w.index_select(0, keep_out)
        if m.bias is not None:
            out.tensors[f"{name}.bias"] = m.bias.index_select(0, keep_out)
    out.tensors[f"{name}.weight"] = _fmt(w)


def _fmt(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t.contiguous()
