#!/usr/bin/env bash
# Issue 2: population size against generations at one evaluation budget (480 candidates a group),
# by full prune runs of the vgg14 w0.5 baseline to 16.56% of the parameters. Fine-tuning is the
# comparison's shortened schedule (1 epoch after each group but the last, 1 final epoch), so the
# default pop 24 x 20 is the `smoea` seed-0 run of compare_vgg14.sh (same flags, same seed).
# Usage: bash benchmarks/pop_gen.sh [RUNS_DIR] [SETTINGS...]   settings as POPxGEN, e.g. 12x40
set -euo pipefail
runs=${1:-runs}
shift || true
settings=${*:-12x40 48x10}
data=${SMOEA_DATA:-../shared/data/cifar10-jpeg.tar.gz}
for setting in $settings; do
  pop=${setting%x*}
  gen=${setting#*x}
  out="$runs/popgen-$setting"
  smoea prune --checkpoint "$runs/base-w05/model.pt" --dataset cifar10 --data "$data" \
    --target-params 0.1656 --seed 0 --pop-size "$pop" --generations "$gen" --finetune-epochs 1 --final-epochs 1 \
    --out "$out" --force 2> "$out.log"
  python - "$out/report.json" "$setting" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
evals = sum(g["evaluations"] for g in r["groups"])
print(f"{sys.argv[2]}: val {r['final_finetune']['val_accuracy']:.4f} "
      f"test {r['pruned']['test_accuracy']:.4f} params {r['pruned']['params']:,} "
      f"search {r['search_seconds']:.0f} s evaluations {evals} "
      f"chosen search-set error per group {[round(g['chosen'][0], 3) for g in r['groups']]}")
PY
done
