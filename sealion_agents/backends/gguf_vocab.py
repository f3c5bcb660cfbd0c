"""A GGUF's vocabulary and metadata, read without its weights (llama.cpp's vocab-only load).

Data flow: GGUF path -> ``llama_cpp._internals.LlamaModel`` with ``vocab_only`` set ->
metadata dict (``read_gguf_metadata``, the GGUF runtime's template and context length) or
text -> token count (``gguf_token_counter``, an OpenAI-compatible server counted locally).
The one place outside the GGUF runtime that reaches into llama-cpp-python's internals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sealion_agents.errors import require

__all__ = ["gguf_token_counter", "open_vocab", "read_gguf_metadata"]


def open_vocab(path: str | Path, *, feature: str) -> Any:
    """The GGUF's vocabulary (a ``LlamaModel`` without weights); ``feature`` names the caller."""
    llama_cpp = require("llama_cpp", extra="gguf", feature=feature)
    from llama_cpp._internals import LlamaModel

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    return LlamaModel(path_model=str(path), params=params, verbose=False)


def read_gguf_metadata(path: Path) -> dict[str, str]:
    """A GGUF's metadata, read without loading weights or creating a context."""
    model = open_vocab(path, feature="The GGUF runtime")
    try:
        return dict(model.metadata())
    finally:
        model.close()


def gguf_token_counter(path: Path) -> Callable[[str], int]:
    """Count tokens of message text (no special tokens, no BOS) with a GGUF's tokenizer.

    The vocabulary stays open for the counter's life; calls are serialised (a llama.cpp
    model is not safe to use from two threads at once).
    """
    model = open_vocab(path, feature="A GGUF tokenizer")
    lock = threading.Lock()

    def count(text: str) -> int:
        with lock:
            return len(model.tokenize(text.encode("utf-8"), False, False))

    return count
