"""Model files: the architecture as data plus the weights, loadable with weights_only=True."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn as nn

from smoea.errors import SmoeaError
from smoea.models import build_model, conv_filters, module_shapes

FORMAT = "smoea-model/1"
PICKLED_FORMAT = "smoea-pickled-model/1"


def atomic_save(obj, path: str | Path) -> None:
    """Write to a temporary file in the same directory, then rename: a crash leaves the old file.
    Under torchrun only rank 0 writes."""
    from smoea import distributed

    if not distributed.is_main():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SmoeaError(f"cannot write {path}: {exc.strerror or exc}") from None


def save_model(path: str | Path, model: nn.Module, arch: dict | None, extra: dict) -> None:
    """Save a model; ours as data (safe to load), any other module pickled (needs trust)."""
    full = model.state_dict()
    state = {k: v.detach().cpu() for k, v in full.items()}
    if arch is not None:
        # module versions (torchvision's MNASNet reads one when it loads): plain data
        extra = {**extra, "state_metadata": _plain_metadata(full)}
        if "filters" in arch:  # vgg: the filters per conv layer say it all
            arch = dict(arch, filters=conv_filters(model))
        else:
            arch = dict(arch, shapes=module_shapes(model))
        record = {"format": FORMAT, "arch": arch, "state_dict": state, **extra}
    else:
        record = {"format": PICKLED_FORMAT, "module": model.cpu(), **extra}
    atomic_save(record, path)


def _plain_metadata(state) -> dict:
    meta = getattr(state, "_metadata", None) or {}
    return {k: {kk: vv for kk, vv in v.items() if isinstance(vv, int)} for k, v in meta.items()}


def _with_metadata(state: dict, meta: dict | None):
    """The state dict as `load_state_dict` reads it, with its module versions back."""
    ordered = OrderedDict(state)
    if meta:
        ordered._metadata = OrderedDict((k, dict(v)) for k, v in meta.items())
    return ordered


def save(model: nn.Module, path: str | Path, arch: dict | None = None) -> None:
    """Save a model (the public `smoea.save`): as data when `arch` is given, else pickled."""
    save_model(path, model, arch, {})


def load_record(path: str | Path, trust: bool = False) -> dict:
    """Read a model file; a pickled module is refused unless the caller trusts the file."""
    path = Path(path)
    if not path.is_file():
        raise SmoeaError(f"checkpoint {path} does not exist")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if not trust:
            what = (
                "holds pickled code"
                if "weights_only" in str(exc)
                else "is not a readable model file"
            )
            raise SmoeaError(
                f"checkpoint {path} {what}; pass --trust-checkpoint only if you trust its origin"
            ) from None
        try:
            record = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc2:
            raise SmoeaError(f"checkpoint {path} is not a readable model file: {exc2}") from None
    if not isinstance(record, dict) or record.get("format") not in (FORMAT, PICKLED_FORMAT):
        raise SmoeaError(f"checkpoint {path} is not a smoea model file")
    return record


def load(path: str | Path, trust: bool = False) -> nn.Module:
    """Rebuild a saved model in eval mode (the public `smoea.load`)."""
    return load_model_file(path, trust)[1]


def load_model_file(path: str | Path, trust: bool = False) -> tuple[dict, nn.Module]:
    """A model file's record (architecture, normalisation, split, ...) and its model, rebuilt:
    a broken or mismatched file fails here in one line, before any work."""
    record = load_record(path, trust)
    return record, model_from_record(record, path)


def model_from_record(record: dict, path: str | Path = "checkpoint") -> nn.Module:
    if record["format"] == PICKLED_FORMAT:
        return record["module"].eval()
    model = build_model(record["arch"])
    try:
        model.load_state_dict(_with_metadata(record["state_dict"], record.get("state_metadata")))
    except (RuntimeError, KeyError) as exc:
        first = str(exc).splitlines()[0]
        raise SmoeaError(f"checkpoint {path} does not match its architecture: {first}") from None
    return model.eval()
