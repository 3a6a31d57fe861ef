#!/usr/bin/env bash
# Issue "Your model, your photos, your GPUs": one process against two torchrun processes (gloo),
# the same small prune of the shared vgg14 w0.5 baseline. On this 2-core CPU one process uses
# both cores (2 threads) and each of the two processes one, so no speed-up is expected: this
# measures what the process group costs. Run nothing else meanwhile.
#
# Usage: bash benchmarks/torchrun_time.sh RUNS_DIR
set -euo pipefail
runs=${1:?RUNS_DIR}
base=../shared/baselines/vgg14-w05-cifar10/model.pt
data=../shared/data/cifar10-jpeg.tar.gz
flags=(prune --checkpoint $base --dataset cifar10 --data $data --target-params 0.1656
  --pop-size 16 --generations 4 --search-size 1024 --calibration-images 128 --finetune-epochs 0
  --final-epochs 1 --seed 0 --device cpu --force)
t0=$(date +%s.%N)
OMP_NUM_THREADS=2 python -m smoea "${flags[@]}" --out "$runs/one" > "$runs/one.log" 2>&1
t1=$(date +%s.%N)
OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 -m smoea "${flags[@]}" \
  --out "$runs/two" > "$runs/two.log" 2>&1
t2=$(date +%s.%N)
python - "$runs" "$t0" "$t1" "$t2" <<'PY'
import json, sys
from pathlib import Path
runs, t0, t1, t2 = Path(sys.argv[1]), *map(float, sys.argv[2:])
for name, secs in (("one", t1 - t0), ("two", t2 - t1)):
    r = json.loads((runs / name / "report.json").read_text())
    print(json.dumps({
        "processes": r["processes"], "seconds": round(secs, 1),
        "search_seconds": round(sum(g["seconds"] for g in r["groups"]), 1),
        "final_finetune_seconds": round(r["final_finetune"]["seconds"], 1),
        "filters_after": [g["filters_after"] for g in r["groups"]],
        "test_accuracy": r["pruned"]["test_accuracy"], "params": r["pruned"]["params"],
    }))
PY
