#!/usr/bin/env bash
# Issue "Real speed", item 6: the latency table and one comparison at batch 256 on a lent GPU,
# timed with CUDA events (smoea.latency times a GPU burst between two events on the stream), as
# one prepared script. It starts from the committed resnet20 baseline (86.22% test,
# benchmarks/results/beyond-vgg/baselines/resnet20) and runs `smoea compare --target-latency
# 0.6 --latency-batch 256`: SMOEA with the latency target, SMOEA with the MAC target that
# measures there, halp and sensitivity, each brought to the same measured latency (within 3%),
# seed 0, 3 final fine-tune epochs. Prints the table's build line, compare.md and the seconds.
#
# Usage: bash benchmarks/latency_gpu.sh ARCHIVE OUT [full|tiny]
#   full (default): --device cuda, batch 256; not run yet (no GPU lent while it was written), so
#     its device minutes are not known. ARCHIVE must travel with the working tree (the device
#     machine reaches nothing else): copy it under runs/ and name it in the run tool's carry.
#   tiny: --device cpu, batch 8, a 1-epoch resnet20 on 1,200 of the images as the baseline, a
#     1-generation search and 1 fine-tune epoch: checks the script end to end on a CPU; its accuracies and times mean nothing.
set -euo pipefail
archive=${1:?ARCHIVE}
out=${2:?OUT}
scale=${3:-full}
here=$(dirname "$0")
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
if [[ $scale == tiny ]]; then
  archive=$(python "$here/cifar_subset.py" "$archive" "$out/subset" 100 20)  # 1,000 + 200 images
  device=cpu batch=8
  search=(--effort fixed --pop-size 4 --generations 1 --search-size 100 --calibration-images 32)
  epochs=1
  # the committed baseline's validation split (5,000 images) does not fit the subset: a
  # 1-epoch resnet20 trained on it stands in
  base=$out/base/model.pt
  [[ -f $base ]] || python -m smoea train --model resnet20 --dataset cifar10 --data "$archive" \
    --epochs 1 --batch-size 256 --val-size 200 --seed 0 --device cpu --out "$out/base" --force \
    2>"$out/base.log"
else
  device=cuda batch=256
  base=$here/results/beyond-vgg/baselines/resnet20/model.pt
  search=(--calibration-images 128)
  epochs=3
fi
start=$(date +%s)
python -m smoea compare --checkpoint "$base" \
  --dataset cifar10 --data "$archive" --device "$device" --seed 0 \
  --target-latency 0.6 --latency-batch "$batch" --methods smoea,smoea-macs,halp,sensitivity \
  --seeds 0 --genome counts --budget fronts --finetune-epochs 0 --final-epochs "$epochs" \
  "${search[@]}" --out "$out/compare" --force 2>"$out/compare.log"
grep -a "latency table" "$out/compare.log" | tail -2 || true
cat "$out/compare/compare.md"
echo "seconds: $(( $(date +%s) - start ))"
