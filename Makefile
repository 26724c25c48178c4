# Two entry points (see README): `make serve` and `make test`. Everything else is setup.
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3
UI_BUNDLE := src/vigil/web/static/main.js
NODE_MODULES := node_modules/.package-lock.json

.PHONY: setup serve test test-debs lint bench clean

setup: $(VENV)/.installed $(UI_BUNDLE)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# The web UI: npm packages pinned by package-lock.json, ui/ bundled by esbuild into
# src/vigil/web/static/ (not committed). Node.js and npm from Debian when missing.
$(NODE_MODULES): package.json package-lock.json
	command -v npm >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; }
	npm ci --no-audit --no-fund --ignore-scripts
	touch $@

$(UI_BUNDLE): $(NODE_MODULES) $(wildcard ui/*.js ui/*.css)
	npm run build

serve: setup
	$(BIN)/vigil serve

# Debian packages the tests use as real peers (Nagios plugins for alert checks,
# chromium for the web UI's browser tests: never a browser download; nats-server
# for the bus on JetStream; clickhouse-server 18.16 for the storage on a server and a cluster).
TEST_DEBS := monitoring-plugins-basic chromium nats-server clickhouse-server clickhouse-client
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
	rm -rf $(VENV) vigil-data node_modules src/vigil/web/static test-artifacts
