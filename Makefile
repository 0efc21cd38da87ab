# Set-up and checks for a fresh machine. Everything installs from this repository's files.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dpst-installed

.PHONY: setup browser test test-all lint demo demo-quality bench

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

# The demo's browser test drives Debian's Chromium (never a browser download of its own).
# Installed here when missing and possible (root with apt-get); otherwise that test skips and
# says why, except under CI=true, where it fails.
browser:
	@command -v chromium >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium is not installed: the browser test will be skipped"

# test: lint and the tests not marked slow (subprocess DDP runs, fp16 export, the browser,
# long signal and video runs, real sizes: see `slow` in pyproject.toml), a few minutes.
# test-all (CI, .ci/run): lint, every test, and bench.faults --quick, every fault case but
# training and targets as a user runs them (about a minute and a half on 2 cores).
test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow"

test-all: setup browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m ""
	$(BIN)/python -m bench.faults --quick

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The demo is one pass of the model shipped in the package. demo-quality runs the optimiser;
# this workplace cannot download VGG-19, so it asks for the seeded random stand-in by name;
# with the weights in place (see README) run `make demo-quality BACKBONE=vgg19`.
BACKBONE ?= random

demo: setup
	$(BIN)/dpst demo -o outputs/demo.png

demo-quality: setup
	$(BIN)/dpst demo --quality -o outputs/demo_quality.png --backbone $(BACKBONE)

bench: setup
	$(BIN)/python -m bench.matting
	$(BIN)/python -m bench.postfilter
	$(BIN)/python -m bench.optimizer
