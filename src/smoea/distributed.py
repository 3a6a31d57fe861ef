"""Several processes through torchrun: ranks share every population and every batch.

`torchrun --nproc-per-node N -m smoea prune ...` starts N copies. Each scores its share of
every population (the scores are gathered, so every rank runs NSGA-II identically), and
fine-tuning runs DistributedDataParallel with each rank on its shard of every batch. Only
rank 0 writes files and prints. gloo on CPUs, NCCL on GPUs (one per rank, by LOCAL_RANK).
BatchNorm statistics during fine-tuning come from each rank's shard (plain DDP), so results
match one process up to that and to float order.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
import torch.distributed as dist


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world() > 1 else 0


def is_main() -> bool:
    return rank() == 0


def init() -> bool:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); silence the other
    ranks' output. Returns whether this process is part of a group."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    if not is_main():
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process' life
    return True


def close() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """This rank's GPU under torchrun; the CPU stays the CPU."""
    if device.type == "cuda" and world() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def my_share(n: int) -> np.ndarray:
    """The positions of an n-long population this rank scores (contiguous, in rank order)."""
    return np.array_split(np.arange(n), world())[rank()]


def gathered(values: list) -> list:
    """Every rank's list, concatenated in rank order (the population's order)."""
    parts: list = [None] * world()
    dist.all_gather_object(parts, values)
    return [v for part in parts for v in part]


def my_rows() -> slice:
    """This rank's rows of a global batch (its shard of the batch order)."""
    return slice(rank(), None, world())
