# wavefin: two commands on a fresh machine — `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Everything the pipeline writes goes under WAVEFIN_STORAGE (default ./storage): Dagster's instance included.
export WAVEFIN_STORAGE ?= $(CURDIR)/storage
export DAGSTER_HOME ?= $(abspath $(WAVEFIN_STORAGE))/dagster_home
# Keep the CPU build of torch: pip takes it from the pinned version; never let a resolver upgrade it.
PIP_FLAGS ?= --disable-pip-version-check

.PHONY: install run test ui mlflow bench lint clean

# The Dagster instance: the `gpu` pool runs one GPU step at a time (DESIGN: limit 1 per instance).
$(DAGSTER_HOME)/dagster.yaml:
	@mkdir -p $(DAGSTER_HOME)
	@printf 'concurrency:\n  pools:\n    default_limit: 1\ntelemetry:\n  enabled: false\n' > $@

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -q --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## Materialize every partition of the data assets, then the models and reports (quick profile by default).
run: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m wavefin_assets.run_all

## The whole test suite (CPU only, a few minutes).
test: $(STAMP)
	$(PY) -m pytest -q

## Dagster UI on http://127.0.0.1:3000
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000

## MLflow UI on http://127.0.0.1:5000
mlflow: $(STAMP)
	@mkdir -p $(WAVEFIN_STORAGE)/mlflow
	$(VENV)/bin/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///$(abspath $(WAVEFIN_STORAGE))/mlflow/mlflow.db} \
		--default-artifact-root $(abspath $(WAVEFIN_STORAGE))/mlflow/artifacts --host 127.0.0.1 --port 5000

bench: $(STAMP)
	$(PY) bench/bench_cwt.py

lint: $(STAMP)
	$(VENV)/bin/ruff check wavefin_core wavefin_assets tests bench

clean:
	rm -rf $(WAVEFIN_STORAGE)/io $(WAVEFIN_STORAGE)/reports $(WAVEFIN_STORAGE)/models $(WAVEFIN_STORAGE)/mlflow \
		$(WAVEFIN_STORAGE)/dagster_home
