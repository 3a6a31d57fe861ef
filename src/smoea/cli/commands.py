"""What each `smoea` command does: train, prune, compare, evaluate, export."""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import sys
import time
from pathlib import Path

import torch

from smoea import distributed
from smoea.checkpoint import load_model_file, load_record, model_from_record, save_model
from smoea.cli.flags import config_from_flags, prune_config
from smoea.cli.rundir import (
    PRUNE_STATE,
    TRAIN_STATE,
    guard_compare_out,
    guard_out,
    train_resume_state,
    write_json,
)
from smoea.errors import SmoeaError
from smoea.report import check_compatible, model_counts, model_figures, plot_report, versions
from smoea.train import DISTILL_TEMPERATURE, DISTILL_WEIGHT


def _need_data(args) -> None:
    if not args.data and not args.download:
        raise SmoeaError("--data is required (a data directory or a .tar.gz archive)")


def _splits(args, record: dict | None = None):
    """The data, with the validation split the model file records (the one its training held
    out), so that a different --seed never searches or validates on images it trained on."""
    from smoea.data import load_splits

    _need_data(args)
    size, seed = split_of(args, record)
    splits = load_splits(
        args.dataset,
        args.data or "data",
        size,
        seed,
        args.download,
        args.cache_dir,
        args.image_size,
        args.memory_budget,
        args.workers,
    )
    splits.split = {"val_size": size, "seed": seed}
    if args.image_size is None:  # one size, in memory: nothing was chosen
        return splits
    n = len(splits.train) + len(splits.val) + len(splits.test)
    where = (
        f"streamed from disk by {args.workers} workers (over --memory-budget {args.memory_budget})"
        if splits.storage == "stream"
        else "in memory"
    )
    print(
        f"data: {n:,} images of {'x'.join(map(str, splits.image_shape))}, {where}", file=sys.stderr
    )
    return splits


def split_of(args, record: dict | None) -> tuple[int, int]:
    """(val_size, split seed): the record's, refusing flags that contradict it; else the flags
    (a file from before splits were recorded: --split-seed, or --seed as then)."""
    recorded = (record or {}).get("split")
    if recorded is None:
        size = DEFAULT_VAL_SIZE if args.val_size is None else args.val_size
        return size, args.seed if args.split_seed is None else args.split_seed
    for flag, given, saved in (
        ("--val-size", args.val_size, recorded["val_size"]),
        ("--split-seed", args.split_seed, recorded["seed"]),
    ):
        if given is not None and given != saved:
            raise SmoeaError(
                f"{flag} {given} differs from the {saved} the model was trained with; its "
                "validation split must stay the same (drop the flag)"
            )
    return int(recorded["val_size"]), int(recorded["seed"])


DEFAULT_VAL_SIZE = 5000
# the command that continues an interrupted run, for main to print
resume_hint = [""]


