"""Bring your own loop: docs/python.md's example runs; loaders without a score use the built-ins."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import smoea
from tests.conftest import synthetic_images
from tests.test_images import write_photos

README = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def _example() -> str:
    text = README.read_text()
    block = text.split("<!-- byo-loop example -->", 1)[1]
    return re.search(r"```python\n(.*?)```", block, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path, monkeypatch):
    photos = write_photos(tmp_path / "photos", n_train=60, n_test=24)
    (photos / "test").rename(photos / "val")
    code = _example()
    small = 'DATA, SIZE, EPOCHS = "photos", 32, 1'
    assert 'DATA, SIZE, EPOCHS = "photos", 224, 1' in code
    code = code.replace('DATA, SIZE, EPOCHS = "photos", 224, 1', small)
    config = "config = smoea.PruneConfig(target_params=None, target_macs=0.5)"
    assert config in code
    code = code.replace(
        config,
        "config = smoea.PruneConfig(target_params=None, target_macs=0.5, pop_size=4, "
        "generations=1, search_size=16, calibration_images=16)",
    )
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README example", "exec"), scope)
    report = scope["report"]
    assert 0.49 <= report["macs_ratio"] <= 0.5
    assert {g["evaluator"] for g in report["groups"]} == {"scored"}
    assert report["final_finetune"]["ran"]["custom"]
    assert (tmp_path / "resnet18-pruned.pt").exists()


class Batches:
    """A minimal user loader: normalised float batches, with len()."""

    def __init__(self, x, y, batch_size=32):
        self.x = (x.float() / 255 - 0.4) / 0.25
        self.y, self.batch_size = y, batch_size

    def __len__(self):
        return -(-len(self.y) // self.batch_size)

    def __iter__(self):
        for i in range(0, len(self.y), self.batch_size):
            yield self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]


@pytest.mark.slow
def test_loaders_with_the_built_in_error_and_fine_tuning(trained_tiny):
    import copy

    torch.manual_seed(0)  # the fine-tunes' shuffles: the same run whatever ran before
    model = trained_tiny[0]
    x, y = synthetic_images(240)
    train, val = Batches(x[:180], y[:180]), Batches(x[180:], y[180:])
    config = smoea.PruneConfig(target_params=0.5, pop_size=6, generations=2, search_size=40)
    config.finetune.epochs = 0  # the default schedule: one final fine-tune from the loader
    config.final.epochs = 1
    pruned, report = smoea.prune(
        copy.deepcopy(model), train, val, config, "cpu", log=lambda m: None
    )
    assert 0.49 <= report["params_ratio"] <= 0.5
    assert report["groups"][0]["evaluator"] == "sliced"  # the sub-network speed-up stays
    ran = report["final_finetune"]["ran"]
    assert ran["steps"] == len(train) and ran["epochs"] == 1
    chosen = [g["chosen"][0] for g in report["groups"]]
    assert all(np.isfinite(e) and e < 0.9 for e in chosen), chosen
