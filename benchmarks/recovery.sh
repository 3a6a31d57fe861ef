#!/usr/bin/env bash
# Issue "Past the paper's 0.28": the recovery curve. SMOEA prunes the shared vgg14 w0.5 baseline
# once (default settings, --final-epochs 0: the model before its final fine-tune), then copies of
# that model are fine-tuned N epochs with the final fine-tune's recipe (SGD, cosine, lr 0.01),
# without and with distillation from the baseline; the control trains the unpruned baseline the
# same N extra epochs with the same recipe.
#
# Usage: bash benchmarks/recovery.sh RUNS_DIR [EPOCHS] [SEED] [KINDS] [extra prune flags...]
#   e.g. bash benchmarks/recovery.sh runs/recovery "5 10 20 30" 0 "plain distill control" \
#          --genome counts --budget fronts
# Finished steps (their model.pt exists) are skipped, so the script resumes where it stopped.
# Run nothing else meanwhile (the seconds with and without the teacher are compared).
set -euo pipefail
runs=${1:?RUNS_DIR}
epochs=${2:-5 10 20 30}
seed=${3:-0}
kinds=${4:-plain distill control}
shift $(( $# < 4 ? $# : 4 ))
base=../shared/baselines/vgg14-w05-cifar10/model.pt
data=../shared/data/cifar10-jpeg.tar.gz
recipe=(--dataset cifar10 --data $data --lr 0.01 --schedule cosine --seed "$seed")

pruned=$runs/pruned-seed$seed
if [[ ! -f $pruned/model.pt ]]; then
  if [[ -f $pruned/state.pt ]]; then
    smoea prune --resume "$pruned"
  else
    smoea prune --checkpoint $base --dataset cifar10 --data $data --target-params 0.1656 \
      --final-epochs 0 --seed "$seed" --out "$pruned" "$@"
  fi
fi
for n in $epochs; do
  for kind in $kinds; do
    out=$runs/$kind-$n-seed$seed
    if [[ -f $out/model.pt ]]; then echo "done: $out"; continue; fi
    resume=()
    [[ -f $out/train_state.pt ]] && resume=(--resume)
    case $kind in
      plain) smoea train --from "$pruned/model.pt" "${recipe[@]}" --epochs "$n" --out "$out" "${resume[@]}" ;;
      distill) smoea train --from "$pruned/model.pt" --teacher $base "${recipe[@]}" --epochs "$n" \
        --out "$out" "${resume[@]}" ;;
      control) smoea train --from $base "${recipe[@]}" --epochs "$n" --out "$out" "${resume[@]}" ;;
    esac
  done
done
python benchmarks/recovery_summary.py "$runs"
