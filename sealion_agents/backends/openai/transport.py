"""HTTP to an OpenAI-compatible server: one retry policy, a sync and an async opening loop.

Data flow: ``Request`` (path, JSON body, per-call timeout and retries) -> ``POST`` with
``stream: true`` -> an open 200 response (its SSE lines are read by the backend), or an
error. Opening is retried on connection errors, HTTP 429 and 5xx with exponential backoff
(``Retry-After`` honoured, capped); 401/403, 404 and other 4xx fail at once with an error
that says what to check. ``Attempts`` makes every decision (what retries, how long to wait,
when to give up) for both loops, which only send and sleep. A stream that breaks after it
began is an error (``broken``): its events were already delivered. Discovery and counting
use the plain ``get``/``post`` calls (no retries).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from sealion_agents.errors import (
    ServerAuthenticationError,
    ServerError,
    ServerModelNotFoundError,
    ServerUnavailableError,
)

__all__ = ["API_KEY_ENV", "Attempts", "Request", "Retryable", "Transport"]

logger = logging.getLogger(__name__)

API_KEY_ENV = "SEALION_API_KEY"
"""Environment variable read for the API key when none is given."""

DEFAULT_TIMEOUT = 600.0
"""Seconds to wait for a server response when ``timeout`` is not set."""
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a connection when ``timeout`` is not set."""
BACKOFF = 0.5
"""First retry delay in seconds; it doubles on every retry (with jitter)."""
MAX_BACKOFF = 8.0
"""Longest wait between two attempts, ``Retry-After`` included."""


@dataclass(frozen=True)
class Request:
    """One HTTP request: path, JSON body, this call's timeout and retries (None: the backend's)."""

    path: str
    body: dict[str, Any]
    timeout: float | None = None
    max_retries: int | None = None


