"""Copy the trained model, its log and curves into weights/ and write weights/README.md.

    .venv/bin/python tools/ship_weights.py --run runs/train_small

The training log keeps one row per step (a step re-run after a resume replaces the row of
the interrupted run). CPU time is the sum of the per-step wall times (the run used one or
two torch threads on a shared 2-core machine).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.codec.checkpoint import DEFAULT_WEIGHTS, read_metadata  # noqa: E402
from core.experiments.train import plot_curves  # noqa: E402

PHASES = """\
The run was resumed several times from its checkpoint (`runs/train_small/last.pt`) with the
same data, batch and crop; what changed between the phases:

| steps | command (all: `ntscc-xr train --config small --out runs/train_small --stage-steps 2500,1500,30000 --batch 8 --crop 128`) |
|---|---|
| 1 – 1 400 | `--max-minutes 100` (2 torch threads; too slow beside the other jobs) |
| 1 400 – 4 000 | `--max-minutes 140 --threads 1` (stages ntc, then jscc) |
| 4 000 – 4 400 | `--max-minutes 55 --threads 1 --dist-scale 0.04` (compatible stage; the distortion scale calibrated so Λ spans CBR 0.01–0.1) |
| 4 400 – 9 600 | `--max-minutes 32…160 --threads 1 --dist-scale 0.04 --eta-range 0.05,0.3` (from 7 200 with the checkerboard-token JSCC: 1.3 → 2.1 steps/s) |
| 9 600 – 18 000 | `--max-minutes 120 --threads 2 --dist-scale 0.04 --eta-range 0.05,0.3` (machine otherwise idle: ~3 steps/s) |
| 18 000 – 24 400 | `--max-minutes 48 --threads 2 --dist-scale 0.04 --eta-range 0.05,0.3 --lr 5e-5` (learning-rate drop once the loss had plateaued) |

