"""Shared fixtures: tiny SEA-LION-shaped GGUF models on the real llama.cpp runtime."""

from __future__ import annotations

import os

os.environ.setdefault("GGML_NO_BACKTRACE", "1")  # no gdb backtrace on a ggml abort
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests import tiny_models  # noqa: E402

#: llama.cpp settings for tests: one thread each (two threads collapse under load).
LLAMA_TEST_KWARGS = {"n_threads": 1, "n_threads_batch": 1, "n_batch": 512}

VARIANTS = ("writes", "prefilled")


@pytest.fixture(scope="session", params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    """Both chat-template variants: the model writes ``<think>``, or the prompt holds it."""
    return str(request.param)


@pytest.fixture(scope="session")
def tiny_gguf_paths() -> dict[str, Path]:
    """The generated tiny GGUF of each template variant (cached on disk)."""
    return {name: tiny_models.tiny_gguf(name) for name in VARIANTS}


@pytest.fixture(scope="session")
def gguf_backends(tiny_gguf_paths: dict[str, Path]) -> Iterator[dict[str, object]]:
    """One loaded llama.cpp backend per variant, shared by the whole session."""
    from sealion_agents.backends.llamacpp import LlamaCppBackend

    backends = {
        name: LlamaCppBackend(path, **LLAMA_TEST_KWARGS) for name, path in tiny_gguf_paths.items()
    }
    yield backends
    for backend in backends.values():
        backend.close()
