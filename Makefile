# One-command setup for a fresh machine: `make run` serves, `make test` checks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench e2e-llm clean system-deps

# Python 3.11+ or a one-line refusal; a .venv made by an older Python is removed, never reused.
NEEDS_311 = -c 'import sys; sys.exit(sys.version_info < (3, 11))'

$(BIN)/python:
	@$(PYTHON) $(NEEDS_311) 2>/dev/null || { echo "alex needs Python 3.11 or newer; '$(PYTHON)' is \
	$$($(PYTHON) -V 2>&1): run make with PYTHON=python3.11 (or newer)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

$(VENV)/.runtime: requirements.txt setup.cfg | $(BIN)/python
	@$(BIN)/python $(NEEDS_311) || { rm -rf $(VENV); echo "alex: removed .venv (made by Python older than \
	3.11); run make again, with PYTHON=python3.11 if python3 is older" >&2; exit 1; }
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

system-deps:  ## what tests and sandbox need besides Python: redis-server, nginx, bwrap, chromium + chromedriver (apt-get installs them when missing, as root)
	@for tool in redis-server:redis-server nginx:nginx bwrap:bubblewrap chromium:chromium chromedriver:chromium-driver; do \
		command -v $${tool%%:*} >/dev/null || [ -x /usr/sbin/$${tool%%:*} ] || { command -v apt-get >/dev/null && \
		[ "$$(id -u)" = 0 ] && { apt-get update -qq; apt-get install -y -qq $${tool#*:} >/dev/null; }; } || \
		echo "alex: the tests need $${tool%%:*} (apt-get install $${tool#*:})"; \
	done

bench: $(VENV)/.dev  ## fan-out and task-path benchmarks against a naive baseline (BENCH_ARGS=--quick: ~1 min)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

e2e-llm: $(VENV)/.dev  ## alex on a real model (llama-server + Qwen2.5-Coder, LLM_MODEL=1.5b|0.5b; first run builds ~15 min)
	$(BIN)/python -m e2e_llm.run --model $(or $(LLM_MODEL),1.5b) $(E2E_LLM_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
