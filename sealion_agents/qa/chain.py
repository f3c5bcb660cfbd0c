"""``GroundedQA``: answer from a user's documents with citations, or decline.

Data flow (each model call with its own thinking mode):
  question (+ history) -> 1. rewrite to a standalone query [thinking off] (+ a translation
  for cross-lingual documents) -> 2. retrieve (hybrid; rerank if the retriever does) ->
  3. pack passages into the context budget, numbered [1..n] -> 4. answer in the question's
  language citing [n], or decline [thinking on, budgeted] -> 5. verify each cited claim
  against its passages [thinking off]; unsupported claims are removed, and an answer with
  nothing left is replaced by the decline message -> ``GroundedAnswer``.

With ``guardrails`` (``sealion_agents.guardrails``): the question is screened before step 1
(unsafe: ``status="blocked"``, a refusal in the question's language); retrieved passages
before step 3 when the ``passages`` stage is on (an unsafe one is withheld, and the answer
says so); the final answer before it is returned, the answer events held until it passes.

``stream`` yields ``QAEvent``s: the query, the sources, reasoning and answer tokens as
they are generated, then the verdict and the final result.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage, convert_to_messages
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sealion_agents.errors import ContextWindowExceededError
from sealion_agents.guardrails import Guardrails
from sealion_agents.options import GenerationOptions
from sealion_agents.qa.citations import cited_numbers, split_claims
from sealion_agents.qa.language import LANGUAGES, Language, detect_language, normalize_code
from sealion_agents.qa.packing import Source, pack_sources, render_sources
from sealion_agents.qa.prompts import (
    DECLINE_TOKEN,
    answer_messages,
    rewrite_messages,
    translate_messages,
    verify_messages,
)
from sealion_agents.reasoning import strip_reasoning
from sealion_agents.threads import iterate_in_thread

__all__ = [
    "Citation",
    "GroundedAnswer",
    "GroundedQA",
    "QAEvent",
    "language_code",
    "language_codes",
]

logger = logging.getLogger(__name__)

_DEFAULT_CONTEXT = 8192
_PROMPT_MARGIN = 64  # template tokens around the messages
_LANGUAGE_DOCUMENTS = 3  # the top documents whose language hints at the question's


class Citation(BaseModel):
    """A numbered passage: where it came from and its text."""

    number: int
    source: str = ""
    page: int | None = None
    text: str


class GroundedAnswer(BaseModel):
    """The result of one question."""

    question: str
    answer: str
    status: Literal["grounded", "revised", "declined", "blocked"]
    """grounded: every claim verified; revised: unsupported claims removed; declined;
    blocked: a safety check refused the question or the answer (``answer`` is a refusal)."""
    declined_by: Literal["model", "verifier", "no_sources"] | None = None
    blocked_stage: Literal["input", "output"] | None = None
    """Which check blocked: the question's (input) or the answer's (output)."""
    blocked_by: str | None = None
    """The guard model that blocked."""
    withheld: list[str] = Field(default_factory=list)
    """Sources of retrieved passages a safety check withheld (their text is not returned)."""
    language: str
    """ISO 639-1 code of the question's language (the answer's language)."""
    query: str
    """The standalone search query (step 1)."""
    queries: list[str] = Field(default_factory=list)
    """Every query retrieved with (the standalone one and any translation)."""
    citations: list[Citation] = Field(default_factory=list)
    """The passages the final answer cites, in order of first mention."""
    sources: list[Citation] = Field(default_factory=list)
    """Every passage the model was given."""
    removed_claims: list[str] = Field(default_factory=list)
    """Sentences the verifier found unsupported and removed."""
    reasoning: str | None = None
    """The answer step's reasoning (kept when ``return_reasoning`` is on)."""


@dataclass(frozen=True)
class QAEvent:
    """One streamed step: kind is query, sources, reasoning, answer, verdict or result."""

    kind: Literal["query", "sources", "reasoning", "answer", "verdict", "result"]
    text: str = ""
    sources: tuple[Citation, ...] = ()
    result: GroundedAnswer | None = None


