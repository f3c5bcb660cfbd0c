"""Render a model's Jinja chat template with its profile's variables.

Data flow: template dicts + variables (the profile's thinking switch, ``tools``) -> Jinja
(sandboxed, as Hugging Face renders templates) -> prompt text. Used by backends that
tokenize prompts themselves (GGUF).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

__all__ = ["ChatTemplate", "thinking_mode"]


def thinking_mode(thinking: bool) -> str:
    """The template value SEA-LION expects for a thinking flag: "on" or "off"."""
    return "on" if thinking else "off"


def _raise(message: str) -> None:
    raise ValueError(f"The chat template refused the messages: {message}")


@lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = lambda value, indent=None, **_: json.dumps(
        value, ensure_ascii=False, indent=indent
    )
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


class ChatTemplate:
    """A chat template and the special tokens it refers to."""

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        if not source or not source.strip():
            raise ValueError(
                "The chat template is empty: pass chat_template=... or use a model file that "
                "stores one (GGUF key tokenizer.chat_template)."
            )
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self._template = _compile(source)

    def render(
        self,
        messages: list[dict[str, str]],
        *,
        variables: Mapping[str, Any] | None = None,
        tools: Sequence[dict[str, Any]] = (),
        add_generation_prompt: bool = True,
    ) -> str:
        """Render the prompt with template ``variables`` (a thinking switch) and ``tools``."""
        extra = dict(variables or {})
        if tools:
            extra["tools"] = list(tools)
        return str(
            self._template.render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                **extra,
            )
        )
