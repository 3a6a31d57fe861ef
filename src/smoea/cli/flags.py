"""The command line's flags: generated from the config dataclasses, shared ones defined once."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from smoea.errors import SmoeaError


def add_config_flags(
    p: argparse.ArgumentParser,
    cls,
    prefix: str = "",
    only: tuple[str, ...] | None = None,
    help_prefix: str = "",
) -> None:
    """One flag per field of `cls` that carries help (see smoea.config.option): its name,
    type and default come from the field. A flag the parser already has (a shared one such
    as --seed or --batch-size) is not defined again."""
    for f in dataclasses.fields(cls):
        if only is not None and f.name not in only:
            continue
        if "flags" in f.metadata:
            _add_nested(p, f)
        elif f.metadata.get("help") is not None:
            name = prefix + f.metadata.get("name", f.name)
            meta = {**f.metadata, "help": help_prefix + f.metadata["help"]}
            _add(p, name, _kind(cls, f.name), _default(f), meta, _default(f))


def config_from_flags(cls, args: argparse.Namespace, prefix: str = ""):
    """An instance of `cls` from parsed flags: every field whose flag was parsed, the
    field's own default for the rest (and for a flag left at None that has one)."""
    values = {}
    for f in dataclasses.fields(cls):
        if "flags" in f.metadata:
            values[f.name] = _nested_from_flags(f, args)
            continue
        given = getattr(args, prefix + f.metadata.get("name", f.name), None)
        if given is not None:
            values[f.name] = given
    return cls(**values)


def _add(p, name: str, kind, default, meta, shown) -> None:
    flag = "--" + name.replace("_", "-")
    if any(flag in a.option_strings for a in p._actions):
        return
    help_text = (meta.get("help") or "").replace("%", "%%")  # argparse formats help with %
    if kind is bool:
        p.add_argument(flag, action="store_true", help=help_text)
        return
    if shown is not None and "(default" not in help_text:
        help_text += f" (default {shown})"
    p.add_argument(flag, type=kind, default=meta.get("flag_default", default), help=help_text)


def _add_nested(p, f: dataclasses.Field) -> None:
    """The flags of a nested config field, e.g. PruneConfig.final's --final-epochs."""
    inner = f.default_factory()
    for sub, (name, help_text) in f.metadata["flags"].items():
        default = getattr(inner, sub)
        meta = {"help": help_text}
        _add(p, name, type(default), default, meta, default)


def _nested_from_flags(f: dataclasses.Field, args: argparse.Namespace):
    inner = f.default_factory()
    changes = {}
    for sub, (name, _) in f.metadata["flags"].items():
        given = getattr(args, name.replace("-", "_"), None)
        if given is not None:
            changes[sub] = given
    return dataclasses.replace(inner, **changes)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def _kind(cls, name: str):
    """The flag's type from the field's annotation (`float | None` -> float)."""
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    kind = args[0] if args else hint
    if kind not in (bool, int, float, str):
        raise TypeError(f"{cls.__name__}.{name}: no flag for a {hint}")
    return kind


def prune_config(args: argparse.Namespace):
    """The PruneConfig of `smoea prune` and `smoea compare`: one target, the others None."""
    from smoea.prune_config import PruneConfig

    names = ("params", "macs", "latency")  # an older saved run's flags lack target_latency
    given = [t for t in names if getattr(args, f"target_{t}", None) is not None]
    if len(given) > 1:
        raise SmoeaError(f"give one target, not {' and '.join('--target-' + t for t in given)}")
    config = config_from_flags(PruneConfig, args)
    if given and given[0] != "params":
        config.target_params = None
    return config


# ---- the parser ----------------------------------------------------------------------------

METHODS = "smoea,l1,l2,fpgm,taylor,bn-scale,random,whole-nsga2"


