#!/usr/bin/env bash
# The paper's comparison at the CPU tier: vgg14 width 0.5 (the 30-epoch baseline of
# vgg14_cifar10.sh), the CIFAR-10 JPEG archive, target 16.56% of the parameters.
# Usage: bash benchmarks/compare_vgg14.sh [RUNS_DIR] [extra compare flags...]
# Every method gets SMOEA's fine-tuning schedule; the flags below shorten the final fine-tune to
# 1 epoch (5 epochs in all) so that the comparison fits a 2-core CPU session. Finished runs are
# kept in OUT/runs; add --resume to continue after an interruption.
set -euo pipefail
runs=${1:-runs}
shift || true
data=${SMOEA_DATA:-../shared/data/cifar10-jpeg.tar.gz}
methods=${METHODS:-smoea,l1,whole-nsga2}
smoea compare --checkpoint "$runs/base-w05/model.pt" --dataset cifar10 --data "$data" \
  --target-params 0.1656 --methods "$methods" --seeds 0,1 --finetune-epochs 1 --final-epochs 1 \
  --out "$runs/compare-w05" "$@" 2> "$runs/compare-w05.log"
