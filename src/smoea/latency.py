"""A latency model measured on this machine: each layer's time on a grid of channel counts.

Parameters and MACs are proxies: on a CPU a layer with an odd channel count can run slower than
a wider one, and small layers pay a fixed cost per operation. So, as NetAdapt and HALP do, each
convolution and linear layer of the model is timed on its own, as the deployed model runs it
(eval mode, BatchNorm folded into the convolution: a bias, channels_last), at a few channel
counts of the layers that own its input and output channels (the dependency graph's owners, as
for the exact counts); a pruned model's latency is predicted as the sum of those times,
interpolated at its kept counts, plus the measured time of everything else (activations,
pooling, additions), measured whole at a few uniform widths and interpolated by the activation
volume. A table holds for one device, torch version, thread
count, input shape and batch size; it is cached on disk under that key and reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from smoea.errors import SmoeaError

FORMAT = 3  # of the tables and their timing; a table of another format is measured again
GRID = 5  # channel counts per owner axis
REST_WIDTHS = (0.25, 0.5, 0.75)  # uniform widths the whole model is measured at for the rest
NOISE = 0.10  # the two fastest repeated measurements differing more than this are redone
REPEATED = 5  # measurements of one point, each the median of its samples
TRIES = 3  # rounds of repeated measurements before their noise stops the build
SAMPLE_MS = 2.0  # one timing sample lasts about this long (calls repeated within it)


@dataclass
class Term:
    """One module's time (ms) on a grid: rows the input owner's kept units, columns the
    output owner's (a single row or column where no layer owns that side)."""

    name: str
    a: int  # input owner (a layer index; n_layers for none)
    b: int  # output owner
    units_a: list[int]
    units_b: list[int]
    ms: list[list[float]]

    def at(self, kept_a: np.ndarray, kept_b: np.ndarray) -> np.ndarray:
        """Bilinear interpolation of the grid at each row's kept counts."""
        ms = np.asarray(self.ms)
        along_b = np.stack([np.interp(kept_b, self.units_b, row) for row in ms])  # (A, P)
        if len(self.units_a) == 1:
            return along_b[0]
        cols = [np.interp(kept_a[p], self.units_a, along_b[:, p]) for p in range(len(kept_b))]
        return np.array(cols)


@dataclass
class LatencyTable:
    """Predicted latency (ms) of the model at any kept units per layer."""

    key: dict
    units: list[int]  # full units per layer
    terms: list[Term] = field(default_factory=list)
    full_ms: float = 0.0  # the whole folded model, measured
    rest_ms: float = 0.0  # full_ms minus the terms at full width: everything else
    # everything else at narrower widths: [activation volume fraction, ms] (the volume: kept
    # units times each layer's output size, what activations and pooling work through)
    rest_points: list[list[float]] = field(default_factory=list)
    volume: list[float] = field(default_factory=list)  # per layer: output height x width

    @property
    def layer_names(self) -> list[str]:
        return [entry.rsplit(":", 1)[0] for entry in self.key["layers"]]

    def predict(self, kept: np.ndarray) -> np.ndarray:
        """Latency in ms for each row of `kept` (units kept per layer)."""
        kept = np.atleast_2d(np.asarray(kept, dtype=np.float64))
        return self._rest(kept) + self.layers_ms(kept)

    def layers_ms(self, kept: np.ndarray) -> np.ndarray:
        """The convolutions' and linear layers' time alone, for each row of `kept`."""
        kept = np.atleast_2d(np.asarray(kept, dtype=np.float64))
        owned = np.concatenate([kept, np.ones((len(kept), 1))], axis=1)  # column L: no owner
        total = np.zeros(len(kept))
        for t in self.terms:
            total += t.at(owned[:, t.a], owned[:, t.b])
        return total

    def _rest(self, kept: np.ndarray) -> np.ndarray:
        """Everything but the convolutions and linear layers, interpolated at each row's
        activation volume between the widths it was measured at (constant without them)."""
        if not self.rest_points:
            return np.full(len(kept), self.rest_ms)
        volume = np.asarray(self.volume)
        x = kept @ volume / (np.asarray(self.units) @ volume)
        xs, ys = zip(*sorted(self.rest_points))
        return np.interp(x, xs, ys)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> LatencyTable:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_dict(cls, raw: dict) -> LatencyTable:
        return cls(**{**raw, "terms": [Term(**t) for t in raw["terms"]]})


_ACTIVE: ContextVar[LatencyTable | None] = ContextVar("smoea_latency_table", default=None)


@contextmanager
def active(table: LatencyTable | None):
    """Every Structure built inside this block predicts latency with `table` (its layers found
    by the table's layer names): how `smoea compare` gives every method the same table."""
    token = _ACTIVE.set(table)
    try:
        yield table
    finally:
        _ACTIVE.reset(token)


