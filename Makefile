# wavefin: two commands on a fresh machine — `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Everything the pipeline writes goes under WAVEFIN_STORAGE (default ./storage): Dagster's instance included.
export WAVEFIN_STORAGE ?= $(CURDIR)/storage
export DAGSTER_HOME ?= $(abspath $(WAVEFIN_STORAGE))/dagster_home
PIP_FLAGS ?= --disable-pip-version-check
# Install exactly the tested versions (constraints.txt: the working venv's `pip freeze`). torch stays 2.13.0,
# for which pip takes the CPU build; never let a resolver upgrade it.
CONSTRAINTS := constraints.txt

.PHONY: install run test ui mlflow recover bench lint clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -c $(CONSTRAINTS) -q --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -c $(CONSTRAINTS) -e ".[dev,k8s]"
	@touch $(STAMP)

install: $(STAMP)

## Materialize every partition of the data assets, then the models and reports (quick profile by default).
## It writes $(DAGSTER_HOME)/dagster.yaml, limits the `gpu` pool to 1 and first cleans up after any crash.
run: $(STAMP)
	$(PY) -m wavefin_assets.run_all

## The whole test suite (CPU only, a few minutes).
test: $(STAMP)
	$(PY) -m pytest -q

## Dagster UI on http://127.0.0.1:3000 (after the same start-up clean-up as `make run`), through `dg dev`: the
## project is read from [tool.dg] in pyproject.toml; the webserver and the daemon (schedules, sensors) run together.
ui: $(STAMP) recover
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/dg dev -h 127.0.0.1 -p 3000

## After a crash: fail runs whose process is gone, free their `gpu` slots, mark their MLflow runs KILLED,
## remove the temporary files of killed writes (`make run` and `make ui` do this on start).
recover: $(STAMP)
	$(PY) -m wavefin_assets.recovery

## MLflow UI on http://127.0.0.1:5000
mlflow: $(STAMP)
	@mkdir -p $(WAVEFIN_STORAGE)/mlflow
	$(VENV)/bin/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///$(abspath $(WAVEFIN_STORAGE))/mlflow/mlflow.db} \
		--default-artifact-root $(abspath $(WAVEFIN_STORAGE))/mlflow/artifacts --host 127.0.0.1 --port 5000

## Every benchmark; peers (fCWT, ssqueezepy, pyFFTW) come from the `bench` extra, and a peer that cannot be
## installed or imported is skipped with its reason.
bench: $(STAMP)
	$(PY) -m pip install $(PIP_FLAGS) -q -e ".[bench]" || echo "bench extras missing: their rows are skipped"
	$(PY) bench/bench_cwt.py
	$(PY) bench/bench_ingest.py
	$(PY) bench/bench_diffusion.py --threads 1

lint: $(STAMP)
	$(VENV)/bin/ruff check wavefin_core wavefin_assets tests bench

clean:
	rm -rf $(WAVEFIN_STORAGE)/io $(WAVEFIN_STORAGE)/reports $(WAVEFIN_STORAGE)/models $(WAVEFIN_STORAGE)/mlflow \
		$(WAVEFIN_STORAGE)/dagster_home
