#!/usr/bin/env bash
# Issue "Past the paper's 0.28" on a GPU: the recovery curve's fine-tunes (benchmarks/recovery.sh
# runs them one after another on the CPU, about 45-65 s an epoch) as concurrent `smoea train`
# processes on one GPU, most important first, under a deadline. The pruned models come from the
# CPU (recovery.sh's pruned-seed0, and `smoea compare --save-models --final-epochs 0` for the
# comparison's best method); the fine-tunes use recovery.sh's recipe (SGD, cosine, lr 0.01,
# batch 128, seed 0), with bf16 autocast on the GPU.
#
# Usage: bash benchmarks/recovery_gpu.sh DIR OUT [DEADLINE_S] [SLOTS]
#   DIR holds base.pt (the unpruned baseline), cifar10-jpeg.tar.gz, smoea.pt (SMOEA's model before
#   its final fine-tune) and l1p.pt (l1-progressive's); OUT receives results.tar (every finished
#   run's train.json and the end of its log, re-packed every 20 s so that a run cut short still
#   returns what finished) and the baseline's evaluation. Seconds per epoch are not comparable between runs:
#   the processes share the GPU; time-plain and time-distill (2 epochs each, run alone first)
#   measure the time the teacher adds.
set -uo pipefail
dir=${1:?DIR}
out=${2:?OUT}
deadline=${3:-500}
slots=${4:-8}
runs=/tmp/recovery-gpu
mkdir -p "$runs" "$out"
export SMOEA_CACHE=/tmp/smoea-cache OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 TQDM_DISABLE=1
recipe=(--dataset cifar10 --data "$dir/cifar10-jpeg.tar.gz" --lr 0.01 --schedule cosine --seed 0
  --device "${DEVICE:-cuda}")
start=$(date +%s)

# decode the archive once (every process then reads the cache) and evaluate the baseline
python3 -m smoea evaluate --checkpoint "$dir/base.pt" --data "$dir/cifar10-jpeg.tar.gz" \
  --device "${DEVICE:-cuda}" >"$out/baseline.txt" 2>&1 || { cat "$out/baseline.txt"; exit 1; }
echo "decoded and evaluated in $(( $(date +%s) - start )) s"; cat "$out/baseline.txt"

# the time distillation adds, with nothing else on the GPU: two epochs each, one after the other
for t in "" "--teacher $dir/base.pt"; do
  name=time-$([[ -n $t ]] && echo distill || echo plain)
  # shellcheck disable=SC2086
  python3 -m smoea train --from "$dir/smoea.pt" $t "${recipe[@]}" --epochs 2 \
    --out "$runs/$name" >"$runs/$name.log" 2>&1
  echo "$name exit $? at $(( $(date +%s) - start )) s"
done

# name | model | teacher (- for none) | epochs | extra flags; most important first
job_list=(
  "plain-30-seed0|smoea|-|30|" "distill-30-seed0|smoea|base|30|" "control-30-seed0|base|-|30|"
  "l1p-distill-30-seed0|l1p|base|30|"
  "plain-10-seed0|smoea|-|10|" "distill-10-seed0|smoea|base|10|" "control-10-seed0|base|-|10|"
  "l1p-distill-10-seed0|l1p|base|10|"
  "plain-20-seed0|smoea|-|20|" "distill-20-seed0|smoea|base|20|" "control-20-seed0|base|-|20|"
  "distillT2-10-seed0|smoea|base|10|--distill-temperature 2"
  "distillT8-10-seed0|smoea|base|10|--distill-temperature 8"
  "distillW05-10-seed0|smoea|base|10|--distill-weight 0.5"
  "plain-5-seed0|smoea|-|5|" "distill-5-seed0|smoea|base|5|" "control-5-seed0|base|-|5|"
  "l1p-plain-10-seed0|l1p|-|10|" "l1p-plain-30-seed0|l1p|-|30|"
)

run_job() {
  IFS='|' read -r name model teacher epochs extra <<<"$1"
  local t=()
  [[ $teacher != - ]] && t=(--teacher "$dir/$teacher.pt")
  # shellcheck disable=SC2086
  python3 -m smoea train --from "$dir/$model.pt" "${t[@]}" "${recipe[@]}" --epochs "$epochs" \
    $extra --out "$runs/$name" >"$runs/$name.log" 2>&1
  echo "$name exit $? at $(( $(date +%s) - start )) s"
}

pack() {  # every train.json, and the end of every log (the logs themselves can be large)
  for log in "$runs"/*.log; do
    [[ -f $log ]] && tail -c 3000 "$log" | tr '\r' '\n' | tail -n 8 >"${log%.log}.tail"
  done
  (cd "$runs" && tar cf "$out/.results.tar" --exclude='*.pt' --exclude='*.log' . 2>/dev/null) \
    && mv "$out/.results.tar" "$out/results.tar"
}

(while true; do pack; sleep 20; done) &
packer=$!
for job in "${job_list[@]}"; do
  while (( $(jobs -rp | wc -l) > slots )); do sleep 2; done  # the packer is one of them
  (( $(date +%s) - start > deadline - 60 )) && { echo "no time left to start ${job%%|*}"; break; }
  run_job "$job" &
  sleep 1
done
while (( $(jobs -rp | wc -l) > 1 )); do
  if (( $(date +%s) - start > deadline )); then
    echo "deadline: stopping what still runs"; pkill -f "smoea train"; sleep 3; break
  fi
  sleep 5
done
kill $packer 2>/dev/null
pack
nvidia-smi --query-gpu=name,memory.used --format=csv >"$out/gpu.txt" 2>&1
ls "$runs"/*/train.json 2>/dev/null | wc -l | xargs echo "finished runs:"
