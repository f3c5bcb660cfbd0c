"""Generation options, declared once.

``GenerationOptions`` is the one definition of every option a call can set: its fields are
``ChatSeaLion``'s instance defaults (the chat model inherits them), the names accepted per
call (``llm.invoke(msgs, temperature=0)``), and the validated values a backend receives in
``GenerationRequest.options``. Each backend maps them to its engine in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CONNECTION_OPTIONS",
    "SAMPLING_OPTIONS",
    "GenerationOptions",
    "option_names",
    "optional_fields",
]

SAMPLING_OPTIONS = ("temperature", "top_p", "top_k", "seed")
"""The sampling options, which a backend passes to its sampler (``GenerationOptions.sampling``)."""
CONNECTION_OPTIONS = ("timeout", "max_retries")
"""Options of a server backend's connection rather than of the generation: an HTTP API that
serves generations does not take them from its clients."""


class GenerationOptions(BaseModel):
    """What one generation may set: thinking, its budget, sampling, a server's timeout/retries."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    thinking: bool = True
    """Let the model reason in ``<think>`` before answering (SEA-LION's default: on)."""
    max_thinking_tokens: int | None = Field(default=None, ge=1)
    """Thinking budget: at this many reasoning tokens the reasoning closes and the model answers."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Most tokens to generate in all, reasoning included (None: up to the context window)."""
    temperature: float | None = Field(default=None, ge=0.0)
    """Sampling temperature (None: the backend's default, 0.6 for SEA-LION)."""
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    """Nucleus sampling probability mass (None: the backend's default, 0.95)."""
    top_k: int | None = Field(default=None, ge=0)
    """Sample from the k most likely tokens (0: no limit; None: the backend's default)."""
    seed: int | None = None
    """Random seed for reproducible sampling."""
    timeout: float | None = Field(default=None, gt=0)
    """Seconds to wait for a server backend's connection and each read (None: the backend's
    own setting; in-process backends ignore it)."""
    max_retries: int | None = Field(default=None, ge=0)
    """Retries on connection errors, HTTP 429 and 5xx for a server backend (None: the
    backend's own setting, 2 by default; in-process backends ignore it)."""

    def sampling(self) -> dict[str, Any]:
        """The sampling values that were set (None means: the backend's default)."""
        values = {name: getattr(self, name) for name in SAMPLING_OPTIONS}
        return {name: value for name, value in values.items() if value is not None}


def option_names() -> tuple[str, ...]:
    """Every per-call option name, in declaration order."""
    return tuple(GenerationOptions.model_fields)


def optional_fields(names: Iterable[str]) -> dict[str, Any]:
    """``pydantic.create_model`` fields for these options, each defaulting to None (not set).

    Each keeps the option's type, bounds and docstring: the generation fields of a request
    model (an HTTP API's body) without spelling the options again.
    """
    fields: dict[str, Any] = {}
    for name in names:
        option = GenerationOptions.model_fields[name]
        annotation: Any = option.annotation
        annotation = annotation | None
        if option.metadata:  # the bounds (ge, le, ...)
            annotation = Annotated[(annotation, *option.metadata)]
        fields[name] = (annotation, Field(default=None, description=option.description))
    return fields
