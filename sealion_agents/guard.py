"""Safety checks with AI Singapore's SEA-Guard models: ``Guard`` returns a ``Verdict``.

Data flow: a prompt, a response or both -> ``GuardProfile.content`` (the guard's prompt
format) -> ONE user message (no system prompt, no history) -> the guard's ``ChatSeaLion``
(thinking off, a few tokens, greedy), whose backend is wrapped so that every generation is
constrained to the label grammar (``root ::= "safe" | "unsafe"``: plain text, no JSON) ->
the reply -> ``Verdict``. A reply that is not exactly a label (a server that cannot take a
grammar) or a failed call (server down, timeout, model error) is decided by the fail policy
("closed": unsafe, "open": safe), logged, and counted in a ``GuardCounter``.

``Guard`` is a LangChain ``Runnable``: its input is a prompt (``str``) or a dict with
``prompt`` and/or ``response``; ``batch`` goes through ``ChatSeaLion.batch`` (one engine call
per round on vLLM).

The prompt formats come from AI Singapore's API guide (``guides/inferencing/api.md``; see
``docs/models.md`` §3 and ``docs/guard.md``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import string
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableConfig

from sealion_agents.backends.base import (
    AnswerConstraint,
    ChatBackend,
    Event,
    GenerationRequest,
)
from sealion_agents.chat_model import ChatSeaLion
from sealion_agents.errors import SeaLionError
from sealion_agents.profiles import ModelProfile, name_matches

__all__ = [
    "GUARD_PROFILES",
    "SEA_GUARD",
    "FailPolicy",
    "Guard",
    "GuardCounter",
    "GuardInput",
    "GuardProfile",
    "Verdict",
    "guard_profile_for",
    "label_grammar",
]

logger = logging.getLogger(__name__)

FailPolicy = Literal["closed", "open"]
GuardInput = str | dict[str, str | None]
"""A prompt, or ``{"prompt": ..., "response": ...}`` (either may be left out)."""


@dataclass(frozen=True)
class GuardProfile:
    """How a guard model is prompted and what it answers."""

    name: str
    patterns: tuple[str, ...] = ()
    """Regular expressions matched against a model's normalised name (``profiles``)."""
    prompt_template: str = "{prompt}"
    """A prompt alone."""
    exchange_template: str = "Human user:{prompt}\nAI assistant:{response}"
    """A prompt and the assistant's response to it."""
    response_template: str = "Human user:\nAI assistant:{response}"
    """A response alone."""
    safe_label: str = "safe"
    unsafe_label: str = "unsafe"
    max_tokens: int = 8
    """Most tokens of the reply (at least the longest label's characters: the grammar ends)."""
    source: str = ""

    def __post_init__(self) -> None:
        for attribute, fields in (
            ("prompt_template", {"prompt"}),
            ("exchange_template", {"prompt", "response"}),
            ("response_template", {"response"}),
        ):
            template = getattr(self, attribute)
            found = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            if found != fields:
                raise ValueError(
                    f"GuardProfile.{attribute}={template!r} must hold exactly the fields "
                    f"{sorted(fields)} (as {{prompt}} / {{response}}); it holds {sorted(found)}."
                )
        if not self.safe_label or not self.unsafe_label or self.safe_label == self.unsafe_label:
            raise ValueError(
                f"GuardProfile labels must be two different non-empty strings; got "
                f"{self.safe_label!r} and {self.unsafe_label!r}."
            )
        if self.max_tokens < 1:
            raise ValueError(f"GuardProfile.max_tokens must be 1 or more, not {self.max_tokens}.")

    @property
    def labels(self) -> tuple[str, str]:
        """The two answers: safe first."""
        return (self.safe_label, self.unsafe_label)

    def matches(self, model_name: str) -> bool:
        """Whether a model name (repo id, GGUF file, served name) is one of this profile's."""
        return name_matches(self.patterns, model_name)

    def content(self, prompt: str | None = None, response: str | None = None) -> str:
        """The one user message that asks the guard about a prompt, a response, or both."""
        for argument, value in (("prompt", prompt), ("response", response)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"Guard: {argument} must be a str, not {type(value).__name__}.")
        if not (prompt or "").strip() and not (response or "").strip():
            raise ValueError(
                "Guard: nothing to check; give a prompt, a response, or both (non-blank text)."
            )
        if response is None:
            return self.prompt_template.format(prompt=prompt)
        if not prompt:
            return self.response_template.format(response=response)
        return self.exchange_template.format(prompt=prompt, response=response)


