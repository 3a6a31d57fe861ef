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
from smoea.images import (
    DEFAULT_MEMORY_BUDGET,
    FileImages,
    StreamData,
    TensorData,
    centre,
    fit_image,
    parse_size,
    random_resized_crop,
    storage_size,
)

DATASETS = ("cifar10", "cifar100", "mnist", "fashion-mnist", "imagefolder")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")


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
    storage: str = "memory"  # or "stream": decoded from disk per batch (DataLoader workers)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.shape


def default_cache_dir() -> Path:
    return Path(os.environ.get("SMOEA_CACHE", Path.home() / ".cache" / "smoea"))


def load_splits(
    name: str,
    path: str | Path,
    val_size: int = 5000,
    seed: int = 0,
    download: bool = False,
    cache_dir: str | Path | None = None,
    image_size: int | None = None,
    memory_budget: str = DEFAULT_MEMORY_BUDGET,
    workers: int = 0,
) -> Splits:
    """Load a data set (decoded once, then from the cache) and carve the validation split.

    With `image_size`, an image folder of photos of any size is stored at image_size / 0.875
    and cropped to image_size (smoea.images); if its decoded size exceeds `memory_budget` it
    is streamed from disk with `workers` DataLoader processes instead of held in memory.
    """
    if name not in DATASETS:
        raise SmoeaError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    if image_size is not None and image_size < 8:
        raise SmoeaError(f"--image-size must be at least 8, got {image_size}")
    budget = parse_size(memory_budget)
    if workers < 0:
        raise SmoeaError(f"--workers must be >= 0, got {workers}")
    path, cache = Path(path), Path(cache_dir or default_cache_dir())
    stream = image_size is not None and _too_large(path, image_size, budget)
    if stream:
        train, test, classes = _streamed(path, image_size, workers, cache)
    else:
        raw = _cached(name, path, download, cache, image_size)
        train, test = (_stored(raw, part, image_size) for part in ("train", "test"))
        classes = list(raw["classes"])
    if not 0 <= val_size < len(train):
        raise SmoeaError(f"--val-size {val_size} must be below the {len(train)} training images")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    val, rest = train.subset(order[:val_size]), train.subset(order[val_size:])
    sample = rest if not stream else draw_subset(rest, 1000, seed)  # statistics of a sample
    mean, std = channel_stats(sample.x)
    return Splits(rest, val, test, classes, mean, std, storage="stream" if stream else "memory")


