# Set-up is automatic: `make run` and `make test` create .venv and install the project when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
PYTEST_WORKERS ?= 2

.PHONY: run poll test test-fast lint format bench clean help

help:
	@echo "make run    poll the configured feeds on a schedule (SQLite, digests in digests/)"
	@echo "make test   run the whole test suite (SQLite and PostgreSQL when reachable)"
	@echo "make lint   ruff and mypy"
	@echo "make bench  benchmarks, printed as one Markdown table"

$(STAMP): pyproject.toml setup.py monitor/_shinglehash.c monitor/_wordscan.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

run: $(STAMP)
	$(BIN)/monitor run

poll: $(STAMP)
	$(BIN)/monitor poll

test: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow and not browser" -x

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check monitor alerts
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format monitor alerts tests bench
	$(BIN)/ruff check --fix .

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
