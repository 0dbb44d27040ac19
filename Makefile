# Two commands on a fresh machine: `make demo` and `make test`. Each creates or refreshes .venv
# and installs the project into it first. CPU installs pin torch through .ci/constraints-cpu.txt
# (an unpinned torch pulls a multi-GB CUDA build); a GPU user runs `make install CONSTRAINTS=`
# after installing their own torch into .venv.
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= .ci/constraints-cpu.txt
PY := $(VENV)/bin/python
STAMP := $(VENV)/.spurspec-installed
PIP_C := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
PYTEST_ARGS ?=

.PHONY: install test test-fast demo smoke lint bench bench-gpu clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(PIP_C) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Tests run on every core (pytest-xdist), then the few whose timing needs the whole machine alone.
TEST_WORKERS ?= auto

test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not serial" $(PYTEST_ARGS)
	$(PY) -m pytest -m serial $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not slow and not serial" $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/spurspec run pipelines/demo.toml

smoke: $(STAMP)
	$(VENV)/bin/spurspec run pipelines/smoke.toml

lint: $(STAMP)
	$(VENV)/bin/ruff check spurspec tests

# Every CPU benchmark (~20 minutes on 2 cores), one JSON file each in BENCH_OUT, then the tables
# and figures of docs/benchmarks.md redrawn from those files (tests/benchmarks/render.py).
BENCH_OUT ?= docs/results/bench
BENCH := $(PY) tests/benchmarks

bench: $(STAMP)
	$(BENCH)/bench_ingest_siim.py --n 500 --repeats 7 --sizes 256,512 --rss-sizes 1000,4000 --json $(BENCH_OUT)/ingest.json
	$(BENCH)/bench_storage.py --json $(BENCH_OUT)/storage.json
	$(BENCH)/bench_train.py --repeats 3 --json $(BENCH_OUT)/train.json
	$(BENCH)/bench_augment.py --repeats 3 --json $(BENCH_OUT)/augment.json
	$(BENCH)/bench_metrics.py --sizes 10000,100000,1000000 --json $(BENCH_OUT)/metrics.json
	$(BENCH)/bench_concurrent.py --repeats 1 --json $(BENCH_OUT)/concurrent.json
	$(BENCH)/bench_audit.py --n 16000 --repeats 11 --json $(BENCH_OUT)/audit.json
	$(BENCH)/render.py --results $(BENCH_OUT)

# On a CUDA machine (after `make install CONSTRAINTS=` with a CUDA torch): under 5 minutes.
bench-gpu: $(STAMP)
	$(BENCH)/bench_gpu.py --json $(BENCH_OUT)/gpu.json
	$(BENCH)/render.py --results $(BENCH_OUT)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