def cmd_train(args) -> None:
    from smoea.device import resolve_device
    from smoea.models import build_model, make_arch
    from smoea.train import TrainConfig, TrainingDiverged, evaluate, train

    out = Path(args.out)
    resume = train_resume_state(out, args)
    device = resolve_device(args.device)
    start_from = _start_record(args)
    splits = _splits(args, start_from)
    if start_from is not None:
        check_compatible(start_from, splits, args.from_checkpoint)
        if "normalize" in start_from:
            splits.mean = start_from["normalize"]["mean"]
            splits.std = start_from["normalize"]["std"]
        arch = start_from.get("arch")
    else:
        c, h, _ = splits.image_shape
        arch = make_arch(args.model, args.width, splits.num_classes, c, h)
    torch.manual_seed(args.seed)
    if resume is not None:
        model = model_from_record(resume, out / TRAIN_STATE)
    elif start_from is not None:
        model = model_from_record(start_from, args.from_checkpoint)
    else:
        model = build_model(arch)
        if getattr(args, "pretrained", False):
            from smoea.models import load_pretrained

            new = load_pretrained(model, args.model)
            print(f"pretrained weights loaded; {new} tensors (the head) start new", file=sys.stderr)
    cfg = config_from_flags(TrainConfig, args)
    extra = {
        "normalize": {"mean": splits.mean, "std": splits.std},
        "classes": splits.classes,
        "image_shape": list(splits.image_shape),
        "split": splits.split,
    }
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def checkpoint(record: dict, state: dict) -> None:
        print(json.dumps(record), file=sys.stderr)
        save_model(out / TRAIN_STATE, model, arch, {**extra, "train_state": state})

    distill = _teacher(args, splits)
    resume_hint[0] = f"smoea train --resume --out {out} (with the same flags)"
    try:
        state = resume["train_state"] if resume else None
        history = train(
            model,
            splits,
            cfg,
            device,
            args.seed,
            on_epoch=checkpoint,
            resume=state,
            distill=distill,
        )
    except TrainingDiverged as exc:
        saved = out / TRAIN_STATE
        kept = f"the last good epoch is in {saved}" if saved.exists() else "no epoch completed"
        raise SmoeaError(f"{exc}; {kept}") from None
    seconds = time.perf_counter() - start
    test = evaluate(model, splits.test, splits, device)
    counts = model_counts(model, splits.image_shape)
    save_model(out / "model.pt", model, arch, extra)
    write_json(
        out / "train.json",
        {
            "command": "smoea " + shlex.join(sys.argv[1:]),
            "arch": arch,
            "config": cfg.as_dict(),
            "seed": args.seed,
            "from": args.from_checkpoint,
            "teacher": args.teacher,
            "history": history,
            "test_accuracy": test["accuracy"],
            "test_loss": test["loss"],
            **counts,
            "seconds": seconds,
            "resumed": resume is not None,
            "device": str(device),
            "versions": versions(),
        },
    )
    if distributed.is_main():
        (out / TRAIN_STATE).unlink(missing_ok=True)
    print(
        f"test accuracy {test['accuracy']:.4f}  params {counts['params']:,}  "
        f"MACs {counts['macs']:,}  -> {out / 'model.pt'}"
    )


def _teacher(args, splits):
    """The distillation of `smoea train --teacher FILE`, or None."""
    from smoea.train import Distill

    if not args.teacher:
        return None
    record, teacher = load_model_file(args.teacher, args.trust_checkpoint)
    check_compatible(record, splits, args.teacher)
    distill = Distill(teacher, args.distill_temperature, args.distill_weight)
    distill.validate()
    return distill


def _start_record(args) -> dict | None:
    """The record of the --from model file, or None for a new model."""

    if not args.from_checkpoint:
        return None
    return load_record(args.from_checkpoint, args.trust_checkpoint)


