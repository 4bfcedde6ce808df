# leadflow: every target installs what it needs first, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SYSDEPS := .leadflow/.system-deps-stamp
COMPILED := $(VENV)/.compiled-stamp
# The modules deploy/scripts/build_compiled.py compiles (services/lifecycle/compiled_guard.py lists them).
HOT_SOURCES := services/lifecycle/wire.py services/lifecycle/batch.py services/lifecycle/domain/machine.py \
	services/lifecycle/domain/log.py services/lifecycle/compiled_guard.py deploy/scripts/build_compiled.py
PYTEST_ARGS ?=

.PHONY: help install system-deps up down status demo test test-unit test-stack test-faults bench report-bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "leadflow needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

# The compiled build of the core's hot loops (mypyc); never fails the install: without mypyc or a C
# compiler the lifecycle runs from its .py sources (LEADFLOW_NO_COMPILE=1 skips it).
$(COMPILED): $(STAMP) $(HOT_SOURCES)
	@$(BIN)/pip install -q --disable-pip-version-check 'mypy>=1.10' || echo "build_compiled: mypy (mypyc) could not be installed; the lifecycle runs from its .py sources"
	@$(BIN)/python deploy/scripts/build_compiled.py
	@touch $(COMPILED)

install: $(STAMP) $(COMPILED) ## Create .venv with leadflow installed (.venv/bin/leadflow), the hot loops compiled

$(SYSDEPS): deploy/scripts/install-system-deps.sh
	@bash deploy/scripts/install-system-deps.sh
	@mkdir -p .leadflow && touch $(SYSDEPS)

system-deps: $(SYSDEPS) ## Install Java, Maven, PostgreSQL, Prometheus, Alertmanager when missing

up: install system-deps ## Start Kafka, PostgreSQL, Prometheus and Alertmanager on 127.0.0.1
	$(BIN)/leadflow up

down: ## Stop the local stack (leaves no process behind)
	@if [ -x $(BIN)/leadflow ]; then $(BIN)/leadflow down; else echo "nothing to stop (no .venv)"; fi

status: install ## Show each component and whether it answers
	$(BIN)/leadflow status

demo: up ## Start the stack and the services, stream last month of a B2B company through them, summarise
	$(BIN)/leadflow demo

test: install system-deps ## Run the whole test suite (unit, contract, integration, e2e, faults)
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

.PHONY: test-fuzz
test-fuzz: install system-deps ## Fuzz POST /v1/events with 10,000 generated requests on the real stack; print the figures
	LEADFLOW_FUZZ_REQUESTS=$${LEADFLOW_FUZZ_REQUESTS:-10000} $(BIN)/pytest -q -s -p no:cacheprovider tests/e2e/test_ingest_fuzz.py

test-unit: install ## Only the fast tests that need no servers
	$(BIN)/pytest -q tests/unit tests/contract

test-faults: install system-deps ## The pipeline under faults, full form: 100,000 events, 1 and 3 brokers (docs/reliability.md)
	LEADFLOW_FAULTS=full $(BIN)/pytest -q -s -p no:cacheprovider tests/faults/test_pipeline_faults.py $(PYTEST_ARGS)

bench: install system-deps ## Measure the core, the services and their peers (leadflow bench)
	$(BIN)/leadflow bench $(BENCH_ARGS)

report-bench: install system-deps ## Time a month's report over a store of 1,000,000 leads (own throwaway PostgreSQL)
	$(BIN)/python -m services.report.bench $(REPORT_BENCH_ARGS)

clean: down ## Stop the stack and delete .leadflow/ (data and logs)
	rm -rf .leadflow
