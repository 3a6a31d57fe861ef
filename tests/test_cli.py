"""End to end through the command line on a tiny model and tiny data, and user mistakes."""

import json
import subprocess
import sys

import pytest
import torch

import smoea
from smoea.cli import main


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "smoea.cli", *args], capture_output=True, text=True, timeout=120
    )


PRUNE = [
    "--target-params",
    "0.5",
    "--pop-size",
    "6",
    "--generations",
    "2",
    "--search-size",
    "40",
    "--finetune-epochs",
    "1",
    "--final-epochs",
    "1",
    "--val-size",
    "40",
    "--device",
    "cpu",
]


@pytest.mark.slow
def test_train_prune_evaluate_end_to_end(tmp_path, image_archive, baseline):
    record = json.loads((baseline / "train.json").read_text())
    assert len(record["history"]) == 3 and record["params"] > 0
    out = tmp_path / "pruned"
    code = main(
        [
            "prune",
            "--checkpoint",
            str(baseline / "model.pt"),
            "--data",
            str(image_archive),
            "--out",
            str(out),
            *PRUNE,
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert 0.49 <= report["params_ratio"] <= 0.5
    assert len(report["groups"]) == 5
    for group in report["groups"]:
        assert {
            "layers",
            "filters_before",
            "filters_after",
            "front",
            "chosen",
            "evaluations",
            "seconds",
        } <= set(group)
        assert group["evaluations"] > 0
    assert (out / "fronts.png").stat().st_size > 0 and (out / "filters.png").stat().st_size > 0
    # a fresh process rebuilds the saved model from data alone
    done = _run(
        "evaluate",
        "--checkpoint",
        str(out / "model.pt"),
        "--data",
        str(image_archive),
        "--val-size",
        "40",
        "--json",
        "--device",
        "cpu",
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["params"] == report["pruned"]["params"]
    assert figures["macs"] == report["pruned"]["macs"]
    assert figures["test_accuracy"] == pytest.approx(report["pruned"]["test_accuracy"])
    model = smoea.load(out / "model.pt")
    assert sum(p.numel() for p in model.parameters()) == report["pruned"]["params"]


@pytest.mark.slow
def test_search_never_reads_the_test_split(tmp_path, image_archive, baseline, monkeypatch):
    from smoea import data, pipeline

    state = {"pruning": False, "test_reads_during_prune": 0}

    class Tripwire(data.TensorData):
        def __getattribute__(self, name):
            if state["pruning"] and name in ("x", "y"):
                state["test_reads_during_prune"] += 1
                raise AssertionError("the test split was read during prune")
            return object.__getattribute__(self, name)

    real_load, real_prune = data.load_splits, pipeline.prune

    def load(*args, **kwargs):
        splits = real_load(*args, **kwargs)
        splits.test = Tripwire(splits.test.x, splits.test.y)
        return splits

    def guarded_prune(*args, **kwargs):
        state["pruning"] = True
        try:
            return real_prune(*args, **kwargs)
        finally:
            state["pruning"] = False

    monkeypatch.setattr(data, "load_splits", load)
    monkeypatch.setattr(pipeline, "prune", guarded_prune)
    code = main(
        [
            "prune",
            "--checkpoint",
            str(baseline / "model.pt"),
            "--data",
            str(image_archive),
            "--out",
            str(tmp_path / "p"),
            *PRUNE,
        ]
    )
    assert code == 0 and state["test_reads_during_prune"] == 0


@pytest.mark.slow
def test_same_seed_gives_the_same_pruned_model(tmp_path, image_archive, baseline):
    masks = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert (
            main(
                [
                    "prune",
                    "--checkpoint",
                    str(baseline / "model.pt"),
                    "--data",
                    str(image_archive),
                    "--out",
                    str(out),
                    *PRUNE,
                ]
            )
            == 0
        )
        report = json.loads((out / "report.json").read_text())
        masks.append(
            (
                [g["filters_after"] for g in report["groups"]],
                report["groups"][0]["front"],
                report["pruned"]["test_accuracy"],
            )
        )
        state = torch.load(out / "model.pt", weights_only=True)["state_dict"]
        masks[-1] += (state["0.weight"],)
    assert masks[0][:3] == masks[1][:3]
    assert torch.equal(masks[0][3], masks[1][3])


def _error(capsys, argv):
    capsys.readouterr()  # drop what earlier steps printed
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_user_mistakes_exit_2_with_one_line(tmp_path, capsys, image_archive, baseline):
    ckpt = str(baseline / "model.pt")
    cases = [
        ["train", "--model", "resnet9000", "--data", str(image_archive), "--out", str(tmp_path)],
        ["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
        [
            "prune",
            "--checkpoint",
            ckpt,
            "--data",
            str(image_archive),
            "--out",
            str(tmp_path / "x"),
            "--target-params",
            "1.5",
        ],
        [
            "prune",
            "--checkpoint",
            ckpt,
            "--data",
            str(image_archive),
            "--out",
            str(tmp_path / "x"),
            "--target-params",
            "0.0001",
            "--val-size",
            "40",
        ],
        [
            "prune",
            "--checkpoint",
            ckpt,
            "--data",
            str(image_archive),
            "--out",
            str(tmp_path / "x"),
            "--groups",
            "1-99",
            "--val-size",
            "40",
        ],
        ["evaluate", "--checkpoint", str(tmp_path / "nothing.pt"), "--data", str(image_archive)],
        ["evaluate", "--checkpoint", ckpt, "--dataset", "imagenet", "--data", str(image_archive)],
    ]
    for argv in cases:
        code, err = _error(capsys, argv)
        assert code == 2, argv
        assert len(err) == 1 and err[0].startswith("smoea: error:"), (argv, err)


def test_finished_run_is_not_overwritten_without_force(tmp_path, capsys, image_archive, baseline):
    before = (baseline / "model.pt").read_bytes()
    code, err = _error(capsys, ["train", "--data", str(image_archive), "--out", str(baseline)])
    assert code == 2 and "--force" in err[0]
    assert (baseline / "model.pt").read_bytes() == before


def test_config_file_supplies_flags(tmp_path, capsys, image_archive):
    config = tmp_path / "c.toml"
    config.write_text(
        f'model = "vgg14"\nwidth = 0.125\ndata = "{image_archive}"\nepochs = 1\n'
        "val-size = 40\nbatch-size = 64\n"
    )
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "o")]) == 0
    record = json.loads((tmp_path / "o" / "train.json").read_text())
    assert record["arch"]["width"] == 0.125 and len(record["history"]) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("nonsense_flag: 3\n")
    code, err = _error(capsys, ["train", "--config", str(bad), "--out", str(tmp_path / "q")])
    assert code == 2 and "nonsense_flag" in err[0]


@pytest.mark.slow
def test_prune_carves_the_split_the_baseline_trained_with(
    tmp_path, image_archive, baseline, capsys
):
    record = torch.load(baseline / "model.pt", weights_only=True)
    assert record["split"] == {"val_size": 40, "seed": 0}
    out = tmp_path / "seed1"
    argv = ["prune", "--checkpoint", str(baseline / "model.pt"), "--data", str(image_archive)]
    assert main([*argv, "--out", str(out), *PRUNE, "--seed", "1", "--final-epochs", "0"]) == 0
    assert "before any fine-tuning" in capsys.readouterr().err  # no final fine-tune: said so
    report = json.loads((out / "report.json").read_text())
    assert report["split"] == {"val_size": 40, "seed": 0} and report["seed"] == 1
    assert torch.load(out / "model.pt", weights_only=True)["split"] == record["split"]


@pytest.mark.parametrize("flag", [("--val-size", "30"), ("--split-seed", "3")])
def test_a_split_other_than_the_trained_one_is_refused(
    tmp_path, image_archive, baseline, capsys, flag
):
    out = tmp_path / "other"
    argv = ["prune", "--checkpoint", str(baseline / "model.pt"), "--data", str(image_archive)]
    assert main([*argv, "--out", str(out), *PRUNE, *flag]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{flag[0]} {flag[1]} differs" in err[0]
    assert not (out / "model.pt").exists()


def test_every_flag_of_every_command_says_what_it_does_and_its_default():
    import argparse

    from smoea.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"train", "prune", "compare", "evaluate", "export"}
    for command in sub.choices:
        assert command in parser.description
    for command, p in sub.choices.items():
        for action in p._actions:
            assert action.help and len(action.help) > 5, (command, action.option_strings)
            if action.default not in (None, False, argparse.SUPPRESS):
                assert "default" in action.help, (command, action.option_strings)
        assert "--help" in p.format_help()  # a stray % in a help text breaks --help


ONE_COMMAND = ["--target-params", "0.5", "--pop-size", "6", "--generations", "1"]
ONE_COMMAND += ["--search-size", "30", "--finetune-epochs", "0", "--final-epochs", "1"]
ONE_COMMAND += ["--batch-size", "32", "--val-size", "40", "--device", "cpu"]


@pytest.mark.slow
def test_one_command_trains_the_baseline_then_prunes(tmp_path, image_archive):
    out = tmp_path / "one"
    args = ["prune", "--model", "vgg14", "--width", "0.125", "--train-epochs", "1"]
    args += ["--data", str(image_archive), "--out", str(out), *ONE_COMMAND]
    assert main(args) == 0
    assert (out / "baseline" / "model.pt").exists() and (out / "model.pt").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["params_ratio"] <= 0.5
    again = ["prune", "--model", "vgg14", "--width", "0.125", "--train-epochs", "1"]
    again += ["--data", str(image_archive), "--out", str(tmp_path / "two"), *ONE_COMMAND]
    # a baseline already in OUT/baseline is reused, not trained again
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "baseline").symlink_to(out / "baseline", target_is_directory=True)
    assert main(again) == 0