SEA_GUARD = GuardProfile(
    name="sea-guard",
    patterns=(r"sea-guard",),
    source="docs/models.md §3 (guides/inferencing/api.md: the prompt formats)",
)
"""AI Singapore's SEA-Guard models (Llama-, Qwen- and Gemma-SEA-Guard, the hosted
``aisingapore/SEA-Guard``): the API guide's formats, without the guide's trailing "."."""

GUARD_PROFILES: tuple[GuardProfile, ...] = (SEA_GUARD,)


def guard_profile_for(model_name: str) -> GuardProfile | None:
    """The guard profile a model name belongs to (None: not a known guard model)."""
    return next((p for p in GUARD_PROFILES if p.matches(model_name)), None)


def label_grammar(labels: Sequence[str]) -> str:
    """The GBNF grammar of a reply that is exactly one of ``labels`` (plain text)."""
    return "root ::= " + " | ".join(json.dumps(label, ensure_ascii=False) for label in labels)


@dataclass(frozen=True)
class Verdict:
    """The guard's decision on one check."""

    safe: bool
    label: str
    """The guard's label, or the fail policy's when the guard could not answer."""
    stage: str
    """Where the check ran: "input" (a prompt), "output" (a response), or the caller's name."""
    error: str | None = None
    """Why the guard could not answer (then ``label`` is the fail policy's), else None."""
    latency_s: float = 0.0
    """Seconds the check took (in a batch: the whole batch)."""

    @property
    def failed(self) -> bool:
        """True when the fail policy decided, not the guard."""
        return self.error is not None


@dataclass
class GuardCounter:
    """Checks counted by stage, label and whether the fail policy decided (thread-safe).

    A server exports ``snapshot()`` as a counter with the labels stage, verdict and failed.
    """

    _counts: dict[tuple[str, str, bool], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, verdict: Verdict) -> None:
        """Count one verdict."""
        key = (verdict.stage, verdict.label, verdict.failed)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> dict[tuple[str, str, bool], int]:
        """``{(stage, label, failed): count}`` now."""
        with self._lock:
            return dict(self._counts)

    def total(
        self, *, stage: str | None = None, label: str | None = None, failed: bool | None = None
    ) -> int:
        """How many verdicts match the given stage, label and failed flag (None: any)."""
        return sum(
            count
            for (s, lab, f), count in self.snapshot().items()
            if stage in (None, s) and label in (None, lab) and failed in (None, f)
        )


