"""Data sets decoded once into uint8 tensors, cached on disk, split, augmented on whole batches."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from smoea.errors import SmoeaError

DATASETS = ("cifar10", "cifar100", "mnist", "fashion-mnist", "imagefolder")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")


@dataclass
class TensorData:
    """Images as uint8 (N, C, H, W) and labels as int64 (N,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: torch.Tensor) -> TensorData:
        return TensorData(self.x[index], self.y[index])


@dataclass
class Splits:
    """Train, validation (carved from train by the seed) and test splits, plus normalisation."""

    train: TensorData
    val: TensorData
    test: TensorData
    classes: list[str]
    mean: list[float]
    std: list[float]
    split: dict | None = None  # {"val_size", "seed"} that carved `val` (recorded in model files)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])


def default_cache_dir() -> Path:
    return Path(os.environ.get("SMOEA_CACHE", Path.home() / ".cache" / "smoea"))


def load_splits(
    name: str,
    path: str | Path,
    val_size: int = 5000,
    seed: int = 0,
    download: bool = False,
    cache_dir: str | Path | None = None,
) -> Splits:
    """Load a data set (decoded once, then from the cache) and carve the validation split."""
    if name not in DATASETS:
        raise SmoeaError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    raw = _cached(name, Path(path), download, Path(cache_dir or default_cache_dir()))
    train = TensorData(raw["train_x"], raw["train_y"])
    if not 0 <= val_size < len(train):
        raise SmoeaError(f"--val-size {val_size} must be below the {len(train)} training images")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    val, rest = train.subset(order[:val_size]), train.subset(order[val_size:])
    mean, std = channel_stats(rest.x)
    test = TensorData(raw["test_x"], raw["test_y"])
    return Splits(rest, val, test, list(raw["classes"]), mean, std)


def channel_stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, scaled to [0, 1]."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double() / 255
    return flat.mean(1).tolist(), flat.std(1).clamp_min(1e-3).tolist()


def _cached(name: str, path: Path, download: bool, cache_dir: Path) -> dict:
    """Decoded arrays from the cache, decoding the source the first time only."""
    if not path.exists() and not download:
        raise SmoeaError(f"--data {path} does not exist (give a directory or a .tar.gz archive)")
    stat = path.stat() if path.exists() else None
    key = f"{name}|{path.resolve()}|{stat.st_size if stat else 0}|{stat.st_mtime_ns if stat else 0}"
    file = cache_dir / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"
    if file.exists():
        try:
            return torch.load(file, weights_only=True)
        except Exception:
            file.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    raw = _decode(name, path, download)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    torch.save(raw, tmp)
    os.replace(tmp, file)
    return raw


def _decode(name: str, path: Path, download: bool) -> dict:
    if _is_image_tree(path):
        return decode_image_tree(path)
    if name == "imagefolder":
        raise SmoeaError(f"--data {path} holds no train/<class>/ and test/<class>/ image folders")
    return _decode_torchvision(name, path, download)


def _is_image_tree(path: Path) -> bool:
    if path.is_file():
        return path.name.endswith((".tar.gz", ".tgz", ".tar"))
    return (path / "train").is_dir() or any((p / "train").is_dir() for p in _subdirs(path))