def build_parser() -> argparse.ArgumentParser:
    """`smoea train | prune | compare | evaluate | export` with their flags."""
    parser = argparse.ArgumentParser(
        prog="smoea",
        description="The `smoea` command: train a baseline, prune it with SMOEA, compare methods, "
        "evaluate, export.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub.add_parser("train", help="train a baseline model"))
    _prune_parser(sub.add_parser("prune", help="prune a trained model with SMOEA"))
    _compare_parser(
        sub.add_parser("compare", help="SMOEA against filter criteria and whole-model search")
    )
    _evaluate_parser(
        sub.add_parser("evaluate", help="test accuracy, parameters and MACs of a model file")
    )
    _export_parser(sub.add_parser("export", help="export a model file to ONNX or TorchScript"))
    return parser


def _train_parser(p: argparse.ArgumentParser) -> None:
    from smoea.train import DISTILL_TEMPERATURE, DISTILL_WEIGHT, TrainConfig

    _common(p)
    _architecture(p, "vgg14 | vgg16 | resnet20 | resnet56 | mobilenetv2 | torchvision:NAME")
    p.add_argument(
        "--from",
        dest="from_checkpoint",
        metavar="CHECKPOINT",
        help="continue training this model file (any smoea model, pruned or not) with the "
        "recipe given here; its architecture, normalisation and validation split are kept and "
        "--model/--width are ignored",
    )
    _trust(p)
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
    add_config_flags(p, TrainConfig)
    _run_dir(p, "directory for model.pt and train.json", required=True)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")


def _prune_parser(p: argparse.ArgumentParser) -> None:
    from smoea.prune_config import PruneConfig
    from smoea.train import TrainConfig

    _common(p)
    p.add_argument(
        "--checkpoint",
        help="the trained model file to prune; without it, --model builds one (from --weights, "
        "or trained here first)",
    )
    _architecture(
        p,
        "without --checkpoint: the architecture (as for smoea train, e.g. vgg14 or "
        "torchvision:resnet18); its baseline is saved in OUT/baseline/",
        default=None,
    )
    p.add_argument(
        "--weights",
        help="with --model: a state dict file of your own trained weights (keys and shapes "
        "checked), or DEFAULT for torchvision's pretrained weights (needs its download host; "
        "a new head is trained when the classes differ); without it the baseline is trained",
    )
    add_config_flags(
        p,
        TrainConfig,
        prefix="train_",
        only=("epochs", "lr"),
        help_prefix="with --model, the baseline's training (one-cycle SGD): ",
    )
    _trust(p)
    _run_dir(p, "directory for model.pt, report.json and the plots")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted prune in DIR")
    add_config_flags(p, PruneConfig)


def _compare_parser(p: argparse.ArgumentParser) -> None:
    from smoea.prune_config import PruneConfig

    _common(p)
    _model_file(p, "the baseline model file every method prunes")
    p.add_argument(
        "--methods",
        default=METHODS,
        help="comma-separated: smoea, a criterion (l1, l2, fpgm, taylor, bn-scale, random; alone "
        "it runs its -uniform and -global variants; also -global-raw, -at-smoea, -progressive), "
        "lamp, sensitivity, ratio-search, halp (L1 importance), halp-taylor (HALP's Taylor "
        "importance), halp-steps (HALP as its code runs: 30 Taylor knapsacks on its "
        "schedule, the stem whole), halp-stem (one such knapsack), whole-nsga2 (default: "
        "smoea, the six criteria and whole-nsga2); with --target-latency also smoea-macs "
        "(SMOEA with the MAC target that measures at that latency). At a latency target every "
        "method is brought to it measured (within 3%%): its own target is searched by pruning "
        "without fine-tuning and measuring",
    )
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds, e.g. 0,1,2 (default 0,1)")
    p.add_argument(
        "--latency-match",
        choices=("smoea", "baseline"),
        default="smoea",
        help="at a latency target, what each other method is measured beside while it is "
        "brought to the target: smoea (the seed's SMOEA model, in the same rounds: equal "
        "latency when measured together; the default) | baseline (a fresh baseline each, "
        "as runs before 2026-12-04 were)",
    )
    _run_dir(p, "directory for compare.json/.md/.png and runs/", required=True)
    p.add_argument("--resume", action="store_true", help="reuse the finished runs in --out")
    p.add_argument(
        "--save-models",
        action="store_true",
        help="also save each run's pruned, fine-tuned model as runs/<method>-seed<k>.pt "
        "(loadable by smoea evaluate/train --from/export; off by default)",
    )
    add_config_flags(p, PruneConfig)


def _evaluate_parser(p: argparse.ArgumentParser) -> None:
    _common(p)
    _model_file(p, "the model file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--latency",
        action="store_true",
        help="also measure inference time at batch 1 and 64 (median after warm-up)",
    )


def _export_parser(p: argparse.ArgumentParser) -> None:
    _config(p)
    _model_file(p, "the model file")
    p.add_argument("--format", required=True, help="onnx | torchscript")
    p.add_argument("--out", required=True, help="the file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.add_argument(
        "--no-fold-bn",
        action="store_true",
        help="keep BatchNorm layers apart (by default they are folded into the convolutions)",
    )


def _config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML or YAML file whose keys are these flags")


def _common(p: argparse.ArgumentParser) -> None:
    """Flags of every command that reads data: device, seed and the data set."""
    _config(p)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the search, training and fine-tuning data order (default 0)",
    )
    _data(p)


def _data(p: argparse.ArgumentParser) -> None:
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


def _architecture(p: argparse.ArgumentParser, help_text: str, default="vgg14") -> None:
    shown = f" (default {default})" if default else ""
    p.add_argument("--model", default=default, help=help_text + shown)
    p.add_argument(
        "--width", type=float, default=1.0, help="channel width multiplier (default 1.0)"
    )


def _model_file(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--checkpoint", required=True, help=help_text)
    _trust(p)


def _trust(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a model file that holds pickled code (runs code from it)",
    )


def _run_dir(p: argparse.ArgumentParser, help_text: str, required: bool = False) -> None:
    p.add_argument("--out", required=required, help=help_text)
    p.add_argument("--force", action="store_true", help="overwrite a finished run in --out")


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