class Guard(Runnable[GuardInput, Verdict]):
    """A safety check by a SEA-Guard model on any ``ChatSeaLion`` backend.

    ``check(prompt=..., response=...)`` or, as a Runnable, ``invoke("a prompt")`` /
    ``invoke({"prompt": ..., "response": ...})`` return a ``Verdict``; ``batch`` runs many
    checks through ``ChatSeaLion.batch``. The reply is decoded under a grammar that allows
    only the two labels. When the guard cannot answer, ``fail`` decides: "closed" (default:
    unsafe) or "open" (safe); the event is logged and counted in ``counter``.
    """

    def __init__(
        self,
        llm: ChatSeaLion,
        profile: GuardProfile | None = None,
        *,
        fail: FailPolicy = "closed",
        counter: GuardCounter | None = None,
        timeout: float | None = None,
    ) -> None:
        """Wrap the guard model ``llm`` (nothing is loaded or sent).

        Args:
            llm: the guard model (``ChatSeaLion.from_gguf/from_vllm/from_openai``).
            profile: its prompt formats and labels (default: found from the model's name,
                else ``SEA_GUARD``).
            fail: "closed" (a check the guard cannot answer is unsafe) or "open" (safe).
            counter: where verdicts are counted (default: a new one; share one to export).
            timeout: seconds per request to a server (None: the model's own setting).
        """
        if not isinstance(llm, ChatSeaLion):
            raise TypeError(
                f"Guard needs a ChatSeaLion (from_gguf, from_vllm or from_openai), not "
                f"{type(llm).__name__}."
            )
        if fail not in ("closed", "open"):
            raise ValueError(f"fail={fail!r}: use 'closed' (unsafe) or 'open' (safe).")
        self.llm = llm
        self.profile = profile or guard_profile_for(llm.model_name) or SEA_GUARD
        self.fail: FailPolicy = fail
        self.counter = counter if counter is not None else GuardCounter()
        self.timeout = timeout
        self._model = llm.model_copy(update={"backend": _labelled(llm.backend, self.profile)})

    def __repr__(self) -> str:
        name, profile = self.llm.model_name, self.profile.name
        return f"Guard(model={name!r}, profile={profile!r}, fail={self.fail!r})"

    # -- what the guard reads ------------------------------------------------------------

    def messages(self, prompt: str | None = None, response: str | None = None) -> list[BaseMessage]:
        """The guard's whole input: one user message in the profile's format."""
        return [HumanMessage(self.profile.content(prompt, response))]

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "thinking": False,
            "max_tokens": self.profile.max_tokens,
            "temperature": 0.0,
        }
        if self.timeout is not None:
            options["timeout"] = self.timeout
        return options

    # -- checks --------------------------------------------------------------------------

    def check(
        self,
        prompt: str | None = None,
        response: str | None = None,
        *,
        stage: str | None = None,
        config: RunnableConfig | None = None,
    ) -> Verdict:
        """Check a prompt (stage "input"), a response or an exchange (stage "output")."""
        messages = self.messages(prompt, response)
        start = time.perf_counter()
        try:
            reply: Any = self._model.invoke(messages, config, **self._options())
        except Exception as exc:  # the guard could not answer: the fail policy decides
            reply = exc
        return self._verdict(reply, _stage(stage, response), time.perf_counter() - start)

    async def acheck(
        self,
        prompt: str | None = None,
        response: str | None = None,
        *,
        stage: str | None = None,
        config: RunnableConfig | None = None,
    ) -> Verdict:
        """Async ``check``."""
        messages = self.messages(prompt, response)
        start = time.perf_counter()
        try:
            reply: Any = await self._model.ainvoke(messages, config, **self._options())
        except Exception as exc:  # the guard could not answer: the fail policy decides
            reply = exc
        return self._verdict(reply, _stage(stage, response), time.perf_counter() - start)

    def invoke(
        self, input: GuardInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Verdict:
        """Check a prompt (``str``) or ``{"prompt": ..., "response": ...}``."""
        prompt, response = _read_input(input)
        return self.check(prompt, response, config=config)

    async def ainvoke(
        self, input: GuardInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Verdict:
        """Async ``invoke``."""
        prompt, response = _read_input(input)
        return await self.acheck(prompt, response, config=config)

    def batch(
        self,
        inputs: list[GuardInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        stage: str | None = None,
        **kwargs: Any | None,
    ) -> list[Verdict]:
        """Many checks through ``ChatSeaLion.batch`` (one engine call per round on vLLM).

        ``stage`` names every verdict's stage (default: "input" or "output" by the input).
        An input that is not a valid check raises (or, with ``return_exceptions``, its
        error takes its place); a check the guard cannot answer gets the fail policy's
        verdict.
        """
        read = [self._try_read(item) for item in inputs]
        _raise_first(read, return_exceptions)
        runs = [(i, self.messages(*r)) for i, r in enumerate(read) if isinstance(r, tuple)]
        configs = _configs_for(config, [i for i, _ in runs], len(inputs))
        start = time.perf_counter()
        replies = (
            self._model.batch(
                [m for _, m in runs], configs, return_exceptions=True, **self._options()
            )
            if runs
            else []
        )
        elapsed = time.perf_counter() - start
        return self._collect(read, runs, replies, elapsed, stage)  # type: ignore[return-value]

    async def abatch(
        self,
        inputs: list[GuardInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        stage: str | None = None,
        **kwargs: Any | None,
    ) -> list[Verdict]:
        """Async ``batch``."""
        read = [self._try_read(item) for item in inputs]
        _raise_first(read, return_exceptions)
        runs = [(i, self.messages(*r)) for i, r in enumerate(read) if isinstance(r, tuple)]
        configs = _configs_for(config, [i for i, _ in runs], len(inputs))
        start = time.perf_counter()
        replies = (
            await self._model.abatch(
                [m for _, m in runs], configs, return_exceptions=True, **self._options()
            )
            if runs
            else []
        )
        elapsed = time.perf_counter() - start
        return self._collect(read, runs, replies, elapsed, stage)  # type: ignore[return-value]

    def _collect(
        self,
        read: list[tuple[str | None, str | None] | Exception],
        runs: list[tuple[int, list[BaseMessage]]],
        replies: Sequence[Any],
        elapsed: float,
        stage: str | None,
    ) -> list[Verdict | Exception]:
        out: list[Verdict | Exception] = []
        by_index = {i: reply for (i, _), reply in zip(runs, replies, strict=True)}
        for i, item in enumerate(read):
            if isinstance(item, Exception):
                out.append(item)
            else:
                out.append(self._verdict(by_index[i], _stage(stage, item[1]), elapsed))
        return out

    def _try_read(self, value: Any) -> tuple[str | None, str | None] | Exception:
        """``_read_input`` with the message checked too; the error in its place."""
        try:
            prompt, response = _read_input(value)
            self.profile.content(prompt, response)  # nothing to check, wrong types: an error
        except (TypeError, ValueError) as exc:
            return exc
        return prompt, response

    # -- the verdict ---------------------------------------------------------------------

    def _verdict(self, reply: Any, stage: str, latency: float) -> Verdict:
        """Read the reply (a message, or the exception the call raised) as a verdict."""
        label: str | None = None
        error: str | None = None
        if isinstance(reply, Exception):
            error = f"{type(reply).__name__}: {reply}"
        else:
            text = reply.content if isinstance(reply.content, str) else str(reply.content)
            if text.strip() in self.profile.labels:
                label = text.strip()
            else:
                error = (
                    f"the guard model answered {text!r}, not {self.profile.safe_label!r} or "
                    f"{self.profile.unsafe_label!r}"
                )
        if label is None:
            label = self.profile.unsafe_label if self.fail == "closed" else self.profile.safe_label
            logger.warning(
                "Guard (%s stage) could not answer: %s. Failing %s: %s.",
                stage,
                error,
                self.fail,
                label,
                exc_info=reply if isinstance(reply, Exception) and not _explained(reply) else None,
            )
        verdict = Verdict(
            safe=label == self.profile.safe_label,
            label=label,
            stage=stage,
            error=error,
            latency_s=latency,
        )
        logger.debug("Guard verdict: %s", verdict)
        self.counter.record(verdict)
        return verdict


def _stage(stage: str | None, response: str | None) -> str:
    return stage if stage else ("input" if response is None else "output")


def _explained(exc: BaseException) -> bool:
    """An error that says what went wrong itself (no traceback needed in the log)."""
    return isinstance(exc, (SeaLionError, OSError, TimeoutError))


def _read_input(value: Any) -> tuple[str | None, str | None]:
    """A Runnable input as (prompt, response); a clear error for anything else."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"prompt", "response"})
        if unknown:
            raise ValueError(
                f"Guard input has unknown keys {unknown}; use 'prompt' and/or 'response'."
            )
        return value.get("prompt"), value.get("response")
    raise TypeError(
        f"Guard input must be a prompt (str) or a dict with 'prompt' and/or 'response', not "
        f"{type(value).__name__}."
    )


def _raise_first(read: Sequence[object], return_exceptions: bool) -> None:
    if not return_exceptions:
        for item in read:
            if isinstance(item, Exception):
                raise item


def _configs_for(
    config: RunnableConfig | list[RunnableConfig] | None, indices: list[int], size: int
) -> RunnableConfig | list[RunnableConfig] | None:
    """The configs of the inputs that run (a list follows the inputs)."""
    if not isinstance(config, list):
        return config
    if len(config) != size:
        raise ValueError(f"Guard.batch got {len(config)} configs for {size} inputs.")
    return [config[i] for i in indices]


# -- the label constraint: the guard model's backend, every generation under the grammar ----


def _labelled(inner: ChatBackend, profile: GuardProfile) -> ChatBackend:
    constraint = AnswerConstraint(
        schema={"enum": list(profile.labels)}, grammar=label_grammar(profile.labels)
    )
    kind = _BatchingLabelledBackend if inner.supports_batch else _LabelledBackend
    return kind(inner, constraint)


class _LabelledBackend(ChatBackend):
    """A backend whose every generation is constrained to the guard's labels.

    The constraint is a grammar, so the reply is plain text (never JSON); a server that
    cannot take a grammar gets none, and its reply is checked by ``Guard``.
    """

    def __init__(self, inner: ChatBackend, constraint: AnswerConstraint) -> None:
        self.inner = inner
        self.constraint = constraint

    def _constrained(self, request: GenerationRequest) -> GenerationRequest:
        return dataclasses.replace(request, constraint=self.constraint)

    @property
    def model_name(self) -> str:
        """The guard model's name."""
        return self.inner.model_name

    @property
    def profile(self) -> ModelProfile:
        """The guard model's profile (its chat template's switches)."""
        return self.inner.profile

    @property
    def context_window(self) -> int:
        """The guard model's context window."""
        return self.inner.context_window

    @property
    def constraint_support(self) -> str:
        """As the wrapped backend."""
        return self.inner.constraint_support

    @property
    def parallel_generations(self) -> int:
        """As the wrapped backend."""
        return self.inner.parallel_generations

    @property
    def longest_token_bytes(self) -> int | None:
        """As the wrapped backend."""
        return self.inner.longest_token_bytes

    @property
    def renders_tools(self) -> bool:
        """As the wrapped backend."""
        return self.inner.renders_tools

    @property
    def continues(self) -> bool:
        """As the wrapped backend."""
        return self.inner.continues

    def count_tokens(self, text: str) -> int:
        """The guard model's token count."""
        return self.inner.count_tokens(text)

    def load(self) -> None:
        """Load the guard model."""
        self.inner.load()

    def close(self) -> None:
        """Free the guard model."""
        self.inner.close()

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        """The wrapped backend's stream, under the label grammar."""
        return self.inner.stream(self._constrained(request))

    def astream(self, request: GenerationRequest) -> Any:
        """The wrapped backend's async stream, under the label grammar."""
        return self.inner.astream(self._constrained(request))

    def generate_batch(self, requests: list[GenerationRequest]) -> list[list[Event] | Exception]:
        """The wrapped backend's batch (one engine call), each request under the grammar."""
        return self.inner.generate_batch([self._constrained(r) for r in requests])


class _BatchingLabelledBackend(_LabelledBackend):
    """``_LabelledBackend`` over a backend that batches (vLLM)."""

    supports_batch: ClassVar[bool] = True
