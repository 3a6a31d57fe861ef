"""Every torchvision classifier through smoea's whole path at a tiny size: a table of what prunes.

Usage: python benchmarks/torchvision_zoo.py OUT_DIR [--models a,b,...] [--image-size 64]
           [--timeout 600] [--memory-gb 16] [--table]

For each model of `torchvision.models.list_models(module=torchvision.models)` (random weights,
3 classes, 24 random images at --image-size px), in its own process with a time limit: one
SGD step, prune to 60% of the MACs (a tiny search: 4 candidates a group, one level), save,
load with weights_only (compared in float64), export to ONNX and compare its outputs with the
pruned model's (and both with the float64 output: ONNX may be as far from it as PyTorch's float32).
Each model's record goes to OUT_DIR/<name>.json (finished models are skipped on a rerun);
A model's process may address at most --memory-gb (over it, Python raises MemoryError: a
failed record, not the machine's OOM killer taking the model and whatever else runs).
`--table` prints the markdown table from the records: pruned (MAC ratio, seconds), refused with
smoea's one-line reason (exit 2 from the command line), or failed (a traceback: a defect).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch


def one(name: str, size: int) -> dict:
    """The whole path for one model; a SmoeaError is a refusal, anything else a failure."""
    from smoea.errors import SmoeaError

    start = time.perf_counter()
    try:
        record = _path(name, size)
        record["status"] = "pruned"
    except SmoeaError as exc:
        record = {"status": "refused", "reason": " ".join(str(exc).split())}
    except Exception as exc:  # a defect: recorded with where it happened
        where = traceback.extract_tb(exc.__traceback__)[-1]
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        at = f"{Path(where.filename).name}:{where.lineno}"
        record = {"status": "failed", "reason": f"{type(exc).__name__}: {reason} ({at})"}
    from smoea.report import versions

    record.update(model=name, image_size=size, seconds=time.perf_counter() - start)
    return record | {"versions": versions()}


def _path(name: str, size: int) -> dict:
    import numpy as np
    import onnxruntime

    from smoea.checkpoint import load, save_model
    from smoea.data import TensorData
    from smoea.deploy import export
    from smoea.models import build_model, make_arch
    from smoea.pipeline import prune
    from smoea.prune_config import PruneConfig
    from smoea.train import TrainConfig

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (24, 3, size, size), generator=gen, dtype=torch.uint8)
    data = TensorData(x, torch.arange(24) % 3)
    arch = make_arch(f"torchvision:{name}", 1.0, 3, 3, size)
    model = build_model(arch)
    _one_step(model, x[:8].float() / 255, data.y[:8])
    config = PruneConfig(
        target_macs=0.6,
        pop_size=4,
        generations=1,
        effort="fixed",
        budget="level",
        search_size=8,
        calibration_images=8,
        eval_batch_size=8,
        final=TrainConfig(epochs=0),
    )
    train, val = TensorData(x[:16], data.y[:16]), TensorData(x[16:], data.y[16:])
    pruned, report = prune(model, train, val, config, "cpu", log=lambda m: None)
    with tempfile.TemporaryDirectory() as tmp:
        save_model(Path(tmp) / "model.pt", pruned, arch, {})
        loaded = load(Path(tmp) / "model.pt")
        probe = torch.randn(2, 3, size, size)
        with torch.no_grad():
            expected = pruned.eval()(probe).numpy()
        target = export(loaded, (3, size, size), "onnx", Path(tmp) / "model.onnx")
        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        (out,) = session.run(None, {session.get_inputs()[0].name: probe.numpy()})
    same_state = _same_state(pruned, loaded)
    exact, reloaded = _float64_outputs(pruned, loaded, probe)
    scale = max(1.0, float(np.abs(expected).max()))
    return {
        "macs_ratio": report["macs_ratio"],
        "params_ratio": report["params_ratio"],
        "layers": len(report["filters_before"]),
        "groups": len(report["groups"]),
        "scoring": sorted({g["evaluator"] for g in report["groups"]}),
        "reload_dtype": "float64",
        "reload_state_equal": same_state,
        "reload_max_rel_diff": float(np.abs(reloaded - exact).max()) / scale,
        "onnx_max_rel_diff": float(np.abs(out - expected).max()) / scale,
        "onnx_from_exact_rel": float(np.abs(out - exact).max()) / scale,
        "torch_from_exact_rel": float(np.abs(expected - exact).max()) / scale,
    }


def _float64_outputs(pruned, loaded, probe):
    """Pruned and reloaded outputs in float64, the models converted in place (after export),
    both contiguous: a memory format is not in the file but changes the kernels' float order.

    Random-weight logits can be ill-conditioned (efficientnet_b7's reach 1e8): float32 then
    differs by rounding alone, even between two memory formats of one model, which says
    nothing about the file. In float64 a saved model that loads right gives the same numbers.
    """
    contiguous = torch.contiguous_format
    with torch.no_grad():
        exact = pruned.to(memory_format=contiguous).double()(probe.double()).numpy()
        pruned.float()  # one model in float64 at a time (regnet_y_128gf's are 2.6 GB in float32)
        reloaded = loaded.eval().to(memory_format=contiguous).double()(probe.double()).numpy()
    return exact, reloaded


def _same_state(pruned, loaded) -> bool:
    """The reloaded model holds every tensor of the pruned one, bit for bit."""
    a, b = pruned.state_dict(), loaded.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _one_step(model, x, y) -> None:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    model.zero_grad(set_to_none=True)  # the gradients would double the largest models' memory


def table(out: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    lines = [
        "| model | result | MAC ratio | layers / groups | scoring | seconds | reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pruned = r["status"] == "pruned"
        lines.append(
            f"| {r['model']} | {r['status']} | "
            f"{r['macs_ratio']:.3f} | {r['layers']} / {r['groups']} | {', '.join(r['scoring'])} | "
            if pruned
            else f"| {r['model']} | {r['status']} | | | | "
        )
        lines[-1] += f"{r['seconds']:.0f} | {r.get('reason', '')} |"
    counts = {s: sum(r["status"] == s for r in rows) for s in ("pruned", "refused", "failed")}
    lines.append("")
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(rows)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--models", default=None)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--memory-gb", type=float, default=16.0)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    if args.table:
        print(table(out))
        return
    if args.one:
        print(json.dumps(one(args.one, args.image_size)))
        return
    import torchvision

    out.mkdir(parents=True, exist_ok=True)
    names = (
        args.models.split(",")
        if args.models
        else torchvision.models.list_models(module=torchvision.models)
    )
    for name in names:
        path = out / f"{name}.json"
        if not path.exists():
            record = _run_one(out, name, args.image_size, args.timeout, args.memory_gb)
            path.write_text(json.dumps(record, indent=1))
            print(f"{name}: {record['status']} {record.get('reason', '')}", flush=True)


def _run_one(out: Path, name: str, size: int, timeout: int, memory_gb: float) -> dict:
    """One model in its own process (a crash, a hang or running out of memory is recorded)."""
    cmd = [sys.executable, __file__, str(out), "--one", name, "--image-size", str(size)]
    failed = {"model": name, "status": "failed", "seconds": float(timeout)}

    def limit_memory() -> None:
        limit = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=limit_memory
        )
    except subprocess.TimeoutExpired:
        return failed | {"reason": f"over the {timeout} s limit"}
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        return json.loads(lines[-1])
    last = (done.stderr.strip().splitlines() or [""])[-1]
    return failed | {"seconds": 0.0, "reason": f"exit {done.returncode}: {last}"}


if __name__ == "__main__":
    main()
