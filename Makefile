# One entry point for people and CI. `make run` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(CURDIR)/$(VENV)/bin

# Nothing phones home; all state stays in the project folder.
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export WANDB_MODE ?= offline
export WANDB_SILENT := true
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/tmp/site-cache
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PATH := $(BIN):$(PATH)

.PHONY: setup run repro flow test test-fast lint bench clean

setup: $(VENV)/.installed

# torch first: the CPU build is on disk, and anything that pulls torch in before it may fetch a CUDA build.
$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

run: setup  ## the full pipeline on the example table, through the Prefect flow
	$(PY) -m flows.pipeline

repro: setup  ## the same DAG through DVC
	dvc repro

test: setup  ## every test, slow ones included
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	ruff check . && ruff format --check . && mypy tabml tasks flows

bench: setup
	$(PY) -m bench.pipeline_timing

clean:
	rm -rf data/snapshot data/processed models reports checkpoints .wandb
