"""Units, layers and groups of a CNN: masking, exact counting from masks, and physical removal.

A *layer* is one Torch-Pruning coupled group rooted at a convolution; its *units* are the root's
output channels (with everything coupled to them). Masking zeroes a unit's channel after its
BatchNorm, which computes the same logits as removing the unit (tests prove it).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch_pruning as tp

from smoea.errors import SmoeaError

NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)


@dataclass
class Layer:
    """One prunable decision layer: a root convolution and the modules masked for it."""

    index: int
    name: str
    conv: nn.Conv2d
    units: int
    mask_modules: list[nn.Module]
    spatial: tuple[int, int] = (0, 0)
    # channels per unit: 1, or G where the layer feeds (or shares channels with) a grouped
    # convolution of G groups. A unit is then one channel at the same place in every group, as
    # Torch-Pruning prunes grouped convolutions, so every group keeps as many channels.
    per_unit: int = 1

    def channels(self, keep: np.ndarray) -> np.ndarray:
        """A keep mask over units as a keep mask over the root convolution's channels."""
        return np.tile(np.asarray(keep), self.per_unit)

    def unit_scores(self, per_channel: np.ndarray) -> np.ndarray:
        """Per-channel scores summed over each unit's channels (already per unit: as given)."""
        per_channel = np.asarray(per_channel)
        if len(per_channel) == self.units:
            return per_channel
        return per_channel.reshape(self.per_unit, self.units).sum(0)


# Torch-Pruning steps whose failure names the operation behind it
TRACE_STEPS = {"update_reshape_index_mapping": "a reshape of the channels (a channel shuffle)"}