def current() -> LatencyTable | None:
    """The table of the enclosing `active` block, if any."""
    return _ACTIVE.get()


def table_for(structure, batch: int, device: torch.device, log=print) -> LatencyTable:
    """The cached table of this machine, model and batch, or one measured now and cached."""
    from smoea.data import default_cache_dir

    path = cache_path(table_key(structure, batch, device), default_cache_dir())
    if path.exists():
        log(f"latency table: {path} (measured before on this machine)")
        return LatencyTable.load(path)
    log(f"latency table: measuring every layer at batch {batch} (once; cached)")
    table = build_table(structure, batch, device)
    table.save(path)
    return table


def table_key(structure, batch: int, device: torch.device) -> dict:
    """What a table holds for: device, torch, threads, input, batch and the layers' names and
    full widths (a pruned model gets a table of its own)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    shapes = [
        list(m.weight.shape)
        for m in structure.model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    return {
        "format": FORMAT,
        "shapes": hashlib.sha256(json.dumps(shapes).encode()).hexdigest()[:16],
        "device": f"{device.type}:{name}",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "input": list(structure.example.shape[1:]),
        "batch": batch,
        "layers": [f"{layer.name}:{layer.units}" for layer in structure.layers],
    }


def where_measured(device: torch.device) -> dict:
    """The machine a measurement holds for: device and thread count."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {"device": f"{device.type}:{name}", "threads": torch.get_num_threads()}


def measuring_here(measured: dict, device: torch.device) -> bool:
    """Whether a measurement recorded with where_measured() was taken on a machine like this."""
    here = where_measured(device)
    return all(measured.get(k) == v for k, v in here.items())


