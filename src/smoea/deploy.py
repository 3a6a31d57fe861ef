"""Deployment: export a pruned model to ONNX or TorchScript, and measure its inference latency."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn

from smoea.errors import SmoeaError

FORMATS = ("onnx", "torchscript")


def export(
    model: nn.Module,
    image_shape: tuple[int, int, int],
    fmt: str,
    path: str | Path,
    fold: bool = True,
) -> Path:
    """Write `model` (in eval mode, on the CPU) to `path`; the batch size stays free.

    With `fold`, BatchNorm layers are first folded into the convolutions before them (one op
    fewer per layer: measured 20% faster at batch 1 on a pruned vgg14, benchmarks/results/
    latency-vgg14-w05); the outputs stay equal within float rounding.
    """
    if fmt not in FORMATS:
        raise SmoeaError(f"unknown --format {fmt!r}; choose {' or '.join(FORMATS)}")
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise SmoeaError(f"--out {path}: folder {path.parent} does not exist")
    model = model.eval().cpu()
    if fold:
        model = fold_batchnorm(model)
    example = torch.randn(2, *image_shape)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if fmt == "onnx":
            _export_onnx(model, example, tmp)
        else:
            torch.jit.trace(model, example).save(str(tmp))
        tmp.replace(path)
    except OSError as exc:
        raise SmoeaError(f"cannot write {path}: {exc.strerror or exc}") from None
    except SmoeaError:
        raise
    except Exception as exc:  # an operator the exporter cannot handle
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SmoeaError(f"{fmt} export failed: {first}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` (eval mode) with each Conv-BatchNorm pair folded into one convolution.

    Uses torch.fx; a model that fx cannot trace comes back unchanged (still correct, unfused).
    """
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model.eval(), inplace=False)
    except Exception:  # untraceable control flow: export it as it is
        return model


def _export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    try:
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise SmoeaError(
            "ONNX export needs onnx and onnxscript: pip install smoea[export]"
        ) from None
    program = torch.onnx.export(
        model,
        (example,),
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        external_data=False,
    )
    program.save(str(path))


@torch.inference_mode()
def measure_latency(
    model: nn.Module,
    image_shape: tuple[int, int, int],
    device: torch.device | str = "cpu",
    batch_sizes: tuple[int, ...] = (1, 64),
    repeats: int = 30,
    warmup: int = 5,
) -> dict:
    """Median wall time of a forward pass per batch size, after warm-up; threads stated.

    Runs in eval mode with channels_last inputs, as SMOEA evaluates. The figures hold for this
    machine and this thread count only.
    """
    device = torch.device(device)
    model = model.eval().to(device).to(memory_format=torch.channels_last)
    result = {"device": str(device), "threads": torch.get_num_threads(), "repeats": repeats}
    for batch in batch_sizes:
        x = torch.randn(batch, *image_shape, device=device)
        x = x.contiguous(memory_format=torch.channels_last)
        times = []
        for i in range(warmup + repeats):
            _sync(device)
            start = time.perf_counter()
            model(x)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        result[f"batch_{batch}_ms"] = 1000 * statistics.median(times)
    return result


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