def _trace_failure(exc: Exception) -> str:
    """One line: where tracing the channels failed (the operation when known) and the error."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    named = [f for f in frames if "torch_pruning" in f.filename and not f.name.startswith("<")]
    inner = named[-1] if named else None  # the function, not a comprehension inside it
    reason = (str(exc).strip().splitlines() or [""])[0]
    error = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    if inner is None:
        return f"analysing its channels failed with {error}"
    if isinstance(exc, MemoryError):
        return f"Torch-Pruning's dependency graph runs out of memory in its {inner.name}"
    what = TRACE_STEPS.get(inner.name, f"an operation its {inner.name} cannot follow")
    return f"Torch-Pruning's dependency graph fails on {what} ({error})"


# channel positions one reshape may expand a traced set of channels to: a flatten before a
# Linear gives a few thousand; swin_v2's window reshapes multiply without bound
MAX_TRACED_POSITIONS = 1 << 22


class _Unbounded(SmoeaError):
    """Tracing the channels through a reshape would exceed MAX_TRACED_POSITIONS."""


@contextmanager
def _bounded_reshapes():
    """While active, Torch-Pruning's flatten index mapping refuses to expand past
    MAX_TRACED_POSITIONS: on some models (torchvision's swin_v2) it otherwise grows the traced
    index lists until the machine runs out of memory, and the OOM killer ends the run."""
    from torch_pruning.dependency.index_mapping import _FlattenIndexMapping as mapping

    original = mapping.__call__

    def bounded(self, idxs):
        positions = len(idxs) * self._stride
        if not self.reverse and positions > MAX_TRACED_POSITIONS:
            raise _Unbounded(
                f"Torch-Pruning's dependency graph expands its channels through a reshape to "
                f"{positions:,} positions, over {MAX_TRACED_POSITIONS:,} (a reshape it cannot "
                "follow)"
            )
        return original(self, idxs)

    mapping.__call__ = bounded
    try:
        yield
    finally:
        mapping.__call__ = original


def _unmaskable(s: Structure, i: int, module: nn.Module, output: torch.Tensor) -> str:
    """Why layer i cannot be pruned: a module coupled to its channels does not carry them on
    dimension 1 (a concatenation, a channels-last block)."""
    name = next((n for n, m in s.model.named_modules() if m is module), type(module).__name__)
    found = output.shape[1] if output.dim() > 1 else "no"
    return (
        f"cannot prune layer {s.layers[i].name}: its {s.layers[i].conv.out_channels} channels "
        f"reach {name} ({type(module).__name__}), which gives {found} channels on dimension 1 "
        "(a concatenation or a channels-last block smoea cannot follow yet)"
    )


def minimum_units(units, min_keep: float) -> list[int]:
    """The fewest units each layer may keep: `min_keep` of its units, rounded up, at least one."""
    return [max(1, math.ceil(min_keep * int(u))) for u in units]


def allowed_counts(units: int, round_to: int = 1, low: int = 1) -> np.ndarray:
    """Kept counts a layer may have: multiples of `round_to` from `low` up, and all its units.

    Rounding kept filters to a multiple (8 or 16) suits the CPU kernels' vector width; keeping
    the whole layer is always allowed, whatever its size.
    """
    low = max(1, min(low, units))
    step = max(1, round_to)
    first = -(-low // step) * step
    return np.unique(np.append(np.arange(first, units + 1, step), units))


def round_count(count: int, round_to: int, units: int, how: str = "nearest", low: int = 1) -> int:
    """The allowed count (see `allowed_counts`) nearest to `count` (ties up), or the next one up
    or down (the smallest allowed where none is below)."""
    allowed = allowed_counts(units, round_to, low)
    if how == "up":
        above = allowed[allowed >= count]
        return int(above[0] if len(above) else allowed[-1])
    if how == "down":
        below = allowed[allowed <= count]
        return int(below[-1] if len(below) else allowed[0])
    return nearest_allowed(allowed, count)


def nearest_allowed(allowed: np.ndarray, count: int) -> int:
    """The entry of `allowed` nearest to `count`; of two equally near, the larger."""
    return int(allowed[np.argmin(np.abs(allowed - count) - 1e-9 * allowed)])


@dataclass
class CountTable:
    """Parameters and MACs as sums of coef * frac[a] * frac[b] over terms.

    `frac` holds each layer's kept fraction plus a trailing 1 for "no owner", so the counts of a
    whole population come from one vectorised expression. The coefficients are the
    Torch-Pruning counter's own per-module figures on the unmasked model.
    """

    params: np.ndarray  # (T, 3): coef, owner a, owner b
    macs: np.ndarray
    units: np.ndarray  # (L,)

    def fractions(self, kept: np.ndarray) -> np.ndarray:
        kept = np.atleast_2d(kept).astype(np.float64)
        ones = np.ones((kept.shape[0], 1))
        return np.concatenate([kept / self.units, ones], axis=1)

    def count(self, kept: np.ndarray, what: str = "params") -> np.ndarray:
        """Exact counts for each row of `kept` (units kept per layer)."""
        terms = self.params if what == "params" else self.macs
        frac = self.fractions(kept)
        a, b = terms[:, 1].astype(int), terms[:, 2].astype(int)
        return np.rint(frac[:, a] * frac[:, b] @ terms[:, 0])


@dataclass
class Structure:
    """The prunable layers of a model and everything computed from them."""

    model: nn.Module
    example: torch.Tensor
    layers: list[Layer] = field(default_factory=list)
    # the layers' names as first found: a pruned model keeps the same layers in the same order
    # even where a re-detection would group its channels otherwise
    layer_names: list[str] | None = None
    # predicted latency of kept counts (smoea.latency.LatencyTable), for the "latency" measure
    latency: object | None = None
    # which layer owns each parameter-free module's input ({module: owner}, and {module: [owner
    # of each call]} for a module called more than once): found by masking every layer in turn
    # (two forward passes a layer), and the same after pruning, so a later Structure of the same
    # model takes the first one's
    elementwise: tuple[dict, dict] | None = None

    def __post_init__(self) -> None:
        from smoea.latency import current

        table = current()
        if table is not None and self.latency is None:  # inside latency.active(table)
            self.latency = table
            self.layer_names = self.layer_names or table.layer_names
        self.model.eval()
        try:
            with _bounded_reshapes():
                self._analyse()
        except SmoeaError:
            raise
        except Exception as exc:  # an operation the dependency graph or the counts cannot follow
            raise SmoeaError(f"cannot prune this model: {_trace_failure(exc)}") from exc

    def _analyse(self) -> None:
        self.graph = tp.DependencyGraph().build_dependency(self.model, example_inputs=self.example)
        self.layers = _find_layers(self.model, self.graph)
        if not self.layers:
            raise SmoeaError("the model has no prunable convolution")
        if self.layer_names is not None:
            self.layers = _named_layers(self.model, self.graph, self.layers, self.layer_names)
        self._masks: list[torch.Tensor | None] = [None] * len(self.layers)
        _record_spatial(self.model, self.layers, self.example)
        self.table = _count_table(self)

    @property
    def units_per_layer(self) -> np.ndarray:
        return np.array([layer.units for layer in self.layers])

    # ---- masking -------------------------------------------------------------------------
    def set_masks(self, keep_masks: dict[int, torch.Tensor | np.ndarray] | None) -> None:
        """Set 0/1 keep masks per layer index; layers left out keep every unit."""
        self._masks = [None] * len(self.layers)
        for i, keep in (keep_masks or {}).items():
            layer = self.layers[i]
            keep = layer.channels(np.asarray(keep))
            device = layer.conv.weight.device
            self._masks[i] = torch.as_tensor(keep, dtype=torch.float32, device=device)

    @contextmanager
    def masking(self):
        """While active, forward passes zero the dropped units set by `set_masks`."""
        handles = []
        for layer in self.layers:
            for module in layer.mask_modules:
                handles.append(module.register_forward_hook(self._hook(layer.index)))
        try:
            yield self
        finally:
            for h in handles:
                h.remove()
            self._masks = [None] * len(self.layers)

    def _hook(self, i: int):
        def apply(module, inputs, output):
            mask = self._masks[i]
            if mask is None:
                return output
            if output.dim() < 2 or output.shape[1] != mask.numel():
                raise SmoeaError(_unmaskable(self, i, module, output))
            shape = (1, -1) + (1,) * (output.dim() - 2)
            return output * mask.to(output.dtype).view(shape)

        return apply

    # ---- counting ------------------------------------------------------------------------
    def count(self, kept: np.ndarray, what: str = "params") -> np.ndarray:
        """Exact whole-model parameters or MACs for rows of kept-units-per-layer; or, with a
        latency table, the predicted latency in ms ("latency")."""
        if what == "latency":
            if self.latency is None:
                raise SmoeaError("the latency measure needs a latency table (smoea.latency)")
            return self.latency.predict(kept)
        return self.table.count(kept, what)

    def kept_from_masks(self, keep_masks: dict[int, np.ndarray]) -> np.ndarray:
        kept = self.units_per_layer.copy()
        for i, keep in keep_masks.items():
            kept[i] = int(np.asarray(keep).sum())
        return kept

    # ---- physical removal ----------------------------------------------------------------
    def remove(self, keep_masks: dict[int, np.ndarray]) -> None:
        """Physically remove the dropped units (Torch-Pruning does the channel surgery)."""
        for i, keep in keep_masks.items():
            keep = np.asarray(keep, dtype=bool)
            if not keep.any():
                raise SmoeaError(f"layer {i + 1} would lose every filter")
            dropped = np.flatnonzero(~self.layers[i].channels(keep)).tolist()
            if dropped:
                conv = self.layers[i].conv
                group = self.graph.get_pruning_group(conv, tp.prune_conv_out_channels, dropped)
                group.prune()

    def coupled_outputs(self, i: int) -> list[nn.Module]:
        """The modules whose output channels go with layer i's (its root convolution too)."""
        conv = self.layers[i].conv
        group = self.graph.get_pruning_group(conv, tp.prune_conv_out_channels, [0])
        return group_outputs(self.graph, group)

    # ---- layer importance ----------------------------------------------------------------
    def l1_norms(self, i: int) -> np.ndarray:
        """L1 norm of each filter of layer i (ranks units for seeding and repair)."""
        w = self.layers[i].conv.weight.detach()
        return self.layers[i].unit_scores(w.abs().flatten(1).sum(1).cpu().numpy())


def _find_layers(model: nn.Module, graph: tp.DependencyGraph) -> list[Layer]:
    """Each non-depthwise Conv2d that roots a coupled group not claimed by an earlier conv."""
    names = {m: n for n, m in model.named_modules()}
    claimed: set[nn.Module] = set()
    layers: list[Layer] = []
    for module in model.modules():
        if not isinstance(module, nn.Conv2d) or module in claimed:
            continue
        if module.groups > 1:  # depthwise convs follow the group of the conv before them
            continue
        try:
            group = graph.get_pruning_group(
                module, tp.prune_conv_out_channels, list(range(module.out_channels))
            )
        except _Unbounded as exc:
            raise SmoeaError(f"cannot prune layer {names[module]}: {exc}") from None
        outs = group_outputs(graph, group)
        claimed.update(m for m in outs if isinstance(m, nn.Module))
        if any(_is_output_layer(model, m) for m in outs):
            continue
        mask_modules = _mask_modules(outs)
        per_unit = _channels_per_unit(group, module)
        units = module.out_channels // per_unit
        layers.append(
            Layer(len(layers), names[module], module, units, mask_modules, per_unit=per_unit)
        )
    return layers


def group_outputs(graph: tp.DependencyGraph, group) -> list[nn.Module]:
    """The modules whose output channels a pruning group removes (its root among them)."""
    return [d.target.module for d, _ in group if graph.is_out_channel_pruning_fn(d.handler)]


def _channels_per_unit(group, root: nn.Conv2d) -> int:
    """G when the coupled channels meet grouped (not depthwise) convolutions of G groups (the
    least common multiple of several), else 1."""
    per_unit = 1
    for dep, _ in group:
        m = dep.target.module
        if isinstance(m, nn.Conv2d) and 1 < m.groups < m.out_channels:
            per_unit = math.lcm(per_unit, m.groups)
    if root.out_channels % per_unit:
        raise SmoeaError(
            f"convolution channels of {root.out_channels} do not split into {per_unit} groups"
        )
    return per_unit


def _named_layers(model, graph, found: list[Layer], names: list[str]) -> list[Layer]:
    """The layers rooted at `names`, in that order (a found layer not named is left out)."""
    by_name = {layer.name: layer for layer in found}
    modules = dict(model.named_modules())
    layers = []
    for k, name in enumerate(names):
        layer = by_name.get(name)
        if layer is None:
            conv = modules.get(name)
            if not isinstance(conv, nn.Conv2d):
                raise SmoeaError(f"the model has no convolution {name!r} any more")
            group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, [0])
            outs = group_outputs(graph, group)
            per_unit = _channels_per_unit(group, conv)
            units = conv.out_channels // per_unit
            layer = Layer(k, name, conv, units, _mask_modules(outs), per_unit=per_unit)
        layers.append(
            Layer(k, name, layer.conv, layer.units, layer.mask_modules, per_unit=layer.per_unit)
        )
    return layers


