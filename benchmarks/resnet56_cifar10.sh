#!/usr/bin/env bash
# Issue 5's benchmark: resnet56 on the CIFAR-10 JPEG archive pruned to half its MACs, with the
# accuracy, parameters, MACs and CPU latency (batch 1 and 64) before and after.
# Usage: bash benchmarks/resnet56_cifar10.sh [RUNS_DIR] [BASELINE_EPOCHS] [extra prune flags...]
# (not run yet on this project's 2-core CPU: a resnet56 epoch there is the limiting cost)
set -euo pipefail
runs=${1:-runs}
epochs=${2:-30}
shift 2 || shift $# || true
data=${SMOEA_DATA:-../shared/data/cifar10-jpeg.tar.gz}
if [ ! -f "$runs/base-r56/model.pt" ]; then
  smoea train --model resnet56 --dataset cifar10 --data "$data" --epochs "$epochs" --seed 0 \
    --out "$runs/base-r56" 2> "$runs/base-r56.log"
fi
smoea prune --checkpoint "$runs/base-r56/model.pt" --dataset cifar10 --data "$data" \
  --target-macs 0.5 --seed 0 --out "$runs/pruned-r56" --force "$@" 2> "$runs/pruned-r56.log"
python benchmarks/latency.py "$runs/base-r56/model.pt" "$runs/pruned-r56/model.pt"
python benchmarks/summarize.py "$runs/base-r56" "$runs/pruned-r56"
