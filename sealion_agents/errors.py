"""Errors that name the problem and what to do about it.

Every error this package raises on purpose derives from ``SeaLionError``, so callers (the
CLI, a service) can tell a user's mistake or an unreachable server from a bug by type.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from types import ModuleType

__all__ = [
    "BackendBusyError",
    "ContextWindowExceededError",
    "EngineError",
    "ModelDownloadError",
    "SeaLionError",
    "ServerAuthenticationError",
    "ServerError",
    "ServerModelNotFoundError",
    "ServerUnavailableError",
    "TokenizerUnavailableError",
    "UnsupportedSchemaError",
    "extra_requirements",
    "install_hint",
    "require",
]


class SeaLionError(Exception):
    """Base class of the errors sealion-agents raises for a reason it can explain."""


class ContextWindowExceededError(SeaLionError, ValueError):
    """The prompt plus the tokens asked for do not fit the model's context window."""

    def __init__(self, *, prompt_tokens: int, max_tokens: int | None, n_ctx: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.n_ctx = n_ctx
        if max_tokens:
            need = f"The prompt is {prompt_tokens} tokens and max_tokens is {max_tokens}"
            need += f", {prompt_tokens + max_tokens} in all"
        else:
            need = f"The prompt is {prompt_tokens} tokens"
        super().__init__(
            f"{need}, more than the context window of {n_ctx} tokens. Shorten the messages, "
            "lower max_tokens, or load the model with a larger context window (n_ctx on the "
            "GGUF runtime, max_model_len on vLLM)."
        )


class ModelDownloadError(SeaLionError, RuntimeError):
    """A model file could not be fetched from the Hugging Face Hub."""


class BackendBusyError(SeaLionError, RuntimeError):
    """A call that would wait forever: this thread still holds an open stream of the model."""


class EngineError(SeaLionError, RuntimeError):
    """The model's runtime failed while generating: a fault in the engine, not in the request."""


class TokenizerUnavailableError(SeaLionError, RuntimeError):
    """Tokens cannot be counted: the server has no tokenize endpoint and none was named."""


class UnsupportedSchemaError(SeaLionError, ValueError):
    """A JSON schema holds something constrained decoding cannot enforce (named in the message)."""


class ServerError(SeaLionError, RuntimeError):
    """An OpenAI-compatible server failed the request."""


class ServerUnavailableError(ServerError):
    """The server could not be reached, or kept failing, after all retries."""


class ServerAuthenticationError(ServerError):
    """The server refused the API key (HTTP 401/403)."""


class ServerModelNotFoundError(ServerError):
    """The server does not serve the requested model."""


def extra_requirements(extra: str) -> list[str]:
    """The requirements of one of this package's extras, as its installed metadata lists them."""
    try:
        requires = importlib.metadata.requires("sealion-agents") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    marker = re.compile(rf"""extra\s*==\s*["']{re.escape(extra)}["']""")
    return [r.split(";")[0].strip() for r in requires if marker.search(r)]


def install_hint(extra: str) -> str:
    """How to install an extra: its packages by name (sealion-agents is not on PyPI)."""
    packages = " ".join(f'"{r}"' for r in extra_requirements(extra))
    local = f'pip install -e ".[{extra}]" in a clone of sealion-agents'
    return f"pip install {packages} (or {local})" if packages else local


def require(module: str, *, extra: str, feature: str | None = None) -> ModuleType:
    """Import an optional dependency, or fail naming the packages that install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        raise ImportError(
            f"{feature or 'This feature'} needs the Python package {package!r}, which is not "
            f"installed. Install it with: {install_hint(extra)}"
        ) from exc