def cmd_prune(args) -> None:
    from smoea import pipeline
    from smoea.data import outside_subset
    from smoea.deploy import measure_latency
    from smoea.device import resolve_device

    args, state = _prune_resume_state(args)
    config = prune_config(args)
    config.validate()
    out = Path(args.out)
    device = resolve_device(args.device)
    record = load_record(args.checkpoint, args.trust_checkpoint)
    model = model_from_record(state or record, args.checkpoint)
    splits = _splits(args, record)
    check_compatible(record, splits, args.checkpoint)
    if "normalize" in record:
        splits.mean, splits.std = record["normalize"]["mean"], record["normalize"]["std"]
    extra = _model_extra(record, splits)
    saved_args = {k: v for k, v in vars(args).items() if k != "resume"}

    def save_state(model, report) -> None:
        save_model(
            out / PRUNE_STATE,
            model,
            record.get("arch"),
            {**extra, "report": report, "args": saved_args},
        )

    out.mkdir(parents=True, exist_ok=True)
    resume_hint[0] = f"smoea prune --resume {out}"
    start = time.perf_counter()
    model, report = pipeline.prune(
        model,
        splits.train,
        splits.val,
        config,
        device,
        splits.mean,
        splits.std,
        log=lambda m: print(m, file=sys.stderr),
        on_group_done=save_state,
        resume_report=state["report"] if state else None,
        teacher=model_from_record(record, args.checkpoint) if config.distill else None,
    )
    seconds = time.perf_counter() - start
    # The test split is read only now, for the reported figures.
    baseline = model_from_record(record, args.checkpoint)
    held_out = outside_subset(splits.val, config.search_size, config.seed)
    report = {
        "command": "smoea " + shlex.join(sys.argv[1:]) if _argv_is_cli() else "smoea prune",
        "baseline": model_figures(baseline, splits, device, held_out),
        "pruned": model_figures(model, splits, device, held_out),
        **report,
        "split": splits.split,
        "wall_seconds": seconds,
        "resumed": state is not None,
        "device": str(device),
        "processes": distributed.world(),
        "versions": versions(),
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "latency": {
            "baseline": measure_latency(baseline, splits.image_shape, device),
            "pruned": measure_latency(model, splits.image_shape, device),
        },
    }
    if config.uses_latency:
        report["measured_latency"] = _measured_latency(report, baseline, model, splits, device)
    write_json(out / "report.json", report)
    if distributed.is_main():
        plot_report(report, out)
    save_model(out / "model.pt", model, record.get("arch"), extra)
    if distributed.is_main():
        (out / PRUNE_STATE).unlink(missing_ok=True)
    b, p = report["baseline"], report["pruned"]
    print(
        f"baseline {b['test_accuracy']:.4f} -> pruned {p['test_accuracy']:.4f}  params "
        f"{p['params']:,} ({report['params_ratio']:.2%})  MACs {p['macs']:,} "
        f"({report['macs_ratio']:.2%})  -> {out / 'model.pt'}"
    )
    if config.uses_latency and "error" not in report["measured_latency"]:
        lat = report["measured_latency"]
        print(
            f"latency at batch {lat['batch']}: {lat['baseline_ms']:.2f} -> {lat['pruned_ms']:.2f} "
            f"ms measured ({lat['ratio']:.2%}; the table predicted {report['latency_ratio']:.2%})"
        )
    if config.final.epochs == 0:
        norms = _norms_note(report, config.calibration_images)
        print(
            f"note: --final-epochs 0: these accuracies are before any fine-tuning ({norms}); "
            f"fine-tune with smoea train --from {out / 'model.pt'}",
            file=sys.stderr,
        )


def _measured_latency(report: dict, baseline, pruned, splits, device) -> dict:
    """Both models measured as deployed (BatchNorm folded) at the latency batch, together (the
    machine's drift cancels in their ratio), beside what the latency table predicted."""
    from smoea.latency import time_ratio

    batch = report["config"]["latency_batch"]
    try:
        say = lambda line: print(line, file=sys.stderr)  # noqa: E731
        m = time_ratio(baseline, pruned, splits.image_shape, batch, device, log=say)
    except SmoeaError as exc:  # too noisy: the pruned model is kept all the same
        print(f"note: latency not measured: {exc}", file=sys.stderr)
        return {"batch": batch, "error": str(exc)}
    predicted = report["original"]["latency"]
    return {
        "batch": batch,
        "baseline_ms": m["baseline_ms"],
        "pruned_ms": m["ms"],
        "ratio": m["ratio"],
        "ratios": m["ratios"],
        "spread": m["spread"],
        "predicted_baseline_ms": predicted,
        "predicted_pruned_ms": predicted * report["latency_ratio"],
    }


def _norms_note(report: dict, calibration_images: int) -> str:
    """Whether, and after which group, the BatchNorm statistics were last re-estimated."""
    done = [
        (k, g["norms_reestimated"])
        for k, g in enumerate(report["groups"], start=1)
        if g.get("norms_reestimated")
    ]
    if done:
        k, images = done[-1]
        return f"BatchNorm statistics re-estimated on {images} training images after group {k}"
    if not calibration_images:
        return "BatchNorm statistics not re-estimated: --calibration-images 0"
    return "BatchNorm statistics not re-estimated: no group removed a filter"


