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

# Installs come from uv.lock, through a pinned uv that `make` installs with python3.11's pip
# into .tools/ (so a fresh machine needs only python3.11 and its pip; uv creates .venv, so no
# python3.11-venv either). The Dockerfile pins the same version.
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_STAMP := $(TOOLS)/.uv-$(UV_VERSION)
EXTRAS := --extra dev-stack --extra test
LOCK_ARGS ?=

.PHONY: help setup lock dev test test-unit lint check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-10s %s\n", $$1, $$2}'

$(UV_STAMP):
	rm -rf $(TOOLS)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target $(TOOLS) 'uv==$(UV_VERSION)'
	touch $@

# Syncs only when pyproject.toml or uv.lock changes. --locked: a lock that no longer matches
# pyproject.toml is an error (run `make lock`), never silently ignored. --compile-bytecode, as
# pip does: with PYTHONDONTWRITEBYTECODE set (as on CI machines) nothing else writes .pyc files,
# and every worker the tests start would compile chromadb, faust, ... again (minutes when busy).
UV_SYNC := $(UV) sync --locked --compile-bytecode --python $(PYTHON) $(EXTRAS)

$(STAMP): pyproject.toml uv.lock $(UV_STAMP)
	$(UV_SYNC)
	touch $@

setup: $(STAMP) ## Create .venv (python3.11) with the locked dependencies, the dev stack and test tools

lock: $(UV_STAMP) ## Re-resolve uv.lock after editing dependencies (LOCK_ARGS=--upgrade for newer releases)
	$(UV) lock $(LOCK_ARGS)

dev: setup ## Run the embedded dev stack and a worker (ragstream dev)
	$(BIN)/ragstream dev

test: setup ## Run every test; the integration tests start their own services
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: setup ## Run the unit tests only (no services needed)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: setup ## What a reviewer checks: ruff check, ruff format --check, mypy (strict) on the packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(PACKAGES)

check: lint test ## lint, then every test: what CI runs (.ci/run)

BENCH_ARGS ?=

.PHONY: bench
bench: setup ## Benchmarks on the embedded stack; BENCH_ARGS="--quick", or e.g. "search ingest"
	$(UV_SYNC) --extra bench
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

SOAK_ARGS ?= --minutes 10
.PHONY: soak
soak: setup ## Chaos soak: faults and kills on 2 workers, then every check (SOAK_ARGS="--minutes 10 --seed 1")
	$(BIN)/python benchmarks/soak.py $(SOAK_ARGS)
