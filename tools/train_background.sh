#!/usr/bin/env bash
# Keep training the shipped model in the background while the machine is otherwise idle.
#
#   tools/train_background.sh [MINUTES] [THREADS]      (defaults: 150 minutes, 1 thread)
#   CROP=256 BATCH=4 NICE=5 tools/train_background.sh   (environment: crop size, batch, niceness, LR,
#                                                        RATE_LR: r_global's learning-rate multiple,
#                                                        ETA: the trained η range, e.g. 0.05,0.8; unset:
#                                                        the resumed checkpoint's; OUT: the run folder,
#                                                        default runs/train_small; RATE_SLOPE: re-spread
#                                                        the rate response on a fresh start, e.g. 0.5;
#                                                        CONFIG: the network, default small)
#   OUT=runs/train_anneal LR=3e-5 tools/train_background.sh 75 2
#                                                       (a fork: copy runs/train_small/last.pt into the
#                                                        new folder first; it resumes from there and the
#                                                        main run's folder stays as it was)
#
# Resumes runs/train_small/last.pt when it exists (model, EMA, optimiser, step), else starts from
# the shipped weights/ntscc_plus_small.safetensors (the step count goes on from its metadata) and
# keeps its rate response as shipped; RATE_SLOPE=0.5 re-spreads it to r_global,λ ∝ λ^-1/2 instead
# (--rate-slope; ignored on resume: it would move the held knots of a fresh clone's run). r_global
# is held (--rate-lr-mult 0, RATE_LR=0) since step 39 098: the loss cannot see what more symbols
# buy (the rate quantiser is not differentiable), and at the base rate (RATE_LR=1, steps
# 27 400-37 600) its knots drifted together and out of order (tools/rate_response.py).
# Runs under nohup at low priority and returns at once; the progress is in runs/train_small.log,
# the per-step log in runs/train_small/log.csv. The candidate (float16 EMA weights) is exported
# to runs/train_small/candidate.safetensors at every checkpoint; ship it only through
# tools/promote_candidate.py, which evaluates it on Kodak against the shipped model.
# Stop early with: kill "$(cat runs/train_small/train.pid)"  (it finishes the step, checkpoints
# and exports the candidate; without a signal it checkpoints every 200 steps).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-150}; THREADS=${2:-1}
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/train_small}
mkdir -p "$OUT"
nohup nice -n "${NICE:-10}" "$PY" -m core.cli train --config "${CONFIG:-small}" --out "$OUT" \
  --init-from weights/ntscc_plus_small.safetensors --stage-steps 2500,1500,1000000 \
  --batch "${BATCH:-8}" --crop "${CROP:-128}" --threads "$THREADS" --lr "${LR:-1e-4}" --dist-scale 0.04 \
  ${RATE_SLOPE:+--rate-slope "$RATE_SLOPE"} --rate-lr-mult "${RATE_LR:-0}" --flat-fraction "${FLAT:-0.05}" \
  ${ETA:+--eta-range "$ETA"} --max-minutes "$MINUTES" --ckpt-every 200 >> "$OUT.log" 2>&1 &
echo "training in the background (pid $!): tail -f $OUT.log"