def _prune_resume_state(args) -> tuple[argparse.Namespace, dict | None]:
    """With --resume DIR, the saved flags and state of DIR; otherwise check --checkpoint/--out."""

    if args.resume:
        path = Path(args.resume) / PRUNE_STATE
        if not path.exists():
            raise SmoeaError(f"--resume: {args.resume} holds no unfinished prune ({PRUNE_STATE})")
        state = load_record(path, args.trust_checkpoint)
        saved = dict(state["args"], device=args.device, resume=args.resume)
        return argparse.Namespace(**saved), state
    if not args.out:
        raise SmoeaError("smoea prune needs --out (or --resume DIR)")
    if not args.checkpoint and not args.model:
        raise SmoeaError("smoea prune needs --checkpoint, or --model to build the baseline")
    if args.checkpoint and (args.model or args.weights):
        raise SmoeaError("give --checkpoint, or --model (with --weights), not both")
    out = Path(args.out)
    guard_out(out, args.force)
    if not args.checkpoint:
        args.checkpoint = str(_baseline_of(args, out / "baseline"))
    if (out / PRUNE_STATE).exists() and not args.force:
        raise SmoeaError(
            f"{out} holds an unfinished prune; continue it with "
            f"smoea prune --resume {out}, or pass --force to start over"
        )
    return args, None


def _baseline_of(args, out: Path) -> Path:
    """smoea prune --model without --checkpoint: the baseline's file in `out`, made once (a
    finished one is reused, an interrupted training resumes): from --weights, else trained."""
    if (out / "model.pt").exists():
        print(f"using the baseline in {out}", file=sys.stderr)
        return out / "model.pt"
    if args.weights and args.weights != "DEFAULT":
        return _baseline_from_weights(args, out)
    train_args = argparse.Namespace(
        **{k: getattr(args, k) for k in ("config", "device", "seed", "dataset", "data")},
        **{k: getattr(args, k) for k in ("download", "cache_dir", "val_size", "split_seed")},
        **{k: getattr(args, k) for k in ("image_size", "memory_budget", "workers")},
        model=args.model,
        width=args.width,
        from_checkpoint=None,
        trust_checkpoint=False,
        teacher=None,
        distill_temperature=DISTILL_TEMPERATURE,
        distill_weight=DISTILL_WEIGHT,
        epochs=args.train_epochs,
        lr=args.train_lr,
        batch_size=args.batch_size,
        weight_decay=5e-4,
        schedule="onecycle",
        out=str(out),
        force=False,
        resume=(out / TRAIN_STATE).exists(),
        pretrained=args.weights == "DEFAULT",
    )
    print(f"training the baseline first ({args.train_epochs} epochs) in {out}", file=sys.stderr)
    cmd_train(train_args)
    return out / "model.pt"


def _baseline_from_weights(args, out: Path) -> Path:
    """The user's own trained weights (a state dict) in smoea's model file format."""
    from smoea.models import build_model, make_arch

    splits = _splits(args, None)
    c, h, _ = splits.image_shape
    arch = make_arch(args.model, args.width, splits.num_classes, c, h)
    model = build_model(arch)
    load_weights(model, args.weights)
    out.mkdir(parents=True, exist_ok=True)
    extra = {
        "normalize": {"mean": splits.mean, "std": splits.std},
        "classes": splits.classes,
        "image_shape": list(splits.image_shape),
        "split": splits.split,
    }
    save_model(out / "model.pt", model, arch, extra)
    return out / "model.pt"


