#!/usr/bin/env python3
"""Which committed results were made with the shipped model, and which are stale.

    .venv/bin/python tools/results_status.py            (a table of docs/results/)
    .venv/bin/python tools/results_status.py --check    (exit 1 when a result is stale)

Every model-dependent result records the model it was made with under ``model``
(``core/codec/provenance.py``): the JSON key ``model`` of ``eval``, ``bench`` and ``demo``
outputs, a ``Model:`` line in the Markdown tables of ``tools/transform_ceiling.py`` and
``tools/nu_encoding_probe.py``. Each file is then one of

- ``current``: made with the shipped checkpoint (same sha256), or, for a speed result
  (``depends_on: config``), with a model of the same configuration;
- ``stale``: made with another model: rerun it (``tools/run_evaluations.sh`` has the commands);
- ``no model``: a result that does not depend on the learned model (classical, PHY);
- ``not recorded``: made before results carried their model (``commands.log`` says which).

A file named after a training step (``rd_learned_step30000_…``, ``promote_step…``,
``transform_ceiling_step…``) is a record of that step and is never stale.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from core.codec.provenance import DEFAULT_WEIGHTS, parse_markdown_line, weights_identity  # noqa: E402

#: a result named after the training step it records (a historical record, not a figure to refresh)
STEP_RECORD = re.compile(r"step\d+")


def recorded_model(path: Path) -> tuple[bool, dict | None]:
    """(whether the file records a model at all, the identity or None for "no model")."""
    text = path.read_text(errors="replace")
    if path.suffix == ".md":
        identity = parse_markdown_line(text)
        return identity is not None, identity
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return False, None
    if not isinstance(data, dict) or "model" not in data:
        return False, None
    return True, data["model"]


def status(path: Path, shipped: dict) -> tuple[str, str]:
    """(status word, what it was made with) of one result file against the shipped model."""
    recorded, model = recorded_model(path)
    if not recorded:
        return "not recorded", ""
    if model is None:
        return "no model", ""
    made = f"step {model.get('step')} ({model.get('sha256')})"
    if STEP_RECORD.search(path.name):
        return "record", made
    if model.get("depends_on") == "config":
        return ("current" if model.get("config") == shipped["config"] else "stale"), made + ", config"
    return ("current" if model.get("sha256") == shipped["sha256"] else "stale"), made


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=REPO / "docs" / "results", help="folder of results")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="the shipped checkpoint")
    p.add_argument("--check", action="store_true", help="exit with status 1 when any result is stale")
    p.add_argument("--all", action="store_true", help="also list the files that record no model")
    args = p.parse_args(argv)
    if not args.results.is_dir():
        raise SystemExit(f"{args.results} is not a folder of results")
    shipped = weights_identity(args.weights)
    print(f"shipped: {shipped['weights']} step {shipped['step']} ({shipped['sha256']})\n")
    rows = [(str(f.relative_to(args.results)), *status(f, shipped))
            for f in sorted(args.results.rglob("*")) if f.suffix in (".json", ".md") and f.is_file()]
    shown = [r for r in rows if args.all or r[1] != "not recorded"]
    width = max((len(r[0]) for r in shown), default=10)
    for name, word, made in shown:
        print(f"{name:<{width}}  {word:<12}  {made}")
    stale = [r[0] for r in rows if r[1] == "stale"]
    counts = {w: sum(r[1] == w for r in rows) for w in ("current", "stale", "record", "no model", "not recorded")}
    print("\n" + ", ".join(f"{n} {w}" for w, n in counts.items())
          + ("" if args.all else " (--all lists those)"))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
