#!/usr/bin/env bash
# Every evaluation and benchmark behind docs/results/, in one place, with the exact commands.
#   bash tools/run_evaluations.sh [STEP ...]     (default: all steps)
# On 2 cores, two lanes in parallel with one thread each finish in about half the time:
#   OMP_NUM_THREADS=1 bash tools/run_evaluations.sh rd_learned rd_merge roi edit bench &
#   OMP_NUM_THREADS=1 bash tools/run_evaluations.sh ceiling nu snr roi_edit edit_md fading demo loss
# Steps: rd_learned rd_merge ceiling nu snr roi roi_edit edit edit_md fading bench demo loss
# (and bench_idle, run alone). Afterwards `python tools/results_status.py` lists what is still
# stale (every model-dependent result records the model it was made with).
# Needs ../shared/data (Kodak) for rd/snr/edit/bench; everything else uses content in the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
R=docs/results
X=.venv/bin/ntscc-xr
mkdir -p "$R" runs/eval
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(rd_learned rd_merge ceiling nu snr roi roi_edit edit edit_md fading bench demo loss)
has() { for s in "${steps[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
log() { echo "+ $*" | tee -a "$R/commands.log"; "$@"; }

# The shipped model's training step names its Kodak sweep (a record, kept per step).
STEP=$(.venv/bin/python -c "from core.codec.provenance import weights_identity as w; print(w()['step'])")
LEARNED_RD="$R/rd_learned_step${STEP}_kodak_awgn10.json"
# Classical RD sources (slow, model-independent; rerun only when the classical chain changes):
#   ntscc-xr eval rd --schemes vvc+ldpc --vvc-preset medium --json $R/rd_vvc_ldpc_medium_kodak_awgn10.json
#   ntscc-xr eval rd --schemes vvc+capacity,jpeg+ldpc,j2k+ldpc --vvc-preset medium --json $R/rd_others_kodak_awgn10.json
#   ntscc-xr eval rd --schemes hevc+ldpc,av1+ldpc --vvc-preset medium --json $R/rd_hevc_av1_kodak_awgn10.json
if has rd_learned; then
  log $X eval rd --schemes compatible,ntscc+ --json "$LEARNED_RD"
fi
if has rd_merge; then
  log $X eval rd --schemes compatible,ntscc+,vvc+ldpc,vvc+capacity,hevc+ldpc,av1+ldpc,j2k+ldpc,jpeg+ldpc \
    --reuse "$LEARNED_RD,$R/rd_vvc_ldpc_medium_kodak_awgn10.json,$R/rd_others_kodak_awgn10.json,$R/rd_hevc_av1_kodak_awgn10.json" \
    --json "$R/rd_kodak_awgn10.json" --plot "$R/rd_kodak_awgn10.png" --table "$R/rd_kodak_awgn10.md"
fi
if has ceiling; then
  log .venv/bin/python tools/transform_ceiling.py --limit 4 --crop 256 --threads 1 --etas 0.1,0.2,0.4,0.8 \
    --markdown "$R/transform_ceiling_step${STEP}.md"
fi
if has nu; then
  log .venv/bin/python tools/nu_encoding_probe.py --markdown "$R/nu_encoding_probe.md"
fi
if has snr; then
  log $X eval snr --cbr 0.04 --limit 2 --schemes compatible,vvc+ldpc --lambdas 0.18,0.72 --etas 0.05,0.1,0.15,0.2,0.3 \
    --json "$R/snr_sweep_cbr004.json" --plot "$R/snr_sweep_cbr004.png"
fi
if has roi; then
  log $X eval roi --resolution 1024x512 --yaws 0,90,180,270 --json "$R/roi.json" --plot "$R/roi.png"
fi
if has roi_edit; then
  log $X eval roi --edit-steps 20 --limit 1 --yaws 0,180 --lambdas 0.18,0.72 --scales 0.2,0.4 \
    --json "$R/roi_edit.json" --plot "$R/roi_edit.png"
fi
if has edit_md; then
  log $X eval edit --limit 2 --lambdas 0.0483,0.18,0.72 --etas 0.1,0.3 --steps 20 --msssim-weight 2000 \
    --json "$R/ntscc_pp_edit_md.json" --plot "$R/ntscc_pp_edit_md.png"
fi
if has edit; then
  log $X eval edit --limit 4 --steps 20 --etas 0.2 --json "$R/ntscc_pp_edit.json" \
    --plot "$R/ntscc_pp_edit.png"
fi
if has fading; then
  log $X eval fading --frames 90 --cbr 0.04 --classical vvc+ldpc --json "$R/fading.json" \
    --plot "$R/fading.png"
fi
if has bench; then
  log $X bench --limit 4 --schemes compatible,vvc+ldpc,hevc+ldpc --json "$R/latency.json"
fi
if has bench_idle; then  # run alone (nothing else on the machine): 2 threads
  log $X bench --limit 4 --schemes compatible --threads 2 --json "$R/latency_learned_2threads.json"
fi
if has demo; then
  for run in awgn:512x256 trace:512x256 awgn:1024x512; do
    ch=${run%%:*}; res=${run##*:}
    {
      log $X demo --headless --frames 60 --resolution "$res" --channel "$ch" --snr 10 \
        --out "runs/demo_${ch}_${res}"
      cp "runs/demo_${ch}_${res}/summary.json" "$R/demo_${ch}_${res}_summary.json"
      cp "runs/demo_${ch}_${res}/plots.png" "$R/demo_${ch}_${res}_plots.png"
    }
  done
  log $X demo --headless --frames 60 --resolution 512x256 --no-classical --out runs/demo_fps_512
  cp runs/demo_fps_512/summary.json "$R/demo_learned_only_512x256_summary.json"
fi
if has loss; then
  log .venv/bin/python tools/reliability_bench.py --out runs/reliability --only loss,restart \
    --markdown "$R/reliability.md"
  cp runs/reliability/reliability.json "$R/reliability.json"
fi