def _mask_modules(outs: list) -> list[nn.Module]:
    """Zero after the normalisation when there is one, else after the convolution itself."""
    modules = [m for m in outs if isinstance(m, nn.Module)]
    norms = [m for m in modules if isinstance(m, NORM_TYPES)]
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    normed_convs = len(norms)
    return norms + convs[normed_convs:] if norms else convs


def _is_output_layer(model: nn.Module, module: nn.Module) -> bool:
    last = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
    return module is last


def _record_spatial(model: nn.Module, layers: list[Layer], example: torch.Tensor) -> None:
    handles = []
    for layer in layers:

        def hook(module, inputs, output, layer=layer):
            layer.spatial = tuple(output.shape[-2:])

        handles.append(layer.conv.register_forward_hook(hook))
    with torch.no_grad():
        model(example)
    for h in handles:
        h.remove()


def default_groups(structure: Structure) -> list[list[int]]:
    """One group per spatial stage: the layers with the same output resolution, the stages in
    order of appearance.

    A squeeze-excitation layer (a 1x1 output after which the resolution rises again) belongs to
    the stage of the layer before it. A block that declares its shortcut first (RegNet) puts a
    layer of the next stage before one of the current: it still joins its own stage."""
    layers = structure.layers
    stages: dict[tuple, list[int]] = {}
    stage = None
    for k, layer in enumerate(layers):
        if stage is None or not _squeeze(layers, k):
            stage = layer.spatial
        stages.setdefault(stage, []).append(layer.index)
    return list(stages.values())