From step 24 400 on, the recalibrated recipe (issue 11), started from the step-24 400 weights
with `--init-from weights/ntscc_plus_small.safetensors --stage-steps 2500,1500,100000 --lr 1e-4
--dist-scale 0.04 --threads 1` (`tools/train_background.sh` runs the same): the transform-coding
proxy distortion d(x, g_s(y+U)) added to the loss (`--ntc-weight 1`: the shipped model's g_s no
longer decoded its own latent, 14 dB; after 1 000 steps 26.5 dB), λ and η drawn log-uniformly over
[0.013, 0.72] × [0.05, 0.4] (rate-balanced; the η range is the evaluation's), the rate/SNR
response scalars and the new ν embeddings at 30× the learning rate, 300 warm-up steps, an EMA of
the weights (decay 0.999; the shipped file is the raw or the EMA weights, whichever scored better
in `tools/promote_candidate.py`, said below). This phase ran beside the rest of the session's work
(tests, evaluations, other engineers' jobs) on one thread at raised priority: 1.5–6 s per step.

Before step 4 000 the loss used D = MSE₂₅₅ (dist-scale 1), so the loss column jumps there; from
24 400 the loss holds the added proxy term, so it is not comparable with the rows before.

From step 27 400 on (2026-11-29), the rate response re-spread (issue 11). The step-27 400 model's
transforms *without quantisation*, g_s(g_a(x)), reached only 28.6 dB on Kodak crops at every λ
while the chain already reached 28.0 dB at CBR 0.037 (`tools/transform_ceiling.py`,
docs/results/transform_ceiling_step27400.md): the transforms, not the JSCC, capped the high-rate
end. They had no reason to improve: r_global,λ had stayed nearly flat over Λ (log r −0.25 … −0.49
over 55× in λ), so every λ quantised with about the same step (0.27–0.37 bit/px) — a fixed point,
since a finer step bought nothing the coarse-trained transforms could use. The run restarted from
the step-27 400 weights (the 1 200 steps of the flat recipe after them were set aside) with
r_global,λ ∝ λ^(−1/2) around the middle of Λ, the high-rate optimum of R + λ·D (log r +0.84 …
−1.16), and r_global at the base learning rate (at the response scalars' 30× it flattened back by a
third in 400 steps):
`tools/train_background.sh 165 1` = `ntscc-xr train --config small --out runs/train_small
--init-from weights/ntscc_plus_small.safetensors --stage-steps 2500,1500,1000000 --batch 8
--crop 128 --threads 1 --lr 1e-4 --dist-scale 0.04 --rate-slope 0.5 --rate-lr-mult 1
--max-minutes 165 --ckpt-every 200`, one thread at low priority beside the session's
evaluations and test suites (1.4–5.5 s per step).

From step 36 000 on (2026-11-29), 256×256 crops, batch 4 (twice the pixels per step of 8 × 128²,
and context the size of a Kodak detail), and 5 % synthetic plain crops (`--flat-fraction 0.05`:
one colour or a gentle ramp; the step-35 400 model spent 52 symbols per position on a flat grey
frame against 71 on kodim20 — plain fields had never been in its training data):
`CROP=256 BATCH=4 NICE=5 tools/train_background.sh 175 1` = the command above with `--batch 4
--crop 256 --flat-fraction 0.05` (2.8–3.6 s per step beside the session's work).

From step 43 196 on (2026-11-29, ninth session), a rate-level table topping out at 128 symbols
(…, 48, 64, 96, 128; 80 gave way, the index stays 4 bits): at η 0.8 and λ 0.72, 66 % of the
latent positions had sat at the old top level, 96. The trained weights were carried over by
`core/codec/widen.py` on resume (rate tokens of kept levels kept, symbols 97–128 repeat the first
ones, the decoder's columns for them start at zero; fresh Adam moments, 300 warm-up steps), and η
is drawn in [0.05, 0.8] (recorded in the config as `eta_range`; the evaluation and the live
controller stay inside it): `ETA=0.05,0.8 CROP=256 BATCH=4 NICE=5 RATE_LR=0
tools/train_background.sh 165 1` = the command above with `--eta-range 0.05,0.8
--rate-lr-mult 0` (about 2.2 s per step beside the session's work).
From step 46 015 on, the learning rate annealed to 3e-5 (the schedule's `--lr-final`). The
tenth session's run at 3e-5 (a fork from the 1e-4 state at step 46 074, then the main line to
about step 49 900) lost its `runs/` folder with its machine before its last candidate was
evaluated (its step-47 396 candidate had scored +0.046 dB, under the margin). The eleventh
session (2026-11-29) restarted from the shipped step-46 015 weights with fresh Adam moments
(300 warm-up steps), the shipped rate response kept (no `--rate-slope`):
`LR=3e-5 CROP=256 BATCH=4 NICE=5 RATE_LR=0 tools/train_background.sh 75 2` = `ntscc-xr train
--config small --out runs/train_small --init-from weights/ntscc_plus_small.safetensors
--stage-steps 2500,1500,1000000 --batch 4 --crop 256 --threads 2 --lr 3e-5 --dist-scale 0.04
--rate-lr-mult 0 --flat-fraction 0.05 --max-minutes 75 --ckpt-every 200` (0.5 s per step on two
threads of an AMD EPYC with no CPU steal, 4× the previous sessions' machine), stopped with SIGTERM
at step 51 967.
The same command went on from there (the eleventh session: one thread beside its evaluations, then
two), and from step 60 592 (2026-11-30, twelfth session) under bf16 autocast with channels-last
tensors (`--amp bf16`, the default, now taken on a CPU with native bf16 as on CUDA; the entropy
model stays float32): 0.34–0.39 s per step on two threads against 0.52 s in float32, the gradient
of g_a/g_s within cosine 0.94–1.00 of float32's (docs/results/train_step_bf16.json); fused Adam was asked
for from step 62 495, but each resume restored the checkpoint's unfused Adam (fixed at step 74 705),
so this model was trained with the unfused one; the learning rate halved to 1.5e-5 from step 67 471 for the run's last 40 minutes
(`LR=1.5e-5 CROP=256 BATCH=4 NICE=5 RATE_LR=0 tools/train_background.sh 60 2`), stopped with
SIGTERM at step 73 739.
The same command went on at 1.5e-5 (twelfth session to step 75 112, thirteenth session
2026-11-30: `LR=1.5e-5 CROP=256 BATCH=4 NICE=5 RATE_LR=0 tools/train_background.sh 145 2`, fused
Adam from step 74 705, 0.33–0.39 s per step on two threads), stopped with SIGTERM at step 91 457.

From step 92 301 on (2026-11-30, fourteenth session), each JSCC branch carries a **linear bypass**
(issue 11): a bias-free 1×1 convolution from the branch's input to its output beside the ViT
blocks, zero at first (so the trained function was kept), learning with the response scalars at
30× the rate. The step-91 457 model's chain saturated at the high-rate end although the
transforms did not: a linear mapping of the same latent with LMMSE decoding beat it by ~1.5 dB
at CBR 0.08 (`tools/transform_ceiling.py`, docs/results/transform_ceiling_step91457.md), and the
blocks end in a per-token LayerNorm, which drops each token's scale. The same command as above
(two threads; the checkpoint's Adam moments did not fit the new parameters, so fresh moments with
300 warm-up steps; from step 92 999 to 96 994 one thread beside a fork with the hyperprior's
(μ, σ) fed to the JSCC, `CONFIG=small_prior`, which gained nothing more at equal CBR and was
stopped: docs/results/jscc_prior_fork_step96767.md), stopped with SIGTERM at step 106 506.
The same command went on (fourteenth session to step ~108 347, where the run died with its
machine after checkpointing at 108 200; fifteenth session 2026-11-30 from there:
`LR=1.5e-5 CROP=256 BATCH=4 NICE=5 RATE_LR=0 tools/train_background.sh 120 2`, 0.35–0.37 s per
step on two threads), ending at its time limit at step 127 734.
The same command went on (fifteenth session to step ~128 110, where the run died with its machine
after checkpointing at 128 000; sixteenth session 2026-11-30 from there:
`LR=1.5e-5 CROP=256 BATCH=4 NICE=5 RATE_LR=0 tools/train_background.sh 125 2`, 2.0–2.8 steps/s on
two threads beside the session's work), stopped with SIGTERM at step 142 809.
The same command went on (sixteenth session to step ~143 330, where the run died with its machine
after checkpointing at 143 200; seventeenth session 2026-11-30 from there:
`LR=1.5e-5 CROP=256 BATCH=4 NICE=5 RATE_LR=0 tools/train_background.sh 110 2`, stopped with
SIGTERM at step 144 376, then `... tools/train_background.sh 94 1` on one thread beside a fork at
learning rate 5e-6 from the same checkpoint (`OUT=runs/train_anneal LR=5e-6 ... 94 1`, the same
data; its step-153 058 candidate scored 0.018 dB under this line's:
docs/results/promote_step153058.json), 1.5–1.6 steps/s each), ending at its time limit at step
153 163.
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/train_small")
    ap.add_argument("--note", default="", help="a line on which weights were shipped (raw or EMA) and why")
    args = ap.parse_args()
    run = Path(args.run)
    rows: dict[int, dict] = {}
    shipped_log = REPO / "weights" / "train_log.csv"
    if shipped_log.exists():  # the shipped history; a run started --init-from continues it
        with open(shipped_log) as f:
            for r in csv.DictReader(f):
                rows[int(r["step"])] = r
    with open(run / "log.csv") as f:
        for r in csv.DictReader(f):
            rows[int(r["step"])] = r  # the last run of a step wins
    meta = read_metadata(DEFAULT_WEIGHTS)
    step = meta["info"]["step"]
    # the run goes on after the candidate was exported: the log stops at the shipped step
    ordered = [rows[k] for k in sorted(rows) if k <= step]
    out = REPO / "weights"
    with open(out / "train_log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(ordered[0].keys()))
        w.writeheader(); w.writerows(ordered)
    plot_curves(out / "train_log.csv", out / "train_curves.png")
    cpu_s = sum(float(r["sec_per_step"]) for r in ordered)
    size_mb = DEFAULT_WEIGHTS.stat().st_size / 2**20
    stages = {}
    for r in ordered:
        stages[r["stage"]] = stages.get(r["stage"], 0) + 1
    text = f"""# The shipped model: compatible NTSCC+ `small`

`ntscc_plus_small.safetensors` ({size_mb:.1f} MB, float16, config in the file's metadata) is the
checkpoint at step {step} of the project's own training command, trained only on
`../shared/data/train` (227 photos; never Kodak), random 128×128 crops, batch 8 (256×256, batch 4
from step 36 000), Adam (3e-4, then 5e-5, then 1e-4 with the recalibrated recipe from step 24 400, 3e-5 from step 46 015,
1.5e-5 from step 67 471), one CPU process on this 2-core machine (bf16 autocast from step 60 592).

- steps: {len(ordered)} ({', '.join(f'{k}: {v}' for k, v in stages.items())})
- time: {cpu_s / 3600:.2f} h wall-clock (sum of the step times) on one or two torch threads of
  a 2-core machine often shared with the rest of the session's work (tests, evaluations):
  at most about {2 * cpu_s / 3600:.0f} CPU-hours. The paper trains 610 000 steps on a GPU: this model is early
  in its training and far from converged.
- log: `train_log.csv` (per step: stage, loss, PSNR, CBR, λ, η, SNR), curves: `train_curves.png`.

{PHASES}
{args.note}

To continue training in the background (it resumes `runs/train_small/last.pt` when present,
else starts from these weights; the step count goes on):

```
tools/train_background.sh 150 1        # minutes, torch threads
.venv/bin/python tools/promote_candidate.py runs/train_small/candidate.safetensors --promote
.venv/bin/python tools/ship_weights.py --run runs/train_small --note "..."
```

On a CUDA machine: `tools/train_gpu.sh OUT_DIR 9` (bf16, channels-last, batch 32 of 256² crops
from `runs/gpu/train_pack.npz`, made by `tools/pack_train_data.py`), then the same promotion.
"""
    (out / "README.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
