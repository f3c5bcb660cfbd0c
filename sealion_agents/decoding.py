"""Turn backend events into LangChain message chunks: one pure decoder for sync and async.

Data flow: backend events (``PromptInfo``, ``TextDelta``, ``ReasoningDelta``, ``Finished``)
-> ``ReasoningParser`` (reasoning vs answer) -> stop-sequence cut on the answer ->
``ChatGenerationChunk`` with ``additional_kwargs["reasoning_content"]`` -> a last chunk with
``usage_metadata`` and ``response_metadata``.

The thinking budget: when the reasoning reaches ``max_thinking_tokens`` the decoder
asks for an interruption; ``next_request`` then continues the same assistant turn from
the text generated so far plus the closing tag (``</think>``), so the model answers at once.
The tags are the model profile's (``reasoning_tags``).

Constrained answers (tool calls, structured output; an ``AnswerPlan``): the reasoning is
never constrained and never read for calls. On backends that constrain from the first
token, the model reasons freely; when its answer begins (a forced plan) or opens with
``{``/``[`` ("auto"), the decoder interrupts and continues the turn after the closing tag
under the constraint; with thinking off the first generation is constrained. The JSON
answer is held back, ends the generation as soon as it is complete, is validated, retried
a bounded number of times when it breaks a rule decoding could not enforce, and is then
emitted as tool-call chunks (or as the content of a structured answer).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk

from sealion_agents.backends.base import (
    Event,
    Finished,
    GenerationRequest,
    PromptInfo,
    ReasoningDelta,
)
from sealion_agents.call_syntax import EndScanner
from sealion_agents.reasoning import (
    THINK_CLOSE,
    THINK_TAGS,
    Phase,
    ReasoningParser,
    ReasoningTags,
    Split,
    partial_suffix,
)
from sealion_agents.tool_calls import AnswerPlan

__all__ = ["CLOSE_REASONING", "TurnDecoder"]

CLOSE_REASONING = "\n" + THINK_CLOSE
"""Appended to the reasoning when a thinking budget cuts it short (``<think>`` tags)."""


RETRY_TEMPERATURE = 0.7
"""Least temperature of a retried constrained answer (a greedy retry would repeat itself)."""


class _StopCutter:
    """Cut answer text at the first stop sequence, holding back possible partial matches."""

    def __init__(self, stop: list[str]) -> None:
        self.stop = [s for s in stop if s]
        self._held = ""
        self.hit = False

    def feed(self, text: str) -> str:
        if not self.stop:
            return text
        self._held += text
        cut = min((i for i in (self._held.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.hit = True
            out, self._held = self._held[:cut], ""
            return out
        keep = max(self._partial(s) for s in self.stop)
        out = self._held[: len(self._held) - keep]
        self._held = self._held[len(out) :]
        return out

    def flush(self) -> str:
        out, self._held = self._held, ""
        return out

    def _partial(self, stop: str) -> int:
        return partial_suffix(self._held, stop)


class TurnDecoder:
    """State of one assistant turn across its generations (budget cuts, constrained answers)."""

    def __init__(
        self,
        *,
        model_name: str,
        stop: list[str] | None = None,
        max_thinking_tokens: int | None = None,
        max_tokens: int | None = None,
        plan: AnswerPlan | None = None,
        support: str = "none",
        continues: bool = True,
        reasoning_tags: ReasoningTags = THINK_TAGS,
    ) -> None:
        self.model_name = model_name
        self.reasoning_tags = reasoning_tags
        self.max_thinking_tokens = max_thinking_tokens
        self.max_tokens = max_tokens
        self.plan = plan
        self._support = support if support in ("answer", "whole") else "none"
        if self._support == "answer" and not continues:
            self._support = "none"  # cannot continue after the reasoning: check instead
        self._parser: ReasoningParser | None = None
        self._stop = _StopCutter(stop or [])
        self._raw_start = 0  # where the current generation begins in the parser's raw text
        self.input_tokens = 0
        self.output_tokens = 0
        self.reasoning_tokens = 0
        self._opening_tokens = 0  # tokens of an opening tag that is still incomplete
        self.finish_reason: str | None = None
        self.budget_reached = False
        self._continue = False  # a budget cut asks for a second generation
        # the answer under a plan: "free" text, "deciding" (auto: text or call?), "json"
        self._answer_mode = "free" if plan is None else ("json" if plan.forced else "deciding")
        self._held = ""  # answer text held while deciding, or the JSON answer
        self._body_end: EndScanner | None = None  # where the held call or JSON ends
        self._constrained = False  # the current generation carries the constraint
        self._switch = False  # interrupt: continue the turn under the constraint
        self._json_done = False  # the JSON answer is complete: end this generation
        self._attempts = 0
        self._mute_reasoning = False  # a regenerated turn: its reasoning was shown already
        self._result: tuple[list[Any], list[Any]] | None = None
        self._json_error: str | None = None

    @property
    def interrupted(self) -> bool:
        """True when the current generation must stop now (stop sequence, budget, constraint)."""
        return self._stop.hit or self._continue or self._switch or self._json_done

    # -- the first request ------------------------------------------------------------

    def first_request(self, request: GenerationRequest) -> GenerationRequest:
        """The request as it goes to the backend (constrained from the start where it can be)."""
        plan = self.plan
        if plan is None or self._support == "none":
            return request
        if self._support == "whole":
            constraint = plan.answer_constraint(
                after_reasoning=request.thinking, optional=not plan.forced, opener=plan.opener
            )
            self._constrained = True
            return dataclasses.replace(request, constraint=constraint)
        if plan.forced and not request.thinking:
            self._constrained = True
            return dataclasses.replace(
                request,
                assistant_prefix=request.assistant_prefix + plan.opener,
                constraint=plan.answer_constraint(),
            )
        return request

    # -- events -----------------------------------------------------------------------

    def feed(self, event: Event) -> list[ChatGenerationChunk]:
        """Consume one backend event; return the chunks to emit for it."""
        if isinstance(event, PromptInfo):
            if self._parser is None:  # a continuation keeps the first prompt's parser
                self.input_tokens = event.prompt_tokens
                self._parser = self._new_parser(event)
            elif self._mute_reasoning:  # a regenerated turn reads its output afresh
                self._parser = self._new_parser(event)
                self._raw_start = 0
            return []
        parser = self._parser or self._require_parser()
        if isinstance(event, Finished):
            self.finish_reason = event.reason
            return []
        text, tokens = event.text, event.tokens
        self.output_tokens += tokens
        before = parser.phase
        if isinstance(event, ReasoningDelta):
            split = parser.feed_reasoning(text)
            self.reasoning_tokens += tokens
            after = parser.phase
        else:
            split = parser.feed(text)
            after = parser.phase
            if after is Phase.START:
                if text.strip():
                    self._opening_tokens += tokens  # part of a longer opening tag, so far
            elif before is Phase.START and after is Phase.REASONING:
                self.reasoning_tokens += self._opening_tokens  # that tag's earlier tokens
            # the token that closes inline reasoning is reasoning; a server that splits
            # reasoning out sends the answer's first token after it
            if after is Phase.REASONING or (before is Phase.REASONING and not parser.server_split):
                self.reasoning_tokens += tokens
                if after is not Phase.REASONING and split.content and tokens > 1:
                    self.reasoning_tokens -= 1  # a merged piece: its answer text is a token too
        if (
            self.max_thinking_tokens is not None
            and after is Phase.REASONING
            and self.reasoning_tokens >= self.max_thinking_tokens
        ):
            closing = parser.close_reasoning()
            split = Split(reasoning=split.reasoning + closing.reasoning, content=split.content)
            self.budget_reached = True
            self._continue = True
        return self._chunks(split)

    def _answer(self, text: str) -> str:
        """Route answer text through the plan; return what may be emitted as content now."""
        if self._answer_mode == "free" or not text:
            return text
        if self._switch or self._json_done:
            return ""  # text after the point where this generation ends: dropped
        if self._answer_mode == "deciding":
            self._held += text
            assert self.plan is not None
            opens = self.plan.opens_call(self._held)
            if opens is None:
                return ""
            if not opens:
                out = self._held
                self._reset_held()
                self._answer_mode = "free"
                return out
            self._answer_mode = "json"
            if not self._constrained and self._support == "answer":
                self._reset_held()
                self._switch = True  # continue under the constraint from the answer's start
                return ""
            return ""
        # "json"
        if not self._constrained and self._support == "answer":
            self._switch = True  # a forced plan: the answer is generated again, constrained
            return ""
        self._held += text
        assert self.plan is not None
        if self._body_end is None:
            self._body_end = self.plan.end_scanner()
        if self._body_end.scan(self._held) is not None:
            self._json_done = True
        return ""

    def _reset_held(self) -> None:
        """Drop the held answer (and where its body ends) for a new generation of it."""
        self._held = ""
        self._body_end = None

    # -- the next generation of the turn -------------------------------------------------

    def next_request(self, request: GenerationRequest) -> GenerationRequest | None:
        """The next generation of this turn (budget cut, constrained answer, retry), or None."""
        if self._continue:
            return self._after_budget(request)
        if self._switch or (
            self._answer_mode == "json" and not self._constrained and self._support == "answer"
        ):
            self._switch = False  # (a forced answer that never began is generated as well)
            return self._constrained_continuation(request)
        if self._answer_mode == "json" and self._result is None:
            return self._check_answer(request)
        return None

    def _remaining(self) -> tuple[bool, int | None]:
        if self.max_tokens is None:
            return True, None
        remaining = self.max_tokens - self.output_tokens
        if remaining <= 0:
            self.finish_reason = "length"
            return False, None
        return True, remaining

    def _generated(self) -> str:
        parser = self._require_parser()
        generated = parser.raw[self._raw_start :]
        self._raw_start = len(parser.raw)
        return generated

    def _after_budget(self, request: GenerationRequest) -> GenerationRequest | None:
        self._continue = False
        ok, remaining = self._remaining()
        if not ok:
            return None
        closing = "\n" + self.reasoning_tags.close  # CLOSE_REASONING for <think>
        prefix = request.assistant_prefix + self._generated().rstrip() + closing
        self.finish_reason = None
        options = request.options.model_copy(update={"max_tokens": remaining})
        constraint = None
        if self.plan is not None and self.plan.forced and self._support in ("answer", "whole"):
            constraint = self.plan.answer_constraint()
            self._constrained = True
            if self.plan.opener:
                prefix += self.reasoning_tags.gap + self.plan.opener
        return dataclasses.replace(
            request, assistant_prefix=prefix, options=options, constraint=constraint
        )

    def _constrained_continuation(self, request: GenerationRequest) -> GenerationRequest | None:
        """Continue the turn after the reasoning, under the constraint."""
        assert self.plan is not None
        ok, remaining = self._remaining()
        if not ok:
            self._answer_mode = "json"
            return None
        generated = self._generated()
        close = self.reasoning_tags.close
        end = generated.rfind(close)
        kept = generated[: end + len(close)] if end >= 0 else ""
        if self.plan.opener:
            kept += (self.reasoning_tags.gap if kept else "") + self.plan.opener
        self.finish_reason = None
        self._reset_held()
        self._constrained = True
        options = request.options.model_copy(update={"max_tokens": remaining})
        return dataclasses.replace(
            request,
            assistant_prefix=request.assistant_prefix + kept,
            options=options,
            constraint=self.plan.answer_constraint(),
        )

    def _check_answer(self, request: GenerationRequest) -> GenerationRequest | None:
        """Validate the JSON answer; a bounded retry when it breaks the schema."""
        assert self.plan is not None
        self._settle()
        if self._json_error is None or self._attempts >= self.plan.retries:
            return None
        ok, remaining = self._remaining()
        if not ok:
            return None
        self._result = None  # this attempt is replaced by the retry
        self._attempts += 1
        self._reset_held()
        self._json_done = False
        self.finish_reason = None
        seed = (request.options.seed or 0) + 7919 * self._attempts
        temperature = max(request.options.temperature or 0.0, RETRY_TEMPERATURE)
        options = request.options.model_copy(
            update={"max_tokens": remaining, "seed": seed, "temperature": temperature}
        )
        whole = request.constraint is None or request.constraint.after_reasoning
        if whole and not request.assistant_prefix:
            # nothing continued: the whole turn (its reasoning too) is generated again
            self._mute_reasoning = True
            if not self.plan.forced:
                self._answer_mode = "deciding"
        self._generated()  # the failed attempt's text is not part of the turn
        return dataclasses.replace(request, options=options)

    # -- the end of the turn --------------------------------------------------------------

    def finish(self) -> list[ChatGenerationChunk]:
        """Flush held text and emit the closing chunk with usage and metadata."""
        parser = self._require_parser()
        chunks = self._chunks(parser.finish()) if not self._stop.hit else []
        if self._answer_mode == "deciding" and self._held:  # only blanks, or a cut-off reply
            self._answer_mode = "free"
            chunks += self._chunks(Split(content=self._held))
            self._reset_held()
        if not self._stop.hit:
            tail = self._stop.flush()
            if tail:
                chunks.append(self._chunk(content=tail))
        reason = "stop" if self._stop.hit else (self.finish_reason or "stop")
        metadata: dict[str, Any] = {"finish_reason": reason, "model_name": self.model_name}
        answer: dict[str, Any] = {}
        if self._answer_mode == "json" and self.plan is not None:
            answer = self._structured_answer(metadata)
        if parser.phase is Phase.REASONING or (parser.phase is Phase.START and reason == "length"):
            metadata["reasoning_incomplete"] = True
            metadata["warning"] = (
                "Generation stopped inside the reasoning (max_tokens reached); the answer is "
                "empty. Raise max_tokens or set max_thinking_tokens."
            )
        if self.budget_reached:
            metadata["thinking_budget_reached"] = True
        usage = UsageMetadata(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.input_tokens + self.output_tokens,
            output_token_details={"reasoning": self.reasoning_tokens},
        )
        last = AIMessageChunk(
            content=answer.get("content", ""),
            tool_call_chunks=answer.get("tool_call_chunks", []),
            usage_metadata=usage,
            response_metadata=metadata,
            chunk_position="last",
        )
        chunks.append(ChatGenerationChunk(message=last, generation_info=metadata))
        return chunks

    def _structured_answer(self, metadata: dict[str, Any]) -> dict[str, Any]:
        assert self.plan is not None
        if self._result is None:  # the turn ended before the answer was checked
            self._settle()
        calls, invalid = self._result or ([], [])
        if self.plan.kind == "json":
            if self._json_error:
                metadata["structured_output_error"] = self._json_error
            return {"content": self._json_text()}
        if calls:
            metadata["finish_reason"] = "tool_calls"
        if invalid:
            metadata["invalid_tool_calls"] = invalid
        chunks = [
            tool_call_chunk(
                name=c["name"], args=json.dumps(c["args"], ensure_ascii=False), id=c["id"], index=i
            )
            for i, c in enumerate(calls)
        ]
        return {"tool_call_chunks": chunks}

    def _json_text(self) -> str:
        """The held answer's JSON value."""
        assert self.plan is not None
        return self.plan.json_text(self._held)

    def _settle(self) -> None:
        """Check the held answer: its calls (or none) and what is wrong with it (or None)."""
        assert self.plan is not None
        if self.plan.kind == "tools":
            calls, invalid = self.plan.read(self._held)
            self._result = (calls, invalid)
            self._json_error = invalid[0]["error"] if invalid else None
        else:
            _, self._json_error = self.plan.constraint.check(self._json_text())
            self._result = ([], [])

    def _new_parser(self, event: PromptInfo) -> ReasoningParser:
        self._opening_tokens = 0
        return ReasoningParser(in_reasoning=event.opens_reasoning, tags=self.reasoning_tags)

    def _require_parser(self) -> ReasoningParser:
        if self._parser is None:
            raise RuntimeError("backend protocol error: the first event must be PromptInfo")
        return self._parser

    def _chunks(self, split: Split) -> list[ChatGenerationChunk]:
        content = split.content
        if content and self._answer_mode != "free":
            content = self._answer(content)
        if content and self._stop.stop:
            content = self._stop.feed(content)
        reasoning = "" if self._mute_reasoning else split.reasoning
        if not (reasoning or content):
            return []
        return [self._chunk(content=content, reasoning=reasoning)]

    @staticmethod
    def _chunk(*, content: str = "", reasoning: str = "") -> ChatGenerationChunk:
        extra = {"reasoning_content": reasoning} if reasoning else {}
        return ChatGenerationChunk(message=AIMessageChunk(content=content, additional_kwargs=extra))
