#!/usr/bin/env python3
"""Evaluate a candidate checkpoint on Kodak and ship it only when its front is better.

    .venv/bin/python tools/promote_candidate.py runs/train_small/candidate.safetensors [--promote]

Both models are scored the same way: ``ntscc-xr eval rd --schemes compatible`` (AWGN 10 dB,
every λ of the model's grid × the default η grid, the Pareto front of the average (CBR, PSNR)
points), then the front's PSNR at the CBR budgets 0.01, 0.015, 0.02, 0.03, 0.04, 0.06, 0.08,
0.1 — "the best point whose CBR fits the budget", so a front that ends early keeps its last
PSNR and a budget below the front's start scores the front's first PSNR minus 3 dB. The score is the mean over the budgets; the
candidate wins when its score is higher by at least ``--margin`` dB. With ``--promote`` a
winner is copied over ``weights/ntscc_plus_small.safetensors`` and kept there only if
``tests/test_shipped_model.py`` passes on it (otherwise the shipped weights are restored). The shipped model's score is
computed afresh unless ``--shipped-json`` gives an earlier result of the same command.
``--record`` keeps the decision and the candidate's sweep under ``docs/results/`` and refreshes
``docs/results/model_history.md``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from core.codec.provenance import weights_identity  # noqa: E402  (torch-free)
from core.experiments.evaluate import interp_at  # noqa: E402  (torch-free at import)

SHIPPED = REPO / "weights" / "ntscc_plus_small.safetensors"
BUDGETS = (0.01, 0.015, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1)
log = logging.getLogger("promote_candidate")


def front_psnr_at(front: list[list[float]], budget: float) -> float:
    """PSNR of the best front point whose CBR is within ``budget`` (see the module doc)."""
    fits = [p for c, p in front if c <= budget + 1e-9]
    return max(fits) if fits else front[0][1] - 3.0


def front_psnr_interpolated(front: list[list[float]], cbr: float) -> float | None:
    """PSNR of the front linearly interpolated at ``cbr``; None outside the front's CBR range.
    Reported beside the score (not part of it): the budget rule jumps when a front point lands
    just above a budget (a point at CBR 0.02004 does not count at 0.02)."""
    value = interp_at(front, cbr)
    return None if math.isnan(value) else round(value, 3)


def score(front: list[list[float]]) -> dict:
    at = {f"{b:g}": round(front_psnr_at(front, b), 3) for b in BUDGETS}
    return {"mean_psnr": round(sum(at.values()) / len(at), 3), "psnr_at_budget": at,
            "psnr_interpolated": {f"{b:g}": front_psnr_interpolated(front, b) for b in BUDGETS},
            "front_end_cbr": front[-1][0]}


def evaluate(weights: Path, out_json: Path, dataset: str, limit: int, threads: int) -> list[list[float]]:
    cmd = [sys.executable, "-m", "core.cli", "eval", "rd", "--schemes", "compatible",
           "--weights", str(weights), "--dataset", dataset, "--json", str(out_json)]
    if limit:
        cmd += ["--limit", str(limit)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    log.info("evaluating %s: %s", weights, " ".join(cmd))
    subprocess.run(cmd, cwd=REPO, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(out_json.read_text())["curves"]["compatible"]


def front_from_json(path: Path, weights: Path) -> list[list[float]]:
    """The compatible front of an ``eval rd`` JSON, refused when the JSON records another model
    than ``weights`` (a sweep of an earlier shipped model, or of a candidate file that training
    has since overwritten)."""
    data = json.loads(path.read_text())
    made_with, expected = data.get("model"), weights_identity(weights)
    if made_with is None:
        log.warning("%s records no model (made before results carried one): cannot check that it "
                    "was made with %s", path, weights)
    elif made_with["sha256"] != expected["sha256"]:
        raise SystemExit(f"{path} was made with {made_with['weights']} (step {made_with['step']}, "
                         f"sha256 {made_with['sha256']}), not with {weights} (step {expected['step']}, "
                         f"sha256 {expected['sha256']}): evaluate {weights} again or pass the right JSON")
    return data["curves"]["compatible"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__)
    p.add_argument("candidate", type=Path)
    p.add_argument("--dataset", default=str(REPO.parent / "shared" / "data" / "kodak"))
    p.add_argument("--limit", type=int, default=0, help="first N images only (a quick look; ship on the full set)")
    p.add_argument("--candidate-json", type=Path, default=None,
                   help="an `eval rd` JSON of the candidate already made (full data set), instead of running it")
    p.add_argument("--shipped-json", type=Path, default=None,
                   help="an earlier `eval rd --schemes compatible` JSON of the shipped model (same data)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "promote")
    p.add_argument("--margin", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--promote", action="store_true", help="copy a winning candidate over the shipped weights")
    p.add_argument("--record", action="store_true",
                   help="also write the decision (docs/results/promote_stepN.json, with --note in its "
                        "`decision`) and the candidate's sweep (rd_learned_stepN_kodak_awgn10.json) and "
                        "refresh docs/results/model_history.md; for a full-set evaluation")
    p.add_argument("--note", default="", help="with --record: why, in words (the run, its command)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.candidate.exists():
        raise SystemExit(f"candidate {args.candidate} not found (training exports it to RUN/candidate.safetensors)")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.candidate_json:
        cand = front_from_json(args.candidate_json, args.candidate)
    else:
        cand = evaluate(args.candidate, args.out / "candidate_rd.json", args.dataset, args.limit, args.threads)
    if args.shipped_json:
        shipped = front_from_json(args.shipped_json, SHIPPED)
    else:
        shipped = evaluate(SHIPPED, args.out / "shipped_rd.json", args.dataset, args.limit, args.threads)
    result = {"candidate": str(args.candidate), "limit": args.limit,
              "candidate_model": weights_identity(args.candidate), "shipped_model": weights_identity(SHIPPED),
              "candidate_score": score(cand), "shipped_score": score(shipped),
              "candidate_front": cand, "shipped_front": shipped}
    gain = result["candidate_score"]["mean_psnr"] - result["shipped_score"]["mean_psnr"]
    result["gain_db"] = round(gain, 3)
    result["better"] = gain >= args.margin
    (args.out / "decision.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("candidate_score", "shipped_score", "gain_db", "better")}, indent=1))
    shipped_now = bool(result["better"] and args.promote and promote(args.candidate, args.out))
    if args.record:
        sweep = args.candidate_json or args.out / "candidate_rd.json"
        record(result, sweep, shipped_now, args.margin, args.note)
    return 0


def record(result: dict, sweep: Path, shipped: bool, margin: float, note: str) -> None:
    """Keep the decision and the candidate's Kodak sweep under docs/results (named after the
    candidate's training step) and refresh the history table built from those records."""
    from datetime import date
    if result["limit"]:
        raise SystemExit("--record keeps full-set decisions only: drop --limit")
    step = result["candidate_model"]["step"]
    verdict = "shipped" if shipped else "not shipped"
    reason = (f"{result['gain_db']:+.3f} dB front score against step {result['shipped_model']['step']}, "
              f"margin {margin}")
    if result["better"] and not shipped:
        reason += "; above the margin but not promoted (no --promote, or the property tests failed)"
    decision = f"{verdict} ({date.today().isoformat()}): {reason}" + (f". {note}" if note else "")
    results = REPO / "docs" / "results"
    out = dict(result, decision=decision)
    (results / f"promote_step{step}.json").write_text(json.dumps(out, indent=1))
    shutil.copyfile(sweep, results / f"rd_learned_step{step}_kodak_awgn10.json")
    subprocess.run([sys.executable, str(REPO / "tools" / "model_history.py"), "--out",
                    str(results / "model_history.md")], cwd=REPO, check=True)
    log.info("recorded: docs/results/promote_step%d.json, rd_learned_step%d_kodak_awgn10.json, "
             "model_history.md", step, step)


def promote(candidate: Path, out: Path) -> bool:
    """Put ``candidate`` in the shipped place, then run the shipped model's property tests on it
    (rate follows content, ν response, PSNR floors, ...); a candidate that fails one is taken
    back out: a better front does not excuse a broken property."""
    backup = out / "previous_shipped.safetensors"
    shutil.copyfile(SHIPPED, backup)
    shutil.copyfile(candidate, SHIPPED)
    tests = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_shipped_model.py"]
    log.info("property tests on the candidate: %s", " ".join(tests))
    run = subprocess.run(tests, cwd=REPO, capture_output=True, text=True)
    if run.returncode != 0:
        shutil.copyfile(backup, SHIPPED)
        failed = [line for line in run.stdout.splitlines() if line.startswith("FAILED")]
        log.error("not promoted: the candidate fails the shipped-model tests (shipped weights restored):\n%s",
                  "\n".join(failed) or run.stdout[-2000:])
        return False
    log.info("promoted %s -> %s", candidate, SHIPPED)
    return True


if __name__ == "__main__":
    sys.exit(main())
