#!/usr/bin/env bash
# Issue "Beyond one VGG": trained resnet20 and mobilenetv2 (width 0.5) baselines on CIFAR-10, the
# defaults checked on them, and the expert comparison, with the vgg14 scripts and table generators.
#
# Usage:
#   bash benchmarks/beyond_vgg.sh train ARCH [EPOCHS]          ARCH: resnet20 | mobilenetv2
#       trains into runs/beyond-vgg/base-ARCH (resumes an interrupted run, or one whose
#       train_state.pt was committed in benchmarks/results/beyond-vgg/baselines/ARCH/unfinished/);
#       copy model.pt and train.json to benchmarks/results/beyond-vgg/baselines/ARCH/ to commit
#   [SMOEA_EPOCHS=E] bash benchmarks/beyond_vgg.sh defaults ARCH TARGET SEEDS "VARIANTS"
#       TARGET: macs:R | params:R; VARIANTS from: default per-group level bits
#       default: counts genome, `fronts`, E final epochs (E = 9, the vgg14 check's budget,
#       unless SMOEA_EPOCHS says less); per-group: 1 epoch after each group but the last and
#       the rest of the E at the end; level: `--budget level`; bits: `--genome bits`. Runs go
#       to runs/beyond-vgg/ARCH/defaults[-Ee]/VARIANT/<target>/runs; finished runs committed in
#       benchmarks/results/beyond-vgg/ARCH/defaults[-Ee]/VARIANT/<target>/runs are copied
#       there first and reused. When E equals the number of groups, per-group is the expert
#       comparison's smoea schedule, and its finished smoea runs are reused (same settings).
#   bash benchmarks/beyond_vgg.sh compare ARCH TARGET SEEDS METHODS
#       the expert comparison (benchmarks/expert_compare.sh: 1 epoch after each group, 1 at the
#       end, the same for every method) into runs/beyond-vgg/ARCH/compare/<target>/runs;
#       finished runs committed in benchmarks/results/beyond-vgg/ARCH/compare/<target>/runs
#       are copied there first and reused.
# Tables: python benchmarks/expert_table.py DIR/runs PARAMS MACS. Finished runs are reused
# (compare --resume). Run nothing else meanwhile: search and fine-tune seconds are timed.
set -euo pipefail
here=$(dirname "$0")
what=${1:?train, defaults or compare}
arch=${2:?resnet20 or mobilenetv2}
case $arch in
  resnet20) width=1.0 ;;
  mobilenetv2) width=0.5 ;;
  *) echo "ARCH must be resnet20 or mobilenetv2" >&2; exit 2 ;;
esac
runs=runs/beyond-vgg

default_groups() {  # how many groups a prune of ARCH makes by default (one per stage)
  python -c "import torch; from smoea.models import build_model, make_arch
from smoea.structure import Structure, plan_groups
m = build_model(make_arch('$arch', $width, 10, 3, 32))
print(len(plan_groups(Structure(m, torch.randn(1, 3, 32, 32)), None)))"
}
carry() {  # finished runs committed by an earlier session (runs/ does not survive a new
           # machine): copy folder $1 to $2/runs unless $2/runs exists
  if [[ ! -d $2/runs && -d $1 ]]; then
    mkdir -p "$2" && cp -r "$1" "$2/runs"
  fi
}
export SMOEA_BASELINE=$here/results/beyond-vgg/baselines/$arch/model.pt

case $what in
  train)
    out=$runs/base-$arch
    # an unfinished training committed by an earlier session (runs/ does not survive a new
    # machine; the small state does, in git): continue from it
    carried=$here/results/beyond-vgg/baselines/$arch/unfinished/train_state.pt
    if [[ ! -f $out/train_state.pt && -f $carried ]]; then
      mkdir -p "$out" && cp "$carried" "$out/"
    fi
    resume=()
    [[ -f $out/train_state.pt ]] && resume=(--resume)
    smoea train --model "$arch" --width "$width" --dataset cifar10 \
      --data ../shared/data/cifar10-jpeg.tar.gz --epochs "${3:-30}" --seed 0 --out "$out" \
      "${resume[@]}" ;;
  defaults)
    target=${3:?TARGET} seeds=${4:?SEEDS}
    epochs=${SMOEA_EPOCHS:-9}
    groups=$(default_groups)
    name=defaults
    if [[ $epochs != 9 ]]; then name=defaults-${epochs}e; fi
    for variant in ${5:?VARIANTS}; do
      flags=(--genome counts --budget fronts --finetune-epochs 0 --final-epochs "$epochs")
      case $variant in
        default) ;;
        per-group) if (( epochs < groups )); then
                     echo "per-group needs SMOEA_EPOCHS >= $groups (one per group)" >&2; exit 2
                   fi
                   flags=(--genome counts --budget fronts --finetune-epochs 1
                          --final-epochs $((epochs - groups + 1))) ;;
        level) flags+=(--budget level) ;;
        bits) flags+=(--genome bits) ;;
        *) echo "unknown variant $variant" >&2; exit 2 ;;
      esac
      out=$runs/$arch/$name/$variant/${target/:/-}
      carry "$here/results/beyond-vgg/$arch/$name/$variant/${target/:/-}/runs" "$out"
      if [[ $variant == per-group ]] && (( epochs == groups )); then
        for seed in ${seeds//,/ }; do
          for run in {"$here/results/beyond-vgg","$runs"}/$arch/compare/${target/:/-}/runs/smoea-seed$seed.json; do
            if [[ -f $run && ! -f $out/runs/smoea-seed$seed.json ]]; then
              mkdir -p "$out/runs" && cp "$run" "$out/runs/"
            fi
          done
        done
      fi
      bash "$here/expert_compare.sh" "$runs/$arch/$name/$variant" "$target" "$seeds" smoea \
        "${flags[@]}"
    done ;;
  compare)
    target=${3:?TARGET}
    # finished runs committed by an earlier session (runs/ does not survive a new machine)
    carry "$here/results/beyond-vgg/$arch/compare/${target/:/-}/runs" \
      "$runs/$arch/compare/${target/:/-}"
    bash "$here/expert_compare.sh" "$runs/$arch/compare" "$target" "${4:?SEEDS}" \
      "${5:?METHODS}" --genome counts --budget fronts ;;
  *) echo "first argument: train, defaults or compare" >&2; exit 2 ;;
esac