class Retryable(Exception):
    """A failed attempt that another attempt may fix (HTTP 429 or 5xx)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Attempts:
    """The retry policy for opening one request: what retries, how long to wait, when to stop.

    ``wait()`` before each attempt gives the delay to sleep (0 for the first);
    ``failed(error)`` after a failed one raises the error to give up with, or returns to
    let the loop try again.
    """

    def __init__(self, attempts: int, where: str) -> None:
        self.attempts = attempts
        self.where = where
        self.made = 0
        self.last: Exception | None = None

    def wait(self) -> float:
        """Seconds to sleep before the next attempt (counted as made)."""
        self.made += 1
        if self.made == 1 or self.last is None:
            return 0.0
        if isinstance(self.last, Retryable) and self.last.retry_after is not None:
            return min(self.last.retry_after, MAX_BACKOFF)
        return min(BACKOFF * 2 ** (self.made - 2), MAX_BACKOFF) * (0.75 + random.random() / 2)

    def failed(self, error: Exception) -> None:
        """Record a failed attempt: raise at once unless it may pass, or when none are left."""
        if isinstance(error, httpx.TransportError):
            logger.info("%s: %s (attempt %d)", self.where, type(error).__name__, self.made)
        elif not isinstance(error, Retryable):
            raise error
        self.last = error
        if self.made >= self.attempts:
            raise ServerUnavailableError(
                f"{self.where} did not answer after {self.attempts} attempt(s): {error}"
            )


class Transport:
    """The HTTP clients of one backend (one sync, one async per event loop) and its headers."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None,
        headers: dict[str, str],
        timeout: float | None,
        max_retries: int,
    ) -> None:
        self.base_url = base_url
        self.root = base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url
        self.where = f"{base_url} (model {model!r})"
        self.timeout = timeout
        self.max_retries = max_retries
        self._headers = {"Accept": "text/event-stream", **headers}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.client: Any = None
        """The sync client (None until first use)."""
        self._aclients: dict[int, Any] = {}
        self._lock = threading.Lock()

    # -- plain calls (discovery, counting) -------------------------------------------

    def get(self, path: str, *, root: bool = False) -> Any:
        """``GET`` a path of the API (or of the server's root); unreachable: an error."""
        return self._call("GET", (self.root if root else self.base_url) + path, None)

    def post(self, path: str, body: dict[str, Any], *, root: bool = True) -> Any:
        """``POST`` JSON to a path of the server's root (or of the API); unreachable: an error."""
        return self._call("POST", (self.root if root else self.base_url) + path, body)

    def _call(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        try:
            return self.sync_client().request(method, url, json=body, headers=self._headers)
        except httpx.TransportError as exc:
            raise ServerUnavailableError(f"{self.where} cannot be reached: {exc}") from exc

    def failure(self, status: int, text: str, retry_after: str | None) -> Exception:
        """The error for a non-200 response (``Retryable`` when a retry may help)."""
        detail = _error_message(text)
        if status in (401, 403):
            return ServerAuthenticationError(
                f"{self.where} refused the request (HTTP {status}): {detail}. Check the API key "
                f"(api_key=... or the {API_KEY_ENV} environment variable)."
            )
        if status == 404 or (status == 400 and "does not exist" in detail):
            return ServerModelNotFoundError(
                f"{self.where}: the server does not serve this model (HTTP {status}): {detail}. "
                f"List its models at {self.base_url}/models."
            )
        if status == 429 or status >= 500:
            delay = None
            if retry_after:
                try:
                    delay = float(retry_after)
                except ValueError:
                    delay = None
            return Retryable(f"HTTP {status} from {self.where}: {detail}", delay)
        return ServerError(f"{self.where} rejected the request (HTTP {status}): {detail}")

    def broken(self, exc: Exception | None) -> ServerError:
        """The error for a stream that ended before the reply was complete."""
        cause = f": {type(exc).__name__}: {exc}" if exc else ""
        return ServerError(f"{self.where} closed the stream before the reply was complete{cause}")

    # -- opening a stream, with retries ----------------------------------------------

    def _attempts(self, request: Request) -> Attempts:
        retries = self.max_retries if request.max_retries is None else request.max_retries
        return Attempts(retries + 1, self.where)

    def _build(self, client: Any, request: Request) -> Any:
        timeout = self._timeout() if request.timeout is None else httpx.Timeout(request.timeout)
        return client.build_request(
            "POST",
            self.base_url + request.path,
            json=request.body,
            headers=self._headers,
            timeout=timeout,
        )

    def open(self, request: Request) -> Any:
        """Send the request and return the open 200 response (retried by ``Attempts``)."""
        client = self.sync_client()
        attempts = self._attempts(request)
        while True:
            time.sleep(attempts.wait())
            try:
                response = client.send(self._build(client, request), stream=True)
            except httpx.TransportError as exc:
                attempts.failed(exc)
                continue
            if response.status_code == 200:
                return response
            text = response.read().decode("utf-8", "replace")
            response.close()
            attempts.failed(
                self.failure(response.status_code, text, response.headers.get("retry-after"))
            )

    async def aopen(self, request: Request) -> Any:
        """Async twin of ``open``, on this event loop's ``httpx.AsyncClient``."""
        client = self._async_client()
        attempts = self._attempts(request)
        while True:
            await asyncio.sleep(attempts.wait())
            try:
                response = await client.send(self._build(client, request), stream=True)
            except httpx.TransportError as exc:
                attempts.failed(exc)
                continue
            if response.status_code == 200:
                return response
            text = (await response.aread()).decode("utf-8", "replace")
            await response.aclose()
            attempts.failed(
                self.failure(response.status_code, text, response.headers.get("retry-after"))
            )

    # -- clients ---------------------------------------------------------------------

    def _timeout(self) -> Any:
        if self.timeout is None:
            return httpx.Timeout(DEFAULT_TIMEOUT, connect=CONNECT_TIMEOUT)
        return httpx.Timeout(self.timeout)

    def sync_client(self) -> Any:
        """The sync client, opened on first use."""
        with self._lock:
            if self.client is None:
                self.client = httpx.Client(timeout=self._timeout())
            return self.client

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(id(loop))
        if client is None or client.is_closed:
            client = self._aclients[id(loop)] = httpx.AsyncClient(timeout=self._timeout())
        return client

    def close(self) -> None:
        """Close the HTTP connections; the next call opens new ones."""
        with self._lock:
            client, self.client = self.client, None
            aclients, self._aclients = self._aclients, {}
        if client is not None:
            client.close()
        for aclient in aclients.values():
            try:
                asyncio.get_running_loop().create_task(aclient.aclose())
            except RuntimeError:  # no running loop: drop it, its sockets close with it
                pass


def _error_message(text: str) -> str:
    """The message in an OpenAI-style error body, else the body itself (shortened)."""
    try:
        document = json.loads(text)
    except ValueError:
        return text.strip()[:300] or "(empty body)"
    if isinstance(document, dict):
        error = document.get("error", document.get("detail", document))
        if isinstance(error, dict):
            return str(error.get("message") or error)[:300]
        return str(error)[:300]
    return str(document)[:300]
