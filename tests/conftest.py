"""Tiny synthetic data sets and models shared by the tests."""

from __future__ import annotations

import copy
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smoea.data import TensorData

CLASSES = ("circle", "stripes", "plain")


def synthetic_images(n: int, size: int = 16, channels: int = 3, seed: int = 0):
    """Three easy classes (a bright centre, stripes, flat) with noise, as uint8 NCHW."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(CLASSES)
    x = rng.integers(0, 60, (n, channels, size, size)).astype(np.int64)
    c = size // 2
    x[y == 0, :, c - 3 : c + 3, c - 3 : c + 3] += 180
    x[y == 1, :, ::3, :] += 150
    x[y == 2] += 90
    return torch.as_tensor(np.clip(x, 0, 255).astype(np.uint8)), torch.as_tensor(y)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SMOEA_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    # tests time tiny models: a table build does not spend a minute on its whole models
    monkeypatch.setattr("smoea.latency.WHOLE_SPAN_S", 0.0)


@pytest.fixture
def tiny_data() -> tuple[TensorData, TensorData]:
    x, y = synthetic_images(240)
    return TensorData(x[:180], y[:180]), TensorData(x[180:], y[180:])


def write_image_tree(
    root: Path, n_train: int = 150, n_test: int = 30, size: int = 16, channels: int = 3
) -> Path:
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        x, y = synthetic_images(n, size, channels, seed=seed)
        for i in range(n):
            folder = root / split / CLASSES[int(y[i])]
            folder.mkdir(parents=True, exist_ok=True)
            pixels = x[i].permute(1, 2, 0).numpy()
            image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)
            image.save(folder / f"{i:04d}.png")
    return root


@pytest.fixture
def image_tree(tmp_path) -> Path:
    return write_image_tree(tmp_path / "tree")


@pytest.fixture
def image_archive(tmp_path, image_tree) -> Path:
    path = tmp_path / "tree.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(image_tree, arcname="data")
    return path


@pytest.fixture(scope="session")
def trained_tiny():
    """A vgg14 at width 1/8 trained for a few epochs on the synthetic 16x16 data."""
    from smoea.data import Splits, channel_stats
    from smoea.models import build_model, make_arch
    from smoea.train import TrainConfig, train

    torch.manual_seed(0)
    x, y = synthetic_images(240)
    train_data, val = TensorData(x[:180], y[:180]), TensorData(x[180:], y[180:])
    mean, std = channel_stats(train_data.x)
    splits = Splits(train_data, val, None, list(CLASSES), mean, std)
    model = build_model(make_arch("vgg14", 0.125, 3, 3, 16))
    train(model, splits, TrainConfig(epochs=4, batch_size=32, lr=0.05), torch.device("cpu"))
    return model.eval(), splits


@pytest.fixture(scope="module")
def tiny_splits(trained_tiny):
    """The trained tiny vgg14 and its splits, with a test split of its own."""
    model, splits = trained_tiny
    splits = copy.copy(splits)
    x, y = synthetic_images(60, seed=9)
    splits.test = TensorData(x, y)
    return model, splits


@pytest.fixture
def baseline(tmp_path, image_archive):
    out = tmp_path / "base"
    from smoea.cli import main

    code = main(
        [
            "train",
            "--model",
            "vgg14",
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
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    return out
