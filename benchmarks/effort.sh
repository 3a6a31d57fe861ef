#!/usr/bin/env bash
# Issue "Search where the cuts are": the default prune of the shared vgg14 w0.5 baseline with the
# search effort following the plan (--effort plan, the default) against every group searched
# pop x generations (--effort fixed, the old behaviour), one 9-epoch final cycle (the default
# schedule), at --target-params 0.1656 and --target-macs 0.3. Runs alternate between the two so
# that both see the same machine; finished runs are reused (compare --resume).
#
# Usage: bash benchmarks/effort.sh RUNS_DIR "RUN..."   each RUN is EFFORT:TARGET:SEED
#   e.g. bash benchmarks/effort.sh runs/effort "plan:params:0 fixed:params:1 plan:macs:0"
# Tables: python benchmarks/effort_table.py RUNS_DIR (or the committed copy in
# benchmarks/results/search-effort). Run nothing else meanwhile: search seconds are timed.
set -euo pipefail
runs=${1:?RUNS_DIR}
for run in ${2:?RUNS}; do
  IFS=: read -r effort target seed <<<"$run"
  bash "$(dirname "$0")/expert_compare.sh" "$runs/$effort" "$target" "$seed" smoea \
    --genome counts --budget fronts --finetune-epochs 0 --final-epochs 9 --effort "$effort"
done
