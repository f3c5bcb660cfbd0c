"""Server-sent event responses that always end cleanly.

``event_stream`` wraps a generator of events (sse-starlette frames them) and takes over the
request's :class:`Admission` (``admission.hand_over()``): when the stream ends, fails or the
client goes away, the admission is released and the active-stream gauge goes down; a
failure after the first event becomes a last ``error`` event in OpenAI's shape, counted in
the error metric of the request's route.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

from sse_starlette.sse import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.requests import Request

from sealion_agents.serve.errors import error_body, error_for, error_type
from sealion_agents.serve.metrics import route_label
from sealion_agents.serve.state import Admission, ServerState

__all__ = ["event_stream", "json_event", "started"]

logger = logging.getLogger(__name__)


T = TypeVar("T")


async def started(items: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """Wait for the first of ``items`` and return an iterator over all of them.

    A failure before the first item (a prompt too long, a missing collection) raises here,
    while the response can still carry its status; the iterator closes ``items`` when done.
    """
    try:
        first = await anext(items)
    except StopAsyncIteration:
        await _close(items)
        return _empty()
    except BaseException:
        await _close(items)
        raise

    async def replay() -> AsyncGenerator[T, None]:
        try:
            yield first
            async for item in items:
                yield item
        finally:
            await _close(items)

    return replay()


async def _close(items: AsyncIterator[Any]) -> None:
    close = getattr(items, "aclose", None)
    if close is not None:
        await close()


async def _empty() -> AsyncGenerator[Any, None]:
    return
    yield


def json_event(data: Any, event: str | None = None) -> dict[str, str]:
    """One SSE event carrying JSON (or the literal ``[DONE]``)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return {"data": text, "event": event} if event else {"data": text}


def event_stream(
    state: ServerState,
    request: Request,
    events: AsyncIterator[dict[str, str]],
    admission: Admission | None,
    *,
    error_event: str | None = None,
    done: bool = False,
) -> EventSourceResponse:
    """A streaming response of ``events`` that owns ``admission``; see the module docstring."""
    if admission is not None:
        admission.hand_over()

    async def guarded() -> AsyncIterator[dict[str, str]]:
        state.metrics.active_streams.inc()
        try:
            async for event in events:
                yield event
        except Exception as exc:  # after headers: the error travels as the last event
            logger.warning("stream failed: %s", exc)
            error = error_for(exc)
            kind = error_type(error.status)
            state.metrics.errors.labels(route_label(request.scope), kind).inc()
            yield json_event(error_body(error.status, str(error), error.code), error_event)
            if done:
                yield json_event("[DONE]")
        finally:
            state.metrics.active_streams.dec()
            await _close(events)
            if admission is not None:
                await admission.release()

    release = BackgroundTask(admission.release) if admission is not None else None
    return EventSourceResponse(
        guarded(),
        sep="\n",
        ping=15,
        background=release,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
