# Two commands do all the set-up: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint venv clean

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned to the CPU build this machine kind ships: anything that asks for
# plain `torch` would otherwise pull a 5 GB CUDA build (docs/operations.md).
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "Installing semantic-reuse and its dependencies into $(VENV) (a few minutes the first time)"
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[semantic,test]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(BIN)/semantic-reuse demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(STAMP) lint
	scripts/with-redis.sh $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
