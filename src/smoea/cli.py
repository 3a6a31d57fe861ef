"""The `smoea` command: train a baseline, prune it with SMOEA, compare methods, evaluate, export."""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import signal
import sys
import time
from pathlib import Path

import torch

from smoea import distributed
from smoea.errors import SmoeaError
from smoea.train import DISTILL_TEMPERATURE, DISTILL_WEIGHT


def _common(p: argparse.ArgumentParser, data: bool = True) -> None:
    p.add_argument("--config", help="TOML or YAML file whose keys are these flags")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the search, training and fine-tuning data order (default 0)",
    )
    if data:
        p.add_argument(
            "--dataset",
            default="cifar10",
            help="cifar10 | cifar100 | mnist | fashion-mnist | imagefolder (default cifar10)",
        )
        p.add_argument("--data", help="data directory or .tar.gz archive")
        p.add_argument("--download", action="store_true", help="fetch a torchvision data set")
        p.add_argument("--cache-dir", help="where decoded arrays are cached")
        p.add_argument(
            "--val-size",
            type=int,
            default=None,
            help="images carved from the training set for validation (default 5000; a model "
            "file that records its split uses that one)",
        )
        p.add_argument(
            "--image-size",
            type=int,
            default=None,
            help="photos of any size: train on random-resized crops of S x S, evaluate on the "
            "centre crop after resizing to S/0.875 (default: the images' own size, which must "
            "then agree)",
        )
        p.add_argument(
            "--memory-budget",
            default="4GB",
            help="with --image-size: a data set whose decoded size exceeds this (e.g. 512MB) is "
            "streamed from disk instead of held in memory (default 4GB)",
        )
        p.add_argument(
            "--workers",
            type=int,
            default=2,
            help="DataLoader processes that decode a streamed data set (default 2)",
        )
        p.add_argument(
            "--split-seed",
            type=int,
            default=None,
            help="seed of the validation split (train: default --seed; prune, compare and "
            "evaluate: the one the model file records)",
        )


