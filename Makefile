# Two entry points (see README): `make serve` and `make test`. Everything else is setup.
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup serve test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

serve: setup
	$(BIN)/vigil serve

test: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

bench: setup
	bash bench/setup-peers.sh
	$(BIN)/python bench/graphite_ingest.py

clean:
	rm -rf $(VENV) vigil-data
