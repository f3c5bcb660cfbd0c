"""The one contract every backend honours: ``ChatBackend``.

Data flow: ``GenerationRequest`` (template messages + ``GenerationOptions``) -> backend ->
events: one ``PromptInfo``, then ``TextDelta`` pieces of raw model output (``<think>`` tags
included, parsed later by ``ReasoningParser``) or ``ReasoningDelta`` pieces a server already
split out, then one ``Finished``. All LangChain logic (reasoning parsing, stop sequences,
thinking budget, usage) lives in ``ChatSeaLion``; a backend renders, counts, generates and
reports.

A backend knows its model's name, context window and tokenizer (``count_tokens`` counts
with the model's own tokenizer, never an approximation), loads lazily (``load``), frees
what it holds (``close``), and streams sync and async. ``supports_batch`` backends also take
many requests in one engine call (``generate_batch``).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sealion_agents.options import GenerationOptions
from sealion_agents.profiles import ModelProfile, resolve_profile
from sealion_agents.threads import close_iterator, iterate_in_thread

__all__ = [
    "AnswerConstraint",
    "ChatBackend",
    "Event",
    "Finished",
    "GenerationRequest",
    "PromptInfo",
    "ReasoningDelta",
    "TextDelta",
    "close_iterator",  # re-exported: chat_model imports it from here
]


@dataclass(frozen=True)
class AnswerConstraint:
    """The answer must be JSON matching ``schema`` (prepared by ``json_schema.prepare``).

    Backends whose ``constraint_support`` is "answer" apply it from the first generated
    token (the caller continues after the reasoning). "whole" backends also honour
    ``after_reasoning`` (the output may reason freely up to ``</think>`` first) and
    ``optional`` (the answer may instead be text that does not open with ``{`` or ``[``).
    """

    schema: dict[str, Any]
    after_reasoning: bool = False
    optional: bool = False
    opener: str = ""
    """For "whole" backends: text the answer must open with before the JSON (a call's tag)."""
    grammar: str | None = None
    """A GBNF grammar of the answer where it is not JSON (a Python call); ``schema`` then
    still checks the parsed value."""


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: template messages, the options, and an assistant prefix to continue."""

    messages: list[dict[str, str]]
    options: GenerationOptions = field(default_factory=GenerationOptions)
    assistant_prefix: str = ""
    """Text the assistant turn already holds; generation continues after it."""
    extra: dict[str, object] = field(default_factory=dict)
    constraint: AnswerConstraint | None = None
    """Constrained decoding of the answer (see ``ChatBackend.constraint_support``)."""
    tools: tuple[dict[str, Any], ...] = ()
    """Tools for the chat template's ``tools`` variable (profiles whose templates describe
    them; OpenAI's function shape)."""

    @property
    def thinking(self) -> bool:
        """Whether the model may reason first."""
        return self.options.thinking

    @property
    def max_tokens(self) -> int | None:
        """Most tokens to generate (None: up to the context window)."""
        return self.options.max_tokens


@dataclass(frozen=True)
class PromptInfo:
    """First event: the prompt's size and whether it leaves a ``<think>`` open."""

    prompt_tokens: int
    opens_reasoning: bool = False


@dataclass(frozen=True)
class TextDelta:
    """A piece of raw model output (reasoning tags inline, as the model wrote them)."""

    text: str = ""
    tokens: int = 1


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of reasoning that a server already separated from the answer."""

    text: str = ""
    tokens: int = 1


@dataclass(frozen=True)
class Finished:
    """Last event: why generation ended ("stop" or "length")."""

    reason: str
    completion_tokens: int | None = None


Event = PromptInfo | TextDelta | ReasoningDelta | Finished


class ChatBackend(abc.ABC):
    """What ``ChatSeaLion`` needs from a way of running the model."""

    supports_batch: ClassVar[bool] = False
    """True when ``generate_batch`` runs many requests in one engine call (vLLM)."""

    @property
    def constraint_support(self) -> str:
        """How ``GenerationRequest.constraint`` is honoured.

        "answer": from the first generated token (``ChatSeaLion`` lets the model reason
        first, then continues the turn under the constraint); "whole": in one generation,
        reasoning free and the answer constrained; "none": not at all (replies are
        validated and retried instead).
        """
        return "none"

    @property
    def parallel_generations(self) -> int:
        """How many generations this backend runs at once to good effect.

        A server sizes its generation queue by it; 1 for an engine that runs one at a time.
        """
        return 1

    @property
    def longest_token_bytes(self) -> int | None:
        """Bytes of the model's longest token (None: unknown).

        B bytes of text are at least B / this many tokens: a sound bound, read before
        anything is tokenized.
        """
        return None

    @property
    def renders_tools(self) -> bool:
        """Whether a request's ``tools`` reach the chat template.

        Else a profile whose template would describe them gets them in the system message.
        """
        return True

    @property
    def continues(self) -> bool:
        """True when ``assistant_prefix`` is continued (thinking budget, constraints)."""
        return True

    @property
    def profile(self) -> ModelProfile:
        """The model's profile: thinking switch, tool format, history rule (``profiles``).

        Backends detect it from the model's name, chat template and metadata when the model
        loads (or take the one given); by default it is found from ``model_name``, once.
        """
        found = self.__dict__.get("_default_profile")
        if found is None:
            found = self.__dict__["_default_profile"] = resolve_profile(names=(self.model_name,))
        return found  # type: ignore[no-any-return]

    @property
    @abc.abstractmethod
    def model_name(self) -> str:
        """A name for tracing and metadata."""

    @property
    @abc.abstractmethod
    def context_window(self) -> int:
        """The model's context window in tokens (loads the model or asks the server)."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """How many tokens of the model's own tokenizer ``text`` is (as message text)."""

    @abc.abstractmethod
    def load(self) -> None:
        """Load the model (or reach the server) now rather than on first use."""

    @abc.abstractmethod
    def close(self) -> None:
        """Free the model or connections; the next call loads again."""

    @abc.abstractmethod
    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        """Generate, yielding events; closing the iterator stops generation."""

    async def astream(self, request: GenerationRequest) -> AsyncIterator[Event]:
        """Async twin of ``stream``; by default ``stream`` runs in a worker thread."""
        async for event in iterate_in_thread(lambda: self.stream(request)):
            yield event

    def generate_batch(self, requests: list[GenerationRequest]) -> list[list[Event] | Exception]:
        """Run all requests in ONE engine call; return each request's events in order.

        A request that fails alone (too long for the context window...) gets its error in
        its place; the others still run.
        """
        raise NotImplementedError(f"{type(self).__name__} does not batch; use stream().")
