"""Per-key rate and parallel limits, and the bounded generation queue.

data flow: a request's key -> ``RateLimiter.take`` (token bucket) -> ``ParallelLimit``
(requests in flight per key) -> ``GenerationQueue.enter`` (a slot of the backend, or a
place among at most ``queue_size`` waiting) -> generation -> release in reverse order.
Every refusal is a :class:`Busy` carrying ``retry_after``; the server answers it 429.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["Busy", "GenerationQueue", "ParallelLimit", "RateLimiter"]


class Busy(Exception):
    """A request refused for now; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests a minute, bursts up to ``burst``."""

    def __init__(self, per_minute: float, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst or max(1, int(per_minute))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Spend one request of ``key``'s allowance or raise :class:`Busy`."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                raise Busy("rate limit reached for this key: slow down", (1.0 - tokens) / self.rate)
            self._buckets[key] = (tokens - 1.0, now)


class ParallelLimit:
    """At most ``limit`` requests of one key in flight at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active: dict[str, int] = {}
        self._lock = threading.Lock()

    def enter(self, key: str) -> None:
        """Count a request in, or raise :class:`Busy` when the key is at its limit."""
        with self._lock:
            if self._active.get(key, 0) >= self.limit:
                raise Busy(
                    f"this key already has {self.limit} requests in flight: wait for one to end",
                    1.0,
                )
            self._active[key] = self._active.get(key, 0) + 1

    def leave(self, key: str) -> None:
        """Count a request out."""
        with self._lock:
            left = self._active.get(key, 0) - 1
            if left > 0:
                self._active[key] = left
            else:
                self._active.pop(key, None)


class GenerationQueue:
    """``slots`` generations at once, at most ``queue_size`` more waiting.

    ``slots`` is what the backend runs in parallel; beyond the queue, :class:`Busy` comes at
    once (never a long wait).
    """

    def __init__(self, slots: int, queue_size: int) -> None:
        self.slots = max(1, slots)
        self.queue_size = max(0, queue_size)
        self.active = 0
        self.waiting = 0
        self._cond: asyncio.Condition | None = None
        self._seconds_per_generation: float | None = None  # running mean, for Retry-After

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def enter(self) -> None:
        """Take a slot, waiting in line when all are busy; :class:`Busy` when the line is full."""
        cond = self._condition()
        async with cond:
            if self.active < self.slots and self.waiting == 0:
                self.active += 1
                return
            if self.waiting >= self.queue_size:
                each = self._seconds_per_generation or 1.0
                wait = each * (self.waiting + 1) / self.slots
                raise Busy(
                    f"the server is busy ({self.active} generating, {self.waiting} waiting): "
                    "try again shortly",
                    wait,
                )
            self.waiting += 1
            try:
                await cond.wait_for(lambda: self.active < self.slots)
            finally:
                self.waiting -= 1
            self.active += 1

    async def leave(self, seconds: float | None = None) -> None:
        """Give the slot back (``seconds``: how long the generation held it)."""
        cond = self._condition()
        async with cond:
            self.active -= 1
            if seconds is not None:
                last = self._seconds_per_generation
                self._seconds_per_generation = (
                    seconds if last is None else 0.7 * last + 0.3 * seconds
                )
            cond.notify()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """``async with queue.slot():`` around one generation."""
        await self.enter()
        started = time.monotonic()
        try:
            yield
        finally:
            await self.leave(time.monotonic() - started)
