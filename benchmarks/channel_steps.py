"""Do output channels cost in steps? One 3x3 convolution timed at every even channel count.

Usage: python benchmarks/channel_steps.py [BATCH]   (default 64)

A 3x3 convolution with 64 input and 64 output channels at 16x16 (a vgg14 w0.5 middle layer),
timed as the latency table times it (smoea.latency.measure: interleaved rounds, each divided by
the machine's speed) at output counts 36-64 with the input at 64, then at input counts 36-64
with the output at 64. Prints ms and ms per channel relative to 64 channels. The evidence for
the latency table's step-shaped output axis (format 5). Run it with nothing else running.
"""

import sys

import torch
import torch.nn as nn

from smoea import latency
from smoea.latency import Probe

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 64
conv = nn.Conv2d(64, 64, 3, padding=1)
counts = list(range(36, 65, 2))
cpu = torch.device("cpu")
print(f"batch {batch}, torch {torch.__version__}, {torch.get_num_threads()} threads")
for axis in ("output", "input"):
    probes = [
        Probe(conv, (64, 16, 16), *((1.0, c / 64) if axis == "output" else (c / 64, 1.0)))
        for c in counts
    ]
    ms = latency.measure(probes, batch, cpu, (3, 32, 32))
    print(f"\n| {axis} channels | ms | ms per channel, relative to 64 |\n|---|---|---|")
    for c, t in zip(counts, ms):
        print(f"| {c} | {t:.3f} | {t / ms[-1] * 64 / c:.3f} |")
