"""The command line's flags come from the config dataclasses: one place for name, type, default."""

import dataclasses

import pytest

from smoea.cli import build_parser
from smoea.cli.flags import config_from_flags, prune_config
from smoea.errors import SmoeaError
from smoea.prune_config import PruneConfig
from smoea.train import TrainConfig


def _parse(*argv):
    return build_parser().parse_args(["prune", "--out", "x", *argv])


def test_no_flags_give_the_dataclass_defaults():
    assert prune_config(_parse()) == PruneConfig()
    args = build_parser().parse_args(["train", "--out", "x"])
    assert config_from_flags(TrainConfig, args) == TrainConfig()


def test_every_field_with_help_is_a_flag_of_prune_and_compare():
    for command in (["prune", "--out", "x"], ["compare", "--out", "x", "--checkpoint", "c"]):
        dests = vars(build_parser().parse_args(command))
        for f in dataclasses.fields(PruneConfig):
            if f.metadata.get("help"):
                assert f.name in dests, f"{f.name} has help but no flag in {command[0]}"


def test_flags_reach_their_fields_typed_and_nested():
    flags = "--pop-size 8 --tolerance 0.05 --distill --final-epochs 3 --batch-size 64"
    config = prune_config(_parse(*flags.split(), "--finetune-lr", "0.2", "--seed", "4"))
    assert (config.pop_size, config.tolerance, config.distill, config.seed) == (8, 0.05, True, 4)
    assert (config.final.epochs, config.final.batch_size, config.final.lr) == (3, 64, 0.01)
    assert (config.finetune.lr, config.finetune.batch_size) == (0.2, 64)
    assert isinstance(config.pop_size, int) and isinstance(config.tolerance, float)


def test_a_mac_target_drops_the_parameter_default_and_both_are_refused():
    config = prune_config(_parse("--target-macs", "0.3"))
    assert (config.target_params, config.target_macs, config.measure) == (None, 0.3, "macs")
    with pytest.raises(SmoeaError, match="give one target"):
        prune_config(_parse("--target-macs", "0.3", "--target-params", "0.5"))


def test_a_latency_target_drops_the_parameter_default_and_two_targets_are_refused():
    config = prune_config(_parse("--target-latency", "0.5", "--latency-batch", "8"))
    assert (config.target_params, config.target_latency, config.measure) == (None, 0.5, "latency")
    assert config.latency_batch == 8 and config.uses_latency
    with pytest.raises(SmoeaError, match="give one target"):
        prune_config(_parse("--target-latency", "0.5", "--target-params", "0.3"))


def test_flags_saved_before_a_target_existed_still_give_a_config():
    args = _parse()
    del args.target_latency, args.latency_batch  # a prune state saved by an older version
    assert prune_config(args) == PruneConfig()


def test_a_flag_the_parser_has_is_not_defined_again():
    import argparse

    from smoea.cli.flags import add_config_flags

    p = argparse.ArgumentParser()
    p.add_argument("--batch-size", type=int, default=7)
    add_config_flags(p, PruneConfig)  # finetune and final both map batch_size to --batch-size
    add_config_flags(p, PruneConfig)
    flags = [f for a in p._actions for f in a.option_strings]
    assert flags.count("--batch-size") == 1 and flags.count("--pop-size") == 1
    assert prune_config(p.parse_args([])).final.batch_size == 7


def test_the_engine_imports_neither_argparse_nor_the_command_line():
    import ast
    from pathlib import Path

    import smoea

    root = Path(smoea.__file__).parent
    for path in root.rglob("*.py"):
        if "cli" in path.relative_to(root).parts or path.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            bad = [n for n in names if n.split(".")[0] == "argparse" or n.startswith("smoea.cli")]
            assert not bad, f"{path.relative_to(root)} imports {bad}"


def test_the_step_schedule_divides_the_rate_by_ten_at_60_and_80_percent():
    import torch

    from smoea.train import make_scheduler

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    sched = make_scheduler(opt, TrainConfig(lr=0.01, schedule="step"), 100)
    rates = []
    for _ in range(100):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[59] == pytest.approx(0.01) and rates[60] == pytest.approx(0.001)
    assert rates[79] == pytest.approx(0.001) and rates[80] == pytest.approx(0.0001)
