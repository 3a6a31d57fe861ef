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

The layers are timed in the same interleaved rounds (`time_together`): a shared machine's
speed drifts (here by 20-100% within minutes), and timing one layer after another let that
drift into the differences between layers; measured together, each round divided by that
round's speed, the drift cancels, and the uncertainty left is checked against NOISE. The whole
models (the unpruned one, uniform cuts for the rest, random cuts for the saving scale) are
timed together after them, from measurements made in the machine's fast state only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from smoea.errors import SmoeaError

FORMAT = 8  # of the tables and their timing; a table of another format is measured again
GRID = 5  # channel counts per owner axis
REST_WIDTHS = (0.25, 0.5, 0.75)  # uniform widths the whole model is measured at for the rest
# random pruned models a build measures to scale its predicted savings to measured ones: fitted
# on 5, one scale brought every validation record under 10% median error, where the layer-by-
# layer table erred 6-12% in one direction per machine (benchmarks/latency_calibration.py);
# at batch 64 the scale fitted on 5 took resnet20 and mobilenetv2 from 4% to 15-17% (their
# errors are not one scale), so a build keeps it only where it predicts each of the 5 left out
# better than no scale (format 7; benchmarks/results/latency-model, 2026-12-05)
CALIBRATION_MODELS = 5
SCALE_RANGE = (0.25, 4.0)
ROUNDS = 9  # interleaved rounds: every point measured gets one sample per round
WARMUP = 2  # calls before each sample (a fresh module's first calls set up its kernels)
BURSTS = 3  # timings per sample, the fastest kept
# a time's relative standard error (from its spread across rounds) above this is measured again
NOISE = 0.05
TRIES = 3  # sets of rounds, added up, before their noise stops the measurement
# independent measurements of a pruned model against its baseline whose ratios are averaged:
# one measured ratio at batch 1 varied by 2-3% (std) from one measurement to the next and by
# 6-12% from lowest to highest over 8 (benchmarks/results/latency-repeat), a spread the rounds
# inside one measurement do not see. The mean of 4 made back to back narrowed it less than the
# arithmetic promises (std 0.030 against 0.035 on an AMD EPYC VM): they share the minute's state
REPEATS = 4
SPREAD = 0.10  # the most repeated ratios may span (over their mean) before more are measured
# The project's 2-core VM times the same models in two states lasting tens of seconds each: a
# fast one, and a slow one in which the baseline runs 10-30% slower and pruned models slow by
# unequal amounts (a resnet20 model pruned by halp from 0.77 to 0.87 of the baseline, SMOEA's
# from 0.83 to 0.86), which one speed per round cannot cancel (benchmarks/results/latency-
# evidence, "two states"). A ratio is taken from measurements made in the fast state: those
# whose first model (the baseline) ran within STATE_SLACK of its fast level in this process:
# the 10th percentile of its times so far (with the fastest alone, none of 140 measurements
# of one pair in a compare run came within the slack: one low time can hold a model's level)
STATE_SLACK = 0.12  # the fast state's baseline times spanned 0.91-1.05 ms, the slow's 1.11-1.29
STATE_WAIT_S = 60.0  # at most this long measuring more while too few came in the fast state
# A build times its whole models (the unpruned one, the REST_WIDTHS cuts, the calibration
# models) apart from the layers, for at least this long, and keeps the measurements made in the
# fast state: inside the layers' rounds the whole model's time followed the VM's state (25-36
# ms for vgg14 w0.5 at batch 64 over eight minutes) while the layers' did not, and every ratio
# a build in the slow state predicted came out low (format 7: 22.8% median error there;
# benchmarks/results/latency-model/full-model). Slow states lasted tens of seconds to minutes.
# Against format 7, alternated on one VM (vgg14 w0.5, batch 64): the worst of 8 builds' median
# errors 10.6-12.8% where format 7's (6 builds) were 14.3-16.8%, the median over builds level
# (6.0-8.8% against 6.4-8.5%): it narrows the worst builds, it does not remove the VM's error.
# Also tried, and not kept: putting the whole models on the layers' scale by timing the layers
# at full width beside them (12.3-14.3% over builds; benchmarks/results/latency-model).
WHOLE_SPAN_S = 60.0
_SEEN: dict[tuple, list[float]] = {}  # each first model's times so far (see _signature)
SAMPLE_MS = 2.0  # one timing sample lasts about this long (calls repeated within it)


