# The two Quickstart commands: `make demo` and `make test`. Both set up .venv from pyproject.toml first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install clean

$(BIN)/minerwatch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.test-deps: $(BIN)/minerwatch
	$(BIN)/python -m pip install --quiet -e '.[test,spark]'
	@touch $@

install: $(BIN)/minerwatch

# Detect crypto-mining in the bundled sample findings with the shipped seed rule (fresh demo state each time).
demo: $(BIN)/minerwatch
	@rm -f .minerwatch/demo.db .minerwatch/demo.db-wal .minerwatch/demo.db-shm
	$(BIN)/minerwatch detect --allowlist minerwatch/data/samples/allowlist.yaml --state .minerwatch/demo.db --format table --out .minerwatch/demo-alerts.jsonl

lint: $(VENV)/.test-deps
	$(BIN)/ruff check minerwatch tests bench scripts

# The whole suite: ruff, then pytest on both cores.
test: $(VENV)/.test-deps
	$(BIN)/ruff check minerwatch tests bench scripts
	./scripts/install-chromium.sh
	$(BIN)/python -m pytest -n 2 --dist loadgroup -p no:cacheprovider

clean:
	rm -rf $(VENV) .minerwatch .pytest_cache .hypothesis