def _squeeze(layers: list[Layer], k: int) -> bool:
    """Layer k computes on a globally pooled input: a 1x1 output with larger ones after it."""
    area = lambda s: s[0] * s[1]  # noqa: E731
    return area(layers[k].spatial) == 1 and any(area(x.spatial) > 1 for x in layers[k + 1 :])


def plan_groups(structure: Structure, text: str | None) -> list[list[int]]:
    """The groups a run uses: `--groups` text if given, else one per spatial stage."""
    return parse_groups(text, len(structure.layers)) if text else default_groups(structure)


def parse_groups(text: str, n_layers: int) -> list[list[int]]:
    """`1-2,3-4,5-7` (conv layers numbered from 1) to lists of 0-based layer indices."""
    groups = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            lo, _, hi = part.partition("-")
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise SmoeaError(f"--groups: cannot read {part!r}; write ranges like 1-2,3-4") from None
        if not 1 <= first <= last <= n_layers:
            raise SmoeaError(f"--groups: {part!r} names layers outside 1-{n_layers}")
        groups.append(list(range(first - 1, last)))
    if not groups:
        raise SmoeaError("--groups is empty; give ranges like 1-2,3-4")
    flat = [i for g in groups for i in g]
    if len(flat) != len(set(flat)):
        raise SmoeaError("--groups: a layer appears in more than one group")
    return groups


