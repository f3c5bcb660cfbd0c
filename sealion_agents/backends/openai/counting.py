"""Token counters for an OpenAI-compatible server: its own tokenize endpoint, or a local one.

Data flow: message text -> the server's ``/tokenize`` (vLLM, llama.cpp, ``sealion serve``:
a token list) or llama-cpp-python's ``/extras/tokenize/count`` (a count, less its BOS) ->
an int; or, with ``tokenizer=``, a local ``tokenizer.json`` folder (``tokenizers``) or a
GGUF's vocabulary (``gguf_vocab``) -> an int. Which endpoint the server has is a
``ServerFacts`` field (``discovery``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sealion_agents.backends.gguf_vocab import gguf_token_counter
from sealion_agents.backends.openai.discovery import TOKENIZE
from sealion_agents.backends.openai.transport import Transport
from sealion_agents.errors import ServerError, require

__all__ = ["local_token_counter", "server_token_counter"]


def local_token_counter(path: str | Path) -> Callable[[str], int]:
    """Count tokens with a local tokenizer: a folder holding ``tokenizer.json``, or a GGUF."""
    path = Path(path).expanduser()
    if path.is_dir() and (path / "tokenizer.json").is_file():
        tokenizers = require("tokenizers", extra="tokenizers", feature="A local tokenizer")
        tokenizer = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
        return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)
    if path.is_file() and path.suffix == ".gguf":
        return gguf_token_counter(path)
    raise FileNotFoundError(
        f"tokenizer={str(path)!r} is neither a folder holding tokenizer.json nor a .gguf file. "
        "Pass the model's Hugging Face folder (with tokenizer.json) or its GGUF file."
    )


def server_token_counter(
    transport: Transport, model: str, path: str, offset: int
) -> Callable[[str], int]:
    """Count tokens with the server's endpoint ``path``, less ``offset`` (its BOS)."""

    def body(text: str) -> dict[str, Any]:
        if path == TOKENIZE:
            return {"model": model, "prompt": text, "content": text, "add_special_tokens": False}
        return {"model": model, "input": text}

    def count(text: str) -> int:
        response = transport.post(path, body(text))
        if response.status_code != 200:
            raise ServerError(
                f"{transport.root}{path} failed to count tokens (HTTP {response.status_code})."
            )
        document = response.json()
        if "count" in document:
            return max(0, int(document["count"]) - offset)
        return max(0, len(document.get("tokens") or []) - offset)

    return count