def _subdirs(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []


def _decode_torchvision(name: str, path: Path, download: bool) -> dict:
    """CIFAR or MNIST in torchvision's own on-disk format (downloaded there with --download)."""
    import torchvision.datasets as tvd

    cls = {
        "cifar10": tvd.CIFAR10,
        "cifar100": tvd.CIFAR100,
        "mnist": tvd.MNIST,
        "fashion-mnist": tvd.FashionMNIST,
    }[name]
    try:
        parts = [cls(str(path), train=t, download=download) for t in (True, False)]
    except (RuntimeError, OSError) as exc:
        hint = "" if download else " (add --download to fetch it)"
        raise SmoeaError(
            f"cannot read {name} from {path}: {str(exc).splitlines()[0]}{hint}"
        ) from None
    out = {"classes": list(parts[0].classes)}
    for split, ds in zip(("train", "test"), parts):
        x = torch.as_tensor(np.asarray(ds.data))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        out[f"{split}_x"] = x.contiguous()
        out[f"{split}_y"] = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    return out


def decode_image_tree(path: Path) -> dict:
    """Decode train/<class>/* and test/<class>/* from a directory or a tar archive, once."""
    from PIL import Image

    files = _tar_members(path) if path.is_file() else _dir_members(path)
    by_split: dict[str, list[tuple[str, bytes]]] = {"train": [], "test": []}
    for rel, data in files:
        parts = rel.split("/")
        if len(parts) >= 3 and parts[-3] in by_split and rel.lower().endswith(IMAGE_SUFFIXES):
            by_split[parts[-3]].append((parts[-2], data()))
    if not by_split["train"] or not by_split["test"]:
        raise SmoeaError(f"--data {path} lacks images under train/<class>/ and test/<class>/")
    classes = sorted({c for c, _ in by_split["train"]})
    index = {c: i for i, c in enumerate(classes)}
    out: dict = {"classes": classes}
    for split, items in by_split.items():
        images = [np.asarray(Image.open(io.BytesIO(b))) for _, b in items]
        if len({im.shape for im in images}) != 1:
            raise SmoeaError(f"images in {path} differ in size or channels; resize them first")
        x = torch.as_tensor(np.stack(images))
        out[f"{split}_x"] = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
        unknown = {c for c, _ in items} - set(classes)
        if unknown:
            raise SmoeaError(f"test classes {sorted(unknown)} are missing from train in {path}")
        out[f"{split}_y"] = torch.tensor([index[c] for c, _ in items], dtype=torch.int64)
    return out


def _tar_members(path: Path) -> Iterator[tuple[str, object]]:
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile():
                    data = tar.extractfile(member).read()
                    yield member.name, (lambda d=data: d)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SmoeaError(
            f"cannot read archive {path}: damaged or not a tar archive ({first})"
        ) from None


def _dir_members(path: Path) -> Iterator[tuple[str, object]]:
    for file in sorted(path.rglob("*")):
        if file.is_file():
            yield file.relative_to(path).as_posix(), file.read_bytes


def draw_subset(data: TensorData, size: int, seed: int) -> TensorData:
    """A fixed random subset (for the search set), the same for the same seed."""
    if size >= len(data):
        return data
    return data.subset(_search_order(data, seed)[:size])


def outside_subset(data: TensorData, size: int, seed: int) -> TensorData:
    """The images `draw_subset` leaves out: validation images the search never scored on."""
    if size >= len(data):
        return data.subset(torch.arange(0))
    return data.subset(_search_order(data, seed)[size:].sort().values)


def _search_order(data: TensorData, seed: int) -> torch.Tensor:
    return torch.randperm(len(data), generator=torch.Generator().manual_seed(seed + 7919))


def calibration_set(train: TensorData, size: int, seed: int) -> TensorData:
    """Training images for adaptive BatchNorm (never the search set or the test split)."""
    size = min(size, len(train))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed + 104729))
    return train.subset(order[:size])


def normalize(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 batch to a normalised float batch in channels_last layout."""
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    out = (x.float() / 255 - m) / s
    return out.contiguous(memory_format=torch.channels_last)


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding and horizontal flip, for a whole uint8 batch at once."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w)).view(n, 1, 1, w)
    flip = torch.rand(n, generator=generator) < 0.5
    cols = torch.where(flip.view(n, 1, 1, 1), cols.flip(-1), cols)
    batch = torch.arange(n).view(n, 1, 1, 1)
    chan = torch.arange(x.shape[1]).view(1, -1, 1, 1)
    return padded[batch, chan, rows, cols]


def batches(
    data: TensorData,
    batch_size: int,
    mean: list[float],
    std: list[float],
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised batches; with a generator they are shuffled and augmented (training)."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x = data.x[idx]
        if generator is not None:
            x = augment(x, generator)
        yield normalize(x.to(device, non_blocking=True), mean, std), data.y[idx].to(device)
