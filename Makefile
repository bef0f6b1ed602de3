# Developer entry points. `make help` lists them.
#
# Servers: unless MONGODB_URI is already set in the environment (external servers, e.g. the
# GitHub Actions service containers), targets that need servers first run `make stack-up`,
# which builds/starts FerretDB and Redis on 127.0.0.1 (scripts/stack.sh).
# STACK_BACKEND picks the MongoDB side: documentdb (FerretDB v2 on PostgreSQL 15 + DocumentDB,
# the default: real indexes and atomic updates) or ferretdb (FerretDB v1 on SQLite: lighter,
# no root needed beyond Redis); both answer on FERRETDB_PORT. README, "Why FerretDB here".

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PY := .venv/bin/python
STACK := scripts/stack.sh

STACK_BACKEND ?= documentdb
FERRETDB_PORT ?= 27018
REDIS_PORT ?= 6380
POSTGRES_PORT ?= 5433
FERRETDB_DEBUG_PORT ?= 8089
export STACK_BACKEND FERRETDB_PORT REDIS_PORT POSTGRES_PORT FERRETDB_DEBUG_PORT

# Decided before the defaults below are applied: was MONGODB_URI given from outside?
EXTERNAL_SERVERS := $(if $(MONGODB_URI),1,)
SERVERS := $(if $(EXTERNAL_SERVERS),,stack-up)
# The browser drives the dashboard in the faults tier, which runs only on servers it manages.
BROWSER := $(if $(EXTERNAL_SERVERS),,browser)

export MONGODB_URI ?= mongodb://127.0.0.1:$(FERRETDB_PORT)/
export REDIS_URL ?= redis://127.0.0.1:$(REDIS_PORT)/0
export ENTERPRISE_DEV ?= 1
# Tells the tests whether scripts/stack.sh manages the servers (the faults tier needs it).
export STACK_MANAGED := $(if $(EXTERNAL_SERVERS),0,1)

PYTEST_ARGS ?=

.PHONY: help venv browser stack-up stack-down stack-status indexes seed run test check loadtest bench clean distclean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Servers: MONGODB_URI=$(MONGODB_URI) REDIS_URL=$(REDIS_URL)$(if $(EXTERNAL_SERVERS), (external), (STACK_BACKEND=$(STACK_BACKEND)))"

venv: ## Create .venv and install '.[dev]' (only when pyproject.toml changed)
	@scripts/bootstrap.sh dev

browser: ## Install Debian's chromium + chromium-driver when missing (the dashboard test)
	@scripts/browser.sh

stack-up: ## Build (once) and start FerretDB + Redis on 127.0.0.1 (STACK_BACKEND=ferretdb|documentdb)
	@$(STACK) up

stack-down: ## Stop the local servers (both backends)
	@$(STACK) down

stack-status: ## Show the local servers
	@$(STACK) status

indexes: venv $(SERVERS) ## Apply the index definitions (python -m indexes sync)
	$(PY) -m indexes sync

seed: venv $(SERVERS) ## Seed a small data set if the database is empty; writes .stack/demo-admin.key
	@mkdir -p .stack
	$(PY) -m enterprise seed --preset small --if-empty --demo-key-file .stack/demo-admin.key

run: venv $(SERVERS) indexes seed ## Run the API on http://127.0.0.1:8000 (dev mode)
	$(PY) -m enterprise serve --host 127.0.0.1 --port 8000

test: venv $(BROWSER) $(SERVERS) ## Run the test suite (PYTEST_ARGS="-m unit" to narrow it)
	@rc=0; $(PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -ne 0 ]; then echo "make test: pytest exited with status $$rc" >&2; fi; \
	exit $$rc

check: venv ## Lint, format check, type check and the import layers (pyproject.toml)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	.venv/bin/lint-imports

loadtest: venv $(SERVERS) ## A short locust run held to the budget table (loadtests/locust.sh); exit 1 on a miss
	@scripts/bootstrap.sh dev,bench
	bash loadtests/locust.sh

bench: venv $(SERVERS) ## The benchmarks, the locust run and step load, one report with plots (loadtests/run.sh; BENCH_QUICK=1: ~6 min subset)
	@scripts/bootstrap.sh bench
	@scripts/loadtools.sh
	bash loadtests/run.sh

clean: ## Stop the stack; remove its data, logs and the Python caches (keeps .venv and the built launcher)
	@$(STACK) down
	rm -rf .stack/data .stack/logs .stack/pids .stack/demo-admin.key
	rm -rf .pytest_cache .mypy_cache .ruff_cache loadtests/results/tmp
	find . -path ./.venv -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean ## Also remove .venv, .stack and *.egg-info
	rm -rf .venv .stack *.egg-info
