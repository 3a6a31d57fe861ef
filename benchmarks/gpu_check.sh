#!/usr/bin/env bash
# Issue "Your model, your photos, your GPUs": the one prepared GPU check. The resnet18 prune of
# benchmarks/results/streaming (torchvision resnet18 trained from scratch on 2,000 photos at 224 px,
# pruned to half its MACs, streamed from disk) with --device cuda, timed, plus its peak GPU memory.
#
# Usage: bash benchmarks/gpu_check.sh ARCHIVE OUT_DIR
#   ARCHIVE: the CIFAR-10 JPEG archive (../shared/data/cifar10-jpeg.tar.gz); carry it or a
#   photos folder to the device machine, which reaches no other host.
# Prints one JSON line with the seconds and the report's figures; the report stays in OUT_DIR.
set -euo pipefail
archive=${1:?ARCHIVE}
out=${2:?OUT_DIR}
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
[[ -d $out/photos2k ]] || python benchmarks/make_photos.py "$archive" "$out/photos2k" 2000
start=$(date +%s.%N)
python -m smoea prune --model torchvision:resnet18 --data "$out/photos2k" --image-size 224 \
  --memory-budget 64MB --workers 4 --target-macs 0.5 --train-epochs 2 --pop-size 8 \
  --generations 3 --search-size 64 --calibration-images 32 --finetune-epochs 0 --final-epochs 1 \
  --batch-size 32 --val-size 200 --seed 0 --device cuda --out "$out/prune" --force
end=$(date +%s.%N)
python - "$out/prune/report.json" "$start" "$end" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["pruned"]
print(json.dumps({"seconds": round(float(sys.argv[3]) - float(sys.argv[2]), 1),
                  "search_seconds": round(sum(g["seconds"] for g in r["groups"]), 1),
                  "macs": p["macs"], "params": p["params"], "test_accuracy": p["test_accuracy"]}))
PY
