# The two commands of the README: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOME_DIR ?= .commonground
PORT ?= 8000

.PHONY: install run demo test test-postgres bench bench-scale clean

$(BIN)/commonground: pyproject.toml setup.py src/commonground/adapters/_keyed_hash.c
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/commonground

## Set up, build the demo store, and serve it on http://127.0.0.1:$(PORT)
run: install
	$(BIN)/commonground --home $(HOME_DIR) demo --reset
	$(BIN)/commonground --home $(HOME_DIR) serve --port $(PORT)

## Pass the tests (unit, fixtures, integration, import contracts), one pytest worker per core
## (pytest-xdist; every test builds its own store, database and server port). WORKERS=0 runs serially.
WORKERS ?= auto
test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(WORKERS)

## The store-building suites again with every store on PostgreSQL (a fresh database per test;
## CI runs it after `make test`). tests/unit builds no store (the pure core), so it is not rerun.
PG_TEST_URL ?= postgresql://127.0.0.1:5432/test
test-postgres: install
	COMMONGROUND_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest -n $(WORKERS) tests/integration tests/browser

## Long benchmarks, outside the test run (figures in docs/benchmarks.md)
bench: install
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/governed_query.py
	$(BIN)/python benchmarks/ledger.py --api append_entries
	$(BIN)/python benchmarks/consent_filter.py
	$(BIN)/python benchmarks/receipts.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/export.py
	$(BIN)/python benchmarks/curation.py
	$(BIN)/python benchmarks/seal.py
	$(BIN)/python benchmarks/catalogue.py
	$(BIN)/python benchmarks/conversations.py
	$(BIN)/python benchmarks/code_to_data.py
	$(BIN)/python benchmarks/dp.py

## DuckDB vs Spark local at 10M and 50M rows (one run each; ~30 min, see docs/benchmarks.md)
bench-scale: install
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) $(HOME_DIR) test-artifacts
