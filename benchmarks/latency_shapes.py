"""Why a pruned vgg's CPU speedup falls below its MAC ratio: per-layer times and shape variants.

Usage: python benchmarks/latency_shapes.py BASE_MODEL.pt PRUNED_MODEL.pt [repeats]
Run it with nothing else on the machine. Prints
1. per layer (conv + BN + ReLU [+ pool]): channels, MACs and median time at batch 64 and 1 for
   the baseline and the pruned model, with the achieved GMAC/s;
2. the pruned model's filter counts rounded up / to the nearest multiple of 4, 8, 16 (fresh
   weights: time does not depend on them): MACs and latency, batch 1 and 64;
3. the same models with BatchNorm folded into the convolutions, and in contiguous memory layout.
Only vgg model files (they store `filters`).
"""

import statistics
import sys
import time

import torch
from torch import nn

import smoea
from smoea.deploy import fold_batchnorm, measure_latency
from smoea.models import build_model
from smoea.report import model_counts
from smoea.structure import round_count


def blocks(model: nn.Sequential) -> list[list[nn.Module]]:
    """The flat Sequential cut before each conv (the first block also holds nothing before it)."""
    out: list[list[nn.Module]] = []
    for m in model:
        if isinstance(m, (nn.Conv2d, nn.Linear)) or not out:
            out.append([])
        out[-1].append(m)
    return out


@torch.inference_mode()
def per_layer_ms(model: nn.Module, shape, batch: int, repeats: int) -> list[float]:
    model = model.eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, *shape).contiguous(memory_format=torch.channels_last)
    times = []
    for block in blocks(model):
        run = nn.Sequential(*block)
        samples = []
        for i in range(repeats + 5):
            start = time.perf_counter()
            y = run(x)
            if i >= 5:
                samples.append(time.perf_counter() - start)
        times.append(1000 * statistics.median(samples))
        x = y
    return times


def layer_macs(model: nn.Module, shape) -> list[int]:
    macs, x = [], torch.zeros(1, *shape)
    for block in blocks(model):
        m = block[0]
        y = nn.Sequential(*block)(x)
        if isinstance(m, nn.Conv2d):
            pre = m(x)
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            macs.append(pre.numel() * k)
        else:
            macs.append(m.in_features * m.out_features)
        x = y
    return macs


def out_channels(model: nn.Sequential) -> list[int]:
    return [
        b[0].out_channels if isinstance(b[0], nn.Conv2d) else b[0].out_features
        for b in blocks(model)
    ]


def layer_table(base, pruned, shape, repeats) -> None:
    print("\n1. per layer (conv/linear block), channels_last, eval")
    print("layer  ch base->pruned  MAC ratio | b64 base ms  pruned ms  speedup  GMAC/s b/p", end="")
    print(" | b1 speedup")
    mb, mp = layer_macs(base, shape), layer_macs(pruned, shape)
    t64b, t64p = per_layer_ms(base, shape, 64, repeats), per_layer_ms(pruned, shape, 64, repeats)
    t1b, t1p = per_layer_ms(base, shape, 1, repeats), per_layer_ms(pruned, shape, 1, repeats)
    chb, chp = out_channels(base), out_channels(pruned)
    for i in range(len(mb)):
        print(
            f"{i + 1:5d}  {chb[i]:4d} -> {chp[i]:4d}  {mp[i] / mb[i]:9.3f} | {t64b[i]:11.3f}"
            f"  {t64p[i]:9.3f}  {t64b[i] / t64p[i]:6.2f}x  {64 * mb[i] / t64b[i] / 1e6:5.1f}"
            f"/{64 * mp[i] / t64p[i] / 1e6:5.1f} | {t1b[i] / t1p[i]:6.2f}x"
        )
    print(f"sum of layers, batch 64: base {sum(t64b):.2f} ms, pruned {sum(t64p):.2f} ms")
    print(f"sum of layers, batch 1:  base {sum(t1b):.3f} ms, pruned {sum(t1p):.3f} ms")