def load_weights(model: torch.nn.Module, path: str) -> None:
    """Load a state dict file (or a dict holding one under `state_dict` or `model`) into
    `model`, naming the first mismatching keys or shapes in one line."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SmoeaError(f"--weights {path} does not exist") from None
    except Exception as exc:
        raise SmoeaError(f"--weights {path} is not a state dict file: {exc}") from None
    if isinstance(state, dict):
        state = state.get("state_dict", state.get("model", state))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SmoeaError(f"--weights {path} holds no state dict of tensors")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = (
        ([f"missing {', '.join(missing[:3])}"] if missing else [])
        + ([f"unexpected {', '.join(unexpected[:3])}"] if unexpected else [])
        + ([f"shape {'; '.join(shapes[:2])}"] if shapes else [])
    )
    if problems:
        raise SmoeaError(
            f"--weights {path} does not fit {type(model).__name__}: " + "; ".join(problems)
        )
    model.load_state_dict(state)


def _argv_is_cli() -> bool:
    return Path(sys.argv[0]).name in ("smoea", "__main__.py", "cli.py")


def cmd_compare(args) -> None:
    from smoea import compare, methods, summary
    from smoea.device import resolve_device

    variants = methods.parse_methods(args.methods)
    seeds = _parse_seeds(args.seeds)
    config = prune_config(args)
    config.validate()
    methods.check_methods(variants, config)
    out = Path(args.out)
    guard_compare_out(out, args.force, args.resume)
    device = resolve_device(args.device)
    record, _ = load_model_file(args.checkpoint, args.trust_checkpoint)  # a broken file fails
    splits = _splits(args, record)
    check_compatible(record, splits, args.checkpoint)
    if "normalize" in record:
        splits.mean, splits.std = record["normalize"]["mean"], record["normalize"]["std"]
    out.mkdir(parents=True, exist_ok=True)
    resume_hint[0] = f"the same smoea compare command with --resume (runs in {out}/runs)"
    start = time.perf_counter()
    result = compare.compare(
        lambda: model_from_record(record, args.checkpoint),
        splits,
        variants,
        seeds,
        config,
        device,
        out,
        log=lambda m: print(m, file=sys.stderr),
        save_model=_compare_model_saver(record, splits) if args.save_models else None,
        match_beside=args.latency_match,
    )
    result.update(
        command="smoea " + shlex.join(sys.argv[1:]) if _argv_is_cli() else "smoea compare",
        seeds=seeds,
        wall_seconds=time.perf_counter() - start,
        device=str(device),
        versions=versions(),
    )
    write_json(out / "compare.json", result)
    table = summary.write_table(result)
    if distributed.is_main():
        (out / "compare.md").write_text(table)
        summary.plot_compare(result, out / "compare.png")
    print(table)


def _model_extra(record: dict, splits) -> dict:
    """What a pruned model's file carries beside its weights: the baseline's normalisation and
    classes, the split it was pruned with and the image shape."""
    extra = {k: record[k] for k in ("normalize", "classes") if k in record}
    return dict(extra, split=splits.split, image_shape=list(splits.image_shape))


def _compare_model_saver(record: dict, splits):
    """Saves a compare run's model as `smoea prune` does (the baseline's architecture with the
    filters read off the pruned model)."""

    extra = _model_extra(record, splits)
    return lambda path, model: save_model(path, model, record.get("arch"), extra)


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SmoeaError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise SmoeaError(f"--seeds must list distinct integers, got {text!r}")
    return seeds


def cmd_evaluate(args) -> None:
    from smoea.device import resolve_device

    device = resolve_device(args.device)
    record, model = load_model_file(args.checkpoint, args.trust_checkpoint)
    splits = _splits(args, record)
    check_compatible(record, splits, args.checkpoint)
    splits.mean, splits.std = record["normalize"]["mean"], record["normalize"]["std"]
    obj = model_figures(model, splits, device)
    if args.latency:
        from smoea.deploy import measure_latency

        obj["latency"] = measure_latency(model, splits.image_shape, device)
    if args.json:
        print(json.dumps(obj))
    else:
        print(
            f"test accuracy {obj['test_accuracy']:.4f}  params {obj['params']:,}  "
            f"MACs {obj['macs']:,}"
        )
        if args.latency:
            lat = obj["latency"]
            print(
                f"latency on {lat['device']} with {lat['threads']} threads: batch 1 "
                f"{lat['batch_1_ms']:.2f} ms, batch 64 {lat['batch_64_ms']:.2f} ms (median)"
            )


def cmd_export(args) -> None:
    from smoea.deploy import FORMATS, export

    if args.format not in FORMATS:
        raise SmoeaError(f"unknown --format {args.format!r}; choose {' or '.join(FORMATS)}")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise SmoeaError(f"{out} already exists; pass --force to overwrite it")
    record, model = load_model_file(args.checkpoint, args.trust_checkpoint)
    arch = record.get("arch") or {}
    shape = record.get("image_shape") or (arch.get("in_channels"), arch.get("image_size"))
    if None in shape:
        raise SmoeaError(f"{args.checkpoint} does not record its input shape; use the Python API")
    image_shape = tuple(shape) if len(shape) == 3 else (shape[0], shape[1], shape[1])
    export(model, image_shape, args.format, out, fold=not args.no_fold_bn)
    print(f"{args.format} -> {out}")