@pytest.mark.slow
def test_your_own_weights_are_checked_and_used(tmp_path, image_archive, baseline):
    record = torch.load(baseline / "model.pt", weights_only=True)
    weights = tmp_path / "mine.pth"
    torch.save(record["state_dict"], weights)
    out = tmp_path / "w"
    args = ["prune", "--model", "vgg14", "--width", "0.125", "--weights", str(weights)]
    assert main([*args, "--data", str(image_archive), "--out", str(out), *ONE_COMMAND]) == 0
    made = torch.load(out / "baseline" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(made[k], record["state_dict"][k]) for k in made)

    wider = ["prune", "--model", "vgg14", "--width", "0.25", "--weights", str(weights)]
    code = main([*wider, "--data", str(image_archive), "--out", str(tmp_path / "x"), *ONE_COMMAND])
    assert code == 2


def test_pretrained_weights_offline_get_one_line(tmp_path, image_archive, capsys, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    args = ["prune", "--model", "torchvision:resnet18", "--weights", "DEFAULT"]
    code = main([*args, "--data", str(image_archive), "--out", str(tmp_path / "r"), *ONE_COMMAND])
    err = capsys.readouterr().err
    assert code == 2 and "offline" in err and "Traceback" not in err


def test_the_no_final_finetune_note_names_the_last_reestimation():
    from smoea.cli.commands import _norms_note

    groups = [{"norms_reestimated": 32}, {"norms_reestimated": 32}, {"norms_reestimated": 0}]
    note = _norms_note({"groups": groups}, 32)
    assert note == "BatchNorm statistics re-estimated on 32 training images after group 2"
    nothing = {"groups": [{"norms_reestimated": 0}] * 3}
    assert "no group removed a filter" in _norms_note(nothing, 32)
    assert "--calibration-images 0" in _norms_note(nothing, 0)