def variants(pruned_filters: list[int], base_filters: list[int]) -> dict:
    out = {"as pruned": pruned_filters}
    for k in (4, 8, 16):
        for how in ("up", "nearest"):
            out[f"{how} to {k}"] = [
                round_count(f, k, n, how) for f, n in zip(pruned_filters, base_filters)
            ]
    return out


def main(base_path: str, pruned_path: str, repeats: int = 30) -> None:
    torch.manual_seed(0)
    record = torch.load(pruned_path, weights_only=True)
    base_record = torch.load(base_path, weights_only=True)
    shape = tuple(record.get("image_shape") or (3, 32, 32))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {shape}")
    base, pruned = smoea.load(base_path), smoea.load(pruned_path)
    layer_table(base, pruned, shape, repeats)

    print("\n2. shape variants of the pruned model (fresh weights), channels_last; each time the")
    print(f"   median over {ROUNDS} interleaved rounds of {repeats} passes; MAC/s relative to")
    print("   the model as pruned")
    arch = dict(record["arch"])
    models = {"baseline": base}
    shapes = variants(arch["filters"], base_record["arch"]["filters"])
    for name, filters in shapes.items():
        models[name] = build_model({**arch, "filters": filters})
    times = interleaved(models, shape, repeats)
    macs = {name: model_counts(m, shape)["macs"] for name, m in models.items()}
    b = times["baseline"]
    for name in shapes:
        t = times[name]
        print(
            f"{name:12s} MACs {macs[name] / macs['baseline']:.3f}  b1 {t[0]:.3f} ms "
            f"({b[0] / t[0]:.2f}x)  b64 {t[1]:.2f} ms ({b[1] / t[1]:.2f}x)  "
            f"MAC/s b1 {macs[name] / t[0] / (macs['as pruned'] / times['as pruned'][0]):.2f} "
            f"b64 {macs[name] / t[1] / (macs['as pruned'] / times['as pruned'][1]):.2f}  "
            f"filters {shapes[name]}"
        )

    print("\n3. BatchNorm folded / contiguous layout")
    for name, model in (("baseline", base), ("pruned", pruned)):
        for label, m in (("as is", model), ("BN folded", fold_batchnorm(model))):
            r = measure_latency(m, shape, "cpu", (1, 64), repeats)
            b1, b64 = r["batch_1_ms"], r["batch_64_ms"]
            print(f"{name:9s} {label:10s} b1 {b1:.3f} ms  b64 {b64:.2f} ms")
        r = contiguous_latency(model, shape, repeats)
        print(f"{name:9s} contiguous  b1 {r[1]:.3f} ms  b64 {r[64]:.2f} ms")


ROUNDS = 5


def interleaved(models: dict, shape, repeats: int) -> dict:
    """Batch-1 and batch-64 medians per model, rounds interleaved so drifts hit all alike."""
    samples = {name: ([], []) for name in models}
    for _ in range(ROUNDS):
        for name, model in models.items():
            r = measure_latency(model, shape, "cpu", (1, 64), repeats, warmup=5)
            samples[name][0].append(r["batch_1_ms"])
            samples[name][1].append(r["batch_64_ms"])
    return {n: (statistics.median(a), statistics.median(b)) for n, (a, b) in samples.items()}


@torch.inference_mode()
def contiguous_latency(model: nn.Module, shape, repeats: int) -> dict:
    model = model.eval().to(memory_format=torch.contiguous_format)
    out = {}
    for batch in (1, 64):
        x, samples = torch.randn(batch, *shape), []
        for i in range(repeats + 10):
            start = time.perf_counter()
            model(x)
            if i >= 10:
                samples.append(time.perf_counter() - start)
        out[batch] = 1000 * statistics.median(samples)
    return out


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 30)
