#!/usr/bin/env bash
# Issue "The search must earn its place": full prune runs of the shared vgg14 w0.5 baseline with
# the old default (heavy-late, no calibration), calibration alone, and calibration with the
# `fronts` allocation, at --target-params 0.1656 and --target-macs 0.3.
#
# Usage: bash benchmarks/search_earns.sh RUNS_DIR [SEEDS] [CALIBRATION_IMAGES] [CONFIGS] [TARGETS]
#   e.g. bash benchmarks/search_earns.sh runs/earn "0" 256 "fronts old calib" "params macs"
# A finished run (its model.pt exists) is skipped, so the script resumes where it stopped; an
# interrupted one continues with --resume. Run nothing else meanwhile (search seconds are timed).
set -euo pipefail
runs=${1:?RUNS_DIR}
seeds=${2:-0}
calib=${3:-128}
configs=${4:-fronts old calib}
targets=${5:-params macs}
base=../shared/baselines/vgg14-w05-cifar10/model.pt
data=../shared/data/cifar10-jpeg.tar.gz

for seed in $seeds; do
  for target in $targets; do
    for config in $configs; do
      case $config in
        old) flags="--budget heavy-late --calibration-images 0" ;;
        calib) flags="--budget heavy-late --calibration-images $calib" ;;
        fronts) flags="--budget fronts --calibration-images $calib" ;;
      esac
      case $target in
        params) tflag="--target-params 0.1656" ;;
        macs) tflag="--target-macs 0.3" ;;
      esac
      out=$runs/$config-$target-seed$seed
      if [[ -f $out/model.pt ]]; then echo "done: $out"; continue; fi
      if [[ -f $out/prune_state.pt ]]; then
        smoea prune --resume "$out"
      else
        # shellcheck disable=SC2086
        smoea prune --checkpoint $base --dataset cifar10 --data $data $tflag $flags \
          --seed "$seed" --out "$out"
      fi
    done
  done
done
