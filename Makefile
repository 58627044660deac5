# Two entry points: `make dev` (a dev cluster on this machine, running an example job) and
# `make test` (the default test suite). Both create .venv and install into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup dev dev-reset test test-slow lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,all]'
	touch $@

dev: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/dev.sh

# The dev cluster from an empty state (no old jobs, drains or crons); the venv is kept.
dev-reset: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" FEDERATION_DEV_FRESH=1 bash scripts/dev.sh

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]  # 5: no test is marked slow

lint: setup
	$(BIN)/ruff check federation tests bench
	$(BIN)/mypy federation

bench: setup
	$(BIN)/python bench/raft_commit.py
	$(BIN)/python bench/api_submit.py
	$(BIN)/python bench/failover.py
	$(BIN)/python bench/idle_server.py

clean:
	rm -rf $(VENV) .dev-data .pytest_cache
