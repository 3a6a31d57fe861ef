"""Streaming photos: peak memory and images per second of the data pipeline against the model step.

Usage: python benchmarks/streaming.py PHOTOS [--image-size 224 --workers 2 --batch 64]
Streams one epoch of training batches (random-resized crops, normalised) from PHOTOS with a
tiny memory budget (so it always streams), then times torchvision resnet18's training step at
the same size. Prints both rates and the peak resident memory of this process plus that of its
largest worker.
Run nothing else meanwhile.
"""

import argparse
import json
import resource
import time

import torch
import torchvision

from smoea.data import batches, load_splits


def peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + workers) / 1024


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("photos")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--model-steps", type=int, default=5)
    a = p.parse_args()
    splits = load_splits(
        "imagefolder",
        a.photos,
        val_size=100,
        image_size=a.image_size,
        memory_budget="1MB",
        workers=a.workers,
    )
    assert splits.storage == "stream"
    gen = torch.Generator().manual_seed(0)
    start, seen = time.perf_counter(), 0
    for x, _ in batches(splits.train, a.batch, splits.mean, splits.std, torch.device("cpu"), gen):
        seen += len(x)
    data_rate = seen / (time.perf_counter() - start)
    data_peak = peak_mb()
    model = torchvision.models.resnet18(num_classes=splits.num_classes).to(
        memory_format=torch.channels_last
    )
    opt = torch.optim.SGD(model.parameters(), 0.01, momentum=0.9)
    x = torch.randn(32, 3, a.image_size, a.image_size).contiguous(memory_format=torch.channels_last)
    y = torch.zeros(32, dtype=torch.long)
    for step in range(a.model_steps + 1):
        if step == 1:
            start = time.perf_counter()  # the first step warms up
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model_rate = 32 * a.model_steps / (time.perf_counter() - start)
    print(
        json.dumps(
            {
                "photos": len(splits.train) + len(splits.val) + len(splits.test),
                "image_size": a.image_size,
                "workers": a.workers,
                "data_images_per_second": round(data_rate, 1),
                "resnet18_train_images_per_second": round(model_rate, 1),
                "peak_memory_mb_data": round(data_peak),
                "peak_memory_mb_with_model_step": round(peak_mb()),
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