def cache_path(key: dict, cache_dir: Path) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / "latency" / f"{digest}.json"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def build_table(
    structure, batch: int, device: torch.device, repeats: int = 10, progress: bool = True
) -> LatencyTable:
    """Time every convolution and linear layer of the structure's model on a grid of its
    owners' kept counts, and the whole folded model; see the module docstring."""
    from tqdm import tqdm

    from smoea.structure import _depthwise, _owners

    model = structure.model.eval()
    out_owner, in_owner, _ = _owners(structure)
    inputs = _input_shapes(model, structure.example)
    units = [int(u) for u in structure.units_per_layer]
    none = len(units)
    modules = [
        (name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    table = LatencyTable(table_key(structure, batch, device), units)
    for name, m in tqdm(modules, desc="latency table", disable=not progress, leave=False):
        if m not in inputs:  # not called on the example
            continue
        a, b = in_owner.get(m, none), out_owner.get(m, none)
        if _depthwise(m):  # one axis: its channels follow one layer
            a, b = none, (b if b != none else a)
        grid_a, grid_b = _grid(units, a), _grid(units, b)
        ms = [
            [
                _time_module(
                    m,
                    inputs[m],
                    _fraction(ua, units, a),
                    _fraction(ub, units, b),
                    batch,
                    device,
                    repeats,
                )
                for ub in grid_b
            ]
            for ua in grid_a
        ]
        table.terms.append(Term(name, a, b, grid_a, grid_b, ms))
    table.full_ms = time_model(model, structure.example.shape[1:], batch, device, repeats)
    table.rest_ms = table.full_ms - float(sum(np.asarray(t.ms)[-1, -1] for t in table.terms))
    table.volume = [float(np.prod(layer.spatial)) for layer in structure.layers]
    table.rest_points = [[1.0, table.rest_ms]] + [
        _rest_at(structure, table, width, batch, device, repeats) for width in REST_WIDTHS
    ]
    return table


def _rest_at(structure, table: LatencyTable, width: float, batch, device, repeats) -> list:
    """[activation volume fraction, ms of everything else] of a copy of the model cut to
    `width` of every layer (the strongest units by L1), measured whole."""
    import copy

    from smoea.structure import Structure

    model = copy.deepcopy(structure.model)
    names = [layer.name for layer in structure.layers]
    s = Structure(model, structure.example, layer_names=names)
    masks = {}
    for i, layer in enumerate(s.layers):
        k = max(1, int(round(width * layer.units)))
        masks[i] = np.isin(np.arange(layer.units), np.argsort(-s.l1_norms(i))[:k])
    kept = s.kept_from_masks(masks)
    s.remove(masks)
    measured = time_model(model, structure.example.shape[1:], batch, device, repeats)
    volume = np.asarray(table.volume)
    fraction = float(kept @ volume / (np.asarray(table.units) @ volume))
    return [fraction, measured - float(table.layers_ms(kept)[0])]


def _grid(units: list[int], owner: int) -> list[int]:
    """GRID kept counts from one unit to all of them (one point: no owner)."""
    if owner >= len(units):
        return [1]
    full = units[owner]
    return sorted({int(round(c)) for c in np.linspace(1, full, GRID)})


def _fraction(count: int, units: list[int], owner: int) -> float:
    return 1.0 if owner >= len(units) else count / units[owner]


def _input_shapes(model: nn.Module, example: torch.Tensor) -> dict:
    """The input shape (batch 1) each convolution and linear layer is called with."""
    shapes, handles = {}, []

    def record(module, args) -> None:
        shapes.setdefault(module, tuple(args[0].shape[1:]))

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            handles.append(m.register_forward_pre_hook(record))
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    return shapes


def _time_module(m, shape, frac_in: float, frac_out: float, batch, device, repeats) -> float:
    """A fresh module like `m` with its channels scaled (a folded BatchNorm: a bias), timed on
    an input already on the device."""
    module = scaled_module(m, frac_in, frac_out).eval().to(device)
    if isinstance(m, nn.Linear):
        x = torch.randn(batch, *shape[:-1], module.in_features, device=device)
    else:
        x = torch.randn(batch, module.in_channels, *shape[1:], device=device)
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return _median_ms(lambda: module(x), device, repeats)


def scaled_module(m: nn.Module, frac_in: float, frac_out: float) -> nn.Module:
    """A fresh Conv2d or Linear like `m` with its input and output channels at the given kept
    fractions (a depthwise convolution's follow its output; a grouped one's stay multiples of
    its groups)."""
    if isinstance(m, nn.Linear):
        return nn.Linear(_scaled(m.in_features, frac_in, 1), _scaled(m.out_features, frac_out, 1))
    depthwise = 1 < m.groups == m.out_channels
    g = 1 if depthwise else m.groups
    cout = _scaled(m.out_channels, frac_out, g)
    cin = cout if depthwise else _scaled(m.in_channels, frac_in, g)
    groups = cout if depthwise else m.groups
    return nn.Conv2d(cin, cout, m.kernel_size, m.stride, m.padding, m.dilation, groups)


def _scaled(channels: int, frac: float, multiple: int) -> int:
    """Channels at a kept fraction, a multiple of `multiple` (a grouped convolution's groups)."""
    return max(multiple, int(round(channels * frac / multiple)) * multiple)


def time_model(model: nn.Module, image_shape, batch: int, device, repeats: int = 20) -> float:
    """Median ms of the model as deployed: eval mode, BatchNorm folded, channels_last."""
    from smoea.deploy import fold_batchnorm

    folded = fold_batchnorm(model.eval()).to(device).to(memory_format=torch.channels_last)
    x = torch.randn(batch, *image_shape, device=device).contiguous(
        memory_format=torch.channels_last
    )
    return _median_ms(lambda: folded(x), device, repeats)


@torch.inference_mode()
def _median_ms(run, device: torch.device, repeats: int, warmup: int = 3) -> float:
    """Wall time of one call in ms, in the machine's fastest steady state: the lowest of
    REPEATED measurements, each the median of `repeats` samples (a sample times enough calls to
    last SAMPLE_MS: a small layer's single call is too short to time alone). A shared machine
    moves between states (here small layers ran 0.057 or 0.08 ms, minutes apart), so the
    lowest two measurements must agree within NOISE; else all are taken again, TRIES times at
    most, then refused in one line."""
    calls = _calls_per_sample(run, device)
    for _ in range(TRIES):
        medians = sorted(
            _sampled_median(run, device, repeats, warmup, calls) for _ in range(REPEATED)
        )
        spread = (medians[1] - medians[0]) / medians[0]
        if spread <= NOISE:
            return medians[0]
    raise SmoeaError(
        f"latency measurements too noisy to trust: the two fastest of {REPEATED} repeated "
        f"measurements differ by {spread:.0%} (more than {NOISE:.0%}) in {TRIES} tries; run "
        "nothing else while measuring"
    )


def _sampled_median(run, device: torch.device, repeats: int, warmup: int, calls: int) -> float:
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(calls):
            run()
        _sync(device)
        if i >= warmup:
            times.append(1000 * (time.perf_counter() - start) / calls)
    return statistics.median(times)


def _calls_per_sample(run, device: torch.device) -> int:
    """Calls that take about SAMPLE_MS together (at least one), from a short trial."""
    run()
    _sync(device)
    start = time.perf_counter()
    for _ in range(3):
        run()
    _sync(device)
    once = (time.perf_counter() - start) / 3 * 1000
    return max(1, min(1000, int(SAMPLE_MS / max(once, 1e-6))))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