# ---- exact counting ----------------------------------------------------------------------


def _count_table(s: Structure) -> CountTable:
    """Decompose the counter's per-module figures into terms owned by layers' kept fractions."""
    _, _, layer_macs, layer_params = tp.utils.count_ops_and_params(
        s.model, s.example, layer_wise=True
    )
    out_owner, in_owner, shared = _owners(s)
    none = len(s.layers)
    p_terms, m_terms = [], []
    for module in s.model.modules():
        if next(module.children(), None) is not None:
            continue
        macs, params = int(layer_macs.get(module) or 0), int(layer_params.get(module) or 0)
        a = in_owner.get(module, none)
        b = out_owner.get(module, none)
        if isinstance(module, (nn.Conv2d, nn.Linear)) and not _depthwise(module):
            bias = module.bias.numel() if module.bias is not None else 0
            bias_macs = macs // (module.weight[0].numel() + 1) if bias else 0
            p_terms += [(params - bias, a, b), (bias, none, b)]
            m_terms += [(macs - bias_macs, a, b), (bias_macs, none, b)]
        elif isinstance(module, (nn.Conv2d, *NORM_TYPES)):
            owner = b if b != none else a
            p_terms.append((params, none, owner))
            m_terms.append((macs, none, owner))
        elif module in shared:  # one module called on several layers' channels
            for share, owner in shared[module]:
                m_terms.append((macs * share, owner, none))
        else:
            p_terms.append((params, a, none))
            m_terms.append((macs, a, none))
    as_array = lambda t: np.array([x for x in t if x[0]], dtype=np.float64).reshape(-1, 3)  # noqa: E731
    return CountTable(as_array(p_terms), as_array(m_terms), s.units_per_layer.astype(np.float64))


def _depthwise(module: nn.Module) -> bool:
    """One filter per channel (a grouped convolution with fewer groups counts like any other:
    its weights scale with its kept inputs and outputs)."""
    return isinstance(module, nn.Conv2d) and 1 < module.groups == module.out_channels


def _owners(s: Structure) -> tuple[dict, dict, dict]:
    """Which layer's units each module's output and input channels belong to; and, for a
    parameter-free module called more than once (torchvision reuses one ReLU in a block), each
    call's share of its MACs with the call's owner."""
    out_owner, in_owner = {}, {}
    for layer in s.layers:
        group = s.graph.get_pruning_group(layer.conv, tp.prune_conv_out_channels, [0])
        for dep, _ in group:
            module = dep.target.module
            if not isinstance(module, nn.Module):
                continue
            if s.graph.is_out_channel_pruning_fn(dep.handler):
                out_owner.setdefault(module, layer.index)
            else:
                in_owner.setdefault(module, layer.index)
    if s.elementwise is None:
        s.elementwise = _tag_elementwise_inputs(s, in_owner)
    single, several = s.elementwise
    for module, owner in single.items():
        in_owner.setdefault(module, owner)
    return out_owner, in_owner, _call_shares(s, several) if several else {}


