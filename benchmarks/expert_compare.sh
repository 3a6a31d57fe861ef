#!/usr/bin/env bash
# Issue "A comparison a pruning expert would accept": every method on the shared vgg14 w0.5
# 30-epoch baseline, at --target-params 0.1656 and at --target-macs 0.3, with the comparison's
# schedule (1 epoch after each of groups 1-4, 1 final epoch: 5 in all, the same for every method).
#
# Usage: bash benchmarks/expert_compare.sh RUNS_DIR TARGET SEEDS METHODS [extra smoea flags...]
#   TARGET: params | macs (16.56% / 30%) or params:R | macs:R;  SEEDS: e.g. 0,1,2;
#   METHODS: as smoea compare --methods.  SMOEA_BASELINE=path/model.pt starts from another
#   baseline (default: the shared vgg14 w0.5); runs go to RUNS_DIR/<target, ':' as '-'>.
#   e.g. bash benchmarks/expert_compare.sh runs/expert params 0 \
#          smoea,random-at-smoea,l1-progressive,lamp,ratio-search --genome counts --budget fronts
# Runs that follow SMOEA (at-smoea, progressive, ratio-search's budget) need smoea in METHODS.
# Finished runs are kept in RUNS_DIR/<target>/runs and reused (--resume); a different setting
# goes to another RUNS_DIR. Run nothing else meanwhile: search seconds are reported.
set -euo pipefail
runs=${1:?RUNS_DIR}
target=${2:?params or macs}
seeds=${3:?SEEDS}
methods=${4:?METHODS}
shift 4
case $target in
  params) tflag=(--target-params 0.1656) ;;
  macs) tflag=(--target-macs 0.3) ;;
  params:*) tflag=(--target-params "${target#params:}") ;;
  macs:*) tflag=(--target-macs "${target#macs:}") ;;
  *) echo "TARGET must be params, macs, params:R or macs:R" >&2; exit 2 ;;
esac
base=${SMOEA_BASELINE:-../shared/baselines/vgg14-w05-cifar10/model.pt}
out=$runs/${target/:/-}
resume=()
[[ -d $out/runs ]] && resume=(--resume)
smoea compare --checkpoint "$base" --dataset cifar10 \
  --data ../shared/data/cifar10-jpeg.tar.gz "${tflag[@]}" --methods "$methods" --seeds "$seeds" \
  --finetune-epochs 1 --final-epochs 1 --calibration-images 128 --out "$out" "${resume[@]}" "$@"
