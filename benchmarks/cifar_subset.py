"""A small image-folder tree from the CIFAR-10 JPEG archive, for the GPU scripts' tiny CPU runs.

Usage: python benchmarks/cifar_subset.py ARCHIVE OUT TRAIN_PER_CLASS TEST_PER_CLASS
Writes OUT/train/<class>/*.jpg and OUT/test/<class>/*.jpg (the first images of each class in
the archive's order) and prints OUT.
"""

import sys
import tarfile
from collections import Counter
from pathlib import Path


def main() -> None:
    archive, out, per_train, per_test = sys.argv[1], Path(sys.argv[2]), *map(int, sys.argv[3:5])
    limit = {"train": per_train, "test": per_test}
    taken: Counter = Counter()
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = Path(member.name).parts
            split = next((p for p in parts if p in limit), None)
            if not member.isfile() or split is None or len(parts) < 3:
                continue
            label = parts[-2]
            if taken[split, label] >= limit[split]:
                continue
            taken[split, label] += 1
            target = out / split / label / parts[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
    print(out)


if __name__ == "__main__":
    main()
