"""Turn backend events into LangChain message chunks: one pure decoder for sync and async.

Data flow: backend events (``PromptInfo``, ``TextDelta``, ``ReasoningDelta``, ``Finished``)
-> ``ReasoningParser`` (reasoning vs answer) -> stop-sequence cut on the answer ->
``ChatGenerationChunk`` with ``additional_kwargs["reasoning_content"]`` -> a last chunk with
``usage_metadata`` and ``response_metadata``.

The thinking budget: when the reasoning reaches ``max_thinking_tokens`` the decoder
asks for an interruption; ``next_request`` then continues the same assistant turn from
the text generated so far plus a closing ``</think>``, so the model answers at once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk

from sealion_agents.backends.base import (
    Event,
    Finished,
    GenerationRequest,
    PromptInfo,
    ReasoningDelta,
)
from sealion_agents.reasoning import THINK_CLOSE, Phase, ReasoningParser, Split

__all__ = ["CLOSE_REASONING", "TurnDecoder"]

CLOSE_REASONING = "\n" + THINK_CLOSE
"""Appended to the reasoning when a thinking budget cuts it short."""


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
        for size in range(min(len(stop) - 1, len(self._held)), 0, -1):
            if stop.startswith(self._held[-size:]):
                return size
        return 0


class TurnDecoder:
    """State of one assistant turn across its generations (two when a budget cuts in)."""

    def __init__(
        self,
        *,
        model_name: str,
        stop: list[str] | None = None,
        max_thinking_tokens: int | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self.model_name = model_name
        self.max_thinking_tokens = max_thinking_tokens
        self.max_tokens = max_tokens
        self._parser: ReasoningParser | None = None
        self._stop = _StopCutter(stop or [])
        self._raw_start = 0  # where the current generation begins in the parser's raw text
        self.input_tokens = 0
        self.output_tokens = 0
        self.reasoning_tokens = 0
        self.finish_reason: str | None = None
        self.budget_reached = False
        self._continue = False  # a budget cut asks for a second generation

    @property
    def interrupted(self) -> bool:
        """True when the current generation must stop now (stop sequence or budget)."""
        return self._stop.hit or self._continue

    def feed(self, event: Event) -> list[ChatGenerationChunk]:
        """Consume one backend event; return the chunks to emit for it."""
        if isinstance(event, PromptInfo):
            if self._parser is None:  # a continuation keeps the first prompt's parser
                self.input_tokens = event.prompt_tokens
                self._parser = ReasoningParser(in_reasoning=event.opens_reasoning)
            return []
        parser = self._require_parser()
        if isinstance(event, Finished):
            self.finish_reason = event.reason
            return []
        self.output_tokens += event.tokens
        before = parser.phase
        if isinstance(event, ReasoningDelta):
            split = parser.feed_reasoning(event.text)
            self.reasoning_tokens += event.tokens
        else:
            split = parser.feed(event.text)
            # the token that closes inline reasoning is reasoning; a server that splits
            # reasoning out sends the answer's first token after it
            if parser.in_reasoning or (before is Phase.REASONING and not parser.server_split):
                self.reasoning_tokens += event.tokens
                if not parser.in_reasoning and split.content and event.tokens > 1:
                    self.reasoning_tokens -= 1  # a merged piece: its answer text is a token too
        if (
            self.max_thinking_tokens is not None
            and parser.in_reasoning
            and self.reasoning_tokens >= self.max_thinking_tokens
        ):
            closing = parser.close_reasoning()
            split = Split(reasoning=split.reasoning + closing.reasoning, content=split.content)
            self.budget_reached = True
            self._continue = True
        return self._chunks(split)

    def next_request(self, request: GenerationRequest) -> GenerationRequest | None:
        """The continuation after a budget cut, or None when the turn is complete."""
        if not self._continue:
            return None
        self._continue = False
        remaining = None
        if self.max_tokens is not None:
            remaining = self.max_tokens - self.output_tokens
            if remaining <= 0:
                self.finish_reason = "length"
                return None
        parser = self._require_parser()
        generated = parser.raw[self._raw_start :]
        self._raw_start = len(parser.raw)
        prefix = request.assistant_prefix + generated.rstrip() + CLOSE_REASONING
        self.finish_reason = None
        options = request.options.model_copy(update={"max_tokens": remaining})
        return dataclasses.replace(request, assistant_prefix=prefix, options=options)

    def finish(self) -> list[ChatGenerationChunk]:
        """Flush held text and emit the closing chunk with usage and metadata."""
        parser = self._require_parser()
        chunks = self._chunks(parser.finish()) if not self._stop.hit else []
        if not self._stop.hit:
            tail = self._stop.flush()
            if tail:
                chunks.append(self._chunk(content=tail))
        reason = "stop" if self._stop.hit else (self.finish_reason or "stop")
        metadata: dict[str, Any] = {"finish_reason": reason, "model_name": self.model_name}
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
            content="",
            usage_metadata=usage,
            response_metadata=metadata,
            chunk_position="last",
        )
        chunks.append(ChatGenerationChunk(message=last, generation_info=metadata))
        return chunks

    def _require_parser(self) -> ReasoningParser:
        if self._parser is None:
            raise RuntimeError("backend protocol error: the first event must be PromptInfo")
        return self._parser

    def _chunks(self, split: Split) -> list[ChatGenerationChunk]:
        content = self._stop.feed(split.content) if split.content else ""
        if not (split.reasoning or content):
            return []
        return [self._chunk(content=content, reasoning=split.reasoning)]

    @staticmethod
    def _chunk(*, content: str = "", reasoning: str = "") -> ChatGenerationChunk:
        extra = {"reasoning_content": reasoning} if reasoning else {}
        return ChatGenerationChunk(message=AIMessageChunk(content=content, additional_kwargs=extra))
