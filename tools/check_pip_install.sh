#!/usr/bin/env bash
# The pip user's path (issue 14): a fresh venv, CPU PyTorch, `pip install .` (not editable),
# then `ntscc-xr demo --headless --frames 5` run from outside the checkout, so that nothing is
# found through the working directory. Prints what it did and the demo's summary; exits non-zero
# on the first failure.
#
#   tools/check_pip_install.sh [VENV_DIR]     (default: a new temporary folder, removed at the end)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-$(mktemp -d /tmp/ntscc-pip.XXXXXX)/venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
WORK=$(mktemp -d /tmp/ntscc-pip-run.XXXXXX)
echo ">> fresh venv: $VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
echo ">> $TORCH_PIN (CPU build)"
"$VENV/bin/python" -m pip install -q --retries 0 --timeout 15 "$TORCH_PIN" --index-url https://download.pytorch.org/whl/cpu \
  || "$VENV/bin/python" -m pip install -q "$TORCH_PIN"   # offline mirrors carry the CPU wheel
echo ">> pip install $REPO (not editable)"
"$VENV/bin/python" -m pip install -q "$REPO"
echo ">> venv size: $(du -sh "$VENV" | cut -f1)"
cd "$WORK"
echo ">> ntscc-xr demo --headless --frames 5 (in $WORK)"
"$VENV/bin/ntscc-xr" demo --headless --frames 5 --out "$WORK/run" --base-port 5750
SUMMARY=$(find "$WORK/run" -name summary.json | head -1)
test -n "$SUMMARY" || { echo "no summary.json under $WORK/run" >&2; exit 1; }
"$VENV/bin/python" - "$SUMMARY" <<'PY'
import json, sys
streams = json.load(open(sys.argv[1]))["streams"]
for name, s in streams.items():
    print(f"{name}: {s['ok']}/{s['frames']} frames, PSNR {s['psnr']} dB, CBR {s['cbr']}")
    assert s["ok"] > 0, f"no {name} frame decoded"
PY
echo ">> pip install check passed"
