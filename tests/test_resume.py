"""Interrupted runs lose nothing: SIGTERM stops a prune, --resume finishes it identically."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from smoea.cli import main

pytestmark = pytest.mark.filterwarnings("ignore")

PRUNE = [
    "--target-params",
    "0.5",
    "--pop-size",
    "8",
    "--generations",
    "6",
    "--search-size",
    "40",
    "--finetune-epochs",
    "2",
    "--final-epochs",
    "1",
    "--val-size",
    "40",
    "--device",
    "cpu",
]


def _summary(out):
    report = json.loads((out / "report.json").read_text())
    state = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    groups = [(g["filters_after"], g["front"], g["chosen"]) for g in report["groups"]]
    return groups, report["pruned"], state


@pytest.mark.slow
def test_sigterm_then_resume_equals_an_uninterrupted_run(tmp_path, image_archive, baseline):
    args = ["--checkpoint", str(baseline / "model.pt"), "--data", str(image_archive), *PRUNE]
    full = tmp_path / "full"
    assert main(["prune", *args, "--out", str(full)]) == 0

    cut = tmp_path / "cut"
    cmd = [sys.executable, "-m", "smoea.cli", "prune", *args, "--out", str(cut)]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the same float order as this process
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not (cut / "state.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    _, err = proc.communicate(timeout=60)
    assert time.time() - sent < 15
    assert proc.returncode == 130, err[-3000:]
    assert f"smoea prune --resume {cut}" in err
    assert (cut / "state.pt").exists() and not (cut / "model.pt").exists()
    saved = torch.load(cut / "state.pt", weights_only=True)
    assert 1 <= len(saved["report"]["groups"]) < 5

    assert main(["prune", "--resume", str(cut), "--device", "cpu"]) == 0
    assert not (cut / "state.pt").exists()
    groups_a, pruned_a, state_a = _summary(full)
    groups_b, pruned_b, state_b = _summary(cut)
    assert groups_a == groups_b
    assert pruned_a == pruned_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_train_resume_continues_to_the_same_weights(tmp_path, image_archive, monkeypatch):
    flags = [
        "--width",
        "0.125",
        "--data",
        str(image_archive),
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--lr",
        "0.05",
        "--val-size",
        "40",
        "--device",
        "cpu",
    ]
    assert main(["train", *flags, "--out", str(tmp_path / "a")]) == 0

    import smoea.train as train_module

    real_epoch = train_module._train_epoch
    calls = {"n": 0}

    def stop_after_two(*args, **kwargs):
        if calls["n"] == 2:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "_train_epoch", stop_after_two)
    assert main(["train", *flags, "--out", str(tmp_path / "b")]) == 130
    assert (tmp_path / "b" / "train_state.pt").exists()
    assert main(["train", *flags, "--out", str(tmp_path / "b")]) == 2  # needs --resume
    monkeypatch.setattr(train_module, "_train_epoch", real_epoch)
    assert main(["train", *flags, "--out", str(tmp_path / "b"), "--resume"]) == 0
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    history = json.loads((tmp_path / "b" / "train.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_an_error_after_a_stop_request_reports_the_interruption(monkeypatch, capsys):
    """A torchrun peer sees "connection closed" once the other rank stops: still an interruption."""
    import importlib

    from smoea import interrupt
    from smoea.cli import commands

    entry = importlib.import_module("smoea.cli.main")  # the module, not the function

    def peer_gone(args):
        interrupt.request_stop()  # the handler ran, its KeyboardInterrupt lost in a finaliser
        raise RuntimeError("Connection closed by peer")

    monkeypatch.setitem(entry.COMMANDS, "evaluate", peer_gone)
    assert entry.main(["evaluate", "--checkpoint", "x.pt", "--data", "y"]) == 130
    assert "smoea: interrupted" in capsys.readouterr().err

    def plain_bug(args):
        raise RuntimeError("a real bug")

    monkeypatch.setitem(entry.COMMANDS, "evaluate", plain_bug)
    with pytest.raises(RuntimeError, match="a real bug"):
        entry.main(["evaluate", "--checkpoint", "x.pt", "--data", "y"])
    assert commands.resume_hint[0] == ""
