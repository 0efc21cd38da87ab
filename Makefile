# Set-up and checks for a fresh machine. Everything installs from this repository's files.
# Two environments: .venv holds everything (the `all` extra and the test tools: tests, lint,
# the optimiser, benchmarks); .venv-demo holds the core alone (`pip install dpst`: one pass on
# ONNX Runtime, no torch), which is all `make demo` needs, so it needs no torch download.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dpst-installed
DEMO_VENV ?= .venv-demo
DEMO_BIN := $(DEMO_VENV)/bin
DEMO_STAMP := $(DEMO_VENV)/.dpst-installed

.PHONY: setup setup-demo browser js test test-all lint demo demo-quality bench

setup: $(STAMP)

# onnxruntime-gpu (the gpu extra, in all) and the core's onnxruntime are two distributions of
# one module: installed together, the last one's files win and removing either breaks the
# other. Only the GPU build is kept (it runs on the CPU too), reinstalled whole.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[all,test]'
	@gpu=$$($(BIN)/pip show onnxruntime-gpu 2>/dev/null | sed -n 's/^Version: //p'); \
	if [ -n "$$gpu" ] && $(BIN)/pip show onnxruntime >/dev/null 2>&1; then \
	  echo "keeping onnxruntime-gpu $$gpu alone (it and onnxruntime are one module)"; \
	  $(BIN)/pip uninstall -q -y onnxruntime && \
	  $(BIN)/pip install -q --no-deps --force-reinstall "onnxruntime-gpu==$$gpu"; \
	fi
	touch $(STAMP)

setup-demo: $(DEMO_STAMP)

# --no-compile: byte-compiling every module of SciPy, scikit-image and NetworkX at install
# took most of the set-up's time; Python compiles the few the demo imports when it runs.
$(DEMO_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_BIN)/pip install -q --no-compile -c constraints.txt -e .
	touch $(DEMO_STAMP)

# The demo's browser test drives Debian's Chromium (never a browser download of its own).
# Installed here when missing and possible (root with apt-get); otherwise that test skips and
# says why, except under CI=true, where it fails.
browser:
	@command -v chromium >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium is not installed: the browser test will be skipped"

# The JavaScript runtime's packages (serve/js: docs/onnx.md's glue on onnxruntime-node and
# -web), exactly as its lockfile says. --ignore-scripts: onnxruntime-node's install script
# fetches CUDA binaries from outside the npm registry and fails offline; its CPU build is in
# the package itself, and sharp's binaries are npm packages of their own.
JS_STAMP := serve/js/node_modules/.dpst-installed

js: $(JS_STAMP)

$(JS_STAMP): serve/js/package.json serve/js/package-lock.json
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || \
	  { echo "Node.js 18 or newer and npm are needed for serve/js and its tests (apt-get install nodejs npm)" >&2; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund --prefix serve/js
	touch $(JS_STAMP)

# test: lint and the tests not marked slow (subprocess DDP runs, fp16 export, the browser,
# long signal and video runs, real sizes: see `slow` in pyproject.toml), a few minutes.
# test-all (CI, .ci/run): lint, every test, and bench.faults --quick, every fault case but
# training and targets as a user runs them (about a minute and a half on 2 cores).
test: setup js
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow"

test-all: setup browser js
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m ""
	$(BIN)/python -m bench.faults --quick

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The demo is one pass of the model shipped in the package, in the core environment.
# demo-quality runs the optimiser (torch: the full environment); this workplace cannot
# download VGG-19, so it asks for the seeded random stand-in by name; with the weights in
# place (see README) run `make demo-quality BACKBONE=vgg19`.
BACKBONE ?= random

demo: setup-demo
	$(DEMO_BIN)/dpst demo -o outputs/demo.png

demo-quality: setup
	$(BIN)/dpst demo --quality -o outputs/demo_quality.png --backbone $(BACKBONE)

bench: setup
	$(BIN)/python -m bench.matting
	$(BIN)/python -m bench.postfilter
	$(BIN)/python -m bench.optimizer
