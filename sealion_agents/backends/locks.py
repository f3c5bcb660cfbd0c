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

    def acquire(self) -> None:
        """Wait for the lock; raise at once if this thread already holds it."""
        if self._owner == threading.get_ident():
            raise BackendBusyError(
                f"{self._what} is still streaming a reply in this thread: read that stream to "
                "its end (or close it with .close()) before calling the model again, or call "
                "from another thread."
            )
        self._lock.acquire()
        self._owner = threading.get_ident()

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