@dataclass
class Term:
    """One module's time (ms) on a grid: rows the input owner's kept units, columns the
    output owner's (a single row or column where no layer owns that side).

    Output channels cost in steps: a kernel works on blocks of `step` output units (16
    channels with AVX-512), and a count between two multiples costs as much as the multiple
    above, or more (benchmarks/channel_steps.py: a 3x3 convolution with 50-62 output channels
    ran slower than with 64, 36-46 like 48 plus 14%). So counts that are multiples of `step`
    (and the full count) are read from `units_b`/`ms`, the others from `odd_b`/`ms_odd` at the
    multiple above them, where a count inside that block was timed. `step` 1: no steps."""

    name: str
    a: int  # input owner (a layer index; n_layers for none)
    b: int  # output owner
    units_a: list[int]
    units_b: list[int]
    ms: list[list[float]]
    step: int = 1
    odd_b: list[int] = field(default_factory=list)  # the block's multiple each odd count stands for
    ms_odd: list[list[float]] = field(default_factory=list)

    def at(self, kept_a: np.ndarray, kept_b: np.ndarray) -> np.ndarray:
        """Bilinear interpolation of the grid at each row's kept counts."""
        along_b = self._along_b(np.asarray(kept_b, dtype=np.float64))  # (A, P)
        if len(self.units_a) == 1:
            return along_b[0]
        cols = [np.interp(kept_a[p], self.units_a, along_b[:, p]) for p in range(len(kept_b))]
        return np.array(cols)

    def _along_b(self, kept_b: np.ndarray) -> np.ndarray:
        aligned = np.stack([np.interp(kept_b, self.units_b, row) for row in self.ms])
        if not self.odd_b:
            return aligned
        block = np.ceil(kept_b / self.step) * self.step
        odd = np.stack([np.interp(block, self.odd_b, row) for row in self.ms_odd])
        is_odd = (kept_b % self.step != 0) & (kept_b < self.units_b[-1])
        return np.where(is_odd, odd, aligned)


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
    # measured saving per predicted saving, from whole pruned models (see _saving_scale)
    saving_scale: float = 1.0

    @property
    def layer_names(self) -> list[str]:
        return [entry.rsplit(":", 1)[0] for entry in self.key["layers"]]

    def predict(self, kept: np.ndarray) -> np.ndarray:
        """Latency in ms for each row of `kept` (units kept per layer)."""
        return self.full_ms - self.saving_scale * (self.full_ms - self.unscaled(kept))

    def unscaled(self, kept: np.ndarray) -> np.ndarray:
        """The layer-by-layer prediction: the layers' times plus the rest, before the scale."""
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

    check_batch_runs(structure.model, structure.example.shape[1:], batch, device)
    path = cache_path(table_key(structure, batch, device), default_cache_dir())
    if path.exists():
        log(f"latency table: {path} (measured before on this machine)")
        return LatencyTable.load(path)
    log(f"latency table: measuring every layer at batch {batch} (once; cached)")
    table = build_table(structure, batch, device, log=log)
    table.save(path)
    return table


def check_batch_runs(model: nn.Module, image_shape, batch: int, device: torch.device) -> None:
    """Run the model once at the latency batch: a batch the device cannot hold stops the run
    here, in one line, before any timing starts or anything is written."""
    was_training = model.training
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(batch, *image_shape, device=device))
    except (RuntimeError, MemoryError) as exc:
        if not _out_of_memory(exc):
            raise
        raise SmoeaError(
            f"--latency-batch {batch} does not fit in the memory of {device} (one forward pass "
            "of the model ran out of it); give a smaller batch"
        ) from None
    finally:
        model.train(was_training)