def _tag_elementwise_inputs(s: Structure, in_owner: dict) -> tuple[dict, dict]:
    """Parameter-free modules (ReLU, pooling) belong to the layer whose mask zeroes their input.

    A layer's even units are masked, then its odd ones: a module right after the layer sees
    new zero input channels both times, mostly not the same ones, and between them all its
    channels. Masking whole layers instead would let the zeros run on wherever a BatchNorm has
    no shift (a fresh model), and a module deep in the network would look owned by the first
    layer. Returns the owner of each module called once, and of each module called more than
    once, the owner of every call.
    """
    leaves = [m for m in s.model.modules() if next(m.children(), None) is None]
    leaves = [m for m in leaves if not list(m.parameters())]  # weights: the graph says
    calls: dict[nn.Module, list] = {}  # per call: input numel, zero-channel flags

    def pre_hook(module, inputs):
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        if x is None or x.dim() < 2:
            calls.setdefault(module, []).append((0, None))
            return
        peak = x.detach().abs().transpose(0, 1).reshape(x.shape[1], -1).amax(1)
        calls.setdefault(module, []).append((x.numel(), (peak == 0).cpu()))

    example = torch.randn(2, *s.example.shape[1:], device=s.example.device)
    handles = [m.register_forward_pre_hook(pre_hook) for m in leaves]
    call_owner: dict[nn.Module, list] = {}
    none = len(s.layers)
    try:
        with torch.no_grad():
            s.model(example)
        base = {m: list(c) for m, c in calls.items()}
        with s.masking(), torch.no_grad():
            for layer in s.layers:
                passes = []
                for keep in _alternate_masks(layer.units):
                    s.set_masks({layer.index: keep})
                    calls.clear()
                    s.model(example)
                    passes.append({m: list(c) for m, c in calls.items()})
                for module, per_call in passes[0].items():
                    owners = call_owner.setdefault(module, [none] * len(per_call))
                    for k in range(len(per_call)):
                        seen = [p[module][k][1] for p in passes if module in p]
                        if owners[k] == none and _zeroed_by(base[module][k][1], seen):
                            owners[k] = layer.index
    finally:
        for h in handles:
            h.remove()
    single, several = {}, {}
    for module, owners in call_owner.items():
        if len(owners) == 1:
            if owners[0] != none:
                single[module] = owners[0]
        elif module not in in_owner:
            several[module] = owners
    return single, several


def _call_shares(s: Structure, several: dict) -> dict:
    """Each call's share of a module's MACs (its input's size over all calls'), with its owner,
    for the modules called more than once: one forward pass of the model as it is now."""
    sizes: dict[nn.Module, list[int]] = {}

    def pre_hook(module, inputs):
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        sizes.setdefault(module, []).append(0 if x is None or x.dim() < 2 else x.numel())

    handles = [m.register_forward_pre_hook(pre_hook) for m in several]
    try:
        with torch.no_grad():
            s.model(torch.randn(2, *s.example.shape[1:], device=s.example.device))
    finally:
        for h in handles:
            h.remove()
    shared = {}
    for module, owners in several.items():
        total = max(1, sum(sizes[module]))
        shared[module] = [(n / total, o) for n, o in zip(sizes[module], owners)]
    return shared


def _alternate_masks(units: int) -> list[np.ndarray]:
    """Even units dropped, then odd ones (a one-unit layer: dropped whole, once)."""
    if units == 1:
        return [np.zeros(1)]
    even = np.arange(units) % 2 == 0
    return [~even, even]


def _zeroed_by(base, seen: list) -> bool:
    """The masks zeroed new input channels each time, mostly not the same ones, and all of
    them between them."""
    if base is None or any(z is None or z.shape != base.shape for z in seen):
        return False
    new = [z & ~base for z in seen]
    if not all(n.any() for n in new):
        return False
    if len(new) == 1:
        return bool((new[0] | base).all())
    # channels the masks did not touch may go to zero by chance (a ReLU behind a changed
    # input): some overlap is allowed, but each mask must have zeroed mostly its own channels
    overlap = int((new[0] & new[1]).sum())
    mostly_own = all(2 * overlap < int(n.sum()) for n in new)
    return mostly_own and bool((new[0] | new[1] | base).all())


def split_at(model: nn.Module, module: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(prefix, rest) of a Sequential model at the top-level child holding `module`.

    The prefix's output on the search set is computed once per group; candidates then run the
    rest alone. A model that is not a Sequential runs whole (prefix is the identity).
    """
    if isinstance(model, nn.Sequential):
        for i, child in enumerate(model):
            if child is module or any(m is module for m in child.modules()):
                return model[:i], model[i:]
    return nn.Identity(), model
