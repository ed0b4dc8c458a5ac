# wavefin: two commands on a fresh machine — `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Everything the pipeline writes goes under WAVEFIN_STORAGE (default ./storage): Dagster's instance included.
export WAVEFIN_STORAGE ?= $(CURDIR)/storage
# What must stay on local disk (Dagster's instance, the default MLflow store) lives under the storage root when it
# is a local path, else under WAVEFIN_LOCAL_STORAGE (default ./storage): `WAVEFIN_STORAGE=s3://...` works too.
LOCAL_STORAGE := $(if $(findstring ://,$(WAVEFIN_STORAGE)),$(abspath $(or $(WAVEFIN_LOCAL_STORAGE),storage)),$(abspath $(WAVEFIN_STORAGE)))
export DAGSTER_HOME ?= $(LOCAL_STORAGE)/dagster_home
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

## The whole test suite (CPU only, ~4 min on 2 cores): pytest-xdist runs it in TEST_WORKERS processes (each builds
## its own session fixtures, e.g. the tiny end-to-end pipeline); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS)

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
	@mkdir -p $(LOCAL_STORAGE)/mlflow
	$(VENV)/bin/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///$(LOCAL_STORAGE)/mlflow/mlflow.db} \
		--default-artifact-root $(LOCAL_STORAGE)/mlflow/artifacts --host 127.0.0.1 --port 5000

## Every benchmark in a few minutes (~5 on 2 cores): quick sizes; the full ones are one flag away (bench/README.md).
## Peers (fCWT, ssqueezepy, pyFFTW) come from the `bench` extra; a peer that cannot be installed or imported is
## skipped with its reason. Each bench's output goes to $(BENCH_LOGS)/<name>.log, a summary ends the run, and the
## target fails if any bench failed. Left out: bench_generation_ablation.py (trains and scores a model per lever
## on both series: far longer than a few minutes) and bench_diffusion_levers.py (the same kind of run).
BENCH_LOGS ?= $(WAVEFIN_STORAGE)/bench
bench: $(STAMP)
	@$(PY) -c "import fcwt, ssqueezepy, pyfftw" 2>/dev/null || $(PY) -m pip install $(PIP_FLAGS) -c $(CONSTRAINTS) -q \
		-e ".[bench]" || echo "bench extras missing: their rows are skipped, with the reason"
	@mkdir -p $(BENCH_LOGS); : > $(BENCH_LOGS)/summary.txt; started=$$(date +%s); \
	if $(PY) bench/bench_scale.py --help 2>/dev/null | grep -q -- --quick; then scale="--quick"; \
	else scale="--sizes 4,8"; fi; \
	run_bench() { name=$$1; shift; echo "== $$name: $$*"; t0=$$(date +%s); \
		{ $(PY) "$$@" 2>&1; echo $$? > $(BENCH_LOGS)/$$name.rc; } | tee $(BENCH_LOGS)/$$name.log; \
		rc=$$(cat $(BENCH_LOGS)/$$name.rc); status=ok; [ "$$rc" = 0 ] || status="FAILED (exit $$rc)"; \
		echo "$$name ($$*): $$status in $$(( $$(date +%s) - t0 )) s" >> $(BENCH_LOGS)/summary.txt; \
		grep -E '^(SUMMARY|load_ohlcv / pyarrow|Time per series)' $(BENCH_LOGS)/$$name.log \
			| sed 's/^/    /' >> $(BENCH_LOGS)/summary.txt; }; \
	run_bench cwt bench/bench_cwt.py --quick; \
	run_bench ingest bench/bench_ingest.py --mb 150; \
	run_bench diffusion bench/bench_diffusion.py --quick; \
	run_bench scale bench/bench_scale.py $$scale; \
	echo; echo "== make bench: $$(( $$(date +%s) - started )) s, load average $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	cat $(BENCH_LOGS)/summary.txt; echo "(full logs: $(BENCH_LOGS)/)"; \
	! grep -q FAILED $(BENCH_LOGS)/summary.txt

lint: $(STAMP)
	$(VENV)/bin/ruff check wavefin_core wavefin_assets tests bench

clean:
	rm -rf $(WAVEFIN_STORAGE)/io $(WAVEFIN_STORAGE)/reports $(WAVEFIN_STORAGE)/models $(WAVEFIN_STORAGE)/mlflow \
		$(WAVEFIN_STORAGE)/dagster_home
