"""Run directories: never overwrite a finished run, resume an unfinished one, write atomically."""

from __future__ import annotations

import json
from pathlib import Path

from smoea import distributed
from smoea.errors import SmoeaError

TRAIN_STATE = "train_state.pt"
PRUNE_STATE = "state.pt"


def guard_out(out: Path, force: bool) -> None:
    """Never overwrite a finished run without --force."""
    if (out / "model.pt").exists() and not force:
        raise SmoeaError(f"{out} already holds a finished run; pass --force to overwrite it")
    if out.exists() and not out.is_dir():
        raise SmoeaError(f"--out {out} exists and is not a directory")


def write_json(path: Path, obj: dict) -> None:
    """Atomic like the model files: a failed write leaves the previous file as it was. Under
    torchrun only rank 0 writes."""
    if not distributed.is_main():
        return
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2))
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SmoeaError(f"cannot write {path}: {exc.strerror or exc}") from None


def train_resume_state(out: Path, args) -> dict | None:
    from smoea.checkpoint import load_record

    state = out / TRAIN_STATE
    if args.resume:
        if not state.exists():
            raise SmoeaError(f"--resume: {out} holds no unfinished training ({TRAIN_STATE})")
        return load_record(state)
    guard_out(out, args.force)
    if state.exists() and not args.force:
        raise SmoeaError(
            f"{out} holds an unfinished run; add --resume to continue it or --force to start over"
        )
    return None


def guard_compare_out(out: Path, force: bool, resume: bool) -> None:
    """A finished comparison needs --force; an unfinished one --resume (or --force)."""
    import shutil

    if out.exists() and not out.is_dir():
        raise SmoeaError(f"--out {out} exists and is not a directory")
    if force:
        shutil.rmtree(out / "runs", ignore_errors=True)
        return
    if (out / "compare.json").exists() and not resume:
        raise SmoeaError(f"{out} already holds a comparison; pass --force to start over")
    if (out / "runs").exists() and not resume:
        raise SmoeaError(
            f"{out} holds an unfinished comparison; add --resume to continue it or --force"
        )
