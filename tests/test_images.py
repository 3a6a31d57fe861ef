"""Photos of any size: --image-size crops, decoded into memory or streamed from disk alike."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from smoea.cli import main
from smoea.data import batches, load_splits
from smoea.errors import SmoeaError
from smoea.images import parse_size, random_resized_crop, storage_size
from tests.conftest import CLASSES, synthetic_images


def write_photos(root, n_train: int = 90, n_test: int = 30):
    """JPEGs of mixed sizes and aspect ratios (some grayscale), three easy classes."""
    rng = np.random.default_rng(0)
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        x, y = synthetic_images(n, 24, 3, seed=seed)
        for i in range(n):
            folder = root / split / CLASSES[int(y[i])]
            folder.mkdir(parents=True, exist_ok=True)
            w, h = (int(v) for v in rng.integers(18, 48, 2))
            image = Image.fromarray(x[i].permute(1, 2, 0).numpy()).resize((w, h))
            if i % 7 == 0:
                image = image.convert("L")
            image.save(folder / f"{i:04d}.jpg", quality=95)
    return root


@pytest.fixture
def photos(tmp_path):
    return write_photos(tmp_path / "photos")


def test_mixed_sizes_without_image_size_name_the_flag(photos):
    with pytest.raises(SmoeaError, match="--image-size"):
        load_splits("imagefolder", photos, val_size=10)


def test_streamed_and_cached_photos_give_the_same_images_and_batches(photos, tmp_path):
    cached = load_splits("imagefolder", photos, val_size=15, image_size=16)
    streamed = load_splits(
        "imagefolder", photos, val_size=15, image_size=16, memory_budget="1KB", workers=1
    )
    assert cached.storage == "memory" and streamed.storage == "stream"
    assert cached.image_shape == streamed.image_shape == (3, 16, 16)
    assert cached.train.full.shape[-1] == storage_size(16) == 18
    assert torch.equal(cached.val.x, streamed.val.load().x)
    assert cached.mean == pytest.approx(streamed.mean, abs=0.02)  # streamed: from a sample
    for kind in (None, 7):  # evaluation batches, then shuffled and cropped training batches
        args = [64, cached.mean, cached.std, torch.device("cpu")]
        gen = [None if kind is None else torch.Generator().manual_seed(kind) for _ in range(2)]
        a = list(batches(cached.train, *args, gen[0]))
        b = list(batches(streamed.train, *args, gen[1]))
        assert len(a) == len(b) == 2
        for (xa, ya), (xb, yb) in zip(a, b):
            assert xa.shape == (len(ya), 3, 16, 16) and torch.equal(xa, xb) and torch.equal(ya, yb)


def test_random_resized_crops_are_seeded_and_vary():
    full = torch.randint(0, 256, (8, 3, 18, 18), dtype=torch.uint8)
    a = random_resized_crop(full, 16, torch.Generator().manual_seed(1))
    b = random_resized_crop(full, 16, torch.Generator().manual_seed(1))
    c = random_resized_crop(full, 16, torch.Generator().manual_seed(2))
    assert a.dtype == torch.uint8 and a.shape == (8, 3, 16, 16)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_memory_budget_sizes_parse():
    assert parse_size("512MB") == 512 * 1024**2 and parse_size("4GB") == 4 * 1024**3
    assert parse_size("1.5GiB") == int(1.5 * 1024**3) and parse_size("100") == 100
    with pytest.raises(SmoeaError, match="--memory-budget"):
        parse_size("lots")


PRUNE = ["--target-params", "0.5", "--pop-size", "6", "--generations", "2"]
PRUNE += ["--search-size", "12", "--calibration-images", "16", "--finetune-epochs", "1"]
PRUNE += ["--final-epochs", "1", "--batch-size", "32", "--device", "cpu"]


@pytest.mark.slow
def test_photos_train_and_prune_cached_and_streamed_with_the_same_masks(photos, tmp_path):
    data = ["--data", str(photos), "--dataset", "imagefolder", "--image-size", "32"]
    data += ["--val-size", "24"]
    base = tmp_path / "base"
    train = ["train", "--width", "0.125", "--epochs", "1", "--batch-size", "32", "--lr", "0.05"]
    assert main([*train, *data, "--out", str(base), "--device", "cpu"]) == 0
    reports = []
    for name, extra in (("cached", []), ("streamed", ["--memory-budget", "1KB", "--workers", "1"])):
        out = tmp_path / name
        args = ["prune", "--checkpoint", str(base / "model.pt"), *data, *extra, *PRUNE]
        assert main([*args, "--out", str(out)]) == 0
        reports.append(json.loads((out / "report.json").read_text()))
    first, second = reports
    assert [g["filters_after"] for g in first["groups"]] == [
        g["filters_after"] for g in second["groups"]
    ]
    assert [g["front"] for g in first["groups"]] == [g["front"] for g in second["groups"]]
    assert first["pruned"]["test_accuracy"] == second["pruned"]["test_accuracy"]


@pytest.mark.parametrize("damage", ["truncated", "not an image", "empty class"])
def test_bad_photos_get_one_line(photos, tmp_path, capsys, damage):
    folder = photos / "train" / CLASSES[0]
    if damage == "truncated":
        first = sorted(folder.iterdir())[0]
        first.write_bytes(first.read_bytes()[:200])
        expect = "cannot decode image"
    elif damage == "not an image":
        (folder / "notes.txt").write_text("hello")
        expect = "is not an image file"
    else:
        (photos / "train" / "empty").mkdir()
        expect = "holds no images"
    args = ["train", "--width", "0.125", "--epochs", "1", "--data", str(photos)]
    args += ["--dataset", "imagefolder", "--image-size", "16", "--val-size", "10"]
    code = main([*args, "--out", str(tmp_path / "o"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and expect in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("smoea")]) == 1