def _train_flags(p: argparse.ArgumentParser, prefix: str = "", epochs: int = 30, lr: float = 0.1):
    p.add_argument(f"--{prefix}epochs", type=int, default=epochs, help=f"epochs (default {epochs})")
    p.add_argument(
        f"--{prefix}lr", type=float, default=lr, help=f"peak learning rate of SGD (default {lr})"
    )
    p.add_argument(
        f"--{prefix}batch-size", type=int, default=128, help="images per batch (default 128)"
    )
    p.add_argument(
        f"--{prefix}weight-decay", type=float, default=5e-4, help="SGD weight decay (default 5e-4)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smoea", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a baseline model")
    _common(p)
    p.add_argument(
        "--model",
        default="vgg14",
        help="vgg14 | vgg16 | resnet20 | resnet56 | mobilenetv2 | torchvision:NAME (default vgg14)",
    )
    p.add_argument(
        "--width", type=float, default=1.0, help="channel width multiplier (default 1.0)"
    )
    p.add_argument(
        "--from",
        dest="from_checkpoint",
        metavar="CHECKPOINT",
        help="continue training this model file (any smoea model, pruned or not) with the "
        "recipe given here; its architecture, normalisation and validation split are kept and "
        "--model/--width are ignored",
    )
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a --from file that holds pickled code (runs code from it)",
    )
    p.add_argument(
        "--teacher",
        metavar="CHECKPOINT",
        help="distil from this model file (frozen; e.g. the unpruned baseline when continuing "
        "a pruned model with --from); off by default",
    )
    p.add_argument(
        "--distill-temperature",
        type=float,
        default=DISTILL_TEMPERATURE,
        help=f"softening temperature with --teacher (default {DISTILL_TEMPERATURE})",
    )
    p.add_argument(
        "--distill-weight",
        type=float,
        default=DISTILL_WEIGHT,
        help=f"share of the distillation loss with --teacher, in [0, 1] (default {DISTILL_WEIGHT})",
    )
    _train_flags(p)
    p.add_argument(
        "--schedule",
        default="onecycle",
        help="learning-rate schedule: onecycle | cosine (default onecycle)",
    )
    p.add_argument("--out", required=True, help="directory for model.pt and train.json")
    p.add_argument("--force", action="store_true", help="overwrite a finished run in --out")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")

    p = sub.add_parser("prune", help="prune a trained model with SMOEA")
    _common(p)
    p.add_argument(
        "--checkpoint",
        help="the trained model file to prune; without it, --model builds one (from --weights, "
        "or trained here first)",
    )
    p.add_argument(
        "--model",
        help="without --checkpoint: the architecture (as for smoea train, e.g. vgg14 or "
        "torchvision:resnet18); its baseline is saved in OUT/baseline/",
    )
    p.add_argument(
        "--width",
        type=float,
        default=1.0,
        help="with --model: channel width multiplier (default 1.0)",
    )
    p.add_argument(
        "--weights",
        help="with --model: a state dict file of your own trained weights (keys and shapes "
        "checked), or DEFAULT for torchvision's pretrained weights (needs its download host; "
        "a new head is trained when the classes differ); without it the baseline is trained",
    )
    p.add_argument(
        "--train-epochs",
        type=int,
        default=30,
        help="with --model: epochs of the baseline's training, one-cycle SGD (default 30)",
    )
    p.add_argument(
        "--train-lr",
        type=float,
        default=0.1,
        help="with --model: peak learning rate of the baseline's training (default 0.1)",
    )
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a model file that holds pickled code (runs code from it)",
    )
    p.add_argument("--out", help="directory for model.pt, report.json and the plots")
    p.add_argument("--force", action="store_true", help="overwrite a finished run in --out")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted prune in DIR")
    from smoea.pipeline import add_prune_flags

    add_prune_flags(p)

    p = sub.add_parser("compare", help="SMOEA against filter criteria and whole-model search")
    _common(p)
    p.add_argument(
        "--checkpoint", required=True, help="the baseline model file every method prunes"
    )
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a model file that holds pickled code (runs code from it)",
    )
    p.add_argument(
        "--methods",
        default="smoea,l1,l2,fpgm,taylor,bn-scale,random,whole-nsga2",
        help="comma-separated: smoea, a criterion (l1, l2, fpgm, taylor, bn-scale, random; alone "
        "it runs its -uniform and -global variants; also -global-raw, -at-smoea, -progressive), "
        "lamp, sensitivity, ratio-search, whole-nsga2 (default: smoea, the six criteria and "
        "whole-nsga2)",
    )
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds, e.g. 0,1,2 (default 0,1)")
    p.add_argument("--out", required=True, help="directory for compare.json/.md/.png and runs/")
    p.add_argument("--force", action="store_true", help="start over in a used --out")
    p.add_argument("--resume", action="store_true", help="reuse the finished runs in --out")
    p.add_argument(
        "--save-models",
        action="store_true",
        help="also save each run's pruned, fine-tuned model as runs/<method>-seed<k>.pt "
        "(loadable by smoea evaluate/train --from/export; off by default)",
    )
    add_prune_flags(p)

    p = sub.add_parser("evaluate", help="test accuracy, parameters and MACs of a model file")
    _common(p)
    p.add_argument("--checkpoint", required=True, help="the model file")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a model file that holds pickled code (runs code from it)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--latency",
        action="store_true",
        help="also measure inference time at batch 1 and 64 (median after warm-up)",
    )

    p = sub.add_parser("export", help="export a model file to ONNX or TorchScript")
    p.add_argument("--config", help="TOML or YAML file whose keys are these flags")
    p.add_argument("--checkpoint", required=True, help="the model file")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a model file that holds pickled code (runs code from it)",
    )
    p.add_argument("--format", required=True, help="onnx | torchscript")
    p.add_argument("--out", required=True, help="the file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.add_argument(
        "--no-fold-bn",
        action="store_true",
        help="keep BatchNorm layers apart (by default they are folded into the convolutions)",
    )
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse flags; values from --config fill in what the command line leaves out."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        from smoea.config import read_config_file

        values = read_config_file(args.config)
        sub = parser._subparsers._group_actions[0].choices[args.command]
        known = {a.dest for a in sub._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SmoeaError(f"--config {args.config}: unknown keys {', '.join(unknown)}")
        sub.set_defaults(**values)
        args = parser.parse_args(argv)
    return args


_interrupted_hint = [""]


def _raise_interrupt(signum, frame):
    from smoea import interrupt

    interrupt.request_stop()
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from smoea import interrupt

    interrupt.reset()
    _interrupted_hint[0] = ""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    grouped = distributed.init()
    try:
        args = parse_args(argv)
        handler = {
            "train": cmd_train,
            "prune": cmd_prune,
            "compare": cmd_compare,
            "evaluate": cmd_evaluate,
            "export": cmd_export,
        }[args.command]
        handler(args)
        return 0
    except SmoeaError as exc:
        message = " ".join(str(exc).split())  # always one line
        print(f"smoea: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = _interrupted_hint[0]
        resume = f"; the last completed step is saved: resume with {hint}" if hint else ""
        print(f"\nsmoea: interrupted{resume}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if grouped:
            distributed.close()


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


def _guard_out(out: Path, force: bool) -> None:
    """Never overwrite a finished run without --force."""
    if (out / "model.pt").exists() and not force:
        raise SmoeaError(f"{out} already holds a finished run; pass --force to overwrite it")
    if out.exists() and not out.is_dir():
        raise SmoeaError(f"--out {out} exists and is not a directory")


def _write_json(path: Path, obj: dict) -> None:
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


TRAIN_STATE = "train_state.pt"
PRUNE_STATE = "state.pt"
DEFAULT_VAL_SIZE = 5000


def cmd_train(args) -> None:
    from smoea.checkpoint import model_from_record, save_model
    from smoea.device import resolve_device
    from smoea.models import build_model, make_arch
    from smoea.report import check_compatible, model_counts, versions
    from smoea.train import TrainConfig, TrainingDiverged, evaluate, train

    out = Path(args.out)
    resume = _train_resume_state(out, args)
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
    cfg = TrainConfig(
        args.epochs,
        args.batch_size,
        args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
    )
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
    _interrupted_hint[0] = f"smoea train --resume --out {out} (with the same flags)"
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
    _write_json(
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
    from smoea.checkpoint import load_record, model_from_record
    from smoea.report import check_compatible
    from smoea.train import Distill

    if not args.teacher:
        return None
    record = load_record(args.teacher, args.trust_checkpoint)
    check_compatible(record, splits, args.teacher)
    distill = Distill(
        model_from_record(record, args.teacher), args.distill_temperature, args.distill_weight
    )
    distill.validate()
    return distill


def _start_record(args) -> dict | None:
    """The record of the --from model file, or None for a new model."""
    from smoea.checkpoint import load_record

    if not args.from_checkpoint:
        return None
    return load_record(args.from_checkpoint, args.trust_checkpoint)


def _train_resume_state(out: Path, args) -> dict | None:
    from smoea.checkpoint import load_record

    state = out / TRAIN_STATE
    if args.resume:
        if not state.exists():
            raise SmoeaError(f"--resume: {out} holds no unfinished training ({TRAIN_STATE})")
        return load_record(state)
    _guard_out(out, args.force)
    if state.exists() and not args.force:
        raise SmoeaError(
            f"{out} holds an unfinished run; add --resume to continue it or --force to start over"
        )
    return None


def cmd_prune(args) -> None:
    from smoea import pipeline
    from smoea.checkpoint import load_record, model_from_record, save_model
    from smoea.data import outside_subset
    from smoea.deploy import measure_latency
    from smoea.device import resolve_device
    from smoea.report import check_compatible, plot_report, versions

    args, state = _prune_resume_state(args)
    config = pipeline.config_from_args(args)
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
    _interrupted_hint[0] = f"smoea prune --resume {out}"
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
        "baseline": _figures(baseline, splits, device, held_out),
        "pruned": _figures(model, splits, device, held_out),
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
    report["params_ratio"] = report["pruned"]["params"] / report["baseline"]["params"]
    report["macs_ratio"] = report["pruned"]["macs"] / report["baseline"]["macs"]
    _write_json(out / "report.json", report)
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
    if config.final.epochs == 0:
        norms = _norms_note(report, config.calibration_images)
        print(
            f"note: --final-epochs 0: these accuracies are before any fine-tuning ({norms}); "
            f"fine-tune with smoea train --from {out / 'model.pt'}",
            file=sys.stderr,
        )


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
    from smoea.checkpoint import load_record

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
    _guard_out(out, args.force)
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
    from smoea.checkpoint import save_model
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


def _figures(model, splits, device, held_out=None) -> dict:
    """Test accuracy and sizes; with `held_out`, the validation accuracy on the whole split and
    on the images outside the search set (the fair one to choose settings by)."""
    from smoea.report import model_counts
    from smoea.train import evaluate

    figures = {"test_accuracy": evaluate(model, splits.test, splits, device)["accuracy"]}
    if held_out is not None:
        figures["val_accuracy"] = evaluate(model, splits.val, splits, device)["accuracy"]
        figures["held_out_val_accuracy"] = evaluate(model, held_out, splits, device)["accuracy"]
    return {**figures, **model_counts(model, splits.image_shape)}


def cmd_compare(args) -> None:
    from smoea import compare, pipeline
    from smoea.checkpoint import load_record, model_from_record
    from smoea.device import resolve_device
    from smoea.report import check_compatible, versions

    variants = compare.parse_methods(args.methods)
    seeds = _parse_seeds(args.seeds)
    config = pipeline.config_from_args(args)
    config.validate()
    out = Path(args.out)
    _guard_compare_out(out, args.force, args.resume)
    device = resolve_device(args.device)
    record = load_record(args.checkpoint, args.trust_checkpoint)
    model_from_record(record, args.checkpoint)  # a broken file fails here, before any work
    splits = _splits(args, record)
    check_compatible(record, splits, args.checkpoint)
    if "normalize" in record:
        splits.mean, splits.std = record["normalize"]["mean"], record["normalize"]["std"]
    out.mkdir(parents=True, exist_ok=True)
    _interrupted_hint[0] = f"the same smoea compare command with --resume (runs in {out}/runs)"
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
    )
    result.update(
        command="smoea " + shlex.join(sys.argv[1:]) if _argv_is_cli() else "smoea compare",
        seeds=seeds,
        wall_seconds=time.perf_counter() - start,
        device=str(device),
        versions=versions(),
    )
    _write_json(out / "compare.json", result)
    table = compare.write_table(result)
    if distributed.is_main():
        (out / "compare.md").write_text(table)
        compare.plot_compare(result, out / "compare.png")
    print(table)


def _model_extra(record: dict, splits) -> dict:
    """What a pruned model's file carries beside its weights: the baseline's normalisation and
    classes, the split it was pruned with and the image shape."""
    extra = {k: record[k] for k in ("normalize", "classes") if k in record}
    return dict(extra, split=splits.split, image_shape=list(splits.image_shape))


def _compare_model_saver(record: dict, splits):
    """Saves a compare run's model as `smoea prune` does (the baseline's architecture with the
    filters read off the pruned model)."""
    from smoea.checkpoint import save_model

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


def _guard_compare_out(out: Path, force: bool, resume: bool) -> None:
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


def cmd_evaluate(args) -> None:
    from smoea.checkpoint import load_record, model_from_record
    from smoea.device import resolve_device
    from smoea.report import check_compatible, model_counts
    from smoea.train import evaluate

    device = resolve_device(args.device)
    record = load_record(args.checkpoint, args.trust_checkpoint)
    model = model_from_record(record, args.checkpoint)
    splits = _splits(args, record)
    check_compatible(record, splits, args.checkpoint)
    splits.mean, splits.std = record["normalize"]["mean"], record["normalize"]["std"]
    result = evaluate(model, splits.test, splits, device)
    counts = model_counts(model, splits.image_shape)
    obj = {"test_accuracy": result["accuracy"], "test_loss": result["loss"], **counts}
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
    from smoea.checkpoint import load_record, model_from_record
    from smoea.deploy import FORMATS, export

    if args.format not in FORMATS:
        raise SmoeaError(f"unknown --format {args.format!r}; choose {' or '.join(FORMATS)}")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise SmoeaError(f"{out} already exists; pass --force to overwrite it")
    record = load_record(args.checkpoint, args.trust_checkpoint)
    model = model_from_record(record, args.checkpoint)
    arch = record.get("arch") or {}
    shape = record.get("image_shape") or (arch.get("in_channels"), arch.get("image_size"))
    if None in shape:
        raise SmoeaError(f"{args.checkpoint} does not record its input shape; use the Python API")
    image_shape = tuple(shape) if len(shape) == 3 else (shape[0], shape[1], shape[1])
    export(model, image_shape, args.format, out, fold=not args.no_fold_bn)
    print(f"{args.format} -> {out}")


if __name__ == "__main__":
    sys.exit(main())
