#!/usr/bin/env python3
"""Every candidate the promotion script scored, in one table: the model's history on Kodak.

    .venv/bin/python tools/model_history.py                 (prints the Markdown table)
    .venv/bin/python tools/model_history.py --out docs/results/model_history.md

Reads ``docs/results/promote_step*.json`` (written by ``tools/promote_candidate.py``): each
holds the candidate's and the then-shipped model's front scores on Kodak (20 images, AWGN 10 dB,
side information on the air, estimated SNR) and, for the later ones, the decision in words. A
candidate counts as shipped when its record says so or ``weights/README.md`` has a "Shipped at
step N" paragraph for it. The README shows the shipped model's figures only; this table keeps
the road to them.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "results"
BUDGETS = ("0.02", "0.04", "0.08")


def shipped_steps(weights_readme: Path) -> set[int]:
    """Steps with a "Shipped at step N" paragraph in the weights' README."""
    text = weights_readme.read_text() if weights_readme.exists() else ""
    return {int(m.replace(" ", "")) for m in re.findall(r"^Shipped at step ([\d ]+\d)", text, re.M)}


def psnr_at(score: dict, budget: str) -> str:
    """PSNR at a CBR budget along the interpolated front (measured point for the early records)."""
    table = score.get("psnr_interpolated") or score.get("psnr_at_budget") or {}
    value = table.get(budget)
    return "–" if value is None else f"{value:.2f}"


def outcome(record: dict, step: int, shipped: set[int]) -> str:
    decision = record.get("decision", "")
    if decision:
        head = decision.split(":")[0].split("(")[0].strip()
        return head if head else decision[:40]
    if step in shipped:
        return "shipped"
    return "not shipped" if not record.get("better") else "better, not shipped (see its record)"


def spaced(step: int | None) -> str:
    return "–" if step is None else f"{step:,}".replace(",", " ")


def rows(results: Path, shipped: set[int]) -> list[tuple[int, list[str]]]:
    records = {int(re.search(r"step(\d+)", p.name).group(1)): (p, json.loads(p.read_text()))
               for p in results.glob("promote_step*.json")}
    # the early records do not name the model they were scored against: it is the candidate
    # whose own score they quote
    by_score = {rec["candidate_score"]["mean_psnr"]: step for step, (_, rec) in records.items()}
    out = []
    for step, (path, rec) in records.items():
        cand, ref = rec["candidate_score"], rec["shipped_score"]
        against = (rec.get("shipped_model") or {}).get("step", by_score.get(ref["mean_psnr"]))
        out.append((step, [
            spaced(step), spaced(against),
            f"{cand['mean_psnr']:.3f} / {ref['mean_psnr']:.3f}", f"{rec['gain_db']:+.3f}",
            *[psnr_at(cand, b) for b in BUDGETS], f"{cand.get('front_end_cbr', float('nan')):.3f}",
            outcome(rec, step, shipped), f"[json]({path.name})"]))
    return sorted(out)


def markdown(results: Path = RESULTS, weights_readme: Path = REPO / "weights" / "README.md") -> str:
    header = ["step", "scored against step", "front score dB (cand / shipped)", "gain dB",
              *[f"PSNR @ CBR {b}" for b in BUDGETS], "front ends at CBR", "outcome", "record"]
    lines = [
        "# The model's history on Kodak: every promotion candidate",
        "",
        "Written by `.venv/bin/python tools/model_history.py --out docs/results/model_history.md`",
        "from the `promote_step*.json` records of `tools/promote_candidate.py`. Kodak (20 images),",
        "AWGN 10 dB, side information on the air, the learned decoder given its estimated SNR.",
        "Front score: the mean PSNR of the Pareto front over the CBR budgets 0.01–0.1; a candidate",
        "ships when it beats the shipped model by the margin (0.05 dB) and passes",
        "`tests/test_shipped_model.py`. PSNR at a budget: along the interpolated front (the first",
        "records, before step 91 457, kept only the nearest measured point). How each shipped model",
        "was trained and evaluated: [weights/README.md](../../weights/README.md).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(cells) + " |" for _, cells in rows(results, shipped_steps(weights_readme))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=None, help="write the table here (default: print it)")
    args = p.parse_args(argv)
    text = markdown()
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
