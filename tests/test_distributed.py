"""torchrun: two gloo processes give the masks and (near) the accuracy of one process."""

import json
import os
import subprocess
import sys

import pytest

FLAGS = ["--target-params", "0.5", "--pop-size", "8", "--generations", "2"]
FLAGS += ["--search-size", "30", "--calibration-images", "32", "--finetune-epochs", "0"]
FLAGS += ["--final-epochs", "1", "--batch-size", "32", "--val-size", "40", "--device", "cpu"]


@pytest.mark.filterwarnings("ignore")
def test_two_processes_give_the_masks_and_accuracy_of_one(tmp_path, image_archive, baseline):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = ["prune", "--checkpoint", str(baseline / "model.pt"), "--data", str(image_archive)]
    one, two = tmp_path / "one", tmp_path / "two"
    single = [sys.executable, "-m", "smoea", *args, *FLAGS, "--out", str(one)]
    done = subprocess.run(single, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    pair = [*run, "-m", "smoea", *args, *FLAGS, "--out", str(two)]
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
