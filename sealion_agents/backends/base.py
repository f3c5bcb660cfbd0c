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
import asyncio
import contextvars
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from sealion_agents.options import GenerationOptions

__all__ = [
    "AnswerConstraint",
    "ChatBackend",
    "Event",
    "Finished",
    "GenerationRequest",
    "PromptInfo",
    "ReasoningDelta",
    "TextDelta",
    "close_iterator",
    "iterate_in_thread",
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
    def continues(self) -> bool:
        """True when ``assistant_prefix`` is continued (thinking budget, constraints)."""
        return True

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


T = TypeVar("T")
_DONE = object()


def close_iterator(iterator: object) -> None:
    """Close a generator (sync) so the work behind it stops; other iterators need nothing."""
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


class _Producers:
    """Daemon threads that run the blocking iterators of async iterations, kept and reused.

    A new thread per generation left the C allocator an arena per thread that it seldom
    gives back (a server's memory grew 20-30% per burst of 32 requests); reused threads keep
    reusing theirs. Daemon threads, unlike ``ThreadPoolExecutor``'s, never hold up the exit
    of a process whose generation is still running. A task never waits for a busy thread:
    a new one starts while fewer than ``size`` exist.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._queued = 0

    def submit(self, task: Callable[[], None]) -> None:
        with self._lock:
            self._queued += 1
            if self._queued > self._idle and self._threads < self.size:
                self._threads += 1
                threading.Thread(target=self._work, name="sealion-generate", daemon=True).start()
        self._tasks.put(task)

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            task = self._tasks.get()
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            contextvars.Context().run(task)  # a fresh context, as a new thread would have


_PRODUCERS = _Producers()


async def iterate_in_thread(make_iterator: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Run a blocking iterator in a worker thread and yield its items asynchronously.

    Leaving the ``async for`` early (or cancelling) tells the thread to close the
    iterator after its current item, which stops the generation behind it.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[object, BaseException | None]] = asyncio.Queue()
    cancelled = threading.Event()

    def put(item: object, error: BaseException | None = None) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (item, error))
        except RuntimeError:  # the loop closed under us: nobody is listening any more
            cancelled.set()

    def produce() -> None:
        try:
            if cancelled.is_set():
                return
            iterator = make_iterator()
            try:
                for item in iterator:
                    put(item)
                    if cancelled.is_set():
                        break
            finally:
                close_iterator(iterator)
        except BaseException as exc:  # handed to the consumer, re-raised there
            put(_DONE, exc)
        else:
            put(_DONE)

    _PRODUCERS.submit(produce)
    try:
        while True:
            item, error = await queue.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item  # type: ignore[misc]
    finally:
        cancelled.set()