def _too_large(path: Path, image_size: int, budget: int) -> bool:
    """Whether the image folder, stored at image_size / 0.875 in RGB, exceeds `budget` bytes."""
    if not _is_image_tree(path):
        return False
    if path.is_dir():
        count = sum(1 for f in path.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    else:
        with tarfile.open(path) as tar:
            count = sum(1 for m in tar if m.isfile() and m.name.lower().endswith(IMAGE_SUFFIXES))
    return count * 3 * storage_size(image_size) ** 2 > budget


def _streamed(path: Path, image_size: int, workers: int, cache_dir: Path):
    """Train and test splits streamed from disk (an archive is unpacked once, into the cache)."""
    root = path if path.is_dir() else _unpacked(path, cache_dir)
    by_split = _image_files(root, _dir_members(root))
    classes = sorted({c for c, _, _ in by_split["train"]})
    index = {c: i for i, c in enumerate(classes)}
    mode = _mode(by_split["train"])
    store = storage_size(image_size)
    parts = []
    for items in (by_split["train"], by_split["test"]):
        images = FileImages([root / rel for _, rel, _ in items], store, mode)
        y = torch.tensor([index[c] for c, _, _ in items], dtype=torch.int64)
        parts.append(StreamData(images, torch.arange(len(y)), y, image_size, workers))
    return parts[0], parts[1], classes


def _unpacked(path: Path, cache_dir: Path) -> Path:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    root = cache_dir / f"unpacked-{hashlib.sha1(key.encode()).hexdigest()[:16]}"
    if not (root / ".complete").exists():
        import shutil

        tmp = root.with_suffix(f".{os.getpid()}.tmp")
        try:
            with tarfile.open(path) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise SmoeaError(f"cannot read archive {path}: {exc}") from None
        (tmp / ".complete").touch()
        if root.exists() and not (root / ".complete").exists():
            shutil.rmtree(root)  # a broken earlier attempt
        try:
            os.replace(tmp, root)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _stored(raw: dict, part: str, image_size: int | None) -> TensorData:
    x, y = raw[f"{part}_x"], raw[f"{part}_y"]
    return TensorData(x, y) if image_size is None else TensorData.cropped(x, y, image_size)


def channel_stats(x: torch.Tensor, chunk: int = 256) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, scaled to [0, 1] (in chunks: large photos
    in float64 at once would take 8 bytes a pixel)."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros(x.shape[1], dtype=torch.float64)
    for i in range(0, len(x), chunk):
        flat = x[i : i + chunk].transpose(0, 1).reshape(x.shape[1], -1).double() / 255
        total += flat.sum(1)
        squares += (flat * flat).sum(1)
    n = max(1, x[0].numel() // x.shape[1] * len(x))
    mean = total / n
    var = (squares - n * mean * mean) / max(1, n - 1)
    return mean.tolist(), var.clamp_min(0).sqrt().clamp_min(1e-3).tolist()


def _cached(
    name: str, path: Path, download: bool, cache_dir: Path, image_size: int | None = None
) -> dict:
    """Decoded arrays from the cache, decoding the source the first time only."""
    if not path.exists() and not download:
        raise SmoeaError(f"--data {path} does not exist (give a directory or a .tar.gz archive)")
    file = _cache_file(name, path, cache_dir, image_size)
    if file.exists():
        try:
            return torch.load(file, weights_only=True)
        except Exception:
            file.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    raw = _decode(name, path, download, image_size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".{os.getpid()}.tmp")  # several torchrun ranks may decode at once
    torch.save(raw, tmp)
    os.replace(tmp, file)
    return raw


def _cache_file(name: str, path: Path, cache_dir: Path, image_size: int | None) -> Path:
    """Where the decoded arrays of this source (and storage size) are cached."""
    stat = path.stat() if path.exists() else None
    key = f"{name}|{path.resolve()}|{stat.st_size if stat else 0}|{stat.st_mtime_ns if stat else 0}"
    if image_size is not None:
        key += f"|{storage_size(image_size)}"
    return cache_dir / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"


def _decode(name: str, path: Path, download: bool, image_size: int | None = None) -> dict:
    if _is_image_tree(path):
        return decode_image_tree(path, image_size)
    if name == "imagefolder":
        raise SmoeaError(f"--data {path} holds no train/<class>/ and test/<class>/ image folders")
    if image_size is not None:
        raise SmoeaError("--image-size is for image folders; this data set has one size")
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


def decode_image_tree(path: Path, image_size: int | None = None) -> dict:
    """Decode train/<class>/* and test/<class>/* from a directory or a tar archive, once.

    Images must agree in size unless `image_size` is given: then each is stored as a square
    of image_size / 0.875 (smoea.images) and all get the channels of the majority mode.
    """
    by_split = _image_files(path, _tar_members(path) if path.is_file() else _dir_members(path))
    classes = sorted({c for c, _, _ in by_split["train"]})
    index = {c: i for i, c in enumerate(classes)}
    out: dict = {"classes": classes}
    mode = _mode(by_split["train"]) if image_size is not None else None
    for split, items in by_split.items():
        if image_size is None:
            images = [_plain_image(data(), rel) for _, rel, data in items]
            if len({im.shape for im in images}) != 1:
                raise SmoeaError(
                    f"images in {path} differ in size or channels; give --image-size S to "
                    "resize and crop them to S x S"
                )
        else:
            store = storage_size(image_size)
            images = [fit_image(data(), store, mode, rel) for _, rel, data in items]
        x = torch.as_tensor(np.stack(images))
        out[f"{split}_x"] = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
        out[f"{split}_y"] = torch.tensor([index[c] for c, _, _ in items], dtype=torch.int64)
    return out


def _image_files(path: Path, files) -> dict[str, list]:
    """(class, relative path, bytes reader) per image of each split; refuses what cannot be
    a data set (no images, a class folder without images, test classes unknown to train)."""
    by_split: dict[str, list] = {"train": [], "test": []}
    folders: dict[str, set[str]] = {"train": set(), "test": set()}
    for rel, data in files:
        parts = rel.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] in folders and data is None:  # a class directory
            folders[parts[-2]].add(parts[-1])
        elif len(parts) >= 3 and parts[-3] in by_split and data is not None:
            folders[parts[-3]].add(parts[-2])
            if rel.lower().endswith(IMAGE_SUFFIXES):
                by_split[parts[-3]].append((parts[-2], rel, data))
            elif not parts[-1].startswith(".") and parts[-1] != "Thumbs.db":
                raise SmoeaError(
                    f"{rel} in {path} is not an image file ({', '.join(IMAGE_SUFFIXES)})"
                )
    if not by_split["train"] or not by_split["test"]:
        raise SmoeaError(f"--data {path} lacks images under train/<class>/ and test/<class>/")
    for split, items in by_split.items():
        empty = sorted(folders[split] - {c for c, _, _ in items})
        if empty:
            raise SmoeaError(f"class folder {split}/{empty[0]} in {path} holds no images")
    unknown = {c for c, _, _ in by_split["test"]} - {c for c, _, _ in by_split["train"]}
    if unknown:
        raise SmoeaError(f"test classes {sorted(unknown)} are missing from train in {path}")
    return by_split


def _plain_image(data: bytes, name: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im)
    except (OSError, ValueError, SyntaxError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SmoeaError(f"cannot decode image {name}: {first}") from None


def _mode(items: list, sample: int = 100) -> str:
    """RGB unless every one of the first images is single-channel (then L)."""
    from PIL import Image

    modes = set()
    for _, _rel, data in items[:sample]:
        try:
            with Image.open(io.BytesIO(data())) as im:
                modes.add(im.mode)
        except (OSError, ValueError, SyntaxError):
            continue  # reported with its name when it is decoded
    return "L" if modes and modes <= {"L", "1", "I", "I;16", "F"} else "RGB"


def _tar_members(path: Path) -> Iterator[tuple[str, object]]:
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile():
                    data = tar.extractfile(member).read()
                    yield member.name, (lambda d=data: d)
                elif member.isdir():
                    yield member.name, None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SmoeaError(
            f"cannot read archive {path}: damaged or not a tar archive ({first})"
        ) from None


def _dir_members(path: Path) -> Iterator[tuple[str, object]]:
    for file in sorted(path.rglob("*")):
        if file.is_file():
            yield file.relative_to(path).as_posix(), file.read_bytes
        elif file.is_dir():
            yield file.relative_to(path).as_posix(), None


def draw_subset(data: TensorData, size: int, seed: int) -> TensorData:
    """A fixed random subset (for the search set), the same for the same seed."""
    if size >= len(data):
        return data.load()
    return data.subset(_search_order(data, seed)[:size]).load()


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
    return train.subset(order[:size]).load()


def normalize(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 batch to a normalised float batch in channels_last layout. A float batch is taken
    as already normalised (images from the user's own data loader)."""
    if x.is_floating_point():
        return x.contiguous(memory_format=torch.channels_last)
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
    data: TensorData | StreamData,
    batch_size: int,
    mean: list[float],
    std: list[float],
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised batches; with a generator they are shuffled and augmented (training): a
    padded random crop and flip for small images of one size, random-resized crops and flips
    for photos stored larger (smoea.images)."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    size = data.shape[-1]
    for idx, x in _uint8_batches(data, order, batch_size, training=generator is not None):
        if generator is not None:
            stored = x.shape[-1] != size
            x = random_resized_crop(x, size, generator) if stored else augment(x, generator)
        elif x.shape[-1] != size:
            x = centre(x, size)
        yield normalize(x.to(device, non_blocking=True), mean, std), data.y[idx].to(device)


def _uint8_batches(data, order: torch.Tensor, batch_size: int, training: bool):
    """(positions, uint8 images) per batch: the stored squares when training crops from them."""
    if isinstance(data, StreamData):
        yield from data.full_batches(order, batch_size)
        return
    source = data.full if training and data.full is not None else data.x
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield idx, source[idx]
