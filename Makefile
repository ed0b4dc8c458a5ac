# wavefin: two commands on a fresh machine — `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/storage/dagster_home
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/storage/mlflow/mlflow.db
# Keep the CPU build of torch: pip takes it from the pinned version; never let a resolver upgrade it.
PIP_FLAGS ?= --disable-pip-version-check

.PHONY: install run test ui mlflow bench lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -q --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## Materialize every partition of the data assets, then the models and reports (quick profile by default).
run: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(PY) -m wavefin_assets.run_all

## The whole test suite (CPU only, a few minutes).
test: $(STAMP)
	$(PY) -m pytest -q

## Dagster UI on http://127.0.0.1:3000
ui: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000

## MLflow UI on http://127.0.0.1:5000
mlflow: $(STAMP)
	@mkdir -p storage/mlflow
	$(VENV)/bin/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000

bench: $(STAMP)
	$(PY) bench/bench_cwt.py

lint: $(STAMP)
	$(VENV)/bin/ruff check wavefin_core wavefin_assets tests bench

clean:
	rm -rf storage/io storage/reports storage/models storage/mlflow storage/dagster_home
