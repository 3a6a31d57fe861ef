#!/usr/bin/env bash
# Issue "Real speed", item 5: the methods at the same measured latency (smoea compare
# --target-latency brings each to it within 3%), on this CPU: SMOEA with the latency target
# (smoea), SMOEA with the MAC target that measures there (smoea-macs), halp, sensitivity, and
# the ablation l1-progressive (SMOEA's latency plan, one L1 ratio per group in place of the
# search: does NSGA-II earn its place on this cost?).
#
# Usage: [SMOEA_EPOCHS=E] [SMOEA_TAG=T] [SMOEA_FLAGS="..."] bash benchmarks/latency_evidence.sh ARCH BATCH SEEDS [R] [METHODS]
#   ARCH: vgg14 (the shared w0.5 30-epoch baseline) | resnet20 (the "Beyond one VGG" baseline)
#   BATCH: the latency batch (1: one request; 64: throughput); R: the latency target (default
#   0.6); SEEDS: e.g. 0,1,2; METHODS: default smoea,smoea-macs,halp,halp-taylor,halp-stem,
#   halp-steps,sensitivity,l1-progressive (halp-taylor since 2026-12-05: HALP with its own Taylor
#   importance; halp-steps and its one-step ablation halp-stem since the same day's third
#   session: HALP's schedule and its unpruned stem, as its code runs).
#   Fine-tuning: E epochs after the last group only (default 3; the vgg14 defaults check used
#   9), the same for every method, so the matching prunings land exactly where the runs do.
# Runs go to runs/latency-evidence/ARCH/bBATCH-rR (with each pruned model, to measure it again)
# and are reused (--resume); finished runs
# committed in benchmarks/results/latency-evidence/ARCH/bBATCH-rR/runs are copied there first;
# when it finishes, compare.md/.json and the run records are copied to that results folder.
# Run nothing else meanwhile: the latency table, the matching and every run are timed.
set -euo pipefail
here=$(dirname "$0")
arch=${1:?vgg14 or resnet20}
batch=${2:?BATCH}
seeds=${3:?SEEDS}
r=${4:-0.6}
methods=${5:-smoea,smoea-macs,halp,halp-taylor,halp-stem,halp-steps,sensitivity,l1-progressive}
epochs=${SMOEA_EPOCHS:-3}
case $arch in
  vgg14) base=../shared/baselines/vgg14-w05-cifar10/model.pt ;;
  resnet20) base=$here/results/beyond-vgg/baselines/resnet20/model.pt ;;
  *) echo "ARCH must be vgg14 or resnet20" >&2; exit 2 ;;
esac
name=b$batch-r$r
if [[ $epochs != 3 ]]; then name=$name-${epochs}e; fi
# SMOEA_TAG names a set of runs kept apart (say, another machine: measured latency is the
# machine's own, so a cell's seeds belong on one machine)
name=$name${SMOEA_TAG:+-$SMOEA_TAG}
# SMOEA_FLAGS: more `smoea compare` flags (they override the ones above), e.g. a variant of
# SMOEA's settings ("--budget fronts"); give such runs their own SMOEA_TAG. The budget rule is
# the default's (`auto`: `level` at a latency target) since 2026-12-04; the cells before it
# (b1-r0.8, b1-r0.8-epyc, b1-r0.8-epyc-f6) ran `--budget fronts`, b1-r0.8-epyc-f6-level
# `--budget level` given as SMOEA_FLAGS (the same rule as auto there). Since then too the other
# methods are matched beside the seed's SMOEA model (`--latency-match smoea`, compare's
# default); every cell before the -pair ones was matched beside a fresh baseline: resume them
# with SMOEA_FLAGS="--latency-match baseline"
out=runs/latency-evidence/$arch/$name
kept=$here/results/latency-evidence/$arch/$name
if [[ ! -d $out/runs && -d $kept/runs ]]; then
  mkdir -p "$out" && cp -r "$kept/runs" "$out/runs"
fi
resume=()
[[ -d $out/runs ]] && resume=(--resume)
smoea compare --checkpoint "$base" --dataset cifar10 --data ../shared/data/cifar10-jpeg.tar.gz \
  --target-latency "$r" --latency-batch "$batch" --methods "$methods" --seeds "$seeds" \
  --genome counts --budget auto --finetune-epochs 0 --final-epochs "$epochs" \
  --calibration-images 128 --save-models --out "$out" "${resume[@]}" ${SMOEA_FLAGS:-}
mkdir -p "$kept/runs"
cp "$out/compare.md" "$out/compare.json" "$kept/"
cp "$out"/runs/*.json "$kept/runs/"
