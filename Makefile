# ntscc-xr — two commands: `make demo` and `make test`. Each does all set-up itself.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := gnuradio python3-zmq python3-numpy python3-scipy python3-venv xvfb
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Torch is pinned before the project install: an unpinned `torch` would pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup apt venv demo test lint bench clean help

help:
	@echo "make demo   - set up everything, then run the demo (headless report without a display)"
	@echo "make test   - set up everything, then ruff and the test suite"
	@echo "make lint   - ruff check ."
	@echo "make setup  - apt packages (GNU Radio), .venv and the project install; idempotent"

setup: apt venv

apt:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 \
	    || ! /usr/bin/python3 -c "import gnuradio.digital, zmq" >/dev/null 2>&1; then \
	  echo ">> installing Debian packages: $(APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES); \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

demo: setup
	$(VENV)/bin/ntscc-xr demo

lint: venv
	$(VENV)/bin/ruff check .

# Two pytest workers (pytest-xdist), a test file per worker: much of the suite waits on
# processes it started (flowgraph, TX, RX, the three-host chaos run), so two files at a time
# fit on two cores. Plain `pytest` still runs everything in one process.
PYTEST_WORKERS ?= 2
test: setup lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -ra -n $(PYTEST_WORKERS) --dist loadfile

bench: setup
	$(VENV)/bin/ntscc-xr link-test --channel awgn --snr 20 --frames 200 --json

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
