# Set-up and checks for a fresh machine. Everything installs from this repository's files.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dpst-installed

.PHONY: setup test lint demo bench

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# This workplace cannot download VGG-19, so the demo asks for the seeded random stand-in by
# name; with the weights in place (see README) run `make demo BACKBONE=vgg19`.
BACKBONE ?= random

demo: setup
	$(BIN)/dpst demo -o outputs/demo.png --backbone $(BACKBONE)

bench: setup
	$(BIN)/python -m bench.matting
	$(BIN)/python -m bench.postfilter
	$(BIN)/python -m bench.optimizer
