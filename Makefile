# Two entry points (see README): `make serve` and `make test`. Everything else is setup.
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup serve test test-debs lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

serve: setup
	$(BIN)/vigil serve

# Debian packages the tests use as real peers (Nagios plugins for alert checks).
TEST_DEBS := monitoring-plugins-basic
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

test-debs:
	@missing=$$(for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

test: setup test-debs
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

bench: setup
	bash bench/setup-peers.sh
	$(BIN)/python bench/graphite_ingest.py

clean:
	rm -rf $(VENV) vigil-data
