# One command surface, the same locally and in CI. `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# python3.11: pyenv's own build when there is one (no shim needed), else the one on PATH.
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python3.11) python3.11)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := schemas streams stores services agents ragstream
PYTEST_ARGS ?=

.PHONY: help setup dev test test-unit lint

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalls only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev-stack,test]'
	touch $@

setup: $(STAMP) ## Create .venv (python3.11) and install ragstream with the dev stack and test tools

dev: setup ## Run the embedded dev stack and a worker (ragstream dev)
	$(BIN)/ragstream dev

test: setup ## Run every test; the integration tests start their own services
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: setup ## Run the unit tests only (no services needed)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: setup ## ruff on everything, mypy on the packages
	$(BIN)/ruff check .
	$(BIN)/mypy $(PACKAGES)

BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): benchmarks/requirements.txt | $(STAMP)
	$(BIN)/python -m pip install -r benchmarks/requirements.txt
	touch $@

.PHONY: bench
bench: setup $(BENCH_STAMP) ## Benchmarks on the embedded stack; BENCH_ARGS="--quick", or e.g. "search ingest"
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

SOAK_ARGS ?= --minutes 10
.PHONY: soak
soak: setup ## Chaos soak: faults and kills on 2 workers, then every check (SOAK_ARGS="--minutes 10 --seed 1")
	$(BIN)/python benchmarks/soak.py $(SOAK_ARGS)