def _as_citation(source: Source) -> Citation:
    return Citation(number=source.number, source=source.source, page=source.page, text=source.text)


def language_code(code: str) -> str:
    """The supported ISO 639-1 code for ``code`` (``ms-MY`` -> ``ms``), or a clear error."""
    known = normalize_code(code)
    if known is None:
        raise ValueError(
            f"unknown language code {code!r}: use one of {', '.join(LANGUAGES)} (ISO 639-1)"
        )
    return known


def language_codes(codes: Iterable[str] | None) -> list[str] | None:
    """Each code checked by ``language_code``; an entry may list several (``ms,en``)."""
    if codes is None:
        return None
    found = [language_code(c) for entry in codes for c in entry.split(",") if c.strip()]
    if not found:
        raise ValueError("languages is empty: name at least one ISO 639-1 code, e.g. ms,en")
    return list(dict.fromkeys(found))


class GroundedQA(RunnableSerializable[Any, GroundedAnswer]):
    """Grounded document Q&A over any retriever and chat model (SEA-LION first)."""

    llm: BaseChatModel
    """The chat model for every step (each step sets its own thinking mode)."""
    retriever: BaseRetriever
    """Where passages come from (e.g. ``SEARetriever``: hybrid search over Chroma)."""
    rewrite_options: GenerationOptions = GenerationOptions(thinking=False, max_tokens=128)
    """Options of step 1 (standalone query, translation): a query is short."""
    answer_options: GenerationOptions = GenerationOptions(
        thinking=True, max_thinking_tokens=1024, max_tokens=1024
    )
    """Options of step 4 (the answer); its ``max_tokens`` (reasoning included) is kept free
    in the context window."""
    verify_options: GenerationOptions = GenerationOptions(thinking=False, max_tokens=64)
    """Options of step 5 (one claim check each: a one-word verdict)."""
    verify: bool = True
    """Run step 5."""
    translate_to: str | None = "English"
    """Also search with the query in this language when the question is in another one."""
    context_window: int | None = None
    """Token budget of one call (default: the model's context window, or 8192)."""
    return_reasoning: bool = True
    """Keep step 4's reasoning in the result."""
    default_language: str = "en"
    """Answer language when detection is unsure (``ms``/``id``: also for either-or questions)."""
    languages: list[str] | None = None
    """The deployment's answer languages (ISO 639-1 codes); detection chooses among them."""
    guardrails: Guardrails | None = None
    """Safety checks of the question, the passages and the answer (None: none)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _known_language = field_validator("default_language")(language_code)
    _known_languages = field_validator("languages")(language_codes)

    @model_validator(mode="before")
    @classmethod
    def _renamed_options(cls, data: Any) -> Any:
        """The per-step fields of earlier releases, mapped onto the steps' options."""
        if not isinstance(data, dict) or not _RENAMED.keys() & data.keys():
            return data
        data = dict(data)
        updates: dict[str, dict[str, Any]] = {}
        for old in [name for name in _RENAMED if name in data]:
            step, option = _RENAMED[old]
            warnings.warn(
                f"GroundedQA({old}=...) is deprecated: use {step}=GenerationOptions({option}=...)",
                DeprecationWarning,
                stacklevel=4,
            )
            updates.setdefault(step, {})[option] = data.pop(old)
        rewrite = updates.get("rewrite_options", {})
        if rewrite.get("thinking"):  # as before: room for the reasoning before the query
            rewrite["max_tokens"] = rewrite.get("max_tokens", 128) * 8
        if updates.get("verify_options", {}).get("thinking"):
            updates["verify_options"].setdefault("max_tokens", 512)
        for step, values in updates.items():
            given = data.get(step, cls.model_fields[step].default)
            if isinstance(given, GenerationOptions):
                given = given.model_dump(exclude_unset=True)
            data[step] = GenerationOptions(**(dict(given) | values))
        return data

    @model_validator(mode="after")
    def _answer_is_bounded(self) -> GroundedQA:
        if self.answer_options.max_tokens is None:
            raise ValueError(
                "answer_options.max_tokens must be set: that many tokens of the context window "
                "are kept free for the answer, e.g. GenerationOptions(max_tokens=1024)"
            )
        return self

    # -- Runnable surface --------------------------------------------------------------

    def invoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> GroundedAnswer:
        """Answer one question: a string, or ``{"question": ..., "history": [...]}``."""
        result = None
        for event in self.stream(input, config, **kwargs):
            if event.kind == "result":
                result = event.result
        assert result is not None
        return result

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> GroundedAnswer:
        """Async ``invoke``; the steps run in a worker thread."""
        result = None
        async for event in self.astream(input, config, **kwargs):
            if event.kind == "result":
                result = event.result
        assert result is not None
        return result

    def stream(  # type: ignore[override]
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[QAEvent]:
        """Run the chain, yielding each step's events as they happen."""
        question, history = self._read_input(input)
        yield from self._run(question, history, config)

    async def astream(  # type: ignore[override]
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[QAEvent]:
        """Async ``stream``: the same events, without blocking the event loop."""
        question, history = self._read_input(input)
        async for event in iterate_in_thread(lambda: self._run(question, history, config)):
            yield event

    @staticmethod
    def _read_input(data: Any) -> tuple[str, list[BaseMessage]]:
        if isinstance(data, str):
            question, history = data, []
        elif isinstance(data, dict) and "question" in data:
            question, history = str(data["question"]), _history(data.get("history"))
        else:
            raise TypeError(
                "GroundedQA takes a question string or {'question': str, 'history': [messages]}; "
                f"got {type(data).__name__}."
            )
        if not question.strip():
            raise ValueError("The question is empty: ask something.")
        return question.strip(), history

    # -- the steps -----------------------------------------------------------------------

    def _ask(
        self, messages: list[BaseMessage], config: RunnableConfig | None, **options: Any
    ) -> str:
        reply = self.llm.invoke(messages, config, **options)
        return strip_reasoning(reply.text).strip()

    def _queries(
        self,
        question: str,
        history: list[BaseMessage],
        language: Language,
        config: RunnableConfig | None,
    ) -> list[str]:
        options = _call_options(self.rewrite_options)
        query = question
        if history:
            rewritten = self._ask(
                rewrite_messages(question, history, language=language.name), config, **options
            )
            query = rewritten.splitlines()[0].strip() if rewritten else question
        queries = [query]
        target = self.translate_to
        if target and language.name != target:
            translated = self._ask(translate_messages(query, target=target), config, **options)
            translated = translated.splitlines()[0].strip() if translated else ""
            if translated and translated != query:
                queries.append(translated)
        return queries

    def _retrieve(self, queries: list[str], config: RunnableConfig | None) -> list[Any]:
        """Documents for every query, interleaved by rank, duplicates dropped."""
        ranked = [self.retriever.invoke(q, config) for q in queries]
        merged, seen = [], set()
        for rank in range(max((len(r) for r in ranked), default=0)):
            for results in ranked:
                if rank < len(results) and results[rank].page_content not in seen:
                    seen.add(results[rank].page_content)
                    merged.append(results[rank])
        return merged

    def _budget(self, question: str, language: Language) -> int:
        window = self.context_window or getattr(self.llm, "context_window", None)
        window = window or _DEFAULT_CONTEXT
        frame = answer_messages(question, "", language=language.name)
        fixed = sum(self.llm.get_num_tokens(m.text) for m in frame) + _PROMPT_MARGIN
        answer_tokens = self.answer_options.max_tokens or 0  # set: checked at construction
        budget = window - answer_tokens - fixed
        if budget <= 0:  # no room for a single passage: say so, never decline as if unfound
            raise ContextWindowExceededError(
                prompt_tokens=fixed, max_tokens=answer_tokens, n_ctx=window
            )
        return budget

    def _language(
        self, question: str, history: list[BaseMessage], documents: Sequence[Any] = ()
    ) -> Language:
        """The answer language: the question's, with the conversation and documents as hints."""
        return detect_language(
            question,
            default=self.default_language,
            languages=self.languages,
            history=[m.text for m in history if m.type == "human"],
            context=" ".join(d.page_content for d in documents[:_LANGUAGE_DOCUMENTS]),
        )

    def _run(
        self, question: str, history: list[BaseMessage], config: RunnableConfig | None
    ) -> Iterator[QAEvent]:
        language = self._language(question, history)
        rails = self.guardrails
        if rails is not None:
            verdict = rails.check_input(question, config)
            if verdict is not None and not verdict.safe:
                yield from self._blocked("input", question, language, rails, {"query": question})
                return
        queries = self._queries(question, history, language, config)
        yield QAEvent("query", text=queries[0])
        documents = self._retrieve(queries, config)
        withheld: list[str] = []
        if rails is not None and documents:
            passing = rails.check_passages([d.page_content for d in documents], config)
            withheld = [_source_of(d) for d, ok in zip(documents, passing, strict=True) if not ok]
            documents = [d for d, ok in zip(documents, passing, strict=True) if ok]
        if documents:  # the documents' language decides what the question leaves open
            language = self._language(question, history, documents)
        sources = pack_sources(
            documents,
            count_tokens=self.llm.get_num_tokens,
            budget=self._budget(queries[0], language),
        )
        cited_pool = tuple(_as_citation(s) for s in sources)
        yield QAEvent("sources", sources=cited_pool)
        base: dict[str, Any] = {
            "question": question,
            "language": language.code,
            "query": queries[0],
        }
        base |= {"queries": queries, "sources": list(cited_pool), "withheld": withheld}
        note = f"\n\n{language.withheld}" if withheld else ""
        if not sources:
            yield QAEvent("verdict", text="declined: no passages found")
            answer = GroundedAnswer(
                answer=language.decline + note,
                status="declined",
                declined_by="no_sources",
                **base,
            )
            yield QAEvent("result", result=answer)
            return

        passages = render_sources(sources)
        asked = queries[0] if history else question
        reasoning: list[str] = []
        text: list[str] = []
        options = _call_options(self.answer_options)
        held = ""  # answer text held back while it may still become the decline token
        holds = rails is not None and rails.holds_answer  # shown once the guard passes it
        shows_reasoning = rails is None or rails.shows_reasoning
        for chunk in self.llm.stream(
            answer_messages(asked, passages, language=language.name), config, **options
        ):
            assert isinstance(chunk, AIMessageChunk)
            thought = chunk.additional_kwargs.get("reasoning_content")
            if thought:
                reasoning.append(thought)
                if shows_reasoning:
                    yield QAEvent("reasoning", text=thought)
            if chunk.text:
                text.append(chunk.text)
                held += chunk.text
                if not holds and not DECLINE_TOKEN.startswith(held.strip()):
                    yield QAEvent("answer", text=held)
                    held = ""
        raw_answer = "".join(text).strip()
        base["reasoning"] = ("".join(reasoning).strip() or None) if self.return_reasoning else None

        if not raw_answer or DECLINE_TOKEN in raw_answer:
            yield QAEvent("verdict", text="declined by the model")
            yield QAEvent(
                "result",
                result=GroundedAnswer(
                    answer=language.decline + note,
                    status="declined",
                    declined_by="model",
                    **base,
                ),
            )
            return
        if held and not holds:
            yield QAEvent("answer", text=held)

        kept, removed = self._verified_claims(raw_answer, sources, config)
        if not kept:
            yield QAEvent("verdict", text="declined: no claim is supported by its passages")
            yield QAEvent(
                "result",
                result=GroundedAnswer(
                    answer=language.decline + note,
                    status="declined",
                    declined_by="verifier",
                    removed_claims=removed,
                    **base,
                ),
            )
            return
        final = " ".join(kept)
        if rails is not None:
            verdict = rails.check_output(question, final, config)
            if verdict is not None and not verdict.safe:
                yield from self._blocked("output", question, language, rails, base)
                return
        by_number = {c.number: c for c in cited_pool}
        citations = [by_number[n] for n in cited_numbers(final) if n in by_number]
        status: Literal["grounded", "revised"] = "revised" if removed else "grounded"
        if holds:
            yield QAEvent("answer", text=final + note)
        elif note:
            yield QAEvent("answer", text=note)
        yield QAEvent("verdict", text=status)
        yield QAEvent(
            "result",
            result=GroundedAnswer(
                answer=final + note,
                status=status,
                citations=citations,
                removed_claims=removed,
                **base,
            ),
        )

    @staticmethod
    def _blocked(
        stage: Literal["input", "output"],
        question: str,
        language: Language,
        rails: Guardrails,
        base: dict[str, Any],
    ) -> Iterator[QAEvent]:
        """The events of a turn a safety check blocked: a refusal, nothing of the model's."""
        yield QAEvent("verdict", text=f"blocked by the guard ({stage} check)")
        kept = {k: v for k, v in base.items() if k in ("query", "queries", "sources", "withheld")}
        yield QAEvent(
            "result",
            result=GroundedAnswer(
                question=question,
                answer=language.refusal,
                status="blocked",
                blocked_stage=stage,
                blocked_by=rails.guard_name,
                language=language.code,
                **kept,
            ),
        )

    def _verified_claims(
        self, answer: str, sources: Sequence[Source], config: RunnableConfig | None
    ) -> tuple[list[str], list[str]]:
        """Split the answer into claims; keep those whose cited passages support them."""
        by_number = {s.number: s for s in sources}
        kept: list[str] = []
        removed: list[str] = []
        for claim in split_claims(answer):
            cited = [by_number[n] for n in claim.cited if n in by_number]
            if not cited or len(cited) != len(claim.cited):
                removed.append(claim.text)  # uncited, or citing a passage that does not exist
                continue
            if not self.verify:
                kept.append(claim.text)
                continue
            verdict = self._ask(
                verify_messages(claim.text, render_sources(cited)),
                config,
                **_call_options(self.verify_options),
            )
            if verdict.upper().lstrip(" *\"'").startswith("SUPPORTED"):
                kept.append(claim.text)
            else:
                removed.append(claim.text)
        return kept, removed


_RENAMED = {
    "rewrite_thinking": ("rewrite_options", "thinking"),
    "query_max_tokens": ("rewrite_options", "max_tokens"),
    "answer_thinking": ("answer_options", "thinking"),
    "answer_thinking_budget": ("answer_options", "max_thinking_tokens"),
    "answer_max_tokens": ("answer_options", "max_tokens"),
    "verify_thinking": ("verify_options", "thinking"),
}
"""Earlier releases' per-step fields: (the step's options, the option)."""


def _call_options(options: GenerationOptions) -> dict[str, Any]:
    """A step's per-call options: those set to a value (a thinking budget only with thinking)."""
    values = options.model_dump(exclude_none=True)
    if not options.thinking:
        values.pop("max_thinking_tokens", None)
    return values


def _source_of(document: Any) -> str:
    """A retrieved document's source name (its metadata), for what was withheld."""
    metadata = getattr(document, "metadata", None) or {}
    return str(metadata.get("source") or metadata.get("name") or "")


def _history(messages: Any) -> list[BaseMessage]:
    """Earlier turns in any form LangChain takes: messages, ``(role, text)`` pairs, dicts."""
    try:
        return convert_to_messages(list(messages or []))
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise ValueError(
            "history must be a list of messages: BaseMessage objects, (role, text) pairs such "
            f"as ('user', '...') and ('assistant', '...'), or {{'role': ..., 'content': ...}} "
            f"dicts ({exc})"
        ) from exc
