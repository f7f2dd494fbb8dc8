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
export WANDB_ERROR_REPORTING := false
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/tmp/site-cache
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PATH := $(BIN):$(PATH)

.PHONY: setup run repro flow test test-fast lint bench clean

setup: $(VENV)/.installed

# torch first: the CPU build is on disk, and anything that pulls torch in before it may fetch a CUDA build.
$(VENV)/.installed: requirements.lock pyproject.toml tools/venv_path.pth
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	@# the venv's bin first on PATH for every process it starts, so `python` in dvc.yaml is the venv's even from a
	@# plain `.venv/bin/dvc repro` (tools/venv_path.pth; activating the venv does the same)
	cp tools/venv_path.pth "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tabml_venv_path.pth"
	touch $@

run: setup  ## the full pipeline on the example table, through the Prefect flow
	$(PY) -m flows.pipeline

repro: setup  ## the same DAG through DVC
	dvc repro

# Two workers, whole files each (a file's module fixtures and servers stay on one worker): ~19 min here (measured).
TEST_WORKERS ?= 2
test: setup browser lint check-outputs  ## lint, the committed dvc.lock against the code, then every test (slow ones too)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

lint: setup  ## what CI checks besides the tests: ruff, ruff format, mypy
	ruff check . && ruff format --check . && mypy tabml tasks flows

bench: setup
	$(PY) -m bench.pipeline_timing

clean:
	rm -rf data/snapshot data/processed models reports checkpoints .wandb

# Chromium for the Data Docs screenshot test (tests/tabml/test_data_docs.py skips without it). Idempotent:
# nothing happens when a chromium is on PATH; otherwise Debian/Ubuntu's package (root, or sudo).
.PHONY: browser bench-validation
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

bench-validation: setup  ## GX validation vs the same checks in pandas, 1,000,000 rows x 20 columns
	$(PY) -m bench.validation_speed

# Reviewing experiments (docs/experiments.md): the comparison page, and uploading offline W&B runs once.
.PHONY: report plots wandb-sync bench-tracking
plots: setup  ## dvc_plots/index.html: exactly the plots this task has rows for (tools/plot_targets.py)
	targets=$$($(PY) -m tools.plot_targets) && dvc plots show $$targets

report: setup  ## reports/compare.html: the last 5 DVC experiments and their baseline, best first
	$(PY) -m tabml.report

wandb-sync: setup  ## upload offline W&B runs; runs already uploaded are skipped
	$(PY) -m tabml.tracking.sync

bench-tracking: setup  ## what W&B tracking adds to evaluate and register, per mode
	$(PY) -m bench.tracking_overhead

# Scheduled runs (docs/scheduling.md): a local Prefect server (SQLite in $(PREFECT_HOME)), a worker, the deployment
# (orchestration.deployment in params.yaml) and a run now. Each in its own terminal: make server / make worker.
.PHONY: server worker deploy trigger bench-orchestration
PREFECT_PORT ?= 4200
LOCAL_PREFECT_API := http://127.0.0.1:$(PREFECT_PORT)/api
server: setup  ## Prefect API + UI on http://127.0.0.1:4200, reports/ read-only on :4201 (loopback); Ctrl-C stops both
	$(PY) -m flows.deploy server --port $(PREFECT_PORT) $(if $(REPORTS_PORT),--reports-port $(REPORTS_PORT))

worker: setup  ## runs the deployment's flow runs in processes on this machine
	PREFECT_API_URL=$${PREFECT_API_URL:-$(LOCAL_PREFECT_API)} $(PY) -m flows.deploy worker

deploy: setup  ## creates the work pool if needed and creates/updates the scheduled deployment
	PREFECT_API_URL=$${PREFECT_API_URL:-$(LOCAL_PREFECT_API)} $(PY) -m flows.deploy deploy

trigger: setup  ## a run of the deployment now; ARGS="-S train.lr=0.003 --data-path data/landing/x.csv --wait"
	PREFECT_API_URL=$${PREFECT_API_URL:-$(LOCAL_PREFECT_API)} $(PY) -m flows.deploy trigger $(ARGS)

bench-orchestration: setup  ## the Prefect flow vs `dvc repro` on a fully cached pipeline, and per-stage costs
	$(PY) -m bench.orchestration_overhead

# Registry (docs/registry.md): the champion gate's bootstrap speed, and the offline template for `dvc plots show`.
.PHONY: bench-gate vega-offline
bench-gate: setup  ## the paired bootstrap of the champion gate: vectorised vs the per-resample torchmetrics loop
	$(PY) -m bench.gate_bootstrap

vega-offline: setup  ## rebuild vega_offline/dvc_plots.html from the npm registry (needs npm)
	$(PY) -m tools.vega_offline

# Online scoring (docs/serving.md): the production version of each model line on serve.host:serve.port.
.PHONY: serve monitor bench-serving
serve: setup  ## python -m tabml.serve on serve.port (8080); `make serve PORT=9000` overrides; Ctrl-C stops it
	$(PY) -m tabml.serve $(if $(PORT),--port $(PORT))

monitor: setup  ## one run of the monitoring flow: drift of the prediction log, and retraining when it crosses
	PREFECT_API_URL=$${PREFECT_API_URL:-$(LOCAL_PREFECT_API)} $(PY) -m flows.monitor

bench-serving: setup  ## this server vs `mlflow models serve` (MLFLOW_PYTHON=/work/bench-venv/bin/python)
	$(PY) -m bench.serving $${MLFLOW_PYTHON:+--mlflow-python $$MLFLOW_PYTHON}

.PHONY: bench-train
bench-train: setup  ## train throughput vs a hand-written PyTorch loop, and test AUROC vs LightGBM (docs/training.md)
	$(PY) -m bench.train_throughput

# CI: the committed dvc.lock and reports are what the committed code and data produce (tools/check_committed_outputs.py)
.PHONY: check-outputs
check-outputs: setup  ## fails on a stale dvc.lock; RERUN=1 also reruns the pipeline in a fresh clone of HEAD
	$(PY) -m tools.check_committed_outputs $(if $(RERUN),--rerun)
