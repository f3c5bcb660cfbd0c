"""A model lock that refuses to deadlock: the thread holding it cannot wait for it again.

A stream holds its model's lock from the first token to the last. When the same thread
calls the model again (``invoke``, ``close``) before that stream ends, an ordinary lock
would hang forever; ``ModelLock`` raises ``BackendBusyError`` at once, saying why.
"""

from __future__ import annotations

import threading
from types import TracebackType

from sealion_agents.errors import BackendBusyError

__all__ = ["ModelLock"]


class ModelLock:
    """A non-reentrant lock that knows its owner thread; usable as a context manager."""

    def __init__(self, what: str) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._what = what
        self._waiting = 0
        self._changed = threading.Condition()

    @property
    def waiting(self) -> int:
        """Threads blocked in ``acquire`` right now."""
        return self._waiting

    def wait_for_waiters(self, count: int, timeout: float | None = None) -> bool:
        """Block until ``count`` threads wait for the lock (False if ``timeout`` passed first)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._waiting >= count, timeout)

    def acquire(self) -> None:
        """Wait for the lock; raise at once if this thread already holds it."""
        if self._owner == threading.get_ident():
            raise BackendBusyError(
                f"{self._what} is still streaming a reply in this thread: read that stream to "
                "its end (or close it with .close()) before calling the model again, or call "
                "from another thread."
            )
        self._count_waiting(+1)
        try:
            self._lock.acquire()
        finally:
            self._count_waiting(-1)
        self._owner = threading.get_ident()

    def _count_waiting(self, step: int) -> None:
        with self._changed:
            self._waiting += step
            self._changed.notify_all()

    def release(self) -> None:
        """Release the lock."""
        self._owner = None
        self._lock.release()

    def __enter__(self) -> ModelLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()