def _out_of_memory(exc: Exception) -> bool:
    """MemoryError, torch.OutOfMemoryError (a RuntimeError), or the CPU allocator's failure."""
    text = str(exc).lower()
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or any(
        words in text for words in ("out of memory", "can't allocate", "cannot allocate")
    )


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


def channel_block(device: torch.device) -> int:
    """Output channels a kernel works on at once here (oneDNN pads to it: 16 floats with
    AVX-512, else 8; 8 on a GPU, the tensor cores' multiple)."""
    if device.type == "cpu" and torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return 16
    return 8


def build_table(
    structure,
    batch: int,
    device: torch.device,
    rounds: int = ROUNDS,
    progress: bool = True,
    log=print,
) -> LatencyTable:
    """Time every convolution and linear layer of the structure's model on a grid of its
    owners' kept counts in the same interleaved rounds (so the machine's drift hits them
    alike), then the whole folded model and copies of it cut to REST_WIDTHS and at random, in
    the machine's fast state (see WHOLE_SPAN_S); see the module docstring."""
    model = structure.model.eval()
    image_shape = structure.example.shape[1:]
    terms, probes = _layer_probes(structure, channel_block(device))
    ms = iter(measure(probes, batch, device, image_shape, rounds, progress))
    for t in terms:
        rows = [[next(ms) for _ in t.units_b + t.odd_b] for _ in t.units_a]
        t.ms = [row[: len(t.units_b)] for row in rows]
        t.ms_odd = [row[len(t.units_b) :] for row in rows]
    rest, calibration = _rest_models(structure), _calibration_models(structure)
    wholes = [model] + [cut for _, cut in rest + calibration]
    log(f"latency table: timing {len(wholes)} whole models in the machine's fast state")
    made = fast_state_times(wholes, image_shape, batch, device, rounds, REPEATS, log, WHOLE_SPAN_S)
    ms = iter(np.median(np.array(made), axis=0).tolist())
    table = LatencyTable(
        table_key(structure, batch, device), [int(u) for u in structure.units_per_layer]
    )
    table.terms = terms
    table.full_ms = next(ms)
    table.rest_ms = table.full_ms - float(sum(t.ms[-1][-1] for t in terms))
    table.volume = [float(np.prod(layer.spatial)) for layer in structure.layers]
    volume, units = np.asarray(table.volume), np.asarray(table.units)
    table.rest_points = [[1.0, table.rest_ms]] + [
        [float(kept @ volume / (units @ volume)), next(ms) - float(table.layers_ms(kept)[0])]
        for kept, _ in rest
    ]
    table.saving_scale = _saving_scale(table, [(kept, next(ms)) for kept, _ in calibration])
    return table


def _saving_scale(table: LatencyTable, measured: list[tuple[np.ndarray, float]]) -> float:
    """checked_saving_scale on the measured pruned models: (kept units per layer, ms) each."""
    if not measured:
        return 1.0
    kept = np.array([k for k, _ in measured], dtype=np.float64)
    predicted = 1 - table.unscaled(kept) / table.full_ms
    saved = 1 - np.array([ms for _, ms in measured]) / table.full_ms
    return checked_saving_scale(predicted, saved)


