"""The one narrow protocol every backend implements.

Data flow: ``GenerationRequest`` -> backend -> events: one ``PromptInfo``, then
``TextDelta`` pieces of raw model output (reasoning tags included), then one ``Finished``.
All LangChain logic (reasoning parsing, stop sequences, thinking budget, usage) lives in
``ChatSeaLion``; a backend only renders, generates and reports.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, runtime_checkable

__all__ = [
    "BatchBackend",
    "ChatBackend",
    "Event",
    "Finished",
    "GenerationRequest",
    "PromptInfo",
    "SyncBackend",
    "TextDelta",
    "close_iterator",
    "iterate_in_thread",
]


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: template messages, the thinking switch and sampling options."""

    messages: list[dict[str, str]]
    thinking: bool = True
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    assistant_prefix: str = ""
    """Text the assistant turn already holds; generation continues after it."""
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptInfo:
    """First event: the prompt's size and whether it leaves a ``<think>`` open."""

    prompt_tokens: int
    opens_reasoning: bool = False


@dataclass(frozen=True)
class TextDelta:
    """A piece of raw output; ``reasoning`` is set only by servers that split it out."""

    text: str = ""
    reasoning: str = ""
    tokens: int = 1


@dataclass(frozen=True)
class Finished:
    """Last event: why generation ended ("stop" or "length")."""

    reason: str
    completion_tokens: int | None = None


Event = PromptInfo | TextDelta | Finished


@runtime_checkable
class ChatBackend(Protocol):
    """What ``ChatSeaLion`` needs from a way of running the model."""

    @property
    def model_name(self) -> str:
        """A name for tracing and metadata."""
        ...

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        """Generate, yielding events; closing the iterator stops generation."""
        ...

    def astream(self, request: GenerationRequest) -> AsyncIterator[Event]:
        """Async twin of ``stream``; must not block the event loop."""
        ...

    def close(self) -> None:
        """Free the model or connection; the backend may load again on next use."""
        ...


@runtime_checkable
class BatchBackend(Protocol):
    """A backend whose engine takes many requests in one call (vLLM)."""

    def generate_batch(self, requests: list[GenerationRequest]) -> list[list[Event]]:
        """Run all requests in ONE engine call; return each request's events in order."""
        ...


T = TypeVar("T")
_DONE = object()


def close_iterator(iterator: object) -> None:
    """Close a generator (sync) so the work behind it stops; other iterators need nothing."""
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


async def iterate_in_thread(make_iterator: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Run a blocking iterator in its own thread and yield its items asynchronously.

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

    threading.Thread(target=produce, name="sealion-generate", daemon=True).start()
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


class SyncBackend:
    """Base for backends whose engine is blocking: ``astream`` runs ``stream`` in a thread."""

    def stream(self, request: GenerationRequest) -> Iterator[Event]:  # pragma: no cover
        """Generate, yielding events."""
        raise NotImplementedError

    async def astream(self, request: GenerationRequest) -> AsyncIterator[Event]:
        """Run ``stream`` in a worker thread so the event loop stays free."""
        async for event in iterate_in_thread(lambda: self.stream(request)):
            yield event
