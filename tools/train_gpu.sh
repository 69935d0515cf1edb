#!/usr/bin/env bash
# Train the shipped NTSCC+ model on a CUDA machine for a wall-clock budget, then stop cleanly.
#
#   tools/train_gpu.sh OUT_DIR [MINUTES] [extra `ntscc-xr train` options...]
#
# Needs only python3 with PyTorch, numpy and safetensors: no GNU Radio, no project install (it runs
# `python3 -m core.cli train` from the repository root). Resumes from the shipped weights (or from
# INIT=path.safetensors), trains with bf16 autocast, channels-last and a large batch of 256² crops,
# and writes to OUT_DIR: candidate.safetensors (float16 EMA weights, < 16 MB), log.csv, curves.png
# (when matplotlib is there), command.txt. Training data: DATA (default runs/gpu/train_pack.npz,
# made here by `tools/pack_train_data.py`, because the photos do not fit a device call; a folder of
# photos works where Pillow is installed). Evaluate the candidate afterwards with
# `tools/promote_candidate.py OUT_DIR/candidate.safetensors`.
#
# Environment: DATA, INIT, BATCH (32), CROP (256), LR (1e-4), DEVICE (cuda), PYTHON (python3),
# RATE_SLOPE (unset: keep the rate response of INIT; 0.5: re-spread r_global,λ ∝ λ^-1/2 first,
# for weights trained with a flat one), RATE_LR (0: r_global held, as in the CPU run since step
# 39 098; 1: it learns at the base rate), ETA (unset: the η range INIT was trained on, from its
# config; e.g. 0.05,0.8).
# To go on from the CPU run, carry its candidate: INIT=runs/train_small/candidate.safetensors.
# On CPU (for the test) pass DEVICE=cpu with a tiny budget.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
OUT_DIR=$1; MINUTES=${2:-9}; shift; [ $# -gt 0 ] && shift
PYTHON=${PYTHON:-python3}
DATA=${DATA:-runs/gpu/train_pack.npz}
INIT=${INIT:-weights/ntscc_plus_small.safetensors}
if [ ! -e "$DATA" ]; then
  echo "train_gpu.sh: training data $DATA not found; make it with: .venv/bin/python tools/pack_train_data.py --out $DATA" >&2
  exit 2
fi
RUN=$(mktemp -d "${TMPDIR:-/tmp}/ntscc_gpu_run.XXXXXX")
mkdir -p "$OUT_DIR"
"$PYTHON" -m core.cli train --config small --data "$DATA" --out "$RUN" --init-from "$INIT" \
  --export "$OUT_DIR/candidate.safetensors" --device "${DEVICE:-cuda}" --amp bf16 \
  --batch "${BATCH:-32}" --crop "${CROP:-256}" --lr "${LR:-1e-4}" --dist-scale 0.04 \
  --stage-steps 2500,1500,1000000 --max-minutes "$MINUTES" --ckpt-every 500 --rate-lr-mult "${RATE_LR:-0}" \
  --flat-fraction "${FLAT:-0.05}" \
  ${RATE_SLOPE:+--rate-slope "$RATE_SLOPE"} ${ETA:+--eta-range "$ETA"} "$@"
cp "$RUN/log.csv" "$RUN/command.txt" "$OUT_DIR/"
[ -e "$RUN/curves.png" ] && cp "$RUN/curves.png" "$OUT_DIR/"
echo "train_gpu.sh: wrote $OUT_DIR/candidate.safetensors ($(tail -n 1 "$OUT_DIR/log.csv" | cut -d, -f1) steps in all)"