def checked_saving_scale(predicted: np.ndarray, saved: np.ndarray) -> float:
    """fit_saving_scale where it earns its place: fitted on all but one model, it must predict
    the one left out (its time as a ratio to the whole model's) better than no scale, in the
    median over the models; else 1. Five models pin one scale well where the table errs by one
    scale (batch 1 here) and badly where its errors scatter (resnet20 and mobilenetv2 at batch
    64), and a wrong scale costs more than none there."""
    predicted, saved = np.asarray(predicted, dtype=np.float64), np.asarray(saved, dtype=np.float64)
    if len(saved) < 3:
        return fit_saving_scale(predicted, saved)
    measured = 1 - saved
    left_out = np.array(
        [fit_saving_scale(np.delete(predicted, i), np.delete(saved, i)) for i in range(len(saved))]
    )
    scaled = np.abs(1 - left_out * predicted - measured) / measured
    plain = np.abs(1 - predicted - measured) / measured
    return fit_saving_scale(predicted, saved) if np.median(scaled) < np.median(plain) else 1.0


def fit_saving_scale(predicted: np.ndarray, saved: np.ndarray) -> float:
    """The scale of the predicted savings (fractions of the whole model's time) that fits the
    measured ones best: least squares through the unpruned point, within SCALE_RANGE; 1 where
    nothing is predicted saved."""
    predicted, saved = np.asarray(predicted, dtype=np.float64), np.asarray(saved, dtype=np.float64)
    if float(predicted @ predicted) < 1e-12:
        return 1.0
    return float(np.clip(predicted @ saved / (predicted @ predicted), *SCALE_RANGE))


@dataclass(eq=False)
class Probe:
    """One thing a table times: a fresh convolution or linear layer like `module` with its
    channels at kept fractions (`shape`: its input at batch 1), or (no shape) a whole model."""

    module: nn.Module
    shape: tuple | None = None
    frac_in: float = 1.0
    frac_out: float = 1.0


def _layer_probes(structure, align: int) -> tuple[list[Term], list[Probe]]:
    """Each convolution and linear layer's term (its grids, times still empty) and the probes
    that time its grid points, row by row: the aligned grid, then the odd one."""
    from smoea.structure import _depthwise, _owners

    model = structure.model
    out_owner, in_owner, _ = _owners(structure)
    inputs = _input_shapes(model, structure.example)
    units = [int(u) for u in structure.units_per_layer]
    none = len(units)
    terms, probes = [], []
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)) or m not in inputs:  # not called
            continue
        a, b = in_owner.get(m, none), out_owner.get(m, none)
        if _depthwise(m):  # one axis: its channels follow one layer
            a, b = none, (b if b != none else a)
        step = _step(m, units, b, align)
        grid_a, grid_b = _grid(units, a), _grid(units, b, step)
        odd_b, odd_counts = _odd_grid(grid_b, step)
        terms.append(Term(name, a, b, grid_a, grid_b, [], step, odd_b, []))
        probes += [
            Probe(m, inputs[m], _fraction(ua, units, a), _fraction(ub, units, b))
            for ua in grid_a
            for ub in grid_b + odd_counts
        ]
    return terms, probes


def _step(m: nn.Module, units: list[int], owner: int, align: int) -> int:
    """The output owner's units per block of `align` output channels of `m` (1: no steps, where
    units do not map evenly onto channels)."""
    if owner >= len(units) or units[owner] == 1:
        return 1
    channels = m.out_features if isinstance(m, nn.Linear) else m.out_channels
    if channels % units[owner]:
        return 1
    return align // math.gcd(align, channels // units[owner])


