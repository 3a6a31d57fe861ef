"""Photos of any size, as torchvision's ImageNet recipe takes them (`--image-size S`).

Every image is stored once as a square of R = S / 0.875 pixels (its shorter side resized to R,
then the centre square), as uint8. Evaluation takes the centre S x S crop of it (torchvision's
resize to S/0.875 then centre crop); training takes random-resized crops of it (scale 0.08-1,
aspect ratio 3/4-4/3, torchvision's defaults) resized to S, with horizontal flips, for a whole
batch at once (one affine grid per image, no per-image Python). The crops are drawn from the
stored R x R square, not from the uncropped photo: a wide photo loses its edges to training
crops, the price of one storage format for both the memory cache and the stream.

A data set that fits the memory budget is decoded once into a tensor (and cached on disk); a
larger one is streamed: `StreamData` decodes each batch from disk in DataLoader workers.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from smoea.errors import SmoeaError

EVAL_RATIO = 0.875
RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3 / 4, 4 / 3)
DEFAULT_MEMORY_BUDGET = "4GB"


@dataclass
class TensorData:
    """Images as uint8 (N, C, H, W) and labels as int64 (N,).

    With `full` (photos of any size, see smoea.images), `x` is the centre crop of the larger
    stored squares in `full` (a view), and training crops at random from `full`.
    """

    x: torch.Tensor
    y: torch.Tensor
    full: torch.Tensor | None = None

    @classmethod
    def cropped(cls, full: torch.Tensor, y: torch.Tensor, size: int) -> TensorData:
        return cls(centre(full, size), y, full)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the images as the model sees them."""
        return tuple(self.x.shape[1:])

    def subset(self, index: torch.Tensor) -> TensorData:
        if self.full is None:
            return TensorData(self.x[index], self.y[index])
        return TensorData.cropped(self.full[index], self.y[index], self.x.shape[-1])

    def load(self) -> TensorData:
        return self


def storage_size(size: int) -> int:
    """The side of the stored square for crops of `size` (torchvision: size / 0.875)."""
    return int(round(size / EVAL_RATIO))


def parse_size(text: str) -> int:
    """'512MB', '4GB', '1.5 GiB' or a plain byte count, to bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?i?b?)?\s*", str(text).lower())
    if not m:
        raise SmoeaError(f"--memory-budget {text!r}: give a size such as 512MB or 4GB")
    unit = (m.group(2) or "b").rstrip("b").rstrip("i")
    power = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}[unit]
    return int(float(m.group(1)) * 1024**power)


def fit_image(data: bytes, store: int, mode: str, name: str) -> np.ndarray:
    """Decode an image file's bytes to a (store, store, channels) uint8 array: shorter side
    resized to `store`, centre square. A file that does not decode gets one line naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert(mode)
            w, h = im.size
            scale = store / min(w, h)
            size = (max(store, round(w * scale)), max(store, round(h * scale)))
            im = im.resize(size, Image.Resampling.BILINEAR)
            left, top = (im.width - store) // 2, (im.height - store) // 2
            arr = np.asarray(im.crop((left, top, left + store, top + store)))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SmoeaError(f"cannot decode image {name}: {first}") from None
    return arr[..., None] if arr.ndim == 2 else arr


def centre(full: torch.Tensor, size: int) -> torch.Tensor:
    """The centre size x size crop of a batch (a view)."""
    top = (full.shape[-2] - size) // 2
    left = (full.shape[-1] - size) // 2
    return full[..., top : top + size, left : left + size]


def random_resized_crop(full: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Random-resized crops of a uint8 batch to size x size with random horizontal flips."""
    n, c = full.shape[:2]
    area = torch.empty(n).uniform_(*RRC_SCALE, generator=generator)
    log_ratio = torch.empty(n).uniform_(*map(math.log, RRC_RATIO), generator=generator)
    ratio = log_ratio.exp()
    w = (area * ratio).sqrt().clamp(max=1.0)  # crop width and height as fractions of the side
    h = (area / ratio).sqrt().clamp(max=1.0)
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta.to(full.device), [n, c, size, size], align_corners=False)
    out = F.grid_sample(
        full.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out.round_().clamp_(0, 255).to(torch.uint8)


class FileImages(torch.utils.data.Dataset):
    """Image files decoded one at a time to stored squares (the DataLoader workers' job)."""

    def __init__(self, files: list[Path], store: int, mode: str):
        self.files, self.store, self.mode = files, store, mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.files[i]
        arr = fit_image(path.read_bytes(), self.store, self.mode, str(path))
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)


class StreamData:
    """A split too large for memory: files on disk, their labels, and the crop size.

    Behaves like TensorData where the code needs it (len, y, subset, image shape); small
    subsets (the search set, calibration images) are decoded into memory with `load()`.
    """

    def __init__(
        self, images: FileImages, index: torch.Tensor, y: torch.Tensor, size: int, workers: int = 0
    ):
        self.images, self.index, self.y = images, index, y
        self.size, self.workers = size, workers

    def __len__(self) -> int:
        return len(self.y)

    @property
    def shape(self) -> tuple[int, int, int]:
        channels = 1 if self.images.mode == "L" else 3  # fit_image converts every file to it
        return (channels, self.size, self.size)

    def subset(self, index: torch.Tensor) -> StreamData:
        return StreamData(self.images, self.index[index], self.y[index], self.size, self.workers)

    def full_batches(self, order: torch.Tensor, batch_size: int):
        """(positions, stored uint8 squares) per batch, decoded by DataLoader workers."""
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        loader = torch.utils.data.DataLoader(
            self.images,
            batch_sampler=[self.index[c].tolist() for c in chunks],
            num_workers=self.workers,
            persistent_workers=False,
        )
        yield from zip(chunks, loader)

    def load(self):
        """Decode into memory (for small subsets), with the same crops as the stream."""
        if not len(self):
            return TensorData(torch.zeros(0, *self.shape, dtype=torch.uint8), self.y)
        parts = [x for _, x in self.full_batches(torch.arange(len(self)), 256)]
        return TensorData.cropped(torch.cat(parts), self.y, self.size)
