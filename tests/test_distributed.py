"""torchrun: two gloo processes give the masks and (near) the accuracy of one process."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

FLAGS = ["--target-params", "0.5", "--pop-size", "8", "--generations", "2"]
FLAGS += ["--search-size", "30", "--calibration-images", "32", "--finetune-epochs", "0"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
FLAGS += ["--final-epochs", "1", "--batch-size", "32", "--val-size", "40", "--device", "cpu"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_two_processes_give_the_masks_and_accuracy_of_one(tmp_path, image_archive, baseline):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = ["prune", "--checkpoint", str(baseline / "model.pt"), "--data", str(image_archive)]
    one, two = tmp_path / "one", tmp_path / "two"
    single = [sys.executable, "-m", "smoea", *args, *FLAGS, "--out", str(one)]
    done = subprocess.run(single, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    pair = [*TORCHRUN, "-m", "smoea", *args, *FLAGS, "--out", str(two)]
    done = subprocess.run(pair, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    a = json.loads((one / "report.json").read_text())
    b = json.loads((two / "report.json").read_text())
    assert [g["filters_after"] for g in a["groups"]] == [g["filters_after"] for g in b["groups"]]
    assert [g["front"] for g in a["groups"]] == [g["front"] for g in b["groups"]]
    assert a["processes"] == 1 and b["processes"] == 2
    assert a["pruned"]["params"] == b["pruned"]["params"]
    assert a["groups"][0]["evaluations"] == b["groups"][0]["evaluations"]
    # fine-tuning: DDP with each rank on half of every batch (BatchNorm statistics per rank)
    assert abs(a["pruned"]["test_accuracy"] - b["pruned"]["test_accuracy"]) <= 0.1
    assert b["final_finetune"]["ran"]["steps"] == a["final_finetune"]["ran"]["steps"]


def _outcome(out):
    report = json.loads((out / "report.json").read_text())
    return [(g["filters_after"], g["front"]) for g in report["groups"]], report["pruned"]["params"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_an_interrupted_two_process_run_resumes_to_the_uninterrupted_result(
    tmp_path, image_archive, baseline
):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    flags = [*FLAGS, "--finetune-epochs", "1"]  # groups far enough apart to stop between them
    args = ["prune", "--checkpoint", str(baseline / "model.pt"), "--data", str(image_archive)]
    full, cut = tmp_path / "full", tmp_path / "cut"
    whole = [*TORCHRUN, "-m", "smoea", *args, *flags, "--out", str(full)]
    done = subprocess.run(whole, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    pair = [*TORCHRUN, "-m", "smoea", *args, *flags, "--out", str(cut)]
    proc = subprocess.Popen(pair, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not (cut / "state.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)  # torchrun passes it on to every rank
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert (cut / "state.pt").exists() and not (cut / "model.pt").exists()
    assert b"--resume" in err

    again = [*TORCHRUN, "-m", "smoea", "prune", "--resume", str(cut), "--device", "cpu"]
    done = subprocess.run(again, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (cut / "state.pt").exists()
    assert _outcome(cut) == _outcome(full)
    a = torch.load(full / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(cut / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((cut / "report.json").read_text())["processes"] == 2
