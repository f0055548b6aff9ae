# One-command setup for a fresh machine: `make run` serves, `make test` checks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt setup.cfg | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime  ## install and start the Procfile's web process on the embedded store (port $$PORT, 8080)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

lint: $(VENV)/.dev  ## ruff over the whole tree, mypy over alex/
	$(BIN)/ruff check --no-cache .
	$(BIN)/mypy

test: lint system-deps  ## lint, then the whole test suite (unit, API, end-to-end with real gunicorn and Redis)
	$(BIN)/pytest -q

system-deps:  ## what the tests need besides Python: redis-server and bwrap (apt-get installs them when missing, as root)
	@command -v redis-server >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; } || \
		echo "alex: the Redis tests need redis-server on PATH (apt-get install redis-server)"
	@command -v bwrap >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; } || \
		echo "alex: the sandbox (and its tests) need bwrap on PATH (apt-get install bubblewrap)"

bench: $(VENV)/.dev  ## fan-out and task-path benchmarks against a naive baseline (BENCH_ARGS=--quick: ~1 min)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