def _odd_grid(grid_b: list[int], step: int) -> tuple[list[int], list[int]]:
    """Where counts that are not multiples of `step` are timed: for each grid multiple, one
    count inside the block below it (half a block down), and the full count's block."""
    if step == 1:
        return [], []
    blocks = sorted({int(math.ceil(c / step)) * step for c in grid_b})
    full = grid_b[-1]
    counts = [min(block - step // 2, full - 1) for block in blocks]
    return blocks, counts


def _rest_models(structure) -> list[tuple[np.ndarray, nn.Module]]:
    """(kept units per layer, model) for copies of the model cut to each of REST_WIDTHS of
    every layer (the strongest units by L1): where everything else is measured."""
    return [
        cut_copy(structure, [max(1, int(round(width * u))) for u in structure.units_per_layer])
        for width in REST_WIDTHS
    ]


def _calibration_models(structure) -> list[tuple[np.ndarray, nn.Module]]:
    """(kept units per layer, model) for CALIBRATION_MODELS copies of the model cut to
    random_counts drawn with seed 0 (the same for every build; a validation that scores the
    table must draw with another seed, or it scores these)."""
    rng = np.random.default_rng(0)
    return [
        cut_copy(structure, random_counts(structure.units_per_layer, rng))
        for _ in range(CALIBRATION_MODELS)
    ]


def random_counts(units_per_layer, rng: np.random.Generator, low: float = 0.05) -> list[int]:
    """A random kept count per layer, each between `low` of its units (at least one) and all
    of them: the pruned models a table is fitted to and validated on."""
    return [int(rng.integers(max(1, round(low * u)), int(u) + 1)) for u in units_per_layer]


def cut_copy(structure, counts: list[int]) -> tuple[np.ndarray, nn.Module]:
    """A copy of the structure's model with each layer cut to its count (the strongest units by
    L1), and the kept units per layer."""
    import copy

    from smoea.structure import Structure

    model = copy.deepcopy(structure.model)
    names = [layer.name for layer in structure.layers]
    s = Structure(model, structure.example, layer_names=names)
    masks = {
        i: np.isin(np.arange(layer.units), np.argsort(-s.l1_norms(i))[:k])
        for i, (layer, k) in enumerate(zip(s.layers, counts))
    }
    kept = s.kept_from_masks(masks)
    s.remove(masks)
    return kept, model


def _grid(units: list[int], owner: int, step: int = 1) -> list[int]:
    """GRID kept counts up to all of them, multiples of `step` (from one unit where `step` is
    1; one point: no owner)."""
    if owner >= len(units):
        return [1]
    full = units[owner]
    if step == 1:
        return sorted({int(round(c)) for c in np.linspace(1, full, GRID)})
    if full < step:
        return [full]
    blocks = np.linspace(1, full // step, GRID)
    return sorted({int(round(k)) * step for k in blocks} | {full})


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


def measure(
    probes: list[Probe],
    batch: int,
    device,
    image_shape,
    rounds: int = ROUNDS,
    progress=False,
) -> list[float]:
    """ms per call of each probe at `batch`, as deployed (eval mode, BatchNorm folded,
    channels_last), measured together in interleaved rounds (see time_together)."""
    makers = [_maker(p, batch, device, image_shape) for p in probes]
    return time_together(makers, device, rounds, progress)


def _maker(probe: Probe, batch: int, device, image_shape):
    """A function that sets up the probe's call: a layer is made afresh each round (one at a
    time in memory), a whole model folded once."""
    if probe.shape is None:
        from smoea.deploy import fold_batchnorm

        folded = fold_batchnorm(probe.module.eval()).to(device)
        folded = folded.to(memory_format=torch.channels_last)
        x = torch.randn(batch, *image_shape, device=device)
        x = x.contiguous(memory_format=torch.channels_last)
        return lambda: lambda: folded(x)

    def make():
        module = scaled_module(probe.module, probe.frac_in, probe.frac_out).eval().to(device)
        if isinstance(module, nn.Linear):
            x = torch.randn(batch, *probe.shape[:-1], module.in_features, device=device)
            return lambda: module(x)
        x = torch.randn(batch, module.in_channels, *probe.shape[1:], device=device)
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        return lambda: module(x)

    return make


def time_models(
    models: list[nn.Module], image_shape, batch: int, device, rounds: int = ROUNDS
) -> list[float]:
    """ms per call of each model as deployed, measured together (interleaved rounds): their
    ratios hold even on a machine whose speed drifts (a pruned model against its baseline)."""
    return measure([Probe(m) for m in models], batch, device, image_shape, rounds)


def time_ratio(
    baseline: nn.Module,
    pruned: nn.Module,
    image_shape,
    batch: int,
    device,
    rounds: int = ROUNDS,
    repeats: int = REPEATS,
    log=print,
) -> dict:
    """The pruned model's time as a ratio to its baseline's, both as deployed and measured
    together (see time_models), averaged over `repeats` independent measurements: "ratio" (the
    mean), "ratios" (each), "spread" ((highest - lowest) / mean), "ms" and "baseline_ms" (mean
    ms per call), each made in the machine's fast state (see STATE_SLACK). Ratios spread over
    SPREAD are said so and measured `repeats` times more (the mean of all kept, and the spread
    it still has). A measurement too noisy to keep is left out; SmoeaError when every one was."""
    models = [baseline, pruned]
    pairs = fast_state_times(models, image_shape, batch, device, rounds, repeats, log)
    if _spread(pairs) > SPREAD:
        log(
            f"note: {len(pairs)} measurements of the latency ratio spread {_spread(pairs):.0%} "
            f"(more than {SPREAD:.0%}); measuring {repeats} more"
        )
        pairs += fast_state_times(models, image_shape, batch, device, rounds, repeats, log)
    base_ms, ms = np.mean(pairs, axis=0)
    ratios = [m / b for b, m in pairs]
    return {
        "ratio": float(np.mean(ratios)),
        "ratios": ratios,
        "spread": _spread(pairs),
        "ms": float(ms),
        "baseline_ms": float(base_ms),
    }


def fast_state_times(
    models: list[nn.Module],
    image_shape,
    batch: int,
    device,
    rounds: int = ROUNDS,
    repeats: int = REPEATS,
    log=print,
    span_s: float = 0.0,
) -> list[list[float]]:
    """The models' ms per call (time_models) from `repeats` or more measurements made in the
    machine's fast state (the first model within STATE_SLACK of its fast level), over at least
    `span_s` seconds: while fewer came, more are made, for up to STATE_WAIT_S more; then those
    that came, or, where none did, every one made, and that is said. A measurement too noisy
    to keep is left out; SmoeaError when every one was."""
    key = _signature(models[0], image_shape, batch, device)
    made, refusal, tried, start = [], None, 0, time.perf_counter()
    while True:
        try:
            made.append(time_models(models, image_shape, batch, device, rounds))
            _SEEN.setdefault(key, []).append(made[-1][0])
        except SmoeaError as exc:
            refusal = exc
        tried += 1
        level = np.percentile(_SEEN[key], 10) if key in _SEEN else math.inf
        fast = [p for p in made if p[0] <= (1 + STATE_SLACK) * level]
        elapsed = time.perf_counter() - start
        if elapsed < span_s:
            continue
        waited = elapsed > span_s + STATE_WAIT_S
        if len(fast) >= repeats or (tried >= repeats and (not made or waited)):
            break
    if not made:
        raise refusal
    if len(fast) < repeats:
        log(
            f"note: {len(fast)} of {len(made)} latency measurements came in the machine's fast "
            f"state (the first model within {STATE_SLACK:.0%} of its fast level); the times are "
            f"from {'those' if fast else 'all of them'}"
        )
    return fast or made


def _signature(model: nn.Module, image_shape, batch: int, device) -> tuple:
    """What a first model's times are kept under: its parameters' shapes and the call."""
    shapes = tuple((name, tuple(p.shape)) for name, p in model.named_parameters())
    return shapes, tuple(image_shape), batch, str(device)


def _spread(pairs: list) -> float:
    """(highest - lowest) / mean of the pairs' ratios."""
    ratios = np.array([m / b for b, m in pairs])
    return float((ratios.max() - ratios.min()) / ratios.mean())


def time_model(model: nn.Module, image_shape, batch: int, device, rounds: int = ROUNDS) -> float:
    """ms per call of the model as deployed: eval mode, BatchNorm folded, channels_last."""
    return measure([Probe(model)], batch, device, image_shape, rounds)[0]


def time_together(makers: list, device: torch.device, rounds: int = ROUNDS, progress=False):
    """ms per call of each of several calls (each `makers[i]()` sets one up), in the same
    `rounds`: every round takes one sample of each, in a shuffled order, and is divided by
    that round's speed (the machine's: how much slower or faster than usual the calls ran),
    so a drift of the whole machine cancels; each time is the median over rounds. This
    machine's speed moved by 20-100% within minutes, while ratios between calls measured
    together held. Where the times' standard error (the median over calls; from their spread
    across rounds) is above NOISE, `rounds` more are measured and the times taken over all of
    them (the error falls as rounds add up), TRIES sets at most, then refused in one line."""
    calls = [_calls_per_sample(make(), device) for make in makers]  # also a warm-up
    samples = np.empty((len(makers), 0))
    for _ in range(TRIES):
        more = _rounds(makers, calls, device, rounds, progress, first=samples.shape[1])
        samples = np.concatenate([samples, more], axis=1)
        ms, error = drift_free(samples)
        if error <= NOISE:
            return ms.tolist()
    raise SmoeaError(
        f"latency measurements too noisy to trust: the times' standard error is {error:.0%} "
        f"(from their spread across {samples.shape[1]} rounds; more than {NOISE:.0%}); "
        "run nothing else while measuring"
    )


def _rounds(
    makers: list, calls: list[int], device, rounds: int, progress, first: int = 0
) -> np.ndarray:
    """Samples (ms per call) of each call in each round: rows calls, columns rounds (the
    order within round r shuffled by seed `first` + r)."""
    from tqdm import tqdm

    samples = np.empty((len(makers), rounds))
    with tqdm(total=rounds * len(makers), desc="latency", disable=not progress, leave=False) as bar:
        for r in range(rounds):
            for i in np.random.default_rng(first + r).permutation(len(makers)):
                samples[i, r] = _sample(makers[i](), device, calls[i])
                bar.update()
    return samples


def drift_free(samples: np.ndarray) -> tuple[np.ndarray, float]:
    """Each row's time (median over rounds) after dividing each round by its speed (the median
    over rows of sample over row median; with one row, no division), and how well the times
    are known: the median over rows of the median's relative standard error, from the spread
    left across rounds (interquartile range / 1.349 estimates a normal spread's sigma; a
    median's standard error is 1.253 sigma / sqrt(rounds))."""
    samples = np.asarray(samples, dtype=np.float64)
    if len(samples) > 1:
        usual = np.median(samples, axis=1, keepdims=True)
        speed = np.exp(np.median(np.log(samples / usual), axis=0, keepdims=True))
        samples = samples / speed
    ms = np.median(samples, axis=1)
    q75, q25 = np.percentile(samples, [75, 25], axis=1)
    sigma = (q75 - q25) / 1.349
    error = 1.253 * sigma / np.sqrt(samples.shape[1]) / ms
    return ms, float(np.median(error))


@torch.inference_mode()
def _sample(run, device: torch.device, calls: int) -> float:
    """ms per call, after WARMUP calls: the fastest of BURSTS timings of `calls` calls (a
    timing the scheduler interrupted is not the call's time)."""
    for _ in range(WARMUP):
        run()
    return min(_burst_ms(run, device, calls) for _ in range(BURSTS)) / calls


def _burst_ms(run, device: torch.device, calls: int) -> float:
    """ms that `calls` calls take: on a GPU between CUDA events recorded on the stream (the
    kernels' time, without the host's launch gaps before the first), else by the host clock."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        _sync(device)
        start.record()
        for _ in range(calls):
            run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return 1000 * (time.perf_counter() - start)


@torch.inference_mode()
def _calls_per_sample(run, device: torch.device) -> int:
    """Calls that take about SAMPLE_MS together (at least one), from a short trial."""
    run()
    once = _burst_ms(run, device, 3) / 3
    return max(1, min(1000, int(SAMPLE_MS / max(once, 1e-6))))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
