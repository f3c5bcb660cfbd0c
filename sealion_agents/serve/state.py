"""Everything one server holds: the model, the store, keys, limits, jobs and metrics.

data flow: ``async with state.admitted(key)`` -> the key's parallel limit -> a place in the
generation queue -> an :class:`Admission`, released when the block ends, or handed over to
a response stream (``event_stream``), which releases it when the stream ends (normally, on
error, or when the client goes away). Either way it is released exactly once.

Token counts (``count_tokens``, for ``/tokenize``) take neither a parallel place nor a
generation slot: they run one at a time in their own thread, at most ``COUNTS_WAITING``
in line (429 beyond). The model's context window is read once it has loaded, and the
length in bytes of its longest token (``token_bytes``, for refusing a prompt that cannot fit
from its length in bytes alone). ``grounded_qa`` builds the Q&A chain over a tenant's
collection that the chat and document APIs share.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sealion_agents.options import GenerationOptions
from sealion_agents.serve.config import ServeConfig
from sealion_agents.serve.jobs import Job, JobManager
from sealion_agents.serve.keys import ApiKey, KeyStore
from sealion_agents.serve.limits import Busy, GenerationQueue, ParallelLimit, RateLimiter
from sealion_agents.serve.metrics import GuardMetrics, Metrics
from sealion_agents.serve.tenant_store import TenantCollections

if TYPE_CHECKING:
    from sealion_agents.chat_model import ChatSeaLion
    from sealion_agents.guardrails import Guardrails
    from sealion_agents.qa.chain import GroundedQA

__all__ = ["UNMEASURED_TOKEN_BYTES", "Admission", "ServerState"]

logger = logging.getLogger(__name__)

COUNTS_WAITING = 32
"""Most token counts in flight at once (counting or in line); more get 429."""

UNMEASURED_TOKEN_BYTES = 1024
"""The longest token assumed when the backend does not know its own (vLLM, a remote server):
well above any tokenizer in use (Llama 3's longest token is 128 bytes)."""


@dataclass
class Admission:
    """A request's admission: its parallel count and (for generations) its queue slot."""

    state: ServerState
    key: ApiKey
    generation: bool
    started: float = field(default_factory=time.monotonic)
    handed_over: bool = False
    """True once a stream owns it: the ``admitted`` block no longer releases it."""
    _released: bool = False

    def hand_over(self) -> Admission:
        """Pass the admission to a stream that releases it when it ends."""
        self.handed_over = True
        return self

    async def release(self) -> None:
        """Give back what the request held (safe to call more than once)."""
        if self._released:
            return
        self._released = True
        self.state.parallel.leave(self.key.id)
        if self.generation:
            await self.state.queue.leave(time.monotonic() - self.started)


class ServerState:
    """The shared parts of one server."""

    def __init__(
        self,
        config: ServeConfig,
        llm: ChatSeaLion,
        client: Any,
        embeddings: Any,
        guardrails: Guardrails | None = None,
    ) -> None:
        self.config = config
        self.llm = llm
        backend = llm.backend
        self.metrics = Metrics()
        self.guardrails = guardrails
        """The safety checks of every answer (None: none)."""
        if guardrails is not None:  # its checks are counted in the server's metrics
            guardrails.guard.counter = GuardMetrics(self.metrics)
        self.keys = KeyStore(config.key_path)
        self.rate = RateLimiter(config.rate_per_minute)
        self.parallel = ParallelLimit(config.max_parallel_per_key)
        slots = config.max_parallel or backend.parallel_generations
        self.queue = GenerationQueue(slots, config.queue_size)
        self.collections = TenantCollections(client, embeddings)
        self.jobs = JobManager(on_finish=self._job_finished, max_file_bytes=config.max_upload_bytes)
        self.metrics.queue_depth.set_function(lambda: self.queue.waiting)
        self.metrics.generating.set_function(lambda: self.queue.active)
        self.metrics.jobs_running.set_function(self.jobs.running)
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.context_window: int | None = None
        """The model's context window in tokens, once loaded (None: not known)."""
        self.token_bytes = UNMEASURED_TOKEN_BYTES
        """Bytes of the model's longest token, once loaded (the backend's
        ``longest_token_bytes``, else ``UNMEASURED_TOKEN_BYTES``)."""
        self._counter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sealion-tokenize")
        self._counting = 0
        self._retrievers: dict[tuple[str, str], Any] = {}
        self._retrievers_lock = threading.Lock()

    # -- admission --------------------------------------------------------------------

    def take_rate(self, key: ApiKey) -> None:
        """Count a request against the key's rate, or raise ``Busy``."""
        try:
            self.rate.take(key.id)
        except Busy:
            self.metrics.rejected.labels("rate").inc()
            raise

    @asynccontextmanager
    async def admitted(self, key: ApiKey, *, generation: bool = True) -> AsyncIterator[Admission]:
        """Hold an admission for ``key`` (already within its rate) or raise ``Busy``.

        Released when the block ends (or fails), unless handed over to a stream by then.
        """
        admission = await self._admit(key, generation=generation)
        try:
            yield admission
        except BaseException:
            await admission.release()
            raise
        if not admission.handed_over:
            await admission.release()

    async def _admit(self, key: ApiKey, *, generation: bool) -> Admission:
        try:
            self.parallel.enter(key.id)
        except Busy:
            self.metrics.rejected.labels("parallel").inc()
            raise
        if not generation:
            return Admission(self, key, generation=False)
        try:
            await self.queue.enter()
        except Busy:
            self.parallel.leave(key.id)
            self.metrics.rejected.labels("queue").inc()
            raise
        except BaseException:
            self.parallel.leave(key.id)
            raise
        return Admission(self, key, generation=True)

    async def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the model's own tokenizer (as message text).

        Counted in the counting thread; ``Busy`` when ``COUNTS_WAITING`` are in flight.
        """
        if self._counting >= COUNTS_WAITING:
            self.metrics.rejected.labels("tokenize").inc()
            raise Busy(f"{self._counting} token counts are in flight: try again shortly", 1.0)
        self._counting += 1
        try:
            loop = asyncio.get_running_loop()
            return int(await loop.run_in_executor(self._counter, self.llm.get_num_tokens, text))
        finally:
            self._counting -= 1

    # -- retrieval ------------------------------------------------------------------

    def retriever(self, tenant: str, name: str) -> Any:
        """A hybrid retriever over the tenant's collection (kept, so its BM25 index is too)."""
        from sealion_agents.retrievers import SEARetriever

        store = self.collections.open(tenant, name)
        with self._retrievers_lock:
            cached = self._retrievers.get((tenant, name))
            if cached is None or cached.store is not store:
                cached = SEARetriever(store=store, k=self.config.retrieval_k)
                self._retrievers[(tenant, name)] = cached
            return cached

    def grounded_qa(self, tenant: str, name: str, options: Mapping[str, Any]) -> GroundedQA:
        """A GroundedQA over the tenant's collection; the request's options go to its answer.

        ``options``: the per-call options a request set; ``GenerationOptions``' own are
        applied to the answer step over the server's defaults (others, e.g. ``stop``, are
        not).
        """
        from sealion_agents.qa.chain import GroundedQA

        answer = GroundedQA.model_fields["answer_options"].default.model_dump(exclude_unset=True)
        answer["max_tokens"] = self.config.answer_max_tokens
        answer |= {k: v for k, v in options.items() if k in GenerationOptions.model_fields}
        return GroundedQA(
            llm=self.llm,
            retriever=self.retriever(tenant, name),
            answer_options=GenerationOptions(**answer),
            default_language=self.config.default_language,
            languages=self.config.languages,
            guardrails=self.guardrails,
        )

    def forget(self, tenant: str, name: str) -> None:
        """Drop the retriever kept for a deleted collection."""
        with self._retrievers_lock:
            self._retrievers.pop((tenant, name), None)

    # -- lifecycle ------------------------------------------------------------------

    def load(self) -> None:
        """Load the model and the embedding model (in a thread at start-up)."""
        try:
            self.llm.load()
            self.collections.embeddings.embed_query("ready")
            self._load_guard()
        except Exception as exc:
            logger.exception("loading failed")
            self.load_error = f"{type(exc).__name__}: {exc}"
            return
        try:
            self.context_window = int(self.llm.context_window)
        except Exception:  # a server backend that does not say: /v1/models leaves it out
            logger.warning("the model's context window is not known", exc_info=True)
        self.token_bytes = self.llm.backend.longest_token_bytes or UNMEASURED_TOKEN_BYTES
        self.ready.set()
        logger.info("model loaded; ready")

    def _load_guard(self) -> None:
        """Load a local guard model; warn about a guard server that is down.

        While a guard server is down, each check fails by the guard's policy.
        """
        if self.guardrails is None:
            return
        from sealion_agents.backends.openai import OpenAIBackend

        guard_llm = self.guardrails.guard.llm
        if not isinstance(guard_llm.backend, OpenAIBackend):
            guard_llm.load()
            return
        try:
            guard_llm.load()
        except Exception as exc:
            logger.warning(
                "the guard server cannot be reached (%s); each check fails %s until it can",
                exc,
                self.guardrails.guard.fail,
            )

    def _job_finished(self, job: Job) -> None:
        self.metrics.jobs.labels(job.stage).inc()

    async def close(self) -> None:
        """Stop jobs and counts, and free the model."""
        self._counter.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.jobs.close)
        await asyncio.to_thread(self.llm.close)
        if self.guardrails is not None:
            await asyncio.to_thread(self.guardrails.guard.llm.close)
