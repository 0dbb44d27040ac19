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

.PHONY: install test test-fast demo smoke lint bench clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(PIP_C) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/spurspec run pipelines/demo.toml

smoke: $(STAMP)
	$(VENV)/bin/spurspec run pipelines/smoke.toml

lint: $(STAMP)
	$(VENV)/bin/ruff check spurspec tests

bench: $(STAMP)
	@for b in tests/benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
