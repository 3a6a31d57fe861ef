"""A folder of 'photos' for the streaming benchmarks: CIFAR-10 images upscaled to random sizes.

Usage: python benchmarks/make_photos.py ARCHIVE OUT N [--min 160 --max 320 --seed 0]
Writes OUT/train/<class>/*.jpg (90% of each class) and OUT/test/<class>/*.jpg, each resized to a
random width and height in [min, max] (JPEG quality 90).
"""

import argparse
import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("archive")
    p.add_argument("out")
    p.add_argument("n", type=int)
    p.add_argument("--min", type=int, default=160)
    p.add_argument("--max", type=int, default=320)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    out, made, per_class = Path(a.out), 0, {}
    quota = -(-a.n // 10)  # CIFAR-10: the same number from every class (the archive is sorted)
    with tarfile.open(a.archive) as tar:
        for member in tar:
            if made >= a.n:
                break
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 3 or parts[-3] != "train":
                continue
            seen = per_class.get(parts[-2], 0)
            if seen >= quota:
                continue
            per_class[parts[-2]] = seen + 1
            split = "train" if seen < 0.9 * quota else "test"
            folder = out / split / parts[-2]
            folder.mkdir(parents=True, exist_ok=True)
            image = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
            w, h = (int(v) for v in rng.integers(a.min, a.max + 1, 2))
            image.resize((w, h), Image.Resampling.BILINEAR).save(
                folder / f"{made:06d}.jpg", quality=90
            )
            made += 1
    print(f"{made} photos in {out}")


if __name__ == "__main__":
    main()
