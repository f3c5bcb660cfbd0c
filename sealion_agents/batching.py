"""One engine call per round for ``batch()`` on backends that batch (vLLM).

``ChatSeaLion.batch`` goes through LangChain's own machinery (its thread pool and
``max_concurrency``, the cache, the rate limiter, callbacks); each input's generation then
hands its request to the ``BatchRounds`` of that batch call instead of streaming alone. A
runner thread waits until every input that runs (at most ``max_concurrency`` at once) has handed
in its request, makes ONE ``generate_batch`` call for them, and gives each its events.
Runs are counted through callbacks, so an input served from the cache or failing early is
not waited for, and one held by a rate limiter is. A thinking budget's continuation is a
new request in the next round. Should a run fail before LangChain reports its start, the
runner goes ahead after a short quiet spell rather than wait for it.

Data flow: invocations (LangChain threads or tasks) -> ``submit``/``asubmit`` -> runner
thread -> ``backend.generate_batch(requests)`` -> each invocation's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_config_list

from sealion_agents.backends.base import ChatBackend, Event, GenerationRequest

__all__ = ["CURRENT_ROUNDS", "BatchRounds", "batch_rounds"]

_QUIET = 0.5  # seconds without any news after which a waiting round runs anyway

CURRENT_ROUNDS: contextvars.ContextVar[BatchRounds | None] = contextvars.ContextVar(
    "sealion_batch_rounds", default=None
)
"""The rounds of the ``batch()`` call this code runs in (LangChain copies it to its workers)."""


class _Slot:
    """Where one request's events (or error) arrive."""

    def __init__(self, request: GenerationRequest, deliver: Callable[[Any], None]) -> None:
        self.request = request
        self.deliver = deliver


class BatchRounds(BaseCallbackHandler):
    """Gathers one batch call's generations into engine rounds; also its callback handler."""

    run_inline = True  # count runs in the thread that starts them, before they submit

    def __init__(self, backend: ChatBackend, *, size: int, concurrency: int) -> None:
        self.backend = backend
        self.rounds = 0
        self._size = size  # inputs of the batch call
        self._concurrency = concurrency  # most runs LangChain starts at once
        self._started = 0
        self._active: set[Any] = set()  # runs started and not yet ended
        self._waiting: list[_Slot] = []
        self._closed = False
        self._cond = threading.Condition()
        self._runner = threading.Thread(target=self._run, name="sealion-batch", daemon=True)
        self._runner.start()

    # -- callbacks: which runs are still going ----------------------------------------------

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: Any, **_: Any) -> None:
        """A run of this batch started."""
        with self._cond:
            self._started += 1
            self._active.add(run_id)

    def on_llm_end(self, response: Any, *, run_id: Any, **_: Any) -> None:
        """A run ended (generated, or served from the cache)."""
        self._ended(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: Any, **_: Any) -> None:
        """A run failed."""
        self._ended(run_id)

    def _ended(self, run_id: Any) -> None:
        with self._cond:
            self._active.discard(run_id)
            self._wake_if_ready()

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> list[Event]:
        """Hand in a request and wait for its round's events (sync callers)."""
        done = threading.Event()
        box: list[Any] = []

        def deliver(result: Any) -> None:
            box.append(result)
            done.set()

        self._enqueue(_Slot(request, deliver))
        done.wait()
        return self._unwrap(box[0])

    async def asubmit(self, request: GenerationRequest) -> list[Event]:
        """Hand in a request and await its round's events (async callers)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def deliver(result: Any) -> None:
            loop.call_soon_threadsafe(_settle, future, result)

        self._enqueue(_Slot(request, deliver))
        return self._unwrap(await future)

    def close(self) -> None:
        """Stop the runner once the batch call is over."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._runner.join(timeout=5)

    def _enqueue(self, slot: _Slot) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("this batch call has already ended")
            self._waiting.append(slot)
            self._wake_if_ready()

    @staticmethod
    def _unwrap(result: Any) -> list[Event]:
        if isinstance(result, BaseException):
            raise result
        return list(result)

    # -- the runner ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._ready():
                    if not self._cond.wait(timeout=_QUIET) and self._waiting:
                        break  # nothing changed for a while: a run was lost before it started
                if self._closed and not self._waiting:
                    return
                slots, self._waiting = self._waiting, []
            self.rounds += 1
            try:
                results: list[Any] = list(self.backend.generate_batch([s.request for s in slots]))
            except Exception as exc:  # the engine call failed: every request of the round did
                results = [exc] * len(slots)
            for slot, result in zip(slots, results, strict=True):
                slot.deliver(result)

    def _wake_if_ready(self) -> None:
        """Wake the runner only when a round can start (fewer thread switches)."""
        if self._ready():
            self._cond.notify_all()

    def _ready(self) -> bool:
        """Every running input has handed in its request, and no other is about to start."""
        if not self._waiting or len(self._waiting) < len(self._active):
            return False
        more_to_start = self._started < self._size and len(self._active) < self._concurrency
        return not more_to_start


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # an error travels as a value: _unwrap raises it in the caller
        future.set_result(result)


@contextlib.contextmanager
def batch_rounds(
    backend: ChatBackend, config: RunnableConfig | list[RunnableConfig] | None, size: int
) -> Iterator[list[RunnableConfig]]:
    """Gather one batch call's generations into rounds; yields each input's config.

    Without a ``max_concurrency`` every input runs at once (the engine batches them); each
    config gets the rounds' run counter among its callbacks.
    """
    configs: list[RunnableConfig] = []
    for cfg in get_config_list(config, size):
        cfg = RunnableConfig(**cfg)  # type: ignore[typeddict-item]
        if cfg.get("max_concurrency") is None:
            cfg["max_concurrency"] = size
        configs.append(cfg)
    rounds = BatchRounds(backend, size=size, concurrency=configs[0].get("max_concurrency") or 1)
    for cfg in configs:
        callbacks = cfg.get("callbacks")
        if isinstance(callbacks, BaseCallbackManager):
            manager = callbacks.copy()
            manager.add_handler(rounds, inherit=False)
            cfg["callbacks"] = manager
        else:
            cfg["callbacks"] = [*(callbacks or []), rounds]
    token = CURRENT_ROUNDS.set(rounds)
    try:
        yield configs
    finally:
        CURRENT_ROUNDS.reset(token)
        rounds.close()
