# The two commands of the README: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOME_DIR ?= .commonground
PORT ?= 8000

.PHONY: install run demo test bench clean

$(BIN)/commonground: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/commonground

## Set up, build the demo store, and serve it on http://127.0.0.1:$(PORT)
run: install
	$(BIN)/commonground --home $(HOME_DIR) demo --reset
	$(BIN)/commonground --home $(HOME_DIR) serve --port $(PORT)

## Pass the tests (unit, fixtures, integration, import contracts)
test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

## Long benchmarks, outside the test run (figures in docs/benchmarks.md)
bench: install
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/governed_query.py
	$(BIN)/python benchmarks/ledger.py --api append_entries
	$(BIN)/python benchmarks/consent_filter.py

clean:
	rm -rf $(VENV) $(HOME_DIR) test-artifacts
