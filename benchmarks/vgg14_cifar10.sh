#!/usr/bin/env bash
# The CPU benchmark: a 30-epoch vgg14 (width 0.5) baseline on the CIFAR-10 JPEG archive,
# then SMOEA with the default search settings down to 16.56% of the parameters.
# Usage: bash benchmarks/vgg14_cifar10.sh [RUNS_DIR] [extra prune flags...]
set -euo pipefail
runs=${1:-runs}
shift || true
data=${SMOEA_DATA:-../shared/data/cifar10-jpeg.tar.gz}
if [ ! -f "$runs/base-w05/model.pt" ]; then
  smoea train --model vgg14 --width 0.5 --dataset cifar10 --data "$data" --epochs 30 --seed 0 \
    --out "$runs/base-w05" 2> "$runs/base-w05.log"
fi
name=${PRUNE_NAME:-pruned-w05}
smoea prune --checkpoint "$runs/base-w05/model.pt" --dataset cifar10 --data "$data" \
  --target-params 0.1656 --seed 0 --out "$runs/$name" --force "$@" 2> "$runs/$name.log"
smoea evaluate --checkpoint "$runs/$name/model.pt" --dataset cifar10 --data "$data" --json
python benchmarks/summarize.py "$runs/base-w05" "$runs/$name"
